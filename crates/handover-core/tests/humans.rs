//! The rules humans, tenants, queues, assignment, authority and deadlines add, each accepted
//! and refused, driven through `decide` command by command.
//!
//! Every example runs in a [`Desk`]: tenant `t1` with AI agents `faq` ("FAQ Bot") and `sales`
//! ("Sales Bot") active, tenant `t2` with `rival` active; humans of `t1` registered through
//! `human::decide`: `ana` (agent, team billing, capacity 2, available), `carl` (agent, team
//! support, capacity 1, available), `bob` (supervisor, capacity 3, available), `dora` (agent,
//! billing, away), `olga` (agent, billing, offline), `rita` (agent, billing, removed); `zoe`
//! (agent of `t2`, billing, available); `nobody` is not registered. The clock starts at
//! [`T0`] and moves only when a test moves it. After every accepted command the desk checks
//! that the state `decide` returned is the fold of every event so far, each at its time.

use handover_core::{
    agent, conversation, human, AgentName, AiAgentCommand, AiAgentId, Assignment, Author, Channel,
    Conversation, ConversationCommand, ConversationEvent, Ctx, CustomerId, DefaultPolicy,
    Directory, Epoch, EscalationCause, Handler, HumanCommand, HumanEvent, HumanId, Language, Loads,
    MessageText, NoteAudience, NoticeKind, Participant, Presence, Reason, Rejection, Role, Roster,
    Settings, Skill, SkillData, SkillName, Sla, Status, SystemActor, TeamId, TenantId, Timestamp,
    TransferTarget, WaitCause, HUMAN_CAPACITY_MAX, TEAMS_COUNT_MAX,
};

// ---------------------------------------------------------------------------------------------
// The desk.
// ---------------------------------------------------------------------------------------------

/// Where every example starts: 1,000 s after the epoch.
const T0: Timestamp = Timestamp::from_millis(1_000_000);
const CUSTOMER: &str = "cust-1";

struct Desk {
    roster: Roster,
    directory: Directory,
    loads: Loads,
    settings: Settings,
    now: Timestamp,
    state: Conversation,
    history: Vec<(ConversationEvent, Timestamp)>,
}

fn tenant(id: &str) -> TenantId {
    TenantId::new(id).unwrap()
}

fn hid(id: &str) -> HumanId {
    HumanId::new(id).unwrap()
}

fn ai(id: &str) -> AiAgentId {
    AiAgentId::new(id).unwrap()
}

fn team(id: &str) -> TeamId {
    TeamId::new(id).unwrap()
}

fn name(value: &str) -> AgentName {
    AgentName::new(value).unwrap()
}

fn text(value: &str) -> MessageText {
    MessageText::new(value).unwrap()
}

fn reason(value: &str) -> Reason {
    Reason::new(value).unwrap()
}

fn customer() -> CustomerId {
    CustomerId::new(CUSTOMER).unwrap()
}

fn lang(tag: &str) -> Language {
    Language::new(tag).unwrap()
}

/// "Ana" for `ana`.
fn display(id: &str) -> AgentName {
    let mut chars = id.chars();
    let first = chars.next().unwrap().to_ascii_uppercase();
    name(&format!("{first}{}", chars.as_str()))
}

fn register(tenant_id: &str, role: Role, teams: &[&str], capacity: u32, id: &str) -> HumanCommand {
    HumanCommand::Register {
        tenant: tenant(tenant_id),
        name: display(id),
        role,
        teams: teams.iter().map(|t| team(t)).collect(),
        capacity,
    }
}

/// Applies a command to a human's registration through `human::decide`, which must accept it.
fn human_command(directory: &mut Directory, id: &str, command: HumanCommand) {
    let id = hid(id);
    for event in human::decide(&id, directory.get(&id), &command).unwrap() {
        directory.evolve(&event).unwrap();
    }
}

/// A human of the desk: id, tenant, role, teams, capacity, and presence (`None`: offline, as
/// registered).
type HumanSpec = (
    &'static str,
    &'static str,
    Role,
    &'static [&'static str],
    u32,
    Option<Presence>,
);

impl Desk {
    fn new() -> Desk {
        let mut roster = Roster::default();
        for (id, agent_name, tenant_id) in [
            ("faq", "FAQ Bot", "t1"),
            ("sales", "Sales Bot", "t1"),
            ("rival", "Rival Bot", "t2"),
        ] {
            for command in [
                AiAgentCommand::RegisterIn {
                    tenant: tenant(tenant_id),
                    name: name(agent_name),
                    specialties: vec![],
                },
                AiAgentCommand::Activate,
            ] {
                for event in agent::decide(&ai(id), roster.get(&ai(id)), &command).unwrap() {
                    roster.evolve(&event).unwrap();
                }
            }
        }
        let mut directory = Directory::default();
        let humans: [HumanSpec; 7] = [
            (
                "ana",
                "t1",
                Role::Agent,
                &["billing"],
                2,
                Some(Presence::Available),
            ),
            (
                "carl",
                "t1",
                Role::Agent,
                &["support"],
                1,
                Some(Presence::Available),
            ),
            (
                "bob",
                "t1",
                Role::Supervisor,
                &[],
                3,
                Some(Presence::Available),
            ),
            (
                "dora",
                "t1",
                Role::Agent,
                &["billing"],
                2,
                Some(Presence::Away),
            ),
            ("olga", "t1", Role::Agent, &["billing"], 2, None),
            (
                "rita",
                "t1",
                Role::Agent,
                &["billing"],
                2,
                Some(Presence::Available),
            ),
            (
                "zoe",
                "t2",
                Role::Agent,
                &["billing"],
                2,
                Some(Presence::Available),
            ),
        ];
        for (id, tenant_id, role, teams, capacity, presence) in humans {
            human_command(
                &mut directory,
                id,
                register(tenant_id, role, teams, capacity, id),
            );
            if let Some(presence) = presence {
                human_command(&mut directory, id, HumanCommand::SetPresence { presence });
            }
        }
        human_command(&mut directory, "rita", HumanCommand::Remove);
        Desk {
            roster,
            directory,
            loads: Loads::new(),
            settings: Settings::default(),
            now: T0,
            state: Conversation::NotOpened,
            history: Vec::new(),
        }
    }

    /// A desk whose conversation was started in `t1` in `team`'s queue (or the general one),
    /// in `language`, given to `human` if named.
    fn started(team_id: Option<&str>, language: Option<&str>, human: Option<&str>) -> Desk {
        let mut desk = Desk::new();
        desk.ok(start(team_id, language, human));
        desk
    }

    /// A conversation given to `ana` at the start.
    fn with_ana() -> Desk {
        Desk::started(None, None, Some("ana"))
    }

    /// Given to `ana`, then handed by her to `faq` (epoch 1).
    fn ai_active() -> Desk {
        let mut desk = Desk::with_ana();
        desk.ok(hand_off("ana", "faq"));
        desk
    }

    fn decide(
        &mut self,
        command: &ConversationCommand,
    ) -> Result<Vec<ConversationEvent>, Rejection> {
        let policy = DefaultPolicy::default();
        let ctx = Ctx::new(&self.roster, &policy)
            .with_directory(&self.directory)
            .with_loads(&self.loads)
            .with_settings(&self.settings)
            .at(self.now);
        let (events, next) = conversation::decide_with_state(&self.state, command, &ctx)?;
        self.history
            .extend(events.iter().cloned().map(|e| (e, self.now)));
        let folded = self
            .history
            .iter()
            .try_fold(Conversation::NotOpened, |state, (event, at)| {
                conversation::evolve_at(state, event, Some(*at))
            })
            .expect("the accepted history folds");
        assert_eq!(next, folded, "the state decide returned is not the fold");
        self.state = next;
        Ok(events)
    }

    /// Decides `command`, which must be accepted.
    #[track_caller]
    fn ok(&mut self, command: ConversationCommand) -> Vec<ConversationEvent> {
        self.decide(&command)
            .unwrap_or_else(|r| panic!("{command:?} was rejected: {r:?}"))
    }

    /// Decides `command`, which must be rejected, leaving everything as it was.
    #[track_caller]
    fn no(&mut self, command: ConversationCommand) -> Rejection {
        let before = (self.state.clone(), self.history.len());
        match self.decide(&command) {
            Ok(events) => panic!("{command:?} was accepted: {events:?}"),
            Err(rejection) => {
                assert_eq!((self.state.clone(), self.history.len()), before);
                assert!(rejection.to_string().len() > 10, "{rejection}");
                rejection
            }
        }
    }

    /// The clock moves on by `ms` milliseconds.
    fn wait(&mut self, ms: u64) {
        self.now = self.now.plus_millis(ms);
    }

