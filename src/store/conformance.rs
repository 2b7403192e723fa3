//! The promises every [`Store`] backend keeps, as one suite run against each
//! of them: sled in this crate's unit tests, PostgreSQL in the integration
//! tests (on a real server). A backend is given as a [`Harness`] that makes
//! fresh, empty stores and reopens one as a restarted process would.
//!
//! What the suite states about crashes: once [`Store::flush`] has returned,
//! every write before it survives the process (checked by reopening). A
//! watcher's `record_new_mail` may be found again after a crash that kept
//! the pushes but not the cursor; queuing it again adds nothing.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::send::{ByteCounts, Created, SendJob, SendPath, SendSettings, SendStatus, UploadRecord};
use super::{
    lists_mailbox, AccountRecord, AccountStored, Cursor, DeviceMail, DeviceRecord, DeviceStored,
    Fence, NewMail, OAuthRecord, PayloadTier, PushKey, PushSubscription, Security, ServerRecord,
    Store, Ticket, MAX_QUEUED_MESSAGES,
};
use crate::mail::MessageSummary;

#[path = "conformance_rules.rs"]
mod rules;
use rules::{
    a_device_s_rules_are_kept_and_replaced_in_place,
    held_mail_merged_during_a_delivery_keeps_waiting,
    held_pushes_wait_until_mail_worth_a_push_wakes_them,
    pushed_windows_are_kept_per_mailbox_and_go_with_their_mailbox,
    read_mail_leaves_only_the_pushes_that_wait,
};

/// Makes stores of one backend for the suite.
pub trait Harness: Sync {
    /// A new, empty store.
    fn fresh(&self) -> Pin<Box<dyn Future<Output = Arc<dyn Store>> + Send + '_>>;
    /// The same store as a restarted process opens it (`store` is dropped first).
    fn reopen(
        &self,
        store: Arc<dyn Store>,
    ) -> Pin<Box<dyn Future<Output = Arc<dyn Store>> + Send + '_>>;
}

type Case = for<'a> fn(&'a dyn Harness) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        &[$((stringify!($name), |h| Box::pin($name(h)))),*]
    };
}

const CASES: &[(&str, Case)] = cases![
    new_mail_is_queued_for_watching_devices_and_moves_the_cursor,
    mail_found_again_after_a_crash_is_queued_once,
    queued_messages_are_bounded_but_counted,
    deleting_an_account_removes_everything_it_owns,
    deleting_the_last_device_of_a_mailbox_forgets_its_cursor,
    a_queued_push_stays_small_whatever_the_subject,
    no_push_is_queued_for_a_deleted_device,
    one_account_per_login,
    one_device_per_endpoint_and_the_device_limit,
    claimed_pushes_are_delivered_and_rescheduled,
    flushed_records_survive_a_restart,
    idempotency_keys_find_the_first_job,
    removing_an_account_s_send_data_leaves_other_accounts_alone,
    tickets_are_taken_once_and_expire,
    a_rotated_refresh_token_replaces_only_the_one_read,
    a_device_s_rules_are_kept_and_replaced_in_place,
    held_pushes_wait_until_mail_worth_a_push_wakes_them,
    pushed_windows_are_kept_per_mailbox_and_go_with_their_mailbox,
    read_mail_leaves_only_the_pushes_that_wait,
    held_mail_merged_during_a_delivery_keeps_waiting,
];

/// Runs every case, each on a fresh store; panics naming the failed case.
pub async fn run_all(harness: &dyn Harness) {
    for (name, case) in CASES {
        eprintln!("store conformance: {name}");
        case(harness).await;
    }
}

pub fn account(id: &str) -> AccountRecord {
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
        oauth: None,
    }
}

/// A device of `account_id` with a push endpoint of its own.
pub fn device(id: &str, account_id: &str, mailboxes: &[&str]) -> DeviceRecord {
    DeviceRecord {
        id: id.into(),
        account_id: account_id.into(),
        subscription: PushSubscription {
            endpoint: format!("https://push.example/{id}"),
            p256dh: vec![4; 65],
            auth: vec![1; 16],
        },
        mailboxes: mailboxes.iter().map(|m| m.to_string()).collect(),
        payload: PayloadTier::Preview,
        created_at: 0,
        rules: Default::default(),
        clear: None,
    }
}

