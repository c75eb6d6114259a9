//! Handover embedded in a small axum backend: the routes a contact-center UI calls to open a
//! conversation, post messages, pick an AI agent, hand off, reclaim, close, and read a
//! conversation's status and history as JSON.
//!
//! ```text
//! POST /conversations                        {"customer","channel","human"?}   -> 201 {"id"}
//! POST /conversations/{id}/customer-messages {"customer","text"}               -> receipt
//! POST /conversations/{id}/human-messages    {"human","text"}                  -> receipt
//! GET  /ai-agents?specialty=pricing                                            -> active agents
//! POST /conversations/{id}/handoff           {"human","agent_id","reason"?}    -> receipt
//! POST /conversations/{id}/reclaim           {"human","reason"?}               -> receipt
//! POST /conversations/{id}/close             {"customer"|"human","reason"?}    -> receipt
//! GET  /conversations/{id}                                      -> status, customer, human
//! GET  /conversations/{id}/history                                             -> events
//! GET  /conversations/{id}/events?after=SEQ  (waits up to 10 s for a newer one) -> events
//! GET  /metrics                                  -> Prometheus text (handover-metrics)
//! ```
//!
//! `/metrics` is `handover_metrics::HandoverMetrics::router`, merged into this router as any
//! backend would mount it (see `docs/metrics.md`); in production, keep it on a port or path
//! only the monitoring system reaches, since it names tenants, teams and AI agents.
//!
//! Events are JSON in the audit export's shape (`handover_audit::event_json`, specified in
//! `docs/audit-format.md`): `{"position", "stream", "conversation_id", "seq", "recorded_at",
//! "type", "data"}` with snake_case types and `{"kind", "id"}` authors, so a UI reads the live
//! feed and an audit export alike.
//!
//! Every failure is a JSON body `{"error": "..."}`. Errors map through
//! [`handover::Error::is_caller_error`]: the caller's (a rejected command, invalid input, an
//! unknown conversation) are 4xx with the message, the system's are 5xx (`Overloaded` is 503
//! with `Retry-After`: nothing was recorded). A malformed request (a body that is not JSON or
//! lacks a field, a bad query, an unknown route, a wrong method) gets the same JSON shape.
//!
//! `cargo run -p handover-examples --example web_backend -- [--port 3000] [--data DIR]`
//! listens on 127.0.0.1 only. Ctrl-C or SIGTERM stops it gracefully: requests under way finish,
//! the runtime shuts down, and a temporary data directory (without `--data`) is removed.
//! `--self-test` serves on an ephemeral loopback port, drives one handoff and reclaim over
//! HTTP, prints each exchange, and exits 0 if all went as expected.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::FutureExt as _;
use handover::StreamExt as _;
use handover::{
    AiAgentId, Channel, Config, ConversationCommand, ConversationId, CustomerId, Handover, HumanId,
    MessageText, Participant, Reason, Receipt, RecordedEvent, Role, Specialty, Status,
};
use handover_examples::{data_dir, sign_in, start_sample_agents};
use handover_metrics::HandoverMetrics;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Longest a `GET .../events` request waits for a new event.
const EVENTS_WAIT_SECONDS_MAX: u64 = 10;

/// Most characters of a response body the self-test prints.
const SHOWN_BODY_CHARS_MAX: usize = 240;

/// A failed request: the facade's error, or a request axum could not read (a body that is not
/// JSON or lacks a field, a malformed query). Both answer with a JSON body `{"error": ...}`.
enum ApiError {
    /// The facade refused or failed.
    Handover(handover::Error),
    /// The request itself is malformed; axum's rejection says how, with its status.
    Request { status: StatusCode, message: String },
}

impl From<handover::Error> for ApiError {
    fn from(error: handover::Error) -> Self {
        ApiError::Handover(error)
    }
}

