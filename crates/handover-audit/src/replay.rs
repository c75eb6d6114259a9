//! The replay: the whole log folded in global order, with the runtime's own `evolve`, into one
//! [`ConversationHistory`] per conversation plus the AI-agent roster and the directory of
//! humans. Every other part of the
//! audit reads these projections, and verification is this fold plus the index checks.

use std::collections::{BTreeMap, HashMap};

use handover_core::conversation::{self, Conversation, Handler, OpenConversation};
use handover_core::rules::RuleName;
use handover_core::{
    AgentName, AiAgentId, Author, Concern, ConversationEvent, ConversationId, Directory,
    EscalationCause, Event, HumanId, Loads, Roster, SkillOutcome, Status, StreamId, SystemActor,
    TenantId, Timestamp, WaitCause,
};
use handover_sled::SledStore;
use handover_store::{EventStore as _, RecordedAt, RecordedEvent};

use crate::error::AuditError;
use crate::fault::{Fault, FaultKind, Location};
use crate::log::AuditLog;
use crate::progress::{NoProgress, Progress, Ticker};
use crate::timefmt::{format_recorded_at, is_writable};

mod authority;
mod by_streams;

pub use authority::{AiOutcome, HumanSpan};

/// How many messages each kind of author wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct MessageCounts {
    /// Written by the customer.
    pub customer: u64,
    /// Written by human agents.
    pub human: u64,
    /// Written by AI agents.
    pub ai: u64,
}

impl MessageCounts {
    /// All messages.
    pub fn total(&self) -> u64 {
        self.customer + self.human + self.ai
    }

    pub(crate) fn count(&mut self, author: &Author) {
        match author {
            Author::Customer(_) => self.customer += 1,
            Author::Human(_) => self.human += 1,
            Author::Ai(_) => self.ai += 1,
            // A kind of author this version does not know is counted by none.
            _ => {}
        }
    }

    pub(crate) fn add(&mut self, other: &MessageCounts) {
        self.customer += other.customer;
        self.human += other.human;
        self.ai += other.ai;
    }
}

/// Who held a conversation during one [`Period`]: the three open states of the manual.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Holder {
    /// Human-handled: just opened, escalated back by an AI agent, assigned to a human, or
    /// waiting in a queue.
    Human {
        /// The human in charge, if one was assigned (at open, by an assignment, or by a
        /// reclaim); `None` while it waits in a queue.
        human: Option<HumanId>,
    },
    /// AI-active: an AI agent answered on its own.
    Ai {
        /// The AI agent.
        agent_id: AiAgentId,
        /// Its display name, as recorded by the handoff.
        agent_name: AgentName,
        /// The human who handed it off.
        by_human: HumanId,
    },
    /// Reclaimed: a human took it back from an AI agent.
    Reclaimed {
        /// The human who reclaimed it.
        by: HumanId,
    },
}

impl Holder {
    /// `human-handled`, `ai-active` or `reclaimed`, as [`Status::label`] names them.
    pub fn label(&self) -> &'static str {
        match self {
            Holder::Human { .. } => "human-handled",
            Holder::Ai { .. } => "ai-active",
            Holder::Reclaimed { .. } => "reclaimed",
        }
    }
}

/// A stretch of a conversation under one holder, from the event that gave it to them to the
/// event that took it away (or the close).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Period {
    /// Who held it.
    pub holder: Holder,
    /// When it began: the recorded time of the event that started it.
    pub began_at: RecordedAt,
    /// The seq of that event.
    pub began_seq: u64,
    /// When it ended: the next handoff, reclaim or escalation, or the close. `None` while it
    /// goes on.
    pub ended_at: Option<RecordedAt>,
    /// The messages posted during it.
    pub messages: MessageCounts,
    /// The skills the AI agent ran during it.
    pub skills_run: u64,
}

impl Period {
    /// How long it lasted, in microseconds; a period still going on is counted until
    /// `log_end`, the recorded time of the last event of the log.
    pub fn duration_micros(&self, log_end: RecordedAt) -> i64 {
        let end = self.ended_at.unwrap_or(log_end);
        end.as_micros()
            .saturating_sub(self.began_at.as_micros())
            .max(0)
    }
}

