//! The rules of a conversation and of the AI-agent roster, as given/when/then examples.
//!
//! Every example goes through [`check`], the only place that calls `decide` and `evolve`: it
//! folds the given history into a conversation, a roster and a directory of humans, decides the
//! command, compares the outcome with the expected events or rejection, and checks that the new
//! state is the fold of the whole history.
//!
//! [`given`] starts from the standard roster and directory: `faq` ("FAQ Bot", specialties faq
//! and pricing) and `sales` ("Sales Bot", specialties sales and pricing) are registered and
//! active, `idle` ("Idle Bot", specialty faq) is registered and inactive, and `ghost` was never
//! registered; the humans `ana` ("Ana", an agent of team billing) and `bob` ("Bob", a
//! supervisor) are registered in the default tenant and available. [`given_opened`] also opens
//! the conversation (tenant `default`, customer `cust-1`, on web chat) assigned to `ana`.
//! [`given_only`] starts from nothing at all.

use handover_core::rules::{RuleName, Rules};
use handover_core::{
    agent, conversation, AgentName, AiAgentCommand, AiAgentEvent, AiAgentId, Assignment, Author,
    Channel, Concern, Conversation, ConversationCommand, ConversationEvent, Ctx, CustomerId,
    DefaultPolicy, Directory, Epoch, EscalationCause, Event, HumanEvent, HumanId, InvalidInput,
    Language, MessageText, NoteAudience, NoticeKind, Participant, Presence, Reason, Rejection,
    Role, Roster, Skill, SkillData, SkillName, SkillOutcome, Specialty, Status, SystemActor,
    TeamId, TenantId, Timestamp, TransferTarget, WaitCause, AGENT_NAME_BYTES_MAX,
    IDENTIFIER_BYTES_MAX, MESSAGE_BYTES_MAX, REASON_BYTES_MAX, SPECIALTIES_COUNT_MAX,
};

// ---------------------------------------------------------------------------------------------
// The helper: given / when / then.
// ---------------------------------------------------------------------------------------------

/// The history before the command: AI-agent events build the roster, human events the
/// directory, conversation events the conversation.
struct Given {
    history: Vec<Event>,
}

/// The command under test.
enum When {
    Conversation(ConversationCommand),
    Agent {
        agent_id: AiAgentId,
        command: AiAgentCommand,
    },
}

/// What the command must produce.
enum Then {
    Accepted(Vec<Event>),
    Rejected(Rejection),
}

/// The state after the command: the given history plus any accepted events, folded.
struct Outcome {
    conversation: Conversation,
    roster: Roster,
}

fn standard_roster() -> Vec<Event> {
    vec![
        registered("faq", "FAQ Bot", &["faq", "pricing"]),
        activated("faq"),
        registered("sales", "Sales Bot", &["sales", "pricing"]),
        activated("sales"),
        registered("idle", "Idle Bot", &["faq"]),
    ]
}

/// `ana`, an agent of team billing, and `bob`, a supervisor, both available.
fn standard_directory() -> Vec<Event> {
    vec![
        human_registered(ASSIGNED_HUMAN, "Ana", Role::Agent, &["billing"]),
        presence(ASSIGNED_HUMAN, Presence::Available),
        human_registered(OTHER_HUMAN, "Bob", Role::Supervisor, &[]),
        presence(OTHER_HUMAN, Presence::Available),
    ]
}

/// The standard roster and directory, then `events`.
fn given<const N: usize>(events: [Event; N]) -> Given {
    let mut history = standard_roster();
    history.extend(standard_directory());
    history.extend(events);
    Given { history }
}

/// The standard roster and directory, the conversation opened assigned to `ana`, then `events`.
fn given_opened<const N: usize>(events: [Event; N]) -> Given {
    let mut history = standard_roster();
    history.extend(standard_directory());
    history.extend(opened());
    history.extend(events);
    Given { history }
}

/// Exactly `events`, with an empty roster and directory.
fn given_only<const N: usize>(events: [Event; N]) -> Given {
    Given {
        history: events.into(),
    }
}

fn when(command: ConversationCommand) -> When {
    When::Conversation(command)
}

fn when_agent(agent_id: &str, command: AiAgentCommand) -> When {
    When::Agent {
        agent_id: ai(agent_id),
        command,
    }
}

fn accepted<const N: usize>(events: [Event; N]) -> Then {
    Then::Accepted(events.into())
}

fn accepted_all(events: Vec<Event>) -> Then {
    Then::Accepted(events)
}

fn rejected(rejection: Rejection) -> Then {
    Then::Rejected(rejection)
}

/// Folds `history` into a conversation, a roster and a directory.
#[track_caller]
fn fold_history(history: &[Event]) -> (Conversation, Roster, Directory) {
    let mut conversation = Conversation::default();
    let mut roster = Roster::default();
    let mut directory = Directory::default();
    for event in history {
        match event {
            Event::AiAgent(event) => roster
                .evolve(event)
                .unwrap_or_else(|r| panic!("the history does not fold at {event:?}: {r}")),
            Event::Human(event) => directory
                .evolve(event)
                .unwrap_or_else(|r| panic!("the history does not fold at {event:?}: {r}")),
            Event::Conversation(event) => {
                conversation = conversation::evolve(conversation, event)
                    .unwrap_or_else(|r| panic!("the history does not fold at {event:?}: {r}"));
            }
            other => panic!("a given history holds only known events: {other:?}"),
        }
    }
    (conversation, roster, directory)
}

