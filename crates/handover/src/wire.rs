//! A write forwarded to the node that owns its tenant, and its answer, as bytes: the [`Call`]
//! a non-owner sends through the database (`PostgresStore::forward`), how the owner [`run`]s it
//! on its own facade, and the [`Answer`] it writes back, from which the caller rebuilds the
//! facade's result ([`into_receipt`], [`into_maybe_receipt`], [`into_done`]).
//!
//! A call re-run after a takeover (its first owner died before answering) is recorded once:
//! every conversation write carries a [`CommandId`] and runs as
//! [`Handover::execute_once`], and a new conversation carries the id the caller minted for
//! it. Writes on humans and AI agents have no command id in the facade; re-run, the rules
//! refuse the repeat (`HumanAlreadyRegistered`, `PresenceUnchanged`, `AiAgentAlreadyActive`,
//! ...) rather than record it twice, so the answer of a re-run may be that rejection.
//!
//! Encoded with bincode (serde, standard configuration), at most [`WIRE_BYTES_MAX`] bytes
//! either way; decoding bad bytes is a [`WireError`] of kind [`ErrorKind::Malformed`], never a
//! panic.

// A `WireError` holds a `Rejection`, which the policy's rejections (a rule's name, the
// policy's version, a reason) made large; it is built only on a failed call, so its size costs
// nothing on the way that succeeds.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use handover_core::{
    AgentName, AiAgentId, AiAgentProfile, Channel, CommandId, ConversationCommand, ConversationId,
    CustomerId, HumanId, InvalidInput, Language, MessageText, NoteAudience, Participant, Presence,
    Reason, Rejection, Role, Specialty, Status, TeamId, TenantId, TransferTarget,
};
use handover_store::{RecordedEvent, StoreError};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::facade::Handover;
use crate::staff::NewHuman;
use crate::view::Receipt;

/// The most bytes a call or an answer may take on the wire: larger input is refused before
/// it is decoded.
pub(crate) const WIRE_BYTES_MAX: usize = 1 << 20;

/// The most memory bincode may claim while decoding (it counts what a collection's length
/// would allocate, not the input's bytes): well above what any call or answer of at most
/// [`WIRE_BYTES_MAX`] bytes needs, and a bound on what a forged length can make it allocate.
const DECODE_CLAIM_MAX: usize = 16 * WIRE_BYTES_MAX;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_CLAIM_MAX>()
}

/// One write of the facade, with its arguments, to run on the node that owns its tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Call {
    /// [`Handover::execute`] and [`Handover::execute_once`]: a forwarded `execute` carries a
    /// command id the caller minted, so that it too is recorded once.
    Execute {
        conversation_id: ConversationId,
        command_id: CommandId,
        command: ConversationCommand,
    },
    /// [`Handover::open_conversation`], with the id the caller minted for the conversation (the
    /// facade mints it inside; forwarded, a re-run must open the same one).
    OpenConversation {
        conversation_id: ConversationId,
        command_id: CommandId,
        customer: CustomerId,
        channel: Channel,
        human: Option<HumanId>,
    },
    /// [`Handover::start_conversation`] (the fields of `NewConversation`), with the id the
    /// caller minted for the conversation.
    StartConversation {
        conversation_id: ConversationId,
        command_id: CommandId,
        tenant: TenantId,
        customer: CustomerId,
        channel: Channel,
        team: Option<TeamId>,
        language: Option<Language>,
        human: Option<HumanId>,
    },
    /// [`Handover::post_customer_message`].
    PostCustomerMessage {
        conversation_id: ConversationId,
        command_id: CommandId,
        customer: CustomerId,
        text: MessageText,
    },
    /// [`Handover::post_human_message`].
    PostHumanMessage {
        conversation_id: ConversationId,
        command_id: CommandId,
        human: HumanId,
        text: MessageText,
    },
    /// [`Handover::hand_off_to_ai`]. The owner checks that the AI agent runs there
    /// ([`Error::AiAgentNotRunning`] otherwise).
    HandOffToAi {
        conversation_id: ConversationId,
        command_id: CommandId,
        by: HumanId,
        agent_id: AiAgentId,
        reason: Option<Reason>,
    },
    /// [`Handover::reclaim`].
    Reclaim {
        conversation_id: ConversationId,
        command_id: CommandId,
        by: HumanId,
        reason: Option<Reason>,
    },
    /// [`Handover::close`].
    Close {
        conversation_id: ConversationId,
        command_id: CommandId,
        by: HumanId,
        reason: Option<Reason>,
    },
    /// [`Handover::assign`].
    Assign {
        conversation_id: ConversationId,
        command_id: CommandId,
        by: HumanId,
        to: HumanId,
    },
    /// [`Handover::accept`].
    Accept {
        conversation_id: ConversationId,
        command_id: CommandId,
        by: HumanId,
    },
    /// [`Handover::accept_next`]. No command id: it picks a conversation from the board, then
    /// accepts it, and a re-run after a takeover no longer sees the one the first run took,
    /// so it may take a second. The routing step should not forward it as is: the board is
    /// read on any node, so the caller picks the candidates and forwards each as an
    /// [`Call::Accept`] with a command id (recorded once per conversation).
    AcceptNext { by: HumanId },
    /// [`Handover::transfer`].
    Transfer {
        conversation_id: ConversationId,
        command_id: CommandId,
        by: HumanId,
        to: TransferTarget,
        reason: Reason,
    },
    /// [`Handover::whisper`].
    Whisper {
        conversation_id: ConversationId,
        command_id: CommandId,
        by: HumanId,
        to: NoteAudience,
        text: MessageText,
    },
    /// [`Handover::raise_flag`].
    RaiseFlag {
        conversation_id: ConversationId,
        command_id: CommandId,
        by: HumanId,
    },
    /// [`Handover::lower_flag`].
    LowerFlag {
        conversation_id: ConversationId,
        command_id: CommandId,
        by: HumanId,
    },
    /// [`Handover::register_ai_agent`] (the fields of `AiAgentProfile`), in the default tenant.
    /// No command id: a re-run is refused as `AiAgentAlreadyRegistered`.
    RegisterAiAgent {
        agent_id: AiAgentId,
        name: AgentName,
        specialties: Vec<Specialty>,
    },
    /// [`Handover::register_ai_agent_in`]. No command id: a re-run is refused as
    /// `AiAgentAlreadyRegistered`.
    RegisterAiAgentIn {
        tenant: TenantId,
        agent_id: AiAgentId,
        name: AgentName,
        specialties: Vec<Specialty>,
    },
    /// [`Handover::activate_ai_agent`]. No command id: a re-run is refused as
    /// `AiAgentAlreadyActive`.
    ActivateAiAgent { agent_id: AiAgentId },
    /// [`Handover::deactivate_ai_agent`]. No command id: a re-run is refused as
    /// `AiAgentAlreadyInactive`.
    DeactivateAiAgent { agent_id: AiAgentId },
    /// [`Handover::register_human`] (the fields of `NewHuman`). No command id: a re-run is
    /// refused as `HumanAlreadyRegistered`.
    RegisterHuman {
        id: HumanId,
        name: AgentName,
        role: Role,
        tenant: TenantId,
        teams: Vec<TeamId>,
        capacity: u32,
    },
    /// [`Handover::set_presence`]. No command id: a re-run is refused as `PresenceUnchanged`
    /// (unless the presence changed in between, when it is recorded again).
    SetPresence { human: HumanId, presence: Presence },
    /// [`Handover::remove_human`]. No command id: a re-run is refused as `HumanRemoved`.
    RemoveHuman { human: HumanId },
    /// [`Handover::route_now`]. No command id and none needed: routing again records only what
    /// the router decides on the board as it is then.
    RouteNow { tenant: TenantId },
}

