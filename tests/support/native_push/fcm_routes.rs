//! The HTTP side of [`super::FakeFcm`]:
//! - `POST /token`: Google's JWT-bearer grant for service accounts. The
//!   assertion must be RS256 by a key the fake made (`kid` its
//!   `private_key_id` when given), `iss` the account, `aud` the token URI,
//!   `scope` with `firebase.messaging`, and live at most an hour. Errors
//!   are `400 {"error", "error_description"}`.
//! - `POST /v1/projects/{project}/messages:send`: a live access token of
//!   that project, then the message checked as FCM does (known fields,
//!   `token`, string-valued `data` of at most 4096 bytes counting keys and
//!   values, `android.priority` / `ttl` / `collapse_key`), then the
//!   scripted answer of the registration token. Errors are Google's
//!   `{"error": {"code", "message", "status", "details"}}` with an
//!   `FcmError` detail naming the FCM error code.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use openssl::hash::MessageDigest;
use serde_json::{json, Map, Value};

use super::fcm::{AccessToken, FcmDelivery, ServiceAccount, Shared};
use super::{random_chars, Jwt};
use crate::support::oauth::unix_now;

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const FCM_SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
const FCM_ERROR: &str = "type.googleapis.com/google.firebase.fcm.v1.FcmError";
const BAD_REQUEST: &str = "type.googleapis.com/google.rpc.BadRequest";
/// The largest `data` payload, keys and values counted.
const MAX_DATA: usize = 4096;
/// The longest `android.ttl`: four weeks.
const MAX_TTL: f64 = 2_419_200.0;
/// How far in the future an assertion's `iat` may lie (clock skew).
const SKEW: i64 = 300;

const BODY_FIELDS: &[&str] = &["message", "validate_only", "validateOnly"];
const MESSAGE_FIELDS: &[&str] = &[
    "name",
    "data",
    "notification",
    "android",
    "webpush",
    "apns",
    "fcm_options",
    "fcmOptions",
    "token",
    "topic",
    "condition",
];
const ANDROID_FIELDS: &[&str] = &[
    "collapse_key",
    "collapseKey",
    "priority",
    "ttl",
    "restricted_package_name",
    "restrictedPackageName",
    "data",
    "notification",
    "fcm_options",
    "fcmOptions",
    "direct_boot_ok",
    "directBootOk",
];

pub(super) fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(shared)
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path();
    let project = path
        .strip_prefix("/v1/projects/")
        .and_then(|rest| rest.strip_suffix("/messages:send"))
        .filter(|project| !project.is_empty() && !project.contains('/'));
    let response = match (method, path, project) {
        (Method::POST, "/token", _) => token(&shared, &headers, &body),
        (Method::POST, _, Some(project)) => send(&shared, project, &headers, &body),
        _ => StatusCode::NOT_FOUND.into_response(),
    };
    shared.changed.notify_waiters();
    response
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let content_type = [(header::CONTENT_TYPE, "application/json; charset=UTF-8")];
    (status, content_type, body.to_string()).into_response()
}

/// An OAuth2 error: `error` and `error_description`.
type OAuthError = (&'static str, &'static str);

const BAD_TIMES: OAuthError = (
    "invalid_grant",
    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable \
     timeframe. Check your iat and exp values in the JWT claim.",
);
const BAD_SIGNATURE: OAuthError = ("invalid_grant", "Invalid JWT Signature.");

