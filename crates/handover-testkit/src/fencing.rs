//! Fencing through the real runtime over the store under test: an AI agent's command under an
//! assignment that has ended is rejected and records nothing, whatever happened in between
//! (another agent, the same agent again, a passivated actor, a restart).
//!
//! Waits poll a condition (the number of live conversation actors, the handles of the store)
//! under a generous deadline that only turns a hang into a failure; nothing asserts how long
//! anything took.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use handover::{
    AgentError, AgentName, AiAgentBehavior, AiAgentId, AiAgentProfile, AiSession, Assignment,
    Author, Config, ConversationCommand, ConversationEvent, ConversationId, Epoch, Error, Event,
    Handover, MessageText, Participant, Receipt, Rejection, Skill, SkillData, SkillName,
    SkillOutcome, Status, StreamId,
};
use handover_store::EventStore;

use crate::values::{read, version};
use crate::StoreFactory;

/// How long a wait may last before it is reported as a hang.
const WAIT_GUARD: Duration = Duration::from_secs(60);

/// An AI agent that never answers by itself: every AI command in these properties is one the
/// property sends, so the log holds nothing else.
struct Silent;

#[async_trait]
impl AiAgentBehavior for Silent {
    async fn on_customer_message(&self, _: &AiSession, _: &MessageText) -> Result<(), AgentError> {
        Ok(())
    }
}

/// The runtime over the store under test.
struct Runtime {
    handover: Handover,
    /// `Config::data_dir` is only reported when the runtime runs over a given store; it still
    /// names a real directory.
    _data_dir: tempfile::TempDir,
}

async fn start(store: &Arc<dyn EventStore>, passivate_after: Option<Duration>) -> Runtime {
    let data_dir = tempfile::tempdir().expect("a temporary directory");
    let config = Config::new(data_dir.path())
        .workers(2)
        .passivate_after(passivate_after);
    let handover = Handover::start_with_store(Arc::clone(store), config.runtime)
        .await
        .unwrap_or_else(|e| panic!("the runtime did not start over the store: {e}"));
    // The human every property acts as, signed in once per log.
    if handover.human(&valid("ana")).is_none() {
        crate::staff(&handover, &["ana"]).await;
    }
    Runtime {
        handover,
        _data_dir: data_dir,
    }
}

