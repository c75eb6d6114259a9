//! Idle conversation actors stop and come back from the log; floods are refused with
//! `Error::Overloaded` and record nothing. Against a real sled directory.
//!
//! Waits here poll a condition (the number of live actors) with a generous deadline that only
//! turns a hang into a failure; nothing asserts how long anything took.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use handover::*;
use handover_sled::{SledOptions, SledStore};
use handover_store::{EventStore, ExpectedVersion};
use handover_testkit::{AppendOutcome, ForwardingStore, StoreHooks};
use tokio::sync::{mpsc, Mutex, Notify};

fn id<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse().unwrap()
}

fn text(s: &str) -> MessageText {
    MessageText::new(s).unwrap()
}

/// Replies "echo: <text>".
struct Echo;

#[async_trait]
impl AiAgentBehavior for Echo {
    async fn on_customer_message(
        &self,
        session: &AiSession,
        text: &MessageText,
    ) -> Result<(), AgentError> {
        session
            .reply(MessageText::new(format!("echo: {text}"))?)
            .await?;
        Ok(())
    }
}

async fn agent(handover: &Handover, name: &str, behavior: Arc<dyn AiAgentBehavior>) -> AiAgentId {
    let agent_id: AiAgentId = id(name);
    handover
        .register_ai_agent(AiAgentProfile {
            id: agent_id.clone(),
            name: AgentName::new(format!("{name} bot")).unwrap(),
            specialties: vec![],
        })
        .await
        .unwrap();
    handover.activate_ai_agent(agent_id.clone()).await.unwrap();
    handover
        .attach_ai_agent(agent_id.clone(), behavior)
        .unwrap();
    agent_id
}

/// Opens a conversation assigned to `ana`, a supervisor signed in on the first call.
async fn open(handover: &Handover) -> ConversationId {
    if handover.human(&id("ana")).is_none() {
        handover_testkit::staff(handover, &["ana"]).await;
    }
    handover
        .open_conversation(id("cust-1"), id("web-chat"), Some(id("ana")))
        .await
        .unwrap()
        .conversation_id
}

