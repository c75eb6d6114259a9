//! One conversation's story for a person: who handled it, from when to when, and why (opening,
//! each handoff with its human and reason, skills run, reclaims, escalations with their cause,
//! the close), with the time spent and the messages written in each period.

use std::fmt;

use handover_core::{
    ConversationEvent, ConversationId, EscalationCause, NoteAudience, SkillOutcome, StreamId,
    TeamId, TransferTarget, WaitCause,
};
use handover_sled::SledStore;
use handover_store::{RecordedAt, RecordedEvent};

use crate::error::AuditError;
use crate::fault::Fault;
use crate::log::AuditLog;
use crate::replay::{describe_author, ConversationHistory, Holder, Period};
use crate::timefmt::{format_duration, format_recorded_at};

/// Longest excerpt of skill input or outcome shown, in characters.
const EXCERPT_CHARS_MAX: usize = 80;

/// One event of the story (every event but messages, which are counted per period).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimelineEntry {
    /// Its global position.
    pub position: u64,
    /// Its seq in the conversation.
    pub seq: u64,
    /// When it was recorded.
    pub recorded_at: RecordedAt,
    /// What happened.
    pub event: ConversationEvent,
}

/// One conversation's story: its entries and periods. `Display` writes it for a person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeline {
    history: ConversationHistory,
    entries: Vec<TimelineEntry>,
    log_end: RecordedAt,
}

impl Timeline {
    /// Builds the story from the conversation's records, in seq order. `log_end` is the
    /// recorded time of the last event of the whole log: an open conversation's current
    /// period is counted until then.
    ///
    /// Fails at the first record that does not fold (see [`ConversationHistory::apply`]).
    pub fn from_records(
        id: ConversationId,
        records: &[RecordedEvent],
        log_end: RecordedAt,
    ) -> Result<Timeline, Fault> {
        let mut history = ConversationHistory::new(id);
        let mut entries = Vec::new();
        for record in records {
            history.apply(record)?;
            if let handover_core::Event::Conversation(event) = &record.event {
                if !matches!(event, ConversationEvent::MessagePosted { .. }) {
                    entries.push(TimelineEntry {
                        position: record.position,
                        seq: record.seq,
                        recorded_at: record.recorded_at,
                        event: event.clone(),
                    });
                }
            }
        }
        let log_end = history
            .last_event_at()
            .map_or(log_end, |last| last.max(log_end));
        Ok(Timeline {
            history,
            entries,
            log_end,
        })
    }

    /// The conversation's id.
    pub fn id(&self) -> ConversationId {
        self.history.id()
    }

    /// The conversation as the replay of its stream sees it: state, periods, counts.
    pub fn history(&self) -> &ConversationHistory {
        &self.history
    }

    /// The story's events, in order (messages are counted per period instead).
    pub fn entries(&self) -> &[TimelineEntry] {
        &self.entries
    }

    /// Its periods, in order.
    pub fn periods(&self) -> &[Period] {
        self.history.periods()
    }

    /// Where a period still going on is counted until: the last event of the log.
    pub fn log_end(&self) -> RecordedAt {
        self.log_end
    }
}

/// Reads one conversation's stream and tells its story.
///
/// Fails with [`AuditError::UnknownConversation`] when the log does not hold it, and with
/// [`AuditError::Unsound`] when its stream does not fold.
pub fn timeline(store: &SledStore, id: ConversationId) -> Result<Timeline, AuditError> {
    timeline_of(AuditLog::Sled(store), id)
}

/// [`timeline`] over any [`AuditLog`]: the same story for the same log, whether it is read
/// from a sled store or held in memory.
pub fn timeline_of(log: AuditLog<'_>, id: ConversationId) -> Result<Timeline, AuditError> {
    let records = log.read_stream(&StreamId::Conversation(id))?;
    if records.is_empty() {
        return Err(AuditError::UnknownConversation(id));
    }
    // The last event of the log, so an open conversation's last period runs until then.
    let log_end = log.last_recorded_at()?;
    Ok(Timeline::from_records(id, &records, log_end)?)
}

fn time(at: RecordedAt) -> String {
    format_recorded_at(at).unwrap_or_else(|| format!("@{}us", at.as_micros()))
}

