//! Validated identifiers. Each is checked once, in its constructor (and when decoded), so no
//! other code can hold an empty, oversized or control-character id.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::limits::{AGENT_NAME_BYTES_MAX, IDENTIFIER_BYTES_MAX};

/// Why a piece of caller input was refused before it reached any rule.
///
/// Serializable like [`crate::Rejection`]; a field name this version does not know reads back
/// as `"unknown"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum InvalidInput {
    /// The value was empty or only whitespace.
    #[error("{what} must not be empty")]
    Empty {
        /// Which field.
        #[serde(deserialize_with = "crate::names::deserialize")]
        what: crate::names::Name,
    },
    /// The value was longer than its limit, counted in bytes.
    #[error("{what} is {len} bytes long; the limit is {max} bytes")]
    TooLong {
        /// Which field.
        #[serde(deserialize_with = "crate::names::deserialize")]
        what: crate::names::Name,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// The value held a control character (or, for identifiers, whitespace at either end).
    #[error("{what} contains a control character or surrounding whitespace")]
    BadCharacter {
        /// Which field.
        #[serde(deserialize_with = "crate::names::deserialize")]
        what: crate::names::Name,
    },
    /// The value did not parse as a conversation id.
    #[error("{value:?} is not a conversation id (expected a UUID)")]
    NotAConversationId {
        /// The text given.
        value: String,
    },
    /// The value did not parse as a command id.
    #[error("{value:?} is not a command id (expected a UUID)")]
    NotACommandId {
        /// The text given.
        value: String,
    },
    /// A list held more items than its limit.
    #[error("{what} has {len} items; the limit is {max}")]
    TooMany {
        /// Which field.
        #[serde(deserialize_with = "crate::names::deserialize")]
        what: crate::names::Name,
        /// How many were given.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A list named the same item twice.
    #[error("{what} is given twice")]
    Duplicate {
        /// Which item.
        #[serde(deserialize_with = "crate::names::deserialize")]
        what: crate::names::Name,
    },
}

pub(crate) fn check_label(what: &'static str, value: &str, max: usize) -> Result<(), InvalidInput> {
    if value.trim().is_empty() {
        return Err(InvalidInput::Empty { what });
    }
    if value.len() > max {
        return Err(InvalidInput::TooLong {
            what,
            len: value.len(),
            max,
        });
    }
    if value.chars().any(char::is_control) || value.trim() != value {
        return Err(InvalidInput::BadCharacter { what });
    }
    Ok(())
}

/// Declares a validated string newtype whose every value passed `$check`. Decoding goes
/// through the same check (`serde(try_from)`), so a forged record cannot smuggle an invalid
/// value in either. `[$extra]` adds derives (ordering, for identifiers).
macro_rules! validated_string {
    ($(#[$doc:meta])* $name:ident, [$($extra:ident),*], $check:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize, $($extra),*)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps `value`.
            pub fn new(value: impl Into<String>) -> Result<Self, InvalidInput> {
                let value = value.into();
                let check: fn(&str) -> Result<(), InvalidInput> = $check;
                check(&value)?;
                Ok(Self(value))
            }

            /// The value as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidInput;
            fn try_from(value: String) -> Result<Self, InvalidInput> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidInput;
            fn from_str(value: &str) -> Result<Self, InvalidInput> {
                Self::new(value)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(&self.0, f)
            }
        }
    };
}
pub(crate) use validated_string;

/// Declares an identifier: non-empty, bounded, no control characters or surrounding spaces.
macro_rules! label {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:expr) => {
        validated_string!($(#[$doc])* $name, [PartialOrd, Ord], |v| check_label($what, v, $max));
    };
}

label!(
    /// An AI agent's id, chosen by the backend (e.g. `faq-bot`).
    AiAgentId, "AI agent id", IDENTIFIER_BYTES_MAX
);
label!(
    /// A human agent's id, as the backend knows them.
    HumanId, "human agent id", IDENTIFIER_BYTES_MAX
);
label!(
    /// A customer's id, as the backend knows them.
    CustomerId, "customer id", IDENTIFIER_BYTES_MAX
);
label!(
    /// The channel a conversation runs on (e.g. `whatsapp`, `web-chat`).
    Channel, "channel", IDENTIFIER_BYTES_MAX
);
label!(
    /// The name of a skill an AI agent executes (e.g. `lookup_price`).
    SkillName, "skill name", IDENTIFIER_BYTES_MAX
);
label!(
    /// A topic an AI agent specialises in (e.g. `pricing`).
    Specialty, "specialty", IDENTIFIER_BYTES_MAX
);
label!(
    /// An AI agent's or a human's display name, shown beside the conversation's controller.
    AgentName, "AI agent name", AGENT_NAME_BYTES_MAX
);
label!(
    /// The contact center a conversation, a human or an AI agent belongs to. Nothing crosses
    /// tenants: a human of one tenant cannot see or act on another tenant's conversations.
    TenantId, "tenant id", IDENTIFIER_BYTES_MAX
);
label!(
    /// A team of humans and its queue (e.g. `billing`). Conversations that wait for a human
    /// wait in their team's queue.
    TeamId, "team id", IDENTIFIER_BYTES_MAX
);
label!(
    /// A customer's language as a BCP 47 tag (`en`, `pt-BR`, `es`): customer notices are
    /// written in it where a text exists.
    Language, "language", IDENTIFIER_BYTES_MAX
);

impl TenantId {
    /// The tenant of everything created without one (and of logs written before tenants):
    /// `default`.
    pub fn default_tenant() -> TenantId {
        TenantId(String::from("default"))
    }
}

impl Language {
    /// English, the language of notices when the customer's is unknown.
    pub fn english() -> Language {
        Language(String::from("en"))
    }

    /// The primary subtag, lower-cased: `pt` for `pt-BR`.
    pub fn primary(&self) -> String {
        self.0
            .split(['-', '_'])
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase()
    }
}

/// A conversation's id: a UUID v7, so ids sort by creation time. The runtime mints it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConversationId(Uuid);

impl ConversationId {
    /// Wraps an existing UUID.
    pub const fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    /// The underlying UUID.
    pub const fn as_uuid(&self) -> &Uuid {
        &self.0
    }

    /// The 16 bytes of the UUID, big-endian, as stored in keys.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }
}

impl std::str::FromStr for ConversationId {
    type Err = InvalidInput;
    fn from_str(value: &str) -> Result<Self, InvalidInput> {
        Uuid::parse_str(value)
            .map(Self)
            .map_err(|_| InvalidInput::NotAConversationId {
                value: value.chars().take(64).collect(),
            })
    }
}

impl fmt::Display for ConversationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for ConversationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Names one command a caller sends, so that a retry of it (after a timeout, a lost reply, or
/// an answer that said to retry) is recorded once. The caller mints it
/// (a UUID v7) and sends the same id with every retry of the same command.
///
/// ```
/// use handover_core::CommandId;
///
/// let id = CommandId::new();
/// assert_eq!(id.to_string().parse::<CommandId>().unwrap(), id);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CommandId(Uuid);

impl CommandId {
    /// A new id, a UUID v7.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// Wraps an existing UUID.
    pub const fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    /// The underlying UUID.
    pub const fn as_uuid(&self) -> &Uuid {
        &self.0
    }

    /// The 16 bytes of the UUID, big-endian, as stored in keys.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }
}

impl std::str::FromStr for CommandId {
    type Err = InvalidInput;
    fn from_str(value: &str) -> Result<Self, InvalidInput> {
        Uuid::parse_str(value)
            .map(Self)
            .map_err(|_| InvalidInput::NotACommandId {
                value: value.chars().take(64).collect(),
            })
    }
}

impl fmt::Display for CommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for CommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "command {}", self.0)
    }
}

