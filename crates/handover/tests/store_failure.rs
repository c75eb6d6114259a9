//! The runtime when the store fails: a conversation actor whose append failed stops, and the
//! next command rebuilds it from the log instead of going on with the state it held in memory;
//! a full disk fails a command with a typed store error and stops the store (every later
//! command and read is refused with the failure), the runtime shuts down, and a restart (a new
//! process) after space is freed finds every acknowledged event and every event a watcher was
//! shown.
//!
//! The full-disk case mounts a size-limited tmpfs, which needs root (as CI runs); without it
//! the test fails and says so. `cargo test -p handover --test store_failure -- --nocapture`
//! prints the figures.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use handover::*;
use handover_sled::{SledOptions, SledStore};
use handover_store::{Appended, Conflict, EventStore, ExpectedVersion, RecordedEvent, SeqRange};
use handover_testkit::{AppendOutcome, ForwardingStore, StoreHooks};

/// Most a test waits for the runtime: a guard against a hang, not a speed assertion.
const HANG_GUARD: Duration = Duration::from_secs(120);

fn text(s: &str) -> MessageText {
    MessageText::new(s).unwrap()
}

/// Answers nothing: the tests only need an AI agent that runs.
struct Quiet;

#[async_trait::async_trait]
impl AiAgentBehavior for Quiet {
    async fn on_customer_message(&self, _: &AiSession, _: &MessageText) -> Result<(), AgentError> {
        Ok(())
    }
}

/// A `SledStore` whose next append, once armed, is written (and made durable) but answered
/// with an I/O error: what a failed sync looks like to the caller, whose outcome is unknown.
type FailAfterWrite = ForwardingStore<FailNext>;

/// The hooks of a [`FailAfterWrite`]: armed, the next append's answer is replaced.
struct FailNext {
    armed: AtomicBool,
}

#[async_trait::async_trait]
impl StoreHooks for FailNext {
    async fn append(
        &self,
        inner: &dyn EventStore,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<Event>,
    ) -> AppendOutcome {
        let outcome = inner.append(stream, expected, events).await;
        self.answer(outcome)
    }

    async fn append_once(
        &self,
        inner: &dyn EventStore,
        stream: &StreamId,
        expected: ExpectedVersion,
        command: CommandId,
        events: Vec<Event>,
    ) -> AppendOutcome {
        let outcome = inner.append_once(stream, expected, command, events).await;
        self.answer(outcome)
    }
}

impl FailNext {
    /// The inner store's answer, or an I/O error in its place when armed.
    fn answer(
        &self,
        outcome: Result<Result<Appended, Conflict>, StoreError>,
    ) -> Result<Result<Appended, Conflict>, StoreError> {
        if self.armed.swap(false, Ordering::SeqCst) {
            outcome?.expect("the armed append is not a conflict");
            return Err(StoreError::Io(Arc::new(std::io::Error::from_raw_os_error(
                5, // EIO
            ))));
        }
        outcome
    }
}

