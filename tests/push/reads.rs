//! Clearing notifications of mail read elsewhere: a real Dovecot, a second
//! IMAP client that reads, moves and deletes, and devices that decrypt
//! each push independently.

use std::time::Duration;

use serde_json::Value;

use crate::support::dovecot::Dovecot;
use crate::support::push::{ReceivedPush, TestDevice};
use crate::support::raw_imap::RawImap;
use crate::support::scenario::{message, uids, Watched, PASSWORD, USER};

const WAIT: Duration = Duration::from_secs(30);

/// Another client of alice's (a laptop, webmail) with INBOX selected.
fn laptop(watched: &Watched) -> RawImap {
    let mut imap = RawImap::login(watched.dovecot.imap_port(), USER, PASSWORD);
    imap.command("SELECT INBOX");
    imap
}

/// Receives mail pushes until every one of `wanted` was pushed.
async fn pushed(watched: &Watched, wanted: &[u32]) -> Vec<Value> {
    let mut seen = Vec::new();
    let mut pushes = Vec::new();
    while !wanted.iter().all(|uid| seen.contains(&u64::from(*uid))) {
        let push = watched.device.next_push(WAIT).await;
        assert_eq!(push.payload["type"], "mail", "{}", push.payload);
        seen.extend(uids(&push.payload));
        pushes.push(push.payload);
    }
    pushes
}