/// What the routing step looks up to find a call's owner: a tenant directly, or the stream
/// whose placement names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// The tenant itself (a new conversation, a registration, routing).
    Tenant(TenantId),
    /// The tenant of this conversation.
    Conversation(ConversationId),
    /// The tenant of this human.
    Human(HumanId),
    /// The tenant of this AI agent.
    AiAgent(AiAgentId),
}

/// Which successful result a call has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expected {
    /// A [`Receipt`].
    Receipt,
    /// A [`Receipt`], or none ([`Call::AcceptNext`]).
    MaybeReceipt,
    /// Nothing.
    Done,
}

impl Call {
    /// Where the call's owner is found.
    pub(crate) fn tenant_or_conversation(&self) -> Route {
        match self {
            Call::Execute {
                conversation_id,
                command,
                ..
            } => match command {
                // A stream opened by this command: its tenant is in the command.
                ConversationCommand::Open { .. } => Route::Tenant(TenantId::default_tenant()),
                ConversationCommand::Start { tenant, .. } => Route::Tenant(tenant.clone()),
                _ => Route::Conversation(*conversation_id),
            },
            Call::OpenConversation { .. } | Call::RegisterAiAgent { .. } => {
                Route::Tenant(TenantId::default_tenant())
            }
            Call::StartConversation { tenant, .. }
            | Call::RegisterAiAgentIn { tenant, .. }
            | Call::RegisterHuman { tenant, .. }
            | Call::RouteNow { tenant } => Route::Tenant(tenant.clone()),
            Call::PostCustomerMessage {
                conversation_id, ..
            }
            | Call::PostHumanMessage {
                conversation_id, ..
            }
            | Call::HandOffToAi {
                conversation_id, ..
            }
            | Call::Reclaim {
                conversation_id, ..
            }
            | Call::Close {
                conversation_id, ..
            }
            | Call::Assign {
                conversation_id, ..
            }
            | Call::Accept {
                conversation_id, ..
            }
            | Call::Transfer {
                conversation_id, ..
            }
            | Call::Whisper {
                conversation_id, ..
            }
            | Call::RaiseFlag {
                conversation_id, ..
            }
            | Call::LowerFlag {
                conversation_id, ..
            } => Route::Conversation(*conversation_id),
            Call::AcceptNext { by } => Route::Human(by.clone()),
            Call::SetPresence { human, .. } | Call::RemoveHuman { human } => {
                Route::Human(human.clone())
            }
            Call::ActivateAiAgent { agent_id } | Call::DeactivateAiAgent { agent_id } => {
                Route::AiAgent(agent_id.clone())
            }
        }
    }

    /// Which successful result the call has.
    pub(crate) fn expects(&self) -> Expected {
        match self {
            Call::AcceptNext { .. } => Expected::MaybeReceipt,
            Call::RegisterAiAgent { .. }
            | Call::RegisterAiAgentIn { .. }
            | Call::ActivateAiAgent { .. }
            | Call::DeactivateAiAgent { .. }
            | Call::RegisterHuman { .. }
            | Call::SetPresence { .. }
            | Call::RemoveHuman { .. }
            | Call::RouteNow { .. } => Expected::Done,
            _ => Expected::Receipt,
        }
    }

