//! Figures over the whole log: conversations, handoffs, reclaims, escalations by cause, AI
//! containment, time spent in each state, skills run and messages by author kind.

use std::collections::BTreeMap;
use std::fmt;

use handover_core::EscalationCause;
use handover_sled::SledStore;
use handover_store::RecordedAt;
use serde::Serialize;

use crate::error::AuditError;
use crate::log::AuditLog;
use crate::replay::{AiOutcome, ApprovalCounts, Holder, MessageCounts, Replay};
use crate::timefmt::format_duration_hms;

/// Escalations back to humans, by what set them off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EscalationCounts {
    /// All escalations.
    pub total: u64,
    /// The AI agent asked for a human.
    pub agent_requested: u64,
    /// The customer asked for a human.
    pub customer_asked_for_human: u64,
    /// The AI agent was deactivated while holding the conversation.
    pub agent_deactivated: u64,
    /// The AI agent did not reply within its deadline.
    pub ai_timeout: u64,
    /// A rule found the customer frustrated.
    pub frustration: u64,
    /// A rule found the customer asking the same question again and again.
    pub going_in_circles: u64,
    /// A rule counted the AI agent's "could not answer" reports.
    pub ai_could_not_answer: u64,
    /// A rule heard the customer complain.
    pub complaint: u64,
}

impl EscalationCounts {
    fn count(&mut self, cause: EscalationCause) {
        self.total += 1;
        match cause {
            EscalationCause::AgentRequested => self.agent_requested += 1,
            EscalationCause::CustomerAskedForHuman => self.customer_asked_for_human += 1,
            EscalationCause::AgentDeactivated => self.agent_deactivated += 1,
            EscalationCause::AiTimeout => self.ai_timeout += 1,
            EscalationCause::Frustration => self.frustration += 1,
            EscalationCause::GoingInCircles => self.going_in_circles += 1,
            EscalationCause::AiCouldNotAnswer => self.ai_could_not_answer += 1,
            EscalationCause::Complaint => self.complaint += 1,
            // Counted in the total only, until a field for it is added.
            _ => {}
        }
    }
}

/// Time spent in each open state, summed over conversations, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StateTimes {
    /// Human-handled.
    pub human_handled: i64,
    /// AI-active.
    pub ai_active: i64,
    /// Reclaimed.
    pub reclaimed: i64,
}

/// Skills AI agents ran.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SkillCounts {
    /// All skills run.
    pub total: u64,
    /// Those that succeeded.
    pub succeeded: u64,
    /// Those that failed.
    pub failed: u64,
}

/// A distribution of durations in milliseconds: how many, the median, the 90th percentile and
/// the longest (nearest-rank percentiles; `None` when there is none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Percentiles {
    /// How many durations.
    pub count: u64,
    /// The median.
    pub p50_ms: Option<u64>,
    /// The 90th percentile.
    pub p90_ms: Option<u64>,
    /// The longest.
    pub max_ms: Option<u64>,
}

impl Percentiles {
    /// The percentiles of `values`.
    pub fn of(mut values: Vec<u64>) -> Percentiles {
        values.sort_unstable();
        let rank = |percent: usize| {
            let n = values.len();
            (n > 0).then(|| values[(percent * n).div_ceil(100).max(1) - 1])
        };
        Percentiles {
            count: values.len() as u64,
            p50_ms: rank(50),
            p90_ms: rank(90),
            max_ms: values.last().copied(),
        }
    }
}

/// One human's load: how many conversations they were given, and the most they handled at
/// once.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HumanLoad {
    /// The human.
    pub human_id: String,
    /// `human_assigned` events naming them.
    pub assignments: u64,
    /// The most open conversations they were assigned at the same time.
    pub max_concurrent: u64,
}

/// How the handoffs to one AI agent ended.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct AgentContainment {
    /// The AI agent.
    pub agent_id: String,
    /// Handoffs to it.
    pub handoffs: u64,
    /// Closed while it held the conversation.
    pub contained: u64,
    /// Escalated back to humans (any cause).
    pub escalated: u64,
    /// Reclaimed by a human.
    pub reclaimed: u64,
    /// `contained` as a share of the handoffs that ended in one of the three, from 0 to 1;
    /// `None` when none has ended.
    pub containment_rate: Option<f64>,
}

