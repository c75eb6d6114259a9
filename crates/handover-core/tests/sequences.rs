//! Random command sequences against one conversation, a changing roster, a changing directory
//! of humans and an advancing clock: every accepted command's events fold, every rejected
//! command records nothing, and the accepted history keeps the conversation's invariants.
//!
//! The invariants checked after every step:
//!
//! - the state `decide` returned is the fold of the accepted events (each at the time it was
//!   decided), and the events also fold without times;
//! - an open conversation always has a controller: an AI agent, a named human, a human who
//!   reclaimed it, or a queue (never the legacy `Human` handler);
//! - the router never assigns someone offline, away or at capacity;
//! - no command by a human of another tenant, or by an unregistered or removed one, is
//!   accepted;
//! - an SLA warning and an SLA breach are recorded at most once per wait, and only while it
//!   waits; a tick on an open conversation is always accepted, and a second tick at the same
//!   time records nothing;
//! - only the AI assignment that holds the conversation acts (or records the outcome of a skill
//!   it started), only a handoff moves the epoch, and nothing follows the close;
//! - the escalation rules: a handoff the default policy refuses (a concern within its window,
//!   the loop guard, the embedder's refusal) happens only when a supervisor overrides it, and
//!   the override is recorded; a customer's request for a person while AI-active is escalated
//!   by its rule; a skill approved or denied was waiting, and a wait ends with the
//!   assignment.

use std::collections::BTreeMap;

use handover_core::context::Context;
use handover_core::rules::{RuleName, RuleVerdict};
use handover_core::{
    agent, conversation, human, AgentName, AiAgentCommand, AiAgentId, Assignment, Author, Channel,
    Concern, Conversation, ConversationCommand, ConversationEvent, Ctx, CustomerId, DefaultPolicy,
    Directory, Epoch, EscalationCause, Handler, HumanCommand, HumanId, Language, Loads,
    MessageText, NoteAudience, Participant, Presence, Reason, Role, Roster, Settings, Skill,
    SkillData, SkillName, SkillOutcome, Sla, Specialty, SystemActor, TeamId, TenantId, Timestamp,
    TransferTarget,
};
use proptest::prelude::*;

/// `faq` and `sales` start active, `idle` starts registered but inactive, `ghost` starts
/// unregistered (a `Register` step may register it), `rival` is active in tenant `acme`.
const AGENTS: [&str; 5] = ["faq", "sales", "idle", "ghost", "rival"];
/// `ana` (agent, team billing, capacity 2), `carl` (agent, team support, capacity 1), `bob`
/// (supervisor, capacity 3): tenant `default`, available at first. `zoe`: an agent of tenant
/// `acme`, available. `nobody`: never registered.
const HUMANS: [&str; 5] = ["ana", "carl", "bob", "zoe", "nobody"];
const TEAMS: [&str; 2] = ["billing", "support"];
const OTHER_TENANT: &str = "acme";
const CUSTOMER: &str = "cust-1";
const OTHER_CUSTOMER: &str = "cust-2";

/// Customer messages, mostly ordinary so that handoffs stay possible for a while.
const TEXTS: [&str; 8] = [
    "What are your business hours?",
    "How much is the pro plan?",
    "Thanks!",
    "This is unacceptable",
    "Can we negotiate a discount?",
    "Can I talk to a human?",
    "This bot is useless, what a waste of time",
    "How much is the pro plan??",
];

/// Skills an AI agent starts: `lookup_price` runs at once, `refund` waits for approval under
/// the default policy.
const SKILLS: [&str; 2] = ["lookup_price", "refund"];

/// Topics a handoff's context may give.
const TOPICS: [&str; 2] = ["faq", "sales"];

/// Which AI agent acts: one by name, or whichever holds the conversation now.
#[derive(Clone, Debug)]
enum Who {
    Named(usize),
    Current,
}

/// Which epoch an AI agent's command carries, relative to the conversation's current one.
#[derive(Clone, Debug)]
enum EpochPick {
    Current,
    Previous,
    Next,
    Fixed(u64),
}

#[derive(Clone, Debug)]
enum Actor {
    Customer { right: bool },
    Human(usize),
    Ai(Who, EpochPick),
    Router,
}

#[derive(Clone, Debug)]
enum Step {
    Open {
        human: Option<usize>,
    },
    Start {
        team: Option<usize>,
        language: Option<usize>,
        human: Option<usize>,
    },
    PostCustomer {
        right: bool,
        text: usize,
    },
    PostHuman(usize),
    PostAi(Who, EpochPick),
    HandOff {
        human: usize,
        to: Who,
        with_reason: bool,
    },
    /// The outcome of one of [`SKILLS`].
    RecordSkill(Who, EpochPick, usize),
    /// `HandOffToAiWith`: a topic of [`TOPICS`], an override, an embedder's refusal.
    HandOffWith {
        human: usize,
        to: Who,
        topic: Option<usize>,
        override_policy: bool,
        refused: bool,
    },
    ReportMiss(Who, EpochPick),
    StartSkill(Who, EpochPick, usize),
    ApproveSkill(usize, usize),
    DenySkill(usize, usize),
    EscalateWith(Who, EpochPick),
    PostJudged {
        right: bool,
        text: usize,
        cause: EscalationCause,
    },
    Reclaim(usize),
    Escalate(Who, EpochPick, EscalationCause),
    Close(Actor),
    Assign {
        by: Actor,
        to: usize,
    },
    Accept(usize),
    TransferToHuman {
        by: usize,
        to: usize,
    },
    TransferToTeam {
        by: usize,
        team: usize,
    },
    Requeue(usize),
    Whisper {
        by: usize,
        to_ai: bool,
    },
    RaiseFlag(Actor),
    LowerFlag(usize),
    Tick,
    /// The clock moves on by this many milliseconds.
    Advance(u64),
    SetPresence(usize, Presence),
    Remove(usize),
    /// The human's load from other conversations.
    SetLoad(usize, u32),
    Register(usize),
    Activate(usize),
    Deactivate(usize),
}

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![
        3 => Just(Who::Current),
        2 => (0..AGENTS.len()).prop_map(Who::Named),
    ]
}

