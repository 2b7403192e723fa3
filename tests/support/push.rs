//! A real Web Push service for integration tests, and devices subscribed to it.
//!
//! [`PushReceiver::start`] serves HTTP on `127.0.0.1:0` and records every
//! request; [`PushReceiver::start_tls`] serves HTTPS, HTTP/2 or HTTP/1.1 by
//! ALPN, as real push services do. Each endpoint path answers from a programmable sequence
//! ([`PushReceiver::respond_with`]), `201 Created` once the sequence is used up.
//! [`TestDevice`] holds a P-256 key pair and auth secret made with the `ece`
//! crate (independent of the gateway's ring code), hands out its subscription
//! as a browser would, and turns delivered requests into [`ReceivedPush`]es:
//! decrypted with `ece`, the VAPID JWT verified with `p256`. Any violation
//! fails the test with a message saying what was wrong.
//!
//! Waits use `tokio::time::timeout`, so do not combine them with a paused
//! clock (`tokio::time::pause`): the runtime would advance past the timeout
//! while the request is still on the loopback socket.
//!
//! ```ignore
//! let receiver = PushReceiver::start().await;
//! let device = TestDevice::new(&receiver);
//! receiver.respond_with(device.path(), [Answer::status(429).retry_after("3"), 201.into()]);
//! // … register device.subscription_json() with the gateway, deliver mail …
//! let push = device.next_push(Duration::from_secs(5)).await;
//! assert_eq!(push.payload["type"], "mail");
//! ```

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, Version};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use lemonade::store::PushSubscription;
use p256::ecdsa::signature::Verifier;
use serde_json::{json, Value};
use tokio::sync::watch;

/// One answer the receiver gives to a request on a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
}

impl Answer {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            retry_after: None,
        }
    }

    /// Adds a `Retry-After` header (seconds or an HTTP-date).
    pub fn retry_after(mut self, value: impl Into<String>) -> Self {
        self.retry_after = Some(value.into());
        self
    }
}

impl From<u16> for Answer {
    fn from(status: u16) -> Self {
        Answer::status(status)
    }
}

/// A request as the receiver saw it, and what it answered.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: Method,
    pub version: Version,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// The status the receiver answered with.
    pub answered: u16,
}

impl RecordedRequest {
    /// A header's value as text, if present and valid.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Whether this request counts as a delivered push.
    pub fn delivered(&self) -> bool {
        self.method == Method::POST && (200..300).contains(&self.answered)
    }
}

#[derive(Default)]
struct Recorded {
    requests: Vec<RecordedRequest>,
    answers: HashMap<String, VecDeque<Answer>>,
}

struct ReceiverState {
    recorded: Mutex<Recorded>,
    /// Bumped on every request, so waiters wake without polling.
    arrivals: watch::Sender<usize>,
}

impl ReceiverState {
    fn lock(&self) -> std::sync::MutexGuard<'_, Recorded> {
        self.recorded
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The test push service. Stops when dropped.
pub struct PushReceiver {
    /// `http` or `https`.
    scheme: &'static str,
    addr: SocketAddr,
    state: Arc<ReceiverState>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for PushReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl PushReceiver {
    /// Starts serving HTTP/1.1 on `127.0.0.1` at a free port.
    pub async fn start() -> Self {
        let (listener, addr) = bind().await;
        let (state, router) = recorder();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            scheme: "http",
            addr,
            state,
            server,
        }
    }

    /// Starts serving HTTPS on `127.0.0.1` at a free port, with the server
    /// certificate `make_certificates` wrote into `certs`, offering the
    /// `alpn` protocols (`h2`, `http/1.1`) and speaking the one agreed.
    pub async fn start_tls(certs: &Path, alpn: &[&[u8]]) -> Self {
        let acceptor = super::certs::tls_acceptor(certs, alpn);

        let (listener, addr) = bind().await;
        let (state, router) = recorder();
        let service = TowerToHyperService::new(router);
        let server = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let service = service.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self {
            scheme: "https",
            addr,
            state,
            server,
        }
    }

