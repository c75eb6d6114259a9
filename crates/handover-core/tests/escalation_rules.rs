//! Every escalation rule of the policy, each firing and not firing, driven through `decide`
//! command by command: the concerns that block a handoff for a while, the loop guard and a
//! supervisor's override, the specialty of the agent against the topic, a customer who asks
//! for a person or complains (in English, Portuguese, Spanish, French, German and Italian),
//! frustration averaged over the last messages, a customer going in circles, an AI that keeps
//! missing, and skills that wait for a person's approval. Then a policy of its own (parsed from
//! TOML) and the events `evolve` refuses when forged.
//!
//! Every example runs in a [`Desk`]: tenant `default` with the AI agents `faq` ("FAQ Bot",
//! specialties faq and pricing), `sales` ("Sales Bot", specialty sales) and `any` ("Any Bot",
//! no specialty), all active; humans `ana` (agent, team billing), `carl` (agent, team billing)
//! and `bob` (supervisor), all available. The conversation is started for `cust-1`, given to
//! `ana`. The clock starts at [`T0`] and moves only when a test moves it. After every accepted
//! command the desk checks that the state `decide` returned is the fold of every event so far,
//! each at its time.

use handover_core::context::Context;
use handover_core::rules::{PolicyVersion, RuleVerdict, Rules};
use handover_core::{
    agent, conversation, human, AgentName, AiAgentCommand, AiAgentId, Assignment, Author, Channel,
    Concern, Conversation, ConversationCommand, ConversationEvent, Ctx, CustomerId, Directory,
    Epoch, EscalationCause, HumanCommand, HumanId, MessageText, Participant, Presence, Reason,
    Rejection, Role, Roster, Skill, SkillData, SkillName, Status, SystemActor, TeamId, TenantId,
    Timestamp, WaitCause,
};

// ---------------------------------------------------------------------------------------------
// The desk.
// ---------------------------------------------------------------------------------------------

/// Where every example starts: 1,000 s after the epoch.
const T0: Timestamp = Timestamp::from_millis(1_000_000);
const MINUTE: u64 = 60_000;
const CUSTOMER: &str = "cust-1";

struct Desk {
    roster: Roster,
    directory: Directory,
    rules: Rules,
    now: Timestamp,
    state: Conversation,
    history: Vec<(ConversationEvent, Timestamp)>,
}

impl Desk {
    /// The conversation started and given to `ana`, under the default policy.
    fn new() -> Desk {
        Desk::with_rules(Rules::default_rules().clone())
    }

    /// The conversation started and given to `ana`, under `rules`.
    fn with_rules(rules: Rules) -> Desk {
        let mut roster = Roster::default();
        for (id, agent_name, specialties) in [
            ("faq", "FAQ Bot", &["faq", "pricing"][..]),
            ("sales", "Sales Bot", &["sales"][..]),
            ("any", "Any Bot", &[][..]),
        ] {
            for command in [
                AiAgentCommand::Register {
                    name: name(agent_name),
                    specialties: specialties
                        .iter()
                        .map(|s| handover_core::Specialty::new(*s).unwrap())
                        .collect(),
                },
                AiAgentCommand::Activate,
            ] {
                for event in agent::decide(&ai(id), roster.get(&ai(id)), &command).unwrap() {
                    roster.evolve(&event).unwrap();
                }
            }
        }
        let mut directory = Directory::default();
        for (id, role, teams) in [
            ("ana", Role::Agent, &["billing"][..]),
            ("carl", Role::Agent, &["billing"][..]),
            ("bob", Role::Supervisor, &[][..]),
        ] {
            for command in [
                HumanCommand::Register {
                    tenant: TenantId::default_tenant(),
                    name: name(&capitalized(id)),
                    role,
                    teams: teams.iter().map(|t| TeamId::new(*t).unwrap()).collect(),
                    capacity: 5,
                },
                HumanCommand::SetPresence {
                    presence: Presence::Available,
                },
            ] {
                for event in human::decide(&hid(id), directory.get(&hid(id)), &command).unwrap() {
                    directory.evolve(&event).unwrap();
                }
            }
        }
        let mut desk = Desk {
            roster,
            directory,
            rules,
            now: T0,
            state: Conversation::NotOpened,
            history: Vec::new(),
        };
        desk.ok(ConversationCommand::Start {
            tenant: TenantId::default_tenant(),
            customer: customer(),
            channel: Channel::new("web-chat").unwrap(),
            team: None,
            language: None,
            human: Some(hid("ana")),
        });
        desk
    }

    /// Given to `ana`, then handed by her to `faq` (epoch 1).
    fn ai_active() -> Desk {
        let mut desk = Desk::new();
        desk.ok(hand_off("ana", "faq"));
        desk
    }

    /// Under `rules`, given to `ana`, then handed by her to `faq` (epoch 1).
    fn ai_active_with(rules: Rules) -> Desk {
        let mut desk = Desk::with_rules(rules);
        desk.ok(hand_off("ana", "faq"));
        desk
    }

