//! The fixed names some rejections and input errors carry as `&'static str` (which participant,
//! which command, which field, which event), and how such a name is read back when one of them
//! is decoded: matched against the names the crate uses, so decoding needs no leaked string.

use serde::{Deserialize, Deserializer};

/// `&'static str`, spelled so that serde's derive does not take the field for one borrowed
/// from the input (which would make the type decodable only from `'static` bytes).
pub(crate) type Name = &'static str;

/// What a name that is not one of [`KNOWN`] decodes as (a peer running another version).
pub(crate) const UNKNOWN: &str = "unknown";

/// Every `&'static str` the crate puts in a [`crate::Rejection`] or an [`crate::InvalidInput`].
const KNOWN: &[&str] = &[
    // Participant kinds (`Rejection::ParticipantNotAllowed::participant`).
    "customer",
    "human",
    "AI agent",
    "system",
    // Conversation command names (`ConversationCommand::name`).
    "open",
    "post_message",
    "hand_off_to_ai",
    "record_ai_action",
    "reclaim",
    "escalate",
    "close",
    "start",
    "assign",
    "accept",
    "transfer",
    "requeue",
    "whisper",
    "raise_flag",
    "lower_flag",
    "tick",
    "start_skill",
    "hand_off_to_ai_with",
    "report_could_not_answer",
    "approve_skill",
    "deny_skill",
    "escalate_with",
    "post_message_judged",
    // Fields of caller input (`InvalidInput::*::what`).
    "AI agent id",
    "human agent id",
    "customer id",
    "channel",
    "skill name",
    "specialty",
    "AI agent name",
    "tenant id",
    "team id",
    "language",
    "message",
    "reason",
    "skill data",
    "summary",
    "variable name",
    "variable value",
    "context variables",
    "context variable",
    "rule name",
    "policy version",
    // Event type names (`Event::type_name`), and the foreign events the rules name.
    "ai_agent_registered",
    "ai_agent_activated",
    "ai_agent_deactivated",
    "human_registered",
    "human_presence_changed",
    "human_removed",
    "conversation_opened",
    "message_posted",
    "handed_off_to_ai",
    "ai_action_recorded",
    "reclaimed",
    "escalated_to_human",
    "conversation_closed",
    "awaiting_human",
    "human_assigned",
    "transferred",
    "sla_warning",
    "sla_breached",
    "ai_reply_overdue",
    "customer_notice",
    "internal_note",
    "flag_raised",
    "flag_lowered",
    "ai_skill_started",
    "ai_could_not_answer",
    "policy_overridden",
    "skill_approval_requested",
    "skill_approved",
    "skill_denied",
    "context_shared",
    "message_posted by the system",
    "a second SLA event for the same wait",
    "internal_note by the customer",
    "context_shared by the customer or the system",
];

/// `name` as the crate's own static string, or [`UNKNOWN`].
pub(crate) fn intern(name: &str) -> &'static str {
    KNOWN
        .iter()
        .copied()
        .find(|known| *known == name)
        .unwrap_or(UNKNOWN)
}

/// Reads a name back (`#[serde(deserialize_with = "crate::names::deserialize")]`).
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<&'static str, D::Error> {
    let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
    Ok(intern(&name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ConversationCommand, Event, HumanEvent, HumanId};

    #[test]
    fn the_crate_s_names_read_back_as_themselves_and_others_as_unknown() {
        assert_eq!(intern(ConversationCommand::Tick.name()), "tick");
        let removed = Event::Human(HumanEvent::Removed {
            human_id: HumanId::new("ana").unwrap(),
        });
        assert_eq!(intern(removed.type_name()), "human_removed");
        assert_eq!(intern("AI agent"), "AI agent");
        assert_eq!(intern("no such name"), UNKNOWN);
    }
}
