//! The supervisor console: a live list of a tenant's conversations (who controls each one, how
//! long it has waited, its team, its flag, its latest message) and a conversation pane with
//! the transcript as it happens and the supervisor's actions (transfer to AI, assume, assign,
//! transfer, whisper, flag, approve or deny a skill, close).
//!
//! Server-rendered HTML ([`maud`] escapes every value it inserts) with live updates over
//! Server-Sent Events; a small script swaps the fragments the server sends, and every action is
//! a plain form, so the console works from the keyboard and without the script (by reloading).
//!
//! ```text
//! GET  /                      the live list; ?status=&team=&agent=&flagged= filter it
//! GET  /events/list           SSE: the list's fragment (same filters) on every change, and
//!                             every second while a wait counts up
//! GET  /c/{id}                the conversation pane
//! GET  /events/c/{id}         SSE: transcript entries (resumes after Last-Event-ID), the
//!                             header and the actions
//! POST /c/{id}/handoff        agent, reason         Transfer to AI
//! POST /c/{id}/reclaim        reason                Assume conversation
//! POST /c/{id}/assign         human
//! POST /c/{id}/transfer       target, reason        to a human or a team's queue
//! POST /c/{id}/whisper        audience, text        internal note, never shown to the customer
//! POST /c/{id}/flag, /c/{id}/unflag
//! POST /c/{id}/approve        skill
//! POST /c/{id}/deny           skill, reason
//! POST /c/{id}/close          reason
//! GET  /sign-in, POST /sign-in (supervisor), POST /sign-out
//! GET  /assets/console.css, /assets/console.js
//! ```
//!
//! Sign-in is a list of the registered supervisors and a cookie naming the one chosen: there is
//! no password. A real deployment puts its own authentication in front and sets who the
//! supervisor is; what the console does enforce is that every action is recorded under the
//! signed-in supervisor and that a supervisor sees only their tenant (a conversation of another
//! tenant is a 404 on every route).

mod demo;
mod pages;

use handover_metrics::HandoverMetrics;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use futures::{FutureExt as _, Stream};
use handover::{
    AiAgentId, ConversationId, ConversationView, Handover, HumanId, HumanView, LiveQuery,
    LiveStatus, MessageText, NoteAudience, Reason, Role, SkillName, StreamExt as _, TeamId,
    TenantId, TransferTarget,
};
use serde::Deserialize;
use tokio::sync::watch;

pub use demo::{run_demo, set_up_demo, DemoCast};
pub use pages::{render_list, ListFilter};

/// The cookie naming the signed-in supervisor.
const COOKIE: &str = "handover_console_supervisor";

/// How long the live list waits after a change before rendering, so that a burst of changes
/// is sent as one fragment.
const COALESCE: Duration = Duration::from_millis(150);

/// How often the live list is rendered again without a change, so that waits count up.
const TICK: Duration = Duration::from_secs(1);

/// What the console shows and where.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ConsoleOptions {
    /// The tenants whose supervisors the sign-in page lists (another one is reached with
    /// `/sign-in?tenant=NAME`).
    pub tenants: Vec<TenantId>,
    /// The most conversations the list renders (the strip counts them all).
    pub list_limit: usize,
}

impl Default for ConsoleOptions {
    fn default() -> ConsoleOptions {
        ConsoleOptions {
            tenants: vec![TenantId::default_tenant()],
            list_limit: 200,
        }
    }
}

impl ConsoleOptions {
    /// Lists these tenants' supervisors at sign-in.
    pub fn tenants(mut self, tenants: Vec<TenantId>) -> ConsoleOptions {
        self.tenants = tenants;
        self
    }

    /// Renders at most `limit` conversations in the list.
    pub fn list_limit(mut self, limit: usize) -> ConsoleOptions {
        self.list_limit = limit.max(1);
        self
    }
}

/// What every handler shares.
#[derive(Clone)]
struct Console {
    handover: Handover,
    options: Arc<ConsoleOptions>,
    /// Turns true when the server stops, ending the live streams (which never end by
    /// themselves) so that a graceful shutdown does not wait for them.
    stopping: watch::Receiver<bool>,
}

