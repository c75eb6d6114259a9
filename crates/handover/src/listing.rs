//! Live queries: every conversation's controller, team, flag, wait and latest message, kept in
//! memory beside the actors so that a console or a backend can ask "which conversations wait,
//! and for how long?" without reading the log. It is rebuilt from the log at start and brought
//! up to date after each append (by the conversation's actor on the node that decides for its
//! tenant, by the follower on the others), so on several nodes every node answers for every
//! conversation. Each entry is derived from the state the same `evolve` folds: no rule is
//! restated here.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use handover_core::{
    AgentName, AiAgentId, Author, Conversation, ConversationEvent, ConversationId, CustomerId,
    Event, Handler, HumanId, TeamId, TenantId, Timestamp, WaitCause,
};
use handover_store::{RecordedAt, RecordedEvent};
use tokio::sync::watch;

use crate::sync::lock;

/// How long a closed conversation stays in the live list.
pub const CLOSED_RECENTLY: Duration = Duration::from_secs(60 * 60);

/// The characters of a conversation's latest message the live list keeps.
pub const LAST_MESSAGE_CHARS_MAX: usize = 160;

/// Where a conversation stands in the live list.
///
/// ```
/// use handover::LiveStatus;
/// assert_eq!(LiveStatus::AwaitingHuman.label(), "awaiting-human");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum LiveStatus {
    /// An AI agent handles it.
    AiActive,
    /// It waits in a queue for a human.
    AwaitingHuman,
    /// A human handles it (named, reclaimed, or the legacy human-handled state).
    HumanHandled,
    /// Closed within [`CLOSED_RECENTLY`].
    ClosedRecently,
}

impl LiveStatus {
    /// Every status, in the order a list shows them.
    pub const ALL: [LiveStatus; 4] = [
        LiveStatus::AwaitingHuman,
        LiveStatus::AiActive,
        LiveStatus::HumanHandled,
        LiveStatus::ClosedRecently,
    ];

    /// The status as a console or a URL writes it.
    pub fn label(self) -> &'static str {
        match self {
            LiveStatus::AiActive => "ai-active",
            LiveStatus::AwaitingHuman => "awaiting-human",
            LiveStatus::HumanHandled => "human-handled",
            LiveStatus::ClosedRecently => "closed",
        }
    }

    /// The status a [`label`](Self::label) names.
    pub fn from_label(label: &str) -> Option<LiveStatus> {
        LiveStatus::ALL.into_iter().find(|s| s.label() == label)
    }
}

/// Who wrote a conversation's latest message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LastAuthor {
    /// The customer.
    Customer,
    /// An AI agent.
    Ai(AiAgentId),
    /// A human.
    Human(HumanId),
    /// The runtime (a notice).
    System,
}

/// A conversation's latest message, cut to [`LAST_MESSAGE_CHARS_MAX`] characters.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LastMessage {
    /// Who wrote it.
    pub author: LastAuthor,
    /// Its first characters.
    pub text: String,
    /// Whether the text was cut.
    pub cut: bool,
}

/// One conversation in the live list ([`crate::Handover::list_conversations`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LiveConversation {
    /// The conversation.
    pub id: ConversationId,
    /// Its tenant.
    pub tenant: TenantId,
    /// Its customer.
    pub customer: CustomerId,
    /// Where it stands.
    pub status: LiveStatus,
    /// The AI agent that handles it, with its name.
    pub ai_agent: Option<(AiAgentId, AgentName)>,
    /// The human who handles it (or handled it at the close).
    pub human: Option<HumanId>,
    /// That human's name, when the directory knows it.
    pub human_name: Option<AgentName>,
    /// Its team (the queue it waits in while it waits).
    pub team: Option<TeamId>,
    /// Whether a supervisor flagged it.
    pub flagged: bool,
    /// Since when it waits for a human, and why.
    pub waiting: Option<(Timestamp, WaitCause)>,
    /// How long it has waited, at the runtime clock's now.
    pub wait: Option<Duration>,
    /// When its latest event was recorded.
    pub last_activity: RecordedAt,
    /// Its latest message.
    pub last_message: Option<LastMessage>,
}

