//! The access tokens of accounts signed in through a provider: kept in
//! memory only while valid, refreshed when a connection needs one and the
//! kept one is past about 80 % of its life (jittered, so accounts signed
//! in together do not refresh together), one refresh per account at a time.
//!
//! A rotated refresh token is stored (durably) before the access token
//! that came with it is used. When the provider refuses the refresh token
//! (`invalid_grant`) the account is marked in the store, and every node
//! stops asking until the person signs in again. A refusal of a token that
//! another node had just replaced (its rotation) is not one: the newer
//! token is tried.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;
use zeroize::Zeroizing;

use super::{OAuthError, Providers, Tokens};
use crate::store::{AccountRecord, OAuthRecord, Sealer, Store};

/// An access token and when to stop using it.
struct Kept {
    token: Zeroizing<String>,
    /// From here on, a refresh is tried first.
    refresh_at: Instant,
    /// From here on, it is not used at all.
    expires_at: Instant,
}

type Slot = Arc<tokio::sync::Mutex<Option<Kept>>>;

/// Hands out access tokens for accounts; cheap to share.
pub struct TokenBroker {
    providers: Providers,
    store: Arc<dyn Store>,
    sealer: Arc<Sealer>,
    /// One per account that asked: its kept token, and the lock that makes
    /// refreshes of one account one at a time.
    slots: Mutex<HashMap<String, Slot>>,
    /// Told the id of every account whose grant this node found refused
    /// (once per refusal across the cluster: the store's marker decides).
    refused: Option<tokio::sync::mpsc::Sender<String>>,
}

/// When a token that lives `lifetime` is refreshed and when it is dropped,
/// counted from `now`: at 75–85 % of its life, and a minute before it ends
/// (half-way for tokens shorter than two minutes).
fn schedule(now: Instant, lifetime: Duration, jitter: f64) -> (Instant, Instant) {
    let margin = if lifetime > Duration::from_secs(120) {
        Duration::from_secs(60)
    } else {
        lifetime / 2
    };
    let refresh = lifetime.mul_f64(0.75 + 0.1 * jitter.clamp(0.0, 1.0));
    (
        now + refresh.min(lifetime - margin),
        now + lifetime - margin,
    )
}

impl TokenBroker {
    pub fn new(providers: Providers, store: Arc<dyn Store>, sealer: Arc<Sealer>) -> Self {
        TokenBroker {
            providers,
            store,
            sealer,
            slots: Mutex::new(HashMap::new()),
            refused: None,
        }
    }

    /// Tells `refused` of each account whose grant the provider refused.
    pub fn on_refused(mut self, refused: tokio::sync::mpsc::Sender<String>) -> Self {
        self.refused = Some(refused);
        self
    }

    pub fn providers(&self) -> &Providers {
        &self.providers
    }

