//! The delivery actor against a stand-in push service that plays faults a
//! real one is not scripted to (never answering, Retry-After: 0), on a real
//! store, in paused time.

use std::collections::VecDeque;
use std::sync::Mutex;

use super::*;
use crate::store::{
    Cursor, DeviceMail, DeviceRecord, NewMail, PayloadTier, PushSubscription, SledStore,
};

/// One attempt seen by the stand-in: which endpoint, when, and how many
/// attempts on `slow` endpoints were in flight then (this one included).
#[derive(Debug)]
struct Attempt {
    endpoint: String,
    at: Instant,
    slow_in_flight: usize,
}

/// Never answers the endpoints in `hanging`; times out on those in `slow`
/// (after the client's timeout); answers the others from their script,
/// then 201.
struct FakeService {
    hanging: HashSet<String>,
    slow: HashSet<String>,
    slow_in_flight: Arc<std::sync::atomic::AtomicUsize>,
    scripts: Mutex<HashMap<String, VecDeque<PushOutcome>>>,
    attempts: mpsc::UnboundedSender<Attempt>,
}

/// The request timeout the stand-in plays for `slow` endpoints.
const TIMEOUT: Duration = Duration::from_secs(15);

impl PushSender for FakeService {
    fn send_push<'a>(
        &'a self,
        subscription: &'a crate::store::PushSubscription,
        _plaintext: &'a [u8],
        _ttl_secs: u32,
        _urgency: Urgency,
        _topic: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = PushOutcome> + Send + 'a>> {
        use std::sync::atomic::Ordering::SeqCst;
        let endpoint = subscription.endpoint.clone();
        let slow = self.slow.contains(&endpoint);
        let in_flight = self.slow_in_flight.clone();
        let before = if slow {
            in_flight.fetch_add(1, SeqCst)
        } else {
            in_flight.load(SeqCst)
        };
        let _ = self.attempts.send(Attempt {
            endpoint: endpoint.clone(),
            at: Instant::now(),
            slow_in_flight: before + usize::from(slow),
        });
        if self.hanging.contains(&endpoint) {
            return Box::pin(std::future::pending());
        }
        if slow {
            return Box::pin(async move {
                tokio::time::sleep(TIMEOUT).await;
                in_flight.fetch_sub(1, SeqCst);
                PushOutcome::TimedOut
            });
        }
        let answer = self
            .scripts
            .lock()
            .unwrap()
            .get_mut(&endpoint)
            .and_then(VecDeque::pop_front)
            .unwrap_or(PushOutcome::Delivered);
        Box::pin(async move { answer })
    }
}

struct Setup {
    store: Arc<SledStore>,
    notifier: Notifier,
    attempts: mpsc::UnboundedReceiver<Attempt>,
    _dir: tempfile::TempDir,
    _shutdown: tokio_util::sync::DropGuard,
}

fn start(
    limits: DeliveryLimits,
    hanging: &[String],
    scripts: Vec<(String, Vec<PushOutcome>)>,
) -> Setup {
    start_with_slow(limits, hanging, &[], scripts)
}

fn start_with_slow(
    limits: DeliveryLimits,
    hanging: &[String],
    slow: &[String],
    scripts: Vec<(String, Vec<PushOutcome>)>,
) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    let (tx, attempts) = mpsc::unbounded_channel();
    let client = Arc::new(FakeService {
        hanging: hanging.iter().cloned().collect(),
        slow: slow.iter().cloned().collect(),
        slow_in_flight: Arc::default(),
        scripts: Mutex::new(
            scripts
                .into_iter()
                .map(|(endpoint, answers)| (endpoint, answers.into()))
                .collect(),
        ),
        attempts: tx,
    });
    let (devices_removed, _) = mpsc::channel(16);
    let shutdown = CancellationToken::new();
    let (notifier, actor) = DeliveryQueue {
        store: store.clone(),
        client,
        metrics: Arc::new(Metrics::default()),
        urgency: Urgency::Normal,
        limits,
        devices_removed,
        gate: crate::lease::LeaseGate::always(),
        poll: None,
        clock: crate::clock::WallClock::system(),
    }
    .start(shutdown.clone());
    tokio::spawn(actor);
    Setup {
        store,
        notifier,
        attempts,
        _dir: dir,
        _shutdown: shutdown.drop_guard(),
    }
}

