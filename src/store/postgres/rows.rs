//! Statements the PostgreSQL store's methods share inside their
//! transactions: the ownership fence, reading and writing one queued push,
//! cursors, an account's devices, and the JSON columns' encoding.

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_postgres::Row;

use super::conn::Conn;
use super::PgStore;
use crate::store::{
    Cursor, DeviceRecord, Fence, PendingPush, PushKey, PushedWindow, StoreError, StoreResult,
};

impl PgStore {
    /// Within a transaction: refuses a watcher's write unless this node
    /// owns the account with `fence` and holds a live lease. `FOR SHARE`
    /// makes a takeover wait until the write has committed.
    pub(super) async fn check_fence(
        &self,
        conn: &mut Conn,
        account_id: &str,
        fence: Fence,
    ) -> StoreResult<()> {
        let Some(node) = &self.node else {
            return Ok(());
        };
        let owned = conn
            .query_opt(
                "SELECT 1 FROM account a JOIN node n \
                   ON n.id = a.owner AND n.incarnation = a.owner_incarnation \
                 WHERE a.id = $1 AND a.owner = $2 AND a.epoch = $3 \
                   AND n.incarnation = $4 AND n.lease_until > now() \
                 FOR SHARE OF a",
                &[&account_id, &node.id, &fence.epoch, &node.incarnation],
            )
            .await?;
        match owned {
            Some(_) => Ok(()),
            None => Err(StoreError::Fenced),
        }
    }

    pub(super) async fn read_push(
        &self,
        conn: &mut Conn,
        key: &PushKey,
        lock: bool,
    ) -> StoreResult<Option<(PendingPush, Option<i64>)>> {
        let sql = if lock {
            "SELECT value, claim_token FROM push WHERE device_id = $1 AND mailbox = $2 FOR UPDATE"
        } else {
            "SELECT value, claim_token FROM push WHERE device_id = $1 AND mailbox = $2"
        };
        let row = conn.query_opt(sql, &[&key.device_id, &key.mailbox]).await?;
        row.map(|row| Ok((decode(&row, 0)?, row.get(1))))
            .transpose()
    }

    pub(super) async fn write_push(&self, conn: &mut Conn, push: &PendingPush) -> StoreResult<()> {
        conn.execute(
            "UPDATE push SET value = $3, not_before_ms = $4, claim_token = NULL, claim_until = NULL \
             WHERE device_id = $1 AND mailbox = $2",
            &[&push.key.device_id, &push.key.mailbox, &encode(push)?, &push.not_before_ms],
        )
        .await?;
        Ok(())
    }

    /// Forgets the cursors of `mailboxes` unless a device of the account
    /// still asks for them (INBOX is always kept).
    pub(super) async fn forget_unwatched(
        &self,
        conn: &mut Conn,
        account_id: &str,
        mailboxes: &[String],
    ) -> StoreResult<()> {
        let remaining = self.devices_in(conn, account_id).await?;
        for mailbox in mailboxes {
            let watched = mailbox.eq_ignore_ascii_case("INBOX")
                || remaining
                    .iter()
                    .any(|d| crate::store::lists_mailbox(&d.mailboxes, mailbox));
            if !watched {
                for table in ["mailbox_cursor", "pushed_window"] {
                    let sql = format!("DELETE FROM {table} WHERE account_id = $1 AND mailbox = $2");
                    conn.execute(&sql, &[&account_id, mailbox]).await?;
                }
            }
        }
        Ok(())
    }

    pub(super) async fn devices_in(
        &self,
        conn: &mut Conn,
        account_id: &str,
    ) -> StoreResult<Vec<DeviceRecord>> {
        let rows = conn
            .query(
                "SELECT record FROM device WHERE account_id = $1 ORDER BY id",
                &[&account_id],
            )
            .await?;
        rows.iter().map(|row| decode(row, 0)).collect()
    }
}

pub(super) fn encode<T: Serialize>(value: &T) -> StoreResult<serde_json::Value> {
    Ok(serde_json::to_value(value)?)
}

pub(super) fn decode<T: DeserializeOwned>(row: &Row, column: usize) -> StoreResult<T> {
    let value: serde_json::Value = row.get(column);
    Ok(serde_json::from_value(value)?)
}

/// A push nobody holds: never claimed, its claim ran out, or the node that
/// claimed it no longer holds its lease (it died mid-delivery).
pub(super) const UNCLAIMED: &str =
    "(claim_until IS NULL OR claim_until < now() OR (claim_node IS NOT NULL \
     AND NOT EXISTS (SELECT 1 FROM node n WHERE n.id = push.claim_node \
       AND n.incarnation = push.claim_incarnation AND n.lease_until > now())))";

pub(super) fn millis(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

pub(super) async fn read_pushed_window(
    conn: &mut Conn,
    account_id: &str,
    mailbox: &str,
) -> StoreResult<Option<PushedWindow>> {
    let row = conn
        .query_opt(
            "SELECT value FROM pushed_window WHERE account_id = $1 AND mailbox = $2",
            &[&account_id, &mailbox],
        )
        .await?;
    row.map(|row| decode(&row, 0)).transpose()
}

pub(super) async fn upsert_pushed_window(
    conn: &mut Conn,
    account_id: &str,
    mailbox: &str,
    window: &PushedWindow,
) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO pushed_window (account_id, mailbox, value) VALUES ($1, $2, $3) \
         ON CONFLICT (account_id, mailbox) DO UPDATE SET value = EXCLUDED.value",
        &[&account_id, &mailbox, &encode(window)?],
    )
    .await?;
    Ok(())
}

pub(super) async fn upsert_cursor(
    conn: &mut Conn,
    account_id: &str,
    mailbox: &str,
    cursor: &Cursor,
) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO mailbox_cursor (account_id, mailbox, value) VALUES ($1, $2, $3) \
         ON CONFLICT (account_id, mailbox) DO UPDATE SET value = EXCLUDED.value",
        &[&account_id, &mailbox, &encode(cursor)?],
    )
    .await?;
    Ok(())
}