impl From<handover::InvalidInput> for ApiError {
    fn from(error: handover::InvalidInput) -> Self {
        ApiError::Handover(error.into())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        ApiError::Request {
            status: rejection.status(),
            message: rejection.body_text(),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::Request {
            status: rejection.status(),
            message: rejection.body_text(),
        }
    }
}

fn error_body(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let error = match self {
            ApiError::Request { status, message } => return error_body(status, message),
            ApiError::Handover(error) => error,
        };
        let status = match &error {
            handover::Error::UnknownConversation(_) => StatusCode::NOT_FOUND,
            handover::Error::InvalidInput(_) => StatusCode::BAD_REQUEST,
            // A rejected command conflicts with the conversation's state (AI-active, closed,
            // kept with humans by the policy, ...).
            error if error.is_caller_error() => StatusCode::CONFLICT,
            handover::Error::Stopped => StatusCode::SERVICE_UNAVAILABLE,
            // Nothing was recorded; the client may send the same request again shortly.
            handover::Error::Overloaded => {
                let mut response = error_body(StatusCode::SERVICE_UNAVAILABLE, error.to_string());
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
                return response;
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        error_body(status, error.to_string())
    }
}

/// A JSON body whose rejection (not JSON, a missing field, the wrong content type) is an
/// [`ApiError`], so it answers in JSON like every other failure.
struct Body<T>(T);

#[axum::async_trait]
impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let Json(value) = Json::<T>::from_request(request, state).await?;
        Ok(Body(value))
    }
}

/// A query string whose rejection is an [`ApiError`], like [`Body`].
struct Query<T>(T);

#[axum::async_trait]
impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Query(value))
    }
}

/// Gives the errors axum answers by itself (no such route, a method the route does not take)
/// the JSON body every other failure has.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/json"));
    if (status.is_client_error() || status.is_server_error()) && !is_json {
        let reason = status.canonical_reason().unwrap_or("request failed");
        return error_body(status, reason.to_lowercase());
    }
    response
}

type ApiResult = Result<Json<Value>, ApiError>;

fn conversation_id(text: &str) -> Result<ConversationId, ApiError> {
    Ok(text.parse::<ConversationId>()?)
}

fn optional_reason(reason: Option<String>) -> Result<Option<Reason>, ApiError> {
    Ok(reason.map(Reason::new).transpose()?)
}

fn status_json(status: &Status) -> Value {
    match status {
        Status::AiActive {
            agent_id,
            agent_name,
            epoch,
        } => json!({
            "label": status.label(),
            "agent_id": agent_id.as_str(),
            "agent_name": agent_name.as_str(),
            "epoch": epoch.0,
        }),
        Status::Reclaimed { by } => json!({ "label": status.label(), "by": by.as_str() }),
        other => json!({ "label": other.label() }),
    }
}

/// An event in the audit export's JSON shape.
fn event_json(record: &RecordedEvent) -> Value {
    // The store never records a time the export cannot write; if it did, the event still
    // shows, with the error in place of its fields.
    handover_audit::event_json(record).unwrap_or_else(|error| json!({ "error": error.to_string() }))
}

fn receipt_json(receipt: &Receipt) -> Json<Value> {
    Json(json!({
        "status": status_json(&receipt.status),
        "events": receipt.events.iter().map(|r| event_json(r)).collect::<Vec<_>>(),
    }))
}

#[derive(Deserialize)]
struct OpenBody {
    customer: String,
    channel: String,
    human: Option<String>,
}

async fn open(
    State(handover): State<Handover>,
    Body(body): Body<OpenBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let human = body.human.map(HumanId::new).transpose()?;
    let id = handover
        .open_conversation(
            CustomerId::new(body.customer)?,
            Channel::new(body.channel)?,
            human,
        )
        .await?
        .conversation_id;
    Ok((StatusCode::CREATED, Json(json!({ "id": id.to_string() }))))
}

#[derive(Deserialize)]
struct CustomerMessage {
    customer: String,
    text: String,
}

async fn customer_message(
    State(handover): State<Handover>,
    Path(id): Path<String>,
    Body(body): Body<CustomerMessage>,
) -> ApiResult {
    let receipt = handover
        .post_customer_message(
            conversation_id(&id)?,
            CustomerId::new(body.customer)?,
            MessageText::new(body.text)?,
        )
        .await?;
    Ok(receipt_json(&receipt))
}

#[derive(Deserialize)]
struct HumanMessage {
    human: String,
    text: String,
}

