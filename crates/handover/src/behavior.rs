//! What a backend implements to put its model behind an AI agent, and the session through
//! which that code answers, runs skills, escalates or closes.

use std::collections::VecDeque;
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt as _;
use handover_core::context::Context;
use handover_core::{
    Assignment, Author, ConversationCommand, ConversationEvent, ConversationId, EscalationCause,
    Event, MessageText, Participant, Reason, Rejection, Skill, SkillData, SkillName, SkillOutcome,
};
use handover_store::RecordedEvent;
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::runtime::Runtime;
use crate::view::Receipt;
use crate::watch::Watch;

/// An error from an AI agent's own code. The runtime logs it and escalates the conversation
/// to humans, so the customer is never left waiting on a failed agent.
pub type AgentError = Box<dyn std::error::Error + Send + Sync>;

/// An AI agent's behaviour: the backend's code that calls its model.
///
/// The runtime runs each attached agent as an actor. From the handoff on, it calls
/// [`on_handoff`](AiAgentBehavior::on_handoff) once and then [`on_event`](AiAgentBehavior::on_event)
/// for every later event of the conversation that someone else wrote, one at a time per
/// conversation and in order, until a reclaim, escalation or close ends the assignment. After
/// that, whatever the code still sends through its [`AiSession`] is rejected and never
/// recorded.
///
/// ```
/// use handover::{async_trait, AgentError, AiAgentBehavior, AiSession, MessageText};
///
/// struct Echo;
///
/// #[async_trait]
/// impl AiAgentBehavior for Echo {
///     async fn on_customer_message(
///         &self,
///         session: &AiSession,
///         text: &MessageText,
///     ) -> Result<(), AgentError> {
///         session.reply(MessageText::new(format!("You said: {text}"))?).await?;
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait AiAgentBehavior: Send + Sync + 'static {
    /// The conversation was handed to this agent; `history` is every event so far, the
    /// handoff among the last, or the part of it the agent's
    /// [`HistoryWindow`](crate::HistoryWindow) gives (set per agent with
    /// [`RuntimeSettings::history_window`](crate::RuntimeSettings::history_window); by default
    /// everything). The context the human gave with the handoff is
    /// [`AiSession::context`]. Called once per assignment, and again when the agent takes the
    /// assignment up after a restart (or is attached after the handoff): `history` then runs
    /// to that moment, so what was answered shows, and events in it are not delivered again
    /// through [`on_event`](AiAgentBehavior::on_event). The default answers the customer's
    /// latest message unless an AI agent already answered after it (a human's "let me
    /// transfer you" is no answer), so a handoff "responds immediately" as the manual
    /// promises, and a resumed conversation answers only what is still waiting.
    async fn on_handoff(
        &self,
        session: &AiSession,
        history: &[Arc<RecordedEvent>],
    ) -> Result<(), AgentError> {
        let pending = history.iter().rev().find_map(|record| match &record.event {
            Event::Conversation(ConversationEvent::MessagePosted { author, text, .. }) => {
                match author {
                    Author::Customer(_) => Some(Some(text)),
                    Author::Ai(_) => Some(None),
                    _ => None,
                }
            }
            _ => None,
        });
        match pending.flatten() {
            Some(text) => self.on_customer_message(session, text).await,
            None => Ok(()),
        }
    }

    /// The customer wrote while this agent holds the conversation.
    async fn on_customer_message(
        &self,
        session: &AiSession,
        text: &MessageText,
    ) -> Result<(), AgentError>;

    /// Every event of the conversation after the handoff that this agent did not write itself
    /// (its own replies and skills are not sent back to it). The default passes customer
    /// messages to [`on_customer_message`](AiAgentBehavior::on_customer_message) and ignores
    /// the rest.
    async fn on_event(
        &self,
        session: &AiSession,
        record: &RecordedEvent,
    ) -> Result<(), AgentError> {
        match &record.event {
            Event::Conversation(ConversationEvent::MessagePosted {
                author: Author::Customer(_),
                text,
                ..
            }) => self.on_customer_message(session, text).await,
            _ => Ok(()),
        }
    }
}

