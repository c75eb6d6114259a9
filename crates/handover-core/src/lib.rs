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
//! let ctx = Ctx::new(&roster, &policy).at(Timestamp::from_millis(1_000));
//! let open = ConversationCommand::Open {
//!     customer: CustomerId::new("cust-1").unwrap(),
//!     channel: Channel::new("web-chat").unwrap(),
//!     human: None,
//! };
//! let events = conversation::decide(&Conversation::default(), &open, &ctx).unwrap();
//! let state = conversation::fold(&events).unwrap();
//! // Opened without a human, it waits in the tenant's general queue.
//! assert_eq!(state.status().label(), "awaiting-human");
//! ```

pub mod agent;
pub mod command;
pub mod context;
pub mod conversation;
pub mod event;
pub mod human;
pub mod ids;
pub mod limits;
mod names;
pub mod placement;
pub mod policy;
pub mod rejection;
pub mod rules;
pub mod settings;
pub mod signals;
pub mod text;
pub mod time;

pub use agent::{AiAgent, AiAgentProfile, Roster};
pub use command::{AiAgentCommand, Assignment, ConversationCommand, HumanCommand, Participant};
pub use conversation::{Conversation, Handler, OpenConversation, Status};
pub use event::{
    AiAgentEvent, Author, ConversationEvent, EscalationCause, Event, HumanEvent, NoteAudience,
    NoticeKind, Skill, SkillOutcome, SystemActor, TransferTarget, WaitCause,
};
pub use human::{Directory, Human, HumanProfile, Loads, Presence, Role};
pub use ids::{
    AgentName, AiAgentId, Channel, CommandId, ConversationId, CustomerId, Epoch, HumanId,
    InvalidInput, Language, SkillName, Specialty, StreamId, TeamId, TenantId,
};
pub use limits::*;
pub use policy::{Concern, DefaultPolicy, Policy};
pub use rejection::Rejection;
pub use settings::{NoticeTexts, Settings, Sla};
pub use text::{MessageText, Reason, SkillData};
pub use time::Timestamp;

/// What `decide` may consult besides the state and the command: the AI-agent roster, the
/// directory of humans and their loads, the handoff policy, the operator's settings, and the
/// time. All are plain values, so `decide` stays pure.
///
/// Build it with [`Ctx::new`] and the `with_`/`at` methods; fields left out are empty (no human
/// registered, default settings, time zero).
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    /// The registered AI agents and whether each is active.
    pub roster: &'a Roster,
    /// Classifies customer messages (a complaint, a request for a human, ...).
    pub policy: &'a dyn Policy,
    /// The registered humans and their presence.
    pub directory: &'a Directory,
    /// How many conversations each human handles.
    pub loads: &'a Loads,
    /// Thresholds, deadlines and notice texts.
    pub settings: &'a Settings,
    /// Now, by the runtime's clock.
    pub now: Timestamp,
}

static EMPTY_DIRECTORY: Directory = Directory::new();
static NO_LOADS: Loads = Loads::new();

fn default_settings() -> &'static Settings {
    static SETTINGS: std::sync::OnceLock<Settings> = std::sync::OnceLock::new();
    SETTINGS.get_or_init(Settings::default)
}

impl<'a> Ctx<'a> {
    /// A context with this roster and policy, no human registered, default settings, and time
    /// zero.
    pub fn new(roster: &'a Roster, policy: &'a dyn Policy) -> Ctx<'a> {
        Ctx {
            roster,
            policy,
            directory: &EMPTY_DIRECTORY,
            loads: &NO_LOADS,
            settings: default_settings(),
            now: Timestamp::default(),
        }
    }

    /// The same context with this directory of humans.
    pub fn with_directory(self, directory: &'a Directory) -> Ctx<'a> {
        Ctx { directory, ..self }
    }

    /// The same context with these loads.
    pub fn with_loads(self, loads: &'a Loads) -> Ctx<'a> {
        Ctx { loads, ..self }
    }

    /// The same context with these settings.
    pub fn with_settings(self, settings: &'a Settings) -> Ctx<'a> {
        Ctx { settings, ..self }
    }

    /// The same context at time `now`.
    pub fn at(self, now: Timestamp) -> Ctx<'a> {
        Ctx { now, ..self }
    }
}

impl std::fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("roster", &self.roster)
            .field("directory", &self.directory)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}
