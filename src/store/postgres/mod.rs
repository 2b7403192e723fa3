//! The store on PostgreSQL: what several gateway nodes share in cluster
//! mode. Records are the same JSON values the embedded store keeps; the
//! columns beside them carry what the database must check or find: one
//! account per IMAP login and one device per push endpoint (unique
//! constraints, so they hold when two nodes race), account ownership and
//! its fencing epoch, push claims, send-job leases.
//!
//! Every commit is durable, so `flush` has nothing to do. The schema is
//! created and migrated at start under an advisory lock (`schema.rs`);
//! the node leases, account ownership and notifications between nodes are
//! in `cluster.rs`, the send path's records in `send.rs`, what only
//! `lemonade migrate` writes in `import.rs`, the statements the methods
//! share inside their transactions in `rows.rs`, read mail taken out of
//! waiting pushes in `forget.rs`.

mod cluster;
mod conn;
mod forget;
mod import;
mod oauth;
mod rows;
mod schema;
mod send;

use deadpool_postgres::Pool;

pub use cluster::{Claimed, NodeIdentity, CHANNEL};
use conn::Conn;
pub use conn::PgOptions;
use rows::{decode, encode, millis, upsert_cursor, UNCLAIMED};

use super::queued::{merge, remainder, reschedule};
use super::{
    AccountRecord, AccountStored, Cursor, DeviceRecord, DeviceStored, Fence, NewMail, PendingPush,
    PushKey, PushedWindow, ReadMail, Store, StoreError, StoreResult, Unshown,
};

/// [`Store`] on PostgreSQL.
pub struct PgStore {
    pool: Pool,
    options: PgOptions,
    /// The node this store writes for: watcher writes are fenced with it.
    /// None for tools that own every account (migration, tests of the
    /// store itself).
    node: Option<NodeIdentity>,
    /// How long after its node's lease ran out a send job may be taken
    /// over: longer than any SMTP step, so that a node cut off from the
    /// database in the middle of a submission is not doubled.
    send_takeover: std::time::Duration,
}

impl PgStore {
    /// Connects, and creates or migrates the schema.
    pub async fn connect(options: PgOptions) -> StoreResult<PgStore> {
        let pool = conn::pool(&options)?;
        let store = PgStore {
            pool,
            options,
            node: None,
            send_takeover: std::time::Duration::from_secs(60),
        };
        let mut conn = store.conn().await?;
        schema::migrate(&mut conn).await?;
        Ok(store)
    }

    /// This store, writing for `node`.
    pub fn for_node(mut self, node: NodeIdentity) -> Self {
        self.node = Some(node);
        self
    }

    /// This store, letting other nodes take a dead node's send jobs
    /// `after` its lease ran out.
    pub fn with_send_takeover(mut self, after: std::time::Duration) -> Self {
        self.send_takeover = after;
        self
    }

    pub fn node(&self) -> Option<&NodeIdentity> {
        self.node.as_ref()
    }

    pub fn options(&self) -> &PgOptions {
        &self.options
    }

    async fn conn(&self) -> StoreResult<Conn> {
        Conn::get(&self.pool, self.options.call_timeout).await
    }
}