fn summary(uid: u32) -> MessageSummary {
    MessageSummary {
        uid,
        subject: format!("message {uid}"),
        ..Default::default()
    }
}

fn cursor(uidnext: u32) -> Cursor {
    Cursor {
        uidvalidity: 7,
        uidnext,
        highestmodseq: None,
        max_uid_seen: false,
    }
}

async fn add_account(store: &dyn Store, id: &str, token: u8) {
    let stored = store.create_account(&account(id), &[token; 32]).await;
    assert_eq!(stored.unwrap(), AccountStored::Stored);
}

async fn add_device(store: &dyn Store, id: &str, account_id: &str, mailboxes: &[&str]) {
    let stored = store
        .put_device(&device(id, account_id, mailboxes), 10)
        .await;
    assert_eq!(stored.unwrap(), DeviceStored::Stored(id.into()));
}

/// Records new mail in `account_id`'s INBOX for its devices that watch it now.
async fn record(
    store: &dyn Store,
    account_id: &str,
    messages: &[MessageSummary],
    uidnext: u32,
) -> Vec<PushKey> {
    let device_ids: Vec<String> = store
        .devices_of(account_id)
        .await
        .unwrap()
        .into_iter()
        .filter(|d| lists_mailbox(&d.mailboxes, "INBOX"))
        .map(|d| d.id)
        .collect();
    store
        .record_new_mail(&NewMail {
            account_id,
            mailbox: "INBOX",
            deliveries: DeviceMail::to_each(
                &device_ids,
                messages,
                messages.len() as u32,
                i64::MAX / 2,
            ),
            cursor: cursor(uidnext),
            unseen: None,
            fence: Fence::SOLE_OWNER,
        })
        .await
        .unwrap()
}

async fn new_mail_is_queued_for_watching_devices_and_moves_the_cursor(h: &dyn Harness) {
    let store = &*h.fresh().await;
    add_account(store, "a1", 9).await;
    add_device(store, "d1", "a1", &["inbox"]).await;
    add_device(store, "d2", "a1", &["Work"]).await;
    let owner = store.account_for_token(&[9; 32]).await.unwrap();
    assert_eq!(owner.as_deref(), Some("a1"));

    let keys = record(store, "a1", &[summary(5), summary(6)], 7).await;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].device_id, "d1");
    let stored = store.cursor("a1", "INBOX").await.unwrap().unwrap();
    assert_eq!(stored.uidnext, 7);

    // A burst coalesces into the same queued push.
    let first = store.claim_push(&keys[0], 60_000).await.unwrap().unwrap();
    record(store, "a1", &[summary(7)], 8).await;
    let push = store.pending_push(&keys[0]).await.unwrap().unwrap();
    assert_eq!((push.count, push.messages.len()), (3, 3));
    assert!(push.version > first.version);

    // A delivery of the first version leaves only what was merged after it.
    assert!(!store.finish_push(&keys[0], &first).await.unwrap());
    let push = store.pending_push(&keys[0]).await.unwrap().unwrap();
    assert_eq!(push.count, 1);
    assert_eq!(push.messages.iter().map(|m| m.uid).collect::<Vec<_>>(), [7]);
    store.reschedule_push(&keys[0], 1, 50, true).await.unwrap();
    let push = store.pending_push(&keys[0]).await.unwrap().unwrap();
    assert_eq!(
        (push.attempts, push.not_before_ms, push.shrink),
        (1, 50, true)
    );
    let last = store.claim_push(&keys[0], 60_000).await.unwrap().unwrap();
    assert!(store.finish_push(&keys[0], &last).await.unwrap());
    assert!(store.pending_pushes().await.unwrap().is_empty());
}