/// The one place that calls `decide` and `evolve`.
#[track_caller]
fn check(given: Given, when: When, then: Then) -> Outcome {
    let (conversation, roster, directory) = fold_history(&given.history);
    let policy = DefaultPolicy::default();
    let ctx = Ctx::new(&roster, &policy).with_directory(&directory);
    let decided: Result<Vec<Event>, Rejection> = match &when {
        When::Conversation(command) => conversation::decide(&conversation, command, &ctx)
            .map(|events| events.into_iter().map(Event::Conversation).collect()),
        When::Agent { agent_id, command } => agent::decide(agent_id, roster.get(agent_id), command)
            .map(|events| events.into_iter().map(Event::AiAgent).collect()),
    };
    match (then, decided) {
        (Then::Accepted(expected), Ok(events)) => {
            assert_eq!(
                events, expected,
                "the command was accepted with other events"
            );
            // The state after the command is the fold of everything, given and new.
            let mut history = given.history;
            history.extend(events);
            let (conversation, roster, _) = fold_history(&history);
            Outcome {
                conversation,
                roster,
            }
        }
        (Then::Rejected(expected), Err(rejection)) => {
            assert_eq!(
                rejection, expected,
                "the command was rejected for another reason"
            );
            Outcome {
                conversation,
                roster,
            }
        }
        (Then::Accepted(expected), Err(rejection)) => {
            panic!("expected the events {expected:#?}\nbut the command was rejected: {rejection:?}")
        }
        (Then::Rejected(expected), Ok(events)) => {
            panic!("expected the rejection {expected:?}\nbut the command was accepted: {events:#?}")
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Values.
// ---------------------------------------------------------------------------------------------

const CUSTOMER: &str = "cust-1";
const ASSIGNED_HUMAN: &str = "ana";
const OTHER_HUMAN: &str = "bob";
const CUSTOMER_ASKED_REASON: &str = "the customer asked for a human";

fn ai(id: &str) -> AiAgentId {
    AiAgentId::new(id).unwrap()
}

fn human(id: &str) -> HumanId {
    HumanId::new(id).unwrap()
}

fn customer(id: &str) -> CustomerId {
    CustomerId::new(id).unwrap()
}

fn text(value: &str) -> MessageText {
    MessageText::new(value).unwrap()
}

fn reason(value: &str) -> Reason {
    Reason::new(value).unwrap()
}

fn name(value: &str) -> AgentName {
    AgentName::new(value).unwrap()
}

fn specialty(value: &str) -> Specialty {
    Specialty::new(value).unwrap()
}

fn agent_name_of(id: &str) -> AgentName {
    match id {
        "faq" => name("FAQ Bot"),
        "sales" => name("Sales Bot"),
        "idle" => name("Idle Bot"),
        other => panic!("no standard agent {other}"),
    }
}

fn assignment(agent_id: &str, epoch: u64) -> Assignment {
    Assignment {
        agent_id: ai(agent_id),
        epoch: Epoch(epoch),
    }
}

fn price_lookup() -> Skill {
    Skill {
        name: SkillName::new("lookup_price").unwrap(),
        input: SkillData::new(r#"{"plan":"pro"}"#).unwrap(),
        outcome: SkillOutcome::Succeeded(SkillData::new(r#"{"usd":49}"#).unwrap()),
    }
}

// ---------------------------------------------------------------------------------------------
// Events.
// ---------------------------------------------------------------------------------------------

fn conversation_event(event: ConversationEvent) -> Event {
    Event::Conversation(event)
}

fn registered(agent_id: &str, agent_name: &str, specialties: &[&str]) -> Event {
    Event::AiAgent(AiAgentEvent::Registered {
        agent_id: ai(agent_id),
        name: name(agent_name),
        specialties: specialties.iter().map(|s| specialty(s)).collect(),
    })
}

fn activated(agent_id: &str) -> Event {
    Event::AiAgent(AiAgentEvent::Activated {
        agent_id: ai(agent_id),
    })
}

fn deactivated(agent_id: &str) -> Event {
    Event::AiAgent(AiAgentEvent::Deactivated {
        agent_id: ai(agent_id),
    })
}

fn default_tenant() -> TenantId {
    TenantId::default_tenant()
}

fn team(id: &str) -> TeamId {
    TeamId::new(id).unwrap()
}

fn human_name(id: &str) -> AgentName {
    match id {
        ASSIGNED_HUMAN => name("Ana"),
        OTHER_HUMAN => name("Bob"),
        other => panic!("no standard human {other}"),
    }
}

fn human_registered(id: &str, display: &str, role: Role, teams: &[&str]) -> Event {
    Event::Human(HumanEvent::Registered {
        human_id: human(id),
        tenant: default_tenant(),
        name: name(display),
        role,
        teams: teams.iter().map(|t| team(t)).collect(),
        capacity: 2,
    })
}

fn presence(id: &str, presence: Presence) -> Event {
    Event::Human(HumanEvent::PresenceChanged {
        human_id: human(id),
        presence,
    })
}

/// The notice of `kind` in English, as the default settings write it.
fn notice(kind: NoticeKind, message: &str) -> Event {
    conversation_event(ConversationEvent::CustomerNotice {
        kind,
        text: text(message),
        language: Language::english(),
    })
}

fn ai_joined(agent_id: &str) -> Event {
    notice(
        NoticeKind::AiJoined,
        &format!(
            "{}, an AI assistant, has joined the conversation.",
            agent_name_of(agent_id)
        ),
    )
}

fn ai_left(agent_id: &str) -> Event {
    notice(
        NoticeKind::AiLeft,
        &format!(
            "The AI assistant {} has left the conversation.",
            agent_name_of(agent_id)
        ),
    )
}

fn waiting_for_person() -> Event {
    notice(
        NoticeKind::WaitingForPerson,
        "Please wait: a person will be with you shortly.",
    )
}

fn person_joined(who: &str) -> Event {
    notice(
        NoticeKind::PersonJoined,
        &format!("{} has joined the conversation.", human_name(who)),
    )
}

fn started(channel: &str) -> Event {
    conversation_event(ConversationEvent::Started {
        tenant: default_tenant(),
        customer: customer(CUSTOMER),
        channel: Channel::new(channel).unwrap(),
        team: None,
        language: None,
        at: Timestamp::default(),
    })
}

fn awaiting(cause: WaitCause) -> Event {
    conversation_event(ConversationEvent::AwaitingHuman {
        team: None,
        cause,
        since: Timestamp::default(),
    })
}

/// Opened for `cust-1` on web chat, assigned to `ana` by the backend.
fn opened() -> [Event; 2] {
    [
        started("web-chat"),
        conversation_event(ConversationEvent::HumanAssigned {
            human_id: human(ASSIGNED_HUMAN),
            name: human_name(ASSIGNED_HUMAN),
            team: None,
            by: Author::System(SystemActor::Backend),
            at: Timestamp::default(),
        }),
    ]
}

/// Opened for `cust-1` on WhatsApp with no human: it waits in the general queue.
fn opened_unassigned() -> [Event; 3] {
    [
        started("whatsapp"),
        awaiting(WaitCause::Opened),
        waiting_for_person(),
    ]
}

/// The conversation as logs written before tenants and human assignment hold it.
fn legacy_opened() -> Event {
    conversation_event(ConversationEvent::Opened {
        customer: customer(CUSTOMER),
        channel: Channel::new("web-chat").unwrap(),
        human: Some(human(ASSIGNED_HUMAN)),
    })
}

/// `who` accepts the conversation from the general queue.
fn accepted_by(who: &str) -> Event {
    conversation_event(ConversationEvent::HumanAssigned {
        human_id: human(who),
        name: human_name(who),
        team: None,
        by: Author::Human(human(who)),
        at: Timestamp::default(),
    })
}

/// `ana` is assigned the conversation.
fn assigned_to_ana() -> Status {
    Status::Assigned {
        human: human(ASSIGNED_HUMAN),
        name: human_name(ASSIGNED_HUMAN),
    }
}

/// The conversation waits in the general queue since time zero because of `cause`.
fn awaiting_status(cause: WaitCause) -> Status {
    Status::AwaitingHuman {
        team: None,
        since: Timestamp::default(),
        cause,
    }
}

/// The events of an escalation of `agent_id`'s conversation: the escalation, the notice that
/// it left, the wait in the general queue and its notice.
fn escalation(agent_id: &str, why: &str, cause: EscalationCause) -> [Event; 4] {
    [
        escalated(agent_id, why, cause),
        ai_left(agent_id),
        awaiting(WaitCause::Escalated(cause)),
        waiting_for_person(),
    ]
}

/// The escalation a rule of the default policy records at time zero, then the notice that the
/// AI left, the wait and its notice.
fn rule_escalation(agent_id: &str, why: &str, cause: EscalationCause, rule: &str) -> [Event; 4] {
    [
        conversation_event(ConversationEvent::EscalatedByRule {
            agent_id: ai(agent_id),
            reason: reason(why),
            cause,
            rule: RuleName::new(rule).unwrap(),
            policy_version: Rules::default_rules().version().clone(),
            at: Timestamp::default(),
        }),
        ai_left(agent_id),
        awaiting(WaitCause::Escalated(cause)),
        waiting_for_person(),
    ]
}

/// The default policy's refusal of a handoff by its `guidance-concerns` rule, for `concern`.
fn refused_by_concerns(concern: Concern) -> Rejection {
    Rejection::RefusedByRule {
        rule: RuleName::new("guidance-concerns").unwrap(),
        policy_version: Rules::default_rules().version().clone(),
        reason: format!(
            "{} (within 5 customer messages or 30 minutes of it)",
            concern.describe()
        ),
    }
}

fn customer_posted(message: &str, concerns: &[Concern]) -> Event {
    conversation_event(ConversationEvent::MessagePosted {
        author: Author::Customer(customer(CUSTOMER)),
        text: text(message),
        concerns: concerns.to_vec(),
    })
}

fn human_posted(by: &str, message: &str) -> Event {
    conversation_event(ConversationEvent::MessagePosted {
        author: Author::Human(human(by)),
        text: text(message),
        concerns: vec![],
    })
}

fn ai_posted(agent_id: &str, message: &str) -> Event {
    conversation_event(ConversationEvent::MessagePosted {
        author: Author::Ai(ai(agent_id)),
        text: text(message),
        concerns: vec![],
    })
}

/// `ana` hands the conversation to `agent_id` without a reason.
fn handed_off(agent_id: &str) -> Event {
    conversation_event(ConversationEvent::HandedOffToAi {
        agent_id: ai(agent_id),
        agent_name: agent_name_of(agent_id),
        by_human: human(ASSIGNED_HUMAN),
        reason: None,
    })
}

fn handed_off_because(agent_id: &str, why: &str) -> Event {
    conversation_event(ConversationEvent::HandedOffToAi {
        agent_id: ai(agent_id),
        agent_name: agent_name_of(agent_id),
        by_human: human(ASSIGNED_HUMAN),
        reason: Some(reason(why)),
    })
}

fn skill_recorded(agent_id: &str) -> Event {
    conversation_event(ConversationEvent::AiActionRecorded {
        agent_id: ai(agent_id),
        skill: price_lookup(),
    })
}

/// `bob` reclaims the conversation from `agent_id` without a reason.
fn reclaimed(agent_id: &str) -> Event {
    conversation_event(ConversationEvent::Reclaimed {
        agent_id: ai(agent_id),
        by_human: human(OTHER_HUMAN),
        reason: None,
    })
}

fn escalated(agent_id: &str, why: &str, cause: EscalationCause) -> Event {
    conversation_event(ConversationEvent::EscalatedToHuman {
        agent_id: ai(agent_id),
        reason: reason(why),
        cause,
    })
}

fn closed(by: Author, why: Option<&str>) -> Event {
    conversation_event(ConversationEvent::Closed {
        by,
        reason: why.map(reason),
    })
}

// ---------------------------------------------------------------------------------------------
// Commands.
// ---------------------------------------------------------------------------------------------

fn open() -> ConversationCommand {
    ConversationCommand::Open {
        customer: customer(CUSTOMER),
        channel: Channel::new("web-chat").unwrap(),
        human: Some(human(ASSIGNED_HUMAN)),
    }
}

fn open_unassigned() -> ConversationCommand {
    ConversationCommand::Open {
        customer: customer(CUSTOMER),
        channel: Channel::new("whatsapp").unwrap(),
        human: None,
    }
}

fn post_customer(message: &str) -> ConversationCommand {
    post_as_customer(CUSTOMER, message)
}

fn post_as_customer(id: &str, message: &str) -> ConversationCommand {
    ConversationCommand::PostMessage {
        by: Participant::Customer(customer(id)),
        text: text(message),
    }
}

fn post_human(by: &str, message: &str) -> ConversationCommand {
    ConversationCommand::PostMessage {
        by: Participant::Human(human(by)),
        text: text(message),
    }
}

fn post_ai(agent_id: &str, epoch: u64, message: &str) -> ConversationCommand {
    ConversationCommand::PostMessage {
        by: Participant::Ai(assignment(agent_id, epoch)),
        text: text(message),
    }
}

/// `ana` hands the conversation to `agent_id` without a reason.
fn hand_off(agent_id: &str) -> ConversationCommand {
    ConversationCommand::HandOffToAi {
        by: human(ASSIGNED_HUMAN),
        agent_id: ai(agent_id),
        reason: None,
    }
}

fn hand_off_because(agent_id: &str, why: &str) -> ConversationCommand {
    ConversationCommand::HandOffToAi {
        by: human(ASSIGNED_HUMAN),
        agent_id: ai(agent_id),
        reason: Some(reason(why)),
    }
}

fn record_skill(agent_id: &str, epoch: u64) -> ConversationCommand {
    ConversationCommand::RecordAiAction {
        by: assignment(agent_id, epoch),
        skill: price_lookup(),
    }
}

/// `bob` reclaims the conversation without a reason.
fn reclaim() -> ConversationCommand {
    ConversationCommand::Reclaim {
        by: human(OTHER_HUMAN),
        reason: None,
    }
}

fn reclaim_because(why: &str) -> ConversationCommand {
    ConversationCommand::Reclaim {
        by: human(OTHER_HUMAN),
        reason: Some(reason(why)),
    }
}

fn escalate(agent_id: &str, epoch: u64, why: &str, cause: EscalationCause) -> ConversationCommand {
    ConversationCommand::Escalate {
        by: assignment(agent_id, epoch),
        reason: reason(why),
        cause,
    }
}

fn close(by: Participant, why: Option<&str>) -> ConversationCommand {
    ConversationCommand::Close {
        by,
        reason: why.map(reason),
    }
}

fn register(agent_name: &str, specialties: &[&str]) -> AiAgentCommand {
    AiAgentCommand::Register {
        name: name(agent_name),
        specialties: specialties.iter().map(|s| specialty(s)).collect(),
    }
}

/// One command of every kind other than `Open` and `Start`, each valid in some open state.
fn every_command_but_open() -> Vec<ConversationCommand> {
    vec![
        post_customer("hello"),
        post_human(ASSIGNED_HUMAN, "hello"),
        post_ai("faq", 1, "hello"),
        hand_off("faq"),
        record_skill("faq", 1),
        reclaim(),
        escalate("faq", 1, "out of my depth", EscalationCause::AgentRequested),
        escalate("faq", 1, "deactivated", EscalationCause::AgentDeactivated),
        close(Participant::Human(human(ASSIGNED_HUMAN)), None),
        ConversationCommand::Assign {
            by: Participant::Human(human(OTHER_HUMAN)),
            to: human(ASSIGNED_HUMAN),
        },
        ConversationCommand::Assign {
            by: Participant::System(SystemActor::Router),
            to: human(ASSIGNED_HUMAN),
        },
        ConversationCommand::Accept {
            by: human(ASSIGNED_HUMAN),
        },
        ConversationCommand::Transfer {
            by: human(ASSIGNED_HUMAN),
            to: TransferTarget::Human(human(OTHER_HUMAN)),
            reason: reason("needs a supervisor"),
        },
        ConversationCommand::Transfer {
            by: human(OTHER_HUMAN),
            to: TransferTarget::Team(team("billing")),
            reason: reason("a billing question"),
        },
        ConversationCommand::Requeue {
            human: human(ASSIGNED_HUMAN),
        },
        ConversationCommand::Whisper {
            by: human(OTHER_HUMAN),
            to: NoteAudience::Staff,
            text: text("be gentle"),
        },
        ConversationCommand::RaiseFlag {
            by: Participant::Human(human(ASSIGNED_HUMAN)),
        },
        ConversationCommand::LowerFlag {
            by: human(OTHER_HUMAN),
        },
        ConversationCommand::Tick,
    ]
}

fn ai_active(agent_id: &str, epoch: u64) -> Status {
    Status::AiActive {
        agent_id: ai(agent_id),
        agent_name: agent_name_of(agent_id),
        epoch: Epoch(epoch),
    }
}

// ---------------------------------------------------------------------------------------------
// Rule 1: open.
// ---------------------------------------------------------------------------------------------

#[test]
fn opening_assigned_to_a_human_gives_it_to_them() {
    let outcome = check(given([]), when(open()), accepted(opened()));
    assert_eq!(outcome.conversation.status(), assigned_to_ana());
    assert_eq!(outcome.conversation.status().label(), "human-handled");
    let Conversation::Open(open) = &outcome.conversation else {
        panic!("not open: {:?}", outcome.conversation);
    };
    assert_eq!(open.human, Some(human(ASSIGNED_HUMAN)));
    assert_eq!(open.customer, customer(CUSTOMER));
    assert_eq!(open.epoch, Epoch(0));
    assert_eq!(open.tenant, default_tenant());
}

#[test]
fn opening_without_a_human_waits_in_the_general_queue() {
    let outcome = check(
        given([]),
        when(open_unassigned()),
        accepted(opened_unassigned()),
    );
    assert_eq!(
        outcome.conversation.status(),
        awaiting_status(WaitCause::Opened)
    );
}

#[test]
fn opening_assigned_to_an_unregistered_human_is_unknown_human() {
    check(
        given_only([]),
        when(open()),
        rejected(Rejection::UnknownHuman {
            human_id: human(ASSIGNED_HUMAN),
        }),
    );
}

#[test]
fn a_legacy_log_opened_for_a_human_still_folds_as_human_handled() {
    let outcome = check(
        given([legacy_opened()]),
        when(post_human(ASSIGNED_HUMAN, "hello")),
        accepted([human_posted(ASSIGNED_HUMAN, "hello")]),
    );
    assert_eq!(outcome.conversation.status(), Status::HumanHandled);
    assert_eq!(outcome.conversation.tenant(), Some(&default_tenant()));
}

#[test]
fn a_legacy_log_opened_without_a_human_lets_any_human_of_the_default_tenant_act() {
    let unassigned = || {
        conversation_event(ConversationEvent::Opened {
            customer: customer(CUSTOMER),
            channel: Channel::new("web-chat").unwrap(),
            human: None,
        })
    };
    let outcome = check(
        given([unassigned()]),
        when(hand_off("faq")),
        accepted([handed_off("faq"), ai_joined("faq")]),
    );
    assert_eq!(outcome.conversation.status(), ai_active("faq", 1));
    // Once handed off, the human who did it answers for it.
    let outcome = check(
        given([unassigned(), handed_off("faq")]),
        when(reclaim()),
        accepted([reclaimed("faq"), ai_left("faq"), person_joined(OTHER_HUMAN)]),
    );
    assert_eq!(
        outcome.conversation.status(),
        Status::Reclaimed {
            by: human(OTHER_HUMAN)
        }
    );
}

#[test]
fn opening_twice_is_already_opened() {
    check(
        given_opened([]),
        when(open()),
        rejected(Rejection::AlreadyOpened),
    );
}

#[test]
fn opening_again_while_ai_active_is_already_opened() {
    check(
        given_opened([handed_off("faq")]),
        when(open_unassigned()),
        rejected(Rejection::AlreadyOpened),
    );
}

#[test]
fn every_other_command_before_open_is_not_opened() {
    for command in every_command_but_open() {
        check(given([]), when(command), rejected(Rejection::NotOpened));
    }
}

#[test]
fn claiming_the_customer_cause_before_open_is_not_opened() {
    check(
        given([]),
        when(escalate(
            "faq",
            1,
            "the customer asked",
            EscalationCause::CustomerAskedForHuman,
        )),
        rejected(Rejection::NotOpened),
    );
}

// ---------------------------------------------------------------------------------------------
// Rule 2: customer messages.
// ---------------------------------------------------------------------------------------------

#[test]
fn the_customer_posts_while_human_handled() {
    let outcome = check(
        given_opened([]),
        when(post_customer("What are your business hours?")),
        accepted([customer_posted("What are your business hours?", &[])]),
    );
    assert_eq!(outcome.conversation.status(), assigned_to_ana());
}

#[test]
fn the_customer_posts_while_ai_active() {
    let outcome = check(
        given_opened([handed_off("faq")]),
        when(post_customer("How much is the pro plan?")),
        accepted([customer_posted("How much is the pro plan?", &[])]),
    );
    assert_eq!(outcome.conversation.status(), ai_active("faq", 1));
}

#[test]
fn the_customer_posts_after_a_reclaim() {
    check(
        given_opened([handed_off("faq"), reclaimed("faq")]),
        when(post_customer("Thanks!")),
        accepted([customer_posted("Thanks!", &[])]),
    );
}

#[test]
fn someone_else_cannot_post_as_the_customer() {
    check(
        given_opened([]),
        when(post_as_customer("cust-2", "hello")),
        rejected(Rejection::NotTheCustomer {
            customer: customer(CUSTOMER),
        }),
    );
}

#[test]
fn someone_else_cannot_post_as_the_customer_while_ai_active() {
    check(
        given_opened([handed_off("faq")]),
        when(post_as_customer("cust-2", "talk to a human")),
        rejected(Rejection::NotTheCustomer {
            customer: customer(CUSTOMER),
        }),
    );
}

#[test]
fn the_policy_records_the_customers_concerns_with_the_message() {
    let outcome = check(
        given_opened([]),
        when(post_customer("This is unacceptable, I want a discount")),
        accepted([customer_posted(
            "This is unacceptable, I want a discount",
            &[Concern::Complaint, Concern::Negotiation],
        )]),
    );
    let Conversation::Open(open) = outcome.conversation else {
        panic!("not open");
    };
    assert_eq!(
        open.concerns,
        vec![Concern::Complaint, Concern::Negotiation]
    );
}

#[test]
fn a_message_of_exactly_the_limit_is_accepted() {
    let long = "a".repeat(MESSAGE_BYTES_MAX);
    check(
        given_opened([]),
        when(post_customer(&long)),
        accepted([customer_posted(&long, &[])]),
    );
}

// ---------------------------------------------------------------------------------------------
// Rule 3: handoff to an AI agent.
// ---------------------------------------------------------------------------------------------

#[test]
fn a_human_hands_off_to_an_active_ai_agent_with_a_reason() {
    let outcome = check(
        given_opened([]),
        when(hand_off_because(
            "faq",
            "Customer wants information about pricing and plans",
        )),
        accepted([
            handed_off_because("faq", "Customer wants information about pricing and plans"),
            ai_joined("faq"),
        ]),
    );
    assert_eq!(outcome.conversation.status(), ai_active("faq", 1));
    assert_eq!(
        outcome.conversation.assignment(),
        Some(assignment("faq", 1))
    );
}

#[test]
fn a_human_hands_off_without_a_reason() {
    let outcome = check(
        given_opened([customer_posted("What are your hours?", &[])]),
        when(hand_off("sales")),
        accepted([handed_off("sales"), ai_joined("sales")]),
    );
    assert_eq!(outcome.conversation.status(), ai_active("sales", 1));
}

#[test]
fn a_handoff_reason_is_at_most_one_kibibyte() {
    assert!(Reason::new("r".repeat(REASON_BYTES_MAX)).is_ok());
    assert_eq!(
        Reason::new("r".repeat(REASON_BYTES_MAX + 1)),
        Err(InvalidInput::TooLong {
            what: "reason",
            len: REASON_BYTES_MAX + 1,
            max: REASON_BYTES_MAX,
        })
    );
    let longest = "r".repeat(REASON_BYTES_MAX);
    check(
        given_opened([]),
        when(hand_off_because("faq", &longest)),
        accepted([handed_off_because("faq", &longest), ai_joined("faq")]),
    );
}

#[test]
fn handing_off_to_an_unregistered_agent_is_unknown() {
    check(
        given_opened([]),
        when(hand_off("ghost")),
        rejected(Rejection::UnknownAiAgent {
            agent_id: ai("ghost"),
        }),
    );
}

#[test]
fn handing_off_to_a_registered_but_inactive_agent_is_refused() {
    check(
        given_opened([]),
        when(hand_off("idle")),
        rejected(Rejection::AiAgentInactive {
            agent_id: ai("idle"),
        }),
    );
}

#[test]
fn handing_off_to_a_deactivated_agent_is_refused() {
    check(
        given_opened([deactivated("faq")]),
        when(hand_off("faq")),
        rejected(Rejection::AiAgentInactive {
            agent_id: ai("faq"),
        }),
    );
}

#[test]
fn handing_an_ai_active_conversation_to_another_agent_starts_a_new_epoch() {
    let outcome = check(
        given_opened([handed_off("faq")]),
        when(hand_off("sales")),
        accepted([handed_off("sales"), ai_joined("sales")]),
    );
    assert_eq!(outcome.conversation.status(), ai_active("sales", 2));
}

#[test]
fn handing_an_ai_active_conversation_to_its_agent_again_is_already_handled() {
    check(
        given_opened([handed_off("faq")]),
        when(hand_off("faq")),
        rejected(Rejection::AlreadyHandledBy {
            agent_id: ai("faq"),
        }),
    );
}

#[test]
fn handing_a_reclaimed_conversation_to_the_same_agent_starts_a_new_epoch() {
    // `bob` reclaimed it, so he answers for it now, and hands it off again.
    let outcome = check(
        given_opened([handed_off("faq"), reclaimed("faq")]),
        when(ConversationCommand::HandOffToAi {
            by: human(OTHER_HUMAN),
            agent_id: ai("faq"),
            reason: None,
        }),
        accepted([
            conversation_event(ConversationEvent::HandedOffToAi {
                agent_id: ai("faq"),
                agent_name: agent_name_of("faq"),
                by_human: human(OTHER_HUMAN),
                reason: None,
            }),
            ai_joined("faq"),
        ]),
    );
    assert_eq!(outcome.conversation.status(), ai_active("faq", 2));
}

#[test]
fn handing_off_against_each_concern_is_refused() {
    for (message, concern) in [
        ("I want a discount", Concern::Negotiation),
        ("This is unacceptable", Concern::Complaint),
        ("My card was stolen", Concern::Sensitive),
        ("Can I talk to a human?", Concern::HumanRequested),
    ] {
        check(
            given_opened([customer_posted(message, &[concern])]),
            when(hand_off("faq")),
            rejected(refused_by_concerns(concern)),
        );
    }
}

#[test]
fn a_concern_raised_long_ago_still_refuses_the_handoff() {
    // Long ago in the conversation, but within the default rule's window (5 customer
    // messages and 30 minutes; the given history records no time, so only messages count).
    check(
        given_opened([
            customer_posted("This is unacceptable", &[Concern::Complaint]),
            human_posted(ASSIGNED_HUMAN, "I am sorry, let me fix it"),
            customer_posted("Thanks, all good now", &[]),
        ]),
        when(hand_off("faq")),
        rejected(refused_by_concerns(Concern::Complaint)),
    );
}

#[test]
fn a_concern_stops_refusing_the_handoff_after_its_window() {
    // Five customer messages after it, the default rule lets the handoff through.
    check(
        given_opened([
            customer_posted("This is unacceptable", &[Concern::Complaint]),
            human_posted(ASSIGNED_HUMAN, "I am sorry, let me fix it"),
            customer_posted("Thanks", &[]),
            customer_posted("One more question", &[]),
            customer_posted("About my invoice", &[]),
            customer_posted("From March", &[]),
            customer_posted("Thanks, all good now", &[]),
        ]),
        when(hand_off("faq")),
        accepted([handed_off("faq"), ai_joined("faq")]),
    );
}

#[test]
fn handing_off_a_closed_conversation_is_closed() {
    check(
        given_opened([closed(Author::Human(human(ASSIGNED_HUMAN)), None)]),
        when(hand_off("faq")),
        rejected(Rejection::Closed),
    );
}

// ---------------------------------------------------------------------------------------------
// Rule 4: humans cannot post while AI-active.
// ---------------------------------------------------------------------------------------------

#[test]
fn a_human_cannot_post_while_ai_active() {
    check(
        given_opened([handed_off("faq")]),
        when(post_human(ASSIGNED_HUMAN, "hi")),
        rejected(Rejection::AiActive {
            agent_id: ai("faq"),
            agent_name: name("FAQ Bot"),
        }),
    );
}

#[test]
fn no_human_can_post_while_ai_active_not_even_one_who_did_not_hand_off() {
    check(
        given_opened([handed_off("faq"), handed_off("sales")]),
        when(post_human(OTHER_HUMAN, "hi")),
        rejected(Rejection::AiActive {
            agent_id: ai("sales"),
            agent_name: name("Sales Bot"),
        }),
    );
}

#[test]
fn a_human_posts_while_human_handled() {
    check(
        given_opened([]),
        when(post_human(ASSIGNED_HUMAN, "Hi, how can I help?")),
        accepted([human_posted(ASSIGNED_HUMAN, "Hi, how can I help?")]),
    );
}

#[test]
fn a_human_posts_after_reclaiming() {
    let outcome = check(
        given_opened([handed_off("faq"), reclaimed("faq")]),
        when(post_human(OTHER_HUMAN, "I'm taking over")),
        accepted([human_posted(OTHER_HUMAN, "I'm taking over")]),
    );
    assert_eq!(
        outcome.conversation.status(),
        Status::Reclaimed {
            by: human(OTHER_HUMAN)
        }
    );
}

#[test]
fn after_an_escalation_a_supervisor_posts_at_once() {
    check(
        given_opened([
            handed_off("faq"),
            escalated("faq", "out of my depth", EscalationCause::AgentRequested),
            ai_left("faq"),
            awaiting(WaitCause::Escalated(EscalationCause::AgentRequested)),
            waiting_for_person(),
        ]),
        when(post_human(OTHER_HUMAN, "I'm here")),
        accepted([human_posted(OTHER_HUMAN, "I'm here")]),
    );
}

#[test]
fn after_an_escalation_the_agent_who_handed_off_posts_once_they_accept_it() {
    let escalated_history = || {
        [
            handed_off("faq"),
            escalated("faq", "out of my depth", EscalationCause::AgentRequested),
            ai_left("faq"),
            awaiting(WaitCause::Escalated(EscalationCause::AgentRequested)),
            waiting_for_person(),
        ]
    };
    // While it waits in the queue, nobody answers for it but the queue.
    check(
        given_opened(escalated_history()),
        when(post_human(ASSIGNED_HUMAN, "I'm here")),
        rejected(Rejection::NotAssignedToYou {
            human_id: human(ASSIGNED_HUMAN),
        }),
    );
    let [a, b, c, d, e] = escalated_history();
    check(
        given_opened([a, b, c, d, e, accepted_by(ASSIGNED_HUMAN)]),
        when(post_human(ASSIGNED_HUMAN, "I'm here")),
        accepted([human_posted(ASSIGNED_HUMAN, "I'm here")]),
    );
}

// ---------------------------------------------------------------------------------------------
// Rule 5: only the assigned AI agent, under the current epoch.
// ---------------------------------------------------------------------------------------------

#[test]
fn the_assigned_agent_posts_under_the_current_epoch() {
    check(
        given_opened([handed_off("faq")]),
        when(post_ai("faq", 1, "Our hours are 9 to 5.")),
        accepted([ai_posted("faq", "Our hours are 9 to 5.")]),
    );
}

#[test]
fn the_assigned_agent_records_a_skill_under_the_current_epoch() {
    check(
        given_opened([handed_off("faq")]),
        when(record_skill("faq", 1)),
        accepted([skill_recorded("faq")]),
    );
}

#[test]
fn a_failed_skill_is_recorded_too() {
    let failed = Skill {
        name: SkillName::new("lookup_order").unwrap(),
        input: SkillData::new("").unwrap(),
        outcome: SkillOutcome::Failed(SkillData::new("timeout").unwrap()),
    };
    check(
        given_opened([handed_off("faq")]),
        when(ConversationCommand::RecordAiAction {
            by: assignment("faq", 1),
            skill: failed.clone(),
        }),
        accepted([conversation_event(ConversationEvent::AiActionRecorded {
            agent_id: ai("faq"),
            skill: failed,
        })]),
    );
}

#[test]
fn an_ai_agent_cannot_post_in_a_conversation_never_handed_off() {
    check(
        given_opened([]),
        when(post_ai("faq", 1, "hello")),
        rejected(Rejection::NotAssigned {
            agent_id: ai("faq"),
        }),
    );
}

#[test]
fn an_ai_agent_cannot_record_a_skill_in_a_conversation_never_handed_off() {
    check(
        given_opened([]),
        when(record_skill("faq", 1)),
        rejected(Rejection::NotAssigned {
            agent_id: ai("faq"),
        }),
    );
}

#[test]
fn another_ai_agent_without_an_epoch_is_not_assigned() {
    check(
        given_opened([handed_off("faq")]),
        when(post_ai("sales", 0, "hello")),
        rejected(Rejection::NotAssigned {
            agent_id: ai("sales"),
        }),
    );
}

#[test]
fn another_ai_agent_claiming_the_current_epoch_is_not_assigned() {
    check(
        given_opened([handed_off("faq")]),
        when(post_ai("sales", 1, "hello")),
        rejected(Rejection::NotAssigned {
            agent_id: ai("sales"),
        }),
    );
}

#[test]
fn another_ai_agent_claiming_the_current_epoch_cannot_record_a_skill() {
    check(
        given_opened([handed_off("faq")]),
        when(record_skill("sales", 1)),
        rejected(Rejection::NotAssigned {
            agent_id: ai("sales"),
        }),
    );
}

#[test]
fn the_assigned_agent_with_an_epoch_never_issued_is_not_assigned() {
    check(
        given_opened([handed_off("faq")]),
        when(post_ai("faq", 7, "hello")),
        rejected(Rejection::NotAssigned {
            agent_id: ai("faq"),
        }),
    );
}

#[test]
fn an_agent_handed_away_from_replies_under_its_ended_assignment() {
    check(
        given_opened([handed_off("faq"), handed_off("sales")]),
        when(post_ai("faq", 1, "late reply")),
        rejected(Rejection::AssignmentEnded {
            agent_id: ai("faq"),
            epoch: Epoch(1),
        }),
    );
}

// ---------------------------------------------------------------------------------------------
// Rule 6: reclaim, and fencing of the ended assignment.
// ---------------------------------------------------------------------------------------------

#[test]
fn a_human_reclaims_an_ai_active_conversation() {
    let outcome = check(
        given_opened([handed_off("faq")]),
        when(reclaim_because("VIP customer")),
        accepted([
            conversation_event(ConversationEvent::Reclaimed {
                agent_id: ai("faq"),
                by_human: human(OTHER_HUMAN),
                reason: Some(reason("VIP customer")),
            }),
            ai_left("faq"),
            person_joined(OTHER_HUMAN),
        ]),
    );
    assert_eq!(
        outcome.conversation.status(),
        Status::Reclaimed {
            by: human(OTHER_HUMAN)
        }
    );
    let Conversation::Open(open) = outcome.conversation else {
        panic!("not open");
    };
    assert_eq!(open.human, Some(human(OTHER_HUMAN)));
}

#[test]
fn a_human_reclaims_without_a_reason() {
    check(
        given_opened([handed_off("faq")]),
        when(reclaim()),
        accepted([reclaimed("faq"), ai_left("faq"), person_joined(OTHER_HUMAN)]),
    );
}

#[test]
fn reclaiming_a_human_handled_conversation_is_not_ai_active() {
    check(
        given_opened([]),
        when(reclaim()),
        rejected(Rejection::NotAiActive),
    );
}

#[test]
fn reclaiming_twice_is_not_ai_active() {
    check(
        given_opened([handed_off("faq"), reclaimed("faq")]),
        when(reclaim()),
        rejected(Rejection::NotAiActive),
    );
}

#[test]
fn reclaiming_after_an_escalation_is_not_ai_active() {
    check(
        given_opened([
            handed_off("faq"),
            escalated("faq", "out of my depth", EscalationCause::AgentRequested),
            ai_left("faq"),
            awaiting(WaitCause::Escalated(EscalationCause::AgentRequested)),
            waiting_for_person(),
        ]),
        when(reclaim()),
        rejected(Rejection::NotAiActive),
    );
}

#[test]
fn a_reply_under_the_reclaimed_assignment_is_assignment_ended() {
    check(
        given_opened([handed_off("faq"), reclaimed("faq")]),
        when(post_ai("faq", 1, "a reply computed before the reclaim")),
        rejected(Rejection::AssignmentEnded {
            agent_id: ai("faq"),
            epoch: Epoch(1),
        }),
    );
}

#[test]
fn a_skill_under_the_reclaimed_assignment_is_assignment_ended() {
    check(
        given_opened([handed_off("faq"), reclaimed("faq")]),
        when(record_skill("faq", 1)),
        rejected(Rejection::AssignmentEnded {
            agent_id: ai("faq"),
            epoch: Epoch(1),
        }),
    );
}

#[test]
fn handed_to_the_same_agent_again_the_old_epoch_is_rejected() {
    check(
        given_opened([handed_off("faq"), reclaimed("faq"), handed_off("faq")]),
        when(post_ai("faq", 1, "a reply from the first assignment")),
        rejected(Rejection::AssignmentEnded {
            agent_id: ai("faq"),
            epoch: Epoch(1),
        }),
    );
}

#[test]
fn handed_to_the_same_agent_again_the_old_epoch_cannot_record_a_skill() {
    check(
        given_opened([handed_off("faq"), reclaimed("faq"), handed_off("faq")]),
        when(record_skill("faq", 1)),
        rejected(Rejection::AssignmentEnded {
            agent_id: ai("faq"),
            epoch: Epoch(1),
        }),
    );
}

#[test]
fn handed_to_the_same_agent_again_the_new_epoch_is_accepted() {
    check(
        given_opened([handed_off("faq"), reclaimed("faq"), handed_off("faq")]),
        when(post_ai("faq", 2, "a reply from the second assignment")),
        accepted([ai_posted("faq", "a reply from the second assignment")]),
    );
}

#[test]
fn handed_back_through_another_agent_the_first_epoch_is_rejected() {
    check(
        given_opened([handed_off("faq"), handed_off("sales"), handed_off("faq")]),
        when(post_ai("faq", 1, "stale")),
        rejected(Rejection::AssignmentEnded {
            agent_id: ai("faq"),
            epoch: Epoch(1),
        }),
    );
}

#[test]
fn handed_back_through_another_agent_the_third_epoch_is_accepted() {
    let outcome = check(
        given_opened([handed_off("faq"), handed_off("sales"), handed_off("faq")]),
        when(post_ai("faq", 3, "fresh")),
        accepted([ai_posted("faq", "fresh")]),
    );
    assert_eq!(outcome.conversation.status(), ai_active("faq", 3));
}

// ---------------------------------------------------------------------------------------------
// Rule 7: escalation.
// ---------------------------------------------------------------------------------------------

#[test]
fn the_assigned_agent_escalates_with_a_reason() {
    let outcome = check(
        given_opened([handed_off("faq")]),
        when(escalate(
            "faq",
            1,
            "the customer needs a refund",
            EscalationCause::AgentRequested,
        )),
        accepted(escalation(
            "faq",
            "the customer needs a refund",
            EscalationCause::AgentRequested,
        )),
    );
    assert_eq!(
        outcome.conversation.status(),
        awaiting_status(WaitCause::Escalated(EscalationCause::AgentRequested))
    );
    assert_eq!(outcome.conversation.assignment(), None);
}

#[test]
fn the_runtime_escalates_for_a_deactivated_agent() {
    let outcome = check(
        given_opened([handed_off("faq"), deactivated("faq")]),
        when(escalate(
            "faq",
            1,
            "AI agent faq was deactivated",
            EscalationCause::AgentDeactivated,
        )),
        accepted(escalation(
            "faq",
            "AI agent faq was deactivated",
            EscalationCause::AgentDeactivated,
        )),
    );
    assert_eq!(
        outcome.conversation.status(),
        awaiting_status(WaitCause::Escalated(EscalationCause::AgentDeactivated))
    );
}

#[test]
fn an_ai_agent_cannot_claim_the_customer_asked_for_a_human() {
    check(
        given_opened([handed_off("faq")]),
        when(escalate(
            "faq",
            1,
            "the customer asked",
            EscalationCause::CustomerAskedForHuman,
        )),
        rejected(Rejection::EscalationCauseNotAllowed {
            cause: EscalationCause::CustomerAskedForHuman,
        }),
    );
}

#[test]
fn another_agent_cannot_escalate() {
    check(
        given_opened([handed_off("faq")]),
        when(escalate(
            "sales",
            0,
            "mine now",
            EscalationCause::AgentRequested,
        )),
        rejected(Rejection::NotAssigned {
            agent_id: ai("sales"),
        }),
    );
}

#[test]
fn an_agent_cannot_escalate_a_conversation_never_handed_off() {
    check(
        given_opened([]),
        when(escalate("faq", 1, "help", EscalationCause::AgentRequested)),
        rejected(Rejection::NotAssigned {
            agent_id: ai("faq"),
        }),
    );
}

#[test]
fn an_ended_assignment_cannot_escalate() {
    check(
        given_opened([handed_off("faq"), reclaimed("faq"), handed_off("faq")]),
        when(escalate("faq", 1, "help", EscalationCause::AgentRequested)),
        rejected(Rejection::AssignmentEnded {
            agent_id: ai("faq"),
            epoch: Epoch(1),
        }),
    );
}

#[test]
fn a_customer_asking_for_a_human_while_ai_active_is_escalated_in_the_same_append() {
    let outcome = check(
        given_opened([handed_off("faq")]),
        when(post_customer("Can I talk to a human?")),
        accepted_all(
            [customer_posted(
                "Can I talk to a human?",
                &[Concern::HumanRequested],
            )]
            .into_iter()
            .chain(rule_escalation(
                "faq",
                CUSTOMER_ASKED_REASON,
                EscalationCause::CustomerAskedForHuman,
                "asked-for-a-person",
            ))
            .collect(),
        ),
    );
    assert_eq!(
        outcome.conversation.status(),
        awaiting_status(WaitCause::Escalated(EscalationCause::CustomerAskedForHuman))
    );
}

#[test]
fn a_customer_asking_for_a_human_in_portuguese_is_escalated() {
    check(
        given_opened([handed_off("sales")]),
        when(post_customer("Quero falar com um ATENDENTE!")),
        accepted_all(
            [customer_posted(
                "Quero falar com um ATENDENTE!",
                &[Concern::HumanRequested],
            )]
            .into_iter()
            .chain(rule_escalation(
                "sales",
                CUSTOMER_ASKED_REASON,
                EscalationCause::CustomerAskedForHuman,
                "asked-for-a-person",
            ))
            .collect(),
        ),
    );
}

#[test]
fn a_customer_asking_for_a_human_while_human_handled_only_posts() {
    let outcome = check(
        given_opened([]),
        when(post_customer("Can I talk to a human?")),
        accepted([customer_posted(
            "Can I talk to a human?",
            &[Concern::HumanRequested],
        )]),
    );
    assert_eq!(outcome.conversation.status(), assigned_to_ana());
}

#[test]
fn a_customer_asking_for_a_human_after_a_reclaim_only_posts() {
    check(
        given_opened([handed_off("faq"), reclaimed("faq")]),
        when(post_customer("real person please")),
        accepted([customer_posted(
            "real person please",
            &[Concern::HumanRequested],
        )]),
    );
}

#[test]
fn a_complaint_while_ai_active_escalates_by_the_complaint_rule() {
    // Before rules were configurable a complaint only blocked later handoffs; the default
    // policy's `complaint-while-ai` rule now gives it to a person at once. (A policy without
    // that rule leaves it with the AI: see tests/escalation_rules.rs.)
    check(
        given_opened([handed_off("faq")]),
        when(post_customer("This is terrible")),
        accepted_all(
            [customer_posted("This is terrible", &[Concern::Complaint])]
                .into_iter()
                .chain(rule_escalation(
                    "faq",
                    "the customer complained",
                    EscalationCause::Complaint,
                    "complaint-while-ai",
                ))
                .collect(),
        ),
    );
}

#[test]
fn a_reply_after_the_customer_escalated_is_assignment_ended() {
    check(
        given_opened([
            handed_off("faq"),
            customer_posted("Can I talk to a human?", &[Concern::HumanRequested]),
            escalated(
                "faq",
                CUSTOMER_ASKED_REASON,
                EscalationCause::CustomerAskedForHuman,
            ),
            ai_left("faq"),
            awaiting(WaitCause::Escalated(EscalationCause::CustomerAskedForHuman)),
            waiting_for_person(),
        ]),
        when(post_ai("faq", 1, "I can help with that!")),
        rejected(Rejection::AssignmentEnded {
            agent_id: ai("faq"),
            epoch: Epoch(1),
        }),
    );
}

#[test]
fn after_the_customer_asked_for_a_human_no_handoff_is_allowed() {
    check(
        given_opened([
            handed_off("faq"),
            customer_posted("Can I talk to a human?", &[Concern::HumanRequested]),
            escalated(
                "faq",
                CUSTOMER_ASKED_REASON,
                EscalationCause::CustomerAskedForHuman,
            ),
            ai_left("faq"),
            awaiting(WaitCause::Escalated(EscalationCause::CustomerAskedForHuman)),
            waiting_for_person(),
            accepted_by(ASSIGNED_HUMAN),
        ]),
        when(hand_off("sales")),
        rejected(refused_by_concerns(Concern::HumanRequested)),
    );
}

// ---------------------------------------------------------------------------------------------
// Rule 8: close.
// ---------------------------------------------------------------------------------------------

#[test]
fn handoff_and_reclaim_leave_the_conversation_open() {
    let after_handoff = check(
        given_opened([]),
        when(hand_off("faq")),
        accepted([handed_off("faq"), ai_joined("faq")]),
    );
    assert!(matches!(after_handoff.conversation, Conversation::Open(_)));
    let after_reclaim = check(
        given_opened([handed_off("faq")]),
        when(reclaim()),
        accepted([reclaimed("faq"), ai_left("faq"), person_joined(OTHER_HUMAN)]),
    );
    assert!(matches!(after_reclaim.conversation, Conversation::Open(_)));
}

#[test]
fn the_customer_closes() {
    let outcome = check(
        given_opened([]),
        when(close(
            Participant::Customer(customer(CUSTOMER)),
            Some("solved"),
        )),
        accepted([closed(Author::Customer(customer(CUSTOMER)), Some("solved"))]),
    );
    assert_eq!(outcome.conversation.status(), Status::Closed);
}

#[test]
fn a_human_closes_even_while_ai_active() {
    let outcome = check(
        given_opened([handed_off("faq")]),
        when(close(Participant::Human(human(OTHER_HUMAN)), None)),
        accepted([closed(Author::Human(human(OTHER_HUMAN)), None)]),
    );
    assert_eq!(outcome.conversation.status(), Status::Closed);
}

#[test]
fn the_assigned_agent_closes() {
    let outcome = check(
        given_opened([handed_off("faq")]),
        when(close(
            Participant::Ai(assignment("faq", 1)),
            Some("answered"),
        )),
        accepted([closed(Author::Ai(ai("faq")), Some("answered"))]),
    );
    assert_eq!(outcome.conversation.status(), Status::Closed);
}

#[test]
fn someone_else_cannot_close_as_the_customer() {
    check(
        given_opened([]),
        when(close(Participant::Customer(customer("cust-2")), None)),
        rejected(Rejection::NotTheCustomer {
            customer: customer(CUSTOMER),
        }),
    );
}

#[test]
fn an_unassigned_agent_cannot_close() {
    check(
        given_opened([handed_off("faq")]),
        when(close(Participant::Ai(assignment("sales", 0)), None)),
        rejected(Rejection::NotAssigned {
            agent_id: ai("sales"),
        }),
    );
}

#[test]
fn an_ended_assignment_cannot_close() {
    check(
        given_opened([handed_off("faq"), reclaimed("faq")]),
        when(close(Participant::Ai(assignment("faq", 1)), None)),
        rejected(Rejection::AssignmentEnded {
            agent_id: ai("faq"),
            epoch: Epoch(1),
        }),
    );
}

#[test]
fn after_close_every_command_is_closed() {
    let history = || given_opened([handed_off("faq"), closed(Author::Ai(ai("faq")), None)]);
    let mut commands = every_command_but_open();
    commands.push(open());
    commands.push(ConversationCommand::Start {
        tenant: default_tenant(),
        customer: customer(CUSTOMER),
        channel: Channel::new("web-chat").unwrap(),
        team: None,
        language: None,
        human: None,
    });
    commands.push(post_customer("Can I talk to a human?"));
    commands.push(close(Participant::Ai(assignment("faq", 1)), None));
    for command in commands {
        check(history(), when(command), rejected(Rejection::Closed));
    }
}

#[test]
fn claiming_the_customer_cause_after_close_is_closed() {
    check(
        given_opened([handed_off("faq"), closed(Author::Ai(ai("faq")), None)]),
        when(escalate(
            "faq",
            1,
            "the customer asked",
            EscalationCause::CustomerAskedForHuman,
        )),
        rejected(Rejection::Closed),
    );
}

// ---------------------------------------------------------------------------------------------
// Rule 9: the AI-agent roster.
// ---------------------------------------------------------------------------------------------

#[test]
fn a_registered_agent_starts_inactive() {
    let outcome = check(
        given_only([]),
        when_agent("faq", register("FAQ Bot", &["faq", "pricing"])),
        accepted([registered("faq", "FAQ Bot", &["faq", "pricing"])]),
    );
    let agent = outcome.roster.get(&ai("faq")).expect("registered");
    assert!(!agent.active);
    assert_eq!(agent.profile.name, name("FAQ Bot"));
    assert_eq!(outcome.roster.active(None).count(), 0);
}

#[test]
fn registering_records_the_id_of_the_stream_it_is_sent_to() {
    check(
        given_only([]),
        when_agent("sales", register("Sales Bot", &[])),
        accepted([registered("sales", "Sales Bot", &[])]),
    );
}

#[test]
fn registering_twice_is_already_registered() {
    check(
        given_only([registered("faq", "FAQ Bot", &[])]),
        when_agent("faq", register("FAQ Bot 2", &[])),
        rejected(Rejection::AiAgentAlreadyRegistered {
            agent_id: ai("faq"),
        }),
    );
}

#[test]
fn registering_with_the_most_specialties_is_accepted() {
    let specialties: Vec<String> = (0..SPECIALTIES_COUNT_MAX)
        .map(|i| format!("s{i}"))
        .collect();
    let specialties: Vec<&str> = specialties.iter().map(String::as_str).collect();
    check(
        given_only([]),
        when_agent("faq", register("FAQ Bot", &specialties)),
        accepted([registered("faq", "FAQ Bot", &specialties)]),
    );
}

#[test]
fn registering_with_too_many_specialties_is_refused() {
    let specialties: Vec<String> = (0..=SPECIALTIES_COUNT_MAX)
        .map(|i| format!("s{i}"))
        .collect();
    let specialties: Vec<&str> = specialties.iter().map(String::as_str).collect();
    check(
        given_only([]),
        when_agent("faq", register("FAQ Bot", &specialties)),
        rejected(Rejection::TooManySpecialties {
            len: SPECIALTIES_COUNT_MAX + 1,
            max: SPECIALTIES_COUNT_MAX,
        }),
    );
}

#[test]
fn activating_a_registered_agent_lists_it() {
    let outcome = check(
        given_only([registered("faq", "FAQ Bot", &["faq"])]),
        when_agent("faq", AiAgentCommand::Activate),
        accepted([activated("faq")]),
    );
    let active: Vec<&AiAgentId> = outcome.roster.active(None).map(|a| &a.profile.id).collect();
    assert_eq!(active, vec![&ai("faq")]);
}

#[test]
fn activating_an_unregistered_agent_is_not_registered() {
    check(
        given_only([]),
        when_agent("ghost", AiAgentCommand::Activate),
        rejected(Rejection::AiAgentNotRegistered {
            agent_id: ai("ghost"),
        }),
    );
}

#[test]
fn activating_an_active_agent_is_already_active() {
    check(
        given_only([registered("faq", "FAQ Bot", &[]), activated("faq")]),
        when_agent("faq", AiAgentCommand::Activate),
        rejected(Rejection::AiAgentAlreadyActive {
            agent_id: ai("faq"),
        }),
    );
}

#[test]
fn deactivating_an_active_agent_unlists_it() {
    let outcome = check(
        given_only([registered("faq", "FAQ Bot", &[]), activated("faq")]),
        when_agent("faq", AiAgentCommand::Deactivate),
        accepted([deactivated("faq")]),
    );
    assert_eq!(outcome.roster.active(None).count(), 0);
    assert!(!outcome.roster.get(&ai("faq")).expect("registered").active);
}

#[test]
fn deactivating_an_unregistered_agent_is_not_registered() {
    check(
        given_only([]),
        when_agent("ghost", AiAgentCommand::Deactivate),
        rejected(Rejection::AiAgentNotRegistered {
            agent_id: ai("ghost"),
        }),
    );
}

#[test]
fn deactivating_a_new_agent_is_already_inactive() {
    check(
        given_only([registered("faq", "FAQ Bot", &[])]),
        when_agent("faq", AiAgentCommand::Deactivate),
        rejected(Rejection::AiAgentAlreadyInactive {
            agent_id: ai("faq"),
        }),
    );
}

#[test]
fn deactivating_twice_is_already_inactive() {
    check(
        given_only([
            registered("faq", "FAQ Bot", &[]),
            activated("faq"),
            deactivated("faq"),
        ]),
        when_agent("faq", AiAgentCommand::Deactivate),
        rejected(Rejection::AiAgentAlreadyInactive {
            agent_id: ai("faq"),
        }),
    );
}

#[test]
fn a_deactivated_agent_can_be_activated_again() {
    let outcome = check(
        given_only([
            registered("faq", "FAQ Bot", &[]),
            activated("faq"),
            deactivated("faq"),
        ]),
        when_agent("faq", AiAgentCommand::Activate),
        accepted([activated("faq")]),
    );
    assert!(outcome.roster.get(&ai("faq")).expect("registered").active);
}

#[test]
fn the_active_list_filters_by_specialty_sorted_by_id() {
    // The standard roster plus `billing` (pricing, active), registered after the others.
    let outcome = check(
        given([registered(
            "billing",
            "Billing Bot",
            &["pricing", "invoices"],
        )]),
        when_agent("billing", AiAgentCommand::Activate),
        accepted([activated("billing")]),
    );
    let ids = |specialty: Option<&Specialty>| -> Vec<String> {
        outcome
            .roster
            .active(specialty)
            .map(|a| a.profile.id.to_string())
            .collect()
    };
    assert_eq!(ids(None), vec!["billing", "faq", "sales"]);
    assert_eq!(
        ids(Some(&specialty("pricing"))),
        vec!["billing", "faq", "sales"]
    );
    // `idle` specialises in faq too, but it is inactive.
    assert_eq!(ids(Some(&specialty("faq"))), vec!["faq"]);
    assert_eq!(ids(Some(&specialty("invoices"))), vec!["billing"]);
    assert_eq!(ids(Some(&specialty("legal"))), Vec::<String>::new());
    assert_eq!(outcome.roster.all().count(), 4);
}

// ---------------------------------------------------------------------------------------------
// Rule 10: accepted commands return events, rejected ones none; state is the fold.
// ---------------------------------------------------------------------------------------------

#[test]
fn a_whole_conversation_is_the_fold_of_its_accepted_events() {
    let outcome = check(
        given_opened([
            customer_posted("What does the pro plan cost?", &[]),
            human_posted(ASSIGNED_HUMAN, "Let me hand you to our assistant"),
            handed_off_because("faq", "pricing question"),
            skill_recorded("faq"),
            ai_posted("faq", "It is 49 USD a month."),
            reclaimed("faq"),
            human_posted(OTHER_HUMAN, "Anything else?"),
            handed_off("sales"),
        ]),
        when(post_ai("sales", 2, "Shall I set it up?")),
        accepted([ai_posted("sales", "Shall I set it up?")]),
    );
    let Conversation::Open(open) = &outcome.conversation else {
        panic!("not open");
    };
    assert_eq!(open.epoch, Epoch(2));
    assert_eq!(open.human, Some(human(OTHER_HUMAN)));
    assert_eq!(open.concerns, vec![]);
    assert_eq!(outcome.conversation.status(), ai_active("sales", 2));
}

#[test]
fn a_rejected_command_leaves_the_state_as_it_was() {
    let outcome = check(
        given_opened([handed_off("faq")]),
        when(post_human(ASSIGNED_HUMAN, "hi")),
        rejected(Rejection::AiActive {
            agent_id: ai("faq"),
            agent_name: name("FAQ Bot"),
        }),
    );
    assert_eq!(outcome.conversation.status(), ai_active("faq", 1));
}

// ---------------------------------------------------------------------------------------------
// Input limits, checked once in each value's constructor.
// ---------------------------------------------------------------------------------------------

#[test]
fn identifiers_are_non_empty_without_control_characters_and_at_most_128_bytes() {
    type Check = fn(String) -> Result<(), InvalidInput>;
    let kinds: [(&str, Check); 6] = [
        ("AI agent id", |v| AiAgentId::new(v).map(drop)),
        ("human agent id", |v| HumanId::new(v).map(drop)),
        ("customer id", |v| CustomerId::new(v).map(drop)),
        ("channel", |v| Channel::new(v).map(drop)),
        ("skill name", |v| SkillName::new(v).map(drop)),
        ("specialty", |v| Specialty::new(v).map(drop)),
    ];
    for (what, new) in kinds {
        assert_eq!(new("x".repeat(IDENTIFIER_BYTES_MAX)), Ok(()), "{what}");
        assert_eq!(
            new("x".repeat(IDENTIFIER_BYTES_MAX + 1)),
            Err(InvalidInput::TooLong {
                what,
                len: IDENTIFIER_BYTES_MAX + 1,
                max: IDENTIFIER_BYTES_MAX,
            })
        );
        assert_eq!(new(String::new()), Err(InvalidInput::Empty { what }));
        assert_eq!(
            new("a\u{1b}b".to_owned()),
            Err(InvalidInput::BadCharacter { what })
        );
        assert_eq!(
            new("a\nb".to_owned()),
            Err(InvalidInput::BadCharacter { what })
        );
    }
}

#[test]
fn an_agent_name_is_at_most_128_bytes() {
    assert!(AgentName::new("n".repeat(AGENT_NAME_BYTES_MAX)).is_ok());
    assert_eq!(
        AgentName::new("n".repeat(AGENT_NAME_BYTES_MAX + 1)),
        Err(InvalidInput::TooLong {
            what: "AI agent name",
            len: AGENT_NAME_BYTES_MAX + 1,
            max: AGENT_NAME_BYTES_MAX,
        })
    );
}

#[test]
fn a_message_is_at_most_64_kibibytes_counted_in_bytes() {
    assert!(MessageText::new("a".repeat(MESSAGE_BYTES_MAX)).is_ok());
    assert_eq!(
        MessageText::new("a".repeat(MESSAGE_BYTES_MAX + 1)),
        Err(InvalidInput::TooLong {
            what: "message",
            len: MESSAGE_BYTES_MAX + 1,
            max: MESSAGE_BYTES_MAX,
        })
    );
    // 21,846 three-byte characters are 65,538 bytes: over the limit in bytes, not in chars.
    let euros = "€".repeat(MESSAGE_BYTES_MAX / 3 + 1);
    assert_eq!(
        MessageText::new(euros.clone()),
        Err(InvalidInput::TooLong {
            what: "message",
            len: euros.len(),
            max: MESSAGE_BYTES_MAX,
        })
    );
    assert_eq!(
        MessageText::new(""),
        Err(InvalidInput::Empty { what: "message" })
    );
}

#[test]
fn a_reason_is_at_most_one_kibibyte_counted_in_bytes() {
    assert!(Reason::new("é".repeat(REASON_BYTES_MAX / 2)).is_ok());
    assert_eq!(
        Reason::new("é".repeat(REASON_BYTES_MAX / 2 + 1)),
        Err(InvalidInput::TooLong {
            what: "reason",
            len: REASON_BYTES_MAX + 2,
            max: REASON_BYTES_MAX,
        })
    );
    assert_eq!(
        Reason::new(" "),
        Err(InvalidInput::Empty { what: "reason" })
    );
    assert_eq!(
        Reason::new("a\u{0}"),
        Err(InvalidInput::BadCharacter { what: "reason" })
    );
}
