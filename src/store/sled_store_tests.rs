//! Unit tests of the sled store.

use super::*;
use crate::mail::MessageSummary;
use crate::store::{PayloadTier, PushSubscription, Security, ServerRecord};

fn account(id: &str) -> AccountRecord {
    AccountRecord {
        id: id.into(),
        email: format!("{id}@example.org"),
        imap: ServerRecord {
            host: "imap.example.org".into(),
            port: 993,
            security: Security::Tls,
            username: id.into(),
            password_sealed: vec![1, 2, 3],
        },
        smtp: None,
        created_at: 0,
    }
}

fn device(id: &str, account_id: &str, mailboxes: &[&str]) -> DeviceRecord {
    DeviceRecord {
        id: id.into(),
        account_id: account_id.into(),
        subscription: PushSubscription {
            endpoint: "https://push.example/x".into(),
            p256dh: vec![4; 65],
            auth: vec![1; 16],
        },
        mailboxes: mailboxes.iter().map(|m| m.to_string()).collect(),
        payload: PayloadTier::Preview,
        created_at: 0,
    }
}

fn summary(uid: u32) -> MessageSummary {
    MessageSummary {
        uid,
        subject: format!("message {uid}"),
        ..Default::default()
    }
}

/// Records new mail in a1's INBOX for the devices of a1 that watch it now.
fn record(store: &SledStore, messages: &[MessageSummary], uidnext: u32) -> Vec<PushKey> {
    let device_ids: Vec<String> = store
        .devices_of("a1")
        .unwrap()
        .into_iter()
        .filter(|d| lists_mailbox(&d.mailboxes, "INBOX"))
        .map(|d| d.id)
        .collect();
    store
        .record_new_mail(&NewMail {
            account_id: "a1",
            mailbox: "INBOX",
            device_ids: &device_ids,
            messages,
            count: messages.len() as u32,
            cursor: Cursor {
                uidvalidity: 7,
                uidnext,
                highestmodseq: None,
                max_uid_seen: false,
            },
            expires_at_ms: 1000,
        })
        .unwrap()
}

#[test]
fn new_mail_is_queued_for_watching_devices_and_moves_the_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    store.create_account(&account("a1"), &[9; 32]).unwrap();
    store.put_device(&device("d1", "a1", &["inbox"])).unwrap();
    store.put_device(&device("d2", "a1", &["Work"])).unwrap();
    assert_eq!(
        store.account_for_token(&[9; 32]).unwrap().as_deref(),
        Some("a1")
    );

    let first = [summary(5), summary(6)];
    let keys = record(&store, &first, 7);
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].device_id, "d1");
    assert_eq!(store.cursor("a1", "INBOX").unwrap().unwrap().uidnext, 7);

    // A burst coalesces into the same queued push.
    let first_version = store.pending_push(&keys[0]).unwrap().unwrap();
    let second = [summary(7)];
    record(&store, &second, 8);
    let push = store.pending_push(&keys[0]).unwrap().unwrap();
    assert_eq!(push.count, 3);
    assert_eq!(push.version, 2);
    assert_eq!(push.messages.len(), 3);

    // A delivery of the first version leaves only what was merged after it.
    assert!(!store.finish_push(&keys[0], &first_version).unwrap());
    let push = store.pending_push(&keys[0]).unwrap().unwrap();
    assert_eq!(push.count, 1);
    assert_eq!(push.messages.iter().map(|m| m.uid).collect::<Vec<_>>(), [7]);
    store.reschedule_push(&keys[0], 1, 50, true).unwrap();
    let push = store.pending_push(&keys[0]).unwrap().unwrap();
    assert_eq!(
        (push.attempts, push.not_before_ms, push.shrink),
        (1, 50, true)
    );
    let last = store.pending_push(&keys[0]).unwrap().unwrap();
    assert!(store.finish_push(&keys[0], &last).unwrap());
    assert!(store.pending_pushes().unwrap().is_empty());
}

#[test]
fn a_delivered_push_stored_in_another_layout_is_still_finished() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    store.create_account(&account("a1"), &[9; 32]).unwrap();
    store.put_device(&device("d1", "a1", &["INBOX"])).unwrap();
    let keys = record(&store, &[summary(5)], 6);
    let delivered = store.pending_push(&keys[0]).unwrap().unwrap();
    // Written by another version: a field this one does not know. The
    // bytes differ from what `delivered` encodes to, the version does not.
    let mut value: serde_json::Value =
        serde_json::from_slice(&store.pushes.get(push_key(&keys[0])).unwrap().unwrap()).unwrap();
    value["written_by"] = serde_json::json!("a later version");
    store
        .pushes
        .insert(push_key(&keys[0]), serde_json::to_vec(&value).unwrap())
        .unwrap();

    assert!(store.finish_push(&keys[0], &delivered).unwrap());
    assert!(store.pending_pushes().unwrap().is_empty());
}