    fn presence(&mut self, id: &str, presence: Presence) {
        human_command(
            &mut self.directory,
            id,
            HumanCommand::SetPresence { presence },
        );
    }

    fn open(&self) -> &handover_core::OpenConversation {
        match &self.state {
            Conversation::Open(open) => open,
            other => panic!("not open: {other:?}"),
        }
    }

    fn status(&self) -> Status {
        self.state.status()
    }

    fn next_deadline(&self) -> Option<Timestamp> {
        conversation::next_deadline(&self.state, &self.settings)
    }
}

// ---------------------------------------------------------------------------------------------
// Commands and events.
// ---------------------------------------------------------------------------------------------

fn start(
    team_id: Option<&str>,
    language: Option<&str>,
    human: Option<&str>,
) -> ConversationCommand {
    ConversationCommand::Start {
        tenant: tenant("t1"),
        customer: customer(),
        channel: Channel::new("whatsapp").unwrap(),
        team: team_id.map(team),
        language: language.map(lang),
        human: human.map(hid),
    }
}

fn by(id: &str) -> Participant {
    Participant::Human(hid(id))
}

fn router() -> Participant {
    Participant::System(SystemActor::Router)
}

fn post_customer(message: &str) -> ConversationCommand {
    ConversationCommand::PostMessage {
        by: Participant::Customer(customer()),
        text: text(message),
    }
}

fn post_human(who: &str, message: &str) -> ConversationCommand {
    ConversationCommand::PostMessage {
        by: by(who),
        text: text(message),
    }
}

fn assignment(agent: &str, epoch: u64) -> Assignment {
    Assignment {
        agent_id: ai(agent),
        epoch: Epoch(epoch),
    }
}

fn post_ai(agent: &str, epoch: u64, message: &str) -> ConversationCommand {
    ConversationCommand::PostMessage {
        by: Participant::Ai(assignment(agent, epoch)),
        text: text(message),
    }
}

fn hand_off(who: &str, agent: &str) -> ConversationCommand {
    ConversationCommand::HandOffToAi {
        by: hid(who),
        agent_id: ai(agent),
        reason: None,
    }
}

fn reclaim(who: &str) -> ConversationCommand {
    ConversationCommand::Reclaim {
        by: hid(who),
        reason: None,
    }
}

fn close(who: Participant) -> ConversationCommand {
    ConversationCommand::Close {
        by: who,
        reason: None,
    }
}

fn assign(who: Participant, to: &str) -> ConversationCommand {
    ConversationCommand::Assign {
        by: who,
        to: hid(to),
    }
}

fn accept(who: &str) -> ConversationCommand {
    ConversationCommand::Accept { by: hid(who) }
}

fn transfer_to(who: &str, to: &str) -> ConversationCommand {
    ConversationCommand::Transfer {
        by: hid(who),
        to: TransferTarget::Human(hid(to)),
        reason: reason("better placed"),
    }
}

fn transfer_to_team(who: &str, to: &str) -> ConversationCommand {
    ConversationCommand::Transfer {
        by: hid(who),
        to: TransferTarget::Team(team(to)),
        reason: reason("their queue"),
    }
}

fn requeue(who: &str) -> ConversationCommand {
    ConversationCommand::Requeue { human: hid(who) }
}

fn whisper(who: &str, to: NoteAudience) -> ConversationCommand {
    ConversationCommand::Whisper {
        by: hid(who),
        to,
        text: text("check the invoice first"),
    }
}

fn raise(who: Participant) -> ConversationCommand {
    ConversationCommand::RaiseFlag { by: who }
}

fn lower(who: &str) -> ConversationCommand {
    ConversationCommand::LowerFlag { by: hid(who) }
}

fn tick() -> ConversationCommand {
    ConversationCommand::Tick
}

fn started_event(
    team_id: Option<&str>,
    language: Option<&str>,
    at: Timestamp,
) -> ConversationEvent {
    ConversationEvent::Started {
        tenant: tenant("t1"),
        customer: customer(),
        channel: Channel::new("whatsapp").unwrap(),
        team: team_id.map(team),
        language: language.map(lang),
        at,
    }
}

fn notice(kind: NoticeKind, message: &str, language: &str) -> ConversationEvent {
    ConversationEvent::CustomerNotice {
        kind,
        text: text(message),
        language: lang(language),
    }
}

fn waiting_en() -> ConversationEvent {
    notice(
        NoticeKind::WaitingForPerson,
        "Please wait: a person will be with you shortly.",
        "en",
    )
}

fn joined_en(who: &str) -> ConversationEvent {
    notice(
        NoticeKind::PersonJoined,
        &format!("{} has joined the conversation.", display(who)),
        "en",
    )
}

fn assigned_event(
    who: &str,
    team_id: Option<&str>,
    author: Author,
    at: Timestamp,
) -> ConversationEvent {
    ConversationEvent::HumanAssigned {
        human_id: hid(who),
        name: display(who),
        team: team_id.map(team),
        by: author,
        at,
    }
}

fn assigned_status(who: &str) -> Status {
    Status::Assigned {
        human: hid(who),
        name: display(who),
    }
}

fn awaiting_status(team_id: Option<&str>, since: Timestamp, cause: WaitCause) -> Status {
    Status::AwaitingHuman {
        team: team_id.map(team),
        since,
        cause,
    }
}

fn kinds(events: &[ConversationEvent]) -> Vec<&'static str> {
    events.iter().map(ConversationEvent::type_name).collect()
}

fn unknown_human(id: &str) -> Rejection {
    Rejection::UnknownHuman { human_id: hid(id) }
}

fn not_assigned_to_you(id: &str) -> Rejection {
    Rejection::NotAssignedToYou { human_id: hid(id) }
}

fn not_a_supervisor(id: &str) -> Rejection {
    Rejection::NotASupervisor { human_id: hid(id) }
}

fn faq_active() -> Rejection {
    Rejection::AiActive {
        agent_id: ai("faq"),
        agent_name: name("FAQ Bot"),
    }
}

// ---------------------------------------------------------------------------------------------
// Human registration.
// ---------------------------------------------------------------------------------------------

#[test]
fn a_registered_human_starts_offline_with_sorted_distinct_teams() {
    let id = hid("ana");
    let command = register(
        "t1",
        Role::Agent,
        &["support", "billing", "support"],
        2,
        "ana",
    );
    let events = human::decide(&id, None, &command).unwrap();
    assert_eq!(
        events,
        vec![HumanEvent::Registered {
            human_id: id.clone(),
            tenant: tenant("t1"),
            name: name("Ana"),
            role: Role::Agent,
            teams: vec![team("billing"), team("support")],
            capacity: 2,
        }]
    );
    let mut directory = Directory::default();
    directory.evolve(&events[0]).unwrap();
    let ana = directory.get(&id).unwrap();
    assert_eq!(ana.presence, Presence::Offline);
    assert!(!ana.removed && !ana.is_supervisor());
    assert!(ana.in_team(&team("billing")) && !ana.in_team(&team("sales")));
}

#[test]
fn registering_twice_is_already_registered() {
    let desk = Desk::new();
    let id = hid("ana");
    let again = register("t1", Role::Agent, &[], 1, "ana");
    assert_eq!(
        human::decide(&id, desk.directory.get(&id), &again),
        Err(Rejection::HumanAlreadyRegistered {
            human_id: id.clone()
        })
    );
    // A removed human's id stays taken.
    let rita = hid("rita");
    assert_eq!(
        human::decide(&rita, desk.directory.get(&rita), &again),
        Err(Rejection::HumanAlreadyRegistered { human_id: rita })
    );
    // Folding a second registration is refused too.
    let mut directory = desk.directory.clone();
    let registered = human::decide(&hid("new"), None, &again).unwrap();
    directory.evolve(&registered[0]).unwrap();
    assert_eq!(
        directory.evolve(&registered[0]),
        Err(Rejection::HumanAlreadyRegistered {
            human_id: hid("new")
        })
    );
}

#[test]
fn a_human_belongs_to_at_most_the_most_teams() {
    let teams: Vec<String> = (0..=TEAMS_COUNT_MAX)
        .map(|i| format!("team-{i:02}"))
        .collect();
    let teams: Vec<&str> = teams.iter().map(String::as_str).collect();
    let id = hid("ana");
    assert!(human::decide(
        &id,
        None,
        &register("t1", Role::Agent, &teams[..TEAMS_COUNT_MAX], 1, "ana")
    )
    .is_ok());
    assert_eq!(
        human::decide(&id, None, &register("t1", Role::Agent, &teams, 1, "ana")),
        Err(Rejection::TooManyTeams {
            len: TEAMS_COUNT_MAX + 1,
            max: TEAMS_COUNT_MAX,
        })
    );
}