async fn human_message(
    State(handover): State<Handover>,
    Path(id): Path<String>,
    Body(body): Body<HumanMessage>,
) -> ApiResult {
    let receipt = handover
        .post_human_message(
            conversation_id(&id)?,
            HumanId::new(body.human)?,
            MessageText::new(body.text)?,
        )
        .await?;
    Ok(receipt_json(&receipt))
}

#[derive(Deserialize)]
struct AgentsQuery {
    specialty: Option<String>,
}

async fn active_agents(
    State(handover): State<Handover>,
    Query(query): Query<AgentsQuery>,
) -> ApiResult {
    let specialty = query.specialty.map(Specialty::new).transpose()?;
    let agents: Vec<Value> = handover
        .active_ai_agents(specialty)
        .into_iter()
        .map(|agent| {
            json!({
                "id": agent.profile.id.as_str(),
                "name": agent.profile.name.as_str(),
                "specialties": agent.profile.specialties.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(Value::Array(agents)))
}

#[derive(Deserialize)]
struct HandoffBody {
    human: String,
    agent_id: String,
    reason: Option<String>,
}

async fn hand_off(
    State(handover): State<Handover>,
    Path(id): Path<String>,
    Body(body): Body<HandoffBody>,
) -> ApiResult {
    let receipt = handover
        .hand_off_to_ai(
            conversation_id(&id)?,
            HumanId::new(body.human)?,
            AiAgentId::new(body.agent_id)?,
            optional_reason(body.reason)?,
        )
        .await?;
    Ok(receipt_json(&receipt))
}

#[derive(Deserialize)]
struct ReclaimBody {
    human: String,
    reason: Option<String>,
}

async fn reclaim(
    State(handover): State<Handover>,
    Path(id): Path<String>,
    Body(body): Body<ReclaimBody>,
) -> ApiResult {
    let receipt = handover
        .reclaim(
            conversation_id(&id)?,
            HumanId::new(body.human)?,
            optional_reason(body.reason)?,
        )
        .await?;
    Ok(receipt_json(&receipt))
}

/// Who closes: exactly one of `customer` and `human`.
#[derive(Deserialize)]
struct CloseBody {
    customer: Option<String>,
    human: Option<String>,
    reason: Option<String>,
}

async fn close(
    State(handover): State<Handover>,
    Path(id): Path<String>,
    Body(body): Body<CloseBody>,
) -> Result<Response, ApiError> {
    let id = conversation_id(&id)?;
    let reason = optional_reason(body.reason)?;
    let receipt = match (body.customer, body.human) {
        (Some(customer), None) => {
            let by = Participant::Customer(CustomerId::new(customer)?);
            let close = ConversationCommand::Close { by, reason };
            handover.execute(id, close).await?
        }
        (None, Some(human)) => handover.close(id, HumanId::new(human)?, reason).await?,
        _ => {
            let error = json!({ "error": "give exactly one of \"customer\" and \"human\"" });
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, Json(error)).into_response());
        }
    };
    Ok(receipt_json(&receipt).into_response())
}

async fn conversation(State(handover): State<Handover>, Path(id): Path<String>) -> ApiResult {
    let view = handover.conversation(conversation_id(&id)?).await?;
    Ok(Json(json!({
        "id": view.id.to_string(),
        "status": status_json(&view.status),
        "customer": view.customer.as_str(),
        "human": view.assigned_human.as_ref().map(|h| h.as_str()),
        "version": view.events,
    })))
}

async fn history(State(handover): State<Handover>, Path(id): Path<String>) -> ApiResult {
    let id = conversation_id(&id)?;
    let records = handover.history(id).await?;
    // Every line names the conversation's tenant, as the export writes it.
    let tenant = handover.conversation(id).await?.tenant;
    Ok(Json(Value::Array(
        records
            .iter()
            .map(|record| {
                handover_audit::event_json_in(record, Some(tenant.as_str()))
                    .unwrap_or_else(|error| json!({ "error": error.to_string() }))
            })
            .collect(),
    )))
}

#[derive(Deserialize)]
struct EventsQuery {
    after: Option<u64>,
}

/// The events after `after`: at once if there are any, otherwise the first one to come within
/// [`EVENTS_WAIT_SECONDS_MAX`] (an empty list if none does), so a UI can long-poll.
async fn events(
    State(handover): State<Handover>,
    Path(id): Path<String>,
    Query(query): Query<EventsQuery>,
) -> ApiResult {
    let after = query.after.unwrap_or(0);
    let mut watch = handover.watch_from(conversation_id(&id)?, after).await?;
    let mut newer = Vec::new();
    // What is there already, without waiting.
    while let Some(Some(record)) = watch.next().now_or_never() {
        let record = record.map_err(ApiError::from)?;
        newer.push(event_json(&record));
    }
    if newer.is_empty() {
        let wait = Duration::from_secs(EVENTS_WAIT_SECONDS_MAX);
        // Nothing new within the wait is an empty answer, not an error.
        if let Ok(Some(next)) = tokio::time::timeout(wait, watch.next()).await {
            let record = next.map_err(ApiError::from)?;
            newer.push(event_json(&record));
        }
    }
    Ok(Json(Value::Array(newer)))
}

fn router(handover: Handover, metrics: &HandoverMetrics) -> Router {
    Router::new()
        .route("/conversations", post(open))
        .route("/conversations/:id", get(conversation))
        .route("/conversations/:id/history", get(history))
        .route("/conversations/:id/events", get(events))
        .route(
            "/conversations/:id/customer-messages",
            post(customer_message),
        )
        .route("/conversations/:id/human-messages", post(human_message))
        .route("/conversations/:id/handoff", post(hand_off))
        .route("/conversations/:id/reclaim", post(reclaim))
        .route("/conversations/:id/close", post(close))
        .route("/ai-agents", get(active_agents))
        .merge(metrics.router())
        .fallback(|| async { error_body(StatusCode::NOT_FOUND, "no such route") })
        .layer(axum::middleware::map_response(json_errors))
        .with_state(handover)
}

/// The command line: `--port N`, `--data DIR`, `--self-test`.
struct Options {
    port: u16,
    data: Option<PathBuf>,
    self_test: bool,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        port: 3000,
        data: None,
        self_test: false,
    };
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--port") => {
                let value = args.next().context("--port needs a value")?;
                options.port = value
                    .to_str()
                    .and_then(|v| v.parse().ok())
                    .context("--port must be a number from 0 to 65535")?;
            }
            Some("--data") => {
                options.data = Some(args.next().context("--data needs a value")?.into())
            }
            Some("--self-test") => options.self_test = true,
            _ => bail!(
                "unknown argument {}; expected --port N, --data DIR or --self-test",
                arg.to_string_lossy()
            ),
        }
    }
    Ok(options)
}

