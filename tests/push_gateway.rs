//! The gateway end to end: a real Dovecot, the gateway in-process, and a real
//! Web Push receiver whose devices decrypt each push with an independent
//! implementation and verify its VAPID signature.

use crate::support;

#[path = "push/native.rs"]
mod native;
#[path = "push/reads.rs"]
mod reads;
#[path = "push/retries.rs"]
mod retries;
#[path = "push/rules.rs"]
mod rules;

use std::time::Duration;

use serde_json::json;
use support::dovecot::Dovecot;
use support::gateway::{data_dir, Gateway};
use support::push::{PushReceiver, TestDevice};
use support::scenario::{message, uids, Watched};

const WAIT: Duration = Duration::from_secs(30);

async fn vapid_key(gateway: &Gateway) -> Vec<u8> {
    use base64::Engine;
    let (status, body) = gateway.get("/v1/push/vapid", None).await;
    assert_eq!(status, 200);
    let key = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(body["public_key"].as_str().unwrap())
        .unwrap();
    assert_eq!(key.len(), 65);
    key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_mail_is_pushed_to_every_payload_tier() {
    let dovecot = Dovecot::start();
    dovecot.add_user("alice", "secret");
    let receiver = PushReceiver::start().await;
    let (_tmp, dir) = data_dir();
    let gateway = Gateway::start(&dir).await;
    let key = vapid_key(&gateway).await;
    let (account_id, token) = gateway
        .register(dovecot.host(), dovecot.imap_port(), "alice", "secret")
        .await;

    let tiers = ["preview", "headers", "count", "wake"];
    let mut devices = Vec::new();
    for tier in tiers {
        let device = TestDevice::new(&receiver).expecting_vapid_key(&key);
        gateway
            .add_device(&token, device.subscription_json(), &["INBOX"], tier)
            .await;
        devices.push(device);
    }
    let me = gateway.wait_watching(&token, &["INBOX"]).await;
    assert_eq!(me["devices"], 4);
    assert!(me["watch"]["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == "IDLE"));

    let body = format!(
        "Hello Alice,\r\n\r\n{}",
        "the quick brown fox jumps over the lazy dog. ".repeat(12)
    );
    let uid = dovecot.append(
        "alice",
        "secret",
        "INBOX",
        &message(
            "=?UTF-8?Q?Zo=C3=AB_Sender?= <zoe@example.org>",
            "=?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_Z=C3=BCrich?=",
            &body,
        ),
    );

    let preview = devices[0].next_push(WAIT).await;
    let p = &preview.payload;
    assert_eq!(p["v"], 1);
    assert_eq!(p["type"], "mail");
    assert_eq!(p["account_id"], account_id.as_str());
    assert_eq!(p["mailbox"], "INBOX");
    assert_eq!(p["count"], 1);
    let m = &p["messages"][0];
    assert_eq!(m["uid"], uid);
    assert_eq!(m["subject"], "Grüße aus Zürich");
    assert_eq!(m["from"]["name"], "Zoë Sender");
    assert_eq!(m["from"]["email"], "zoe@example.org");
    let text = m["preview"].as_str().unwrap();
    assert!(
        text.starts_with("Hello Alice, the quick brown fox"),
        "{text}"
    );
    assert!(text.chars().count() <= 200, "{}", text.chars().count());
    assert!(preview.ttl.unwrap_or(0) > 0);
    assert_eq!(preview.urgency.as_deref(), Some("normal"));
    assert!(preview
        .topic
        .as_deref()
        .is_some_and(|t| !t.is_empty() && t.len() <= 32));

    let headers = devices[1].next_push(WAIT).await.payload;
    assert_eq!(headers["messages"][0]["subject"], "Grüße aus Zürich");
    assert_eq!(headers["messages"][0]["from"]["email"], "zoe@example.org");
    assert!(headers["messages"][0].get("preview").is_none(), "{headers}");

    let count = devices[2].next_push(WAIT).await.payload;
    assert_eq!(count["count"], 1);
    assert_eq!(count["mailbox"], "INBOX");
    assert!(count.get("messages").is_none(), "{count}");

    let wake = devices[3].next_push(WAIT).await.payload;
    assert_eq!(
        wake,
        json!({"v": 1, "type": "wake", "account_id": account_id})
    );

    for device in &devices {
        assert_eq!(device.push_count(), 1);
    }
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_that_arrives_while_the_gateway_is_down_is_pushed_once() {
    let mut w = Watched::start("headers").await;
    let first = w.append("a@example.org", "first");
    let push = w.device.next_push(WAIT).await.payload;
    assert_eq!(uids(&push), vec![u64::from(first)]);
    w.stop_gateway().await;

    let second = w.append("b@example.org", "second");
    let third = w.append("c@example.org", "third");

    w.start_gateway().await;
    let push = w.device.next_push(WAIT).await.payload;
    assert_eq!(push["count"], 2, "{push}");
    assert_eq!(uids(&push), vec![u64::from(third), u64::from(second)]);
    assert_eq!(push["messages"][0]["subject"], "third");
    assert_eq!(push["messages"][1]["subject"], "second");

    // The next push carries only the next message: nothing was re-pushed in between.
    w.wait_watching().await;
    let fourth = w.append("d@example.org", "fourth");
    let push = w.device.next_push(WAIT).await.payload;
    assert_eq!(uids(&push), vec![u64::from(fourth)], "{push}");
    assert_eq!(w.device.push_count(), 3);
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_mail_is_never_pushed_as_new() {
    let dovecot = Dovecot::start();
    dovecot.add_user("alice", "secret");
    for i in 0..3 {
        dovecot.append(
            "alice",
            "secret",
            "INBOX",
            &message("a@example.org", &format!("old {i}"), "old"),
        );
    }
    let receiver = PushReceiver::start().await;
    let device = TestDevice::new(&receiver);
    let (_tmp, dir) = data_dir();
    let gateway = Gateway::start(&dir).await;
    let (_, token) = gateway
        .register(dovecot.host(), dovecot.imap_port(), "alice", "secret")
        .await;
    gateway
        .add_device(&token, device.subscription_json(), &["INBOX"], "headers")
        .await;
    gateway.wait_watching(&token, &["INBOX"]).await;
    let new = dovecot.append(
        "alice",
        "secret",
        "INBOX",
        &message("b@example.org", "new", "new"),
    );
    // The first push is about the new message alone.
    let push = device.next_push(WAIT).await.payload;
    assert_eq!(push["count"], 1, "{push}");
    assert_eq!(uids(&push), vec![u64::from(new)]);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_delivered_while_the_server_restarts_is_pushed_once() {
    let mut w = Watched::start("headers").await;
    w.dovecot.stop();
    // Delivered by the MTA while IMAP is down.
    w.dovecot.deliver_to_maildir(
        "alice",
        &message("mta@example.org", "during the outage", "x"),
    );
    w.gateway().wait_state(&w.token, "backoff").await;
    w.dovecot.restart();

    let push = w.device.next_push(WAIT).await.payload;
    assert_eq!(push["count"], 1, "{push}");
    assert_eq!(push["messages"][0]["subject"], "during the outage");

    w.wait_watching().await;
    let next = w.append("a@example.org", "after");
    let push = w.device.next_push(WAIT).await.payload;
    assert_eq!(uids(&push), vec![u64::from(next)], "{push}");
    assert_eq!(w.device.push_count(), 2);

    let gateway = w.gateway();
    let metrics = gateway.metrics_text().await;
    let reconnects: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("lemonade_reconnects_total "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(reconnects >= 1, "{metrics}");
    // Every push waited for a flush of the store, and each flush is timed.
    let flushes: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("lemonade_store_flush_seconds_count "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(flushes >= 2, "{metrics}");
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_service_answers_prune_and_retry() {
    let dovecot = Dovecot::start();
    dovecot.add_user("alice", "secret");
    dovecot.create_mailbox("alice", "secret", "Work");
    let receiver = PushReceiver::start().await;
    let gone = TestDevice::new(&receiver);
    let flaky = TestDevice::new(&receiver);
    receiver.respond_with(gone.path(), [410]);
    receiver.respond_with(flaky.path(), [500, 201]);
    let (_tmp, dir) = data_dir();
    let gateway = Gateway::start(&dir).await;
    let (_, token) = gateway
        .register(dovecot.host(), dovecot.imap_port(), "alice", "secret")
        .await;
    gateway
        .add_device(
            &token,
            gone.subscription_json(),
            &["INBOX", "Work"],
            "headers",
        )
        .await;
    gateway
        .add_device(&token, flaky.subscription_json(), &["INBOX"], "headers")
        .await;
    gateway.wait_watching(&token, &["INBOX", "Work"]).await;

    let first = dovecot.append(
        "alice",
        "secret",
        "INBOX",
        &message("a@example.org", "first", "1"),
    );
    let push = flaky.next_push(WAIT).await;
    assert_eq!(uids(&push.payload), vec![u64::from(first)]);
    let attempts = receiver.requests_for(flaky.path());
    assert_eq!(attempts.len(), 2);
    assert!(!attempts[0].delivered() && attempts[1].delivered());

    // The device whose push service said 410 is gone.
    let mut devices = 2;
    for _ in 0..200 {
        devices = gateway.get("/v1/accounts/me", Some(&token)).await.1["devices"]
            .as_u64()
            .unwrap();
        if devices == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(devices, 1);
    assert_eq!(receiver.requests_for(gone.path()).len(), 1);
    // Its mailbox nobody else asked for is no longer watched.
    let mut watched = Vec::new();
    for _ in 0..200 {
        let (_, me) = gateway.get("/v1/accounts/me", Some(&token)).await;
        watched = me["watch"]["mailboxes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if me["watch"]["state"] == "watching" && watched == [json!("INBOX")] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(watched, [json!("INBOX")]);

    // Delivered exactly once: the next push carries only the next message.
    let second = dovecot.append(
        "alice",
        "secret",
        "INBOX",
        &message("a@example.org", "second", "2"),
    );
    let push = flaky.next_push(WAIT).await;
    assert_eq!(uids(&push.payload), vec![u64::from(second)]);
    assert_eq!(flaky.push_count(), 2);
    assert_eq!(receiver.requests_for(gone.path()).len(), 1);
    gateway.stop().await;
}

async fn tiers_and_mailboxes(dovecot: Dovecot, expect_notify: bool) {
    dovecot.add_user("alice", "secret");
    dovecot.create_mailbox("alice", "secret", "Work");
    let receiver = PushReceiver::start().await;
    let inbox_preview = TestDevice::new(&receiver);
    let work_count = TestDevice::new(&receiver);
    let (_tmp, dir) = data_dir();
    let gateway = Gateway::start(&dir).await;
    let (_, token) = gateway
        .register(dovecot.host(), dovecot.imap_port(), "alice", "secret")
        .await;
    gateway
        .add_device(
            &token,
            inbox_preview.subscription_json(),
            &["INBOX"],
            "preview",
        )
        .await;
    gateway
        .add_device(&token, work_count.subscription_json(), &["Work"], "count")
        .await;
    let me = gateway.wait_watching(&token, &["INBOX", "Work"]).await;
    let has_notify = me["watch"]["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == "NOTIFY");
    assert_eq!(has_notify, expect_notify);

    dovecot.append(
        "alice",
        "secret",
        "Work",
        &message("boss@example.org", "quarterly numbers", "see attached"),
    );
    let push = work_count.next_push(WAIT).await.payload;
    assert_eq!(push["mailbox"], "Work");
    assert_eq!(push["count"], 1);
    assert!(push.get("messages").is_none());

    let uid = dovecot.append(
        "alice",
        "secret",
        "INBOX",
        &message("friend@example.org", "dinner?", "at eight"),
    );
    let push = inbox_preview.next_push(WAIT).await.payload;
    // The INBOX device's first push is about INBOX: it got nothing for Work.
    assert_eq!(push["mailbox"], "INBOX");
    assert_eq!(uids(&push), vec![u64::from(uid)]);
    assert_eq!(push["messages"][0]["preview"], "at eight");

    dovecot.append(
        "alice",
        "secret",
        "Work",
        &message("boss@example.org", "more numbers", "again"),
    );
    let push = work_count.next_push(WAIT).await.payload;
    assert_eq!(push["mailbox"], "Work");
    assert_eq!(push["count"], 1);
    assert_eq!(work_count.push_count(), 2);
    assert_eq!(inbox_preview.push_count(), 1);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_get_their_own_tier_and_mailboxes_with_notify() {
    tiers_and_mailboxes(Dovecot::start(), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_get_their_own_tier_and_mailboxes_without_notify() {
    let dovecot = Dovecot::builder()
        .imap_capability("IMAP4rev1 LITERAL+ SASL-IR IDLE UIDPLUS ENABLE CONDSTORE")
        .start();
    tiers_and_mailboxes(dovecot, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_uidvalidity_change_resets_the_cursor_without_a_storm() {
    let dovecot = Dovecot::start();
    dovecot.add_user("alice", "secret");
    dovecot.create_mailbox("alice", "secret", "Work");
    let receiver = PushReceiver::start().await;
    let device = TestDevice::new(&receiver);
    let (_tmp, dir) = data_dir();
    let gateway = Gateway::start(&dir).await;
    let (_, token) = gateway
        .register(dovecot.host(), dovecot.imap_port(), "alice", "secret")
        .await;
    gateway
        .add_device(&token, device.subscription_json(), &["Work"], "headers")
        .await;
    gateway.wait_watching(&token, &["INBOX", "Work"]).await;
    gateway.stop().await;

    // The mailbox is recreated (new UIDVALIDITY) with mail in it while the gateway is down.
    let mut imap = support::raw_imap::RawImap::login(dovecot.imap_port(), "alice", "secret");
    imap.command("DELETE \"Work\"");
    imap.command("CREATE \"Work\"");
    imap.logout();
    for i in 0..3 {
        dovecot.append(
            "alice",
            "secret",
            "Work",
            &message("a@example.org", &format!("restored {i}"), "x"),
        );
    }

    let gateway = Gateway::start(&dir).await;
    gateway.wait_watching(&token, &["INBOX", "Work"]).await;
    let new = dovecot.append(
        "alice",
        "secret",
        "Work",
        &message("b@example.org", "really new", "y"),
    );
    let push = device.next_push(WAIT).await.payload;
    assert_eq!(push["count"], 1, "{push}");
    assert_eq!(uids(&push), vec![u64::from(new)]);
    assert_eq!(device.push_count(), 1);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_stop_the_watcher_in_auth_failed() {
    let mut w = Watched::start("headers").await;
    // The password changes on the server; the gateway's next login is refused.
    std::fs::write(w.dovecot.dir().join("users"), "alice:{PLAIN}changed:::::\n").unwrap();
    w.dovecot.restart();
    let me = w.gateway().wait_state(&w.token, "auth_failed").await;
    assert_eq!(me["devices"], 1);
    assert!(
        !me["watch"]["error"].as_str().unwrap_or_default().is_empty(),
        "{me}"
    );
    // The device is told, once.
    let told = w.device.next_push(WAIT).await.payload;
    assert_eq!(
        (&told["type"], &told["state"]),
        (&json!("account"), &json!("auth_failed")),
        "{told}"
    );
    assert_eq!(told["account_id"], w.account_id.as_str());
    // Registering again with the new password brings the account back.
    let (account_id, token) = w
        .gateway()
        .register(w.dovecot.host(), w.dovecot.imap_port(), "alice", "changed")
        .await;
    assert_eq!(account_id, w.account_id);
    let me = w.gateway().wait_watching(&token, &["INBOX"]).await;
    assert!(me["watch"]["error"].is_null(), "{me}");
    let raw = message("a@example.org", "after the password change", "x");
    let uid = w.dovecot.append("alice", "changed", "INBOX", &raw);
    let push = w.device.next_push(WAIT).await.payload;
    assert_eq!(uids(&push), vec![u64::from(uid)]);
    assert_eq!(w.device.push_count(), 2);
    w.finish().await;
}

/// An account registered while private hosts were allowed, on a gateway
/// restarted without that (an upgrade): its server is not dialled, the
/// account waits in backoff, and its status says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_no_longer_allowed_is_not_dialled_and_the_status_says_why() {
    let mut w = Watched::start("headers").await;
    w.stop_gateway().await;
    w.start_gateway_with(|config| config.upstream.allow_private_hosts = false)
        .await;
    let me = w.gateway().wait_state(&w.token, "backoff").await;
    let error = me["watch"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("allow_private_hosts"), "{me}");
    w.finish().await;
}
