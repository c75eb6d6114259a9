//! The report: the figures of [`Stats`] for people, broken down by AI agent, by team and over
//! time, with the distribution of waits for a human, and rendered as one self-contained HTML
//! page ([`Report::to_html`]).
//!
//! The log is replayed record by record with [`Replay::apply`], the fold every other audit
//! uses; after each record the report reads what the fold made of it (the conversation's
//! state, whether it was closed while AI-active) and notes what it charts. No rule is
//! judged here: the report counts what the log recorded.

use std::collections::{BTreeMap, HashMap};

use handover_core::conversation::{Conversation, Handler, OpenConversation};
use handover_core::{
    AiAgentId, Author, ConversationEvent, ConversationId, Event, StreamId, TeamId, Timestamp,
};
use handover_sled::SledStore;
use handover_store::{RecordedAt, RecordedEvent};

use crate::error::AuditError;
use crate::log::AuditLog;
use crate::progress::{NoProgress, Progress, Ticker};
use crate::replay::Replay;
use crate::stats::{Percentiles, Stats};

mod html;

/// The upper bounds of the wait histogram's bins, in milliseconds; a last bin takes every
/// wait at or above the last bound. Fixed, so that two reports compare bin by bin.
const WAIT_BOUNDS_MS: [u64; 12] = [
    1_000, 5_000, 10_000, 30_000, 60_000, 120_000, 300_000, 600_000, 900_000, 1_800_000, 3_600_000,
    7_200_000,
];

/// Widths a time bucket may have, in seconds: the first that cuts the log's span into at most
/// [`MAX_BUCKETS`] buckets is taken, so a bucket is a round stretch of time.
const BUCKET_WIDTHS_S: [i64; 17] = [
    1, 5, 15, 30, 60, 300, 900, 1_800, 3_600, 10_800, 21_600, 43_200, 86_400, 604_800, 2_592_000,
    7_776_000, 31_536_000,
];

/// The most time buckets a report has (a log spanning centuries gets wider ones).
const MAX_BUCKETS: i64 = 48;

/// How many of the most frequent escalation reasons the report lists.
pub(crate) const TOP_REASONS: usize = 10;

/// AI containment over conversations: of the conversations an AI agent held at least once,
/// those closed without going back to a human.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Containment {
    /// Conversations handed off to an AI agent at least once (AI-handled).
    pub ai_handled: u64,
    /// AI-handled conversations closed while an AI agent held them, never escalated back to
    /// humans nor reclaimed by one.
    pub contained: u64,
    /// AI-handled conversations escalated back to humans or reclaimed at least once, closed
    /// or not.
    pub went_back: u64,
    /// AI-handled conversations still open with an AI agent that never went back: not decided
    /// yet.
    pub undecided: u64,
    /// `contained` as a share of the decided ones (`contained + went_back`), from 0 to 1;
    /// `None` when none is decided.
    pub rate: Option<f64>,
}

/// One AI agent's figures.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AgentReport {
    /// The AI agent.
    pub agent_id: String,
    /// Its name as the roster holds it at the end of the log (as the last handoff recorded
    /// it, if the roster does not know it).
    pub name: String,
    /// Handoffs to it.
    pub handoffs: u64,
    /// Handoffs that ended with the conversation closed while it held it.
    pub contained: u64,
    /// Handoffs that ended with an escalation back to humans.
    pub escalated: u64,
    /// Handoffs that ended with a human reclaiming the conversation.
    pub reclaimed: u64,
    /// `contained` as a share of the handoffs that ended, from 0 to 1 (as
    /// [`crate::AgentContainment`] counts it); `None` when none has ended.
    pub containment_rate: Option<f64>,
    /// Its escalations by cause (the cause's snake_case name).
    pub escalations_by_cause: BTreeMap<String, u64>,
    /// How long it took to reply, in milliseconds: from the customer's message that left a
    /// reply pending (the first one, when several wait) to its next message.
    pub reply_ms: Percentiles,
    /// `ai_reply_overdue` events naming it.
    pub reply_timeouts: u64,
}

