//! Cluster mode: several gateway nodes on one PostgreSQL database share the
//! accounts, and the loss of a node costs no mail.
//!
//! Each node holds a lease in the database (`lease.rs` has the local
//! side), renewed every `cluster.lease_renew_secs` for
//! `cluster.lease_ttl_secs`. Each account has an owner and an epoch raised
//! at every change of owner; a watcher's writes are fenced with it
//! (`store::Fence`), so a node that was paused or cut off writes nothing
//! once its accounts have moved. Every `cluster.rebalance_secs`, and
//! whenever another node says so, a node compares who owns what with who
//! should (rendezvous hashing, `placement.rs`): it claims orphaned
//! accounts it should have, hands over those another live node should
//! have, and restarts or stops its watchers to match what the database
//! says it owns. News for an account's watcher (devices changed, account
//! deleted) travels between nodes by LISTEN/NOTIFY (`events.rs`).

mod events;
pub mod placement;
mod rounds;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ClusterConfig;
use crate::lease::LeaseGate;
use crate::store::postgres::Claimed;
use crate::store::PgStore;
use crate::watch::{Supervisor, WatchControl};

/// How a node times its lease and rounds.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub ttl: Duration,
    pub renew: Duration,
    pub grace: Duration,
    pub rebalance: Duration,
}

impl Timing {
    pub fn of(config: &ClusterConfig) -> Timing {
        Timing {
            ttl: Duration::from_secs(config.lease_ttl_secs),
            renew: Duration::from_secs(config.lease_renew_secs),
            grace: Duration::from_secs(config.claim_grace_secs),
            rebalance: Duration::from_secs(config.rebalance_secs),
        }
    }
}

/// At most this many accounts are handed over per round.
const HAND_OVER_PER_ROUND: usize = 500;

/// One node of a cluster.
pub struct ClusterNode {
    store: Arc<PgStore>,
    supervisor: Supervisor,
    timing: Timing,
    /// The accounts whose watchers run here, with the epoch they write under.
    owned: Mutex<HashMap<String, Claimed>>,
    lease: watch::Sender<bool>,
    gate: LeaseGate,
    /// Asks for a round now (another node joined or left, an account was
    /// added, the lease came back).
    round_now: Notify,
}

impl ClusterNode {
    /// A node of the cluster, not yet holding its lease: `store` writes
    /// for this node (see `PgStore::join`).
    /// `lease` opens and closes `gate`, which the delivery actor and the
    /// readiness answer watch.
    pub fn new(
        store: Arc<PgStore>,
        supervisor: Supervisor,
        timing: Timing,
        lease: watch::Sender<bool>,
    ) -> Arc<ClusterNode> {
        let gate = LeaseGate::of(lease.subscribe());
        Arc::new(ClusterNode {
            store,
            supervisor,
            timing,
            owned: Mutex::default(),
            lease,
            gate,
            round_now: Notify::new(),
        })
    }

    /// Open while this node holds its lease.
    pub fn gate(&self) -> LeaseGate {
        self.gate.clone()
    }

    /// Whether this node watches the account now.
    pub fn owns(&self, account_id: &str) -> bool {
        self.owned_map().contains_key(account_id)
    }

    fn owned_map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Claimed>> {
        self.owned.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs the lease, the rounds and the events until `shutdown`.
    pub fn spawn(self: &Arc<Self>, tracker: &TaskTracker, shutdown: CancellationToken) {
        tracker.spawn(self.clone().keep_lease(shutdown.clone()));
        tracker.spawn(self.clone().run_rounds(shutdown.clone()));
        tracker.spawn(self.clone().publish_states(shutdown.clone()));
        tracker.spawn(self.clone().follow_events(shutdown));
    }

    /// Leaves the cluster after the watchers stopped: releases the
    /// accounts and ends the lease, so the others take over at once.
    pub async fn leave(&self) {
        self.lease.send_replace(false);
        match self.store.leave().await {
            Ok(()) => tracing::info!("left the cluster; accounts released"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot leave the cluster; the others take over when the lease runs out")
            }
        }
    }

    /// Starts watching an account this node has claimed.
    fn start(&self, claimed: Claimed) {
        self.supervisor.start(&claimed.account_id, claimed.fence());
        self.owned_map().insert(claimed.account_id.clone(), claimed);
    }

    /// Stops watching an account (it moved, or is being deleted); returns
    /// what this node held of it.
    async fn halt(&self, account_id: &str) -> Option<Claimed> {
        let claimed = self.owned_map().remove(account_id);
        self.supervisor.halt(account_id).await;
        claimed
    }

    /// Stops every watcher at once (the lease is lost).
    async fn halt_all(&self) {
        let ids: Vec<String> = self.owned_map().keys().cloned().collect();
        let halts = ids.iter().map(|id| self.halt(id));
        futures_util::future::join_all(halts).await;
    }
}

#[async_trait::async_trait]
impl WatchControl for ClusterNode {
    async fn account_added(&self, account_id: &str) {
        // Registered again (new credentials, a renewed sign-in): the owner,
        // here or elsewhere, starts a watcher that had stopped on refused
        // credentials.
        self.devices_changed(account_id).await;
        // New: whichever node should own it claims it in the round this starts.
        if let Err(e) = self.store.notify(events::ROUND).await {
            tracing::warn!(error = %e, "cannot tell the cluster of a new account; it is claimed at the next round");
        }
    }

    async fn devices_changed(&self, account_id: &str) {
        if self.owns(account_id) {
            self.supervisor.reconfigure(account_id);
            return;
        }
        if let Err(e) = self.store.notify(&events::devices(account_id)).await {
            tracing::warn!(error = %e, "cannot tell the cluster of a device change; the owner sees it at its next reconnect");
        }
    }

    async fn account_removed(&self, account_id: &str) {
        self.halt(account_id).await;
        // The owner elsewhere is fenced off once the records are gone; this
        // stops it at once.
        let _ = self.store.notify(&events::removed(account_id)).await;
    }
}
