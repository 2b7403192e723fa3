//! The web app (`web/`) in a real browser: Debian's Chromium driven by
//! Playwright (`tests/web/run.mjs`) against this gateway, a real Dovecot
//! relaying to the SMTP sink, and a push device the test holds (see
//! `web_oracle`). Also how the gateway serves the app: its policy, and
//! nothing of it when `web.enabled` is false.
//!
//! `TEST_WEB_DIR` serves the app from a folder (`web.dir`) instead of the
//! files built in, to work on the app without rebuilding the gateway.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::web_oracle::{self, text_message, Oracle, Pixel};
use crate::support::dovecot::Dovecot;
use crate::support::gateway::{data_dir, test_config, Gateway};
use crate::support::push::{PushReceiver, TestDevice};
use crate::support::raw_imap::RawImap;
use crate::support::send::{mail_servers, message_with_attachment, register, PASS, USER};

/// How long the whole browser run may take before the test fails.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(600);

fn cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))
        .expect("neither XDG_CACHE_HOME nor HOME is set")
}

/// The Node prefix with playwright-core and axe-core (tests/run.sh installs them).
fn node_modules() -> PathBuf {
    let dir = std::env::var_os("TEST_CONTRACT_NODE")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("lemonade-node"))
        .join("node_modules");
    for package in ["playwright-core", "axe-core"] {
        assert!(
            dir.join(package).exists(),
            "{package} is missing in {}: run tests/run.sh, which installs it (or set TEST_CONTRACT_NODE)",
            dir.display()
        );
    }
    dir
}

fn chromium() -> PathBuf {
    let path = std::env::var_os("TEST_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "{} is missing: run tests/run.sh, which installs Debian's chromium (or set TEST_CHROMIUM)",
        path.display()
    );
    path
}

/// An HTML message whose script must never run and whose remote image
/// (on `pixel_port`, which counts connections) must wait until asked for.
fn html_message(pixel_port: u16) -> Vec<u8> {
    let html = "From: Erin <erin@test.local>\r\nTo: alice@test.local\r\nSubject: Weekly report (HTML)\r\nDate: Mon, 07 Dec 2026 09:00:00 +0000\r\nMessage-ID: <html-1@test.local>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe weekly report, in plain words.\r\n--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><h1 id=\"title\">Weekly report</h1><p style=\"color:#333\">Sales went up.</p><img id=\"remote\" src=\"https://127.0.0.1:PIXEL/pixel.png\" alt=\"tracker\"><img id=\"broken\" src=\"x\" onerror=\"document.body.setAttribute('data-ran','onerror')\" alt=\"\"><script>document.body.setAttribute('data-ran','script');parent.postMessage('ran','*');</script></body></html>\r\n--alt--\r\n";
    html.replace("PIXEL", &pixel_port.to_string()).into_bytes()
}

/// Fills alice's mailboxes: older filler (for scrolling), then the
/// messages the browser tests act on. Returns their UIDs by name.
fn seed(dovecot: &Dovecot, pixel_port: u16) -> serde_json::Value {
    dovecot.create_mailbox(USER, PASS, "Archive");
    let mut imap = RawImap::login(dovecot.imap_port(), USER, PASS);
    for n in 1..=60 {
        let subject = format!("Newsletter number {n}");
        imap.append(
            "INBOX",
            &text_message("News <news@test.local>", &subject, "Old news."),
        );
    }
    let report = imap.append(
        "INBOX",
        &message_with_attachment(&[7u8; 5000], "<orig@test.local>"),
    );
    let html = imap.append("INBOX", &html_message(pixel_port));
    let mut uids = json!({"report": report, "html": html});
    for (key, subject, body) in [
        ("flag", "Please flag me", "Flag this one."),
        ("move", "Move me to Archive", "This belongs in the archive."),
        ("delete", "Delete me", "Nobody needs this."),
        ("search", "Fruit order", "One pineapple and two lemons."),
        (
            "welcome",
            "Welcome to Lemonade",
            "This is the first message of the test.",
        ),
    ] {
        let uid = imap.append(
            "INBOX",
            &text_message("Bob <bob@test.local>", subject, body),
        );
        uids[key] = uid.into();
    }
    imap.logout();
    uids
}

