//! The node's two loops: keeping the lease (and stopping everything when it
//! cannot), and the rounds that make the watchers here match what the
//! database says this node owns and should own.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::placement::plan;
use super::{events, ClusterNode, HAND_OVER_PER_ROUND};
use crate::lease::{local_deadline, margin};
use crate::store::StoreResult;

/// How often changed watch states are published.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);

impl ClusterNode {
    /// Renews the lease every `renew`; when no renewal succeeded for the
    /// lease less its margin, stops every watcher and closes the gate
    /// before another node may claim the accounts.
    pub(super) async fn keep_lease(self: Arc<Self>, shutdown: CancellationToken) {
        let timing = self.timing;
        let mut deadline: Option<Instant> = None;
        loop {
            let sent = Instant::now();
            // Past the deadline (the node was paused, or the renewals
            // failed) the lease counts as lost, even if the next renewal
            // succeeds: another node may have the accounts by now.
            if deadline.is_some_and(|d| sent >= d) {
                tracing::error!(
                    "the node lease could not be renewed in time; stopping all watchers"
                );
                deadline = None;
                self.lose_lease().await;
            }
            let renewed = tokio::time::timeout(timing.renew, self.store.renew_lease(timing.ttl));
            match renewed.await {
                Ok(Ok(true)) => {
                    deadline = Some(local_deadline(sent, timing.ttl, margin(timing.ttl)));
                    if !self.lease.send_replace(true) {
                        tracing::info!("holding the node lease");
                        self.round_now.notify_one();
                    }
                }
                Ok(Ok(false)) => {
                    tracing::error!(
                        "a newer run of this node id has started; stopping all watchers here"
                    );
                    self.lose_lease().await;
                    return;
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot renew the node lease"),
                Err(_) => tracing::warn!("renewing the node lease timed out"),
            }
            let next = sent + timing.renew;
            let lose_at = deadline.filter(|d| *d < next);
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                // Lost at the top of the next turn.
                _ = sleep_until_opt(lose_at) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    async fn lose_lease(&self) {
        self.lease.send_replace(false);
        self.halt_all().await;
    }

    /// Publishes the watch states that changed here, every second, for the
    /// other nodes' API.
    pub(super) async fn publish_states(self: Arc<Self>, shutdown: CancellationToken) {
        let states = self.supervisor.context().states.clone();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(PUBLISH_EVERY) => {}
                _ = shutdown.cancelled() => return,
            }
            if !self.gate.is_held() {
                continue;
            }
            let changed: Vec<(String, serde_json::Value)> = states
                .take_changed()
                .into_iter()
                .filter_map(|(id, view)| Some((id, view?)))
                .filter(|(id, _)| self.owns(id))
                .collect();
            if let Err(e) = self.store.put_watch_states(&changed).await {
                tracing::debug!(error = %e, "cannot publish watch states");
            }
        }
    }

    /// A round every `rebalance`, or at once when asked.
    pub(super) async fn run_rounds(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.timing.rebalance) => {}
                _ = self.round_now.notified() => {}
                _ = shutdown.cancelled() => return,
            }
            if !self.gate.is_held() {
                continue;
            }
            if let Err(e) = self.round().await {
                tracing::warn!(error = %e, "cluster round failed");
            }
        }
    }

    /// Makes the watchers here match the database, then claims and hands
    /// over accounts by the placement.
    async fn round(&self) -> StoreResult<()> {
        let owned = self.store.owned_accounts().await?;
        let owned_ids: HashSet<(String, i64)> = owned
            .iter()
            .map(|c| (c.account_id.clone(), c.epoch))
            .collect();
        let running: Vec<(String, i64)> = self
            .owned_map()
            .values()
            .map(|c| (c.account_id.clone(), c.epoch))
            .collect();
        for (id, epoch) in &running {
            if !owned_ids.contains(&(id.clone(), *epoch)) {
                tracing::info!(account = %id, "account no longer owned here; stopped watching it");
                self.halt(id).await;
            }
        }
        for claimed in owned {
            if !self.owns(&claimed.account_id) {
                self.start(claimed);
            }
        }

        let me = &self.store.node().map(|n| n.id.clone()).unwrap_or_default();
        let live = self.store.live_nodes().await?;
        let ownership = self.store.ownership(self.timing.grace).await?;
        let plan = plan(me, &live, &ownership, HAND_OVER_PER_ROUND);
        if !plan.claim.is_empty() {
            let claimed = self
                .store
                .claim_accounts(&plan.claim, self.timing.grace)
                .await?;
            if !claimed.is_empty() {
                tracing::info!(accounts = claimed.len(), "claimed accounts");
            }
            for claimed in claimed {
                self.start(claimed);
            }
        }
        if !plan.hand_over.is_empty() {
            for id in &plan.hand_over {
                // Watcher stopped (DONE, LOGOUT, cursor written), then released.
                if let Some(claimed) = self.halt(id).await {
                    self.store.release_account(&claimed).await?;
                }
            }
            tracing::info!(accounts = plan.hand_over.len(), "handed accounts over");
            self.store.notify(events::ROUND).await?;
        }
        Ok(())
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
