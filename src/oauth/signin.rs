//! The one-time tickets of a sign-in through the browser: the `state` of a
//! started sign-in (with its PKCE verifier and the app's redirect URI) and
//! the grant the app redeems for its API token. Both are random 256-bit
//! values, stored under their SHA-256 with a sealed body, taken out on
//! first use and refused after their time (`oauth.state_ttl_secs`,
//! `oauth.grant_ttl_secs`). In cluster mode any node can finish a sign-in
//! another started.

use std::sync::Arc;

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::ProviderClient;
use crate::store::{Sealer, Store, StoreError, Ticket};

/// Why a state or grant was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum TicketError {
    /// Never issued, used already, or expired.
    #[error("unknown, used or expired")]
    Unknown,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A started sign-in, as the callback finds it.
#[derive(Serialize, Deserialize)]
pub struct PendingSignIn {
    pub provider: String,
    pub app_redirect_uri: String,
    pub verifier: Zeroizing<String>,
}

/// What a grant stands for: the account signed in and its new API token.
#[derive(Serialize, Deserialize)]
pub struct Grant {
    pub account_id: String,
    pub token: Zeroizing<String>,
}

/// Issues and takes the tickets.
pub struct SignIns {
    store: Arc<dyn Store>,
    sealer: Arc<Sealer>,
    state_ttl_secs: u64,
    grant_ttl_secs: u64,
}

/// The two kinds, so a state can never be redeemed as a grant.
#[derive(Clone, Copy)]
enum Kind {
    State,
    Grant,
}

fn key(kind: Kind, value: &str) -> [u8; 32] {
    let label: &[u8] = match kind {
        Kind::State => b"oauth-state\0",
        Kind::Grant => b"oauth-grant\0",
    };
    Sha256::new()
        .chain_update(label)
        .chain_update(value.as_bytes())
        .finalize()
        .into()
}

fn context(key: &[u8; 32]) -> String {
    format!("ticket:{}", hex(key))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new one-time value: 256 random bits, base64url.
fn random_value() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

impl SignIns {
    pub fn new(
        store: Arc<dyn Store>,
        sealer: Arc<Sealer>,
        state_ttl_secs: u64,
        grant_ttl_secs: u64,
    ) -> Self {
        SignIns {
            store,
            sealer,
            state_ttl_secs,
            grant_ttl_secs,
        }
    }

    /// Starts a sign-in at `provider` whose browser comes back to
    /// `callback_url` and then goes to `app_redirect_uri`; answers the
    /// provider's URL and when the sign-in expires (Unix seconds).
    pub async fn start(
        &self,
        provider: &ProviderClient,
        callback_url: &str,
        app_redirect_uri: &str,
    ) -> Result<(String, i64), super::OAuthError> {
        let state = random_value();
        let authorization = provider.authorize(&state, callback_url)?;
        let pending = PendingSignIn {
            provider: provider.provider().name.clone(),
            app_redirect_uri: app_redirect_uri.to_string(),
            verifier: authorization.verifier,
        };
        let expires_at = self
            .put(Kind::State, &state, &pending, self.state_ttl_secs)
            .await?;
        Ok((authorization.url, expires_at))
    }

    /// Takes the sign-in a callback's `state` belongs to.
    pub async fn finish(&self, state: &str) -> Result<PendingSignIn, TicketError> {
        self.take(Kind::State, state).await
    }

    /// A new grant for the account and token; answers the grant.
    pub async fn grant(&self, grant: &Grant) -> Result<String, TicketError> {
        let value = random_value();
        self.put(Kind::Grant, &value, grant, self.grant_ttl_secs)
            .await?;
        Ok(value)
    }

    /// Takes what a grant stands for.
    pub async fn redeem(&self, grant: &str) -> Result<Grant, TicketError> {
        self.take(Kind::Grant, grant).await
    }

    async fn put<T: Serialize>(
        &self,
        kind: Kind,
        value: &str,
        body: &T,
        ttl_secs: u64,
    ) -> Result<i64, StoreError> {
        let key = key(kind, value);
        let json = Zeroizing::new(serde_json::to_string(body)?);
        let now = crate::unix_millis() / 1000;
        let ticket = Ticket {
            body: self.sealer.seal(&context(&key), &json),
            expires_at: now.saturating_add(ttl_secs.try_into().unwrap_or(i64::MAX)),
        };
        self.store.put_ticket(&key, &ticket, now).await?;
        Ok(ticket.expires_at)
    }

    async fn take<T: for<'de> Deserialize<'de>>(
        &self,
        kind: Kind,
        value: &str,
    ) -> Result<T, TicketError> {
        if value.is_empty() || value.len() > 128 {
            return Err(TicketError::Unknown);
        }
        let key = key(kind, value);
        let now = crate::unix_millis() / 1000;
        let ticket = self
            .store
            .take_ticket(&key, now)
            .await?
            .ok_or(TicketError::Unknown)?;
        let json = self
            .sealer
            .open(&context(&key), &ticket.body)
            .map_err(|_| TicketError::Unknown)?;
        serde_json::from_str(&json).map_err(|e| TicketError::Store(e.into()))
    }
}
