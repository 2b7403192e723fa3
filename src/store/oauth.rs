//! What signing in through OAuth2 keeps: one-time tickets (a started
//! sign-in's state and PKCE verifier, the grant handed back to the app)
//! and an account's refresh token, replaced when the provider rotates it.
//!
//! Tickets are found by the SHA-256 of their one-time value, so the store
//! never holds a value that could be redeemed; their bodies are sealed by
//! the caller. In cluster mode they are shared: a sign-in started on one
//! node may come back to another.

use super::{OAuthRecord, StoreResult};

/// A one-time ticket: sealed body, usable until `expires_at` (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub body: Vec<u8>,
    pub expires_at: i64,
}

#[async_trait::async_trait]
pub trait OAuthStore {
    /// Keeps `ticket` under `key` (the hash of its one-time value); durable
    /// when it returns. Tickets that expired before `now` may be dropped.
    async fn put_ticket(&self, key: &[u8; 32], ticket: &Ticket, now: i64) -> StoreResult<()>;
    /// Takes the ticket out: the first call after `put_ticket` answers it
    /// (none when it expired before `now`), every later call none.
    async fn take_ticket(&self, key: &[u8; 32], now: i64) -> StoreResult<Option<Ticket>>;
    /// Replaces the account's OAuth record if its sealed refresh token is
    /// still `expected`; false when it is not (another refresh or a new
    /// sign-in replaced it) or the account is gone. Durable when it
    /// returns true.
    async fn replace_oauth(
        &self,
        account_id: &str,
        expected: &[u8],
        new: &OAuthRecord,
    ) -> StoreResult<bool>;
}
