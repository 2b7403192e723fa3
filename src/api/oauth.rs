//! `/v1/oauth/*` and `POST /v1/accounts {"oauth"}`: signing in through an
//! OAuth2 provider, the gateway being the client.
//!
//! ```text
//!  app ── POST /v1/oauth/start ─────────────→ gateway: state + PKCE verifier kept
//!  browser ── authorize_url ────────────────→ provider (the person signs in)
//!  browser ←─ 302 /v1/oauth/callback?code&state
//!  gateway ── code + verifier + secret ─────→ provider: tokens, the address
//!  gateway ── AUTHENTICATE XOAUTH2 ─────────→ IMAP (and SMTP): account stored
//!  browser ←─ 303 app_redirect_uri?grant=…   (or ?error=…)
//!  app ── POST /v1/oauth/redeem {grant} ────→ 201 {account_id, token}
//! ```
//!
//! An app holding a code for the gateway's client id (Google's
//! `serverAuthCode`) skips the browser part with `POST /v1/accounts`.
//! Either way the same IMAP login is the same account: signing in again
//! revives one whose grant the provider refused, with its devices.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::accounts::{
    check_failed, reserve_registration, store_account, validate_email, Checked, Login,
};
use super::client_ip::ClientIp;
use super::codec::{Body, Format, Query};
use super::error::ApiError;
use super::{messages, AppState};
use crate::config::Provider;
use crate::credentials::oauth_code;
use crate::error_code::ErrorCode;
use crate::imap::{ImapClient, ImapError};
use crate::net::{NetError, Upstream};
use crate::oauth::{Grant, OAuthError, ProviderClient, TicketError, Tokens};
use crate::proto::v1 as pb;
use crate::send::outbox::HELO_NAME;
use crate::smtp::{SmtpClient, SmtpError};
use crate::store::{AccountRecord, OAuthRecord, ServerRecord};

fn provider(state: &AppState, name: &str) -> Result<Arc<ProviderClient>, ApiError> {
    state
        .credentials
        .tokens()
        .providers()
        .get(name)
        .cloned()
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::UnknownProvider,
                format!("no OAuth provider `{name}`; GET /v1/oauth/providers lists them"),
            )
        })
}

/// `GET /v1/oauth/providers`
pub async fn providers(State(state): State<AppState>, format: Format) -> Response {
    let providers = state.credentials.tokens().providers().keys().cloned();
    let answer = pb::ListProvidersResponse {
        providers: providers.collect(),
    };
    format.respond(StatusCode::OK, &answer)
}

/// `POST /v1/oauth/start`
pub async fn start(
    State(state): State<AppState>,
    format: Format,
    Body(input): Body<pb::StartSignInRequest>,
) -> Result<Response, ApiError> {
    let provider = provider(&state, &input.provider)?;
    let allowed = &state.config.oauth.app_redirect_uris;
    if !allowed.contains(&input.app_redirect_uri) {
        return Err(ApiError::new(
            ErrorCode::RedirectNotAllowed,
            "app_redirect_uri is not one of the gateway's oauth.app_redirect_uris",
        ));
    }
    let callback =
        state.config.oauth.callback_url().ok_or_else(|| {
            ApiError::new(ErrorCode::UnknownProvider, "oauth.public_url is not set")
        })?;
    let (authorize_url, expires_at) = state
        .signins
        .start(&provider, &callback, &input.app_redirect_uri)
        .await
        .map_err(oauth_error)?;
    let answer = pb::StartSignInResponse {
        authorize_url,
        expires_at: messages::rfc3339(expires_at),
    };
    Ok(format.respond(StatusCode::OK, &answer))
}

/// What the provider adds to the callback URL; the rest is ignored.
#[derive(Debug, Deserialize)]
pub struct CallbackParams {
    #[serde(default)]
    state: String,
    code: Option<String>,
    error: Option<String>,
    #[allow(dead_code)]
    error_description: Option<String>,
}

/// `GET /v1/oauth/callback`
pub async fn callback(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    Query(params): Query<CallbackParams>,
) -> Result<Response, ApiError> {
    let pending = state
        .signins
        .finish(&params.state)
        .await
        .map_err(|e| match e {
            TicketError::Unknown => ApiError::new(
                ErrorCode::OauthStateInvalid,
                "this sign-in is unknown, finished already or expired; start it again",
            ),
            TicketError::Store(e) => e.into(),
        })?;
    let outcome = match (params.code, params.error) {
        (Some(code), None) => {
            let callback = state.config.oauth.callback_url();
            let verifier = Some(pending.verifier.as_str());
            sign_in(
                &state,
                client,
                &pending.provider,
                &code,
                verifier,
                callback.as_deref(),
                None,
            )
            .await
            .map_err(|e| e.code.as_str().to_string())
        }
        (_, Some(error)) => Err(provider_error(&error)),
        (None, None) => Err("invalid_request".to_string()),
    };
    let query = match outcome {
        Ok((account_id, token)) => {
            let grant = Grant {
                account_id,
                token: token.into(),
            };
            let grant = state.signins.grant(&grant).await.map_err(|e| match e {
                TicketError::Store(e) => ApiError::from(e),
                TicketError::Unknown => ApiError::new(ErrorCode::InternalError, "no grant"),
            })?;
            ("grant", grant)
        }
        Err(code) => {
            tracing::info!(provider = %pending.provider, error = %code, "a sign-in through the browser failed");
            ("error", code)
        }
    };
    Ok(back_to_app(&pending.app_redirect_uri, query))
}

