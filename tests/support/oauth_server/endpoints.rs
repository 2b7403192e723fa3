//! The fake authorization server's HTTP endpoints: `/authorize` (approves
//! at once for the set user, PKCE S256 required), `/token` (the
//! authorization code and refresh token grants, client authentication by
//! HTTP Basic or form fields), `/revoke` (RFC 7009) and `/userinfo`.
//! Answers are JSON; errors are `{"error", "error_description"}` with 400,
//! or 401 for a client or token the server does not know.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use super::{live, s256_challenge, unix_now, Code, Grant, Shared, State};

/// Form fields or query parameters by name.
type Form = HashMap<String, String>;

/// An OAuth2 error answer.
#[derive(Debug)]
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
}

impl OAuthError {
    fn new(status: u16, error: &'static str, description: impl Into<String>) -> OAuthError {
        OAuthError {
            status: StatusCode::from_u16(status).expect("valid status"),
            error,
            description: description.into(),
        }
    }

    fn invalid_grant(description: &str) -> OAuthError {
        OAuthError::new(400, "invalid_grant", description)
    }

    fn invalid_request(description: impl Into<String>) -> OAuthError {
        OAuthError::new(400, "invalid_request", description)
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.error, "error_description": self.description});
        let mut response = json_response(self.status, &body);
        if self.status == StatusCode::UNAUTHORIZED {
            let challenge = match self.error {
                "invalid_token" => "Bearer error=\"invalid_token\"",
                _ => "Basic realm=\"fake-as\"",
            };
            let value = HeaderValue::from_static(challenge);
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

/// The router that serves every endpoint from `shared`.
pub(super) fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(shared)
}

/// Records the request, answers it and wakes the waits.
async fn handle(
    axum::extract::State(shared): axum::extract::State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let seen = format!("{method} {}", uri.path());
    shared.lock().requests.push(seen);
    let response =
        route(&shared, &method, &uri, &headers, &body).unwrap_or_else(|e| e.into_response());
    shared.changed.notify_waiters();
    response
}

fn route(
    shared: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, OAuthError> {
    match (method.as_str(), uri.path()) {
        ("GET", "/authorize") => authorize(shared, &form(uri.query().unwrap_or_default())),
        ("GET", "/userinfo") => userinfo(shared, headers),
        ("POST", "/token") => token(shared, headers, &form_body(headers, body)?),
        ("POST", "/revoke") => revoke(shared, headers, &form_body(headers, body)?),
        _ => Ok(StatusCode::NOT_FOUND.into_response()),
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let headers = [
        (header::CONTENT_TYPE, "application/json"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    (status, headers, body.to_string()).into_response()
}

fn form(encoded: &str) -> Form {
    url::form_urlencoded::parse(encoded.as_bytes())
        .into_owned()
        .collect()
}

/// The fields of an `application/x-www-form-urlencoded` body.
fn form_body(headers: &HeaderMap, body: &[u8]) -> Result<Form, OAuthError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return Err(OAuthError::invalid_request("expected a form body"));
    }
    let text = std::str::from_utf8(body).map_err(|_| OAuthError::invalid_request("not UTF-8"))?;
    Ok(form(text))
}

fn required<'a>(fields: &'a Form, name: &str) -> Result<&'a str, OAuthError> {
    fields
        .get(name)
        .map(String::as_str)
        .ok_or_else(|| OAuthError::invalid_request(format!("{name} missing")))
}

/// Redirects to the client's `redirect_uri` with the code or the error.
/// A wrong client or a missing `redirect_uri` is answered here instead
/// (never redirect for an unknown client, RFC 6749 section 4.1.2.1).
fn authorize(shared: &Shared, query: &Form) -> Result<Response, OAuthError> {
    let redirect_uri = required(query, "redirect_uri")?;
    if query.get("client_id") != Some(&shared.client_id) {
        return Err(OAuthError::new(401, "invalid_client", "unknown client_id"));
    }
    let mut params = match approve(shared, query, redirect_uri) {
        Ok(code) => vec![("code", code)],
        Err((error, description)) => vec![
            ("error", error.to_owned()),
            ("error_description", description.to_owned()),
        ],
    };
    if let Some(state) = query.get("state") {
        params.push(("state", state.clone()));
    }
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    let location = format!("{redirect_uri}{separator}{query}");
    Ok((StatusCode::FOUND, [(header::LOCATION, location)]).into_response())
}