/// Mostly the agents that start active, so that conversations spend time AI-active.
fn handoff_target() -> impl Strategy<Value = Who> {
    prop_oneof![
        4 => (0..2usize).prop_map(Who::Named),
        1 => (2..AGENTS.len()).prop_map(Who::Named),
    ]
}

fn epoch_pick() -> impl Strategy<Value = EpochPick> {
    prop_oneof![
        6 => Just(EpochPick::Current),
        2 => Just(EpochPick::Previous),
        1 => Just(EpochPick::Next),
        1 => (0u64..4).prop_map(EpochPick::Fixed),
    ]
}

fn cause() -> impl Strategy<Value = EscalationCause> {
    prop_oneof![
        Just(EscalationCause::AgentRequested),
        Just(EscalationCause::CustomerAskedForHuman),
        Just(EscalationCause::AgentDeactivated),
        Just(EscalationCause::AiTimeout),
        Just(EscalationCause::Frustration),
        Just(EscalationCause::GoingInCircles),
        Just(EscalationCause::AiCouldNotAnswer),
        Just(EscalationCause::Complaint),
    ]
}

fn text_index() -> impl Strategy<Value = usize> {
    prop_oneof![
        30 => 0..3usize,
        1 => Just(3usize),
        1 => Just(4usize),
        2 => Just(5usize),
        2 => Just(6usize),
        2 => Just(7usize),
    ]
}

/// Mostly the humans of the tenant.
fn human_index() -> impl Strategy<Value = usize> {
    prop_oneof![
        8 => 0..3usize,
        1 => 3..HUMANS.len(),
    ]
}

fn presence() -> impl Strategy<Value = Presence> {
    prop_oneof![
        3 => Just(Presence::Available),
        1 => Just(Presence::Away),
        2 => Just(Presence::Offline),
    ]
}

fn actor() -> impl Strategy<Value = Actor> {
    prop_oneof![
        2 => prop::bool::weighted(0.8).prop_map(|right| Actor::Customer { right }),
        4 => human_index().prop_map(Actor::Human),
        2 => (who(), epoch_pick()).prop_map(|(w, e)| Actor::Ai(w, e)),
        1 => Just(Actor::Router),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => prop::option::of(human_index()).prop_map(|human| Step::Open { human }),
        1 => (
            prop::option::of(0..TEAMS.len()),
            prop::option::of(0..3usize),
            prop::option::weighted(0.3, human_index()),
        )
            .prop_map(|(team, language, human)| Step::Start { team, language, human }),
        12 => (prop::bool::weighted(0.85), text_index())
            .prop_map(|(right, text)| Step::PostCustomer { right, text }),
        6 => human_index().prop_map(Step::PostHuman),
        10 => (who(), epoch_pick()).prop_map(|(w, e)| Step::PostAi(w, e)),
        8 => (human_index(), handoff_target(), any::<bool>())
            .prop_map(|(human, to, with_reason)| Step::HandOff { human, to, with_reason }),
        3 => (who(), epoch_pick(), 0..SKILLS.len()).prop_map(|(w, e, k)| Step::RecordSkill(w, e, k)),
        4 => (
            human_index(),
            handoff_target(),
            prop::option::of(0..TOPICS.len()),
            prop::bool::weighted(0.4),
            prop::bool::weighted(0.2),
        )
            .prop_map(|(human, to, topic, override_policy, refused)| Step::HandOffWith {
                human,
                to,
                topic,
                override_policy,
                refused,
            }),
        4 => (who(), epoch_pick()).prop_map(|(w, e)| Step::ReportMiss(w, e)),
        4 => (who(), epoch_pick(), 0..SKILLS.len()).prop_map(|(w, e, k)| Step::StartSkill(w, e, k)),
        3 => (human_index(), 0..SKILLS.len()).prop_map(|(h, k)| Step::ApproveSkill(h, k)),
        2 => (human_index(), 0..SKILLS.len()).prop_map(|(h, k)| Step::DenySkill(h, k)),
        2 => (who(), epoch_pick()).prop_map(|(w, e)| Step::EscalateWith(w, e)),
        2 => (prop::bool::weighted(0.85), text_index(), cause())
            .prop_map(|(right, text, cause)| Step::PostJudged { right, text, cause }),
        5 => human_index().prop_map(Step::Reclaim),
        3 => (who(), epoch_pick(), cause()).prop_map(|(w, e, c)| Step::Escalate(w, e, c)),
        1 => actor().prop_map(Step::Close),
        8 => (
            prop_oneof![
                3 => Just(Actor::Router),
                2 => human_index().prop_map(Actor::Human),
                1 => actor(),
            ],
            human_index(),
        )
            .prop_map(|(by, to)| Step::Assign { by, to }),
        6 => human_index().prop_map(Step::Accept),
        3 => (human_index(), human_index()).prop_map(|(by, to)| Step::TransferToHuman { by, to }),
        3 => (human_index(), 0..TEAMS.len()).prop_map(|(by, team)| Step::TransferToTeam { by, team }),
        3 => human_index().prop_map(Step::Requeue),
        2 => (human_index(), any::<bool>()).prop_map(|(by, to_ai)| Step::Whisper { by, to_ai }),
        2 => actor().prop_map(Step::RaiseFlag),
        2 => human_index().prop_map(Step::LowerFlag),
        8 => Just(Step::Tick),
        8 => prop_oneof![
            Just(1_000u64),
            Just(29_000),
            Just(31_000),
            Just(61_000),
            Just(250_000),
            Just(601_000),
            Just(1_801_000),
        ]
        .prop_map(Step::Advance),
        5 => (human_index(), presence()).prop_map(|(h, p)| Step::SetPresence(h, p)),
        1 => human_index().prop_map(Step::Remove),
        5 => (human_index(), 0u32..4).prop_map(|(h, n)| Step::SetLoad(h, n)),
        1 => (0..AGENTS.len()).prop_map(Step::Register),
        3 => (0..AGENTS.len()).prop_map(Step::Activate),
        3 => (0..AGENTS.len()).prop_map(Step::Deactivate),
    ]
}

/// Most sequences open the conversation first; some leave it to chance. Some close idle
/// conversations after 3 minutes.
fn scenario() -> impl Strategy<Value = (bool, Vec<Step>)> {
    (
        prop::bool::weighted(0.9),
        prop::option::of(0..3usize),
        prop::collection::vec(step(), 0..80),
        any::<bool>(),
    )
        .prop_map(|(open_first, human, mut steps, idle_close)| {
            if open_first {
                steps.insert(0, Step::Open { human });
            }
            (idle_close, steps)
        })
}