    /// A conversation write as the command [`Handover::execute_once`] runs, as the facade's
    /// method builds it; `None` for the other calls.
    fn conversation_command(&self) -> Option<(ConversationId, CommandId, ConversationCommand)> {
        let (id, command_id, command) = match self.clone() {
            Call::Execute {
                conversation_id,
                command_id,
                command,
            } => (conversation_id, command_id, command),
            Call::OpenConversation {
                conversation_id,
                command_id,
                customer,
                channel,
                human,
            } => (
                conversation_id,
                command_id,
                ConversationCommand::Open {
                    customer,
                    channel,
                    human,
                },
            ),
            Call::StartConversation {
                conversation_id,
                command_id,
                tenant,
                customer,
                channel,
                team,
                language,
                human,
            } => (
                conversation_id,
                command_id,
                ConversationCommand::Start {
                    tenant,
                    customer,
                    channel,
                    team,
                    language,
                    human,
                },
            ),
            Call::PostCustomerMessage {
                conversation_id,
                command_id,
                customer,
                text,
            } => (
                conversation_id,
                command_id,
                ConversationCommand::PostMessage {
                    by: Participant::Customer(customer),
                    text,
                },
            ),
            Call::PostHumanMessage {
                conversation_id,
                command_id,
                human,
                text,
            } => (
                conversation_id,
                command_id,
                ConversationCommand::PostMessage {
                    by: Participant::Human(human),
                    text,
                },
            ),
            Call::HandOffToAi {
                conversation_id,
                command_id,
                by,
                agent_id,
                reason,
            } => (
                conversation_id,
                command_id,
                ConversationCommand::HandOffToAi {
                    by,
                    agent_id,
                    reason,
                },
            ),
            Call::Reclaim {
                conversation_id,
                command_id,
                by,
                reason,
            } => (
                conversation_id,
                command_id,
                ConversationCommand::Reclaim { by, reason },
            ),
            Call::Close {
                conversation_id,
                command_id,
                by,
                reason,
            } => (
                conversation_id,
                command_id,
                ConversationCommand::Close {
                    by: Participant::Human(by),
                    reason,
                },
            ),
            Call::Assign {
                conversation_id,
                command_id,
                by,
                to,
            } => (
                conversation_id,
                command_id,
                ConversationCommand::Assign {
                    by: Participant::Human(by),
                    to,
                },
            ),
            Call::Accept {
                conversation_id,
                command_id,
                by,
            } => (
                conversation_id,
                command_id,
                ConversationCommand::Accept { by },
            ),
            Call::Transfer {
                conversation_id,
                command_id,
                by,
                to,
                reason,
            } => (
                conversation_id,
                command_id,
                ConversationCommand::Transfer { by, to, reason },
            ),
            Call::Whisper {
                conversation_id,
                command_id,
                by,
                to,
                text,
            } => (
                conversation_id,
                command_id,
                ConversationCommand::Whisper { by, to, text },
            ),
            Call::RaiseFlag {
                conversation_id,
                command_id,
                by,
            } => (
                conversation_id,
                command_id,
                ConversationCommand::RaiseFlag {
                    by: Participant::Human(by),
                },
            ),
            Call::LowerFlag {
                conversation_id,
                command_id,
                by,
            } => (
                conversation_id,
                command_id,
                ConversationCommand::LowerFlag { by },
            ),
            _ => return None,
        };
        Some((id, command_id, command))
    }
}

/// A [`Receipt`] on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WireReceipt {
    pub(crate) conversation_id: ConversationId,
    pub(crate) events: Vec<RecordedEvent>,
    pub(crate) status: Status,
}

impl From<Receipt> for WireReceipt {
    fn from(receipt: Receipt) -> Self {
        WireReceipt {
            conversation_id: receipt.conversation_id,
            events: receipt
                .events
                .into_iter()
                .map(Arc::unwrap_or_clone)
                .collect(),
            status: receipt.status,
        }
    }
}

impl From<WireReceipt> for Receipt {
    fn from(receipt: WireReceipt) -> Self {
        Receipt {
            conversation_id: receipt.conversation_id,
            events: receipt.events.into_iter().map(Arc::new).collect(),
            status: receipt.status,
        }
    }
}

/// The owner's answer to a [`Call`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Answer {
    /// The receipt of a conversation write.
    Receipt(WireReceipt),
    /// The result of [`Call::AcceptNext`].
    MaybeReceipt(Option<WireReceipt>),
    /// A write with no result succeeded.
    Done,
    /// The call failed.
    Failed(WireError),
}

/// An [`Error`] on the wire: which variant, its text, and the rules' [`Rejection`] when it is
/// one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WireError {
    pub(crate) kind: ErrorKind,
    /// The error's text, as `Display` writes it on the node where it happened.
    pub(crate) message: String,
    /// The rejection, for [`ErrorKind::Rejected`] (boxed: the rules' rejections are large,
    /// and every wire result carries this error; serde writes a box as its content).
    pub(crate) rejection: Option<Box<Rejection>>,
}

/// [`Error`]'s variants, with what rebuilds each.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum ErrorKind {
    /// [`Error::Rejected`] (the rejection is in [`WireError::rejection`]).
    Rejected,
    /// [`Error::InvalidInput`].
    InvalidInput(InvalidInput),
    /// [`Error::UnknownConversation`].
    UnknownConversation(ConversationId),
    /// [`Error::AiAgentNotRunning`].
    AiAgentNotRunning(AiAgentId),
    /// [`Error::Store`], as far as its variant travels.
    Store(StoreKind),
    /// [`Error::Concurrency`].
    Concurrency,
    /// [`Error::Overloaded`].
    Overloaded,
    /// [`Error::Stopped`].
    Stopped,
    /// The bytes of a call or an answer could not be decoded, or were too many.
    Malformed,
    /// Anything else (a kind a newer peer sent): rebuilt as a store error with its text.
    Other,
}

/// The variants of [`StoreError`] that come back as themselves; every other comes back as
/// [`StoreError::Engine`] with its text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum StoreKind {
    /// [`StoreError::NotOwner`]: the caller may forward again, to the new owner.
    NotOwner { shard: u16 },
    /// [`StoreError::RecordTooLarge`].
    RecordTooLarge { len: usize, max: usize },
    /// [`StoreError::Closed`].
    Closed,
    /// [`StoreError::Overloaded`] (the facade turns it into [`Error::Overloaded`]).
    Overloaded,
    /// Any other: [`StoreError::Engine`] with the text.
    Other,
}

impl WireError {
    fn malformed(message: impl Into<String>) -> WireError {
        WireError {
            kind: ErrorKind::Malformed,
            message: message.into(),
            rejection: None,
        }
    }

    /// The error as the caller's facade returns it.
    pub(crate) fn into_error(self) -> Error {
        let WireError {
            kind,
            message,
            rejection,
        } = self;
        match kind {
            ErrorKind::Rejected => match rejection {
                Some(rejection) => Error::Rejected(*rejection),
                None => engine(format!("rejected, with no rejection: {message}")),
            },
            ErrorKind::InvalidInput(invalid) => Error::InvalidInput(invalid),
            ErrorKind::UnknownConversation(id) => Error::UnknownConversation(id),
            ErrorKind::AiAgentNotRunning(id) => Error::AiAgentNotRunning(id),
            ErrorKind::Store(store) => Error::Store(match store {
                StoreKind::NotOwner { shard } => StoreError::NotOwner { shard },
                StoreKind::RecordTooLarge { len, max } => StoreError::RecordTooLarge { len, max },
                StoreKind::Closed => StoreError::Closed,
                StoreKind::Overloaded => StoreError::Overloaded,
                StoreKind::Other => StoreError::Engine(message),
            }),
            ErrorKind::Concurrency => Error::Concurrency,
            ErrorKind::Overloaded => Error::Overloaded,
            ErrorKind::Stopped => Error::Stopped,
            ErrorKind::Malformed => engine(format!("forwarded call: {message}")),
            ErrorKind::Other => engine(message),
        }
    }
}