/// The console's routes over `handover`. Its live streams end when `stopping` turns true.
///
/// The router is a plain [`Router`]: a deployment merges its own routes into it, e.g. the
/// metrics crate's `/metrics` (`console::router(..).merge(metrics_router)`), and puts its
/// authentication in front of it as a layer.
pub fn router(
    handover: Handover,
    options: ConsoleOptions,
    stopping: watch::Receiver<bool>,
) -> Router {
    let console = Console {
        handover,
        options: Arc::new(options),
        stopping,
    };
    Router::new()
        .route("/", get(list_page))
        .route("/events/list", get(list_events))
        .route("/c/:id", get(conversation_page))
        .route("/events/c/:id", get(conversation_events))
        .route("/c/:id/handoff", post(hand_off))
        .route("/c/:id/reclaim", post(reclaim))
        .route("/c/:id/assign", post(assign))
        .route("/c/:id/transfer", post(transfer))
        .route("/c/:id/whisper", post(whisper))
        .route("/c/:id/flag", post(flag))
        .route("/c/:id/unflag", post(unflag))
        .route("/c/:id/approve", post(approve))
        .route("/c/:id/deny", post(deny))
        .route("/c/:id/close", post(close))
        .route("/sign-in", get(sign_in_page).post(sign_in))
        .route("/sign-out", post(sign_out))
        .route("/assets/console.css", get(css))
        .route("/assets/console.js", get(js))
        .fallback(|| async { not_found() })
        .with_state(console)
}

/// Serves the console on `listener` until `shutdown` completes; then the live streams end and
/// requests under way finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    handover: Handover,
    options: ConsoleOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop, stopping) = watch::channel(false);
    // Prometheus scrapes the console's process as it would a backend's: the same route.
    let metrics = HandoverMetrics::new(&handover).map_err(std::io::Error::other)?;
    let app = router(handover, options, stopping).merge(metrics.router());
    // The router holds its own clone: the metrics stop counting once the server is done.
    drop(metrics);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stop.send(true);
        })
        .await
}

/// A console serving on an ephemeral loopback port, for tests: stops when dropped.
#[derive(Debug)]
pub struct Running {
    /// Where it listens.
    pub address: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// The URL of `path` on this console, e.g. `http://127.0.0.1:40123/`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Stops serving and waits for the server to finish.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.served).await {
            Ok(result) => result,
            Err(error) => Err(std::io::Error::other(error)),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts the console on 127.0.0.1 at an ephemeral port, in the current runtime.
///
/// ```no_run
/// # async fn example(handover: handover::Handover) -> std::io::Result<()> {
/// use handover_examples::console::{spawn, ConsoleOptions};
/// let console = spawn(handover, ConsoleOptions::default()).await?;
/// println!("open {}", console.url("/"));
/// console.stop().await
/// # }
/// ```
pub async fn spawn(handover: Handover, options: ConsoleOptions) -> std::io::Result<Running> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let address = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(serve(listener, handover, options, async move {
        let _ = stopped.await;
    }));
    Ok(Running {
        address,
        stop: Some(stop),
        served,
    })
}

/// A page, or the answer to a refused request, as HTML with its status.
fn page(status: StatusCode, markup: maud::Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

fn not_found() -> Response {
    page(StatusCode::NOT_FOUND, pages::not_found())
}

/// The HTTP status of a facade error: the caller's are 4xx (a refused command conflicts with
/// the conversation's state), the system's 5xx.
fn status_of(error: &handover::Error) -> StatusCode {
    match error {
        handover::Error::UnknownConversation(_) => StatusCode::NOT_FOUND,
        handover::Error::InvalidInput(_) => StatusCode::BAD_REQUEST,
        error if error.is_caller_error() => StatusCode::CONFLICT,
        handover::Error::Overloaded | handover::Error::Stopped => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The signed-in supervisor, from the cookie; any page without one goes to the sign-in page.
struct Supervisor(HumanView);

impl Supervisor {
    fn id(&self) -> HumanId {
        self.0.id.clone()
    }

    fn tenant(&self) -> &TenantId {
        &self.0.tenant
    }
}

/// The supervisor a cookie header names, if it names a registered, not removed supervisor.
fn supervisor_of(handover: &Handover, headers: &HeaderMap) -> Option<HumanView> {
    let cookies = headers.get_all(header::COOKIE);
    let id = cookies
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .and_then(|(_, value)| percent_decode(value))?;
    let human = handover.human(&HumanId::new(id).ok()?)?;
    // `humans` leaves removed humans out: a removed supervisor is signed out.
    let current = handover
        .humans(&human.tenant, &handover::HumanQuery::default())
        .into_iter()
        .any(|h| h.id == human.id);
    (human.role == Role::Supervisor && current).then_some(human)
}

#[axum::async_trait]
impl FromRequestParts<Console> for Supervisor {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, Response> {
        match supervisor_of(&console.handover, &parts.headers) {
            Some(human) => Ok(Supervisor(human)),
            None => Err(Redirect::to("/sign-in").into_response()),
        }
    }
}

/// Cookie values keep to letters, digits and `._-`; anything else is `%XX`.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Completes when the server stops.
async fn stopped(stopping: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is dropped here, so the streams stay `Send`.
    let _ = stopping.wait_for(|stop| *stop).await.is_ok();
}

/// The conversation `id` names, if it belongs to the supervisor's tenant: `None` (a 404) for a
/// malformed id, an unknown conversation, or another tenant's, alike.
async fn own_conversation(
    console: &Console,
    supervisor: &Supervisor,
    id: &str,
) -> Result<(ConversationId, ConversationView), Response> {
    let id: ConversationId = id.parse().map_err(|_| not_found())?;
    match console.handover.conversation(id).await {
        Ok(view) if view.tenant == *supervisor.tenant() => Ok((id, view)),
        Ok(_) | Err(handover::Error::UnknownConversation(_)) => Err(not_found()),
        Err(error) => Err(page(status_of(&error), pages::failure(&error.to_string()))),
    }
}

async fn css() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("console.css"),
    )
}

async fn js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("console.js"),
    )
}

