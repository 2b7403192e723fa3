//! The delivery actor: owns the schedule of queued pushes, delivers them with
//! bounded concurrency, and applies the push service's answer (done, device
//! gone, shrink, retry later) to the durable queue.
//!
//! The queue itself lives in the store, written by the watcher together with
//! the cursor; this actor only keeps *when* each entry is due. On start it
//! reloads every pending entry, so retries survive a restart.
//!
//! Whoever registers an account chooses its push endpoints, so a delivery
//! may take its whole request timeout. Slots are shared fairly: besides the
//! total, each account and each push service (endpoint origin) has a share
//! it cannot exceed, so endpoints that never answer hold at most their
//! share while everyone else's pushes go out; and once they have timed out,
//! all services that did share a smaller pool until they answer again,
//! however many accounts and origins they are spread over. A failed
//! attempt (5xx, 429,
//! no answer) holds its entry back for the longer of the push service's
//! Retry-After and an exponential backoff from one second; new mail does
//! not bring a held entry forward.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::schedule::{DeliveryLimits, Heard, Route, Schedule, Slots};
use super::{payload, service_of, topic_for, PushOutcome, PushSender, Urgency, MAX_PLAINTEXT};
use crate::backoff::Backoff;
use crate::lease::LeaseGate;
use crate::metrics::Metrics;
use crate::store::{PendingPush, PushKey, Store, StoreError, DORMANT};

/// Plaintext limit after a push service answered 413: small enough for any.
const SHRUNK_PLAINTEXT: usize = 1024;
/// Wake-ups waiting for the actor; the watcher waits when it is full.
const WAKE_CHANNEL: usize = 1024;
/// After a storage error, try the entry again this much later.
const STORE_RETRY: Duration = Duration::from_secs(5);
/// The shortest wait before retrying a push, whatever Retry-After said.
const RETRY_FLOOR: Duration = Duration::from_secs(1);
/// While the node may not act, a due push is looked at again this much later.
const GATE_RETRY: Duration = Duration::from_secs(1);
/// Queued pushes taken per backstop poll.
const POLL_BATCH: usize = 512;
/// How long a claimed push is held for one attempt (see
/// `Store::claim_push`): longer than the longest push request allowed
/// (`push.request_timeout_secs`), so that no other node takes it while
/// the attempt may still succeed.
pub const CLAIM: Duration = Duration::from_secs(150);
/// The longest backoff between retries (a longer Retry-After is honoured).
const RETRY_MAX: Duration = Duration::from_secs(300);

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
    pub client: Arc<dyn PushSender>,
    pub metrics: Arc<Metrics>,
    pub urgency: Urgency,
    pub limits: DeliveryLimits,
    /// Told the account id whenever a device is removed here (gone at its
    /// push service), so the account's watcher can drop mailboxes nobody
    /// asks for any more.
    pub devices_removed: mpsc::Sender<String>,
    /// Closed while this node may not act (its cluster lease is lost):
    /// nothing is claimed or sent meanwhile.
    pub gate: LeaseGate,
    /// In a cluster, how often to look for queued pushes nobody delivers
    /// (queued by a node that died, or whose retry is due): the backstop
    /// of the wake-ups, which only reach this node's actor.
    pub poll: Option<Duration>,
    /// Wall time, against which queued pushes' times are kept.
    pub clock: crate::clock::WallClock,
}

