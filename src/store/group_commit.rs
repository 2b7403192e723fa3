//! Group commit: many tasks ask for durability, one flush serves them all.
//!
//! Every watcher and the delivery actor call `flush` after their writes. A
//! flush of the whole database costs the same whether it covers one write or
//! a thousand, so one thread does the flushing: each caller takes a ticket,
//! and is answered by the first flush that *started* after its ticket was
//! taken (its writes happened before, so that flush covers them). Under load
//! a flush serves every write that arrived while the previous one ran.
//!
//! Under load a commit window makes the thread wait a moment before
//! flushing, so that one flush serves more writers: fewer flushes (each a
//! write, an fsync and a round of thread wake-ups in sled) for a few
//! milliseconds of latency. It only waits after a round that served more
//! than one request: a lone writer (an API call, a send, one new mail) is
//! flushed at once.
//!
//! The flushing thread is plain `std` (its wait is a thread sleep, not
//! runtime time): no runtime is needed to create the store, and a caller
//! that stops waiting (its task was cancelled) leaves nothing half-done.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::watch;

/// The last finished flush: it covered every ticket up to `through`.
#[derive(Clone, Debug, Default)]
struct Round {
    through: u64,
    error: Option<String>,
}

#[derive(Default)]
struct Requests {
    /// The last ticket handed out.
    taken: u64,
    stop: bool,
}

struct Shared {
    requests: Mutex<Requests>,
    wake: Condvar,
    done: watch::Sender<Round>,
}

/// Serves flush requests from one thread, one flush per round.
pub struct GroupCommit {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl GroupCommit {
    /// Starts the flushing thread; `flush` makes every earlier write durable.
    /// After a round that served more than one request, the next starts
    /// `window` after its first request.
    pub fn start<F>(name: &str, window: Duration, mut flush: F) -> std::io::Result<GroupCommit>
    where
        F: FnMut() -> Result<(), String> + Send + 'static,
    {
        let shared = Arc::new(Shared {
            requests: Mutex::new(Requests::default()),
            wake: Condvar::new(),
            done: watch::Sender::new(Round::default()),
        });
        let thread = std::thread::Builder::new().name(name.to_string()).spawn({
            let shared = shared.clone();
            move || {
                let mut through = 0;
                // Whether the last round served more than one request.
                let mut busy = false;
                loop {
                    let target = {
                        let mut requests = lock(&shared.requests);
                        while requests.taken == through && !requests.stop {
                            requests = shared
                                .wake
                                .wait(requests)
                                .unwrap_or_else(|e| e.into_inner());
                        }
                        if busy && !window.is_zero() && !requests.stop {
                            drop(requests);
                            std::thread::sleep(window);
                            requests = lock(&shared.requests);
                        }
                        if requests.taken == through {
                            return; // stopping, and nobody is waiting
                        }
                        busy = requests.taken - through > 1;
                        requests.taken
                    };
                    // A panicking flush fails its round instead of leaving
                    // every waiter waiting for a thread that is gone.
                    let error = match std::panic::catch_unwind(AssertUnwindSafe(&mut flush)) {
                        Ok(result) => result.err(),
                        Err(_) => Some("the flush panicked".to_string()),
                    };
                    through = target;
                    shared.done.send_replace(Round { through, error });
                }
            }
        })?;
        Ok(GroupCommit {
            shared,
            thread: Some(thread),
        })
    }

    /// Asks for a flush that starts after this call, without waiting for it;
    /// returns its ticket.
    pub fn request(&self) -> u64 {
        let ticket = {
            let mut requests = lock(&self.shared.requests);
            requests.taken += 1;
            requests.taken
        };
        self.shared.wake.notify_one();
        ticket
    }