/// Counts the handoffs of one conversation. Each handoff starts a new epoch; an AI agent's
/// commands carry the epoch of the assignment they belong to, so a reply computed for an
/// assignment that has since ended (reclaimed, escalated, or handed to the same agent again)
/// is rejected instead of recorded.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Epoch(pub u64);

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "epoch {}", self.0)
    }
}

/// One stream of the log: each conversation is one, each AI agent's registration is one, and
/// each human's registration and presence is one.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
///
/// Deliberately exhaustive: every store backend keys each kind of stream in its own way, so a
/// new kind is a change every backend must make, and the compiler should say where.
pub enum StreamId {
    /// The registration and activation history of one AI agent.
    AiAgent(AiAgentId),
    /// One customer conversation.
    Conversation(ConversationId),
    /// The registration and presence history of one human (agent or supervisor).
    Human(HumanId),
}

impl StreamId {
    /// The conversation this stream belongs to, if it is a conversation stream.
    pub fn conversation_id(&self) -> Option<ConversationId> {
        match self {
            StreamId::Conversation(id) => Some(*id),
            StreamId::AiAgent(_) | StreamId::Human(_) => None,
        }
    }
}

impl fmt::Display for StreamId {
    /// `conversation-<uuid>`, `ai-agent-<id>` or `human-<id>`, the names the audit export uses.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamId::AiAgent(id) => write!(f, "ai-agent-{id}"),
            StreamId::Human(id) => write!(f, "human-{id}"),
            StreamId::Conversation(id) => write!(f, "conversation-{id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_reject_empty_long_and_control_characters() {
        assert_eq!(
            AiAgentId::new(""),
            Err(InvalidInput::Empty {
                what: "AI agent id"
            })
        );
        assert_eq!(
            HumanId::new("   "),
            Err(InvalidInput::Empty {
                what: "human agent id"
            })
        );
        assert_eq!(
            CustomerId::new("a\u{0}b"),
            Err(InvalidInput::BadCharacter {
                what: "customer id"
            })
        );
        assert_eq!(
            Channel::new(" web"),
            Err(InvalidInput::BadCharacter { what: "channel" })
        );
        let long = "x".repeat(IDENTIFIER_BYTES_MAX + 1);
        assert!(matches!(
            SkillName::new(long),
            Err(InvalidInput::TooLong {
                len: 129,
                max: 128,
                ..
            })
        ));
        // The limit counts bytes, not characters: 43 three-byte characters are 129 bytes.
        assert!(matches!(
            Specialty::new("€".repeat(43)),
            Err(InvalidInput::TooLong { len: 129, .. })
        ));
        assert_eq!(AiAgentId::new("faq-bot").unwrap().as_str(), "faq-bot");
    }

    #[test]
    fn conversation_ids_parse_or_say_why_not() {
        let id: ConversationId = "0190f1f0-0000-7000-8000-000000000001".parse().unwrap();
        assert_eq!(id.to_string(), "0190f1f0-0000-7000-8000-000000000001");
        let err = "nope".parse::<ConversationId>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"nope\" is not a conversation id (expected a UUID)"
        );
    }

    #[test]
    fn stream_names_are_stable() {
        let id: ConversationId = "0190f1f0-0000-7000-8000-000000000001".parse().unwrap();
        assert_eq!(
            StreamId::Conversation(id).to_string(),
            "conversation-0190f1f0-0000-7000-8000-000000000001"
        );
        assert_eq!(
            StreamId::AiAgent(AiAgentId::new("faq").unwrap()).to_string(),
            "ai-agent-faq"
        );
    }
}