/// What to do with an entry after an attempt.
enum Next {
    /// Delivered or dropped.
    Done,
    /// Try again at once (more merged in, or a smaller payload to send).
    Again,
    /// Try again no sooner than this, whatever wakes it meanwhile.
    Hold(Instant),
    /// Not due before this (its device's quiet hours), unless new mail
    /// brings it forward.
    Wait(Instant),
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
        match this.store.pending_pushes().await {
            Ok(pending) => {
                let now_ms = this.clock.now_ms();
                for push in pending {
                    if push.not_before_ms == DORMANT {
                        continue;
                    }
                    let wait = (push.not_before_ms - now_ms).max(0) as u64;
                    let at = Instant::now() + Duration::from_millis(wait);
                    // Only a retry's wait holds; the end of quiet hours may
                    // be brought forward by mail that breaks through.
                    if wait > 0 && push.attempts > 0 {
                        schedule.hold(&push.key, at);
                    }
                    this.schedule(&mut schedule, push.key, at, None).await;
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot read the push queue"),
        }
        let mut poll = this.poll.map(|every| {
            let mut poll = tokio::time::interval(every);
            poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            poll
        });
        let mut slots = Slots::new(this.limits);
        let mut tasks: JoinSet<(Next, Heard)> = JoinSet::new();
        let mut in_flight: HashSet<PushKey> = HashSet::new();
        let mut task_keys: HashMap<tokio::task::Id, (PushKey, Route, bool)> = HashMap::new();
        loop {
            let now = Instant::now();
            while slots.has_room() {
                let Some(due) = schedule.pop_due(now, &in_flight, &slots) else {
                    break;
                };
                let silent = slots.take(&due.route);
                in_flight.insert(due.key.clone());
                let this = this.clone();
                let task_key = due.key.clone();
                let detected = due.detected;
                let handle = tasks.spawn(async move { this.deliver(&task_key, detected).await });
                task_keys.insert(handle.id(), (due.key, due.route, silent));
            }
            // Entries due already but over a share wait for a slot to free.
            let next_due = schedule.next_due_after(now).filter(|_| slots.has_room());
            tokio::select! {
                wake = rx.recv() => {
                    let Some(wake) = wake else { break };
                    for key in wake.keys {
                        this.schedule(&mut schedule, key, Instant::now(), wake.detected).await;
                    }
                }
                Some(joined) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    let (id, (next, heard)) = match joined {
                        Ok(joined) => joined,
                        // A failed delivery task: try its entry again later.
                        Err(e) => (e.id(), (Next::Hold(Instant::now() + STORE_RETRY), Heard::Nothing)),
                    };
                    if let Some((key, route, silent)) = task_keys.remove(&id) {
                        in_flight.remove(&key);
                        slots.give_back(&route, silent);
                        slots.heard(&route.service, heard);
                        match next {
                            Next::Done => schedule.release(&key),
                            Next::Again => {
                                schedule.release(&key);
                                schedule.add(key, Instant::now(), None, || route);
                            }
                            Next::Hold(at) => {
                                schedule.hold(&key, at);
                                schedule.add(key, at, None, || route);
                            }
                            Next::Wait(at) => {
                                schedule.release(&key);
                                schedule.add(key, at, None, || route);
                            }
                        }
                    }
                }
                _ = sleep_until_opt(next_due) => {}
                _ = tick_opt(&mut poll) => this.poll_due(&mut schedule).await,
                _ = shutdown.cancelled() => break,
            }
        }
        // Let deliveries under way finish briefly; what is left stays queued.
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
    }

