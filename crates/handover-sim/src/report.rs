//! The report of a simulation: the [`Summary`] of what it did, as text for a person or as one
//! JSON object for tools.

use std::fmt;

use handover::{Author, ConversationEvent, EscalationCause, Event, SkillOutcome};
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
    /// What an acknowledged command survived: `durable`, `process-crash` or `buffered`.
    pub durability: &'static str,
    /// The seed of every random choice.
    pub seed: u64,
    /// AI agents the run attached.
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
}

impl Summary {
    /// Counts one event of this run.
    pub(crate) fn count(&mut self, event: &Event) {
        self.events += 1;
        let Event::Conversation(event) = event else {
            return;
        };
        match event {
            ConversationEvent::HandedOffToAi { .. } => self.handoffs += 1,
            ConversationEvent::Reclaimed { .. } => self.reclaims += 1,
            ConversationEvent::EscalatedToHuman { cause, .. } => {
                self.escalations += 1;
                match cause {
                    EscalationCause::CustomerAskedForHuman => self.escalations_customer_asked += 1,
                    EscalationCause::AgentRequested => self.escalations_agent_requested += 1,
                    _ => {}
                }
            }
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
            ConversationEvent::Opened { .. } => self.conversations += 1,
            #[allow(unreachable_patterns)]
            _ => {}
        }
    }
}

/// The summary for a person: what was simulated, the counts, and what durability cost.
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
        writeln!(
            f,
            "  elapsed           {:>8} ms  ({} events/s, {} syncs, acknowledged in {} us p50, {} us p99)",
            self.elapsed_ms, self.events_per_s, self.syncs, self.ack_p50_us, self.ack_p99_us
        )
    }
}