async fn list_page(
    State(console): State<Console>,
    supervisor: Supervisor,
    Query(filter): Query<ListFilter>,
) -> Response {
    let fragment = render_list(
        &console.handover,
        supervisor.tenant(),
        &filter,
        console.options.list_limit,
    );
    let markup = pages::list_page(&console.handover, &supervisor.0, &filter, fragment);
    page(StatusCode::OK, markup)
}

/// The live list's fragment again whenever the listing changes (a burst coalesced) and every
/// [`TICK`] for the waits, sent only when it reads differently.
async fn list_events(
    State(console): State<Console>,
    supervisor: Supervisor,
    Query(filter): Query<ListFilter>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    struct Feed {
        console: Console,
        tenant: TenantId,
        filter: ListFilter,
        changes: watch::Receiver<u64>,
        last: Option<String>,
        first: bool,
    }
    let feed = Feed {
        changes: console.handover.listing_changes(),
        tenant: supervisor.tenant().clone(),
        console,
        filter,
        last: None,
        first: true,
    };
    let stream = futures::stream::unfold(feed, |mut feed| async move {
        loop {
            if !feed.first {
                let mut stopping = feed.console.stopping.clone();
                tokio::select! {
                    changed = feed.changes.changed() => {
                        if changed.is_err() {
                            return None;
                        }
                        tokio::time::sleep(COALESCE).await;
                    }
                    () = tokio::time::sleep(TICK) => {}
                    () = stopped(&mut stopping) => return None,
                }
            }
            feed.first = false;
            feed.changes.borrow_and_update();
            let html = render_list(
                &feed.console.handover,
                &feed.tenant,
                &feed.filter,
                feed.console.options.list_limit,
            )
            .into_string();
            if feed.last.as_deref() != Some(html.as_str()) {
                let event = SseEvent::default().event("list").data(&html);
                feed.last = Some(html);
                return Some((Ok::<_, Infallible>(event), feed));
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn conversation_page(
    State(console): State<Console>,
    supervisor: Supervisor,
    Path(id): Path<String>,
) -> Response {
    let (id, view) = match own_conversation(&console, &supervisor, &id).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    conversation_response(&console, &supervisor, id, view, None).await
}

/// The conversation pane, with `error` (a refused action's message) above it.
async fn conversation_response(
    console: &Console,
    supervisor: &Supervisor,
    id: ConversationId,
    view: ConversationView,
    error: Option<(StatusCode, String)>,
) -> Response {
    let history = match console.handover.history(id).await {
        Ok(history) => history,
        Err(error) => return page(status_of(&error), pages::failure(&error.to_string())),
    };
    let (status, error) = match error {
        Some((status, message)) => (status, Some(message)),
        None => (StatusCode::OK, None),
    };
    let markup = pages::conversation_page(
        &console.handover,
        &supervisor.0,
        &view,
        &history,
        error.as_deref(),
    );
    page(status, markup)
}

#[derive(Deserialize)]
struct AfterQuery {
    after: Option<u64>,
}

/// The conversation's events after `after` (or the `Last-Event-ID` the browser sends when it
/// reconnects) as transcript entries, each followed by the header and actions as they stand.
async fn conversation_events(
    State(console): State<Console>,
    supervisor: Supervisor,
    Path(id): Path<String>,
    Query(query): Query<AfterQuery>,
    headers: HeaderMap,
) -> Response {
    let (id, _) = match own_conversation(&console, &supervisor, &id).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let resume = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let after = resume.or(query.after).unwrap_or(0);
    // From the first event: the pending approvals depend on all of it.
    let watch = match console.handover.watch(id).await {
        Ok(watch) => watch,
        Err(error) => return page(status_of(&error), pages::failure(&error.to_string())),
    };
    struct Feed {
        console: Console,
        supervisor: HumanView,
        watch: handover::Watch,
        after: u64,
        seen: Vec<std::sync::Arc<handover::RecordedEvent>>,
        queued: std::collections::VecDeque<SseEvent>,
    }
    let feed = Feed {
        console,
        supervisor: supervisor.0,
        watch,
        after,
        seen: Vec::new(),
        queued: std::collections::VecDeque::new(),
    };
    let stream = futures::stream::unfold(feed, |mut feed| async move {
        loop {
            if let Some(event) = feed.queued.pop_front() {
                return Some((Ok::<_, Infallible>(event), feed));
            }
            let mut stopping = feed.console.stopping.clone();
            let first = tokio::select! {
                next = feed.watch.next() => next?.ok()?,
                () = stopped(&mut stopping) => return None,
            };
            // The events already there with it: one header and actions for a burst.
            let mut batch = vec![first];
            while let Some(Some(Ok(record))) = feed.watch.next().now_or_never() {
                batch.push(record);
            }
            let names = pages::Names::of(&feed.console.handover);
            let mut shown = false;
            for record in batch {
                feed.seen.push(std::sync::Arc::clone(&record));
                if record.seq <= feed.after {
                    continue;
                }
                shown = true;
                let entry = pages::transcript_entry(&names, &record).into_string();
                feed.queued.push_back(
                    SseEvent::default()
                        .event("entry")
                        .id(record.seq.to_string())
                        .data(entry),
                );
            }
            if !shown {
                continue;
            }
            let id = feed.watch.conversation_id();
            if let Ok(view) = feed.console.handover.conversation(id).await {
                let head = pages::pane_head(&feed.console.handover, &view).into_string();
                let actions =
                    pages::actions(&feed.console.handover, &feed.supervisor, &view, &feed.seen)
                        .into_string();
                feed.queued
                    .push_back(SseEvent::default().event("head").data(head));
                feed.queued
                    .push_back(SseEvent::default().event("actions").data(actions));
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

#[derive(Deserialize)]
struct HandOffForm {
    agent: String,
    #[serde(default)]
    reason: String,
}

#[derive(Deserialize)]
struct ReasonForm {
    #[serde(default)]
    reason: String,
}

#[derive(Deserialize)]
struct AssignForm {
    human: String,
}

#[derive(Deserialize)]
struct TransferForm {
    target: String,
    #[serde(default)]
    reason: String,
}

#[derive(Deserialize)]
struct WhisperForm {
    #[serde(default)]
    audience: String,
    text: String,
}

#[derive(Deserialize)]
struct SkillForm {
    skill: String,
    #[serde(default)]
    reason: String,
}

/// An optional reason: blank is none.
fn optional_reason(text: &str) -> Result<Option<Reason>, handover::Error> {
    let text = text.trim();
    if text.is_empty() {
        Ok(None)
    } else {
        Ok(Some(Reason::new(text)?))
    }
}

/// What a form asks of the facade, run as the signed-in supervisor.
enum Action {
    HandOff { agent: String, reason: String },
    Reclaim { reason: String },
    Assign { human: String },
    Transfer { target: String, reason: String },
    Whisper { audience: String, text: String },
    Flag,
    Unflag,
    Approve { skill: String },
    Deny { skill: String, reason: String },
    Close { reason: String },
}

impl Action {
    async fn run(
        self,
        handover: &Handover,
        id: ConversationId,
        by: HumanId,
        tenant: &TenantId,
    ) -> Result<(), handover::Error> {
        match self {
            Action::HandOff { agent, reason } => {
                let agent = AiAgentId::new(agent)?;
                // Another tenant's agent is as unknown as one never registered.
                let foreign = handover
                    .ai_agents()
                    .into_iter()
                    .any(|a| a.profile.id == agent && a.tenant != *tenant);
                if foreign {
                    return Err(
                        handover::Rejection::AiAgentNotRegistered { agent_id: agent }.into(),
                    );
                }
                let mut handoff = handover::HandOff::new(by, agent);
                if let Some(reason) = optional_reason(&reason)? {
                    handoff = handoff.reason(reason);
                }
                handover.hand_off_to_ai_with(id, handoff).await?;
            }
            Action::Reclaim { reason } => {
                handover.reclaim(id, by, optional_reason(&reason)?).await?;
            }
            Action::Assign { human } => {
                handover.assign(id, by, HumanId::new(human)?).await?;
            }
            Action::Transfer { target, reason } => {
                let to = match target.split_once(':') {
                    Some(("human", human)) => TransferTarget::Human(HumanId::new(human)?),
                    Some(("team", team)) => TransferTarget::Team(TeamId::new(team)?),
                    _ => TransferTarget::Team(TeamId::new(target)?),
                };
                handover
                    .transfer(id, by, to, Reason::new(reason.trim())?)
                    .await?;
            }
            Action::Whisper { audience, text } => {
                let to = if audience == "ai" {
                    NoteAudience::Ai
                } else {
                    NoteAudience::Staff
                };
                handover
                    .whisper(id, by, to, MessageText::new(text)?)
                    .await?;
            }
            Action::Flag => {
                handover.raise_flag(id, by).await?;
            }
            Action::Unflag => {
                handover.lower_flag(id, by).await?;
            }
            Action::Approve { skill } => {
                handover
                    .approve_skill(id, by, SkillName::new(skill)?)
                    .await?;
            }
            Action::Deny { skill, reason } => {
                let reason = optional_reason(&reason)?
                    .map_or_else(|| Reason::new("denied by a supervisor"), Ok)?;
                handover
                    .deny_skill(id, by, SkillName::new(skill)?, reason)
                    .await?;
            }
            Action::Close { reason } => {
                handover.close(id, by, optional_reason(&reason)?).await?;
            }
        }
        Ok(())
    }
}

/// Runs an action on a conversation of the supervisor's tenant: back to the pane on success
/// (post/redirect/get), the pane with the refusal's message otherwise.
async fn act(console: Console, supervisor: Supervisor, id: String, action: Action) -> Response {
    let (id, _) = match own_conversation(&console, &supervisor, &id).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let outcome = action
        .run(&console.handover, id, supervisor.id(), supervisor.tenant())
        .await;
    match outcome {
        Ok(()) => Redirect::to(&format!("/c/{id}")).into_response(),
        Err(error) => {
            let status = match status_of(&error) {
                // The conversation is there (checked above): refused, not missing.
                StatusCode::NOT_FOUND => StatusCode::CONFLICT,
                status => status,
            };
            match console.handover.conversation(id).await {
                Ok(view) => {
                    let error = Some((status, error.to_string()));
                    conversation_response(&console, &supervisor, id, view, error).await
                }
                Err(later) => page(status_of(&later), pages::failure(&later.to_string())),
            }
        }
    }
}

async fn hand_off(
    State(console): State<Console>,
    supervisor: Supervisor,
    Path(id): Path<String>,
    Form(form): Form<HandOffForm>,
) -> Response {
    let action = Action::HandOff {
        agent: form.agent,
        reason: form.reason,
    };
    act(console, supervisor, id, action).await
}

async fn reclaim(
    State(console): State<Console>,
    supervisor: Supervisor,
    Path(id): Path<String>,
    Form(form): Form<ReasonForm>,
) -> Response {
    let action = Action::Reclaim {
        reason: form.reason,
    };
    act(console, supervisor, id, action).await
}

async fn assign(
    State(console): State<Console>,
    supervisor: Supervisor,
    Path(id): Path<String>,
    Form(form): Form<AssignForm>,
) -> Response {
    let action = Action::Assign { human: form.human };
    act(console, supervisor, id, action).await
}

async fn transfer(
    State(console): State<Console>,
    supervisor: Supervisor,
    Path(id): Path<String>,
    Form(form): Form<TransferForm>,
) -> Response {
    let action = Action::Transfer {
        target: form.target,
        reason: form.reason,
    };
    act(console, supervisor, id, action).await
}

async fn whisper(
    State(console): State<Console>,
    supervisor: Supervisor,
    Path(id): Path<String>,
    Form(form): Form<WhisperForm>,
) -> Response {
    let action = Action::Whisper {
        audience: form.audience,
        text: form.text,
    };
    act(console, supervisor, id, action).await
}

async fn flag(
    State(console): State<Console>,
    supervisor: Supervisor,
    Path(id): Path<String>,
) -> Response {
    act(console, supervisor, id, Action::Flag).await
}

async fn unflag(
    State(console): State<Console>,
    supervisor: Supervisor,
    Path(id): Path<String>,
) -> Response {
    act(console, supervisor, id, Action::Unflag).await
}

async fn approve(
    State(console): State<Console>,
    supervisor: Supervisor,
    Path(id): Path<String>,
    Form(form): Form<SkillForm>,
) -> Response {
    let action = Action::Approve { skill: form.skill };
    act(console, supervisor, id, action).await
}

async fn deny(
    State(console): State<Console>,
    supervisor: Supervisor,
    Path(id): Path<String>,
    Form(form): Form<SkillForm>,
) -> Response {
    let action = Action::Deny {
        skill: form.skill,
        reason: form.reason,
    };
    act(console, supervisor, id, action).await
}

async fn close(
    State(console): State<Console>,
    supervisor: Supervisor,
    Path(id): Path<String>,
    Form(form): Form<ReasonForm>,
) -> Response {
    let action = Action::Close {
        reason: form.reason,
    };
    act(console, supervisor, id, action).await
}

#[derive(Deserialize)]
struct TenantQuery {
    tenant: Option<String>,
}

async fn sign_in_page(
    State(console): State<Console>,
    Query(query): Query<TenantQuery>,
) -> Response {
    let mut tenants = console.options.tenants.clone();
    if let Some(tenant) = query.tenant.as_deref().map(str::trim) {
        match TenantId::new(tenant) {
            Ok(tenant) if !tenants.contains(&tenant) => tenants.insert(0, tenant),
            Ok(_) => {}
            Err(error) => {
                let markup = pages::sign_in(&console.handover, &tenants, Some(&error.to_string()));
                return page(StatusCode::BAD_REQUEST, markup);
            }
        }
    }
    page(
        StatusCode::OK,
        pages::sign_in(&console.handover, &tenants, None),
    )
}

#[derive(Deserialize)]
struct SignInForm {
    supervisor: String,
}

async fn sign_in(State(console): State<Console>, Form(form): Form<SignInForm>) -> Response {
    let human = HumanId::new(form.supervisor)
        .ok()
        .and_then(|id| console.handover.human(&id))
        .filter(|human| human.role == Role::Supervisor);
    let Some(human) = human else {
        let markup = pages::sign_in(
            &console.handover,
            &console.options.tenants,
            Some("no such supervisor"),
        );
        return page(StatusCode::FORBIDDEN, markup);
    };
    // An offline human may not act: signing in to the console makes the supervisor present,
    // but away, so the router gives them no conversations of their own.
    if human.presence == handover::Presence::Offline {
        if let Err(error) = console
            .handover
            .set_presence(human.id.clone(), handover::Presence::Away)
            .await
        {
            let markup = pages::sign_in(
                &console.handover,
                &console.options.tenants,
                Some(&error.to_string()),
            );
            return page(status_of(&error), markup);
        }
    }
    let cookie = format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Lax",
        percent_encode(human.id.as_str())
    );
    let mut response = Redirect::to("/").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

async fn sign_out() -> Response {
    let mut response = Redirect::to("/sign-in").into_response();
    let cookie = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0");
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// The live query a filter asks for (without a limit: the page says how many there are).
fn live_query(filter: &ListFilter) -> LiveQuery {
    let mut query = LiveQuery::new();
    if let Some(status) = filter.status.as_deref().and_then(LiveStatus::from_label) {
        query = query.status(status);
    }
    if let Some(team) = filter
        .team
        .as_deref()
        .filter(|t| !t.is_empty())
        .and_then(|t| TeamId::new(t).ok())
    {
        query = query.team(team);
    }
    match filter.agent.as_deref().and_then(|a| a.split_once(':')) {
        Some(("ai", id)) => {
            if let Ok(id) = AiAgentId::new(id) {
                query = query.ai_agent(id);
            }
        }
        Some(("human", id)) => {
            if let Ok(id) = HumanId::new(id) {
                query = query.human(id);
            }
        }
        _ => {}
    }
    if filter.flagged.as_deref().is_some_and(|f| !f.is_empty()) {
        query = query.flagged_only();
    }
    query
}
