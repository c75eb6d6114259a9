//! The supervisor console end to end, in Debian's real chromium driven through chromedriver
//! (WebDriver): each test builds a Handover, serves the console on a loopback port in-process,
//! and drives one or two headless browsers against it.
//!
//! Needs `chromium` and `chromedriver` (`apt-get install chromium chromium-driver`); without
//! them every test fails saying so. Waits are WebDriver waits for an element (up to
//! [`WAIT`]); nothing is timed.
//!
//! `CONSOLE_SCREENSHOTS=1 cargo test -p handover-examples --test console_browser -- --ignored
//! screenshots` writes the screenshots in `docs/console/`.

use std::net::TcpListener as StdListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use handover::{
    async_trait, AgentError, AgentName, AiAgentBehavior, AiAgentId, AiAgentProfile, AiSession,
    Author, Channel, Config, ConversationEvent, ConversationId, CustomerId, Event, Handover,
    HumanId, ManualClock, MessageText, NewConversation, NewHuman, NoRouter, Presence, Reason,
    SkillData, SkillName, Specialty, TeamId, TenantId, Timestamp,
};
use handover_examples::console::{spawn, ConsoleOptions, Running};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The longest a test waits for the page to show something.
const WAIT: Duration = Duration::from_secs(10);

/// One browser test at a time: each starts a chromium, and the machine's CPUs are shared. (An
/// async mutex: it is held across awaits, and a failed test does not poison it.)
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// A chromedriver process of our own, in its own process group so that the chromium it starts
/// goes with it: killed (group and all) when dropped, so no test leaves a process behind.
struct Driver {
    child: Child,
    port: u16,
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

impl Driver {
    fn start() -> Driver {
        for program in ["chromedriver", "chromium"] {
            assert!(
                on_path(program),
                "`{program}` is not installed: the console's browser tests need Debian's \
                 chromium and its WebDriver; install them with \
                 `apt-get install -y chromium chromium-driver`"
            );
        }
        let port = {
            let probe = StdListener::bind("127.0.0.1:0").expect("a free port");
            probe.local_addr().expect("its address").port()
        };
        let child = {
            use std::os::unix::process::CommandExt as _;
            Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .expect("chromedriver starts")
        };
        Driver { child, port }
    }

