//! The runtime against a real sled directory: handoff and answers, fencing of late AI replies,
//! restart and rebuild, live watchers, escalations, and the facade's errors.

use futures::FutureExt as _;
use std::sync::Arc;

use handover::*;
use tokio::sync::{mpsc, oneshot, Mutex};

fn id<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse().unwrap()
}

fn text(s: &str) -> MessageText {
    MessageText::new(s).unwrap()
}

/// Replies "echo: <text>" after recording a `lookup` skill.
struct Echo;

#[async_trait::async_trait]
impl AiAgentBehavior for Echo {
    async fn on_customer_message(
        &self,
        session: &AiSession,
        text: &MessageText,
    ) -> Result<(), AgentError> {
        session
            .record_skill(Skill::new("lookup", text.as_str(), Ok("found".to_owned()))?)
            .await?;
        session
            .reply(MessageText::new(format!("echo: {text}"))?)
            .await?;
        Ok(())
    }
}

/// Holds every customer message until the test releases it, then replies, and reports the
/// outcome of that reply to the test.
struct Gated {
    gates: Mutex<mpsc::Receiver<oneshot::Sender<Result<(), String>>>>,
    started: mpsc::Sender<()>,
}

#[async_trait::async_trait]
impl AiAgentBehavior for Gated {
    async fn on_customer_message(
        &self,
        session: &AiSession,
        _: &MessageText,
    ) -> Result<(), AgentError> {
        let _ = self.started.send(()).await;
        let report = self
            .gates
            .lock()
            .await
            .recv()
            .await
            .expect("test ends first");
        let outcome = session.reply(MessageText::new("a late answer")?).await;
        let _ = report.send(outcome.map(drop).map_err(|e| e.to_string()));
        Ok(())
    }
}

/// Panics on every message, as buggy code does.
struct Panicking;

#[async_trait::async_trait]
impl AiAgentBehavior for Panicking {
    async fn on_customer_message(&self, _: &AiSession, _: &MessageText) -> Result<(), AgentError> {
        panic!("index out of bounds in the prompt builder");
    }
}

/// Fails on every message.
struct Broken;

