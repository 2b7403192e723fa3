//! Bearer tokens: issued once at registration, stored only as SHA-256
//! hashes, and revoked one by one (`DELETE /v1/tokens/current`) or all but
//! the caller's (`DELETE /v1/tokens`), e.g. after a phone was lost.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::AppState;

/// A new random token (256 bits, URL-safe) and the hash the store keeps.
pub fn new_token() -> (String, [u8; 32]) {
    use base64::Engine;
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let token = format!(
        "lmn_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    );
    let hash = hash_token(&token);
    (token, hash)
}

pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A random identifier for accounts and devices (128 bits, hex).
pub fn new_id() -> String {
    let mut raw = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

/// The account a request's bearer token belongs to.
///
/// The lookup is by the token's SHA-256, so the comparison of secrets happens
/// on hashes in the store's index, not byte by byte on the token itself.
pub struct AccountId(pub String);

impl FromRequestParts<AppState> for AccountId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Bearer::from_request_parts(parts, state)
            .await
            .map(|bearer| AccountId(bearer.account_id))
    }
}

/// A request's valid bearer token: its hash and its account.
pub struct Bearer {
    pub account_id: String,
    pub token_hash: [u8; 32],
}

impl FromRequestParts<AppState> for Bearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(ApiError::unauthorized)?;
        let (scheme, token) = header.split_once(' ').ok_or_else(ApiError::unauthorized)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(ApiError::unauthorized());
        }
        let token_hash = hash_token(token.trim());
        let account_id = state
            .store
            .account_for_token(&token_hash)
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        Ok(Bearer {
            account_id,
            token_hash,
        })
    }
}

/// `DELETE /v1/tokens/current`: the caller's token stops working.
pub async fn revoke_current(
    State(state): State<AppState>,
    bearer: Bearer,
) -> Result<StatusCode, ApiError> {
    state.store.revoke_token(&bearer.token_hash).await?;
    state.store.flush().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /v1/tokens`: every other token of the account stops working
/// (sign out everywhere else); the caller's stays.
pub async fn revoke_others(
    State(state): State<AppState>,
    bearer: Bearer,
    format: super::codec::Format,
) -> Result<axum::response::Response, ApiError> {
    let revoked = state
        .store
        .revoke_tokens(&bearer.account_id, Some(&bearer.token_hash))
        .await?;
    state.store.flush().await?;
    tracing::info!(account = %bearer.account_id, revoked, "other tokens revoked");
    let answer = crate::proto::v1::RevokeTokensResponse {
        revoked: u32::try_from(revoked).unwrap_or(u32::MAX),
    };
    Ok(format.respond(StatusCode::OK, &answer))
}
