//! Rules per device with a real Dovecot: quiet hours read against a clock
//! the test sets (the gateway's wall clock, shifted), VIPs breaking
//! through, `only_direct` and `mute_lists` dropping the right messages
//! while every push keeps the counts right.

use std::time::Duration;

use serde_json::{json, Value};

use lemonade::clock::WallClock;

use crate::support::dovecot::Dovecot;
use crate::support::gateway::{data_dir, test_config, Gateway};
use crate::support::push::{PushReceiver, TestDevice};
use crate::support::scenario::{message, uids, PASSWORD, USER};

const WAIT: Duration = Duration::from_secs(30);

/// 07:00 in Berlin on Monday 2026-12-07 (winter time, UTC+1).
const BERLIN_SEVEN_AM_MS: i64 = 1_796_623_200_000;

struct Rig {
    dovecot: Dovecot,
    gateway: Gateway,
    device: TestDevice,
    token: String,
    _receiver: PushReceiver,
    _tmp: tempfile::TempDir,
}

impl Rig {
    /// Alice's INBOX watched by a gateway reading `clock`, with one
    /// device of `tier` registered with `rules`.
    async fn start(clock: WallClock, tier: &str, rules: Value) -> Rig {
        let dovecot = Dovecot::start();
        dovecot.add_user(USER, PASSWORD);
        let receiver = PushReceiver::start().await;
        let device = TestDevice::new(&receiver);
        let (tmp, dir) = data_dir();
        let gateway = Gateway::start_clocked(test_config(&dir), clock).await;
        let (_, token) = gateway
            .register(dovecot.host(), dovecot.imap_port(), USER, PASSWORD)
            .await;
        let body = json!({
            "subscription": device.subscription_json(),
            "mailboxes": ["INBOX"],
            "payload": tier,
            "rules": rules,
        });
        let (status, answer) = gateway.post("/v1/devices", Some(&token), &body).await;
        assert_eq!(status, 201, "{answer}");
        gateway.wait_watching(&token, &["INBOX"]).await;
        Rig {
            dovecot,
            gateway,
            device,
            token,
            _receiver: receiver,
            _tmp: tmp,
        }
    }

    fn append(&self, from: &str, to: &str, extra_headers: &str, subject: &str) -> u32 {
        let raw = String::from_utf8(message(from, subject, subject)).unwrap();
        let raw = raw
            .replacen(
                "To: alice@test.local\r\n",
                &format!("To: {to}\r\n{extra_headers}"),
                1,
            )
            .into_bytes();
        self.dovecot.append(USER, PASSWORD, "INBOX", &raw)
    }

    /// Waits until the device's queued push for INBOX counts `count`
    /// messages (it is held, not sent).
    async fn wait_held(&self, count: u64, why: &str) {
        self.wait_queue(|queued| {
            queued
                .first()
                .is_some_and(|q| q["count"] == count && q["held"] == why)
        })
        .await;
    }

    /// Polls the device's queued pushes (`GET /v1/devices`) until `done`.
    async fn wait_queue(&self, done: impl Fn(&[Value]) -> bool) {
        for _ in 0..600 {
            let (status, body) = self.gateway.get("/v1/devices", Some(&self.token)).await;
            assert_eq!(status, 200);
            if done(body["devices"][0]["queued"].as_array().unwrap()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the device's queue never got there");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_hours_hold_mail_until_they_end_and_a_vip_breaks_through() {
    let clock = WallClock::system();
    clock.set_now_ms(BERLIN_SEVEN_AM_MS - 600_000);
    let rules = json!({
        "quiet_hours": {"start": "22:00", "end": "07:00", "time_zone": "Europe/Berlin"},
        "except_vip": true,
        "vip": ["boss@example.org"],
    });
    let rig = Rig::start(clock.clone(), "headers", rules).await;

    let first = rig.append(
        "ann@example.org",
        "alice@test.local",
        "",
        "during quiet hours",
    );
    rig.wait_held(1, "quiet_hours").await;
    assert_eq!(rig.device.push_count(), 0);

    // A VIP goes out at once, with what waited.
    let boss = rig.append("boss@example.org", "alice@test.local", "", "urgent");
    let push = rig.device.next_push(WAIT).await;
    assert_eq!(uids(&push.payload), [u64::from(boss), u64::from(first)]);
    assert_eq!(push.payload["messages"][0]["vip"], true);
    assert!(push.payload["messages"][1].get("vip").is_none());
    assert_eq!(push.payload["count"], 2);
    assert_eq!(push.payload["unseen"], 2);

    // Delivered and gone from the queue before more mail comes.
    rig.wait_queue(<[Value]>::is_empty).await;
    let second = rig.append("bob@example.org", "alice@test.local", "", "still quiet");
    rig.wait_held(1, "quiet_hours").await;
    // A second before the end: the summary waits for it, then goes out once.
    clock.set_now_ms(BERLIN_SEVEN_AM_MS - 1_000);
    let third = rig.append(
        "cy@example.org",
        "alice@test.local",
        "",
        "just before seven",
    );
    let summary = rig.device.next_push(WAIT).await;
    assert!(
        clock.now_ms() >= BERLIN_SEVEN_AM_MS,
        "sent before quiet hours ended"
    );
    assert_eq!(summary.payload["type"], "mail");
    assert_eq!(summary.payload["count"], 2);
    assert_eq!(
        uids(&summary.payload),
        [u64::from(third), u64::from(second)]
    );
    assert_eq!(summary.payload["unseen"], 4);
    assert_eq!(rig.device.push_count(), 2, "nothing else was pushed");
    rig.gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_direct_and_mute_lists_drop_the_right_mail_and_keep_the_counts() {
    let rules = json!({"only_direct": true, "mute_lists": true});
    let rig = Rig::start(WallClock::system(), "count", rules).await;

    // Muted: a list, bulk mail, a noreply sender, mail not to alice (Bcc).
    rig.append(
        "dev@lists.example.org",
        "alice@test.local",
        "List-Id: <dev.example.org>\r\n",
        "list",
    );
    rig.append(
        "shop@example.org",
        "alice@test.local",
        "Precedence: bulk\r\n",
        "offer",
    );
    rig.append("noreply@example.org", "alice@test.local", "", "receipt");
    rig.append("ann@example.org", "team@example.org", "", "bcc to alice");
    rig.wait_held(4, "muted").await;
    assert_eq!(rig.device.push_count(), 0);

    // Direct mail: one push counting all five, with the badge.
    let direct = rig.append("bob@example.org", "Alice <ALICE@test.local>", "", "for you");
    let push = rig.device.next_push(WAIT).await;
    assert_eq!(push.payload["type"], "mail");
    assert_eq!(push.payload["count"], 5, "{}", push.payload);
    assert_eq!(push.payload["unseen"], 5);
    let _ = direct;
    rig.gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn muted_mail_is_not_listed_beside_mail_that_is() {
    let rules = json!({"mute_senders": ["example.net"], "vip": ["ann@example.org"]});
    let rig = Rig::start(WallClock::system(), "headers", rules).await;
    rig.append("spam@example.net", "alice@test.local", "", "muted sender");
    rig.wait_held(1, "muted").await;
    let ann = rig.append("ann@example.org", "alice@test.local", "", "vip");
    let push = rig.device.next_push(WAIT).await;
    assert_eq!(uids(&push.payload), [u64::from(ann)]);
    assert_eq!(push.payload["messages"][0]["vip"], true);
    assert_eq!(push.payload["count"], 2);
    rig.gateway.stop().await;
}