#[async_trait::async_trait]
impl Store for PgStore {
    async fn create_account(
        &self,
        account: &AccountRecord,
        token_hash: &[u8; 32],
    ) -> StoreResult<AccountStored> {
        let mut conn = self.conn().await?;
        conn.begin().await?;
        let host = account.imap.host.to_ascii_lowercase();
        let port = i32::from(account.imap.port);
        let login: [&(dyn tokio_postgres::types::ToSql + Sync); 5] = [
            &account.id,
            &encode(account)?,
            &host,
            &port,
            &account.imap.username,
        ];
        // New (no conflict on either the id or the login)…
        let inserted = conn
            .query_opt(
                "INSERT INTO account (id, record, imap_host, imap_port, imap_username) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING id",
                &login,
            )
            .await?;
        // …or new credentials of the account that has this login…
        let stored = match inserted {
            Some(_) => true,
            None => conn
                .query_opt(
                    "UPDATE account SET record = $2 WHERE id = $1 \
                     AND imap_host = $3 AND imap_port = $4 AND imap_username = $5 RETURNING id",
                    &login,
                )
                .await?
                .is_some(),
        };
        if !stored {
            // …else another account holds the login.
            let owner = conn
                .query_opt(
                    "SELECT id FROM account \
                     WHERE imap_host = $1 AND imap_port = $2 AND imap_username = $3",
                    &[&host, &port, &account.imap.username],
                )
                .await?;
            conn.rollback().await;
            return match owner {
                Some(row) => Ok(AccountStored::LoginTaken(row.get(0))),
                None => Err(StoreError::Backend(format!(
                    "account id {} is taken by another login",
                    account.id
                ))),
            };
        }
        conn.execute(
            "INSERT INTO token (hash, account_id) VALUES ($1, $2) ON CONFLICT (hash) DO NOTHING",
            &[&&token_hash[..], &account.id],
        )
        .await?;
        conn.commit().await?;
        Ok(AccountStored::Stored)
    }

    async fn account(&self, id: &str) -> StoreResult<Option<AccountRecord>> {
        let mut conn = self.conn().await?;
        let row = conn
            .query_opt("SELECT record FROM account WHERE id = $1", &[&id])
            .await?;
        row.map(|row| decode(&row, 0)).transpose()
    }

    async fn accounts(&self) -> StoreResult<Vec<AccountRecord>> {
        let mut conn = self.conn().await?;
        let rows = conn
            .query("SELECT record FROM account ORDER BY id", &[])
            .await?;
        rows.iter().map(|row| decode(row, 0)).collect()
    }

    async fn account_for_login(
        &self,
        host: &str,
        port: u16,
        username: &str,
    ) -> StoreResult<Option<String>> {
        let mut conn = self.conn().await?;
        let row = conn
            .query_opt(
                "SELECT id FROM account WHERE imap_host = $1 AND imap_port = $2 AND imap_username = $3",
                &[&host.to_ascii_lowercase(), &i32::from(port), &username],
            )
            .await?;
        Ok(row.map(|row| row.get(0)))
    }

    async fn account_for_token(&self, token_hash: &[u8; 32]) -> StoreResult<Option<String>> {
        let mut conn = self.conn().await?;
        let row = conn
            .query_opt(
                "SELECT account_id FROM token WHERE hash = $1",
                &[&&token_hash[..]],
            )
            .await?;
        Ok(row.map(|row| row.get(0)))
    }

    async fn revoke_tokens(&self, account_id: &str, keep: Option<&[u8; 32]>) -> StoreResult<usize> {
        let mut conn = self.conn().await?;
        let keep: Vec<u8> = keep.map(|k| k.to_vec()).unwrap_or_default();
        let revoked = conn
            .execute(
                "DELETE FROM token WHERE account_id = $1 AND hash <> $2",
                &[&account_id, &keep],
            )
            .await?;
        Ok(revoked as usize)
    }

    async fn revoke_token(&self, token_hash: &[u8; 32]) -> StoreResult<bool> {
        let mut conn = self.conn().await?;
        let revoked = conn
            .execute("DELETE FROM token WHERE hash = $1", &[&&token_hash[..]])
            .await?;
        Ok(revoked > 0)
    }

    async fn delete_account(&self, id: &str) -> StoreResult<bool> {
        let mut conn = self.conn().await?;
        conn.begin().await?;
        // Tokens, devices, cursors, pushes and the watch state go with it
        // (foreign keys); a queued push is keyed by its device.
        conn.execute("DELETE FROM push WHERE account_id = $1", &[&id])
            .await?;
        let deleted = conn
            .execute("DELETE FROM account WHERE id = $1", &[&id])
            .await?;
        conn.commit().await?;
        Ok(deleted > 0)
    }

