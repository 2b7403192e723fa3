//! The supervisor: starts, reconfigures and stops one actor per account, and
//! limits concurrent connection attempts per upstream host.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::account::AccountActor;
use super::pipelining::PipeliningHosts;
use super::status::WatchStates;
use crate::config::Config;
use crate::credentials::Credentials;
use crate::metrics::Metrics;
use crate::net::TlsConnector;
use crate::notify::Notifier;
use crate::store::{Fence, Store};

/// What every account actor shares.
pub struct WatchContext {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub credentials: Arc<Credentials>,
    pub tls: TlsConnector,
    pub notifier: Notifier,
    pub states: WatchStates,
    pub metrics: Arc<Metrics>,
    pub limiter: HostLimiter,
    /// Hosts whose connections send DONE, commands and IDLE one at a time.
    pub pipelining: PipeliningHosts,
    /// Sends the account's devices the news that its login was refused.
    pub pusher: Arc<dyn crate::notify::PushSender>,
    /// Tells devices of mail read elsewhere.
    pub reads: crate::notify::ReadNotifier,
    /// Wall time, against which devices' quiet hours are read.
    pub clock: crate::clock::WallClock,
}

/// At most N connection attempts (connect, TLS, login) at once per upstream
/// server (host and port), so that a reconnect storm does not look like an
/// attack. Keyed by the port too: one host may serve many, and one
/// account's server must not hold back another's on the same host.
///
/// A server's entry lives while a connect to it runs or waits: entries
/// nobody holds are swept whenever the table has doubled since the last
/// sweep, so servers of deleted accounts (or names a hostile registrant
/// invents) do not pile up.
#[derive(Clone)]
pub struct HostLimiter {
    per_host: usize,
    hosts: Arc<Mutex<Servers>>,
}

/// An upstream server: its host name in lower case, and its port.
type Server = (String, u16);

#[derive(Default)]
struct Servers {
    slots: HashMap<Server, Arc<Semaphore>>,
    /// Sweep when the table reaches this size.
    sweep_at: usize,
}

/// The table size below which no sweep is made.
const SWEEP_FLOOR: usize = 64;

impl HostLimiter {
    pub fn new(per_host: usize) -> Self {
        HostLimiter {
            per_host,
            hosts: Arc::default(),
        }
    }

    /// Waits for a connect slot towards `host:port` (None only if the
    /// limiter was closed).
    pub async fn acquire(&self, host: &str, port: u16) -> Option<OwnedSemaphorePermit> {
        let semaphore = {
            let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
            if hosts.slots.len() >= hosts.sweep_at {
                // The table's own reference is the only one: no connect
                // runs (a permit holds its semaphore) and none waits.
                hosts.slots.retain(|_, slot| Arc::strong_count(slot) > 1);
                hosts.sweep_at = hosts.slots.len().saturating_mul(2).max(SWEEP_FLOOR);
            }
            hosts
                .slots
                .entry((host.to_ascii_lowercase(), port))
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_host)))
                .clone()
        };
        semaphore.acquire_owned().await.ok()
    }
}

/// How long deleting an account waits for its watcher to stop (it says
/// DONE and LOGOUT within two seconds per connection).
const STOP_WAIT: Duration = Duration::from_secs(10);

struct Running {
    cancel: CancellationToken,
    reconfigure: watch::Sender<u64>,
    /// The actor's task, to wait for when the account is deleted. (An actor
    /// that ended by itself, on refused credentials, keeps its task's memory
    /// until the account is registered again or deleted.)
    task: JoinHandle<()>,
    /// What its writes are fenced with, to start it again.
    fence: Fence,
}