fn ai(id: &str) -> AiAgentId {
    AiAgentId::new(id).unwrap()
}

fn human_id(index: usize) -> HumanId {
    HumanId::new(HUMANS[index]).unwrap()
}

fn team(index: usize) -> TeamId {
    TeamId::new(TEAMS[index]).unwrap()
}

fn customer(right: bool) -> CustomerId {
    CustomerId::new(if right { CUSTOMER } else { OTHER_CUSTOMER }).unwrap()
}

fn reason(text: &str) -> Reason {
    Reason::new(text).unwrap()
}

fn register_command(id: &str) -> AiAgentCommand {
    let name = AgentName::new(format!("{id} bot")).unwrap();
    let specialties = vec![Specialty::new("faq").unwrap()];
    if id == "rival" {
        AiAgentCommand::RegisterIn {
            tenant: TenantId::new(OTHER_TENANT).unwrap(),
            name,
            specialties,
        }
    } else {
        AiAgentCommand::Register { name, specialties }
    }
}

fn initial_roster() -> Roster {
    let mut roster = Roster::default();
    for (id, active) in [
        ("faq", true),
        ("sales", true),
        ("idle", false),
        ("rival", true),
    ] {
        let mut commands = vec![register_command(id)];
        if active {
            commands.push(AiAgentCommand::Activate);
        }
        for command in commands {
            for event in agent::decide(&ai(id), roster.get(&ai(id)), &command).unwrap() {
                roster.evolve(&event).unwrap();
            }
        }
    }
    roster
}

fn apply_human(directory: &mut Directory, id: &HumanId, command: &HumanCommand) -> bool {
    match human::decide(id, directory.get(id), command) {
        Ok(events) => {
            for event in &events {
                directory.evolve(event).unwrap();
            }
            true
        }
        Err(_) => false,
    }
}

fn initial_directory() -> Directory {
    let mut directory = Directory::default();
    let humans: [(&str, &str, Role, &[&str], u32); 4] = [
        ("ana", "default", Role::Agent, &["billing"], 2),
        ("carl", "default", Role::Agent, &["support"], 1),
        ("bob", "default", Role::Supervisor, &[], 3),
        ("zoe", OTHER_TENANT, Role::Agent, &["billing"], 2),
    ];
    for (id, tenant, role, teams, capacity) in humans {
        let id = HumanId::new(id).unwrap();
        let register = HumanCommand::Register {
            tenant: TenantId::new(tenant).unwrap(),
            name: AgentName::new(format!("{id} the human")).unwrap(),
            role,
            teams: teams.iter().map(|t| TeamId::new(*t).unwrap()).collect(),
            capacity,
        };
        assert!(apply_human(&mut directory, &id, &register));
        assert!(apply_human(
            &mut directory,
            &id,
            &HumanCommand::SetPresence {
                presence: Presence::Available
            }
        ));
    }
    directory
}

fn settings(idle_close: bool) -> Settings {
    let mut settings = Settings::default();
    settings.team_sla.insert(
        team(0),
        Sla {
            warning_ms: 30_000,
            breach_ms: 90_000,
        },
    );
    settings.idle_close_ms = idle_close.then_some(180_000);
    settings
}

fn epoch_of(state: &Conversation) -> Epoch {
    match state {
        Conversation::NotOpened => Epoch(0),
        Conversation::Open(open) | Conversation::Closed(open) => open.epoch,
    }
}

/// Resolves a step's choices against the current state.
fn assignment(state: &Conversation, who: &Who, pick: &EpochPick) -> Assignment {
    let agent_id = match (who, state.assignment()) {
        (Who::Named(i), _) => ai(AGENTS[*i]),
        (Who::Current, Some(current)) => current.agent_id,
        // Nobody holds the conversation: the agent that held it last is unknown here, so any
        // agent will do; `faq` is the one most often handed the conversation.
        (Who::Current, None) => ai("faq"),
    };
    let current = epoch_of(state).0;
    let epoch = match pick {
        EpochPick::Current => current,
        EpochPick::Previous => current.saturating_sub(1),
        EpochPick::Next => current + 1,
        EpochPick::Fixed(n) => *n,
    };
    Assignment {
        agent_id,
        epoch: Epoch(epoch),
    }
}

fn participant(state: &Conversation, actor: &Actor) -> Participant {
    match actor {
        Actor::Customer { right } => Participant::Customer(customer(*right)),
        Actor::Human(h) => Participant::Human(human_id(*h)),
        Actor::Ai(who, pick) => Participant::Ai(assignment(state, who, pick)),
        Actor::Router => Participant::System(SystemActor::Router),
    }
}

