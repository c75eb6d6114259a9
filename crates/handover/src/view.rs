//! What callers get back: the [`Receipt`] of an accepted command and the [`ConversationView`]
//! of a conversation. Both are views built for callers, not the domain's internal state, so the
//! rules can change their own types without breaking a caller.

use std::sync::Arc;

use handover_core::{
    AgentName, Channel, Concern, Conversation, ConversationEvent, ConversationId, CustomerId,
    Event, Handler, HumanId, Language, Specialty, Status, TeamId, TenantId,
};
use handover_store::{RecordedAt, RecordedEvent};

/// The durable outcome of an accepted command.
///
/// ```no_run
/// # async fn demo(handover: handover::Handover) -> Result<(), handover::Error> {
/// use handover::{Channel, CustomerId};
///
/// let receipt = handover
///     .open_conversation(CustomerId::new("cust-1")?, Channel::new("web-chat")?, None)
///     .await?;
/// println!("opened {} ({})", receipt.conversation_id, receipt.status.label());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Receipt {
    /// The conversation the command was for.
    pub conversation_id: ConversationId,
    /// The events the command recorded, as stored (with position, seq and time).
    pub events: Vec<Arc<RecordedEvent>>,
    /// The conversation's status after them.
    pub status: Status,
}

/// A conversation as a caller sees it: who handles it, who it belongs to, how much happened
/// and when.
///
/// ```no_run
/// # async fn demo(handover: handover::Handover, id: handover::ConversationId) -> Result<(), handover::Error> {
/// let view = handover.conversation(id).await?;
/// if let handover::Status::AiActive { agent_name, .. } = &view.status {
///     println!("robot icon: {agent_name}");
/// }
/// println!("{} messages, last activity at {:?}", view.messages, view.last_activity);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConversationView {
    /// The conversation.
    pub id: ConversationId,
    /// Its customer.
    pub customer: CustomerId,
    /// The channel it runs on.
    pub channel: Channel,
    /// What the conversation header shows: AI-active (with the agent's id and name),
    /// human-handled (assigned to a named human, or reclaimed by one), awaiting a human (in
    /// which queue, since when, why), or closed.
    pub status: Status,
    /// The human agent most recently in charge: assigned at open, or who reclaimed it.
    pub human: Option<HumanId>,
    /// Whether it is closed (no command is accepted any more).
    pub closed: bool,
    /// What the handoff policy recognised in the customer's messages (a complaint, a request
    /// for a human, ...): the reasons a handoff to an AI agent would be refused.
    pub concerns: Vec<Concern>,
    /// Events its stream holds (its version).
    pub events: u64,
    /// Messages posted, by anyone.
    pub messages: u64,
    /// Handoffs to an AI agent so far.
    pub handoffs: u64,
    /// When it was opened.
    pub opened_at: RecordedAt,
    /// When its last event was recorded.
    pub last_activity: RecordedAt,
    /// The tenant it belongs to.
    pub tenant: TenantId,
    /// The team whose queue it waits in when it needs a human (`None`: the general queue).
    pub team: Option<TeamId>,
    /// The customer's language, if known.
    pub language: Option<Language>,
    /// The human who handles it now (assigned, or who reclaimed it); `None` while an AI
    /// agent holds it or it waits.
    pub assigned_human: Option<HumanId>,
    /// That human's display name, as the directory (or the assignment) has it.
    pub assigned_human_name: Option<AgentName>,
    /// The human who made the latest handoff to an AI agent.
    pub handed_off_by: Option<HumanId>,
    /// Whether "needs help" is raised.
    pub flagged: bool,
    /// The conversation's topic, as the latest context shared with a handoff or an
    /// escalation gave it (what the policy's `specialty_matches_topic` rule reads).
    pub topic: Option<Specialty>,
}

/// The counters a conversation actor keeps beside the state `evolve` folds, for its view.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Activity {
    pub(crate) events: u64,
    pub(crate) messages: u64,
    pub(crate) opened_at: Option<RecordedAt>,
    pub(crate) last_activity: Option<RecordedAt>,
}

impl Activity {
    /// Counts one durable record of the conversation.
    pub(crate) fn record(&mut self, record: &RecordedEvent) {
        self.events = record.seq;
        self.last_activity = Some(record.recorded_at);
        match &record.event {
            Event::Conversation(
                ConversationEvent::Opened { .. } | ConversationEvent::Started { .. },
            ) => self.opened_at = Some(record.recorded_at),
            Event::Conversation(ConversationEvent::MessagePosted { .. }) => self.messages += 1,
            _ => {}
        }
    }

    /// The view of `state` with these counters; `None` for a conversation never opened.
    pub(crate) fn view(
        &self,
        id: ConversationId,
        state: &Conversation,
    ) -> Option<ConversationView> {
        let (open, closed) = match state {
            Conversation::Open(open) => (open, false),
            Conversation::Closed(open) => (open, true),
            _ => return None,
        };
        let opened_at = self.opened_at.unwrap_or(RecordedAt(0));
        Some(ConversationView {
            id,
            customer: open.customer.clone(),
            channel: open.channel.clone(),
            status: state.status(),
            human: open.human.clone(),
            closed,
            concerns: open.concerns.clone(),
            events: self.events,
            messages: self.messages,
            handoffs: open.epoch.0,
            opened_at,
            last_activity: self.last_activity.unwrap_or(opened_at),
            tenant: open.tenant.clone(),
            team: open.team.clone(),
            language: open.language.clone(),
            assigned_human: if closed {
                None
            } else {
                open.assigned_human().cloned()
            },
            assigned_human_name: match &open.handler {
                Handler::Assigned { name, .. } if !closed => Some(name.clone()),
                _ => None,
            },
            handed_off_by: open.handed_off_by.clone(),
            flagged: open.flagged,
            topic: open.signals.topic.clone(),
        })
    }
}