/// Waits until no conversation actor is in memory.
async fn until_no_live_conversation(handover: &Handover) {
    let deadline = Instant::now() + HANG_GUARD;
    while handover.live_conversations() > 0 {
        assert!(
            Instant::now() < deadline,
            "the conversation actor never stopped"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn agent(handover: &Handover, id: &str) -> AiAgentId {
    let agent = AiAgentId::new(id).unwrap();
    handover
        .register_ai_agent(AiAgentProfile {
            id: agent.clone(),
            name: AgentName::new("Quiet bot").unwrap(),
            specialties: vec![],
        })
        .await
        .unwrap();
    handover.activate_ai_agent(agent.clone()).await.unwrap();
    handover
        .attach_ai_agent(agent.clone(), Arc::new(Quiet))
        .unwrap();
    agent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actor_whose_append_failed_is_rebuilt_from_the_log_on_the_next_command() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<FailAfterWrite> = Arc::new(ForwardingStore::new(
        Arc::new(SledStore::open(dir.path(), SledOptions::default()).unwrap()),
        FailNext {
            armed: AtomicBool::new(false),
        },
    ));
    let handover = Handover::start_with_store(store.clone(), Config::new(dir.path()).runtime)
        .await
        .unwrap();
    handover_testkit::staff(&handover, &["ana"]).await;
    let bot = agent(&handover, "quiet-bot").await;
    let (customer, ana) = (
        CustomerId::new("cust-1").unwrap(),
        HumanId::new("ana").unwrap(),
    );
    let id = handover
        .open_conversation(
            customer.clone(),
            Channel::new("web").unwrap(),
            Some(ana.clone()),
        )
        .await
        .unwrap()
        .conversation_id;
    handover
        .post_customer_message(id, customer, text("When do you open?"))
        .await
        .unwrap();

    // The handoff is recorded, but its caller gets an I/O error: the outcome is unknown.
    store.hooks().armed.store(true, Ordering::SeqCst);
    let failed = handover.hand_off_to_ai(id, ana.clone(), bot, None).await;
    let error = failed.expect_err("the append was answered with an error");
    assert!(
        matches!(&error, Error::Store(StoreError::Io(_))),
        "{error:?}"
    );
    assert!(
        !error.is_caller_error() && !error.is_retryable(),
        "{error:?}"
    );
    // The actor stopped instead of keeping a state it cannot trust.
    until_no_live_conversation(&handover).await;

    // The next command meets the state the log holds (AI-active), not the human-handled state
    // the actor held before the failure: had it gone on from memory, this post would have been
    // decided as allowed and then failed as a concurrency conflict.
    let refused = handover
        .post_human_message(id, ana.clone(), text("Still there?"))
        .await;
    assert!(
        matches!(refused, Err(Error::Rejected(Rejection::AiActive { .. }))),
        "{refused:?}"
    );
    let view = handover.conversation(id).await.unwrap();
    // Started, assigned, the message, the handoff and its notice.
    assert_eq!(view.events, 5, "{view:?}");
    let reclaimed = handover.reclaim(id, ana, None).await.unwrap();
    assert_eq!(reclaimed.events[0].seq, 6);
    let kinds: Vec<&str> = handover
        .history(id)
        .await
        .unwrap()
        .iter()
        .map(|r| r.event.type_name())
        .collect();
    println!("after a failed append, the rebuilt conversation's history: {kinds:?}");
    assert_eq!(
        kinds,
        [
            "conversation_opened",
            "human_assigned",
            "message_posted",
            "handed_off_to_ai",
            "customer_notice",
            "reclaimed",
            "customer_notice",
            "customer_notice"
        ]
    );
    handover.shutdown().await;
}

/// A tmpfs mounted for the test, unmounted when dropped, also when the test fails.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).expect("the mount point");
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("mount(8) runs");
        assert!(
            output.status.success(),
            "mounting a tmpfs at {} failed: {}. This test needs root (CI runs as root) to \
             mount a size-limited tmpfs; run it as root.",
            dir.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
        Tmpfs {
            dir: dir.to_path_buf(),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// Set in the child process that runs the full-disk case: its data directory.
const CHILD_ENV: &str = "HANDOVER_FULL_DISK_CHILD";

/// Most the parent waits for the child: a guard against a hang, not a speed assertion. The
/// child's longest legitimate path is a sync that times out ([`SYNC_TIMEOUT`]), then closing a
/// store whose engine is stuck (bounded by the store at about 20 s).
const CHILD_DEADLINE: Duration = Duration::from_secs(60);

/// The child's bound on one sync (`SledOptions::sync_timeout`): a sync that sled never
/// finishes after the disk filled fails its command well within [`CHILD_DEADLINE`].
const SYNC_TIMEOUT: Duration = Duration::from_secs(3);

/// The class of a store error: `io:<errno>` (or `io:<kind>`), and `failed:<class of the
/// cause>` for a store stopped by an earlier failure; `other:<error>` for anything else.
/// A store whose stream reads fail while `down` is set: a database that went away.
struct ReadsDown {
    down: AtomicBool,
}

#[async_trait::async_trait]
impl StoreHooks for ReadsDown {
    async fn read_stream(
        &self,
        inner: &dyn EventStore,
        stream: &StreamId,
        range: SeqRange,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Engine("the database is down".to_owned()));
        }
        inner.read_stream(stream, range).await
    }
}

/// While the store cannot be read, a conversation's actor cannot be rebuilt: every caller gets
/// the store's error (retry later), never `Stopped`, which says the runtime shut down; once the
/// store is back, the next command is acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_racing_a_store_outage_get_store_errors_not_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let customer = CustomerId::new("c-1").unwrap();
    let id = {
        let handover = Handover::start(Config::new(dir.path())).await.unwrap();
        let opened = handover
            .open_conversation(customer.clone(), Channel::new("chat").unwrap(), None)
            .await
            .unwrap();
        handover.shutdown().await;
        opened.conversation_id
    };
    let inner = SledStore::open(dir.path(), SledOptions::default()).unwrap();
    let store = Arc::new(ForwardingStore::new(
        Arc::new(inner),
        ReadsDown {
            down: AtomicBool::new(true),
        },
    ));
    let handover = Handover::start_with_store(
        Arc::clone(&store) as Arc<dyn EventStore>,
        RuntimeSettings::default(),
    )
    .await
    .unwrap();
    let callers: Vec<_> = (0..8)
        .map(|i| {
            let (handover, customer) = (handover.clone(), customer.clone());
            tokio::spawn(async move {
                let mut errors = Vec::new();
                for round in 0..20 {
                    let message = text(&format!("caller {i}, round {round}"));
                    match handover
                        .post_customer_message(id, customer.clone(), message)
                        .await
                    {
                        Ok(_) => panic!("acknowledged while the store cannot be read"),
                        Err(error) => errors.push(error),
                    }
                }
                errors
            })
        })
        .collect();
    let mut store_errors = 0;
    for caller in callers {
        let errors = tokio::time::timeout(HANG_GUARD, caller)
            .await
            .unwrap()
            .unwrap();
        for error in errors {
            assert!(matches!(error, Error::Store(_)), "{error:?}");
            store_errors += 1;
        }
    }
    assert_eq!(store_errors, 160);
    store.hooks().down.store(false, Ordering::SeqCst);
    handover
        .post_customer_message(id, customer, text("back"))
        .await
        .expect("acknowledged once the store is back");
    handover.shutdown().await;
}

fn store_class(error: &StoreError) -> String {
    match error {
        StoreError::Io(io) => {
            // A cloned sled error keeps the operating system's error only in its text.
            let text = io.to_string();
            let errno = io.raw_os_error().or_else(|| {
                text.split("Os { code: ")
                    .nth(1)?
                    .split(',')
                    .next()?
                    .parse()
                    .ok()
            });
            match errno {
                Some(errno) => format!("io:{errno}"),
                None => format!("io:{:?}", io.kind()),
            }
        }
        StoreError::Failed(cause) => format!("failed:{}", store_class(cause)),
        other => format!("other:{other:?}"),
    }
}

/// Whether `class` is what a full disk may give: `ENOSPC` (28), or a sync that never returned
/// after it, directly or as the cause that stopped the store.
fn is_full_disk(class: &str) -> bool {
    matches!(
        class.strip_prefix("failed:").unwrap_or(class),
        "io:28" | "io:StorageFull" | "io:TimedOut"
    )
}

/// The runtime on a full disk. It runs in a child process (this test again, with
/// `HANDOVER_FULL_DISK_CHILD` set): the child's command that meets the full disk gets a typed
/// store error, the store stops, the runtime shuts down, and the child exits by itself. The
/// parent then frees space and restarts (a new process reads what is on disk): every
/// acknowledged and every published event is there, and new commands succeed. A child that
/// passes its deadline is killed and reported as a hang.
#[test]
fn a_full_disk_fails_a_command_and_a_restart_finds_every_acknowledged_event() {
    if let Some(data) = std::env::var_os(CHILD_ENV) {
        let data = PathBuf::from(data);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(full_disk(&data, &data.with_file_name("filler")));
        println!("full disk: finished");
        // Without waiting for threads that a failed store may have left blocked in sled.
        std::process::exit(0);
    }
    let base = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(&base.path().join("disk"), "8m");
    std::fs::write(disk.dir.join("filler"), vec![0u8; 2 * 1024 * 1024]).unwrap();
    let data = disk.dir.join("data");
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "a_full_disk_fails_a_command_and_a_restart_finds_every_acknowledged_event",
            "--exact",
            "--nocapture",
            "-q",
        ])
        .env(CHILD_ENV, &data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = {
        let mut stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let out = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout.read_to_string(&mut s);
            s
        });
        let err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let deadline = Instant::now() + CHILD_DEADLINE;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        (status, out.join().unwrap(), err.join().unwrap())
    };
    let (status, stdout, stderr) = output;
    for line in stdout.lines().filter(|l| {
        l.starts_with("full disk")
            && !l.contains("acknowledged message")
            && !l.contains("published ")
    }) {
        println!("{line}");
    }
    // Whatever became of the child, a restart must find what it acknowledged.
    let _ = std::fs::remove_file(disk.dir.join("filler"));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(restart_finds_the_acknowledged(&data, &stdout));
    match status {
        None => panic!(
            "the runtime hung after the disk filled: the child was killed after \
             {CHILD_DEADLINE:?} (the restart above found every acknowledged event)\n\
             {stdout}\n{stderr}"
        ),
        Some(status) => assert!(
            status.success() && stdout.contains("full disk: finished"),
            "the full-disk child failed ({status}):\n{stdout}\n{stderr}"
        ),
    }
    // sled 0.34.7 may panic in its log's `Drop` after a failed sync; the store closes sled on
    // a thread of its own (`handover-close`) so that the panic never reaches its owner. Any
    // other panic is a failure.
    let (contained, reached): (Vec<&str>, Vec<&str>) = stderr
        .lines()
        .filter(|l| l.contains("panicked at"))
        .partition(|l| {
            l.contains("thread 'handover-close'")
                && l.contains("sled-0.34.7/src/pagecache/logger.rs")
        });
    println!(
        "full disk: sled panics contained on the store's close thread: {}",
        contained.len()
    );
    assert!(
        reached.is_empty(),
        "a panic in the full-disk child:\n{stderr}"
    );
}

