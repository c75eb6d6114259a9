//! Webhooks for Handover: every event of the log, or those a filter passes, delivered to an
//! HTTP or HTTPS endpoint as one [CloudEvent](https://cloudevents.io) per request, signed as
//! the [Standard Webhooks](https://www.standardwebhooks.com) specification signs.
//!
//! Over HTTPS the receiver's certificate is checked against Mozilla's roots (built in through
//! `webpki-roots`) and any CA added with
//! [`WebhookBuilder::root_certificate_pem`]; TLS is rustls on the *ring* provider.
//!
//! A [`WebhookSink`] follows an [`EventStore`](handover_store::EventStore): it reads the log
//! from its [`Checkpoint`] on, in global position order, then waits for what the store records
//! next. Each event is one `POST` in CloudEvents structured mode
//! (`Content-Type: application/cloudevents+json`) whose body is the line
//! `handover audit export --format cloudevents` writes for it, so a receiver parses webhooks
//! and exports alike (`docs/audit-format.md`). The headers carry
//! `webhook-id` (the event's stable id, the same on every attempt and every restart),
//! `webhook-timestamp` and `webhook-signature` (`v1,` and the base64 HMAC-SHA256 of
//! `{id}.{timestamp}.{body}`, keyed with the `whsec_` secret).
//!
//! Delivery is at least once and in order: the sink sends one event at a time, in position
//! order (so a conversation's events arrive in `seq` order), and retries each with backoff until
//! the receiver answers 2xx, however long it takes. The checkpoint records how far it got; a
//! sink started again on it resumes there, and may send again the last events before a crash,
//! which the receiver recognises by their `webhook-id`. `docs/webhooks.md` describes the
//! contract for receivers.
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use handover_webhooks::{FileCheckpoint, WebhookSink};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Arc::new(handover::SledStore::open("./data", Default::default())?);
//! let sink = WebhookSink::builder("http://127.0.0.1:8080/events", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
//!     .checkpoint(FileCheckpoint::new("./webhook.checkpoint"))
//!     .spawn(store.clone())?;
//! // Start the runtime on the same store, and run...
//! sink.wait_until_delivered(handover::EventStore::head(&*store)).await?;
//! sink.shutdown().await?;
//! # Ok(()) }
//! ```

mod checkpoint;
mod error;
mod filter;
mod secret;
mod sink;

pub use checkpoint::{Checkpoint, FileCheckpoint, MemoryCheckpoint};
pub use error::WebhookError;
pub use filter::EventFilter;
pub use secret::{WebhookSecret, SECRET_PREFIX};
pub use sink::{
    webhook_id, WebhookBuilder, WebhookHandle, WebhookSink, WebhookStats, CONTENT_TYPE_CLOUDEVENTS,
};
