//! The sink: follows the log from its checkpoint and delivers each event, one at a time, until
//! the receiver acknowledges it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use handover_audit::{ExportFormat, ExportLines};
use handover_core::StreamId;
use handover_store::{EventStore, RecordedEvent, SeqRange};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::header::{HeaderValue, CONTENT_TYPE, USER_AGENT};
use hyper::{Method, Request, Uri};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rand::Rng as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::checkpoint::Checkpoint;
use crate::error::WebhookError;
use crate::filter::EventFilter;
use crate::secret::WebhookSecret;

/// The `Content-Type` of every delivery: CloudEvents structured mode, JSON event format.
pub const CONTENT_TYPE_CLOUDEVENTS: &str = "application/cloudevents+json";

/// How much of a receiver's answer is read (to reuse the connection); the rest is dropped.
const RESPONSE_BYTES_MAX: usize = 64 * 1024;

/// Delivers a Handover event log to an HTTP endpoint, one signed CloudEvent per request.
///
/// The endpoint is an `http://` or an `https://` URL. Over HTTPS the receiver's certificate is
/// checked against Mozilla's root certificates (the `webpki-roots` crate, not the host's
/// store), and against any CA added with [`WebhookBuilder::root_certificate_pem`].
///
/// Configure it with [`WebhookSink::builder`] and start it with [`WebhookBuilder::spawn`]:
///
/// ```no_run
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// use handover_webhooks::{EventFilter, FileCheckpoint, WebhookSink};
///
/// # async fn demo(store: Arc<dyn handover_store::EventStore>) -> Result<(), handover_webhooks::WebhookError> {
/// let sink = WebhookSink::builder("http://crm.internal/handover-events", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
///     .filter(EventFilter::all().tenants(["acme"]))
///     .checkpoint(FileCheckpoint::new("/var/lib/handover/crm-webhook.checkpoint"))
///     .max_backoff(Duration::from_secs(30))
///     .spawn(store)?;
/// // ... later, before the process exits:
/// let stats = sink.shutdown().await?;
/// println!("{} events delivered", stats.acknowledged);
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct WebhookSink;

impl WebhookSink {
    /// A sink to `url` (an `http://` or `https://` URL) signing with `secret`
    /// (`whsec_<base64>`), delivering every event from the start of the log unless told
    /// otherwise. Both are checked by [`WebhookBuilder::spawn`].
    pub fn builder(url: impl Into<String>, secret: impl Into<String>) -> WebhookBuilder {
        WebhookBuilder {
            url: url.into(),
            secret: secret.into(),
            filter: EventFilter::all(),
            checkpoint: None,
            start_after: 0,
            timeout: Duration::from_secs(10),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
            batch: 256,
            extra_roots: RootCertStore::empty(),
        }
    }
}

/// How a [`WebhookSink`] is set up; see [`WebhookSink::builder`].
pub struct WebhookBuilder {
    url: String,
    secret: String,
    filter: EventFilter,
    checkpoint: Option<Box<dyn Checkpoint>>,
    start_after: u64,
    timeout: Duration,
    initial_backoff: Duration,
    max_backoff: Duration,
    batch: usize,
    /// CA certificates trusted besides Mozilla's roots.
    extra_roots: RootCertStore,
}

impl std::fmt::Debug for WebhookBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookBuilder")
            .field("url", &self.url)
            .field("filter", &self.filter)
            .field("checkpoint", &self.checkpoint.is_some())
            .field("start_after", &self.start_after)
            .field("timeout", &self.timeout)
            .field("initial_backoff", &self.initial_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("batch", &self.batch)
            .field("extra_roots", &self.extra_roots.len())
            .finish_non_exhaustive()
    }
}

impl WebhookBuilder {
    /// Delivers only the events `filter` passes; the others are passed over (and count as
    /// delivered for the checkpoint). Every event by default.
    pub fn filter(mut self, filter: EventFilter) -> WebhookBuilder {
        self.filter = filter;
        self
    }

    /// Remembers progress in `checkpoint` and resumes after the position it holds. Without
    /// one, or while it is empty, the sink starts after [`start_after`](Self::start_after).
    pub fn checkpoint(mut self, checkpoint: impl Checkpoint) -> WebhookBuilder {
        self.checkpoint = Some(Box::new(checkpoint));
        self
    }

