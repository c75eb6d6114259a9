//! Live queries against a real sled directory: every conversation listed where it stands, with
//! its controller, team, flag, wait and latest message; counts per status and per queue; the
//! list rebuilt from the log at start; another tenant's conversations never listed.

use std::sync::Arc;
use std::time::Duration;

use handover::*;

const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);

fn id<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse().unwrap()
}

fn text(s: &str) -> MessageText {
    MessageText::new(s).unwrap()
}

/// Answers every customer message.
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

async fn start(dir: &std::path::Path, clock: &ManualClock) -> Handover {
    Handover::start(
        Config::new(dir)
            .workers(2)
            .clock(Arc::new(clock.clone()))
            .router(Arc::new(NoRouter)),
    )
    .await
    .unwrap()
}

/// Waits until the listing holds what `check` looks for; the bound is a liveness guard.
async fn until_listed(
    handover: &Handover,
    tenant: &TenantId,
    query: &LiveQuery,
    check: impl Fn(&[LiveConversation]) -> bool,
) -> Vec<LiveConversation> {
    let mut changes = handover.listing_changes();
    let listed = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let list = handover.list_conversations(tenant, query);
            if check(&list) {
                return list;
            }
            changes.changed().await.unwrap();
        }
    })
    .await;
    listed.expect("the listing never showed what was expected")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_list_shows_each_conversation_where_it_stands_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let tenant = TenantId::default_tenant();
    let (ai_conv, waiting, handled, closed);
    {
        let h = start(dir.path(), &clock).await;
        h.register_human(NewHuman::supervisor(
            id("sue"),
            AgentName::new("Sue").unwrap(),
        ))
        .await
        .unwrap();
        h.register_human(NewHuman::agent(id("ana"), AgentName::new("Ana").unwrap()))
            .await
            .unwrap();
        h.set_presence(id("ana"), Presence::Available)
            .await
            .unwrap();
        h.set_presence(id("sue"), Presence::Available)
            .await
            .unwrap();
        let bot: AiAgentId = id("bot");
        h.register_ai_agent(AiAgentProfile {
            id: bot.clone(),
            name: AgentName::new("Billing bot").unwrap(),
            specialties: vec![id("billing")],
        })
        .await
        .unwrap();
        h.activate_ai_agent(bot.clone()).await.unwrap();
        h.attach_ai_agent(bot.clone(), Arc::new(Echo)).unwrap();
        let open = |customer: &'static str| {
            let h = &h;
            async move {
                h.open_conversation(id(customer), id("chat"), Some(id("ana")))
                    .await
                    .unwrap()
                    .conversation_id
            }
        };

        // One the AI handles and answered.
        ai_conv = open("cust-ai").await;
        h.hand_off_to_ai(ai_conv, id("ana"), bot.clone(), None)
            .await
            .unwrap();
        h.post_customer_message(ai_conv, id("cust-ai"), text("How do I pay my invoice?"))
            .await
            .unwrap();
        // One waiting in the billing queue since T0 + 5 s.
        clock.advance_millis(5_000);
        waiting = open("cust-wait").await;
        h.transfer(
            waiting,
            id("ana"),
            TransferTarget::Team(id("billing")),
            Reason::new("billing question").unwrap(),
        )
        .await
        .unwrap();
        // One a human handles, flagged, with a long customer message.
        handled = open("cust-human").await;
        h.post_customer_message(handled, id("cust-human"), text(&"é".repeat(200)))
            .await
            .unwrap();
        h.raise_flag(handled, id("sue")).await.unwrap();
        // One closed.
        closed = open("cust-closed").await;
        h.close(closed, id("ana"), None).await.unwrap();

        let all = until_listed(&h, &tenant, &LiveQuery::new(), |list| {
            list.iter().any(|c| {
                c.id == ai_conv
                    && matches!(&c.last_message, Some(m) if matches!(m.author, LastAuthor::Ai(_)))
            })
        })
        .await;
        assert_eq!(all.len(), 4);
        // The waiting one first; the others latest activity first.
        assert_eq!(all[0].id, waiting);
        clock.advance_millis(7_000);
        check_listing(&h, &tenant, ai_conv, waiting, handled, closed);
        h.shutdown().await;
    }
    // Rebuilt from the log at start, with the same answers.
    let h = start(dir.path(), &clock).await;
    check_listing(&h, &tenant, ai_conv, waiting, handled, closed);

    // Assigning the waiting conversation clears its wait; the counts follow.
    h.assign(waiting, id("sue"), id("ana")).await.unwrap();
    let list = h.list_conversations(&tenant, &LiveQuery::new().human(id("ana")));
    let assigned = list.iter().find(|c| c.id == waiting).unwrap();
    assert_eq!(assigned.status, LiveStatus::HumanHandled);
    assert_eq!(assigned.wait, None);
    assert_eq!(assigned.human_name.as_ref().unwrap().as_str(), "Ana");
    let counts = h.conversation_counts(&tenant);
    assert_eq!(counts.awaiting_human, 0);
    assert_eq!(counts.human_handled, 2);
    assert!(counts.queues.is_empty());
    assert_eq!(counts.longest_wait, Duration::ZERO);

    // Another tenant sees none of it.
    let other: TenantId = id("globex");
    assert!(h.list_conversations(&other, &LiveQuery::new()).is_empty());
    assert_eq!(h.conversation_counts(&other), LiveCounts::default());
    h.shutdown().await;
}

