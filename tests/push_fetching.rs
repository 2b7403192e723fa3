//! How the watcher looks for new mail, end to end against a real Dovecot
//! and a real Web Push receiver: a burst larger than `watch.fetch_limit`
//! (searched, only the newest summarised), single messages after it (one
//! pipelined fetch each), and a server without IDLE (NOOP polling).

mod support;

use std::time::Duration;

use support::dovecot::Dovecot;
use support::gateway::{data_dir, test_config, Gateway};
use support::push::{PushReceiver, TestDevice};
use support::raw_imap::RawImap;
use support::scenario::{message, uids};

const WAIT: Duration = Duration::from_secs(30);

/// Five messages land in the watched INBOX at once (one COPY), with the
/// summary limit at three: the pushes count all five, summarise at most three
/// each, and the newest message is always summarised. Single messages after
/// that are each pushed alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_beyond_the_fetch_limit_is_counted_and_its_newest_summarised() {
    let dovecot = Dovecot::start();
    dovecot.add_user("alice", "secret");
    dovecot.create_mailbox("alice", "secret", "Staging");
    for n in 1..=5 {
        let subject = format!("Burst {n}");
        let raw = message("Bob <bob@example.org>", &subject, &subject);
        dovecot.append("alice", "secret", "Staging", &raw);
    }
    let receiver = PushReceiver::start().await;
    let device = TestDevice::new(&receiver);
    let (_tmp, dir) = data_dir();
    let mut config = test_config(&dir);
    config.watch.fetch_limit = 3;
    let gateway = Gateway::start_with(config).await;
    let (_, token) = gateway
        .register(dovecot.host(), dovecot.imap_port(), "alice", "secret")
        .await;
    gateway
        .add_device(&token, device.subscription_json(), &["INBOX"], "preview")
        .await;
    gateway.wait_watching(&token, &["INBOX"]).await;

    let mut imap = RawImap::login(dovecot.imap_port(), "alice", "secret");
    imap.command("SELECT Staging");
    imap.command("UID COPY 1:5 INBOX");
    imap.logout();

    let mut counted = 0;
    let mut summarised = Vec::new();
    while counted < 5 {
        let push = device.next_push(WAIT).await.payload;
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
    for n in 6..=8 {
        let subject = format!("Single {n}");
        let raw = message("Carol <carol@example.org>", &subject, &subject);
        let uid = dovecot.append("alice", "secret", "INBOX", &raw);
        let push = device.next_push(WAIT).await.payload;
        assert_eq!(push["count"], 1, "{push}");
        assert_eq!(uids(&push), vec![u64::from(uid)]);
        assert_eq!(push["messages"][0]["subject"], subject.as_str());
    }
    device.expect_no_push(Duration::from_secs(2)).await;
    gateway.stop().await;
}

/// A server without IDLE (hidden from its capabilities) is polled with
/// NOOP; each new message is found and pushed once, with its summary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_idle_is_polled_and_each_mail_pushed_once() {
    let dovecot = Dovecot::builder()
        .imap_capability("IMAP4rev1 LITERAL+ SASL-IR UIDPLUS ENABLE CONDSTORE")
        .start();
    dovecot.add_user("alice", "secret");
    let receiver = PushReceiver::start().await;
    let device = TestDevice::new(&receiver);
    let (_tmp, dir) = data_dir();
    let mut config = test_config(&dir);
    config.watch.poll_secs = 1;
    let gateway = Gateway::start_with(config).await;
    let (_, token) = gateway
        .register(dovecot.host(), dovecot.imap_port(), "alice", "secret")
        .await;
    gateway
        .add_device(&token, device.subscription_json(), &["INBOX"], "headers")
        .await;
    let me = gateway.wait_watching(&token, &["INBOX"]).await;
    assert!(!me["watch"]["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == "IDLE"));

    for n in 1..=3 {
        let subject = format!("Polled {n}");
        let raw = message("Dan <dan@example.org>", &subject, &subject);
        let uid = dovecot.append("alice", "secret", "INBOX", &raw);
        let push = device.next_push(WAIT).await.payload;
        assert_eq!(push["count"], 1, "{push}");
        assert_eq!(uids(&push), vec![u64::from(uid)]);
        assert_eq!(push["messages"][0]["subject"], subject.as_str());
    }
    device.expect_no_push(Duration::from_secs(3)).await;
    gateway.stop().await;
}
