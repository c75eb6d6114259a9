//! Bad input, completely, through the pure rules.
//!
//! - Every conversation command in every state from every caller, against the table in
//!   `support/matrix_table.rs`, where each cell's outcome is written out by hand: accepted with
//!   which events, or rejected with which `Rejection`.
//! - Every AI-agent command in every registration state, against the table in the same file.
//! - Every bounded text and identifier at its byte limit made of multi-byte characters
//!   (accepted, unchanged), and one byte over it (a typed `InvalidInput::TooLong`), through
//!   the constructors, through decoding, and through `decide`.
//!
//! `cargo test -p handover-core --test matrix -- --nocapture` prints the matrix and the counts.

#[path = "support/matrix_table.rs"]
mod matrix_table;

use std::collections::HashSet;

use handover_core::{
    agent, conversation, human, AgentName, AiAgent, AiAgentCommand, AiAgentId, Assignment, Author,
    Channel, Conversation, ConversationCommand, ConversationEvent, ConversationId, Ctx, CustomerId,
    DefaultPolicy, Directory, Epoch, HumanCommand, HumanId, InvalidInput, Language, MessageText,
    NoticeKind, Participant, Presence, Reason, Role, Roster, Skill, SkillData, SkillName,
    SkillOutcome, Specialty, SystemActor, TenantId, Timestamp, AGENT_NAME_BYTES_MAX,
    IDENTIFIER_BYTES_MAX, MESSAGE_BYTES_MAX, REASON_BYTES_MAX, SKILL_DATA_BYTES_MAX,
    SPECIALTIES_COUNT_MAX,
};
use matrix_table::{Expect, AGENT_ROWS, AGENT_STATES, CALLERS, ROWS, STATES};

// ---------------------------------------------------------------------------------------------
// The conversation matrix.
// ---------------------------------------------------------------------------------------------

/// The roster of every cell: `faq` and `sales` active, `idle` registered and inactive.
fn roster() -> Roster {
    let mut roster = Roster::default();
    for (id, agent_name, specialty, active) in matrix_table::roster_agents() {
        let id = matrix_table::ai(id);
        let mut commands = vec![AiAgentCommand::Register {
            name: matrix_table::name(agent_name),
            specialties: vec![matrix_table::specialty(specialty)],
        }];
        if active {
            commands.push(AiAgentCommand::Activate);
        }
        for command in commands {
            for event in agent::decide(&id, roster.get(&id), &command).unwrap() {
                roster.evolve(&event).unwrap();
            }
        }
    }
    roster
}

/// Registers `id` through `human::decide` and gives them `presence` (unless offline, where a
/// registration starts).
fn register_human(
    directory: &mut Directory,
    id: &HumanId,
    register: HumanCommand,
    presence: Presence,
) {
    let mut commands = vec![register];
    if presence != Presence::Offline {
        commands.push(HumanCommand::SetPresence { presence });
    }
    for command in commands {
        for event in human::decide(id, directory.get(id), &command).unwrap() {
            directory.evolve(&event).unwrap();
        }
    }
}

/// The directory of every cell: `ana`, `carl` and `bob` available, `zoe` of another tenant,
/// `olga` offline.
fn directory() -> Directory {
    let mut directory = Directory::default();
    for h in matrix_table::directory_humans() {
        let id = matrix_table::human_id(h.id);
        let register = HumanCommand::Register {
            tenant: TenantId::new(h.tenant).unwrap(),
            name: matrix_table::human_name(h.id),
            role: h.role,
            teams: h.teams.iter().map(|t| t.parse().unwrap()).collect(),
            capacity: h.capacity,
        };
        register_human(&mut directory, &id, register, h.presence);
    }
    directory
}

/// Runs `commands` from a new conversation through `decide`, each of which must be accepted.
fn conversation_after(commands: &[ConversationCommand], ctx: &Ctx<'_>) -> Conversation {
    commands
        .iter()
        .fold(Conversation::NotOpened, |state, command| {
            let (_, next) = conversation::decide_with_state(&state, command, ctx)
                .unwrap_or_else(|r| panic!("setup command {command:?} was rejected: {r}"));
            next
        })
}