fn token(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Response {
    match grant(shared, headers, body) {
        Ok(answer) => json_response(StatusCode::OK, &answer),
        Err((error, description)) => {
            let body = json!({"error": error, "error_description": description});
            json_response(StatusCode::BAD_REQUEST, &body)
        }
    }
}

fn grant(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Result<Value, OAuthError> {
    let content_type = headers.get(header::CONTENT_TYPE);
    let content_type = content_type.and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return Err(("invalid_request", "expected a form body"));
    }
    let fields: HashMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    if fields.get("grant_type").map(String::as_str) != Some(JWT_BEARER) {
        return Err(("unsupported_grant_type", "Invalid grant_type"));
    }
    let assertion = fields.get("assertion");
    let assertion =
        assertion.ok_or(("invalid_request", "Missing required parameter: assertion"))?;
    let jwt = Jwt::parse(assertion).ok_or(("invalid_grant", "Invalid JWT: malformed"))?;
    let project = verify_assertion(shared, &jwt)?;
    Ok(issue(shared, project))
}

/// The assertion's claims and signature; the project of its account.
fn verify_assertion(shared: &Shared, jwt: &Jwt) -> Result<String, OAuthError> {
    if jwt.header_str("alg") != Some("RS256") {
        return Err(BAD_SIGNATURE);
    }
    if jwt.claim_str("aud") != Some(shared.token_uri.as_str()) {
        return Err(("invalid_grant", "Invalid JWT: Failed audience check."));
    }
    let scope = jwt.claim_str("scope").unwrap_or("");
    if !scope.split(' ').any(|s| s == FCM_SCOPE) {
        let description = "Invalid OAuth scope or ID token audience provided.";
        return Err(("invalid_scope", description));
    }
    check_times(jwt)?;
    let iss = jwt.claim_str("iss").unwrap_or("");
    let recorded = shared.lock();
    let mut accounts = recorded
        .accounts
        .iter()
        .filter(|a| a.email == iss)
        .peekable();
    if accounts.peek().is_none() {
        return Err(("invalid_grant", "Invalid grant: account not found"));
    }
    let kid = jwt.header_str("kid");
    let mut candidates = accounts.filter(|a| kid.is_none_or(|kid| a.key_id == kid));
    let account = candidates
        .find(|a| signed_by(jwt, a))
        .ok_or(BAD_SIGNATURE)?;
    Ok(account.project.clone())
}

/// `iat` not ahead, `exp` not past, at most an hour apart.
fn check_times(jwt: &Jwt) -> Result<(), OAuthError> {
    let (iat, exp) = (jwt.claim_i64("iat"), jwt.claim_i64("exp"));
    let (Some(iat), Some(exp)) = (iat, exp) else {
        return Err(BAD_TIMES);
    };
    let now = unix_now();
    if iat > now + SKEW || exp <= now || exp <= iat || exp - iat > 3600 {
        return Err(BAD_TIMES);
    }
    Ok(())
}

/// Whether the RS256 (RSASSA-PKCS1-v1_5, SHA-256) signature verifies.
fn signed_by(jwt: &Jwt, account: &ServiceAccount) -> bool {
    let Ok(mut verifier) = openssl::sign::Verifier::new(MessageDigest::sha256(), &account.public)
    else {
        return false;
    };
    verifier
        .verify_oneshot(&jwt.signature, jwt.signed.as_bytes())
        .unwrap_or(false)
}

/// A new access token for `project`, as Google's token endpoint answers.
fn issue(shared: &Shared, project: String) -> Value {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let token = format!("ya29.{}", random_chars(ALPHABET, 120));
    let mut recorded = shared.lock();
    let lifetime = recorded.token_lifetime;
    let expires_at = unix_now() + lifetime as i64;
    let issued = AccessToken {
        project,
        expires_at,
    };
    recorded.tokens.insert(token.clone(), issued);
    recorded.tokens_issued += 1;
    json!({"access_token": token, "expires_in": lifetime, "token_type": "Bearer"})
}

/// A Google API error.
struct GoogleError {
    code: u16,
    /// The canonical status word (`INVALID_ARGUMENT`, `NOT_FOUND`, …).
    status: &'static str,
    message: String,
    /// The `errorCode` of an `FcmError` detail.
    fcm: Option<&'static str>,
    /// A `BadRequest` field violation: field and description.
    violation: Option<Box<(String, String)>>,
    retry_after: Option<u64>,
}

impl GoogleError {
    fn new(code: u16, status: &'static str, message: impl Into<String>) -> GoogleError {
        GoogleError {
            code,
            status,
            message: message.into(),
            fcm: None,
            violation: None,
            retry_after: None,
        }
    }

    /// A 400 about the JSON itself (no `FcmError` detail, as Google).
    fn bad_json(field: &str, message: String) -> GoogleError {
        let mut error = GoogleError::new(400, "INVALID_ARGUMENT", message.clone());
        error.violation = Some(Box::new((field.to_owned(), message)));
        error
    }

    /// A 400 about the message's content, with an `FcmError` detail.
    fn invalid_argument(field: &str, message: impl Into<String>) -> GoogleError {
        let mut error = GoogleError::bad_json(field, message.into());
        error.fcm = Some("INVALID_ARGUMENT");
        error
    }

    fn unauthenticated() -> GoogleError {
        let message = "Request had invalid authentication credentials. Expected OAuth 2 access \
             token, login cookie or other valid authentication credential.";
        GoogleError::new(401, "UNAUTHENTICATED", message)
    }

    /// What Google answers for a scripted FCM error code.
    fn scripted(code: u16, word: &'static str) -> GoogleError {
        let (status, message) = match word {
            "UNAUTHENTICATED" => return GoogleError::unauthenticated(),
            "UNREGISTERED" => ("NOT_FOUND", "Requested entity was not found."),
            "INVALID_ARGUMENT" => (
                "INVALID_ARGUMENT",
                "The registration token is not a valid FCM registration token",
            ),
            "SENDER_ID_MISMATCH" => ("PERMISSION_DENIED", "SenderId mismatch"),
            "QUOTA_EXCEEDED" => ("RESOURCE_EXHAUSTED", "Quota exceeded for this device."),
            "UNAVAILABLE" => ("UNAVAILABLE", "The service is currently unavailable."),
            "INTERNAL" => ("INTERNAL", "Internal error encountered."),
            "THIRD_PARTY_AUTH_ERROR" => ("UNAUTHENTICATED", "Auth error from APNS or Web Push"),
            _ => (canonical_status(code), "Scripted error."),
        };
        let mut error = GoogleError::new(code, status, message);
        error.fcm = Some(word);
        error
    }
}

fn canonical_status(code: u16) -> &'static str {
    match code {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        _ => "INTERNAL",
    }
}

