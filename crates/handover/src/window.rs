//! What an AI agent reads at a handoff: the [`HistoryWindow`] of the conversation's history
//! given to [`AiAgentBehavior::on_handoff`](crate::AiAgentBehavior::on_handoff), and the
//! [`Context`] the handoff carried (see [`AiSession::context`](crate::AiSession::context)).

use std::sync::Arc;

use handover_core::context::Context;
use handover_core::{Author, ConversationEvent, Epoch, Event, NoticeKind};
use handover_store::RecordedEvent;

/// How much of a conversation's history an AI agent is given at a handoff, in
/// [`AiAgentBehavior::on_handoff`](crate::AiAgentBehavior::on_handoff): a per-agent setting
/// ([`RuntimeSettings::history_window`](crate::RuntimeSettings::history_window)), so an
/// agent whose model reads little is not sent a long conversation, and one that should not
/// see what was said to a previous assignment is not shown it.
///
/// Whatever the window, the history keeps its order, and the events of this assignment's
/// handoff are in it. Only what `on_handoff` is given changes: every later event still reaches
/// [`on_event`](crate::AiAgentBehavior::on_event), and the log itself keeps everything.
///
/// ```
/// use handover::{HistoryWindow, RuntimeSettings};
///
/// let settings = RuntimeSettings::default()
///     .default_history_window(HistoryWindow::SinceLastHandoff)
///     .history_window("faq-bot".parse()?, HistoryWindow::LastMessages(10));
/// assert_eq!(settings.history_window_of(&"faq-bot".parse()?), HistoryWindow::LastMessages(10));
/// assert_eq!(settings.history_window_of(&"other".parse()?), HistoryWindow::SinceLastHandoff);
/// # Ok::<(), handover::InvalidInput>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HistoryWindow {
    /// Every event of the conversation so far (the default).
    #[default]
    Everything,
    /// The events after the previous AI assignment ended: from the event after the last
    /// reclaim or escalation (`reclaimed`, `escalated_to_human`, by the agent, the clock or a
    /// rule) before this handoff; everything when there was none.
    SinceLastHandoff,
    /// The last `n` messages (`message_posted`, by anyone) and every event of this
    /// assignment's handoff (a supervisor's override, the context shared with it, the handoff
    /// and the customer's notice), in log order.
    LastMessages(usize),
}

/// Where this assignment's handoff (the `epoch`-th `handed_off_to_ai`) is in `history`.
fn handoff_index(history: &[Arc<RecordedEvent>], epoch: Epoch) -> Option<usize> {
    let mut handoffs = 0u64;
    history.iter().position(|record| {
        if matches!(
            record.event,
            Event::Conversation(ConversationEvent::HandedOffToAi { .. })
        ) {
            handoffs += 1;
            handoffs == epoch.0
        } else {
            false
        }
    })
}

/// The context a human gave with this assignment's handoff: the `context_shared` by a human
/// recorded just before its `handed_off_to_ai`, in the same append.
pub(crate) fn handoff_context(history: &[Arc<RecordedEvent>], epoch: Epoch) -> Option<Context> {
    let at = handoff_index(history, epoch)?;
    match &history.get(at.checked_sub(1)?)?.event {
        Event::Conversation(ConversationEvent::ContextShared {
            by: Author::Human(_),
            context,
            ..
        }) => Some(context.clone()),
        _ => None,
    }
}

/// The range of `history` that this assignment's handoff appended: the handoff, the override
/// and context just before it, the customer's notice just after it (what the domain records
/// for a handoff, and nothing else records these there).
fn handoff_append(history: &[Arc<RecordedEvent>], at: usize) -> std::ops::Range<usize> {
    let mut start = at;
    while start > 0
        && matches!(
            &history[start - 1].event,
            Event::Conversation(
                ConversationEvent::PolicyOverridden { .. }
                    | ConversationEvent::ContextShared {
                        by: Author::Human(_),
                        ..
                    }
            )
        )
    {
        start -= 1;
    }
    let mut end = at + 1;
    while end < history.len()
        && matches!(
            &history[end].event,
            Event::Conversation(ConversationEvent::CustomerNotice {
                kind: NoticeKind::AiJoined,
                ..
            })
        )
    {
        end += 1;
    }
    start..end
}

impl HistoryWindow {
    /// The part of `history` (the conversation's events, in order, up to the handoff or to
    /// now) this window gives the assignment of `epoch`.
    pub(crate) fn apply(
        self,
        history: Vec<Arc<RecordedEvent>>,
        epoch: Epoch,
    ) -> Vec<Arc<RecordedEvent>> {
        let Some(at) = handoff_index(&history, epoch) else {
            // Not found (a log without it cannot hold this assignment): give everything.
            return history;
        };
        match self {
            HistoryWindow::Everything => history,
            HistoryWindow::SinceLastHandoff => {
                let start = history[..at]
                    .iter()
                    .rposition(|record| {
                        matches!(
                            record.event,
                            Event::Conversation(
                                ConversationEvent::Reclaimed { .. }
                                    | ConversationEvent::EscalatedToHuman { .. }
                                    | ConversationEvent::EscalatedByRule { .. }
                            )
                        )
                    })
                    .map_or(0, |ended| ended + 1);
                history[start..].to_vec()
            }
            HistoryWindow::LastMessages(n) => {
                let append = handoff_append(&history, at);
                let mut messages = 0usize;
                let mut keep = vec![false; history.len()];
                for (i, record) in history.iter().enumerate().rev() {
                    if messages < n
                        && matches!(
                            record.event,
                            Event::Conversation(ConversationEvent::MessagePosted { .. })
                        )
                    {
                        messages += 1;
                        keep[i] = true;
                    }
                }
                history
                    .into_iter()
                    .enumerate()
                    .filter(|(i, _)| keep[*i] || append.contains(i))
                    .map(|(_, record)| record)
                    .collect()
            }
        }
    }
}