#[test]
fn every_conversation_command_in_every_state_from_every_caller() {
    let table = matrix_table::table();

    // The table has every (command, state) pair exactly once.
    let mut seen = HashSet::new();
    for line in &table {
        assert!(
            seen.insert((line.row, line.state)),
            "{} in {} appears twice",
            line.row.label(),
            line.state.label()
        );
    }
    for row in ROWS {
        for state in STATES {
            assert!(
                seen.contains(&(row, state)),
                "{} in {} is missing from the table",
                row.label(),
                state.label()
            );
        }
    }

    let roster = roster();
    let directory = directory();
    let policy = DefaultPolicy::default();
    let ctx = Ctx::new(&roster, &policy).with_directory(&directory);
    let (mut checked_accepted, mut checked_rejected, mut unrepresentable) = (0, 0, 0);
    let mut rejections_seen = HashSet::new();
    for line in &table {
        let state = conversation_after(&line.state.setup(), &ctx);
        assert_eq!(
            state.status(),
            line.state.status(),
            "the setup of {} leads elsewhere",
            line.state.label()
        );
        for (caller, expect) in CALLERS.iter().zip(&line.cells) {
            let cell = format!(
                "{} in {} by {}",
                line.row.label(),
                line.state.label(),
                caller.label()
            );
            let command = line.row.command(*caller);
            let command = match (command, expect) {
                (None, Expect::Unrepresentable) => {
                    unrepresentable += 1;
                    continue;
                }
                (None, _) => panic!("{cell}: the table expects an outcome, but no such command"),
                (Some(_), Expect::Unrepresentable) => {
                    panic!("{cell}: the table says unrepresentable, but the command exists")
                }
                (Some(command), _) => command,
            };
            let decided = conversation::decide_with_state(&state, &command, &ctx);
            match (expect, decided) {
                (Expect::Accepted(expected), Ok((events, next))) => {
                    assert_eq!(&events, expected, "{cell}: accepted with other events");
                    // What decide returns is what a replay of the whole stream folds to, each
                    // event at the time it was recorded.
                    let now = Some(ctx.now);
                    let mut replay = Conversation::NotOpened;
                    for command in line.state.setup() {
                        for event in conversation::decide(&replay, &command, &ctx).unwrap() {
                            replay = conversation::evolve_at(replay, &event, now).unwrap();
                        }
                    }
                    for event in &events {
                        replay = conversation::evolve_at(replay, event, now).unwrap();
                    }
                    assert_eq!(next, replay, "{cell}: the new state is not the fold");
                    checked_accepted += 1;
                }
                (Expect::Rejected(expected), Err(rejection)) => {
                    assert_eq!(&rejection, expected, "{cell}: rejected for another reason");
                    // Rejections are sentences a person can read.
                    assert!(rejection.to_string().len() > 10, "{cell}: {rejection}");
                    rejections_seen.insert(std::mem::discriminant(&rejection));
                    checked_rejected += 1;
                }
                (Expect::Accepted(expected), Err(rejection)) => {
                    panic!("{cell}: expected {expected:?}, rejected with {rejection:?}")
                }
                (Expect::Rejected(expected), Ok((events, _))) => {
                    panic!("{cell}: expected {expected:?}, accepted with {events:?}")
                }
                (Expect::Unrepresentable, _) => unreachable!("handled above"),
            }
        }
    }

    let (cells, accepted, rejected, na) = matrix_table::print_grid(&table);
    println!(
        "conversation matrix: {} commands x {} states x {} callers = {cells} cells: \
         {accepted} accepted, {rejected} rejected, {na} unrepresentable by type; \
         {} distinct rejection variants",
        ROWS.len(),
        STATES.len(),
        CALLERS.len(),
        rejections_seen.len()
    );
    assert_eq!(
        (checked_accepted, checked_rejected, unrepresentable),
        (accepted, rejected, na)
    );
    assert_eq!(cells, ROWS.len() * STATES.len() * CALLERS.len());
}

// ---------------------------------------------------------------------------------------------
// The AI-agent matrix.
// ---------------------------------------------------------------------------------------------