/// One conversation as the replay sees it: its state (the fold of its events with
/// [`conversation::evolve`]), its periods, and its counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConversationHistory {
    id: ConversationId,
    /// `StreamId::Conversation(id)`, kept so [`Replay::streams`] can lend it.
    stream: StreamId,
    state: Conversation,
    /// What a refused event leaves behind: [`conversation::evolve`] takes the state by value
    /// and drops it when it refuses an event.
    committed: RestorePoint,
    version: u64,
    opened_at: Option<RecordedAt>,
    closed_at: Option<RecordedAt>,
    last_event_at: Option<RecordedAt>,
    closed_while_ai_active: bool,
    periods: Vec<Period>,
    messages: MessageCounts,
    handoffs: u64,
    reclaims: u64,
    escalations: Vec<EscalationCause>,
    skills_succeeded: u64,
    skills_failed: u64,
    /// Set by a customer's request for a human while AI-active: only the very next event may
    /// be an escalation with cause `customer_asked_for_human`.
    escalation_due: bool,
    /// Opened by `conversation_opened` written before tenants (no `tenant` in the event):
    /// humans who act on it need not be registered.
    legacy: bool,
    /// Since when it has waited after an escalation, until a human is assigned.
    escalated_since: Option<Timestamp>,
    /// Milliseconds from each escalation's wait to the human assigned after it.
    escalation_waits_ms: Vec<u64>,
    sla_warnings: u64,
    sla_breaches: u64,
    ai_replies_overdue: u64,
    /// The human of each `human_assigned`, in order.
    assignments: Vec<HumanId>,
    /// Each stretch during which a human was the conversation's assigned human.
    human_spans: Vec<HumanSpan>,
    /// How each handoff to an AI agent ended, in order.
    ai_outcomes: Vec<(AiAgentId, AiOutcome)>,
    /// The rule of each escalation a rule of the policy decided, in order.
    rule_escalations: Vec<RuleName>,
    /// The rule of each handoff refusal a supervisor overrode, in order.
    overrides: Vec<RuleName>,
    /// Skills that waited for approval, and how the waits ended.
    approvals: ApprovalCounts,
    /// `ai_could_not_answer` events.
    ai_misses: u64,
}

/// Skills that waited for a person's approval, and how the waits ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ApprovalCounts {
    /// `skill_approval_requested` events.
    pub requested: u64,
    /// `skill_approved` events.
    pub granted: u64,
    /// `skill_denied` events (by a person or by the clock).
    pub denied: u64,
    /// Those denied by a person.
    pub denied_by_person: u64,
    /// Those denied by the clock: nobody decided within the deadline.
    pub denied_by_clock: u64,
}

impl ApprovalCounts {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &ApprovalCounts) {
        self.requested += other.requested;
        self.granted += other.granted;
        self.denied += other.denied;
        self.denied_by_person += other.denied_by_person;
        self.denied_by_clock += other.denied_by_clock;
    }
}

impl ConversationHistory {
    /// An empty history for conversation `id`: nothing applied yet.
    pub fn new(id: ConversationId) -> ConversationHistory {
        ConversationHistory {
            id,
            stream: StreamId::Conversation(id),
            state: Conversation::NotOpened,
            committed: RestorePoint::default(),
            version: 0,
            opened_at: None,
            closed_at: None,
            last_event_at: None,
            closed_while_ai_active: false,
            periods: Vec::new(),
            messages: MessageCounts::default(),
            handoffs: 0,
            reclaims: 0,
            escalations: Vec::new(),
            skills_succeeded: 0,
            skills_failed: 0,
            escalation_due: false,
            legacy: false,
            escalated_since: None,
            escalation_waits_ms: Vec::new(),
            sla_warnings: 0,
            sla_breaches: 0,
            ai_replies_overdue: 0,
            assignments: Vec::new(),
            human_spans: Vec::new(),
            ai_outcomes: Vec::new(),
            rule_escalations: Vec::new(),
            overrides: Vec::new(),
            approvals: ApprovalCounts::default(),
            ai_misses: 0,
        }
    }

    /// The rule of each escalation a rule of the policy decided, in order.
    pub fn rule_escalations(&self) -> &[RuleName] {
        &self.rule_escalations
    }

    /// The rule of each handoff refusal a supervisor overrode, in order.
    pub fn overrides(&self) -> &[RuleName] {
        &self.overrides
    }

    /// Skills that waited for approval, and how the waits ended.
    pub fn approvals(&self) -> ApprovalCounts {
        self.approvals
    }

    /// `ai_could_not_answer` events.
    pub fn ai_misses(&self) -> u64 {
        self.ai_misses
    }

    /// The conversation's id.
    pub fn id(&self) -> ConversationId {
        self.id
    }

    /// The state, as the runtime would rebuild it.
    pub fn state(&self) -> &Conversation {
        &self.state
    }

    /// What the conversation header shows.
    pub fn status(&self) -> Status {
        self.state.status()
    }

    /// The last seq applied (the stream's version).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// When it was opened.
    pub fn opened_at(&self) -> Option<RecordedAt> {
        self.opened_at
    }

    /// When it was closed, if it was.
    pub fn closed_at(&self) -> Option<RecordedAt> {
        self.closed_at
    }

    /// When its last event was recorded.
    pub fn last_event_at(&self) -> Option<RecordedAt> {
        self.last_event_at
    }

    /// Whether it was closed while an AI agent held it (the AI contained it).
    pub fn closed_while_ai_active(&self) -> bool {
        self.closed_while_ai_active
    }

    /// Its periods, in order; the last one has no end while the conversation is open.
    pub fn periods(&self) -> &[Period] {
        &self.periods
    }

    /// Its messages, by author kind.
    pub fn messages(&self) -> MessageCounts {
        self.messages
    }

    /// How many times it was handed off to an AI agent.
    pub fn handoffs(&self) -> u64 {
        self.handoffs
    }

    /// How many times a human reclaimed it.
    pub fn reclaims(&self) -> u64 {
        self.reclaims
    }

