//! Two runtimes on one PostgreSQL database, as two nodes of a cluster: each tenant's shard is
//! leased to one of them; each answers for every tenant (the follower folds the other's
//! commits into its board and directory), and only the owner writes a tenant.

use std::sync::Arc;
use std::time::{Duration, Instant};

use handover::*;
use handover_postgres::{NodeOptions, PostgresOptions, PostgresStore};
use handover_testkit::{run, PgCluster};

/// Long enough that a loaded machine renews in time (ownership stays put while a test acts);
/// the takeovers here follow a clean shutdown, which gives the shards back at once.
const LEASE: Duration = Duration::from_secs(5);

/// A cluster node's options: the test lease, and a quick poll.
fn node_options() -> PostgresOptions {
    let mut node = NodeOptions::default();
    node.lease = LEASE;
    let mut options = PostgresOptions::default();
    options.poll_interval = Duration::from_millis(50);
    options.node = Some(node);
    options
}

async fn node(url: &str) -> (PostgresStore, Handover) {
    let options = node_options();
    let store = PostgresStore::connect(url, options).await.unwrap();
    let handover = Handover::start_with_store(
        Arc::new(store.clone()),
        RuntimeSettings::default().router(Arc::new(NoRouter)),
    )
    .await
    .unwrap();
    (store, handover)
}

/// A connection of the test's own to the database, to read the leases.
async fn database_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// A tenant (of `t-0` to `t-63`) whose shard `node` holds, if any.
fn tenant_owned_by(node: &Handover) -> Option<TenantId> {
    (0..64)
        .map(|i| TenantId::new(format!("t-{i}")).unwrap())
        .find(|tenant| node.owns_tenant(tenant))
}