    async fn put_device(
        &self,
        device: &DeviceRecord,
        max_devices: usize,
    ) -> StoreResult<DeviceStored> {
        let mut conn = self.conn().await?;
        conn.begin().await?;
        // The account's row lock orders registrations of one account, on
        // any node, and makes the limit exact.
        let account = conn
            .query_opt(
                "SELECT 1 FROM account WHERE id = $1 FOR UPDATE",
                &[&device.account_id],
            )
            .await?;
        if account.is_none() {
            conn.rollback().await;
            return Ok(DeviceStored::NoAccount);
        }
        let endpoint = &device.subscription.endpoint;
        let previous = conn
            .query_opt(
                "SELECT record FROM device WHERE account_id = $1 AND (endpoint = $2 OR id = $3)",
                &[&device.account_id, endpoint, &device.id],
            )
            .await?;
        let previous: Option<DeviceRecord> = previous.map(|row| decode(&row, 0)).transpose()?;
        if previous.is_none() {
            let count: i64 = conn
                .query_opt(
                    "SELECT count(*) FROM device WHERE account_id = $1",
                    &[&device.account_id],
                )
                .await?
                .map_or(0, |row| row.get(0));
            if count as usize >= max_devices {
                conn.rollback().await;
                return Ok(DeviceStored::TooMany);
            }
        }
        let stored = DeviceRecord {
            id: previous
                .as_ref()
                .map_or(device.id.clone(), |p| p.id.clone()),
            ..device.clone()
        };
        conn.execute(
            "INSERT INTO device (id, account_id, endpoint, record) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET endpoint = EXCLUDED.endpoint, record = EXCLUDED.record",
            &[&stored.id, &stored.account_id, endpoint, &encode(&stored)?],
        )
        .await?;
        if let Some(previous) = previous {
            self.forget_unwatched(&mut conn, &stored.account_id, &previous.mailboxes)
                .await?;
        }
        conn.commit().await?;
        Ok(DeviceStored::Stored(stored.id))
    }

    async fn device(&self, id: &str) -> StoreResult<Option<DeviceRecord>> {
        let mut conn = self.conn().await?;
        let row = conn
            .query_opt("SELECT record FROM device WHERE id = $1", &[&id])
            .await?;
        row.map(|row| decode(&row, 0)).transpose()
    }

    async fn devices_of(&self, account_id: &str) -> StoreResult<Vec<DeviceRecord>> {
        let mut conn = self.conn().await?;
        self.devices_in(&mut conn, account_id).await
    }

    async fn delete_device(&self, id: &str) -> StoreResult<bool> {
        let mut conn = self.conn().await?;
        conn.begin().await?;
        let row = conn
            .query_opt("DELETE FROM device WHERE id = $1 RETURNING record", &[&id])
            .await?;
        let Some(row) = row else {
            conn.rollback().await;
            return Ok(false);
        };
        let device: DeviceRecord = decode(&row, 0)?;
        self.forget_unwatched(&mut conn, &device.account_id, &device.mailboxes)
            .await?;
        conn.commit().await?;
        Ok(true)
    }

    async fn pushed_window(
        &self,
        account_id: &str,
        mailbox: &str,
    ) -> StoreResult<Option<PushedWindow>> {
        rows::read_pushed_window(&mut self.conn().await?, account_id, mailbox).await
    }

