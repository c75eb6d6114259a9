//! The other half of the handoff against a real sled directory: conversations that wait and
//! are routed, humans' authority and tenants, the AI reply deadline and the cancellation of the
//! AI's call, skills recorded before they run, notes, flags, and timers that fire once across a
//! SIGKILL and a restart.

use std::sync::atomic::{AtomicBool, Ordering};
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

struct Fixture {
    _dir: tempfile::TempDir,
    handover: Handover,
    clock: ManualClock,
}

async fn start_with(settings: impl FnOnce(Config) -> Config) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let config = settings(
        Config::new(dir.path())
            .workers(2)
            .clock(Arc::new(clock.clone())),
    );
    let handover = Handover::start(config).await.unwrap();
    Fixture {
        _dir: dir,
        handover,
        clock,
    }
}

async fn start() -> Fixture {
    start_with(|config| config).await
}

async fn human(handover: &Handover, new: NewHuman, presence: Option<Presence>) -> HumanId {
    let human_id = new.id.clone();
    handover.register_human(new).await.unwrap();
    if let Some(presence) = presence {
        handover
            .set_presence(human_id.clone(), presence)
            .await
            .unwrap();
    }
    human_id
}

fn agent_named(name: &str) -> NewHuman {
    NewHuman::agent(id(name), AgentName::new(name).unwrap())
}

fn supervisor_named(name: &str) -> NewHuman {
    NewHuman::supervisor(id(name), AgentName::new(name).unwrap())
}

async fn ai(handover: &Handover, name: &str, behavior: Arc<dyn AiAgentBehavior>) -> AiAgentId {
    let agent_id: AiAgentId = id(name);
    handover
        .register_ai_agent(AiAgentProfile {
            id: agent_id.clone(),
            name: AgentName::new(format!("{name} bot")).unwrap(),
            specialties: vec![id("billing")],
        })
        .await
        .unwrap();
    handover.activate_ai_agent(agent_id.clone()).await.unwrap();
    handover
        .attach_ai_agent(agent_id.clone(), behavior)
        .unwrap();
    agent_id
}

/// Waits until the conversation's log holds, after seq `after`, an event `matches` accepts,
/// and returns the whole log. The bound is a liveness guard, not a measure of speed.
async fn until(
    handover: &Handover,
    id: ConversationId,
    after: u64,
    matches: impl Fn(&ConversationEvent) -> bool,
) -> Vec<Arc<RecordedEvent>> {
    let mut watch = handover.watch_from(id, after).await.unwrap();
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(record) = watch.next().await {
            if let Event::Conversation(event) = &record.unwrap().event {
                if matches(event) {
                    return;
                }
            }
        }
    })
    .await;
    assert!(found.is_ok(), "the expected event never came");
    handover.history(id).await.unwrap()
}