/// One team's figures (its queue's); the tenants' general queues are one team with no id.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TeamReport {
    /// The team, `None` for the general queue.
    pub team: Option<String>,
    /// Conversations started in it.
    pub conversations: u64,
    /// Waits for a human answered from its queue, in milliseconds (see [`Report::waits`]).
    pub wait_ms: Percentiles,
    /// `sla_warning` events of its queue.
    pub sla_warnings: u64,
    /// `sla_breached` events of its queue.
    pub sla_breaches: u64,
    /// Handoffs of its conversations to AI agents.
    pub handoffs: u64,
    /// Escalations of its conversations back to humans.
    pub escalations: u64,
}

/// A histogram of durations in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Histogram {
    /// The upper bound (exclusive) of each bin but the last, in milliseconds.
    pub bounds_ms: Vec<u64>,
    /// How many durations fall in each bin: one more than `bounds_ms`, the last for those at
    /// or above the last bound.
    pub counts: Vec<u64>,
}

impl Histogram {
    fn of(values: &[u64]) -> Histogram {
        let mut counts = vec![0; WAIT_BOUNDS_MS.len() + 1];
        for value in values {
            counts[WAIT_BOUNDS_MS.partition_point(|bound| bound <= value)] += 1;
        }
        Histogram {
            bounds_ms: WAIT_BOUNDS_MS.to_vec(),
            counts,
        }
    }
}

/// What happened in one stretch of time (by the records' `recorded_at`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TimeBucket {
    /// When it begins, in microseconds since the Unix epoch.
    pub start_micros: i64,
    /// Handoffs to AI agents.
    pub handoffs: u64,
    /// Escalations back to humans.
    pub escalations: u64,
    /// Conversations closed while an AI agent held them.
    pub contained: u64,
    /// `sla_warning` events.
    pub sla_warnings: u64,
    /// `sla_breached` events.
    pub sla_breaches: u64,
    /// `ai_reply_overdue` events.
    pub ai_reply_timeouts: u64,
    /// AI replies made in it and how long they took, in milliseconds.
    pub ai_reply_ms: Percentiles,
}

/// The log's span cut into buckets of equal width, aligned on multiples of the width since
/// the Unix epoch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Timeline {
    /// Each bucket's width, in microseconds (0 for an empty log).
    pub bucket_micros: i64,
    /// The buckets, from the one of the first record to the one of the last.
    pub buckets: Vec<TimeBucket>,
}

/// A report over the whole log: what [`Report::to_html`] renders.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// The figures `handover audit stats` prints, from the same replay.
    pub stats: Stats,
    /// When the first record was recorded.
    pub first_recorded_at: Option<RecordedAt>,
    /// When the last record was recorded.
    pub last_recorded_at: Option<RecordedAt>,
    /// AI containment over conversations.
    pub containment: Containment,
    /// Each AI agent handed at least one conversation, by id.
    pub agents: Vec<AgentReport>,
    /// Each team whose queue a conversation started in or waited in, the general queue first,
    /// then by id.
    pub teams: Vec<TeamReport>,
    /// Every wait for a human that a human answered: from the `since` of the first
    /// `awaiting_human` not answered yet to the `at` of the `human_assigned` after it, in
    /// milliseconds, whatever the wait's cause (a new conversation, an escalation, a
    /// transfer); a transfer to another queue does not restart the count.
    pub waits: Histogram,
    /// The same waits' percentiles.
    pub wait_ms: Percentiles,
    /// What happened over time.
    pub timeline: Timeline,
    /// The most frequent reasons given for escalations, most frequent first (ties by
    /// reason), at most ten.
    pub escalation_reasons: Vec<(String, u64)>,
}

/// Builds the report over the log of `store`. Fails as [`Replay::from_store`] does.
pub fn report(store: &SledStore) -> Result<Report, AuditError> {
    report_of(AuditLog::Sled(store))
}

/// [`report`] over any [`AuditLog`]: the same report for the same log, wherever it is kept.
pub fn report_of(log: AuditLog<'_>) -> Result<Report, AuditError> {
    report_of_with_progress(log, &NoProgress)
}