    /// `http://127.0.0.1:PORT` (or `https://`), the audience a VAPID JWT must name.
    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// The full URL of `path` (which starts with `/`).
    pub fn url_for(&self, path: &str) -> String {
        format!("{}{path}", self.origin())
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The next requests on `path` are answered with these, in order; after
    /// them, `201` again. Replaces any answers still queued for `path`.
    pub fn respond_with<A: Into<Answer>>(&self, path: &str, answers: impl IntoIterator<Item = A>) {
        let queue = answers.into_iter().map(Into::into).collect();
        self.state.lock().answers.insert(path.to_owned(), queue);
    }

    /// Every request on `path` so far, oldest first.
    pub fn requests_for(&self, path: &str) -> Vec<RecordedRequest> {
        self.state
            .lock()
            .requests
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Every request so far, on any path.
    pub fn all_requests(&self) -> Vec<RecordedRequest> {
        self.state.lock().requests.clone()
    }

    /// Waits until `path` has seen at least `count` requests (any answer).
    pub async fn wait_for_requests(&self, path: &str, count: usize, timeout: Duration) {
        wait_until(&self.state, timeout, || {
            (self.requests_for(path).len() >= count).then_some(())
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "{path} saw {} requests, expected {count} within {timeout:?}",
                self.requests_for(path).len()
            )
        })
    }
}

pub(super) async fn bind() -> (tokio::net::TcpListener, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the push receiver");
    let addr = listener.local_addr().expect("receiver address");
    (listener, addr)
}

/// The state every request is recorded in, and the router that records them.
fn recorder() -> (Arc<ReceiverState>, axum::Router) {
    let state = Arc::new(ReceiverState {
        recorded: Mutex::new(Recorded::default()),
        arrivals: watch::channel(0).0,
    });
    let router = axum::Router::new()
        .fallback(receive)
        .with_state(state.clone());
    (state, router)
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    method: Method,
    version: Version,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let (answer, number) = {
        let mut recorded = state.lock();
        let answer = recorded
            .answers
            .get_mut(&path)
            .and_then(VecDeque::pop_front)
            .unwrap_or(Answer::status(201));
        recorded.requests.push(RecordedRequest {
            method,
            version,
            path,
            headers,
            body: body.to_vec(),
            answered: answer.status,
        });
        (answer, recorded.requests.len())
    };
    state.arrivals.send_modify(|n| *n += 1);

    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = status.into_response();
    let response_headers = response.headers_mut();
    if status == StatusCode::CREATED {
        let location = format!("/message/{number}");
        response_headers.insert("location", location.parse().expect("location header"));
    }
    if let Some(value) = answer.retry_after {
        response_headers.insert("retry-after", value.parse().expect("retry-after header"));
    }
    response
}

/// Re-checks `ready` after every arrival until it gives a value or time is up.
async fn wait_until<T>(
    state: &ReceiverState,
    timeout: Duration,
    mut ready: impl FnMut() -> Option<T>,
) -> Option<T> {
    let mut arrivals = state.arrivals.subscribe();
    let waiting = async {
        loop {
            if let Some(value) = ready() {
                return value;
            }
            if arrivals.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::time::timeout(timeout, waiting).await.ok()
}

/// A push as the device received it: decrypted and verified.
#[derive(Debug, Clone)]
pub struct ReceivedPush {
    /// The plaintext parsed as JSON (`Value::Null` when it is not JSON).
    pub payload: Value,
    /// The decrypted bytes.
    pub plaintext: Vec<u8>,
    pub ttl: Option<u32>,
    pub urgency: Option<String>,
    pub topic: Option<String>,
    /// The `k=` key of the VAPID header (65 bytes), whose signature verified.
    pub vapid_public_key: Vec<u8>,
    /// The JWT claims (`aud`, `exp`, `sub`).
    pub vapid_claims: Value,
    pub request: RecordedRequest,
}

/// A browser or phone subscribed to a [`PushReceiver`].
pub struct TestDevice {
    path: String,
    endpoint: String,
    origin: String,
    keys: ece::crypto::EcKeyComponents,
    auth: [u8; 16],
    state: Arc<ReceiverState>,
    /// Delivered pushes already handed out by `next_push`.
    taken: Mutex<usize>,
    expected_vapid_key: Option<Vec<u8>>,
}

impl TestDevice {
    /// A new device with fresh keys and its own endpoint path on `receiver`.
    pub fn new(receiver: &PushReceiver) -> Self {
        let (pair, auth) = ece::generate_keypair_and_auth_secret().expect("device keys");
        let keys = pair.raw_components().expect("device key components");
        let path = format!("/push/{:016x}", rand::random::<u64>());
        Self {
            endpoint: receiver.url_for(&path),
            origin: receiver.origin(),
            path,
            keys,
            auth,
            state: receiver.state.clone(),
            taken: Mutex::new(0),
            expected_vapid_key: None,
        }
    }

    /// Also require every push to be signed with this VAPID public key (the
    /// `applicationServerKey` the device subscribed with).
    pub fn expecting_vapid_key(mut self, public_key: &[u8]) -> Self {
        self.expected_vapid_key = Some(public_key.to_vec());
        self
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The endpoint's path on the receiver, for `respond_with` and `requests_for`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What `PushSubscription.toJSON()` gives in a browser.
    pub fn subscription_json(&self) -> Value {
        json!({
            "endpoint": self.endpoint,
            "expirationTime": null,
            "keys": {
                "p256dh": URL_SAFE_NO_PAD.encode(self.keys.public_key()),
                "auth": URL_SAFE_NO_PAD.encode(self.auth),
            }
        })
    }

    /// The same subscription as the gateway stores it.
    pub fn subscription(&self) -> PushSubscription {
        PushSubscription {
            endpoint: self.endpoint.clone(),
            p256dh: self.keys.public_key().to_vec(),
            auth: self.auth.to_vec(),
        }
    }

    /// How many pushes were delivered (answered 2xx) to this device so far.
    pub fn push_count(&self) -> usize {
        self.delivered().len()
    }

    /// The next delivered push not yet returned; fails the test after `timeout`.
    pub async fn next_push(&self, timeout: Duration) -> ReceivedPush {
        let taken = *self.taken.lock().expect("taken");
        let request = wait_until(&self.state, timeout, || {
            self.delivered().into_iter().nth(taken)
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "no push #{} reached {} within {timeout:?} ({} requests on the path)",
                taken + 1,
                self.path,
                self.requests().len()
            )
        });
        *self.taken.lock().expect("taken") = taken + 1;
        self.open(request)
    }

    /// Fails the test if a push is delivered within `wait`.
    pub async fn expect_no_push(&self, wait: Duration) {
        let before = self.push_count();
        let more = wait_until(&self.state, wait, || {
            (self.push_count() > before).then_some(())
        })
        .await;
        assert!(more.is_none(), "unexpected push to {}", self.path);
    }

    /// Decrypts one request body with the `ece` crate.
    pub fn decrypt(&self, body: &[u8]) -> Vec<u8> {
        ece::decrypt(&self.keys, &self.auth, body)
            .unwrap_or_else(|err| panic!("push body does not decrypt: {err}"))
    }

    fn requests(&self) -> Vec<RecordedRequest> {
        let recorded = self.state.lock();
        recorded
            .requests
            .iter()
            .filter(|r| r.path == self.path)
            .cloned()
            .collect()
    }

    fn delivered(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.delivered())
            .collect()
    }

    fn open(&self, request: RecordedRequest) -> ReceivedPush {
        assert_eq!(request.header("content-encoding"), Some("aes128gcm"));
        let authorization = request
            .header("authorization")
            .expect("push carries an Authorization header");
        let (vapid_public_key, vapid_claims) = verify_vapid(authorization, &self.origin);
        if let Some(expected) = &self.expected_vapid_key {
            assert_eq!(&vapid_public_key, expected, "signed with another VAPID key");
        }
        let plaintext = self.decrypt(&request.body);
        ReceivedPush {
            payload: serde_json::from_slice(&plaintext).unwrap_or(Value::Null),
            plaintext,
            ttl: request
                .header("ttl")
                .map(|v| v.parse().expect("TTL is a number")),
            urgency: request.header("urgency").map(str::to_owned),
            topic: request.header("topic").map(str::to_owned),
            vapid_public_key,
            vapid_claims,
            request,
        }
    }
}

/// Checks `vapid t=<JWT>, k=<key>` (RFC 8292): the ES256 signature against
/// `k` with `p256`, `aud` equal to `origin`, `exp` in the future and at most
/// 24 hours ahead, `sub` a mailto: or https: URI. Returns the key and claims.
pub fn verify_vapid(authorization: &str, origin: &str) -> (Vec<u8>, Value) {
    let params = authorization
        .strip_prefix("vapid ")
        .unwrap_or_else(|| panic!("not a vapid Authorization header: {authorization}"));
    let mut token = None;
    let mut key = None;
    for param in params.split(',') {
        match param.trim().split_once('=') {
            Some(("t", value)) => token = Some(value),
            Some(("k", value)) => key = Some(value),
            _ => panic!("unexpected vapid parameter {param:?}"),
        }
    }
    let token = token.expect("vapid t= parameter");
    let key = URL_SAFE_NO_PAD
        .decode(key.expect("vapid k= parameter"))
        .expect("k= is base64url without padding");

    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWT has three parts");
    let decode_json = |part: &str| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("JWT part is base64url"))
            .expect("JWT part is JSON")
    };
    assert_eq!(decode_json(parts[0])["alg"], "ES256");
    let verifying_key =
        p256::ecdsa::VerifyingKey::from_sec1_bytes(&key).expect("k= is a P-256 public key");
    let signature = p256::ecdsa::Signature::from_slice(
        &URL_SAFE_NO_PAD
            .decode(parts[2])
            .expect("signature is base64url"),
    )
    .expect("signature is 64 bytes r||s");
    let signed = format!("{}.{}", parts[0], parts[1]);
    verifying_key
        .verify(signed.as_bytes(), &signature)
        .expect("VAPID signature verifies");

    let claims = decode_json(parts[1]);
    assert_eq!(claims["aud"], origin, "aud is the endpoint's origin");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let exp = claims["exp"].as_u64().expect("exp is a number");
    assert!(exp > now, "token expired");
    assert!(exp <= now + 24 * 3600, "exp more than 24 h ahead");
    let sub = claims["sub"].as_str().expect("sub is present");
    assert!(
        sub.starts_with("mailto:") || sub.starts_with("https://"),
        "sub {sub:?} is not a mailto: or https: URI"
    );
    (key, claims)
}
