//! Signing in through an OAuth2 provider, end to end: a real Dovecot whose
//! `oauth2` passdb validates the access tokens (ES256 JWTs) on IMAP and on
//! its submission service, a fake authorization server (PKCE, refresh-token
//! rotation, scripted `invalid_grant`, revocation), the gateway in-process,
//! and a real Web Push receiver whose devices decrypt every push. The
//! authorization server is the one fake: providers cannot run here.

use crate::support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use lemonade::config::Config;
use serde_json::{json, Value};
use support::dovecot::Dovecot;
use support::gateway::{data_dir, test_config, Gateway};
use support::oauth_server::{redirect_location, s256_challenge, FakeAuthServer};
use support::push::{PushReceiver, TestDevice};
use support::scenario::message;
use support::smtp_sink::SmtpSink;

const WAIT: Duration = Duration::from_secs(30);
const USER: &str = "alice@test.local";
const PASS: &str = "secret";
const PROVIDER: &str = "fakeas";
const APP: &str = "com.example.mail:/oauth";

/// Everything one test signs in against.
struct World {
    dovecot: Dovecot,
    sink: SmtpSink,
    auth: FakeAuthServer,
    gateway: Gateway,
    receiver: PushReceiver,
    _dir: tempfile::TempDir,
    _logs: Capturing,
}

impl World {
    async fn start() -> World {
        Self::start_with(|_| {}).await
    }

    async fn start_with(configure: impl FnOnce(&mut Config)) -> World {
        let logs = capture_logs();
        let sink = SmtpSink::start();
        let dovecot = Dovecot::builder().oauth2().relay_port(sink.port()).start();
        dovecot.add_user(USER, PASS);
        let auth =
            FakeAuthServer::start(dovecot.jwt().clone(), "lemonade-test", "client-secret").await;
        auth.set_user(USER);
        let (dir, path) = data_dir();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut config = test_config(&path);
        let public = format!("http://{}", listener.local_addr().unwrap());
        config.oauth.public_url = Some(public);
        config.oauth.app_redirect_uris = vec![APP.into()];
        config
            .oauth
            .providers
            .insert(PROVIDER.into(), auth.provider_for(&dovecot));
        configure(&mut config);
        let gateway = Gateway::start_on(listener, config).await;
        World {
            dovecot,
            sink,
            auth,
            gateway,
            receiver: PushReceiver::start().await,
            _dir: dir,
            _logs: logs,
        }
    }

    /// Signs in the way an app does with the system browser; answers the
    /// account id and token, and the callback URL the browser visited.
    async fn browser_sign_in(&self) -> (String, String, String) {
        let (status, started) = self
            .gateway
            .post(
                "/v1/oauth/start",
                None,
                &json!({"provider": PROVIDER, "app_redirect_uri": APP}),
            )
            .await;
        assert_eq!(status, 200, "{started}");
        let authorize = started["authorize_url"].as_str().unwrap();
        assert!(
            authorize.contains("code_challenge_method=S256"),
            "{authorize}"
        );
        let callback = redirect_location(authorize).await;
        assert!(callback.starts_with(&self.gateway.url), "{callback}");
        let back = redirect_location(&callback).await;
        let grant = back
            .strip_prefix(&format!("{APP}?grant="))
            .unwrap_or_else(|| panic!("back to the app without a grant: {back}"));
        let (status, account) = self.redeem(grant).await;
        assert_eq!(status, 201, "{account}");
        let (status, again) = self.redeem(grant).await;
        assert_eq!(
            (status, &again["error"]["code"]),
            (400, &json!("oauth_grant_invalid"))
        );
        (
            account["account_id"].as_str().unwrap().to_owned(),
            account["token"].as_str().unwrap().to_owned(),
            callback,
        )
    }

    async fn redeem(&self, grant: &str) -> (u16, Value) {
        let body = json!({"grant": grant});
        self.gateway.post("/v1/oauth/redeem", None, &body).await
    }

    async fn device(&self, token: &str) -> TestDevice {
        let device = TestDevice::new(&self.receiver);
        self.gateway
            .add_device(token, device.subscription_json(), &["INBOX"], "headers")
            .await;
        self.gateway.wait_watching(token, &["INBOX"]).await;
        device
    }

    fn append(&self, subject: &str) -> u32 {
        let raw = message("bob@example.org", subject, "Hello Alice");
        self.dovecot.append(USER, PASS, "INBOX", &raw)
    }

    /// Fails the test if any token or code the authorization server issued
    /// was logged (JWTs start with `eyJ`; refresh tokens and codes carry
    /// the server's prefixes).
    fn assert_no_secret_logged(&self) {
        let logs = captured_logs();
        assert!(logs.contains("lemonade"), "the logs were not captured");
        for secret in ["eyJ", "rt-", "code-"] {
            assert!(
                !holds_secret(&logs, secret),
                "a secret ({secret}…) was logged"
            );
        }
    }
}

