//! The report of a simulation: the [`Summary`] of what it did, as text for a person or as one
//! JSON object for tools.

use std::collections::BTreeMap;
use std::fmt;

use handover::{
    Author, ConversationEvent, EscalationCause, Event, SkillOutcome, Timestamp, WaitCause,
};
use serde::Serialize;

/// What a simulation did. Every count depends only on the options (and on a fresh data
/// directory, the same seed gives the same counts); `elapsed_ms`, `events_per_s`, `syncs` and
/// the latencies depend on the machine.
///
/// Its JSON form (`serde_json::to_string`) is one object with these fields, the contract of
/// `handover simulate --json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Summary {
    /// Conversations opened (and, unless interrupted, closed) by this run.
    pub conversations: u64,
    /// Events this run recorded: its conversations' events and its AI agents' registrations
    /// and activations.
    pub events: u64,
    /// Conversations handed to an AI agent.
    pub handoffs: u64,
    /// Handoffs the policy refused (complaints and negotiations stay with humans).
    pub refused_handoffs: u64,
    /// Conversations a human took back from an AI agent.
    pub reclaims: u64,
    /// Conversations that went back from an AI agent to humans, for any cause.
    pub escalations: u64,
    /// Escalations because the customer asked for a human.
    pub escalations_customer_asked: u64,
    /// Escalations the AI agent asked for (it could not answer).
    pub escalations_agent_requested: u64,
    /// Messages the AI agents wrote.
    pub ai_messages: u64,
    /// Messages the customers wrote.
    pub customer_messages: u64,
    /// Messages the human agents wrote.
    pub human_messages: u64,
    /// Skills the AI agents recorded.
    pub skills: u64,
    /// Skills whose outcome was a failure.
    pub skills_failed: u64,
    /// Conversations closed.
    pub closed: u64,
    /// Conversations an AI agent closed.
    pub closed_by_ai: u64,
    /// Conversations a customer closed.
    pub closed_by_customer: u64,
    /// Conversations a human agent closed.
    pub closed_by_human: u64,
    /// What an acknowledged command survived: `durable`, `process-crash` or `buffered`; on a
    /// database, `database` (a commit, as durable as the server makes it).
    pub durability: &'static str,
    /// The seed of every random choice.
    pub seed: u64,
    /// FAQ agents the run attached (each tenant also has a slow agent, not counted here).
    pub ai_agents: u64,
    /// Human agents the run staffed.
    pub humans: u64,
    /// Conversations driven at the same time.
    pub concurrency: u64,
    /// Milliseconds from start-up to the end of the count.
    pub elapsed_ms: u64,
    /// Events this run recorded per second of running (start-up to shutdown).
    pub events_per_s: u64,
    /// Sync calls the store made to make this run's events durable.
    pub syncs: u64,
    /// Command-to-acknowledgement latency of every command, AI agents' included: the median,
    /// in microseconds.
    pub ack_p50_us: u64,
    /// The same, 99th percentile.
    pub ack_p99_us: u64,
    /// The data directory already held a log, and this run added to it.
    pub appended: bool,
    /// The run was stopped (Ctrl-C) before every conversation was driven: the counts are those
    /// of the conversations it finished.
    pub interrupted: bool,
    /// Times a conversation started waiting for a human in a queue (opened, escalated,
    /// transferred to a team, or left by a human who signed out).
    pub awaiting: u64,
    /// Times a conversation was given to a human (by the router, a transfer or a supervisor).
    pub assignments: u64,
    /// Transfers to a team's queue or to another human.
    pub transfers: u64,
    /// Waits that passed their warning threshold.
    pub sla_warnings: u64,
    /// Waits that passed their breach threshold.
    pub sla_breaches: u64,
    /// Escalations because the AI agent did not reply within its deadline (`ai_timeout`).
    pub ai_timeouts: u64,
    /// Waits for a human (from `awaiting_human` to the `human_assigned` that ended it), in
    /// simulated milliseconds: the median.
    pub wait_p50_ms: u64,
    /// The same, 90th percentile.
    pub wait_p90_ms: u64,
    /// Tenants staffed.
    pub tenants: u64,
    /// Teams, over every tenant.
    pub teams: u64,
    /// Supervisors (one per tenant).
    pub supervisors: u64,
    /// Internal notes, for staff or for the AI agent.
    pub whispers: u64,
    /// Times "needs help" was raised.
    pub flags: u64,
    /// Times a supervisor lowered it.
    pub flags_lowered: u64,
    /// Presence changes of humans (signing in, breaks, signing out).
    pub presence_changes: u64,
    /// Waits that began because the human handling the conversation signed out.
    pub requeued: u64,
    /// The simulated shift's length as configured, in minutes.
    pub shift_minutes: u64,
    /// Simulated time the run covered, in milliseconds.
    pub simulated_ms: u64,
    /// Node processes the run spread over (1 for a run in this process).
    pub nodes: u64,
    /// Nodes killed (`SIGKILL`) by chaos.
    pub kills: u64,
    /// Times every shard a killed node held was leased again to a live node.
    pub takeovers: u64,
    /// From a kill to its takeover, in milliseconds of real time: the median.
    pub takeover_p50_ms: u64,
    /// The same, the longest.
    pub takeover_max_ms: u64,
    /// Conversations a killed node had started and not finished: closed by their customers
    /// when a new node took its place, and not counted above.
    pub interrupted_by_chaos: u64,
    /// Conversations whose AI agent did not do what the script expects after a takeover (an
    /// agent's memory of a conversation stays on the node where it ran, so on the new owner
    /// it may answer where it would have escalated), or not within 30 s: closed by their
    /// customers, and not counted above.
    pub disturbed_by_chaos: u64,
    /// The escalation policy's name.
    pub policy: String,
    /// Its version (16 hexadecimal digits of its digest).
    pub policy_version: String,
    /// Escalations a policy rule decided, by the rule's name.
    pub escalations_by_rule: BTreeMap<String, u64>,
    /// Every escalation, by its cause (`customer_asked_for_human`, `frustration`, ...).
    pub escalations_by_cause: BTreeMap<String, u64>,
    /// Skills that waited for a person's approval.
    pub approvals_requested: u64,
    /// Approvals a person gave.
    pub approvals_approved: u64,
    /// Approvals denied, by a person or by the clock at the deadline.
    pub approvals_denied: u64,
    /// Of those, denied by the clock because nobody decided before the deadline.
    pub approvals_lapsed: u64,
    /// Handoffs a supervisor made against a rule's refusal.
    pub overrides: u64,
}