    /// The cause of each escalation back to humans, in order.
    pub fn escalations(&self) -> &[EscalationCause] {
        &self.escalations
    }

    /// Skills run by AI agents that succeeded.
    pub fn skills_succeeded(&self) -> u64 {
        self.skills_succeeded
    }

    /// Skills run by AI agents that failed.
    pub fn skills_failed(&self) -> u64 {
        self.skills_failed
    }

    /// The tenant it belongs to, once opened (`default` for a conversation opened before
    /// tenants).
    pub fn tenant(&self) -> Option<&TenantId> {
        self.state.tenant()
    }

    /// Whether it was opened by a `conversation_opened` written before tenants and human
    /// registration.
    pub fn is_legacy(&self) -> bool {
        self.legacy
    }

    /// Milliseconds from each wait that an escalation began (its `awaiting_human`'s `since`)
    /// to the `human_assigned` that ended it (its `at`), in order; a later wait before that
    /// assignment does not restart the count.
    pub fn escalation_waits_ms(&self) -> &[u64] {
        &self.escalation_waits_ms
    }

    /// `sla_warning` events.
    pub fn sla_warnings(&self) -> u64 {
        self.sla_warnings
    }

    /// `sla_breached` events.
    pub fn sla_breaches(&self) -> u64 {
        self.sla_breaches
    }

    /// `ai_reply_overdue` events.
    pub fn ai_replies_overdue(&self) -> u64 {
        self.ai_replies_overdue
    }

    /// The human of each `human_assigned`, in order.
    pub fn assignments(&self) -> &[HumanId] {
        &self.assignments
    }

    /// Each stretch during which a human was its assigned human, in order.
    pub fn human_spans(&self) -> &[HumanSpan] {
        &self.human_spans
    }

    /// The AI agent of each handoff and how the handoff ended, in order.
    pub fn ai_outcomes(&self) -> &[(AiAgentId, AiOutcome)] {
        &self.ai_outcomes
    }

    /// The human assigned to it now, while it is open: the one whose load it counts in.
    ///
    /// In a conversation opened before tenants, human-handled with a human named means that
    /// human handles it. In a later one, that state lasts only from an escalation to the wait
    /// recorded with it, in the same append: nobody handles it then.
    pub(crate) fn assigned_human(&self) -> Option<&HumanId> {
        match &self.state {
            Conversation::Open(open) if self.legacy || !matches!(open.handler, Handler::Human) => {
                open.assigned_human()
            }
            _ => None,
        }
    }

    /// Applies the next event of this conversation's stream.
    ///
    /// Checks what a conversation's own stream must satisfy: the seq follows the last one,
    /// the event folds with [`conversation::evolve`] (so AI actions come only from the active
    /// agent, nothing follows the close, and only customers' messages carry concerns), an
    /// escalation with cause `customer_asked_for_human` directly follows a customer's request
    /// for a human made while AI-active, and SLA figures agree with the wait
    /// they are about ([`FaultKind::Sla`]). Rules that need other streams (the roster at a
    /// handoff, the directory and the loads) are [`Replay::apply`]'s. On a fault nothing is
    /// applied.
    pub fn apply(&mut self, record: &RecordedEvent) -> Result<(), Fault> {
        self.fold(record, OnRefusal::KeepState)
    }

    /// [`ConversationHistory::apply`] for a reader that drops the history on the first fault:
    /// a refused event leaves it unusable, so nothing is kept to restore it from. Call
    /// [`ConversationHistory::settle`] after the last event.
    pub(crate) fn apply_or_discard(&mut self, record: &RecordedEvent) -> Result<(), Fault> {
        self.fold(record, OnRefusal::Discard)
    }

    /// Makes a history built with [`ConversationHistory::apply_or_discard`] one that
    /// [`ConversationHistory::apply`] may go on with: its restore point, stale by now, is
    /// dropped, and the next `apply` takes a fresh one.
    pub(crate) fn settle(&mut self) {
        self.committed = RestorePoint::default();
    }

    fn fold(&mut self, record: &RecordedEvent, on_refusal: OnRefusal) -> Result<(), Fault> {
        // The location is built only for a fault: it copies the stream id.
        let at = || Location::record(&record.stream, record.seq, record.position);
        if record.seq != self.version + 1 {
            return Err(Fault::new(
                FaultKind::Order,
                at(),
                format!(
                    "expected seq {} of this stream, found seq {}",
                    self.version + 1,
                    record.seq
                ),
            ));
        }
        let event = match &record.event {
            Event::Conversation(event) => event,
            other => {
                return Err(Fault::new(
                    FaultKind::Rule,
                    at(),
                    format!(
                    "{} is not a conversation event; it does not belong in a conversation stream",
                    other.type_name()
                ),
                ))
            }
        };
        self.check_escalation_pairing(event, at)?;
        if let Conversation::Open(open) = &self.state {
            if let Err((kind, description)) = authority::check_sla(open, event) {
                return Err(Fault::new(kind, at(), description));
            }
        }
        let before = self.assigned_human().cloned();
        let was_ai_active = matches!(
            self.state,
            Conversation::Open(OpenConversation {
                handler: Handler::Ai { .. },
                ..
            })
        );
        // Evolve the state itself rather than a copy: on a refusal it is rebuilt from the
        // restore point, and on success the restore point is copied only if the state changed.
        let committed = match on_refusal {
            OnRefusal::KeepState => {
                Some(self.committed.0.get_or_insert_with(|| self.state.clone()))
            }
            OnRefusal::Discard => None,
        };
        match conversation::evolve(std::mem::take(&mut self.state), event) {
            Ok(next) => {
                if let Some(committed) = committed.filter(|committed| **committed != next) {
                    committed.clone_from(&next);
                }
                self.state = next;
            }
            Err(rejection) => {
                if let Some(committed) = committed {
                    self.state.clone_from(committed);
                }
                return Err(Fault::new(
                    FaultKind::Rule,
                    at(),
                    format!("{} breaks a rule: {rejection}", describe_event(event)),
                ));
            }
        }
        self.version = record.seq;
        self.last_event_at = Some(record.recorded_at);
        self.track(record, event, was_ai_active);
        self.track_human(record.position, before);
        Ok(())
    }

