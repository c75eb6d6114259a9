//! The sink against a real HTTPS receiver on 127.0.0.1, whose self-signed certificate is made
//! when the test runs: trusted through `root_certificate_pem`, it gets every event of a real
//! sled log, signed; not trusted, it gets nothing while the sink keeps retrying.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{export_lines, verify_signed, wait_for_stats, PATIENCE, SECRET};
use handover::{
    AgentName, AiAgentId, AiAgentProfile, EventStore, Handover, MessageText, RuntimeSettings,
    SledOptions, SledStore,
};
use handover_webhooks::WebhookSink;
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// One request as the receiver got it.
#[derive(Clone, Debug)]
struct Arrival {
    id: String,
    timestamp: String,
    signature: String,
    content_type: String,
    body: Bytes,
}

/// An HTTPS receiver answering 204 to every request.
#[derive(Default)]
struct Receiver {
    arrivals: Mutex<Vec<Arrival>>,
    /// TLS handshakes that failed: the client refused the certificate, or hung up.
    failed_handshakes: AtomicUsize,
}

impl Receiver {
    /// Serves HTTPS on a new port of 127.0.0.1 with a certificate for `localhost` and
    /// 127.0.0.1, until the test ends; returns the receiver, its address and its certificate
    /// in PEM.
    async fn start() -> (Arc<Receiver>, SocketAddr, String) {
        let certified = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])
        .unwrap();
        let chain = vec![CertificateDer::clone(certified.cert.der())];
        let key =
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
        // The same provider as the sink's (see its `tls_config`).
        #[allow(deprecated)]
        let provider = tokio_rustls::rustls::crypto::ring::default_provider();
        let config = ServerConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let receiver = Arc::new(Receiver::default());
        let serving = Arc::clone(&receiver);
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let acceptor = acceptor.clone();
                let receiver = Arc::clone(&serving);
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        receiver.failed_handshakes.fetch_add(1, Ordering::SeqCst);
                        return;
                    };
                    let service = service_fn(move |request| {
                        let receiver = Arc::clone(&receiver);
                        async move { receiver.receive(request).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        (receiver, address, certified.cert.pem())
    }

    async fn receive(
        &self,
        request: Request<Incoming>,
    ) -> Result<Response<Empty<Bytes>>, hyper::Error> {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .map(|value| value.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        let arrival = Arrival {
            id: header("webhook-id"),
            timestamp: header("webhook-timestamp"),
            signature: header("webhook-signature"),
            content_type: header("content-type"),
            body: Bytes::new(),
        };
        let body = request.into_body().collect().await?.to_bytes();
        self.arrivals
            .lock()
            .unwrap()
            .push(Arrival { body, ..arrival });
        Ok(Response::builder()
            .status(StatusCode::NO_CONTENT)
            .body(Empty::new())
            .unwrap())
    }

    fn arrivals(&self) -> Vec<Arrival> {
        self.arrivals.lock().unwrap().clone()
    }
}

/// The Standard Webhooks check of one arrival (see `common::verify_signed`).
fn verify(arrival: &Arrival) {
    verify_signed(
        &arrival.id,
        &arrival.timestamp,
        &arrival.signature,
        &arrival.content_type,
        &arrival.body,
    );
}

/// A sled log in a temporary directory, written through the runtime.
struct Log {
    _dir: tempfile::TempDir,
    store: Arc<SledStore>,
}

impl Log {
    /// A log holding an AI agent's registration and `conversations` conversations of two
    /// customer messages each.
    async fn with_conversations(conversations: usize) -> Log {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SledStore::open(dir.path(), SledOptions::default()).unwrap());
        let handover = Handover::start_with_store(
            store.clone() as Arc<dyn EventStore>,
            RuntimeSettings::default(),
        )
        .await
        .unwrap();
        handover
            .register_ai_agent(AiAgentProfile {
                id: "faq-bot".parse::<AiAgentId>().unwrap(),
                name: AgentName::new("FAQ bot").unwrap(),
                specialties: vec![],
            })
            .await
            .unwrap();
        for i in 0..conversations {
            let customer = format!("customer-{i}");
            let receipt = handover
                .open_conversation(customer.parse().unwrap(), "web-chat".parse().unwrap(), None)
                .await
                .unwrap();
            for m in 0..2 {
                handover
                    .post_customer_message(
                        receipt.conversation_id,
                        customer.parse().unwrap(),
                        MessageText::new(format!("question {m}")).unwrap(),
                    )
                    .await
                    .unwrap();
            }
        }
        handover.shutdown().await;
        Log { _dir: dir, store }
    }

    /// Every event's CloudEvents line by webhook id, in position order.
    async fn export_lines(&self) -> Vec<(String, Vec<u8>)> {
        export_lines(&*self.store).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_whose_ca_is_added_gets_every_event_over_https_signed() {
    let log = Log::with_conversations(4).await;
    let head = log.store.head();
    assert!(head > 8, "the log holds {head} events");
    let (receiver, address, certificate) = Receiver::start().await;

    // By name, as a real endpoint is: the certificate is checked against `localhost`.
    let sink = WebhookSink::builder(
        format!("https://localhost:{}/events", address.port()),
        SECRET,
    )
    .root_certificate_pem(certificate.as_bytes())
    .unwrap()
    .initial_backoff(Duration::from_millis(5))
    .max_backoff(Duration::from_millis(100))
    .spawn(log.store.clone())
    .unwrap();
    tokio::time::timeout(PATIENCE, sink.wait_until_delivered(head))
        .await
        .expect("gave up waiting: every event delivered")
        .unwrap();
    let stats = sink.shutdown().await.unwrap();
    assert_eq!(stats.position, head);
    assert_eq!(stats.acknowledged, head);
    assert_eq!(stats.failed_attempts, 0);

    // Each event once, in order, its body the export's line, signed.
    let arrivals = receiver.arrivals();
    let expected = log.export_lines().await;
    assert_eq!(arrivals.len(), expected.len());
    for (arrival, (id, line)) in arrivals.iter().zip(&expected) {
        assert_eq!(&arrival.id, id);
        assert_eq!(arrival.body.as_ref(), line.as_slice(), "{id}");
        verify(arrival);
    }
    assert_eq!(receiver.failed_handshakes.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_whose_certificate_is_not_trusted_gets_nothing_and_is_retried() {
    let log = Log::with_conversations(1).await;
    let (receiver, address, _certificate) = Receiver::start().await;

    // By address: the certificate names 127.0.0.1 too, so only the trust is missing.
    let sink = WebhookSink::builder(format!("https://{address}/events"), SECRET)
        .initial_backoff(Duration::from_millis(5))
        .max_backoff(Duration::from_millis(50))
        .spawn(log.store.clone())
        .unwrap();
    wait_for_stats(&sink, "attempts refused by TLS", |stats| {
        stats.failed_attempts >= 2
    })
    .await;
    let stats = sink.shutdown().await.unwrap();
    assert!(stats.failed_attempts >= 2);
    assert_eq!(stats.acknowledged, 0);
    assert_eq!(stats.position, 0);
    assert!(receiver.arrivals().is_empty());
    // The attempts reached the receiver and failed at its certificate, not before; the
    // receiver's side of a handshake may end after the sink's.
    let deadline = Instant::now() + PATIENCE;
    while receiver.failed_handshakes.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "gave up waiting: a failed handshake"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