#[test]
fn a_capacity_is_between_one_and_the_most() {
    let id = hid("ana");
    for capacity in [0, HUMAN_CAPACITY_MAX + 1, u32::MAX] {
        assert_eq!(
            human::decide(
                &id,
                None,
                &register("t1", Role::Agent, &[], capacity, "ana")
            ),
            Err(Rejection::CapacityOutOfRange {
                capacity,
                max: HUMAN_CAPACITY_MAX,
            })
        );
    }
    for capacity in [1, HUMAN_CAPACITY_MAX] {
        assert!(human::decide(
            &id,
            None,
            &register("t1", Role::Agent, &[], capacity, "ana")
        )
        .is_ok());
    }
}

#[test]
fn presence_changes_are_events_and_an_unchanged_presence_is_refused() {
    let mut directory = Directory::default();
    human_command(
        &mut directory,
        "ana",
        register("t1", Role::Agent, &[], 1, "ana"),
    );
    let id = hid("ana");
    let set = |presence| HumanCommand::SetPresence { presence };
    assert_eq!(
        human::decide(&id, directory.get(&id), &set(Presence::Offline)),
        Err(Rejection::PresenceUnchanged {
            human_id: id.clone(),
            presence: Presence::Offline,
        })
    );
    for presence in [Presence::Available, Presence::Away, Presence::Offline] {
        let events = human::decide(&id, directory.get(&id), &set(presence)).unwrap();
        assert_eq!(
            events,
            vec![HumanEvent::PresenceChanged {
                human_id: id.clone(),
                presence,
            }]
        );
        directory.evolve(&events[0]).unwrap();
        assert_eq!(directory.get(&id).unwrap().presence, presence);
        assert_eq!(
            human::decide(&id, directory.get(&id), &set(presence)),
            Err(Rejection::PresenceUnchanged {
                human_id: id.clone(),
                presence,
            })
        );
    }
}

#[test]
fn an_unregistered_human_has_no_presence_and_cannot_be_removed() {
    let id = hid("nobody");
    for command in [
        HumanCommand::SetPresence {
            presence: Presence::Available,
        },
        HumanCommand::Remove,
    ] {
        assert_eq!(
            human::decide(&id, None, &command),
            Err(Rejection::UnknownHuman {
                human_id: id.clone()
            })
        );
    }
}

#[test]
fn a_removed_human_is_kept_offline_and_may_no_longer_change() {
    let desk = Desk::new();
    let id = hid("rita");
    let rita = desk.directory.get(&id).unwrap();
    assert!(rita.removed);
    assert_eq!(rita.presence, Presence::Offline);
    assert_eq!(rita.profile.name, name("Rita"));
    for command in [
        HumanCommand::SetPresence {
            presence: Presence::Available,
        },
        HumanCommand::Remove,
    ] {
        assert_eq!(
            human::decide(&id, Some(rita), &command),
            Err(Rejection::HumanRemoved {
                human_id: id.clone()
            })
        );
    }
    let mut directory = desk.directory.clone();
    assert_eq!(
        directory.evolve(&HumanEvent::PresenceChanged {
            human_id: id.clone(),
            presence: Presence::Available,
        }),
        Err(Rejection::HumanRemoved {
            human_id: id.clone()
        })
    );
    // The tenant's list leaves removed humans and other tenants out; `all` keeps everyone.
    let t1: Vec<String> = desk
        .directory
        .of_tenant(&tenant("t1"))
        .map(|h| h.profile.id.to_string())
        .collect();
    assert_eq!(t1, vec!["ana", "bob", "carl", "dora", "olga"]);
    assert_eq!(desk.directory.all().count(), 7);
}

#[test]
fn a_removed_human_may_not_act_on_a_conversation_nor_be_given_one() {
    let mut desk = Desk::with_ana();
    assert_eq!(
        desk.no(post_human("rita", "hello")),
        Rejection::HumanRemoved {
            human_id: hid("rita")
        }
    );
    assert_eq!(
        desk.no(assign(by("bob"), "rita")),
        Rejection::HumanRemoved {
            human_id: hid("rita")
        }
    );
    let mut fresh = Desk::new();
    assert_eq!(
        fresh.no(start(None, None, Some("rita"))),
        Rejection::HumanRemoved {
            human_id: hid("rita")
        }
    );
}

// ---------------------------------------------------------------------------------------------
// Start.
// ---------------------------------------------------------------------------------------------

#[test]
fn started_without_a_human_it_waits_in_its_teams_queue_and_the_customer_is_told() {
    let mut desk = Desk::new();
    let events = desk.ok(start(Some("billing"), None, None));
    assert_eq!(
        events,
        vec![
            started_event(Some("billing"), None, T0),
            ConversationEvent::AwaitingHuman {
                team: Some(team("billing")),
                cause: WaitCause::Opened,
                since: T0,
            },
            waiting_en(),
        ]
    );
    assert_eq!(
        desk.status(),
        awaiting_status(Some("billing"), T0, WaitCause::Opened)
    );
    assert_eq!(desk.state.tenant(), Some(&tenant("t1")));
    assert_eq!(desk.open().opened_at, Some(T0));
}

#[test]
fn started_with_a_human_it_is_theirs_at_once() {
    let mut desk = Desk::new();
    let events = desk.ok(start(Some("billing"), None, Some("ana")));
    assert_eq!(
        events,
        vec![
            started_event(Some("billing"), None, T0),
            assigned_event("ana", None, Author::System(SystemActor::Backend), T0),
        ]
    );
    assert_eq!(desk.status(), assigned_status("ana"));
    assert_eq!(desk.open().human, Some(hid("ana")));
}

#[test]
fn a_human_who_is_away_may_be_given_a_conversation_at_the_start() {
    let mut desk = Desk::new();
    desk.ok(start(None, None, Some("dora")));
    assert_eq!(desk.status(), assigned_status("dora"));
}

#[test]
fn started_with_a_human_who_cannot_take_it_is_refused() {
    for (who, rejection) in [
        ("nobody", unknown_human("nobody")),
        // A human of another tenant is as unknown as one never registered.
        ("zoe", unknown_human("zoe")),
        (
            "olga",
            Rejection::HumanOffline {
                human_id: hid("olga"),
            },
        ),
        (
            "rita",
            Rejection::HumanRemoved {
                human_id: hid("rita"),
            },
        ),
    ] {
        let mut desk = Desk::new();
        assert_eq!(desk.no(start(None, None, Some(who))), rejection, "{who}");
        assert_eq!(desk.state, Conversation::NotOpened);
    }
}

#[test]
fn starting_twice_is_already_opened_and_after_the_close_closed() {
    let mut desk = Desk::with_ana();
    assert_eq!(desk.no(start(None, None, None)), Rejection::AlreadyOpened);
    desk.ok(close(by("ana")));
    assert_eq!(desk.no(start(None, None, None)), Rejection::Closed);
}

// ---------------------------------------------------------------------------------------------
// Assign.
// ---------------------------------------------------------------------------------------------

#[test]
fn a_supervisor_assigns_a_waiting_conversation() {
    let mut desk = Desk::started(Some("billing"), None, None);
    let events = desk.ok(assign(by("bob"), "ana"));
    assert_eq!(
        events,
        vec![
            assigned_event("ana", Some("billing"), Author::Human(hid("bob")), T0),
            joined_en("ana"),
        ]
    );
    assert_eq!(desk.status(), assigned_status("ana"));
}

#[test]
fn a_supervisor_reassigns_even_to_someone_away_or_at_capacity() {
    let mut desk = Desk::with_ana();
    desk.ok(assign(by("bob"), "dora"));
    assert_eq!(desk.status(), assigned_status("dora"));
    desk.loads.set(hid("carl"), 1);
    desk.ok(assign(by("bob"), "carl"));
    assert_eq!(desk.status(), assigned_status("carl"));
}

#[test]
fn an_agent_may_not_assign() {
    let mut desk = Desk::started(None, None, None);
    assert_eq!(desk.no(assign(by("ana"), "carl")), not_a_supervisor("ana"));
    // Not even to themselves, nor once the conversation is theirs.
    assert_eq!(desk.no(assign(by("ana"), "ana")), not_a_supervisor("ana"));
    let mut mine = Desk::with_ana();
    assert_eq!(mine.no(assign(by("ana"), "carl")), not_a_supervisor("ana"));
}

#[test]
fn the_router_assigns_a_waiting_conversation_to_someone_available_below_capacity() {
    let mut desk = Desk::started(Some("billing"), None, None);
    desk.loads.set(hid("ana"), 1);
    let events = desk.ok(assign(router(), "ana"));
    assert_eq!(
        events,
        vec![
            assigned_event(
                "ana",
                Some("billing"),
                Author::System(SystemActor::Router),
                T0
            ),
            joined_en("ana"),
        ]
    );
}

