//! The web app's provider button in a real browser: the gateway has an
//! OAuth provider (the fake authorization server of
//! `tests/support/oauth_server.rs`, the one fake: providers cannot run
//! here) and a real Dovecot that validates its access tokens; Chromium
//! signs in through it and back to the app, which redeems the grant.

use std::path::PathBuf;

use super::web_app::run_browser;
use super::web_oracle::text_message;
use crate::support::dovecot::Dovecot;
use crate::support::gateway::{data_dir, test_config, Gateway};
use crate::support::oauth_server::FakeAuthServer;

const EMAIL: &str = "alice@test.local";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_with_a_provider_button_in_a_browser() {
    let dovecot = Dovecot::builder().oauth2().start();
    dovecot.add_user(EMAIL, "secret");
    let welcome = text_message("Bob <bob@test.local>", "Signed in by provider", "Hello.");
    dovecot.append(EMAIL, "secret", "INBOX", &welcome);
    let auth = FakeAuthServer::start(dovecot.jwt().clone(), "lemonade-test", "client-secret").await;
    auth.set_user(EMAIL);
    let (_dir, data) = data_dir();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let mut config = test_config(&data);
    config.web.dir = std::env::var_os("TEST_WEB_DIR").map(PathBuf::from);
    config.oauth.public_url = Some(url.clone());
    // The app sends the browser back to its own origin.
    config.oauth.app_redirect_uris = vec![format!("{url}/")];
    config
        .oauth
        .providers
        .insert("fakeas".into(), auth.provider_for(&dovecot));
    let gateway = Gateway::start_on(listener, config).await;
    run_browser(&[
        ("WEB_URL", gateway.url.clone()),
        ("WEB_SPECS", "oauth".into()),
        ("WEB_EMAIL", EMAIL.into()),
    ])
    .await;
    gateway.stop().await;
}
