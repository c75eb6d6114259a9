//! The embedder's own escalation rules: code the backend registers
//! ([`RuntimeSettings::rule`](crate::RuntimeSettings::rule)) beside the policy's built-in
//! rules. The runtime runs them where the facade call happens, before the command is sent to
//! the conversation (or forwarded to the node that decides for it), and puts their verdict in
//! the command, so the domain records it and a replay never runs the embedder's code again.

use std::sync::Arc;

use async_trait::async_trait;
use handover_core::rules::{RuleName, RuleVerdict};
use handover_core::{
    AiAgentId, ConversationCommand, ConversationId, EscalationCause, MessageText, Participant,
    Reason, Status, StreamId,
};
use handover_store::{RecordedEvent, SeqRange};
use tracing::warn;

use crate::facade::Handover;
use crate::view::ConversationView;

/// How many of a conversation's last events a rule is given ([`RuleInput::history`]).
pub const RULE_HISTORY_EVENTS_MAX: u64 = 50;

/// What one of the embedder's rules reads: the conversation as it is now, its last events and,
/// for a customer's message, the message.
#[derive(Debug)]
#[non_exhaustive]
pub struct RuleInput<'a> {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// Its state before the command: status (who holds it), tenant, team, language, the topic
    /// the latest context gave ([`ConversationView::topic`]), the concerns raised, counts.
    pub view: &'a ConversationView,
    /// Its last events before the command, oldest first: at most
    /// [`RULE_HISTORY_EVENTS_MAX`].
    pub history: &'a [Arc<RecordedEvent>],
    /// The customer's message being judged (`None` at a handoff).
    pub text: Option<&'a MessageText>,
}

impl<'a> RuleInput<'a> {
    /// An input, e.g. to test a rule on its own.
    pub fn new(
        conversation_id: ConversationId,
        view: &'a ConversationView,
        history: &'a [Arc<RecordedEvent>],
        text: Option<&'a MessageText>,
    ) -> RuleInput<'a> {
        RuleInput {
            conversation_id,
            view,
            history,
            text,
        }
    }
}

/// One of the embedder's own escalation rules, registered with
/// [`RuntimeSettings::rule`](crate::RuntimeSettings::rule) (or [`Config::rule`](crate::Config::rule)).
///
/// The policy's built-in rules ([`Rules`](crate::Rules)) decide first, in the policy's order;
/// then the embedder's, in registration order, and the first that returns a verdict decides:
///
/// - on a customer's message while an AI agent holds the conversation
///   ([`Handover::post_customer_message`], or [`Handover::execute`] of a customer's
///   `PostMessage`): [`on_customer_message`](EscalationRule::on_customer_message) may escalate
///   it to humans. The message and the escalation are one append, recorded as
///   `escalated_to_human` with this rule's name and the policy's version, unless a built-in
///   rule escalates on the same message first (its verdict is recorded instead);
/// - before a handoff to AI ([`Handover::hand_off_to_ai`], [`Handover::hand_off_to_ai_with`],
///   or their commands through [`Handover::execute`]):
///   [`before_handoff`](EscalationRule::before_handoff) may refuse it, with
///   [`Rejection::RefusedByRule`](crate::Rejection::RefusedByRule) naming this rule, unless a
///   built-in rule refuses it first; a supervisor may override the refusal
///   ([`HandOff::override_policy`](crate::HandOff::override_policy)), which is recorded.
///
/// Rules run only when some are registered; without any, nothing is read or awaited. They run
/// where the facade is called, before the command reaches its conversation: keep them quick,
/// and make them decide from what [`RuleInput`] gives (a conversation changes meanwhile, and
/// the domain still applies every built-in check when the command arrives).
///
/// ```
/// use handover::{async_trait, EscalationCause, EscalationRule, Reason, RuleInput, RuleName};
///
/// /// Customers who mention a lawyer go to a person at once.
/// struct Lawyers(RuleName);
///
/// #[async_trait]
/// impl EscalationRule for Lawyers {
///     fn name(&self) -> &RuleName {
///         &self.0
///     }
///
///     async fn on_customer_message(
///         &self,
///         input: &RuleInput<'_>,
///     ) -> Option<(EscalationCause, Reason)> {
///         let text = input.text?.as_str().to_lowercase();
///         text.contains("lawyer").then(|| {
///             (EscalationCause::Complaint, Reason::new("the customer mentions a lawyer").unwrap())
///         })
///     }
/// }
/// ```
#[async_trait]
pub trait EscalationRule: Send + Sync {
    /// The rule's name, recorded with every decision it makes (unique among the embedder's
    /// rules and the policy's, so the log says which rule decided).
    fn name(&self) -> &RuleName;

