//! What the nodes of a cluster share besides the records: node leases on
//! the database clock, account ownership with its fencing epoch, send-job
//! leases, events between nodes (LISTEN/NOTIFY), the watch state of each
//! account as its owner sees it, refused-login counts and key fingerprints.
//!
//! Policy (who claims what, when to give an account up) is the cluster
//! module's (`crate::cluster`); this file only reads and writes.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

use super::conn::pg_error;
use super::PgStore;
use crate::store::{Fence, StoreError, StoreResult};

/// The notification channel of the gateway's events.
pub const CHANNEL: &str = "lemonade_events";

/// A running node: its id and this run's incarnation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdentity {
    pub id: String,
    pub incarnation: i64,
}

/// An account this node owns, with the epoch its writes are fenced with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub account_id: String,
    pub epoch: i64,
}

impl Claimed {
    pub fn fence(&self) -> Fence {
        Fence { epoch: self.epoch }
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn no_node() -> StoreError {
    StoreError::Backend("the store has no node identity".into())
}

/// Accounts nobody owns, or whose owner's lease ran out more than the
/// grace ago (or whose owner restarted since: another incarnation).
const ORPHANED: &str = "(a.owner IS NULL OR NOT EXISTS (\
      SELECT 1 FROM node n WHERE n.id = a.owner AND n.incarnation = a.owner_incarnation \
      AND n.lease_until > now() - make_interval(secs => $1)))";

impl PgStore {
    /// Starts a new incarnation of `node_id` with a lease of `ttl`.
    pub async fn join(&self, node_id: &str, ttl: Duration) -> StoreResult<NodeIdentity> {
        let mut conn = self.conn().await?;
        let row = conn
            .query_opt(
                "INSERT INTO node (id, incarnation, lease_until) \
                 VALUES ($1, 1, now() + make_interval(secs => $2)) \
                 ON CONFLICT (id) DO UPDATE SET incarnation = node.incarnation + 1, \
                   lease_until = EXCLUDED.lease_until, started_at = now() \
                 RETURNING incarnation",
                &[&node_id, &secs(ttl)],
            )
            .await?
            .ok_or_else(no_node)?;
        Ok(NodeIdentity {
            id: node_id.to_string(),
            incarnation: row.get(0),
        })
    }

    /// Extends this node's lease to `ttl` from now (database clock); false
    /// when a newer incarnation of the node id has started.
    pub async fn renew_lease(&self, ttl: Duration) -> StoreResult<bool> {
        let node = self.node.as_ref().ok_or_else(no_node)?;
        let mut conn = self.conn().await?;
        let renewed = conn
            .execute(
                "UPDATE node SET lease_until = now() + make_interval(secs => $3) \
                 WHERE id = $1 AND incarnation = $2",
                &[&node.id, &node.incarnation, &secs(ttl)],
            )
            .await?;
        Ok(renewed > 0)
    }

    /// Ends this node's lease now, after giving up all its accounts and
    /// send jobs, so that the others take them at once (graceful leave).
    pub async fn leave(&self) -> StoreResult<()> {
        let node = self.node.as_ref().ok_or_else(no_node)?;
        let mut conn = self.conn().await?;
        conn.begin().await?;
        conn.execute(
            "UPDATE account SET owner = NULL, owner_incarnation = NULL \
             WHERE owner = $1 AND owner_incarnation = $2",
            &[&node.id, &node.incarnation],
        )
        .await?;
        conn.execute(
            "UPDATE send_job SET lease_owner = NULL, lease_incarnation = NULL \
             WHERE lease_owner = $1 AND lease_incarnation = $2",
            &[&node.id, &node.incarnation],
        )
        .await?;
        conn.execute(
            "UPDATE node SET lease_until = now() WHERE id = $1 AND incarnation = $2",
            &[&node.id, &node.incarnation],
        )
        .await?;
        conn.execute("SELECT pg_notify($1, 'rebalance')", &[&CHANNEL])
            .await?;
        conn.commit().await
    }

    /// Ids of the nodes holding a live lease, sorted.
    pub async fn live_nodes(&self) -> StoreResult<Vec<String>> {
        let mut conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT id FROM node WHERE lease_until > now() ORDER BY id",
                &[],
            )
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// Every account id with its owner (None: orphaned, see [`ORPHANED`]).
    pub async fn ownership(&self, grace: Duration) -> StoreResult<Vec<(String, Option<String>)>> {
        let mut conn = self.conn().await?;
        let sql =
            format!("SELECT a.id, CASE WHEN {ORPHANED} THEN NULL ELSE a.owner END FROM account a");
        let rows = conn.query(&sql, &[&secs(grace)]).await?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    /// Takes ownership of those of `ids` that are still orphaned, raising
    /// their epochs; accounts another node is writing for are skipped.
    pub async fn claim_accounts(
        &self,
        ids: &[String],
        grace: Duration,
    ) -> StoreResult<Vec<Claimed>> {
        let node = self.node.as_ref().ok_or_else(no_node)?;
        let mut conn = self.conn().await?;
        let sql = format!(
            "UPDATE account SET owner = $2, owner_incarnation = $3, epoch = epoch + 1 \
             WHERE id IN (SELECT a.id FROM account a WHERE a.id = ANY($4) AND {ORPHANED} \
                          FOR UPDATE OF a SKIP LOCKED) \
               AND EXISTS (SELECT 1 FROM node WHERE id = $2 AND incarnation = $3 \
                           AND lease_until > now()) \
             RETURNING id, epoch"
        );
        let rows = conn
            .query(&sql, &[&secs(grace), &node.id, &node.incarnation, &ids])
            .await?;
        Ok(rows.iter().map(claimed).collect())
    }

    /// The accounts this incarnation owns.
    pub async fn owned_accounts(&self) -> StoreResult<Vec<Claimed>> {
        let node = self.node.as_ref().ok_or_else(no_node)?;
        let mut conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT id, epoch FROM account WHERE owner = $1 AND owner_incarnation = $2",
                &[&node.id, &node.incarnation],
            )
            .await?;
        Ok(rows.iter().map(claimed).collect())
    }

    /// Gives an account up (its watcher has stopped); false when it was
    /// not this node's with this epoch any more.
    pub async fn release_account(&self, claimed: &Claimed) -> StoreResult<bool> {
        let node = self.node.as_ref().ok_or_else(no_node)?;
        let mut conn = self.conn().await?;
        let released = conn
            .execute(
                "UPDATE account SET owner = NULL, owner_incarnation = NULL \
                 WHERE id = $1 AND owner = $2 AND owner_incarnation = $3 AND epoch = $4",
                &[
                    &claimed.account_id,
                    &node.id,
                    &node.incarnation,
                    &claimed.epoch,
                ],
            )
            .await?;
        Ok(released > 0)
    }

    /// Records the fingerprints of the keys every node must share (the
    /// first node to start sets them); returns the name of the first key
    /// whose recorded fingerprint differs from this node's.
    pub async fn check_keys(&self, keys: &[(&str, &str)]) -> StoreResult<Option<String>> {
        let mut conn = self.conn().await?;
        for (name, fingerprint) in keys {
            conn.execute(
                "INSERT INTO cluster_key (name, fingerprint) VALUES ($1, $2) \
                 ON CONFLICT (name) DO NOTHING",
                &[name, fingerprint],
            )
            .await?;
            let row = conn
                .query_opt(
                    "SELECT fingerprint FROM cluster_key WHERE name = $1",
                    &[name],
                )
                .await?;
            let recorded: Option<String> = row.map(|row| row.get(0));
            if recorded.as_deref() != Some(*fingerprint) {
                return Ok(Some(name.to_string()));
            }
        }
        Ok(None)
    }

    /// Publishes the watch states of accounts this node owns (`None`: the
    /// watcher is gone, nothing to publish).
    pub async fn put_watch_states(
        &self,
        states: &[(String, serde_json::Value)],
    ) -> StoreResult<()> {
        let node = self.node.as_ref().ok_or_else(no_node)?;
        if states.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = states.iter().map(|(id, _)| id.as_str()).collect();
        let values: Vec<&serde_json::Value> = states.iter().map(|(_, v)| v).collect();
        let mut conn = self.conn().await?;
        conn.execute(
            "INSERT INTO watch_state (account_id, node, value) \
             SELECT t.id, $1, t.value FROM unnest($3::text[], $4::jsonb[]) AS t(id, value) \
             JOIN account a ON a.id = t.id AND a.owner = $1 AND a.owner_incarnation = $2 \
             ON CONFLICT (account_id) DO UPDATE SET node = EXCLUDED.node, value = EXCLUDED.value",
            &[&node.id, &node.incarnation, &ids, &values],
        )
        .await?;
        Ok(())
    }

    /// The watch state an account's owner last published, and its node.
    pub async fn watch_state(
        &self,
        account_id: &str,
    ) -> StoreResult<Option<(String, serde_json::Value)>> {
        let mut conn = self.conn().await?;
        let row = conn
            .query_opt(
                "SELECT w.node, w.value FROM watch_state w JOIN account a ON a.id = w.account_id \
                 WHERE w.account_id = $1",
                &[&account_id],
            )
            .await?;
        Ok(row.map(|row| (row.get(0), row.get(1))))
    }

    /// Counts one refusal under each of `keys`, in windows of `window`
    /// (a key whose window has ended starts a new one).
    pub async fn count_failure(&self, keys: &[String], window: Duration) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        conn.execute(
            "INSERT INTO login_failure (key, count, window_start) \
             SELECT k, 1, now() FROM unnest($1::text[]) AS k \
             ON CONFLICT (key) DO UPDATE SET \
               count = CASE WHEN login_failure.window_start <= now() - make_interval(secs => $2) \
                            THEN 1 ELSE login_failure.count + 1 END, \
               window_start = CASE WHEN login_failure.window_start <= now() - make_interval(secs => $2) \
                            THEN now() ELSE login_failure.window_start END",
            &[&keys, &secs(window)],
        )
        .await?;
        Ok(())
    }

    /// How long until every key of `limits` (key, refusals allowed) is
    /// below its limit again; None when all are now.
    pub async fn failure_wait(
        &self,
        limits: &[(String, u32)],
        window: Duration,
    ) -> StoreResult<Option<Duration>> {
        let keys: Vec<&str> = limits.iter().map(|(k, _)| k.as_str()).collect();
        let mut conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT key, count, extract(epoch FROM window_start + make_interval(secs => $2) - now())::float8 \
                 FROM login_failure WHERE key = ANY($1) \
                   AND window_start > now() - make_interval(secs => $2)",
                &[&keys, &secs(window)],
            )
            .await?;
        let mut wait: Option<Duration> = None;
        for row in rows {
            let key: String = row.get(0);
            let count: i32 = row.get(1);
            let left: f64 = row.get(2);
            let allowed = limits
                .iter()
                .find(|(k, _)| *k == key)
                .map_or(u32::MAX, |(_, n)| *n);
            if count as u32 >= allowed {
                let left = Duration::from_secs_f64(left.max(0.0));
                wait = Some(wait.map_or(left, |w| w.max(left)));
            }
        }
        Ok(wait)
    }