/// The `p`th percentile (nearest rank) of `sorted`; 0 when empty.
pub(crate) fn percentile(sorted: &[u64], p: u64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let n = sorted.len() as u64;
    let rank = (p * n).div_ceil(100).clamp(1, n);
    sorted[usize::try_from(rank - 1).unwrap_or(0)]
}

impl Summary {
    /// Counts the events of one conversation of this run, in order, adding each wait for a
    /// human that an assignment ended to `waits` (simulated milliseconds).
    pub(crate) fn count_conversation<'a>(
        &mut self,
        events: impl IntoIterator<Item = &'a Event>,
        waits: &mut Vec<u64>,
    ) {
        let mut since: Option<Timestamp> = None;
        for event in events {
            self.count(event);
            match event {
                Event::Conversation(ConversationEvent::AwaitingHuman { since: at, .. }) => {
                    since = Some(*at);
                }
                Event::Conversation(ConversationEvent::HumanAssigned { at, .. }) => {
                    if let Some(since) = since.take() {
                        waits.push(at.millis_since(since));
                    }
                }
                Event::Conversation(ConversationEvent::Closed { .. }) => since = None,
                _ => {}
            }
        }
    }

    /// Counts one event of this run.
    pub(crate) fn count(&mut self, event: &Event) {
        self.events += 1;
        let Event::Conversation(event) = event else {
            return;
        };
        match event {
            ConversationEvent::HandedOffToAi { .. } => self.handoffs += 1,
            ConversationEvent::Reclaimed { .. } => self.reclaims += 1,
            ConversationEvent::EscalatedToHuman { cause, .. } => self.escalated(*cause, None),
            ConversationEvent::EscalatedByRule { cause, rule, .. } => {
                self.escalated(*cause, Some(rule.as_str()))
            }
            ConversationEvent::SkillApprovalRequested { .. } => self.approvals_requested += 1,
            ConversationEvent::SkillApproved { .. } => self.approvals_approved += 1,
            ConversationEvent::SkillDenied { by, .. } => {
                self.approvals_denied += 1;
                if matches!(by, Author::System(_)) {
                    self.approvals_lapsed += 1;
                }
            }
            ConversationEvent::PolicyOverridden { .. } => self.overrides += 1,
            ConversationEvent::MessagePosted { author, .. } => match author {
                Author::Ai(_) => self.ai_messages += 1,
                Author::Customer(_) => self.customer_messages += 1,
                Author::Human(_) => self.human_messages += 1,
                #[allow(unreachable_patterns)]
                _ => {}
            },
            ConversationEvent::AiActionRecorded { skill, .. } => {
                self.skills += 1;
                if matches!(skill.outcome, SkillOutcome::Failed(_)) {
                    self.skills_failed += 1;
                }
            }
            ConversationEvent::Closed { by, .. } => {
                self.closed += 1;
                match by {
                    Author::Ai(_) => self.closed_by_ai += 1,
                    Author::Customer(_) => self.closed_by_customer += 1,
                    Author::Human(_) => self.closed_by_human += 1,
                    #[allow(unreachable_patterns)]
                    _ => {}
                }
            }
            ConversationEvent::Opened { .. } | ConversationEvent::Started { .. } => {
                self.conversations += 1
            }
            ConversationEvent::AwaitingHuman { cause, .. } => {
                self.awaiting += 1;
                if *cause == WaitCause::HumanOffline {
                    self.requeued += 1;
                }
            }
            ConversationEvent::HumanAssigned { .. } => self.assignments += 1,
            ConversationEvent::Transferred { .. } => self.transfers += 1,
            ConversationEvent::SlaWarning { .. } => self.sla_warnings += 1,
            ConversationEvent::SlaBreached { .. } => self.sla_breaches += 1,
            ConversationEvent::InternalNote { .. } => self.whispers += 1,
            ConversationEvent::FlagRaised { .. } => self.flags += 1,
            ConversationEvent::FlagLowered { .. } => self.flags_lowered += 1,
            #[allow(unreachable_patterns)]
            _ => {}
        }
    }
}