fn check_listing(
    h: &Handover,
    tenant: &TenantId,
    ai_conv: ConversationId,
    waiting: ConversationId,
    handled: ConversationId,
    closed: ConversationId,
) {
    let by_status = |status| {
        h.list_conversations(tenant, &LiveQuery::new().status(status))
            .into_iter()
            .map(|c| c.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(by_status(LiveStatus::AiActive), vec![ai_conv]);
    assert_eq!(by_status(LiveStatus::AwaitingHuman), vec![waiting]);
    assert_eq!(by_status(LiveStatus::HumanHandled), vec![handled]);
    assert_eq!(by_status(LiveStatus::ClosedRecently), vec![closed]);

    let list = h.list_conversations(tenant, &LiveQuery::new());
    let find = |cid| list.iter().find(|c| c.id == cid).unwrap();

    let ai = find(ai_conv);
    let (agent, name) = ai.ai_agent.as_ref().unwrap();
    assert_eq!((agent.as_str(), name.as_str()), ("bot", "Billing bot"));
    let last = ai.last_message.as_ref().unwrap();
    assert_eq!(last.text, "echo: How do I pay my invoice?");
    assert_eq!(last.author, LastAuthor::Ai(id("bot")));

    // Waiting since T0 + 5 s, and the clock is at T0 + 12 s.
    let w = find(waiting);
    assert_eq!(w.customer.as_str(), "cust-wait");
    assert_eq!(w.team.as_ref().unwrap().as_str(), "billing");
    assert_eq!(
        w.waiting,
        Some((
            Timestamp::from_millis(1_800_000_005_000),
            WaitCause::Transferred
        ))
    );
    assert_eq!(w.wait, Some(Duration::from_secs(7)));
    assert_eq!(w.human, None);

    let hh = find(handled);
    assert!(hh.flagged);
    assert_eq!(hh.human, Some(id("ana")));
    let last = hh.last_message.as_ref().unwrap();
    assert_eq!(last.author, LastAuthor::Customer);
    assert!(last.cut);
    assert_eq!(last.text.chars().count(), LAST_MESSAGE_CHARS_MAX);
    let flagged = h.list_conversations(tenant, &LiveQuery::new().flagged_only());
    assert_eq!(flagged.len(), 1);

    let by_agent = h.list_conversations(tenant, &LiveQuery::new().ai_agent(id("bot")));
    assert_eq!(by_agent.len(), 1);
    let by_team = h.list_conversations(tenant, &LiveQuery::new().team(id("billing")));
    assert_eq!(by_team.len(), 1);
    assert_eq!(
        h.list_conversations(tenant, &LiveQuery::new().limit(2))
            .len(),
        2
    );

    let counts = h.conversation_counts(tenant);
    assert_eq!(
        (
            counts.ai_active,
            counts.awaiting_human,
            counts.human_handled,
            counts.closed_recently
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(counts.longest_wait, Duration::from_secs(7));
    assert_eq!(counts.queues.len(), 1);
    assert_eq!(counts.queues[0].team.as_ref().unwrap().as_str(), "billing");
    assert_eq!(counts.queues[0].waiting, 1);
    assert_eq!(counts.queues[0].longest_wait, Duration::from_secs(7));
}
