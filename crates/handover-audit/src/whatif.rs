//! What-if: a recorded log replayed under another escalation policy. Pure over the events (no
//! actor, no clock): each conversation is folded in global order with the runtime's own
//! [`conversation::evolve_at`] (the record's time as `at`, as the runtime does when it
//! rebuilds a conversation), the AI-agent roster beside it, and at each moment where the
//! runtime asked its policy, the other policy is asked the same question on the same state:
//!
//! - each customer's message while AI-active ([`Rules::on_customer_message`], the message
//!   folded in); per conversation, the first escalation a rule decided on a message is
//!   compared with the first message the other policy would escalate on: `same`, `earlier`,
//!   `later_or_not_at_all`, or `new` (the log has none);
//! - each handoff to AI ([`Rules::before_handoff`], on the state before it; a
//!   `policy_overridden` before it means the policy in force refused it): `newly_refused`,
//!   `no_longer_refused`, `refused_by_another_rule`;
//! - each skill the AI agent started, asked approval for, or recorded directly
//!   ([`Rules::before_skill`]): `newly_gated`, `no_longer_gated`, `gated_by_another_rule`;
//! - each "could not answer" ([`Rules::on_ai_miss`], the report folded in):
//!   `newly_escalated`, `no_longer_escalated`, `escalated_by_another_rule`.
//!
//! The state is the recorded one: after a moment where the other policy would have acted
//! differently, the rest of the conversation is still compared as it was recorded. A handoff
//! the policy in force refused without an override is not in the log, so it cannot be
//! compared.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use handover_core::conversation::{self, Conversation, Handler};
use handover_core::rules::{RuleName, Rules};
use handover_core::{
    Author, ConversationEvent, ConversationId, EscalationCause, Event, Roster, Specialty, StreamId,
    Timestamp,
};
use handover_store::RecordedEvent;
use serde::Serialize;

use crate::error::AuditError;
use crate::fault::{Fault, FaultKind, Location};
use crate::log::AuditLog;
use crate::progress::{NoProgress, Progress, Ticker};
use crate::replay::describe_event;

/// The kinds of difference at each moment: the other policy acts where the log's did not, the
/// log's acted where the other does not, both act by different rules.
const HANDOFF_KINDS: [&str; 3] = [
    "newly_refused",
    "no_longer_refused",
    "refused_by_another_rule",
];
const SKILL_KINDS: [&str; 3] = ["newly_gated", "no_longer_gated", "gated_by_another_rule"];
const MISS_KINDS: [&str; 3] = [
    "newly_escalated",
    "no_longer_escalated",
    "escalated_by_another_rule",
];

/// How many example conversations a finding names at most.
pub const WHAT_IF_EXAMPLES_MAX: usize = 5;

/// The moment of a finding.
pub mod moment {
    /// A customer's message while an AI agent was active.
    pub const CUSTOMER_MESSAGE: &str = "customer_message";
    /// A handoff to an AI agent.
    pub const HANDOFF: &str = "handoff";
    /// A skill the AI agent ran or asked to run.
    pub const SKILL: &str = "skill";
    /// An AI agent's "could not answer".
    pub const AI_MISS: &str = "ai_miss";
}

/// How many moments were compared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WhatIfMoments {
    /// Customers' messages written while an AI agent was active.
    pub customer_messages: u64,
    /// Handoffs to AI.
    pub handoffs: u64,
    /// Skills started, asked approval for, or recorded without a start.
    pub skills: u64,
    /// "Could not answer" reports.
    pub ai_misses: u64,
}

/// One kind of difference (or, for escalations on messages, `same`) at one moment, for one
/// rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WhatIfFinding {
    /// `customer_message`, `handoff`, `skill` or `ai_miss`.
    pub moment: &'static str,
    /// What differs (see the module's documentation), or `same`.
    pub kind: &'static str,
    /// The rule concerned: the other policy's when it acts, the recorded one when only the
    /// log's policy acted; `null` for an escalation written before policies had rules.
    pub rule: Option<String>,
    /// How many: conversations for `customer_message`, moments for the others.
    pub count: u64,
    /// Up to five conversations where it happened, in log order.
    pub examples: Vec<String>,
}