impl IntoResponse for GoogleError {
    fn into_response(self) -> Response {
        let mut details = Vec::new();
        if let Some(code) = self.fcm {
            details.push(json!({"@type": FCM_ERROR, "errorCode": code}));
        }
        if let Some((field, description)) = self.violation.map(|v| *v) {
            let violation = json!({"field": field, "description": description});
            details.push(json!({"@type": BAD_REQUEST, "fieldViolations": [violation]}));
        }
        let mut error = json!({"code": self.code, "message": self.message, "status": self.status});
        if !details.is_empty() {
            error["details"] = details.into();
        }
        let status = StatusCode::from_u16(self.code).expect("a valid status");
        let mut response = json_response(status, &json!({ "error": error }));
        let headers = response.headers_mut();
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, secs.into());
        }
        if self.status == "UNAUTHENTICATED" {
            let challenge =
                "Bearer realm=\"https://accounts.google.com/\", error=\"invalid_token\"";
            let challenge = header::HeaderValue::from_static(challenge);
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

/// Checks, answers and records one send.
fn send(shared: &Shared, project: &str, headers: &HeaderMap, body: &[u8]) -> Response {
    let body: Option<Value> = serde_json::from_slice(body).ok();
    let message = body.as_ref().and_then(|b| b.get("message")).cloned();
    let outcome = authorize(shared, headers, project)
        .and_then(|()| check_body(body.as_ref()))
        .and_then(|token| scripted(shared, token));
    let status = outcome.as_ref().map_or_else(|e| e.code, |()| 200);
    shared.lock().requests.push(FcmDelivery {
        project: project.to_owned(),
        message: message.unwrap_or(Value::Null),
        status,
    });
    match outcome {
        Ok(()) => json_response(StatusCode::OK, &json!({ "name": message_name(project) })),
        Err(error) => error.into_response(),
    }
}

/// `projects/<p>/messages/0:<millis>%<hex>`, the form FCM names messages in.
fn message_name(project: &str) -> String {
    let millis = unix_now() * 1000 + i64::from(rand::random::<u16>() % 1000);
    let id = random_chars(b"0123456789abcdef", 16);
    format!("projects/{project}/messages/0:{millis}%{id}")
}

/// A live access token issued for `project`.
fn authorize(shared: &Shared, headers: &HeaderMap, project: &str) -> Result<(), GoogleError> {
    let value = headers.get(header::AUTHORIZATION);
    let value = value.and_then(|v| v.to_str().ok()).unwrap_or("");
    let bearer = match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => return Err(GoogleError::unauthenticated()),
    };
    let recorded = shared.lock();
    match recorded.tokens.get(bearer) {
        Some(token) if unix_now() >= token.expires_at => Err(GoogleError::unauthenticated()),
        Some(token) if token.project == project => Ok(()),
        Some(_) => Err(GoogleError::new(
            403,
            "PERMISSION_DENIED",
            format!(
                "Permission 'cloudmessaging.messages.create' denied on resource \
                 '//cloudresourcemanager.googleapis.com/projects/{project}' (or it may not exist)."
            ),
        )),
        None => Err(GoogleError::unauthenticated()),
    }
}

/// The scripted answer for `token`, if one is queued and not `200`.
fn scripted(shared: &Shared, token: &str) -> Result<(), GoogleError> {
    let mut recorded = shared.lock();
    let retry_after = recorded.retry_after;
    let next = recorded.answers.get_mut(token).and_then(|q| q.pop_front());
    match next {
        Some((code, word)) if code != 200 => {
            let mut error = GoogleError::scripted(code, word);
            error.retry_after = retry_after;
            Err(error)
        }
        _ => Ok(()),
    }
}