    async fn put_pushed_window(
        &self,
        account_id: &str,
        mailbox: &str,
        window: &PushedWindow,
        fence: Fence,
    ) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        conn.begin().await?;
        self.check_fence(&mut conn, account_id, fence).await?;
        rows::upsert_pushed_window(&mut conn, account_id, mailbox, window).await?;
        conn.commit().await
    }

    async fn cursor(&self, account_id: &str, mailbox: &str) -> StoreResult<Option<Cursor>> {
        let mut conn = self.conn().await?;
        let row = conn
            .query_opt(
                "SELECT value FROM mailbox_cursor WHERE account_id = $1 AND mailbox = $2",
                &[&account_id, &mailbox],
            )
            .await?;
        row.map(|row| decode(&row, 0)).transpose()
    }

    async fn put_cursor(
        &self,
        account_id: &str,
        mailbox: &str,
        cursor: &Cursor,
        fence: Fence,
    ) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        conn.begin().await?;
        self.check_fence(&mut conn, account_id, fence).await?;
        upsert_cursor(&mut conn, account_id, mailbox, cursor).await?;
        conn.commit().await
    }

    async fn record_new_mail(&self, mail: &NewMail<'_>) -> StoreResult<Vec<PushKey>> {
        let mut conn = self.conn().await?;
        conn.begin().await?;
        self.check_fence(&mut conn, mail.account_id, mail.fence)
            .await?;
        // A device deleted since the caller read the list gets nothing.
        let ids: Vec<&str> = mail.deliveries.iter().map(|d| d.device_id).collect();
        let rows = conn
            .query(
                "SELECT id FROM device WHERE id = ANY($1) AND account_id = $2 ORDER BY id FOR SHARE",
                &[&ids, &mail.account_id],
            )
            .await?;
        let mut keys = Vec::with_capacity(rows.len());
        for row in rows {
            let key = PushKey {
                device_id: row.get(0),
                mailbox: mail.mailbox.to_string(),
            };
            let Some(share) = mail
                .deliveries
                .iter()
                .find(|d| d.device_id == key.device_id)
            else {
                continue;
            };
            let existing = self.read_push(&mut conn, &key, true).await?;
            let fresh = existing.is_none();
            let push = merge(existing.map(|(push, _)| push), key.clone(), mail, share);
            if fresh {
                conn.execute(
                    "INSERT INTO push (device_id, mailbox, account_id, value, not_before_ms) \
                     VALUES ($1, $2, $3, $4, $5)",
                    &[
                        &key.device_id,
                        &key.mailbox,
                        &mail.account_id,
                        &encode(&push)?,
                        &push.not_before_ms,
                    ],
                )
                .await?;
            } else {
                // A claim under way stays: its delivery finishes against
                // the version it read, and what merged now is left over.
                conn.execute(
                    "UPDATE push SET value = $3, not_before_ms = $4 \
                     WHERE device_id = $1 AND mailbox = $2",
                    &[
                        &key.device_id,
                        &key.mailbox,
                        &encode(&push)?,
                        &push.not_before_ms,
                    ],
                )
                .await?;
            }
            keys.push(key);
        }
        upsert_cursor(&mut conn, mail.account_id, mail.mailbox, &mail.cursor).await?;
        conn.commit().await?;
        Ok(keys)
    }

    async fn pending_pushes(&self) -> StoreResult<Vec<PendingPush>> {
        let mut conn = self.conn().await?;
        let rows = conn
            .query("SELECT value FROM push ORDER BY device_id, mailbox", &[])
            .await?;
        rows.iter().map(|row| decode(row, 0)).collect()
    }

    async fn pending_pushes_of_device(&self, device_id: &str) -> StoreResult<Vec<PendingPush>> {
        let mut conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT value FROM push WHERE device_id = $1 ORDER BY mailbox",
                &[&device_id],
            )
            .await?;
        rows.iter().map(|row| decode(row, 0)).collect()
    }

    async fn pending_push(&self, key: &PushKey) -> StoreResult<Option<PendingPush>> {
        let mut conn = self.conn().await?;
        Ok(self
            .read_push(&mut conn, key, false)
            .await?
            .map(|(push, _)| push))
    }

    async fn claim_push(&self, key: &PushKey, claim_ms: i64) -> StoreResult<Option<PendingPush>> {
        let mut conn = self.conn().await?;
        let token: i64 = rand::random::<i64>().checked_abs().unwrap_or(1).max(1);
        let (node, incarnation) = match &self.node {
            Some(n) => (Some(n.id.as_str()), Some(n.incarnation)),
            None => (None, None),
        };
        let sql = format!(
            "UPDATE push SET claim_token = $3, claim_until = now() + make_interval(secs => $4), \
               claim_node = $5, claim_incarnation = $6 \
             WHERE device_id = $1 AND mailbox = $2 AND {UNCLAIMED} RETURNING value"
        );
        let row = conn
            .query_opt(
                &sql,
                &[
                    &key.device_id,
                    &key.mailbox,
                    &token,
                    &millis(claim_ms),
                    &node,
                    &incarnation,
                ],
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let mut push: PendingPush = decode(&row, 0)?;
        push.claim = token;
        Ok(Some(push))
    }

    async fn release_push(&self, key: &PushKey, claim: i64) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        conn.execute(
            "UPDATE push SET claim_token = NULL, claim_until = NULL \
             WHERE device_id = $1 AND mailbox = $2 AND claim_token = $3",
            &[&key.device_id, &key.mailbox, &claim],
        )
        .await?;
        Ok(())
    }

    async fn due_pushes(&self, now_ms: i64, limit: usize) -> StoreResult<Vec<PushKey>> {
        let mut conn = self.conn().await?;
        let sql = format!(
            "SELECT device_id, mailbox FROM push WHERE not_before_ms <= $1 AND {UNCLAIMED} \
             ORDER BY not_before_ms LIMIT $2"
        );
        let rows = conn.query(&sql, &[&now_ms, &(limit as i64)]).await?;
        Ok(rows
            .iter()
            .map(|row| PushKey {
                device_id: row.get(0),
                mailbox: row.get(1),
            })
            .collect())
    }

    async fn finish_push(&self, key: &PushKey, delivered: &PendingPush) -> StoreResult<bool> {
        let mut conn = self.conn().await?;
        // The usual case, nothing merged in meanwhile: one statement.
        let version = i64::try_from(delivered.version).unwrap_or(i64::MAX);
        let removed = conn
            .execute(
                "DELETE FROM push WHERE device_id = $1 AND mailbox = $2 AND claim_token = $3 \
                 AND (value->>'version')::bigint = $4",
                &[&key.device_id, &key.mailbox, &delivered.claim, &version],
            )
            .await?;
        if removed > 0 {
            return Ok(true);
        }
        conn.begin().await?;
        let Some((stored, claim)) = self.read_push(&mut conn, key, true).await? else {
            conn.rollback().await;
            return Ok(true);
        };
        if claim != Some(delivered.claim) {
            // Another deliverer took it over: what is left is its business.
            conn.rollback().await;
            return Ok(true);
        }
        let left = remainder(stored, delivered);
        match &left {
            None => {
                conn.execute(
                    "DELETE FROM push WHERE device_id = $1 AND mailbox = $2",
                    &[&key.device_id, &key.mailbox],
                )
                .await?;
            }
            Some(push) => self.write_push(&mut conn, push).await?,
        }
        conn.commit().await?;
        Ok(left.is_none())
    }

    async fn reschedule_push(
        &self,
        key: &PushKey,
        attempts: u32,
        not_before_ms: i64,
        shrink: bool,
    ) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        conn.begin().await?;
        let Some((mut push, _)) = self.read_push(&mut conn, key, true).await? else {
            conn.rollback().await;
            return Ok(());
        };
        reschedule(&mut push, attempts, not_before_ms, shrink);
        self.write_push(&mut conn, &push).await?;
        conn.commit().await
    }

    async fn remove_push(&self, key: &PushKey) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        conn.execute(
            "DELETE FROM push WHERE device_id = $1 AND mailbox = $2",
            &[&key.device_id, &key.mailbox],
        )
        .await?;
        Ok(())
    }

    async fn forget_read(&self, read: &ReadMail<'_>) -> StoreResult<Vec<Unshown>> {
        self.forget_read_rows(read).await
    }

    /// Every commit is durable already.
    async fn flush(&self) -> StoreResult<()> {
        Ok(())
    }

    fn request_flush(&self) {}
}