    /// An escalation with cause `customer_asked_for_human` (by a rule of the policy or written
    /// before policies) must directly follow a customer's message that raised a request for a
    /// human while AI-active: `decide` records it in that message's append. The other
    /// direction (such a request must be escalated) depends on the policy in force, which may
    /// have no rule for it, so it is no fault of the log.
    fn check_escalation_pairing(
        &self,
        event: &ConversationEvent,
        at: impl Fn() -> Location,
    ) -> Result<(), Fault> {
        // Recorded as the rule's escalation (`EscalatedByRule`) by a policy's `ask_for_person`
        // rule, or as a plain escalation by logs written before the policy was data.
        let is_customer_escalation = matches!(
            event,
            ConversationEvent::EscalatedToHuman {
                cause: EscalationCause::CustomerAskedForHuman,
                ..
            } | ConversationEvent::EscalatedByRule {
                cause: EscalationCause::CustomerAskedForHuman,
                ..
            }
        );
        if is_customer_escalation && !self.escalation_due {
            return Err(Fault::new(
                FaultKind::Rule,
                at(),
                "escalated_to_human with cause customer_asked_for_human does not follow a customer's request for a human",
            ));
        }
        Ok(())
    }

    /// Updates periods and counts after `event` folded; `was_ai_active` tells whether it found
    /// the conversation AI-active.
    fn track(&mut self, record: &RecordedEvent, event: &ConversationEvent, was_ai_active: bool) {
        let at = record.recorded_at;
        self.escalation_due = false;
        match event {
            ConversationEvent::Opened { human, .. } => {
                self.legacy = true;
                self.opened_at = Some(at);
                self.begin(
                    Holder::Human {
                        human: human.clone(),
                    },
                    record,
                );
            }
            ConversationEvent::MessagePosted {
                author, concerns, ..
            } => {
                self.messages.count(author);
                if let Some(period) = self.periods.last_mut() {
                    period.messages.count(author);
                }
                self.escalation_due = was_ai_active
                    && matches!(author, Author::Customer(_))
                    && concerns.contains(&Concern::HumanRequested);
            }
            ConversationEvent::HandedOffToAi {
                agent_id,
                agent_name,
                by_human,
                ..
            } => {
                self.handoffs += 1;
                self.begin(
                    Holder::Ai {
                        agent_id: agent_id.clone(),
                        agent_name: agent_name.clone(),
                        by_human: by_human.clone(),
                    },
                    record,
                );
            }
            ConversationEvent::AiActionRecorded { skill, .. } => {
                match skill.outcome {
                    SkillOutcome::Succeeded(_) => self.skills_succeeded += 1,
                    SkillOutcome::Failed(_) => self.skills_failed += 1,
                }
                if let Some(period) = self.periods.last_mut() {
                    period.skills_run += 1;
                }
            }
            ConversationEvent::Reclaimed {
                agent_id, by_human, ..
            } => {
                self.reclaims += 1;
                self.ai_outcomes
                    .push((agent_id.clone(), AiOutcome::Reclaimed));
                self.begin(
                    Holder::Reclaimed {
                        by: by_human.clone(),
                    },
                    record,
                );
            }
            ConversationEvent::EscalatedToHuman {
                agent_id, cause, ..
            }
            | ConversationEvent::EscalatedByRule {
                agent_id, cause, ..
            } => {
                if let ConversationEvent::EscalatedByRule { rule, .. } = event {
                    self.rule_escalations.push(rule.clone());
                }
                self.escalations.push(*cause);
                self.ai_outcomes
                    .push((agent_id.clone(), AiOutcome::Escalated));
                // Back to the human most recently in charge, as the state keeps it.
                let human = match &self.state {
                    Conversation::Open(open) => open.human.clone(),
                    _ => None,
                };
                self.begin(Holder::Human { human }, record);
            }
            ConversationEvent::Closed { .. } => {
                self.closed_at = Some(at);
                self.closed_while_ai_active = was_ai_active;
                if let (true, Some(Holder::Ai { agent_id, .. })) = (
                    was_ai_active,
                    self.periods.last().map(|period| &period.holder),
                ) {
                    self.ai_outcomes
                        .push((agent_id.clone(), AiOutcome::Contained));
                }
                self.end_current(at);
            }
            ConversationEvent::Started { .. } => {
                self.opened_at = Some(at);
                self.begin(Holder::Human { human: None }, record);
            }
            ConversationEvent::AwaitingHuman { cause, since, .. } => {
                // Counted from the first escalation no human has answered yet: a wait that
                // follows it (a transfer to another queue) does not restart the count.
                if let WaitCause::Escalated(_) = cause {
                    self.escalated_since.get_or_insert(*since);
                }
                self.begin_human(None, record);
            }
            ConversationEvent::HumanAssigned { human_id, at, .. } => {
                self.assignments.push(human_id.clone());
                if let Some(since) = self.escalated_since.take() {
                    self.escalation_waits_ms.push(at.millis_since(since));
                }
                self.begin_human(Some(human_id.clone()), record);
            }
            ConversationEvent::SlaWarning { .. } => self.sla_warnings += 1,
            ConversationEvent::SlaBreached { .. } => self.sla_breaches += 1,
            ConversationEvent::AiReplyOverdue { .. } => self.ai_replies_overdue += 1,
            ConversationEvent::PolicyOverridden { rule, .. } => self.overrides.push(rule.clone()),
            ConversationEvent::SkillApprovalRequested { .. } => self.approvals.requested += 1,
            ConversationEvent::SkillApproved { .. } => self.approvals.granted += 1,
            ConversationEvent::SkillDenied { by, .. } => {
                self.approvals.denied += 1;
                match by {
                    Author::System(SystemActor::Clock) => self.approvals.denied_by_clock += 1,
                    _ => self.approvals.denied_by_person += 1,
                }
            }
            ConversationEvent::AiCouldNotAnswer { .. } => self.ai_misses += 1,
            // Events this version does not know change no period.
            _ => {}
        }
    }