async fn mail_found_again_after_a_crash_is_queued_once(h: &dyn Harness) {
    let store = &*h.fresh().await;
    add_account(store, "a1", 9).await;
    add_device(store, "d1", "a1", &["INBOX"]).await;
    record(store, "a1", &[summary(5), summary(6)], 7).await;
    // The push survived a crash, the cursor did not: 5 and 6 are found
    // again, together with 7.
    let again = [summary(5), summary(6), summary(7)];
    let keys = record(store, "a1", &again, 8).await;
    let push = store.pending_push(&keys[0]).await.unwrap().unwrap();
    let uids: Vec<u32> = push.messages.iter().map(|m| m.uid).collect();
    assert_eq!(uids, [5, 6, 7]);
    assert_eq!(push.count, 3);
    let stored = store.cursor("a1", "INBOX").await.unwrap().unwrap();
    assert_eq!(stored.uidnext, 8);
}

async fn queued_messages_are_bounded_but_counted(h: &dyn Harness) {
    let store = &*h.fresh().await;
    add_account(store, "a1", 9).await;
    add_device(store, "d1", "a1", &["INBOX"]).await;
    let many: Vec<_> = (1..=50).map(summary).collect();
    let keys = record(store, "a1", &many, 51).await;
    let push = store.pending_push(&keys[0]).await.unwrap().unwrap();
    assert_eq!(push.count, 50);
    assert_eq!(push.messages.len(), MAX_QUEUED_MESSAGES);
    assert_eq!(push.messages.last().unwrap().uid, 50);
}

async fn deleting_an_account_removes_everything_it_owns(h: &dyn Harness) {
    let store = &*h.fresh().await;
    add_account(store, "a1", 9).await;
    add_account(store, "a2", 8).await;
    add_device(store, "d1", "a1", &["INBOX"]).await;
    add_device(store, "d2", "a2", &["INBOX"]).await;
    record(store, "a1", &[summary(1)], 2).await;

    assert!(store.delete_account("a1").await.unwrap());
    assert!(store.account("a1").await.unwrap().is_none());
    assert!(store.account_for_token(&[9; 32]).await.unwrap().is_none());
    let login = store.account_for_login("imap.example.org", 993, "a1");
    assert!(login.await.unwrap().is_none());
    assert!(store.device("d1").await.unwrap().is_none());
    assert!(store.cursor("a1", "INBOX").await.unwrap().is_none());
    assert!(store.pending_pushes().await.unwrap().is_empty());
    assert_eq!(store.devices_of("a2").await.unwrap().len(), 1);
    assert!(store.account_for_token(&[8; 32]).await.unwrap().is_some());
    assert!(!store.delete_account("a1").await.unwrap());

    // A watcher that stopped late writes a cursor after the deletion: the
    // write is refused, or deleting again removes it.
    let late = store
        .put_cursor("a1", "INBOX", &cursor(3), Fence::SOLE_OWNER)
        .await;
    if late.is_ok() {
        store.delete_account("a1").await.unwrap();
    }
    assert!(store.cursor("a1", "INBOX").await.unwrap().is_none());
}

async fn deleting_the_last_device_of_a_mailbox_forgets_its_cursor(h: &dyn Harness) {
    let store = &*h.fresh().await;
    add_account(store, "a1", 9).await;
    add_device(store, "d1", "a1", &["INBOX", "Work", "Lists"]).await;
    add_device(store, "d2", "a1", &["Lists"]).await;
    for mailbox in ["INBOX", "Work", "Lists"] {
        let at = cursor(5);
        let put = store.put_cursor("a1", mailbox, &at, Fence::SOLE_OWNER);
        put.await.unwrap();
    }
    assert!(store.delete_device("d1").await.unwrap());
    assert!(!store.delete_device("d1").await.unwrap());
    assert!(store.cursor("a1", "INBOX").await.unwrap().is_some());
    assert!(store.cursor("a1", "Work").await.unwrap().is_none());
    assert!(store.cursor("a1", "Lists").await.unwrap().is_some());
}