/// Whether `logs` hold `prefix` followed by 32 base64url characters, as
/// the authorization server's tokens and codes (and JWT headers) are.
fn holds_secret(logs: &str, prefix: &str) -> bool {
    logs.match_indices(prefix).any(|(at, _)| {
        let tail = logs[at + prefix.len()..].bytes().take(32);
        tail.filter(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
            .count()
            == 32
    })
}

/// The gateway's log lines, captured in memory while a test of this module
/// runs (other modules' gateways in this process log into it meanwhile).
static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

/// Tests of this module running: logs are captured while it is not zero.
static CAPTURING: AtomicUsize = AtomicUsize::new(0);

/// Keeps the capture on while a test holds it.
struct Capturing;

impl Drop for Capturing {
    fn drop(&mut self) {
        CAPTURING.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the process's subscriber once; it records the gateway's debug
/// logs only while some [`Capturing`] lives, so the other modules' tests
/// pay nothing for it.
fn capture_logs() -> Capturing {
    use tracing_subscriber::layer::{Layer, SubscriberExt};
    use tracing_subscriber::util::SubscriberInitExt;

    CAPTURING.fetch_add(1, Ordering::SeqCst);
    let buffer = LOGS.get_or_init(Arc::default).clone();
    let capturing = tracing_subscriber::filter::dynamic_filter_fn(|meta, _| {
        CAPTURING.load(Ordering::Relaxed) > 0
            && meta.target().starts_with("lemonade")
            && *meta.level() <= tracing::Level::DEBUG
    });
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(move || Capture(buffer.clone()))
        .with_filter(capturing);
    let _ = tracing_subscriber::registry().with(layer).try_init();
    Capturing
}

fn captured_logs() -> String {
    let buffer = LOGS.get().expect("logs captured").lock().unwrap();
    String::from_utf8_lossy(&buffer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_through_the_browser_ends_in_a_decrypted_push() {
    let world = World::start().await;
    let (status, providers) = world.gateway.get("/v1/oauth/providers", None).await;
    assert_eq!((status, providers), (200, json!({"providers": [PROVIDER]})));
    let (account_id, token, callback) = world.browser_sign_in().await;

    // The state is single use: the same callback again creates nothing.
    let replay = world.gateway.http.get(&callback).send().await.unwrap();
    assert_eq!(replay.status(), 400);
    let replay: Value = replay.json().await.unwrap();
    assert_eq!(replay["error"]["code"], "oauth_state_invalid");

    let device = world.device(&token).await;
    let (_, me) = world.gateway.get("/v1/accounts/me", Some(&token)).await;
    assert_eq!(me["provider"], PROVIDER);
    assert_eq!(me["imap"]["username"], USER);
    world.append("Signed in with a token");
    let push = device.next_push(WAIT).await;
    assert_eq!(push.payload["type"], "mail");
    assert_eq!(push.payload["account_id"], account_id.as_str());
    assert_eq!(
        push.payload["messages"][0]["subject"],
        "Signed in with a token"
    );

    // The read API logs in with the same token.
    let (status, list) = world
        .gateway
        .get("/v1/mailboxes/INBOX/messages?limit=5", Some(&token))
        .await;
    assert_eq!(status, 200, "{list}");
    world.assert_no_secret_logged();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ins_that_must_fail_create_nothing() {
    let world = World::start().await;
    let start = |provider: &str, app: &str| json!({"provider": provider, "app_redirect_uri": app});
    let cases = [
        (
            start(PROVIDER, "https://evil.example/steal"),
            "redirect_not_allowed",
        ),
        (start("nowhere", APP), "unknown_provider"),
    ];
    for (body, code) in cases {
        let (status, answer) = world.gateway.post("/v1/oauth/start", None, &body).await;
        assert_eq!((status, &answer["error"]["code"]), (422, &json!(code)));
    }
    let (status, answer) = world.redeem("made-up").await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (400, &json!("oauth_grant_invalid"))
    );

    // The person says no at the provider: back to the app with the error.
    world.auth.clear_user();
    let (_, started) = world
        .gateway
        .post("/v1/oauth/start", None, &start(PROVIDER, APP))
        .await;
    let callback = redirect_location(started["authorize_url"].as_str().unwrap()).await;
    let back = redirect_location(&callback).await;
    assert_eq!(back, format!("{APP}?error=access_denied"));

    // An app's code: the address that signed in must be the one given,
    // and a code works once.
    world.auth.set_user(USER);
    let verifier = "v".repeat(50);
    let register = |email: &str, code: &str| json!({"email": email, "oauth": {"provider": PROVIDER, "code": code, "code_verifier": verifier}});
    let code = world
        .auth
        .issue_code(USER, "", Some(&s256_challenge(&verifier)));
    let body = register("mallory@test.local", &code);
    let (status, answer) = world.gateway.post("/v1/accounts", None, &body).await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (422, &json!("oauth_email_mismatch"))
    );
    let (status, answer) = world
        .gateway
        .post("/v1/accounts", None, &register(USER, &code))
        .await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (422, &json!("oauth_code_rejected"))
    );
    // The grant of the refused sign-in was handed back.
    assert_eq!(world.auth.revoked().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apps_code_and_the_browser_reach_the_same_account() {
    let world = World::start().await;
    let (account_id, _, _) = world.browser_sign_in().await;
    let verifier = "w".repeat(60);
    let code = world
        .auth
        .issue_code(USER, "", Some(&s256_challenge(&verifier)));
    let body = json!({"email": USER, "oauth": {"provider": PROVIDER, "code": code, "code_verifier": verifier}});
    let (status, answer) = world.gateway.post("/v1/accounts", None, &body).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["account_id"], account_id.as_str());
    let token = answer["token"].as_str().unwrap();
    let device = world.device(token).await;
    world.append("Via the app's code");
    assert_eq!(
        device.next_push(WAIT).await.payload["messages"][0]["subject"],
        "Via the app's code"
    );

    // Deleting the account revokes its refresh token at the provider.
    let (status, _) = world.gateway.delete("/v1/accounts/me", Some(token)).await;
    assert_eq!(status, 204);
    let revoked = tokio::time::timeout(WAIT, world.auth.wait_revoked(1)).await;
    assert!(revoked.is_ok(), "not revoked: {}", captured_logs());
    assert!(world.auth.revoked()[0].starts_with("rt-"));
}

/// Waits for the token the gateway holds to expire: a server that ends
/// sessions at expiry (Microsoft 365) is imitated by `doveadm kick` then.
async fn until_expired(lifetime: Duration) {
    tokio::time::sleep(lifetime + Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_tokens_keep_the_account_watching_across_expiries() {
    const LIFETIME: u64 = 6;
    let world = World::start().await;
    world.auth.set_access_lifetime(LIFETIME as i64);
    let (_, token, _) = world.browser_sign_in().await;
    let device = world.device(&token).await;
    for round in 1..=3 {
        until_expired(Duration::from_secs(LIFETIME)).await;
        let refreshes = world.auth.refresh_count();
        if round == 2 {
            // The token endpoint fails for a moment: backoff and retry.
            world.auth.fail_token_endpoint(2);
        }
        world.dovecot.kick(USER);
        let subject = format!("After expiry {round}");
        world.append(&subject);
        let push = device.next_push(WAIT).await;
        assert_eq!(push.payload["messages"][0]["subject"], subject.as_str());
        assert!(
            world.auth.refresh_count() > refreshes,
            "round {round}: the watcher logged in again without a fresh token"
        );
        let (_, me) = world.gateway.get("/v1/accounts/me", Some(&token)).await;
        assert_ne!(me["watch"]["state"], "reauth_required");
    }
    // The read API gets a fresh token too.
    until_expired(Duration::from_secs(LIFETIME)).await;
    let (status, _) = world.gateway.get("/v1/mailboxes", Some(&token)).await;
    assert_eq!(status, 200);
    world.assert_no_secret_logged();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_grant_asks_for_a_new_sign_in_once_and_a_sign_in_revives_it() {
    const LIFETIME: u64 = 4;
    let world = World::start().await;
    world.auth.set_access_lifetime(LIFETIME as i64);
    let (account_id, token, _) = world.browser_sign_in().await;
    let device = world.device(&token).await;

    world.auth.refuse_refresh(USER);
    until_expired(Duration::from_secs(LIFETIME)).await;
    world.dovecot.kick(USER);
    let push = device.next_push(WAIT).await;
    assert_eq!(
        push.payload,
        json!({"v": 1, "type": "reauth", "account_id": account_id})
    );
    world.gateway.wait_state(&token, "reauth_required").await;
    let (status, answer) = world.gateway.get("/v1/mailboxes", Some(&token)).await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (403, &json!("reauth_required"))
    );

    // Signing in again revives the account, devices and all.
    world.auth.allow_refresh(USER);
    let (again, token, _) = world.browser_sign_in().await;
    assert_eq!(again, account_id);
    world.gateway.wait_watching(&token, &["INBOX"]).await;
    world.append("Back again");
    let push = device.next_push(WAIT).await;
    assert_eq!(push.payload["messages"][0]["subject"], "Back again");
    assert_eq!(device.push_count(), 2, "one reauth push, then mail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_uses_the_token_on_imap_and_smtp() {
    let world = World::start().await;
    let (_, token, _) = world.browser_sign_in().await;
    let body =
        json!({"to": ["bob@example.org"], "subject": "Sent with XOAUTH2", "text": "Hello Bob"});
    let status = support::send::send(&world.gateway, &token, "oauth-send-1", &body).await;
    assert_eq!(status["status"], "done", "{status}");
    assert_eq!(status["path"], "burl", "{status}");
    let received = world.sink.wait_for(1, WAIT);
    assert!(String::from_utf8_lossy(&received[0].data).contains("Sent with XOAUTH2"));
    world.assert_no_secret_logged();
}