#[async_trait::async_trait]
impl AiAgentBehavior for Broken {
    async fn on_customer_message(&self, _: &AiSession, _: &MessageText) -> Result<(), AgentError> {
        Err("model endpoint unreachable".into())
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    handover: Handover,
}

/// The runtime's configuration: routing off, so that a conversation escalated to humans stays
/// in its queue and the log holds only what the test did; and an AI agent's call whose
/// assignment ended runs on until it returns by itself (a minute at most), so that a late
/// reply is always sent and its refusal observed, however slowly the machine runs.
fn config(path: &std::path::Path) -> Config {
    let mut config = Config::new(path).workers(2).router(Arc::new(NoRouter));
    config.runtime = config
        .runtime
        .ai_cancel_grace(std::time::Duration::from_secs(60));
    config
}

/// A runtime on a new directory, with `ana` and `bruno` signed in as supervisors.
async fn start() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let handover = Handover::start(config(&path)).await.unwrap();
    handover_testkit::staff(&handover, &["ana", "bruno"]).await;
    Fixture {
        _dir: dir,
        path,
        handover,
    }
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

async fn open(handover: &Handover) -> ConversationId {
    handover
        .open_conversation(id("cust-1"), id("web-chat"), Some(id("ana")))
        .await
        .unwrap()
        .conversation_id
}

/// Reads the watch until an event matching `pred` arrives, returning every event seen.
async fn watch_until(
    watch: &mut Watch,
    pred: impl Fn(&ConversationEvent) -> bool,
) -> Vec<Arc<RecordedEvent>> {
    let mut seen = Vec::new();
    while let Some(record) = watch.next().await.transpose().unwrap() {
        let done = matches!(&record.event, Event::Conversation(e) if pred(e));
        seen.push(record);
        if done {
            return seen;
        }
    }
    panic!("runtime stopped before the awaited event");
}

fn is_ai_message(e: &ConversationEvent) -> bool {
    matches!(
        e,
        ConversationEvent::MessagePosted {
            author: Author::Ai(_),
            ..
        }
    )
}

fn types<R: std::borrow::Borrow<RecordedEvent>>(records: &[R]) -> Vec<&'static str> {
    records
        .iter()
        .map(|r| r.borrow().event.type_name())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handed_off_ai_answers_on_its_own_and_records_its_skills() {
    let f = start().await;
    let bot = agent(&f.handover, "faq", Arc::new(Echo)).await;
    let c = open(&f.handover).await;
    f.handover
        .post_customer_message(c, id("cust-1"), text("How much is the pro plan?"))
        .await
        .unwrap();
    let receipt = f
        .handover
        .hand_off_to_ai(
            c,
            id("ana"),
            bot.clone(),
            Some(Reason::new("pricing").unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(
        receipt.status,
        Status::AiActive {
            agent_id: bot.clone(),
            agent_name: AgentName::new("faq bot").unwrap(),
            epoch: Epoch(1)
        }
    );
    let mut watch = f.handover.watch(c).await.unwrap();
    watch_until(&mut watch, is_ai_message).await;
    let history = f.handover.history(c).await.unwrap();
    assert_eq!(
        types(&history),
        [
            "conversation_opened",
            "human_assigned",
            "message_posted",
            "handed_off_to_ai",
            "customer_notice",
            "ai_action_recorded",
            "message_posted"
        ]
    );
    match &history[6].event {
        Event::Conversation(ConversationEvent::MessagePosted { author, text, .. }) => {
            assert_eq!(author, &Author::Ai(bot));
            assert_eq!(text.as_str(), "echo: How much is the pro plan?");
        }
        other => panic!("unexpected {other:?}"),
    }
    f.handover.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn humans_cannot_post_while_ai_is_active_until_they_reclaim() {
    let f = start().await;
    let bot = agent(&f.handover, "faq", Arc::new(Echo)).await;
    let c = open(&f.handover).await;
    f.handover
        .hand_off_to_ai(c, id("ana"), bot.clone(), None)
        .await
        .unwrap();
    let version = f.handover.conversation(c).await.unwrap().events;
    let error = f
        .handover
        .post_human_message(c, id("ana"), text("hi"))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "conversation is AI-active (agent faq bot, id faq); reclaim it before posting"
    );
    assert!(error.is_caller_error());
    assert_eq!(f.handover.conversation(c).await.unwrap().events, version);

    let receipt = f
        .handover
        .reclaim(c, id("bruno"), Some(Reason::new("VIP customer").unwrap()))
        .await
        .unwrap();
    assert_eq!(receipt.status, Status::Reclaimed { by: id("bruno") });
    f.handover
        .post_human_message(c, id("bruno"), text("Hi, Bruno here"))
        .await
        .unwrap();
    f.handover.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_racing_a_reclaim_is_never_recorded() {
    let f = start().await;
    let (gate_tx, gate_rx) = mpsc::channel(1);
    let (started_tx, mut started_rx) = mpsc::channel(1);
    let bot = agent(
        &f.handover,
        "slow",
        Arc::new(Gated {
            gates: Mutex::new(gate_rx),
            started: started_tx,
        }),
    )
    .await;
    let c = open(&f.handover).await;
    f.handover
        .hand_off_to_ai(c, id("ana"), bot.clone(), None)
        .await
        .unwrap();
    f.handover
        .post_customer_message(c, id("cust-1"), text("What does shipping cost?"))
        .await
        .unwrap();
    // The agent is now computing its answer; the human takes over before it sends it.
    started_rx.recv().await.unwrap();
    f.handover.reclaim(c, id("ana"), None).await.unwrap();
    let (report_tx, report_rx) = oneshot::channel();
    gate_tx.send(report_tx).await.unwrap();
    let outcome = report_rx.await.unwrap();
    assert_eq!(
        outcome,
        Err("AI agent slow's assignment (epoch 1) has ended; the conversation is no longer its to answer".to_owned())
    );

    // Handed to the same agent again (a new epoch), the old reply is still fenced off.
    f.handover
        .hand_off_to_ai(c, id("ana"), bot.clone(), None)
        .await
        .unwrap();
    let stale = f
        .handover
        .execute(
            c,
            ConversationCommand::PostMessage {
                by: Participant::Ai(Assignment {
                    agent_id: bot.clone(),
                    epoch: Epoch(1),
                }),
                text: text("from the old assignment"),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(
        stale.rejection(),
        Some(Rejection::AssignmentEnded {
            epoch: Epoch(1),
            ..
        })
    ));
    let history = f.handover.history(c).await.unwrap();
    assert!(!history.iter().any(|r| matches!(
        &r.event,
        Event::Conversation(e) if is_ai_message(e)
    )));
    f.handover.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_rebuilds_exactly_the_state_before() {
    let f = start().await;
    let bot = agent(&f.handover, "faq", Arc::new(Echo)).await;
    let mut ids = Vec::new();
    for i in 0..6 {
        let c = open(&f.handover).await;
        f.handover
            .post_customer_message(c, id("cust-1"), text(&format!("question {i}")))
            .await
            .unwrap();
        if i % 2 == 0 {
            let mut watch = f.handover.watch(c).await.unwrap();
            f.handover
                .hand_off_to_ai(c, id("ana"), bot.clone(), None)
                .await
                .unwrap();
            watch_until(&mut watch, is_ai_message).await;
        }
        if i % 3 == 0 {
            let _ = f.handover.reclaim(c, id("bruno"), None).await;
        }
        if i == 5 {
            f.handover.close(c, id("ana"), None).await.unwrap();
        }
        ids.push(c);
    }
    let mut before = Vec::new();
    for c in &ids {
        let view = f.handover.conversation(*c).await.unwrap();
        before.push((view, f.handover.history(*c).await.unwrap()));
    }
    let agents_before = f.handover.ai_agents();
    f.handover.shutdown().await;

    let handover = Handover::start(config(&f.path)).await.unwrap();
    for (c, (view_before, history)) in ids.iter().zip(before) {
        let view = handover.conversation(*c).await.unwrap();
        assert_eq!(view, view_before);
        assert_eq!(handover.history(*c).await.unwrap(), history);
    }
    assert_eq!(handover.ai_agents(), agents_before);
    handover.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_sees_every_event_once_in_order_across_the_seam() {
    let f = start().await;
    let c = open(&f.handover).await;
    const MESSAGES: u64 = 300;
    let writer = {
        let handover = f.handover.clone();
        tokio::spawn(async move {
            for i in 0..MESSAGES {
                handover
                    .post_customer_message(c, id("cust-1"), text(&format!("message {i}")))
                    .await
                    .unwrap();
            }
        })
    };
    // Watchers join while the writer runs: some see mostly history, some mostly live events.
    let mut watchers = Vec::new();
    for _ in 0..4 {
        watchers.push(f.handover.watch(c).await.unwrap());
        tokio::task::yield_now().await;
    }
    writer.await.unwrap();
    for mut watch in watchers {
        let mut seqs = Vec::new();
        // Opening with a human records two events: the start and the assignment.
        while seqs.last() != Some(&(MESSAGES + 2)) {
            let record = watch.next().await.transpose().unwrap().unwrap();
            seqs.push(record.seq);
        }
        assert_eq!(seqs, (1..=MESSAGES + 2).collect::<Vec<_>>());
        assert!(watch
            .next()
            .now_or_never()
            .flatten()
            .transpose()
            .unwrap()
            .is_none());
    }
    f.handover.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_asking_for_a_human_is_escalated_at_once() {
    let f = start().await;
    let bot = agent(&f.handover, "faq", Arc::new(Echo)).await;
    let c = open(&f.handover).await;
    f.handover
        .hand_off_to_ai(c, id("ana"), bot.clone(), None)
        .await
        .unwrap();
    let receipt = f
        .handover
        .post_customer_message(c, id("cust-1"), text("Quero falar com um atendente"))
        .await
        .unwrap();
    assert!(matches!(
        receipt.status,
        Status::AwaitingHuman {
            team: None,
            cause: WaitCause::Escalated(EscalationCause::CustomerAskedForHuman),
            ..
        }
    ));
    let types: Vec<_> = receipt.events.iter().map(|r| r.event.type_name()).collect();
    assert_eq!(
        types,
        [
            "message_posted",
            "escalated_to_human",
            "customer_notice",
            "awaiting_human",
            "customer_notice"
        ]
    );
    // Escalated by the default policy's rule, which the log names.
    assert!(matches!(
        &receipt.events[1].event,
        Event::Conversation(ConversationEvent::EscalatedByRule {
            cause: EscalationCause::CustomerAskedForHuman,
            rule,
            ..
        }) if rule.as_str() == "asked-for-a-person"
    ));
    // The policy now keeps it with humans: the concern blocks a handoff for a while.
    let refused = f
        .handover
        .hand_off_to_ai(c, id("ana"), bot, None)
        .await
        .unwrap_err();
    assert!(matches!(
        refused.rejection(),
        Some(Rejection::RefusedByRule { rule, .. }) if rule.as_str() == "guidance-concerns"
    ));
    f.handover.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivating_an_agent_escalates_every_conversation_it_holds() {
    let f = start().await;
    let bot = agent(&f.handover, "faq", Arc::new(Echo)).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let c = open(&f.handover).await;
        f.handover
            .hand_off_to_ai(c, id("ana"), bot.clone(), None)
            .await
            .unwrap();
        held.push(c);
    }
    let untouched = open(&f.handover).await;
    f.handover.deactivate_ai_agent(bot.clone()).await.unwrap();
    for c in held {
        let history = f.handover.history(c).await.unwrap();
        // The escalation, the notice that the AI left, the wait, the notice to wait.
        let tail = &history[history.len() - 4..];
        assert_eq!(
            types(tail),
            [
                "escalated_to_human",
                "customer_notice",
                "awaiting_human",
                "customer_notice"
            ]
        );
        assert!(matches!(
            tail[0].event,
            Event::Conversation(ConversationEvent::EscalatedToHuman {
                cause: EscalationCause::AgentDeactivated,
                ..
            })
        ));
        assert!(matches!(
            f.handover.conversation(c).await.unwrap().status,
            Status::AwaitingHuman {
                cause: WaitCause::Escalated(EscalationCause::AgentDeactivated),
                ..
            }
        ));
    }
    assert_eq!(f.handover.history(untouched).await.unwrap().len(), 2);
    assert!(f.handover.active_ai_agents(None).is_empty());
    let inactive = f
        .handover
        .hand_off_to_ai(untouched, id("ana"), bot, None)
        .await
        .unwrap_err();
    assert!(matches!(
        inactive.rejection(),
        Some(Rejection::AiAgentInactive { .. })
    ));
    f.handover.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handoffs_to_unknown_inactive_or_absent_agents_record_nothing() {
    let f = start().await;
    let c = open(&f.handover).await;
    let unknown = f
        .handover
        .hand_off_to_ai(c, id("ana"), id("ghost"), None)
        .await
        .unwrap_err();
    assert_eq!(unknown.to_string(), "AI agent ghost is not registered");

    let idle: AiAgentId = id("idle");
    f.handover
        .register_ai_agent(AiAgentProfile {
            id: idle.clone(),
            name: AgentName::new("Idle").unwrap(),
            specialties: vec![],
        })
        .await
        .unwrap();
    let inactive = f
        .handover
        .hand_off_to_ai(c, id("ana"), idle.clone(), None)
        .await
        .unwrap_err();
    assert!(matches!(
        inactive.rejection(),
        Some(Rejection::AiAgentInactive { .. })
    ));

    f.handover.activate_ai_agent(idle.clone()).await.unwrap();
    let absent = f
        .handover
        .hand_off_to_ai(c, id("ana"), idle.clone(), None)
        .await
        .unwrap_err();
    assert!(matches!(absent, Error::AiAgentNotRunning(ref a) if *a == idle));
    assert_eq!(f.handover.conversation(c).await.unwrap().events, 2);
    f.handover.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handing_to_a_more_specialised_agent_moves_the_subscription() {
    let f = start().await;
    let first = agent(&f.handover, "general", Arc::new(Echo)).await;
    let (gate_tx, gate_rx) = mpsc::channel(1);
    let (started_tx, mut started_rx) = mpsc::channel(1);
    let second = agent(
        &f.handover,
        "pricing",
        Arc::new(Gated {
            gates: Mutex::new(gate_rx),
            started: started_tx,
        }),
    )
    .await;
    let c = open(&f.handover).await;
    f.handover
        .hand_off_to_ai(c, id("ana"), first.clone(), None)
        .await
        .unwrap();
    let receipt = f
        .handover
        .hand_off_to_ai(c, id("ana"), second.clone(), None)
        .await
        .unwrap();
    assert!(
        matches!(receipt.status, Status::AiActive { ref agent_id, epoch: Epoch(2), .. } if *agent_id == second)
    );
    f.handover
        .post_customer_message(c, id("cust-1"), text("price?"))
        .await
        .unwrap();
    started_rx.recv().await.unwrap();
    let (report_tx, report_rx) = oneshot::channel();
    gate_tx.send(report_tx).await.unwrap();
    assert_eq!(report_rx.await.unwrap(), Ok(()));
    let history = f.handover.history(c).await.unwrap();
    let ai_authors: Vec<_> = history
        .iter()
        .filter_map(|r| match &r.event {
            Event::Conversation(ConversationEvent::MessagePosted {
                author: Author::Ai(a),
                ..
            }) => Some(a.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(ai_authors, [second]);
    f.handover.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_fails_hands_the_customer_back_to_humans() {
    let f = start().await;
    let bot = agent(&f.handover, "broken", Arc::new(Broken)).await;
    let c = open(&f.handover).await;
    let mut watch = f.handover.watch(c).await.unwrap();
    f.handover
        .hand_off_to_ai(c, id("ana"), bot, None)
        .await
        .unwrap();
    f.handover
        .post_customer_message(c, id("cust-1"), text("hello?"))
        .await
        .unwrap();
    let seen = watch_until(&mut watch, |e| {
        matches!(e, ConversationEvent::EscalatedToHuman { .. })
    })
    .await;
    match &seen.last().unwrap().event {
        Event::Conversation(ConversationEvent::EscalatedToHuman { reason, cause, .. }) => {
            assert_eq!(*cause, EscalationCause::AgentRequested);
            assert_eq!(
                reason.as_str(),
                "the AI agent failed: model endpoint unreachable"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    f.handover.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_whose_code_panics_hands_the_customer_back_and_the_runtime_goes_on() {
    let f = start().await;
    let bot = agent(&f.handover, "panicky", Arc::new(Panicking)).await;
    let c = open(&f.handover).await;
    let mut watch = f.handover.watch(c).await.unwrap();
    f.handover
        .hand_off_to_ai(c, id("ana"), bot.clone(), None)
        .await
        .unwrap();
    f.handover
        .post_customer_message(c, id("cust-1"), text("hello?"))
        .await
        .unwrap();
    let seen = watch_until(&mut watch, |e| {
        matches!(e, ConversationEvent::EscalatedToHuman { .. })
    })
    .await;
    match &seen.last().unwrap().event {
        Event::Conversation(ConversationEvent::EscalatedToHuman { reason, cause, .. }) => {
            assert_eq!(*cause, EscalationCause::AgentRequested);
            assert_eq!(
                reason.as_str(),
                "the AI agent failed: the AI agent's code panicked"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    // The agent's actor survived its code's panic: a second conversation is handled the same.
    let other = open(&f.handover).await;
    let mut watch = f.handover.watch(other).await.unwrap();
    f.handover
        .hand_off_to_ai(other, id("ana"), bot, None)
        .await
        .unwrap();
    f.handover
        .post_customer_message(other, id("cust-1"), text("anyone?"))
        .await
        .unwrap();
    watch_until(&mut watch, |e| {
        matches!(e, ConversationEvent::EscalatedToHuman { .. })
    })
    .await;
    f.handover.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_an_attached_agent_resumes_its_conversations() {
    let f = start().await;
    let bot = agent(&f.handover, "faq", Arc::new(Echo)).await;
    let c = open(&f.handover).await;
    f.handover
        .hand_off_to_ai(c, id("ana"), bot.clone(), None)
        .await
        .unwrap();
    f.handover.shutdown().await;

    let handover = Handover::start(config(&f.path)).await.unwrap();
    handover
        .attach_ai_agent(bot.clone(), Arc::new(Echo))
        .unwrap();
    let mut watch = handover.watch(c).await.unwrap();
    handover
        .post_customer_message(c, id("cust-1"), text("still there?"))
        .await
        .unwrap();
    let seen = watch_until(&mut watch, is_ai_message).await;
    assert!(matches!(
        &seen.last().unwrap().event,
        Event::Conversation(ConversationEvent::MessagePosted { text, .. }) if text.as_str() == "echo: still there?"
    ));
    handover.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_conversation_refuses_everything_and_unknown_ones_are_named() {
    let f = start().await;
    let bot = agent(&f.handover, "faq", Arc::new(Echo)).await;
    let c = open(&f.handover).await;
    f.handover
        .hand_off_to_ai(c, id("ana"), bot.clone(), None)
        .await
        .unwrap();
    let receipt = f
        .handover
        .execute(
            c,
            ConversationCommand::Close {
                by: Participant::Customer(id("cust-1")),
                reason: Some(Reason::new("resolved").unwrap()),
            },
        )
        .await
        .unwrap();
    assert_eq!(receipt.status, Status::Closed);
    for error in [
        f.handover
            .post_customer_message(c, id("cust-1"), text("one more thing"))
            .await
            .unwrap_err(),
        f.handover.reclaim(c, id("ana"), None).await.unwrap_err(),
        f.handover
            .hand_off_to_ai(c, id("ana"), bot.clone(), None)
            .await
            .unwrap_err(),
        f.handover.close(c, id("ana"), None).await.unwrap_err(),
    ] {
        assert_eq!(error.rejection(), Some(&Rejection::Closed));
    }
    let nowhere: ConversationId = id("0190f1f0-0000-7000-8000-000000000001");
    let error = f
        .handover
        .reclaim(nowhere, id("ana"), None)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::UnknownConversation(c) if c == nowhere));
    assert!(matches!(
        f.handover.watch(nowhere).await,
        Err(Error::UnknownConversation(_))
    ));
    f.handover.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_runtime_on_the_same_directory_is_refused() {
    let f = start().await;
    let error = Handover::start(Config::new(&f.path)).await.unwrap_err();
    assert!(
        matches!(error, Error::Store(StoreError::InUse { .. })),
        "{error}"
    );
    assert!(error.to_string().contains("in use by another process"));
    f.handover.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_select_list_shows_active_agents_by_specialty() {
    let f = start().await;
    let faq = agent(&f.handover, "faq", Arc::new(Echo)).await;
    f.handover
        .register_ai_agent(AiAgentProfile {
            id: id("shipping"),
            name: AgentName::new("Shipping").unwrap(),
            specialties: vec![id("shipping")],
        })
        .await
        .unwrap();
    let listed = |s: Option<&str>| {
        let specialty = s.map(|s| Specialty::new(s).unwrap());
        f.handover
            .active_ai_agents(specialty)
            .into_iter()
            .map(|a| a.profile.id.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(listed(None), ["faq"]);
    f.handover.activate_ai_agent(id("shipping")).await.unwrap();
    assert_eq!(listed(None), ["faq", "shipping"]);
    assert_eq!(listed(Some("pricing")), [faq.to_string()]);
    assert_eq!(listed(Some("shipping")), ["shipping"]);
    let again = f
        .handover
        .register_ai_agent(AiAgentProfile {
            id: faq,
            name: AgentName::new("dup").unwrap(),
            specialties: vec![],
        })
        .await
        .unwrap_err();
    assert!(matches!(
        again.rejection(),
        Some(Rejection::AiAgentAlreadyRegistered { .. })
    ));
    f.handover.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_handoff_the_ai_answers_the_question_a_human_left_pending() {
    let f = start().await;
    let bot = agent(&f.handover, "faq", Arc::new(Echo)).await;
    let c = open(&f.handover).await;
    f.handover
        .post_customer_message(c, id("cust-1"), text("Do you ship to Lisbon?"))
        .await
        .unwrap();
    f.handover
        .post_human_message(c, id("ana"), text("Let me transfer you to our assistant."))
        .await
        .unwrap();
    let mut watch = f.handover.watch(c).await.unwrap();
    f.handover
        .hand_off_to_ai(c, id("ana"), bot, None)
        .await
        .unwrap();
    let seen = watch_until(&mut watch, is_ai_message).await;
    assert!(matches!(
        &seen.last().unwrap().event,
        Event::Conversation(ConversationEvent::MessagePosted { text, .. })
            if text.as_str() == "echo: Do you ship to Lisbon?"
    ));
    f.handover.shutdown().await;
}