async fn a_queued_push_stays_small_whatever_the_subject(h: &dyn Harness) {
    let store = &*h.fresh().await;
    add_account(store, "a1", 9).await;
    for d in 1..=5 {
        add_device(store, &format!("d{d}"), "a1", &["INBOX"]).await;
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
            ..Default::default()
        })
        .collect();
    let keys = record(store, "a1", &messages, 4).await;
    assert_eq!(keys.len(), 5);
    let limit = 4 * crate::mail::MAX_PAYLOAD_TEXT + 1024;
    for key in &keys {
        store.reschedule_push(key, 3, 5000, false).await.unwrap();
        let push = store.pending_push(key).await.unwrap().unwrap();
        let size = serde_json::to_vec(&push).unwrap().len();
        assert!(size <= limit, "{size} bytes queued");
        assert_eq!((push.count, push.messages[0].uid), (3, 3));
    }
}

async fn no_push_is_queued_for_a_deleted_device(h: &dyn Harness) {
    let store = &*h.fresh().await;
    add_account(store, "a1", 9).await;
    add_device(store, "d1", "a1", &["INBOX"]).await;
    add_device(store, "d2", "a1", &["INBOX"]).await;
    // The watcher read d1 and d2 among a1's devices, then d1 was deleted.
    assert!(store.delete_device("d1").await.unwrap());
    let ids = ["d1".to_string(), "d2".to_string()];
    let keys = store
        .record_new_mail(&NewMail {
            account_id: "a1",
            mailbox: "INBOX",
            deliveries: DeviceMail::to_each(&ids, &[], 1, i64::MAX / 2),
            cursor: cursor(2),
            unseen: None,
            fence: Fence::SOLE_OWNER,
        })
        .await
        .unwrap();
    let queued: Vec<String> = keys.into_iter().map(|k| k.device_id).collect();
    assert_eq!(queued, ["d2"]);
    let pending = store.pending_pushes().await.unwrap();
    assert_eq!(pending.len(), 1);
}

async fn one_account_per_login(h: &dyn Harness) {
    let store = &*h.fresh().await;
    add_account(store, "a1", 1).await;
    // The same login registered again under another id is refused…
    let mut other = account("a2");
    other.imap.username = "a1".into();
    let stored = store.create_account(&other, &[2; 32]).await.unwrap();
    assert_eq!(stored, AccountStored::LoginTaken("a1".into()));
    assert!(store.account("a2").await.unwrap().is_none());
    assert!(store.account_for_token(&[2; 32]).await.unwrap().is_none());
    // …while the account itself takes new credentials and a second token.
    let mut again = account("a1");
    again.email = "new@example.org".into();
    let stored = store.create_account(&again, &[3; 32]).await.unwrap();
    assert_eq!(stored, AccountStored::Stored);
    let a1 = store.account("a1").await.unwrap().unwrap();
    assert_eq!(a1.email, "new@example.org");
    for token in [1, 3] {
        let owner = store.account_for_token(&[token; 32]).await.unwrap();
        assert_eq!(owner.as_deref(), Some("a1"));
    }
    assert_eq!(store.revoke_tokens("a1", Some(&[3; 32])).await.unwrap(), 1);
    assert!(store.revoke_token(&[3; 32]).await.unwrap());
    assert!(!store.revoke_token(&[3; 32]).await.unwrap());
    assert_eq!(store.accounts().await.unwrap().len(), 1);
}

async fn one_device_per_endpoint_and_the_device_limit(h: &dyn Harness) {
    let store = &*h.fresh().await;
    add_account(store, "a1", 1).await;
    add_device(store, "d1", "a1", &["INBOX"]).await;
    // The same endpoint again, under a new id: replaces d1, keeps its id.
    let mut again = device("d9", "a1", &["Work"]);
    again.subscription.endpoint = "https://push.example/d1".into();
    let stored = store.put_device(&again, 2).await.unwrap();
    assert_eq!(stored, DeviceStored::Stored("d1".into()));
    let devices = store.devices_of("a1").await.unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].mailboxes, ["Work"]);

    add_device(store, "d2", "a1", &["INBOX"]).await;
    let third = store.put_device(&device("d3", "a1", &["INBOX"]), 2).await;
    assert_eq!(third.unwrap(), DeviceStored::TooMany);
    let gone = store
        .put_device(&device("d4", "nobody", &["INBOX"]), 2)
        .await;
    assert_eq!(gone.unwrap(), DeviceStored::NoAccount);
    assert!(store.device("d4").await.unwrap().is_none());
}

