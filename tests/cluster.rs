//! Cluster mode on a real PostgreSQL: the store's conformance suite on the
//! PostgreSQL backend, fencing and claims at the store, and gateway nodes
//! (processes of the real binary) sharing one database and one Dovecot.

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use lemonade::store::conformance::{self, Harness};
use lemonade::store::{
    AccountStored, Cursor, Fence, NewMail, PgOptions, PgStore, Store, StoreError,
};
use support::cluster::{Cluster, Node};
use support::dovecot::Dovecot;
use support::push::{PushReceiver, TestDevice};
use support::scenario::message;

/// PostgreSQL stores, each on a fresh database of the test server.
#[derive(Default)]
struct PgHarness {
    urls: Mutex<Vec<String>>,
}

impl Harness for PgHarness {
    fn fresh(&self) -> Pin<Box<dyn Future<Output = Arc<dyn Store>> + Send + '_>> {
        Box::pin(async move {
            let url = support::postgres::server().await.fresh_database().await;
            let store = PgStore::connect(PgOptions::new(&url)).await.unwrap();
            self.urls.lock().unwrap().push(url);
            Arc::new(store) as Arc<dyn Store>
        })
    }

    fn reopen(
        &self,
        store: Arc<dyn Store>,
    ) -> Pin<Box<dyn Future<Output = Arc<dyn Store>> + Send + '_>> {
        Box::pin(async move {
            drop(store);
            let url = self.urls.lock().unwrap().last().unwrap().clone();
            let store = PgStore::connect(PgOptions::new(&url)).await.unwrap();
            Arc::new(store) as Arc<dyn Store>
        })
    }
}

#[tokio::test]
async fn postgres_keeps_the_promises_of_every_store() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    conformance::run_all(&PgHarness::default()).await;
}

/// A node's store on `url`, joined with a lease of `ttl`.
async fn node_store(url: &str, id: &str, ttl: std::time::Duration) -> PgStore {
    let store = PgStore::connect(PgOptions::new(url)).await.unwrap();
    let node = store.join(id, ttl).await.unwrap();
    store.for_node(node)
}

fn new_mail<'a>(devices: &'a [String], uidnext: u32, epoch: i64) -> NewMail<'a> {
    NewMail {
        account_id: "a1",
        mailbox: "INBOX",
        device_ids: devices,
        messages: &[],
        count: 1,
        cursor: Cursor {
            uidvalidity: 1,
            uidnext,
            highestmodseq: None,
            max_uid_seen: false,
        },
        expires_at_ms: i64::MAX / 2,
        fence: Fence { epoch },
    }
}