#[test]
fn the_router_never_assigns_someone_away_offline_or_at_capacity() {
    let mut desk = Desk::started(Some("billing"), None, None);
    assert_eq!(
        desk.no(assign(router(), "dora")),
        Rejection::HumanUnavailable {
            human_id: hid("dora")
        }
    );
    assert_eq!(
        desk.no(assign(router(), "olga")),
        Rejection::HumanOffline {
            human_id: hid("olga")
        }
    );
    desk.loads.set(hid("ana"), 2);
    assert_eq!(
        desk.no(assign(router(), "ana")),
        Rejection::HumanAtCapacity {
            human_id: hid("ana"),
            load: 2,
            capacity: 2,
        }
    );
    desk.loads.set(hid("ana"), 7);
    assert_eq!(
        desk.no(assign(router(), "ana")),
        Rejection::HumanAtCapacity {
            human_id: hid("ana"),
            load: 7,
            capacity: 2,
        }
    );
    assert_eq!(desk.no(assign(router(), "zoe")), unknown_human("zoe"));
    assert_eq!(desk.no(assign(router(), "nobody")), unknown_human("nobody"));
}

#[test]
fn the_router_assigns_only_what_waits() {
    let mut desk = Desk::with_ana();
    assert_eq!(
        desk.no(assign(router(), "carl")),
        Rejection::NotAwaitingHuman
    );
}

#[test]
fn only_a_supervisor_or_the_router_may_assign() {
    let mut desk = Desk::started(None, None, None);
    for (who, participant) in [
        (Participant::Customer(customer()), "customer"),
        (Participant::Ai(assignment("faq", 1)), "AI agent"),
        (Participant::System(SystemActor::Clock), "system"),
        (Participant::System(SystemActor::Backend), "system"),
    ] {
        assert_eq!(
            desk.no(assign(who, "ana")),
            Rejection::ParticipantNotAllowed {
                participant,
                action: "assign",
            }
        );
    }
}

#[test]
fn an_ai_active_conversation_is_not_assigned_until_reclaimed() {
    let mut desk = Desk::ai_active();
    assert_eq!(desk.no(assign(by("bob"), "carl")), faq_active());
    assert_eq!(desk.no(assign(router(), "carl")), faq_active());
}

#[test]
fn assigning_to_the_human_who_has_it_is_already_assigned() {
    let mut desk = Desk::with_ana();
    assert_eq!(
        desk.no(assign(by("bob"), "ana")),
        Rejection::AlreadyAssignedTo {
            human_id: hid("ana")
        }
    );
    desk.ok(hand_off("ana", "faq"));
    desk.ok(reclaim("bob"));
    assert_eq!(
        desk.no(assign(by("bob"), "bob")),
        Rejection::AlreadyAssignedTo {
            human_id: hid("bob")
        }
    );
}

// ---------------------------------------------------------------------------------------------
// Accept.
// ---------------------------------------------------------------------------------------------

#[test]
fn a_team_member_accepts_from_their_teams_queue() {
    let mut desk = Desk::started(Some("billing"), None, None);
    desk.wait(5_000);
    let events = desk.ok(accept("ana"));
    assert_eq!(
        events,
        vec![
            assigned_event(
                "ana",
                Some("billing"),
                Author::Human(hid("ana")),
                T0.plus_millis(5_000)
            ),
            joined_en("ana"),
        ]
    );
    assert_eq!(desk.status(), assigned_status("ana"));
}

#[test]
fn an_agent_of_another_team_may_not_accept() {
    let mut desk = Desk::started(Some("billing"), None, None);
    assert_eq!(
        desk.no(accept("carl")),
        Rejection::NotInTeam {
            human_id: hid("carl"),
            team: team("billing"),
        }
    );
}

#[test]
fn a_supervisor_accepts_from_any_queue() {
    let mut desk = Desk::started(Some("billing"), None, None);
    desk.ok(accept("bob"));
    assert_eq!(desk.status(), assigned_status("bob"));
}

#[test]
fn any_agent_of_the_tenant_accepts_from_the_general_queue() {
    let mut desk = Desk::started(None, None, None);
    desk.ok(accept("carl"));
    assert_eq!(desk.status(), assigned_status("carl"));
}

#[test]
fn accepting_at_capacity_is_refused() {
    let mut desk = Desk::started(None, None, None);
    desk.loads.set(hid("carl"), 1);
    assert_eq!(
        desk.no(accept("carl")),
        Rejection::HumanAtCapacity {
            human_id: hid("carl"),
            load: 1,
            capacity: 1,
        }
    );
    desk.loads.set(hid("bob"), 3);
    assert_eq!(
        desk.no(accept("bob")),
        Rejection::HumanAtCapacity {
            human_id: hid("bob"),
            load: 3,
            capacity: 3,
        }
    );
}

#[test]
fn accepting_what_does_not_wait_is_refused() {
    let mut desk = Desk::with_ana();
    assert_eq!(desk.no(accept("ana")), Rejection::NotAwaitingHuman);
    assert_eq!(desk.no(accept("bob")), Rejection::NotAwaitingHuman);
    desk.ok(hand_off("ana", "faq"));
    assert_eq!(desk.no(accept("bob")), Rejection::NotAwaitingHuman);
}

#[test]
fn an_offline_or_unknown_human_may_not_accept() {
    let mut desk = Desk::started(Some("billing"), None, None);
    assert_eq!(
        desk.no(accept("olga")),
        Rejection::HumanOffline {
            human_id: hid("olga")
        }
    );
    assert_eq!(desk.no(accept("nobody")), unknown_human("nobody"));
    assert_eq!(desk.no(accept("zoe")), Rejection::NotOpened);
}

// ---------------------------------------------------------------------------------------------
// Transfer.
// ---------------------------------------------------------------------------------------------

#[test]
fn the_assigned_agent_transfers_to_another_human() {
    let mut desk = Desk::started(Some("billing"), None, Some("ana"));
    let events = desk.ok(transfer_to("ana", "carl"));
    assert_eq!(
        events,
        vec![
            ConversationEvent::Transferred {
                to: TransferTarget::Human(hid("carl")),
                reason: reason("better placed"),
                by: Author::Human(hid("ana")),
                at: T0,
            },
            assigned_event("carl", Some("billing"), Author::Human(hid("ana")), T0),
            joined_en("carl"),
        ]
    );
    assert_eq!(desk.status(), assigned_status("carl"));
    // It is no longer hers.
    assert_eq!(desk.no(post_human("ana", "hi")), not_assigned_to_you("ana"));
}

#[test]
fn the_assigned_agent_transfers_to_a_teams_queue() {
    let mut desk = Desk::started(Some("billing"), None, Some("ana"));
    desk.wait(1_000);
    let at = T0.plus_millis(1_000);
    let events = desk.ok(transfer_to_team("ana", "support"));
    assert_eq!(
        events,
        vec![
            ConversationEvent::Transferred {
                to: TransferTarget::Team(team("support")),
                reason: reason("their queue"),
                by: Author::Human(hid("ana")),
                at,
            },
            ConversationEvent::AwaitingHuman {
                team: Some(team("support")),
                cause: WaitCause::Transferred,
                since: at,
            },
            waiting_en(),
        ]
    );
    assert_eq!(
        desk.status(),
        awaiting_status(Some("support"), at, WaitCause::Transferred)
    );
    assert_eq!(desk.open().team, Some(team("support")));
    // Now support's agent may accept it, billing's may not.
    assert_eq!(
        desk.no(accept("ana")),
        Rejection::NotInTeam {
            human_id: hid("ana"),
            team: team("support"),
        }
    );
    desk.ok(accept("carl"));
}

#[test]
fn an_agent_who_does_not_have_it_may_not_transfer() {
    let mut desk = Desk::with_ana();
    assert_eq!(
        desk.no(transfer_to("carl", "carl")),
        not_assigned_to_you("carl")
    );
    assert_eq!(
        desk.no(transfer_to_team("carl", "support")),
        not_assigned_to_you("carl")
    );
    let mut waiting = Desk::started(None, None, None);
    assert_eq!(
        waiting.no(transfer_to_team("ana", "support")),
        not_assigned_to_you("ana")
    );
}

#[test]
fn a_supervisor_transfers_any_conversation_of_the_tenant() {
    let mut desk = Desk::with_ana();
    desk.ok(transfer_to("bob", "carl"));
    assert_eq!(desk.status(), assigned_status("carl"));
    desk.ok(transfer_to_team("bob", "billing"));
    let mut waiting = Desk::started(Some("billing"), None, None);
    waiting.ok(transfer_to("bob", "dora"));
    assert_eq!(waiting.status(), assigned_status("dora"));
}