/// Stops the runtime and waits until it holds no handle of the store.
async fn stop(runtime: Runtime, store: &Arc<dyn EventStore>) {
    runtime.handover.shutdown().await;
    let deadline = Instant::now() + WAIT_GUARD;
    while Arc::strong_count(store) > 1 {
        assert!(
            Instant::now() < deadline,
            "the stopped runtime still holds {} handles of the store",
            Arc::strong_count(store) - 1
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn valid<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse().expect("a valid value")
}

/// Registers, activates and attaches a silent AI agent.
async fn agent(handover: &Handover, name: &str) -> AiAgentId {
    let agent_id: AiAgentId = valid(name);
    handover
        .register_ai_agent(AiAgentProfile {
            id: agent_id.clone(),
            name: AgentName::new(format!("{name} bot")).expect("a valid name"),
            specialties: vec![],
        })
        .await
        .expect("the agent registers");
    handover
        .activate_ai_agent(agent_id.clone())
        .await
        .expect("the agent activates");
    attach(handover, &agent_id);
    agent_id
}

fn attach(handover: &Handover, agent_id: &AiAgentId) {
    handover
        .attach_ai_agent(agent_id.clone(), Arc::new(Silent))
        .expect("the agent attaches");
}

async fn open(handover: &Handover) -> ConversationId {
    handover
        .open_conversation(valid("cust-1"), valid("web-chat"), Some(valid("ana")))
        .await
        .expect("the conversation opens")
        .conversation_id
}

async fn hand_off(handover: &Handover, c: ConversationId, agent_id: &AiAgentId) -> Epoch {
    let receipt = handover
        .hand_off_to_ai(c, valid("ana"), agent_id.clone(), None)
        .await
        .expect("the handoff is accepted");
    match receipt.status {
        Status::AiActive { epoch, .. } => epoch,
        other => panic!("a handoff left the conversation {}", other.label()),
    }
}

async fn reclaim(handover: &Handover, c: ConversationId) {
    handover
        .reclaim(c, valid("ana"), None)
        .await
        .expect("the reclaim is accepted");
}

/// The reply an AI agent sends under `epoch`.
fn reply(agent_id: &AiAgentId, epoch: Epoch, text: &str) -> ConversationCommand {
    ConversationCommand::PostMessage {
        by: Participant::Ai(Assignment {
            agent_id: agent_id.clone(),
            epoch,
        }),
        text: MessageText::new(text).expect("a valid message"),
    }
}

/// A skill an AI agent records under `epoch`.
fn skill(agent_id: &AiAgentId, epoch: Epoch) -> ConversationCommand {
    ConversationCommand::RecordAiAction {
        by: Assignment {
            agent_id: agent_id.clone(),
            epoch,
        },
        skill: Skill {
            name: SkillName::new("lookup").expect("a valid skill name"),
            input: SkillData::new("order 7").expect("valid skill data"),
            outcome: SkillOutcome::Succeeded(SkillData::new("shipped").expect("valid data")),
        },
    }
}

/// Sends `command` and checks that it is rejected with `rejection` and that neither the
/// conversation's stream nor the log moved.
async fn assert_rejected(
    handover: &Handover,
    store: &dyn EventStore,
    c: ConversationId,
    command: ConversationCommand,
    rejection: Rejection,
) {
    let stream = StreamId::Conversation(c);
    let (head, v) = (store.head(), version(store, &stream).await);
    let stream_before = read(store, &stream).await;
    let outcome: Result<Receipt, Error> = handover.execute(c, command.clone()).await;
    match outcome {
        Err(Error::Rejected(got)) => assert_eq!(got, rejection, "{command:?}"),
        Err(other) => panic!("{command:?} failed with {other} instead of being rejected"),
        Ok(receipt) => panic!(
            "{command:?} was accepted and recorded at seq {:?}",
            receipt.events.iter().map(|r| r.seq).collect::<Vec<_>>()
        ),
    }
    assert_eq!(store.head(), head, "a rejected {command:?} moved the head");
    assert_eq!(
        version(store, &stream).await,
        v,
        "a rejected command moved the stream"
    );
    assert_eq!(read(store, &stream).await, stream_before);
}

/// Sends `reply` under `epoch` and checks that it is recorded as the stream's next event,
/// authored by the agent.
async fn assert_accepted(
    handover: &Handover,
    store: &dyn EventStore,
    c: ConversationId,
    agent_id: &AiAgentId,
    epoch: Epoch,
    text: &str,
) {
    let stream = StreamId::Conversation(c);
    let v = version(store, &stream).await;
    let receipt = handover
        .execute(c, reply(agent_id, epoch, text))
        .await
        .unwrap_or_else(|e| panic!("the reply of {agent_id} under {epoch:?} was refused: {e}"));
    assert_eq!(receipt.events.len(), 1);
    let recorded = &receipt.events[0];
    assert_eq!(recorded.seq, v + 1);
    let stored = read(store, &stream).await;
    assert_eq!(
        stored.last(),
        Some(&**recorded),
        "the reply as the store holds it"
    );
    match &recorded.event {
        Event::Conversation(ConversationEvent::MessagePosted {
            author: Author::Ai(author),
            text: posted,
            ..
        }) => {
            assert_eq!(author, agent_id);
            assert_eq!(posted.as_str(), text);
        }
        other => panic!("the reply was recorded as {other:?}"),
    }
}

fn ended(agent_id: &AiAgentId, epoch: Epoch) -> Rejection {
    Rejection::AssignmentEnded {
        agent_id: agent_id.clone(),
        epoch,
    }
}

fn not_assigned(agent_id: &AiAgentId) -> Rejection {
    Rejection::NotAssigned {
        agent_id: agent_id.clone(),
    }
}

/// Polls until `live` conversation actors run.
async fn wait_for_live(handover: &Handover, live: usize) {
    let deadline = Instant::now() + WAIT_GUARD;
    while handover.live_conversations() != live {
        assert!(
            Instant::now() < deadline,
            "{} conversation actors still live, expected {live}",
            handover.live_conversations()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Agent A is handed the conversation (epoch 1), a human reclaims it, and agent B is handed it
/// (epoch 2). A's reply and skill under epoch 1 are rejected after the reclaim and after B's
/// handoff; B under epoch 1 and A under epoch 2 never held those assignments; none of them
/// records anything. B under epoch 2 is accepted.
pub async fn an_earlier_epoch_is_rejected_and_records_nothing<F: StoreFactory>(factory: &F) {
    let place = factory.fresh().await;
    let store = factory.open(&place).await;
    let runtime = start(&store, None).await;
    let h = &runtime.handover;
    let (a, b) = (agent(h, "kit-a").await, agent(h, "kit-b").await);
    let c = open(h).await;
    let first = hand_off(h, c, &a).await;
    reclaim(h, c).await;
    let mut rejected = 0;
    assert_rejected(
        h,
        &*store,
        c,
        reply(&a, first, "after reclaim"),
        ended(&a, first),
    )
    .await;
    assert_rejected(h, &*store, c, skill(&a, first), ended(&a, first)).await;
    rejected += 2;

    let second = hand_off(h, c, &b).await;
    assert!(second > first, "epochs grow: {first:?} then {second:?}");
    assert_rejected(h, &*store, c, reply(&a, first, "late"), ended(&a, first)).await;
    assert_rejected(h, &*store, c, skill(&a, first), ended(&a, first)).await;
    assert_rejected(
        h,
        &*store,
        c,
        reply(&b, first, "wrong epoch"),
        not_assigned(&b),
    )
    .await;
    assert_rejected(
        h,
        &*store,
        c,
        reply(&a, second, "not mine"),
        not_assigned(&a),
    )
    .await;
    rejected += 4;
    assert_accepted(h, &*store, c, &b, second, "the current answer").await;
    stop(runtime, &store).await;
    println!(
        "an_earlier_epoch_is_rejected_and_records_nothing [{}]: {rejected} stale AI commands rejected with nothing recorded, 1 current reply recorded",
        factory.describe()
    );
}

/// The same agent is handed the conversation, loses it to a reclaim, and is handed it again:
/// its reply under the first epoch is rejected (before and after its current reply), the one
/// under the new epoch is accepted.
pub async fn the_same_agent_handed_the_conversation_again_is_fenced<F: StoreFactory>(factory: &F) {
    let place = factory.fresh().await;
    let store = factory.open(&place).await;
    let runtime = start(&store, None).await;
    let h = &runtime.handover;
    let a = agent(h, "kit-a").await;
    let c = open(h).await;
    let first = hand_off(h, c, &a).await;
    reclaim(h, c).await;
    let second = hand_off(h, c, &a).await;
    assert_ne!(first, second, "a new handoff is a new epoch");
    assert_rejected(
        h,
        &*store,
        c,
        reply(&a, first, "from the first"),
        ended(&a, first),
    )
    .await;
    assert_accepted(h, &*store, c, &a, second, "from the second").await;
    assert_rejected(
        h,
        &*store,
        c,
        reply(&a, first, "still late"),
        ended(&a, first),
    )
    .await;
    stop(runtime, &store).await;
    println!(
        "the_same_agent_handed_the_conversation_again_is_fenced [{}]: epochs {first:?} then {second:?}; 2 replies under the first rejected, 1 under the second recorded",
        factory.describe()
    );
}

/// With conversation actors passivated after 20 ms idle, a stale reply that arrives once the
/// actor has stopped is rejected by the actor rebuilt from the store, and the current reply,
/// arriving after another passivation, is accepted.
pub async fn a_stale_reply_after_passivation_is_rejected<F: StoreFactory>(factory: &F) {
    let place = factory.fresh().await;
    let store = factory.open(&place).await;
    let runtime = start(&store, Some(Duration::from_millis(20))).await;
    let h = &runtime.handover;
    let a = agent(h, "kit-a").await;
    let c = open(h).await;
    let first = hand_off(h, c, &a).await;
    reclaim(h, c).await;
    let second = hand_off(h, c, &a).await;
    wait_for_live(h, 0).await;
    assert_rejected(
        h,
        &*store,
        c,
        reply(&a, first, "after a rest"),
        ended(&a, first),
    )
    .await;
    wait_for_live(h, 0).await;
    assert_accepted(h, &*store, c, &a, second, "current, after a rest").await;
    wait_for_live(h, 0).await;
    assert_rejected(
        h,
        &*store,
        c,
        reply(&a, first, "once more"),
        ended(&a, first),
    )
    .await;
    stop(runtime, &store).await;
    println!(
        "a_stale_reply_after_passivation_is_rejected [{}]: 3 passivations; 2 stale replies rejected by rebuilt actors, 1 current reply recorded",
        factory.describe()
    );
}

/// The runtime stops and the store is reopened (a restart): a new runtime over it rejects the
/// reply under the ended epoch and accepts the current one.
pub async fn a_stale_reply_after_a_restart_is_rejected<F: StoreFactory>(factory: &F) {
    let place = factory.fresh().await;
    let store = factory.open(&place).await;
    let runtime = start(&store, None).await;
    let h = &runtime.handover;
    let a = agent(h, "kit-a").await;
    let c = open(h).await;
    let first = hand_off(h, c, &a).await;
    reclaim(h, c).await;
    let second = hand_off(h, c, &a).await;
    stop(runtime, &store).await;
    drop(store);

    let store = factory.open(&place).await;
    let runtime = start(&store, None).await;
    let h = &runtime.handover;
    attach(h, &a);
    assert_rejected(
        h,
        &*store,
        c,
        reply(&a, first, "before the restart"),
        ended(&a, first),
    )
    .await;
    assert_accepted(h, &*store, c, &a, second, "after the restart").await;
    stop(runtime, &store).await;
    println!(
        "a_stale_reply_after_a_restart_is_rejected [{}]: 1 restart; the reply under {first:?} rejected, under {second:?} recorded",
        factory.describe()
    );
}