fn main() -> ExitCode {
    handover_examples::serve_main(options, serve)
}

async fn serve(options: Options) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let (dir, temp) = data_dir(options.data)?;
    let handover = Handover::start(Config::new(&dir)).await?;
    start_sample_agents(&handover).await?;
    // The human agent the UI signs in as.
    sign_in(&handover, "ana", "Ana", Role::Agent).await?;

    // Loopback only: this example has no authentication.
    let port = if options.self_test { 0 } else { options.port };
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?;
    let address = listener.local_addr()?;
    let metrics = HandoverMetrics::new(&handover)?;
    let server = axum::serve(listener, router(handover.clone(), &metrics));
    // The router holds its own clone: the metrics stop counting once the server is done.
    drop(metrics);
    let outcome = if options.self_test {
        let served = tokio::spawn(async move { server.await });
        let outcome = self_test(address).await;
        served.abort();
        outcome.map(|()| println!("self-test passed"))
    } else {
        println!(
            "listening on http://{address} (data in {}); Ctrl-C stops",
            dir.display()
        );
        let served = server
            .with_graceful_shutdown(handover_examples::shutdown_signal())
            .await;
        println!("stopping: requests under way have finished");
        served.map_err(anyhow::Error::from)
    };
    // The log is closed before its temporary directory goes.
    handover.shutdown().await;
    if let Some(temp) = temp {
        let path = temp.path().to_path_buf();
        temp.close().with_context(|| {
            format!(
                "cannot remove the temporary data directory {}",
                path.display()
            )
        })?;
        if !options.self_test {
            println!("removed the temporary data directory {}", path.display());
        }
    }
    outcome
}