#[test]
fn every_ai_agent_command_in_every_registration_state() {
    let agent_id = AiAgentId::new("pricing-bot").unwrap();
    let table = matrix_table::agent_table(&agent_id);
    assert_eq!(table.len(), AGENT_ROWS.len() * AGENT_STATES.len());
    for row in AGENT_ROWS {
        for state in AGENT_STATES {
            assert_eq!(
                table
                    .iter()
                    .filter(|(r, s, _)| *r == row && *s == state)
                    .count(),
                1,
                "{row:?} in {state:?} must appear once"
            );
        }
    }
    let (mut accepted, mut rejected) = (0, 0);
    println!("{:<28} {:<14} outcome", "command", "state");
    for (row, state, expected) in &table {
        // The registration and the roster, both folded from the setup's events.
        let mut registration: Option<AiAgent> = None;
        let mut roster = Roster::default();
        for command in state.setup() {
            for event in agent::decide(&agent_id, registration.as_ref(), &command).unwrap() {
                registration = agent::evolve(registration, &event).unwrap();
                roster.evolve(&event).unwrap();
            }
        }
        assert_eq!(roster.get(&agent_id), registration.as_ref());
        let decided = agent::decide(&agent_id, registration.as_ref(), &row.command());
        assert_eq!(&decided, expected, "{row:?} in {state:?}");
        let outcome = match &decided {
            Ok(events) => {
                accepted += 1;
                // What decide accepted folds, into the registration and into the roster.
                for event in events {
                    registration = agent::evolve(registration, event).unwrap();
                    roster.evolve(event).unwrap();
                }
                assert_eq!(roster.get(&agent_id), registration.as_ref());
                format!("ok:{}", events[0].type_name())
            }
            Err(rejection) => {
                rejected += 1;
                format!("{rejection:?}")
                    .split([' ', '{'])
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            }
        };
        println!(
            "{:<28} {:<14} {outcome}",
            format!("{row:?}"),
            format!("{state:?}")
        );
    }
    println!(
        "AI-agent matrix: {} commands x {} states = {} cells: {accepted} accepted, {rejected} rejected",
        AGENT_ROWS.len(),
        AGENT_STATES.len(),
        table.len()
    );
}

// ---------------------------------------------------------------------------------------------
// Byte limits.
// ---------------------------------------------------------------------------------------------

/// A bounded type: its name in errors, its limit in bytes, and its constructor (returning the
/// stored text) and decoder (through serde, as a record is read).
struct Bounded {
    what: &'static str,
    max: usize,
    new: fn(&str) -> Result<String, InvalidInput>,
    decode: fn(&[u8]) -> Result<String, String>,
}

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard()
}

macro_rules! bounded {
    ($ty:ty, $what:literal, $max:expr) => {
        Bounded {
            what: $what,
            max: $max,
            new: |value| <$ty>::new(value).map(|v| v.as_str().to_owned()),
            decode: |bytes| {
                bincode::serde::decode_from_slice::<$ty, _>(bytes, bincode_config())
                    .map(|(v, _)| v.as_str().to_owned())
                    .map_err(|e| e.to_string())
            },
        }
    };
}

/// Every bounded text and identifier of the domain (`crates/handover-core/src/limits.rs`).
fn bounded_types() -> Vec<Bounded> {
    vec![
        bounded!(AiAgentId, "AI agent id", IDENTIFIER_BYTES_MAX),
        bounded!(HumanId, "human agent id", IDENTIFIER_BYTES_MAX),
        bounded!(CustomerId, "customer id", IDENTIFIER_BYTES_MAX),
        bounded!(Channel, "channel", IDENTIFIER_BYTES_MAX),
        bounded!(SkillName, "skill name", IDENTIFIER_BYTES_MAX),
        bounded!(Specialty, "specialty", IDENTIFIER_BYTES_MAX),
        bounded!(AgentName, "AI agent name", AGENT_NAME_BYTES_MAX),
        bounded!(MessageText, "message", MESSAGE_BYTES_MAX),
        bounded!(Reason, "reason", REASON_BYTES_MAX),
        bounded!(SkillData, "skill data", SKILL_DATA_BYTES_MAX),
    ]
}

/// Exactly `bytes` bytes of `unit` (a multi-byte character), the remainder made up with other
/// multi-byte characters: no ASCII at all.
fn multibyte(bytes: usize, unit: char) -> String {
    let len = unit.len_utf8();
    assert!(len > 1 && bytes >= 8);
    let mut s: String = std::iter::repeat_n(unit, bytes / len).collect();
    match bytes % len {
        0 => {}
        1 => {
            // One byte short of a whole unit: trade a unit for one a byte longer.
            s.pop();
            s.push_str(match len {
                2 => "€",
                3 => "😀",
                _ => "€é",
            });
        }
        2 => s.push('é'),
        3 => s.push('€'),
        _ => unreachable!(),
    }
    assert_eq!(s.len(), bytes);
    s
}

