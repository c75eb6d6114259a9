//! What the sink's tests share: the secret, how long they wait before giving up, the Standard
//! Webhooks check written from the specification, and the export lines a delivery must equal.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use handover::EventStore;
use handover_audit::{ExportFormat, ExportLines};
use handover_webhooks::{WebhookHandle, WebhookStats};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

pub(crate) const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// How long anything may take before the test gives up instead of hanging: far beyond what
/// any step needs, and never asserted on.
pub(crate) const PATIENCE: Duration = Duration::from_secs(120);

/// The Standard Webhooks check, written from the specification rather than with the crate's
/// signer: HMAC-SHA256 keyed with the base64 after `whsec_`, over `{id}.{timestamp}.{body}`,
/// as `v1,<base64>` among space-separated signatures; a timestamp within five minutes; a
/// CloudEvent in structured mode.
pub(crate) fn verify_signed(
    id: &str,
    timestamp: &str,
    signature: &str,
    content_type: &str,
    body: &[u8],
) {
    let key = STANDARD
        .decode(SECRET.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    assert!(
        signature.split(' ').any(|given| given == expected),
        "bad signature {signature:?} for {id}"
    );
    let sent: u64 = timestamp.parse().unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(sent.abs_diff(now) < 300, "timestamp {sent}, now {now}");
    assert_eq!(content_type, "application/cloudevents+json");
}

/// Every event's CloudEvents line, as `handover audit export --format cloudevents` writes it,
/// by webhook id, in position order.
pub(crate) async fn export_lines(store: &dyn EventStore) -> Vec<(String, Vec<u8>)> {
    let records = store.read_all(1, usize::MAX).await.unwrap();
    assert_eq!(records.len() as u64, store.head());
    let mut lines = ExportLines::new(ExportFormat::CloudEvents);
    records
        .iter()
        .map(|record| {
            let mut line = Vec::new();
            lines.write(record, &mut line).unwrap();
            line.pop();
            (handover_webhooks::webhook_id(record), line)
        })
        .collect()
}

/// Waits until the sink's figures satisfy `done`.
pub(crate) async fn wait_for_stats(
    handle: &WebhookHandle,
    what: &str,
    done: impl Fn(WebhookStats) -> bool,
) {
    let deadline = Instant::now() + PATIENCE;
    while !done(handle.stats()) {
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
