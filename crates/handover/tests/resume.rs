//! An AI agent taking up its conversations after a restart, or attached after the handoff,
//! answers what is still waiting and nothing twice.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use handover::*;

fn id<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse().unwrap()
}

/// Answers every customer message, and counts its answers.
struct Counting(Arc<AtomicUsize>);

#[async_trait::async_trait]
impl AiAgentBehavior for Counting {
    async fn on_customer_message(
        &self,
        session: &AiSession,
        text: &MessageText,
    ) -> Result<(), AgentError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        session
            .reply(MessageText::new(format!("about {text}: here you go"))?)
            .await?;
        Ok(())
    }
}

async fn start(dir: &std::path::Path) -> Handover {
    Handover::start(Config::new(dir).workers(2)).await.unwrap()
}

/// The AI replies in the conversation's history, waiting (by polling, no time asserted) until
/// there are `at_least`.
async fn ai_replies(handover: &Handover, c: ConversationId, at_least: usize) -> usize {
    loop {
        let replies = handover
            .history(c)
            .await
            .unwrap()
            .iter()
            .filter(|r| {
                matches!(
                    &r.event,
                    Event::Conversation(ConversationEvent::MessagePosted {
                        author: Author::Ai(_),
                        ..
                    })
                )
            })
            .count();
        if replies >= at_least {
            return replies;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_agent_answers_what_waits_and_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let answers = Arc::new(AtomicUsize::new(0));
    let bot: AiAgentId = id("bot");
    let handover = start(dir.path()).await;
    handover_testkit::staff(&handover, &["ana"]).await;
    handover
        .register_ai_agent(AiAgentProfile {
            id: bot.clone(),
            name: AgentName::new("Bot").unwrap(),
            specialties: vec![],
        })
        .await
        .unwrap();
    handover.activate_ai_agent(bot.clone()).await.unwrap();
    handover
        .attach_ai_agent(bot.clone(), Arc::new(Counting(Arc::clone(&answers))))
        .unwrap();
    let c = handover
        .open_conversation(id("cust-1"), id("web-chat"), Some(id("ana")))
        .await
        .unwrap()
        .conversation_id;
    let say = |text: &str| MessageText::new(text).unwrap();
    handover
        .post_customer_message(c, id("cust-1"), say("opening hours?"))
        .await
        .unwrap();
    handover
        .hand_off_to_ai(c, id("ana"), bot.clone(), None)
        .await
        .unwrap();
    assert_eq!(ai_replies(&handover, c, 1).await, 1);
    handover.shutdown().await;

    // Restarted with no agent attached: a question arrives and waits.
    let handover = start(dir.path()).await;
    handover
        .post_customer_message(c, id("cust-1"), say("and on sundays?"))
        .await
        .unwrap();
    // Attached now: it takes the conversation up, answers the waiting question once, and
    // does not answer the first one again.
    handover
        .attach_ai_agent(bot.clone(), Arc::new(Counting(Arc::clone(&answers))))
        .unwrap();
    assert_eq!(ai_replies(&handover, c, 2).await, 2);
    handover.shutdown().await;

    // Another restart with the agent attached at once: everything is answered, nothing more.
    let handover = start(dir.path()).await;
    handover
        .attach_ai_agent(bot.clone(), Arc::new(Counting(Arc::clone(&answers))))
        .unwrap();
    handover
        .post_customer_message(c, id("cust-1"), say("thanks!"))
        .await
        .unwrap();
    assert_eq!(ai_replies(&handover, c, 3).await, 3);
    let history = handover.history(c).await.unwrap();
    let last = history.last().unwrap();
    assert!(
        matches!(
            &last.event,
            Event::Conversation(ConversationEvent::MessagePosted {
                author: Author::Ai(_),
                ..
            })
        ),
        "the last event is the answer to the last question: {last:?}"
    );
    assert_eq!(
        answers.load(Ordering::SeqCst),
        3,
        "each question answered once"
    );
    handover.shutdown().await;
}