    /// Notes a change of assigned human made by the event at `position`; `before` is who was
    /// assigned before it.
    fn track_human(&mut self, position: u64, before: Option<HumanId>) {
        let after = self.assigned_human().cloned();
        if before == after {
            return;
        }
        if let Some(span) = self.human_spans.last_mut().filter(|s| s.to.is_none()) {
            span.to = Some(position);
        }
        if let Some(human) = after {
            self.human_spans.push(HumanSpan {
                human,
                from: position,
                to: None,
            });
        }
    }

    /// A human-handled period with `human` (none: waiting in a queue), unless the current one
    /// is already theirs. A period that began in the same append (the same recorded time) with
    /// nothing in it is taken over instead: an escalation and the wait it leads to, an opening
    /// and its assignment, make one period.
    fn begin_human(&mut self, human: Option<HumanId>, record: &RecordedEvent) {
        match self.periods.last_mut() {
            Some(Period {
                holder: Holder::Human { human: current },
                ended_at: None,
                ..
            }) if *current == human => {}
            Some(Period {
                holder: Holder::Human { human: current },
                began_at,
                ended_at: None,
                messages,
                skills_run: 0,
                ..
            }) if *began_at == record.recorded_at && messages.total() == 0 => {
                *current = human;
            }
            _ => self.begin(Holder::Human { human }, record),
        }
    }

    fn begin(&mut self, holder: Holder, record: &RecordedEvent) {
        self.end_current(record.recorded_at);
        self.periods.push(Period {
            holder,
            began_at: record.recorded_at,
            began_seq: record.seq,
            ended_at: None,
            messages: MessageCounts::default(),
            skills_run: 0,
        });
    }

    fn end_current(&mut self, at: RecordedAt) {
        if let Some(period) = self.periods.last_mut() {
            period.ended_at.get_or_insert(at);
        }
    }
}

/// A short description of an event for fault messages: its type and who it names.
pub(crate) fn describe_event(event: &ConversationEvent) -> String {
    let name = event.type_name();
    match event {
        ConversationEvent::MessagePosted { author, .. }
        | ConversationEvent::Closed { by: author, .. } => {
            format!("{name} by {}", describe_author(author))
        }
        ConversationEvent::HandedOffToAi { agent_id, .. }
        | ConversationEvent::EscalatedToHuman { agent_id, .. }
        | ConversationEvent::EscalatedByRule { agent_id, .. } => {
            format!("{name} naming AI agent {agent_id}")
        }
        ConversationEvent::AiActionRecorded { agent_id, .. } => {
            format!("{name} by AI agent {agent_id}")
        }
        ConversationEvent::Reclaimed { agent_id, .. } => {
            format!("{name} from AI agent {agent_id}")
        }
        _ => name.to_owned(),
    }
}

/// A copy of a conversation's state as of its last applied event, for a refused event to
/// restore; `None` until an [`ConversationHistory::apply`] needs it. It is refreshed only when
/// an event changes the state (an open, a handoff, a reclaim, an escalation, a new concern,
/// the close), not on the messages and skills that make up most of a log.
#[derive(Clone, Debug, Default)]
struct RestorePoint(Option<Conversation>);

