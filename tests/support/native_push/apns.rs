//! [`FakeApns`]: Apple Push Notification service as a provider sees it
//! with token-based authentication. It owns the `.p8` signing keys it
//! made (their public halves), the scripted answers per device token and
//! the record of every request.
//!
//! `POST /3/device/<token>` is checked in Apple's order of concern: the
//! provider token (`authorization: bearer <ES256 JWT>`), the `apns-*`
//! headers, the device token, the payload. Only then is a scripted answer
//! for the device used (so a scripted `403 ExpiredProviderToken` goes to a
//! request with a valid JWT); after the script, `200`. Errors carry
//! `{"reason": …}` as Apple's do. A body that is not a JSON object with an
//! `aps` object gets `400 BadPayload`, a reason of this fake's own: Apple
//! documents none for it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use serde_json::{json, Value};
use tokio::sync::Notify;

use super::{random_chars, random_uuid, wait_until, Jwt, TlsServer};
use crate::support::oauth::unix_now;

/// The largest payload APNs takes for a regular push, in bytes.
const MAX_PAYLOAD: usize = 4096;
/// How long a provider token is honoured after its `iat`.
const TOKEN_LIFETIME: i64 = 3600;
/// How far in the future an `iat` may lie (clock skew).
const SKEW: i64 = 60;

/// Key and team ids: ten characters as Apple issues them.
const ID_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// A request to `/3/device/…` as the fake saw it, and its answer.
#[derive(Debug, Clone)]
pub struct ApnsDelivery {
    pub device_token: String,
    /// `apns-topic` ("" when missing).
    pub topic: String,
    /// `apns-push-type` ("" when missing).
    pub push_type: String,
    pub priority: Option<String>,
    pub expiration: Option<String>,
    pub collapse_id: Option<String>,
    /// The payload (`Value::Null` when it is not JSON).
    pub body: Value,
    /// The status the fake answered with.
    pub status: u16,
}

/// A signing key made by [`FakeApns::make_key`].
struct ProviderKey {
    team_id: String,
    public: VerifyingKey,
}

