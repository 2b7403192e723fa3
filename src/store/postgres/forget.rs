//! Mail read elsewhere taken out of the pushes that wait for it, on
//! PostgreSQL: one transaction over the account's rows of the mailbox that
//! are not due and that nobody holds, each changed by the same pure
//! function as on sled (`queued::forget_read`).

use super::rows::{decode, UNCLAIMED};
use super::PgStore;
use crate::store::queued::{forget_read, Forgotten};
use crate::store::{PendingPush, ReadMail, StoreResult, Unshown};

impl PgStore {
    pub(super) async fn forget_read_rows(&self, read: &ReadMail<'_>) -> StoreResult<Vec<Unshown>> {
        let mut conn = self.conn().await?;
        conn.begin().await?;
        let sql = format!(
            "SELECT value FROM push \
             WHERE device_id IN (SELECT id FROM device WHERE account_id = $1) \
               AND mailbox = $2 AND not_before_ms > $3 AND {UNCLAIMED} \
             FOR UPDATE OF push"
        );
        let rows = conn
            .query(&sql, &[&read.account_id, &read.mailbox, &read.now_ms])
            .await?;
        let mut changed = Vec::new();
        for row in &rows {
            // A corrupt entry is left to the deliverer, which drops it.
            let Ok(push) = decode::<PendingPush>(row, 0) else {
                continue;
            };
            let key = push.key.clone();
            let uids = match forget_read(push, read) {
                Forgotten::Unchanged => continue,
                Forgotten::Changed(left, uids) => {
                    self.write_push(&mut conn, &left).await?;
                    uids
                }
                Forgotten::Emptied(uids) => {
                    conn.execute(
                        "DELETE FROM push WHERE device_id = $1 AND mailbox = $2",
                        &[&key.device_id, &key.mailbox],
                    )
                    .await?;
                    uids
                }
            };
            changed.push(Unshown {
                device_id: key.device_id,
                uids,
            });
        }
        conn.commit().await?;
        Ok(changed)
    }
}