/// What [`crate::Handover::list_conversations`] lists: every field set narrows the list.
///
/// ```
/// use handover::{LiveQuery, LiveStatus, TeamId};
/// let query = LiveQuery::new()
///     .status(LiveStatus::AwaitingHuman)
///     .team(TeamId::new("billing").unwrap())
///     .limit(50);
/// assert_eq!(query.limit, Some(50));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LiveQuery {
    /// Only conversations in this status.
    pub status: Option<LiveStatus>,
    /// Only conversations this AI agent handles.
    pub ai_agent: Option<AiAgentId>,
    /// Only conversations this human handles.
    pub human: Option<HumanId>,
    /// Only conversations of this team.
    pub team: Option<TeamId>,
    /// Only flagged conversations.
    pub flagged_only: bool,
    /// At most this many, the first in the list's order.
    pub limit: Option<usize>,
}

impl LiveQuery {
    /// Every conversation of the tenant.
    pub fn new() -> LiveQuery {
        LiveQuery::default()
    }

    /// Only conversations in `status`.
    pub fn status(mut self, status: LiveStatus) -> LiveQuery {
        self.status = Some(status);
        self
    }

    /// Only conversations `agent` handles.
    pub fn ai_agent(mut self, agent: AiAgentId) -> LiveQuery {
        self.ai_agent = Some(agent);
        self
    }

    /// Only conversations `human` handles.
    pub fn human(mut self, human: HumanId) -> LiveQuery {
        self.human = Some(human);
        self
    }

    /// Only conversations of `team`.
    pub fn team(mut self, team: TeamId) -> LiveQuery {
        self.team = Some(team);
        self
    }

    /// Only flagged conversations.
    pub fn flagged_only(mut self) -> LiveQuery {
        self.flagged_only = true;
        self
    }

    /// At most `limit` conversations.
    pub fn limit(mut self, limit: usize) -> LiveQuery {
        self.limit = Some(limit);
        self
    }

    fn admits(&self, entry: &Entry) -> bool {
        self.status.is_none_or(|s| s == entry.status)
            && self
                .ai_agent
                .as_ref()
                .is_none_or(|a| entry.ai_agent.as_ref().is_some_and(|(id, _)| **id == *a))
            && self
                .human
                .as_ref()
                .is_none_or(|h| entry.human.as_deref() == Some(h))
            && self
                .team
                .as_ref()
                .is_none_or(|t| entry.team.as_deref() == Some(t))
            && (!self.flagged_only || entry.flagged)
    }
}

/// One queue's line in [`LiveCounts`]: a team's queue, or the tenant's queue for no team.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueCount {
    /// The team, or `None` for conversations waiting for any human of the tenant.
    pub team: Option<TeamId>,
    /// Conversations waiting in it.
    pub waiting: usize,
    /// How long its oldest has waited.
    pub longest_wait: Duration,
}

/// A tenant's conversations counted by status and by queue
/// ([`crate::Handover::conversation_counts`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LiveCounts {
    /// Conversations an AI agent handles.
    pub ai_active: usize,
    /// Conversations waiting for a human.
    pub awaiting_human: usize,
    /// Conversations a human handles.
    pub human_handled: usize,
    /// Conversations closed within [`CLOSED_RECENTLY`].
    pub closed_recently: usize,
    /// The longest any conversation has waited.
    pub longest_wait: Duration,
    /// Each queue with a conversation waiting, longest wait first.
    pub queues: Vec<QueueCount>,
}

impl LiveCounts {
    /// The count of one status.
    pub fn of(&self, status: LiveStatus) -> usize {
        match status {
            LiveStatus::AiActive => self.ai_active,
            LiveStatus::AwaitingHuman => self.awaiting_human,
            LiveStatus::HumanHandled => self.human_handled,
            LiveStatus::ClosedRecently => self.closed_recently,
        }
    }
}

/// The names entries share (tenants, teams, AI agents and their names, humans): a bounded set
/// kept once, so an entry holds pointers rather than strings of its own.
struct Names<T>(HashSet<Arc<T>>);

impl<T: Eq + Hash + Clone> Names<T> {
    fn get(&mut self, value: &T) -> Arc<T> {
        if let Some(known) = self.0.get(value) {
            return Arc::clone(known);
        }
        let shared = Arc::new(value.clone());
        self.0.insert(Arc::clone(&shared));
        shared
    }

    /// `value`, from the entry's `kept` name when it is the same: most appends change none of
    /// an entry's names, and comparing costs less than hashing and looking up.
    fn keep(&mut self, kept: Option<&Arc<T>>, value: &T) -> Arc<T> {
        match kept {
            Some(kept) if **kept == *value => Arc::clone(kept),
            _ => self.get(value),
        }
    }
}

impl<T> Default for Names<T> {
    fn default() -> Self {
        Names(HashSet::new())
    }
}