/// A code for the signed-in user, or the error to redirect with.
fn approve(
    shared: &Shared,
    query: &Form,
    redirect_uri: &str,
) -> Result<String, (&'static str, &'static str)> {
    if query.get("response_type").map(String::as_str) != Some("code") {
        return Err(("unsupported_response_type", "only code is supported"));
    }
    let challenge = query
        .get("code_challenge")
        .ok_or(("invalid_request", "PKCE code_challenge required"))?;
    if query.get("code_challenge_method").map(String::as_str) != Some("S256") {
        return Err(("invalid_request", "code_challenge_method must be S256"));
    }
    let mut state = shared.lock();
    let email = state
        .user
        .clone()
        .ok_or(("access_denied", "nobody signed in"))?;
    let scope = query.get("scope").cloned().unwrap_or_default();
    Ok(state.new_code(Grant { email, scope }, redirect_uri, Some(challenge)))
}

fn token(shared: &Shared, headers: &HeaderMap, fields: &Form) -> Result<Response, OAuthError> {
    take_scripted_failure(shared)?;
    authenticate_client(shared, headers, fields)?;
    let answer = match fields.get("grant_type").map(String::as_str) {
        Some("authorization_code") => exchange_code(shared, fields)?,
        Some("refresh_token") => refresh(shared, fields)?,
        _ => {
            let expected = "authorization_code or refresh_token";
            return Err(OAuthError::new(400, "unsupported_grant_type", expected));
        }
    };
    Ok(json_response(StatusCode::OK, &answer))
}

/// Fails the request if [`super::FakeAuthServer::fail_token_endpoint`]
/// has failures left.
fn take_scripted_failure(shared: &Shared) -> Result<(), OAuthError> {
    let mut state = shared.lock();
    if state.failures_left == 0 {
        return Ok(());
    }
    state.failures_left -= 1;
    let description = "scripted outage, try again later";
    Err(OAuthError::new(503, "temporarily_unavailable", description))
}

/// Accepts the client's id and secret from `Authorization: Basic`
/// (`client_secret_basic`) or, without that header, from the form
/// (`client_secret_post`).
fn authenticate_client(
    shared: &Shared,
    headers: &HeaderMap,
    fields: &Form,
) -> Result<(), OAuthError> {
    let credentials = match headers.get(header::AUTHORIZATION) {
        Some(value) => basic_credentials(value),
        None => fields
            .get("client_id")
            .cloned()
            .zip(fields.get("client_secret").cloned()),
    };
    match credentials {
        Some((id, secret)) if id == shared.client_id && secret == shared.client_secret => Ok(()),
        _ => Err(OAuthError::new(
            401,
            "invalid_client",
            "client authentication failed",
        )),
    }
}

/// The id and secret of `Authorization: Basic`, each form-decoded as
/// RFC 6749 section 2.3.1 has clients encode them.
fn basic_credentials(value: &HeaderValue) -> Option<(String, String)> {
    let (scheme, encoded) = value.to_str().ok()?.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let decode = |part: &str| form(&format!("v={part}")).remove("v").unwrap_or_default();
    Some((decode(id), decode(secret)))
}

/// The authorization code grant: the code once, with its `redirect_uri`
/// and PKCE verifier; answers tokens, a refresh token and an ID token.
fn exchange_code(shared: &Shared, fields: &Form) -> Result<Value, OAuthError> {
    let code = required(fields, "code")?;
    let mut state = shared.lock();
    let issued = state
        .codes
        .get(code)
        .ok_or_else(|| OAuthError::invalid_grant("unknown or already used code"))?;
    check_code(issued, fields)?;
    let grant = state.codes.remove(code).expect("checked above").grant;
    let mut answer = access_answer(shared, &mut state, &grant);
    answer["id_token"] = id_token(shared, &grant.email).into();
    answer["refresh_token"] = state.new_refresh_token(grant).into();
    Ok(answer)
}