fn engine(message: String) -> Error {
    Error::Store(StoreError::Engine(message))
}

impl From<&Error> for WireError {
    fn from(error: &Error) -> Self {
        let message = error.to_string();
        let mut rejection = None;
        let kind = match error {
            Error::Rejected(rejected) => {
                rejection = Some(Box::new(rejected.clone()));
                ErrorKind::Rejected
            }
            Error::InvalidInput(invalid) => ErrorKind::InvalidInput(invalid.clone()),
            Error::UnknownConversation(id) => ErrorKind::UnknownConversation(*id),
            Error::AiAgentNotRunning(id) => ErrorKind::AiAgentNotRunning(id.clone()),
            Error::Store(store) => ErrorKind::Store(match store {
                StoreError::NotOwner { shard } => StoreKind::NotOwner { shard: *shard },
                StoreError::RecordTooLarge { len, max } => StoreKind::RecordTooLarge {
                    len: *len,
                    max: *max,
                },
                StoreError::Closed => StoreKind::Closed,
                StoreError::Overloaded => StoreKind::Overloaded,
                _ => StoreKind::Other,
            }),
            Error::Concurrency => ErrorKind::Concurrency,
            Error::Overloaded => ErrorKind::Overloaded,
            Error::Stopped => ErrorKind::Stopped,
            // Only a waiting AI session says this, on the node it runs on; never forwarded.
            Error::SkillDenied { .. } => ErrorKind::Other,
        };
        // A store error's text is its own (the facade's adds an "event store: " prefix), so
        // that `StoreError::Engine(message)` on the caller reads as it did here.
        let message = match error {
            Error::Store(store) => store.to_string(),
            _ => message,
        };
        WireError {
            kind,
            message,
            rejection,
        }
    }
}

impl From<Error> for WireError {
    fn from(error: Error) -> Self {
        WireError::from(&error)
    }
}