/// Text on one line, cut to [`EXCERPT_CHARS_MAX`] characters.
fn excerpt(text: &str) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= EXCERPT_CHARS_MAX {
        flat
    } else {
        let cut: String = flat.chars().take(EXCERPT_CHARS_MAX - 1).collect();
        format!("{cut}…")
    }
}

fn reason_text(reason: Option<&handover_core::Reason>) -> String {
    match reason {
        Some(reason) => format!("; reason: {:?}", reason.as_str()),
        None => "; no reason given".to_owned(),
    }
}

fn describe_entry(event: &ConversationEvent) -> String {
    match event {
        ConversationEvent::Opened {
            customer,
            channel,
            human,
        } => match human {
            Some(human) => {
                format!("opened for customer {customer} on {channel}, assigned to human {human}")
            }
            None => format!("opened for customer {customer} on {channel}, not assigned to a human"),
        },
        ConversationEvent::HandedOffToAi {
            agent_id,
            agent_name,
            by_human,
            reason,
        } => format!(
            "handed off by human {by_human} to AI agent {:?} ({agent_id}){}",
            agent_name.as_str(),
            reason_text(reason.as_ref())
        ),
        ConversationEvent::AiActionRecorded { agent_id, skill } => {
            let (status, detail) = match &skill.outcome {
                SkillOutcome::Succeeded(detail) => ("succeeded", detail),
                SkillOutcome::Failed(detail) => ("failed", detail),
            };
            format!(
                "AI agent {agent_id} ran skill {} with input {}: {status}{}",
                skill.name,
                excerpt(skill.input.as_str()),
                if detail.as_str().is_empty() {
                    String::new()
                } else {
                    format!(", {}", excerpt(detail.as_str()))
                }
            )
        }
        ConversationEvent::Reclaimed {
            agent_id,
            by_human,
            reason,
        } => format!(
            "reclaimed by human {by_human} from AI agent {agent_id}{}",
            reason_text(reason.as_ref())
        ),
        ConversationEvent::EscalatedToHuman {
            agent_id,
            reason,
            cause,
        } => format!(
            "escalated to humans by AI agent {agent_id} (cause {}: {}); reason: {:?}",
            cause.as_str(),
            describe_cause(*cause),
            reason.as_str()
        ),
        ConversationEvent::EscalatedByRule {
            agent_id,
            reason,
            cause,
            rule,
            policy_version,
            ..
        } => format!(
            "escalated to humans from AI agent {agent_id} by rule {rule} of policy {policy_version} (cause {}: {}); reason: {:?}",
            cause.as_str(),
            describe_cause(*cause),
            reason.as_str()
        ),
        ConversationEvent::AiCouldNotAnswer {
            agent_id, reason, ..
        } => format!(
            "AI agent {agent_id} could not answer{}",
            reason_text(reason.as_ref())
        ),
        ConversationEvent::PolicyOverridden {
            by,
            rule,
            policy_version,
            refusal,
            ..
        } => format!(
            "supervisor {by} overrode rule {rule} of policy {policy_version}, which refused the handoff: {:?}",
            refusal.as_str()
        ),
        ConversationEvent::SkillApprovalRequested {
            agent_id,
            name,
            input,
            rule,
            deadline_ms,
            ..
        } => format!(
            "AI agent {agent_id} asked to run skill {name} with input {}: waits for approval (rule {rule}, within {})",
            excerpt(input.as_str()),
            millis(*deadline_ms)
        ),
        ConversationEvent::SkillApproved {
            agent_id, name, by, ..
        } => format!(
            "skill {name} of AI agent {agent_id} approved by {}",
            describe_author(by)
        ),
        ConversationEvent::SkillDenied {
            agent_id,
            name,
            by,
            reason,
            ..
        } => format!(
            "skill {name} of AI agent {agent_id} denied by {}; reason: {:?}",
            describe_author(by),
            reason.as_str()
        ),
        ConversationEvent::ContextShared { by, context, .. } => format!(
            "context shared by {}: {}",
            describe_author(by),
            describe_context(context)
        ),
        ConversationEvent::Closed { by, reason } => format!(
            "closed by {}{}",
            describe_author(by),
            reason_text(reason.as_ref())
        ),
        ConversationEvent::MessagePosted { author, .. } => {
            format!("message by {}", describe_author(author))
        }
        ConversationEvent::Started {
            tenant,
            customer,
            channel,
            team,
            language,
            ..
        } => format!(
            "opened for customer {customer} on {channel} in tenant {tenant}, queue {}{}",
            queue(team.as_ref()),
            match language {
                Some(language) => format!(", language {language}"),
                None => String::new(),
            }
        ),
        ConversationEvent::AwaitingHuman { team, cause, .. } => format!(
            "waiting for a human in {} (cause {}: {})",
            queue(team.as_ref()),
            cause.as_str(),
            describe_wait(*cause)
        ),
        ConversationEvent::HumanAssigned {
            human_id,
            name,
            team,
            by,
            ..
        } => format!(
            "assigned to human {human_id} ({:?}) by {}{}",
            name.as_str(),
            describe_author(by),
            match team {
                Some(team) => format!(", from the queue of team {team}"),
                None => String::new(),
            }
        ),
        ConversationEvent::Transferred { to, reason, by, .. } => format!(
            "transferred by {} to {}; reason: {:?}",
            describe_author(by),
            match to {
                TransferTarget::Human(human) => format!("human {human}"),
                TransferTarget::Team(team) => format!("the queue of team {team}"),
                _ => "another destination".to_owned(),
            },
            reason.as_str()
        ),
        ConversationEvent::SlaWarning {
            team,
            waited_ms,
            threshold_ms,
            ..
        } => format!(
            "SLA warning in {}: waited {}, past the warning threshold of {}",
            queue(team.as_ref()),
            millis(*waited_ms),
            millis(*threshold_ms)
        ),
        ConversationEvent::SlaBreached {
            team,
            waited_ms,
            threshold_ms,
            ..
        } => format!(
            "SLA breached in {}: waited {}, past the breach threshold of {}",
            queue(team.as_ref()),
            millis(*waited_ms),
            millis(*threshold_ms)
        ),
        ConversationEvent::AiReplyOverdue {
            agent_id,
            waited_ms,
            deadline_ms,
            ..
        } => format!(
            "AI agent {agent_id} did not reply in time: the customer waited {}, the deadline being {}",
            millis(*waited_ms),
            millis(*deadline_ms)
        ),
        ConversationEvent::CustomerNotice {
            kind,
            text,
            language,
        } => format!(
            "notice to the customer ({}, {language}): {:?}",
            kind.as_str(),
            excerpt(text.as_str())
        ),
        ConversationEvent::InternalNote { to, text, by, .. } => format!(
            "internal note for {} by {} (internal, not shown to the customer): {:?}",
            match to {
                NoteAudience::Ai => "the AI agent",
                _ => "staff",
            },
            describe_author(by),
            excerpt(text.as_str())
        ),
        ConversationEvent::FlagRaised { by, .. } => {
            format!("needs-help flag raised by {}", describe_author(by))
        }
        ConversationEvent::FlagLowered { by, .. } => {
            format!("needs-help flag lowered by {}", describe_author(by))
        }
        other => other.type_name().replace('_', " "),
    }
}