fn skill(index: usize) -> Skill {
    Skill {
        name: SkillName::new(SKILLS[index]).unwrap(),
        input: SkillData::new(r#"{"plan":"pro"}"#).unwrap(),
        outcome: SkillOutcome::Succeeded(SkillData::new(r#"{"usd":49}"#).unwrap()),
    }
}

fn context(topic: Option<usize>) -> Option<Context> {
    topic.map(|t| {
        Context::new(
            Some("what the customer asked".to_owned()),
            Some(TOPICS[t].to_owned()),
            [("plan", "pro")],
        )
        .unwrap()
    })
}

fn verdict(rule: &str) -> RuleVerdict {
    RuleVerdict {
        rule: RuleName::new(rule).unwrap(),
        reason: reason("the embedder's rule says so"),
    }
}

fn conversation_command(state: &Conversation, step: &Step) -> Option<ConversationCommand> {
    let text = |t: &str| MessageText::new(t).unwrap();
    Some(match step {
        Step::Open { human } => ConversationCommand::Open {
            customer: customer(true),
            channel: Channel::new("web-chat").unwrap(),
            human: human.map(human_id),
        },
        Step::Start {
            team: t,
            language,
            human,
        } => ConversationCommand::Start {
            tenant: TenantId::default_tenant(),
            customer: customer(true),
            channel: Channel::new("whatsapp").unwrap(),
            team: t.map(team),
            language: language.map(|l| Language::new(["pt-BR", "es", "fr"][l]).unwrap()),
            human: human.map(human_id),
        },
        Step::PostCustomer { right, text: t } => ConversationCommand::PostMessage {
            by: Participant::Customer(customer(*right)),
            text: text(TEXTS[*t]),
        },
        Step::PostHuman(h) => ConversationCommand::PostMessage {
            by: Participant::Human(human_id(*h)),
            text: text("Hello from a human"),
        },
        Step::PostAi(who, pick) => ConversationCommand::PostMessage {
            by: Participant::Ai(assignment(state, who, pick)),
            text: text("Hello from an AI agent"),
        },
        Step::HandOff {
            human: h,
            to,
            with_reason,
        } => ConversationCommand::HandOffToAi {
            by: human_id(*h),
            agent_id: assignment(state, to, &EpochPick::Current).agent_id,
            reason: with_reason.then(|| reason("routine question")),
        },
        Step::RecordSkill(who, pick, k) => ConversationCommand::RecordAiAction {
            by: assignment(state, who, pick),
            skill: skill(*k),
        },
        Step::HandOffWith {
            human: h,
            to,
            topic,
            override_policy,
            refused,
        } => ConversationCommand::HandOffToAiWith {
            by: human_id(*h),
            agent_id: assignment(state, to, &EpochPick::Current).agent_id,
            reason: None,
            context: context(*topic),
            override_policy: *override_policy,
            refused_by: refused.then(|| verdict("business-hours")),
        },
        Step::ReportMiss(who, pick) => ConversationCommand::ReportCouldNotAnswer {
            by: assignment(state, who, pick),
            reason: Some(reason("no article about it")),
        },
        Step::StartSkill(who, pick, k) => ConversationCommand::StartSkill {
            by: assignment(state, who, pick),
            name: SkillName::new(SKILLS[*k]).unwrap(),
            input: SkillData::new(r#"{"plan":"pro"}"#).unwrap(),
        },
        Step::ApproveSkill(h, k) => ConversationCommand::ApproveSkill {
            by: human_id(*h),
            skill: SkillName::new(SKILLS[*k]).unwrap(),
        },
        Step::DenySkill(h, k) => ConversationCommand::DenySkill {
            by: human_id(*h),
            skill: SkillName::new(SKILLS[*k]).unwrap(),
            reason: reason("not today"),
        },
        Step::EscalateWith(who, pick) => ConversationCommand::EscalateWith {
            by: assignment(state, who, pick),
            reason: reason("needs a person"),
            context: context(Some(1)).unwrap(),
        },
        Step::PostJudged {
            right,
            text: t,
            cause,
        } => ConversationCommand::PostMessageJudged {
            by: Participant::Customer(customer(*right)),
            text: text(TEXTS[*t]),
            cause: *cause,
            verdict: verdict("vip-customer"),
        },
        Step::Reclaim(h) => ConversationCommand::Reclaim {
            by: human_id(*h),
            reason: None,
        },
        Step::Escalate(who, pick, cause) => ConversationCommand::Escalate {
            by: assignment(state, who, pick),
            reason: reason("needs a human"),
            cause: *cause,
        },
        Step::Close(actor) => ConversationCommand::Close {
            by: participant(state, actor),
            reason: Some(reason("done")),
        },
        Step::Assign { by, to } => ConversationCommand::Assign {
            by: participant(state, by),
            to: human_id(*to),
        },
        Step::Accept(h) => ConversationCommand::Accept { by: human_id(*h) },
        Step::TransferToHuman { by, to } => ConversationCommand::Transfer {
            by: human_id(*by),
            to: TransferTarget::Human(human_id(*to)),
            reason: reason("better placed"),
        },
        Step::TransferToTeam { by, team: t } => ConversationCommand::Transfer {
            by: human_id(*by),
            to: TransferTarget::Team(team(*t)),
            reason: reason("their queue"),
        },
        Step::Requeue(h) => ConversationCommand::Requeue {
            human: human_id(*h),
        },
        Step::Whisper { by, to_ai } => ConversationCommand::Whisper {
            by: human_id(*by),
            to: if *to_ai {
                NoteAudience::Ai
            } else {
                NoteAudience::Staff
            },
            text: text("a note"),
        },
        Step::RaiseFlag(actor) => ConversationCommand::RaiseFlag {
            by: participant(state, actor),
        },
        Step::LowerFlag(h) => ConversationCommand::LowerFlag { by: human_id(*h) },
        Step::Tick => ConversationCommand::Tick,
        Step::Advance(_)
        | Step::SetPresence(..)
        | Step::Remove(_)
        | Step::SetLoad(..)
        | Step::Register(_)
        | Step::Activate(_)
        | Step::Deactivate(_) => return None,
    })
}

fn agent_command(step: &Step) -> Option<(AiAgentId, AiAgentCommand)> {
    match step {
        Step::Register(i) => Some((ai(AGENTS[*i]), register_command(AGENTS[*i]))),
        Step::Activate(i) => Some((ai(AGENTS[*i]), AiAgentCommand::Activate)),
        Step::Deactivate(i) => Some((ai(AGENTS[*i]), AiAgentCommand::Deactivate)),
        _ => None,
    }
}

/// The acting AI assignment of a command, if an AI agent issues it.
fn ai_actor(command: &ConversationCommand) -> Option<&Assignment> {
    match command {
        ConversationCommand::PostMessage {
            by: Participant::Ai(a),
            ..
        }
        | ConversationCommand::Close {
            by: Participant::Ai(a),
            ..
        }
        | ConversationCommand::RaiseFlag {
            by: Participant::Ai(a),
        } => Some(a),
        ConversationCommand::RecordAiAction { by, .. }
        | ConversationCommand::Escalate { by, .. }
        | ConversationCommand::ReportCouldNotAnswer { by, .. }
        | ConversationCommand::StartSkill { by, .. }
        | ConversationCommand::EscalateWith { by, .. } => Some(by),
        _ => None,
    }
}

/// The human who sends a command, if a human does.
fn human_actor(command: &ConversationCommand) -> Option<&HumanId> {
    match command {
        ConversationCommand::PostMessage {
            by: Participant::Human(h),
            ..
        }
        | ConversationCommand::Close {
            by: Participant::Human(h),
            ..
        }
        | ConversationCommand::Assign {
            by: Participant::Human(h),
            ..
        }
        | ConversationCommand::RaiseFlag {
            by: Participant::Human(h),
        } => Some(h),
        ConversationCommand::HandOffToAi { by, .. }
        | ConversationCommand::HandOffToAiWith { by, .. }
        | ConversationCommand::ApproveSkill { by, .. }
        | ConversationCommand::DenySkill { by, .. }
        | ConversationCommand::Reclaim { by, .. }
        | ConversationCommand::Accept { by }
        | ConversationCommand::Transfer { by, .. }
        | ConversationCommand::Whisper { by, .. }
        | ConversationCommand::LowerFlag { by } => Some(by),
        _ => None,
    }
}

/// The human a command gives the conversation to, if any.
fn human_target(command: &ConversationCommand) -> Option<&HumanId> {
    match command {
        ConversationCommand::Open { human, .. } | ConversationCommand::Start { human, .. } => {
            human.as_ref()
        }
        ConversationCommand::Assign { to, .. }
        | ConversationCommand::Transfer {
            to: TransferTarget::Human(to),
            ..
        } => Some(to),
        _ => None,
    }
}

/// The world the rules consult, besides the conversation.
struct World {
    roster: Roster,
    directory: Directory,
    /// Each human's load from other conversations.
    background: BTreeMap<HumanId, u32>,
    settings: Settings,
    now: Timestamp,
}

impl World {
    /// Every human's load: their other conversations, and this one if they handle it.
    fn loads(&self, state: &Conversation) -> Loads {
        let mut loads = Loads::new();
        for (human, load) in &self.background {
            loads.set(human.clone(), *load);
        }
        if let Conversation::Open(open) = state {
            if let Some(human) = open.assigned_human() {
                loads.add(human);
            }
        }
        loads
    }
}

/// Checks what an accepted command may do, given the state before it and the world.
fn check_accepted(
    before: &Conversation,
    after: &Conversation,
    command: &ConversationCommand,
    events: &[ConversationEvent],
    world: &World,
    loads: &Loads,
) -> Result<(), TestCaseError> {
    // Only a tick may have nothing to record.
    if !matches!(command, ConversationCommand::Tick) {
        prop_assert!(!events.is_empty(), "an accepted command produced no event");
    }
    prop_assert!(
        !matches!(before, Conversation::Closed(_)),
        "a command was accepted after close: {command:?}"
    );
    let opening = matches!(
        command,
        ConversationCommand::Open { .. } | ConversationCommand::Start { .. }
    );
    if !opening {
        prop_assert!(
            matches!(before, Conversation::Open(_)),
            "{command:?} was accepted before open"
        );
    }
    let tenant = after
        .tenant()
        .cloned()
        .unwrap_or_else(TenantId::default_tenant);
    // The tenant wall: only registered, not removed humans of the conversation's tenant act
    // or are given it, and never offline.
    for id in human_actor(command)
        .into_iter()
        .chain(human_target(command))
    {
        let human = world.directory.get(id);
        prop_assert!(
            human.is_some_and(|h| !h.removed
                && h.profile.tenant == tenant
                && h.presence != Presence::Offline),
            "{command:?} was accepted for {id}, who is {human:?}"
        );
    }
    if let ConversationCommand::Assign {
        by: Participant::System(SystemActor::Router),
        to,
    } = command
    {
        let human = world.directory.get(to).expect("checked above");
        prop_assert_eq!(
            human.presence,
            Presence::Available,
            "the router assigned someone not available"
        );
        prop_assert!(
            loads.of(to) < human.profile.capacity,
            "the router assigned {} at capacity: {} of {}",
            to,
            loads.of(to),
            human.profile.capacity
        );
    }
    // The outcome of a skill started (or approved) under an assignment is recorded even after
    // the assignment ended.
    let outcome_of_started = match (command, before) {
        (ConversationCommand::RecordAiAction { by, skill }, Conversation::Open(open)) => {
            open.skills_started.iter().any(|(epoch, agent, name)| {
                *epoch == by.epoch && *agent == by.agent_id && *name == skill.name
            })
        }
        _ => false,
    };
    if let (Some(acting), false) = (ai_actor(command), outcome_of_started) {
        prop_assert_eq!(
            Some(acting.clone()),
            before.assignment(),
            "an AI command was accepted from an agent or epoch that does not hold the conversation"
        );
    }
    match command {
        ConversationCommand::PostMessage {
            by: Participant::Human(_),
            ..
        } => prop_assert!(
            before.assignment().is_none(),
            "a human posted while AI-active"
        ),
        ConversationCommand::PostMessage {
            by: Participant::Customer(who),
            ..
        }
        | ConversationCommand::PostMessageJudged {
            by: Participant::Customer(who),
            ..
        } => {
            prop_assert_eq!(who, &customer(true), "someone else posted as the customer");
            let asked = matches!(
                &events[0],
                ConversationEvent::MessagePosted { concerns, .. }
                    if concerns.contains(&Concern::HumanRequested)
            );
            if before.assignment().is_none() {
                prop_assert_eq!(events.len(), 1, "a rule fired with no AI active");
            } else if events.len() > 1 {
                // A rule's escalation: the AI let go in the same append.
                prop_assert!(
                    matches!(events[1], ConversationEvent::EscalatedByRule { .. }),
                    "not a rule's escalation: {events:?}"
                );
                prop_assert!(after.assignment().is_none());
            } else {
                prop_assert!(
                    !matches!(command, ConversationCommand::PostMessageJudged { .. }),
                    "the embedder's verdict was dropped: {events:?}"
                );
            }
            if asked && before.assignment().is_some() {
                prop_assert!(
                    matches!(
                        events.get(1),
                        Some(ConversationEvent::EscalatedByRule {
                            cause: EscalationCause::CustomerAskedForHuman,
                            ..
                        })
                    ),
                    "the request for a human was not escalated: {events:?}"
                );
            }
        }
        ConversationCommand::HandOffToAi { agent_id, by, .. }
        | ConversationCommand::HandOffToAiWith { agent_id, by, .. } => {
            let agent = world.roster.get(agent_id);
            prop_assert!(
                agent.is_some_and(|a| a.active && a.tenant == tenant),
                "handed off to an agent that is not active in the tenant"
            );
            let Conversation::Open(open) = before else {
                unreachable!("checked above")
            };
            // The default policy, read independently: a concern within 5 customer messages
            // and 30 minutes of its latest raising, 3 handoffs already, an escalation within
            // 10 minutes, or the embedder's refusal, refuses the handoff.
            let signals = &open.signals;
            let concern_blocks = signals.concerns.iter().any(|mark| {
                signals.customer_messages - mark.message < 5
                    && mark
                        .at
                        .is_none_or(|at| world.now.millis_since(at) < 30 * 60_000)
            });
            let loop_blocks = open.epoch.0 >= 3
                || signals
                    .last_escalation_at
                    .is_some_and(|at| world.now.millis_since(at) < 10 * 60_000);
            let embedder_refuses = matches!(
                command,
                ConversationCommand::HandOffToAiWith {
                    refused_by: Some(_),
                    ..
                }
            );
            let overridden = matches!(events[0], ConversationEvent::PolicyOverridden { .. });
            prop_assert_eq!(
                overridden,
                concern_blocks || loop_blocks || embedder_refuses,
                "a handoff against the policy, or an override of nothing: {:?}",
                events
            );
            if overridden {
                prop_assert!(
                    matches!(
                        command,
                        ConversationCommand::HandOffToAiWith {
                            override_policy: true,
                            ..
                        }
                    ),
                    "overridden without asking"
                );
                prop_assert_eq!(
                    world.directory.get(by).map(|h| h.profile.role),
                    Some(Role::Supervisor),
                    "an agent overrode the policy"
                );
            }
            prop_assert_eq!(epoch_of(after).0, epoch_of(before).0 + 1);
        }
        ConversationCommand::Escalate { cause, .. } => prop_assert!(
            !matches!(
                cause,
                EscalationCause::CustomerAskedForHuman
                    | EscalationCause::AiTimeout
                    | EscalationCause::Frustration
                    | EscalationCause::GoingInCircles
                    | EscalationCause::AiCouldNotAnswer
                    | EscalationCause::Complaint
            ),
            "an AI agent claimed a cause only the policy or the clock may: {cause:?}"
        ),
        ConversationCommand::StartSkill { name, .. } => {
            // The default policy gates refunds.
            let gated = name.as_str() == "refund";
            prop_assert_eq!(
                events[0].type_name(),
                if gated {
                    "skill_approval_requested"
                } else {
                    "ai_skill_started"
                }
            );
        }
        ConversationCommand::RecordAiAction { skill, .. } if skill.name.as_str() == "refund" => {
            prop_assert!(outcome_of_started, "a refund was recorded without approval");
        }
        ConversationCommand::Requeue { human } => {
            let still_in = world
                .directory
                .get(human)
                .is_some_and(|h| !h.removed && h.presence != Presence::Offline);
            prop_assert!(
                !still_in,
                "requeued the conversation of {human}, who is signed in"
            );
        }
        _ => {}
    }
    if !matches!(
        command,
        ConversationCommand::HandOffToAi { .. } | ConversationCommand::HandOffToAiWith { .. }
    ) {
        prop_assert_eq!(
            epoch_of(after),
            epoch_of(before),
            "only a handoff moves the epoch"
        );
    }
    if let Conversation::Open(open) = after {
        prop_assert!(
            matches!(
                open.handler,
                Handler::Ai { .. }
                    | Handler::Assigned { .. }
                    | Handler::Reclaimed { .. }
                    | Handler::AwaitingHuman { .. }
            ),
            "the open conversation has no controller after {command:?}: {:?}",
            open.handler
        );
    }
    Ok(())
}

/// An independent reading of the accepted history: who holds the conversation and under
/// which epoch, and how often each wait passed its thresholds, checked event by event.
fn audit(history: &[(ConversationEvent, Timestamp)]) -> Result<(), TestCaseError> {
    #[derive(PartialEq)]
    enum Holder {
        NotOpened,
        Human,
        Waiting,
        Ai(AiAgentId),
        Closed,
    }
    let mut holder = Holder::NotOpened;
    let mut customer_id: Option<CustomerId> = None;
    let mut epoch = 0u64;
    let (mut warned, mut breached) = (false, false);
    // Skills waiting for approval, by name: every wait ends with the assignment.
    let mut waiting: Vec<SkillName> = Vec::new();
    for (i, (event, _)) in history.iter().enumerate() {
        prop_assert!(
            holder != Holder::Closed,
            "event {i} follows the close: {event:?}"
        );
        let opening = matches!(
            event,
            ConversationEvent::Opened { .. } | ConversationEvent::Started { .. }
        );
        prop_assert_eq!(
            opening,
            holder == Holder::NotOpened,
            "event {} and the open are out of order: {:?}",
            i,
            event
        );
        match event {
            ConversationEvent::Opened { customer, .. }
            | ConversationEvent::Started { customer, .. } => {
                customer_id = Some(customer.clone());
                holder = Holder::Human;
            }
            ConversationEvent::MessagePosted { author, .. } => match author {
                Author::Customer(c) => prop_assert_eq!(Some(c), customer_id.as_ref()),
                Author::Human(_) => prop_assert!(
                    !matches!(holder, Holder::Ai(_)),
                    "human message {i} while AI-active"
                ),
                Author::Ai(a) => prop_assert!(
                    matches!(&holder, Holder::Ai(current) if current == a),
                    "AI message {i} from {a}, which does not hold the conversation"
                ),
                other => prop_assert!(false, "message {i} by an unknown author {other:?}"),
            },
            ConversationEvent::HandedOffToAi { agent_id, .. } => {
                prop_assert!(
                    !matches!(&holder, Holder::Ai(current) if current == agent_id),
                    "handed to the agent that holds it at {i}"
                );
                epoch += 1;
                holder = Holder::Ai(agent_id.clone());
                waiting.clear();
            }
            // An outcome may follow a reclaim (a skill started before it); the rest need the
            // agent to hold the conversation.
            ConversationEvent::AiActionRecorded { .. } => {}
            ConversationEvent::AiReplyOverdue { agent_id, .. }
            | ConversationEvent::AiCouldNotAnswer { agent_id, .. }
            | ConversationEvent::AiSkillStarted { agent_id, .. } => prop_assert!(
                matches!(&holder, Holder::Ai(current) if current == agent_id),
                "event {i} from {agent_id}, which does not hold the conversation"
            ),
            ConversationEvent::SkillApprovalRequested { agent_id, name, .. } => {
                prop_assert!(
                    matches!(&holder, Holder::Ai(current) if current == agent_id),
                    "approval request {i} from {agent_id}, which does not hold the conversation"
                );
                waiting.push(name.clone());
            }
            ConversationEvent::SkillApproved { name, .. }
            | ConversationEvent::SkillDenied { name, .. } => {
                let Some(index) = waiting.iter().position(|w| w == name) else {
                    return Err(TestCaseError::fail(format!(
                        "event {i} decides {name}, which does not wait"
                    )));
                };
                waiting.remove(index);
            }
            ConversationEvent::Reclaimed { agent_id, .. }
            | ConversationEvent::EscalatedToHuman { agent_id, .. }
            | ConversationEvent::EscalatedByRule { agent_id, .. } => {
                prop_assert!(
                    matches!(&holder, Holder::Ai(current) if current == agent_id),
                    "event {i} ends an assignment {agent_id} does not hold"
                );
                holder = Holder::Human;
                waiting.clear();
            }
            ConversationEvent::PolicyOverridden { .. } => prop_assert!(
                matches!(
                    history.get(i + 1).map(|(e, _)| e),
                    Some(ConversationEvent::HandedOffToAi { .. })
                        | Some(ConversationEvent::ContextShared { .. })
                ),
                "override {i} is not followed by its handoff"
            ),
            ConversationEvent::ContextShared { by, .. } => prop_assert!(
                matches!(by, Author::Human(_) | Author::Ai(_)),
                "context {i} shared by {by:?}"
            ),
            ConversationEvent::AwaitingHuman { .. } => {
                prop_assert!(!matches!(holder, Holder::Ai(_)), "wait {i} while AI-active");
                holder = Holder::Waiting;
                (warned, breached) = (false, false);
            }
            ConversationEvent::HumanAssigned { .. } | ConversationEvent::Transferred { .. } => {
                prop_assert!(
                    !matches!(holder, Holder::Ai(_)),
                    "assignment {i} while AI-active"
                );
                if matches!(event, ConversationEvent::HumanAssigned { .. }) {
                    holder = Holder::Human;
                }
            }
            ConversationEvent::SlaWarning { .. } => {
                prop_assert!(
                    holder == Holder::Waiting,
                    "SLA warning {i} while not waiting"
                );
                prop_assert!(!warned, "a second SLA warning for one wait at {i}");
                warned = true;
            }
            ConversationEvent::SlaBreached { .. } => {
                prop_assert!(
                    holder == Holder::Waiting,
                    "SLA breach {i} while not waiting"
                );
                prop_assert!(!breached, "a second SLA breach for one wait at {i}");
                breached = true;
            }
            ConversationEvent::Closed { by, .. } => {
                if let Author::Ai(a) = by {
                    prop_assert!(matches!(&holder, Holder::Ai(current) if current == a));
                }
                holder = Holder::Closed;
                waiting.clear();
            }
            ConversationEvent::CustomerNotice { .. }
            | ConversationEvent::InternalNote { .. }
            | ConversationEvent::FlagRaised { .. }
            | ConversationEvent::FlagLowered { .. } => {}
            other => prop_assert!(false, "event {i} is unknown to this model: {other:?}"),
        }
    }
    let untimed: Vec<&ConversationEvent> = history.iter().map(|(e, _)| e).collect();
    let folded = conversation::fold(untimed)
        .map_err(|r| TestCaseError::fail(format!("the accepted history does not fold: {r}")))?;
    prop_assert_eq!(
        epoch_of(&folded).0,
        epoch,
        "the epoch is not the number of handoffs"
    );
    Ok(())
}

/// Folds the history, each event at the time it was decided, as a replay of the log does.
fn fold_timed(history: &[(ConversationEvent, Timestamp)]) -> Result<Conversation, TestCaseError> {
    history
        .iter()
        .try_fold(Conversation::NotOpened, |state, (event, at)| {
            conversation::evolve_at(state, event, Some(*at))
        })
        .map_err(|r| TestCaseError::fail(format!("the history does not fold: {r}")))
}

/// Runs `steps`, checking every step, and returns the final state and the accepted history.
fn run(
    idle_close: bool,
    steps: &[Step],
) -> Result<(Conversation, Vec<ConversationEvent>), TestCaseError> {
    let policy = DefaultPolicy::default();
    let mut world = World {
        roster: initial_roster(),
        directory: initial_directory(),
        background: BTreeMap::new(),
        settings: settings(idle_close),
        now: Timestamp::from_millis(1_000_000),
    };
    let mut state = Conversation::default();
    let mut history: Vec<(ConversationEvent, Timestamp)> = Vec::new();
    let mut epochs_seen = vec![0u64];
    for step in steps {
        match step {
            Step::Advance(ms) => {
                world.now = world.now.plus_millis(*ms);
                continue;
            }
            Step::SetPresence(h, presence) => {
                apply_human(
                    &mut world.directory,
                    &human_id(*h),
                    &HumanCommand::SetPresence {
                        presence: *presence,
                    },
                );
                continue;
            }
            Step::Remove(h) => {
                apply_human(&mut world.directory, &human_id(*h), &HumanCommand::Remove);
                continue;
            }
            Step::SetLoad(h, load) => {
                world.background.insert(human_id(*h), *load);
                continue;
            }
            _ => {}
        }
        if let Some((agent_id, command)) = agent_command(step) {
            if let Ok(events) = agent::decide(&agent_id, world.roster.get(&agent_id), &command) {
                for event in &events {
                    world
                        .roster
                        .evolve(event)
                        .map_err(|r| TestCaseError::fail(format!("roster does not fold: {r}")))?;
                }
            }
            continue;
        }
        let Some(command) = conversation_command(&state, step) else {
            continue;
        };
        let loads = world.loads(&state);
        let ctx = Ctx::new(&world.roster, &policy)
            .with_directory(&world.directory)
            .with_loads(&loads)
            .with_settings(&world.settings)
            .at(world.now);
        match conversation::decide_with_state(&state, &command, &ctx) {
            Ok((events, after)) => {
                check_accepted(&state, &after, &command, &events, &world, &loads)?;
                if matches!(
                    command,
                    ConversationCommand::HandOffToAi { .. }
                        | ConversationCommand::HandOffToAiWith { .. }
                ) {
                    let epoch = epoch_of(&after).0;
                    prop_assert!(
                        epochs_seen.iter().all(|&seen| seen < epoch),
                        "handoff epoch {epoch} is not above every earlier one {epochs_seen:?}"
                    );
                    epochs_seen.push(epoch);
                }
                history.extend(events.into_iter().map(|e| (e, world.now)));
                state = after;
            }
            Err(rejection) => {
                // The clock's command never fails on an open conversation.
                prop_assert!(
                    !(matches!(command, ConversationCommand::Tick)
                        && matches!(state, Conversation::Open(_))),
                    "a tick was refused: {rejection:?}"
                );
                // A rejected command records nothing: the state and history are untouched by
                // construction, and the state must still be their fold.
            }
        }
        prop_assert_eq!(
            &state,
            &fold_timed(&history)?,
            "the state is not the fold of the accepted events"
        );
        audit(&history)?;
        // Ticking again at the same time records nothing: each deadline is recorded once.
        if matches!(command, ConversationCommand::Tick) && matches!(state, Conversation::Open(_)) {
            let loads = world.loads(&state);
            let ctx = ctx.with_loads(&loads);
            prop_assert_eq!(
                conversation::decide(&state, &ConversationCommand::Tick, &ctx),
                Ok(vec![]),
                "a second tick at the same time recorded something"
            );
        }
    }
    Ok((state, history.into_iter().map(|(e, _)| e).collect()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_sequences_keep_every_invariant((idle_close, steps) in scenario()) {
        run(idle_close, &steps)?;
    }
}

#[test]
fn random_sequences_reach_every_kind_of_event() {
    // The property is only as strong as the states it visits: over a fixed sample of generated
    // scenarios, every kind of event the rules record must occur.
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut seen: BTreeMap<&'static str, usize> = BTreeMap::new();
    let (mut router_assignments, mut idle_closes) = (0, 0);
    for _ in 0..512 {
        let (idle_close, steps) = scenario().new_tree(&mut runner).unwrap().current();
        let (_, history) = run(idle_close, &steps).unwrap();
        for event in &history {
            *seen.entry(event.type_name()).or_default() += 1;
            if matches!(
                event,
                ConversationEvent::HumanAssigned {
                    by: Author::System(SystemActor::Router),
                    ..
                }
            ) {
                router_assignments += 1;
            }
            if matches!(
                event,
                ConversationEvent::Closed {
                    by: Author::System(SystemActor::Clock),
                    ..
                }
            ) {
                idle_closes += 1;
            }
        }
    }
    println!("events over 512 scenarios: {seen:?}; router assignments {router_assignments}, idle closes {idle_closes}");
    for kind in [
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
        "ai_could_not_answer",
        "policy_overridden",
        "ai_skill_started",
        "skill_approval_requested",
        "skill_approved",
        "skill_denied",
        "context_shared",
    ] {
        assert!(
            seen.contains_key(kind),
            "no {kind} in 512 scenarios: {seen:?}"
        );
    }
    assert!(router_assignments > 0, "the router never assigned");
    assert!(
        idle_closes > 0,
        "the clock never closed an idle conversation"
    );
}

#[test]
fn the_generator_reaches_the_interesting_states() {
    // A fixed sequence through the new kinds of step: a wait past its SLA, the router, a
    // transfer, a handoff left unanswered past its deadline, an offline human requeued.
    let steps = vec![
        Step::Start {
            team: Some(0),
            language: Some(0),
            human: None,
        },
        Step::Advance(31_000),
        Step::Tick,
        Step::Tick,
        Step::Advance(61_000),
        Step::Tick,
        // `zoe` is of another tenant: refused.
        Step::Accept(3),
        Step::SetLoad(0, 2),
        // `ana` is at capacity: the router may not pick her; `bob` it may.
        Step::Assign {
            by: Actor::Router,
            to: 0,
        },
        Step::Assign {
            by: Actor::Router,
            to: 2,
        },
        Step::TransferToHuman { by: 2, to: 1 },
        Step::HandOff {
            human: 1,
            to: Who::Named(0),
            with_reason: false,
        },
        Step::PostCustomer {
            right: true,
            text: 0,
        },
        Step::Advance(31_000),
        Step::Tick,
        Step::PostAi(Who::Named(0), EpochPick::Current),
        // Carl is not in billing, whose queue it waits in; bob supervises.
        Step::Accept(1),
        Step::Accept(2),
        Step::SetPresence(2, Presence::Offline),
        // An offline human may not act.
        Step::Close(Actor::Human(2)),
        Step::Requeue(2),
        Step::Close(Actor::Customer { right: true }),
    ];
    let (state, history) = run(false, &steps).unwrap();
    let kinds: Vec<&str> = history.iter().map(ConversationEvent::type_name).collect();
    assert_eq!(
        kinds,
        vec![
            // Start: waits in billing's queue, the notice in Portuguese.
            "conversation_opened",
            "awaiting_human",
            "customer_notice",
            // 31 s: billing's warning (30 s); the second tick records nothing.
            "sla_warning",
            // 92 s: billing's breach (90 s).
            "sla_breached",
            // The router gives it to bob.
            "human_assigned",
            "customer_notice",
            // Bob transfers it to carl.
            "transferred",
            "human_assigned",
            "customer_notice",
            // Carl hands it to faq.
            "handed_off_to_ai",
            "customer_notice",
            "message_posted",
            // faq does not answer within 30 s.
            "ai_reply_overdue",
            "escalated_to_human",
            "customer_notice",
            "awaiting_human",
            "customer_notice",
            // Bob accepts it, goes offline, and it is requeued.
            "human_assigned",
            "customer_notice",
            "awaiting_human",
            "customer_notice",
            // The customer closes it.
            "conversation_closed",
        ]
    );
    assert_eq!(state.status(), handover_core::Status::Closed);
    assert_eq!(epoch_of(&state), Epoch(1));
}
