//! The metrics' own consumer of the log: it reads every event from the start, then follows the
//! store's feed, and counts what happened. Conversation state comes from the same fold the
//! runtime uses (`evolve_stored_at`), so no rule of the domain is restated here; only the
//! transitions the counters need are looked at.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use handover::{
    AiAgentEvent, Author, ConversationEvent, ConversationId, Error, Event, Handover, HumanEvent,
    RecordedEvent, Status, StreamId, TeamId, TenantId, Timestamp,
};
use handover_core::conversation::{evolve_stored_at, Conversation};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::sync::broadcast::error::RecvError;

/// Records read per step while catching up with the log.
const PAGE: usize = 4096;

/// Upper bounds of the escalation-to-human histogram, in seconds: a second to four hours.
const ESCALATION_BUCKETS: [f64; 12] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0,
];

/// Upper bounds of the AI reply histogram, in seconds: a tenth of a second to two minutes.
const AI_REPLY_BUCKETS: [f64; 11] = [0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TenantLabels {
    pub(crate) tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct AgentLabels {
    pub(crate) tenant: String,
    pub(crate) ai_agent: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct EscalationLabels {
    pub(crate) tenant: String,
    pub(crate) ai_agent: String,
    pub(crate) cause: String,
    /// The policy rule that decided; empty for an escalation no rule made.
    pub(crate) rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct QueueLabels {
    pub(crate) tenant: String,
    /// Empty for the tenant's general queue.
    pub(crate) team: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ClosedLabels {
    pub(crate) tenant: String,
    pub(crate) outcome: &'static str,
}

/// The label value of a queue: its team, or empty for the tenant's general queue.
pub(crate) fn team_label(team: Option<&TeamId>) -> String {
    team.map(|t| t.as_str().to_owned()).unwrap_or_default()
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The counters and histograms the feed moves, registered once in the instance's registry.
#[derive(Clone)]
pub(crate) struct EventMetrics {
    opened: Family<TenantLabels, Counter>,
    closed: Family<ClosedLabels, Counter>,
    containment: Family<TenantLabels, Gauge<f64, AtomicU64>>,
    handoffs: Family<AgentLabels, Counter>,
    reclaims: Family<AgentLabels, Counter>,
    escalations: Family<EscalationLabels, Counter>,
    ai_timeouts: Family<AgentLabels, Counter>,
    sla_warnings: Family<QueueLabels, Counter>,
    sla_breaches: Family<QueueLabels, Counter>,
    escalation_to_human: HistogramFamily<QueueLabels>,
    ai_reply: HistogramFamily<AgentLabels>,
    events: Counter,
}

impl EventMetrics {
    pub(crate) fn register(registry: &mut Registry) -> EventMetrics {
        fn escalation() -> Histogram {
            Histogram::new(ESCALATION_BUCKETS)
        }
        fn ai_reply() -> Histogram {
            Histogram::new(AI_REPLY_BUCKETS)
        }
        let metrics = EventMetrics {
            opened: Family::default(),
            closed: Family::default(),
            containment: Family::default(),
            handoffs: Family::default(),
            reclaims: Family::default(),
            escalations: Family::default(),
            ai_timeouts: Family::default(),
            sla_warnings: Family::default(),
            sla_breaches: Family::default(),
            escalation_to_human: Family::new_with_constructor(escalation as fn() -> Histogram),
            ai_reply: Family::new_with_constructor(ai_reply as fn() -> Histogram),
            events: Counter::default(),
        };
        // Counters are registered without `_total`: the encoder adds it.
        registry.register(
            "handover_conversations_opened",
            "Conversations opened",
            metrics.opened.clone(),
        );
        registry.register(
            "handover_conversations_closed",
            "Conversations closed, by outcome: contained (an AI agent had it and no human ever \
             took it back), ai_after_return (closed while AI-active after a human had taken it \
             back once), returned (an AI agent had it, closed while humans had it), human_only \
             (never handed to an AI agent)",
            metrics.closed.clone(),
        );
        registry.register(
            "handover_ai_containment_ratio",
            "Of the closed conversations an AI agent had, the share no human ever took back",
            metrics.containment.clone(),
        );
        registry.register(
            "handover_handoffs",
            "Handoffs from a human to an AI agent",
            metrics.handoffs.clone(),
        );
        registry.register(
            "handover_reclaims",
            "Conversations a human took back from an AI agent",
            metrics.reclaims.clone(),
        );
        registry.register(
            "handover_escalations",
            "Conversations an AI agent gave back to humans, by cause and policy rule (empty \
             when no rule decided)",
            metrics.escalations.clone(),
        );
        registry.register(
            "handover_ai_timeouts",
            "Customer messages an AI agent did not answer within its reply deadline",
            metrics.ai_timeouts.clone(),
        );
        registry.register(
            "handover_sla_warnings",
            "Conversations that waited in a queue past its warning threshold",
            metrics.sla_warnings.clone(),
        );
        registry.register(
            "handover_sla_breaches",
            "Conversations that waited in a queue past its breach threshold",
            metrics.sla_breaches.clone(),
        );
        registry.register(
            "handover_escalation_to_human_seconds",
            "Time from an escalation to a human being assigned, by the queue it was taken from",
            metrics.escalation_to_human.clone(),
        );
        registry.register(
            "handover_ai_reply_seconds",
            "Time from a customer's message to the AI agent's reply",
            metrics.ai_reply.clone(),
        );
        registry.register(
            "handover_feed_events",
            "Events the metrics' feed has counted, from the start of the log",
            metrics.events.clone(),
        );
        metrics
    }
}

/// What the feed shares with the scrape: how far it has read, and the tenants it has seen.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// The position of the last event counted.
    pub(crate) position: AtomicU64,
    /// Every tenant the log names, so the scrape asks each for its live counts.
    pub(crate) tenants: Mutex<BTreeSet<TenantId>>,
}

/// What the feed keeps of an open conversation.
struct Tracked {
    state: Conversation,
    /// A human took it back from an AI agent at least once.
    returned: bool,
    /// When it was last escalated, until a human is assigned.
    escalated_at: Option<Timestamp>,
}

/// Closed conversations an AI agent had, per tenant: (contained, all).
type Containment = HashMap<TenantId, (u64, u64)>;

pub(crate) struct Feed {
    metrics: EventMetrics,
    progress: Arc<Progress>,
    open: HashMap<ConversationId, Tracked>,
    containment: Containment,
}

impl Feed {
    pub(crate) fn new(metrics: EventMetrics, progress: Arc<Progress>) -> Feed {
        Feed {
            metrics,
            progress,
            open: HashMap::new(),
            containment: HashMap::new(),
        }
    }

    /// Counts the log from its first event, then follows it until the runtime stops.
    pub(crate) async fn run(mut self, handover: Handover) {
        // Subscribed before the first read: nothing recorded meanwhile is missed.
        let mut live = handover.subscribe_events();
        let mut next = 1;
        loop {
            loop {
                let page = match handover.read_events(next, PAGE).await {
                    Ok(page) => page,
                    Err(Error::Stopped) => return,
                    Err(error) => {
                        tracing::warn!(%error, "the metrics cannot read the log; retrying");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        continue;
                    }
                };
                for record in &page {
                    self.apply(record);
                    next = record.position + 1;
                }
                if page.len() < PAGE {
                    break;
                }
            }
            loop {
                match live.recv().await {
                    Ok(record) if record.position < next => {}
                    Ok(record) if record.position == next => {
                        self.apply(&record);
                        next += 1;
                    }
                    // A gap (recorded before the subscription's start, or lagged): read it.
                    Ok(_) | Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => return,
                }
            }
        }
    }

    /// Counts one record.
    pub(crate) fn apply(&mut self, record: &RecordedEvent) {
        match (&record.stream, &record.event) {
            (StreamId::Conversation(id), Event::Conversation(event)) => {
                self.conversation(*id, record, event);
            }
            (_, Event::Human(HumanEvent::Registered { tenant, .. }))
            | (_, Event::AiAgent(AiAgentEvent::RegisteredIn { tenant, .. })) => {
                self.seen(tenant);
            }
            (_, Event::AiAgent(AiAgentEvent::Registered { .. })) => {
                self.seen(&TenantId::default_tenant());
            }
            _ => {}
        }
        self.metrics.events.inc();
        self.progress
            .position
            .store(record.position, Ordering::Release);
    }

    fn seen(&self, tenant: &TenantId) {
        let mut tenants = self
            .progress
            .tenants
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !tenants.contains(tenant) {
            tenants.insert(tenant.clone());
        }
    }

    fn conversation(
        &mut self,
        id: ConversationId,
        record: &RecordedEvent,
        event: &ConversationEvent,
    ) {
        let tracked = self.open.remove(&id).unwrap_or(Tracked {
            state: Conversation::NotOpened,
            returned: false,
            escalated_at: None,
        });
        let at = Timestamp(record.recorded_at.0);
        let before = tracked.state.status();
        let reply_pending_since = tracked
            .state
            .state()
            .and_then(|open| open.reply_pending_since);
        let state = match evolve_stored_at(tracked.state, &record.event, Some(at)) {
            Ok(state) => state,
            Err(rejection) => {
                // Only a damaged log gets here, and the runtime refuses to start on one.
                tracing::warn!(%id, position = record.position, %rejection, "the metrics cannot fold an event; the conversation is no longer counted");
                return;
            }
        };
        let Some(open) = state.state() else {
            return;
        };
        let tenant = open.tenant.clone();
        let tenant_label = || tenant.as_str().to_owned();
        let agent = |agent_id: &handover::AiAgentId| AgentLabels {
            tenant: tenant_label(),
            ai_agent: agent_id.as_str().to_owned(),
        };
        let mut tracked = Tracked {
            returned: tracked.returned,
            escalated_at: tracked.escalated_at,
            state: Conversation::NotOpened,
        };
        let after = state.status();
        let was_ai = matches!(before, Status::AiActive { .. });
        if was_ai && !matches!(after, Status::AiActive { .. } | Status::Closed) {
            tracked.returned = true;
        }
        let m = &self.metrics;
        match event {
            ConversationEvent::Started { .. } | ConversationEvent::Opened { .. } => {
                self.seen(&tenant);
                m.opened
                    .get_or_create(&TenantLabels {
                        tenant: tenant_label(),
                    })
                    .inc();
            }
            ConversationEvent::HandedOffToAi { agent_id, .. } => {
                m.handoffs.get_or_create(&agent(agent_id)).inc();
                tracked.escalated_at = None;
            }
            ConversationEvent::Reclaimed { agent_id, .. } => {
                m.reclaims.get_or_create(&agent(agent_id)).inc();
            }
            ConversationEvent::EscalatedToHuman {
                agent_id, cause, ..
            } => {
                m.escalations
                    .get_or_create(&EscalationLabels {
                        tenant: tenant_label(),
                        ai_agent: agent_id.as_str().to_owned(),
                        cause: cause.as_str().to_owned(),
                        rule: String::new(),
                    })
                    .inc();
                tracked.escalated_at = Some(at);
            }
            ConversationEvent::EscalatedByRule {
                agent_id,
                cause,
                rule,
                at: decided,
                ..
            } => {
                m.escalations
                    .get_or_create(&EscalationLabels {
                        tenant: tenant_label(),
                        ai_agent: agent_id.as_str().to_owned(),
                        cause: cause.as_str().to_owned(),
                        rule: rule.as_str().to_owned(),
                    })
                    .inc();
                tracked.escalated_at = Some(*decided);
            }
            ConversationEvent::AiReplyOverdue { agent_id, .. } => {
                m.ai_timeouts.get_or_create(&agent(agent_id)).inc();
            }
            ConversationEvent::SlaWarning { team, .. } => {
                m.sla_warnings
                    .get_or_create(&QueueLabels {
                        tenant: tenant_label(),
                        team: team_label(team.as_ref()),
                    })
                    .inc();
            }
            ConversationEvent::SlaBreached { team, .. } => {
                m.sla_breaches
                    .get_or_create(&QueueLabels {
                        tenant: tenant_label(),
                        team: team_label(team.as_ref()),
                    })
                    .inc();
            }
            ConversationEvent::HumanAssigned {
                team, at: assigned, ..
            } => {
                if let Some(since) = tracked.escalated_at.take() {
                    let seconds =
                        assigned.as_micros().saturating_sub(since.as_micros()) as f64 / 1_000_000.0;
                    m.escalation_to_human
                        .get_or_create(&QueueLabels {
                            tenant: tenant_label(),
                            team: team_label(team.as_ref()),
                        })
                        .observe(seconds.max(0.0));
                }
            }
            ConversationEvent::MessagePosted {
                author: Author::Ai(agent_id),
                ..
            } => {
                if let Some(since) = reply_pending_since {
                    let seconds =
                        at.as_micros().saturating_sub(since.as_micros()) as f64 / 1_000_000.0;
                    m.ai_reply
                        .get_or_create(&agent(agent_id))
                        .observe(seconds.max(0.0));
                }
            }
            ConversationEvent::Closed { .. } => {
                let ai_involved = !open.ai_agents.is_empty();
                let outcome = match (ai_involved, was_ai, tracked.returned) {
                    (false, _, _) => "human_only",
                    (true, true, false) => "contained",
                    (true, true, true) => "ai_after_return",
                    (true, false, _) => "returned",
                };
                m.closed
                    .get_or_create(&ClosedLabels {
                        tenant: tenant_label(),
                        outcome,
                    })
                    .inc();
                if ai_involved {
                    let (contained, all) = self.containment.entry(tenant.clone()).or_default();
                    *all += 1;
                    if outcome == "contained" {
                        *contained += 1;
                    }
                    m.containment
                        .get_or_create(&TenantLabels {
                            tenant: tenant_label(),
                        })
                        .set(*contained as f64 / *all as f64);
                }
                // Nothing follows a close: the conversation is no longer kept.
                return;
            }
            _ => {}
        }
        tracked.state = state;
        self.open.insert(id, tracked);
    }
}