async fn full_disk(data: &Path, filler: &Path) {
    let store = Arc::new(
        SledStore::open(
            data,
            SledOptions {
                sync_timeout: SYNC_TIMEOUT,
                // The tmpfs is small: keep 2 MiB free instead of the default 64.
                min_free_bytes: 2 * 1024 * 1024,
                ..SledOptions::default()
            },
        )
        .unwrap(),
    );
    let released = Arc::downgrade(&store);
    let handover = Handover::start_with_store(store, Config::new(data).runtime)
        .await
        .unwrap();
    handover_testkit::staff(&handover, &["ana"]).await;
    let (customer, ana) = (
        CustomerId::new("cust-1").unwrap(),
        HumanId::new("ana").unwrap(),
    );
    let id = handover
        .open_conversation(
            customer.clone(),
            Channel::new("web").unwrap(),
            Some(ana.clone()),
        )
        .await
        .unwrap()
        .conversation_id;
    println!("full disk: conversation {id}");
    // A supervisor watching: every event it is shown must be in the log after the restart.
    let mut watch = handover.watch(id).await.unwrap();
    let watcher = tokio::spawn(async move {
        let mut shown = 0usize;
        loop {
            match watch.next().await.transpose() {
                Ok(Some(record)) => {
                    shown += 1;
                    println!(
                        "full disk: published {} {}",
                        record.seq,
                        first_words(&record.event)
                    );
                }
                Ok(None) => return format!("{shown} events, then the watch ended"),
                Err(error) => return format!("{shown} events, then {error}"),
            }
        }
    });
    let message = |n: usize| {
        let mut s = format!("message {n} ");
        s.extend(std::iter::repeat_n('x', 60_000));
        text(&s)
    };
    let mut acknowledged = vec![
        "conversation_opened".to_owned(),
        "human_assigned".to_owned(),
    ];
    let mut failure = None;
    for n in 0..1_000 {
        match handover
            .post_customer_message(id, customer.clone(), message(n))
            .await
        {
            Ok(receipt) => {
                assert_eq!(receipt.events[0].seq, acknowledged.len() as u64 + 1);
                acknowledged.push(format!("message {n}"));
                println!("full disk: acknowledged message {n}");
            }
            Err(error) => {
                failure = Some((n, error));
                break;
            }
        }
    }
    let (failed_n, error) = failure.expect("the disk never filled");
    println!("full disk: failed message {failed_n}");
    println!(
        "full disk: {} messages acknowledged, then: {error}",
        acknowledged.len() - 1
    );
    // A typed store error whose cause is the full disk; the system's fault, not the caller's,
    // and not one that a retry unchanged would fix.
    match &error {
        Error::Store(store_error) => {
            let class = store_class(store_error);
            println!("full disk: the failed command's error class: {class}");
            assert!(is_full_disk(&class), "{error:?}");
        }
        other => panic!("expected a store error, got {other:?}"),
    }
    assert!(
        !error.is_caller_error() && !error.is_retryable(),
        "{error:?}"
    );
    until_no_live_conversation(&handover).await;

    // Freeing space does not revive this process's store: it stopped at the failure, and
    // only a restart reads what is on disk. The next command and a read are refused with the
    // failure that stopped it; nothing is recorded.
    std::fs::remove_file(filler).unwrap();
    let next = handover
        .post_customer_message(id, customer.clone(), text("after the disk filled"))
        .await;
    let history = handover.history(id).await;
    for (what, outcome) in [
        ("the next command", next.map(drop)),
        ("reading the history", history.map(drop)),
    ] {
        match &outcome {
            Err(Error::Store(failed @ StoreError::Failed(_))) => {
                let class = store_class(failed);
                println!("full disk: {what}, after freeing 2 MiB: {class}");
                assert!(is_full_disk(&class), "{failed:?}");
            }
            other => panic!("{what} after the store failed: expected Failed, got {other:?}"),
        }
    }
    println!("full disk: shutting the runtime down");
    let shutting_down = Instant::now();
    handover.shutdown().await;
    println!(
        "full disk: the shutdown took {} ms",
        shutting_down.elapsed().as_millis()
    );
    let watched = tokio::time::timeout(HANG_GUARD, watcher)
        .await
        .expect("the watch ends once the runtime has stopped")
        .unwrap();
    println!("full disk: the supervisor was shown {watched}");
    println!(
        "full disk: the store released after the shutdown: {}",
        released.strong_count() == 0
    );
}

