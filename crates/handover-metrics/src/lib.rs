//! Prometheus metrics for a running [`Handover`]: handoffs, reclaims and escalations by cause
//! and rule, AI containment, conversations by status, queue depth and longest wait, time from
//! an escalation to a human, SLA warnings and breaches, AI reply time and timeouts per agent,
//! acknowledgement latency, the store's appends and syncs, and how far the metrics' own
//! consumer of the log is behind it.
//!
//! A [`HandoverMetrics`] is a small piece a backend mounts in its own axum router
//! ([`HandoverMetrics::router`] serves `GET /metrics` in the Prometheus text format, version
//! 0.0.4), or renders itself ([`HandoverMetrics::render`]). Each instance has its own
//! registry: nothing is global, so two runtimes in one process (or a test beside a backend)
//! never mix their figures.
//!
//! The counters come from the log: the instance reads it from its first event at start, then
//! follows it, so after a restart they count the whole log again, not only what happened since
//! (Prometheus sees a counter reset, which `rate()` handles). The gauges (conversations by
//! status, queues, acknowledgement latency, the store's figures) are read at each scrape.
//! No label carries a conversation's id: tenants, teams, AI agents, causes and rules are the
//! only labels, all bounded by configuration. The whole list is in `docs/metrics.md`.
//!
//! ```no_run
//! # async fn example(handover: handover::Handover) -> Result<(), Box<dyn std::error::Error>> {
//! use handover_metrics::HandoverMetrics;
//!
//! let metrics = HandoverMetrics::new(&handover)?;
//! let app = axum::Router::new()
//!     // ... the backend's own routes ...
//!     .merge(metrics.router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9100").await?;
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```

mod feed;
mod live;

use std::sync::Arc;

use axum::http::header::CONTENT_TYPE;
use handover::Handover;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::registry::Registry;

use crate::feed::{EventMetrics, Feed, Progress};
use crate::live::Live;

/// Why metrics could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// [`HandoverMetrics::new`] was called outside a Tokio runtime: the consumer of the log it
    /// starts needs one.
    #[error("handover metrics must be created inside a Tokio runtime: {0}")]
    NoRuntime(#[from] tokio::runtime::TryCurrentError),
}

/// The metrics of one [`Handover`]: a registry of its own, and a task that counts the log.
/// Clone it freely; the task stops when the last clone is dropped.
///
/// It holds a clone of the `Handover`, as any clone does: the runtime and its data directory
/// are released once the metrics (and a router serving them) are dropped too;
/// [`Handover::shutdown`] stops the runtime whatever clones remain. On several nodes sharing
/// one PostgreSQL log, each node's counters describe the whole log: scrape one node for them,
/// or aggregate the nodes with `max`, not `sum`.
#[derive(Clone)]
pub struct HandoverMetrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    progress: Arc<Progress>,
    task: tokio::task::AbortHandle,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The task holds a clone of the runtime's handle: without this it would keep it alive.
        self.task.abort();
    }
}

impl std::fmt::Debug for HandoverMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandoverMetrics")
            .field("position", &self.position())
            .finish_non_exhaustive()
    }
}

impl HandoverMetrics {
    /// Registers every metric and starts counting `handover`'s log from its first event, on
    /// the current Tokio runtime. The counters reach the log's head once that task has caught
    /// up ([`position`](Self::position)).
    pub fn new(handover: &Handover) -> Result<HandoverMetrics, MetricsError> {
        let runtime = tokio::runtime::Handle::try_current()?;
        let mut registry = Registry::default();
        let progress = Arc::new(Progress::default());
        let events = EventMetrics::register(&mut registry);
        registry.register_collector(Box::new(Live::new(handover.clone(), Arc::clone(&progress))));
        let feed = Feed::new(events, Arc::clone(&progress));
        let task = runtime.spawn(feed.run(handover.clone())).abort_handle();
        Ok(HandoverMetrics {
            inner: Arc::new(Inner {
                registry,
                progress,
                task,
            }),
        })
    }

    /// Every metric in the Prometheus text format (version 0.0.4), as served on `/metrics`.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail, and the collectors only write.
        if let Err(error) = prometheus_text::encode(&mut text, &self.inner.registry) {
            tracing::warn!(%error, "the metrics could not be encoded");
        }
        text
    }

    /// The position of the last event of the log the counters include (0 before the first).
    /// It equals [`Handover::log_head`] once the counters are up to date.
    pub fn position(&self) -> u64 {
        self.inner
            .progress
            .position
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// A router serving `GET /metrics`, to merge into the backend's own:
    /// `app.merge(metrics.router())`. Whatever state the backend's router carries, this one
    /// needs none.
    pub fn router<S>(&self) -> axum::Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let metrics = self.clone();
        axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(CONTENT_TYPE, prometheus_text::CONTENT_TYPE)],
                        metrics.render(),
                    )
                }
            }),
        )
    }
}