/// [`report_of`], telling `progress` how far it has got through the log.
///
/// The log is replayed in position order ([`Replay::apply`] on each record), so it fails at
/// the first fault with [`AuditError::Unsound`], and with [`AuditError::Store`] when the log
/// cannot be read.
pub fn report_of_with_progress(
    log: AuditLog<'_>,
    progress: &dyn Progress,
) -> Result<Report, AuditError> {
    let mut ticker = Ticker::start(progress, log.head());
    let mut replay = Replay::new();
    let mut notes = Notes::default();
    for read in log.iter_all() {
        let record = read?;
        replay.apply(&record)?;
        notes.note(&replay, &record);
        ticker.tick();
    }
    ticker.flush();
    Ok(notes.finish(&replay))
}

/// Something charted over time, with when it was recorded.
enum Mark {
    Handoff,
    Escalation,
    Contained,
    SlaWarning,
    SlaBreach,
    ReplyTimeout,
    Reply(u64),
}

/// What the report follows of one conversation as the log goes on.
#[derive(Default)]
struct Followed {
    ai_handled: bool,
    went_back: bool,
    contained: bool,
    open: bool,
    /// When the reply the customer waits for became pending (recorded time, microseconds).
    reply_pending_from: Option<i64>,
    /// The wait for a human not answered yet: since when, and the queue it waits in.
    waiting: Option<(Timestamp, Option<TeamId>)>,
}

#[derive(Default)]
struct AgentNotes {
    last_name: String,
    escalations_by_cause: BTreeMap<String, u64>,
    reply_ms: Vec<u64>,
    reply_timeouts: u64,
}

#[derive(Default)]
struct TeamNotes {
    conversations: u64,
    wait_ms: Vec<u64>,
    sla_warnings: u64,
    sla_breaches: u64,
    handoffs: u64,
    escalations: u64,
}

/// What the report gathers while the log is replayed.
#[derive(Default)]
struct Notes {
    conversations: HashMap<ConversationId, Followed>,
    agents: BTreeMap<String, AgentNotes>,
    teams: BTreeMap<Option<String>, TeamNotes>,
    waits: Vec<u64>,
    marks: Vec<(i64, Mark)>,
    reasons: BTreeMap<String, u64>,
}

/// The open or closed state of a conversation, if it was opened.
fn open_state<'r>(replay: &'r Replay, id: &ConversationId) -> Option<&'r OpenConversation> {
    match replay.conversation(id)?.state() {
        Conversation::Open(open) | Conversation::Closed(open) => Some(open),
        _ => None,
    }
}

fn team_key(team: Option<&TeamId>) -> Option<String> {
    team.map(|team| team.as_str().to_owned())
}