/// The provider's `error` when it is a plain word, else a generic one.
fn provider_error(error: &str) -> String {
    let plain = !error.is_empty()
        && error.len() <= 64
        && error.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    if plain { error } else { "access_denied" }.to_string()
}

/// `303` to the app's redirect URI with one parameter added.
fn back_to_app(app_redirect_uri: &str, (name, value): (&str, String)) -> Response {
    let Ok(mut url) = url::Url::parse(app_redirect_uri) else {
        return ApiError::new(ErrorCode::InternalError, "unusable app_redirect_uri")
            .into_response();
    };
    url.query_pairs_mut().append_pair(name, &value);
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, url.to_string()),
            (header::CACHE_CONTROL, "no-store".to_string()),
            (header::REFERRER_POLICY, "no-referrer".to_string()),
        ],
    )
        .into_response()
}

/// `POST /v1/oauth/redeem`
pub async fn redeem(
    State(state): State<AppState>,
    format: Format,
    Body(input): Body<pb::RedeemGrantRequest>,
) -> Result<Response, ApiError> {
    let grant = state
        .signins
        .redeem(&input.grant)
        .await
        .map_err(|e| match e {
            TicketError::Unknown => ApiError::new(
                ErrorCode::OauthGrantInvalid,
                "this grant is unknown, redeemed already or expired; sign in again",
            ),
            TicketError::Store(e) => e.into(),
        })?;
    let answer = pb::CreateAccountResponse {
        account_id: grant.account_id,
        token: grant.token.to_string(),
    };
    Ok(format.respond(StatusCode::CREATED, &answer))
}

/// `POST /v1/accounts {"email", "oauth": {...}}`
pub(super) async fn register_with_code(
    state: AppState,
    client: IpAddr,
    format: Format,
    email: String,
    code: pb::OAuthCode,
) -> Result<Response, ApiError> {
    if !validate_email(&email) {
        return Err(ApiError::new(
            ErrorCode::InvalidEmail,
            "email is not a valid address",
        ));
    }
    let (account_id, token) = sign_in(
        &state,
        client,
        &code.provider,
        &code.code,
        code.code_verifier.as_deref(),
        code.redirect_uri.as_deref(),
        Some(&email),
    )
    .await?;
    let answer = pb::CreateAccountResponse { account_id, token };
    Ok(format.respond(StatusCode::CREATED, &answer))
}

/// Exchanges the code, logs in to the provider's servers with the access
/// token, and stores the account; answers its id and a new API token.
/// With `expected_email`, the address that signed in must be that one.
/// A grant that leads to no account is handed back (revoked).
async fn sign_in(
    state: &AppState,
    client: IpAddr,
    provider_name: &str,
    code: &str,
    verifier: Option<&str>,
    redirect_uri: Option<&str>,
    expected_email: Option<&str>,
) -> Result<(String, String), ApiError> {
    let provider = provider(state, provider_name)?;
    let signed_in = exchange(&provider, code, verifier, redirect_uri).await?;
    if expected_email.is_some_and(|e| !e.eq_ignore_ascii_case(&signed_in.email)) {
        let _ = provider.revoke(&signed_in.refresh).await;
        return Err(ApiError::new(
            ErrorCode::OauthEmailMismatch,
            format!(
                "the provider signed in {}, not the address given",
                signed_in.email
            ),
        ));
    }
    let settings = provider.provider();
    let login = Login {
        host: &settings.imap.host,
        port: settings.imap.port,
        username: &signed_in.email,
    };
    let reservation = reserve_registration(state, client, &login).await?;
    if let Err(e) = check_token_login(state, settings, &signed_in).await {
        let _ = provider.revoke(&signed_in.refresh).await;
        return Err(e);
    }
    let state = state.clone();
    super::to_completion(async move {
        let email = &signed_in.email;
        let record = |id: &str, existing: Option<&AccountRecord>| {
            account_record(&state, provider.provider(), &signed_in, id, existing)
        };
        let settings = provider.provider();
        let login = Login {
            host: &settings.imap.host,
            port: settings.imap.port,
            username: email,
        };
        let stored = store_account(&state, &login, reservation, record).await?;
        let tokens = state.credentials.tokens();
        tokens.keep(&stored.0, &signed_in.tokens).await;
        Ok(stored)
    })
    .await
}