impl Setup {
    /// Registers a device of `account` on `endpoint`.
    async fn device(&self, id: &str, account: &str, endpoint: &str) {
        let record = crate::store::conformance::account(account);
        self.store.create_account(&record, &[0; 32]).await.unwrap();
        self.store
            .put_device(
                &DeviceRecord {
                    id: id.into(),
                    account_id: account.into(),
                    subscription: PushSubscription {
                        endpoint: endpoint.into(),
                        p256dh: vec![4; 65],
                        auth: vec![1; 16],
                    },
                    mailboxes: vec!["INBOX".into()],
                    payload: PayloadTier::Count,
                    created_at: 0,
                    rules: Default::default(),
                    clear: None,
                },
                10,
            )
            .await
            .unwrap();
    }

    /// Queues one new message for `devices` of `account`, as the watcher does.
    async fn new_mail(&self, account: &str, devices: &[String], uid: u32) {
        let keys = self
            .store
            .record_new_mail(&NewMail {
                account_id: account,
                mailbox: "INBOX",
                deliveries: DeviceMail::to_each(
                    devices,
                    &[],
                    1,
                    crate::unix_millis() + 24 * 3600 * 1000,
                ),
                cursor: Cursor {
                    uidvalidity: 1,
                    uidnext: uid + 1,
                    highestmodseq: None,
                    max_uid_seen: false,
                },
                unseen: None,
                fence: crate::store::Fence::SOLE_OWNER,
            })
            .await
            .unwrap();
        self.notifier.wake(keys, Some(Instant::now())).await;
    }

    /// The next attempt. No timer of its own: in paused time the clock
    /// jumps to the earliest timer whenever the actor waits for a flush
    /// (on the store's thread), and that must be the actor's retry timer.
    async fn next_attempt(&mut self) -> Attempt {
        self.attempts.recv().await.unwrap()
    }

    /// The next attempt, failing if there is none while the actor is idle
    /// (paused time runs out the long timeout at once); only where the
    /// actor never waits for a flush.
    async fn next_attempt_or_fail(&mut self) -> Attempt {
        tokio::time::timeout(Duration::from_secs(24 * 3600), self.attempts.recv())
            .await
            .expect("no further attempt while the others hang")
            .unwrap()
    }
}

#[tokio::test(start_paused = true)]
async fn hanging_endpoints_hold_only_their_share_of_the_slots() {
    let limits = DeliveryLimits {
        total: 8,
        per_account: 2,
        per_service: 3,
        timed_out: 8,
    };
    // Two accounts on one service that never answers; a third with an
    // endpoint of its own for each device, none of which answers either.
    let slow = |i: usize| format!("https://slow.example/{i}");
    let own = |i: usize| format!("https://slow{i}.example/x");
    let hanging: Vec<String> = (0..10).map(slow).chain((0..5).map(own)).collect();
    let good = "https://push.example/good".to_string();
    let mut s = start(limits, &hanging, Vec::new());
    let mut devices_of: HashMap<&str, Vec<String>> = HashMap::new();
    for (i, endpoint) in hanging.iter().enumerate() {
        let account = ["bad1", "bad2", "bad3"][i / 5];
        let id = format!("d{i}");
        s.device(&id, account, endpoint).await;
        devices_of.entry(account).or_default().push(id);
    }
    s.device("good", "good", &good).await;
    for account in ["bad1", "bad2", "bad3"] {
        s.new_mail(account, &devices_of[account], 1).await;
    }
    s.new_mail("good", &["good".to_string()], 1).await;

    let mut started: Vec<String> = Vec::new();
    loop {
        let attempt = s.next_attempt_or_fail().await;
        if attempt.endpoint == good {
            break;
        }
        started.push(attempt.endpoint);
    }
    // The good push went out while every hanging one still hangs, and
    // none of them took more than its share.
    let on_slow = started
        .iter()
        .filter(|e| e.starts_with("https://slow.example/"))
        .count();
    assert_eq!(on_slow, 3, "{started:?}");
    let of_bad3 = started.iter().filter(|e| own_endpoint(e)).count();
    assert_eq!(of_bad3, 2, "{started:?}");
    assert!(s.attempts.try_recv().is_err());
}