    /// A headless chromium at 1280x800 (`--no-sandbox` as root, where its sandbox cannot run).
    async fn browser(&self) -> Client {
        let mut args = vec![
            "--headless=new".to_owned(),
            "--window-size=1280,800".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
        ];
        if running_as_root() {
            args.push("--no-sandbox".to_owned());
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            serde_json::json!({ "args": args }),
        );
        let url = format!("http://127.0.0.1:{}", self.port);
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        // chromedriver listens a moment after it starts: connecting is retried, within WAIT.
        let mut tries = 0;
        loop {
            match ClientBuilder::new(connector.clone())
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => return client,
                Err(error) => {
                    tries += 1;
                    assert!(tries < 100, "cannot start a chromium session: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole group: chromedriver and the chromium processes it started.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find(|line| line.starts_with("Uid:"))
            .and_then(|line| line.split_whitespace().nth(1))
            == Some("0")
    })
}

/// An AI agent that keeps its sessions (so a test can try to answer after a reclaim) and
/// answers each customer message with an echo.
#[derive(Default)]
struct Echo {
    sessions: Mutex<Vec<AiSession>>,
}

impl Echo {
    fn last_session(&self) -> AiSession {
        self.sessions
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("the agent was handed a conversation")
    }
}

#[async_trait]
impl AiAgentBehavior for Echo {
    async fn on_handoff(
        &self,
        session: &AiSession,
        _history: &[Arc<handover::RecordedEvent>],
    ) -> Result<(), AgentError> {
        self.sessions.lock().unwrap().push(session.clone());
        session
            .reply(MessageText::new("Hello, I am the pricing assistant.")?)
            .await?;
        Ok(())
    }

    async fn on_customer_message(
        &self,
        session: &AiSession,
        text: &MessageText,
    ) -> Result<(), AgentError> {
        // A refund is a skill the default policy makes wait for a person's approval.
        if let Some(order) = text.as_str().strip_prefix("Refund order ") {
            let input = SkillData::new(format!(r#"{{"order":"{order}"}}"#))?;
            let refund = session
                .run_skill(SkillName::new("issue_refund")?, input, async {
                    Ok::<_, String>("refunded 20 USD".to_owned())
                })
                .await;
            let answer = match refund {
                Ok(_) => "Your refund is on its way.".to_owned(),
                Err(handover::Error::SkillDenied { reason, .. }) => {
                    format!("I cannot refund it: {reason}")
                }
                Err(error) => return Err(error.into()),
            };
            session.reply(MessageText::new(answer)?).await?;
            return Ok(());
        }
        session
            .reply(MessageText::new(format!("You said: {text}"))?)
            .await?;
        Ok(())
    }
}

/// A Handover with a supervisor (Sam Rivera), an agent (Ana Souza), an active AI agent with
/// the [`Echo`] behaviour and an inactive one, no router (waiting conversations stay waiting),
/// a manual clock, and the console serving it.
struct Harness {
    handover: Handover,
    clock: ManualClock,
    echo: Arc<Echo>,
    console: Option<Running>,
    driver: Driver,
    _dir: tempfile::TempDir,
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

impl Harness {
    async fn start() -> Harness {
        let serial = serial().await;
        let driver = Driver::start();
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
        let config = Config::new(dir.path())
            .router(Arc::new(NoRouter))
            .clock(Arc::new(clock.clone()));
        let handover = Handover::start(config).await.unwrap();
        let tenant = TenantId::default_tenant();
        handover
            .register_human(
                NewHuman::supervisor(id("sam"), AgentName::new("Sam Rivera").unwrap())
                    .tenant(tenant.clone()),
            )
            .await
            .unwrap();
        handover
            .register_human(
                NewHuman::agent(id("ana"), AgentName::new("Ana Souza").unwrap())
                    .tenant(tenant.clone())
                    .teams(vec![TeamId::new("billing").unwrap()])
                    .capacity(10),
            )
            .await
            .unwrap();
        handover
            .set_presence(id("ana"), Presence::Available)
            .await
            .unwrap();
        let echo = Arc::new(Echo::default());
        let pricing = AiAgentId::new("pricing-bot").unwrap();
        handover
            .register_ai_agent(AiAgentProfile {
                id: pricing.clone(),
                name: AgentName::new("Pricing assistant").unwrap(),
                specialties: vec![Specialty::new("pricing").unwrap()],
            })
            .await
            .unwrap();
        handover.activate_ai_agent(pricing.clone()).await.unwrap();
        handover
            .attach_ai_agent(pricing, Arc::clone(&echo) as Arc<dyn AiAgentBehavior>)
            .unwrap();
        // Registered, never activated: not offered.
        handover
            .register_ai_agent(AiAgentProfile {
                id: AiAgentId::new("dormant-bot").unwrap(),
                name: AgentName::new("Dormant assistant").unwrap(),
                specialties: vec![Specialty::new("pricing").unwrap()],
            })
            .await
            .unwrap();
        let console = spawn(handover.clone(), ConsoleOptions::default())
            .await
            .unwrap();
        Harness {
            handover,
            clock,
            echo,
            console: Some(console),
            driver,
            _dir: dir,
            _serial: serial,
        }
    }

    fn url(&self, path: &str) -> String {
        self.console.as_ref().unwrap().url(path)
    }

    /// A browser signed in as `supervisor` (listed under `tenant` on the sign-in page).
    async fn signed_in(&self, supervisor: &str, tenant: Option<&str>) -> Client {
        let browser = self.driver.browser().await;
        let page = match tenant {
            Some(tenant) => format!("/sign-in?tenant={tenant}"),
            None => "/sign-in".to_owned(),
        };
        browser.goto(&self.url(&page)).await.unwrap();
        click(
            &browser,
            Locator::Css(&format!("button[name='supervisor'][value='{supervisor}']")),
        )
        .await;
        wait_for(&browser, Locator::Id("signed-in-as")).await;
        browser
    }

    /// A conversation of the default tenant assigned to Ana, with a first message.
    async fn assigned_to_ana(&self, text: &str) -> ConversationId {
        let id = self
            .handover
            .open_conversation(
                CustomerId::new("cust-1").unwrap(),
                Channel::new("web-chat").unwrap(),
                Some(id("ana")),
            )
            .await
            .unwrap()
            .conversation_id;
        self.handover
            .post_customer_message(
                id,
                CustomerId::new("cust-1").unwrap(),
                MessageText::new(text).unwrap(),
            )
            .await
            .unwrap();
        id
    }

    async fn finish(mut self, browsers: Vec<Client>) {
        for browser in browsers {
            let _ = browser.close().await;
        }
        if let Some(console) = self.console.take() {
            console.stop().await.unwrap();
        }
        self.handover.clone().shutdown().await;
    }

    /// A GET with the supervisor's cookie, outside the browser: the status.
    async fn status_of(&self, method: &str, path: &str, supervisor: &str) -> u16 {
        let address = self.console.as_ref().unwrap().address;
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\
             Cookie: handover_console_supervisor={supervisor}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 0\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.unwrap();
        String::from_utf8_lossy(&head[9..12]).parse().unwrap()
    }
}

fn id(text: &str) -> HumanId {
    HumanId::new(text).unwrap()
}

/// Waits (up to [`WAIT`]) for an element to be on the page.
async fn wait_for(browser: &Client, locator: Locator<'_>) -> fantoccini::elements::Element {
    let described = format!("{locator:?}");
    match browser.wait().at_most(WAIT).for_element(locator).await {
        Ok(element) => element,
        Err(error) => {
            let source = browser.source().await.unwrap_or_default();
            panic!("{described} did not appear: {error}\n--- page ---\n{source}")
        }
    }
}

/// The conversation's line in the live list.
fn row(id: ConversationId) -> String {
    format!("//li[@data-conversation='{id}']")
}

/// Clicks the element `locator` finds.
async fn click(browser: &Client, locator: Locator<'_>) {
    browser.find(locator).await.unwrap().click().await.unwrap();
}

/// Opens `conversation`'s pane.
async fn open_pane(browser: &Client, harness: &Harness, conversation: ConversationId) {
    browser
        .goto(&harness.url(&format!("/c/{conversation}")))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_robot_badge_appears_when_another_client_hands_off() {
    let harness = Harness::start().await;
    let hostile = "<script>window.__pwned = 1</script><b>Pro</b> plan price?";
    let conversation = harness.assigned_to_ana(hostile).await;
    let browser = harness.signed_in("sam", None).await;
    browser.goto(&harness.url("/")).await.unwrap();
    let line = wait_for(&browser, Locator::XPath(&row(conversation))).await;
    assert!(line.text().await.unwrap().contains("Ana Souza"));
    // The message shows as text, never as markup.
    assert!(line
        .text()
        .await
        .unwrap()
        .contains("<script>window.__pwned = 1</script>"));
    let pwned = browser
        .execute("return typeof window.__pwned;", vec![])
        .await
        .unwrap();
    assert_eq!(pwned, serde_json::json!("undefined"));

    // The handoff comes from another client: the facade, not this browser.
    harness
        .handover
        .hand_off_to_ai(
            conversation,
            id("ana"),
            AiAgentId::new("pricing-bot").unwrap(),
            Some(Reason::new("pricing question").unwrap()),
        )
        .await
        .unwrap();
    let badge = format!(
        "{}//span[@data-badge='ai'][contains(., 'Pricing assistant')]",
        row(conversation)
    );
    wait_for(&browser, Locator::XPath(&badge)).await;

    // The console serves the Prometheus metrics too, the handoff counted once the feed has it.
    let handoffs = |text: &str| -> f64 {
        text.lines()
            .filter(|line| line.starts_with("handover_handoffs_total"))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let counted = tokio::time::timeout(WAIT, async {
        loop {
            browser.goto(&harness.url("/metrics")).await.unwrap();
            let text = browser.source().await.unwrap();
            if handoffs(&text) >= 1.0 {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the handoff was never counted on /metrics");
    assert_eq!(handoffs(&counted), 1.0);
    harness.finish(vec![browser]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assume_shows_the_supervisor_and_the_ai_can_no_longer_answer() {
    let harness = Harness::start().await;
    let conversation = harness.assigned_to_ana("How much is the Pro plan?").await;
    let receipt = harness
        .handover
        .hand_off_to_ai(
            conversation,
            id("ana"),
            AiAgentId::new("pricing-bot").unwrap(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(receipt.status.label(), "ai-active");
    let browser = harness.signed_in("sam", None).await;
    open_pane(&browser, &harness, conversation).await;
    // The AI's reply reaches the open pane.
    wait_for(
        &browser,
        Locator::XPath("//ol[@id='transcript']/li[contains(@class,'entry-ai')]"),
    )
    .await;
    wait_for(&browser, Locator::Id("assume"))
        .await
        .click()
        .await
        .unwrap();
    wait_for(
        &browser,
        Locator::XPath(
            "//div[@id='controller']//span[@data-badge='human'][contains(., 'Sam Rivera')]",
        ),
    )
    .await;
    browser.goto(&harness.url("/")).await.unwrap();
    wait_for(
        &browser,
        Locator::XPath(&format!(
            "{}//span[@data-badge='human'][contains(., 'Sam Rivera')]",
            row(conversation)
        )),
    )
    .await;

    // The agent's next reply is refused, and the log has no AI message after the reclaim.
    let late = harness
        .echo
        .last_session()
        .reply(MessageText::new("One more thing about pricing").unwrap())
        .await;
    assert!(
        matches!(late, Err(handover::Error::Rejected(_))),
        "{late:?}"
    );
    let history = harness.handover.history(conversation).await.unwrap();
    let reclaimed = history
        .iter()
        .position(|r| {
            matches!(
                &r.event,
                Event::Conversation(ConversationEvent::Reclaimed { by_human, .. }) if *by_human == id("sam")
            )
        })
        .expect("the reclaim is recorded under the supervisor");
    assert!(!history[reclaimed..].iter().any(|r| matches!(
        &r.event,
        Event::Conversation(ConversationEvent::MessagePosted {
            author: Author::Ai(_),
            ..
        })
    )));
    harness.finish(vec![browser]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_to_ai_offers_active_agents_only_and_records_the_reason() {
    let harness = Harness::start().await;
    let conversation = harness
        .assigned_to_ana("What does the Pro plan cost?")
        .await;
    let browser = harness.signed_in("sam", None).await;
    open_pane(&browser, &harness, conversation).await;
    let select = wait_for(&browser, Locator::Id("handoff-agent")).await;
    let mut offered = Vec::new();
    for option in select.find_all(Locator::Css("option")).await.unwrap() {
        offered.push(option.attr("value").await.unwrap().unwrap_or_default());
    }
    assert_eq!(offered, ["pricing-bot"], "only the active agent is offered");

    let reason = "Customer wants <b>pricing</b> & plans";
    select.select_by_value("pricing-bot").await.unwrap();
    browser
        .find(Locator::Id("handoff-reason"))
        .await
        .unwrap()
        .send_keys(reason)
        .await
        .unwrap();
    click(&browser, Locator::Id("transfer-to-ai")).await;
    wait_for(
        &browser,
        Locator::XPath(
            "//div[@id='controller']//span[@data-badge='ai'][contains(., 'Pricing assistant')]",
        ),
    )
    .await;
    // The reason shows as typed, as text.
    let handoff = wait_for(
        &browser,
        Locator::XPath("//ol[@id='transcript']/li[@data-type='handed_off_to_ai']"),
    )
    .await;
    assert!(handoff.text().await.unwrap().contains(reason));

    let history = harness.handover.history(conversation).await.unwrap();
    let recorded = history.iter().find_map(|r| match &r.event {
        Event::Conversation(ConversationEvent::HandedOffToAi {
            by_human, reason, ..
        }) => Some((by_human.clone(), reason.clone())),
        _ => None,
    });
    let (by, recorded_reason) = recorded.expect("the handoff is recorded");
    assert_eq!(by, id("sam"));
    assert_eq!(
        recorded_reason.map(|r| r.to_string()).as_deref(),
        Some(reason)
    );
    harness.finish(vec![browser]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_counts_up_and_assigning_clears_it() {
    let harness = Harness::start().await;
    let customer = CustomerId::new("cust-9").unwrap();
    let conversation = harness
        .handover
        .start_conversation(
            NewConversation::new(
                TenantId::default_tenant(),
                customer,
                Channel::new("whatsapp").unwrap(),
            )
            .team(TeamId::new("billing").unwrap()),
        )
        .await
        .unwrap()
        .conversation_id;
    let browser = harness.signed_in("sam", None).await;
    browser.goto(&harness.url("/")).await.unwrap();
    let timer = format!(
        "{}//span[@data-badge='wait']/span[@class='wait-time']",
        row(conversation)
    );
    wait_for(&browser, Locator::XPath(&format!("{timer}[text()='0:00']"))).await;
    harness.clock.advance_millis(65_000);
    wait_for(&browser, Locator::XPath(&format!("{timer}[text()='1:05']"))).await;
    harness.clock.advance_millis(3_600_000);
    wait_for(
        &browser,
        Locator::XPath(&format!("{timer}[text()='1:01:05']")),
    )
    .await;
    wait_for(
        &browser,
        Locator::XPath("//dd[@id='count-waiting'][text()='1']"),
    )
    .await;

    open_pane(&browser, &harness, conversation).await;
    wait_for(&browser, Locator::Id("assign-human"))
        .await
        .select_by_value("ana")
        .await
        .unwrap();
    click(&browser, Locator::Id("assign")).await;
    wait_for(
        &browser,
        Locator::XPath(
            "//div[@id='controller']//span[@data-badge='human'][contains(., 'Ana Souza')]",
        ),
    )
    .await;
    browser.goto(&harness.url("/")).await.unwrap();
    let line = wait_for(
        &browser,
        Locator::XPath(&format!(
            "{}[.//span[@data-badge='human'][contains(., 'Ana Souza')]]",
            row(conversation)
        )),
    )
    .await;
    assert!(line
        .find_all(Locator::Css("[data-badge='wait']"))
        .await
        .unwrap()
        .is_empty());
    wait_for(
        &browser,
        Locator::XPath("//dd[@id='count-waiting'][text()='0']"),
    )
    .await;
    harness.finish(vec![browser]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_session_sees_the_first_ones_actions_live() {
    let harness = Harness::start().await;
    harness
        .handover
        .register_human(
            NewHuman::supervisor(id("lee"), AgentName::new("Lee Okafor").unwrap())
                .tenant(TenantId::default_tenant()),
        )
        .await
        .unwrap();
    let conversation = harness.assigned_to_ana("My invoice is wrong").await;
    let first = harness.signed_in("sam", None).await;
    let second = harness.signed_in("lee", None).await;
    second.goto(&harness.url("/")).await.unwrap();
    wait_for(&second, Locator::XPath(&row(conversation))).await;

    open_pane(&first, &harness, conversation).await;
    wait_for(&first, Locator::Id("flag"))
        .await
        .click()
        .await
        .unwrap();
    wait_for(
        &second,
        Locator::XPath(&format!("{}//span[@data-flag='raised']", row(conversation))),
    )
    .await;

    open_pane(&second, &harness, conversation).await;
    wait_for(&second, Locator::Id("transcript")).await;
    wait_for(&first, Locator::Id("whisper-text"))
        .await
        .send_keys("Check the refund policy first")
        .await
        .unwrap();
    click(&first, Locator::Id("whisper")).await;
    let note = wait_for(
        &second,
        Locator::XPath(
            "//ol[@id='transcript']/li[@data-type='internal_note'][contains(., 'Check the refund policy first')]",
        ),
    )
    .await;
    let text = note.text().await.unwrap();
    assert!(text.contains("Sam Rivera"), "{text}");
    assert!(text.contains("never shown to the customer"), "{text}");
    harness.finish(vec![first, second]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_of_another_tenant_sees_none_of_it() {
    let harness = Harness::start().await;
    let globex = TenantId::new("globex").unwrap();
    harness
        .handover
        .register_human(
            NewHuman::supervisor(id("gus"), AgentName::new("Gus Fring").unwrap())
                .tenant(globex.clone()),
        )
        .await
        .unwrap();
    let conversation = harness.assigned_to_ana("Secret pricing question").await;
    let outsider = harness.signed_in("gus", Some("globex")).await;
    outsider.goto(&harness.url("/")).await.unwrap();
    let count = wait_for(&outsider, Locator::Id("list-count")).await;
    assert_eq!(count.text().await.unwrap(), "0 conversations");
    assert!(outsider
        .find_all(Locator::XPath(&row(conversation)))
        .await
        .unwrap()
        .is_empty());
    assert!(!outsider.source().await.unwrap().contains("Secret pricing"));

    open_pane(&outsider, &harness, conversation).await;
    let heading = wait_for(&outsider, Locator::Css("h1")).await;
    assert_eq!(heading.text().await.unwrap(), "Not found");
    assert!(!outsider.source().await.unwrap().contains("Secret pricing"));

    // Every route of the conversation answers 404 to them, and nothing is done.
    for (method, path) in [
        ("GET", format!("/c/{conversation}")),
        ("GET", format!("/events/c/{conversation}")),
        ("POST", format!("/c/{conversation}/close")),
        ("POST", format!("/c/{conversation}/flag")),
    ] {
        assert_eq!(
            harness.status_of(method, &path, "gus").await,
            404,
            "{method} {path}"
        );
    }
    assert_eq!(
        harness
            .status_of("GET", &format!("/c/{conversation}"), "sam")
            .await,
        200
    );
    // An unknown or malformed id is a 404 too, for anyone.
    for path in ["/c/0190f5a8-6c1e-7000-8000-000000000000", "/c/not-an-id"] {
        assert_eq!(harness.status_of("GET", path, "sam").await, 404, "{path}");
    }
    let view = harness.handover.conversation(conversation).await.unwrap();
    assert!(!view.closed && !view.flagged);
    harness.finish(vec![outsider]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skill_waiting_for_approval_is_approved_or_denied_from_the_pane() {
    let harness = Harness::start().await;
    let conversation = harness.assigned_to_ana("I was charged twice").await;
    harness
        .handover
        .hand_off_to_ai(
            conversation,
            id("ana"),
            AiAgentId::new("pricing-bot").unwrap(),
            None,
        )
        .await
        .unwrap();
    let browser = harness.signed_in("sam", None).await;
    open_pane(&browser, &harness, conversation).await;
    wait_for(&browser, Locator::Id("assume")).await;
    let customer = CustomerId::new("cust-1").unwrap();
    harness
        .handover
        .post_customer_message(
            conversation,
            customer.clone(),
            MessageText::new("Refund order A-1").unwrap(),
        )
        .await
        .unwrap();
    // The request reaches the open pane, with its buttons.
    wait_for(
        &browser,
        Locator::XPath("//form[contains(@action, '/approve')]//button[text()='Approve']"),
    )
    .await
    .click()
    .await
    .unwrap();
    wait_for(
        &browser,
        Locator::XPath(
            "//ol[@id='transcript']/li[@data-type='ai_action_recorded'][contains(., 'refunded 20 USD')]",
        ),
    )
    .await;

    harness
        .handover
        .post_customer_message(
            conversation,
            customer,
            MessageText::new("Refund order B-2").unwrap(),
        )
        .await
        .unwrap();
    wait_for(&browser, Locator::Id("deny-reason-issue_refund"))
        .await
        .send_keys("Over the refund limit")
        .await
        .unwrap();
    click(
        &browser,
        Locator::XPath("//form[contains(@action, '/deny')]//button[text()='Deny']"),
    )
    .await;
    wait_for(
        &browser,
        Locator::XPath(
            "//ol[@id='transcript']/li[contains(@class, 'entry-ai')][contains(., 'I cannot refund it: Over the refund limit')]",
        ),
    )
    .await;

    let history = harness.handover.history(conversation).await.unwrap();
    let decisions: Vec<String> = history
        .iter()
        .filter_map(|r| match &r.event {
            Event::Conversation(ConversationEvent::SkillApproved { by, .. }) => {
                Some(format!("approved by {}", by.id()))
            }
            Event::Conversation(ConversationEvent::SkillDenied { by, reason, .. }) => {
                Some(format!("denied by {}: {reason}", by.id()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        decisions,
        ["approved by sam", "denied by sam: Over the refund limit"]
    );
    harness.finish(vec![browser]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_action_shows_the_rejections_message() {
    let harness = Harness::start().await;
    // The customer asks for a person: the default policy refuses a handoff to an AI agent.
    let conversation = harness
        .assigned_to_ana("I want to talk to a human, not a bot")
        .await;
    let browser = harness.signed_in("sam", None).await;
    open_pane(&browser, &harness, conversation).await;
    wait_for(&browser, Locator::Id("handoff-agent"))
        .await
        .select_by_value("pricing-bot")
        .await
        .unwrap();
    click(&browser, Locator::Id("transfer-to-ai")).await;
    let alert = wait_for(&browser, Locator::Id("action-error")).await;
    let shown = alert.text().await.unwrap();
    let refusal = harness
        .handover
        .hand_off_to_ai(
            conversation,
            id("sam"),
            AiAgentId::new("pricing-bot").unwrap(),
            None,
        )
        .await
        .expect_err("the policy refuses the handoff");
    assert!(
        matches!(refusal, handover::Error::Rejected(_)),
        "{refusal:?}"
    );
    assert_eq!(shown, format!("Refused: {refusal}"));
    // Nothing changed: Ana still has it.
    wait_for(
        &browser,
        Locator::XPath(
            "//div[@id='controller']//span[@data-badge='human'][contains(., 'Ana Souza')]",
        ),
    )
    .await;
    harness.finish(vec![browser]).await;
}

/// Writes the README's screenshots: the live list with AI-active, waiting and human-handled
/// conversations, a conversation pane with its transcript, and the list on a phone-sized
/// window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes docs/console/*.png; run with --ignored screenshots"]
async fn screenshots() {
    let _serial = serial().await;
    let driver = Driver::start();
    let dir = tempfile::tempdir().unwrap();
    let handover = Handover::start(Config::new(dir.path())).await.unwrap();
    let cast = handover_examples::console::set_up_demo(&handover)
        .await
        .unwrap();
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let demo = tokio::spawn(handover_examples::console::run_demo(
        handover.clone(),
        Duration::from_millis(120),
        24,
        stopping,
    ));
    // Let the demo fill the list; the screenshots are of whatever it reached.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let _ = stop.send(true);
    let _ = demo.await;
    let console = spawn(handover.clone(), ConsoleOptions::default())
        .await
        .unwrap();
    let browser = driver.browser().await;
    browser.goto(&console.url("/sign-in")).await.unwrap();
    click(
        &browser,
        Locator::Css(&format!("button[value='{}']", cast.supervisors[0])),
    )
    .await;
    wait_for(&browser, Locator::Id("conversations")).await;
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/console");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("list.png"), browser.screenshot().await.unwrap()).unwrap();

    let ai = handover
        .list_conversations(
            &TenantId::default_tenant(),
            &handover::LiveQuery::new().status(handover::LiveStatus::AiActive),
        )
        .into_iter()
        .max_by_key(|c| c.last_activity)
        .expect("the demo handed a conversation to an AI agent");
    // Taller, so that the transcript shows down to the AI agent's answers.
    browser.set_window_size(1280, 1100).await.unwrap();
    browser
        .goto(&console.url(&format!("/c/{}", ai.id)))
        .await
        .unwrap();
    wait_for(&browser, Locator::Id("transcript")).await;
    std::fs::write(
        out.join("conversation.png"),
        browser.screenshot().await.unwrap(),
    )
    .unwrap();

    browser.set_window_size(390, 844).await.unwrap();
    browser.goto(&console.url("/")).await.unwrap();
    wait_for(&browser, Locator::Id("conversations")).await;
    std::fs::write(out.join("phone.png"), browser.screenshot().await.unwrap()).unwrap();
    let _ = browser.close().await;
    console.stop().await.unwrap();
    handover.shutdown().await;
}
