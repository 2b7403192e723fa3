//! Per-account IMAP sessions for API requests, separate from the watchers.
//!
//! A request checks a session out ([`SessionPool::session`]); dropping the
//! [`PooledSession`] hands it back unless the connection broke. At most
//! `read.sessions_per_account` sessions per account exist at once (requests
//! beyond wait). A reaper logs out sessions unused for `read.idle_secs`, so
//! an account costs nothing here between bursts of phone activity.
//! Credentials are read from the store and unsealed at each connect only.
//!
//! An account whose server broke a session by sending what the client could
//! not take (a response too large, garbage) cools down: for a while its
//! requests are refused at once (`ReadError::CoolingDown`) instead of each
//! connecting and reading the same flood again. The pause starts at
//! [`COOL_MIN`] and doubles up to [`COOL_MAX`] while it recurs; a session
//! handed back whole ends it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::ReadError;
use crate::config::Config;
use crate::credentials::Credentials;
use crate::imap::ImapClient;
use crate::net::{TlsConnector, Upstream};
use crate::store::Store;

/// A session unused for this long is checked with NOOP before reuse.
const CHECK_AFTER: Duration = Duration::from_secs(20);

/// The first pause after a session the server broke.
pub const COOL_MIN: Duration = Duration::from_secs(1);
/// The longest pause.
pub const COOL_MAX: Duration = Duration::from_secs(300);

struct Idle {
    client: ImapClient,
    since: Instant,
}

#[derive(Default)]
struct Slot {
    idle: Vec<Idle>,
    permits: Option<Arc<Semaphore>>,
    /// No new request before this (the server broke a session).
    cool_until: Option<Instant>,
    /// The next pause, doubling while the server keeps breaking sessions.
    next_cool: Duration,
}

impl Slot {
    /// The server broke a session: pause the account's requests.
    fn cool_down(&mut self, now: Instant) {
        let pause = self.next_cool.max(COOL_MIN);
        self.cool_until = Some(now + pause);
        self.next_cool = pause.saturating_mul(2).min(COOL_MAX);
    }

    /// How long requests must still wait, if at all.
    fn cooling(&self, now: Instant) -> Option<Duration> {
        self.cool_until
            .filter(|&until| until > now)
            .map(|until| until - now)
    }
}

struct Inner {
    config: Arc<Config>,
    store: Arc<dyn Store>,
    credentials: Arc<Credentials>,
    tls: TlsConnector,
    slots: Mutex<HashMap<String, Slot>>,
}

/// The pool of API sessions of all accounts. Cheap to clone.
#[derive(Clone)]
pub struct SessionPool {
    inner: Arc<Inner>,
}

/// A logged-in session of one account; returned to the pool when dropped.
pub struct PooledSession {
    client: Option<ImapClient>,
    account_id: String,
    inner: Arc<Inner>,
    _permit: OwnedSemaphorePermit,
}

