//! What the API and the delivery actor tell whoever runs the watchers:
//! an account was added or removed, its devices changed. One process runs
//! every watcher itself ([`Supervisor`]); a cluster node passes the news to
//! the account's owner, wherever it runs (`crate::cluster`).

use super::supervisor::Supervisor;
use crate::store::Fence;

/// Changes that the watcher of an account must act on.
#[async_trait::async_trait]
pub trait WatchControl: Send + Sync + 'static {
    /// A new account was stored (or an existing one got new credentials).
    async fn account_added(&self, account_id: &str);
    /// The account's devices (and so perhaps its mailboxes) changed.
    async fn devices_changed(&self, account_id: &str);
    /// The account is being deleted: returns once no watcher of it can
    /// write any more (stopped here, or fenced off elsewhere).
    async fn account_removed(&self, account_id: &str);
}

#[async_trait::async_trait]
impl WatchControl for Supervisor {
    async fn account_added(&self, account_id: &str) {
        self.start(account_id, Fence::SOLE_OWNER);
    }

    async fn devices_changed(&self, account_id: &str) {
        self.reconfigure(account_id);
    }

    async fn account_removed(&self, account_id: &str) {
        self.stop(account_id).await;
    }
}