/// Figures over the whole log. Serialises to the JSON `handover audit stats --json` prints.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Stats {
    /// Events in the log.
    pub events: u64,
    /// AI agents registered.
    pub ai_agents_registered: u64,
    /// AI agents active at the end of the log.
    pub ai_agents_active: u64,
    /// Conversations opened.
    pub conversations_opened: u64,
    /// Conversations closed.
    pub conversations_closed: u64,
    /// Handoffs from humans to AI agents.
    pub handoffs: u64,
    /// Reclaims by humans.
    pub reclaims: u64,
    /// Escalations back to humans.
    pub escalations: EscalationCounts,
    /// Conversations closed while an AI agent held them (the AI contained them).
    pub closed_while_ai_active: u64,
    /// `closed_while_ai_active` as a share of closed conversations, from 0 to 1; `None` when
    /// none was closed.
    pub ai_containment_rate: Option<f64>,
    /// Time spent in each state, summed over conversations, in microseconds: from the event
    /// that began each period to the one that ended it, or to the close, or, for an open
    /// conversation, to the last event of the log.
    pub time_in_state_micros: StateTimes,
    /// Skills AI agents ran.
    pub skills: SkillCounts,
    /// Messages by author kind.
    pub messages: MessageCounts,
    /// Time from a wait an escalation began (`awaiting_human` with an escalation cause, its
    /// `since`) to the human assigned next (`human_assigned`, its `at`), in milliseconds.
    pub escalation_to_human_ms: Percentiles,
    /// `sla_warning` events.
    pub sla_warnings: u64,
    /// `sla_breached` events.
    pub sla_breaches: u64,
    /// `ai_reply_overdue` events: the AI agent did not reply in time.
    pub ai_reply_timeouts: u64,
    /// Each human assigned at least once, by id.
    pub human_load: Vec<HumanLoad>,
    /// Each AI agent handed at least one conversation, by id.
    pub ai_containment_by_agent: Vec<AgentContainment>,
    /// Escalations a rule of the escalation policy decided, by rule name (the others, written
    /// by an AI agent, the clock or the backend, are in `escalations` only).
    pub escalations_by_rule: BTreeMap<String, u64>,
    /// Skills that waited for a person's approval, and how the waits ended.
    pub approvals: ApprovalCounts,
    /// Handoffs a supervisor made although a rule refused them (`policy_overridden`).
    pub overrides: u64,
    /// `overrides` by the rule that refused.
    pub overrides_by_rule: BTreeMap<String, u64>,
    /// `ai_could_not_answer` events.
    pub ai_could_not_answer: u64,
}