    /// Schedules the queued pushes that are due and that nobody holds.
    async fn poll_due(&self, schedule: &mut Schedule) {
        if !self.gate.is_held() {
            return;
        }
        match self.store.due_pushes(self.clock.now_ms(), POLL_BATCH).await {
            Ok(keys) => {
                for key in keys {
                    if !schedule.contains(&key) {
                        self.schedule(schedule, key, Instant::now(), None).await;
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the push queue"),
        }
    }

    /// Schedules a queued push for `at`. The account and push service it
    /// counts against are read when it is first scheduled; a device gone
    /// by then is dropped at its attempt.
    async fn schedule(
        &self,
        schedule: &mut Schedule,
        key: PushKey,
        at: Instant,
        detected: Option<Instant>,
    ) {
        let route = if schedule.contains(&key) {
            Route::default()
        } else {
            match self.store.device(&key.device_id).await {
                Ok(Some(device)) => route_of(&device.account_id, &device.subscription.endpoint),
                _ => Route::default(),
            }
        };
        schedule.add(key, at, detected, || route);
    }

    /// One delivery attempt of one queued push.
    async fn deliver(&self, key: &PushKey, detected: Option<Instant>) -> (Next, Heard) {
        let mut heard = Heard::Nothing;
        let next = match self.try_deliver(key, detected, &mut heard).await {
            Ok(next) => next,
            Err(e) => {
                tracing::error!(error = %e, "push queue storage failed");
                Next::Hold(Instant::now() + STORE_RETRY)
            }
        };
        (next, heard)
    }

    async fn try_deliver(
        &self,
        key: &PushKey,
        detected: Option<Instant>,
        heard: &mut Heard,
    ) -> Result<Next, StoreError> {
        if !self.gate.is_held() {
            return Ok(Next::Hold(Instant::now() + GATE_RETRY));
        }
        let Some(push) = self.store.claim_push(key, CLAIM.as_millis() as i64).await? else {
            return Ok(Next::Done);
        };
        let Some(device) = self.store.device(&key.device_id).await? else {
            self.store.remove_push(key).await?;
            return Ok(Next::Done);
        };
        let now_ms = self.clock.now_ms();
        if push.attempts == 0 && push.not_before_ms > now_ms {
            return self.not_yet(key, &push, now_ms).await;
        }
        if now_ms >= push.expires_at_ms {
            tracing::info!(device = %key.device_id, "push expired undelivered");
            Metrics::inc(&self.metrics.pushes_failed);
            self.store.remove_push(key).await?;
            return Ok(Next::Done);
        }
        let limit = if push.shrink {
            SHRUNK_PLAINTEXT
        } else {
            MAX_PLAINTEXT
        };
        let mail = payload::Mail {
            account_id: &push.account_id,
            mailbox: &key.mailbox,
            uidvalidity: push.uidvalidity,
            count: push.count,
            unseen: push.unseen,
        };
        let plaintext = payload::build(device.payload, &mail, &push.messages, limit);
        let ttl_secs = ((push.expires_at_ms - now_ms) / 1000).clamp(0, u32::MAX.into()) as u32;
        let topic = topic_for(&push.account_id, &key.mailbox);
        // The lease may have run out while this attempt read the store; a
        // claim left behind expires and another node sends the push.
        if !self.gate.is_held() {
            return Ok(Next::Hold(Instant::now() + GATE_RETRY));
        }
        let outcome = self
            .client
            .send_push(
                &device.subscription,
                &plaintext,
                ttl_secs,
                self.urgency,
                &topic,
            )
            .await;
        let transport = super::Target::of(&device.subscription.endpoint).kind();
        let counted = match outcome {
            PushOutcome::Delivered => "sent",
            PushOutcome::Gone => "pruned",
            PushOutcome::Retry { .. } | PushOutcome::TimedOut => "retry",
            _ => "failed",
        };
        self.metrics.count_push(transport, counted);
        *heard = match outcome {
            PushOutcome::TimedOut => Heard::Silence,
            PushOutcome::Retry { .. } | PushOutcome::Blocked => Heard::Nothing,
            _ => Heard::Answer,
        };
        match outcome {
            PushOutcome::Delivered => {
                Metrics::inc(&self.metrics.pushes_sent);
                if let Some(detected) = detected {
                    self.metrics.push_latency.observe(detected.elapsed());
                }
                let finished = self.store.finish_push(key, &push).await?;
                // Durable soon; waiting for it would hold this delivery's
                // slot through a slow fsync and change nothing: a crash
                // before that flush repeats the push either way.
                self.store.request_flush();
                // Not finished: mail merged in while this push was on its way.
                Ok(if finished { Next::Done } else { Next::Again })
            }
            PushOutcome::Gone => {
                tracing::info!(device = %key.device_id, "push service says the subscription is gone; device removed");
                Metrics::inc(&self.metrics.pushes_pruned);
                self.remove_device(&key.device_id, &push.account_id).await?;
                Ok(Next::Done)
            }
            PushOutcome::TooLarge if !push.shrink => {
                self.store
                    .reschedule_push(key, push.attempts + 1, now_ms, true)
                    .await?;
                Ok(Next::Again)
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
                self.store.remove_push(key).await?;
                Ok(Next::Done)
            }
            PushOutcome::Retry { .. } | PushOutcome::TimedOut => {
                if matches!(outcome, PushOutcome::TimedOut) {
                    tracing::debug!(device = %key.device_id, "push service did not answer; backing off");
                }
                let after = match outcome {
                    PushOutcome::Retry { after } => after,
                    _ => None,
                };
                let delay = retry_delay(push.attempts, after);
                let at_ms = now_ms.saturating_add(delay.as_millis() as i64);
                if at_ms >= push.expires_at_ms {
                    Metrics::inc(&self.metrics.pushes_failed);
                    self.store.remove_push(key).await?;
                    return Ok(Next::Done);
                }
                Metrics::inc(&self.metrics.push_retries);
                self.store
                    .reschedule_push(key, push.attempts + 1, at_ms, push.shrink)
                    .await?;
                self.store.flush().await?;
                Ok(Next::Hold(Instant::now() + delay))
            }
        }
    }
}

impl DeliveryQueue {
    /// A push its device's rules hold back: it waits for the end of quiet
    /// hours, or (counting only muted mail) for mail worth a push, which
    /// wakes it. Its claim is given back meanwhile.
    async fn not_yet(
        &self,
        key: &PushKey,
        push: &PendingPush,
        now_ms: i64,
    ) -> Result<Next, StoreError> {
        self.store.release_push(key, push.claim).await?;
        if push.not_before_ms == DORMANT {
            return Ok(Next::Done);
        }
        let wait = Duration::from_millis((push.not_before_ms - now_ms) as u64);
        Ok(Next::Wait(Instant::now() + wait))
    }
}

/// How long to wait before the next attempt after `attempts` failed ones:
/// the push service's Retry-After when it gave one, but never less than the
/// exponential backoff (one second, doubling up to five minutes), so that a
/// `Retry-After: 0` cannot make a busy loop.
fn retry_delay(attempts: u32, after: Option<Duration>) -> Duration {
    let backoff = Backoff::new(RETRY_FLOOR, RETRY_MAX)
        .delay_for(attempts, &mut rand::thread_rng())
        .max(RETRY_FLOOR);
    after.map_or(backoff, |after| after.max(backoff))
}

/// The route of a push of `account_id` to `endpoint`.
fn route_of(account_id: &str, endpoint: &str) -> Route {
    Route {
        account: account_id.into(),
        service: service_of(endpoint).into(),
    }
}

impl DeliveryQueue {
    async fn remove_device(&self, device_id: &str, account_id: &str) -> Result<(), StoreError> {
        self.store.delete_device(device_id).await?;
        self.store.flush().await?;
        // Best effort: when the channel is full the watcher catches up at
        // its next reconnect.
        let _ = self.devices_removed.try_send(account_id.to_string());
        Ok(())
    }
}

async fn tick_opt(poll: &mut Option<tokio::time::Interval>) {
    match poll {
        Some(poll) => {
            poll.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