impl WhatIfFinding {
    /// Whether it is a difference (everything but `same`).
    pub fn is_difference(&self) -> bool {
        self.kind != "same"
    }
}

/// What another policy would have decided on a recorded log. Serialises to the JSON
/// `handover audit what-if --json` prints.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WhatIfReport {
    /// The other policy's name.
    pub policy: String,
    /// Its version.
    pub policy_version: String,
    /// The versions of the policies whose rules decided something in the log, sorted.
    pub recorded_policy_versions: Vec<String>,
    /// Conversations in the log.
    pub conversations: u64,
    /// Moments compared.
    pub compared: WhatIfMoments,
    /// The sum of the findings' counts, `same` excluded.
    pub differences: u64,
    /// Conversations with at least one difference.
    pub conversations_with_differences: u64,
    /// Every finding, by moment, kind and rule.
    pub findings: Vec<WhatIfFinding>,
}

/// One conversation's fold and what the comparison needs of it.
#[derive(Default)]

struct Tracked {
    state: Conversation,
    /// Customers' messages while AI-active so far.
    messages: u32,
    /// A customer's message whose recorded outcome the next event tells, with the other
    /// policy's verdict on it.
    message_pending: Option<(u32, Option<RuleName>)>,
    /// A "could not answer" whose recorded outcome the next event tells, with the other
    /// policy's verdict on it.
    miss_pending: Option<Option<RuleName>>,
    /// The first escalation a rule recorded on a customer's message: its message, its rule
    /// (`None`: written before policies had rules).
    recorded_first: Option<(u32, Option<RuleName>)>,
    /// The first customer's message the other policy escalates on, and its rule.
    other_first: Option<(u32, RuleName)>,
    /// Events of a handoff's append seen before the handoff itself: the state before them,
    /// the rule a supervisor overrode, the topic of the context given.
    handoff_prefix: Option<HandoffPrefix>,
    differs: bool,
}

struct HandoffPrefix {
    before: Conversation,
    overridden: Option<RuleName>,
    topic: Option<Specialty>,
}

/// A finding's moment, kind and rule.
type FindingKey = (&'static str, &'static str, Option<String>);

/// A what-if in progress: feed it the log's records in position order, then [`finish`].
///
/// [`finish`]: WhatIf::finish
pub struct WhatIf<'r> {
    other: &'r Rules,
    roster: Roster,
    conversations: HashMap<ConversationId, Tracked>,
    /// Conversations in the order they first appear.
    order: Vec<ConversationId>,
    compared: WhatIfMoments,
    findings: BTreeMap<FindingKey, (u64, Vec<ConversationId>)>,
    versions: std::collections::BTreeSet<String>,
}

