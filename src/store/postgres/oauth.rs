//! [`OAuthStore`] on PostgreSQL: table `oauth_ticket`, and the refresh
//! token inside the account's JSON record, replaced only while it is
//! still the one the refreshing node read.

use super::{encode, PgStore};
use crate::store::oauth::{OAuthStore, Ticket};
use crate::store::{OAuthRecord, StoreResult};

#[async_trait::async_trait]
impl OAuthStore for PgStore {
    async fn put_ticket(&self, key: &[u8; 32], ticket: &Ticket, now: i64) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        conn.execute("DELETE FROM oauth_ticket WHERE expires_at < $1", &[&now])
            .await?;
        conn.execute(
            "INSERT INTO oauth_ticket (key, body, expires_at) VALUES ($1, $2, $3)",
            &[&&key[..], &ticket.body, &ticket.expires_at],
        )
        .await?;
        Ok(())
    }

    async fn take_ticket(&self, key: &[u8; 32], now: i64) -> StoreResult<Option<Ticket>> {
        let mut conn = self.conn().await?;
        let row = conn
            .query_opt(
                "DELETE FROM oauth_ticket WHERE key = $1 RETURNING body, expires_at",
                &[&&key[..]],
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let ticket = Ticket {
            body: row.get(0),
            expires_at: row.get(1),
        };
        Ok((ticket.expires_at >= now).then_some(ticket))
    }

    async fn replace_oauth(
        &self,
        account_id: &str,
        expected: &[u8],
        new: &OAuthRecord,
    ) -> StoreResult<bool> {
        // The stored form of `expected`, as the record's JSON holds it.
        let old = OAuthRecord {
            refresh_sealed: expected.to_vec(),
            ..new.clone()
        };
        let old_sealed = encode(&old)?["refresh_sealed"].clone();
        let mut conn = self.conn().await?;
        let updated = conn
            .execute(
                "UPDATE account SET record = jsonb_set(record, '{oauth}', $2) \
                 WHERE id = $1 AND record->'oauth'->'refresh_sealed' = $3",
                &[&account_id, &encode(new)?, &old_sealed],
            )
            .await?;
        Ok(updated == 1)
    }
}