/// An AI agent's hold on one conversation, for one assignment. Every call is fenced by the
/// assignment's epoch: once a human reclaims the conversation (or it is escalated, closed, or
/// handed off again), calls return [`Error::Rejected`] and record nothing.
///
/// Like the rest of the API, it takes validated values ([`MessageText`], [`Skill`],
/// [`Reason`]), so a malformed one is refused before anything is sent.
///
/// Stopping means stopping: when the assignment ends, [`cancelled`](AiSession::cancelled)
/// resolves, so the behaviour can stop its model call at once (and stop spending on it); a call
/// that does not stop by itself is dropped by the runtime after
/// [`RuntimeSettings::ai_cancel_grace`](crate::RuntimeSettings::ai_cancel_grace).
#[derive(Clone)]
pub struct AiSession {
    pub(crate) runtime: Arc<Runtime>,
    pub(crate) conversation_id: ConversationId,
    pub(crate) assignment: Assignment,
    pub(crate) cancel: CancellationToken,
    /// The context a human gave with this assignment's handoff.
    pub(crate) context: Option<Arc<Context>>,
}

impl std::fmt::Debug for AiSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AiSession")
            .field("conversation_id", &self.conversation_id)
            .field("assignment", &self.assignment)
            .finish_non_exhaustive()
    }
}

impl AiSession {
    /// The conversation.
    pub fn conversation_id(&self) -> ConversationId {
        self.conversation_id
    }

    /// The agent and the epoch this session acts under.
    pub fn assignment(&self) -> &Assignment {
        &self.assignment
    }