impl<'r> WhatIf<'r> {
    /// A what-if under `other`.
    pub fn new(other: &'r Rules) -> WhatIf<'r> {
        WhatIf {
            other,
            roster: Roster::default(),
            conversations: HashMap::new(),
            order: Vec::new(),
            compared: WhatIfMoments::default(),
            findings: BTreeMap::new(),
            versions: Default::default(),
        }
    }

    /// Takes the next record of the log. Fails on an event that does not fold (a log
    /// `handover audit verify` finds unsound).
    pub fn apply(&mut self, record: &RecordedEvent) -> Result<(), AuditError> {
        let fault = |description: String| {
            AuditError::Unsound(Fault::new(
                FaultKind::Rule,
                Location::record(&record.stream, record.seq, record.position),
                description,
            ))
        };
        let (id, event) = match (&record.stream, &record.event) {
            (_, Event::AiAgent(event)) => {
                return self.roster.evolve(event).map_err(|rejection| {
                    fault(format!("{} breaks a rule: {rejection}", event.type_name()))
                });
            }
            (StreamId::Conversation(id), Event::Conversation(event)) => (*id, event),
            _ => return Ok(()),
        };
        let at = Timestamp(record.recorded_at.0);
        if !self.conversations.contains_key(&id) {
            self.order.push(id);
        }
        let mut tracked = self.conversations.remove(&id).unwrap_or_default();
        let result = self.take(id, &mut tracked, event, at);
        self.conversations.insert(id, tracked);
        result.map_err(|rejection| {
            fault(format!(
                "{} breaks a rule: {rejection}",
                describe_event(event)
            ))
        })
    }

    fn take(
        &mut self,
        id: ConversationId,
        tracked: &mut Tracked,
        event: &ConversationEvent,
        at: Timestamp,
    ) -> Result<(), handover_core::Rejection> {
        self.note_version(event);
        // What the previous event left to tell: the recorded outcome of a message or a miss.
        if let Some((message, other)) = tracked.message_pending.take() {
            let recorded = match event {
                ConversationEvent::EscalatedByRule { rule, .. } => Some(Some(rule.clone())),
                ConversationEvent::EscalatedToHuman {
                    cause: EscalationCause::CustomerAskedForHuman,
                    ..
                } => Some(None),
                _ => None,
            };
            if let Some(rule) = recorded {
                tracked.recorded_first.get_or_insert((message, rule));
            }
            if let Some(rule) = other {
                tracked.other_first.get_or_insert((message, rule));
            }
        }
        if let Some(other) = tracked.miss_pending.take() {
            let recorded = match event {
                ConversationEvent::EscalatedByRule {
                    rule,
                    cause: EscalationCause::AiCouldNotAnswer,
                    ..
                } => Some(rule.clone()),
                _ => None,
            };
            self.compare(id, tracked, moment::AI_MISS, recorded, other, MISS_KINDS);
        }
        let before = tracked.state.clone();
        let open_before = match &before {
            Conversation::Open(open) => Some(open),
            _ => None,
        };
        let ai_active = open_before.is_some_and(|open| matches!(open.handler, Handler::Ai { .. }));
        // The events a handoff's append puts before the handoff.
        match event {
            ConversationEvent::PolicyOverridden { rule, .. } => {
                tracked
                    .handoff_prefix
                    .get_or_insert_with(|| HandoffPrefix {
                        before: before.clone(),
                        overridden: None,
                        topic: None,
                    })
                    .overridden = Some(rule.clone());
            }
            ConversationEvent::ContextShared {
                by: Author::Human(_),
                context,
                ..
            } => {
                tracked
                    .handoff_prefix
                    .get_or_insert_with(|| HandoffPrefix {
                        before: before.clone(),
                        overridden: None,
                        topic: None,
                    })
                    .topic = context.topic().cloned();
            }
            ConversationEvent::HandedOffToAi { agent_id, .. } => {
                let prefix = tracked.handoff_prefix.take();
                let (state, overridden, topic) = match &prefix {
                    Some(prefix) => (
                        &prefix.before,
                        prefix.overridden.clone(),
                        prefix.topic.as_ref(),
                    ),
                    None => (&before, None, None),
                };
                if let (Conversation::Open(open), Some(agent)) = (state, self.roster.get(agent_id))
                {
                    self.compared.handoffs += 1;
                    let other = self
                        .other
                        .before_handoff(open, agent, topic, at)
                        .map(|refusal| refusal.rule);
                    self.compare(
                        id,
                        tracked,
                        moment::HANDOFF,
                        overridden,
                        other,
                        HANDOFF_KINDS,
                    );
                }
            }
            _ => tracked.handoff_prefix = None,
        }
        // Skills: the question is asked before the event folds.
        let skill = match event {
            ConversationEvent::AiSkillStarted { name, input, .. } => Some((name, input, None)),
            ConversationEvent::SkillApprovalRequested {
                name, input, rule, ..
            } => Some((name, input, Some(rule.clone()))),
            ConversationEvent::AiActionRecorded { agent_id, skill } => {
                let started = open_before.is_some_and(|open| {
                    open.skills_started
                        .iter()
                        .any(|(_, agent, name)| agent == agent_id && *name == skill.name)
                });
                (!started).then_some((&skill.name, &skill.input, None))
            }
            _ => None,
        };
        if let Some((name, input, recorded)) = skill {
            self.compared.skills += 1;
            let other = self.other.before_skill(name, input).map(|gate| gate.rule);
            self.compare(id, tracked, moment::SKILL, recorded, other, SKILL_KINDS);
        }
        tracked.state =
            conversation::evolve_at(std::mem::take(&mut tracked.state), event, Some(at))?;
        let Conversation::Open(open_after) = &tracked.state else {
            return Ok(());
        };
        match event {
            ConversationEvent::MessagePosted {
                author: Author::Customer(_),
                concerns,
                ..
            } if ai_active => {
                self.compared.customer_messages += 1;
                tracked.messages += 1;
                let other = self
                    .other
                    .on_customer_message(open_after, concerns, self.other)
                    .map(|fired| fired.rule);
                tracked.message_pending = Some((tracked.messages, other));
            }
            ConversationEvent::AiCouldNotAnswer { .. } => {
                self.compared.ai_misses += 1;
                tracked.miss_pending =
                    Some(self.other.on_ai_miss(open_after).map(|fired| fired.rule));
            }
            _ => {}
        }
        Ok(())
    }

    fn note_version(&mut self, event: &ConversationEvent) {
        let version = match event {
            ConversationEvent::EscalatedByRule { policy_version, .. }
            | ConversationEvent::PolicyOverridden { policy_version, .. }
            | ConversationEvent::SkillApprovalRequested { policy_version, .. } => policy_version,
            _ => return,
        };
        if !self.versions.contains(version.as_str()) {
            self.versions.insert(version.as_str().to_owned());
        }
    }

    /// Compares what was recorded (`Some(rule)`: the policy in force acted) with what the
    /// other policy does; `kinds`: other only, recorded only, both with different rules.
    fn compare(
        &mut self,
        id: ConversationId,
        tracked: &mut Tracked,
        moment: &'static str,
        recorded: Option<RuleName>,
        other: Option<RuleName>,
        kinds: [&'static str; 3],
    ) {
        let (kind, rule) = match (recorded, other) {
            (None, None) => return,
            (Some(recorded), Some(other)) if recorded == other => return,
            (None, Some(other)) => (kinds[0], Some(other)),
            (Some(recorded), None) => (kinds[1], Some(recorded)),
            (Some(_), Some(other)) => (kinds[2], Some(other)),
        };
        tracked.differs = true;
        self.found(moment, kind, rule.map(|rule| rule.as_str().to_owned()), id);
    }

    fn found(
        &mut self,
        moment: &'static str,
        kind: &'static str,
        rule: Option<String>,
        id: ConversationId,
    ) {
        let (count, examples) = self.findings.entry((moment, kind, rule)).or_default();
        *count += 1;
        if examples.len() < WHAT_IF_EXAMPLES_MAX && !examples.contains(&id) {
            examples.push(id);
        }
    }

    /// The report, once every record is taken.
    pub fn finish(mut self) -> WhatIfReport {
        for id in std::mem::take(&mut self.order) {
            let Some(mut tracked) = self.conversations.remove(&id) else {
                continue;
            };
            // A message at the log's end: nothing was recorded after it.
            if let Some((message, Some(rule))) = tracked.message_pending.take() {
                tracked.other_first.get_or_insert((message, rule));
            }
            if let Some(other) = tracked.miss_pending.take() {
                self.compare(id, &mut tracked, moment::AI_MISS, None, other, MISS_KINDS);
            }
            let classified = match (tracked.recorded_first.take(), tracked.other_first.take()) {
                (None, None) => None,
                (None, Some((_, rule))) => Some(("new", Some(rule.as_str().to_owned()))),
                (Some((_, rule)), None) => {
                    Some(("later_or_not_at_all", rule.map(|r| r.as_str().to_owned())))
                }
                (Some((recorded, recorded_rule)), Some((other, rule))) => {
                    if other < recorded {
                        Some(("earlier", Some(rule.as_str().to_owned())))
                    } else if other > recorded {
                        Some((
                            "later_or_not_at_all",
                            recorded_rule.map(|r| r.as_str().to_owned()),
                        ))
                    } else {
                        Some(("same", Some(rule.as_str().to_owned())))
                    }
                }
            };
            if let Some((kind, rule)) = classified {
                if kind != "same" {
                    tracked.differs = true;
                }
                self.found(moment::CUSTOMER_MESSAGE, kind, rule, id);
            }
            self.conversations.insert(id, tracked);
            self.order.push(id);
        }
        let order = |moment: &str| match moment {
            moment::CUSTOMER_MESSAGE => 0,
            moment::HANDOFF => 1,
            moment::SKILL => 2,
            _ => 3,
        };
        let mut findings: Vec<WhatIfFinding> = self
            .findings
            .into_iter()
            .map(|((moment, kind, rule), (count, examples))| WhatIfFinding {
                moment,
                kind,
                rule,
                count,
                examples: examples.iter().map(ToString::to_string).collect(),
            })
            .collect();
        findings.sort_by(|a, b| {
            (order(a.moment), a.moment, a.kind, &a.rule).cmp(&(
                order(b.moment),
                b.moment,
                b.kind,
                &b.rule,
            ))
        });
        WhatIfReport {
            policy: self.other.name().to_owned(),
            policy_version: self.other.version().as_str().to_owned(),
            recorded_policy_versions: self.versions.into_iter().collect(),
            conversations: self.order.len() as u64,
            compared: self.compared,
            differences: findings
                .iter()
                .filter(|f| f.is_difference())
                .map(|f| f.count)
                .sum(),
            conversations_with_differences: self
                .conversations
                .values()
                .filter(|tracked| tracked.differs)
                .count() as u64,
            findings,
        }
    }
}

/// Replays `records` (a log's, in position order) under `other`.
pub fn what_if_records<'a>(
    records: impl IntoIterator<Item = &'a RecordedEvent>,
    other: &Rules,
) -> Result<WhatIfReport, AuditError> {
    let mut what_if = WhatIf::new(other);
    for record in records {
        what_if.apply(record)?;
    }
    Ok(what_if.finish())
}

/// Replays the log under `other`: what its rules would have decided differently.
pub fn what_if_of(log: AuditLog<'_>, other: &Rules) -> Result<WhatIfReport, AuditError> {
    what_if_of_with_progress(log, other, &NoProgress)
}

/// [`what_if_of`], telling `progress` how far it has got through the log.
pub fn what_if_of_with_progress(
    log: AuditLog<'_>,
    other: &Rules,
    progress: &dyn Progress,
) -> Result<WhatIfReport, AuditError> {
    let mut ticker = Ticker::start(progress, log.head());
    let mut what_if = WhatIf::new(other);
    for read in log.iter_all() {
        let record = read?;
        what_if.apply(&record)?;
        ticker.tick();
    }
    Ok(what_if.finish())
}

impl fmt::Display for WhatIfReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "policy {:?} version {} over {} conversations (the log's rules: {})",
            self.policy,
            self.policy_version,
            self.conversations,
            if self.recorded_policy_versions.is_empty() {
                "none recorded".to_owned()
            } else {
                format!("version {}", self.recorded_policy_versions.join(", "))
            }
        )?;
        let compared = &self.compared;
        writeln!(
            f,
            "compared: {} customer messages while AI-active, {} handoffs, {} skills, {} AI misses",
            compared.customer_messages, compared.handoffs, compared.skills, compared.ai_misses
        )?;
        if self.differences == 0 {
            writeln!(f, "no difference")?;
        } else {
            writeln!(
                f,
                "{} differences in {} conversations",
                self.differences, self.conversations_with_differences
            )?;
        }
        for finding in &self.findings {
            writeln!(
                f,
                "{:<16} {:<26} rule {:<24} {:>6}  e.g. {}",
                finding.moment,
                finding.kind,
                finding.rule.as_deref().unwrap_or("(none)"),
                finding.count,
                finding.examples.join(" ")
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use handover_core::rules::PolicyVersion;
    use handover_core::{
        AgentName, AiAgentEvent, AiAgentId, Channel, Concern, CustomerId, HumanId, MessageText,
        Reason, SkillData, SkillName, TenantId,
    };
    use handover_store::RecordedAt;

    use super::*;

    const RECORDED: &str = "0123456789abcdef";

    /// A log under construction: one AI agent, then conversations' events, one second apart.
    struct Log {
        records: Vec<RecordedEvent>,
        seqs: HashMap<StreamId, u64>,
    }

    fn agent() -> AiAgentId {
        AiAgentId::new("bot").unwrap()
    }

    fn customer() -> CustomerId {
        CustomerId::new("cust").unwrap()
    }

    fn rule(name: &str) -> RuleName {
        RuleName::new(name).unwrap()
    }

    impl Log {
        fn new() -> Log {
            let mut log = Log {
                records: Vec::new(),
                seqs: HashMap::new(),
            };
            let stream = StreamId::AiAgent(agent());
            log.push_event(
                &stream,
                Event::AiAgent(AiAgentEvent::RegisteredIn {
                    agent_id: agent(),
                    tenant: TenantId::default_tenant(),
                    name: AgentName::new("Bot").unwrap(),
                    specialties: vec![],
                }),
            );
            log.push_event(
                &stream,
                Event::AiAgent(AiAgentEvent::Activated { agent_id: agent() }),
            );
            log
        }

        fn push_event(&mut self, stream: &StreamId, event: Event) {
            let seq = self.seqs.entry(stream.clone()).or_default();
            *seq += 1;
            let position = self.records.len() as u64 + 1;
            self.records.push(RecordedEvent {
                position,
                stream: stream.clone(),
                seq: *seq,
                recorded_at: RecordedAt(1_800_000_000_000_000 + position as i64 * 1_000_000),
                event,
            });
        }

        fn push(&mut self, id: ConversationId, event: ConversationEvent) {
            self.push_event(&StreamId::Conversation(id), Event::Conversation(event));
        }

        /// A conversation opened and handed to the agent.
        fn handed_off(&mut self, n: u128) -> ConversationId {
            let id = ConversationId::from_uuid(uuid::Uuid::from_u128(n));
            self.push(
                id,
                ConversationEvent::Started {
                    tenant: TenantId::default_tenant(),
                    customer: customer(),
                    channel: Channel::new("web-chat").unwrap(),
                    team: None,
                    language: None,
                    at: Timestamp(0),
                },
            );
            self.hand_off(id);
            id
        }

        fn hand_off(&mut self, id: ConversationId) {
            self.push(
                id,
                ConversationEvent::HandedOffToAi {
                    agent_id: agent(),
                    agent_name: AgentName::new("Bot").unwrap(),
                    by_human: HumanId::new("ann").unwrap(),
                    reason: None,
                },
            );
        }

        fn customer_says(&mut self, id: ConversationId, text: &str, concerns: Vec<Concern>) {
            self.push(
                id,
                ConversationEvent::MessagePosted {
                    author: Author::Customer(customer()),
                    text: MessageText::new(text).unwrap(),
                    concerns,
                },
            );
        }

        fn escalated_by(&mut self, id: ConversationId, name: &str, cause: EscalationCause) {
            self.push(
                id,
                ConversationEvent::EscalatedByRule {
                    agent_id: agent(),
                    reason: Reason::new("a rule fired").unwrap(),
                    cause,
                    rule: rule(name),
                    policy_version: PolicyVersion::new(RECORDED).unwrap(),
                    at: Timestamp(0),
                },
            );
        }

        fn run(&self, policy: &str) -> WhatIfReport {
            what_if_records(&self.records, &Rules::parse(policy).unwrap()).unwrap()
        }
    }

    const ASK: &str = r#"
        name = "ask"
        [[rule]]
        name = "asked"
        kind = "ask_for_person"
    "#;

    const EAGER: &str = r#"
        name = "eager"
        [[rule]]
        name = "always"
        kind = "frustration"
        over_customer_messages = 1
        threshold = 0.0
    "#;

    const NOTHING: &str = r#"
        name = "nothing"
        [[rule]]
        name = "gate-nothing-used"
        kind = "skill_approval"
        skills = ["launch_rocket"]
        deadline_minutes = 5
    "#;

    fn findings(report: &WhatIfReport) -> Vec<(&str, &str, Option<&str>, u64)> {
        report
            .findings
            .iter()
            .map(|f| (f.moment, f.kind, f.rule.as_deref(), f.count))
            .collect()
    }

    /// Conversation 1: a plain message, then a request for a human the log escalated on;
    /// conversation 2: a plain message, nothing escalated.
    fn messages_log() -> (Log, ConversationId, ConversationId) {
        let mut log = Log::new();
        let one = log.handed_off(1);
        let two = log.handed_off(2);
        log.customer_says(one, "Where is my parcel?", vec![]);
        log.customer_says(two, "Where is my parcel?", vec![]);
        log.customer_says(
            one,
            "Let me talk to a person",
            vec![Concern::HumanRequested],
        );
        log.escalated_by(one, "asked", EscalationCause::CustomerAskedForHuman);
        (log, one, two)
    }

    #[test]
    fn the_policy_that_wrote_the_log_finds_the_same_escalations() {
        let (log, one, _) = messages_log();
        let report = log.run(ASK);
        assert_eq!(report.differences, 0, "{report}");
        assert_eq!(report.conversations_with_differences, 0);
        assert_eq!(
            findings(&report),
            vec![(moment::CUSTOMER_MESSAGE, "same", Some("asked"), 1)]
        );
        assert_eq!(report.findings[0].examples, vec![one.to_string()]);
        assert_eq!(report.compared.customer_messages, 3);
        assert_eq!(report.recorded_policy_versions, vec![RECORDED.to_owned()]);
    }

    #[test]
    fn an_eager_policy_escalates_earlier_and_where_the_log_did_not() {
        let (log, one, two) = messages_log();
        let report = log.run(EAGER);
        assert_eq!(
            findings(&report),
            vec![
                (moment::CUSTOMER_MESSAGE, "earlier", Some("always"), 1),
                (moment::CUSTOMER_MESSAGE, "new", Some("always"), 1),
            ]
        );
        assert_eq!(report.findings[0].examples, vec![one.to_string()]);
        assert_eq!(report.findings[1].examples, vec![two.to_string()]);
        assert_eq!(report.differences, 2);
        assert_eq!(report.conversations_with_differences, 2);
    }

    #[test]
    fn a_policy_without_the_rule_escalates_later_or_not_at_all() {
        let (log, _, _) = messages_log();
        let report = log.run(NOTHING);
        assert_eq!(
            findings(&report),
            vec![(
                moment::CUSTOMER_MESSAGE,
                "later_or_not_at_all",
                Some("asked"),
                1
            )]
        );
    }

    #[test]
    fn a_later_message_is_later() {
        // The log escalated on the first message; the other policy only on the second.
        let mut log = Log::new();
        let id = log.handed_off(1);
        log.customer_says(id, "This is unacceptable", vec![Concern::Complaint]);
        log.escalated_by(id, "complained", EscalationCause::Complaint);
        log.hand_off(id);
        log.customer_says(id, "A person, please", vec![Concern::HumanRequested]);
        let report = log.run(ASK);
        assert_eq!(
            findings(&report),
            vec![(
                moment::CUSTOMER_MESSAGE,
                "later_or_not_at_all",
                Some("complained"),
                1
            )]
        );
    }

    const ONE_HANDOFF: &str = r#"
        name = "one-handoff"
        [[rule]]
        name = "loop"
        kind = "loop_guard"
        max_handoffs = 1
        cooldown_minutes = 0
    "#;

    #[test]
    fn handoffs_newly_refused_and_no_longer_refused() {
        let mut log = Log::new();
        let id = log.handed_off(1);
        log.push(
            id,
            ConversationEvent::EscalatedToHuman {
                agent_id: agent(),
                reason: Reason::new("stuck").unwrap(),
                cause: EscalationCause::AgentRequested,
            },
        );
        log.hand_off(id);
        let report = log.run(ONE_HANDOFF);
        assert_eq!(
            findings(&report),
            vec![(moment::HANDOFF, "newly_refused", Some("loop"), 1)]
        );
        assert_eq!(report.compared.handoffs, 2);

        // The same, the second handoff refused by the log's policy and overridden.
        let mut log = Log::new();
        let id = log.handed_off(1);
        log.push(
            id,
            ConversationEvent::EscalatedToHuman {
                agent_id: agent(),
                reason: Reason::new("stuck").unwrap(),
                cause: EscalationCause::AgentRequested,
            },
        );
        log.push(
            id,
            ConversationEvent::PolicyOverridden {
                by: HumanId::new("sam").unwrap(),
                rule: rule("loop"),
                policy_version: PolicyVersion::new(RECORDED).unwrap(),
                refusal: Reason::new("too many handoffs").unwrap(),
                at: Timestamp(0),
            },
        );
        log.hand_off(id);
        assert_eq!(log.run(ONE_HANDOFF).differences, 0);
        assert_eq!(
            findings(&log.run(NOTHING)),
            vec![(moment::HANDOFF, "no_longer_refused", Some("loop"), 1)]
        );
    }

    const GATE_REFUND: &str = r#"
        name = "gate"
        [[rule]]
        name = "refunds"
        kind = "skill_approval"
        skills = ["refund"]
        deadline_minutes = 5
    "#;

    #[test]
    fn skills_newly_gated_and_no_longer_gated() {
        let mut log = Log::new();
        let id = log.handed_off(1);
        log.push(
            id,
            ConversationEvent::AiSkillStarted {
                agent_id: agent(),
                name: SkillName::new("refund").unwrap(),
                input: SkillData::new("{}").unwrap(),
            },
        );
        log.push(
            id,
            ConversationEvent::SkillApprovalRequested {
                agent_id: agent(),
                name: SkillName::new("refund").unwrap(),
                input: SkillData::new("{}").unwrap(),
                rule: rule("refunds"),
                policy_version: PolicyVersion::new(RECORDED).unwrap(),
                deadline_ms: 300_000,
                at: Timestamp(0),
            },
        );
        assert_eq!(
            findings(&log.run(GATE_REFUND)),
            vec![(moment::SKILL, "newly_gated", Some("refunds"), 1)]
        );
        assert_eq!(
            findings(&log.run(NOTHING)),
            vec![(moment::SKILL, "no_longer_gated", Some("refunds"), 1)]
        );
    }

    const MISS_ONCE: &str = r#"
        name = "miss-once"
        [[rule]]
        name = "one-miss"
        kind = "ai_could_not_answer"
        in_a_row = 1
    "#;

    #[test]
    fn misses_newly_escalated_no_longer_escalated_and_by_another_rule() {
        let miss = ConversationEvent::AiCouldNotAnswer {
            agent_id: agent(),
            reason: None,
            at: Timestamp(0),
        };
        // A first miss the log did not escalate on, a second one it did, by its rule.
        let mut log = Log::new();
        let id = log.handed_off(1);
        log.push(id, miss.clone());
        log.push(id, miss);
        log.escalated_by(id, "two-misses", EscalationCause::AiCouldNotAnswer);
        assert_eq!(
            findings(&log.run(MISS_ONCE)),
            vec![
                (
                    moment::AI_MISS,
                    "escalated_by_another_rule",
                    Some("one-miss"),
                    1
                ),
                (moment::AI_MISS, "newly_escalated", Some("one-miss"), 1),
            ]
        );
        assert_eq!(
            findings(&log.run(NOTHING)),
            vec![(
                moment::AI_MISS,
                "no_longer_escalated",
                Some("two-misses"),
                1
            )]
        );
    }

    #[test]
    fn examples_stop_at_five_and_the_report_prints() {
        let mut log = Log::new();
        for n in 1..=7 {
            let id = log.handed_off(n);
            log.customer_says(id, "hello", vec![]);
        }
        let report = log.run(EAGER);
        assert_eq!(
            findings(&report),
            vec![(moment::CUSTOMER_MESSAGE, "new", Some("always"), 7)]
        );
        assert_eq!(report.findings[0].examples.len(), WHAT_IF_EXAMPLES_MAX);
        let text = report.to_string();
        assert!(text.contains("7 differences in 7 conversations"), "{text}");
        assert!(text.contains("customer_message"), "{text}");
    }
}
