//! Signing in through a provider on a cluster: the browser's sign-in is
//! started on one node, comes back to another (as a load balancer in front
//! of them sends it), and its grant is redeemed on the first: the one-time
//! tickets live in PostgreSQL. Real Dovecot with its `oauth2` passdb; the
//! fake authorization server of the test support.

use serde_json::{json, Value};

use crate::support::cluster::Cluster;
use crate::support::dovecot::Dovecot;
use crate::support::gateway::Gateway;
use crate::support::oauth_server::{redirect_location, FakeAuthServer};
use crate::support::push::{PushReceiver, TestDevice};
use crate::support::scenario::message;

const USER: &str = "carol@test.local";
const APP: &str = "com.example.mail:/oauth";
/// Where the nodes think they are reached: a load balancer's name.
const PUBLIC: &str = "http://mail.invalid";
/// Access tokens live this long (seconds).
const LIFETIME: u64 = 4;

fn provider(auth: &FakeAuthServer, dovecot: &Dovecot) -> String {
    format!(
        "{{fakeas = {{client_id = \"lemonade-test\", client_secret = \"client-secret\", \
         authorize_url = \"{}\", token_url = \"{}\", scopes = [\"openid\", \"email\"], \
         imap = {{host = \"127.0.0.1\", port = {}, security = \"plain\"}}, mechanism = \"xoauth2\"}}}}",
        auth.authorize_url(),
        auth.token_url(),
        dovecot.imap_port()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_started_on_one_node_finishes_on_another() {
    let dovecot = Dovecot::builder().oauth2().start();
    dovecot.add_user(USER, "secret");
    let auth = FakeAuthServer::start(dovecot.jwt().clone(), "lemonade-test", "client-secret").await;
    auth.set_user(USER);
    auth.set_access_lifetime(LIFETIME as i64);
    let providers = provider(&auth, &dovecot);
    let env = [
        ("LEMONADE_OAUTH_PUBLIC_URL", PUBLIC),
        (
            "LEMONADE_OAUTH_APP_REDIRECT_URIS",
            "[\"com.example.mail:/oauth\"]",
        ),
        ("LEMONADE_OAUTH_PROVIDERS", providers.as_str()),
    ];
    let cluster = Cluster::new().await;
    let a = cluster.start_with("node-a", &cluster.db_url, &env).await;
    let b = cluster.start_with("node-b", &cluster.db_url, &env).await;

    let (account_id, token) = sign_in(a.api(), b.api()).await;
    // Whichever node watches it logs in with the token.
    let token = token.as_str();
    let receiver = PushReceiver::start().await;
    let device = TestDevice::new(&receiver);
    a.api()
        .add_device(token, device.subscription_json(), &["INBOX"], "headers")
        .await;
    a.api().wait_watching(token, &["INBOX"]).await;
    let raw = message("bob@example.org", "Through the cluster", "Hi");
    dovecot.append(USER, "secret", "INBOX", &raw);
    let push: Value = device.next_push(super::nodes::WAIT).await.payload;
    assert_eq!(push["messages"][0]["subject"], "Through the cluster");

    // The grant is refused: one reauth push; signing in again, through
    // the other node this time, starts the owner's watcher again.
    auth.refuse_refresh(USER);
    tokio::time::sleep(std::time::Duration::from_secs(LIFETIME + 1)).await;
    dovecot.kick(USER);
    let push = device.next_push(super::nodes::WAIT).await.payload;
    assert_eq!(
        push,
        json!({"v": 1, "type": "reauth", "account_id": account_id})
    );
    a.api().wait_state(token, "reauth_required").await;
    auth.allow_refresh(USER);
    let (again, token) = sign_in(b.api(), b.api()).await;
    assert_eq!(again, account_id);
    b.api().wait_watching(&token, &["INBOX"]).await;
    dovecot.append(
        USER,
        "secret",
        "INBOX",
        &message("bob@example.org", "Revived", "x"),
    );
    let push = device.next_push(super::nodes::WAIT).await.payload;
    assert_eq!(push["messages"][0]["subject"], "Revived");
}

/// Starts a sign-in on `start`, lets the browser come back to `back`
/// (as a load balancer would send it), redeems the grant on `start`.
async fn sign_in(start: &Gateway, back: &Gateway) -> (String, String) {
    let body = json!({"provider": "fakeas", "app_redirect_uri": APP});
    let (status, started) = start.post("/v1/oauth/start", None, &body).await;
    assert_eq!(status, 200, "{started}");
    let callback = redirect_location(started["authorize_url"].as_str().unwrap()).await;
    let path = callback
        .strip_prefix(PUBLIC)
        .expect("the public callback URL");
    let location = redirect_location(&back.at(path)).await;
    let grant = location
        .strip_prefix(&format!("{APP}?grant="))
        .expect("a grant");
    let redeem = json!({"grant": grant});
    let (status, account) = start.post("/v1/oauth/redeem", None, &redeem).await;
    assert_eq!(status, 201, "{account}");
    let (status, again) = back.post("/v1/oauth/redeem", None, &redeem).await;
    assert_eq!(
        (status, &again["error"]["code"]),
        (400, &json!("oauth_grant_invalid"))
    );
    let field = |name: &str| account[name].as_str().unwrap().to_owned();
    (field("account_id"), field("token"))
}
