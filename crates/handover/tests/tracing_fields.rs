//! Every command's span carries the conversation id, and the AI agent's id where one acts, so
//! logs can be filtered by either.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use handover::*;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

type Spans = Arc<Mutex<Vec<(String, BTreeMap<String, String>)>>>;

/// Records the name and fields of every span created.
struct Capture(Spans);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_owned(),
            format!("{value:?}").trim_matches('"').to_owned(),
        );
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        self.0
            .lock()
            .unwrap()
            .push((attrs.metadata().name().to_owned(), fields));
    }
}

struct Polite;

#[async_trait::async_trait]
impl AiAgentBehavior for Polite {
    async fn on_customer_message(&self, ai: &AiSession, _: &MessageText) -> Result<(), AgentError> {
        ai.reply(MessageText::new("Happy to help.")?).await?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_carry_the_conversation_and_agent_ids() {
    let spans: Spans = Arc::default();
    let subscriber = tracing_subscriber::registry().with(Capture(Arc::clone(&spans)));
    // The actors run on the runtime's own threads: the subscriber must be global.
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let handover = Handover::start(Config::new(dir.path())).await.unwrap();
    handover_testkit::staff(&handover, &["ana"]).await;
    let bot = AiAgentId::new("polite").unwrap();
    handover
        .register_ai_agent(AiAgentProfile {
            id: bot.clone(),
            name: AgentName::new("Polite").unwrap(),
            specialties: vec![],
        })
        .await
        .unwrap();
    handover.activate_ai_agent(bot.clone()).await.unwrap();
    handover
        .attach_ai_agent(bot.clone(), Arc::new(Polite))
        .unwrap();
    let customer = CustomerId::new("c").unwrap();
    let id = handover
        .open_conversation(
            customer.clone(),
            Channel::new("sms").unwrap(),
            Some(HumanId::new("ana").unwrap()),
        )
        .await
        .unwrap()
        .conversation_id;
    let mut watch = handover.watch(id).await.unwrap();
    handover
        .hand_off_to_ai(id, HumanId::new("ana").unwrap(), bot.clone(), None)
        .await
        .unwrap();
    handover
        .post_customer_message(id, customer, MessageText::new("hi").unwrap())
        .await
        .unwrap();
    while let Some(record) = watch.next().await.transpose().unwrap() {
        if matches!(
            record.event,
            Event::Conversation(ConversationEvent::MessagePosted {
                author: Author::Ai(_),
                ..
            })
        ) {
            break;
        }
    }
    handover.shutdown().await;

    let spans = spans.lock().unwrap();
    let find = |name: &str, command: Option<&str>| {
        spans
            .iter()
            .find(|(n, f)| {
                n == name && command.is_none_or(|c| f.get("command").map(String::as_str) == Some(c))
            })
            .map(|(_, f)| f.clone())
            .unwrap_or_else(|| panic!("no span {name} {command:?} among {spans:?}"))
    };
    let conversation_id = id.to_string();
    let handoff = find("conversation_command", Some("hand_off_to_ai"));
    assert_eq!(handoff["conversation_id"], conversation_id);
    assert_eq!(handoff["agent_id"], "polite");
    let reply = find("conversation_command", Some("post_message"));
    assert_eq!(reply["conversation_id"], conversation_id);
    let ai = find("ai_agent", None);
    assert_eq!(ai["agent_id"], "polite");
    assert_eq!(ai["conversation_id"], conversation_id);
    let registration = find("ai_agent_command", None);
    assert_eq!(registration["agent_id"], "polite");
}