#[derive(Default)]
struct Recorded {
    /// By key id.
    keys: HashMap<String, ProviderKey>,
    answers: HashMap<String, VecDeque<(u16, &'static str)>>,
    requests: Vec<ApnsDelivery>,
    jwts: Vec<String>,
    /// Provider tokens whose signature checked out (as Apple, which does
    /// not verify the same token again on one connection).
    verified: HashSet<(String, Vec<u8>)>,
}

struct Shared {
    recorded: Mutex<Recorded>,
    /// Woken after every request, so waits need no polling.
    changed: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Recorded> {
        self.recorded.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The fake APNs; stops when dropped.
pub struct FakeApns {
    shared: Arc<Shared>,
    server: TlsServer,
}

impl FakeApns {
    /// HTTP/2 (only, as APNs) over TLS on `127.0.0.1:0`, with the server
    /// certificate in `certs` (a directory `make_certificates` wrote).
    pub async fn start(certs: &Path) -> FakeApns {
        let shared = Arc::new(Shared {
            recorded: Mutex::new(Recorded::default()),
            changed: Notify::new(),
        });
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let server = TlsServer::start(certs, false, |_| router).await;
        FakeApns { shared, server }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// TLS connections accepted so far (a provider keeps one open).
    pub fn connections(&self) -> usize {
        self.server.connections()
    }

    /// Writes a fresh P-256 key into `dir` as Apple's `AuthKey_<id>.p8`
    /// (PKCS#8 PEM with the curve and the public key inside, byte for
    /// byte the layout Apple issues), trusts it for provider tokens and
    /// returns (path, key id, team id).
    pub fn make_key(&self, dir: &Path) -> (PathBuf, String, String) {
        let key = SigningKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
        let key_id = random_chars(ID_CHARS, 10);
        let team_id = random_chars(ID_CHARS, 10);
        let path = dir.join(format!("AuthKey_{key_id}.p8"));
        std::fs::write(&path, apple_p8(&key)).expect("write the .p8 key");
        let public = *key.verifying_key();
        let trusted = ProviderKey {
            team_id: team_id.clone(),
            public,
        };
        self.shared.lock().keys.insert(key_id.clone(), trusted);
        (path, key_id, team_id)
    }

    /// The next well-formed, authenticated requests for `device_token` get
    /// these answers (status, reason) in order; then `200` again.
    /// Replaces any answers still queued for the token.
    pub fn respond_with(
        &self,
        device_token: &str,
        answers: impl IntoIterator<Item = (u16, &'static str)>,
    ) {
        let queue = answers.into_iter().collect();
        let mut recorded = self.shared.lock();
        recorded.answers.insert(device_token.to_owned(), queue);
    }

    /// The requests answered `200`, oldest first.
    pub fn deliveries(&self) -> Vec<ApnsDelivery> {
        let recorded = self.shared.lock();
        let accepted = recorded.requests.iter().filter(|r| r.status == 200);
        accepted.cloned().collect()
    }

    /// Every request to `/3/device/…`, whatever it was answered.
    pub fn requests(&self) -> Vec<ApnsDelivery> {
        self.shared.lock().requests.clone()
    }

    /// Returns once at least `n` requests were answered `200`.
    pub async fn wait_deliveries(&self, n: usize) {
        wait_until(&self.shared.changed, || self.deliveries().len() >= n).await;
    }

    /// Returns once at least `n` requests reached `/3/device/…`.
    pub async fn wait_requests(&self, n: usize) {
        wait_until(&self.shared.changed, || self.requests().len() >= n).await;
    }

    /// The distinct bearer tokens presented (valid or not), in the order
    /// first seen: one per renewal by a well-behaved provider.
    pub fn jwts_seen(&self) -> Vec<String> {
        self.shared.lock().jwts.clone()
    }
}

/// Apple's `.p8` layout: PKCS#8 wrapping an ECPrivateKey that carries
/// the curve OID and the public key.
fn apple_p8(key: &SigningKey) -> String {
    const HEAD: [u8; 36] = [
        0x30, 0x81, 0x93, 0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d,
        0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x04, 0x79, 0x30,
        0x77, 0x02, 0x01, 0x01, 0x04, 0x20,
    ];
    const MIDDLE: [u8; 17] = [
        0xa0, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0xa1, 0x44, 0x03,
        0x42, 0x00,
    ];
    let point = key.verifying_key().to_encoded_point(false);
    let der = [
        &HEAD[..],
        &key.to_bytes()[..],
        &MIDDLE[..],
        point.as_bytes(),
    ]
    .concat();
    let encoded = STANDARD.encode(der);
    let lines: Vec<&str> = encoded
        .as_bytes()
        .chunks(64)
        .map(|line| std::str::from_utf8(line).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    )
}

/// An APNs error: status and reason.
type Refusal = (u16, &'static str);

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let apns_id = headers.get("apns-id").cloned();
    let answer = match (method, uri.path().strip_prefix("/3/device/")) {
        (Method::POST, Some("")) => (400, "MissingDeviceToken"),
        (Method::POST, Some(token)) => push(&shared, token, &headers, &body),
        (_, Some(_)) => (405, "MethodNotAllowed"),
        (_, None) => (404, "BadPath"),
    };
    shared.changed.notify_waiters();
    respond(answer, apns_id)
}

/// Checks, answers and records one push.
fn push(shared: &Shared, token: &str, headers: &HeaderMap, body: &[u8]) -> Refusal {
    let answer = check(shared, token, headers, body)
        .and_then(|()| scripted(shared, token))
        .err()
        .unwrap_or((200, ""));
    let request = ApnsDelivery {
        device_token: token.to_owned(),
        topic: header(headers, "apns-topic").unwrap_or_default(),
        push_type: header(headers, "apns-push-type").unwrap_or_default(),
        priority: header(headers, "apns-priority"),
        expiration: header(headers, "apns-expiration"),
        collapse_id: header(headers, "apns-collapse-id"),
        body: serde_json::from_slice(body).unwrap_or(Value::Null),
        status: answer.0,
    };
    shared.lock().requests.push(request);
    answer
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    let value = headers.get(name)?.to_str().ok()?;
    Some(value.to_owned())
}

/// The next scripted answer for `token`, as an error (`200` is `Ok`).
fn scripted(shared: &Shared, token: &str) -> Result<(), Refusal> {
    let mut recorded = shared.lock();
    let next = recorded
        .answers
        .get_mut(token)
        .and_then(VecDeque::pop_front);
    match next {
        Some(answer) if answer.0 != 200 => Err(answer),
        _ => Ok(()),
    }
}

fn check(shared: &Shared, token: &str, headers: &HeaderMap, body: &[u8]) -> Result<(), Refusal> {
    check_provider_token(shared, headers)?;
    check_headers(headers)?;
    check_device_token(token)?;
    check_payload(body)
}

/// The `authorization: bearer <JWT>` of token-based authentication.
fn check_provider_token(shared: &Shared, headers: &HeaderMap) -> Result<(), Refusal> {
    let Some(value) = headers.get("authorization") else {
        return Err((403, "MissingProviderToken"));
    };
    let value = value.to_str().map_err(|_| (403, "InvalidProviderToken"))?;
    let jwt = match value.split_once(' ') {
        Some((scheme, jwt)) if scheme.eq_ignore_ascii_case("bearer") => jwt.trim(),
        _ => return Err((403, "MissingProviderToken")),
    };
    remember_jwt(shared, jwt);
    let jwt = Jwt::parse(jwt).ok_or((403, "InvalidProviderToken"))?;
    verify_provider_token(shared, &jwt)
}

fn remember_jwt(shared: &Shared, jwt: &str) {
    let mut recorded = shared.lock();
    if !recorded.jwts.iter().any(|seen| seen == jwt) {
        recorded.jwts.push(jwt.to_owned());
    }
}

/// ES256 by a key of ours, `iss` its team, `iat` within the last hour.
fn verify_provider_token(shared: &Shared, jwt: &Jwt) -> Result<(), Refusal> {
    const INVALID: Refusal = (403, "InvalidProviderToken");
    if jwt.header_str("alg") != Some("ES256") {
        return Err(INVALID);
    }
    let kid = jwt.header_str("kid").ok_or(INVALID)?;
    let signature = Signature::from_slice(&jwt.signature).map_err(|_| INVALID)?;
    {
        let recorded = shared.lock();
        let key = recorded.keys.get(kid).ok_or(INVALID)?;
        if jwt.claim_str("iss") != Some(key.team_id.as_str()) {
            return Err(INVALID);
        }
        let token = (jwt.signed.clone(), jwt.signature.clone());
        if !recorded.verified.contains(&token) {
            let public = key.public;
            drop(recorded);
            let verified = public.verify(jwt.signed.as_bytes(), &signature);
            verified.map_err(|_| INVALID)?;
            shared.lock().verified.insert(token);
        }
    }
    let iat = jwt.claim_i64("iat").ok_or(INVALID)?;
    let now = unix_now();
    if iat > now + SKEW {
        return Err(INVALID);
    }
    if now - iat > TOKEN_LIFETIME {
        return Err((403, "ExpiredProviderToken"));
    }
    Ok(())
}

fn check_headers(headers: &HeaderMap) -> Result<(), Refusal> {
    const NAMES: [&str; 6] = [
        "apns-topic",
        "apns-push-type",
        "apns-priority",
        "apns-expiration",
        "apns-collapse-id",
        "apns-id",
    ];
    if NAMES.iter().any(|n| headers.get_all(*n).iter().count() > 1) {
        return Err((400, "DuplicateHeaders"));
    }
    match header(headers, "apns-topic") {
        Some(topic) if !topic.is_empty() => {}
        _ => return Err((400, "MissingTopic")),
    }
    let push_type = header(headers, "apns-push-type");
    if !matches!(push_type.as_deref(), Some("alert" | "background")) {
        return Err((400, "InvalidPushType"));
    }
    check_options(headers)
}

/// The optional headers, when present.
fn check_options(headers: &HeaderMap) -> Result<(), Refusal> {
    let priority = header(headers, "apns-priority");
    if !matches!(priority.as_deref(), None | Some("10" | "5" | "1")) {
        return Err((400, "BadPriority"));
    }
    if let Some(expiration) = header(headers, "apns-expiration") {
        expiration
            .parse::<u64>()
            .map_err(|_| (400, "BadExpirationDate"))?;
    }
    if header(headers, "apns-collapse-id").is_some_and(|id| id.len() > 64) {
        return Err((400, "BadCollapseId"));
    }
    if header(headers, "apns-id").is_some_and(|id| !is_uuid(&id)) {
        return Err((400, "BadMessageId"));
    }
    Ok(())
}

/// 8-4-4-4-12 hex digits.
fn is_uuid(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    lengths == [8, 4, 4, 4, 12]
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Even-length hex, 64 to 200 digits.
fn check_device_token(token: &str) -> Result<(), Refusal> {
    let hex = token.bytes().all(|b| b.is_ascii_hexdigit());
    if hex && token.len() % 2 == 0 && (64..=200).contains(&token.len()) {
        Ok(())
    } else {
        Err((400, "BadDeviceToken"))
    }
}

/// At most 4096 bytes, a JSON object with an `aps` object.
fn check_payload(body: &[u8]) -> Result<(), Refusal> {
    if body.is_empty() {
        return Err((400, "PayloadEmpty"));
    }
    if body.len() > MAX_PAYLOAD {
        return Err((413, "PayloadTooLarge"));
    }
    let payload: Value = serde_json::from_slice(body).map_err(|_| (400, "BadPayload"))?;
    if !payload.get("aps").is_some_and(Value::is_object) {
        return Err((400, "BadPayload"));
    }
    Ok(())
}

/// `200` with an empty body, or the reason as JSON; `apns-id` on both
/// (the request's own, else a new one).
fn respond((status, reason): Refusal, apns_id: Option<HeaderValue>) -> Response {
    let status = StatusCode::from_u16(status).expect("a valid status");
    let mut response = if status == StatusCode::OK {
        status.into_response()
    } else {
        let mut body = json!({ "reason": reason });
        if status == StatusCode::GONE {
            let millis = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock after 1970")
                .as_millis() as u64;
            body["timestamp"] = millis.into();
        }
        let content_type = [("content-type", "application/json; charset=utf-8")];
        (status, content_type, body.to_string()).into_response()
    };
    let apns_id = apns_id.unwrap_or_else(|| random_uuid().parse().expect("a header value"));
    response.headers_mut().insert("apns-id", apns_id);
    response
}