/// The next push, which must be a `read` push: its UIDs, ascending, and
/// the push.
async fn next_read(watched: &Watched) -> (Vec<u64>, ReceivedPush) {
    let push = watched.device.next_push(WAIT).await;
    assert_eq!(push.payload["type"], "read", "{}", push.payload);
    assert_eq!(push.urgency.as_deref(), Some("low"));
    let mut uids: Vec<u64> = push.payload["uids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_u64().unwrap())
        .collect();
    uids.sort_unstable();
    (uids, push)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_read_elsewhere_is_cleared_and_old_mail_is_not() {
    let dovecot = Dovecot::start();
    dovecot.add_user(USER, PASSWORD);
    // Mail from before the gateway watched: never pushed.
    let old = dovecot.append(
        USER,
        PASSWORD,
        "INBOX",
        &message("o@example.org", "old", "x"),
    );
    let watched = Watched::start_on(dovecot, "preview", |_| {}).await;
    let uid = watched.append("ann@example.org", "new");
    let mail = watched.device.next_push(WAIT).await;
    assert_eq!(uids(&mail.payload), [u64::from(uid)]);
    assert_eq!(mail.payload["unseen"], 2, "{}", mail.payload);
    let id = mail.payload["messages"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(id.len(), 16);

    let mut laptop = laptop(&watched);
    laptop.command(&format!("UID STORE {old} +FLAGS (\\Seen)"));
    laptop.command(&format!("UID STORE {uid} +FLAGS (\\Seen)"));
    let (read, push) = next_read(&watched).await;
    let payload = &push.payload;
    assert_eq!(read, [u64::from(uid)], "only the pushed message: {payload}");
    assert_eq!(payload["ids"][0], id.as_str());
    assert_eq!(payload["unseen"], 0, "{payload}");
    assert_eq!(payload["mailbox"], "INBOX");
    // Same Topic as the mail push, so a waiting mail push is replaced.
    assert!(mail.topic.is_some());
    assert_eq!(push.topic, mail.topic);
    laptop.logout();
    watched.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moved_and_deleted_messages_are_cleared() {
    let watched = Watched::start("headers").await;
    watched.dovecot.create_mailbox(USER, PASSWORD, "Archive");
    let moved = watched.append("ann@example.org", "to move");
    let deleted = watched.append("bob@example.org", "to delete");
    pushed(&watched, &[moved, deleted]).await;

    let mut laptop = laptop(&watched);
    laptop.command(&format!("UID MOVE {moved} Archive"));
    laptop.command(&format!("UID STORE {deleted} +FLAGS (\\Deleted)"));
    laptop.command("EXPUNGE");
    let mut cleared = Vec::new();
    while cleared.len() < 2 {
        let (read, _) = next_read(&watched).await;
        cleared.extend(read);
    }
    cleared.sort_unstable();
    assert_eq!(cleared, [u64::from(moved), u64::from(deleted)]);
    laptop.logout();
    watched.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marking_twenty_read_gives_one_push() {
    let watched = Watched::start("headers").await;
    let mut appended = Vec::new();
    for i in 0..20 {
        appended.push(watched.append("list@example.org", &format!("message {i}")));
    }
    // Wait until the pushes counted all 20.
    let mut counted = 0;
    while counted < 20 {
        let push = watched.device.next_push(WAIT).await;
        assert_eq!(push.payload["type"], "mail");
        counted += push.payload["count"].as_u64().unwrap();
    }
    let mut laptop = laptop(&watched);
    laptop.command("STORE 1:* +FLAGS (\\Seen)");
    let (read, push) = next_read(&watched).await;
    let payload = &push.payload;
    let expected: Vec<u64> = appended.iter().map(|u| u64::from(*u)).collect();
    assert_eq!(read, expected, "{payload}");
    assert_eq!(payload["unseen"], 0);
    // The next push is for new mail: no second read push came before it.
    let next = watched.append("ann@example.org", "after");
    let push = watched.device.next_push(WAIT).await;
    assert_eq!(push.payload["type"], "mail", "{}", push.payload);
    assert_eq!(push.payload["count"], 1);
    assert_eq!(push.payload["unseen"], 1);
    let _ = next;
    laptop.logout();
    watched.finish().await;
}

/// A second device of alice's, watching INBOX and a new mailbox, Work
/// (one connection with NOTIFY where the server has it).
async fn watching_work_too(watched: &Watched) -> TestDevice {
    watched.dovecot.create_mailbox(USER, PASSWORD, "Work");
    let gateway = watched.gateway();
    let device = TestDevice::new(&watched.receiver);
    gateway
        .add_device(
            &watched.token,
            device.subscription_json(),
            &["INBOX", "Work"],
            "headers",
        )
        .await;
    gateway
        .wait_watching(&watched.token, &["INBOX", "Work"])
        .await;
    device
}

async fn read_in_two_mailboxes(dovecot: Dovecot) {
    let watched = Watched::start_on(dovecot, "headers", |_| {}).await;
    let second = watching_work_too(&watched).await;
    let uid = watched.append("ann@example.org", "both watch INBOX");
    pushed(&watched, &[uid]).await;
    let push = second.next_push(WAIT).await;
    assert_eq!(uids(&push.payload), [u64::from(uid)]);

    let mut laptop = laptop(&watched);
    laptop.command(&format!("UID STORE {uid} +FLAGS (\\Seen)"));
    let (read, _) = next_read(&watched).await;
    assert_eq!(read, [u64::from(uid)]);
    let push = second.next_push(WAIT).await;
    assert_eq!(push.payload["type"], "read");
    assert_eq!(push.payload["uids"][0], uid);
    laptop.logout();
    watched.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_seen_through_notify() {
    read_in_two_mailboxes(Dovecot::start()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_seen_without_notify() {
    let dovecot = Dovecot::builder()
        .imap_capability("IMAP4rev1 LITERAL+ SASL-IR IDLE UIDPLUS ENABLE CONDSTORE")
        .start();
    read_in_two_mailboxes(dovecot).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_read_while_the_gateway_was_down_is_cleared_after_catch_up() {
    let mut watched = Watched::start("preview").await;
    let read_later = watched.append("ann@example.org", "read while down");
    let kept = watched.append("bob@example.org", "still unread");
    pushed(&watched, &[read_later, kept]).await;
    watched.stop_gateway().await;

    let mut laptop = laptop(&watched);
    laptop.command(&format!("UID STORE {read_later} +FLAGS (\\Seen)"));
    laptop.logout();
    watched.start_gateway().await;
    let (read, push) = next_read(&watched).await;
    assert_eq!(read, [u64::from(read_later)], "{}", push.payload);
    assert_eq!(push.payload["unseen"], 1);
    watched.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailbox_watched_through_notify_reports_reads_when_next_selected() {
    let watched = Watched::start("headers").await;
    let device = watching_work_too(&watched).await;
    let work = |subject: &str| {
        let raw = message("ann@example.org", subject, subject);
        watched.dovecot.append(USER, PASSWORD, "Work", &raw)
    };
    let first = work("first in Work");
    let push = device.next_push(WAIT).await;
    assert_eq!(push.payload["mailbox"], "Work");
    assert_eq!(uids(&push.payload), [u64::from(first)]);

    // Read while INBOX is the selected mailbox: nothing says so until Work
    // is selected again, for its next mail.
    let mut laptop = RawImap::login(watched.dovecot.imap_port(), USER, PASSWORD);
    laptop.command("SELECT Work");
    laptop.command(&format!("UID STORE {first} +FLAGS (\\Seen)"));
    laptop.logout();
    let second = work("second in Work");
    let mut mail = None;
    let mut read = None;
    while mail.is_none() || read.is_none() {
        let push = device.next_push(WAIT).await;
        assert_eq!(push.payload["mailbox"], "Work", "{}", push.payload);
        match push.payload["type"].as_str() {
            Some("mail") => mail = Some(push.payload),
            Some("read") => read = Some(push.payload),
            other => panic!("unexpected push {other:?}"),
        }
    }
    assert_eq!(uids(&mail.unwrap()), [u64::from(second)]);
    let read = read.unwrap();
    assert_eq!(read["uids"], serde_json::json!([first]));
    assert_eq!(read["unseen"], 1);
    watched.finish().await;
}