fn encode<T: Serialize>(value: &T, what: &str) -> Result<Vec<u8>, WireError> {
    let bytes = bincode::serde::encode_to_vec(value, config())
        .map_err(|error| WireError::malformed(format!("{what} not encoded: {error}")))?;
    // bincode's limit bounds decoding only.
    if bytes.len() > WIRE_BYTES_MAX {
        return Err(WireError::malformed(format!(
            "{what} of {} bytes exceeds the limit of {WIRE_BYTES_MAX} bytes",
            bytes.len()
        )));
    }
    Ok(bytes)
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, WireError> {
    if bytes.len() > WIRE_BYTES_MAX {
        return Err(WireError::malformed(format!(
            "{what} of {} bytes exceeds the limit of {WIRE_BYTES_MAX} bytes",
            bytes.len()
        )));
    }
    let (value, read) = bincode::serde::decode_from_slice(bytes, config())
        .map_err(|error| WireError::malformed(format!("{what} not decoded: {error}")))?;
    if read != bytes.len() {
        return Err(WireError::malformed(format!(
            "{what} followed by {} unread bytes",
            bytes.len() - read
        )));
    }
    Ok(value)
}

/// The call's bytes; a call larger than [`WIRE_BYTES_MAX`] (a registration with a huge list)
/// is refused here, before it is sent.
pub(crate) fn encode_call(call: &Call) -> Result<Vec<u8>, WireError> {
    encode(call, "call")
}

/// The call in `bytes`.
pub(crate) fn decode_call(bytes: &[u8]) -> Result<Call, WireError> {
    decode(bytes, "call")
}

/// The answer's bytes. An answer too large to send becomes the error saying so (which is
/// small), so the owner always has something to write back.
pub(crate) fn encode_answer(answer: &Answer) -> Vec<u8> {
    encode(answer, "answer").unwrap_or_else(|error| {
        let failed = Answer::Failed(WireError {
            kind: ErrorKind::Other,
            message: error.message,
            rejection: None,
        });
        // A `Failed` with a short message always fits.
        encode(&failed, "answer").unwrap_or_default()
    })
}

/// The answer in `bytes`.
pub(crate) fn decode_answer(bytes: &[u8]) -> Result<Answer, WireError> {
    decode(bytes, "answer")
}

/// Runs `call` on this node's facade, as the owner of its tenant, and answers it.
pub(crate) async fn run(handover: &Handover, call: Call) -> Answer {
    if let Some((id, command_id, command)) = call.conversation_command() {
        // The embedder's rules ran where the call was made: their verdict is in the command.
        return match handover.run_judged(id, command, Some(command_id)).await {
            Ok(receipt) => Answer::Receipt(receipt.into()),
            Err(error) => Answer::Failed(error.into()),
        };
    }
    let done = match call {
        Call::AcceptNext { by } => {
            return match handover.accept_next(by).await {
                Ok(receipt) => Answer::MaybeReceipt(receipt.map(WireReceipt::from)),
                Err(error) => Answer::Failed(error.into()),
            };
        }
        Call::RegisterAiAgent {
            agent_id,
            name,
            specialties,
        } => {
            handover
                .register_ai_agent(AiAgentProfile {
                    id: agent_id,
                    name,
                    specialties,
                })
                .await
        }
        Call::RegisterAiAgentIn {
            tenant,
            agent_id,
            name,
            specialties,
        } => {
            handover
                .register_ai_agent_in(
                    tenant,
                    AiAgentProfile {
                        id: agent_id,
                        name,
                        specialties,
                    },
                )
                .await
        }
        Call::ActivateAiAgent { agent_id } => handover.activate_ai_agent(agent_id).await,
        Call::DeactivateAiAgent { agent_id } => handover.deactivate_ai_agent(agent_id).await,
        Call::RegisterHuman {
            id,
            name,
            role,
            tenant,
            teams,
            capacity,
        } => {
            handover
                .register_human(NewHuman {
                    id,
                    name,
                    role,
                    tenant,
                    teams,
                    capacity,
                })
                .await
        }
        Call::SetPresence { human, presence } => handover.set_presence(human, presence).await,
        Call::RemoveHuman { human } => handover.remove_human(human).await,
        Call::RouteNow { tenant } => {
            handover.route_now(&tenant).await;
            Ok(())
        }
        // Conversation writes ran above.
        Call::Execute { .. }
        | Call::OpenConversation { .. }
        | Call::StartConversation { .. }
        | Call::PostCustomerMessage { .. }
        | Call::PostHumanMessage { .. }
        | Call::HandOffToAi { .. }
        | Call::Reclaim { .. }
        | Call::Close { .. }
        | Call::Assign { .. }
        | Call::Accept { .. }
        | Call::Transfer { .. }
        | Call::Whisper { .. }
        | Call::RaiseFlag { .. }
        | Call::LowerFlag { .. } => {
            return Answer::Failed(WireError {
                kind: ErrorKind::Other,
                message: "a conversation write was not run as one".to_owned(),
                rejection: None,
            })
        }
    };
    match done {
        Ok(()) => Answer::Done,
        Err(error) => Answer::Failed(error.into()),
    }
}

fn unexpected(answer: &Answer, expected: Expected) -> Error {
    let got = match answer {
        Answer::Receipt(_) => "a receipt",
        Answer::MaybeReceipt(_) => "an optional receipt",
        Answer::Done => "done",
        Answer::Failed(_) => "an error",
    };
    engine(format!(
        "forwarded call answered with {got}, where {expected:?} was expected"
    ))
}

/// The facade's result of a call that [`Expected::Receipt`].
pub(crate) fn into_receipt(answer: Answer) -> Result<Receipt, Error> {
    match answer {
        Answer::Receipt(receipt) => Ok(receipt.into()),
        Answer::Failed(error) => Err(error.into_error()),
        other => Err(unexpected(&other, Expected::Receipt)),
    }
}

/// The facade's result of a call that [`Expected::MaybeReceipt`].
pub(crate) fn into_maybe_receipt(answer: Answer) -> Result<Option<Receipt>, Error> {
    match answer {
        Answer::MaybeReceipt(receipt) => Ok(receipt.map(Receipt::from)),
        Answer::Failed(error) => Err(error.into_error()),
        other => Err(unexpected(&other, Expected::MaybeReceipt)),
    }
}

/// The facade's result of a call that [`Expected::Done`].
pub(crate) fn into_done(answer: Answer) -> Result<(), Error> {
    match answer {
        Answer::Done => Ok(()),
        Answer::Failed(error) => Err(error.into_error()),
        other => Err(unexpected(&other, Expected::Done)),
    }
}

#[cfg(test)]
mod tests {
    use handover_core::{Epoch, Skill, SkillData, SkillName};
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::config::Config;

    fn id<T: std::str::FromStr>(s: &str) -> T
    where
        T::Err: std::fmt::Debug,
    {
        s.parse().unwrap()
    }

    fn text(s: &str) -> MessageText {
        MessageText::new(s).unwrap()
    }

    fn reason(s: &str) -> Reason {
        Reason::new(s).unwrap()
    }

    fn name(s: &str) -> AgentName {
        AgentName::new(s).unwrap()
    }

    /// One call of every kind, and `execute` with several commands.
    fn every_call() -> Vec<Call> {
        let conversation_id = ConversationId::from_uuid(uuid::Uuid::now_v7());
        let command_id = CommandId::new();
        let ana: HumanId = id("ana");
        let bot: AiAgentId = id("faq-bot");
        let acme: TenantId = id("acme");
        let billing: TeamId = id("billing");
        let executes = [
            ConversationCommand::Tick,
            ConversationCommand::Requeue { human: ana.clone() },
            ConversationCommand::Escalate {
                by: handover_core::Assignment {
                    agent_id: bot.clone(),
                    epoch: Epoch(3),
                },
                reason: reason("out of my depth"),
                cause: handover_core::EscalationCause::AgentRequested,
            },
            ConversationCommand::StartSkill {
                by: handover_core::Assignment {
                    agent_id: bot.clone(),
                    epoch: Epoch(1),
                },
                name: SkillName::new("lookup").unwrap(),
                input: SkillData::new("order 42").unwrap(),
            },
            ConversationCommand::RecordAiAction {
                by: handover_core::Assignment {
                    agent_id: bot.clone(),
                    epoch: Epoch(1),
                },
                skill: Skill::new("lookup", "order 42", Ok("shipped".to_owned())).unwrap(),
            },
            ConversationCommand::PostMessage {
                by: Participant::System(handover_core::SystemActor::Backend),
                text: text("maintenance tonight"),
            },
            ConversationCommand::HandOffToAiWith {
                by: ana.clone(),
                agent_id: bot.clone(),
                reason: Some(reason("pricing")),
                context: Some(
                    handover_core::context::Context::new(
                        Some("wants the pro plan".to_owned()),
                        Some("pricing".to_owned()),
                        [("plan", "pro")],
                    )
                    .unwrap(),
                ),
                override_policy: true,
                refused_by: Some(handover_core::rules::RuleVerdict {
                    rule: id("vip-stays-human"),
                    reason: reason("VIP customers stay with people"),
                }),
            },
            ConversationCommand::ReportCouldNotAnswer {
                by: handover_core::Assignment {
                    agent_id: bot.clone(),
                    epoch: Epoch(2),
                },
                reason: None,
            },
            ConversationCommand::ApproveSkill {
                by: ana.clone(),
                skill: SkillName::new("refund").unwrap(),
            },
            ConversationCommand::DenySkill {
                by: ana.clone(),
                skill: SkillName::new("refund").unwrap(),
                reason: reason("already refunded"),
            },
            ConversationCommand::EscalateWith {
                by: handover_core::Assignment {
                    agent_id: bot.clone(),
                    epoch: Epoch(2),
                },
                reason: reason("needs a person"),
                context: handover_core::context::Context::new(
                    Some("tried the FAQ".to_owned()),
                    None,
                    [("order_id", "A-17")],
                )
                .unwrap(),
            },
            ConversationCommand::PostMessageJudged {
                by: Participant::Customer(id("cust-1")),
                text: text("zorblat"),
                cause: handover_core::EscalationCause::Complaint,
                verdict: handover_core::rules::RuleVerdict {
                    rule: id("house-rule"),
                    reason: reason("the customer said zorblat"),
                },
            },
        ];
        let mut calls: Vec<Call> = executes
            .into_iter()
            .map(|command| Call::Execute {
                conversation_id,
                command_id,
                command,
            })
            .collect();
        calls.extend([
            Call::OpenConversation {
                conversation_id,
                command_id,
                customer: id("cust-1"),
                channel: id("web-chat"),
                human: Some(ana.clone()),
            },
            Call::StartConversation {
                conversation_id,
                command_id,
                tenant: acme.clone(),
                customer: id("cust-2"),
                channel: id("whatsapp"),
                team: Some(billing.clone()),
                language: Some(id("pt-BR")),
                human: None,
            },
            Call::PostCustomerMessage {
                conversation_id,
                command_id,
                customer: id("cust-1"),
                text: text("hello"),
            },
            Call::PostHumanMessage {
                conversation_id,
                command_id,
                human: ana.clone(),
                text: text("hi, Ana here"),
            },
            Call::HandOffToAi {
                conversation_id,
                command_id,
                by: ana.clone(),
                agent_id: bot.clone(),
                reason: Some(reason("hours question")),
            },
            Call::Reclaim {
                conversation_id,
                command_id,
                by: ana.clone(),
                reason: None,
            },
            Call::Close {
                conversation_id,
                command_id,
                by: ana.clone(),
                reason: Some(reason("solved")),
            },
            Call::Assign {
                conversation_id,
                command_id,
                by: ana.clone(),
                to: id("bruno"),
            },
            Call::Accept {
                conversation_id,
                command_id,
                by: ana.clone(),
            },
            Call::AcceptNext { by: ana.clone() },
            Call::Transfer {
                conversation_id,
                command_id,
                by: ana.clone(),
                to: TransferTarget::Team(billing.clone()),
                reason: reason("billing matter"),
            },
            Call::Whisper {
                conversation_id,
                command_id,
                by: ana.clone(),
                to: NoteAudience::Ai,
                text: text("offer the refund"),
            },
            Call::RaiseFlag {
                conversation_id,
                command_id,
                by: ana.clone(),
            },
            Call::LowerFlag {
                conversation_id,
                command_id,
                by: ana.clone(),
            },
            Call::RegisterAiAgent {
                agent_id: bot.clone(),
                name: name("FAQ"),
                specialties: vec![id("hours")],
            },
            Call::RegisterAiAgentIn {
                tenant: acme.clone(),
                agent_id: bot.clone(),
                name: name("FAQ"),
                specialties: vec![],
            },
            Call::ActivateAiAgent {
                agent_id: bot.clone(),
            },
            Call::DeactivateAiAgent { agent_id: bot },
            Call::RegisterHuman {
                id: ana.clone(),
                name: name("Ana"),
                role: Role::Supervisor,
                tenant: acme.clone(),
                teams: vec![billing],
                capacity: 3,
            },
            Call::SetPresence {
                human: ana.clone(),
                presence: Presence::Away,
            },
            Call::RemoveHuman { human: ana },
            Call::RouteNow { tenant: acme },
        ]);
        calls
    }

    #[test]
    fn every_call_round_trips() {
        let calls = every_call();
        // Twelve commands through `execute`, and each of the 22 other kinds.
        assert_eq!(calls.len(), 12 + 22);
        for call in calls {
            let bytes = encode_call(&call).unwrap();
            assert_eq!(decode_call(&bytes).unwrap(), call);
        }
    }

    #[test]
    fn calls_route_to_their_tenant_or_stream() {
        for call in every_call() {
            let route = call.tenant_or_conversation();
            match &call {
                Call::Execute { command, .. } => {
                    assert!(matches!(route, Route::Conversation(_)), "{command:?}")
                }
                Call::OpenConversation { .. } | Call::RegisterAiAgent { .. } => {
                    assert_eq!(route, Route::Tenant(TenantId::default_tenant()))
                }
                Call::StartConversation { .. }
                | Call::RegisterAiAgentIn { .. }
                | Call::RegisterHuman { .. }
                | Call::RouteNow { .. } => assert_eq!(route, Route::Tenant(id("acme"))),
                Call::AcceptNext { .. } | Call::SetPresence { .. } | Call::RemoveHuman { .. } => {
                    assert_eq!(route, Route::Human(id("ana")))
                }
                Call::ActivateAiAgent { .. } | Call::DeactivateAiAgent { .. } => {
                    assert_eq!(route, Route::AiAgent(id("faq-bot")))
                }
                _ => assert!(matches!(route, Route::Conversation(_)), "{call:?}"),
            }
            // Every conversation write runs as a command with an id, and only those do.
            assert_eq!(
                call.conversation_command().is_some(),
                call.expects() == Expected::Receipt,
                "{call:?}"
            );
        }
        let open = Call::Execute {
            conversation_id: ConversationId::from_uuid(uuid::Uuid::now_v7()),
            command_id: CommandId::new(),
            command: ConversationCommand::Start {
                tenant: id("acme"),
                customer: id("c"),
                channel: id("web"),
                team: None,
                language: None,
                human: None,
            },
        };
        assert_eq!(open.tenant_or_conversation(), Route::Tenant(id("acme")));
    }

    /// `error` through the wire and back.
    fn across(error: Error) -> Error {
        let bytes = encode_answer(&Answer::Failed(error.into()));
        match decode_answer(&bytes).unwrap() {
            Answer::Failed(wire) => wire.into_error(),
            other => panic!("not a failure: {other:?}"),
        }
    }

    #[test]
    fn every_error_comes_back_as_its_variant() {
        let conversation_id = ConversationId::from_uuid(uuid::Uuid::now_v7());
        let rejections = [
            Rejection::NotAwaitingHuman,
            Rejection::HumanAtCapacity {
                human_id: id("ana"),
                load: 3,
                capacity: 3,
            },
            Rejection::ParticipantNotAllowed {
                participant: "customer",
                action: ConversationCommand::Tick.name(),
            },
            Rejection::ForeignEvent {
                event_type: "internal_note by the customer",
            },
        ];
        for rejection in rejections {
            match across(Error::Rejected(rejection.clone())) {
                Error::Rejected(back) => assert_eq!(back, rejection),
                other => panic!("{other:?}"),
            }
        }
        let invalid = InvalidInput::TooLong {
            what: "message",
            len: 9000,
            max: 8000,
        };
        match across(Error::InvalidInput(invalid.clone())) {
            Error::InvalidInput(back) => assert_eq!(back, invalid),
            other => panic!("{other:?}"),
        }
        match across(Error::UnknownConversation(conversation_id)) {
            Error::UnknownConversation(back) => assert_eq!(back, conversation_id),
            other => panic!("{other:?}"),
        }
        match across(Error::AiAgentNotRunning(id("faq-bot"))) {
            Error::AiAgentNotRunning(back) => assert_eq!(back, id::<AiAgentId>("faq-bot")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(across(Error::Concurrency), Error::Concurrency));
        assert!(matches!(across(Error::Overloaded), Error::Overloaded));
        assert!(matches!(across(Error::Stopped), Error::Stopped));
        assert!(matches!(
            across(Error::Store(StoreError::NotOwner { shard: 17 })),
            Error::Store(StoreError::NotOwner { shard: 17 })
        ));
        assert!(matches!(
            across(Error::Store(StoreError::RecordTooLarge { len: 9, max: 8 })),
            Error::Store(StoreError::RecordTooLarge { len: 9, max: 8 })
        ));
        assert!(matches!(
            across(Error::Store(StoreError::Closed)),
            Error::Store(StoreError::Closed)
        ));
        // The others keep their text only.
        let io = StoreError::from(std::io::Error::other("disk on fire"));
        let text = io.to_string();
        match across(Error::Store(io)) {
            Error::Store(StoreError::Engine(message)) => assert_eq!(message, text),
            other => panic!("{other:?}"),
        }
        match across(Error::Store(StoreError::Engine(
            "pool exhausted".to_owned(),
        ))) {
            Error::Store(StoreError::Engine(message)) => {
                assert_eq!(message, "storage engine failed: pool exhausted")
            }
            other => panic!("{other:?}"),
        }
        // A name this version does not know reads back as "unknown"; a kind with nothing
        // to rebuild it from is a store error with the text.
        let mut wire = WireError::from(Error::Rejected(Rejection::ParticipantNotAllowed {
            participant: "human",
            action: "assign",
        }));
        // The message says "a human may not assign a conversation": rename the action only,
        // in the rejection that follows it.
        let mut bytes = encode_answer(&Answer::Failed(wire.clone()));
        let at = bytes.windows(7).rposition(|w| w == b"\x06assign").unwrap();
        bytes[at + 1..at + 7].copy_from_slice(b"zzzzzz");
        match decode_answer(&bytes).unwrap() {
            Answer::Failed(back) => assert_eq!(
                back.into_error().rejection(),
                Some(&Rejection::ParticipantNotAllowed {
                    participant: "human",
                    action: "unknown",
                })
            ),
            other => panic!("{other:?}"),
        }
        wire.rejection = None;
        assert!(matches!(
            wire.into_error(),
            Error::Store(StoreError::Engine(_))
        ));
    }

    #[test]
    fn bad_bytes_are_a_typed_error() {
        let call = encode_call(&every_call()[13]).unwrap();
        let mut trailing = call.clone();
        trailing.push(0);
        let inputs: Vec<Vec<u8>> = vec![
            Vec::new(),
            vec![0xff; 16],
            vec![200],
            call[..call.len() / 2].to_vec(),
            trailing,
            vec![0; WIRE_BYTES_MAX + 1],
        ];
        for bytes in &inputs {
            let error = decode_call(bytes).unwrap_err();
            assert_eq!(error.kind, ErrorKind::Malformed, "{bytes:?}");
            assert!(matches!(
                error.into_error(),
                Error::Store(StoreError::Engine(_))
            ));
            assert_eq!(decode_answer(bytes).unwrap_err().kind, ErrorKind::Malformed);
        }
        // A string claiming to be longer than any input is refused without allocating it.
        let mut huge = vec![2u8]; // `OpenConversation`'s tag, then a length of 2^62.
        huge.extend([253, 0, 0, 0, 0, 0, 0, 0, 64]);
        assert_eq!(decode_call(&huge).unwrap_err().kind, ErrorKind::Malformed);
        // Random bytes and random damage to real calls never panic.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let calls: Vec<Vec<u8>> = every_call()
            .iter()
            .map(|call| encode_call(call).unwrap())
            .collect();
        for round in 0..5_000 {
            let mut bytes = if round % 2 == 0 {
                let len = rng.gen_range(0..64);
                (0..len).map(|_| rng.gen()).collect()
            } else {
                calls[rng.gen_range(0..calls.len())].clone()
            };
            if !bytes.is_empty() {
                let at = rng.gen_range(0..bytes.len());
                bytes[at] = rng.gen();
            }
            let _ = decode_call(&bytes);
            let _ = decode_answer(&bytes);
        }
        // A call too large to send is refused before it is.
        let teams = (0..200_000).map(|i| id(&format!("team-{i}"))).collect();
        let too_large = Call::RegisterHuman {
            id: id("ana"),
            name: name("Ana"),
            role: Role::Agent,
            tenant: TenantId::default_tenant(),
            teams,
            capacity: 1,
        };
        assert!(matches!(
            encode_call(&too_large),
            Err(WireError {
                kind: ErrorKind::Malformed,
                ..
            })
        ));
        // So is an answer, which becomes the error saying so; one just under the limit is
        // sent as it is.
        let receipt = |events: u64| {
            let events = (0..events)
                .map(|seq| RecordedEvent {
                    position: seq,
                    stream: handover_core::StreamId::Conversation(ConversationId::from_uuid(
                        uuid::Uuid::now_v7(),
                    )),
                    seq,
                    recorded_at: handover_store::RecordedAt(0),
                    event: handover_core::Event::Human(handover_core::HumanEvent::Removed {
                        human_id: id("someone-with-a-long-id"),
                    }),
                })
                .collect();
            Answer::Receipt(WireReceipt {
                conversation_id: ConversationId::from_uuid(uuid::Uuid::now_v7()),
                events,
                status: Status::Closed,
            })
        };
        let large = receipt(10_000);
        let bytes = encode_answer(&large);
        assert!(bytes.len() < WIRE_BYTES_MAX);
        assert!(decode_answer(&bytes).unwrap() == large);
        match decode_answer(&encode_answer(&receipt(40_000))).unwrap() {
            Answer::Failed(WireError {
                kind: ErrorKind::Other,
                ..
            }) => {}
            other => panic!("{:?}", std::mem::discriminant(&other)),
        }
    }

    #[test]
    fn an_answer_of_the_wrong_kind_is_an_error() {
        assert!(into_receipt(Answer::Done).is_err());
        assert!(into_done(Answer::MaybeReceipt(None)).is_err());
        assert!(matches!(
            into_maybe_receipt(Answer::MaybeReceipt(None)),
            Ok(None)
        ));
        assert!(into_done(Answer::Done).is_ok());
    }

    /// `call` as a non-owner would send it, run by the owner, its answer as the caller reads it.
    async fn forward(handover: &Handover, call: &Call) -> Answer {
        let call = decode_call(&encode_call(call).unwrap()).unwrap();
        let answer = run(handover, call).await;
        decode_answer(&encode_answer(&answer)).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn calls_run_on_the_owner_and_answer_receipts() {
        let dir = tempfile::tempdir().unwrap();
        let handover = Handover::start(Config::new(dir.path()).workers(2))
            .await
            .unwrap();
        let ana: HumanId = id("ana");
        let bot: AiAgentId = id("faq-bot");
        let register = Call::RegisterHuman {
            id: ana.clone(),
            name: name("Ana"),
            role: Role::Supervisor,
            tenant: TenantId::default_tenant(),
            teams: vec![],
            capacity: 5,
        };
        into_done(forward(&handover, &register).await).unwrap();
        let available = Call::SetPresence {
            human: ana.clone(),
            presence: Presence::Available,
        };
        into_done(forward(&handover, &available).await).unwrap();
        // Run again (a takeover re-runs it): the rules refuse the repeat.
        match into_done(forward(&handover, &available).await) {
            Err(Error::Rejected(Rejection::PresenceUnchanged { .. })) => {}
            other => panic!("{other:?}"),
        }

        let conversation_id = ConversationId::from_uuid(uuid::Uuid::now_v7());
        let open = Call::OpenConversation {
            conversation_id,
            command_id: CommandId::new(),
            customer: id("cust-1"),
            channel: id("web-chat"),
            human: Some(ana.clone()),
        };
        let opened = into_receipt(forward(&handover, &open).await).unwrap();
        assert_eq!(opened.conversation_id, conversation_id);
        assert_eq!(opened.status.label(), "human-handled");
        assert!(!opened.events.is_empty());

        let post = Call::PostCustomerMessage {
            conversation_id,
            command_id: CommandId::new(),
            customer: id("cust-1"),
            text: text("When are you open?"),
        };
        let posted = into_receipt(forward(&handover, &post).await).unwrap();
        let seqs: Vec<u64> = posted.events.iter().map(|e| e.seq).collect();
        // The same call again (its first owner died before answering): recorded once, and
        // answered with the first run's events.
        let again = into_receipt(forward(&handover, &post).await).unwrap();
        assert_eq!(again.events.iter().map(|e| e.seq).collect::<Vec<_>>(), seqs);
        let history = handover.history(conversation_id).await.unwrap();
        assert_eq!(history.len() as u64, *seqs.last().unwrap());

        // An AI agent registered and active, but attached to no node here.
        for call in [
            Call::RegisterAiAgent {
                agent_id: bot.clone(),
                name: name("FAQ"),
                specialties: vec![id("hours")],
            },
            Call::ActivateAiAgent {
                agent_id: bot.clone(),
            },
        ] {
            into_done(forward(&handover, &call).await).unwrap();
        }
        let hand_off = Call::HandOffToAi {
            conversation_id,
            command_id: CommandId::new(),
            by: ana.clone(),
            agent_id: bot.clone(),
            reason: None,
        };
        match into_receipt(forward(&handover, &hand_off).await) {
            Err(Error::AiAgentNotRunning(agent)) => assert_eq!(agent, bot),
            other => panic!("{other:?}"),
        }
        let reclaim = Call::Reclaim {
            conversation_id,
            command_id: CommandId::new(),
            by: ana.clone(),
            reason: None,
        };
        match into_receipt(forward(&handover, &reclaim).await) {
            Err(Error::Rejected(Rejection::NotAiActive)) => {}
            other => panic!("{other:?}"),
        }
        let flag = Call::RaiseFlag {
            conversation_id,
            command_id: CommandId::new(),
            by: ana.clone(),
        };
        let flagged = into_receipt(forward(&handover, &flag).await).unwrap();
        assert_eq!(flagged.events.len(), 1);

        let nothing_waits = forward(&handover, &Call::AcceptNext { by: ana.clone() }).await;
        assert!(matches!(into_maybe_receipt(nothing_waits), Ok(None)));
        let route = Call::RouteNow {
            tenant: TenantId::default_tenant(),
        };
        into_done(forward(&handover, &route).await).unwrap();

        let close = Call::Close {
            conversation_id,
            command_id: CommandId::new(),
            by: ana,
            reason: Some(reason("answered")),
        };
        let closed = into_receipt(forward(&handover, &close).await).unwrap();
        assert_eq!(closed.status, Status::Closed);
        handover.shutdown().await;
    }
}
