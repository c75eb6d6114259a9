//! Figures over the whole log: conversations, handoffs, reclaims, escalations by cause, AI
//! containment, time spent in each state, skills run and messages by author kind.

use std::fmt;

use handover_core::EscalationCause;
use handover_sled::SledStore;
use handover_store::RecordedAt;
use serde::Serialize;

use crate::error::AuditError;
use crate::replay::{Holder, MessageCounts, Replay};
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
}

impl EscalationCounts {
    fn count(&mut self, cause: EscalationCause) {
        self.total += 1;
        match cause {
            EscalationCause::AgentRequested => self.agent_requested += 1,
            EscalationCause::CustomerAskedForHuman => self.customer_asked_for_human += 1,
            EscalationCause::AgentDeactivated => self.agent_deactivated += 1,
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
        stats.ai_containment_rate = (stats.conversations_closed > 0)
            .then(|| stats.closed_while_ai_active as f64 / stats.conversations_closed as f64);
        stats
    }
}

/// Replays the log of `store` and sums it up.
///
/// Fails as [`Replay::from_store`] does: figures over a log that does not fold would be wrong.
pub fn stats(store: &SledStore) -> Result<Stats, AuditError> {
    Ok(Stats::from_replay(&Replay::from_store(store)?))
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
            "escalations to humans       {} (agent requested {}, customer asked for a human {}, agent deactivated {})",
            self.escalations.total,
            self.escalations.agent_requested,
            self.escalations.customer_asked_for_human,
            self.escalations.agent_deactivated
        )?;
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
        )
    }
}
