//! The escalation rules at run time, against a real sled directory: the policy's rules escalate
//! (frustration, the AI's misses) with their name and the policy's version, gated skills wait
//! for a person (approved, denied, timed out by the clock, dropped by a reclaim), supervisors
//! override refusals, handoffs carry a context, each agent reads its history window, and the
//! embedder's own rules escalate and refuse after the built-in ones.
//!
//! Time is a `ManualClock`: nothing here waits on real time except generous hang guards.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use handover::*;
use tokio::sync::mpsc;

const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);
/// A hang guard, never a timed assertion: a step that takes this long is stuck.
const HANG: Duration = Duration::from_secs(120);

fn id<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse().unwrap()
}

fn text(s: &str) -> MessageText {
    MessageText::new(s).unwrap()
}

fn reason(s: &str) -> Reason {
    Reason::new(s).unwrap()
}

struct Fixture {
    _dir: tempfile::TempDir,
    handover: Handover,
    clock: ManualClock,
}

/// A runtime on a new directory with a manual clock, routing off (an escalated conversation
/// stays in its queue), `ana` and `bruno` signed in as supervisors and `carla` as an agent.
async fn start_with(settings: impl FnOnce(Config) -> Config) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let mut config = Config::new(dir.path())
        .workers(2)
        .router(Arc::new(NoRouter))
        .clock(Arc::new(clock.clone()));
    config.runtime = config.runtime.ai_cancel_grace(Duration::from_secs(60));
    let handover = Handover::start(settings(config)).await.unwrap();
    handover_testkit::staff(&handover, &["ana", "bruno"]).await;
    handover_testkit::agents(&handover, &["carla"]).await;
    Fixture {
        _dir: dir,
        handover,
        clock,
    }
}

async fn start() -> Fixture {
    start_with(|config| config).await
}

async fn agent(handover: &Handover, name: &str, behavior: Arc<dyn AiAgentBehavior>) -> AiAgentId {
    let agent_id: AiAgentId = id(name);
    handover
        .register_ai_agent(AiAgentProfile {
            id: agent_id.clone(),
            name: AgentName::new(format!("{name} bot")).unwrap(),
            specialties: vec![id("pricing")],
        })
        .await
        .unwrap();
    handover.activate_ai_agent(agent_id.clone()).await.unwrap();
    handover
        .attach_ai_agent(agent_id.clone(), behavior)
        .unwrap();
    agent_id
}

async fn open_for(handover: &Handover, customer: &str) -> ConversationId {
    handover
        .open_conversation(id(customer), id("web-chat"), Some(id("ana")))
        .await
        .unwrap()
        .conversation_id
}

async fn open(handover: &Handover) -> ConversationId {
    open_for(handover, "cust-1").await
}

/// Reads the watch until an event matching `pred` arrives, returning it.
async fn watch_until(
    watch: &mut Watch,
    pred: impl Fn(&ConversationEvent) -> bool,
) -> Arc<RecordedEvent> {
    tokio::time::timeout(HANG, async {
        while let Some(record) = watch.next().await.transpose().unwrap() {
            if matches!(&record.event, Event::Conversation(e) if pred(e)) {
                return record;
            }
        }
        panic!("runtime stopped before the awaited event");
    })
    .await
    .expect("hang guard: the awaited event never came")
}

async fn recv<T>(receiver: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(HANG, receiver.recv())
        .await
        .expect("hang guard: nothing was reported")
        .expect("the sender lives as long as the runtime")
}

fn types<R: std::borrow::Borrow<RecordedEvent>>(records: &[R]) -> Vec<&'static str> {
    records
        .iter()
        .map(|r| r.borrow().event.type_name())
        .collect()
}

fn conversation_events(receipt: &Receipt) -> Vec<&ConversationEvent> {
    receipt
        .events
        .iter()
        .filter_map(|record| match &record.event {
            Event::Conversation(event) => Some(event),
            _ => None,
        })
        .collect()
}