#[test]
fn a_transfer_to_the_human_who_has_it_or_who_cannot_take_it_is_refused() {
    let mut desk = Desk::with_ana();
    assert_eq!(
        desk.no(transfer_to("ana", "ana")),
        Rejection::AlreadyAssignedTo {
            human_id: hid("ana")
        }
    );
    assert_eq!(
        desk.no(transfer_to("ana", "olga")),
        Rejection::HumanOffline {
            human_id: hid("olga")
        }
    );
    assert_eq!(desk.no(transfer_to("ana", "zoe")), unknown_human("zoe"));
    assert_eq!(
        desk.no(transfer_to("ana", "nobody")),
        unknown_human("nobody")
    );
    assert_eq!(
        desk.no(transfer_to("ana", "rita")),
        Rejection::HumanRemoved {
            human_id: hid("rita")
        }
    );
}

#[test]
fn an_ai_active_conversation_is_not_transferred() {
    let mut desk = Desk::ai_active();
    assert_eq!(desk.no(transfer_to("ana", "carl")), faq_active());
    assert_eq!(desk.no(transfer_to_team("bob", "billing")), faq_active());
}

// ---------------------------------------------------------------------------------------------
// Requeue.
// ---------------------------------------------------------------------------------------------

#[test]
fn the_conversation_of_a_human_who_went_offline_goes_back_to_its_queue() {
    let mut desk = Desk::started(Some("billing"), None, Some("ana"));
    desk.presence("ana", Presence::Offline);
    desk.wait(2_000);
    let at = T0.plus_millis(2_000);
    let events = desk.ok(requeue("ana"));
    assert_eq!(
        events,
        vec![
            ConversationEvent::AwaitingHuman {
                team: Some(team("billing")),
                cause: WaitCause::HumanOffline,
                since: at,
            },
            waiting_en(),
        ]
    );
    assert_eq!(
        desk.status(),
        awaiting_status(Some("billing"), at, WaitCause::HumanOffline)
    );
}

#[test]
fn the_conversation_of_a_removed_or_unregistered_human_goes_back_as_removed() {
    let mut desk = Desk::with_ana();
    human_command(&mut desk.directory, "ana", HumanCommand::Remove);
    let events = desk.ok(requeue("ana"));
    assert_eq!(kinds(&events), vec!["awaiting_human", "customer_notice"]);
    assert_eq!(
        desk.status(),
        awaiting_status(None, T0, WaitCause::HumanRemoved)
    );
    // A human the directory no longer knows at all counts as removed.
    let mut desk = Desk::with_ana();
    desk.directory = Directory::default();
    desk.ok(requeue("ana"));
    assert_eq!(
        desk.status(),
        awaiting_status(None, T0, WaitCause::HumanRemoved)
    );
}

#[test]
fn a_reclaimed_conversation_is_requeued_when_its_human_goes_offline() {
    let mut desk = Desk::ai_active();
    desk.ok(reclaim("bob"));
    desk.presence("bob", Presence::Offline);
    desk.ok(requeue("bob"));
    assert_eq!(
        desk.status(),
        awaiting_status(None, T0, WaitCause::HumanOffline)
    );
}

#[test]
fn the_conversation_of_a_human_still_signed_in_stays_with_them() {
    let mut desk = Desk::with_ana();
    assert_eq!(
        desk.no(requeue("ana")),
        Rejection::HumanStillSignedIn {
            human_id: hid("ana")
        }
    );
    desk.presence("ana", Presence::Away);
    assert_eq!(
        desk.no(requeue("ana")),
        Rejection::HumanStillSignedIn {
            human_id: hid("ana")
        }
    );
}

#[test]
fn requeueing_for_a_human_who_does_not_handle_it_is_refused() {
    let mut desk = Desk::with_ana();
    assert_eq!(
        desk.no(requeue("olga")),
        Rejection::NotHandledBy {
            human_id: hid("olga")
        }
    );
    // While the AI holds it, nobody handles it, not even the one who handed it off.
    let mut desk = Desk::ai_active();
    desk.presence("ana", Presence::Offline);
    assert_eq!(
        desk.no(requeue("ana")),
        Rejection::NotHandledBy {
            human_id: hid("ana")
        }
    );
    let mut waiting = Desk::started(None, None, None);
    assert_eq!(
        waiting.no(requeue("olga")),
        Rejection::NotHandledBy {
            human_id: hid("olga")
        }
    );
}

// ---------------------------------------------------------------------------------------------
// Whisper.
// ---------------------------------------------------------------------------------------------

#[test]
fn the_assigned_human_and_a_supervisor_write_notes_for_staff() {
    let mut desk = Desk::with_ana();
    for who in ["ana", "bob"] {
        let events = desk.ok(whisper(who, NoteAudience::Staff));
        assert_eq!(
            events,
            vec![ConversationEvent::InternalNote {
                to: NoteAudience::Staff,
                text: text("check the invoice first"),
                by: Author::Human(hid(who)),
                at: T0,
            }]
        );
    }
    assert_eq!(
        desk.no(whisper("carl", NoteAudience::Staff)),
        not_assigned_to_you("carl")
    );
}

#[test]
fn guidance_for_the_ai_only_while_an_ai_agent_holds_it() {
    let mut desk = Desk::with_ana();
    assert_eq!(
        desk.no(whisper("ana", NoteAudience::Ai)),
        Rejection::NotAiActive
    );
    desk.ok(hand_off("ana", "faq"));
    // The human who handed it off, and a supervisor, guide the AI; nobody else.
    desk.ok(whisper("ana", NoteAudience::Ai));
    desk.ok(whisper("bob", NoteAudience::Ai));
    assert_eq!(
        desk.no(whisper("carl", NoteAudience::Ai)),
        not_assigned_to_you("carl")
    );
    // A note is never a message: the AI still holds the conversation.
    assert_eq!(desk.state.assignment(), Some(assignment("faq", 1)));
}

// ---------------------------------------------------------------------------------------------
// Flags.
// ---------------------------------------------------------------------------------------------

#[test]
fn the_assigned_human_raises_the_flag_once_and_a_supervisor_lowers_it() {
    let mut desk = Desk::with_ana();
    assert_eq!(
        desk.ok(raise(by("ana"))),
        vec![ConversationEvent::FlagRaised {
            by: Author::Human(hid("ana")),
            at: T0,
        }]
    );
    assert!(desk.open().flagged);
    assert_eq!(desk.no(raise(by("ana"))), Rejection::FlagAlreadyRaised);
    assert_eq!(desk.no(raise(by("bob"))), Rejection::FlagAlreadyRaised);
    // An agent may not lower it, not even the one who raised it.
    assert_eq!(desk.no(lower("ana")), not_a_supervisor("ana"));
    assert_eq!(
        desk.ok(lower("bob")),
        vec![ConversationEvent::FlagLowered {
            by: Author::Human(hid("bob")),
            at: T0,
        }]
    );
    assert!(!desk.open().flagged);
    assert_eq!(desk.no(lower("bob")), Rejection::FlagNotRaised);
    // Lowered, it may be raised again.
    desk.ok(raise(by("bob")));
}

#[test]
fn the_ai_agent_holding_it_raises_the_flag_and_no_other() {
    let mut desk = Desk::ai_active();
    assert_eq!(
        desk.no(raise(Participant::Ai(assignment("sales", 1)))),
        Rejection::NotAssigned {
            agent_id: ai("sales")
        }
    );
    assert_eq!(
        desk.ok(raise(Participant::Ai(assignment("faq", 1)))),
        vec![ConversationEvent::FlagRaised {
            by: Author::Ai(ai("faq")),
            at: T0,
        }]
    );
    desk.ok(lower("bob"));
    desk.ok(reclaim("ana"));
    assert_eq!(
        desk.no(raise(Participant::Ai(assignment("faq", 1)))),
        Rejection::AssignmentEnded {
            agent_id: ai("faq"),
            epoch: Epoch(1),
        }
    );
}

#[test]
fn neither_the_customer_nor_an_agent_who_does_not_have_it_raises_the_flag() {
    let mut desk = Desk::with_ana();
    assert_eq!(
        desk.no(raise(Participant::Customer(customer()))),
        Rejection::ParticipantNotAllowed {
            participant: "customer",
            action: "raise_flag",
        }
    );
    assert_eq!(
        desk.no(raise(router())),
        Rejection::ParticipantNotAllowed {
            participant: "system",
            action: "raise_flag",
        }
    );
    assert_eq!(desk.no(raise(by("carl"))), not_assigned_to_you("carl"));
}

// ---------------------------------------------------------------------------------------------
// Tick: SLA thresholds.
// ---------------------------------------------------------------------------------------------