/// Waits until `node` no longer holds a live lease, as `observer` sees it.
async fn wait_lease_expired(observer: &PgStore, node: &str) {
    while observer
        .live_nodes()
        .await
        .unwrap()
        .iter()
        .any(|n| n == node)
    {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_node_whose_account_moved_writes_nothing_and_a_stale_claim_changes_nothing() {
    use std::time::Duration;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = support::postgres::server().await.fresh_database().await;
    let admin = PgStore::connect(PgOptions::new(&url)).await.unwrap();
    admin
        .create_account(&conformance::account("a1"), &[1; 32])
        .await
        .unwrap();
    let device = conformance::device("d1", "a1", &["INBOX"]);
    admin.put_device(&device, 10).await.unwrap();
    let devices = ["d1".to_string()];

    // Node A owns the account (epoch 1) and writes for it.
    let a = node_store(&url, "node-a", Duration::from_millis(500)).await;
    let claimed = a
        .claim_accounts(&["a1".into()], Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let epoch_a = claimed[0].epoch;
    let keys = a
        .record_new_mail(&new_mail(&devices, 2, epoch_a))
        .await
        .unwrap();
    assert_eq!(keys.len(), 1);

    // A pauses past its lease; B claims the account (a new epoch).
    wait_lease_expired(&admin, "node-a").await;
    let b = node_store(&url, "node-b", Duration::from_secs(60)).await;
    let claimed = b
        .claim_accounts(&["a1".into()], Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(claimed[0].epoch > epoch_a);

    // A comes back: its lease renews, but its writes for the account are refused.
    assert!(a.renew_lease(Duration::from_secs(60)).await.unwrap());
    let refused = a.record_new_mail(&new_mail(&devices, 3, epoch_a)).await;
    assert!(matches!(refused, Err(StoreError::Fenced)), "{refused:?}");
    let cursor = Cursor {
        uidvalidity: 1,
        uidnext: 9,
        highestmodseq: None,
        max_uid_seen: false,
    };
    let refused = a
        .put_cursor("a1", "INBOX", &cursor, Fence { epoch: epoch_a })
        .await;
    assert!(matches!(refused, Err(StoreError::Fenced)), "{refused:?}");
    assert_eq!(
        admin.cursor("a1", "INBOX").await.unwrap().unwrap().uidnext,
        2
    );
    assert_eq!(
        admin.pending_push(&keys[0]).await.unwrap().unwrap().count,
        1
    );
    assert!(a.owned_accounts().await.unwrap().is_empty());
    assert_eq!(b.owned_accounts().await.unwrap().len(), 1);

    // A claim is exclusive while it lasts; once it ran out another
    // deliverer may take the push, and the first one's acknowledgement
    // then changes nothing.
    let first = a.claim_push(&keys[0], 300).await.unwrap().unwrap();
    assert!(b.claim_push(&keys[0], 60_000).await.unwrap().is_none());
    while b
        .due_pushes(lemonade::unix_millis(), 10)
        .await
        .unwrap()
        .is_empty()
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let second = b.claim_push(&keys[0], 60_000).await.unwrap().unwrap();
    assert!(a.finish_push(&keys[0], &first).await.unwrap());
    assert!(admin.pending_push(&keys[0]).await.unwrap().is_some());
    assert!(b.finish_push(&keys[0], &second).await.unwrap());
    assert!(admin.pending_push(&keys[0]).await.unwrap().is_none());
}

#[tokio::test]
async fn two_nodes_registering_one_login_or_one_endpoint_at_once_store_one() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = support::postgres::server().await.fresh_database().await;
    let one = PgStore::connect(PgOptions::new(&url)).await.unwrap();
    let two = PgStore::connect(PgOptions::new(&url)).await.unwrap();
    for round in 0..20 {
        // The same login under two new ids, at once: one is stored, the
        // other told which id holds the login.
        let mut x = conformance::account(&format!("x{round}"));
        let mut y = conformance::account(&format!("y{round}"));
        x.imap.username = format!("login{round}");
        y.imap.username = format!("login{round}");
        let (hx, hy) = ([round; 32], [round + 100; 32]);
        let (sx, sy) = tokio::join!(one.create_account(&x, &hx), two.create_account(&y, &hy));
        let stored = [sx.unwrap(), sy.unwrap()];
        let winners = stored
            .iter()
            .filter(|s| **s == AccountStored::Stored)
            .count();
        assert_eq!(winners, 1, "{stored:?}");
        let owner = one
            .account_for_login("imap.example.org", 993, &format!("login{round}"))
            .await
            .unwrap()
            .unwrap();
        // One subscription registered twice at once, under two new ids.
        let d1 = conformance::device(&format!("p{round}"), &owner, &["INBOX"]);
        let mut d2 = conformance::device(&format!("q{round}"), &owner, &["INBOX"]);
        d2.subscription.endpoint = d1.subscription.endpoint.clone();
        let (r1, r2) = tokio::join!(one.put_device(&d1, 10), two.put_device(&d2, 10));
        assert_eq!(r1.unwrap(), r2.unwrap());
        assert_eq!(one.devices_of(&owner).await.unwrap().len(), 1);
    }
}

const WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// One mailbox of the test: its user, token and device.
struct Mailbox {
    user: String,
    token: String,
    device: TestDevice,
}

/// Registers `count` users of `dovecot`, each through node `i % nodes`,
/// each with a device (headers tier) registered through the next node, and
/// waits until all are watched. Each INBOX holds an old message first.
async fn mailboxes(
    dovecot: &Dovecot,
    receiver: &PushReceiver,
    nodes: &[&Node],
    count: usize,
) -> Vec<Mailbox> {
    let mut all = Vec::new();
    for i in 0..count {
        dovecot.add_user(&format!("user{i}"), "secret");
    }
    for i in 0..count {
        let user = format!("user{i}");
        dovecot.append(
            &user,
            "secret",
            "INBOX",
            &message("old@example.org", "old mail", "old"),
        );
        let node = nodes[i % nodes.len()].api();
        let (_, token) = node
            .register(dovecot.host(), dovecot.imap_port(), &user, "secret")
            .await;
        let device = TestDevice::new(receiver);
        let other = nodes[(i + 1) % nodes.len()].api();
        other
            .add_device(&token, device.subscription_json(), &["INBOX"], "headers")
            .await;
        all.push(Mailbox {
            user,
            token,
            device,
        });
    }
    for mailbox in &all {
        nodes[0]
            .api()
            .wait_watching(&mailbox.token, &["INBOX"])
            .await;
    }
    all
}

/// Waits for a push carrying `subject`; returns every subject pushed to
/// the device meanwhile.
async fn wait_subject(device: &TestDevice, subject: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let push = device.next_push(WAIT).await;
        let subjects: Vec<String> = push.payload["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["subject"].as_str().map(String::from))
            .collect();
        let found = subjects.iter().any(|s| s == subject);
        seen.extend(subjects);
        if found {
            return seen;
        }
    }
}

fn deliver(dovecot: &Dovecot, mailbox: &Mailbox, subject: &str) {
    let raw = message("sender@example.org", subject, subject);
    dovecot.append(&mailbox.user, "secret", "INBOX", &raw);
}

/// Waits until `node` has logged `message` `count` times.
async fn wait_log(node: &Node, message: &str, count: usize) {
    for _ in 0..1200 {
        if node.log_count(message) >= count {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!(
        "{} did not log {message:?} {count} times:\n{}",
        node.id,
        node.log()
    );
}

/// The node watching the account, as any node's API tells.
async fn owner_of(node: &Node, token: &str) -> Option<String> {
    let (_, me) = node.api().get("/v1/accounts/me", Some(token)).await;
    me["watch"]["node"].as_str().map(String::from)
}

/// Waits until the account is watched by a node other than `old`; returns it.
async fn wait_owner_other_than(node: &Node, token: &str, old: &str) -> String {
    for _ in 0..1200 {
        let (_, me) = node.api().get("/v1/accounts/me", Some(token)).await;
        let owner = me["watch"]["node"].as_str().unwrap_or_default();
        if !owner.is_empty() && owner != old && me["watch"]["state"] == "watching" {
            return owner.to_string();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the account stayed with {old}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_s_accounts_move_and_every_mail_is_pushed() {
    let dovecot = Dovecot::start();
    let receiver = PushReceiver::start().await;
    let cluster = Cluster::new().await;
    let mut nodes = [
        cluster.start("n1").await,
        cluster.start("n2").await,
        cluster.start("n3").await,
    ];
    let refs: Vec<&Node> = nodes.iter().collect();
    let boxes = mailboxes(&dovecot, &receiver, &refs, 6).await;
    // Spread: more than one node watches.
    let mut owners = Vec::new();
    for mailbox in &boxes {
        owners.push(owner_of(&nodes[0], &mailbox.token).await.unwrap());
    }
    owners.sort();
    owners.dedup();
    assert!(owners.len() > 1, "all accounts on {owners:?}");

    for mailbox in &boxes {
        deliver(&dovecot, mailbox, "before");
    }
    for mailbox in &boxes {
        wait_subject(&mailbox.device, "before").await;
    }

    // The first account's node dies; mail keeps arriving meanwhile.
    let victim = owner_of(&nodes[0], &boxes[0].token).await.unwrap();
    let at = nodes.iter().position(|n| n.id == victim).unwrap();
    nodes[at].kill();
    for mailbox in &boxes {
        deliver(&dovecot, mailbox, "during");
    }
    let survivor = nodes.iter().find(|n| n.id != victim).unwrap();
    let new_owner = wait_owner_other_than(survivor, &boxes[0].token, &victim).await;
    assert_ne!(new_owner, victim);
    for mailbox in &boxes {
        deliver(&dovecot, mailbox, "after");
    }
    for mailbox in &boxes {
        let mut seen = wait_subject(&mailbox.device, "during").await;
        seen.extend(wait_subject(&mailbox.device, "after").await);
        assert!(
            !seen.iter().any(|s| s == "old mail"),
            "old mail pushed: {seen:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_node_pushes_nothing_for_accounts_it_lost_and_a_restart_loses_nothing() {
    let dovecot = Dovecot::start();
    let receiver = PushReceiver::start().await;
    let cluster = Cluster::new().await;
    let mut nodes = [cluster.start("n1").await, cluster.start("n2").await];
    let refs: Vec<&Node> = nodes.iter().collect();
    let boxes = mailboxes(&dovecot, &receiver, &refs, 4).await;
    let mailbox = &boxes[0];
    let owner = owner_of(&nodes[0], &mailbox.token).await.unwrap();
    let stale = nodes.iter().position(|n| n.id == owner).unwrap();
    let other = 1 - stale;

    // Frozen past its lease: the other node takes the account.
    nodes[stale].pause();
    wait_owner_other_than(&nodes[other], &mailbox.token, &owner).await;
    deliver(&dovecot, mailbox, "while frozen");
    wait_subject(&mailbox.device, "while frozen").await;

    // Thawed, it finds it lost its lease and the account (the IMAP server
    // told its old connection of the new mail too): nothing more is pushed.
    nodes[stale].resume();
    wait_log(&nodes[stale], "holding the node lease", 2).await;
    let lost = "the node lease could not be renewed in time; stopping all watchers";
    assert_eq!(nodes[stale].log_count(lost), 1);
    // (The account may move back to it now: it is where placement wants it.)
    nodes[other]
        .api()
        .wait_watching(&mailbox.token, &["INBOX"])
        .await;
    deliver(&dovecot, mailbox, "thawed");
    wait_subject(&mailbox.device, "thawed").await;
    let pushed = mailbox.device.push_count();
    assert_eq!(pushed, 2, "a push repeated after the thaw");

    // The whole cluster restarts; mail that arrives meanwhile is pushed.
    for node in nodes.iter_mut() {
        node.terminate().await;
    }
    for mailbox in &boxes {
        deliver(&dovecot, mailbox, "while down");
    }
    for node in nodes.iter_mut() {
        node.restart().await;
    }
    for mailbox in &boxes {
        let seen = wait_subject(&mailbox.device, "while down").await;
        assert!(
            !seen.iter().any(|s| s == "old mail" || s == "thawed"),
            "{seen:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// `lemonade migrate`: a single gateway's sled store moved to a cluster.
// ---------------------------------------------------------------------------

#[path = "cluster/migrate.rs"]
mod migrate;