    /// Waits until a flush that started after this call has finished.
    pub async fn flush(&self) -> Result<(), String> {
        let mut rounds = self.shared.done.subscribe();
        let ticket = self.request();
        let round = rounds
            .wait_for(|round| round.through >= ticket)
            .await
            .map_err(|_| "the flushing thread stopped".to_string())?;
        match &round.error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        lock(&self.shared.requests).stop = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock(m: &Mutex<Requests>) -> std::sync::MutexGuard<'_, Requests> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// A flush that reports when it starts and waits to be let go.
    fn gated() -> (GroupCommit, mpsc::Receiver<()>, mpsc::SyncSender<bool>) {
        gated_with(Duration::ZERO)
    }

    fn gated_with(window: Duration) -> (GroupCommit, mpsc::Receiver<()>, mpsc::SyncSender<bool>) {
        let (started_tx, started) = mpsc::channel();
        let (release, release_rx) = mpsc::sync_channel::<bool>(0);
        let commit = GroupCommit::start("test-flush", window, move || {
            started_tx.send(()).unwrap();
            match release_rx.recv() {
                Ok(true) => Ok(()),
                _ => Err("disk on fire".to_string()),
            }
        })
        .unwrap();
        (commit, started, release)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flush_under_way_does_not_answer_later_requests() {
        let (commit, started, release) = gated();
        let commit = Arc::new(commit);
        let first = tokio::spawn({
            let commit = commit.clone();
            async move { commit.flush().await }
        });
        started.recv().unwrap();
        // Asked while the first round runs: must wait for a second round.
        let later: Vec<_> = (0..3)
            .map(|_| {
                let commit = commit.clone();
                tokio::spawn(async move { commit.flush().await })
            })
            .collect();
        while lock(&commit.shared.requests).taken < 4 {
            tokio::task::yield_now().await;
        }
        release.send(true).unwrap();
        assert_eq!(first.await.unwrap(), Ok(()));
        assert!(later.iter().all(|t| !t.is_finished()));
        // One more round serves all three.
        started.recv().unwrap();
        release.send(true).unwrap();
        for t in later {
            assert_eq!(t.await.unwrap(), Ok(()));
        }
        assert!(started.try_recv().is_err(), "a third flush ran");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_nobody_waits_for_is_flushed() {
        let (commit, started, release) = gated();
        commit.request();
        started.recv().unwrap();
        release.send(true).unwrap();
        // A flush asked for afterwards is a round of its own.
        let waiting = tokio::spawn(async move { commit.flush().await });
        started.recv().unwrap();
        release.send(true).unwrap();
        assert_eq!(waiting.await.unwrap(), Ok(()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_flush_fails_the_requests_it_served() {
        let (commit, started, release) = gated();
        let commit = Arc::new(commit);
        let waiting = tokio::spawn({
            let commit = commit.clone();
            async move { commit.flush().await }
        });
        started.recv().unwrap();
        release.send(false).unwrap();
        assert_eq!(waiting.await.unwrap(), Err("disk on fire".to_string()));
        // The next request gets a round of its own.
        let next = tokio::spawn({
            let commit = commit.clone();
            async move { commit.flush().await }
        });
        started.recv().unwrap();
        release.send(true).unwrap();
        assert_eq!(next.await.unwrap(), Ok(()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn under_load_requests_within_the_window_share_one_flush() {
        let (commit, started, release) = gated_with(Duration::from_secs(2));
        let commit = Arc::new(commit);
        let ask = |commit: &Arc<GroupCommit>| {
            let commit = commit.clone();
            tokio::spawn(async move { commit.flush().await })
        };
        // A lone request is flushed at once, without waiting for the window.
        let lone = ask(&commit);
        started.recv().unwrap();
        // Two more arrive while it runs: the next round serves both, and so
        // counts as load.
        let pair = [ask(&commit), ask(&commit)];
        while lock(&commit.shared.requests).taken < 3 {
            tokio::task::yield_now().await;
        }
        release.send(true).unwrap();
        assert_eq!(lone.await.unwrap(), Ok(()));
        started.recv().unwrap();
        let late = ask(&commit);
        while lock(&commit.shared.requests).taken < 4 {
            tokio::task::yield_now().await;
        }
        release.send(true).unwrap();
        for t in pair {
            assert_eq!(t.await.unwrap(), Ok(()));
        }
        // After a busy round the thread waits the window: the ten requests
        // taken now, back to back in one poll, join the late one's round.
        let releaser = std::thread::spawn(move || {
            started.recv().unwrap();
            release.send(true).unwrap();
            started
        });
        let all = futures_util::future::join_all((0..10).map(|_| commit.flush())).await;
        let started = releaser.join().unwrap();
        assert!(all.iter().all(Result::is_ok));
        assert_eq!(late.await.unwrap(), Ok(()));
        assert!(started.try_recv().is_err(), "a fourth flush ran");
    }

    #[tokio::test]
    async fn a_panicking_flush_fails_its_round_and_the_thread_goes_on() {
        let mut calls = 0;
        let commit = GroupCommit::start("test-flush", Duration::ZERO, move || {
            calls += 1;
            if calls == 1 {
                panic!("flush bug");
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(commit.flush().await, Err("the flush panicked".to_string()));
        assert_eq!(commit.flush().await, Ok(()));
    }

    #[test]
    fn dropping_stops_the_thread() {
        let commit = GroupCommit::start("test-flush", Duration::ZERO, || Ok(())).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(commit.flush()).unwrap();
        drop(commit); // joins; a hang here fails the test run
    }
}