/// The exact-limit texts: (description, text), each exactly `max` bytes.
fn at_limit(max: usize) -> Vec<(&'static str, String)> {
    let mixed: String = "aé€😀"
        .chars()
        .cycle()
        .scan(0, |used, c| {
            *used += c.len_utf8();
            (*used <= max - 3).then_some(c)
        })
        .collect();
    let mixed = format!("{mixed}{}", "a".repeat(max - mixed.len()));
    vec![
        ("2-byte characters", multibyte(max, 'é')),
        ("3-byte characters", multibyte(max, '€')),
        ("4-byte characters", multibyte(max, '😀')),
        ("mixed widths", mixed),
    ]
}

/// Texts one byte over the limit: each exact-limit text plus one ASCII byte, and one made only
/// of multi-byte characters (the last one straddles the limit).
fn over_limit(max: usize) -> Vec<(String, String)> {
    let mut over: Vec<(String, String)> = at_limit(max)
        .into_iter()
        .map(|(how, s)| (format!("{how} + 1 ASCII byte"), format!("{s}a")))
        .collect();
    let mut straddling = multibyte(max, '😀');
    straddling.pop();
    straddling.push_str("€é");
    over.push((
        "multi-byte, last character straddling".to_owned(),
        straddling,
    ));
    // Fewer characters than the limit, more bytes: the limit is not counted in characters.
    over.push(("max/2 4-byte characters".to_owned(), "😀".repeat(max / 2)));
    over
}

#[test]
fn every_bounded_text_and_id_is_counted_in_bytes() {
    let config = bincode_config();
    let mut checked = 0;
    for bounded in bounded_types() {
        let max = bounded.max;
        for (how, value) in at_limit(max) {
            assert_eq!(value.len(), max);
            let stored = (bounded.new)(&value)
                .unwrap_or_else(|e| panic!("{} of {max} bytes ({how}) refused: {e}", bounded.what));
            assert_eq!(stored, value, "{} was changed", bounded.what);
            // Decoding (as a record is read) applies the same check.
            let bytes = bincode::serde::encode_to_vec(&value, config).unwrap();
            assert_eq!((bounded.decode)(&bytes).as_deref(), Ok(value.as_str()));
            checked += 1;
        }
        for (how, value) in over_limit(max) {
            let expected = InvalidInput::TooLong {
                what: bounded.what,
                len: value.len(),
                max,
            };
            assert_eq!(
                (bounded.new)(&value),
                Err(expected.clone()),
                "{} of {} bytes ({how})",
                bounded.what,
                value.len()
            );
            assert_eq!(
                expected.to_string(),
                format!(
                    "{} is {} bytes long; the limit is {max} bytes",
                    bounded.what,
                    value.len()
                )
            );
            let bytes = bincode::serde::encode_to_vec(&value, config).unwrap();
            let decoded = (bounded.decode)(&bytes);
            assert!(
                decoded
                    .as_ref()
                    .is_err_and(|e| e.contains(&expected.to_string())),
                "{} of {} bytes decoded as {decoded:?}",
                bounded.what,
                value.len()
            );
            checked += 1;
        }
        println!(
            "{:<16} limit {:>6} bytes: {} exact-limit texts accepted, {} over-limit texts rejected",
            bounded.what,
            max,
            at_limit(max).len(),
            over_limit(max).len()
        );
    }
    println!(
        "byte limits: {checked} texts checked over {} bounded types",
        bounded_types().len()
    );
}

#[test]
fn empty_and_control_character_input_is_typed_for_every_bounded_type() {
    let mut checked = 0;
    for bounded in bounded_types() {
        // Skill data may be empty; everything else may not.
        let empty = (bounded.new)("");
        let blank = (bounded.new)(" \u{3000}\t");
        if bounded.what == "skill data" {
            assert_eq!(empty, Ok(String::new()));
        } else {
            assert_eq!(empty, Err(InvalidInput::Empty { what: bounded.what }));
            assert_eq!(blank, Err(InvalidInput::Empty { what: bounded.what }));
        }
        for bad in ["a\u{0}b", "a\u{1b}[31mb", "a\u{7f}b", "a\u{85}b", "é\u{9b}"] {
            assert_eq!(
                (bounded.new)(bad),
                Err(InvalidInput::BadCharacter { what: bounded.what }),
                "{} accepted {bad:?}",
                bounded.what
            );
            checked += 1;
        }
    }
    println!("control characters: {checked} values refused");
}

