//! How the watcher looks for new mail, end to end against a real Dovecot
//! and a real Web Push receiver: a burst larger than `watch.fetch_limit`
//! (searched, only the newest summarised), single messages after it (one
//! pipelined fetch each), a server without IDLE (NOOP polling), a server
//! that mishandles pipelined commands, and a device registered or the
//! account deleted while a check is under way (the last three through
//! proxies in front of Dovecot). And a test push sent on request.

use crate::support;

use std::time::Duration;

use support::dovecot::Dovecot;
use support::imap_proxy::{DropAfterDone, HoldFetchAnswer};
use support::push::TestDevice;
use support::raw_imap::RawImap;
use support::scenario::{message, uids, Watched, PASSWORD, USER};

const WAIT: Duration = Duration::from_secs(30);

/// Five messages land in the watched INBOX at once (one COPY), with the
/// summary limit at three: the pushes count all five, summarise at most three
/// each, and the newest message is always summarised. Single messages after
/// that are each pushed alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_beyond_the_fetch_limit_is_counted_and_its_newest_summarised() {
    let w = Watched::start_on(Dovecot::start(), "preview", |config| {
        config.watch.fetch_limit = 3;
    })
    .await;
    // Staged in a mailbox nobody watches, then copied into INBOX at once.
    w.dovecot.create_mailbox(USER, PASSWORD, "Staging");
    for n in 1..=5 {
        let subject = format!("Burst {n}");
        let raw = message("Bob <bob@example.org>", &subject, &subject);
        w.dovecot.append(USER, PASSWORD, "Staging", &raw);
    }
    let mut imap = RawImap::login(w.dovecot.imap_port(), USER, PASSWORD);
    imap.command("SELECT Staging");
    imap.command("UID COPY 1:5 INBOX");
    imap.logout();

    let mut counted = 0;
    let mut summarised = Vec::new();
    while counted < 5 {
        let push = w.device.next_push(WAIT).await.payload;
        let these = uids(&push);
        assert!(these.len() <= 3, "{push}");
        assert!(!these.is_empty(), "{push}");
        summarised.extend(these);
        counted += push["count"].as_u64().unwrap();
    }
    assert_eq!(counted, 5);
    assert!(summarised.contains(&5), "{summarised:?}");
    assert!(summarised.iter().all(|uid| (1..=5).contains(uid)));

    // Then single messages, one at a time: each is pushed alone (IDLE went
    // out behind the fetch that found the one before).
    pushed_one_by_one(&w, "Single").await;
    w.finish().await;
}

/// A server without IDLE (hidden from its capabilities) is polled with
/// NOOP; each new message is found and pushed once, with its summary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_idle_is_polled_and_each_mail_pushed_once() {
    let dovecot = Dovecot::builder()
        .imap_capability("IMAP4rev1 LITERAL+ SASL-IR UIDPLUS ENABLE CONDSTORE")
        .start();
    let w = Watched::start_on(dovecot, "headers", |config| {
        config.watch.poll_secs = 1;
    })
    .await;
    let me = w.wait_watching().await;
    assert!(!me["watch"]["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == "IDLE"));
    pushed_one_by_one(&w, "Polled").await;
    w.finish().await;
}

/// A server that drops what follows DONE in the same write loses the check
/// pipelined behind it. The command times out once; the gateway then stops
/// pipelining for that host, reconnects, pushes that mail once, and sends
/// DONE, commands and IDLE one at a time from then on (nothing more dropped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_drops_pipelined_commands_gets_them_one_at_a_time() {
    let dovecot = Dovecot::start();
    let proxy = DropAfterDone::start(dovecot.imap_port()).await;
    let w = Watched::start_via(dovecot, proxy.port(), "headers", |config| {
        // Each command's limit: how long the lost check is waited for.
        config.upstream.connect_timeout_secs = 2;
    })
    .await;
    assert_eq!(proxy.dropped(), 0);
    pushed_one_by_one(&w, "Dropped").await;
    assert_eq!(proxy.dropped(), 1);
    w.finish().await;
}

/// Once such a server handles pipelining again, the host gets it back: after
/// `watch.pipelining_retry_secs` one connection tries pipelining, and its
/// check works, so the host is cleared and later checks pipeline too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_handles_pipelining_again_gets_it_back() {
    let dovecot = Dovecot::start();
    let proxy = DropAfterDone::start(dovecot.imap_port()).await;
    let w = Watched::start_via(dovecot, proxy.port(), "headers", |config| {
        config.upstream.connect_timeout_secs = 2;
        config.watch.pipelining_retry_secs = 1;
    })
    .await;
    let uid = w.append("Carol <carol@example.org>", "Dropped once");
    let push = w.device.next_push(WAIT).await.payload;
    assert_eq!(uids(&push), vec![u64::from(uid)]);
    assert_eq!(proxy.dropped(), 1);

    proxy.fix();
    // Past the retry wait (a test pause, not a measurement).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for n in 1..=2 {
        let uid = w.append("Carol <carol@example.org>", &format!("Pipelined {n}"));
        let push = w.device.next_push(WAIT).await.payload;
        assert_eq!(uids(&push), vec![u64::from(uid)], "{push}");
    }
    w.device.expect_no_push(Duration::from_secs(2)).await;
    assert_eq!(proxy.dropped(), 1);
    assert!(proxy.passed_pipelined() >= 1);
    w.finish().await;
}