/// The request body; the registration token it is for.
fn check_body(body: Option<&Value>) -> Result<&str, GoogleError> {
    let invalid = || GoogleError::bad_json("", "Invalid JSON payload received.".into());
    let body = body.and_then(Value::as_object).ok_or_else(invalid)?;
    known_fields(body, "", BODY_FIELDS)?;
    let message = body.get("message").and_then(Value::as_object);
    let message =
        message.ok_or_else(|| GoogleError::bad_json("message", "Message is not set.".into()))?;
    known_fields(message, "message", MESSAGE_FIELDS)?;
    let mut data_size = 0;
    if let Some(data) = message.get("data") {
        data_size += check_data(data, "message.data")?;
    }
    if let Some(android) = message.get("android") {
        data_size += check_android(android)?;
    }
    if data_size > MAX_DATA {
        let why = format!("the data payload is {data_size} bytes, more than {MAX_DATA}");
        let mut error = GoogleError::invalid_argument("message.data", why);
        error.message = "Android message is too big".into();
        return Err(error);
    }
    let token = message.get("token").and_then(Value::as_str);
    let token = token.filter(|t| !t.is_empty()).ok_or_else(|| {
        GoogleError::invalid_argument("message.token", "Recipient of the message is not set.")
    })?;
    Ok(token)
}

/// Refuses a name not in `known`, as Google's JSON parser does.
fn known_fields(object: &Map<String, Value>, at: &str, known: &[&str]) -> Result<(), GoogleError> {
    match object.keys().find(|name| !known.contains(&name.as_str())) {
        Some(name) => Err(GoogleError::bad_json(
            at,
            format!("Invalid JSON payload received. Unknown name \"{name}\" at '{at}': Cannot find field."),
        )),
        None => Ok(()),
    }
}

/// A map of strings without reserved keys; its size, keys and values.
fn check_data(data: &Value, at: &str) -> Result<usize, GoogleError> {
    let data = data.as_object().ok_or_else(|| {
        GoogleError::bad_json(at, format!("Invalid value at '{at}': expected a map"))
    })?;
    let mut size = 0;
    for (i, (key, value)) in data.iter().enumerate() {
        let Some(value) = value.as_str() else {
            let field = format!("{at}[{i}].value");
            let why = format!("Invalid value at '{field}' (TYPE_STRING), {value}");
            return Err(GoogleError::bad_json(&field, why));
        };
        if reserved_key(key) {
            let why = format!("Invalid data payload key: {key}");
            return Err(GoogleError::invalid_argument(at, why));
        }
        size += key.len() + value.len();
    }
    Ok(size)
}

fn reserved_key(key: &str) -> bool {
    matches!(key, "from" | "notification" | "message_type")
        || key.starts_with("google.")
        || key.starts_with("gcm.")
}

/// `android`: known fields, priority, TTL, collapse key; its data's size.
fn check_android(android: &Value) -> Result<usize, GoogleError> {
    let at = "message.android";
    let android = android.as_object().ok_or_else(|| {
        GoogleError::bad_json(at, format!("Invalid value at '{at}': expected an object"))
    })?;
    known_fields(android, at, ANDROID_FIELDS)?;
    if let Some(priority) = android.get("priority") {
        let ok = priority
            .as_str()
            .is_some_and(|p| p.eq_ignore_ascii_case("high") || p.eq_ignore_ascii_case("normal"));
        if !ok {
            let why = format!("Invalid value at '{at}.priority' (type.googleapis.com/google.firebase.fcm.v1.AndroidMessagePriority), {priority}");
            return Err(GoogleError::bad_json("message.android.priority", why));
        }
    }
    if let Some(ttl) = android.get("ttl") {
        check_ttl(ttl)?;
    }
    let collapse_key = android.get("collapse_key").or(android.get("collapseKey"));
    if collapse_key.is_some_and(|k| !k.is_string()) {
        let why = format!("Invalid value at '{at}.collapse_key' (TYPE_STRING)");
        return Err(GoogleError::bad_json("message.android.collapse_key", why));
    }
    match android.get("data") {
        Some(data) => check_data(data, "message.android.data"),
        None => Ok(0),
    }
}

/// A protobuf `Duration` in JSON (`"3600s"`, `"1.5s"`), at most 4 weeks.
fn check_ttl(ttl: &Value) -> Result<(), GoogleError> {
    let field = "message.android.ttl";
    let seconds = ttl
        .as_str()
        .and_then(|t| t.strip_suffix('s'))
        .filter(|n| {
            let (whole, fraction) = n.split_once('.').unwrap_or((n, "0"));
            let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            digits(whole) && digits(fraction) && fraction.len() <= 9
        })
        .and_then(|n| n.parse::<f64>().ok());
    match seconds {
        Some(s) if s <= MAX_TTL => Ok(()),
        Some(_) => Err(GoogleError::invalid_argument(
            field,
            "The TTL is longer than the maximum of 4 weeks.",
        )),
        None => Err(GoogleError::bad_json(
            field,
            format!(
                "Invalid value at '{field}' (type.googleapis.com/google.protobuf.Duration), {ttl}"
            ),
        )),
    }
}