/// A restart (in the parent, after the child ended however it ended) reads the log from
/// disk: every acknowledged event, in order; the failed message at most after them (its
/// outcome was unknown), and nothing the stopped store refused; every event a watcher was
/// shown, where it was shown; and new commands succeed.
async fn restart_finds_the_acknowledged(data: &Path, child_stdout: &str) {
    let field = |prefix: &str| -> Vec<String> {
        child_stdout
            .lines()
            .filter_map(|l| l.strip_prefix(prefix).map(str::to_owned))
            .collect()
    };
    let id: ConversationId = field("full disk: conversation ")
        .first()
        .expect("the child opened its conversation")
        .parse()
        .unwrap();
    let mut acknowledged = vec![
        "conversation_opened".to_owned(),
        "human_assigned".to_owned(),
    ];
    acknowledged.extend(
        field("full disk: acknowledged message ")
            .iter()
            .map(|n| format!("message {n}")),
    );
    let failed: Vec<String> = field("full disk: failed message ")
        .iter()
        .map(|n| format!("message {n}"))
        .collect();
    let published: Vec<(u64, String)> = field("full disk: published ")
        .iter()
        .filter_map(|line| {
            let (seq, words) = line.split_once(' ')?;
            Some((seq.parse().ok()?, words.to_owned()))
        })
        .collect();
    // The tmpfs is small: keep 2 MiB free instead of the default 64.
    let store = SledStore::open(
        data,
        SledOptions {
            min_free_bytes: 2 * 1024 * 1024,
            ..SledOptions::default()
        },
    )
    .unwrap();
    let handover = Handover::start_with_store(Arc::new(store), Config::new(data).runtime)
        .await
        .unwrap();
    let history: Vec<String> = handover
        .history(id)
        .await
        .unwrap()
        .iter()
        .map(|r| first_words(&r.event))
        .collect();
    println!(
        "full disk: after a restart the conversation holds {} events ({} acknowledged, {} \
         shown to the watcher)",
        history.len(),
        acknowledged.len(),
        published.len()
    );
    assert!(history.len() >= acknowledged.len(), "{history:?}");
    assert_eq!(history[..acknowledged.len()], acknowledged[..]);
    // Only the message whose command failed may follow, its outcome unknown: the command
    // after the failure was refused by the stopped store.
    let unknown = &history[acknowledged.len()..];
    assert!(unknown.iter().all(|e| failed.contains(e)), "{unknown:?}");
    for (seq, words) in &published {
        let at = usize::try_from(*seq).unwrap() - 1;
        assert_eq!(
            history.get(at),
            Some(words),
            "the watcher was shown {words:?} at seq {seq}, the log holds something else"
        );
    }
    let customer = CustomerId::new("cust-1").unwrap();
    let receipt = handover
        .post_customer_message(id, customer, text("after the restart"))
        .await
        .unwrap();
    assert_eq!(receipt.events[0].seq, history.len() as u64 + 1);
    handover.shutdown().await;
}

/// The event's type name, or the first two words of a message.
fn first_words(event: &Event) -> String {
    match event {
        Event::Conversation(ConversationEvent::MessagePosted { text, .. }) => text
            .as_str()
            .split(' ')
            .take(2)
            .collect::<Vec<_>>()
            .join(" "),
        Event::Conversation(e) => e.type_name().to_owned(),
        _ => "ai-agent".to_owned(),
    }
}