/// Waits until `done` holds, polling; a guard against a hang, not a measure of speed.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let guard = Instant::now();
    while !done() {
        assert!(
            guard.elapsed() < Duration::from_secs(120),
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn tenant_of(store: &PostgresStore) -> TenantId {
    (0..)
        .map(|i| TenantId::new(format!("tenant-{i}")).unwrap())
        .find(|tenant| store.owns(tenant))
        .unwrap()
}

#[test]
fn every_node_answers_for_every_tenant_and_only_the_owner_writes() {
    let cluster = PgCluster::start();
    let url = cluster.create_database("nodes");
    run(async move {
        let (a_store, a) = node(&url).await;
        let (b_store, b) = node(&url).await;
        until("the leases split", || {
            a_store.shards().len() == 128 && b_store.shards().len() == 128
        })
        .await;
        let tenant = tenant_of(&a_store);
        assert!(!b_store.owns(&tenant));

        let ana = HumanId::new("ana").unwrap();
        a.register_human(
            NewHuman::agent(ana.clone(), AgentName::new("Ana").unwrap()).tenant(tenant.clone()),
        )
        .await
        .unwrap();
        let opened = a
            .start_conversation(NewConversation::new(
                tenant.clone(),
                CustomerId::new("c-1").unwrap(),
                Channel::new("chat").unwrap(),
            ))
            .await
            .unwrap();

        // B, which does not own the tenant, sees A's human and A's waiting conversation.
        until("B sees A's human and waiting conversation", || {
            b.human(&ana).is_some()
                && b.waiting(&tenant)
                    .iter()
                    .any(|w| w.conversation_id == opened.conversation_id)
        })
        .await;
        // Its live queries list it too, as A's do.
        until("B lists A's waiting conversation", || {
            b.list_conversations(&tenant, &LiveQuery::new().status(LiveStatus::AwaitingHuman))
                .iter()
                .any(|c| c.id == opened.conversation_id)
        })
        .await;
        assert_eq!(b.conversation_counts(&tenant).awaiting_human, 1);
        assert_eq!(a.conversation_counts(&tenant).awaiting_human, 1);

        // And cannot write the tenant: the fence refuses it, nothing recorded.
        let refused = b
            .start_conversation(NewConversation::new(
                tenant.clone(),
                CustomerId::new("c-2").unwrap(),
                Channel::new("chat").unwrap(),
            ))
            .await;
        assert!(
            matches!(refused, Err(Error::Store(StoreError::NotOwner { .. }))),
            "{refused:?}"
        );
        assert_eq!(a.waiting(&tenant).len(), 1);
    });
}

async fn full_node(url: &str) -> Handover {
    let options = node_options();
    Handover::start_node(
        url,
        options,
        RuntimeSettings::default().router(Arc::new(NoRouter)),
    )
    .await
    .unwrap()
}

#[test]
fn a_command_on_any_node_runs_once_on_the_tenants_owner() {
    let cluster = PgCluster::start();
    let url = cluster.create_database("forwarding");
    run(async move {
        let a = full_node(&url).await;
        let b = full_node(&url).await;
        // Both nodes hold shards: wait until the leases are split between them.
        let client = database_client(&url).await;
        until_two_owners(&client).await;
        // Every tenant works from both nodes, whoever owns it.
        for (i, node) in [&a, &b, &a, &b].into_iter().enumerate() {
            let tenant = TenantId::new(format!("t-{i}")).unwrap();
            let customer = CustomerId::new(format!("c-{i}")).unwrap();
            let opened = node
                .start_conversation(NewConversation::new(
                    tenant.clone(),
                    customer.clone(),
                    Channel::new("chat").unwrap(),
                ))
                .await
                .unwrap_or_else(|e| panic!("start for {tenant} on a node: {e}"));
            let other = if std::ptr::eq(node, &a) { &b } else { &a };
            other
                .post_customer_message(
                    opened.conversation_id,
                    customer.clone(),
                    MessageText::new("hello").unwrap(),
                )
                .await
                .unwrap_or_else(|e| panic!("post for {tenant} on the other node: {e}"));
            let history = a.history(opened.conversation_id).await.unwrap();
            assert!(
                history.iter().any(|r| matches!(
                    &r.event,
                    Event::Conversation(ConversationEvent::MessagePosted { .. })
                )),
                "the message is in the log once"
            );
        }
    });
}

/// Replies "echo: <text>".
struct Echo;

#[async_trait::async_trait]
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

/// Waits until `nodes` nodes hold every lease between them.
async fn until_owners(client: &tokio_postgres::Client, nodes: i64) {
    let guard = Instant::now();
    loop {
        let owners: i64 = client
            .query_one(
                "SELECT count(DISTINCT owner) FROM handover_leases
                 WHERE owner IS NOT NULL AND expires_at > now()
                 HAVING count(*) = 256",
                &[],
            )
            .await
            .map(|row| row.get(0))
            .unwrap_or(0);
        if owners == nodes {
            return;
        }
        assert!(
            guard.elapsed() < Duration::from_secs(120),
            "the leases never settled on {nodes} nodes"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until one node holds every lease.
async fn until_one_owner(client: &tokio_postgres::Client) {
    until_owners(client, 1).await;
}

/// Waits until two nodes hold every lease between them.
async fn until_two_owners(client: &tokio_postgres::Client) {
    until_owners(client, 2).await;
}

#[test]
fn a_dead_nodes_tenant_is_taken_over_and_its_ai_agent_answers_on_the_new_owner() {
    let cluster = PgCluster::start();
    let url = cluster.create_database("takeover");
    run(async move {
        let client = database_client(&url).await;
        let a = full_node(&url).await;
        let b = full_node(&url).await;
        // Both hold shards; a tenant A owns. Everything below is done on B and forwarded.
        until("both nodes own tenants", || {
            tenant_owned_by(&a).is_some() && tenant_owned_by(&b).is_some()
        })
        .await;
        let tenant = tenant_owned_by(&a).unwrap();
        let ana = HumanId::new("ana").unwrap();
        b.register_human(
            NewHuman::agent(ana.clone(), AgentName::new("Ana").unwrap()).tenant(tenant.clone()),
        )
        .await
        .unwrap();
        b.set_presence(ana.clone(), Presence::Available)
            .await
            .unwrap();
        let bot = AiAgentId::new("bot").unwrap();
        b.register_ai_agent_in(
            tenant.clone(),
            AiAgentProfile {
                id: bot.clone(),
                name: AgentName::new("Bot").unwrap(),
                specialties: Vec::new(),
            },
        )
        .await
        .unwrap();
        b.activate_ai_agent(bot.clone()).await.unwrap();
        a.attach_ai_agent(bot.clone(), Arc::new(Echo)).unwrap();
        until("B sees the active AI agent", || {
            b.ai_agents()
                .iter()
                .any(|agent| agent.profile.id == bot && agent.active)
        })
        .await;
        b.attach_ai_agent(bot.clone(), Arc::new(Echo)).unwrap();

        let customer = CustomerId::new("c-1").unwrap();
        let id = b
            .start_conversation(
                NewConversation::new(
                    tenant.clone(),
                    customer.clone(),
                    Channel::new("chat").unwrap(),
                )
                .human(ana.clone()),
            )
            .await
            .unwrap()
            .conversation_id;
        b.hand_off_to_ai(id, ana.clone(), bot.clone(), None)
            .await
            .unwrap();

        // A dies; B takes its shards over, and with them the AI agent's conversation.
        a.shutdown().await;
        until_one_owner(&client).await;
        // B writes the human's and the agent's streams after A's last events.
        b.set_presence(ana.clone(), Presence::Away).await.unwrap();
        b.set_presence(ana.clone(), Presence::Available)
            .await
            .unwrap();
        b.post_customer_message(
            id,
            customer.clone(),
            MessageText::new("are you there?").unwrap(),
        )
        .await
        .unwrap();
        let guard = Instant::now();
        let replies = loop {
            let history = b.history(id).await.unwrap();
            let replies: Vec<String> = history
                .iter()
                .filter_map(|r| match &r.event {
                    Event::Conversation(ConversationEvent::MessagePosted {
                        author: Author::Ai(_),
                        text,
                        ..
                    }) => Some(text.as_str().to_owned()),
                    _ => None,
                })
                .collect();
            if !replies.is_empty() {
                break replies;
            }
            assert!(guard.elapsed() < Duration::from_secs(120), "no AI reply");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        // Settle, then: one reply, from the new owner's agent.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let history = b.history(id).await.unwrap();
        let count = history
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
        assert_eq!(replies, vec!["echo: are you there?".to_owned()]);
        assert_eq!(count, 1);
        // And the agent's stream, which A wrote last: deactivating it escalates what it holds.
        b.deactivate_ai_agent(bot.clone()).await.unwrap();
        let view = b.conversation(id).await.unwrap();
        assert!(
            matches!(
                view.status,
                Status::AwaitingHuman { .. } | Status::Assigned { .. }
            ),
            "{:?}",
            view.status
        );
    });
}

#[test]
fn a_node_that_does_not_own_the_tenant_watches_reads_and_acts_at_once_after_another_nodes_write() {
    let cluster = PgCluster::start();
    let url = cluster.create_database("elsewhere");
    run(async move {
        use futures::StreamExt as _;
        let client = database_client(&url).await;
        let a = full_node(&url).await;
        let b = full_node(&url).await;
        until_two_owners(&client).await;
        until("A owns a tenant", || tenant_owned_by(&a).is_some()).await;
        let tenant = tenant_owned_by(&a).unwrap();
        assert!(!b.owns_tenant(&tenant));

        // Registered through A, then at once acted on through B, before B's follower may
        // have seen it: B finds where the human's stream lives and forwards.
        let ana = HumanId::new("ana").unwrap();
        a.register_human(
            NewHuman::agent(ana.clone(), AgentName::new("Ana").unwrap()).tenant(tenant.clone()),
        )
        .await
        .unwrap();
        b.set_presence(ana.clone(), Presence::Available)
            .await
            .unwrap();
        // What B had A record, B reads at once: its answer came after B's models held it.
        assert_eq!(
            b.human(&ana).map(|human| human.presence),
            Some(Presence::Available)
        );
        let bea = HumanId::new("bea").unwrap();
        b.register_human(
            NewHuman::supervisor(bea.clone(), AgentName::new("Bea").unwrap())
                .tenant(tenant.clone()),
        )
        .await
        .unwrap();
        assert!(b.human(&bea).is_some());

        let customer = CustomerId::new("c-1").unwrap();
        let id = a
            .start_conversation(NewConversation::new(
                tenant.clone(),
                customer.clone(),
                Channel::new("chat").unwrap(),
            ))
            .await
            .unwrap()
            .conversation_id;
        // B watches it from the start, though A decides for it.
        let mut watch = b.watch(id).await.unwrap();
        // Ana takes the next waiting conversation through B: judged on A's queues.
        let accepted = b.accept_next(ana.clone()).await.unwrap();
        assert_eq!(accepted.map(|r| r.conversation_id), Some(id));
        let view = b.conversation(id).await.unwrap();
        assert_eq!(view.assigned_human, Some(ana.clone()));
        assert!(
            matches!(view.status, Status::Assigned { .. }),
            "{:?}",
            view.status
        );
        for i in 0..20 {
            let node = if i % 2 == 0 { &a } else { &b };
            node.post_customer_message(
                id,
                customer.clone(),
                MessageText::new(format!("message {i}")).unwrap(),
            )
            .await
            .unwrap();
        }
        let history = a.history(id).await.unwrap();
        let last = history.last().unwrap().seq;
        // Every event once, in order, the history then the live ones.
        let mut seen = Vec::new();
        while seen.last().copied() != Some(last) {
            let record = tokio::time::timeout(Duration::from_secs(60), watch.next())
                .await
                .expect("the watch on B stalled")
                .expect("the watch ended")
                .unwrap();
            seen.push(record.seq);
        }
        assert_eq!(seen, (1..=last).collect::<Vec<_>>());
        // From the middle, on B too.
        let mut from = b.watch_from(id, last - 5).await.unwrap();
        let mut tail = Vec::new();
        for _ in 0..5 {
            tail.push(from.next().await.unwrap().unwrap().seq);
        }
        assert_eq!(tail, (last - 4..=last).collect::<Vec<_>>());
        // B's view is the log's.
        let view = b.conversation(id).await.unwrap();
        assert_eq!(view.events, last);
        assert_eq!(view.messages, 20);
        assert!(matches!(
            b.conversation(ConversationId::from_uuid(uuid::Uuid::now_v7()))
                .await,
            Err(Error::UnknownConversation(_))
        ));
    });
}

/// A node on a manual clock, so the test says when deadlines pass.
async fn timed_node(url: &str, clock: &ManualClock) -> Handover {
    let options = node_options();
    Handover::start_node(
        url,
        options,
        RuntimeSettings::default()
            .router(Arc::new(NoRouter))
            .clock(Arc::new(clock.clone())),
    )
    .await
    .unwrap()
}

fn count_of(history: &[Arc<RecordedEvent>], name: &str) -> usize {
    history
        .iter()
        .filter(|record| record.event.type_name() == name)
        .count()
}

#[test]
fn a_waiting_conversations_deadlines_fire_once_across_a_takeover() {
    let cluster = PgCluster::start();
    let url = cluster.create_database("timers");
    run(async move {
        let client = database_client(&url).await;
        // Both nodes' clocks read the same simulated time, as real clocks would.
        let clock = ManualClock::new(Timestamp::from_millis(1_767_600_000_000));
        let a = timed_node(&url, &clock).await;
        let b = timed_node(&url, &clock).await;
        until_two_owners(&client).await;
        until("A owns a tenant", || tenant_owned_by(&a).is_some()).await;
        let tenant = tenant_owned_by(&a).unwrap();

        // Waiting for a person, on A: past the SLA warning (60 s), A records it.
        let id = b
            .start_conversation(NewConversation::new(
                tenant.clone(),
                CustomerId::new("c-1").unwrap(),
                Channel::new("chat").unwrap(),
            ))
            .await
            .unwrap()
            .conversation_id;
        clock.advance_millis(61_000);
        a.settle_timers().await;
        let history = a.history(id).await.unwrap();
        assert_eq!(count_of(&history, "sla_warning"), 1);
        assert_eq!(count_of(&history, "sla_breached"), 0);

        // A leaves; B takes the tenant up and, past the breach (5 min), records the breach
        // once, and not the warning A already recorded.
        a.shutdown().await;
        until_one_owner(&client).await;
        let guard = Instant::now();
        while !b.owns_tenant(&tenant) {
            assert!(
                guard.elapsed() < Duration::from_secs(120),
                "B never took the tenant"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        clock.advance_millis(300_000);
        let guard = Instant::now();
        loop {
            b.settle_timers().await;
            let history = b.history(id).await.unwrap();
            if count_of(&history, "sla_breached") == 1 {
                break;
            }
            assert!(
                guard.elapsed() < Duration::from_secs(120),
                "B never recorded the breach"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // And again: nothing new, however often the clock is looked at.
        clock.advance_millis(60_000);
        b.settle_timers().await;
        let history = b.history(id).await.unwrap();
        assert_eq!(count_of(&history, "sla_warning"), 1);
        assert_eq!(count_of(&history, "sla_breached"), 1);
    });
}