fn count(history: &[Arc<RecordedEvent>], type_name: &str) -> usize {
    history
        .iter()
        .filter(|r| r.event.type_name() == type_name)
        .count()
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

/// Never answers: awaits its cancellation, and then tries a late reply.
struct Silent {
    cancelled: Arc<AtomicBool>,
    late_reply: Arc<tokio::sync::Mutex<Option<Result<(), String>>>>,
}

#[async_trait]
impl AiAgentBehavior for Silent {
    async fn on_customer_message(
        &self,
        session: &AiSession,
        _: &MessageText,
    ) -> Result<(), AgentError> {
        session.cancelled().await;
        self.cancelled.store(true, Ordering::SeqCst);
        let outcome = session.reply(text("sorry, I was thinking")).await;
        *self.late_reply.lock().await = Some(outcome.map(drop).map_err(|e| e.to_string()));
        Ok(())
    }
}

/// Never answers and ignores cancellation: the runtime must drop its call.
struct Stuck {
    started: Arc<AtomicBool>,
    dropped: Arc<AtomicBool>,
}

struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[async_trait]
impl AiAgentBehavior for Stuck {
    async fn on_customer_message(&self, _: &AiSession, _: &MessageText) -> Result<(), AgentError> {
        let _guard = SetOnDrop(Arc::clone(&self.dropped));
        self.started.store(true, Ordering::SeqCst);
        std::future::pending::<()>().await;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_escalation_with_nobody_available_waits_then_is_routed_when_a_human_signs_in() {
    let f = start().await;
    let h = &f.handover;
    let ana = human(h, agent_named("ana"), Some(Presence::Available)).await;
    let bob = human(h, agent_named("bob"), None).await;
    let bot = ai(h, "bot", Arc::new(Echo)).await;
    let cid = h
        .open_conversation(id("cust-1"), id("chat"), Some(ana.clone()))
        .await
        .unwrap()
        .conversation_id;
    h.hand_off_to_ai(cid, ana.clone(), bot, None).await.unwrap();
    // Ana signs out while the AI holds it: nobody is left to receive it.
    h.set_presence(ana.clone(), Presence::Offline)
        .await
        .unwrap();
    let receipt = h
        .post_customer_message(cid, id("cust-1"), text("I want to talk to a human"))
        .await
        .unwrap();
    assert_eq!(receipt.status.label(), "awaiting-human");
    let types: Vec<_> = receipt.events.iter().map(|r| r.event.type_name()).collect();
    assert_eq!(
        types,
        [
            "message_posted",
            "escalated_to_human",
            "customer_notice",
            "awaiting_human",
            "customer_notice"
        ],
        "the escalation and the wait are one append"
    );
    assert_eq!(h.waiting(&TenantId::default_tenant()).len(), 1);
    // Bob signs in: the router gives him the oldest waiting conversation.
    let after = h.conversation(cid).await.unwrap().events;
    h.set_presence(bob.clone(), Presence::Available)
        .await
        .unwrap();
    let history = until(h, cid, after, |e| {
        matches!(e, ConversationEvent::HumanAssigned { .. })
    })
    .await;
    let assigned = history.iter().rev().find_map(|r| match &r.event {
        Event::Conversation(ConversationEvent::HumanAssigned { human_id, by, .. }) => {
            Some((human_id.clone(), by.clone()))
        }
        _ => None,
    });
    assert_eq!(
        assigned,
        Some((bob.clone(), Author::System(SystemActor::Router)))
    );
    let view = h.conversation(cid).await.unwrap();
    assert_eq!(view.assigned_human, Some(bob.clone()));
    assert_eq!(
        view.assigned_human_name,
        Some(AgentName::new("bob").unwrap())
    );
    assert!(h.waiting(&TenantId::default_tenant()).is_empty());
    assert_eq!(h.human(&bob).unwrap().load, 1);
    h.post_human_message(cid, bob, text("Hi, I'm Bob"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ai_agent_that_never_answers_is_timed_out_escalated_fenced_and_cancelled() {
    let f = start().await;
    let h = &f.handover;
    let ana = human(h, agent_named("ana"), Some(Presence::Available)).await;
    let cancelled = Arc::new(AtomicBool::new(false));
    let late_reply = Arc::new(tokio::sync::Mutex::new(None));
    let bot = ai(
        h,
        "silent",
        Arc::new(Silent {
            cancelled: Arc::clone(&cancelled),
            late_reply: Arc::clone(&late_reply),
        }),
    )
    .await;
    let cid = h
        .open_conversation(id("cust-1"), id("chat"), Some(ana.clone()))
        .await
        .unwrap()
        .conversation_id;
    h.hand_off_to_ai(cid, ana.clone(), bot.clone(), None)
        .await
        .unwrap();
    h.post_customer_message(cid, id("cust-1"), text("what is my balance?"))
        .await
        .unwrap();
    // 29.999 s: not yet.
    f.clock.advance_millis(29_999);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        h.conversation(cid).await.unwrap().status.label(),
        "ai-active"
    );
    let after = h.conversation(cid).await.unwrap().events;
    f.clock.advance_millis(1);
    let history = until(h, cid, after, |e| {
        matches!(e, ConversationEvent::HumanAssigned { .. })
    })
    .await;
    let escalation = history.iter().find_map(|r| match &r.event {
        Event::Conversation(ConversationEvent::EscalatedToHuman { cause, .. }) => Some(*cause),
        _ => None,
    });
    assert_eq!(escalation, Some(EscalationCause::AiTimeout));
    let overdue = history.iter().find_map(|r| match &r.event {
        Event::Conversation(ConversationEvent::AiReplyOverdue {
            waited_ms,
            deadline_ms,
            agent_id,
            ..
        }) => Some((agent_id.clone(), *waited_ms, *deadline_ms)),
        _ => None,
    });
    assert_eq!(overdue, Some((bot, 30_000, 30_000)));
    // The router gave it back to the human who handed it off.
    assert_eq!(h.conversation(cid).await.unwrap().assigned_human, Some(ana));
    // The AI's call was told to stop, and its late reply was refused by the fence.
    let outcome = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Some(outcome) = late_reply.lock().await.clone() {
                return outcome;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the AI's call was never cancelled");
    assert!(cancelled.load(Ordering::SeqCst));
    assert!(outcome.unwrap_err().contains("has ended"));
    let history = h.history(cid).await.unwrap();
    assert_eq!(count(&history, "ai_reply_overdue"), 1);
    assert!(!history.iter().any(|r| matches!(
        &r.event,
        Event::Conversation(ConversationEvent::MessagePosted {
            author: Author::Ai(_),
            ..
        })
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_ignores_cancellation_is_dropped_after_the_grace_period() {
    let f = start_with(|mut config| {
        config.runtime = config.runtime.ai_cancel_grace(Duration::from_millis(20));
        config
    })
    .await;
    let h = &f.handover;
    let ana = human(h, agent_named("ana"), Some(Presence::Available)).await;
    let started = Arc::new(AtomicBool::new(false));
    let dropped = Arc::new(AtomicBool::new(false));
    let stuck = Stuck {
        started: Arc::clone(&started),
        dropped: Arc::clone(&dropped),
    };
    let bot = ai(h, "stuck", Arc::new(stuck)).await;
    let cid = h
        .open_conversation(id("cust-1"), id("chat"), Some(ana.clone()))
        .await
        .unwrap()
        .conversation_id;
    h.hand_off_to_ai(cid, ana.clone(), bot, None).await.unwrap();
    h.post_customer_message(cid, id("cust-1"), text("hello?"))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), async {
        while !started.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the AI's call never started");
    assert!(!dropped.load(Ordering::SeqCst));
    h.reclaim(cid, ana, None).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), async {
        while !dropped.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the stuck call was never dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_assigned_human_or_a_supervisor_of_the_tenant_may_act() {
    let f = start_with(|c| c.router(Arc::new(NoRouter))).await;
    let h = &f.handover;
    let acme: TenantId = id("acme");
    let ana = human(
        h,
        agent_named("ana").tenant(acme.clone()),
        Some(Presence::Available),
    )
    .await;
    let bob = human(
        h,
        agent_named("bob").tenant(acme.clone()),
        Some(Presence::Available),
    )
    .await;
    let sue = human(
        h,
        supervisor_named("sue").tenant(acme.clone()),
        Some(Presence::Available),
    )
    .await;
    let eve = human(h, supervisor_named("eve"), Some(Presence::Available)).await; // tenant "default"
    let off = human(h, agent_named("off").tenant(acme.clone()), None).await;
    let new = NewConversation::new(acme.clone(), id("cust-1"), id("chat")).human(ana.clone());
    let cid = h.start_conversation(new).await.unwrap().conversation_id;

    let refused = |result: Result<Receipt, Error>| match result {
        Err(Error::Rejected(rejection)) => rejection,
        other => panic!("expected a rejection, got {other:?}"),
    };
    // Bob is an agent of the tenant, but it is not his conversation.
    assert_eq!(
        refused(h.post_human_message(cid, bob.clone(), text("hi")).await),
        Rejection::NotAssignedToYou {
            human_id: bob.clone()
        }
    );
    assert!(matches!(
        refused(h.close(cid, bob.clone(), None).await),
        Rejection::NotAssignedToYou { .. }
    ));
    // Offline and unregistered humans are refused with why.
    assert_eq!(
        refused(h.post_human_message(cid, off.clone(), text("hi")).await),
        Rejection::HumanOffline { human_id: off }
    );
    assert_eq!(
        refused(h.post_human_message(cid, id("nobody"), text("hi")).await),
        Rejection::UnknownHuman {
            human_id: id("nobody")
        }
    );
    // A supervisor of another tenant learns nothing: the conversation does not exist for her.
    assert!(matches!(
        h.assign(cid, eve.clone(), eve.clone()).await,
        Err(Error::UnknownConversation(_))
    ));
    assert!(matches!(
        h.tenant(TenantId::default_tenant()).conversation(cid).await,
        Err(Error::UnknownConversation(_))
    ));
    assert!(h.tenant(TenantId::default_tenant()).waiting().is_empty());
    assert_eq!(
        h.tenant(acme.clone())
            .conversation(cid)
            .await
            .unwrap()
            .tenant,
        acme
    );
    // Ana posts; the supervisor moves it to Bob; now Ana may not post and Bob may.
    h.post_human_message(cid, ana.clone(), text("hello"))
        .await
        .unwrap();
    let receipt = h.assign(cid, sue.clone(), bob.clone()).await.unwrap();
    assert_eq!(
        receipt.status,
        Status::Assigned {
            human: bob.clone(),
            name: AgentName::new("bob").unwrap()
        }
    );
    assert!(matches!(
        refused(
            h.post_human_message(cid, ana.clone(), text("still here"))
                .await
        ),
        Rejection::NotAssignedToYou { .. }
    ));
    h.post_human_message(cid, bob.clone(), text("Bob here"))
        .await
        .unwrap();
    // An agent may not assign, nor lower a flag; a supervisor may.
    assert!(matches!(
        refused(h.assign(cid, bob.clone(), ana.clone()).await),
        Rejection::NotASupervisor { .. }
    ));
    h.raise_flag(cid, bob.clone()).await.unwrap();
    assert!(matches!(
        refused(h.lower_flag(cid, bob.clone()).await),
        Rejection::NotASupervisor { .. }
    ));
    assert!(h.conversation(cid).await.unwrap().flagged);
    h.lower_flag(cid, sue.clone()).await.unwrap();
    // The supervisor closes it.
    h.close(cid, sue, None).await.unwrap();
    assert!(matches!(
        h.close(cid, eve, None).await,
        Err(Error::UnknownConversation(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_respects_capacity_and_queues_move_first_in_first_out() {
    let f = start().await;
    let h = &f.handover;
    let billing: TeamId = id("billing");
    let ana = human(
        h,
        agent_named("ana").teams(vec![billing.clone()]).capacity(1),
        Some(Presence::Available),
    )
    .await;
    let open = |n: u64| {
        let new = NewConversation::new(
            TenantId::default_tenant(),
            id(&format!("cust-{n}")),
            id("chat"),
        )
        .team(billing.clone());
        async move { h.start_conversation(new).await.unwrap().conversation_id }
    };
    let first = open(1).await;
    until(h, first, 0, |e| {
        matches!(e, ConversationEvent::HumanAssigned { .. })
    })
    .await;
    f.clock.advance_millis(10);
    let second = open(2).await;
    f.clock.advance_millis(10);
    let third = open(3).await;
    // Ana is at capacity: the others wait, oldest first.
    let waiting: Vec<_> = h
        .waiting(&TenantId::default_tenant())
        .into_iter()
        .map(|w| w.conversation_id)
        .collect();
    assert_eq!(waiting, [second, third]);
    assert_eq!(h.human(&ana).unwrap().load, 1);
    // She closes the first: the second comes to her, not the third.
    let after = h.conversation(second).await.unwrap().events;
    h.close(first, ana.clone(), None).await.unwrap();
    until(h, second, after, |e| {
        matches!(e, ConversationEvent::HumanAssigned { .. })
    })
    .await;
    assert_eq!(
        h.conversation(second).await.unwrap().assigned_human,
        Some(ana.clone())
    );
    assert_eq!(
        h.conversation(third).await.unwrap().status.label(),
        "awaiting-human"
    );
    // She goes away: she keeps the second; nothing more comes to her.
    h.set_presence(ana.clone(), Presence::Away).await.unwrap();
    assert_eq!(
        h.conversation(second).await.unwrap().assigned_human,
        Some(ana.clone())
    );
    // A colleague accepts the oldest waiting conversation of the team himself.
    let bob = human(
        h,
        agent_named("bob").teams(vec![billing.clone()]),
        Some(Presence::Away),
    )
    .await;
    let accepted = h.accept_next(bob.clone()).await.unwrap().unwrap();
    assert_eq!(accepted.conversation_id, third);
    assert_eq!(
        h.accept_next(bob).await.unwrap().map(|r| r.conversation_id),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_human_going_offline_puts_their_conversations_back_and_they_are_routed_again() {
    let f = start().await;
    let h = &f.handover;
    let ana = human(h, agent_named("ana"), Some(Presence::Available)).await;
    let cid = h
        .open_conversation(id("cust-1"), id("chat"), Some(ana.clone()))
        .await
        .unwrap()
        .conversation_id;
    let bob = human(h, agent_named("bob"), Some(Presence::Available)).await;
    let after = h.conversation(cid).await.unwrap().events;
    h.set_presence(ana.clone(), Presence::Offline)
        .await
        .unwrap();
    let history = until(h, cid, after, |e| {
        matches!(e, ConversationEvent::HumanAssigned { .. })
    })
    .await;
    let wait_cause = history.iter().rev().find_map(|r| match &r.event {
        Event::Conversation(ConversationEvent::AwaitingHuman { cause, .. }) => Some(*cause),
        _ => None,
    });
    assert_eq!(wait_cause, Some(WaitCause::HumanOffline));
    assert_eq!(
        h.conversation(cid).await.unwrap().assigned_human,
        Some(bob.clone())
    );
    assert_eq!(h.human(&ana).unwrap().load, 0);
    // Bob is removed from the directory: back to the queue, and nobody is left.
    let after = h.conversation(cid).await.unwrap().events;
    h.remove_human(bob.clone()).await.unwrap();
    let history = until(h, cid, after, |e| {
        matches!(e, ConversationEvent::AwaitingHuman { .. })
    })
    .await;
    assert!(matches!(
        history.last().map(|r| &r.event),
        Some(Event::Conversation(ConversationEvent::CustomerNotice {
            kind: NoticeKind::WaitingForPerson,
            ..
        }))
    ));
    assert!(matches!(
        h.post_human_message(cid, bob, text("hi")).await,
        Err(Error::Rejected(Rejection::HumanRemoved { .. }))
    ));
}

/// Runs a refund, holding it until the test says so.
struct Refunder {
    release: tokio::sync::Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
    running: Arc<AtomicBool>,
    ran: Arc<AtomicBool>,
}

#[async_trait]
impl AiAgentBehavior for Refunder {
    async fn on_customer_message(
        &self,
        session: &AiSession,
        _: &MessageText,
    ) -> Result<(), AgentError> {
        let release = self.release.lock().await.take();
        let running = Arc::clone(&self.running);
        let ran = Arc::clone(&self.ran);
        // A skill the default policy does not gate (refunds wait for a person's approval: see
        // escalation_rules.rs), so it runs at once.
        session
            .run_skill(
                SkillName::new("reship_order")?,
                SkillData::new("order A-1")?,
                async move {
                    running.store(true, Ordering::SeqCst);
                    if let Some(release) = release {
                        let _ = release.await;
                    }
                    ran.store(true, Ordering::SeqCst);
                    Ok("reshipped order A-1".to_owned())
                },
            )
            .await?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skill_is_recorded_before_it_runs_and_its_outcome_survives_a_reclaim() {
    let f = start().await;
    let h = &f.handover;
    let ana = human(h, agent_named("ana"), Some(Presence::Available)).await;
    let (release, gate) = tokio::sync::oneshot::channel();
    let running = Arc::new(AtomicBool::new(false));
    let ran = Arc::new(AtomicBool::new(false));
    let bot = ai(
        h,
        "refunder",
        Arc::new(Refunder {
            release: tokio::sync::Mutex::new(Some(gate)),
            running: Arc::clone(&running),
            ran: Arc::clone(&ran),
        }),
    )
    .await;
    let cid = h
        .open_conversation(id("cust-1"), id("chat"), Some(ana.clone()))
        .await
        .unwrap()
        .conversation_id;
    h.hand_off_to_ai(cid, ana.clone(), bot.clone(), None)
        .await
        .unwrap();
    h.post_customer_message(cid, id("cust-1"), text("refund my order"))
        .await
        .unwrap();
    let history = until(h, cid, 0, |e| {
        matches!(e, ConversationEvent::AiSkillStarted { .. })
    })
    .await;
    assert_eq!(count(&history, "ai_skill_started"), 1);
    // The human takes over while the refund runs: the refund finishes, and its outcome is
    // recorded after the reclaim, because it ran.
    tokio::time::timeout(Duration::from_secs(30), async {
        while !running.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    let after = h
        .reclaim(cid, ana.clone(), None)
        .await
        .unwrap()
        .events
        .last()
        .unwrap()
        .seq;
    release.send(()).unwrap();
    let history = until(h, cid, after, |e| {
        matches!(e, ConversationEvent::AiActionRecorded { .. })
    })
    .await;
    assert!(ran.load(Ordering::SeqCst));
    let types: Vec<_> = history.iter().map(|r| r.event.type_name()).collect();
    let reclaimed = types.iter().position(|t| *t == "reclaimed").unwrap();
    let outcome = types
        .iter()
        .position(|t| *t == "ai_action_recorded")
        .unwrap();
    assert!(outcome > reclaimed, "{types:?}");
    // A skill started after control passed to a human is refused and never runs.
    let epoch = Assignment {
        agent_id: bot,
        epoch: Epoch(1),
    };
    let refused = h
        .execute(
            cid,
            ConversationCommand::StartSkill {
                by: epoch,
                name: SkillName::new("reship_order").unwrap(),
                input: SkillData::new("order A-2").unwrap(),
            },
        )
        .await;
    assert!(matches!(
        refused,
        Err(Error::Rejected(Rejection::AssignmentEnded { .. }))
    ));
}

/// Records every event it is given.
struct Recorder(Arc<std::sync::Mutex<Vec<&'static str>>>);

#[async_trait]
impl AiAgentBehavior for Recorder {
    async fn on_customer_message(&self, _: &AiSession, _: &MessageText) -> Result<(), AgentError> {
        Ok(())
    }

    async fn on_event(&self, _: &AiSession, record: &RecordedEvent) -> Result<(), AgentError> {
        if let Event::Conversation(ConversationEvent::InternalNote { to, .. }) = &record.event {
            self.0.lock().unwrap().push(to.as_str());
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_note_for_the_ai_reaches_it_and_a_note_for_staff_does_not() {
    let f = start().await;
    let h = &f.handover;
    let ana = human(h, agent_named("ana"), Some(Presence::Available)).await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let bot = ai(h, "recorder", Arc::new(Recorder(Arc::clone(&seen)))).await;
    let cid = h
        .open_conversation(id("cust-1"), id("chat"), Some(ana.clone()))
        .await
        .unwrap()
        .conversation_id;
    h.hand_off_to_ai(cid, ana.clone(), bot, None).await.unwrap();
    h.whisper(
        cid,
        ana.clone(),
        NoteAudience::Staff,
        text("customer is a VIP"),
    )
    .await
    .unwrap();
    h.whisper(
        cid,
        ana.clone(),
        NoteAudience::Ai,
        text("offer the annual plan"),
    )
    .await
    .unwrap();
    tokio::time::timeout(Duration::from_secs(30), async {
        while seen.lock().unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    // Delivery is in order: had the staff note been sent, it would have come first.
    assert_eq!(*seen.lock().unwrap(), ["ai"]);
    h.reclaim(cid, ana.clone(), None).await.unwrap();
    let view = h.conversation(cid).await.unwrap();
    assert_eq!(view.status, Status::Reclaimed { by: ana.clone() });
    assert_eq!(
        view.assigned_human_name,
        Some(AgentName::new("ana").unwrap())
    );
    assert!(matches!(
        h.whisper(cid, ana, NoteAudience::Ai, text("too late"))
            .await,
        Err(Error::Rejected(Rejection::NotAiActive))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_to_a_team_waits_in_that_queue_with_its_sla() {
    let mut rules = Settings::default();
    rules.team_sla.insert(
        id("vip"),
        Sla {
            warning_ms: 10_000,
            breach_ms: 20_000,
        },
    );
    let f = start_with(|c| c.rules(rules).router(Arc::new(NoRouter))).await;
    let h = &f.handover;
    let ana = human(h, agent_named("ana"), Some(Presence::Available)).await;
    let cid = h
        .open_conversation(id("cust-1"), id("chat"), Some(ana.clone()))
        .await
        .unwrap()
        .conversation_id;
    let receipt = h
        .transfer(
            cid,
            ana.clone(),
            TransferTarget::Team(id("vip")),
            Reason::new("VIP customer").unwrap(),
        )
        .await
        .unwrap();
    assert!(
        matches!(receipt.status, Status::AwaitingHuman { team: Some(ref t), cause: WaitCause::Transferred, .. } if t.as_str() == "vip")
    );
    let after = receipt.events.last().unwrap().seq;
    f.clock.advance_millis(10_000);
    let history = until(h, cid, after, |e| {
        matches!(e, ConversationEvent::SlaWarning { .. })
    })
    .await;
    assert_eq!(count(&history, "sla_breached"), 0);
    f.clock.advance_millis(10_000);
    let history = until(h, cid, after, |e| {
        matches!(e, ConversationEvent::SlaBreached { .. })
    })
    .await;
    assert_eq!(count(&history, "sla_warning"), 1);
    assert_eq!(count(&history, "sla_breached"), 1);
}

/// Set in the child's environment: the data directory the child writes to.
const TIMER_CHILD_ENV: &str = "HANDOVER_TIMER_CHILD";

/// The child of [`timers_fire_once_across_a_sigkill_and_restarts`]: opens a conversation that
/// waits with nobody to route it to, lets the clock pass the warning threshold, waits until
/// the warning is recorded, says so, and waits to be killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timer_child() {
    let Ok(dir) = std::env::var(TIMER_CHILD_ENV) else {
        return;
    };
    let clock = ManualClock::new(T0);
    let handover = Handover::start(Config::new(&dir).workers(2).clock(Arc::new(clock.clone())))
        .await
        .unwrap();
    let cid = handover
        .open_conversation(id("cust-1"), id("chat"), None)
        .await
        .unwrap()
        .conversation_id;
    clock.advance_millis(90_000);
    until(&handover, cid, 0, |e| {
        matches!(e, ConversationEvent::SlaWarning { .. })
    })
    .await;
    println!("READY {cid}");
    std::future::pending::<()>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_fire_once_across_a_sigkill_and_restarts() {
    use std::io::BufRead as _;

    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "timer_child", "--nocapture", "--test-threads=1"])
        .env(TIMER_CHILD_ENV, dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let cid: ConversationId = stdout
        .lines()
        .map_while(Result::ok)
        // libtest may print its "test timer_child ..." on the same line first.
        .find_map(|line| {
            line.split("READY ")
                .nth(1)
                .map(|id| id.trim().parse().unwrap())
        })
        .expect("the child never got ready");
    // SIGKILL: no shutdown, no flush beyond what was acknowledged.
    child.kill().unwrap();
    child.wait().unwrap();

    // Six minutes later: the breach is due, the warning is not due again.
    for minutes in [6, 20] {
        let clock = ManualClock::new(T0.plus_millis(minutes * 60_000));
        let handover = Handover::start(
            Config::new(dir.path())
                .workers(2)
                .clock(Arc::new(clock.clone())),
        )
        .await
        .unwrap();
        let history = if minutes == 6 {
            until(&handover, cid, 0, |e| {
                matches!(e, ConversationEvent::SlaBreached { .. })
            })
            .await
        } else {
            // Nothing is due any more: a tick records nothing.
            let receipt = handover
                .execute(cid, ConversationCommand::Tick)
                .await
                .unwrap();
            assert!(receipt.events.is_empty());
            handover.history(cid).await.unwrap()
        };
        assert_eq!(count(&history, "sla_warning"), 1, "after {minutes} min");
        assert_eq!(count(&history, "sla_breached"), 1, "after {minutes} min");
        let breach = history.iter().find_map(|r| match &r.event {
            Event::Conversation(ConversationEvent::SlaBreached {
                waited_ms,
                threshold_ms,
                ..
            }) => Some((*waited_ms, *threshold_ms)),
            _ => None,
        });
        assert_eq!(breach, Some((360_000, 300_000)));
        handover.shutdown().await;
    }
}