#[derive(Default)]
struct Interned {
    tenants: Names<TenantId>,
    teams: Names<TeamId>,
    agents: Names<AiAgentId>,
    agent_names: Names<AgentName>,
    humans: Names<HumanId>,
}

/// What the listing keeps of a conversation: every open one has an entry, passivated or not,
/// so it is kept small (shared names, the latest message boxed).
#[derive(Clone, Debug)]
struct Entry {
    tenant: Arc<TenantId>,
    customer: CustomerId,
    ai_agent: Option<(Arc<AiAgentId>, Arc<AgentName>)>,
    human: Option<Arc<HumanId>>,
    team: Option<Arc<TeamId>>,
    waiting: Option<(Timestamp, WaitCause)>,
    last_activity: RecordedAt,
    last_message: Option<Box<LastMessage>>,
    status: LiveStatus,
    flagged: bool,
}

impl Entry {
    /// Brings the entry in line with `state`, as of `record` (the latest folded into it).
    fn follow(
        entry: Option<Entry>,
        state: &Conversation,
        record: &RecordedEvent,
        names: &mut Interned,
    ) -> Option<Entry> {
        let (open, closed) = match state {
            Conversation::Open(open) => (open, false),
            Conversation::Closed(open) => (open, true),
            Conversation::NotOpened => return None,
        };
        let kept = entry.as_ref();
        let mut ai_agent = None;
        let mut waiting = None;
        let status = if closed {
            LiveStatus::ClosedRecently
        } else {
            match &open.handler {
                Handler::Ai {
                    agent_id,
                    agent_name,
                } => {
                    let kept_agent = kept.and_then(|e| e.ai_agent.as_ref());
                    ai_agent = Some((
                        names.agents.keep(kept_agent.map(|(id, _)| id), agent_id),
                        names
                            .agent_names
                            .keep(kept_agent.map(|(_, name)| name), agent_name),
                    ));
                    LiveStatus::AiActive
                }
                Handler::AwaitingHuman { since, cause, .. } => {
                    waiting = Some((*since, *cause));
                    LiveStatus::AwaitingHuman
                }
                _ => LiveStatus::HumanHandled,
            }
        };
        let human = match &open.handler {
            Handler::Assigned { human, .. } | Handler::Reclaimed { by: human } => Some(human),
            _ if status == LiveStatus::HumanHandled => open.human.as_ref(),
            _ => None,
        };
        let tenant = names.tenants.keep(kept.map(|e| &e.tenant), &open.tenant);
        let human = human.map(|h| names.humans.keep(kept.and_then(|e| e.human.as_ref()), h));
        let team = open
            .team
            .as_ref()
            .map(|t| names.teams.keep(kept.and_then(|e| e.team.as_ref()), t));
        let (customer, last_message) = match entry {
            Some(entry) => (entry.customer, entry.last_message),
            None => (open.customer.clone(), None),
        };
        let last_message = match &record.event {
            Event::Conversation(ConversationEvent::MessagePosted { author, text, .. }) => {
                Some(Box::new(last_message_of(author, text.as_str())))
            }
            _ => last_message,
        };
        Some(Entry {
            tenant,
            customer,
            ai_agent,
            human,
            team,
            waiting,
            last_activity: record.recorded_at,
            last_message,
            status,
            flagged: open.flagged,
        })
    }
}

fn last_message_of(author: &Author, text: &str) -> LastMessage {
    let author = match author {
        Author::Customer(_) => LastAuthor::Customer,
        Author::Human(human) => LastAuthor::Human(human.clone()),
        Author::Ai(agent) => LastAuthor::Ai(agent.clone()),
        _ => LastAuthor::System,
    };
    let (text, cut) = match text.char_indices().nth(LAST_MESSAGE_CHARS_MAX) {
        Some((end, _)) => (text[..end].to_owned(), true),
        None => (text.to_owned(), false),
    };
    LastMessage { author, text, cut }
}

/// Every conversation's entry, behind a lock, with a counter that moves on every change so a
/// console can wait for the next one.
pub(crate) struct Listing {
    inner: Mutex<Inner>,
    changes: watch::Sender<u64>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<ConversationId, Entry>,
    names: Interned,
}

impl Default for Listing {
    fn default() -> Listing {
        Listing {
            inner: Mutex::default(),
            changes: watch::Sender::new(0),
        }
    }
}