impl Stats {
    /// Sums up a completed replay.
    pub fn from_replay(replay: &Replay) -> Stats {
        let log_end = replay.last_recorded_at().unwrap_or(RecordedAt(0));
        let mut stats = Stats {
            events: replay.events(),
            ai_agents_registered: replay.roster().all().count() as u64,
            ai_agents_active: replay.roster().active(None).count() as u64,
            ..Stats::default()
        };
        for conversation in replay.conversations() {
            stats.conversations_opened += u64::from(conversation.opened_at().is_some());
            stats.conversations_closed += u64::from(conversation.closed_at().is_some());
            stats.closed_while_ai_active += u64::from(conversation.closed_while_ai_active());
            stats.handoffs += conversation.handoffs();
            stats.reclaims += conversation.reclaims();
            for cause in conversation.escalations() {
                stats.escalations.count(*cause);
            }
            for rule in conversation.rule_escalations() {
                *stats
                    .escalations_by_rule
                    .entry(rule.as_str().to_owned())
                    .or_default() += 1;
            }
            for rule in conversation.overrides() {
                stats.overrides += 1;
                *stats
                    .overrides_by_rule
                    .entry(rule.as_str().to_owned())
                    .or_default() += 1;
            }
            stats.approvals.add(&conversation.approvals());
            stats.ai_could_not_answer += conversation.ai_misses();
            stats.skills.succeeded += conversation.skills_succeeded();
            stats.skills.failed += conversation.skills_failed();
            stats.messages.add(&conversation.messages());
            for period in conversation.periods() {
                let spent = period.duration_micros(log_end);
                let slot = match period.holder {
                    Holder::Human { .. } => &mut stats.time_in_state_micros.human_handled,
                    Holder::Ai { .. } => &mut stats.time_in_state_micros.ai_active,
                    Holder::Reclaimed { .. } => &mut stats.time_in_state_micros.reclaimed,
                };
                *slot = slot.saturating_add(spent);
            }
        }
        stats.skills.total = stats.skills.succeeded + stats.skills.failed;
        let mut waits = Vec::new();
        // Per human: assignments, and each change of load with its position.
        type Changes = Vec<(u64, i64)>;
        let mut loads: BTreeMap<&str, (u64, Changes)> = BTreeMap::new();
        let mut agents: BTreeMap<&str, AgentContainment> = BTreeMap::new();
        for conversation in replay.conversations() {
            waits.extend_from_slice(conversation.escalation_waits_ms());
            stats.sla_warnings += conversation.sla_warnings();
            stats.sla_breaches += conversation.sla_breaches();
            stats.ai_reply_timeouts += conversation.ai_replies_overdue();
            for human in conversation.assignments() {
                loads.entry(human.as_str()).or_default().0 += 1;
            }
            for span in conversation.human_spans() {
                let changes = &mut loads.entry(span.human.as_str()).or_default().1;
                changes.push((span.from, 1));
                if let Some(to) = span.to {
                    changes.push((to, -1));
                }
            }
            for period in conversation.periods() {
                if let Holder::Ai { agent_id, .. } = &period.holder {
                    agents.entry(agent_id.as_str()).or_default().handoffs += 1;
                }
            }
            for (agent_id, outcome) in conversation.ai_outcomes() {
                let agent = agents.entry(agent_id.as_str()).or_default();
                match outcome {
                    AiOutcome::Contained => agent.contained += 1,
                    AiOutcome::Escalated => agent.escalated += 1,
                    AiOutcome::Reclaimed => agent.reclaimed += 1,
                }
            }
        }
        stats.escalation_to_human_ms = Percentiles::of(waits);
        stats.human_load = loads
            .into_iter()
            .map(|(human_id, (assignments, mut changes))| {
                changes.sort_unstable();
                let (mut now, mut most) = (0i64, 0i64);
                for (_, change) in changes {
                    now += change;
                    most = most.max(now);
                }
                HumanLoad {
                    human_id: human_id.to_owned(),
                    assignments,
                    max_concurrent: most as u64,
                }
            })
            .collect();
        stats.ai_containment_by_agent = agents
            .into_iter()
            .map(|(agent_id, mut agent)| {
                agent.agent_id = agent_id.to_owned();
                let ended = agent.contained + agent.escalated + agent.reclaimed;
                agent.containment_rate = (ended > 0).then(|| agent.contained as f64 / ended as f64);
                agent
            })
            .collect();
        stats.ai_containment_rate = (stats.conversations_closed > 0)
            .then(|| stats.closed_while_ai_active as f64 / stats.conversations_closed as f64);
        stats
    }
}

/// Replays the log of `store` and sums it up.
///
/// Fails as [`Replay::from_store`] does: figures over a log that does not fold would be wrong.
pub fn stats(store: &SledStore) -> Result<Stats, AuditError> {
    stats_of(AuditLog::Sled(store))
}