fn sla_warning(
    team_id: Option<&str>,
    waited_ms: u64,
    threshold_ms: u64,
    at: Timestamp,
) -> ConversationEvent {
    ConversationEvent::SlaWarning {
        team: team_id.map(team),
        waited_ms,
        threshold_ms,
        at,
    }
}

fn sla_breached(
    team_id: Option<&str>,
    waited_ms: u64,
    threshold_ms: u64,
    at: Timestamp,
) -> ConversationEvent {
    ConversationEvent::SlaBreached {
        team: team_id.map(team),
        waited_ms,
        threshold_ms,
        at,
    }
}

#[test]
fn a_wait_records_its_sla_warning_and_breach_each_once() {
    let mut desk = Desk::started(None, None, None);
    assert_eq!(desk.next_deadline(), Some(T0.plus_millis(60_000)));
    desk.wait(59_999);
    assert_eq!(desk.ok(tick()), vec![]);
    desk.wait(1);
    let at = T0.plus_millis(60_000);
    assert_eq!(desk.ok(tick()), vec![sla_warning(None, 60_000, 60_000, at)]);
    assert!(desk.open().sla_warned);
    // A second tick records nothing.
    assert_eq!(desk.ok(tick()), vec![]);
    assert_eq!(desk.next_deadline(), Some(T0.plus_millis(300_000)));
    desk.wait(240_000);
    let at = T0.plus_millis(300_000);
    assert_eq!(
        desk.ok(tick()),
        vec![sla_breached(None, 300_000, 300_000, at)]
    );
    desk.wait(1_000_000);
    assert_eq!(desk.ok(tick()), vec![]);
    assert_eq!(desk.next_deadline(), None);
}

#[test]
fn a_tick_long_after_both_thresholds_records_both_at_once() {
    let mut desk = Desk::started(None, None, None);
    desk.wait(400_000);
    let at = T0.plus_millis(400_000);
    assert_eq!(
        desk.ok(tick()),
        vec![
            sla_warning(None, 400_000, 60_000, at),
            sla_breached(None, 400_000, 300_000, at),
        ]
    );
    assert_eq!(desk.ok(tick()), vec![]);
}

#[test]
fn a_team_has_its_own_sla_and_other_teams_the_default() {
    let mut desk = Desk::new();
    desk.settings.team_sla.insert(
        team("billing"),
        Sla {
            warning_ms: 10_000,
            breach_ms: 20_000,
        },
    );
    desk.ok(start(Some("billing"), None, None));
    assert_eq!(desk.next_deadline(), Some(T0.plus_millis(10_000)));
    desk.wait(10_000);
    assert_eq!(
        desk.ok(tick()),
        vec![sla_warning(
            Some("billing"),
            10_000,
            10_000,
            T0.plus_millis(10_000)
        )]
    );
    assert_eq!(desk.next_deadline(), Some(T0.plus_millis(20_000)));
    // Transferred to support, a new wait starts under the default thresholds.
    desk.ok(transfer_to_team("bob", "support"));
    let since = T0.plus_millis(10_000);
    assert_eq!(desk.next_deadline(), Some(since.plus_millis(60_000)));
    assert!(!desk.open().sla_warned);
    desk.wait(20_000);
    assert_eq!(desk.ok(tick()), vec![]);
    desk.wait(40_000);
    assert_eq!(
        desk.ok(tick()),
        vec![sla_warning(
            Some("support"),
            60_000,
            60_000,
            since.plus_millis(60_000)
        )]
    );
}

#[test]
fn a_conversation_that_does_not_wait_has_no_sla() {
    let mut desk = Desk::started(None, None, None);
    desk.wait(30_000);
    desk.ok(accept("ana"));
    assert_eq!(desk.next_deadline(), None);
    desk.wait(1_000_000);
    assert_eq!(desk.ok(tick()), vec![]);
    // Back in the queue, the new wait is counted from its own start.
    desk.presence("ana", Presence::Offline);
    desk.ok(requeue("ana"));
    let since = desk.now;
    assert_eq!(desk.next_deadline(), Some(since.plus_millis(60_000)));
    desk.wait(60_000);
    assert_eq!(
        desk.ok(tick()),
        vec![sla_warning(None, 60_000, 60_000, since.plus_millis(60_000))]
    );
}

// ---------------------------------------------------------------------------------------------
// Tick: the AI reply deadline.
// ---------------------------------------------------------------------------------------------

#[test]
fn an_ai_agent_that_does_not_answer_in_time_loses_the_conversation() {
    let mut desk = Desk::ai_active();
    assert_eq!(desk.next_deadline(), None);
    desk.wait(1_000);
    desk.ok(post_customer("What are your business hours?"));
    let asked = T0.plus_millis(1_000);
    assert_eq!(desk.open().reply_pending_since, Some(asked));
    assert_eq!(desk.next_deadline(), Some(asked.plus_millis(30_000)));
    // A second message does not move the deadline.
    desk.wait(20_000);
    desk.ok(post_customer("Hello?"));
    assert_eq!(desk.next_deadline(), Some(asked.plus_millis(30_000)));
    desk.wait(9_999);
    assert_eq!(desk.ok(tick()), vec![]);
    desk.wait(1);
    let at = asked.plus_millis(30_000);
    let events = desk.ok(tick());
    assert_eq!(
        events,
        vec![
            ConversationEvent::AiReplyOverdue {
                agent_id: ai("faq"),
                waited_ms: 30_000,
                deadline_ms: 30_000,
                at,
            },
            ConversationEvent::EscalatedToHuman {
                agent_id: ai("faq"),
                reason: reason("the AI agent did not reply within 30000 ms"),
                cause: EscalationCause::AiTimeout,
            },
            notice(
                NoticeKind::AiLeft,
                "The AI assistant FAQ Bot has left the conversation.",
                "en"
            ),
            ConversationEvent::AwaitingHuman {
                team: None,
                cause: WaitCause::Escalated(EscalationCause::AiTimeout),
                since: at,
            },
            waiting_en(),
        ]
    );
    assert_eq!(
        desk.status(),
        awaiting_status(None, at, WaitCause::Escalated(EscalationCause::AiTimeout))
    );
    assert_eq!(
        WaitCause::Escalated(EscalationCause::AiTimeout).as_str(),
        "ai_timeout"
    );
    // The old assignment's late reply is fenced off.
    assert_eq!(
        desk.no(post_ai("faq", 1, "We open at 9.")),
        Rejection::AssignmentEnded {
            agent_id: ai("faq"),
            epoch: Epoch(1),
        }
    );
    // The tick recorded it once.
    assert_eq!(desk.ok(tick()), vec![]);
}

#[test]
fn an_ai_agent_may_have_its_own_reply_deadline() {
    let mut desk = Desk::ai_active();
    desk.settings
        .agent_reply_deadline_ms
        .insert(ai("faq"), 5_000);
    desk.ok(post_customer("Hi"));
    assert_eq!(desk.next_deadline(), Some(T0.plus_millis(5_000)));
    desk.wait(5_000);
    let events = desk.ok(tick());
    assert_eq!(
        kinds(&events)[..2],
        ["ai_reply_overdue", "escalated_to_human"]
    );
}

#[test]
fn a_reply_clears_the_pending_deadline() {
    let mut desk = Desk::ai_active();
    desk.ok(post_customer("Hi"));
    desk.wait(10_000);
    desk.ok(post_ai("faq", 1, "Hello! How can I help?"));
    assert_eq!(desk.open().reply_pending_since, None);
    assert_eq!(desk.next_deadline(), None);
    desk.wait(1_000_000);
    assert_eq!(desk.ok(tick()), vec![]);
    assert_eq!(desk.state.assignment(), Some(assignment("faq", 1)));
}

#[test]
fn a_reclaim_clears_the_pending_deadline() {
    let mut desk = Desk::ai_active();
    desk.ok(post_customer("Hi"));
    desk.ok(reclaim("ana"));
    assert_eq!(desk.next_deadline(), None);
    desk.wait(60_000);
    assert_eq!(desk.ok(tick()), vec![]);
}

#[test]
fn an_ai_agent_may_not_claim_the_timeout_itself() {
    let mut desk = Desk::ai_active();
    assert_eq!(
        desk.no(ConversationCommand::Escalate {
            by: assignment("faq", 1),
            reason: reason("too slow"),
            cause: EscalationCause::AiTimeout,
        }),
        Rejection::EscalationCauseNotAllowed {
            cause: EscalationCause::AiTimeout
        }
    );
}

// ---------------------------------------------------------------------------------------------
// Tick: idle closing.
// ---------------------------------------------------------------------------------------------