    /// Where to start when the checkpoint is empty: after this global position (0, the
    /// default, for the whole log; the store's head for new events only).
    pub fn start_after(mut self, position: u64) -> WebhookBuilder {
        self.start_after = position;
        self
    }

    /// How long one attempt may take, connecting (with the TLS handshake over HTTPS), sending
    /// and reading the answer, before it counts as failed and is retried (10 s by default).
    pub fn timeout(mut self, timeout: Duration) -> WebhookBuilder {
        self.timeout = timeout;
        self
    }

    /// The wait after the first failed attempt (100 ms by default); it doubles with each
    /// failure of the same event, up to [`max_backoff`](Self::max_backoff).
    pub fn initial_backoff(mut self, backoff: Duration) -> WebhookBuilder {
        self.initial_backoff = backoff;
        self
    }

    /// The longest wait between two attempts (30 s by default). Each wait is drawn between
    /// half the doubled figure and the figure, so that sinks do not retry in step.
    pub fn max_backoff(mut self, backoff: Duration) -> WebhookBuilder {
        self.max_backoff = backoff;
        self
    }

    /// How many events are read from the log at a time (256 by default, at least 1); the
    /// checkpoint is saved after each batch.
    pub fn batch(mut self, events: usize) -> WebhookBuilder {
        self.batch = events.max(1);
        self
    }

    /// Trusts the CA certificates in `pem` for `https://` endpoints, besides Mozilla's roots:
    /// for a receiver whose certificate a private CA signed, or a self-signed one (then `pem`
    /// is that certificate). `pem` holds one or more `-----BEGIN CERTIFICATE-----` blocks, as
    /// a `.pem` or `.crt` file does; anything else in it is ignored. May be called again to
    /// add more. Has no effect on `http://` endpoints.
    ///
    /// Fails with [`WebhookError::InvalidCertificate`] if `pem` holds no certificate or one
    /// that cannot be parsed.
    ///
    /// ```no_run
    /// use handover_webhooks::WebhookSink;
    ///
    /// # fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let ca = std::fs::read("/etc/handover/crm-ca.pem")?;
    /// let builder = WebhookSink::builder("https://crm.internal/handover-events", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    ///     .root_certificate_pem(&ca)?;
    /// # Ok(()) }
    /// ```
    pub fn root_certificate_pem(mut self, pem: &[u8]) -> Result<WebhookBuilder, WebhookError> {
        let mut found = 0;
        for certificate in CertificateDer::pem_slice_iter(pem) {
            let certificate =
                certificate.map_err(|error| WebhookError::InvalidCertificate(error.to_string()))?;
            self.extra_roots
                .add(certificate)
                .map_err(|error| WebhookError::InvalidCertificate(error.to_string()))?;
            found += 1;
        }
        if found == 0 {
            return Err(WebhookError::InvalidCertificate(
                "no PEM certificate (-----BEGIN CERTIFICATE-----) found".to_owned(),
            ));
        }
        Ok(self)
    }

    /// Checks the URL and the secret as [`spawn`](Self::spawn) does, without starting
    /// anything: for a program that wants to refuse a bad setting before it does other work.
    pub fn check(&self) -> Result<(), WebhookError> {
        parse_url(&self.url)?;
        WebhookSecret::parse(&self.secret)?;
        Ok(())
    }