/// Polls until `live` actors run (a guard against a hang, not a timing assertion).
async fn wait_for_live(handover: &Handover, live: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while handover.live_conversations() != live {
        assert!(
            Instant::now() < deadline,
            "{} conversation actors still live, expected {live}",
            handover.live_conversations()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn next_ai_message(watch: &mut Watch) -> String {
    while let Some(record) = watch.next().await.transpose().unwrap() {
        if let Event::Conversation(ConversationEvent::MessagePosted {
            author: Author::Ai(_),
            text,
            ..
        }) = &record.event
        {
            return text.as_str().to_owned();
        }
    }
    panic!("the runtime stopped before the AI answered");
}

fn passivating(dir: &std::path::Path) -> Config {
    Config::new(dir)
        .workers(2)
        .passivate_after(Some(Duration::from_millis(20)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_conversation_is_passivated_and_rebuilt_with_its_ai_subscription() {
    let dir = tempfile::tempdir().unwrap();
    let handover = Handover::start(passivating(dir.path())).await.unwrap();
    let bot = agent(&handover, "faq", Arc::new(Echo)).await;
    let c = open(&handover).await;
    handover
        .hand_off_to_ai(c, id("ana"), bot.clone(), None)
        .await
        .unwrap();
    wait_for_live(&handover, 0).await;

    // The next command rebuilds the actor from its stream; the agent still answers.
    let receipt = handover
        .post_customer_message(c, id("cust-1"), text("Is shipping free?"))
        .await
        .unwrap();
    // Started, assigned to ana, handed off, the notice that the AI joined: the message is 5th.
    assert_eq!(receipt.events[0].seq, 5);
    assert!(matches!(receipt.status, Status::AiActive { ref agent_id, .. } if *agent_id == bot));
    let mut watch = handover.watch(c).await.unwrap();
    assert_eq!(next_ai_message(&mut watch).await, "echo: Is shipping free?");

    // Passivated again, the conversation is rebuilt for the reclaim, which ends the assignment.
    drop(watch);
    wait_for_live(&handover, 0).await;
    handover.reclaim(c, id("ana"), None).await.unwrap();
    let view = handover.conversation(c).await.unwrap();
    assert_eq!(view.status, Status::Reclaimed { by: id("ana") });
    let history = handover.history(c).await.unwrap();
    let seqs: Vec<u64> = history.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=history.len() as u64).collect::<Vec<_>>());
    handover.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_conversation_stays_live_while_an_unwatched_one_is_passivated() {
    let dir = tempfile::tempdir().unwrap();
    let handover = Handover::start(passivating(dir.path())).await.unwrap();
    let watched = open(&handover).await;
    let mut watch = handover.watch(watched).await.unwrap();
    // Read the history the watch replays, so that only live events remain.
    assert_eq!(
        watch
            .next()
            .await
            .transpose()
            .unwrap()
            .unwrap()
            .event
            .type_name(),
        "conversation_opened"
    );
    assert_eq!(
        watch
            .next()
            .await
            .transpose()
            .unwrap()
            .unwrap()
            .event
            .type_name(),
        "human_assigned"
    );
    let unwatched = open(&handover).await;
    // Only the unwatched one goes: once it has, the watched one is still live many idle
    // periods later. (No count is asserted right after the open: on a loaded machine the
    // unwatched actor can be idle for its 20 ms before the next line runs.)
    wait_for_live(&handover, 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(handover.live_conversations(), 1);
    handover
        .post_human_message(watched, id("ana"), text("Still here"))
        .await
        .unwrap();
    let record = watch.next().await.transpose().unwrap().unwrap();
    assert_eq!(record.seq, 3);
    // The passivated one answers as before.
    assert_eq!(handover.conversation(unwatched).await.unwrap().events, 2);
    handover.shutdown().await;
}

/// A store whose appends wait until the test opens the gate, or fail as overloaded.
type GatedStore = ForwardingStore<Gate>;

/// The hooks of a [`GatedStore`].
struct Gate {
    entered: mpsc::UnboundedSender<()>,
    gate: Arc<Notify>,
    gated: std::sync::atomic::AtomicBool,
    overloaded: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl StoreHooks for Gate {
    async fn append(
        &self,
        inner: &dyn EventStore,
        stream: &handover_core::StreamId,
        expected: ExpectedVersion,
        events: Vec<Event>,
    ) -> AppendOutcome {
        use std::sync::atomic::Ordering;
        if self.overloaded.load(Ordering::SeqCst) {
            return Err(StoreError::Overloaded);
        }
        if self.gated.load(Ordering::SeqCst) {
            let _ = self.entered.send(());
            self.gate.notified().await;
        }
        inner.append(stream, expected, events).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_beyond_the_in_flight_limit_are_refused_and_record_nothing() {
    use std::sync::atomic::Ordering;
    let dir = tempfile::tempdir().unwrap();
    let (entered, mut entered_rx) = mpsc::unbounded_channel();
    let store: Arc<GatedStore> = Arc::new(ForwardingStore::new(
        Arc::new(SledStore::open(dir.path(), SledOptions::default()).unwrap()),
        Gate {
            entered,
            gate: Arc::new(Notify::new()),
            gated: false.into(),
            overloaded: false.into(),
        },
    ));
    let config = Config::new(dir.path()).workers(2).max_in_flight(1);
    let handover =
        Handover::start_with_store(Arc::clone(&store) as Arc<dyn EventStore>, config.runtime)
            .await
            .unwrap();
    let c = open(&handover).await;
    let other = open(&handover).await;

    store.hooks().gated.store(true, Ordering::SeqCst);
    let first = tokio::spawn({
        let handover = handover.clone();
        async move {
            handover
                .post_customer_message(c, id("cust-1"), text("first"))
                .await
        }
    });
    entered_rx.recv().await.unwrap();
    // One command is in flight, the limit: the next is refused at once, on any conversation.
    let refused = handover
        .post_customer_message(other, id("cust-1"), text("second"))
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::Overloaded), "{refused}");
    assert!(refused.is_retryable() && !refused.is_caller_error());
    store.hooks().gated.store(false, Ordering::SeqCst);
    store.hooks().gate.notify_one();
    assert_eq!(first.await.unwrap().unwrap().events[0].seq, 3);
    // Retried once the flood is over, it goes through; nothing of the refusal was recorded.
    let retried = handover
        .post_customer_message(other, id("cust-1"), text("second"))
        .await
        .unwrap();
    assert_eq!(retried.events[0].seq, 3);
    handover.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_journal_queue_is_overloaded_and_the_conversation_keeps_its_state() {
    use std::sync::atomic::Ordering;
    let dir = tempfile::tempdir().unwrap();
    let (entered, _entered_rx) = mpsc::unbounded_channel();
    let store: Arc<GatedStore> = Arc::new(ForwardingStore::new(
        Arc::new(SledStore::open(dir.path(), SledOptions::default()).unwrap()),
        Gate {
            entered,
            gate: Arc::new(Notify::new()),
            gated: false.into(),
            overloaded: false.into(),
        },
    ));
    let config = Config::new(dir.path()).workers(2);
    let handover =
        Handover::start_with_store(Arc::clone(&store) as Arc<dyn EventStore>, config.runtime)
            .await
            .unwrap();
    let c = open(&handover).await;
    store.hooks().overloaded.store(true, Ordering::SeqCst);
    let refused = handover
        .post_customer_message(c, id("cust-1"), text("hello"))
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::Overloaded), "{refused}");
    store.hooks().overloaded.store(false, Ordering::SeqCst);
    // Nothing was written and the actor did not have to rebuild: the next seq is 3.
    assert_eq!(handover.live_conversations(), 1);
    let receipt = handover
        .post_customer_message(c, id("cust-1"), text("hello"))
        .await
        .unwrap();
    assert_eq!(receipt.events[0].seq, 3);
    handover.shutdown().await;
}

/// Starts on each customer message, then waits until the test lets it reply.
struct Slow {
    started: mpsc::UnboundedSender<String>,
    release: Mutex<mpsc::UnboundedReceiver<()>>,
}

#[async_trait]
impl AiAgentBehavior for Slow {
    async fn on_customer_message(
        &self,
        session: &AiSession,
        text: &MessageText,
    ) -> Result<(), AgentError> {
        let _ = self.started.send(text.as_str().to_owned());
        self.release.lock().await.recv().await;
        session
            .reply(MessageText::new(format!("echo: {text}"))?)
            .await?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_messages_beyond_the_ai_agents_backlog_are_refused_until_it_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::new(dir.path()).workers(2).ai_agent_backlog_max(1);
    let handover = Handover::start(config).await.unwrap();
    let (started, mut started_rx) = mpsc::unbounded_channel();
    let (release, release_rx) = mpsc::unbounded_channel();
    let slow = Arc::new(Slow {
        started,
        release: Mutex::new(release_rx),
    });
    let bot = agent(&handover, "slow", slow).await;
    let c = open(&handover).await;
    handover
        .hand_off_to_ai(c, id("ana"), bot, None)
        .await
        .unwrap();
    let post = |t: &'static str| handover.post_customer_message(c, id("cust-1"), text(t));

    post("one").await.unwrap();
    assert_eq!(started_rx.recv().await.unwrap(), "one");
    // "one" is being answered; "two" waits in the agent's backlog, which is now full.
    post("two").await.unwrap();
    let refused = post("three").await.unwrap_err();
    assert!(matches!(refused, Error::Overloaded), "{refused}");

    // Once the agent has caught up (its own replies are delivered to it too, and queue behind
    // "two"), the backlog has room again: a client retrying gets through.
    release.send(()).unwrap();
    assert_eq!(started_rx.recv().await.unwrap(), "two");
    release.send(()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match post("three").await {
            Ok(_) => break,
            Err(Error::Overloaded) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(error) => panic!("{error}"),
        }
    }
    assert_eq!(started_rx.recv().await.unwrap(), "three");
    release.send(()).unwrap();

    let mut watch = handover.watch(c).await.unwrap();
    let mut answers = Vec::new();
    while answers.len() < 3 {
        answers.push(next_ai_message(&mut watch).await);
    }
    assert_eq!(answers, ["echo: one", "echo: two", "echo: three"]);
    handover.shutdown().await;
}
