//! The suite's cases for devices' notification rules: the rules kept with
//! the device, pushes they hold back, and the windows of pushed mail the
//! watcher keeps (see `conformance.rs`).

use std::borrow::Cow;

use super::{add_account, add_device, cursor, device, summary, Harness};
use crate::store::{
    DeviceMail, DeviceStored, Fence, NewMail, PushKey, PushedWindow, ReadMail, Store, DORMANT,
};

/// Records one message for `d1` of `a1`, held until `not_before_ms`.
async fn record_held(store: &dyn Store, uid: u32, not_before_ms: i64) {
    record_for(store, "d1", uid, not_before_ms).await;
}

/// Records one message of `a1`'s INBOX for `device_id` alone.
async fn record_for(store: &dyn Store, device_id: &str, uid: u32, not_before_ms: i64) {
    let messages = [summary(uid)];
    let share = DeviceMail {
        device_id,
        messages: Cow::Borrowed(if not_before_ms == DORMANT {
            &[]
        } else {
            &messages
        }),
        count: 1,
        not_before_ms,
        expires_at_ms: i64::MAX / 2,
    };
    store
        .record_new_mail(&NewMail {
            account_id: "a1",
            mailbox: "INBOX",
            deliveries: vec![share],
            cursor: cursor(uid + 1),
            unseen: Some(uid),
            fence: Fence::SOLE_OWNER,
        })
        .await
        .unwrap();
}

pub(super) async fn held_pushes_wait_until_mail_worth_a_push_wakes_them(h: &dyn Harness) {
    let store = &*h.fresh().await;
    add_account(store, "a1", 1).await;
    add_device(store, "d1", "a1", &["INBOX"]).await;
    // Muted mail alone is never due; quiet hours until their end.
    record_held(store, 1, DORMANT).await;
    assert!(store.due_pushes(i64::MAX - 1, 10).await.unwrap().is_empty());
    record_held(store, 2, 5_000).await;
    assert!(store.due_pushes(4_999, 10).await.unwrap().is_empty());
    let keys = store.due_pushes(5_000, 10).await.unwrap();
    assert_eq!(keys.len(), 1);
    // Mail that breaks through brings it forward, with all it counts.
    record_held(store, 3, 0).await;
    assert_eq!(store.due_pushes(0, 10).await.unwrap(), keys);
    let push = store.claim_push(&keys[0], 60_000).await.unwrap().unwrap();
    assert_eq!((push.count, push.unseen, push.uidvalidity), (3, Some(3), 7));
    assert_eq!(
        push.messages.len(),
        2,
        "the muted message is counted, not listed"
    );
    // A claim given back leaves the push to be claimed again.
    store.release_push(&keys[0], push.claim).await.unwrap();
    let again = store.claim_push(&keys[0], 60_000).await.unwrap().unwrap();
    // A push waiting for a retry keeps its time whatever mail comes.
    store
        .reschedule_push(&keys[0], 1, 9_000, false)
        .await
        .unwrap();
    record_held(store, 4, 0).await;
    assert!(store.due_pushes(8_999, 10).await.unwrap().is_empty());
    assert_eq!(store.due_pushes(9_000, 10).await.unwrap(), keys);
    assert_eq!(again.count, 3);
}

/// `uids` of `a1`'s INBOX read at `now_ms`: the keys of the pushes changed.
async fn forget(store: &dyn Store, uidvalidity: u32, uids: &[u32], now_ms: i64) -> Vec<String> {
    let read = ReadMail {
        account_id: "a1",
        mailbox: "INBOX",
        uidvalidity,
        uids,
        unseen: Some(0),
        now_ms,
    };
    let unshown = store.forget_read(&read).await.unwrap();
    for device in &unshown {
        assert_eq!(device.uids, uids, "{}", device.device_id);
    }
    let mut devices: Vec<String> = unshown.into_iter().map(|u| u.device_id).collect();
    devices.sort();
    devices
}