    fn slot(&self, account_id: &str) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.entry(account_id.to_string()).or_default().clone()
    }

    /// Forgets the account's token (its server refused it): the next
    /// connection gets a fresh one. A refresh under way already makes one.
    pub fn forget(&self, account_id: &str) {
        if let Ok(mut kept) = self.slot(account_id).try_lock() {
            *kept = None;
        }
    }

    /// Lets go of everything kept for a deleted account.
    fn drop_account(&self, account_id: &str) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.remove(account_id);
    }

    /// Keeps the access token a sign-in just got, so the first connections
    /// use it instead of refreshing at once.
    pub async fn keep(&self, account_id: &str, tokens: &Tokens) {
        let slot = self.slot(account_id);
        *slot.lock().await = Some(kept(tokens));
    }

    /// A valid access token for the account; refreshed first when due.
    pub async fn access_token(
        &self,
        account: &AccountRecord,
    ) -> Result<Zeroizing<String>, OAuthError> {
        let slot = self.slot(&account.id);
        let mut kept_token = slot.lock().await;
        let now = Instant::now();
        match &*kept_token {
            Some(kept) if now < kept.refresh_at => return Ok(kept.token.clone()),
            _ => {}
        }
        match self.refresh(&account.id).await {
            Ok(tokens) => {
                let token = tokens.access.clone();
                *kept_token = Some(kept(&tokens));
                Ok(token)
            }
            // A provider that fails for a moment: the kept token still works.
            Err(OAuthError::Transient(e)) => match &*kept_token {
                Some(kept) if now < kept.expires_at => {
                    tracing::info!(account = %account.id, error = %e, "token refresh failed; the current token is still valid");
                    Ok(kept.token.clone())
                }
                _ => Err(OAuthError::Transient(e)),
            },
            Err(e) => {
                *kept_token = None;
                Err(e)
            }
        }
    }

    /// Refreshes with the stored refresh token, storing a rotated one
    /// before answering.
    async fn refresh(&self, account_id: &str) -> Result<Tokens, OAuthError> {
        let mut tried: Option<Vec<u8>> = None;
        // A refused token is tried again only when another node replaced
        // it meanwhile; a few rounds at most.
        for _ in 0..3 {
            let grant = self.stored_grant(account_id).await?;
            if tried.as_ref() == Some(&grant.refresh_sealed) {
                // Refused, and no other node replaced it meanwhile.
                self.mark_refused(account_id, &grant).await?;
                return Err(OAuthError::Refused);
            }
            let provider = self
                .providers
                .get(&grant.provider)
                .ok_or_else(|| OAuthError::UnknownProvider(grant.provider.clone()))?;
            let refresh_token = self
                .sealer
                .open(account_id, &grant.refresh_sealed)
                .map_err(|_| OAuthError::Unsealable)?;
            match provider.refresh(&refresh_token).await {
                Ok(tokens) => {
                    self.store_rotated(account_id, &grant, &tokens).await?;
                    tracing::debug!(account = %account_id, "access token refreshed");
                    return Ok(tokens);
                }
                Err(OAuthError::Refused) => tried = Some(grant.refresh_sealed),
                Err(e) => return Err(e),
            }
        }
        Err(OAuthError::Transient(
            "the refresh token keeps changing under this refresh".into(),
        ))
    }

    async fn stored_grant(&self, account_id: &str) -> Result<OAuthRecord, OAuthError> {
        let account = self.store.account(account_id).await?;
        match account.and_then(|a| a.oauth) {
            Some(grant) if grant.revoked => Err(OAuthError::Refused),
            Some(grant) => Ok(grant),
            None => Err(OAuthError::Refused),
        }
    }

    /// Stores the refresh token the provider rotated to, if it did. Lost
    /// to another node's rotation, the token still works: it is used, and
    /// the other one stays stored.
    async fn store_rotated(
        &self,
        account_id: &str,
        grant: &OAuthRecord,
        tokens: &Tokens,
    ) -> Result<(), OAuthError> {
        let Some(rotated) = &tokens.refresh else {
            return Ok(());
        };
        let new = OAuthRecord {
            provider: grant.provider.clone(),
            refresh_sealed: self.sealer.seal(account_id, rotated),
            revoked: false,
        };
        if !self
            .store
            .replace_oauth(account_id, &grant.refresh_sealed, &new)
            .await?
        {
            tracing::info!(account = %account_id, "the refresh token was replaced meanwhile; keeping that one");
        }
        Ok(())
    }

    async fn mark_refused(&self, account_id: &str, grant: &OAuthRecord) -> Result<(), OAuthError> {
        tracing::warn!(account = %account_id, provider = %grant.provider, "the provider refused the refresh token; the account must sign in again");
        let refused = OAuthRecord {
            revoked: true,
            ..grant.clone()
        };
        let marked = self
            .store
            .replace_oauth(account_id, &grant.refresh_sealed, &refused)
            .await?;
        if let (true, Some(tell)) = (marked, &self.refused) {
            if tell.try_send(account_id.to_string()).is_err() {
                tracing::warn!(account = %account_id, "too many refused accounts at once; this one's devices are not told");
            }
        }
        Ok(())
    }

    /// Revokes the account's refresh token at its provider, where the
    /// provider has an endpoint for it (best effort: the account goes
    /// whatever the provider says).
    pub async fn revoke(&self, account: &AccountRecord) {
        self.drop_account(&account.id);
        let Some(grant) = &account.oauth else { return };
        let Some(provider) = self.providers.get(&grant.provider) else {
            return;
        };
        let Ok(token) = self.sealer.open(&account.id, &grant.refresh_sealed) else {
            return;
        };
        match provider.revoke(&token).await {
            Ok(true) => {
                tracing::info!(account = %account.id, "refresh token revoked at the provider")
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(account = %account.id, error = %e, "the provider did not revoke the refresh token")
            }
        }
    }
}

fn kept(tokens: &Tokens) -> Kept {
    let (refresh_at, expires_at) =
        schedule(Instant::now(), tokens.lifetime, rand::thread_rng().gen());
    Kept {
        token: tokens.access.clone(),
        refresh_at,
        expires_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_refreshed_at_about_80_percent_of_their_life() {
        let now = Instant::now();
        let hour = Duration::from_secs(3600);
        let (early, end) = schedule(now, hour, 0.0);
        let (late, _) = schedule(now, hour, 1.0);
        assert_eq!(early - now, Duration::from_secs(2700));
        assert_eq!(late - now, Duration::from_secs(3060));
        assert_eq!(end - now, Duration::from_secs(3540));
        let (refresh, end) = schedule(now, Duration::from_secs(20), 0.5);
        assert_eq!(end - now, Duration::from_secs(10));
        assert!(
            refresh <= end,
            "short tokens are refreshed before they are dropped"
        );
    }
}