/// Runs `tests/web/run.mjs` with `vars` (and where the tools are); fails
/// the test with everything it printed unless it succeeds.
pub async fn run_browser(vars: &[(&str, String)]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("web-screenshots");
    let modules = node_modules();
    let mut command = tokio::process::Command::new("node");
    command
        .arg(root.join("tests/web/run.mjs"))
        .current_dir(root)
        .kill_on_drop(true)
        .env("WEB_NODE_MODULES", &modules)
        .env("WEB_CHROMIUM", chromium())
        .env("WEB_OUT", &out)
        .envs(vars.iter().map(|(k, v)| (k, v)));
    let output = tokio::time::timeout(BROWSER_TIMEOUT, command.output())
        .await
        .expect("the browser tests did not finish in time")
        .expect("node runs (Node.js 18+ from the distribution)");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "the browser tests failed:\n{report}"
    );
    println!("{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_app_in_a_browser() {
    let (sink, dovecot) = mail_servers(None);
    let dovecot = Arc::new(dovecot);
    let pixel = Pixel::start().await;
    let uids = seed(&dovecot, pixel.port);
    let (_dir, data) = data_dir();
    let mut config = test_config(&data);
    config.web.dir = std::env::var_os("TEST_WEB_DIR").map(PathBuf::from);
    let gateway = Gateway::start_with(config).await;

    // A device of the test's own on alice's account: the push plaintext
    // the browser's service worker is given is one the gateway sent.
    let token = register(&gateway, &dovecot).await;
    let receiver = PushReceiver::start().await;
    let device = TestDevice::new(&receiver);
    let device_id = gateway
        .add_device(&token, device.subscription_json(), &["INBOX"], "preview")
        .await;
    gateway.wait_watching(&token, &["INBOX"]).await;
    let oracle = web_oracle::start(Oracle {
        dovecot: dovecot.clone(),
        sink: sink.clone(),
        device: Arc::new(device),
        device_id,
        gateway: gateway.url.clone(),
        token: token.clone(),
        pixel,
    })
    .await;

    run_browser(&[
        ("WEB_URL", gateway.url.clone()),
        ("WEB_ORACLE", oracle),
        ("WEB_EMAIL", "alice@test.local".into()),
        ("WEB_USER", USER.into()),
        ("WEB_PASS", PASS.into()),
        ("WEB_IMAP_HOST", dovecot.host().into()),
        ("WEB_IMAP_PORT", dovecot.imap_port().to_string()),
        ("WEB_SMTP_PORT", dovecot.submission_port().to_string()),
        ("WEB_UIDS", uids.to_string()),
    ])
    .await;
    gateway.stop().await;
}

#[tokio::test]
async fn the_app_is_served_with_its_policy_and_only_when_on() {
    let (_dir, data) = data_dir();
    let gateway = Gateway::start(&data).await;
    let page = gateway.http.get(gateway.at("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("script-src 'self';"), "{policy}");
    assert!(!policy.contains("unsafe-eval"), "{policy}");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let html = page.text().await.unwrap();
    assert!(
        html.contains("<script type=\"module\" src=\"/js/app.js\">"),
        "{html}"
    );
    let script = gateway
        .http
        .get(gateway.at("/js/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        script.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    let worker = gateway.http.get(gateway.at("/sw.js")).send().await.unwrap();
    assert_eq!(worker.status(), 200);
    // Installable: the manifest parses and its icons are there.
    let manifest = gateway
        .http
        .get(gateway.at("/manifest.webmanifest"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        manifest.headers()["content-type"],
        "application/manifest+json"
    );
    let manifest: serde_json::Value = manifest.json().await.unwrap();
    for icon in manifest["icons"].as_array().unwrap() {
        let src = icon["src"].as_str().unwrap();
        let answer = gateway.http.get(gateway.at(src)).send().await.unwrap();
        assert_eq!(answer.status(), 200, "{src}");
        assert_eq!(
            answer.headers()["content-type"],
            icon["type"].as_str().unwrap()
        );
    }
    // The API keeps its paths and its JSON errors.
    let (status, body) = gateway.get("/v1/no-such-route", None).await;
    assert_eq!((status, &body["error"]["code"]), (404, &json!("not_found")));
    let (status, _) = gateway.get("/healthz", None).await;
    assert_eq!(status, 200);
    gateway.stop().await;

    let (_dir, data) = data_dir();
    let mut config = test_config(&data);
    config.web.enabled = false;
    let gateway = Gateway::start_with(config).await;
    let (status, body) = gateway.get("/", None).await;
    assert_eq!((status, &body["error"]["code"]), (404, &json!("not_found")));
    let (status, _) = gateway.get("/js/app.js", None).await;
    assert_eq!(status, 404);
    gateway.stop().await;
}
