//! Commands sent with a command id are recorded once, however often the caller retries them,
//! through the runtime and across a restart.

use std::sync::Arc;

use handover::*;

fn id<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse().unwrap()
}

/// An agent that never answers: the test looks only at what humans and customers record.
struct Silent;

#[async_trait::async_trait]
impl AiAgentBehavior for Silent {
    async fn on_customer_message(&self, _: &AiSession, _: &MessageText) -> Result<(), AgentError> {
        Ok(())
    }
}

fn customer_message(text: &str) -> ConversationCommand {
    ConversationCommand::PostMessage {
        by: Participant::Customer(id("cust-1")),
        text: MessageText::new(text).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_command_is_recorded_once_and_answered_with_its_first_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let handover = Handover::start(Config::new(dir.path()).workers(2))
        .await
        .unwrap();
    handover_testkit::staff(&handover, &["ana"]).await;
    let bot: AiAgentId = id("bot");
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
        .attach_ai_agent(bot.clone(), Arc::new(Silent))
        .unwrap();
    let c = handover
        .open_conversation(id("cust-1"), id("web-chat"), Some(id("ana")))
        .await
        .unwrap()
        .conversation_id;

    // A message the rules would accept again: the store recognises the retry.
    let message = CommandId::new();
    let first = handover
        .execute_once(c, message, customer_message("where is my order?"))
        .await
        .unwrap();
    let retry = handover
        .execute_once(c, message, customer_message("where is my order?"))
        .await
        .unwrap();
    assert_eq!(first.events, retry.events);

    // A handoff the rules would refuse the second time (the conversation is AI-active now):
    // the retry is answered with the handoff it recorded, not with a rejection.
    let handoff = CommandId::new();
    let command = ConversationCommand::HandOffToAi {
        by: id("ana"),
        agent_id: bot.clone(),
        reason: None,
    };
    let handed = handover
        .execute_once(c, handoff, command.clone())
        .await
        .unwrap();
    let again = handover
        .execute_once(c, handoff, command.clone())
        .await
        .unwrap();
    assert_eq!(handed.events, again.events);
    assert!(matches!(again.status, Status::AiActive { .. }));
    // Without the id the same command is decided again, and refused.
    assert!(matches!(
        handover.execute(c, command.clone()).await,
        Err(Error::Rejected(_))
    ));
    let version = handover.conversation(c).await.unwrap().events;
    assert_eq!(
        version, 5,
        "opened and assigned, one message, one handoff and its notice"
    );

    // After a restart (the actor and the journal rebuilt from the log), still once.
    handover.shutdown().await;
    let handover = Handover::start(Config::new(dir.path()).workers(2))
        .await
        .unwrap();
    handover
        .attach_ai_agent(bot.clone(), Arc::new(Silent))
        .unwrap();
    let after = handover.execute_once(c, handoff, command).await.unwrap();
    assert_eq!(after.events, handed.events);
    let retried = handover
        .execute_once(c, message, customer_message("where is my order?"))
        .await
        .unwrap();
    assert_eq!(retried.events, first.events);
    assert_eq!(handover.conversation(c).await.unwrap().events, 5);
    handover.shutdown().await;
}