impl Notes {
    /// Notes what `record`, just applied to `replay`, changed.
    fn note(&mut self, replay: &Replay, record: &RecordedEvent) {
        let (StreamId::Conversation(id), Event::Conversation(event)) =
            (&record.stream, &record.event)
        else {
            return;
        };
        let at = record.recorded_at.as_micros();
        let state = open_state(replay, id);
        let team = team_key(state.and_then(|open| open.team.as_ref()));
        let followed = self.conversations.entry(*id).or_default();
        match event {
            ConversationEvent::Started { team, .. } => {
                followed.open = true;
                self.teams
                    .entry(team_key(team.as_ref()))
                    .or_default()
                    .conversations += 1;
            }
            ConversationEvent::Opened { .. } => {
                followed.open = true;
                self.teams.entry(None).or_default().conversations += 1;
            }
            ConversationEvent::HandedOffToAi {
                agent_id,
                agent_name,
                ..
            } => {
                followed.ai_handled = true;
                self.agent(agent_id).last_name = agent_name.as_str().to_owned();
                self.teams.entry(team).or_default().handoffs += 1;
                self.marks.push((at, Mark::Handoff));
            }
            ConversationEvent::EscalatedToHuman {
                agent_id,
                cause,
                reason,
                ..
            }
            | ConversationEvent::EscalatedByRule {
                agent_id,
                cause,
                reason,
                ..
            } => {
                followed.went_back = true;
                *self
                    .agent(agent_id)
                    .escalations_by_cause
                    .entry(cause.as_str().to_owned())
                    .or_default() += 1;
                *self.reasons.entry(reason.as_str().to_owned()).or_default() += 1;
                self.teams.entry(team).or_default().escalations += 1;
                self.marks.push((at, Mark::Escalation));
            }
            ConversationEvent::Reclaimed { .. } => followed.went_back = true,
            ConversationEvent::Closed { .. } => {
                followed.open = false;
                let contained = replay
                    .conversation(id)
                    .is_some_and(|history| history.closed_while_ai_active());
                if contained {
                    followed.contained = true;
                    self.marks.push((at, Mark::Contained));
                }
            }
            ConversationEvent::AwaitingHuman { team, since, .. } => match &mut followed.waiting {
                Some((_, queue)) => queue.clone_from(team),
                None => followed.waiting = Some((*since, team.clone())),
            },
            ConversationEvent::HumanAssigned { team, at, .. } => {
                if let Some((since, queue)) = followed.waiting.take() {
                    let waited = at.millis_since(since);
                    self.waits.push(waited);
                    let queue = team_key(team.as_ref().or(queue.as_ref()));
                    self.teams.entry(queue).or_default().wait_ms.push(waited);
                }
            }
            ConversationEvent::SlaWarning { team, .. } => {
                self.teams
                    .entry(team_key(team.as_ref()))
                    .or_default()
                    .sla_warnings += 1;
                self.marks.push((at, Mark::SlaWarning));
            }
            ConversationEvent::SlaBreached { team, .. } => {
                self.teams
                    .entry(team_key(team.as_ref()))
                    .or_default()
                    .sla_breaches += 1;
                self.marks.push((at, Mark::SlaBreach));
            }
            ConversationEvent::AiReplyOverdue { agent_id, .. } => {
                self.agent(agent_id).reply_timeouts += 1;
                self.marks.push((at, Mark::ReplyTimeout));
            }
            _ => {}
        }
        // A customer's message to an AI agent waits for its reply until the agent's next
        // message, or until the conversation leaves the agent. The audit folds without the
        // records' times (the state's own `reply_pending_since` stays unset), so the report
        // times the wait by the records' times.
        let followed = self.conversations.entry(*id).or_default();
        let ai_active = state.is_some_and(|open| matches!(open.handler, Handler::Ai { .. }))
            && matches!(
                replay.conversation(id).map(|h| h.state()),
                Some(Conversation::Open(_))
            );
        match event {
            ConversationEvent::MessagePosted {
                author: Author::Customer(_),
                ..
            } if ai_active => {
                followed.reply_pending_from.get_or_insert(at);
            }
            ConversationEvent::MessagePosted {
                author: Author::Ai(agent_id),
                ..
            } => {
                if let Some(from) = followed.reply_pending_from.take() {
                    let took = u64::try_from(at.saturating_sub(from) / 1000).unwrap_or(0);
                    self.agent(agent_id).reply_ms.push(took);
                    self.marks.push((at, Mark::Reply(took)));
                }
            }
            _ if !ai_active => followed.reply_pending_from = None,
            _ => {}
        }
    }

    fn agent(&mut self, agent_id: &AiAgentId) -> &mut AgentNotes {
        self.agents.entry(agent_id.as_str().to_owned()).or_default()
    }