    /// Checks the URL and the secret, loads the checkpoint and starts delivering on the
    /// current Tokio runtime (it panics outside one, as `tokio::spawn` does).
    ///
    /// The sink runs until [`WebhookHandle::shutdown`] or until the handle is dropped. It
    /// never gives an event up: a receiver that fails or does not answer is retried, with
    /// backoff, until it acknowledges with a 2xx status.
    pub fn spawn(self, store: Arc<dyn EventStore>) -> Result<WebhookHandle, WebhookError> {
        let endpoint = parse_url(&self.url)?;
        let secret = WebhookSecret::parse(&self.secret)?;
        let mut checkpoint = self.checkpoint;
        let saved = match checkpoint.as_mut() {
            Some(checkpoint) => checkpoint.load().map_err(WebhookError::Checkpoint)?,
            None => None,
        };
        let start = saved.unwrap_or(self.start_after);
        let (progress, watcher) = watch::channel(WebhookStats {
            position: start,
            ..WebhookStats::default()
        });
        let cancel = CancellationToken::new();
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(self.timeout));
        connector.set_nodelay(true);
        // The TLS layer takes `https://` URIs; the TCP connector below it must let them through.
        connector.enforce_http(false);
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(self.extra_roots)?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        let worker = Worker {
            store,
            client,
            endpoint,
            secret,
            filter: self.filter,
            checkpoint: checkpoint.map(|checkpoint| Arc::new(Mutex::new(checkpoint))),
            saved: start,
            lines: ExportLines::new(ExportFormat::CloudEvents),
            tenants: HashMap::new(),
            progress,
            cancel: cancel.clone(),
            timeout: self.timeout,
            initial_backoff: self.initial_backoff,
            max_backoff: self.max_backoff.max(self.initial_backoff),
            batch: self.batch,
        };
        let task = tokio::spawn(worker.run());
        Ok(WebhookHandle {
            watcher,
            cancel,
            task: Some(task),
        })
    }
}