    fn decide(
        &mut self,
        command: &ConversationCommand,
    ) -> Result<Vec<ConversationEvent>, Rejection> {
        // `Rules` is a `Policy`: the ctx's policy is the rules themselves.
        let ctx = Ctx::new(&self.roster, &self.rules)
            .with_directory(&self.directory)
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

    fn open(&self) -> &handover_core::OpenConversation {
        match &self.state {
            Conversation::Open(open) => open,
            other => panic!("not open: {other:?}"),
        }
    }

    fn status(&self) -> Status {
        self.state.status()
    }

    fn version(&self) -> PolicyVersion {
        self.rules.version().clone()
    }

    /// The conversation, escalated to the general queue, accepted back by `ana`.
    fn accept_back(&mut self) {
        self.ok(ConversationCommand::Accept { by: hid("ana") });
    }
}

// ---------------------------------------------------------------------------------------------
// Values, commands and what the events say.
// ---------------------------------------------------------------------------------------------

fn capitalized(id: &str) -> String {
    let mut chars = id.chars();
    let first = chars.next().unwrap().to_ascii_uppercase();
    format!("{first}{}", chars.as_str())
}

fn ai(id: &str) -> AiAgentId {
    AiAgentId::new(id).unwrap()
}

fn hid(id: &str) -> HumanId {
    HumanId::new(id).unwrap()
}

fn name(value: &str) -> AgentName {
    AgentName::new(value).unwrap()
}

fn customer() -> CustomerId {
    CustomerId::new(CUSTOMER).unwrap()
}

fn text(value: &str) -> MessageText {
    MessageText::new(value).unwrap()
}

fn reason(value: &str) -> Reason {
    Reason::new(value).unwrap()
}

fn skill_name(value: &str) -> SkillName {
    SkillName::new(value).unwrap()
}

fn assignment(agent: &str, epoch: u64) -> Assignment {
    Assignment {
        agent_id: ai(agent),
        epoch: Epoch(epoch),
    }
}

fn post_customer(message: &str) -> ConversationCommand {
    ConversationCommand::PostMessage {
        by: Participant::Customer(customer()),
        text: text(message),
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

fn hand_off_with(
    who: &str,
    agent: &str,
    topic: Option<&str>,
    override_policy: bool,
    refused_by: Option<RuleVerdict>,
) -> ConversationCommand {
    ConversationCommand::HandOffToAiWith {
        by: hid(who),
        agent_id: ai(agent),
        reason: None,
        context: topic.map(|t| {
            Context::new(
                Some("the customer asks about a plan".to_owned()),
                Some(t.to_owned()),
                [("plan", "pro")],
            )
            .unwrap()
        }),
        override_policy,
        refused_by,
    }
}

fn reclaim(who: &str) -> ConversationCommand {
    ConversationCommand::Reclaim {
        by: hid(who),
        reason: None,
    }
}

fn miss(epoch: u64) -> ConversationCommand {
    ConversationCommand::ReportCouldNotAnswer {
        by: assignment("faq", epoch),
        reason: Some(reason("no article about it")),
    }
}

fn start_skill(skill: &str, input: &str) -> ConversationCommand {
    ConversationCommand::StartSkill {
        by: assignment("faq", 1),
        name: skill_name(skill),
        input: SkillData::new(input).unwrap(),
    }
}

fn skill_outcome(skill: &str, input: &str) -> ConversationCommand {
    ConversationCommand::RecordAiAction {
        by: assignment("faq", 1),
        skill: Skill::new(skill, input, Ok("done".to_owned())).unwrap(),
    }
}

fn approve(who: &str, skill: &str) -> ConversationCommand {
    ConversationCommand::ApproveSkill {
        by: hid(who),
        skill: skill_name(skill),
    }
}

fn deny(who: &str, skill: &str) -> ConversationCommand {
    ConversationCommand::DenySkill {
        by: hid(who),
        skill: skill_name(skill),
        reason: reason("refunds over the counter only"),
    }
}

fn verdict(rule: &str, why: &str) -> RuleVerdict {
    RuleVerdict {
        rule: handover_core::rules::RuleName::new(rule).unwrap(),
        reason: reason(why),
    }
}

/// The escalation by a rule the events record, if any: (rule, cause, policy version).
fn escalated_by(events: &[ConversationEvent]) -> Option<(String, EscalationCause, PolicyVersion)> {
    events.iter().find_map(|event| match event {
        ConversationEvent::EscalatedByRule {
            rule,
            cause,
            policy_version,
            ..
        } => Some((rule.as_str().to_owned(), *cause, policy_version.clone())),
        _ => None,
    })
}

/// Asserts that `events` are the message, then `rule`'s escalation with `cause` under the
/// desk's policy, then the notice that the AI left, the wait and its notice; and that the
/// conversation now waits for a person for that cause.
#[track_caller]
fn assert_escalated(desk: &Desk, events: &[ConversationEvent], rule: &str, cause: EscalationCause) {
    assert_eq!(
        escalated_by(events),
        Some((rule.to_owned(), cause, desk.version())),
        "{events:#?}"
    );
    let first_escalation = events
        .iter()
        .position(|e| matches!(e, ConversationEvent::EscalatedByRule { .. }))
        .unwrap();
    match &events[first_escalation] {
        ConversationEvent::EscalatedByRule { agent_id, at, .. } => {
            assert_eq!(agent_id, &ai("faq"));
            assert_eq!(*at, desk.now);
        }
        _ => unreachable!(),
    }
    assert_eq!(
        kinds(&events[first_escalation..]),
        [
            "escalated_to_human",
            "customer_notice",
            "awaiting_human",
            "customer_notice"
        ]
    );
    assert_eq!(
        desk.status(),
        Status::AwaitingHuman {
            team: None,
            since: desk.now,
            cause: WaitCause::Escalated(cause),
        }
    );
}

/// Asserts that `events` are the customer's message alone (no rule fired) and the AI still
/// holds the conversation.
#[track_caller]
fn assert_not_escalated(desk: &Desk, events: &[ConversationEvent]) {
    assert_eq!(kinds(events), ["message_posted"], "{events:#?}");
    assert!(
        matches!(desk.status(), Status::AiActive { .. }),
        "{:?}",
        desk.status()
    );
}

fn kinds(events: &[ConversationEvent]) -> Vec<&'static str> {
    events.iter().map(|e| e.type_name()).collect()
}

fn concerns_of(events: &[ConversationEvent]) -> Vec<Concern> {
    match events.first() {
        Some(ConversationEvent::MessagePosted { concerns, .. }) => concerns.clone(),
        other => panic!("not a message: {other:?}"),
    }
}

/// The rule and version of a rule's refusal (`RefusedByRule` or `HandoffLoop`).
fn refused(rejection: &Rejection) -> (&'static str, String, PolicyVersion) {
    match rejection {
        Rejection::RefusedByRule {
            rule,
            policy_version,
            ..
        } => ("refused", rule.as_str().to_owned(), policy_version.clone()),
        Rejection::HandoffLoop {
            rule,
            policy_version,
            ..
        } => ("loop", rule.as_str().to_owned(), policy_version.clone()),
        other => panic!("not a rule's refusal: {other:?}"),
    }
}

fn default_version() -> PolicyVersion {
    Rules::default_rules().version().clone()
}

// ---------------------------------------------------------------------------------------------
// Moment 2: a customer who asks for a person.
// ---------------------------------------------------------------------------------------------

/// A request for a person in each language the lexicon claims, with accents and case mixed.
const ASKS_FOR_A_PERSON: [(&str, &str); 6] = [
    ("en", "Can I TALK to a Human, please?"),
    ("pt", "Quero falar com um ATENDENTE!"),
    ("es", "¿Puedo hablar con una persona?"),
    ("fr", "Je veux parler à quelqu’un"),
    ("de", "Ich möchte mit einem MENSCHEN sprechen"),
    ("it", "Posso parlare con un operatore?"),
];

/// In each language, a phrase of the lexicon only inside a longer word: no whole-word match.
const NOT_ASKING_FOR_A_PERSON: [(&str, &str); 6] = [
    ("en", "Are your representatives trained?"),
    ("pt", "A pessoa realmente pagou?"),
    ("es", "¿La persona realizó el pago?"),
    ("fr", "Une personne réellement inscrite ?"),
    ("de", "Ist er ein echter Menschenfreund?"),
    ("it", "Una persona veramente gentile"),
];

#[test]
fn a_customer_who_asks_for_a_person_in_any_language_gets_one() {
    for (language, message) in ASKS_FOR_A_PERSON {
        let mut desk = Desk::ai_active();
        let events = desk.ok(post_customer(message));
        assert_eq!(
            concerns_of(&events),
            [Concern::HumanRequested],
            "{language}: {message}"
        );
        assert_escalated(
            &desk,
            &events,
            "asked-for-a-person",
            EscalationCause::CustomerAskedForHuman,
        );
        // The rule's reason is recorded in words.
        match &events[1] {
            ConversationEvent::EscalatedByRule { reason, .. } => {
                assert_eq!(reason.as_str(), "the customer asked for a human")
            }
            other => panic!("{language}: {other:?}"),
        }
        // The AI's assignment ended in the same append: its reply is refused.
        assert_eq!(
            desk.no(post_ai("faq", 1, "I can help!")),
            Rejection::AssignmentEnded {
                agent_id: ai("faq"),
                epoch: Epoch(1)
            }
        );
    }
}

#[test]
fn a_phrase_inside_a_longer_word_is_no_request_for_a_person() {
    for (language, message) in NOT_ASKING_FOR_A_PERSON {
        let mut desk = Desk::ai_active();
        let events = desk.ok(post_customer(message));
        assert_eq!(concerns_of(&events), [], "{language}: {message}");
        assert_not_escalated(&desk, &events);
    }
}

#[test]
fn a_request_for_a_person_while_a_person_has_it_escalates_nothing() {
    for (language, message) in ASKS_FOR_A_PERSON {
        let mut desk = Desk::new();
        let events = desk.ok(post_customer(message));
        assert_eq!(kinds(&events), ["message_posted"], "{language}");
        assert_eq!(concerns_of(&events), [Concern::HumanRequested]);
        assert!(matches!(desk.status(), Status::Assigned { .. }));
    }
}

// ---------------------------------------------------------------------------------------------
// Moment 2: a complaint while the AI is active.
// ---------------------------------------------------------------------------------------------

const COMPLAINTS: [(&str, &str); 6] = [
    ("en", "This is UNACCEPTABLE."),
    ("pt", "Que péssimo atendimento"),
    ("es", "Quiero poner una queja"),
    ("fr", "C'est inadmissible"),
    ("de", "Das ist eine Frechheit"),
    ("it", "È inaccettabile"),
];

/// In each language, a complaint word only inside a longer word.
const NOT_COMPLAINTS: [(&str, &str); 6] = [
    ("en", "Is this plan lawful?"),
    ("pt", "O livro Absurdos chegou?"),
    ("es", "¿Qué términos son inaceptables?"),
    ("fr", "C'est ridiculement simple"),
    ("de", "Wo ist die Beschwerdestelle?"),
    ("it", "Non c'è da vergognarsi"),
];

#[test]
fn a_complaint_while_the_ai_is_active_goes_to_a_person_in_any_language() {
    for (language, message) in COMPLAINTS {
        let mut desk = Desk::ai_active();
        let events = desk.ok(post_customer(message));
        assert_eq!(
            concerns_of(&events),
            [Concern::Complaint],
            "{language}: {message}"
        );
        assert_escalated(
            &desk,
            &events,
            "complaint-while-ai",
            EscalationCause::Complaint,
        );
    }
}

#[test]
fn a_complaint_word_inside_a_longer_word_is_no_complaint() {
    for (language, message) in NOT_COMPLAINTS {
        let mut desk = Desk::ai_active();
        let events = desk.ok(post_customer(message));
        assert_eq!(concerns_of(&events), [], "{language}: {message}");
        assert_not_escalated(&desk, &events);
    }
}

#[test]
fn a_complaint_to_a_person_escalates_nothing() {
    for (language, message) in COMPLAINTS {
        let mut desk = Desk::new();
        let events = desk.ok(post_customer(message));
        assert_eq!(kinds(&events), ["message_posted"], "{language}");
        assert!(matches!(desk.status(), Status::Assigned { .. }));
    }
}

// ---------------------------------------------------------------------------------------------
// Moment 2: frustration, averaged over the last messages.
// ---------------------------------------------------------------------------------------------

/// Per language: a calm question, then three frustrated messages (none a complaint), the
/// third the strongest.
const FRUSTRATED: [(&str, &str, [&str; 3]); 6] = [
    (
        "en",
        "What are your opening hours?",
        [
            "This bot is useless",
            "I am frustrated",
            "What a waste of time",
        ],
    ),
    (
        "pt",
        "Qual é o prazo de entrega?",
        ["Isso é inútil", "Estou frustrado", "Que perda de tempo"],
    ),
    (
        "es",
        "¿Cuánto cuesta el envío?",
        ["Esto es inútil", "Estoy muy enojado", "Estoy harto"],
    ),
    (
        "fr",
        "Quels sont vos horaires ?",
        ["Je suis énervé", "C'est inutile", "J'en ai marre"],
    ),
    (
        "de",
        "Wie lange dauert der Versand?",
        [
            "Ich bin genervt",
            "Das ist nutzlos",
            "Was für eine Zeitverschwendung",
        ],
    ),
    (
        "it",
        "Quanto costa la spedizione?",
        ["Sono frustrato", "È inutile", "Sono stufo"],
    ),
];

#[test]
fn frustration_over_the_window_goes_to_a_person_in_any_language() {
    for (language, calm, [first, second, third]) in FRUSTRATED {
        let mut desk = Desk::ai_active();
        for message in [calm, first, second] {
            // The calm question keeps the average of the last three under the threshold.
            let events = desk.ok(post_customer(message));
            assert_not_escalated(&desk, &events);
            desk.ok(post_ai("faq", 1, "Let me check."));
        }
        // The calm question has left the window: three frustrated messages.
        let events = desk.ok(post_customer(third));
        assert_eq!(concerns_of(&events), [], "{language}: {third}");
        assert_escalated(&desk, &events, "frustrated", EscalationCause::Frustration);
    }
}

#[test]
fn one_frustrated_message_among_calm_ones_does_not_escalate() {
    for (language, calm, [_, _, strongest]) in FRUSTRATED {
        let mut desk = Desk::ai_active();
        for message in [calm, "And how much is shipping?"] {
            desk.ok(post_customer(message));
        }
        // (0 + 0 + 0.9) / 3 is under 0.6.
        let events = desk.ok(post_customer(strongest));
        assert_not_escalated(&desk, &events);
        // Calm messages after it bring the average further down.
        for message in [calm, "Thanks"] {
            let events = desk.ok(post_customer(message));
            assert_not_escalated(&desk, &events);
        }
        assert!(
            matches!(desk.status(), Status::AiActive { .. }),
            "{language}"
        );
    }
}

#[test]
fn calm_messages_never_escalate() {
    let mut desk = Desk::ai_active();
    for (_, calm, _) in FRUSTRATED {
        let events = desk.ok(post_customer(calm));
        assert_not_escalated(&desk, &events);
    }
}

// ---------------------------------------------------------------------------------------------
// Moment 2: going in circles.
// ---------------------------------------------------------------------------------------------

/// Per language: the same question written three ways (case, accents, punctuation), and two
/// other questions.
const SAME_QUESTION: [(&str, [&str; 3], [&str; 2]); 6] = [
    (
        "en",
        [
            "How do I cancel my subscription?",
            "how do i cancel my subscription",
            "HOW do I CANCEL my subscription??",
        ],
        ["Where is my parcel?", "Which plans do you offer?"],
    ),
    (
        "pt",
        [
            "Como cancelo minha assinatura?",
            "como cancelo minha assinatura",
            "Como CANCELO minha assinatura??",
        ],
        ["Onde está meu pacote?", "Quais planos vocês oferecem?"],
    ),
    (
        "es",
        [
            "¿Cómo cancelo mi suscripción?",
            "como cancelo mi suscripcion",
            "¿¿CÓMO cancelo mi suscripción??",
        ],
        ["¿Dónde está mi paquete?", "¿Qué planes ofrecen?"],
    ),
    (
        "fr",
        [
            "Comment résilier mon abonnement ?",
            "comment resilier mon abonnement",
            "COMMENT résilier mon abonnement ??",
        ],
        ["Où est mon colis ?", "Quelles offres proposez-vous ?"],
    ),
    (
        "de",
        [
            "Wie kündige ich mein Abo?",
            "wie kündige ich mein abo",
            "Wie KÜNDIGE ich mein Abo??",
        ],
        ["Wo ist mein Paket?", "Welche Tarife bieten Sie an?"],
    ),
    (
        "it",
        [
            "Come disdico il mio abbonamento?",
            "come disdico il mio abbonamento",
            "COME disdico il mio abbonamento??",
        ],
        ["Dove è il mio pacco?", "Quali piani offrite?"],
    ),
];

#[test]
fn the_same_question_a_third_time_goes_to_a_person_in_any_language() {
    for (language, [first, second, third], _) in SAME_QUESTION {
        let mut desk = Desk::ai_active();
        for message in [first, second] {
            let events = desk.ok(post_customer(message));
            assert_not_escalated(&desk, &events);
            desk.ok(post_ai("faq", 1, "Here is how."));
        }
        let events = desk.ok(post_customer(third));
        assert_eq!(concerns_of(&events), [], "{language}: {third}");
        assert_escalated(
            &desk,
            &events,
            "going-in-circles",
            EscalationCause::GoingInCircles,
        );
    }
}

#[test]
fn different_questions_are_not_going_in_circles() {
    for (language, [first, ..], others) in SAME_QUESTION {
        let mut desk = Desk::ai_active();
        for message in [first, others[0], others[1], first] {
            let events = desk.ok(post_customer(message));
            assert_not_escalated(&desk, &events);
        }
        assert!(
            matches!(desk.status(), Status::AiActive { .. }),
            "{language}"
        );
    }
}

#[test]
fn the_same_question_asked_before_the_handoff_does_not_count() {
    for (language, [first, second, third], _) in SAME_QUESTION {
        let mut desk = Desk::new();
        // Asked twice to `ana` (another assignment: no AI's at all).
        desk.ok(post_customer(first));
        desk.ok(post_customer(second));
        desk.ok(hand_off("ana", "faq"));
        // Only the third repeat within the AI's assignment fires.
        for message in [third, first] {
            let events = desk.ok(post_customer(message));
            assert_not_escalated(&desk, &events);
        }
        let events = desk.ok(post_customer(second));
        assert_escalated(
            &desk,
            &events,
            "going-in-circles",
            EscalationCause::GoingInCircles,
        );
        assert!(
            !matches!(desk.status(), Status::AiActive { .. }),
            "{language}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Moment 2: the embedder's verdict.
// ---------------------------------------------------------------------------------------------

fn judged(message: &str, cause: EscalationCause) -> ConversationCommand {
    ConversationCommand::PostMessageJudged {
        by: Participant::Customer(customer()),
        text: text(message),
        cause,
        verdict: verdict("vip-customer", "VIP customers talk to people"),
    }
}

#[test]
fn an_embedders_verdict_escalates_when_no_built_in_rule_does() {
    let mut desk = Desk::ai_active();
    let events = desk.ok(judged(
        "What are your opening hours?",
        EscalationCause::Complaint,
    ));
    assert_escalated(&desk, &events, "vip-customer", EscalationCause::Complaint);
    match &events[1] {
        ConversationEvent::EscalatedByRule { reason, .. } => {
            assert_eq!(reason.as_str(), "VIP customers talk to people")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_built_in_rule_wins_over_the_embedders_verdict() {
    let mut desk = Desk::ai_active();
    let events = desk.ok(judged(
        "Can I talk to a human?",
        EscalationCause::AgentRequested,
    ));
    assert_escalated(
        &desk,
        &events,
        "asked-for-a-person",
        EscalationCause::CustomerAskedForHuman,
    );
}

#[test]
fn an_embedders_verdict_does_nothing_while_a_person_has_it_and_claims_no_clock_cause() {
    let mut desk = Desk::new();
    let events = desk.ok(judged("Hello", EscalationCause::Complaint));
    assert_eq!(kinds(&events), ["message_posted"]);
    let mut desk = Desk::ai_active();
    // Nor the lexicon's request for a person, which the audit pairs with the message's concern.
    for cause in [
        EscalationCause::AiTimeout,
        EscalationCause::AgentDeactivated,
        EscalationCause::CustomerAskedForHuman,
    ] {
        assert_eq!(
            desk.no(judged("Hello", cause)),
            Rejection::EscalationCauseNotAllowed { cause }
        );
    }
    // Only the customer's message is judged.
    assert!(matches!(
        desk.no(ConversationCommand::PostMessageJudged {
            by: Participant::Ai(assignment("faq", 1)),
            text: text("Hello"),
            cause: EscalationCause::Complaint,
            verdict: verdict("vip-customer", "VIP"),
        }),
        Rejection::ParticipantNotAllowed { .. }
    ));
}

// ---------------------------------------------------------------------------------------------
// The AI's misses.
// ---------------------------------------------------------------------------------------------

#[test]
fn an_ai_that_cannot_answer_twice_in_a_row_hands_over() {
    let mut desk = Desk::ai_active();
    let events = desk.ok(miss(1));
    assert_eq!(
        events,
        [ConversationEvent::AiCouldNotAnswer {
            agent_id: ai("faq"),
            reason: Some(reason("no article about it")),
            at: desk.now,
        }]
    );
    assert!(matches!(desk.status(), Status::AiActive { .. }));
    // Its apology right after the miss does not end the run.
    desk.ok(post_ai("faq", 1, "Sorry, I do not know that."));
    let events = desk.ok(miss(1));
    assert_eq!(kinds(&events[..1]), ["ai_could_not_answer"]);
    assert_escalated(
        &desk,
        &events,
        "ai-keeps-missing",
        EscalationCause::AiCouldNotAnswer,
    );
}

#[test]
fn a_real_answer_between_misses_resets_the_run() {
    let mut desk = Desk::ai_active();
    desk.ok(miss(1));
    desk.ok(post_ai("faq", 1, "Sorry, I do not know that."));
    desk.ok(post_ai("faq", 1, "Our opening hours are 9 to 5."));
    let events = desk.ok(miss(1));
    assert_eq!(kinds(&events), ["ai_could_not_answer"]);
    assert!(matches!(desk.status(), Status::AiActive { .. }));
    let events = desk.ok(miss(1));
    assert_eq!(
        escalated_by(&events).map(|(rule, ..)| rule),
        Some("ai-keeps-missing".to_owned())
    );
}

#[test]
fn a_new_handoff_resets_the_run() {
    let mut desk = Desk::ai_active();
    desk.ok(miss(1));
    desk.ok(reclaim("ana"));
    desk.ok(hand_off("ana", "faq"));
    let events = desk.ok(miss(2));
    assert_eq!(kinds(&events), ["ai_could_not_answer"]);
    assert!(matches!(desk.status(), Status::AiActive { .. }));
}

#[test]
fn only_the_assigned_ai_reports_a_miss() {
    let mut desk = Desk::ai_active();
    assert_eq!(
        desk.no(ConversationCommand::ReportCouldNotAnswer {
            by: assignment("sales", 1),
            reason: None,
        }),
        Rejection::NotAssigned {
            agent_id: ai("sales")
        }
    );
    desk.ok(reclaim("ana"));
    assert_eq!(
        desk.no(miss(1)),
        Rejection::AssignmentEnded {
            agent_id: ai("faq"),
            epoch: Epoch(1)
        }
    );
}

// ---------------------------------------------------------------------------------------------
// The AI hands over with its context; the causes only rules claim.
// ---------------------------------------------------------------------------------------------

#[test]
fn an_ai_hands_over_with_what_it_tried_and_found() {
    let mut desk = Desk::ai_active();
    let context = Context::new(
        Some("Tried the FAQ on refunds; the order is past 30 days".to_owned()),
        Some("billing".to_owned()),
        [("order_id", "A-17")],
    )
    .unwrap();
    let events = desk.ok(ConversationCommand::EscalateWith {
        by: assignment("faq", 1),
        reason: reason("needs an exception"),
        context: context.clone(),
    });
    assert_eq!(
        events[..2],
        [
            ConversationEvent::ContextShared {
                by: Author::Ai(ai("faq")),
                context,
                at: desk.now,
            },
            ConversationEvent::EscalatedToHuman {
                agent_id: ai("faq"),
                reason: reason("needs an exception"),
                cause: EscalationCause::AgentRequested,
            },
        ]
    );
    assert_eq!(
        desk.status(),
        Status::AwaitingHuman {
            team: None,
            since: desk.now,
            cause: WaitCause::Escalated(EscalationCause::AgentRequested),
        }
    );
    // The topic it gave is the conversation's.
    assert_eq!(
        desk.open().signals.topic.as_ref().map(|t| t.as_str()),
        Some("billing")
    );
}

#[test]
fn an_ai_may_not_claim_a_cause_only_rules_and_the_clock_give() {
    let mut desk = Desk::ai_active();
    for cause in [
        EscalationCause::Frustration,
        EscalationCause::GoingInCircles,
        EscalationCause::AiCouldNotAnswer,
        EscalationCause::Complaint,
        EscalationCause::CustomerAskedForHuman,
        EscalationCause::AiTimeout,
    ] {
        assert_eq!(
            desk.no(ConversationCommand::Escalate {
                by: assignment("faq", 1),
                reason: reason("giving up"),
                cause,
            }),
            Rejection::EscalationCauseNotAllowed { cause }
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Moment 1: concerns block a handoff for a while.
// ---------------------------------------------------------------------------------------------

#[test]
fn a_concern_blocks_the_handoff_within_its_window_by_each_rule_name() {
    for (message, concern) in [
        ("I want a discount", Concern::Negotiation),
        ("This is unacceptable", Concern::Complaint),
        ("My card was stolen", Concern::Sensitive),
        ("Can I talk to a human?", Concern::HumanRequested),
    ] {
        let mut desk = Desk::new();
        let events = desk.ok(post_customer(message));
        assert_eq!(concerns_of(&events), [concern]);
        let rejection = desk.no(hand_off("ana", "faq"));
        assert_eq!(
            refused(&rejection),
            ("refused", "guidance-concerns".to_owned(), default_version()),
            "{message}"
        );
    }
}

#[test]
fn a_concern_stops_blocking_after_five_more_customer_messages() {
    let mut desk = Desk::new();
    desk.ok(post_customer("This is unacceptable"));
    for i in 1..5 {
        desk.ok(post_customer(&format!("Question number {i}")));
        let rejection = desk.no(hand_off("ana", "faq"));
        assert_eq!(refused(&rejection).1, "guidance-concerns", "after {i}");
    }
    desk.ok(post_customer("Question number 5"));
    let events = desk.ok(hand_off("ana", "faq"));
    assert_eq!(kinds(&events), ["handed_off_to_ai", "customer_notice"]);
}

#[test]
fn a_concern_stops_blocking_thirty_minutes_after_it_was_raised() {
    let mut desk = Desk::new();
    desk.ok(post_customer("I want a discount"));
    desk.wait(30 * MINUTE - 1);
    assert_eq!(
        refused(&desk.no(hand_off("ana", "faq"))).1,
        "guidance-concerns"
    );
    desk.wait(1);
    desk.ok(hand_off("ana", "faq"));
    assert!(matches!(desk.status(), Status::AiActive { .. }));
}

#[test]
fn a_concern_raised_again_restarts_its_window() {
    let mut desk = Desk::new();
    desk.ok(post_customer("I want a discount"));
    desk.wait(20 * MINUTE);
    desk.ok(post_customer("A better price, please: a discount"));
    desk.wait(20 * MINUTE);
    // 40 minutes after the first raising, 20 after the latest.
    assert_eq!(
        refused(&desk.no(hand_off("ana", "faq"))).1,
        "guidance-concerns"
    );
    desk.wait(10 * MINUTE);
    desk.ok(hand_off("ana", "faq"));
}

#[test]
fn a_supervisor_overrides_a_concern_and_the_override_is_recorded() {
    let mut desk = Desk::new();
    desk.ok(post_customer("I want a discount"));
    // An agent may not override.
    assert_eq!(
        desk.no(hand_off_with("ana", "faq", None, true, None)),
        Rejection::NotASupervisor {
            human_id: hid("ana")
        }
    );
    let events = desk.ok(hand_off_with("bob", "faq", None, true, None));
    match &events[0] {
        ConversationEvent::PolicyOverridden {
            by,
            rule,
            policy_version,
            at,
            ..
        } => {
            assert_eq!(by, &hid("bob"));
            assert_eq!(rule.as_str(), "guidance-concerns");
            assert_eq!(policy_version, &default_version());
            assert_eq!(*at, desk.now);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        kinds(&events),
        ["policy_overridden", "handed_off_to_ai", "customer_notice"]
    );
    assert!(matches!(desk.status(), Status::AiActive { .. }));
}

#[test]
fn an_override_of_a_handoff_no_rule_refuses_records_nothing_more() {
    let mut desk = Desk::new();
    let events = desk.ok(hand_off_with("bob", "faq", None, true, None));
    assert_eq!(kinds(&events), ["handed_off_to_ai", "customer_notice"]);
}

// ---------------------------------------------------------------------------------------------
// Moment 1: the loop guard.
// ---------------------------------------------------------------------------------------------

#[test]
fn the_loop_guard_refuses_a_fourth_handoff() {
    let mut desk = Desk::new();
    for epoch in 1..=3 {
        desk.ok(hand_off("ana", "faq"));
        assert!(matches!(
            desk.status(),
            Status::AiActive { epoch: e, .. } if e == Epoch(epoch)
        ));
        desk.ok(reclaim("ana"));
    }
    let rejection = desk.no(hand_off("ana", "faq"));
    assert_eq!(
        refused(&rejection),
        ("loop", "loop-guard".to_owned(), default_version())
    );
    // A supervisor's override is recorded with the rule and the version.
    assert_eq!(
        desk.no(hand_off_with("ana", "sales", None, true, None)),
        Rejection::NotASupervisor {
            human_id: hid("ana")
        }
    );
    assert_eq!(refused(&desk.no(hand_off("bob", "faq"))).1, "loop-guard");
    let events = desk.ok(hand_off_with("bob", "faq", None, true, None));
    assert!(matches!(
        &events[0],
        ConversationEvent::PolicyOverridden { rule, policy_version, by, .. }
            if rule.as_str() == "loop-guard" && *policy_version == default_version()
                && *by == hid("bob")
    ));
    assert!(matches!(
        desk.status(),
        Status::AiActive {
            epoch: Epoch(4),
            ..
        }
    ));
}

#[test]
fn the_loop_guard_refuses_a_handoff_within_ten_minutes_of_an_escalation() {
    let mut desk = Desk::ai_active();
    desk.ok(ConversationCommand::Escalate {
        by: assignment("faq", 1),
        reason: reason("cannot answer this"),
        cause: EscalationCause::AgentRequested,
    });
    desk.accept_back();
    desk.wait(10 * MINUTE - 1);
    let rejection = desk.no(hand_off("ana", "sales"));
    assert_eq!(
        refused(&rejection),
        ("loop", "loop-guard".to_owned(), default_version())
    );
    desk.wait(1);
    desk.ok(hand_off("ana", "sales"));
}

#[test]
fn the_cooldown_follows_a_rules_escalation_too() {
    let mut desk = Desk::ai_active();
    desk.ok(miss(1));
    desk.ok(miss(1));
    desk.accept_back();
    desk.wait(5 * MINUTE);
    assert_eq!(refused(&desk.no(hand_off("ana", "faq"))).1, "loop-guard");
    desk.wait(5 * MINUTE);
    desk.ok(hand_off("ana", "faq"));
}

// ---------------------------------------------------------------------------------------------
// Moment 1: the agent's specialty against the topic; the embedder's refusal.
// ---------------------------------------------------------------------------------------------

fn with_topic_rule() -> Rules {
    Rules::parse(
        r#"
        name = "topics"

        [[rule]]
        name = "topic-match"
        kind = "specialty_matches_topic"
        "#,
    )
    .unwrap()
}

#[test]
fn an_agent_takes_a_topic_it_covers() {
    let mut desk = Desk::with_rules(with_topic_rule());
    let events = desk.ok(hand_off_with("ana", "faq", Some("Pricing"), false, None));
    assert_eq!(
        kinds(&events),
        ["context_shared", "handed_off_to_ai", "customer_notice"]
    );
    assert_eq!(
        desk.open().signals.topic.as_ref().map(|t| t.as_str()),
        Some("Pricing")
    );
}

#[test]
fn an_agent_does_not_take_a_topic_it_does_not_cover() {
    let mut desk = Desk::with_rules(with_topic_rule());
    let version = desk.version();
    assert_ne!(version, default_version());
    let rejection = desk.no(hand_off_with("ana", "faq", Some("billing"), false, None));
    assert_eq!(
        refused(&rejection),
        ("refused", "topic-match".to_owned(), version)
    );
}

#[test]
fn without_a_topic_any_agent_takes_it() {
    let mut desk = Desk::with_rules(with_topic_rule());
    desk.ok(hand_off_with("ana", "faq", None, false, None));
}

#[test]
fn an_agent_without_specialties_takes_any_topic() {
    let mut desk = Desk::with_rules(with_topic_rule());
    desk.ok(hand_off_with("ana", "any", Some("billing"), false, None));
}

#[test]
fn the_last_shared_topic_counts_when_the_handoff_gives_none() {
    let mut desk = Desk::with_rules(with_topic_rule());
    desk.ok(hand_off_with("ana", "any", Some("billing"), false, None));
    desk.ok(reclaim("ana"));
    assert_eq!(refused(&desk.no(hand_off("ana", "faq"))).1, "topic-match");
    // A handoff's own topic wins over the last one.
    desk.ok(hand_off_with("ana", "faq", Some("faq"), false, None));
}

#[test]
fn an_embedders_refusal_refuses_like_a_rule_and_a_supervisor_overrides_it() {
    let mut desk = Desk::new();
    let refusal = verdict("business-hours", "AI is off at night");
    let rejection = desk.no(hand_off_with(
        "ana",
        "faq",
        None,
        false,
        Some(refusal.clone()),
    ));
    assert_eq!(
        rejection,
        Rejection::RefusedByRule {
            rule: refusal.rule.clone(),
            policy_version: default_version(),
            reason: "AI is off at night".to_owned(),
        }
    );
    let events = desk.ok(hand_off_with("bob", "faq", None, true, Some(refusal)));
    assert!(matches!(
        &events[0],
        ConversationEvent::PolicyOverridden { rule, refusal, .. }
            if rule.as_str() == "business-hours" && refusal.as_str() == "AI is off at night"
    ));
}

// ---------------------------------------------------------------------------------------------
// Moment 3: skills that wait for a person's approval.
// ---------------------------------------------------------------------------------------------

const REFUND: &str = r#"{"order":"A-17","amount":120}"#;

fn approval_requested(desk: &Desk, input: &str) -> ConversationEvent {
    ConversationEvent::SkillApprovalRequested {
        agent_id: ai("faq"),
        name: skill_name("refund"),
        input: SkillData::new(input).unwrap(),
        rule: handover_core::rules::RuleName::new("refunds-need-approval").unwrap(),
        policy_version: desk.version(),
        deadline_ms: 10 * MINUTE,
        at: desk.now,
    }
}

#[test]
fn a_gated_skill_waits_for_approval_instead_of_starting() {
    let mut desk = Desk::ai_active();
    let events = desk.ok(start_skill("refund", REFUND));
    assert_eq!(events, [approval_requested(&desk, REFUND)]);
    assert_eq!(desk.open().approvals.len(), 1);
    assert!(desk.open().skills_started.is_empty());
    // Its outcome is not recordable before the approval.
    assert_eq!(
        desk.no(skill_outcome("refund", REFUND)),
        Rejection::SkillNeedsApproval {
            skill: skill_name("refund")
        }
    );
    // A skill no rule gates starts at once.
    let events = desk.ok(start_skill("lookup_price", r#"{"plan":"pro"}"#));
    assert_eq!(kinds(&events), ["ai_skill_started"]);
}

#[test]
fn an_approved_skill_runs_and_its_outcome_is_recorded() {
    let mut desk = Desk::ai_active();
    desk.ok(start_skill("refund", REFUND));
    desk.wait(MINUTE);
    // Only the human answerable for it or a supervisor decides.
    assert_eq!(
        desk.no(approve("carl", "refund")),
        Rejection::NotAssignedToYou {
            human_id: hid("carl")
        }
    );
    let events = desk.ok(approve("ana", "refund"));
    assert_eq!(
        events,
        [ConversationEvent::SkillApproved {
            agent_id: ai("faq"),
            name: skill_name("refund"),
            by: Author::Human(hid("ana")),
            rule: handover_core::rules::RuleName::new("refunds-need-approval").unwrap(),
            policy_version: default_version(),
            at: desk.now,
        }]
    );
    assert!(desk.open().approvals.is_empty());
    let events = desk.ok(skill_outcome("refund", REFUND));
    assert_eq!(kinds(&events), ["ai_action_recorded"]);
    // Approved once, run once: a second approval has nothing to approve.
    assert_eq!(
        desk.no(approve("ana", "refund")),
        Rejection::NoApprovalPending {
            skill: skill_name("refund")
        }
    );
}

#[test]
fn a_denied_skill_does_not_run() {
    let mut desk = Desk::ai_active();
    desk.ok(start_skill("refund", REFUND));
    let events = desk.ok(deny("bob", "refund"));
    assert!(matches!(
        &events[..],
        [ConversationEvent::SkillDenied { by: Author::Human(who), rule, policy_version, .. }]
            if *who == hid("bob") && rule.as_str() == "refunds-need-approval"
                && *policy_version == default_version()
    ));
    assert!(desk.open().approvals.is_empty());
    assert_eq!(
        desk.no(skill_outcome("refund", REFUND)),
        Rejection::SkillNeedsApproval {
            skill: skill_name("refund")
        }
    );
}

#[test]
fn the_clock_denies_a_request_nobody_decided_exactly_once() {
    let mut desk = Desk::ai_active();
    desk.ok(start_skill("refund", REFUND));
    desk.wait(10 * MINUTE - 1);
    assert_eq!(desk.ok(ConversationCommand::Tick), []);
    desk.wait(1);
    let events = desk.ok(ConversationCommand::Tick);
    assert!(matches!(
        &events[..],
        [ConversationEvent::SkillDenied { by: Author::System(SystemActor::Clock), name, .. }]
            if *name == skill_name("refund")
    ));
    assert!(desk.open().approvals.is_empty());
    desk.wait(MINUTE);
    assert_eq!(desk.ok(ConversationCommand::Tick), []);
    assert_eq!(
        desk.no(approve("ana", "refund")),
        Rejection::NoApprovalPending {
            skill: skill_name("refund")
        }
    );
}

#[test]
fn a_reclaim_drops_the_waiting_request() {
    let mut desk = Desk::ai_active();
    desk.ok(start_skill("refund", REFUND));
    desk.ok(reclaim("ana"));
    assert!(desk.open().approvals.is_empty());
    assert_eq!(
        desk.no(approve("ana", "refund")),
        Rejection::NoApprovalPending {
            skill: skill_name("refund")
        }
    );
    // And no clock denies it later.
    desk.wait(11 * MINUTE);
    assert_eq!(desk.ok(ConversationCommand::Tick), []);
}

#[test]
fn an_escalation_drops_the_waiting_request() {
    let mut desk = Desk::ai_active();
    desk.ok(start_skill("refund", REFUND));
    desk.ok(post_customer("Can I talk to a human?"));
    assert!(desk.open().approvals.is_empty());
    assert_eq!(
        desk.no(deny("bob", "refund")),
        Rejection::NoApprovalPending {
            skill: skill_name("refund")
        }
    );
}

fn over_amount_rules() -> Rules {
    Rules::parse(
        r#"
        name = "big-refunds"

        [[rule]]
        name = "big-refunds-need-approval"
        kind = "skill_approval"
        skills = ["refund"]
        deadline_minutes = 5
        over_amount = 100
        "#,
    )
    .unwrap()
}

#[test]
fn only_amounts_over_the_limit_wait_and_a_missing_amount_waits() {
    for (input, waits) in [
        (r#"{"order":"A-1","amount":50}"#, false),
        (r#"{"order":"A-1","amount":100}"#, false),
        (r#"{"order":"A-1","amount":150.5}"#, true),
        (r#"{"order":"A-1"}"#, true),
    ] {
        let mut desk = Desk::ai_active_with(over_amount_rules());
        let events = desk.ok(start_skill("refund", input));
        if waits {
            assert!(
                matches!(
                    &events[..],
                    [ConversationEvent::SkillApprovalRequested { rule, deadline_ms, policy_version, .. }]
                        if rule.as_str() == "big-refunds-need-approval"
                            && *deadline_ms == 5 * MINUTE
                            && *policy_version == desk.version()
                ),
                "{input}: {events:?}"
            );
            assert_eq!(
                desk.no(skill_outcome("refund", input)),
                Rejection::SkillNeedsApproval {
                    skill: skill_name("refund")
                }
            );
        } else {
            assert_eq!(kinds(&events), ["ai_skill_started"], "{input}");
            desk.ok(skill_outcome("refund", input));
        }
    }
}

#[test]
fn approving_or_denying_with_nothing_waiting_is_refused() {
    let mut desk = Desk::ai_active();
    assert_eq!(
        desk.no(approve("ana", "refund")),
        Rejection::NoApprovalPending {
            skill: skill_name("refund")
        }
    );
    assert_eq!(
        desk.no(deny("bob", "refund")),
        Rejection::NoApprovalPending {
            skill: skill_name("refund")
        }
    );
}

// ---------------------------------------------------------------------------------------------
// A policy of one's own.
// ---------------------------------------------------------------------------------------------

fn complaints_only() -> Rules {
    Rules::parse(
        r#"
        name = "complaints-only"

        [[rule]]
        name = "complaints-to-people"
        kind = "complaint_while_ai_active"
        "#,
    )
    .unwrap()
}

#[test]
fn a_policy_without_ask_for_person_does_not_escalate_a_request_for_a_person() {
    let mut desk = Desk::ai_active_with(complaints_only());
    let events = desk.ok(post_customer("Can I talk to a human?"));
    // The concern is still heard and recorded, but no rule acts on it.
    assert_eq!(concerns_of(&events), [Concern::HumanRequested]);
    assert_not_escalated(&desk, &events);
    // Nor does it block a handoff: the policy has no concerns rule.
    desk.ok(reclaim("ana"));
    desk.ok(hand_off("ana", "sales"));
}

#[test]
fn every_rule_escalation_records_the_rule_and_the_policys_version() {
    let rules = complaints_only();
    let version = rules.version().clone();
    assert_ne!(version, default_version());
    let mut desk = Desk::ai_active_with(rules);
    let events = desk.ok(post_customer("This is unacceptable"));
    assert_escalated(
        &desk,
        &events,
        "complaints-to-people",
        EscalationCause::Complaint,
    );
    assert_eq!(escalated_by(&events).unwrap().2, version);
    // No loop guard in this policy: the handoff right after is allowed.
    desk.accept_back();
    desk.ok(hand_off("ana", "faq"));
}

#[test]
fn a_policy_without_frustration_or_circles_lets_the_customer_repeat_and_fume() {
    let mut desk = Desk::ai_active_with(complaints_only());
    for message in [
        "This bot is useless",
        "What a waste of time",
        "How do I cancel my subscription?",
        "How do I cancel my subscription?",
        "How do I cancel my subscription?",
    ] {
        let events = desk.ok(post_customer(message));
        assert_not_escalated(&desk, &events);
    }
}

// ---------------------------------------------------------------------------------------------
// evolve refuses the new events when forged.
// ---------------------------------------------------------------------------------------------

#[test]
fn evolve_refuses_forged_rule_events() {
    let desk = Desk::ai_active();
    let state = desk.state.clone();
    let forged_approval = ConversationEvent::SkillApproved {
        agent_id: ai("faq"),
        name: skill_name("refund"),
        by: Author::Human(hid("ana")),
        rule: handover_core::rules::RuleName::new("refunds-need-approval").unwrap(),
        policy_version: default_version(),
        at: T0,
    };
    assert_eq!(
        conversation::evolve(state.clone(), &forged_approval),
        Err(Rejection::NoApprovalPending {
            skill: skill_name("refund")
        })
    );
    let forged_denial = ConversationEvent::SkillDenied {
        agent_id: ai("faq"),
        name: skill_name("refund"),
        by: Author::System(SystemActor::Clock),
        reason: reason("late"),
        rule: handover_core::rules::RuleName::new("refunds-need-approval").unwrap(),
        policy_version: default_version(),
        at: T0,
    };
    assert!(conversation::evolve(state.clone(), &forged_denial).is_err());
    let by_customer = ConversationEvent::ContextShared {
        by: Author::Customer(customer()),
        context: Context::new(Some("I am a VIP".to_owned()), None, [("vip", "yes")]).unwrap(),
        at: T0,
    };
    assert!(matches!(
        conversation::evolve(state.clone(), &by_customer),
        Err(Rejection::ForeignEvent { .. })
    ));
    let not_active = ConversationEvent::AiCouldNotAnswer {
        agent_id: ai("sales"),
        reason: None,
        at: T0,
    };
    assert!(conversation::evolve(state.clone(), &not_active).is_err());
    let approval_for_another = ConversationEvent::SkillApprovalRequested {
        agent_id: ai("sales"),
        name: skill_name("refund"),
        input: SkillData::new(REFUND).unwrap(),
        rule: handover_core::rules::RuleName::new("refunds-need-approval").unwrap(),
        policy_version: default_version(),
        deadline_ms: MINUTE,
        at: T0,
    };
    assert!(conversation::evolve(state.clone(), &approval_for_another).is_err());
    let escalated_by_another = ConversationEvent::EscalatedByRule {
        agent_id: ai("sales"),
        reason: reason("frustrated"),
        cause: EscalationCause::Frustration,
        rule: handover_core::rules::RuleName::new("frustrated").unwrap(),
        policy_version: default_version(),
        at: T0,
    };
    assert!(conversation::evolve(state.clone(), &escalated_by_another).is_err());
    // A miss while a person has the conversation is forged too.
    let assigned = Desk::new().state;
    let miss = ConversationEvent::AiCouldNotAnswer {
        agent_id: ai("faq"),
        reason: None,
        at: T0,
    };
    assert!(conversation::evolve(assigned, &miss).is_err());
}

#[test]
fn repeats_to_an_earlier_ai_assignment_do_not_count() {
    let (_, [first, second, third], _) = SAME_QUESTION[0];
    let mut desk = Desk::ai_active();
    desk.ok(post_customer(first));
    desk.ok(post_customer(second));
    desk.ok(reclaim("ana"));
    desk.ok(hand_off("ana", "faq"));
    // Two asked of epoch 1, one of epoch 2: no third repeat within one assignment.
    let events = desk.ok(post_customer(third));
    assert_not_escalated(&desk, &events);
    desk.ok(post_customer(first));
    let events = desk.ok(post_customer(second));
    assert_escalated(
        &desk,
        &events,
        "going-in-circles",
        EscalationCause::GoingInCircles,
    );
}

#[test]
fn a_judged_message_on_a_closed_conversation_is_refused_as_closed_whatever_its_cause() {
    let mut desk = Desk::ai_active();
    desk.ok(ConversationCommand::Close {
        by: Participant::Customer(customer()),
        reason: None,
    });
    for cause in [
        EscalationCause::AiTimeout,
        EscalationCause::AgentDeactivated,
        EscalationCause::Complaint,
    ] {
        assert_eq!(desk.no(judged("Hello", cause)), Rejection::Closed);
    }
    // And on a conversation never opened, as not opened.
    let roster = Roster::default();
    let rules = Rules::default_rules();
    let ctx = Ctx::new(&roster, rules);
    assert_eq!(
        conversation::decide(
            &Conversation::NotOpened,
            &judged("Hello", EscalationCause::AiTimeout),
            &ctx
        ),
        Err(Rejection::NotOpened)
    );
}

#[test]
fn evolve_refuses_a_decision_on_a_waiting_skill_by_the_wrong_agent_or_author() {
    let mut desk = Desk::ai_active();
    desk.ok(start_skill("refund", REFUND));
    let state = desk.state.clone();
    let rule = handover_core::rules::RuleName::new("refunds-need-approval").unwrap();
    let approved = |agent: &str, by: Author| ConversationEvent::SkillApproved {
        agent_id: ai(agent),
        name: skill_name("refund"),
        by,
        rule: rule.clone(),
        policy_version: default_version(),
        at: T0,
    };
    let denied = |agent: &str, by: Author| ConversationEvent::SkillDenied {
        agent_id: ai(agent),
        name: skill_name("refund"),
        by,
        reason: reason("no"),
        rule: rule.clone(),
        policy_version: default_version(),
        at: T0,
    };
    // What decide records folds.
    for event in [
        approved("faq", Author::Human(hid("ana"))),
        denied("faq", Author::Human(hid("bob"))),
        denied("faq", Author::System(SystemActor::Clock)),
    ] {
        assert!(
            conversation::evolve(state.clone(), &event).is_ok(),
            "{event:?}"
        );
    }
    // Forged: another agent's request, or a decision by the customer or the AI itself.
    for event in [
        approved("sales", Author::Human(hid("ana"))),
        denied("sales", Author::Human(hid("bob"))),
        approved("faq", Author::Customer(customer())),
        approved("faq", Author::Ai(ai("faq"))),
        denied("faq", Author::Customer(customer())),
        denied("faq", Author::Ai(ai("faq"))),
    ] {
        assert!(
            conversation::evolve(state.clone(), &event).is_err(),
            "{event:?} folds"
        );
    }
}

#[test]
fn a_tick_past_an_approval_and_the_ai_reply_deadline_denies_then_escalates() {
    let mut desk = Desk::ai_active();
    desk.ok(start_skill("refund", REFUND));
    desk.ok(post_customer("Where is my refund?"));
    desk.wait(10 * MINUTE);
    // Both deadlines passed: the clock denies the refund while the AI still holds the
    // conversation, then the unanswered customer's wait hands it to people.
    let events = desk.ok(ConversationCommand::Tick);
    assert_eq!(
        kinds(&events),
        [
            "skill_denied",
            "ai_reply_overdue",
            "escalated_to_human",
            "customer_notice",
            "awaiting_human",
            "customer_notice"
        ]
    );
    assert!(matches!(
        &events[0],
        ConversationEvent::SkillDenied {
            by: Author::System(SystemActor::Clock),
            ..
        }
    ));
    assert_eq!(desk.ok(ConversationCommand::Tick), []);
}