async fn claimed_pushes_are_delivered_and_rescheduled(h: &dyn Harness) {
    let store = &*h.fresh().await;
    add_account(store, "a1", 1).await;
    add_device(store, "d1", "a1", &["INBOX"]).await;
    let keys = record(store, "a1", &[summary(1)], 2).await;
    assert_eq!(store.due_pushes(0, 10).await.unwrap(), keys);

    let push = store.claim_push(&keys[0], 60_000).await.unwrap().unwrap();
    store
        .reschedule_push(&keys[0], 1, 5_000, false)
        .await
        .unwrap();
    assert!(store.due_pushes(4_999, 10).await.unwrap().is_empty());
    assert_eq!(store.due_pushes(5_000, 10).await.unwrap(), keys);
    let again = store.claim_push(&keys[0], 60_000).await.unwrap().unwrap();
    assert_eq!(again.messages, push.messages);
    assert!(store.finish_push(&keys[0], &again).await.unwrap());
    assert!(store.claim_push(&keys[0], 60_000).await.unwrap().is_none());
    assert!(store.due_pushes(i64::MAX, 10).await.unwrap().is_empty());
}

async fn flushed_records_survive_a_restart(h: &dyn Harness) {
    let store = h.fresh().await;
    add_account(&*store, "a1", 9).await;
    add_device(&*store, "d1", "a1", &["INBOX"]).await;
    record(&*store, "a1", &[summary(1)], 2).await;
    store.create_send_job(&job("j1", "a1", None)).await.unwrap();
    store.flush().await.unwrap();
    let store = &*h.reopen(store).await;
    assert_eq!(store.accounts().await.unwrap().len(), 1);
    assert_eq!(store.devices_of("a1").await.unwrap().len(), 1);
    assert_eq!(store.pending_pushes().await.unwrap().len(), 1);
    assert_eq!(store.cursor("a1", "INBOX").await.unwrap(), Some(cursor(2)));
    assert!(store.send_job("j1").await.unwrap().is_some());
}

fn job(id: &str, account_id: &str, key: Option<&str>) -> SendJob {
    SendJob {
        id: id.into(),
        account_id: account_id.into(),
        idempotency_key: key.map(String::from),
        created_ms: 0,
        status: SendStatus::Queued,
        path: SendPath::Assembled,
        from: "a@x".into(),
        recipients: vec!["b@x".into()],
        message_id: "<m@x>".into(),
        segments: Vec::new(),
        size: 0,
        sent_mailbox: None,
        sent: None,
        spooled: false,
        url: None,
        submit_started: false,
        smtp_reply: None,
        error: None,
        bytes: ByteCounts::default(),
        attempts: 0,
    }
}

fn upload(id: &str, account_id: &str) -> UploadRecord {
    UploadRecord {
        id: id.into(),
        account_id: account_id.into(),
        content_type: "text/plain".into(),
        filename: Some("notes.txt".into()),
        length: None,
        offset: 3,
        sha256: None,
        created_ms: 0,
        expires_ms: i64::MAX,
    }
}

async fn idempotency_keys_find_the_first_job(h: &dyn Harness) {
    let store = &*h.fresh().await;
    add_account(store, "acct", 1).await;
    let create = |id, key| async move { store.create_send_job(&job(id, "acct", key)).await };
    assert_eq!(create("j1", Some("k")).await.unwrap(), Created::New);
    let second = create("j2", Some("k")).await.unwrap();
    assert_eq!(second, Created::Existing("j1".into()));
    assert!(store.send_job("j2").await.unwrap().is_none());
    assert_eq!(create("j3", None).await.unwrap(), Created::New);
    let mut done = job("j3", "acct", None);
    done.status = SendStatus::Done;
    store.put_send_job(&done).await.unwrap();
    let open: Vec<String> = store
        .unfinished_send_jobs()
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(open, vec!["j1".to_string()]);
}

