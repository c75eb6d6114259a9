//! Handover: hand a customer conversation from a human agent to an AI agent, and take it back.
//!
//! Each conversation is an actix actor whose state (AI-active, human-handled, reclaimed,
//! awaiting a human in a queue) is rebuilt from an append-only event log (sled, embedded, by
//! default); AI agents are actors too, subscribed to the conversations handed to them. Humans
//! are registered with a tenant, teams, a capacity and a presence; a router gives waiting
//! conversations to them, and deadlines fire on a clock the runtime is given. [`Handover`] is the whole API a
//! backend needs: start it on a data directory (or on any open [`EventStore`]), register and
//! attach AI agents, and drive conversations from any async code. Everything needed to use it,
//! to implement an AI agent ([`macro@async_trait`], [`AiAgentBehavior`]) and to bring a store
//! ([`EventStore`] and its types) is re-exported here: one dependency is enough.
//!
//! When control changes hands is policy as data: the named rules of a [`Rules`] (TOML,
//! versioned; [`Config::escalation_policy`], [`Config::policy_file`]) refuse handoffs, give a
//! conversation back to humans on a customer's message or the AI's misses, and make skills wait
//! for a person's approval ([`AiSession::run_skill`]); the embedder's own [`EscalationRule`]s
//! run after them. Every decision is recorded with its rule's name and the policy's version.
//! What an AI agent reads at a handoff is its [`HistoryWindow`] and the handoff's [`Context`].
//!
//! ```
//! use std::sync::Arc;
//! use handover::*;
//!
//! struct Greeter;
//!
//! #[async_trait]
//! impl AiAgentBehavior for Greeter {
//!     async fn on_customer_message(&self, session: &AiSession, _: &MessageText) -> Result<(), AgentError> {
//!         session.reply(MessageText::new("Hello! Our hours are 9 to 5.")?).await?;
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let handover = Handover::start(Config::new(dir.path())).await?;
//! let bot = AiAgentId::new("greeter")?;
//! handover
//!     .register_ai_agent(AiAgentProfile {
//!         id: bot.clone(),
//!         name: AgentName::new("Greeter")?,
//!         specialties: vec![Specialty::new("hours")?],
//!     })
//!     .await?;
//! handover.activate_ai_agent(bot.clone()).await?;
//! handover.attach_ai_agent(bot.clone(), Arc::new(Greeter))?;
//!
//! let customer = CustomerId::new("cust-42")?;
//! let ana = HumanId::new("ana")?;
//! handover.register_human(NewHuman::agent(ana.clone(), AgentName::new("Ana")?)).await?;
//! handover.set_presence(ana.clone(), Presence::Available).await?;
//! let id = handover
//!     .open_conversation(customer.clone(), Channel::new("web-chat")?, Some(ana.clone()))
//!     .await?
//!     .conversation_id;
//! handover
//!     .post_customer_message(id, customer, MessageText::new("When are you open?")?)
//!     .await?;
//! let receipt = handover
//!     .hand_off_to_ai(id, ana.clone(), bot, Some(Reason::new("business hours question")?))
//!     .await?;
//! assert_eq!(receipt.status.label(), "ai-active");
//!
//! // The AI answers on its own; watch the conversation until it does.
//! let mut watch = handover.watch(id).await?;
//! while let Some(record) = watch.next().await {
//!     if let Event::Conversation(ConversationEvent::MessagePosted { author: Author::Ai(_), .. }) = record?.event {
//!         break;
//!     }
//! }
//! handover.reclaim(id, ana, None).await?;
//! handover.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod actor_map;
mod agent_actor;
mod agents;
mod assignments;
mod behavior;
mod board;
mod clock;
mod config;
mod conversation_actor;
mod dispatch;
mod error;
mod escalation;
mod facade;
mod follower;
mod gate;
mod humans;
mod listing;
mod messages;
mod metrics;
mod reply;
mod roster;
mod roster_actor;
mod router;
mod runtime;
mod staff;
mod startup;
mod sync;
mod tenant;
mod tenure;
mod timers;
mod view;
mod watch;
mod window;
// Forwarded calls between nodes: used by the routing of writes to their tenant's owner.
#[cfg_attr(not(test), allow(dead_code))]
mod wire;

/// The attribute that implements [`AiAgentBehavior`] (and any [`EventStore`]): re-exported, so
/// that `handover` is the only dependency a backend needs.
pub use async_trait::async_trait;
/// The trait of [`Watch`], and the extension trait whose `next()` reads one.
pub use futures::{Stream, StreamExt};

pub use behavior::{AgentError, AiAgentBehavior, AiSession};
pub use clock::{Clock, ManualClock, Sleep, SystemClock};
pub use config::{Config, PolicyFileError, RuntimeSettings};
pub use error::Error;
pub use escalation::{EscalationRule, RuleInput, RULE_HISTORY_EVENTS_MAX};
pub use facade::{HandOff, Handover};
pub use handover_core::context::Context;
pub use handover_core::rules::{
    PolicyError, PolicySpec, PolicyVersion, RuleName, RuleVerdict, Rules,
};
pub use handover_core::{
    AgentName, AiAgent, AiAgentEvent, AiAgentId, AiAgentProfile, Assignment, Author, Channel,
    CommandId, Concern, ConversationCommand, ConversationEvent, ConversationId, CustomerId,
    DefaultPolicy, Directory, Epoch, EscalationCause, Event, Human, HumanEvent, HumanId,
    HumanProfile, InvalidInput, Language, Loads, MessageText, NoteAudience, NoticeKind,
    NoticeTexts, Participant, Policy, Presence, Reason, Rejection, Role, Settings, Skill,
    SkillData, SkillName, SkillOutcome, Sla, Specialty, Status, StreamId, SystemActor, TeamId,
    TenantId, Timestamp, TransferTarget, WaitCause, MESSAGE_BYTES_MAX, REASON_BYTES_MAX,
};
#[cfg(feature = "postgres")]
pub use handover_postgres::{NodeOptions, PostgresOptions, PostgresStore};
pub use handover_sled::{SledOptions, SledStore};
pub use handover_store::{
    Appended, Conflict, Durability, EventStore, ExpectedVersion, RecordedAt, RecordedEvent,
    SeqRange, StoreError, StoreStats, TimeSource,
};
pub use listing::{
    LastAuthor, LastMessage, LiveConversation, LiveCounts, LiveQuery, LiveStatus, QueueCount,
    CLOSED_RECENTLY, LAST_MESSAGE_CHARS_MAX,
};
pub use metrics::{AckHistogram, AckLatency};
pub use router::{DefaultRouter, NoRouter, Router, Waiting};
pub use staff::{HumanQuery, HumanView, NewConversation, NewHuman};
pub use tenant::TenantHandle;
pub use view::{ConversationView, Receipt};
pub use watch::Watch;
pub use window::HistoryWindow;

/// The README's example, compiled and run as a doctest so the README stays true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