#[test]
fn mail_found_again_after_a_crash_is_queued_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    store.create_account(&account("a1"), &[9; 32]).unwrap();
    store.put_device(&device("d1", "a1", &["INBOX"])).unwrap();
    let found = [summary(5), summary(6)];
    record(&store, &found, 7);
    // The push survived a crash, the cursor did not: 5 and 6 are found
    // again, together with 7.
    let again = [summary(5), summary(6), summary(7)];
    let keys = record(&store, &again, 8);
    let push = store.pending_push(&keys[0]).unwrap().unwrap();
    let uids: Vec<u32> = push.messages.iter().map(|m| m.uid).collect();
    assert_eq!(uids, [5, 6, 7]);
    assert_eq!(push.count, 3);
    assert_eq!(store.cursor("a1", "INBOX").unwrap().unwrap().uidnext, 8);
}

#[test]
fn queued_messages_are_bounded_but_counted() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    store.create_account(&account("a1"), &[9; 32]).unwrap();
    store.put_device(&device("d1", "a1", &["INBOX"])).unwrap();
    let many: Vec<_> = (1..=50).map(summary).collect();
    let keys = record(&store, &many, 51);
    let push = store.pending_push(&keys[0]).unwrap().unwrap();
    assert_eq!(push.count, 50);
    assert_eq!(push.messages.len(), MAX_QUEUED_MESSAGES);
    assert_eq!(push.messages.last().unwrap().uid, 50);
}

#[test]
fn deleting_an_account_removes_everything_it_owns() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    store.create_account(&account("a1"), &[9; 32]).unwrap();
    store.create_account(&account("a2"), &[8; 32]).unwrap();
    store.put_device(&device("d1", "a1", &["INBOX"])).unwrap();
    store.put_device(&device("d2", "a2", &["INBOX"])).unwrap();
    record(&store, &[summary(1)], 2);

    assert!(store.delete_account("a1").unwrap());
    assert!(store.account("a1").unwrap().is_none());
    assert!(store.account_for_token(&[9; 32]).unwrap().is_none());
    assert!(store
        .account_for_login("imap.example.org", 993, "a1")
        .unwrap()
        .is_none());
    assert!(store.device("d1").unwrap().is_none());
    assert!(store.cursor("a1", "INBOX").unwrap().is_none());
    assert!(store.pending_pushes().unwrap().is_empty());
    assert_eq!(store.devices_of("a2").unwrap().len(), 1);
    assert!(store.account_for_token(&[8; 32]).unwrap().is_some());

    // A watcher that stopped late wrote a cursor after the deletion: deleting
    // again removes it, though the account record is gone.
    let late = Cursor {
        uidvalidity: 7,
        uidnext: 3,
        highestmodseq: None,
        max_uid_seen: false,
    };
    store.put_cursor("a1", "INBOX", &late).unwrap();
    assert!(!store.delete_account("a1").unwrap());
    assert!(store.cursor("a1", "INBOX").unwrap().is_none());
}

#[test]
fn deleting_the_last_device_of_a_mailbox_forgets_its_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    store.create_account(&account("a1"), &[9; 32]).unwrap();
    store
        .put_device(&device("d1", "a1", &["INBOX", "Work", "Lists"]))
        .unwrap();
    store.put_device(&device("d2", "a1", &["Lists"])).unwrap();
    let cursor = Cursor {
        uidvalidity: 1,
        uidnext: 5,
        highestmodseq: None,
        max_uid_seen: false,
    };
    for mailbox in ["INBOX", "Work", "Lists"] {
        store.put_cursor("a1", mailbox, &cursor).unwrap();
    }
    assert!(store.delete_device("d1").unwrap());
    assert!(store.cursor("a1", "INBOX").unwrap().is_some());
    assert!(store.cursor("a1", "Work").unwrap().is_none());
    assert!(store.cursor("a1", "Lists").unwrap().is_some());
}

