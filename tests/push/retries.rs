//! The push queue's retries as a device sees them: a pending retry across
//! a restart, the queue listed under its device, a push resent smaller, and
//! endpoints that never answer holding only their own slots.

use std::time::Duration;

use serde_json::json;

use crate::support::dovecot::Dovecot;
use crate::support::gateway::{data_dir, test_config, Gateway};
use crate::support::hanging::HangingService;
use crate::support::push::{PushReceiver, TestDevice};
use crate::support::scenario::{message, uids, Watched};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_retry_survives_a_gateway_restart() {
    let mut w = Watched::start("headers").await;
    let path = w.device.path().to_string();
    w.receiver.respond_with(
        &path,
        [crate::support::push::Answer::status(503).retry_after("2")],
    );
    let uid = w.append("a@example.org", "retried after restart");
    w.receiver.wait_for_requests(&path, 1, WAIT).await;
    w.stop_gateway().await;
    assert_eq!(w.device.push_count(), 0);

    w.start_gateway().await;
    let push = w.device.next_push(WAIT).await.payload;
    assert_eq!(uids(&push), vec![u64::from(uid)]);
    let requests = w.receiver.requests_for(&path);
    assert_eq!(requests.len(), 2);
    assert_eq!((requests[0].answered, requests[1].answered), (503, 201));
    w.finish().await;
}

/// A push the push service refuses for now is listed under its device, with
/// its attempts and when it is tried next, until it is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_waiting_for_a_retry_is_listed_under_its_device() {
    let w = Watched::start("headers").await;
    let path = w.device.path().to_string();
    w.receiver.respond_with(
        &path,
        [crate::support::push::Answer::status(503).retry_after("3600")],
    );
    let (_, listed) = w.gateway().get("/v1/devices", Some(&w.token)).await;
    assert_eq!(listed["devices"][0]["queued"], json!([]), "{listed}");

    w.append("a@example.org", "refused for now");
    w.receiver.wait_for_requests(&path, 1, WAIT).await;
    let mut queued = json!([]);
    for _ in 0..200 {
        let (_, listed) = w.gateway().get("/v1/devices", Some(&w.token)).await;
        queued = listed["devices"][0]["queued"].clone();
        if queued[0]["attempts"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(queued.as_array().map(Vec::len), Some(1), "{queued}");
    assert_eq!(queued[0]["mailbox"], "INBOX");
    assert_eq!(
        (queued[0]["count"].clone(), queued[0]["attempts"].clone()),
        (json!(1), json!(1))
    );
    let next = queued[0]["next_attempt_at"].as_str().unwrap();
    let expires = queued[0]["expires_at"].as_str().unwrap();
    assert!(next < expires, "{queued}");
    assert_eq!(w.device.push_count(), 0);
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_refused_as_too_large_is_resent_smaller() {
    let mut w = Watched::start("preview").await;
    let path = w.device.path().to_string();
    w.stop_gateway().await;
    // A burst of long messages while the gateway is down makes one big push.
    for i in 0..15 {
        let subject = format!("{i} {}", "a long subject line ".repeat(6));
        let body = "word ".repeat(100);
        w.dovecot.append(
            "alice",
            "secret",
            "INBOX",
            &message("a@example.org", &subject, &body),
        );
    }
    w.receiver.respond_with(&path, [413]);
    w.start_gateway().await;
    let push = w.device.next_push(WAIT).await;
    let requests = w.receiver.requests_for(&path);
    assert_eq!(requests[0].answered, 413);
    assert!(requests[0].body.len() > 2048, "{}", requests[0].body.len());
    assert!(push.plaintext.len() <= 1024, "{}", push.plaintext.len());
    assert!(requests[1].body.len() < requests[0].body.len());
    assert_eq!(push.payload["count"], 15);
    assert!(!uids(&push.payload).is_empty());
    w.finish().await;
}

/// Endpoints that accept connections and never answer hold at most their
/// account's share of the delivery slots: another account's push goes out
/// while they still hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_endpoints_of_one_account_leave_slots_for_others() {
    let dovecot = Dovecot::start();
    dovecot.add_user("alice", "secret");
    dovecot.add_user("mallory", "secret");
    let receiver = PushReceiver::start().await;
    let hanging = HangingService::start().await;
    let (_tmp, dir) = data_dir();
    let mut config = test_config(&dir);
    config.push.concurrency = 3;
    config.push.concurrency_per_account = 2;
    // Far longer than the test may wait: no hanging push times out in it.
    config.push.request_timeout_secs = 3600;
    let gateway = Gateway::start_with(config).await;

    let (_, mallory) = gateway
        .register(dovecot.host(), dovecot.imap_port(), "mallory", "secret")
        .await;
    for i in 0..4 {
        let mut subscription = TestDevice::new(&receiver).subscription_json();
        subscription["endpoint"] = json!(hanging.url_for(&format!("/hang/{i}")));
        gateway
            .add_device(&mallory, subscription, &["INBOX"], "count")
            .await;
    }
    let (_, alice) = gateway
        .register(dovecot.host(), dovecot.imap_port(), "alice", "secret")
        .await;
    let device = TestDevice::new(&receiver);
    gateway
        .add_device(&alice, device.subscription_json(), &["INBOX"], "count")
        .await;
    gateway.wait_watching(&mallory, &["INBOX"]).await;
    gateway.wait_watching(&alice, &["INBOX"]).await;

    dovecot.append(
        "mallory",
        "secret",
        "INBOX",
        &message("m@example.org", "x", "x"),
    );
    // Mallory's four pushes: two on their way (the account's share), and
    // they never come back.
    hanging.wait_for_requests(2, WAIT).await;
    dovecot.append(
        "alice",
        "secret",
        "INBOX",
        &message("a@example.org", "hi", "hi"),
    );
    let push = device.next_push(WAIT).await;
    assert_eq!(push.payload["count"], 1);
    assert_eq!(hanging.requests(), 2, "mallory holds more than its share");
    gateway.stop().await;
}