    /// Forgets the refusals counted under `key`.
    pub async fn clear_failures(&self, key: &str) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        conn.execute("DELETE FROM login_failure WHERE key = $1", &[&key])
            .await?;
        Ok(())
    }

    /// Tells every node (this one too) of an event.
    pub async fn notify(&self, event: &str) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        conn.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &event])
            .await?;
        Ok(())
    }

    /// Listens to the events of [`CHANNEL`] on a connection of its own
    /// (outside the pool). The receiver ends when that connection does;
    /// listen again then (events meanwhile are lost: NOTIFY is not
    /// durable, which is why the cluster also polls).
    pub async fn listen(&self) -> StoreResult<mpsc::Receiver<String>> {
        let config: tokio_postgres::Config = self
            .options
            .url
            .parse()
            .map_err(|e| StoreError::Backend(format!("database URL: {e}")))?;
        let connect = config.connect(super::conn::tls(&self.options)?);
        let (client, mut connection) = tokio::time::timeout(self.options.call_timeout, connect)
            .await
            .map_err(|_| StoreError::Unavailable("no database connection in time".into()))?
            .map_err(pg_error)?;
        let (tx, rx) = mpsc::channel(1024);
        let client = std::sync::Arc::new(client);
        // The connection lives while its client does: the task keeps both.
        let keep = client.clone();
        tokio::spawn(async move {
            let _client = keep;
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(n)) => {
                        // A full channel drops the event; the poll catches up.
                        let _ = tx.try_send(n.payload().to_string());
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
                if tx.is_closed() {
                    break;
                }
            }
        });
        let listen = format!("LISTEN {CHANNEL}");
        tokio::time::timeout(self.options.call_timeout, client.batch_execute(&listen))
            .await
            .map_err(|_| StoreError::Unavailable("LISTEN not answered in time".into()))?
            .map_err(pg_error)?;
        Ok(rx)
    }
}

fn claimed(row: &tokio_postgres::Row) -> Claimed {
    Claimed {
        account_id: row.get(0),
        epoch: row.get(1),
    }
}