/// [`stats`] over any [`AuditLog`]: the same figures for the same log, whether it is read from
/// a sled store or held in memory. Fails as [`Replay::from_log`] does.
pub fn stats_of(log: AuditLog<'_>) -> Result<Stats, AuditError> {
    Ok(Stats::from_replay(&Replay::from_log(log)?))
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let times = &self.time_in_state_micros;
        writeln!(f, "events                      {}", self.events)?;
        writeln!(
            f,
            "AI agents                   {} registered, {} active",
            self.ai_agents_registered, self.ai_agents_active
        )?;
        writeln!(
            f,
            "conversations               {} opened, {} closed",
            self.conversations_opened, self.conversations_closed
        )?;
        writeln!(f, "handoffs to AI              {}", self.handoffs)?;
        writeln!(f, "reclaims by humans          {}", self.reclaims)?;
        writeln!(
            f,
            "escalations to humans       {} (agent requested {}, customer asked for a human {}, agent deactivated {}, AI reply timeout {}, frustration {}, going in circles {}, AI could not answer {}, complaint {})",
            self.escalations.total,
            self.escalations.agent_requested,
            self.escalations.customer_asked_for_human,
            self.escalations.agent_deactivated,
            self.escalations.ai_timeout,
            self.escalations.frustration,
            self.escalations.going_in_circles,
            self.escalations.ai_could_not_answer,
            self.escalations.complaint
        )?;
        for (rule, count) in &self.escalations_by_rule {
            writeln!(f, "escalations by rule {rule:<8} {count}")?;
        }
        writeln!(
            f,
            "AI could not answer         {}",
            self.ai_could_not_answer
        )?;
        let approvals = &self.approvals;
        writeln!(
            f,
            "skill approvals             {} requested, {} granted, {} denied ({} by a person, {} by the clock)",
            approvals.requested,
            approvals.granted,
            approvals.denied,
            approvals.denied_by_person,
            approvals.denied_by_clock
        )?;
        writeln!(f, "policy overrides            {}", self.overrides)?;
        for (rule, count) in &self.overrides_by_rule {
            writeln!(f, "overrides of rule {rule:<10} {count}")?;
        }
        match self.ai_containment_rate {
            Some(rate) => writeln!(
                f,
                "AI containment              {} of {} closed conversations ({:.1}%) closed while AI-active",
                self.closed_while_ai_active,
                self.conversations_closed,
                rate * 100.0
            )?,
            None => writeln!(f, "AI containment              no conversation closed yet")?,
        }
        writeln!(
            f,
            "time human-handled          {} (h:mm:ss.mmm)",
            format_duration_hms(times.human_handled)
        )?;
        writeln!(
            f,
            "time AI-active              {}",
            format_duration_hms(times.ai_active)
        )?;
        writeln!(
            f,
            "time reclaimed              {}",
            format_duration_hms(times.reclaimed)
        )?;
        writeln!(
            f,
            "skills run                  {} ({} succeeded, {} failed)",
            self.skills.total, self.skills.succeeded, self.skills.failed
        )?;
        writeln!(
            f,
            "messages                    {} (customer {}, human {}, ai {})",
            self.messages.total(),
            self.messages.customer,
            self.messages.human,
            self.messages.ai
        )?;
        let waits = &self.escalation_to_human_ms;
        let ms = |value: Option<u64>| {
            format_duration_hms(
                value.map_or(0, |ms| i64::try_from(ms).unwrap_or(i64::MAX / 1000) * 1000),
            )
        };
        match waits.count {
            0 => writeln!(f, "escalation to a human       no escalation answered yet")?,
            count => writeln!(
                f,
                "escalation to a human       p50 {}, p90 {}, max {} over {count} waits",
                ms(waits.p50_ms),
                ms(waits.p90_ms),
                ms(waits.max_ms)
            )?,
        }
        writeln!(
            f,
            "SLA                         {} warnings, {} breaches",
            self.sla_warnings, self.sla_breaches
        )?;
        writeln!(f, "AI reply timeouts           {}", self.ai_reply_timeouts)?;
        for load in &self.human_load {
            writeln!(
                f,
                "load of human {:<14} {} assignments, at most {} at once",
                load.human_id, load.assignments, load.max_concurrent
            )?;
        }
        for agent in &self.ai_containment_by_agent {
            let rate = agent.containment_rate.map_or_else(
                || "none ended yet".to_owned(),
                |r| format!("{:.1}%", r * 100.0),
            );
            writeln!(
                f,
                "containment of AI agent {} {} of {} handoffs contained ({rate}), {} escalated, {} reclaimed",
                agent.agent_id, agent.contained, agent.handoffs, agent.escalated, agent.reclaimed
            )?;
        }
        Ok(())
    }
}
