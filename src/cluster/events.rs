//! Events between the nodes of a cluster, over PostgreSQL's LISTEN/NOTIFY:
//! "run a round now" (a node joined or left, an account was added), "the
//! devices of account A changed", "account A is being deleted". NOTIFY is
//! not durable: a node that was not listening catches up by its rounds and
//! its watchers' reconnects.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::ClusterNode;

/// Asks every node for a round.
pub(super) const ROUND: &str = "round";

pub(super) fn devices(account_id: &str) -> String {
    format!("devices:{account_id}")
}

pub(super) fn removed(account_id: &str) -> String {
    format!("removed:{account_id}")
}

/// How long to wait before listening again after the connection ended.
const RELISTEN: Duration = Duration::from_secs(1);

impl ClusterNode {
    /// Listens to the cluster's events and acts on those for this node.
    pub(super) async fn follow_events(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            match self.store.listen().await {
                Ok(mut events) => {
                    // Whatever was said while nobody listened: catch up.
                    self.round_now.notify_one();
                    loop {
                        tokio::select! {
                            event = events.recv() => match event {
                                Some(event) => self.on_event(&event).await,
                                None => break,
                            },
                            _ = shutdown.cancelled() => return,
                        }
                    }
                    tracing::warn!("lost the cluster's event connection; listening again");
                }
                Err(e) => tracing::warn!(error = %e, "cannot listen to the cluster's events"),
            }
            tokio::select! {
                _ = tokio::time::sleep(RELISTEN) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    async fn on_event(&self, event: &str) {
        if event == ROUND {
            self.round_now.notify_one();
        } else if let Some(account_id) = event.strip_prefix("devices:") {
            if self.owns(account_id) {
                self.supervisor.reconfigure(account_id);
            }
        } else if let Some(account_id) = event.strip_prefix("removed:") {
            if self.owns(account_id) {
                self.halt(account_id).await;
            }
        }
    }
}