/// A restore point holds nothing of its own: between applies it is the state itself (or
/// none), so two histories are equal whatever their restore points.
impl PartialEq for RestorePoint {
    fn eq(&self, _: &RestorePoint) -> bool {
        true
    }
}

impl Eq for RestorePoint {}

/// What a refused event leaves of a [`ConversationHistory`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum OnRefusal {
    /// The history as it was before the event: the replay may go on.
    KeepState,
    /// A history that is dropped: the state is not kept, which spares a copy of it at each
    /// change.
    Discard,
}

/// `customer cust-1`, `human alice`, `AI agent faq-bot`.
pub(crate) fn describe_author(author: &Author) -> String {
    match author {
        Author::Ai(id) => format!("AI agent {id}"),
        Author::System(actor) => format!("the {}", actor.as_str()),
        other => format!("{} {}", other.kind(), other.id()),
    }
}

/// The whole log folded in global order: every conversation's history, the roster, and the
/// log's extent.
///
/// Apply records in position order from position 1 ([`Replay::apply`]) or let
/// [`Replay::from_store`] read them. Each record is checked as it is applied, so a replay that
/// completes has checked every event against the rules.
#[derive(Clone, Debug, Default)]
pub struct Replay {
    roster: Roster,
    /// The humans registered, as of the last applied event.
    directory: Directory,
    /// How many open conversations each human is assigned, as of the last applied event.
    loads: Loads,
    /// The version of each human stream.
    human_streams: BTreeMap<StreamId, u64>,
    /// Every conversation's history, in the order of their first events. A log interleaves
    /// tens of thousands of conversations, and a hash map finds each event's history in one
    /// or two memory accesses where an ordered map walks a path of nodes; the accessors sort
    /// by id when asked.
    conversations: Vec<ConversationHistory>,
    /// Where each conversation's history is in `conversations`.
    conversation_index: HashMap<ConversationId, usize>,
    /// The version of each AI-agent stream; a conversation's is its history's.
    agent_streams: BTreeMap<StreamId, u64>,
    events: u64,
    head: u64,
    first_recorded_at: Option<RecordedAt>,
    last_recorded_at: Option<RecordedAt>,
}

impl Replay {
    /// An empty replay, before position 1.
    pub fn new() -> Replay {
        Replay::default()
    }

    /// Replays the whole log of `store`: the replay that [`Replay::apply`] builds in
    /// position order from position 1.
    ///
    /// A sound log is read in one sequential pass of its stream records and one of its global
    /// index, on two threads, instead of a point read of each record in position order; the
    /// first thing found wrong sends the replay back to position order, so an error names the
    /// earliest fault in the log.
    ///
    /// Fails with [`AuditError::Store`] when the store cannot be read (a damaged record is
    /// reported there, naming its stream and seq) and with [`AuditError::Unsound`] at the first
    /// event that breaks the order or the rules.
    pub fn from_store(store: &SledStore) -> Result<Replay, AuditError> {
        Replay::from_store_with_progress(store, &NoProgress)
    }

    /// [`Replay::from_store`], telling `progress` how far it has got (it starts over if the
    /// fast pass finds something wrong and the log is read again in position order).
    pub fn from_store_with_progress(
        store: &SledStore,
        progress: &dyn Progress,
    ) -> Result<Replay, AuditError> {
        match Replay::from_store_sound(store, progress) {
            Some(replay) => Ok(replay),
            None => Replay::from_store_in_position_order(store, progress),
        }
    }

    /// Replays the whole log of any [`AuditLog`]: over a sled store, [`Replay::from_store`];
    /// over records in memory, [`Replay::apply`] on each in turn, which checks that the
    /// positions run from 1 without a gap and each stream's seqs likewise. The same log gives
    /// the same replay, and the same first fault, either way.
    pub fn from_log(log: AuditLog<'_>) -> Result<Replay, AuditError> {
        Replay::from_log_with_progress(log, &NoProgress)
    }

    /// [`Replay::from_log`], telling `progress` how far it has got.
    pub fn from_log_with_progress(
        log: AuditLog<'_>,
        progress: &dyn Progress,
    ) -> Result<Replay, AuditError> {
        match log {
            AuditLog::Sled(store) => Replay::from_store_with_progress(store, progress),
            AuditLog::Records(log) => {
                let mut ticker = Ticker::start(progress, log.head());
                let mut replay = Replay::new();
                for record in log.records() {
                    replay.apply(record)?;
                    ticker.tick();
                }
                Ok(replay)
            }
        }
    }

    /// Replays the whole log of `store` in one sequential pass of its stream records and one
    /// of its global index, on two threads, if the log is sound: `None` on the first thing
    /// wrong (damage, a broken rule, index and records disagreeing either way, an I/O error),
    /// for [`Replay::from_store_in_position_order`] to name. The replay it returns is the one
    /// the position-order replay builds; a `Some` also means that no stream record lies
    /// beyond the index.
    pub(crate) fn from_store_sound(store: &SledStore, progress: &dyn Progress) -> Option<Replay> {
        by_streams::replay(store, progress)
    }