impl Listing {
    /// Folds the records of one append into `id`'s entry; `state` is the state after them.
    pub(crate) fn observe<'a>(
        &self,
        id: ConversationId,
        state: &Conversation,
        records: impl IntoIterator<Item = &'a RecordedEvent>,
    ) {
        {
            let mut inner = lock(&self.inner);
            let Inner { entries, names } = &mut *inner;
            let mut entry = entries.remove(&id);
            for record in records {
                entry = Entry::follow(entry, state, record, names);
            }
            if let Some(entry) = entry {
                entries.insert(id, entry);
            }
        }
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Drops the conversations closed before `horizon` (wall-clock micros).
    fn prune(entries: &mut HashMap<ConversationId, Entry>, horizon: i64) {
        entries
            .retain(|_, e| e.status != LiveStatus::ClosedRecently || e.last_activity.0 >= horizon);
    }

    /// A counter that moves whenever an entry changes.
    pub(crate) fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// `tenant`'s conversations the query admits: the waiting ones first, longest wait first,
    /// then the others, latest activity first.
    pub(crate) fn list(
        &self,
        tenant: &TenantId,
        query: &LiveQuery,
        now: Timestamp,
        names: impl Fn(&HumanId) -> Option<AgentName>,
    ) -> Vec<LiveConversation> {
        let mut inner = lock(&self.inner);
        Listing::prune(&mut inner.entries, horizon());
        let entries = &inner.entries;
        let mut list: Vec<LiveConversation> = entries
            .iter()
            .filter(|(_, e)| *e.tenant == *tenant && query.admits(e))
            .map(|(id, e)| LiveConversation {
                id: *id,
                tenant: TenantId::clone(&e.tenant),
                customer: e.customer.clone(),
                status: e.status,
                ai_agent: e
                    .ai_agent
                    .as_ref()
                    .map(|(id, name)| (AiAgentId::clone(id), AgentName::clone(name))),
                human_name: e.human.as_deref().and_then(&names),
                human: e.human.as_deref().cloned(),
                team: e.team.as_deref().cloned(),
                flagged: e.flagged,
                waiting: e.waiting,
                wait: e.waiting.map(|(since, _)| waited(since, now)),
                last_activity: e.last_activity,
                last_message: e.last_message.as_deref().cloned(),
            })
            .collect();
        drop(inner);
        list.sort_by(|a, b| {
            let since = |c: &LiveConversation| c.waiting.map(|(since, _)| since);
            match (since(a), since(b)) {
                (Some(x), Some(y)) => x.cmp(&y).then(a.id.cmp(&b.id)),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => b.last_activity.cmp(&a.last_activity).then(a.id.cmp(&b.id)),
            }
        });
        if let Some(limit) = query.limit {
            list.truncate(limit);
        }
        list
    }

    /// `tenant`'s conversations counted by status and queue.
    pub(crate) fn counts(&self, tenant: &TenantId, now: Timestamp) -> LiveCounts {
        let mut inner = lock(&self.inner);
        Listing::prune(&mut inner.entries, horizon());
        let entries = &inner.entries;
        let mut counts = LiveCounts::default();
        let mut queues: HashMap<Option<TeamId>, QueueCount> = HashMap::new();
        for entry in entries.values().filter(|e| *e.tenant == *tenant) {
            match entry.status {
                LiveStatus::AiActive => counts.ai_active += 1,
                LiveStatus::AwaitingHuman => counts.awaiting_human += 1,
                LiveStatus::HumanHandled => counts.human_handled += 1,
                LiveStatus::ClosedRecently => counts.closed_recently += 1,
            }
            if let Some((since, _)) = entry.waiting {
                let wait = waited(since, now);
                let team = entry.team.as_deref().cloned();
                let queue = queues.entry(team.clone()).or_insert_with(|| QueueCount {
                    team,
                    waiting: 0,
                    longest_wait: Duration::ZERO,
                });
                queue.waiting += 1;
                queue.longest_wait = queue.longest_wait.max(wait);
                counts.longest_wait = counts.longest_wait.max(wait);
            }
        }
        drop(inner);
        counts.queues = queues.into_values().collect();
        counts.queues.sort_by(|a, b| {
            b.longest_wait
                .cmp(&a.longest_wait)
                .then(a.team.cmp(&b.team))
        });
        counts
    }
}

/// The wall-clock time before which a closed conversation leaves the list.
fn horizon() -> i64 {
    let closed_for = i64::try_from(CLOSED_RECENTLY.as_micros()).unwrap_or(i64::MAX);
    RecordedAt::now().0.saturating_sub(closed_for)
}

fn waited(since: Timestamp, now: Timestamp) -> Duration {
    Duration::from_micros(u64::try_from(now.0.saturating_sub(since.0)).unwrap_or(0))
}
