//! Unit tests of the sled store: the conformance suite every backend
//! passes, and what only sled has (its on-disk layout, its file lock, the
//! group commit).

use std::future::Future;
use std::pin::Pin;

use super::*;
use crate::mail::MessageSummary;
use crate::store::conformance::{self, account, device, Harness};
use crate::store::DeviceMail;

/// Sled stores in temporary directories, kept until the harness goes.
#[derive(Default)]
struct SledHarness {
    dirs: std::sync::Mutex<Vec<tempfile::TempDir>>,
}

impl Harness for SledHarness {
    fn fresh(&self) -> Pin<Box<dyn Future<Output = Arc<dyn Store>> + Send + '_>> {
        Box::pin(async move {
            let dir = tempfile::tempdir().unwrap();
            let store = SledStore::open(dir.path()).unwrap();
            self.dirs.lock().unwrap().push(dir);
            Arc::new(store) as Arc<dyn Store>
        })
    }

    fn reopen(
        &self,
        store: Arc<dyn Store>,
    ) -> Pin<Box<dyn Future<Output = Arc<dyn Store>> + Send + '_>> {
        Box::pin(async move {
            drop(store);
            let dirs = self.dirs.lock().unwrap();
            let dir = dirs.last().unwrap().path().to_path_buf();
            drop(dirs);
            Arc::new(SledStore::open(&dir).unwrap()) as Arc<dyn Store>
        })
    }
}

#[tokio::test]
async fn sled_keeps_the_promises_of_every_store() {
    conformance::run_all(&SledHarness::default()).await;
}

async fn open_with_device(dir: &Path) -> SledStore {
    let store = SledStore::open(dir).unwrap();
    store
        .create_account(&account("a1"), &[9; 32])
        .await
        .unwrap();
    store
        .put_device(&device("d1", "a1", &["INBOX"]), 10)
        .await
        .unwrap();
    store
}

/// One new message in INBOX for `device_ids`.
fn one_mail<'a>(account_id: &'a str, device_ids: &'a [String]) -> NewMail<'a> {
    NewMail {
        account_id,
        mailbox: "INBOX",
        deliveries: DeviceMail::to_each(device_ids, &[], 1, 1000),
        cursor: Cursor {
            uidvalidity: 7,
            uidnext: 2,
            highestmodseq: None,
            max_uid_seen: false,
        },
        unseen: None,
        fence: Fence::SOLE_OWNER,
    }
}

#[tokio::test]
async fn a_delivered_push_stored_in_another_layout_is_still_finished() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with_device(dir.path()).await;
    let device_ids = ["d1".to_string()];
    let keys = store
        .record_new_mail(&one_mail("a1", &device_ids))
        .await
        .unwrap();
    let delivered = store.pending_push(&keys[0]).await.unwrap().unwrap();
    // Written by another version: a field this one does not know. The
    // bytes differ from what `delivered` encodes to, the version does not.
    let mut value: serde_json::Value =
        serde_json::from_slice(&store.pushes.get(push_key(&keys[0])).unwrap().unwrap()).unwrap();
    value["written_by"] = serde_json::json!("a later version");
    store
        .pushes
        .insert(push_key(&keys[0]), serde_json::to_vec(&value).unwrap())
        .unwrap();

    assert!(store.finish_push(&keys[0], &delivered).await.unwrap());
    assert!(store.pending_pushes().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_concurrent_flushes_all_complete() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open_with_device(dir.path()).await);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64u32 {
        let store = store.clone();
        tasks.spawn(async move {
            let device = device(&format!("d{i}"), "a1", &["INBOX"]);
            store.put_device(&device, 100).await?;
            store.flush().await
        });
    }
    // A generous bound only turns a deadlock into a failure.
    let all = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while let Some(done) = tasks.join_next().await {
            done.unwrap().unwrap();
        }
    });
    assert!(all.await.is_ok(), "a flush never completed");
}

#[tokio::test]
async fn opening_waits_for_the_previous_handle_to_let_go() {
    let dir = tempfile::tempdir().unwrap();
    let first = open_with_device(dir.path()).await;
    first.db.flush().unwrap();
    let path = dir.path().to_path_buf();
    // The second open starts while the first holds the lock, and must not
    // fail for it: it waits until the first is dropped.
    let (started_tx, started) = std::sync::mpsc::channel();
    let second = std::thread::spawn(move || {
        started_tx.send(()).unwrap();
        SledStore::open(&path).map(|store| store.read_account("a1").unwrap().is_some())
    });
    started.recv().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop(first);
    assert!(second.join().unwrap().unwrap());
}

#[tokio::test]
async fn no_queued_push_outlives_its_account() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with_device(dir.path()).await;
    store
        .create_account(&account("a2"), &[8; 32])
        .await
        .unwrap();
    store
        .put_device(&device("d2", "a2", &["INBOX"]), 10)
        .await
        .unwrap();
    store
        .record_new_mail(&one_mail("a2", &["d2".to_string()]))
        .await
        .unwrap();
    // What slipped in between the check and the write goes with the account.
    let stray = PendingPush {
        key: PushKey {
            device_id: "d1".into(),
            mailbox: "INBOX".into(),
        },
        account_id: "a1".into(),
        messages: Vec::new(),
        count: 1,
        version: 1,
        attempts: 0,
        not_before_ms: 0,
        expires_at_ms: 1000,
        shrink: false,
        unseen: None,
        uidvalidity: 0,
        claim: 0,
        merge_times: Vec::new(),
    };
    store
        .pushes
        .insert(push_key(&stray.key), encode(&stray).unwrap())
        .unwrap();

    assert!(store.delete_account("a1").await.unwrap());
    let left: Vec<String> = store
        .pending_pushes()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.account_id)
        .collect();
    assert_eq!(left, ["a2"]);
}

#[tokio::test]
async fn an_entry_queued_whole_shrinks_at_its_next_retry() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let key = PushKey {
        device_id: "d1".into(),
        mailbox: "INBOX".into(),
    };
    let legacy = PendingPush {
        key: key.clone(),
        account_id: "a1".into(),
        messages: vec![MessageSummary {
            uid: 1,
            subject: "S".repeat(1 << 20),
            ..Default::default()
        }],
        count: 1,
        version: 1,
        attempts: 0,
        not_before_ms: 0,
        expires_at_ms: 1000,
        shrink: false,
        unseen: None,
        uidvalidity: 0,
        claim: 0,
        merge_times: Vec::new(),
    };
    store
        .pushes
        .insert(push_key(&key), encode(&legacy).unwrap())
        .unwrap();
    store.reschedule_push(&key, 1, 500, false).await.unwrap();
    let raw = store.pushes.get(push_key(&key)).unwrap().unwrap();
    assert!(
        raw.len() <= 2 * crate::mail::MAX_PAYLOAD_TEXT,
        "{}",
        raw.len()
    );
}