/// Keeps one actor per account running.
#[derive(Clone)]
pub struct Supervisor {
    ctx: Arc<WatchContext>,
    running: Arc<Mutex<HashMap<String, Running>>>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Supervisor {
    pub fn new(ctx: Arc<WatchContext>, shutdown: CancellationToken, tracker: TaskTracker) -> Self {
        Supervisor {
            ctx,
            running: Arc::default(),
            shutdown,
            tracker,
        }
    }

    pub fn context(&self) -> &Arc<WatchContext> {
        &self.ctx
    }

    /// Starts watching every stored account.
    pub async fn start_all(&self) -> Result<usize, crate::store::StoreError> {
        let accounts = self.ctx.store.accounts().await?;
        for account in &accounts {
            self.start(&account.id, Fence::SOLE_OWNER);
        }
        Ok(accounts.len())
    }

    /// Starts (or restarts) the actor of an account, which writes under
    /// `fence`.
    pub fn start(&self, account_id: &str, fence: Fence) {
        let cancel = self.shutdown.child_token();
        let (reconfigure, changes) = watch::channel(0);
        let actor = AccountActor::new(
            self.ctx.clone(),
            account_id.to_string(),
            fence,
            changes,
            cancel.clone(),
        );
        // Spawned under the lock, so a stop that follows finds this task.
        let previous = {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            let task = self.tracker.spawn(actor.run());
            running.insert(
                account_id.to_string(),
                Running {
                    cancel,
                    reconfigure,
                    task,
                    fence,
                },
            )
        };
        if let Some(previous) = previous {
            previous.cancel.cancel();
        }
    }

    /// Tells an account's actor that its devices (and so its mailboxes)
    /// or its credentials changed; an actor that had stopped on refused
    /// credentials starts again.
    pub fn reconfigure(&self, account_id: &str) {
        let ended = {
            let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            match running.get(account_id) {
                Some(r) if r.task.is_finished() => Some(r.fence),
                Some(r) => {
                    r.reconfigure.send_modify(|n| *n += 1);
                    None
                }
                None => None,
            }
        };
        if let Some(fence) = ended {
            self.start(account_id, fence);
        }
    }

    /// Stops watching an account (it moved to another node, or this node
    /// lost its lease) and waits, at most [`STOP_WAIT`], until its actor
    /// has ended (said DONE and LOGOUT). Returns the actor's task when it
    /// has not ended by then.
    pub async fn halt(&self, account_id: &str) -> Option<JoinHandle<()>> {
        let removed = {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            running.remove(account_id)
        };
        let lists = self.ctx.states.remove(account_id);
        self.ctx
            .metrics
            .status_lists
            .store(lists as u64, std::sync::atomic::Ordering::Relaxed);
        let mut r = removed?;
        r.cancel.cancel();
        match tokio::time::timeout(STOP_WAIT, &mut r.task).await {
            Ok(_) => None,
            Err(_) => Some(r.task),
        }
    }

    /// Stops watching an account that is being deleted (see [`Self::halt`]):
    /// a check under way then cannot write a cursor or a push after the
    /// account's records are gone. An actor still running after the wait
    /// (a command waiting for its timeout) is waited for in the background,
    /// and the account's records deleted again when it ends.
    pub async fn stop(&self, account_id: &str) {
        let Some(task) = self.halt(account_id).await else {
            return;
        };
        tracing::warn!(account = %account_id, "watcher still stopping; deleting the account now, and what the watcher writes once it ends");
        let store = self.ctx.store.clone();
        let account_id = account_id.to_string();
        self.tracker.spawn(async move {
            let _ = task.await;
            let deleted = match store.delete_account(&account_id).await {
                Ok(_) => store.flush().await,
                Err(e) => Err(e),
            };
            match deleted {
                Ok(()) => tracing::info!(account = %account_id, "watcher of a deleted account ended; its records are gone"),
                Err(e) => tracing::warn!(account = %account_id, error = %e, "cannot delete what a stopped watcher left"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connects_are_limited_per_host_and_port() {
        use futures_util::FutureExt;

        let limiter = HostLimiter::new(1);
        let now = |host: &'static str, port| limiter.acquire(host, port).now_or_never().flatten();
        let _imaps = now("mail.example.org", 993).unwrap();
        // Another server on the same host is not held back.
        let _imap = now("mail.example.org", 143).expect("held back by another port");
        let _other = now("other.example.org", 993).unwrap();
        // The same server is, whatever the case of its name.
        let same = limiter.acquire("MAIL.example.org", 993);
        tokio::pin!(same);
        assert!(same.as_mut().now_or_never().is_none());
        drop(_imaps);
        assert!(same.await.is_some());
    }

    #[tokio::test]
    async fn servers_nobody_connects_to_are_forgotten() {
        let limiter = HostLimiter::new(1);
        let held = limiter.acquire("kept.example.org", 993).await.unwrap();
        for port in 0..10_000 {
            drop(limiter.acquire("gone.example.org", port).await);
        }
        let table = limiter.hosts.lock().unwrap();
        assert!(
            table.slots.len() <= 2 * SWEEP_FLOOR,
            "{}",
            table.slots.len()
        );
        assert!(table.slots.contains_key(&("kept.example.org".into(), 993)));
        drop(held);
    }
}
