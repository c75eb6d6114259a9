//! Why a webhook sink could not start or stopped.

use std::io;

/// Why a [`WebhookSink`](crate::WebhookSink) could not start, or why it stopped.
///
/// A receiver that fails or times out is not an error: the sink keeps retrying it. Neither is a
/// store that cannot be read for a while: the sink retries the read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The endpoint is not an absolute `http://` or `https://` URL with a host.
    #[error("invalid webhook URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The secret is not `whsec_` followed by base64.
    #[error("invalid webhook secret: {0}")]
    InvalidSecret(String),
    /// The checkpoint could not be read or written; the sink stops rather than deliver events
    /// it could not remember delivering.
    #[error("webhook checkpoint: {0}")]
    Checkpoint(#[source] io::Error),
    /// The sink has stopped (shut down, or ended by an error that
    /// [`WebhookHandle::shutdown`](crate::WebhookHandle::shutdown) returns).
    #[error("the webhook sink has stopped")]
    Stopped,
    /// The sink's task panicked.
    #[error("the webhook sink's task panicked")]
    Panicked,
    /// What [`WebhookBuilder::root_certificate_pem`](crate::WebhookBuilder::root_certificate_pem)
    /// was given holds no certificate, or one that cannot be parsed.
    #[error("invalid webhook root certificate: {0}")]
    InvalidCertificate(String),
    /// The TLS client for `https://` endpoints could not be set up.
    #[error("webhook TLS setup: {0}")]
    Tls(String),
}
