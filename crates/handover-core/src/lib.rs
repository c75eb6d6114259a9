//! The pure domain of Handover: identifiers, commands, events, conversation and AI-agent state,
//! and the two functions that hold every rule, `decide` and `evolve`.
//!
//! Architecture invariant: the rules do no I/O. No async, no clock, no actix, no sled, and
//! `decide` and `evolve` mint no id: every id they record comes from their arguments.
//! Everything they need from the outside world (the AI-agent roster, the handoff policy) is
//! passed in through [`Ctx`], so replaying a log is deterministic. The one thing here that is
//! not pure is a convenience for callers, never called by the rules: [`CommandId::new`] mints a
//! random (UUID v7) id for a caller to send with a command it may retry.
//!
//! ```
//! use handover_core::*;
//!
//! let roster = Roster::default();
//! let policy = DefaultPolicy::default();
//! let ctx = Ctx { roster: &roster, policy: &policy };
//! let open = ConversationCommand::Open {
//!     customer: CustomerId::new("cust-1").unwrap(),
//!     channel: Channel::new("web-chat").unwrap(),
//!     human: None,
//! };
//! let events = conversation::decide(&Conversation::default(), &open, &ctx).unwrap();
//! let state = conversation::fold(&events).unwrap();
//! assert_eq!(state.status(), Status::HumanHandled);
//! ```

pub mod agent;
pub mod command;
pub mod conversation;
pub mod event;
pub mod ids;
pub mod limits;
pub mod policy;
pub mod rejection;
pub mod text;

pub use agent::{AiAgent, AiAgentProfile, Roster};
pub use command::{AiAgentCommand, Assignment, ConversationCommand, Participant};
pub use conversation::{Conversation, Handler, OpenConversation, Status};
pub use event::{
    AiAgentEvent, Author, ConversationEvent, EscalationCause, Event, Skill, SkillOutcome,
};
pub use ids::{
    AgentName, AiAgentId, Channel, CommandId, ConversationId, CustomerId, Epoch, HumanId,
    InvalidInput, SkillName, Specialty, StreamId,
};
pub use limits::*;
pub use policy::{Concern, DefaultPolicy, Policy};
pub use rejection::Rejection;
pub use text::{MessageText, Reason, SkillData};

/// What `decide` may consult besides the state and the command: the AI-agent roster (who is
/// registered and active) and the handoff policy. Both are plain values, so `decide` stays pure.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    /// The registered AI agents and whether each is active.
    pub roster: &'a Roster,
    /// Classifies customer messages (a complaint, a request for a human, ...).
    pub policy: &'a dyn Policy,
}

impl std::fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("roster", &self.roster)
            .finish_non_exhaustive()
    }
}