/// The TLS client's setup: rustls on ring, trusting Mozilla's roots and `extra_roots`.
fn tls_config(extra_roots: RootCertStore) -> Result<ClientConfig, WebhookError> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    roots.roots.extend(extra_roots.roots);
    // The provider is named rather than taken from the process-wide default, which another
    // crate in the program may have set differently, or not at all. rustls deprecates ring's
    // for lacking post-quantum key exchange; aws-lc-rs, which has it, needs cmake and NASM.
    #[allow(deprecated)]
    let provider = rustls::crypto::ring::default_provider();
    let config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .map_err(|error| WebhookError::Tls(error.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// Checks that `url` is an absolute `http://` or `https://` URL with a host.
fn parse_url(url: &str) -> Result<Uri, WebhookError> {
    let invalid = |reason: &str| WebhookError::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: Uri = url.parse().map_err(|_| invalid("not a URL"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(invalid("it must start with http:// or https://")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("it names no host"));
    }
    Ok(uri)
}

/// How far a sink has got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WebhookStats {
    /// The global position up to which every event is acknowledged or filtered out.
    pub position: u64,
    /// Events the receiver acknowledged since the sink started.
    pub acknowledged: u64,
    /// Attempts that failed (an error status, no answer in time, no connection) and were
    /// retried.
    pub failed_attempts: u64,
}

/// A running [`WebhookSink`]: where it is, waiting for it, stopping it. Dropping the handle
/// stops the sink without waiting for it.
#[derive(Debug)]
pub struct WebhookHandle {
    watcher: watch::Receiver<WebhookStats>,
    cancel: CancellationToken,
    task: Option<JoinHandle<Result<(), WebhookError>>>,
}

impl WebhookHandle {
    /// The global position up to which every event is acknowledged (or filtered out).
    pub fn delivered(&self) -> u64 {
        self.watcher.borrow().position
    }

    /// How far the sink has got.
    pub fn stats(&self) -> WebhookStats {
        *self.watcher.borrow()
    }

    /// Waits until every event up to `position` is acknowledged (or filtered out); returns at
    /// once if it is already. Fails with [`WebhookError::Stopped`] if the sink stops first.
    pub async fn wait_until_delivered(&self, position: u64) -> Result<(), WebhookError> {
        let mut watcher = self.watcher.clone();
        watcher
            .wait_for(|stats| stats.position >= position)
            .await
            .map(|_| ())
            .map_err(|_| WebhookError::Stopped)
    }

    /// Stops the sink: an attempt under way is abandoned (and made again by the next sink on
    /// the same checkpoint), the checkpoint is saved, and the figures returned. Returns the
    /// error that stopped the sink, if one did.
    pub async fn shutdown(mut self) -> Result<WebhookStats, WebhookError> {
        self.cancel.cancel();
        let task = self.task.take().ok_or(WebhookError::Stopped)?;
        match task.await {
            Ok(result) => result?,
            Err(error) if error.is_panic() => return Err(WebhookError::Panicked),
            Err(_) => return Err(WebhookError::Stopped),
        }
        Ok(*self.watcher.borrow())
    }
}

impl Drop for WebhookHandle {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The task behind a [`WebhookHandle`].
struct Worker {
    store: Arc<dyn EventStore>,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    endpoint: Uri,
    secret: WebhookSecret,
    filter: EventFilter,
    checkpoint: Option<Arc<Mutex<Box<dyn Checkpoint>>>>,
    /// The position the checkpoint holds.
    saved: u64,
    lines: ExportLines,
    /// Each stream's tenant, once its first event was seen; `None` for a stream whose first
    /// event names none.
    tenants: HashMap<StreamId, Option<String>>,
    progress: watch::Sender<WebhookStats>,
    cancel: CancellationToken,
    timeout: Duration,
    initial_backoff: Duration,
    max_backoff: Duration,
    batch: usize,
}

/// The sink was asked to stop.
struct Cancelled;

impl Worker {
    async fn run(mut self) -> Result<(), WebhookError> {
        // Subscribed before the first read, so that nothing recorded after it goes unnoticed.
        let mut live = self.store.subscribe();
        let outcome = self.follow(&mut live).await;
        // Whatever stopped it, keep what was acknowledged.
        let saved = self.save().await;
        outcome.and(saved)
    }

    async fn follow(
        &mut self,
        live: &mut broadcast::Receiver<Arc<RecordedEvent>>,
    ) -> Result<(), WebhookError> {
        loop {
            let next = self.progress.borrow().position + 1;
            let Ok(records) = self.read_all(next).await else {
                return Ok(());
            };
            if records.is_empty() {
                // Caught up: the checkpoint says so before the wait, however long it is.
                self.save().await?;
                if self.wait_for_more(live).await.is_err() {
                    return Ok(());
                }
                continue;
            }
            for record in &records {
                if self.pass(record).await.is_err() {
                    return Ok(());
                }
            }
            self.save().await?;
        }
    }

    /// Waits until the store records something new, however it says so; a lagging
    /// subscription only means there is more to read.
    async fn wait_for_more(
        &self,
        live: &mut broadcast::Receiver<Arc<RecordedEvent>>,
    ) -> Result<(), Cancelled> {
        let received = tokio::select! {
            biased;
            () = self.cancel.cancelled() => return Err(Cancelled),
            received = live.recv() => received,
        };
        if let Err(broadcast::error::RecvError::Closed) = received {
            // The store will record nothing more: wait to be stopped.
            self.cancel.cancelled().await;
            return Err(Cancelled);
        }
        // The log is read from the position anyway: what else is queued adds nothing.
        while !matches!(
            live.try_recv(),
            Err(broadcast::error::TryRecvError::Empty | broadcast::error::TryRecvError::Closed)
        ) {}
        Ok(())
    }

    /// Delivers `record` if the filter passes it, then moves the position past it.
    async fn pass(&mut self, record: &RecordedEvent) -> Result<(), Cancelled> {
        let tenant = self.tenant_of(record).await?;
        let passes = self
            .filter
            .matches(record.event.type_name(), tenant.as_deref());
        let delivered = if passes {
            let mut body = Vec::with_capacity(512);
            match self.lines.write(record, &mut body) {
                Ok(()) => {
                    body.pop(); // the line's `\n`
                    self.deliver(&webhook_id(record), Bytes::from(body)).await?;
                    1
                }
                Err(error) => {
                    // Only a `recorded_at` outside the years 0000 to 9999, which no store
                    // records, keeps an event from its line; it cannot be delivered ever.
                    warn!(position = record.position, %error, "event passed over: it cannot be written as a CloudEvent");
                    0
                }
            }
        } else {
            self.lines.skip(record);
            0
        };
        self.progress.send_modify(|stats| {
            stats.position = record.position;
            stats.acknowledged += delivered;
        });
        Ok(())
    }

    /// The tenant of `record`'s stream, from the stream's first event: read from the store
    /// when the sink starts after it.
    async fn tenant_of(&mut self, record: &RecordedEvent) -> Result<Option<String>, Cancelled> {
        if let Some(tenant) = self.tenants.get(&record.stream) {
            return Ok(tenant.clone());
        }
        let first = if record.seq == 1 {
            record.clone()
        } else {
            let range = SeqRange {
                from: 1,
                to: 1,
                max: 1,
            };
            let stream = record.stream.clone();
            let first = self
                .retry("read the stream's first event", || {
                    let store = Arc::clone(&self.store);
                    let stream = stream.clone();
                    async move { store.read_stream(&stream, range).await }
                })
                .await?;
            match first.into_iter().next() {
                Some(first) => {
                    // The export lines learn the tenant from the first event too.
                    self.lines.skip(&first);
                    first
                }
                None => record.clone(),
            }
        };
        let tenant = handover_audit::event_json(&first)
            .ok()
            .and_then(|json| json.get("tenant")?.as_str().map(str::to_owned));
        self.tenants.insert(record.stream.clone(), tenant.clone());
        Ok(tenant)
    }

    async fn read_all(&self, from: u64) -> Result<Vec<RecordedEvent>, Cancelled> {
        let batch = self.batch;
        self.retry("read the log", || {
            let store = Arc::clone(&self.store);
            async move { store.read_all(from, batch).await }
        })
        .await
    }

    /// Runs `read` until it succeeds, waiting with backoff between failures: a store that
    /// cannot be read for a while (a database restarting) delays the sink, never ends it.
    async fn retry<T, E, F, Fut>(&self, what: &str, mut read: F) -> Result<T, Cancelled>
    where
        E: std::fmt::Display,
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        let mut failures = 0;
        loop {
            let outcome = tokio::select! {
                biased;
                () = self.cancel.cancelled() => return Err(Cancelled),
                outcome = read() => outcome,
            };
            match outcome {
                Ok(value) => return Ok(value),
                Err(error) => {
                    warn!(%error, failures, "webhook sink could not {what}; retrying");
                    self.pause(failures).await?;
                    failures += 1;
                }
            }
        }
    }

    /// Sends one event until the receiver acknowledges it with a 2xx status.
    async fn deliver(&self, id: &str, body: Bytes) -> Result<(), Cancelled> {
        let mut failures = 0;
        loop {
            let attempt = tokio::select! {
                biased;
                () = self.cancel.cancelled() => return Err(Cancelled),
                attempt = tokio::time::timeout(self.timeout, self.attempt(id, body.clone())) => attempt,
            };
            match attempt {
                Ok(Ok(status)) if status.is_success() => return Ok(()),
                Ok(Ok(status)) => {
                    debug!(id, %status, failures, "webhook refused; retrying");
                }
                Ok(Err(error)) => debug!(id, %error, failures, "webhook failed; retrying"),
                Err(_) => debug!(id, failures, "webhook timed out; retrying"),
            }
            if failures == 3 {
                warn!(id, "webhook receiver keeps failing; still retrying");
            }
            self.progress
                .send_modify(|stats| stats.failed_attempts += 1);
            self.pause(failures).await?;
            failures += 1;
        }
    }

    /// One POST of `body`, freshly signed; the answer's status once its body is read.
    async fn attempt(
        &self,
        id: &str,
        body: Bytes,
    ) -> Result<hyper::StatusCode, Box<dyn std::error::Error + Send + Sync>> {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let signature = self.secret.sign(id, timestamp, &body);
        let request = Request::builder()
            .method(Method::POST)
            .uri(self.endpoint.clone())
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static(CONTENT_TYPE_CLOUDEVENTS),
            )
            .header(
                USER_AGENT,
                HeaderValue::from_static(concat!("handover-webhooks/", env!("CARGO_PKG_VERSION"))),
            )
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(Full::new(body))?;
        let response = self.client.request(request).await?;
        let status = response.status();
        // Read the answer so that the connection can carry the next event.
        let _ = Limited::new(response.into_body(), RESPONSE_BYTES_MAX)
            .collect()
            .await;
        Ok(status)
    }

    /// Waits after the `failures`-th failure in a row: `initial_backoff` doubled as many times,
    /// capped at `max_backoff`, drawn between half of that and that.
    async fn pause(&self, failures: u32) -> Result<(), Cancelled> {
        let doubled = self
            .initial_backoff
            .saturating_mul(1u32 << failures.min(20));
        let ceiling = doubled.min(self.max_backoff);
        let wait = rand::thread_rng().gen_range(ceiling / 2..=ceiling);
        tokio::select! {
            biased;
            () = self.cancel.cancelled() => Err(Cancelled),
            () = tokio::time::sleep(wait) => Ok(()),
        }
    }

    /// Saves the position in the checkpoint if it moved.
    async fn save(&mut self) -> Result<(), WebhookError> {
        let position = self.progress.borrow().position;
        let Some(checkpoint) = &self.checkpoint else {
            return Ok(());
        };
        if position == self.saved {
            return Ok(());
        }
        let checkpoint = Arc::clone(checkpoint);
        tokio::task::spawn_blocking(move || {
            let mut checkpoint = checkpoint
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            checkpoint.save(position)
        })
        .await
        .map_err(|_| WebhookError::Panicked)?
        .map_err(WebhookError::Checkpoint)?;
        self.saved = position;
        Ok(())
    }
}

/// The `webhook-id` of `record`: its CloudEvents `id`, `<stream>/<seq>`, with every byte
/// outside visible ASCII and every `%` percent-encoded, so that it fits in a header and stays
/// unique. Only AI-agent and human ids can hold such bytes; for every other stream the two
/// ids are the same text.
pub fn webhook_id(record: &RecordedEvent) -> String {
    let id = format!("{}/{}", record.stream, record.seq);
    let mut out = String::with_capacity(id.len());
    for byte in id.bytes() {
        if (0x21..=0x7e).contains(&byte) && byte != b'%' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use handover_core::{AiAgentEvent, AiAgentId, ConversationId, Event};
    use handover_store::RecordedAt;

    use super::*;

    fn record(stream: StreamId) -> RecordedEvent {
        RecordedEvent {
            stream,
            seq: 3,
            position: 9,
            recorded_at: RecordedAt(1_795_653_037_123_456),
            event: Event::AiAgent(AiAgentEvent::Activated {
                agent_id: AiAgentId::new("faq-bot").unwrap(),
            }),
        }
    }

    #[test]
    fn a_webhook_id_is_the_cloudevents_id_made_fit_for_a_header() {
        let conversation: ConversationId = "0190f1f0-0000-7000-8000-000000000001".parse().unwrap();
        assert_eq!(
            webhook_id(&record(StreamId::Conversation(conversation))),
            "conversation-0190f1f0-0000-7000-8000-000000000001/3"
        );
        let agent = AiAgentId::new("bot ç%").unwrap();
        assert_eq!(
            webhook_id(&record(StreamId::AiAgent(agent))),
            "ai-agent-bot%20%C3%A7%25/3"
        );
    }

    #[test]
    fn only_http_and_https_urls_with_a_host_are_taken() {
        assert!(parse_url("http://127.0.0.1:8080/events").is_ok());
        assert!(parse_url("http://crm.internal").is_ok());
        assert!(parse_url("https://crm.internal/").is_ok());
        assert!(parse_url("https://127.0.0.1:8443/events").is_ok());
        for url in [
            "crm.internal/events",
            "ftp://crm.internal/events",
            "http:///events",
            "https:///events",
            "",
        ] {
            assert!(parse_url(url).is_err(), "{url}");
        }
    }

    #[test]
    fn an_extra_root_must_be_a_pem_certificate() {
        let builder = || {
            WebhookSink::builder(
                "https://crm.internal/",
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            )
        };
        for pem in [
            &b""[..],
            b"not a certificate",
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
        ] {
            assert!(
                matches!(
                    builder().root_certificate_pem(pem),
                    Err(WebhookError::InvalidCertificate(_))
                ),
                "{}",
                String::from_utf8_lossy(pem)
            );
        }
    }

    #[test]
    fn the_tls_client_sets_up_on_ring_without_a_process_default() {
        // hyper-rustls panics on a config with ALPN protocols set.
        let config = tls_config(RootCertStore::empty()).unwrap();
        assert!(config.alpn_protocols.is_empty());
    }
}