/// One HTTP/1.1 exchange over a fresh connection: the status and the JSON body.
async fn request(
    address: SocketAddr,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<(u16, Value)> {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    request_raw(address, method, path, &body).await
}

/// One HTTP/1.1 exchange with a body sent as it is (JSON or not): the status and the JSON body
/// of the response, which must be JSON whatever the status.
async fn request_raw(
    address: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> anyhow::Result<(u16, Value)> {
    let mut stream = TcpStream::connect(address).await?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let response = String::from_utf8(response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("the response has no header end")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("the response has no status")?;
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).with_context(|| format!("the body is not JSON: {body}"))?
    };
    // Long bodies (histories) are cut for the log; the checks see all of it.
    let shown = body.to_string();
    match shown.char_indices().nth(SHOWN_BODY_CHARS_MAX) {
        Some((cut, _)) => println!("{method} {path} -> {status} {}...", &shown[..cut]),
        None => println!("{method} {path} -> {status} {shown}"),
    }
    Ok((status, body))
}

/// `GET path` over a fresh connection: the status, the content type and the body as text.
async fn get_text(address: SocketAddr, path: &str) -> anyhow::Result<(u16, String, String)> {
    let mut stream = TcpStream::connect(address).await?;
    let head = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("the response has no header end")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("the response has no status")?;
    let content_type = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default();
    Ok((status, content_type, body.to_owned()))
}

/// Sends a request and checks its status.
async fn expect(
    address: SocketAddr,
    method: &str,
    path: &str,
    body: Option<Value>,
    status: u16,
) -> anyhow::Result<Value> {
    let (got, body) = request(address, method, path, body).await?;
    if got != status {
        bail!("{method} {path}: expected {status}, got {got}: {body}");
    }
    Ok(body)
}

/// A customer asks about pricing, the human hands off to the pricing agent, the agent answers,
/// the human cannot post while it is AI-active, reclaims, answers, and closes.
async fn self_test(address: SocketAddr) -> anyhow::Result<()> {
    let agents = expect(address, "GET", "/ai-agents?specialty=pricing", None, 200).await?;
    let agent = agents[0]["id"]
        .as_str()
        .context("no pricing agent")?
        .to_owned();

    let opened = json!({ "customer": "cust-7", "channel": "web-chat", "human": "ana" });
    let opened = expect(address, "POST", "/conversations", Some(opened), 201).await?;
    let id = opened["id"]
        .as_str()
        .context("no conversation id")?
        .to_owned();
    let base = format!("/conversations/{id}");
    let view = expect(address, "GET", &base, None, 200).await?;
    if view["customer"] != "cust-7" || view["human"] != "ana" {
        bail!("the opened conversation reads {view}");
    }

    let question = json!({ "customer": "cust-7", "text": "How much is the Enterprise plan?" });
    expect(
        address,
        "POST",
        &format!("{base}/customer-messages"),
        Some(question),
        200,
    )
    .await?;
    let handoff = json!({ "human": "ana", "agent_id": agent, "reason": "pricing question" });
    let receipt = expect(
        address,
        "POST",
        &format!("{base}/handoff"),
        Some(handoff),
        200,
    )
    .await?;
    if receipt["status"]["label"] != "ai-active" {
        bail!("after the handoff the status is {}", receipt["status"]);
    }

    // Long-poll until the agent's reply arrives.
    let mut seen = receipt["events"][0]["seq"].as_u64().unwrap_or(0);
    let reply = loop {
        let path = format!("{base}/events?after={seen}");
        let events = expect(address, "GET", &path, None, 200).await?;
        let events = events.as_array().context("events are a list")?;
        if events.is_empty() {
            bail!("the AI agent did not answer within {EVENTS_WAIT_SECONDS_MAX} s");
        }
        if let Some(reply) = events
            .iter()
            .find(|e| e["type"] == "message_posted" && e["data"]["author"]["kind"] == "ai")
        {
            break reply["data"]["text"].clone();
        }
        seen = events
            .last()
            .and_then(|e| e["seq"].as_u64())
            .unwrap_or(seen);
    };
    if reply != "The Enterprise plan costs USD 199 per month." {
        bail!("unexpected AI reply {reply}");
    }

    let blocked = json!({ "human": "ana", "text": "Let me add something" });
    expect(
        address,
        "POST",
        &format!("{base}/human-messages"),
        Some(blocked.clone()),
        409,
    )
    .await?;
    let reclaim = json!({ "human": "ana", "reason": "customer wants a quote" });
    let receipt = expect(
        address,
        "POST",
        &format!("{base}/reclaim"),
        Some(reclaim),
        200,
    )
    .await?;
    if receipt["status"]["label"] != "reclaimed" {
        bail!("after the reclaim the status is {}", receipt["status"]);
    }
    expect(
        address,
        "POST",
        &format!("{base}/human-messages"),
        Some(blocked),
        200,
    )
    .await?;
    let close = json!({ "human": "ana", "reason": "quote sent" });
    expect(address, "POST", &format!("{base}/close"), Some(close), 200).await?;

    let view = expect(address, "GET", &base, None, 200).await?;
    if view["status"]["label"] != "closed" {
        bail!("at the end the status is {}", view["status"]);
    }
    let history = expect(address, "GET", &format!("{base}/history"), None, 200).await?;
    let types: Vec<&str> = history
        .as_array()
        .context("history is a list")?
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    let expected = [
        "conversation_opened",
        "human_assigned",
        "message_posted",
        "handed_off_to_ai",
        "customer_notice",
        "ai_action_recorded",
        "message_posted",
        "reclaimed",
        "customer_notice",
        "customer_notice",
        "message_posted",
        "conversation_closed",
    ];
    if types != expected {
        bail!("unexpected history {types:?}");
    }
    // Every event is in the audit export's shape.
    for (seq, event) in (1u64..).zip(history.as_array().context("history is a list")?) {
        let keys: std::collections::BTreeSet<&str> = event
            .as_object()
            .context("an event is an object")?
            .keys()
            .map(String::as_str)
            .collect();
        let shape = [
            "conversation_id",
            "data",
            "position",
            "recorded_at",
            "seq",
            "stream",
            "tenant",
            "type",
        ];
        if keys.into_iter().ne(shape) || event["seq"] != seq || event["conversation_id"] != id {
            bail!("event {seq} is not in the export's shape: {event}");
        }
    }
    if history[11]["data"]["by"] != json!({ "kind": "human", "id": "ana" }) {
        bail!("the close's author is {}", history[11]["data"]["by"]);
    }

    // Malformed requests are answered in JSON too.
    for (method, path, body, status) in [
        ("POST", "/conversations", "{\"customer\": ", 400),
        ("POST", "/conversations", "{\"channel\": \"web-chat\"}", 422),
        ("GET", "/ai-agents?specialty=a&specialty=b", "", 400),
        ("GET", "/no-such-route", "", 404),
        ("DELETE", "/conversations", "", 405),
    ] {
        let (got, answer) = request_raw(address, method, path, body).await?;
        if got != status || !answer["error"].is_string() {
            bail!(
                "{method} {path} {body:?}: expected {status} with a JSON error, got {got} {answer}"
            );
        }
    }

    // The metrics count the handoff and the reclaim once their feed has read them.
    let handoff_line =
        format!("handover_handoffs_total{{tenant=\"default\",ai_agent=\"{agent}\"}} 1");
    let reclaim_line =
        format!("handover_reclaims_total{{tenant=\"default\",ai_agent=\"{agent}\"}} 1");
    let counted = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let (status, content_type, text) = get_text(address, "/metrics").await?;
            if status != 200 || !content_type.starts_with("text/plain") {
                bail!("GET /metrics -> {status} {content_type}");
            }
            if text.lines().any(|l| l == handoff_line) && text.lines().any(|l| l == reclaim_line) {
                println!(
                    "GET /metrics -> {status} ({} lines) with {handoff_line}",
                    text.lines().count()
                );
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    counted.context("the metrics never counted the handoff and the reclaim")??;

    let unknown = "/conversations/0190f5a8-6c1e-7000-8000-000000000000";
    expect(address, "GET", unknown, None, 404).await?;
    expect(address, "GET", "/conversations/not-a-uuid", None, 400).await?;
    let closed = json!({ "customer": "cust-7", "text": "one more thing" });
    expect(
        address,
        "POST",
        &format!("{base}/customer-messages"),
        Some(closed),
        409,
    )
    .await?;
    Ok(())
}