/// The summary for a person: what was simulated, the counts, and what durability cost.
impl Summary {
    /// Counts one escalation, by its cause and, when a rule decided it, by the rule.
    fn escalated(&mut self, cause: EscalationCause, rule: Option<&str>) {
        self.escalations += 1;
        match cause {
            EscalationCause::CustomerAskedForHuman => self.escalations_customer_asked += 1,
            EscalationCause::AgentRequested => self.escalations_agent_requested += 1,
            EscalationCause::AiTimeout => self.ai_timeouts += 1,
            _ => {}
        }
        *self
            .escalations_by_cause
            .entry(cause.as_str().to_owned())
            .or_default() += 1;
        if let Some(rule) = rule {
            *self.escalations_by_rule.entry(rule.to_owned()).or_default() += 1;
        }
    }
}

/// `name 3, other 1`, or `none`.
fn counts(map: &BTreeMap<String, u64>) -> String {
    if map.is_empty() {
        return "none".to_owned();
    }
    map.iter()
        .map(|(name, n)| format!("{name} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.interrupted {
            "interrupted after"
        } else {
            "simulated"
        };
        writeln!(
            f,
            "{verb} {} conversations with {} AI agents and {} humans (seed {}, durability {}, {} at a time)",
            self.conversations,
            self.ai_agents,
            self.humans,
            self.seed,
            self.durability,
            self.concurrency,
        )?;
        if self.appended {
            writeln!(
                f,
                "  appended to the log already in the data directory (the counts are this run's)"
            )?;
        }
        writeln!(
            f,
            "  policy            {} (version {})",
            self.policy, self.policy_version
        )?;
        writeln!(
            f,
            "  floor             {} tenants, {} teams, {} supervisors; a shift of {} min, {} min simulated",
            self.tenants,
            self.teams,
            self.supervisors,
            self.shift_minutes,
            self.simulated_ms / 60_000
        )?;
        writeln!(f, "  events            {:>8}", self.events)?;
        writeln!(
            f,
            "  handoffs          {:>8}  (refused by the policy: {})",
            self.handoffs, self.refused_handoffs
        )?;
        writeln!(f, "  reclaims          {:>8}", self.reclaims)?;
        writeln!(
            f,
            "  escalations       {:>8}  (customer asked for a human: {}, AI agent gave up: {})",
            self.escalations, self.escalations_customer_asked, self.escalations_agent_requested
        )?;
        writeln!(
            f,
            "    by rule         {}",
            counts(&self.escalations_by_rule)
        )?;
        writeln!(
            f,
            "    by cause        {}",
            counts(&self.escalations_by_cause)
        )?;
        writeln!(
            f,
            "  approvals         {:>8}  requested (approved: {}, denied: {}, of which lapsed: {})",
            self.approvals_requested,
            self.approvals_approved,
            self.approvals_denied,
            self.approvals_lapsed
        )?;
        writeln!(
            f,
            "  overrides         {:>8}  (handoffs a supervisor made against a rule)",
            self.overrides
        )?;
        writeln!(
            f,
            "  AI timeouts       {:>8}  (the AI agent missed its reply deadline)",
            self.ai_timeouts
        )?;
        writeln!(
            f,
            "  awaiting          {:>8}  (humans signed out on: {}; waited p50 {} ms, p90 {} ms)",
            self.awaiting, self.requeued, self.wait_p50_ms, self.wait_p90_ms
        )?;
        writeln!(f, "  assignments       {:>8}", self.assignments)?;
        writeln!(f, "  transfers         {:>8}", self.transfers)?;
        writeln!(
            f,
            "  SLA               {:>8}  warnings, {} breaches",
            self.sla_warnings, self.sla_breaches
        )?;
        writeln!(f, "  whispers          {:>8}", self.whispers)?;
        writeln!(
            f,
            "  flags             {:>8}  (lowered: {})",
            self.flags, self.flags_lowered
        )?;
        writeln!(f, "  presence changes  {:>8}", self.presence_changes)?;
        writeln!(
            f,
            "  messages          {:>8}  (customers: {}, humans: {}, AI agents: {})",
            self.customer_messages + self.human_messages + self.ai_messages,
            self.customer_messages,
            self.human_messages,
            self.ai_messages
        )?;
        writeln!(
            f,
            "  skills            {:>8}  (failed: {})",
            self.skills, self.skills_failed
        )?;
        writeln!(
            f,
            "  closed            {:>8}  (by AI agents: {}, by customers: {}, by humans: {})",
            self.closed, self.closed_by_ai, self.closed_by_customer, self.closed_by_human
        )?;
        if self.nodes > 1 || self.kills > 0 {
            writeln!(
                f,
                "  nodes             {:>8}  (killed: {}, taken over: {} in {} ms p50, {} ms max; conversations interrupted: {}, disturbed: {})",
                self.nodes,
                self.kills,
                self.takeovers,
                self.takeover_p50_ms,
                self.takeover_max_ms,
                self.interrupted_by_chaos,
                self.disturbed_by_chaos
            )?;
        }
        writeln!(
            f,
            "  elapsed           {:>8} ms  ({} events/s, {} syncs, acknowledged in {} us p50, {} us p99)",
            self.elapsed_ms, self.events_per_s, self.syncs, self.ack_p50_us, self.ack_p99_us
        )
    }
}