/// What a code was exchanged for.
struct SignedIn {
    tokens: Tokens,
    refresh: zeroize::Zeroizing<String>,
    email: String,
}

async fn exchange(
    provider: &ProviderClient,
    code: &str,
    verifier: Option<&str>,
    redirect_uri: Option<&str>,
) -> Result<SignedIn, ApiError> {
    let tokens = provider
        .exchange_code(code, verifier, redirect_uri)
        .await
        .map_err(|e| match e {
            OAuthError::Refused => ApiError::new(
                ErrorCode::OauthCodeRejected,
                "the provider refused the authorization code; sign in again",
            ),
            other => oauth_error(other),
        })?;
    let email = provider.email(&tokens).await.map_err(oauth_error)?;
    let Some(refresh) = tokens.refresh.clone() else {
        return Err(ApiError::new(
            ErrorCode::ProviderRefusedClient,
            "the provider issued no refresh token (for Google: access_type=offline and prompt=consent)",
        ));
    };
    Ok(SignedIn {
        tokens,
        refresh,
        email,
    })
}

/// The record of an account signed in at `provider`, under `id`.
fn account_record(
    state: &AppState,
    provider: &Provider,
    signed_in: &SignedIn,
    id: &str,
    existing: Option<&AccountRecord>,
) -> AccountRecord {
    let email = &signed_in.email;
    AccountRecord {
        id: id.to_string(),
        email: email.clone(),
        imap: server_record(&provider.imap, email),
        smtp: provider.smtp.as_ref().map(|s| server_record(s, email)),
        created_at: existing
            .map(|a| a.created_at)
            .unwrap_or_else(|| crate::unix_millis() / 1000),
        oauth: Some(OAuthRecord {
            provider: provider.name.clone(),
            refresh_sealed: state.sealer.seal(id, &signed_in.refresh),
            revoked: false,
        }),
    }
}

fn server_record(server: &crate::config::ServerConfig, email: &str) -> ServerRecord {
    ServerRecord {
        host: server.host.to_ascii_lowercase(),
        port: server.port,
        security: server.security,
        username: email.to_string(),
        password_sealed: Vec::new(),
    }
}

fn oauth_error(e: OAuthError) -> ApiError {
    ApiError::new(oauth_code(&e), e.to_string())
}

fn upstream(server: &crate::config::ServerConfig) -> Upstream {
    Upstream {
        host: server.host.clone(),
        port: server.port,
        security: server.security,
    }
}

/// Logs in to the provider's IMAP server (and authenticates to its
/// submission server) with the new access token, so nothing is stored for
/// a sign-in the servers do not take.
async fn check_token_login(
    state: &AppState,
    provider: &Provider,
    signed_in: &SignedIn,
) -> Result<(), ApiError> {
    let (email, tokens) = (&signed_in.email, &signed_in.tokens);
    let timeout = Duration::from_secs(state.config.upstream.connect_timeout_secs);
    let mechanism = Some(provider.mechanism);
    let imap = async {
        let mut client =
            ImapClient::connect(&upstream(&provider.imap), &state.tls, timeout).await?;
        client
            .authenticate_oauth(mechanism, email, &tokens.access)
            .await?;
        client.logout().await;
        Ok::<_, ImapError>(())
    };
    imap.await.map_err(|e| {
        let private = matches!(e, ImapError::Net(NetError::PrivateAddress { .. }));
        check_failed(Checked::Imap, private, e.class(), e)
    })?;
    let Some(smtp) = &provider.smtp else {
        return Ok(());
    };
    let submission = async {
        let mut client =
            SmtpClient::connect(&upstream(smtp), &state.tls, timeout, HELO_NAME).await?;
        client.auth_oauth(mechanism, email, &tokens.access).await?;
        client.quit().await;
        Ok::<_, SmtpError>(())
    };
    submission.await.map_err(|e| {
        let private = matches!(e, SmtpError::Net(NetError::PrivateAddress { .. }));
        check_failed(Checked::Smtp, private, e.class(), e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_browser_goes_back_with_one_parameter() {
        let answer = back_to_app("com.example.mail:/oauth", ("grant", "g-1".into()));
        assert_eq!(answer.status(), StatusCode::SEE_OTHER);
        let location = answer.headers()[header::LOCATION].to_str().unwrap();
        assert_eq!(location, "com.example.mail:/oauth?grant=g-1");
        let answer = back_to_app(
            "https://app.example/cb?x=1",
            ("error", "access_denied".into()),
        );
        let location = answer.headers()[header::LOCATION].to_str().unwrap();
        assert_eq!(location, "https://app.example/cb?x=1&error=access_denied");
        assert_eq!(provider_error("access_denied"), "access_denied");
        assert_eq!(provider_error("<script>"), "access_denied");
    }
}
