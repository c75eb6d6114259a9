//! Watching from any point, a watcher that falls behind and carries on, the conversation view
//! a caller reads, and an AI agent that is not sent back what it wrote.

use std::sync::{Arc, Mutex};

use handover::*;

fn id<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse().unwrap()
}

fn text(s: &str) -> MessageText {
    MessageText::new(s).unwrap()
}

/// A runtime with `ana` signed in as a supervisor.
async fn start(dir: &std::path::Path) -> Handover {
    let handover = Handover::start(Config::new(dir).workers(2).durability(Durability::Buffered))
        .await
        .unwrap();
    handover_testkit::staff(&handover, &["ana"]).await;
    handover
}

async fn open(handover: &Handover) -> ConversationId {
    handover
        .open_conversation(id("cust-1"), id("web-chat"), Some(id("ana")))
        .await
        .unwrap()
        .conversation_id
}

/// Reads `count` events from `watch` and returns their seqs.
async fn seqs(watch: &mut Watch, count: usize) -> Vec<u64> {
    let mut seqs = Vec::with_capacity(count);
    while seqs.len() < count {
        let record = watch
            .next()
            .await
            .expect("the runtime runs")
            .expect("a watch carries on");
        seqs.push(record.seq);
    }
    seqs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_from_a_seq_yields_what_follows_it_then_live_events() {
    let dir = tempfile::tempdir().unwrap();
    let handover = start(dir.path()).await;
    let c = open(&handover).await;
    for n in 0..4 {
        handover
            .post_customer_message(c, id("cust-1"), text(&format!("question {n}")))
            .await
            .unwrap();
    }
    // Events 1..=6 are in the log (the start, the assignment, four questions); a watcher that
    // saw up to 3 gets 4 to 6, then live ones.
    let mut watch = handover.watch_from(c, 3).await.unwrap();
    assert_eq!(watch.last_seq(), 3);
    assert_eq!(seqs(&mut watch, 3).await, [4, 5, 6]);
    handover
        .post_human_message(c, id("ana"), text("hello"))
        .await
        .unwrap();
    assert_eq!(seqs(&mut watch, 1).await, [7]);
    assert_eq!(watch.last_seq(), 7);
    // Past the end: nothing from the log, only what comes next.
    let mut ahead = handover.watch_from(c, 7).await.unwrap();
    handover
        .post_human_message(c, id("ana"), text("anything else?"))
        .await
        .unwrap();
    assert_eq!(seqs(&mut ahead, 1).await, [8]);
    handover.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_that_falls_behind_carries_on_from_its_last_seq() {
    let dir = tempfile::tempdir().unwrap();
    let handover = start(dir.path()).await;
    let c = open(&handover).await;
    let mut watch = handover.watch(c).await.unwrap();
    // Far more live events than a watcher may leave unread: the actor drops it, and the watch
    // reads what it missed from the log.
    const MESSAGES: u64 = 5_000;
    for n in 0..MESSAGES {
        handover
            .post_human_message(c, id("ana"), text(&format!("line {n}")))
            .await
            .unwrap();
    }
    // The start and the assignment, then the messages.
    let all = seqs(&mut watch, 2 + MESSAGES as usize).await;
    assert_eq!(
        all,
        (1..=2 + MESSAGES).collect::<Vec<_>>(),
        "none missed, none repeated"
    );
    handover
        .post_human_message(c, id("ana"), text("after the gap"))
        .await
        .unwrap();
    assert_eq!(seqs(&mut watch, 1).await, [MESSAGES + 3]);
    handover.shutdown().await;
}

/// Answers every customer message, and notes every event it is given.
struct Noting {
    seen: Arc<Mutex<Vec<&'static str>>>,
}

#[async_trait]
impl AiAgentBehavior for Noting {
    async fn on_customer_message(
        &self,
        session: &AiSession,
        text: &MessageText,
    ) -> Result<(), AgentError> {
        session
            .record_skill(Skill::new("lookup", text.as_str(), Ok("found".into()))?)
            .await?;
        session
            .reply(MessageText::new(format!("about {text}"))?)
            .await?;
        Ok(())
    }

    async fn on_event(
        &self,
        session: &AiSession,
        record: &RecordedEvent,
    ) -> Result<(), AgentError> {
        self.seen.lock().unwrap().push(record.event.type_name());
        if let Event::Conversation(ConversationEvent::MessagePosted {
            author: Author::Customer(_),
            text,
            ..
        }) = &record.event
        {
            self.on_customer_message(session, text).await?;
        }
        Ok(())
    }
}

async fn next_ai_reply(watch: &mut Watch) -> u64 {
    loop {
        let record = watch.next().await.unwrap().unwrap();
        if let Event::Conversation(ConversationEvent::MessagePosted {
            author: Author::Ai(_),
            ..
        }) = record.event
        {
            return record.seq;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ai_agent_is_not_sent_what_it_wrote_and_the_view_counts_it_all() {
    let dir = tempfile::tempdir().unwrap();
    let handover = start(dir.path()).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let bot: AiAgentId = id("noting");
    handover
        .register_ai_agent(AiAgentProfile {
            id: bot.clone(),
            name: AgentName::new("Noting bot").unwrap(),
            specialties: vec![],
        })
        .await
        .unwrap();
    handover.activate_ai_agent(bot.clone()).await.unwrap();
    handover
        .attach_ai_agent(
            bot.clone(),
            Arc::new(Noting {
                seen: Arc::clone(&seen),
            }),
        )
        .unwrap();
    let opened = handover
        .open_conversation(id("cust-1"), id("web-chat"), Some(id("ana")))
        .await
        .unwrap();
    let c = opened.conversation_id;
    assert_eq!(opened.events[0].seq, 1);
    let mut watch = handover.watch(c).await.unwrap();
    handover
        .hand_off_to_ai(c, id("ana"), bot.clone(), None)
        .await
        .unwrap();
    for question in ["hours?", "prices?"] {
        handover
            .post_customer_message(c, id("cust-1"), text(question))
            .await
            .unwrap();
        next_ai_reply(&mut watch).await;
    }
    // Only the customer's messages reached `on_event`: not the agent's skills and replies.
    assert_eq!(*seen.lock().unwrap(), ["message_posted", "message_posted"]);

    let view = handover.conversation(c).await.unwrap();
    assert_eq!(view.id, c);
    assert_eq!(view.customer, id::<CustomerId>("cust-1"));
    assert_eq!(view.channel, id::<Channel>("web-chat"));
    assert_eq!(view.human, Some(id("ana")));
    assert!(!view.closed);
    assert!(view.concerns.is_empty());
    assert_eq!(view.handoffs, 1);
    // Started and assigned, handed off with its notice, and two rounds of a question, a skill
    // and a reply.
    assert_eq!(view.events, 2 + 2 + 2 * 3);
    assert_eq!(view.messages, 4);
    assert!(matches!(
        &view.status,
        Status::AiActive { agent_id, agent_name, .. }
            if *agent_id == bot && agent_name.as_str() == "Noting bot"
    ));
    let history = handover.history(c).await.unwrap();
    assert_eq!(view.opened_at, history[0].recorded_at);
    assert_eq!(view.last_activity, history.last().unwrap().recorded_at);

    let closed = handover
        .close(c, id("ana"), Some(Reason::new("resolved").unwrap()))
        .await
        .unwrap();
    assert_eq!(closed.conversation_id, c);
    assert_eq!(closed.status, Status::Closed);
    let view = handover.conversation(c).await.unwrap();
    assert!(view.closed);
    assert_eq!(view.status, Status::Closed);
    handover.shutdown().await;
}