pub(super) async fn read_mail_leaves_only_the_pushes_that_wait(h: &dyn Harness) {
    let store = &*h.fresh().await;
    add_account(store, "a1", 1).await;
    for id in ["d1", "d2", "d3"] {
        add_device(store, id, "a1", &["INBOX"]).await;
    }
    let key = |device: &str| PushKey {
        device_id: device.into(),
        mailbox: "INBOX".into(),
    };
    // d1 waits for the end of quiet hours, d2's push is due (it may be on
    // its way), d3 waits with one message only.
    record_held(store, 1, 5_000).await;
    record_held(store, 2, 5_000).await;
    record_for(store, "d2", 1, 0).await;
    record_for(store, "d3", 1, 5_000).await;
    assert!(
        forget(store, 8, &[1], 1_000).await.is_empty(),
        "another UIDVALIDITY"
    );
    assert_eq!(forget(store, 7, &[1], 1_000).await, ["d1", "d3"]);
    let d1 = store.pending_push(&key("d1")).await.unwrap().unwrap();
    let uids: Vec<u32> = d1.messages.iter().map(|m| m.uid).collect();
    assert_eq!((d1.count, uids, d1.unseen), (1, vec![2], Some(0)));
    assert_eq!(d1.not_before_ms, 5_000);
    let d2 = store.pending_push(&key("d2")).await.unwrap().unwrap();
    assert_eq!(
        (d2.count, d2.messages.len()),
        (1, 1),
        "a due push is left alone"
    );
    assert_eq!(store.pending_push(&key("d3")).await.unwrap(), None);
    assert!(
        forget(store, 7, &[1], 1_000).await.is_empty(),
        "nothing left to take"
    );
    // What is left counting only muted mail waits for mail worth a push.
    record_held(store, 3, DORMANT).await;
    assert_eq!(forget(store, 7, &[2], 1_000).await, ["d1"]);
    let d1 = store.pending_push(&key("d1")).await.unwrap().unwrap();
    assert_eq!((d1.count, d1.messages.len()), (1, 0));
    assert_eq!(d1.not_before_ms, DORMANT);
}

pub(super) async fn held_mail_merged_during_a_delivery_keeps_waiting(h: &dyn Harness) {
    let store = &*h.fresh().await;
    add_account(store, "a1", 1).await;
    add_device(store, "d1", "a1", &["INBOX"]).await;
    record_held(store, 1, 0).await;
    let keys = store.due_pushes(0, 10).await.unwrap();
    let on_its_way = store.claim_push(&keys[0], 60_000).await.unwrap().unwrap();
    // Quiet hours began while the push was being sent.
    record_held(store, 2, 5_000).await;
    assert!(!store.finish_push(&keys[0], &on_its_way).await.unwrap());
    assert!(store.due_pushes(4_999, 10).await.unwrap().is_empty());
    assert_eq!(store.due_pushes(5_000, 10).await.unwrap(), keys);
    let left = store.claim_push(&keys[0], 60_000).await.unwrap().unwrap();
    assert_eq!((left.count, left.messages[0].uid), (1, 2));
}

pub(super) async fn pushed_windows_are_kept_per_mailbox_and_go_with_their_mailbox(h: &dyn Harness) {
    let store = &*h.fresh().await;
    add_account(store, "a1", 1).await;
    add_device(store, "d1", "a1", &["INBOX", "Work"]).await;
    let mut window = PushedWindow::default();
    window.add(7, [5, 3, 4]);
    for mailbox in ["INBOX", "Work"] {
        let put = store.put_pushed_window("a1", mailbox, &window, Fence::SOLE_OWNER);
        put.await.unwrap();
    }
    let read = store.pushed_window("a1", "INBOX").await.unwrap().unwrap();
    assert_eq!((read.uidvalidity, read.uids), (7, vec![3, 4, 5]));
    // Nobody watches Work any more: its window goes with its cursor.
    assert!(store.delete_device("d1").await.unwrap());
    assert!(store.pushed_window("a1", "Work").await.unwrap().is_none());
    assert!(store.pushed_window("a1", "INBOX").await.unwrap().is_some());
    assert!(store.delete_account("a1").await.unwrap());
    assert!(store.pushed_window("a1", "INBOX").await.unwrap().is_none());
}

/// What `PATCH /v1/devices/{id}` relies on: rules and `clear` come back as
/// stored, and storing the same id again replaces the record even at the
/// device limit.
pub(super) async fn a_device_s_rules_are_kept_and_replaced_in_place(h: &dyn Harness) {
    let store = &*h.fresh().await;
    add_account(store, "a1", 1).await;
    let mut first = device("d1", "a1", &["INBOX"]);
    first.rules = crate::rules::RulesInput {
        vip: vec!["boss@corp.example".into()],
        mute_lists: true,
        ..Default::default()
    }
    .validate()
    .unwrap();
    first.clear = Some(false);
    assert_eq!(
        store.put_device(&first, 1).await.unwrap(),
        DeviceStored::Stored("d1".into())
    );
    let read = store.device("d1").await.unwrap().unwrap();
    assert_eq!((&read.rules, read.clear), (&first.rules, Some(false)));
    let mut changed = read.clone();
    changed.rules = Default::default();
    changed.clear = None;
    assert_eq!(
        store.put_device(&changed, 1).await.unwrap(),
        DeviceStored::Stored("d1".into())
    );
    let devices = store.devices_of("a1").await.unwrap();
    assert_eq!(devices.len(), 1);
    assert!(devices[0].rules.is_empty() && devices[0].clear.is_none());
}