    fn finish(self, replay: &Replay) -> Report {
        let stats = Stats::from_replay(replay);
        let mut containment = Containment::default();
        for followed in self.conversations.values() {
            if !followed.ai_handled {
                continue;
            }
            containment.ai_handled += 1;
            if followed.went_back {
                containment.went_back += 1;
            } else if followed.contained {
                containment.contained += 1;
            } else {
                containment.undecided += 1;
            }
        }
        let decided = containment.contained + containment.went_back;
        containment.rate = (decided > 0).then(|| containment.contained as f64 / decided as f64);

        let mut notes = self.agents;
        let agents = stats
            .ai_containment_by_agent
            .iter()
            .map(|counts| {
                let own = notes.remove(&counts.agent_id).unwrap_or_default();
                let name = handover_core::AiAgentId::new(&counts.agent_id)
                    .ok()
                    .and_then(|id| replay.roster().get(&id))
                    .map_or(own.last_name, |agent| {
                        agent.profile.name.as_str().to_owned()
                    });
                AgentReport {
                    agent_id: counts.agent_id.clone(),
                    name,
                    handoffs: counts.handoffs,
                    contained: counts.contained,
                    escalated: counts.escalated,
                    reclaimed: counts.reclaimed,
                    containment_rate: counts.containment_rate,
                    escalations_by_cause: own.escalations_by_cause,
                    reply_ms: Percentiles::of(own.reply_ms),
                    reply_timeouts: own.reply_timeouts,
                }
            })
            .collect();

        let teams = self
            .teams
            .into_iter()
            .map(|(team, notes)| TeamReport {
                team,
                conversations: notes.conversations,
                wait_ms: Percentiles::of(notes.wait_ms),
                sla_warnings: notes.sla_warnings,
                sla_breaches: notes.sla_breaches,
                handoffs: notes.handoffs,
                escalations: notes.escalations,
            })
            .collect();

        let mut reasons: Vec<(String, u64)> = self.reasons.into_iter().collect();
        // Stable: equal counts stay in the map's order, by reason.
        reasons.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
        reasons.truncate(TOP_REASONS);

        Report {
            first_recorded_at: replay.first_recorded_at(),
            last_recorded_at: replay.last_recorded_at(),
            containment,
            agents,
            teams,
            waits: Histogram::of(&self.waits),
            wait_ms: Percentiles::of(self.waits),
            timeline: timeline(
                replay.first_recorded_at(),
                replay.last_recorded_at(),
                self.marks,
            ),
            escalation_reasons: reasons,
            stats,
        }
    }
}

/// Cuts the span from `first` to `last` into buckets and sorts the marks into them.
fn timeline(
    first: Option<RecordedAt>,
    last: Option<RecordedAt>,
    marks: Vec<(i64, Mark)>,
) -> Timeline {
    let (Some(first), Some(last)) = (first, last) else {
        return Timeline::default();
    };
    let (first, last) = (first.as_micros(), last.as_micros());
    let span = last.saturating_sub(first);
    let width = BUCKET_WIDTHS_S
        .iter()
        .map(|seconds| seconds * 1_000_000)
        .find(|width| span / width < MAX_BUCKETS)
        .unwrap_or_else(|| (span / MAX_BUCKETS).saturating_add(1));
    let start = first.div_euclid(width) * width;
    let count = usize::try_from((last - start) / width + 1).unwrap_or(1);
    let mut buckets: Vec<TimeBucket> = (0..count)
        .map(|n| TimeBucket {
            start_micros: start + n as i64 * width,
            ..TimeBucket::default()
        })
        .collect();
    let mut replies: Vec<Vec<u64>> = vec![Vec::new(); count];
    for (at, mark) in marks {
        let n = usize::try_from((at - start) / width)
            .unwrap_or(0)
            .min(count - 1);
        let bucket = &mut buckets[n];
        match mark {
            Mark::Handoff => bucket.handoffs += 1,
            Mark::Escalation => bucket.escalations += 1,
            Mark::Contained => bucket.contained += 1,
            Mark::SlaWarning => bucket.sla_warnings += 1,
            Mark::SlaBreach => bucket.sla_breaches += 1,
            Mark::ReplyTimeout => bucket.ai_reply_timeouts += 1,
            Mark::Reply(took) => replies[n].push(took),
        }
    }
    for (bucket, replies) in buckets.iter_mut().zip(replies) {
        bucket.ai_reply_ms = Percentiles::of(replies);
    }
    Timeline {
        bucket_micros: width,
        buckets,
    }
}