#[test]
fn idle_closing_is_off_by_default() {
    let mut desk = Desk::with_ana();
    assert_eq!(desk.settings.idle_close_ms, None);
    desk.wait(30 * 24 * 3_600_000);
    assert_eq!(desk.ok(tick()), vec![]);
    assert_eq!(desk.next_deadline(), None);
}

#[test]
fn a_conversation_whose_customer_wrote_nothing_for_long_is_closed_by_the_clock() {
    let mut desk = Desk::new();
    desk.settings.idle_close_ms = Some(600_000);
    desk.ok(start(None, None, Some("ana")));
    assert_eq!(desk.next_deadline(), Some(T0.plus_millis(600_000)));
    desk.wait(100_000);
    desk.ok(post_customer("Still there?"));
    let last = T0.plus_millis(100_000);
    assert_eq!(desk.open().last_customer_at, Some(last));
    assert_eq!(desk.next_deadline(), Some(last.plus_millis(600_000)));
    // The human's messages do not keep it open.
    desk.wait(500_000);
    desk.ok(post_human("ana", "Yes, checking."));
    desk.wait(99_999);
    assert_eq!(desk.ok(tick()), vec![]);
    desk.wait(1);
    assert_eq!(
        desk.ok(tick()),
        vec![ConversationEvent::Closed {
            by: Author::System(SystemActor::Clock),
            reason: Some(reason("the customer wrote nothing for 600000 ms")),
        }]
    );
    assert_eq!(desk.status(), Status::Closed);
    assert_eq!(desk.next_deadline(), None);
    assert_eq!(desk.no(tick()), Rejection::Closed);
}

#[test]
fn the_next_deadline_is_the_earliest_pending_one() {
    let mut desk = Desk::new();
    assert_eq!(desk.next_deadline(), None);
    assert_eq!(desk.no(tick()), Rejection::NotOpened);
    desk.settings.idle_close_ms = Some(45_000);
    desk.ok(start(None, None, None));
    // Idle closing (45 s) comes before the SLA warning (60 s).
    assert_eq!(desk.next_deadline(), Some(T0.plus_millis(45_000)));
    desk.settings.idle_close_ms = Some(90_000);
    assert_eq!(desk.next_deadline(), Some(T0.plus_millis(60_000)));
    desk.wait(60_000);
    desk.ok(tick());
    assert_eq!(desk.next_deadline(), Some(T0.plus_millis(90_000)));
}

// ---------------------------------------------------------------------------------------------
// Customer notices.
// ---------------------------------------------------------------------------------------------

#[test]
fn notices_are_written_in_the_customers_language_or_english() {
    for (language, text, written_in) in [
        (
            None,
            "Please wait: a person will be with you shortly.",
            "en",
        ),
        (
            Some("en"),
            "Please wait: a person will be with you shortly.",
            "en",
        ),
        (
            Some("pt"),
            "Aguarde: uma pessoa vai atendê-lo em breve.",
            "pt",
        ),
        (
            Some("pt-BR"),
            "Aguarde: uma pessoa vai atendê-lo em breve.",
            "pt-BR",
        ),
        (
            Some("es"),
            "Espere: una persona le atenderá en breve.",
            "es",
        ),
        (
            Some("ES-mx"),
            "Espere: una persona le atenderá en breve.",
            "ES-mx",
        ),
        // No French text: English.
        (
            Some("fr"),
            "Please wait: a person will be with you shortly.",
            "en",
        ),
    ] {
        let mut desk = Desk::new();
        let events = desk.ok(start(None, language, None));
        assert_eq!(
            events[2],
            notice(NoticeKind::WaitingForPerson, text, written_in),
            "{language:?}"
        );
        assert_eq!(desk.open().language, language.map(lang));
    }
}

#[test]
fn every_notice_follows_the_language_and_names_who_joined_or_left() {
    let mut desk = Desk::started(None, Some("pt-BR"), None);
    let events = desk.ok(accept("ana"));
    assert_eq!(
        events[1],
        notice(NoticeKind::PersonJoined, "Ana entrou na conversa.", "pt-BR")
    );
    let events = desk.ok(hand_off("ana", "faq"));
    assert_eq!(
        events[1],
        notice(
            NoticeKind::AiJoined,
            "FAQ Bot, um assistente de IA, entrou na conversa.",
            "pt-BR"
        )
    );
    let events = desk.ok(reclaim("bob"));
    assert_eq!(
        events[1..],
        [
            notice(
                NoticeKind::AiLeft,
                "O assistente de IA FAQ Bot saiu da conversa.",
                "pt-BR"
            ),
            notice(NoticeKind::PersonJoined, "Bob entrou na conversa.", "pt-BR"),
        ]
    );
    let mut spanish = Desk::started(None, Some("es"), Some("ana"));
    spanish.ok(hand_off("ana", "sales"));
    let events = spanish.ok(post_customer("Quiero hablar con una persona"));
    assert_eq!(
        kinds(&events)[..2],
        ["message_posted", "escalated_to_human"]
    );
    assert_eq!(
        events[2],
        notice(
            NoticeKind::AiLeft,
            "El asistente de IA Sales Bot ha salido de la conversación.",
            "es"
        )
    );
    assert_eq!(
        events[4],
        notice(
            NoticeKind::WaitingForPerson,
            "Espere: una persona le atenderá en breve.",
            "es"
        )
    );
}

#[test]
fn an_operator_may_add_a_language() {
    let mut desk = Desk::new();
    desk.settings.notices.set(
        NoticeKind::PersonJoined,
        "FR",
        "{human} a rejoint la conversation.",
    );
    desk.ok(start(None, Some("fr-CA"), None));
    let events = desk.ok(accept("ana"));
    assert_eq!(
        events[1],
        notice(
            NoticeKind::PersonJoined,
            "Ana a rejoint la conversation.",
            "fr-CA"
        )
    );
}

#[test]
fn without_texts_no_notice_is_recorded() {
    let mut desk = Desk::new();
    for kind in [
        NoticeKind::AiJoined,
        NoticeKind::AiLeft,
        NoticeKind::WaitingForPerson,
        NoticeKind::PersonJoined,
    ] {
        for language in ["en", "pt", "es"] {
            desk.settings.notices.set(kind, language, "");
        }
    }
    let events = desk.ok(start(None, Some("pt"), None));
    assert_eq!(
        kinds(&events),
        vec!["conversation_opened", "awaiting_human"]
    );
    assert_eq!(kinds(&desk.ok(accept("ana"))), vec!["human_assigned"]);
    assert_eq!(
        kinds(&desk.ok(hand_off("ana", "faq"))),
        vec!["handed_off_to_ai"]
    );
    assert_eq!(
        kinds(&desk.ok(post_customer("Can I talk to a human?"))),
        vec!["message_posted", "escalated_to_human", "awaiting_human"]
    );
}

// ---------------------------------------------------------------------------------------------
// Authority: the tenant wall.
// ---------------------------------------------------------------------------------------------

/// Every conversation command a human sends, sent by `who`.
fn every_human_command(who: &str) -> Vec<ConversationCommand> {
    vec![
        post_human(who, "hello"),
        hand_off(who, "faq"),
        hand_off(who, "rival"),
        reclaim(who),
        close(by(who)),
        assign(by(who), "ana"),
        assign(by(who), who),
        accept(who),
        transfer_to(who, "carl"),
        transfer_to_team(who, "billing"),
        whisper(who, NoteAudience::Staff),
        whisper(who, NoteAudience::Ai),
        raise(by(who)),
        lower(who),
    ]
}

/// A conversation of `t1` in each of its states.
fn desks_in_every_state() -> Vec<(&'static str, Desk)> {
    let mut closed = Desk::ai_active();
    closed.ok(close(Participant::Customer(customer())));
    let mut reclaimed = Desk::ai_active();
    reclaimed.ok(reclaim("ana"));
    let mut flagged = Desk::with_ana();
    flagged.ok(raise(by("ana")));
    vec![
        ("not opened", Desk::new()),
        ("awaiting", Desk::started(Some("billing"), None, None)),
        ("assigned", Desk::with_ana()),
        ("ai-active", Desk::ai_active()),
        ("reclaimed", reclaimed),
        ("flagged", flagged),
        ("closed", closed),
    ]
}

