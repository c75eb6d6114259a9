//! How many events per second a sink delivers to a receiver on the same machine.
//!
//! Writes a log through the runtime first (conversations, each with customer messages), then
//! starts a sink on it and times how long it takes until the receiver acknowledged every
//! event: the sink's own pace (one request at a time, signed, over one kept-alive
//! connection), not the runtime's.
//!
//! ```text
//! cargo run --release -p handover-webhooks --example throughput -- [EVENTS]
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use handover::{
    Durability, EventStore, Handover, MessageText, RuntimeSettings, SledOptions, SledStore,
};
use handover_webhooks::{MemoryCheckpoint, WebhookSink};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let wanted: u64 = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(20_000);
    let dir = tempfile::tempdir()?;
    let options = SledOptions {
        durability: Durability::Buffered,
        ..SledOptions::default()
    };
    let store = Arc::new(SledStore::open(dir.path(), options)?);
    let handover = Handover::start_with_store(
        store.clone() as Arc<dyn EventStore>,
        RuntimeSettings::default(),
    )
    .await?;
    // 100 conversations at a time, 20 messages each: 21 events a conversation.
    let mut customer = 0;
    while store.head() < wanted {
        let mut open = Vec::new();
        for _ in 0..100 {
            customer += 1;
            let id = format!("customer-{customer}").parse::<handover::CustomerId>()?;
            let receipt = handover
                .open_conversation(id.clone(), "web-chat".parse()?, None)
                .await?;
            open.push((receipt.conversation_id, id));
        }
        for m in 0..20 {
            let posts = open.iter().map(|(conversation, id)| {
                handover.post_customer_message(
                    *conversation,
                    id.clone(),
                    MessageText::new(format!("question {m}")).expect("a short text"),
                )
            });
            for posted in futures::future::join_all(posts).await {
                posted?;
            }
        }
    }
    let head = store.head();

    let received = Arc::new(AtomicU64::new(0));
    let app = axum::Router::new()
        .route(
            "/events",
            axum::routing::post(
                |axum::extract::State(received): axum::extract::State<Arc<AtomicU64>>| async move {
                    received.fetch_add(1, Ordering::Relaxed);
                    axum::http::StatusCode::NO_CONTENT
                },
            ),
        )
        .with_state(Arc::clone(&received));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/events", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let started = Instant::now();
    let sink = WebhookSink::builder(url, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        .checkpoint(MemoryCheckpoint::new())
        .spawn(store.clone())?;
    sink.wait_until_delivered(head).await?;
    let elapsed = started.elapsed();
    let stats = sink.shutdown().await?;
    println!(
        "{} events delivered in {:.2} s: {:.0} events/s ({} requests received, {} failed attempts)",
        stats.acknowledged,
        elapsed.as_secs_f64(),
        stats.acknowledged as f64 / elapsed.as_secs_f64(),
        received.load(Ordering::Relaxed),
        stats.failed_attempts,
    );
    handover.shutdown().await;
    Ok(())
}