fn check_code(issued: &Code, fields: &Form) -> Result<(), OAuthError> {
    let redirect_uri = fields.get("redirect_uri").map_or("", String::as_str);
    if redirect_uri != issued.redirect_uri {
        return Err(OAuthError::invalid_grant("redirect_uri differs"));
    }
    let Some(challenge) = &issued.challenge else {
        return Ok(());
    };
    match fields.get("code_verifier") {
        Some(verifier)
            if (43..=128).contains(&verifier.len()) && s256_challenge(verifier) == *challenge =>
        {
            Ok(())
        }
        Some(_) => Err(OAuthError::invalid_grant("code_verifier does not match")),
        None => Err(OAuthError::invalid_grant("code_verifier missing")),
    }
}

/// The refresh token grant: a live refresh token of a user not refused;
/// with rotation the answer carries a new refresh token and the old one
/// stops working.
fn refresh(shared: &Shared, fields: &Form) -> Result<Value, OAuthError> {
    let token = required(fields, "refresh_token")?;
    let mut state = shared.lock();
    state.refreshes += 1;
    let grant =
        state.refresh_tokens.get(token).cloned().ok_or_else(|| {
            OAuthError::invalid_grant("unknown, revoked or rotated refresh token")
        })?;
    if state.refused.contains(&grant.email) {
        return Err(OAuthError::invalid_grant("the user withdrew consent"));
    }
    let mut answer = access_answer(shared, &mut state, &grant);
    if state.rotation {
        state.refresh_tokens.remove(token);
        answer["refresh_token"] = state.new_refresh_token(grant).into();
    }
    Ok(answer)
}

/// A new access token for `grant`, as the token endpoint answers it.
fn access_answer(shared: &Shared, state: &mut State, grant: &Grant) -> Value {
    let lifetime = state.access_lifetime;
    let token = shared.signer.token(&grant.email, lifetime);
    let expires_at = unix_now() + lifetime;
    let owner = (grant.email.clone(), expires_at);
    state.access_tokens.insert(token.clone(), owner);
    let mut answer = json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": lifetime,
    });
    if !grant.scope.is_empty() {
        answer["scope"] = grant.scope.clone().into();
    }
    answer
}

/// An OpenID Connect ID token naming the user, for this client.
fn id_token(shared: &Shared, email: &str) -> String {
    let now = unix_now();
    shared.signer.sign(&json!({
        "iss": shared.signer.issuer(),
        "aud": shared.client_id,
        "sub": email,
        "email": email,
        "email_verified": true,
        "iat": now,
        "exp": now + 3600,
    }))
}

/// Records the token and stops it working; unknown tokens too are
/// answered 200 (RFC 7009 section 2.2).
fn revoke(shared: &Shared, headers: &HeaderMap, fields: &Form) -> Result<Response, OAuthError> {
    authenticate_client(shared, headers, fields)?;
    let token = required(fields, "token")?;
    let mut state = shared.lock();
    state.revoked.push(token.to_owned());
    state.refresh_tokens.remove(token);
    state.access_tokens.remove(token);
    Ok(StatusCode::OK.into_response())
}

/// The user of a live access token from this server.
fn userinfo(shared: &Shared, headers: &HeaderMap) -> Result<Response, OAuthError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let state = shared.lock();
    match bearer.and_then(|token| state.access_tokens.get(token)) {
        Some((email, expires_at)) if live(*expires_at) => {
            let body = json!({"sub": email, "email": email, "email_verified": true});
            Ok(json_response(StatusCode::OK, &body))
        }
        _ => Err(OAuthError::new(
            401,
            "invalid_token",
            "unknown or expired access token",
        )),
    }
}
