//! Async locks by name, ordering steps of this process that must not
//! interleave: two registrations of one login (a phone retrying on a flaky
//! link) take turns, so the second finds the first's account; deleting an
//! account waits for an upload's record being written; a resumable upload
//! is appended to by one request at a time (a second `PATCH` while one
//! streams is refused with `try_lock` rather than queued).
//!
//! What must hold across processes sharing a store (one account per login,
//! one device per push endpoint, the device limit) the store checks itself
//! (see `Store`); these locks only spare this process needless work and
//! races of its own. Only short steps are held under a lock; the slow
//! checks (IMAP logins, DNS) run before it is taken. A name is kept only
//! while somebody holds or waits for its lock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::OwnedMutexGuard;

/// Names held before unused ones are swept.
const SWEEP_FIRST_AT: usize = 1024;

type Lock = tokio::sync::Mutex<()>;

#[derive(Debug)]
struct Names {
    locks: HashMap<String, Weak<Lock>>,
    /// Sweep unused names when this many are kept: twice the count after
    /// the last sweep, so sweeping costs O(1) per call on average.
    sweep_at: usize,
}

#[derive(Debug)]
pub struct KeyedLocks {
    names: Mutex<Names>,
}

impl Default for KeyedLocks {
    fn default() -> Self {
        KeyedLocks {
            names: Mutex::new(Names {
                locks: HashMap::new(),
                sweep_at: SWEEP_FIRST_AT,
            }),
        }
    }
}

impl KeyedLocks {
    /// Waits for the lock of `name`; it is released when the guard drops.
    pub async fn lock(&self, name: &str) -> OwnedMutexGuard<()> {
        self.named(name).lock_owned().await
    }

    /// The lock of `name` if nobody holds it now.
    pub fn try_lock(&self, name: &str) -> Option<OwnedMutexGuard<()>> {
        self.named(name).try_lock_owned().ok()
    }

    fn named(&self, name: &str) -> Arc<Lock> {
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        if names.locks.len() >= names.sweep_at {
            names.locks.retain(|_, lock| lock.strong_count() > 0);
            names.sweep_at = (names.locks.len() * 2).max(SWEEP_FIRST_AT);
        }
        match names.locks.get(name).and_then(Weak::upgrade) {
            Some(lock) => lock,
            None => {
                let lock = Arc::new(Lock::new(()));
                names.locks.insert(name.to_string(), Arc::downgrade(&lock));
                lock
            }
        }
    }

    #[cfg(test)]
    fn kept(&self) -> usize {
        self.names.lock().unwrap().locks.len()
    }
}

#[cfg(test)]
mod tests {
    use std::future::{poll_fn, Future};
    use std::pin::Pin;
    use std::task::Poll;

    use super::*;

    /// Polls once: whether the lock is still being waited for.
    async fn waits<F: Future + Unpin>(future: &mut F) -> bool {
        poll_fn(|cx| Poll::Ready(Pin::new(&mut *future).poll(cx).is_pending())).await
    }

    #[tokio::test]
    async fn one_holder_per_name_and_other_names_go_ahead() {
        let locks = KeyedLocks::default();
        let held = locks.lock("account:a").await;
        // Another name is not held up.
        let other = locks.lock("account:b").await;
        drop(other);
        // The same name waits until the holder lets go.
        let mut waiting = Box::pin(locks.lock("account:a"));
        assert!(waits(&mut waiting).await);
        assert!(locks.try_lock("account:a").is_none());
        drop(held);
        let again = waiting.await;
        drop(again);
        assert!(locks.try_lock("account:a").is_some());
    }

    #[tokio::test]
    async fn unused_names_are_swept() {
        let locks = KeyedLocks::default();
        let kept = locks.lock("kept").await;
        for i in 0..SWEEP_FIRST_AT * 3 {
            drop(locks.lock(&format!("gone {i}")).await);
        }
        assert!(locks.kept() <= SWEEP_FIRST_AT, "{} kept", locks.kept());
        // The held name survives the sweeps and still excludes.
        let mut waiting = Box::pin(locks.lock("kept"));
        assert!(waits(&mut waiting).await);
        drop(kept);
        waiting.await;
    }
}