    /// Replays the whole log of `store` position by position through the global index, a
    /// point read of each record: slower than one sequential pass, but it stops at the
    /// earliest fault in log order.
    pub(crate) fn from_store_in_position_order(
        store: &SledStore,
        progress: &dyn Progress,
    ) -> Result<Replay, AuditError> {
        let mut ticker = Ticker::start(progress, store.head());
        let mut replay = Replay::new();
        for record in store.iter_all(1) {
            replay.apply(&record?)?;
            ticker.tick();
        }
        Ok(replay)
    }

    /// Applies the next record of the log.
    ///
    /// Checks that its position follows the last one, that its recorded time neither goes
    /// back nor leaves the years RFC 3339 can write, that its seq follows its stream's last
    /// one, that it belongs to its kind of stream, and every rule: AI-agent events fold with
    /// [`Roster::evolve`] and name their own stream's agent; human events fold with
    /// [`Directory::evolve`] and name their own stream's human; a handoff names an AI agent the
    /// roster has registered and active at that point, under its registered name, of the
    /// conversation's tenant; a human who acts on a conversation answers for it, the router
    /// gives it only to a human available and below capacity, and no human of another tenant
    /// touches it (faults of kinds [`FaultKind::Authority`], [`FaultKind::Capacity`] and
    /// [`FaultKind::Tenant`]); conversation events fold as [`ConversationHistory::apply`]
    /// describes. On a fault nothing is applied.
    pub fn apply(&mut self, record: &RecordedEvent) -> Result<(), Fault> {
        // The location is built only for a fault: it copies the stream id.
        let at = || Location::record(&record.stream, record.seq, record.position);
        if record.position != self.head + 1 {
            return Err(Fault::new(
                FaultKind::Order,
                at(),
                format!(
                    "expected position {}, found position {}",
                    self.head + 1,
                    record.position
                ),
            ));
        }
        if !is_writable(record.recorded_at) {
            return Err(Fault::new(
                FaultKind::Damaged,
                at(),
                format!(
                    "recorded_at {} microseconds is outside the years 0000 to 9999",
                    record.recorded_at.as_micros()
                ),
            ));
        }
        if let Some(last) = self
            .last_recorded_at
            .filter(|last| record.recorded_at < *last)
        {
            return Err(Fault::new(
                FaultKind::Order,
                at(),
                format!(
                    "recorded_at {} is earlier than the previous event's {}",
                    format_recorded_at(record.recorded_at).unwrap_or_default(),
                    format_recorded_at(last).unwrap_or_default()
                ),
            ));
        }
        match (&record.stream, &record.event) {
            (StreamId::AiAgent(stream_agent), Event::AiAgent(event)) => {
                let version = self.stream_version(&record.stream);
                if record.seq != version + 1 {
                    return Err(Fault::new(
                        FaultKind::Order,
                        at(),
                        format!(
                            "expected seq {} of this stream, found seq {}",
                            version + 1,
                            record.seq
                        ),
                    ));
                }
                if event.agent_id() != stream_agent {
                    return Err(Fault::new(
                        FaultKind::Rule,
                        at(),
                        format!(
                            "{} names AI agent {}, but this is the stream of AI agent {stream_agent}",
                            event.type_name(),
                            event.agent_id()
                        ),
                    ));
                }
                self.roster.evolve(event).map_err(|rejection| {
                    Fault::new(
                        FaultKind::Rule,
                        at(),
                        format!("{} breaks a rule: {rejection}", event.type_name()),
                    )
                })?;
                self.agent_streams.insert(record.stream.clone(), record.seq);
            }
            (StreamId::Human(stream_human), Event::Human(event)) => {
                let version = self.stream_version(&record.stream);
                if record.seq != version + 1 {
                    return Err(Fault::new(
                        FaultKind::Order,
                        at(),
                        format!(
                            "expected seq {} of this stream, found seq {}",
                            version + 1,
                            record.seq
                        ),
                    ));
                }
                if event.human_id() != stream_human {
                    return Err(Fault::new(
                        FaultKind::Rule,
                        at(),
                        format!(
                            "{} names human {}, but this is the stream of human {stream_human}",
                            event.type_name(),
                            event.human_id()
                        ),
                    ));
                }
                self.directory.evolve(event).map_err(|rejection| {
                    Fault::new(
                        FaultKind::Rule,
                        at(),
                        format!("{} breaks a rule: {rejection}", event.type_name()),
                    )
                })?;
                self.human_streams.insert(record.stream.clone(), record.seq);
            }
            (StreamId::Human(_), event) => {
                return Err(Fault::new(
                    FaultKind::Rule,
                    at(),
                    format!(
                        "{} is not a human's event; it does not belong in a human's stream",
                        event.type_name()
                    ),
                ))
            }
            (StreamId::AiAgent(_), event) => {
                return Err(Fault::new(
                    FaultKind::Rule,
                    at(),
                    format!(
                        "{} is not an AI-agent event; it does not belong in an AI agent's stream",
                        event.type_name()
                    ),
                ))
            }
            (StreamId::Conversation(id), event) => {
                if let Event::Conversation(ConversationEvent::HandedOffToAi {
                    agent_id,
                    agent_name,
                    ..
                }) = event
                {
                    self.check_handoff(agent_id, agent_name, at)?;
                }
                let index = *self.conversation_index.entry(*id).or_insert_with(|| {
                    self.conversations.push(ConversationHistory::new(*id));
                    self.conversations.len() - 1
                });
                let history = &mut self.conversations[index];
                if let Event::Conversation(event) = event {
                    let checked = authority::check(
                        &self.directory,
                        &self.roster,
                        &self.loads,
                        history,
                        event,
                        record.position,
                    );
                    if let Err((kind, description)) = checked {
                        if history.version() == 0 {
                            self.conversations.pop();
                            self.conversation_index.remove(id);
                        }
                        return Err(Fault::new(kind, at(), description));
                    }
                }
                let before = history.assigned_human().cloned();
                if let Err(fault) = history.apply(record) {
                    // Leave no trace of a conversation whose first event was refused: it is
                    // the last one added.
                    if history.version() == 0 {
                        self.conversations.pop();
                        self.conversation_index.remove(id);
                    }
                    return Err(fault);
                }
                let after = history.assigned_human();
                if before.as_ref() != after {
                    if let Some(after) = after {
                        self.loads.add(after);
                    }
                    if let Some(before) = &before {
                        self.loads.remove(before);
                    }
                }
            }
        }
        self.events += 1;
        self.head = record.position;
        self.first_recorded_at.get_or_insert(record.recorded_at);
        self.last_recorded_at = Some(record.recorded_at);
        Ok(())
    }

