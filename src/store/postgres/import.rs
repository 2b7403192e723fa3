//! What only a migration into the database needs (`lemonade migrate`, see
//! `crate::store::migrate`): whether the database holds accounts already,
//! and queued pushes written as they are, which no gateway path does (a
//! gateway only queues pushes by merging new mail into them).

use super::{encode, PgStore};
use crate::store::{PendingPush, StoreResult};

impl PgStore {
    /// Whether any account is stored.
    pub async fn has_accounts(&self) -> StoreResult<bool> {
        let mut conn = self.conn().await?;
        let row = conn
            .query_opt("SELECT EXISTS (SELECT 1 FROM account)", &[])
            .await?;
        Ok(row.is_some_and(|row| row.get(0)))
    }

    /// Migration only: stores a queued push exactly as given (version,
    /// attempts, earliest next try, expiry), unclaimed. Its device must be
    /// stored; a push already queued under its key is an error.
    pub async fn import_push(&self, push: &PendingPush) -> StoreResult<()> {
        let unclaimed = PendingPush {
            claim: 0,
            ..push.clone()
        };
        let mut conn = self.conn().await?;
        conn.execute(
            "INSERT INTO push (device_id, mailbox, account_id, value, not_before_ms) \
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &push.key.device_id,
                &push.key.mailbox,
                &push.account_id,
                &encode(&unclaimed)?,
                &push.not_before_ms,
            ],
        )
        .await?;
        Ok(())
    }
}