/// The `escalated_to_human` a rule recorded in `receipt`: (rule, cause, policy version).
fn rule_escalation(receipt: &Receipt) -> Option<(RuleName, EscalationCause, PolicyVersion)> {
    conversation_events(receipt)
        .into_iter()
        .find_map(|event| match event {
            ConversationEvent::EscalatedByRule {
                rule,
                cause,
                policy_version,
                ..
            } => Some((rule.clone(), *cause, policy_version.clone())),
            _ => None,
        })
}

// ---------------------------------------------------------------------------------------------
// Behaviours

/// Holds its handoff call until the assignment ends, and reports both moments.
struct Holder {
    report: mpsc::UnboundedSender<&'static str>,
}

#[async_trait]
impl AiAgentBehavior for Holder {
    async fn on_handoff(
        &self,
        session: &AiSession,
        _: &[Arc<RecordedEvent>],
    ) -> Result<(), AgentError> {
        let _ = self.report.send("started");
        session.cancelled().await;
        let _ = self.report.send(if session.is_cancelled() {
            "cancelled"
        } else {
            "?"
        });
        Ok(())
    }

    async fn on_customer_message(&self, _: &AiSession, _: &MessageText) -> Result<(), AgentError> {
        Ok(())
    }
}

/// Cannot answer anything: reports the miss, then apologises.
struct Clueless;

#[async_trait]
impl AiAgentBehavior for Clueless {
    async fn on_customer_message(
        &self,
        session: &AiSession,
        _: &MessageText,
    ) -> Result<(), AgentError> {
        session
            .could_not_answer(Some(reason("not in my knowledge base")))
            .await?;
        // Refused once the misses escalated: nothing to do about it.
        let _ = session.reply(text("Sorry, I do not know that.")).await;
        Ok(())
    }
}

/// At its handoff, runs the gated `refund` skill and reports how it ended; counts the runs.
struct Refunder {
    ran: Arc<AtomicUsize>,
    report: mpsc::UnboundedSender<Result<Receipt, Error>>,
}

#[async_trait]
impl AiAgentBehavior for Refunder {
    async fn on_handoff(
        &self,
        session: &AiSession,
        _: &[Arc<RecordedEvent>],
    ) -> Result<(), AgentError> {
        let ran = Arc::clone(&self.ran);
        let outcome = session
            .run_skill(
                SkillName::new("refund")?,
                SkillData::new(r#"{"order":"A-1","amount":20}"#)?,
                async move {
                    ran.fetch_add(1, Ordering::SeqCst);
                    Ok("refunded 20 USD".to_owned())
                },
            )
            .await;
        let _ = self.report.send(outcome);
        Ok(())
    }

    async fn on_customer_message(&self, _: &AiSession, _: &MessageText) -> Result<(), AgentError> {
        Ok(())
    }
}

/// What one `on_handoff` saw.
#[derive(Debug)]
struct Seen {
    agent_id: AiAgentId,
    epoch: Epoch,
    history: Vec<&'static str>,
    texts: Vec<String>,
    context: Option<Context>,
}

/// Reports what each `on_handoff` is given, and answers nothing.
struct Recorder {
    report: mpsc::UnboundedSender<Seen>,
}

#[async_trait]
impl AiAgentBehavior for Recorder {
    async fn on_handoff(
        &self,
        session: &AiSession,
        history: &[Arc<RecordedEvent>],
    ) -> Result<(), AgentError> {
        let texts = history
            .iter()
            .filter_map(|record| match &record.event {
                Event::Conversation(ConversationEvent::MessagePosted { text, .. }) => {
                    Some(text.as_str().to_owned())
                }
                _ => None,
            })
            .collect();
        let _ = self.report.send(Seen {
            agent_id: session.assignment().agent_id.clone(),
            epoch: session.assignment().epoch,
            history: types(history),
            texts,
            context: session.context().cloned(),
        });
        Ok(())
    }

