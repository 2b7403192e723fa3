//! `lemonade migrate` on a real PostgreSQL: a single gateway's sled store
//! copied into an empty database keeps every account watching with its
//! tokens, devices, cursors, queued pushes and send settings, and a used
//! database is refused. A module of `tests/cluster.rs`.

use std::path::Path;
use std::process::Output;

use lemonade::store::conformance::{account, device};
use lemonade::store::migrate::{self, Counts, MigrateError};
use lemonade::store::send::{SendSettings, SendStore};
use lemonade::store::{
    Cursor, DeviceMail, Fence, NewMail, PgOptions, PgStore, PushedWindow, SledStore, Store,
};
use serde_json::{json, Value};

use super::nodes::{wait_subject, WAIT};
use super::support::cluster::Cluster;
use super::support::dovecot::Dovecot;
use super::support::gateway::{data_dir, Gateway};
use super::support::push::{Answer, PushReceiver, TestDevice};
use super::support::scenario::message;

/// Runs `lemonade migrate --from data --to url`.
async fn run_migrate(data: &Path, url: &str) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_lemonade"))
        .arg("migrate")
        .arg("--from")
        .arg(data)
        .args(["--to", url])
        .output()
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The count printed on the line `name: N`.
fn printed(stdout: &str, name: &str) -> Option<usize> {
    stdout
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{name}: ")))
        .and_then(|n| n.parse().ok())
}

/// Waits until no process holds the sled store's file lock (a stopped
/// gateway lets go of it from a background thread): `flock` takes and
/// drops the same lock.
async fn wait_released(data: &Path) {
    let status = tokio::process::Command::new("flock")
        .args(["-w", "60"])
        .arg(data.join("db").join("db"))
        .arg("true")
        .status()
        .await
        .unwrap();
    assert!(status.success(), "the store stayed locked");
}

fn deliver(dovecot: &Dovecot, subject: &str) {
    let raw = message("sender@example.org", subject, subject);
    dovecot.append("mover", "secret", "INBOX", &raw);
}

/// Waits until every one of `subjects` was pushed; returns every subject pushed meanwhile.
async fn wait_subjects(device: &TestDevice, subjects: &[&str]) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for subject in subjects {
        if !seen.iter().any(|s| s == subject) {
            seen.extend(wait_subject(device, subject).await);
        }
    }
    seen
}

/// What both stores hold, as JSON, to compare them.
async fn contents(store: &dyn Store, account_id: &str) -> Value {
    let accounts = store.accounts().await.unwrap();
    let devices = store.devices_of(account_id).await.unwrap();
    let cursor = store.cursor(account_id, "INBOX").await.unwrap();
    let pushes = store.pending_pushes().await.unwrap();
    let settings = store.send_settings(account_id).await.unwrap();
    json!({
        "accounts": accounts,
        "devices": devices,
        "cursor": cursor,
        "pushes": pushes,
        "settings": settings,
    })
}