#[test]
fn records_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SledStore::open(dir.path()).unwrap();
        store.create_account(&account("a1"), &[9; 32]).unwrap();
        store.put_device(&device("d1", "a1", &["INBOX"])).unwrap();
        record(&store, &[summary(1)], 2);
        store.db.flush().unwrap();
    }
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(store.accounts().unwrap().len(), 1);
    assert_eq!(store.pending_pushes().unwrap().len(), 1);
    assert!(store.delete_device("d1").unwrap());
    assert!(store.pending_pushes().unwrap().is_empty());
    assert!(!store.delete_device("d1").unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_concurrent_flushes_all_complete() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(SledStore::open(dir.path()).unwrap());
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64u32 {
        let store = store.clone();
        tasks.spawn(async move {
            store.put_device(&device(&format!("d{i}"), "a1", &["INBOX"]))?;
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

#[test]
fn opening_waits_for_the_previous_handle_to_let_go() {
    let dir = tempfile::tempdir().unwrap();
    let first = SledStore::open(dir.path()).unwrap();
    first.create_account(&account("a1"), &[1; 32]).unwrap();
    first.db.flush().unwrap();
    let path = dir.path().to_path_buf();
    // The second open starts while the first holds the lock, and must not
    // fail for it: it waits until the first is dropped.
    let (started_tx, started) = std::sync::mpsc::channel();
    let second = std::thread::spawn(move || {
        started_tx.send(()).unwrap();
        SledStore::open(&path).map(|store| store.accounts().unwrap().len())
    });
    started.recv().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop(first);
    assert_eq!(second.join().unwrap().unwrap(), 1);
}

#[test]
fn a_queued_push_stays_small_whatever_the_subject() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    for d in 1..=5 {
        store
            .put_device(&device(&format!("d{d}"), "a1", &["INBOX"]))
            .unwrap();
    }
    let huge = "S".repeat(4 << 20);
    let messages: Vec<MessageSummary> = (1..=3)
        .map(|uid| MessageSummary {
            uid,
            from: crate::mail::Address {
                name: huge.clone(),
                email: huge.clone(),
            },
            subject: huge.clone(),
            preview: huge.clone(),
        })
        .collect();
    let keys = record(&store, &messages, 4);
    assert_eq!(keys.len(), 5);
    let limit = 4 * crate::mail::MAX_PAYLOAD_TEXT + 1024;
    for key in &keys {
        store.reschedule_push(key, 3, 5000, false).unwrap();
        let raw = store.pushes.get(push_key(key)).unwrap().unwrap();
        assert!(raw.len() <= limit, "{} bytes queued", raw.len());
        let push = store.pending_push(key).unwrap().unwrap();
        assert_eq!((push.count, push.messages[0].uid), (3, 3));
    }
}

/// One new message in INBOX for `device_ids`.
fn one_mail<'a>(account_id: &'a str, device_ids: &'a [String]) -> NewMail<'a> {
    NewMail {
        account_id,
        mailbox: "INBOX",
        device_ids,
        messages: &[],
        count: 1,
        cursor: Cursor {
            uidvalidity: 7,
            uidnext: 2,
            highestmodseq: None,
            max_uid_seen: false,
        },
        expires_at_ms: 1000,
    }
}

#[test]
fn no_queued_push_outlives_its_account() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    store.create_account(&account("a1"), &[9; 32]).unwrap();
    store.create_account(&account("a2"), &[8; 32]).unwrap();
    store.put_device(&device("d1", "a1", &["INBOX"])).unwrap();
    store.put_device(&device("d2", "a2", &["INBOX"])).unwrap();
    // The watcher read d1 among a1's devices, then d1 was deleted.
    store.delete_device("d1").unwrap();
    let late = ["d1".to_string()];
    assert!(store
        .record_new_mail(&one_mail("a1", &late))
        .unwrap()
        .is_empty());
    store
        .record_new_mail(&one_mail("a2", &["d2".to_string()]))
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
    };
    store
        .pushes
        .insert(push_key(&stray.key), encode(&stray).unwrap())
        .unwrap();

    assert!(store.delete_account("a1").unwrap());
    let left: Vec<String> = store
        .pending_pushes()
        .unwrap()
        .into_iter()
        .map(|p| p.account_id)
        .collect();
    assert_eq!(left, ["a2"]);
}

#[test]
fn an_entry_queued_whole_shrinks_at_its_next_retry() {
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
    };
    store
        .pushes
        .insert(push_key(&key), encode(&legacy).unwrap())
        .unwrap();
    store.reschedule_push(&key, 1, 500, false).unwrap();
    let raw = store.pushes.get(push_key(&key)).unwrap().unwrap();
    assert!(
        raw.len() <= 2 * crate::mail::MAX_PAYLOAD_TEXT,
        "{}",
        raw.len()
    );
}