#[test]
fn a_conversation_id_that_is_not_a_uuid_is_typed_and_its_echo_is_bounded() {
    let long = "é".repeat(10_000);
    for value in [
        "",
        "nope",
        "0190f1f0-0000-7000-8000-00000000000g",
        long.as_str(),
    ] {
        let error = value.parse::<ConversationId>().unwrap_err();
        let InvalidInput::NotAConversationId { value: echoed } = &error else {
            panic!("{value:?} gave {error:?}");
        };
        // The error repeats at most 64 characters of what it was given, cut at a character.
        assert!(echoed.chars().count() <= 64 && value.starts_with(echoed.as_str()));
    }
    println!("conversation ids: 4 malformed ids refused, echoes at most 64 characters");
}

/// Values at their byte limits, made of multi-byte characters, go through `decide` and come out
/// unchanged in the events.
#[test]
fn values_at_their_byte_limits_are_accepted_by_decide_unchanged() {
    let at = |max: usize| multibyte(max, '😀');
    let customer = CustomerId::new(multibyte(IDENTIFIER_BYTES_MAX, '€')).unwrap();
    let channel = Channel::new(at(IDENTIFIER_BYTES_MAX)).unwrap();
    let human = HumanId::new(multibyte(IDENTIFIER_BYTES_MAX, 'é')).unwrap();
    let agent_id = AiAgentId::new(at(IDENTIFIER_BYTES_MAX)).unwrap();
    let agent_name = AgentName::new(multibyte(AGENT_NAME_BYTES_MAX, '€')).unwrap();
    let specialties: Vec<Specialty> = (0..SPECIALTIES_COUNT_MAX)
        .map(|i| {
            Specialty::new(format!(
                "{i:02}{}",
                multibyte(IDENTIFIER_BYTES_MAX - 2, '€')
            ))
            .unwrap()
        })
        .collect();

    let mut roster = Roster::default();
    for command in [
        AiAgentCommand::Register {
            name: agent_name.clone(),
            specialties: specialties.clone(),
        },
        AiAgentCommand::Activate,
    ] {
        for event in agent::decide(&agent_id, roster.get(&agent_id), &command).unwrap() {
            roster.evolve(&event).unwrap();
        }
    }
    assert_eq!(
        roster.get(&agent_id).unwrap().profile.specialties,
        specialties
    );
    let human_name = AgentName::new(multibyte(AGENT_NAME_BYTES_MAX, 'é')).unwrap();
    let mut directory = Directory::default();
    register_human(
        &mut directory,
        &human,
        HumanCommand::Register {
            tenant: TenantId::default_tenant(),
            name: human_name.clone(),
            role: Role::Agent,
            teams: vec![],
            capacity: 1,
        },
        Presence::Available,
    );
    let policy = DefaultPolicy::default();
    let ctx = Ctx::new(&roster, &policy).with_directory(&directory);
    let english = |kind, text: String| ConversationEvent::CustomerNotice {
        kind,
        text: MessageText::new(text).unwrap(),
        language: Language::english(),
    };
    let message = MessageText::new(at(MESSAGE_BYTES_MAX)).unwrap();
    let reason = Reason::new(multibyte(REASON_BYTES_MAX, '€')).unwrap();
    let skill = Skill {
        name: SkillName::new(multibyte(IDENTIFIER_BYTES_MAX, 'é')).unwrap(),
        input: SkillData::new(at(SKILL_DATA_BYTES_MAX)).unwrap(),
        outcome: SkillOutcome::Failed(
            SkillData::new(multibyte(SKILL_DATA_BYTES_MAX, '€')).unwrap(),
        ),
    };
    let by_ai = Assignment {
        agent_id: agent_id.clone(),
        epoch: Epoch(1),
    };
    let steps = [
        (
            ConversationCommand::Open {
                customer: customer.clone(),
                channel: channel.clone(),
                human: Some(human.clone()),
            },
            vec![
                ConversationEvent::Started {
                    tenant: TenantId::default_tenant(),
                    customer: customer.clone(),
                    channel,
                    team: None,
                    language: None,
                    at: Timestamp::default(),
                },
                ConversationEvent::HumanAssigned {
                    human_id: human.clone(),
                    name: human_name.clone(),
                    team: None,
                    by: Author::System(SystemActor::Backend),
                    at: Timestamp::default(),
                },
            ],
        ),
        (
            ConversationCommand::PostMessage {
                by: Participant::Customer(customer.clone()),
                text: message.clone(),
            },
            vec![ConversationEvent::MessagePosted {
                author: Author::Customer(customer),
                text: message.clone(),
                concerns: vec![],
            }],
        ),
        (
            ConversationCommand::HandOffToAi {
                by: human.clone(),
                agent_id: agent_id.clone(),
                reason: Some(reason.clone()),
            },
            vec![
                ConversationEvent::HandedOffToAi {
                    agent_id: agent_id.clone(),
                    agent_name: agent_name.clone(),
                    by_human: human.clone(),
                    reason: Some(reason.clone()),
                },
                english(
                    NoticeKind::AiJoined,
                    format!("{agent_name}, an AI assistant, has joined the conversation."),
                ),
            ],
        ),
        (
            ConversationCommand::RecordAiAction {
                by: by_ai.clone(),
                skill: skill.clone(),
            },
            vec![ConversationEvent::AiActionRecorded {
                agent_id: agent_id.clone(),
                skill,
            }],
        ),
        (
            ConversationCommand::PostMessage {
                by: Participant::Ai(by_ai),
                text: message.clone(),
            },
            vec![ConversationEvent::MessagePosted {
                author: Author::Ai(agent_id.clone()),
                text: message,
                concerns: vec![],
            }],
        ),
        (
            ConversationCommand::Reclaim {
                by: human.clone(),
                reason: Some(reason.clone()),
            },
            vec![
                ConversationEvent::Reclaimed {
                    agent_id,
                    by_human: human,
                    reason: Some(reason),
                },
                english(
                    NoticeKind::AiLeft,
                    format!("The AI assistant {agent_name} has left the conversation."),
                ),
                english(
                    NoticeKind::PersonJoined,
                    format!("{human_name} has joined the conversation."),
                ),
            ],
        ),
    ];
    let mut state = Conversation::NotOpened;
    for (command, expected) in &steps {
        let (events, next) = conversation::decide_with_state(&state, command, &ctx)
            .unwrap_or_else(|r| panic!("{} at the limits was rejected: {r}", command.name()));
        assert_eq!(&events, expected, "{}", command.name());
        state = next;
    }
    println!(
        "decide at the byte limits: {} commands accepted, every value unchanged",
        steps.len()
    );
}