/// A context in a few words: its topic, summary and variables.
fn describe_context(context: &handover_core::context::Context) -> String {
    let mut parts = Vec::new();
    if let Some(topic) = context.topic() {
        parts.push(format!("topic {topic}"));
    }
    if let Some(summary) = context.summary() {
        parts.push(format!("summary {:?}", excerpt(summary.as_str())));
    }
    if !context.variables().is_empty() {
        let variables: Vec<String> = context
            .variables()
            .iter()
            .map(|(name, value)| format!("{}={:?}", name.as_str(), excerpt(value.as_str())))
            .collect();
        parts.push(format!("variables {}", variables.join(", ")));
    }
    if parts.is_empty() {
        "nothing".to_owned()
    } else {
        parts.join("; ")
    }
}

/// `the queue of team billing` or `the general queue`.
fn queue(team: Option<&TeamId>) -> String {
    match team {
        Some(team) => format!("the queue of team {team}"),
        None => "the general queue".to_owned(),
    }
}

fn millis(ms: u64) -> String {
    format_duration(
        i64::try_from(ms)
            .unwrap_or(i64::MAX / 1000)
            .saturating_mul(1000),
    )
}

fn describe_wait(cause: WaitCause) -> &'static str {
    match cause {
        WaitCause::Opened => "opened without a human",
        WaitCause::Escalated(cause) => describe_cause(cause),
        WaitCause::HumanOffline => "the human handling it went offline",
        WaitCause::HumanRemoved => "the human handling it was removed",
        WaitCause::Transferred => "transferred to this queue",
        _ => "another cause",
    }
}