async fn put_settings(gateway: &Gateway, token: &str, body: &Value) -> u16 {
    let response = gateway
        .http
        .put(gateway.at("/v1/send/settings"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    response.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migrated_store_keeps_every_account_watching_with_its_devices_and_tokens() {
    let dovecot = Dovecot::start();
    dovecot.add_user("mover", "secret");
    deliver(&dovecot, "old mail");
    let receiver = PushReceiver::start().await;
    let (_dir, data) = data_dir();
    let url = super::support::postgres::server()
        .await
        .fresh_database()
        .await;

    // A single gateway: one account registered twice (two tokens), a
    // device, send settings, and a push the push service refuses.
    let gateway = Gateway::start(&data).await;
    let (host, port) = (dovecot.host(), dovecot.imap_port());
    let (account_id, first) = gateway.register(host, port, "mover", "secret").await;
    let (again, second) = gateway.register(host, port, "mover", "secret").await;
    assert_eq!(again, account_id);
    assert_ne!(first, second);
    let device = TestDevice::new(&receiver);
    let device_id = gateway
        .add_device(&first, device.subscription_json(), &["INBOX"], "headers")
        .await;
    let settings = json!({"save_sent": false, "sent_mailbox": "Gesendet"});
    assert_eq!(put_settings(&gateway, &second, &settings).await, 200);
    gateway.wait_watching(&first, &["INBOX"]).await;

    // While the gateway runs, its store is not taken.
    let busy = run_migrate(&data, &url).await;
    assert!(!busy.status.success());
    let message = text(&busy.stderr);
    assert!(
        message.contains(&format!("is a gateway still running on {}", data.display())),
        "{message}"
    );

    receiver.respond_with(
        device.path(),
        vec![Answer::status(503).retry_after("1"); 100],
    );
    deliver(&dovecot, "queued");
    receiver.wait_for_requests(device.path(), 1, WAIT).await;
    gateway.stop().await;
    receiver.respond_with(device.path(), Vec::<u16>::new());
    // Arrives after the gateway stopped: the copied cursor tells it is new.
    deliver(&dovecot, "while moving");
    wait_released(&data).await;

    let migrated = run_migrate(&data, &url).await;
    let stdout = text(&migrated.stdout);
    assert!(
        migrated.status.success(),
        "{stdout}{}",
        text(&migrated.stderr)
    );
    let expected = [
        ("accounts", 1),
        ("tokens", 2),
        ("devices", 1),
        ("cursors", 1),
        ("queued pushes", 1),
        ("send settings", 1),
    ];
    for (name, count) in expected {
        assert_eq!(printed(&stdout, name), Some(count), "{name}:\n{stdout}");
    }
    assert!(
        stdout.contains("not copied: 0 unfinished sends, 0 uploads"),
        "{stdout}"
    );
    assert!(
        stdout.contains("copy master.key and vapid.pk8 from"),
        "{stdout}"
    );

    // The database holds what sled held: records, cursor, the push with
    // its attempts and times, the settings.
    let pg = PgStore::connect(PgOptions::new(&url)).await.unwrap();
    let sled = SledStore::open(&data.join("db")).unwrap();
    let before = contents(&sled, &account_id).await;
    assert!(
        before["pushes"][0]["attempts"].as_u64() >= Some(1),
        "{before}"
    );
    assert_eq!(contents(&pg, &account_id).await, before);
    drop(sled);
    // The gateway's keys are recorded as the cluster's: a node with
    // other keys would refuse to start.
    let keys = lemonade::store::migrate::source_keys(&data).unwrap();
    let named: Vec<(&str, &str)> = keys.iter().map(|(n, f)| (*n, f.as_str())).collect();
    assert_eq!(pg.check_keys(&named).await.unwrap(), None);
    let other = [("master.key", "another key")];
    assert_eq!(
        pg.check_keys(&other).await.unwrap().as_deref(),
        Some("master.key")
    );

    // Into a database that holds accounts: refused, nothing changed.
    let refused = run_migrate(&data, &url).await;
    assert!(!refused.status.success());
    let message = text(&refused.stderr);
    assert!(message.contains("holds accounts already"), "{message}");
    assert_eq!(contents(&pg, &account_id).await, before);

    // A node with the gateway's keys: both tokens, the device and the
    // settings are there, the account is watched again, the queued push
    // and the mail that arrived meanwhile are pushed, the old one never.
    let cluster = Cluster::with_keys_from(url.clone(), &data);
    let node = cluster.start("n1").await;
    let api = node.api();
    for token in [&first, &second] {
        let (status, me) = api.get("/v1/accounts/me", Some(token)).await;
        assert_eq!(status, 200, "{me}");
        assert_eq!(me["account_id"], account_id.as_str());
    }
    let (_, listed) = api.get("/v1/devices", Some(&second)).await;
    assert_eq!(
        listed["devices"][0]["device_id"],
        device_id.as_str(),
        "{listed}"
    );
    let (_, kept) = api.get("/v1/send/settings", Some(&first)).await;
    assert_eq!(kept, settings);
    let me = api.wait_watching(&first, &["INBOX"]).await;
    assert_eq!(me["watch"]["node"], "n1");
    let mut seen = wait_subjects(&device, &["queued", "while moving"]).await;
    deliver(&dovecot, "after");
    seen.extend(wait_subject(&device, "after").await);
    assert!(!seen.iter().any(|s| s == "old mail"), "{seen:?}");
}

/// Messages 7 and 8 of INBOX, pushed and followed for reading.
fn pushed_window() -> PushedWindow {
    let mut window = PushedWindow::default();
    window.add(7, [8, 7]);
    window
}

/// A cursor of uidvalidity 7.
fn cursor(uidnext: u32) -> Cursor {
    Cursor {
        uidvalidity: 7,
        uidnext,
        highestmodseq: None,
        max_uid_seen: false,
    }
}

/// Fills a sled store through its trait: `a1` with two tokens, a
/// device, two cursors (INBOX's with a window of pushed mail) and a push
/// retried three times; `a2` with every token revoked and send settings.
async fn filled_sled(dir: &Path) -> SledStore {
    let sled = SledStore::open(dir).unwrap();
    sled.create_account(&account("a1"), &[1; 32]).await.unwrap();
    sled.create_account(&account("a1"), &[2; 32]).await.unwrap();
    sled.create_account(&account("a2"), &[3; 32]).await.unwrap();
    assert_eq!(sled.revoke_tokens("a2", None).await.unwrap(), 1);
    sled.put_device(&device("d1", "a1", &["INBOX", "Work"]), 10)
        .await
        .unwrap();
    sled.put_cursor("a1", "Work", &cursor(4), Fence::SOLE_OWNER)
        .await
        .unwrap();
    let devices = ["d1".to_string()];
    let mail = NewMail {
        account_id: "a1",
        mailbox: "INBOX",
        deliveries: DeviceMail::to_each(&devices, &[], 2, 4_000_000_000_000),
        cursor: cursor(9),
        unseen: None,
        fence: Fence::SOLE_OWNER,
    };
    let keys = sled.record_new_mail(&mail).await.unwrap();
    sled.reschedule_push(&keys[0], 3, 3_000_000_000_000, false)
        .await
        .unwrap();
    let window = pushed_window();
    let put = sled.put_pushed_window("a1", "INBOX", &window, Fence::SOLE_OWNER);
    put.await.unwrap();
    let settings = SendSettings {
        save_sent: Some(true),
        sent_mailbox: None,
    };
    sled.put_send_settings("a2", &settings).await.unwrap();
    sled
}

#[tokio::test]
async fn the_copy_takes_every_token_and_refuses_a_used_database() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = super::support::postgres::server().await;
    let url = server.fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let sled = filled_sled(dir.path()).await;
    let pg = PgStore::connect(PgOptions::new(&url)).await.unwrap();

    let counts = migrate::copy(&sled, &pg).await.unwrap();
    let expected = Counts {
        accounts: 2,
        tokens: 2,
        devices: 1,
        cursors: 2,
        pushed_windows: 1,
        queued_pushes: 1,
        send_settings: 1,
        ..Counts::default()
    };
    assert_eq!(counts, expected);
    for hash in [[1; 32], [2; 32]] {
        let owner = pg.account_for_token(&hash).await.unwrap();
        assert_eq!(owner.as_deref(), Some("a1"));
    }
    // The account without tokens is there, with none.
    assert!(pg.account("a2").await.unwrap().is_some());
    let tokens = server.psql(&url, "SELECT count(*) FROM token").await;
    assert_eq!(tokens, "2");
    // Unowned, for the nodes to claim.
    let owned = "SELECT count(*) FROM account WHERE owner IS NOT NULL";
    assert_eq!(server.psql(&url, owned).await, "0");
    assert_eq!(
        pg.pending_pushes().await.unwrap(),
        sled.pending_pushes().await.unwrap()
    );
    assert_eq!(pg.cursor("a1", "Work").await.unwrap(), Some(cursor(4)));
    assert_eq!(pg.cursor("a1", "INBOX").await.unwrap(), Some(cursor(9)));
    let window = pg.pushed_window("a1", "INBOX").await.unwrap();
    assert_eq!(window, Some(pushed_window()));
    assert_eq!(pg.pushed_window("a1", "Work").await.unwrap(), None);
    let settings = pg.send_settings("a2").await.unwrap();
    assert_eq!(settings, sled.send_settings("a2").await.unwrap());

    let again = migrate::copy(&sled, &pg).await;
    assert!(
        matches!(again, Err(MigrateError::NonEmptyTarget)),
        "{again:?}"
    );

    // An empty database that a node has joined is refused too.
    let url = server.fresh_database().await;
    let pg = PgStore::connect(PgOptions::new(&url)).await.unwrap();
    pg.join("n1", std::time::Duration::from_secs(60))
        .await
        .unwrap();
    let running = migrate::copy(&sled, &pg).await;
    assert!(
        matches!(&running, Err(MigrateError::NodesRunning(nodes)) if nodes == "n1"),
        "{running:?}"
    );
    assert!(!pg.has_accounts().await.unwrap());
}