    /// On a customer's message while an AI agent holds the conversation: the cause and reason
    /// to escalate it to humans, or `None` (the default). The causes only the clock or the
    /// runtime may claim (`AiTimeout`, `AgentDeactivated`), and `CustomerAskedForHuman`, which
    /// the audit pairs with the lexicon's request for a human (the policy's `ask_for_person`
    /// rule records it), are refused, and the rule is then passed over.
    async fn on_customer_message(
        &self,
        input: &RuleInput<'_>,
    ) -> Option<(EscalationCause, Reason)> {
        let _ = input;
        None
    }

    /// Before a handoff to the AI agent `agent`: why to refuse it, or `None` (the default).
    async fn before_handoff(&self, input: &RuleInput<'_>, agent: &AiAgentId) -> Option<Reason> {
        let _ = (input, agent);
        None
    }
}

/// What a command needs the embedder's rules for.
enum Moment {
    Message,
    Handoff(AiAgentId),
}

/// Runs the embedder's rules on `command` and returns it with their verdict: a customer's
/// message on an AI-active conversation that a rule escalates becomes `PostMessageJudged`; a
/// handoff a rule refuses becomes `HandOffToAiWith` with `refused_by`. Other commands, and
/// every command when no rule is registered, come back unchanged.
pub(crate) async fn judge(
    handover: &Handover,
    rules: &[Arc<dyn EscalationRule>],
    conversation_id: ConversationId,
    command: ConversationCommand,
) -> Result<ConversationCommand, crate::Error> {
    if rules.is_empty() {
        return Ok(command);
    }
    let moment = match &command {
        ConversationCommand::PostMessage {
            by: Participant::Customer(_),
            ..
        } => Moment::Message,
        ConversationCommand::HandOffToAi { agent_id, .. }
        | ConversationCommand::HandOffToAiWith {
            agent_id,
            refused_by: None,
            ..
        } => Moment::Handoff(agent_id.clone()),
        _ => return Ok(command),
    };
    // A conversation that cannot be read here is the command's to fail on.
    let Ok(view) = handover.conversation(conversation_id).await else {
        return Ok(command);
    };
    if view.closed {
        return Ok(command);
    }
    if matches!(moment, Moment::Message) && !matches!(view.status, Status::AiActive { .. }) {
        return Ok(command);
    }
    let history = recent(handover, conversation_id, view.events).await?;
    match (moment, command) {
        (Moment::Message, ConversationCommand::PostMessage { by, text }) => {
            let input = RuleInput::new(conversation_id, &view, &history, Some(&text));
            for rule in rules {
                let Some((cause, reason)) = rule.on_customer_message(&input).await else {
                    continue;
                };
                if matches!(
                    cause,
                    EscalationCause::AiTimeout
                        | EscalationCause::AgentDeactivated
                        | EscalationCause::CustomerAskedForHuman
                ) {
                    warn!(rule = %rule.name(), cause = cause.as_str(), "an escalation rule claimed a cause only the runtime may; passed over");
                    continue;
                }
                return Ok(ConversationCommand::PostMessageJudged {
                    by,
                    text,
                    cause,
                    verdict: RuleVerdict {
                        rule: rule.name().clone(),
                        reason,
                    },
                });
            }
            Ok(ConversationCommand::PostMessage { by, text })
        }
        (Moment::Handoff(agent_id), command) => {
            let input = RuleInput::new(conversation_id, &view, &history, None);
            let mut refusal = None;
            for rule in rules {
                if let Some(reason) = rule.before_handoff(&input, &agent_id).await {
                    refusal = Some(RuleVerdict {
                        rule: rule.name().clone(),
                        reason,
                    });
                    break;
                }
            }
            let Some(verdict) = refusal else {
                return Ok(command);
            };
            Ok(match command {
                ConversationCommand::HandOffToAi {
                    by,
                    agent_id,
                    reason,
                } => ConversationCommand::HandOffToAiWith {
                    by,
                    agent_id,
                    reason,
                    context: None,
                    override_policy: false,
                    refused_by: Some(verdict),
                },
                ConversationCommand::HandOffToAiWith {
                    by,
                    agent_id,
                    reason,
                    context,
                    override_policy,
                    ..
                } => ConversationCommand::HandOffToAiWith {
                    by,
                    agent_id,
                    reason,
                    context,
                    override_policy,
                    refused_by: Some(verdict),
                },
                other => other,
            })
        }
        (_, command) => Ok(command),
    }
}

/// The conversation's last [`RULE_HISTORY_EVENTS_MAX`] events up to `version`.
async fn recent(
    handover: &Handover,
    conversation_id: ConversationId,
    version: u64,
) -> Result<Vec<Arc<RecordedEvent>>, crate::Error> {
    if version == 0 {
        return Ok(Vec::new());
    }
    let range = SeqRange {
        from: version.saturating_sub(RULE_HISTORY_EVENTS_MAX - 1).max(1),
        to: version,
        max: usize::MAX,
    };
    let records = handover
        .runtime()
        .conversations
        .store
        .read_stream(&StreamId::Conversation(conversation_id), range)
        .await?;
    Ok(records.into_iter().map(Arc::new).collect())
}
