//! Cluster mode on a real PostgreSQL: the store's conformance suite on the
//! PostgreSQL backend, fencing and claims at the store; gateway nodes as
//! processes of the real binary (`cluster/nodes.rs`); moving a single
//! gateway's store into a cluster (`cluster/migrate.rs`); a sign-in through
//! a provider that starts on one node and ends on another (`cluster/oauth.rs`).

use crate::support;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use lemonade::store::conformance::{self, Harness};
use lemonade::store::{
    AccountStored, Cursor, DeviceMail, Fence, NewMail, PgOptions, PgStore, Store, StoreError,
};

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
        deliveries: DeviceMail::to_each(devices, &[], 1, i64::MAX / 2),
        cursor: Cursor {
            uidvalidity: 1,
            uidnext,
            highestmodseq: None,
            max_uid_seen: false,
        },
        unseen: None,
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

    // A claim ends with its node's lease: a push held by a node that died
    // mid-delivery is taken at once, not when its claim would have run out.
    let keys = b
        .record_new_mail(&new_mail(&devices, 4, claimed[0].epoch))
        .await
        .unwrap();
    let c = node_store(&url, "node-c", Duration::from_millis(500)).await;
    assert!(c.claim_push(&keys[0], 600_000).await.unwrap().is_some());
    assert!(b.claim_push(&keys[0], 60_000).await.unwrap().is_none());
    wait_lease_expired(&admin, "node-c").await;
    assert!(b.claim_push(&keys[0], 60_000).await.unwrap().is_some());
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

#[path = "cluster/nodes.rs"]
mod nodes;

// ---------------------------------------------------------------------------
// `lemonade migrate`: a single gateway's sled store moved to a cluster.
// ---------------------------------------------------------------------------

#[path = "cluster/migrate.rs"]
mod migrate;
#[path = "cluster/oauth.rs"]
mod oauth;