fn describe_cause(cause: EscalationCause) -> &'static str {
    match cause {
        EscalationCause::AgentRequested => "the AI agent asked for a human",
        EscalationCause::CustomerAskedForHuman => "the customer asked for a human",
        EscalationCause::AgentDeactivated => "the AI agent was deactivated",
        EscalationCause::AiTimeout => "the AI agent did not reply in time",
        EscalationCause::Frustration => "the customer sounded frustrated",
        EscalationCause::GoingInCircles => "the customer kept asking the same question",
        EscalationCause::AiCouldNotAnswer => "the AI agent could not answer",
        EscalationCause::Complaint => "the customer complained",
        _ => "another cause",
    }
}

fn describe_holder(holder: &Holder) -> String {
    match holder {
        Holder::Human { human: Some(human) } => format!("human-handled by {human}"),
        Holder::Human { human: None } => {
            "human-handled (no human assigned: waiting in a queue, or opened without one)"
                .to_owned()
        }
        Holder::Ai {
            agent_id,
            agent_name,
            by_human,
        } => format!(
            "ai-active with {:?} ({agent_id}), handed off by {by_human}",
            agent_name.as_str()
        ),
        Holder::Reclaimed { by } => format!("reclaimed by {by}"),
    }
}

impl fmt::Display for Timeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let history = &self.history;
        writeln!(f, "Conversation {}", history.id())?;
        if let handover_core::Conversation::Open(open) | handover_core::Conversation::Closed(open) =
            history.state()
        {
            writeln!(f, "  customer {} on {}", open.customer, open.channel)?;
        }
        writeln!(f, "  status: {}", history.status().label())?;
        if let Some(opened) = history.opened_at() {
            match history.closed_at() {
                Some(closed) => writeln!(
                    f,
                    "  opened {}, closed {} after {}",
                    time(opened),
                    time(closed),
                    format_duration(closed.as_micros().saturating_sub(opened.as_micros()))
                )?,
                None => writeln!(
                    f,
                    "  opened {}, still open at the last event of the log, {} ({} so far)",
                    time(opened),
                    time(self.log_end),
                    format_duration(self.log_end.as_micros().saturating_sub(opened.as_micros()))
                )?,
            }
        }
        let messages = history.messages();
        writeln!(
            f,
            "  {} events; messages {} (customer {}, human {}, ai {}); handoffs {}, reclaims {}, escalations {}, skills run {}",
            history.version(),
            messages.total(),
            messages.customer,
            messages.human,
            messages.ai,
            history.handoffs(),
            history.reclaims(),
            history.escalations().len(),
            history.skills_succeeded() + history.skills_failed(),
        )?;
        writeln!(f)?;
        writeln!(f, "What happened")?;
        for entry in &self.entries {
            writeln!(
                f,
                "  {}  #{:<4} {}",
                time(entry.recorded_at),
                entry.seq,
                describe_entry(&entry.event)
            )?;
        }
        writeln!(f)?;
        writeln!(f, "Who handled it")?;
        for (number, period) in (1..).zip(self.periods()) {
            let until = match period.ended_at {
                Some(end) => time(end),
                None => format!(
                    "{}, the last event of the log (still going on)",
                    time(self.log_end)
                ),
            };
            writeln!(
                f,
                "  {number}. {}\n     from {} to {until}: {}; messages {} (customer {}, human {}, ai {}); skills run {}",
                describe_holder(&period.holder),
                time(period.began_at),
                format_duration(period.duration_micros(self.log_end)),
                period.messages.total(),
                period.messages.customer,
                period.messages.human,
                period.messages.ai,
                period.skills_run,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_one_line_and_bounded() {
        assert_eq!(excerpt("a\nb"), "a b");
        let long = "x".repeat(200);
        let cut = excerpt(&long);
        assert_eq!(cut.chars().count(), EXCERPT_CHARS_MAX);
        assert!(cut.ends_with('…'));
    }
}