    /// A handoff must name an AI agent the roster has registered and active at that point.
    fn check_handoff(
        &self,
        agent_id: &AiAgentId,
        agent_name: &AgentName,
        at: impl Fn() -> Location,
    ) -> Result<(), Fault> {
        let fault = |description: String| Err(Fault::new(FaultKind::Rule, at(), description));
        match self.roster.get(agent_id) {
            None => fault(format!(
                "handed_off_to_ai names AI agent {agent_id}, which was not registered at that point"
            )),
            Some(agent) if !agent.active => fault(format!(
                "handed_off_to_ai names AI agent {agent_id}, which was not active at that point"
            )),
            Some(agent) if agent.profile.name != *agent_name => fault(format!(
                "handed_off_to_ai calls AI agent {agent_id} {agent_name:?}, but it was registered as {:?}",
                agent.profile.name
            )),
            Some(_) => Ok(()),
        }
    }

    /// The AI-agent roster as of the last applied event.
    pub fn roster(&self) -> &Roster {
        &self.roster
    }

    /// The directory of humans as of the last applied event.
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// How many open conversations each human was assigned, as of the last applied event.
    pub fn loads(&self) -> &Loads {
        &self.loads
    }

    /// One conversation's history, if the log holds it.
    pub fn conversation(&self, id: &ConversationId) -> Option<&ConversationHistory> {
        self.conversation_index
            .get(id)
            .map(|&index| &self.conversations[index])
    }

    /// Every conversation's history, by id (conversation ids are UUID v7, so this is also the
    /// order they were created in).
    pub fn conversations(&self) -> impl Iterator<Item = &ConversationHistory> {
        self.conversations_by_id().into_iter()
    }

    /// The histories sorted by conversation id. Ids are UUID v7, minted when a conversation
    /// opens, so the histories are nearly in order already and the sort is cheap.
    fn conversations_by_id(&self) -> Vec<&ConversationHistory> {
        let mut sorted: Vec<&ConversationHistory> = self.conversations.iter().collect();
        sorted.sort_by_key(|history| history.id);
        sorted
    }

    /// A stream's version: the last seq applied, 0 for a stream not seen.
    pub fn stream_version(&self, stream: &StreamId) -> u64 {
        match stream {
            StreamId::Conversation(id) => self
                .conversation(id)
                .map_or(0, ConversationHistory::version),
            StreamId::AiAgent(_) => self.agent_streams.get(stream).copied().unwrap_or(0),
            StreamId::Human(_) => self.human_streams.get(stream).copied().unwrap_or(0),
        }
    }

    /// Every stream seen, with its version, by stream.
    pub fn streams(&self) -> impl Iterator<Item = (&StreamId, u64)> {
        // `StreamId` orders AI-agent streams before conversations, conversations by id, and
        // human streams last.
        let humans = self
            .human_streams
            .iter()
            .map(|(stream, seq)| (stream, *seq));
        let agents = self
            .agent_streams
            .iter()
            .map(|(stream, seq)| (stream, *seq));
        let conversations = self
            .conversations_by_id()
            .into_iter()
            .map(|history| (&history.stream, history.version));
        agents.chain(conversations).chain(humans)
    }

    /// How many events were applied.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// The last position applied (0 before any).
    pub fn head(&self) -> u64 {
        self.head
    }

    /// When the first event of the log was recorded.
    pub fn first_recorded_at(&self) -> Option<RecordedAt> {
        self.first_recorded_at
    }

    /// When the last event applied was recorded: where periods still going on are counted
    /// until.
    pub fn last_recorded_at(&self) -> Option<RecordedAt> {
        self.last_recorded_at
    }
}