/// A device registered while the watcher's check for a new message is
/// waiting for its answer gets that message: the check found it after the
/// registration was answered. Then both devices get the next one, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_registered_during_a_check_gets_the_mail_it_finds() {
    let dovecot = Dovecot::start();
    let proxy = HoldFetchAnswer::start(dovecot.imap_port()).await;
    let w = Watched::start_via(dovecot, proxy.port(), "headers", |_| {}).await;

    proxy.arm();
    let uid = w.append("Dave <dave@example.org>", "During registration");
    proxy.wait_holding(WAIT).await;
    let second = TestDevice::new(&w.receiver);
    w.gateway()
        .add_device(&w.token, second.subscription_json(), &["INBOX"], "headers")
        .await;
    proxy.release();

    for device in [&w.device, &second] {
        let push = device.next_push(WAIT).await.payload;
        assert_eq!(uids(&push), vec![u64::from(uid)], "{push}");
    }
    w.wait_watching().await;
    let next = w.append("Dave <dave@example.org>", "After registration");
    for device in [&w.device, &second] {
        let push = device.next_push(WAIT).await.payload;
        assert_eq!(uids(&push), vec![u64::from(next)], "{push}");
        device.expect_no_push(Duration::from_secs(2)).await;
    }
    w.finish().await;
}

/// An account deleted while its watcher's check waits for an answer, longer
/// than deletion waits for the watcher: the deletion goes ahead, nothing is
/// pushed, and once the check has ended, what it wrote (the cursor it moved)
/// is deleted too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_deleted_during_a_check_leaves_no_record() {
    use lemonade::store::{SledStore, Store};

    let dovecot = Dovecot::start();
    let proxy = HoldFetchAnswer::start(dovecot.imap_port()).await;
    let mut w = Watched::start_via(dovecot, proxy.port(), "headers", |config| {
        // Each command's limit: the held check outlasts the deletion's wait.
        config.upstream.connect_timeout_secs = 60;
    })
    .await;
    proxy.arm();
    w.append("Erin <erin@example.org>", "During deletion");
    proxy.wait_holding(WAIT).await;
    let (status, body) = w.gateway().delete("/v1/accounts/me", Some(&w.token)).await;
    assert_eq!(status, 204, "{body}");
    proxy.release();
    w.device.expect_no_push(Duration::from_secs(2)).await;
    // Stopping waits for the gateway's tasks, the late deletion included.
    w.stop_gateway().await;

    let store = SledStore::open(&w.data_dir().join("db")).unwrap();
    assert!(store.account(&w.account_id).await.unwrap().is_none());
    assert!(store.devices_of(&w.account_id).await.unwrap().is_empty());
    assert!(store
        .cursor(&w.account_id, "INBOX")
        .await
        .unwrap()
        .is_none());
}

/// Appends three messages one after another; each must be pushed alone,
/// with its UID and subject, and nothing more.
async fn pushed_one_by_one(w: &Watched, label: &str) {
    for n in 1..=3 {
        let subject = format!("{label} {n}");
        let uid = w.append("Carol <carol@example.org>", &subject);
        let push = w.device.next_push(WAIT).await.payload;
        assert_eq!(push["count"], 1, "{push}");
        assert_eq!(uids(&push), vec![u64::from(uid)]);
        assert_eq!(push["messages"][0]["subject"], subject.as_str());
    }
    w.device.expect_no_push(Duration::from_secs(3)).await;
}

/// `POST /v1/devices/{id}/test` sends a real encrypted push at once and
/// says what the push service answered; a subscription it says is gone is
/// removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_push_reaches_the_device_and_a_gone_one_is_removed() {
    use support::push::{Answer, PushReceiver};
    let dovecot = Dovecot::start();
    dovecot.add_user("alice", "secret");
    let receiver = PushReceiver::start().await;
    let (_tmp, dir) = support::gateway::data_dir();
    let gateway = support::gateway::Gateway::start(&dir).await;
    let (account_id, token) = gateway
        .register(dovecot.host(), dovecot.imap_port(), "alice", "secret")
        .await;
    let device = TestDevice::new(&receiver);
    let id = gateway
        .add_device(&token, device.subscription_json(), &["INBOX"], "count")
        .await;

    let test = format!("/v1/devices/{id}/test");
    let (status, body) = gateway
        .post(&test, Some(&token), &serde_json::json!({}))
        .await;
    assert_eq!(
        (status, &body["delivered"]),
        (200, &serde_json::json!(true)),
        "{body}"
    );
    let push = device.next_push(Duration::from_secs(30)).await;
    assert_eq!(push.payload["type"], "test");
    assert_eq!(push.payload["account_id"], account_id.as_str());
    assert_eq!(push.payload["device_id"], id.as_str());

    receiver.respond_with(device.path(), [Answer::status(410)]);
    let (status, body) = gateway
        .post(&test, Some(&token), &serde_json::json!({}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (410, Some("device_gone"))
    );
    let (_, devices) = gateway.get("/v1/devices", Some(&token)).await;
    assert_eq!(
        devices["devices"].as_array().map(Vec::len),
        Some(0),
        "{devices}"
    );
    let (status, _) = gateway
        .post(&test, Some(&token), &serde_json::json!({}))
        .await;
    assert_eq!(status, 404);
    gateway.stop().await;
}
