//! The delivery actor: owns the schedule of queued pushes, delivers them with
//! bounded concurrency, and applies the push service's answer (done, device
//! gone, shrink, retry later) to the durable queue.
//!
//! The queue itself lives in the store, written by the watcher together with
//! the cursor; this actor only keeps *when* each entry is due. On start it
//! reloads every pending entry, so retries survive a restart.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{payload, topic_for, PushClient, PushOutcome, Urgency, MAX_PLAINTEXT};
use crate::backoff::Backoff;
use crate::metrics::Metrics;
use crate::store::{PushKey, Store, StoreError};

/// Plaintext limit after a push service answered 413: small enough for any.
const SHRUNK_PLAINTEXT: usize = 1024;
/// Wake-ups waiting for the actor; the watcher waits when it is full.
const WAKE_CHANNEL: usize = 1024;
/// After a storage error, try the entry again this much later.
const STORE_RETRY: Duration = Duration::from_secs(5);

/// The watcher's handle: "these queued pushes changed".
#[derive(Clone)]
pub struct Notifier {
    tx: mpsc::Sender<Wake>,
}

struct Wake {
    keys: Vec<PushKey>,
    detected: Option<Instant>,
}

impl Notifier {
    /// Asks for delivery of these queued pushes; `detected` is when the IMAP
    /// line announcing the mail arrived, for the latency histogram.
    pub async fn wake(&self, keys: Vec<PushKey>, detected: Option<Instant>) {
        // Only fails when the actor has stopped (shutdown); the entries stay
        // queued in the store and are picked up at the next start.
        let _ = self.tx.send(Wake { keys, detected }).await;
    }
}

/// Settings of the delivery actor.
pub struct DeliveryQueue {
    pub store: Arc<dyn Store>,
    pub client: Arc<PushClient>,
    pub metrics: Arc<Metrics>,
    pub urgency: Urgency,
    pub concurrency: usize,
    /// Told the account id whenever a device is removed here (gone at its
    /// push service), so the account's watcher can drop mailboxes nobody
    /// asks for any more.
    pub devices_removed: mpsc::Sender<String>,
}

/// What to do with an entry after an attempt.
enum Next {
    Done,
    At(Instant),
}

impl DeliveryQueue {
    /// Creates the handle and the actor future to spawn.
    pub fn start(
        self,
        shutdown: CancellationToken,
    ) -> (Notifier, impl std::future::Future<Output = ()> + Send) {
        let (tx, rx) = mpsc::channel(WAKE_CHANNEL);
        (Notifier { tx }, self.run(rx, shutdown))
    }