    /// The context the human gave with this assignment's handoff
    /// ([`Handover::hand_off_to_ai_with`](crate::Handover::hand_off_to_ai_with)): a summary,
    /// the topic, variables. `None` when the handoff carried none (or an empty one).
    ///
    /// ```no_run
    /// # async fn demo(session: &handover::AiSession) -> Result<(), Box<dyn std::error::Error>> {
    /// if let Some(plan) = session.context().and_then(|context| context.variable("plan")) {
    ///     session.reply(handover::MessageText::new(format!("About your {plan} plan..."))?).await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn context(&self) -> Option<&Context> {
        self.context.as_deref()
    }

    async fn execute(&self, command: ConversationCommand) -> Result<Receipt, Error> {
        self.runtime
            .execute(self.conversation_id, Arc::new(command), None)
            .await
    }

    /// Posts a message to the customer as this agent.
    pub async fn reply(&self, text: MessageText) -> Result<Receipt, Error> {
        self.execute(ConversationCommand::PostMessage {
            by: Participant::Ai(self.assignment.clone()),
            text,
        })
        .await
    }

    /// Records a skill this agent executed: its name, its input and its outcome.
    ///
    /// ```no_run
    /// # async fn demo(session: &handover::AiSession) -> Result<(), Box<dyn std::error::Error>> {
    /// use handover::{Skill, SkillData, SkillName, SkillOutcome};
    ///
    /// session
    ///     .record_skill(Skill {
    ///         name: SkillName::new("lookup_price")?,
    ///         input: SkillData::new(r#"{"plan":"pro"}"#)?,
    ///         outcome: SkillOutcome::Succeeded(SkillData::new("49 USD/month")?),
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn record_skill(&self, skill: Skill) -> Result<Receipt, Error> {
        self.execute(ConversationCommand::RecordAiAction {
            by: self.assignment.clone(),
            skill,
        })
        .await
    }

    /// Resolves when this assignment ends (a reclaim, an escalation, the reply deadline, a
    /// transfer, a close): select on it beside a model call to stop the call at once.
    ///
    /// ```no_run
    /// # async fn model_call() -> String { String::new() }
    /// # async fn demo(session: &handover::AiSession) -> Result<(), Box<dyn std::error::Error>> {
    /// tokio::select! {
    ///     answer = model_call() => { session.reply(handover::MessageText::new(answer)?).await?; }
    ///     () = session.cancelled() => {} // a human took over: stop spending on this call
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await;
    }

    /// Whether this assignment has ended.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Runs a skill with side effects under the fence: records that it starts (refused, and
    /// `run` never called, if the assignment has ended), runs it, then records its outcome,
    /// which is kept even if a human took over while it ran. The log thus shows every action
    /// that ran, and none runs after control passed to a human.
    ///
    /// A skill the escalation policy gates (a `skill_approval` rule, e.g. refunds) waits for a
    /// person first: the start is recorded as `skill_approval_requested`, and this call waits,
    /// without running `run`, until the request is decided:
    ///
    /// - approved ([`Handover::approve_skill`](crate::Handover::approve_skill)): `run` runs and
    ///   its outcome is recorded, as for any skill;
    /// - denied by a person ([`Handover::deny_skill`](crate::Handover::deny_skill)), or by the
    ///   clock when nobody decided within the rule's deadline: [`Error::SkillDenied`], and
    ///   `run` never runs;
    /// - the assignment ends meanwhile (a reclaim, an escalation, a close, which drop the
    ///   request): [`Error::Rejected`] with [`Rejection::AssignmentEnded`], and `run` never
    ///   runs.
    ///
    /// The wait follows the conversation's events (no polling); the deadline is the domain's,
    /// so it holds across restarts and under a [`ManualClock`](crate::ManualClock). While it
    /// waits, this conversation's later events wait for this call, as for any call.
    ///
    /// ```no_run
    /// # async fn demo(session: &handover::AiSession) -> Result<(), Box<dyn std::error::Error>> {
    /// use handover::{Error, SkillData, SkillName};
    ///
    /// let refund = session
    ///     .run_skill(SkillName::new("issue_refund")?, SkillData::new(r#"{"order":"A-1"}"#)?, async {
    ///         Ok::<_, String>("refunded 20 USD".to_owned())
    ///     })
    ///     .await;
    /// match refund {
    ///     Ok(_) => {}
    ///     Err(Error::SkillDenied { reason, .. }) => {
    ///         session.reply(handover::MessageText::new(format!("I cannot refund it: {reason}"))?).await?;
    ///     }
    ///     Err(error) => return Err(error.into()),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn run_skill<F>(
        &self,
        name: SkillName,
        input: SkillData,
        run: F,
    ) -> Result<Receipt, Error>
    where
        F: std::future::Future<Output = Result<String, String>> + Send,
    {
        let started = self
            .execute(ConversationCommand::StartSkill {
                by: self.assignment.clone(),
                name: name.clone(),
                input: input.clone(),
            })
            .await?;
        let request = started
            .events
            .iter()
            .find_map(|record| match &record.event {
                Event::Conversation(ConversationEvent::SkillApprovalRequested {
                    name: requested,
                    ..
                }) if *requested == name => Some(record.seq),
                _ => None,
            });
        if let Some(request) = request {
            self.approval(&name, request).await?;
        }
        let outcome = match run.await {
            Ok(result) => SkillOutcome::Succeeded(truncated_data(result)),
            Err(error) => SkillOutcome::Failed(truncated_data(error)),
        };
        self.execute(ConversationCommand::RecordAiAction {
            by: self.assignment.clone(),
            skill: Skill {
                name,
                input,
                outcome,
            },
        })
        .await
    }

    /// Waits until the approval request of `name` recorded at `request` (a seq) is decided:
    /// `Ok` once approved. Requests of one name are decided oldest first, so the conversation's
    /// events are followed from the start, and this request's decision is the one that comes
    /// when the requests of that name before it are decided.
    async fn approval(&self, name: &SkillName, request: u64) -> Result<(), Error> {
        let ended = || {
            Error::Rejected(Rejection::AssignmentEnded {
                agent_id: self.assignment.agent_id.clone(),
                epoch: self.assignment.epoch,
            })
        };
        if self.cancel.is_cancelled() {
            return Err(ended());
        }
        let mut watch = Watch::start(Arc::clone(&self.runtime), self.conversation_id, 0).await?;
        // The requests of `name` waiting, oldest first, as the domain keeps them.
        let mut waiting: VecDeque<u64> = VecDeque::new();
        loop {
            let next = tokio::select! {
                biased;
                () = self.cancel.cancelled() => return Err(ended()),
                next = watch.next() => next,
            };
            let Some(record) = next else {
                return Err(Error::Stopped);
            };
            let record = record?;
            let Event::Conversation(event) = &record.event else {
                continue;
            };
            match event {
                ConversationEvent::SkillApprovalRequested { name: asked, .. } if asked == name => {
                    waiting.push_back(record.seq);
                }
                // Decided oldest first: this request's decision is the one that takes it off
                // the front.
                ConversationEvent::SkillApproved { name: decided, .. } if decided == name => {
                    let decided = waiting.pop_front();
                    if decided == Some(request) {
                        return Ok(());
                    }
                }
                ConversationEvent::SkillDenied {
                    name: decided,
                    by,
                    reason,
                    ..
                } if decided == name => {
                    let decided = waiting.pop_front();
                    if decided == Some(request) {
                        return Err(Error::SkillDenied {
                            skill: name.clone(),
                            by: denier(by),
                            reason: reason.clone(),
                        });
                    }
                }
                // The assignment's end drops every request waiting.
                ConversationEvent::HandedOffToAi { .. }
                | ConversationEvent::Reclaimed { .. }
                | ConversationEvent::EscalatedToHuman { .. }
                | ConversationEvent::EscalatedByRule { .. }
                | ConversationEvent::Closed { .. } => {
                    if waiting.contains(&request) {
                        return Err(ended());
                    }
                    waiting.clear();
                }
                _ => {}
            }
        }
    }

    /// Reports that this agent could not answer the customer's question (say it before the
    /// reply that tells the customer so). The policy's `ai_could_not_answer` rule escalates
    /// after enough reports in a row; a real answer ends the run.
    pub async fn could_not_answer(&self, reason: Option<Reason>) -> Result<Receipt, Error> {
        self.execute(ConversationCommand::ReportCouldNotAnswer {
            by: self.assignment.clone(),
            reason,
        })
        .await
    }

    /// Hands the conversation back to humans with a reason and this agent's context: what it
    /// tried and what it found, for the person who takes over.
    pub async fn escalate_with(&self, reason: Reason, context: Context) -> Result<Receipt, Error> {
        self.execute(ConversationCommand::EscalateWith {
            by: self.assignment.clone(),
            reason,
            context,
        })
        .await
    }

    /// Raises "needs help" on the conversation, for a supervisor to see.
    pub async fn raise_flag(&self) -> Result<Receipt, Error> {
        self.execute(ConversationCommand::RaiseFlag {
            by: Participant::Ai(self.assignment.clone()),
        })
        .await
    }

    /// Hands the conversation back to humans, with a reason.
    pub async fn escalate(&self, reason: Reason) -> Result<Receipt, Error> {
        self.execute(ConversationCommand::Escalate {
            by: self.assignment.clone(),
            reason,
            cause: EscalationCause::AgentRequested,
        })
        .await
    }

    /// Closes the conversation (the customer's request is resolved).
    pub async fn close(&self, reason: Option<Reason>) -> Result<Receipt, Error> {
        self.execute(ConversationCommand::Close {
            by: Participant::Ai(self.assignment.clone()),
            reason,
        })
        .await
    }
}

/// Who denied a skill, as [`Error::SkillDenied`] says it.
fn denier(by: &Author) -> String {
    match by {
        Author::Human(human) => format!("human {human}"),
        Author::System(_) => "the clock".to_owned(),
        Author::Ai(agent) => format!("AI agent {agent}"),
        Author::Customer(customer) => format!("customer {customer}"),
        other => format!("{other:?}"),
    }
}

/// A skill's result as skill data: cut at the limit (on a character boundary) and stripped of
/// control characters other than line breaks and tabs, so an outcome is always recordable.
fn truncated_data(text: String) -> SkillData {
    let mut clean: String = text
        .chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'))
        .collect();
    if clean.len() > handover_core::SKILL_DATA_BYTES_MAX {
        let mut end = handover_core::SKILL_DATA_BYTES_MAX;
        while !clean.is_char_boundary(end) {
            end -= 1;
        }
        clean.truncate(end);
    }
    SkillData::new(clean).unwrap_or_else(|_| SkillData::new("").expect("empty skill data is valid"))
}
