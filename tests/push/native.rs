//! Native push end to end: a real Dovecot, the gateway in-process, and
//! local HTTP/2-over-TLS impersonations of APNs and of FCM with Google's
//! token endpoint (the services cannot run here), which verify the JWTs
//! and record every delivery. The test devices decrypt what arrives with
//! an independent RFC 8291 implementation (the `ece` crate).

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use lemonade::config::Config;
use serde_json::{json, Value};

use crate::support::certs::make_certificates;
use crate::support::dovecot::Dovecot;
use crate::support::gateway::{data_dir, test_config, Gateway};
use crate::support::native_push::{FakeApns, FakeFcm};
use crate::support::push::{PushReceiver, TestDevice};
use crate::support::scenario::message;

const WAIT: Duration = Duration::from_secs(30);
const APP: &str = "com.example.mail";

/// The fakes, and a configuration that trusts and uses them.
struct Native {
    apns: FakeApns,
    fcm: FakeFcm,
    certs: tempfile::TempDir,
}

impl Native {
    async fn start() -> Native {
        let certs = tempfile::tempdir().unwrap();
        make_certificates(certs.path(), "127.0.0.1");
        let apns = FakeApns::start(certs.path()).await;
        let fcm = FakeFcm::start(certs.path()).await;
        Native { apns, fcm, certs }
    }

    /// Uses the fakes, with keys written beside their certificates.
    fn configure(&self, config: &mut Config) {
        let keys_dir = self.certs.path();
        let ca = keys_dir.join("ca.pem");
        config.push.extra_ca_file = Some(ca);
        let (key_file, key_id, team_id) = self.apns.make_key(keys_dir);
        config.push.apns.key_file = Some(key_file);
        config.push.apns.key_id = key_id;
        config.push.apns.team_id = team_id;
        config.push.apns.production_url = self.apns.base_url();
        config.push.apns.sandbox_url = self.apns.base_url();
        config.push.fcm.service_account_file = Some(self.fcm.make_service_account(keys_dir));
        config.push.fcm.base_url = self.fcm.base_url();
    }
}

/// A registered account on a gateway set up for the native fakes.
struct Account {
    dovecot: Dovecot,
    native: Native,
    gateway: Gateway,
    token: String,
    /// What the gateway runs with, to start it again.
    config: Config,
    _dir: tempfile::TempDir,
}

impl Account {
    /// Dovecot with alice, the fakes, a gateway using them (changed by
    /// `configure`) and alice registered.
    async fn start(configure: impl FnOnce(&mut Config)) -> Account {
        let dovecot = Dovecot::start();
        dovecot.add_user("alice", "secret");
        let native = Native::start().await;
        let (dir, path) = data_dir();
        let mut config = test_config(&path);
        native.configure(&mut config);
        configure(&mut config);
        let gateway = Gateway::start_with(config.clone()).await;
        let (_, token) = gateway
            .register(dovecot.host(), dovecot.imap_port(), "alice", "secret")
            .await;
        Account {
            dovecot,
            native,
            gateway,
            token,
            config,
            _dir: dir,
        }
    }
}

fn apns_token() -> String {
    format!("{:064x}", rand::random::<u128>())
}

/// Registers a native device; answers the status and body.
async fn register(gateway: &Gateway, token: &str, body: Value) -> (u16, Value) {
    gateway.post("/v1/devices", Some(token), &body).await
}