async fn removing_an_account_s_send_data_leaves_other_accounts_alone(h: &dyn Harness) {
    let store = &*h.fresh().await;
    add_account(store, "acct", 1).await;
    add_account(store, "other", 2).await;
    store.put_upload(&upload("u1", "acct")).await.unwrap();
    store.put_upload(&upload("u2", "other")).await.unwrap();
    store
        .create_send_job(&job("j1", "acct", Some("k")))
        .await
        .unwrap();
    let theirs = job("j2", "other", Some("k"));
    store.create_send_job(&theirs).await.unwrap();
    let settings = SendSettings {
        save_sent: Some(false),
        sent_mailbox: None,
    };
    store.put_send_settings("acct", &settings).await.unwrap();
    assert_eq!(store.send_settings("acct").await.unwrap(), settings);

    let removed = store.remove_send_data("acct").await.unwrap();
    assert_eq!(removed.uploads, ["u1"]);
    assert_eq!(removed.jobs, ["j1"]);
    assert!(store.upload("u1").await.unwrap().is_none());
    assert!(store.send_job("j1").await.unwrap().is_none());
    assert!(store.send_id_for_key("acct", "k").await.unwrap().is_none());
    assert!(store.upload("u2").await.unwrap().is_some());
    let theirs = store.send_id_for_key("other", "k").await.unwrap();
    assert_eq!(theirs.as_deref(), Some("j2"));
    let default = store.send_settings("acct").await.unwrap();
    assert_eq!(default, SendSettings::default());

    // A job still running when its account went cannot come back.
    let mut late = job("j1", "acct", Some("k"));
    late.status = SendStatus::Done;
    store.put_send_job(&late).await.unwrap();
    assert!(store.send_job("j1").await.unwrap().is_none());
}

async fn tickets_are_taken_once_and_expire(h: &dyn Harness) {
    let store = h.fresh().await;
    let ticket = Ticket {
        body: b"sealed".to_vec(),
        expires_at: 1000,
    };
    store.put_ticket(&[1; 32], &ticket, 900).await.expect("put");
    store.put_ticket(&[2; 32], &ticket, 900).await.expect("put");
    store.put_ticket(&[3; 32], &ticket, 900).await.expect("put");
    let taken = store.take_ticket(&[1; 32], 1000).await.expect("take");
    assert_eq!(taken, Some(ticket.clone()));
    assert_eq!(
        store.take_ticket(&[1; 32], 1000).await.expect("again"),
        None
    );
    assert_eq!(store.take_ticket(&[2; 32], 1001).await.expect("late"), None);
    assert_eq!(store.take_ticket(&[2; 32], 900).await.expect("gone"), None);
    let store = h.reopen(store).await;
    let kept = store.take_ticket(&[3; 32], 950).await.expect("reopened");
    assert_eq!(kept, Some(ticket));
}

async fn a_rotated_refresh_token_replaces_only_the_one_read(h: &dyn Harness) {
    let store = h.fresh().await;
    let grant = |sealed: u8| OAuthRecord {
        provider: "google".into(),
        refresh_sealed: vec![sealed; 40],
        revoked: false,
    };
    let mut record = account("a");
    record.oauth = Some(grant(1));
    store
        .create_account(&record, &[1; 32])
        .await
        .expect("account");
    let first = store.replace_oauth("a", &[1; 40], &grant(2)).await;
    assert!(first.expect("replace"), "the token read is replaced");
    let stale = store.replace_oauth("a", &[1; 40], &grant(3)).await;
    assert!(
        !stale.expect("stale"),
        "a token read before the rotation is not"
    );
    let gone = store.replace_oauth("nobody", &[2; 40], &grant(3)).await;
    assert!(!gone.expect("no account"));
    let store = h.reopen(store).await;
    let stored = store.account("a").await.expect("read").expect("account");
    assert_eq!(stored.oauth, Some(grant(2)));
    assert_eq!(stored.imap.username, "a", "the rest of the record is kept");
}
