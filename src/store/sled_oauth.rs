//! [`OAuthStore`] on sled: tree `oauth_tickets` (key hash → expiry and
//! sealed body); refresh tokens live in the account records.

use sled::transaction::ConflictableTransactionError;

use super::oauth::{OAuthStore, Ticket};
use super::sled_store::SledStore;
use super::{AccountRecord, OAuthRecord, Store, StoreError, StoreResult};

/// Expired tickets are swept when this many are kept: a sign-in that was
/// started and never finished leaves one behind.
const SWEEP_ABOVE: usize = 1024;

fn encode(ticket: &Ticket) -> Vec<u8> {
    let mut value = ticket.expires_at.to_be_bytes().to_vec();
    value.extend_from_slice(&ticket.body);
    value
}

fn decode(value: &[u8]) -> StoreResult<Ticket> {
    let (expiry, body) = value
        .split_first_chunk::<8>()
        .ok_or_else(|| StoreError::Corrupt("short ticket".into()))?;
    Ok(Ticket {
        body: body.to_vec(),
        expires_at: i64::from_be_bytes(*expiry),
    })
}

impl SledStore {
    fn tickets(&self) -> StoreResult<sled::Tree> {
        Ok(self.db().open_tree("oauth_tickets")?)
    }
}

#[async_trait::async_trait]
impl OAuthStore for SledStore {
    async fn put_ticket(&self, key: &[u8; 32], ticket: &Ticket, now: i64) -> StoreResult<()> {
        let tree = self.tickets()?;
        if tree.len() > SWEEP_ABOVE {
            for entry in tree.iter() {
                let (k, v) = entry?;
                if decode(&v)?.expires_at < now {
                    tree.remove(k)?;
                }
            }
        }
        tree.insert(&key[..], encode(ticket))?;
        self.flush().await
    }

    async fn take_ticket(&self, key: &[u8; 32], now: i64) -> StoreResult<Option<Ticket>> {
        // `remove` answers the value to exactly one of several racing takers.
        let Some(value) = self.tickets()?.remove(&key[..])? else {
            return Ok(None);
        };
        self.request_flush();
        let ticket = decode(&value)?;
        Ok((ticket.expires_at >= now).then_some(ticket))
    }

    async fn replace_oauth(
        &self,
        account_id: &str,
        expected: &[u8],
        new: &OAuthRecord,
    ) -> StoreResult<bool> {
        let accounts = self.db().open_tree("accounts")?;
        let replaced = accounts
            .transaction(|tx| {
                let Some(value) = tx.get(account_id.as_bytes())? else {
                    return Ok(false);
                };
                let mut account: AccountRecord = serde_json::from_slice(&value)
                    .map_err(|e| ConflictableTransactionError::Abort(StoreError::from(e)))?;
                match &account.oauth {
                    Some(old) if old.refresh_sealed == expected => {}
                    _ => return Ok(false),
                }
                account.oauth = Some(new.clone());
                let value = serde_json::to_vec(&account)
                    .map_err(|e| ConflictableTransactionError::Abort(StoreError::from(e)))?;
                tx.insert(account_id.as_bytes(), value)?;
                Ok(true)
            })
            .map_err(super::sled_store::tx_error)?;
        if replaced {
            self.flush().await?;
        }
        Ok(replaced)
    }
}