    async fn run(self, mut rx: mpsc::Receiver<Wake>, shutdown: CancellationToken) {
        let this = Arc::new(self);
        let mut schedule = Schedule::default();
        match this.store.pending_pushes() {
            Ok(pending) => {
                let now_ms = crate::unix_millis();
                for push in pending {
                    let wait = (push.not_before_ms - now_ms).max(0) as u64;
                    schedule.add(push.key, Instant::now() + Duration::from_millis(wait), None);
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot read the push queue"),
        }
        let mut tasks: JoinSet<Next> = JoinSet::new();
        let mut in_flight: HashSet<PushKey> = HashSet::new();
        let mut task_keys: HashMap<tokio::task::Id, PushKey> = HashMap::new();
        loop {
            while in_flight.len() < this.concurrency {
                let Some((key, detected)) = schedule.pop_due(Instant::now(), &in_flight) else {
                    break;
                };
                in_flight.insert(key.clone());
                let this = this.clone();
                let task_key = key.clone();
                let handle = tasks.spawn(async move { this.deliver(&task_key, detected).await });
                task_keys.insert(handle.id(), key);
            }
            let next_due = schedule
                .next_due()
                .filter(|_| in_flight.len() < this.concurrency);
            tokio::select! {
                wake = rx.recv() => {
                    let Some(wake) = wake else { break };
                    for key in wake.keys {
                        schedule.add(key, Instant::now(), wake.detected);
                    }
                }
                Some(joined) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    let (id, next) = match joined {
                        Ok((id, next)) => (id, next),
                        // A failed delivery task: try its entry again later.
                        Err(e) => (e.id(), Next::At(Instant::now() + STORE_RETRY)),
                    };
                    if let Some(key) = task_keys.remove(&id) {
                        in_flight.remove(&key);
                        if let Next::At(at) = next {
                            schedule.add(key, at, None);
                        }
                    }
                }
                _ = sleep_until_opt(next_due) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        // Let deliveries under way finish briefly; what is left stays queued.
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
    }

    /// One delivery attempt of one queued push.
    async fn deliver(&self, key: &PushKey, detected: Option<Instant>) -> Next {
        match self.try_deliver(key, detected).await {
            Ok(next) => next,
            Err(e) => {
                tracing::error!(error = %e, "push queue storage failed");
                Next::At(Instant::now() + STORE_RETRY)
            }
        }
    }

    async fn try_deliver(
        &self,
        key: &PushKey,
        detected: Option<Instant>,
    ) -> Result<Next, StoreError> {
        let Some(push) = self.store.pending_push(key)? else {
            return Ok(Next::Done);
        };
        let Some(device) = self.store.device(&key.device_id)? else {
            self.store.remove_push(key)?;
            return Ok(Next::Done);
        };
        let now_ms = crate::unix_millis();
        if now_ms >= push.expires_at_ms {
            tracing::info!(device = %key.device_id, "push expired undelivered");
            Metrics::inc(&self.metrics.pushes_failed);
            self.store.remove_push(key)?;
            return Ok(Next::Done);
        }
        let limit = if push.shrink {
            SHRUNK_PLAINTEXT
        } else {
            MAX_PLAINTEXT
        };
        let plaintext = payload::build(
            device.payload,
            &push.account_id,
            &key.mailbox,
            push.count,
            &push.messages,
            limit,
        );
        let ttl_secs = ((push.expires_at_ms - now_ms) / 1000).clamp(0, u32::MAX.into()) as u32;
        let topic = topic_for(&push.account_id, &key.mailbox);
        let outcome = self
            .client
            .send(
                &device.subscription,
                &plaintext,
                ttl_secs,
                self.urgency,
                &topic,
            )
            .await;
        match outcome {
            PushOutcome::Delivered => {
                Metrics::inc(&self.metrics.pushes_sent);
                if let Some(detected) = detected {
                    self.metrics.push_latency.observe(detected.elapsed());
                }
                let finished = self.store.finish_push(key, &push)?;
                // Durable soon; waiting for it would hold this delivery's
                // slot through a slow fsync and change nothing: a crash
                // before that flush repeats the push either way.
                self.store.request_flush();
                // Not finished: mail merged in while this push was on its way.
                Ok(if finished {
                    Next::Done
                } else {
                    Next::At(Instant::now())
                })
            }
            PushOutcome::Gone => {
                tracing::info!(device = %key.device_id, "push service says the subscription is gone; device removed");
                Metrics::inc(&self.metrics.pushes_pruned);
                self.remove_device(&key.device_id, &push.account_id).await?;
                Ok(Next::Done)
            }
            PushOutcome::TooLarge if !push.shrink => {
                self.store
                    .reschedule_push(key, push.attempts + 1, now_ms, true)?;
                Ok(Next::At(Instant::now()))
            }
            PushOutcome::Blocked => {
                tracing::warn!(device = %key.device_id, "push endpoint resolves to a private address; device removed");
                Metrics::inc(&self.metrics.pushes_failed);
                self.remove_device(&key.device_id, &push.account_id).await?;
                Ok(Next::Done)
            }
            PushOutcome::TooLarge | PushOutcome::Rejected { .. } => {
                tracing::warn!(device = %key.device_id, "push service rejected the push; dropped");
                Metrics::inc(&self.metrics.pushes_failed);
                self.store.remove_push(key)?;
                Ok(Next::Done)
            }
            PushOutcome::Retry { after } => {
                let attempts = push.attempts + 1;
                let delay = after.unwrap_or_else(|| {
                    Backoff::new(Duration::from_secs(1), Duration::from_secs(300))
                        .delay_for(push.attempts, &mut rand::thread_rng())
                });
                let at_ms = now_ms.saturating_add(delay.as_millis() as i64);
                if at_ms >= push.expires_at_ms {
                    Metrics::inc(&self.metrics.pushes_failed);
                    self.store.remove_push(key)?;
                    return Ok(Next::Done);
                }
                Metrics::inc(&self.metrics.push_retries);
                self.store
                    .reschedule_push(key, attempts, at_ms, push.shrink)?;
                self.store.flush().await?;
                Ok(Next::At(Instant::now() + delay))
            }
        }
    }
}

impl DeliveryQueue {
    async fn remove_device(&self, device_id: &str, account_id: &str) -> Result<(), StoreError> {
        self.store.delete_device(device_id)?;
        self.store.flush().await?;
        // Best effort: when the channel is full the watcher catches up at
        // its next reconnect.
        let _ = self.devices_removed.try_send(account_id.to_string());
        Ok(())
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// When each queued push is due. An entry is in the schedule at most once;
/// adding it again keeps the earlier time and the earliest detection time.
#[derive(Default)]
struct Schedule {
    by_time: BTreeSet<(Instant, PushKey)>,
    entries: HashMap<PushKey, (Instant, Option<Instant>)>,
}

impl Schedule {
    fn add(&mut self, key: PushKey, at: Instant, detected: Option<Instant>) {
        match self.entries.get_mut(&key) {
            Some((due, seen)) => {
                if at < *due {
                    self.by_time.remove(&(*due, key.clone()));
                    self.by_time.insert((at, key));
                    *due = at;
                }
                *seen = match (*seen, detected) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            None => {
                self.by_time.insert((at, key.clone()));
                self.entries.insert(key, (at, detected));
            }
        }
    }

    fn next_due(&self) -> Option<Instant> {
        self.by_time.first().map(|(at, _)| *at)
    }

    /// The first entry due by `now` that is not being delivered already.
    fn pop_due(
        &mut self,
        now: Instant,
        in_flight: &HashSet<PushKey>,
    ) -> Option<(PushKey, Option<Instant>)> {
        let (at, key) = self
            .by_time
            .iter()
            .take_while(|(at, _)| *at <= now)
            .find(|(_, key)| !in_flight.contains(key))?
            .clone();
        self.by_time.remove(&(at, key.clone()));
        let (_, detected) = self.entries.remove(&key)?;
        Some((key, detected))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(device: &str) -> PushKey {
        PushKey {
            device_id: device.into(),
            mailbox: "INBOX".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn schedule_keeps_one_entry_per_key_at_its_earliest_time() {
        let now = Instant::now();
        let mut schedule = Schedule::default();
        schedule.add(key("a"), now + Duration::from_secs(10), None);
        schedule.add(key("a"), now + Duration::from_secs(5), Some(now));
        schedule.add(key("a"), now + Duration::from_secs(20), None);
        schedule.add(key("b"), now + Duration::from_secs(7), None);
        assert_eq!(schedule.next_due(), Some(now + Duration::from_secs(5)));
        assert!(schedule.pop_due(now, &HashSet::new()).is_none());

        tokio::time::advance(Duration::from_secs(8)).await;
        let busy: HashSet<_> = [key("a")].into();
        let (first, _) = schedule.pop_due(Instant::now(), &busy).unwrap();
        assert_eq!(first, key("b"));
        let (second, detected) = schedule.pop_due(Instant::now(), &HashSet::new()).unwrap();
        assert_eq!((second, detected), (key("a"), Some(now)));
        assert_eq!(schedule.next_due(), None);
    }
}
