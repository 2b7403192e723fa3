//! Rules per device with a real Dovecot: quiet hours read against a clock
//! the test sets (the gateway's wall clock, shifted), VIPs breaking
//! through, mail read elsewhere leaving the summary, `only_direct` and
//! `mute_lists` dropping the right messages while every push keeps the
//! counts right.

use std::time::Duration;

use serde_json::{json, Value};

use lemonade::clock::WallClock;

use crate::support::dovecot::Dovecot;
use crate::support::gateway::{data_dir, test_config, Gateway};
use crate::support::push::{PushReceiver, TestDevice};
use crate::support::raw_imap::RawImap;
use crate::support::scenario::{message, uids, PASSWORD, USER};

const WAIT: Duration = Duration::from_secs(30);

/// 07:00 in Berlin on Monday 2026-12-07 (winter time, UTC+1).
const BERLIN_SEVEN_AM_MS: i64 = 1_796_623_200_000;

struct Rig {
    dovecot: Dovecot,
    gateway: Gateway,
    device: TestDevice,
    device_id: String,
    token: String,
    receiver: PushReceiver,
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
            device_id: answer["device_id"].as_str().unwrap().to_string(),
            token,
            receiver,
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

    /// The device's queued pushes, as `GET /v1/devices` lists them.
    async fn queued(&self) -> Vec<Value> {
        let (status, body) = self.gateway.get("/v1/devices", Some(&self.token)).await;
        assert_eq!(status, 200);
        let devices = body["devices"].as_array().unwrap();
        let device = devices.iter().find(|d| d["device_id"] == self.device_id);
        device.unwrap()["queued"].as_array().unwrap().clone()
    }

    /// Polls the device's queued pushes until `done`.
    async fn wait_queue(&self, done: impl Fn(&[Value]) -> bool) {
        for _ in 0..600 {
            if done(&self.queued().await) {
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
async fn mail_read_elsewhere_during_quiet_hours_leaves_the_summary() {
    let clock = WallClock::system();
    clock.set_now_ms(BERLIN_SEVEN_AM_MS - 600_000);
    let rules = json!({
        "quiet_hours": {"start": "22:00", "end": "07:00", "time_zone": "Europe/Berlin"},
    });
    let rig = Rig::start(clock.clone(), "headers", rules).await;
    // A second device without rules: its `read` pushes say when a read
    // was handled, since the quiet one is told of nothing it never saw.
    let laptop_device = TestDevice::new(&rig.receiver);
    let subscription = laptop_device.subscription_json();
    rig.gateway
        .add_device(&rig.token, subscription, &["INBOX"], "headers")
        .await;
    let first = rig.append("ann@example.org", "alice@test.local", "", "read soon");
    let second = rig.append("bob@example.org", "alice@test.local", "", "read later");
    let mut shown = Vec::new();
    while shown.len() < 2 {
        shown.extend(uids(&laptop_device.next_push(WAIT).await.payload));
    }
    rig.wait_held(2, "quiet_hours").await;

    // Each read on the laptop is taken out of the held summary before the
    // `read` push goes out; the last one leaves nothing to summarise.
    let mut laptop = RawImap::login(rig.dovecot.imap_port(), USER, PASSWORD);
    laptop.command("SELECT INBOX");
    for (uid, left) in [(first, 1), (second, 0)] {
        laptop.command(&format!("UID STORE {uid} +FLAGS (\\Seen)"));
        let read = laptop_device.next_push(WAIT).await;
        assert_eq!(read.payload["type"], "read", "{}", read.payload);
        assert_eq!(read.payload["uids"], json!([uid]));
        let queued = rig.queued().await;
        assert_eq!(queued.len(), left, "{queued:?}");
        if left > 0 {
            assert_eq!(
                (&queued[0]["count"], &queued[0]["held"]),
                (&json!(1), &json!("quiet_hours"))
            );
        }
    }
    laptop.logout();

    // After seven the quiet device's first push is new mail alone (no
    // `read` push for mail it never saw), with the badge right.
    clock.set_now_ms(BERLIN_SEVEN_AM_MS);
    let third = rig.append("cy@example.org", "alice@test.local", "", "after seven");
    let push = rig.device.next_push(WAIT).await;
    assert_eq!(push.payload["type"], "mail", "{}", push.payload);
    assert_eq!(uids(&push.payload), [u64::from(third)]);
    assert_eq!(
        (&push.payload["count"], &push.payload["unseen"]),
        (&json!(1), &json!(1))
    );
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