    async fn on_customer_message(&self, _: &AiSession, _: &MessageText) -> Result<(), AgentError> {
        Ok(())
    }
}

/// Answers nothing and reports nothing.
struct Silent;

#[async_trait]
impl AiAgentBehavior for Silent {
    async fn on_customer_message(&self, _: &AiSession, _: &MessageText) -> Result<(), AgentError> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The policy's rules

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frustrated_customer_is_escalated_by_rule_and_the_ai_session_is_cancelled() {
    let f = start().await;
    let (report, mut reports) = mpsc::unbounded_channel();
    let bot = agent(&f.handover, "faq", Arc::new(Holder { report })).await;
    let c = open(&f.handover).await;
    f.handover
        .hand_off_to_ai(c, id("ana"), bot.clone(), None)
        .await
        .unwrap();
    assert_eq!(recv(&mut reports).await, "started");

    let receipt = f
        .handover
        .post_customer_message(
            c,
            id("cust-1"),
            text("This bot is useless, a waste of time"),
        )
        .await
        .unwrap();
    let (rule, cause, version) = rule_escalation(&receipt).expect("escalated by a rule");
    assert_eq!(rule.as_str(), "frustrated");
    assert_eq!(cause, EscalationCause::Frustration);
    assert_eq!(&version, Rules::default_rules().version());
    assert!(matches!(receipt.status, Status::AwaitingHuman { .. }));
    // The message and the escalation are one append: no AI reply in between.
    assert_eq!(
        types(&receipt.events)[..2],
        ["message_posted", "escalated_to_human"]
    );
    assert_eq!(recv(&mut reports).await, "cancelled");
    f.handover.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ai_that_cannot_answer_twice_in_a_row_is_escalated_by_rule() {
    let f = start().await;
    let bot = agent(&f.handover, "faq", Arc::new(Clueless)).await;
    let c = open(&f.handover).await;
    f.handover
        .hand_off_to_ai(c, id("ana"), bot.clone(), None)
        .await
        .unwrap();
    let mut watch = f.handover.watch(c).await.unwrap();
    f.handover
        .post_customer_message(c, id("cust-1"), text("What is the warranty on model X?"))
        .await
        .unwrap();
    // The first miss and its apology.
    watch_until(&mut watch, |e| {
        matches!(
            e,
            ConversationEvent::MessagePosted {
                author: Author::Ai(_),
                ..
            }
        )
    })
    .await;
    f.handover
        .post_customer_message(c, id("cust-1"), text("Do you deliver to Iceland?"))
        .await
        .unwrap();
    let escalated = watch_until(&mut watch, |e| {
        matches!(e, ConversationEvent::EscalatedByRule { .. })
    })
    .await;
    match &escalated.event {
        Event::Conversation(ConversationEvent::EscalatedByRule {
            agent_id,
            rule,
            cause,
            policy_version,
            ..
        }) => {
            assert_eq!(agent_id, &bot);
            assert_eq!(rule.as_str(), "ai-keeps-missing");
            assert_eq!(*cause, EscalationCause::AiCouldNotAnswer);
            assert_eq!(policy_version, Rules::default_rules().version());
        }
        other => panic!("unexpected {other:?}"),
    }
    let history = f.handover.history(c).await.unwrap();
    let misses = history
        .iter()
        .filter(|r| r.event.type_name() == "ai_could_not_answer")
        .count();
    assert_eq!(misses, 2);
    f.handover.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_from_toml_without_ask_for_person_keeps_the_ai_on_i_want_a_human() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.toml");
    std::fs::write(
        &file,
        r#"
        name = "ai-first"

        [[rule]]
        name = "loop-guard"
        kind = "loop_guard"
        max_handoffs = 3
        cooldown_minutes = 10
        "#,
    )
    .unwrap();
    let f = start_with(|config| config.policy_file(&file).unwrap()).await;
    let bot = agent(&f.handover, "faq", Arc::new(Silent)).await;
    let c = open(&f.handover).await;
    f.handover
        .hand_off_to_ai(c, id("ana"), bot.clone(), None)
        .await
        .unwrap();
    let receipt = f
        .handover
        .post_customer_message(c, id("cust-1"), text("I want a human"))
        .await
        .unwrap();
    assert_eq!(types(&receipt.events), ["message_posted"]);
    match conversation_events(&receipt)[0] {
        ConversationEvent::MessagePosted { concerns, .. } => {
            assert_eq!(concerns, &[Concern::HumanRequested]);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(receipt.status, Status::AiActive { .. }));

    // A file that is no policy is refused, with where the mistake is.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"x\"\n[[rule]]\nname = \"a\"\nkind = \"nonsense\"\n",
    )
    .unwrap();
    let error = Config::new(dir.path()).policy_file(&bad).unwrap_err();
    assert!(matches!(error, PolicyFileError::Invalid { .. }), "{error}");
    let missing = Config::new(dir.path())
        .policy_file(dir.path().join("missing.toml"))
        .unwrap_err();
    assert!(matches!(missing, PolicyFileError::Read { .. }), "{missing}");
    f.handover.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Gated skills

/// A runtime with the refunding agent handed a conversation; returns once the approval is
/// requested.
async fn refund_requested() -> (
    Fixture,
    ConversationId,
    Arc<AtomicUsize>,
    mpsc::UnboundedReceiver<Result<Receipt, Error>>,
    Watch,
) {
    let f = start().await;
    let ran = Arc::new(AtomicUsize::new(0));
    let (report, reports) = mpsc::unbounded_channel();
    let bot = agent(
        &f.handover,
        "refunds",
        Arc::new(Refunder {
            ran: Arc::clone(&ran),
            report,
        }),
    )
    .await;
    let c = open(&f.handover).await;
    let mut watch = f.handover.watch(c).await.unwrap();
    f.handover
        .hand_off_to_ai(c, id("ana"), bot, None)
        .await
        .unwrap();
    let requested = watch_until(&mut watch, |e| {
        matches!(e, ConversationEvent::SkillApprovalRequested { .. })
    })
    .await;
    match &requested.event {
        Event::Conversation(ConversationEvent::SkillApprovalRequested {
            name,
            rule,
            deadline_ms,
            ..
        }) => {
            assert_eq!(name.as_str(), "refund");
            assert_eq!(rule.as_str(), "refunds-need-approval");
            assert_eq!(*deadline_ms, 10 * 60_000);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(ran.load(Ordering::SeqCst), 0, "a gated skill waits");
    (f, c, ran, reports, watch)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_skill_runs_once_and_its_outcome_is_recorded() {
    let (f, c, ran, mut reports, _watch) = refund_requested().await;
    let approved = f
        .handover
        .approve_skill(c, id("ana"), SkillName::new("refund").unwrap())
        .await
        .unwrap();
    assert_eq!(types(&approved.events), ["skill_approved"]);
    let receipt = recv(&mut reports).await.expect("the skill ran");
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    match conversation_events(&receipt)[..] {
        [ConversationEvent::AiActionRecorded { skill, .. }] => {
            assert_eq!(skill.name.as_str(), "refund");
            assert_eq!(
                skill.outcome,
                SkillOutcome::Succeeded(SkillData::new("refunded 20 USD").unwrap())
            );
        }
        ref other => panic!("unexpected {other:?}"),
    }
    // Nothing waits any more.
    let error = f
        .handover
        .approve_skill(c, id("ana"), SkillName::new("refund").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(
        error.rejection(),
        Some(Rejection::NoApprovalPending { .. })
    ));
    f.handover.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_skill_never_runs_and_the_session_is_told() {
    let (f, c, ran, mut reports, _watch) = refund_requested().await;
    f.handover
        .deny_skill(
            c,
            id("ana"),
            SkillName::new("refund").unwrap(),
            reason("already refunded last week"),
        )
        .await
        .unwrap();
    match recv(&mut reports).await {
        Err(Error::SkillDenied { skill, by, reason }) => {
            assert_eq!(skill.as_str(), "refund");
            assert_eq!(by, "human ana");
            assert_eq!(reason.as_str(), "already refunded last week");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    let history = f.handover.history(c).await.unwrap();
    assert!(!types(&history).contains(&"ai_action_recorded"));
    f.handover.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skill_nobody_decides_on_is_denied_by_the_clock() {
    let (f, c, ran, mut reports, mut watch) = refund_requested().await;
    // Not yet: a minute before the deadline nothing happens.
    f.clock.advance_millis(9 * 60_000);
    f.handover.settle_timers().await;
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    f.clock.advance_millis(60_000);
    f.handover.settle_timers().await;
    let denied = watch_until(&mut watch, |e| {
        matches!(e, ConversationEvent::SkillDenied { .. })
    })
    .await;
    assert!(matches!(
        &denied.event,
        Event::Conversation(ConversationEvent::SkillDenied {
            by: Author::System(SystemActor::Clock),
            ..
        })
    ));
    match recv(&mut reports).await {
        Err(Error::SkillDenied { by, .. }) => assert_eq!(by, "the clock"),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    // Still the AI's: only the request was denied.
    assert!(matches!(
        f.handover.conversation(c).await.unwrap().status,
        Status::AiActive { .. }
    ));
    f.handover.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reclaim_ends_the_wait_and_the_skill_never_runs() {
    let (f, c, ran, mut reports, _watch) = refund_requested().await;
    f.handover.reclaim(c, id("ana"), None).await.unwrap();
    match recv(&mut reports).await {
        Err(Error::Rejected(Rejection::AssignmentEnded { epoch, .. })) => {
            assert_eq!(epoch, Epoch(1));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    // The request went with the assignment.
    let error = f
        .handover
        .approve_skill(c, id("ana"), SkillName::new("refund").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(
        error.rejection(),
        Some(Rejection::NoApprovalPending { .. })
    ));
    f.handover.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Handoffs: overrides, context, history windows

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_overrides_a_refused_handoff_and_the_override_is_recorded() {
    let f = start().await;
    let bot = agent(&f.handover, "faq", Arc::new(Silent)).await;
    let c = open(&f.handover).await;
    f.handover
        .post_customer_message(c, id("cust-1"), text("This is unacceptable"))
        .await
        .unwrap();
    let refused = f
        .handover
        .hand_off_to_ai(c, id("ana"), bot.clone(), None)
        .await
        .unwrap_err();
    match refused.rejection() {
        Some(Rejection::RefusedByRule {
            rule,
            policy_version,
            ..
        }) => {
            assert_eq!(rule.as_str(), "guidance-concerns");
            assert_eq!(policy_version, Rules::default_rules().version());
        }
        other => panic!("unexpected {other:?}"),
    }
    let receipt = f
        .handover
        .hand_off_to_ai_with(c, HandOff::new(id("bruno"), bot.clone()).override_policy())
        .await
        .unwrap();
    match conversation_events(&receipt)[..] {
        [ConversationEvent::PolicyOverridden {
            by,
            rule,
            policy_version,
            ..
        }, ConversationEvent::HandedOffToAi { .. }, ..] => {
            assert_eq!(by, &id::<HumanId>("bruno"));
            assert_eq!(rule.as_str(), "guidance-concerns");
            assert_eq!(policy_version, Rules::default_rules().version());
        }
        ref other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(receipt.status, Status::AiActive { .. }));
    f.handover.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handoff_s_context_reaches_the_session() {
    let f = start().await;
    let (report, mut reports) = mpsc::unbounded_channel();
    let bot = agent(&f.handover, "faq", Arc::new(Recorder { report })).await;
    let c = open(&f.handover).await;
    let context = Context::new(
        Some("Wants the pro plan; already verified".to_owned()),
        Some("pricing".to_owned()),
        [("plan", "pro"), ("order_id", "A-17")],
    )
    .unwrap();
    let receipt = f
        .handover
        .hand_off_to_ai_with(
            c,
            HandOff::new(id("ana"), bot.clone())
                .reason(reason("pricing question"))
                .context(context.clone()),
        )
        .await
        .unwrap();
    assert_eq!(
        types(&receipt.events)[..2],
        ["context_shared", "handed_off_to_ai"]
    );
    let seen = recv(&mut reports).await;
    assert_eq!(seen.context.as_ref(), Some(&context));
    assert_eq!(seen.context.unwrap().variable("plan"), Some("pro"));
    assert_eq!(
        f.handover.conversation(c).await.unwrap().topic,
        Some(id("pricing"))
    );

    // A handoff without one gives none, even after a handoff that had one.
    f.handover.reclaim(c, id("ana"), None).await.unwrap();
    f.handover
        .hand_off_to_ai(c, id("ana"), bot, None)
        .await
        .unwrap();
    let seen = recv(&mut reports).await;
    assert_eq!(seen.epoch, Epoch(2));
    assert_eq!(seen.context, None);
    f.handover.shutdown().await;
}

/// One conversation: a question, a handoff to `agent`, a reclaim, a human's answer, a second
/// question, a second handoff to `agent` with a context. Returns what the second `on_handoff`
/// saw (the first is checked to be the first).
async fn two_handoffs(
    f: &Fixture,
    reports: &mut mpsc::UnboundedReceiver<Seen>,
    agent: &AiAgentId,
) -> (Seen, Seen) {
    let c = open(&f.handover).await;
    f.handover
        .post_customer_message(c, id("cust-1"), text("What are your opening hours?"))
        .await
        .unwrap();
    f.handover
        .hand_off_to_ai(c, id("ana"), agent.clone(), None)
        .await
        .unwrap();
    let first = recv(reports).await;
    assert_eq!((&first.agent_id, first.epoch), (agent, Epoch(1)));
    f.handover.reclaim(c, id("ana"), None).await.unwrap();
    f.handover
        .post_human_message(c, id("ana"), text("We open at nine."))
        .await
        .unwrap();
    f.handover
        .post_customer_message(c, id("cust-1"), text("And how much is the pro plan?"))
        .await
        .unwrap();
    let context = Context::new(
        Some("Asks about prices".to_owned()),
        None,
        [("plan", "pro")],
    )
    .unwrap();
    f.handover
        .hand_off_to_ai_with(c, HandOff::new(id("ana"), agent.clone()).context(context))
        .await
        .unwrap();
    let second = recv(reports).await;
    assert_eq!((&second.agent_id, second.epoch), (agent, Epoch(2)));
    (first, second)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_history_window_gives_on_handoff_its_part_of_the_history() {
    let f = start_with(|config| {
        config
            .history_window(id("since"), HistoryWindow::SinceLastHandoff)
            .history_window(id("last"), HistoryWindow::LastMessages(1))
    })
    .await;
    let (report, mut reports) = mpsc::unbounded_channel();
    let every = agent(
        &f.handover,
        "every",
        Arc::new(Recorder {
            report: report.clone(),
        }),
    )
    .await;
    let since = agent(
        &f.handover,
        "since",
        Arc::new(Recorder {
            report: report.clone(),
        }),
    )
    .await;
    let last = agent(&f.handover, "last", Arc::new(Recorder { report })).await;

    // Everything (the default).
    let (first, second) = two_handoffs(&f, &mut reports, &every).await;
    assert_eq!(
        first.history,
        [
            "conversation_opened",
            "human_assigned",
            "message_posted",
            "handed_off_to_ai",
            "customer_notice"
        ]
    );
    assert_eq!(
        second.history,
        [
            "conversation_opened",
            "human_assigned",
            "message_posted",
            "handed_off_to_ai",
            "customer_notice",
            "reclaimed",
            // The customer is told the AI left and a person joined.
            "customer_notice",
            "customer_notice",
            "message_posted",
            "message_posted",
            "context_shared",
            "handed_off_to_ai",
            "customer_notice"
        ]
    );

    // Since the last handoff: everything at the first, what followed the reclaim at the second.
    let (first, second) = two_handoffs(&f, &mut reports, &since).await;
    assert_eq!(first.history.len(), 5);
    assert_eq!(
        second.history,
        [
            "customer_notice",
            "customer_notice",
            "message_posted",
            "message_posted",
            "context_shared",
            "handed_off_to_ai",
            "customer_notice"
        ]
    );
    assert_eq!(
        second.texts,
        ["We open at nine.", "And how much is the pro plan?"]
    );

    // The last message and the handoff's own events.
    let (first, second) = two_handoffs(&f, &mut reports, &last).await;
    assert_eq!(
        first.history,
        ["message_posted", "handed_off_to_ai", "customer_notice"]
    );
    assert_eq!(
        second.history,
        [
            "message_posted",
            "context_shared",
            "handed_off_to_ai",
            "customer_notice"
        ]
    );
    assert_eq!(second.texts, ["And how much is the pro plan?"]);
    assert!(second.context.is_some());
    f.handover.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// The embedder's own rules

/// Escalates a message that says "zorblat", and refuses handoffs of customer `vip-1`.
struct House {
    name: RuleName,
    messages: AtomicUsize,
}

impl House {
    fn new() -> Arc<House> {
        Arc::new(House {
            name: RuleName::new("house-rule").unwrap(),
            messages: AtomicUsize::new(0),
        })
    }
}

#[async_trait]
impl EscalationRule for House {
    fn name(&self) -> &RuleName {
        &self.name
    }

    async fn on_customer_message(
        &self,
        input: &RuleInput<'_>,
    ) -> Option<(EscalationCause, Reason)> {
        self.messages.fetch_add(1, Ordering::SeqCst);
        assert!(matches!(input.view.status, Status::AiActive { .. }));
        assert!(!input.history.is_empty());
        assert!(input.history.len() as u64 <= RULE_HISTORY_EVENTS_MAX);
        let text = input.text?.as_str().to_lowercase();
        text.contains("zorblat").then(|| {
            (
                EscalationCause::Complaint,
                reason("the customer said zorblat"),
            )
        })
    }

    async fn before_handoff(&self, input: &RuleInput<'_>, _: &AiAgentId) -> Option<Reason> {
        (input.view.customer.as_str() == "vip-1").then(|| reason("VIP customers stay with people"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedder_rule_escalates_a_message_and_refuses_a_handoff() {
    let house = House::new();
    let rule: Arc<dyn EscalationRule> = house.clone();
    let f = start_with(|config| config.rule(rule)).await;
    let bot = agent(&f.handover, "faq", Arc::new(Silent)).await;

    // A message it escalates.
    let c = open(&f.handover).await;
    // Not judged while humans hold the conversation.
    f.handover
        .post_customer_message(c, id("cust-1"), text("hello"))
        .await
        .unwrap();
    assert_eq!(house.messages.load(Ordering::SeqCst), 0);
    f.handover
        .hand_off_to_ai(c, id("ana"), bot.clone(), None)
        .await
        .unwrap();
    let calm = f
        .handover
        .post_customer_message(c, id("cust-1"), text("What are your opening hours?"))
        .await
        .unwrap();
    assert_eq!(types(&calm.events), ["message_posted"]);
    // Through `execute` too.
    let receipt = f
        .handover
        .execute(
            c,
            ConversationCommand::PostMessage {
                by: Participant::Customer(id("cust-1")),
                text: text("zorblat!"),
            },
        )
        .await
        .unwrap();
    assert_eq!(house.messages.load(Ordering::SeqCst), 2);
    let (rule, cause, version) = rule_escalation(&receipt).expect("escalated by the house rule");
    assert_eq!(rule.as_str(), "house-rule");
    assert_eq!(cause, EscalationCause::Complaint);
    assert_eq!(&version, Rules::default_rules().version());
    assert!(matches!(receipt.status, Status::AwaitingHuman { .. }));

    // A handoff it refuses, through either call; a supervisor may override it.
    let vip = open_for(&f.handover, "vip-1").await;
    let refused = f
        .handover
        .hand_off_to_ai(vip, id("ana"), bot.clone(), None)
        .await
        .unwrap_err();
    match refused.rejection() {
        Some(Rejection::RefusedByRule { rule, reason, .. }) => {
            assert_eq!(rule.as_str(), "house-rule");
            assert_eq!(reason, "VIP customers stay with people");
        }
        other => panic!("unexpected {other:?}"),
    }
    let refused = f
        .handover
        .hand_off_to_ai_with(vip, HandOff::new(id("ana"), bot.clone()))
        .await
        .unwrap_err();
    assert!(matches!(
        refused.rejection(),
        Some(Rejection::RefusedByRule { .. })
    ));
    let overridden = f
        .handover
        .hand_off_to_ai_with(vip, HandOff::new(id("ana"), bot.clone()).override_policy())
        .await
        .unwrap();
    assert!(conversation_events(&overridden).iter().any(|e| matches!(
        e,
        ConversationEvent::PolicyOverridden { rule, .. } if rule.as_str() == "house-rule"
    )));
    f.handover.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_in_rules_win_over_the_embedder_s() {
    let f = start_with(|config| config.rule(House::new())).await;
    let bot = agent(&f.handover, "faq", Arc::new(Silent)).await;

    // Both fire on the message: the policy's rule decides.
    let c = open(&f.handover).await;
    f.handover
        .hand_off_to_ai(c, id("ana"), bot.clone(), None)
        .await
        .unwrap();
    let receipt = f
        .handover
        .post_customer_message(c, id("cust-1"), text("zorblat, I want a human"))
        .await
        .unwrap();
    let (rule, cause, _) = rule_escalation(&receipt).expect("escalated");
    assert_eq!(rule.as_str(), "asked-for-a-person");
    assert_eq!(cause, EscalationCause::CustomerAskedForHuman);

    // Both refuse the handoff: the policy's rule is named.
    let vip = open_for(&f.handover, "vip-1").await;
    f.handover
        .post_customer_message(vip, id("vip-1"), text("This is unacceptable"))
        .await
        .unwrap();
    let refused = f
        .handover
        .hand_off_to_ai(vip, id("ana"), bot, None)
        .await
        .unwrap_err();
    match refused.rejection() {
        Some(Rejection::RefusedByRule { rule, .. }) => {
            assert_eq!(rule.as_str(), "guidance-concerns")
        }
        other => panic!("unexpected {other:?}"),
    }
    f.handover.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_context_and_the_window_hold_when_the_assignment_is_taken_up_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = |clock: &ManualClock| {
        Config::new(dir.path())
            .workers(2)
            .router(Arc::new(NoRouter))
            .clock(Arc::new(clock.clone()))
            .history_window(id("faq"), HistoryWindow::LastMessages(1))
    };
    let clock = ManualClock::new(T0);
    let handover = Handover::start(config(&clock)).await.unwrap();
    handover_testkit::staff(&handover, &["ana"]).await;
    let (report, mut reports) = mpsc::unbounded_channel();
    let bot = agent(
        &handover,
        "faq",
        Arc::new(Recorder {
            report: report.clone(),
        }),
    )
    .await;
    let c = open(&handover).await;
    handover
        .post_customer_message(c, id("cust-1"), text("What are your opening hours?"))
        .await
        .unwrap();
    let context = Context::new(None, None, [("order_id", "A-17")]).unwrap();
    handover
        .hand_off_to_ai_with(
            c,
            HandOff::new(id("ana"), bot.clone()).context(context.clone()),
        )
        .await
        .unwrap();
    let before = recv(&mut reports).await;
    assert_eq!(before.context.as_ref(), Some(&context));
    handover
        .post_customer_message(c, id("cust-1"), text("Are you open on Sundays?"))
        .await
        .unwrap();
    handover.shutdown().await;

    // Taken up again: the history runs to now, the window still applies, the context is read
    // from the log again.
    let handover = Handover::start(config(&clock)).await.unwrap();
    handover
        .attach_ai_agent(bot.clone(), Arc::new(Recorder { report }))
        .unwrap();
    let after = recv(&mut reports).await;
    assert_eq!(after.epoch, Epoch(1));
    assert_eq!(after.context.as_ref(), Some(&context));
    assert_eq!(after.texts, ["Are you open on Sundays?"]);
    assert_eq!(
        after.history,
        [
            "context_shared",
            "handed_off_to_ai",
            "customer_notice",
            "message_posted"
        ]
    );
    handover.shutdown().await;
}