/// What a native push carried, decrypted by the device.
fn opened(device: &TestDevice, lemonade: &Value) -> Value {
    let record = URL_SAFE_NO_PAD
        .decode(lemonade["ciphertext"].as_str().expect("ciphertext"))
        .unwrap();
    serde_json::from_slice(&device.decrypt(&record)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_and_web_devices_of_one_account_each_get_their_push() {
    // Every field is bound: those left to `..` would be dropped here,
    // the data directory and the servers with them.
    let Account {
        dovecot,
        native,
        gateway,
        token,
        config: _,
        _dir,
    } = Account::start(|_| {}).await;
    let receiver = PushReceiver::start().await;

    let web = TestDevice::new(&receiver);
    gateway
        .add_device(&token, web.subscription_json(), &["INBOX"], "preview")
        .await;
    let (iphone, iphone_token) = (TestDevice::new(&receiver), apns_token());
    let keys = |d: &TestDevice| d.subscription_json()["keys"].clone();
    let apns = json!({"apns": {"token": iphone_token, "topic": APP, "environment": "sandbox"},
                      "keys": keys(&iphone), "payload": "headers"});
    assert_eq!(register(&gateway, &token, apns).await.0, 201);
    let android = TestDevice::new(&receiver);
    let fcm = json!({"fcm": {"token": "dA1b:APA91b-android"}, "keys": keys(&android)});
    assert_eq!(register(&gateway, &token, fcm).await.0, 201);
    let plain_token = apns_token();
    let bare = json!({"apns": {"token": plain_token, "topic": APP}, "payload": "count"});
    assert_eq!(register(&gateway, &token, bare).await.0, 201);
    let (_, listed) = gateway.get("/v1/devices", Some(&token)).await;
    let mut kinds: Vec<&str> = listed["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["apns", "apns", "fcm", "webpush"]);
    gateway.wait_watching(&token, &["INBOX"]).await;

    dovecot.append(
        "alice",
        "secret",
        "INBOX",
        &message("bob@example.org", "Native", "Hi"),
    );
    assert_eq!(
        web.next_push(WAIT).await.payload["messages"][0]["subject"],
        "Native"
    );
    tokio::time::timeout(WAIT, native.apns.wait_deliveries(2))
        .await
        .expect("APNs");
    tokio::time::timeout(WAIT, native.fcm.wait_deliveries(1))
        .await
        .expect("FCM");

    assert_eq!(
        native.apns.connections(),
        1,
        "one HTTP/2 connection carries every push"
    );
    let deliveries = native.apns.deliveries();
    let to = |t: &str| {
        deliveries
            .iter()
            .find(|d| d.device_token == t)
            .expect("delivered")
    };
    let sealed = to(&iphone_token);
    assert_eq!(
        (sealed.topic.as_str(), sealed.push_type.as_str()),
        (APP, "alert")
    );
    assert!(sealed.collapse_id.is_some() && sealed.expiration.is_some());
    assert_eq!(sealed.body["aps"]["mutable-content"], 1);
    assert_eq!(sealed.body["aps"]["alert"]["title"], "New mail");
    let payload = opened(&iphone, &sealed.body["lemonade"]);
    assert_eq!(payload["messages"][0]["subject"], "Native");
    assert!(
        payload["messages"][0].get("preview").is_none(),
        "headers tier"
    );
    let clear = &to(&plain_token).body["lemonade"]["payload"];
    assert_eq!(
        (clear["type"].as_str(), clear["count"].as_u64()),
        (Some("mail"), Some(1))
    );
    assert!(
        clear.get("messages").is_none(),
        "nothing of the mail in clear"
    );
    assert!(!to(&plain_token).body.to_string().contains("Native"));

    let message = &native.fcm.deliveries()[0].message;
    assert_eq!(message["token"], "dA1b:APA91b-android");
    assert_eq!(message["android"]["priority"], "high");
    assert!(message["android"]["ttl"].as_str().unwrap().ends_with('s'));
    let payload = opened(&android, &message["data"]);
    assert_eq!(payload["messages"][0]["preview"], "Hi");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_apple_and_google_would_refuse_are_refused() {
    let Account {
        dovecot: _dovecot,
        native: _native,
        gateway,
        token,
        config: _,
        _dir,
    } = Account::start(|config| config.push.fcm.service_account_file = None).await;
    let good = apns_token();
    let cases = [
        (
            json!({"apns": {"token": "xyz", "topic": APP}, "payload": "wake"}),
            "invalid_device_token",
        ),
        (
            json!({"apns": {"token": good, "topic": APP, "environment": "moon"}, "payload": "wake"}),
            "invalid_device_token",
        ),
        (
            json!({"apns": {"token": good, "topic": APP}, "payload": "preview"}),
            "payload_needs_keys",
        ),
        (
            json!({"fcm": {"token": "abc"}, "payload": "wake"}),
            "push_kind_not_configured",
        ),
    ];
    for (body, code) in cases {
        let (status, answer) = register(&gateway, &token, body).await;
        assert_eq!((status, &answer["error"]["code"]), (422, &json!(code)));
    }
    let both = json!({"apns": {"token": good, "topic": APP}, "fcm": {"token": "a"}});
    assert_eq!(register(&gateway, &token, both).await.0, 400);
    let (_, listed) = gateway.get("/v1/devices", Some(&token)).await;
    assert_eq!(listed["devices"], json!([]), "nothing stored");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_prune_renew_credentials_and_retry_across_a_restart() {
    let Account {
        dovecot,
        native,
        gateway,
        token,
        config,
        _dir,
    } = Account::start(|_| {}).await;
    let (gone, renewed) = (apns_token(), apns_token());
    native.apns.respond_with(&gone, [(410, "Unregistered")]);
    native
        .apns
        .respond_with(&renewed, [(403, "ExpiredProviderToken")]);
    native
        .fcm
        .respond_with("fcm-401", [(401, "UNAUTHENTICATED")]);
    native.fcm.respond_with("fcm-503", [(503, "UNAVAILABLE")]);
    native.fcm.retry_after(5);
    for body in [
        json!({"apns": {"token": gone, "topic": APP}, "payload": "wake"}),
        json!({"apns": {"token": renewed, "topic": APP}, "payload": "wake"}),
        json!({"fcm": {"token": "fcm-401"}, "payload": "wake"}),
        json!({"fcm": {"token": "fcm-503"}, "payload": "count"}),
    ] {
        assert_eq!(register(&gateway, &token, body).await.0, 201);
    }
    gateway.wait_watching(&token, &["INBOX"]).await;
    dovecot.append(
        "alice",
        "secret",
        "INBOX",
        &message("bob@example.org", "One", "x"),
    );

    // APNs: the gone device is removed; an expired JWT is renewed.
    tokio::time::timeout(WAIT, native.apns.wait_deliveries(1))
        .await
        .expect("renewed");
    assert_eq!(native.apns.deliveries()[0].device_token, renewed);
    assert_eq!(
        native.apns.jwts_seen().len(),
        2,
        "a new JWT after ExpiredProviderToken"
    );
    // FCM: a 401 fetches a new access token; the 503 is retried after a
    // restart, from the stored queue.
    tokio::time::timeout(WAIT, native.fcm.wait_deliveries(1))
        .await
        .expect("401 renewed");
    assert!(native.fcm.token_requests() >= 2);
    let refused_once = || {
        let requests = native.fcm.requests();
        requests
            .iter()
            .any(|r| r.message["token"] == "fcm-503" && r.status == 503)
    };
    tokio::time::timeout(WAIT, async {
        while !refused_once() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the 503 was answered");
    gateway.stop().await;
    let gateway = Gateway::start_with(config).await;
    tokio::time::timeout(WAIT, native.fcm.wait_deliveries(2))
        .await
        .expect("after restart");
    let retried = native.fcm.deliveries();
    assert!(retried.iter().any(|d| d.message["token"] == "fcm-503"));
    let (_, listed) = gateway.get("/v1/devices", Some(&token)).await;
    assert_eq!(
        listed["devices"].as_array().unwrap().len(),
        3,
        "the gone device was pruned"
    );
    gateway.stop().await;
}