#[test]
fn for_a_human_of_another_tenant_the_conversation_does_not_exist_open_or_closed() {
    let mut checked = 0;
    for (state, mut desk) in desks_in_every_state() {
        for command in every_human_command("zoe") {
            assert_eq!(
                desk.no(command.clone()),
                Rejection::NotOpened,
                "{} by zoe in {state}",
                command.name()
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 7 * 14);
}

#[test]
fn a_conversation_of_another_tenant_is_given_to_none_of_its_humans_nor_agents() {
    let mut desk = Desk::with_ana();
    assert_eq!(
        desk.no(hand_off("ana", "rival")),
        Rejection::UnknownAiAgent {
            agent_id: ai("rival")
        }
    );
    assert_eq!(desk.no(assign(by("bob"), "zoe")), unknown_human("zoe"));
    assert_eq!(desk.no(transfer_to("ana", "zoe")), unknown_human("zoe"));
    // And the other way round: a conversation of `t2`, given to zoe.
    let mut theirs = Desk::new();
    theirs.ok(ConversationCommand::Start {
        tenant: tenant("t2"),
        customer: customer(),
        channel: Channel::new("web-chat").unwrap(),
        team: None,
        language: None,
        human: Some(hid("zoe")),
    });
    for who in ["ana", "bob"] {
        for command in every_human_command(who) {
            assert_eq!(
                theirs.no(command.clone()),
                Rejection::NotOpened,
                "{} by {who}",
                command.name()
            );
        }
    }
    theirs.ok(hand_off("zoe", "rival"));
    assert_eq!(theirs.state.assignment(), Some(assignment("rival", 1)));
}

#[test]
fn an_unregistered_human_is_unknown_whatever_the_state() {
    for (state, mut desk) in desks_in_every_state() {
        for command in every_human_command("nobody") {
            assert_eq!(
                desk.no(command.clone()),
                unknown_human("nobody"),
                "{} in {state}",
                command.name()
            );
        }
    }
}

#[test]
fn an_offline_human_may_not_act() {
    for (state, mut desk) in desks_in_every_state() {
        // Before the open there is no conversation to act on.
        let expected = if state == "not opened" {
            Rejection::NotOpened
        } else {
            Rejection::HumanOffline {
                human_id: hid("olga"),
            }
        };
        for command in every_human_command("olga") {
            assert_eq!(
                desk.no(command.clone()),
                expected,
                "{} in {state}",
                command.name()
            );
        }
    }
    // The assigned agent going offline loses every power over it until back.
    let mut desk = Desk::with_ana();
    desk.presence("ana", Presence::Offline);
    assert_eq!(
        desk.no(post_human("ana", "hi")),
        Rejection::HumanOffline {
            human_id: hid("ana")
        }
    );
    desk.presence("ana", Presence::Away);
    desk.ok(post_human("ana", "back, but not taking new ones"));
}

// ---------------------------------------------------------------------------------------------
// Authority: who answers for a conversation.
// ---------------------------------------------------------------------------------------------

#[test]
fn an_agent_acts_only_on_conversations_they_answer_for() {
    let mut desk = Desk::with_ana();
    for command in [
        post_human("carl", "hi"),
        hand_off("carl", "faq"),
        close(by("carl")),
        transfer_to_team("carl", "support"),
        whisper("carl", NoteAudience::Staff),
        raise(by("carl")),
    ] {
        assert_eq!(desk.no(command), not_assigned_to_you("carl"));
    }
    desk.ok(post_human("ana", "hi"));
}

#[test]
fn the_human_who_handed_off_may_assume_it_at_any_time() {
    let mut desk = Desk::ai_active();
    assert_eq!(desk.open().responsible_human(), Some(&hid("ana")));
    desk.ok(post_customer("How much is the pro plan?"));
    desk.ok(post_ai("faq", 1, "It is 49 USD a month."));
    assert_eq!(desk.no(reclaim("carl")), not_assigned_to_you("carl"));
    assert_eq!(desk.no(close(by("carl"))), not_assigned_to_you("carl"));
    desk.ok(reclaim("ana"));
    assert_eq!(desk.status(), Status::Reclaimed { by: hid("ana") });
    // And hand it off again, and close it while the AI holds it.
    desk.ok(hand_off("ana", "sales"));
    desk.ok(close(by("ana")));
}

#[test]
fn a_supervisor_may_assume_any_conversation_of_the_tenant() {
    let mut desk = Desk::ai_active();
    desk.ok(reclaim("bob"));
    assert_eq!(desk.status(), Status::Reclaimed { by: hid("bob") });
    assert_eq!(desk.open().responsible_human(), Some(&hid("bob")));
    // Who answers for it now is bob: ana may no longer act on it.
    assert_eq!(desk.no(post_human("ana", "hi")), not_assigned_to_you("ana"));
    // Bob hands it off himself; ana may not assume it back, bob may.
    desk.ok(hand_off("bob", "sales"));
    assert_eq!(desk.open().handed_off_by, Some(hid("bob")));
    assert_eq!(desk.no(reclaim("ana")), not_assigned_to_you("ana"));
    desk.ok(reclaim("bob"));
}

#[test]
fn a_supervisor_acts_on_a_conversation_assigned_to_an_agent() {
    let mut desk = Desk::with_ana();
    desk.ok(post_human("bob", "Supervisor here."));
    desk.ok(raise(by("ana")));
    desk.ok(lower("bob"));
    desk.ok(hand_off("bob", "faq"));
    desk.ok(reclaim("bob"));
    desk.ok(assign(by("bob"), "ana"));
    desk.ok(transfer_to("bob", "carl"));
    desk.ok(transfer_to_team("bob", "billing"));
    desk.ok(close(by("bob")));
    assert_eq!(desk.status(), Status::Closed);
}

#[test]
fn while_it_waits_only_supervisors_act_on_it_until_someone_accepts() {
    let mut desk = Desk::started(Some("billing"), None, None);
    assert_eq!(desk.open().responsible_human(), None);
    assert_eq!(desk.no(post_human("ana", "hi")), not_assigned_to_you("ana"));
    desk.ok(post_human("bob", "Someone will be with you shortly."));
    desk.ok(accept("ana"));
    desk.ok(post_human("ana", "Hi, I'm Ana."));
    assert_eq!(
        desk.open().handler,
        Handler::Assigned {
            human: hid("ana"),
            name: name("Ana"),
        }
    );
}

fn start_skill(agent: &str, epoch: u64, name: &str) -> ConversationCommand {
    ConversationCommand::StartSkill {
        by: assignment(agent, epoch),
        name: SkillName::new(name).unwrap(),
        input: SkillData::new("order A-1").unwrap(),
    }
}

fn skill_outcome(agent: &str, epoch: u64, name: &str) -> ConversationCommand {
    ConversationCommand::RecordAiAction {
        by: assignment(agent, epoch),
        skill: Skill::new(name, "order A-1", Ok("done".to_owned())).unwrap(),
    }
}

#[test]
fn a_skill_is_recorded_as_started_under_the_fence() {
    let mut desk = Desk::ai_active();
    assert_eq!(
        kinds(&desk.ok(start_skill("faq", 1, "lookup_order"))),
        ["ai_skill_started"]
    );
    assert_eq!(desk.open().skills_started.len(), 1);
    desk.ok(skill_outcome("faq", 1, "lookup_order"));
    assert!(desk.open().skills_started.is_empty());
    // Another agent, or an ended assignment, may not start one.
    assert!(matches!(
        desk.no(start_skill("sales", 1, "lookup_order")),
        Rejection::NotAssigned { .. }
    ));
    desk.ok(reclaim("ana"));
    assert!(matches!(
        desk.no(start_skill("faq", 1, "lookup_order")),
        Rejection::AssignmentEnded { .. }
    ));
}

#[test]
fn the_outcome_of_a_skill_that_ran_is_recorded_after_a_reclaim() {
    let mut desk = Desk::ai_active();
    desk.ok(start_skill("faq", 1, "lookup_order"));
    desk.ok(reclaim("ana"));
    // The refund ran: its outcome is kept although a human holds the conversation now.
    assert_eq!(
        kinds(&desk.ok(skill_outcome("faq", 1, "lookup_order"))),
        ["ai_action_recorded"]
    );
    // Once: a second outcome, or one of a skill never started, is fenced as before.
    assert!(matches!(
        desk.no(skill_outcome("faq", 1, "lookup_order")),
        Rejection::AssignmentEnded { .. }
    ));
    assert!(matches!(
        desk.no(skill_outcome("faq", 1, "cancel")),
        Rejection::AssignmentEnded { .. }
    ));
}

#[test]
fn an_ai_agent_may_not_pile_up_skills_without_outcomes() {
    let mut desk = Desk::ai_active();
    for _ in 0..handover_core::SKILLS_STARTED_MAX {
        desk.ok(start_skill("faq", 1, "lookup_order"));
    }
    assert_eq!(
        desk.no(start_skill("faq", 1, "lookup_order")),
        Rejection::TooManySkillsStarted {
            max: handover_core::SKILLS_STARTED_MAX
        }
    );
    desk.ok(skill_outcome("faq", 1, "lookup_order"));
    desk.ok(start_skill("faq", 1, "lookup_order"));
}