impl std::ops::Deref for PooledSession {
    type Target = ImapClient;
    fn deref(&self) -> &ImapClient {
        // Present from creation until drop.
        self.client.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl std::ops::DerefMut for PooledSession {
    fn deref_mut(&mut self) -> &mut ImapClient {
        self.client.as_mut().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for PooledSession {
    fn drop(&mut self) {
        let Some(mut client) = self.client.take() else {
            return;
        };
        if client.is_broken() {
            if client.misbehaved() {
                if let Ok(mut slots) = self.inner.slots.lock() {
                    let slot = slots.entry(self.account_id.clone()).or_default();
                    slot.cool_down(Instant::now());
                }
            }
            return;
        }
        // Unsolicited news of the mailbox is of no use to the next request.
        client.take_events();
        if let Ok(mut slots) = self.inner.slots.lock() {
            let slot = slots.entry(self.account_id.clone()).or_default();
            slot.next_cool = Duration::ZERO;
            slot.idle.push(Idle {
                client,
                since: Instant::now(),
            });
        }
    }
}

impl SessionPool {
    /// A pool. Run [`SessionPool::reaper`] beside it to close idle sessions.
    pub fn new(
        config: Arc<Config>,
        store: Arc<dyn Store>,
        credentials: Arc<Credentials>,
        tls: TlsConnector,
    ) -> Self {
        SessionPool {
            inner: Arc::new(Inner {
                config,
                store,
                credentials,
                tls,
                slots: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Logs out sessions unused for `read.idle_secs`, until `shutdown`;
    /// then logs out every idle session. Spawn it on the gateway's task
    /// tracker, so shutdown waits for it (it holds the store).
    pub fn reaper(&self, shutdown: CancellationToken) -> impl std::future::Future<Output = ()> {
        let pool = self.clone();
        async move {
            let idle = Duration::from_secs(pool.inner.config.read.idle_secs);
            let mut tick = tokio::time::interval((idle / 4).max(Duration::from_secs(1)));
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => pool.reap(idle).await,
                }
            }
            pool.reap(Duration::ZERO).await;
        }
    }

    /// Logs out sessions idle for at least `idle`, all at once.
    async fn reap(&self, idle: Duration) {
        let expired: Vec<ImapClient> = match self.inner.slots.lock() {
            Ok(mut slots) => {
                let mut out = Vec::new();
                for slot in slots.values_mut() {
                    let (old, keep): (Vec<Idle>, Vec<Idle>) = std::mem::take(&mut slot.idle)
                        .into_iter()
                        .partition(|s| s.since.elapsed() >= idle);
                    slot.idle = keep;
                    out.extend(old.into_iter().map(|s| s.client));
                }
                let now = Instant::now();
                slots.retain(|_, s| {
                    !s.idle.is_empty()
                        || s.permits.as_ref().is_some_and(|p| Arc::strong_count(p) > 1)
                        || s.cooling(now).is_some()
                });
                out
            }
            Err(_) => Vec::new(),
        };
        let mut logouts = tokio::task::JoinSet::new();
        for client in expired {
            logouts.spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(5), client.logout()).await;
            });
        }
        while logouts.join_next().await.is_some() {}
    }

    /// How many sessions are open and unused (for tests and metrics).
    pub fn idle_sessions(&self) -> usize {
        self.inner
            .slots
            .lock()
            .map(|s| s.values().map(|slot| slot.idle.len()).sum())
            .unwrap_or(0)
    }

    /// A logged-in session of `account_id`: an idle one when there is one,
    /// else a new connection (QRESYNC enabled where offered). Refused at
    /// once while the account cools down.
    pub async fn session(&self, account_id: &str) -> Result<PooledSession, ReadError> {
        let permits = {
            let mut slots = self.inner.slots.lock().map_err(|_| ReadError::Poisoned)?;
            let slot = slots.entry(account_id.to_string()).or_default();
            if let Some(wait) = slot.cooling(Instant::now()) {
                return Err(ReadError::CoolingDown(wait));
            }
            slot.permits
                .get_or_insert_with(|| {
                    Arc::new(Semaphore::new(self.inner.config.read.sessions_per_account))
                })
                .clone()
        };
        let permit = permits
            .acquire_owned()
            .await
            .map_err(|_| ReadError::Poisoned)?;
        loop {
            let reused = {
                let mut slots = self.inner.slots.lock().map_err(|_| ReadError::Poisoned)?;
                slots.get_mut(account_id).and_then(|s| s.idle.pop())
            };
            let Some(mut idle) = reused else {
                break;
            };
            if idle.since.elapsed() < CHECK_AFTER || idle.client.noop().await.is_ok() {
                idle.client.take_events();
                return Ok(PooledSession {
                    client: Some(idle.client),
                    account_id: account_id.to_string(),
                    inner: self.inner.clone(),
                    _permit: permit,
                });
            }
        }
        let client = self.connect(account_id).await?;
        Ok(PooledSession {
            client: Some(client),
            account_id: account_id.to_string(),
            inner: self.inner.clone(),
            _permit: permit,
        })
    }

    async fn connect(&self, account_id: &str) -> Result<ImapClient, ReadError> {
        let account = self
            .inner
            .store
            .account(account_id)
            .await?
            .ok_or(ReadError::NoAccount)?;
        let upstream = Upstream {
            host: account.imap.host.clone(),
            port: account.imap.port,
            security: account.imap.security,
        };
        let timeout = Duration::from_secs(self.inner.config.upstream.connect_timeout_secs);
        let mut client = ImapClient::connect(&upstream, &self.inner.tls, timeout).await?;
        self.inner
            .credentials
            .login_imap(&mut client, &account)
            .await?;
        let caps = client.capabilities();
        if caps.has("ENABLE") {
            if caps.has("QRESYNC") {
                client.enable(&["QRESYNC"]).await?;
            } else if caps.has("CONDSTORE") {
                client.enable(&["CONDSTORE"]).await?;
            }
        }
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_while_the_server_keeps_breaking_sessions() {
        let now = Instant::now();
        let mut slot = Slot::default();
        assert_eq!(slot.cooling(now), None);
        slot.cool_down(now);
        assert_eq!(slot.cooling(now), Some(COOL_MIN));
        slot.cool_down(now);
        assert_eq!(slot.cooling(now), Some(2 * COOL_MIN));
        for _ in 0..20 {
            slot.cool_down(now);
        }
        assert_eq!(slot.cooling(now), Some(COOL_MAX));
        assert_eq!(slot.cooling(now + COOL_MAX), None);
    }
}