fn own_endpoint(endpoint: &str) -> bool {
    endpoint.starts_with("https://slow") && !endpoint.starts_with("https://slow.example/")
}

#[tokio::test(start_paused = true)]
async fn retry_after_zero_is_retried_no_sooner_than_a_growing_floor() {
    let endpoint = "https://push.example/zero".to_string();
    let zero = PushOutcome::Retry {
        after: Some(Duration::ZERO),
    };
    let mut s = start(
        DeliveryLimits {
            total: 4,
            per_account: 4,
            per_service: 4,
            timed_out: 4,
        },
        &[],
        vec![(endpoint.clone(), vec![zero; 6])],
    );
    s.device("d1", "a1", &endpoint).await;
    s.new_mail("a1", &["d1".to_string()], 1).await;
    let mut times = Vec::new();
    for _ in 0..7 {
        times.push(s.next_attempt().await.at);
    }
    for (i, pair) in times.windows(2).enumerate() {
        let gap = pair[1] - pair[0];
        // Each step of the backoff is drawn between half and all of 2^i s.
        let floor = (Duration::from_millis(500) * (1 << i)).max(RETRY_FLOOR);
        assert!(gap >= floor, "retry {i} after {gap:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn new_mail_does_not_bring_a_retry_after_forward() {
    let endpoint = "https://push.example/busy".to_string();
    let later = PushOutcome::Retry {
        after: Some(Duration::from_secs(120)),
    };
    let mut s = start(
        DeliveryLimits {
            total: 4,
            per_account: 4,
            per_service: 4,
            timed_out: 4,
        },
        &[],
        vec![(endpoint.clone(), vec![later])],
    );
    s.device("d1", "a1", &endpoint).await;
    let devices = ["d1".to_string()];
    s.new_mail("a1", &devices, 1).await;
    let first = s.next_attempt().await.at;
    // More mail, before and after the answer reached the actor.
    s.new_mail("a1", &devices, 2).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    s.new_mail("a1", &devices, 3).await;
    let second = s.next_attempt().await.at;
    assert!(
        second - first >= Duration::from_secs(120),
        "retried after {:?}",
        second - first
    );
}

#[tokio::test(start_paused = true)]
async fn services_that_timed_out_share_a_small_pool_however_many_accounts() {
    let limits = DeliveryLimits {
        total: 6,
        per_account: 6,
        per_service: 6,
        timed_out: 2,
    };
    // Six accounts, each with an endpoint of its own that never answers.
    let slow: Vec<String> = (0..6).map(|i| format!("https://h{i}.example/x")).collect();
    let good = "https://push.example/good".to_string();
    let mut s = start_with_slow(limits, &[], &slow, Vec::new());
    for (i, endpoint) in slow.iter().enumerate() {
        s.device(&format!("h{i}"), &format!("hostile{i}"), endpoint)
            .await;
    }
    s.device("good", "good", &good).await;
    for i in 0..6 {
        s.new_mail(&format!("hostile{i}"), &[format!("h{i}")], 1)
            .await;
    }
    // Unknown services: the first round may take every slot, once.
    for _ in 0..6 {
        assert!(slow.contains(&s.next_attempt().await.endpoint));
    }
    tokio::time::sleep(TIMEOUT + Duration::from_secs(1)).await;
    s.new_mail("good", &["good".to_string()], 1).await;
    let mut retries = Vec::new();
    loop {
        let attempt = s.next_attempt().await;
        if attempt.endpoint == good {
            break;
        }
        retries.push(attempt);
    }
    // After their timeouts they share two slots, and the rest stay free.
    assert!(retries.iter().all(|a| a.slow_in_flight <= 2), "{retries:?}");
    // More retries keep to the pool.
    for _ in 0..6 {
        let attempt = s.next_attempt().await;
        assert!(attempt.slow_in_flight <= 2, "{attempt:?}");
    }
}