// ---------------------------------------------------------------------------------------------
// The escalation rules' events, as stored.
// ---------------------------------------------------------------------------------------------

/// One of each event the escalation rules added, with every optional field filled in and left
/// out, and every escalation cause.
fn rule_events() -> Vec<ConversationEvent> {
    use handover_core::context::Context;
    use handover_core::rules::{PolicyVersion, RuleName, Rules};
    use handover_core::EscalationCause;
    let faq = AiAgentId::new("faq").unwrap();
    let bob = HumanId::new("bob").unwrap();
    let rule = RuleName::new("refunds-need-approval").unwrap();
    let version = Rules::default_rules().version().clone();
    let other_version = PolicyVersion::new("0123456789abcdef").unwrap();
    let at = Timestamp::from_millis(1_720_000_000_000);
    let refund = SkillName::new("refund").unwrap();
    let context = Context::new(
        Some("Tried the FAQ; the order is past 30 days, ção".to_owned()),
        Some("billing".to_owned()),
        [("order_id", "A-17"), ("amount", "120"), ("note", "")],
    )
    .unwrap();
    let mut events = Vec::new();
    for cause in [
        EscalationCause::AgentRequested,
        EscalationCause::CustomerAskedForHuman,
        EscalationCause::AgentDeactivated,
        EscalationCause::AiTimeout,
        EscalationCause::Frustration,
        EscalationCause::GoingInCircles,
        EscalationCause::AiCouldNotAnswer,
        EscalationCause::Complaint,
    ] {
        events.push(ConversationEvent::EscalatedByRule {
            agent_id: faq.clone(),
            reason: Reason::new("the customer sounds frustrated").unwrap(),
            cause,
            rule: RuleName::new("frustrated").unwrap(),
            policy_version: version.clone(),
            at,
        });
        events.push(ConversationEvent::EscalatedToHuman {
            agent_id: faq.clone(),
            reason: Reason::new("why").unwrap(),
            cause,
        });
    }
    for reason in [None, Some(Reason::new("no article about it").unwrap())] {
        events.push(ConversationEvent::AiCouldNotAnswer {
            agent_id: faq.clone(),
            reason,
            at,
        });
    }
    events.extend([
        ConversationEvent::PolicyOverridden {
            by: bob.clone(),
            rule: RuleName::new("loop-guard").unwrap(),
            policy_version: other_version,
            refusal: Reason::new("3 handoffs already").unwrap(),
            at,
        },
        ConversationEvent::SkillApprovalRequested {
            agent_id: faq.clone(),
            name: refund.clone(),
            input: SkillData::new(r#"{"order":"A-17","amount":120}"#).unwrap(),
            rule: rule.clone(),
            policy_version: version.clone(),
            deadline_ms: 600_000,
            at,
        },
        ConversationEvent::SkillApproved {
            agent_id: faq.clone(),
            name: refund.clone(),
            by: Author::Human(bob.clone()),
            rule: rule.clone(),
            policy_version: version.clone(),
            at,
        },
        ConversationEvent::SkillDenied {
            agent_id: faq.clone(),
            name: refund,
            by: Author::System(SystemActor::Clock),
            reason: Reason::new("nobody approved or denied it within 600000 ms").unwrap(),
            rule,
            policy_version: version,
            at,
        },
        ConversationEvent::ContextShared {
            by: Author::Human(bob),
            context,
            at,
        },
        ConversationEvent::ContextShared {
            by: Author::Ai(faq),
            context: Context::default(),
            at,
        },
    ]);
    events
}

#[test]
fn the_rules_events_round_trip_through_bincode_and_come_after_the_older_ones() {
    let config = bincode_config();
    for event in rule_events() {
        // Alone, and inside the log's `Event`.
        let bytes = bincode::serde::encode_to_vec(&event, config).unwrap();
        let (decoded, read): (ConversationEvent, usize) =
            bincode::serde::decode_from_slice(&bytes, config).unwrap();
        assert_eq!(decoded, event);
        assert_eq!(read, bytes.len(), "{event:?} leaves bytes unread");
        let wrapped = handover_core::Event::Conversation(event.clone());
        let bytes = bincode::serde::encode_to_vec(&wrapped, config).unwrap();
        let (decoded, _): (handover_core::Event, usize) =
            bincode::serde::decode_from_slice(&bytes, config).unwrap();
        assert_eq!(decoded, wrapped);
        // New variants are added at the end, so records written before keep their meaning:
        // the variant index (bincode's first byte) is past every older event's (the last of
        // which, `ai_skill_started`, is 18).
        let first = bincode::serde::encode_to_vec(&event, config).unwrap()[0];
        let new_kind = !matches!(event, ConversationEvent::EscalatedToHuman { .. });
        assert_eq!(first > 18, new_kind, "{event:?} is variant {first}");
    }
    // The causes the rules added come after the older ones too.
    for (cause, index) in [
        (handover_core::EscalationCause::AgentRequested, 0u8),
        (handover_core::EscalationCause::AiTimeout, 3),
        (handover_core::EscalationCause::Frustration, 4),
        (handover_core::EscalationCause::Complaint, 7),
    ] {
        assert_eq!(
            bincode::serde::encode_to_vec(cause, config).unwrap(),
            [index]
        );
    }
    let started = ConversationEvent::AiSkillStarted {
        agent_id: AiAgentId::new("faq").unwrap(),
        name: SkillName::new("lookup_price").unwrap(),
        input: SkillData::new("{}").unwrap(),
    };
    assert_eq!(
        bincode::serde::encode_to_vec(&started, config).unwrap()[0],
        18
    );
}

#[test]
fn a_stored_context_or_rule_name_that_breaks_its_bounds_does_not_decode() {
    use handover_core::rules::RuleName;
    let config = bincode_config();
    // A rule name is checked again when read.
    let forged = bincode::serde::encode_to_vec("Loop Guard", config).unwrap();
    assert!(bincode::serde::decode_from_slice::<RuleName, _>(&forged, config).is_err());
    let good = bincode::serde::encode_to_vec("loop-guard", config).unwrap();
    let (name, _): (RuleName, usize) = bincode::serde::decode_from_slice(&good, config).unwrap();
    assert_eq!(name.as_str(), "loop-guard");
    // So is a policy version.
    let forged = bincode::serde::encode_to_vec("not-a-version", config).unwrap();
    assert!(
        bincode::serde::decode_from_slice::<handover_core::rules::PolicyVersion, _>(
            &forged, config
        )
        .is_err()
    );
}
