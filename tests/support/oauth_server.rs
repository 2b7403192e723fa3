//! A fake OAuth2 authorization server for the gateway's sign-in tests: it
//! owns the grants (authorization codes, refresh tokens, access tokens),
//! the scripted misbehaviour (refused refreshes, a token endpoint that is
//! briefly down) and the record of what clients asked for.
//!
//! Access and ID tokens are JWTs from a [`JwtSigner`], so with the signer
//! of `Dovecot::builder().oauth2()` Dovecot accepts the access tokens it
//! hands out. The HTTP side (RFC 6749, 7636 PKCE S256, 7009 revocation and
//! an OpenID userinfo endpoint) is in `oauth_server/endpoints.rs`.
//!
//! ```ignore
//! let dovecot = Dovecot::builder().oauth2().start();
//! let server = FakeAuthServer::start(dovecot.jwt().clone(), "id", "secret").await;
//! server.set_user("alice");
//! // … point the gateway at server.authorize_url(), server.token_url() …
//! server.wait_refreshes(1).await;
//! ```
//!
//! The waits have no bound of their own: wrap them in
//! `tokio::time::timeout` (not with a paused clock).

mod endpoints;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use lemonade::config::{ProviderConfig, ServerConfig};
use lemonade::store::Security;

use super::dovecot::Dovecot;
use super::oauth::{unix_now, JwtSigner};

/// The scope of codes made by [`FakeAuthServer::issue_code`].
pub const DEFAULT_SCOPE: &str = "openid email https://mail.google.com/";

/// What a code or refresh token grants: whose mail, with which scope.
#[derive(Debug, Clone)]
struct Grant {
    email: String,
    scope: String,
}

/// An authorization code not yet exchanged.
#[derive(Debug)]
struct Code {
    grant: Grant,
    /// The `redirect_uri` the exchange must repeat ("" for none).
    redirect_uri: String,
    /// The PKCE S256 challenge the verifier must meet, if one was given.
    challenge: Option<String>,
}

/// Everything the server knows and has seen; behind one lock.
#[derive(Debug)]
struct State {
    /// Who signs in at `/authorize`.
    user: Option<String>,
    access_lifetime: i64,
    rotation: bool,
    /// Users whose refreshes answer `invalid_grant`.
    refused: HashSet<String>,
    /// Token requests still to answer 503.
    failures_left: usize,
    codes: HashMap<String, Code>,
    /// Live refresh tokens.
    refresh_tokens: HashMap<String, Grant>,
    /// Access tokens issued: the user and the expiry (Unix seconds).
    access_tokens: HashMap<String, (String, i64)>,
    revoked: Vec<String>,
    refreshes: usize,
    requests: Vec<String>,
}

impl State {
    fn new() -> State {
        State {
            user: None,
            access_lifetime: 3600,
            rotation: true,
            refused: HashSet::new(),
            failures_left: 0,
            codes: HashMap::new(),
            refresh_tokens: HashMap::new(),
            access_tokens: HashMap::new(),
            revoked: Vec::new(),
            refreshes: 0,
            requests: Vec::new(),
        }
    }

    /// Keeps a new code for `grant` and returns it.
    fn new_code(&mut self, grant: Grant, redirect_uri: &str, challenge: Option<&str>) -> String {
        let code = random_value("code-");
        let issued = Code {
            grant,
            redirect_uri: redirect_uri.to_owned(),
            challenge: challenge.map(str::to_owned),
        };
        self.codes.insert(code.clone(), issued);
        code
    }

    /// Keeps a new refresh token for `grant` and returns it.
    fn new_refresh_token(&mut self, grant: Grant) -> String {
        let token = random_value("rt-");
        self.refresh_tokens.insert(token.clone(), grant);
        token
    }
}

/// The server's configuration and state, shared with the request handlers.
struct Shared {
    signer: JwtSigner,
    client_id: String,
    client_secret: String,
    state: Mutex<State>,
    /// Woken after every request, so waits need no polling.
    changed: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Stops the server task when the last handle goes.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The fake authorization server; clones share it, and it stops when the
/// last clone is dropped.
#[derive(Clone)]
pub struct FakeAuthServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    _server: Arc<AbortOnDrop>,
}

impl FakeAuthServer {
    /// This server as an operator would configure a provider without a
    /// preset, for mail on `dovecot`.
    pub fn provider_for(&self, dovecot: &Dovecot) -> ProviderConfig {
        let server = |port| ServerConfig {
            host: dovecot.host().into(),
            port,
            security: Security::Plain,
        };
        ProviderConfig {
            client_id: Some("lemonade-test".into()),
            client_secret: Some("client-secret".into()),
            authorize_url: Some(self.authorize_url()),
            token_url: Some(self.token_url()),
            revoke_url: Some(self.revoke_url()),
            userinfo_url: Some(self.userinfo_url()),
            scopes: Some(vec!["openid".into(), "email".into(), "mail".into()]),
            imap: Some(server(dovecot.imap_port())),
            smtp: Some(server(dovecot.submission_port())),
            mechanism: Some("xoauth2".into()),
            ..ProviderConfig::default()
        }
    }

    /// Serves HTTP/1.1 on `127.0.0.1` at a free port, for the one client
    /// `client_id` with `client_secret`, signing tokens with `signer`.
    pub async fn start(signer: JwtSigner, client_id: &str, client_secret: &str) -> FakeAuthServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the authorization server");
        let addr = listener.local_addr().expect("server address");
        let shared = Arc::new(Shared {
            signer,
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            state: Mutex::new(State::new()),
            changed: Notify::new(),
        });
        let router = endpoints::router(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        FakeAuthServer {
            shared,
            addr,
            _server: Arc::new(AbortOnDrop(server)),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn authorize_url(&self) -> String {
        format!("{}/authorize", self.base_url())
    }

    pub fn token_url(&self) -> String {
        format!("{}/token", self.base_url())
    }

    pub fn revoke_url(&self) -> String {
        format!("{}/revoke", self.base_url())
    }

    pub fn userinfo_url(&self) -> String {
        format!("{}/userinfo", self.base_url())
    }

    /// The signer of the access and ID tokens.
    pub fn signer(&self) -> &JwtSigner {
        &self.shared.signer
    }

    /// Who signs in (and consents at once) at `/authorize`; until set,
    /// `/authorize` redirects with `error=access_denied`.
    pub fn set_user(&self, email: &str) {
        self.shared.lock().user = Some(email.to_owned());
    }

    /// Nobody signs in any more: `/authorize` redirects with
    /// `error=access_denied` (the person declined).
    pub fn clear_user(&self) {
        self.shared.lock().user = None;
    }

    /// The lifetime of access tokens issued from now on (default 3600 s).
    pub fn set_access_lifetime(&self, secs: i64) {
        self.shared.lock().access_lifetime = secs;
    }

    /// Whether a refresh hands out a new refresh token and retires the old
    /// one (as Microsoft does; the default) or keeps it (as Google does).
    pub fn set_rotation(&self, on: bool) {
        self.shared.lock().rotation = on;
    }

    /// Every later refresh for `email` answers `400 invalid_grant` (the
    /// user revoked access), until [`Self::allow_refresh`].
    pub fn refuse_refresh(&self, email: &str) {
        self.shared.lock().refused.insert(email.to_owned());
    }

    pub fn allow_refresh(&self, email: &str) {
        self.shared.lock().refused.remove(email);
    }

    /// The next `n` token requests answer `503 temporarily_unavailable`.
    pub fn fail_token_endpoint(&self, n: usize) {
        self.shared.lock().failures_left = n;
    }

    /// A code for `email`, as an app gets one for the server's client id
    /// (Google's `serverAuthCode`): the exchange must repeat `redirect_uri`
    /// (or send none when it is "") and meet the S256 challenge if given.
    pub fn issue_code(
        &self,
        email: &str,
        redirect_uri: &str,
        code_challenge_s256: Option<&str>,
    ) -> String {
        let grant = Grant {
            email: email.to_owned(),
            scope: DEFAULT_SCOPE.to_owned(),
        };
        let mut state = self.shared.lock();
        state.new_code(grant, redirect_uri, code_challenge_s256)
    }

    /// The tokens posted to `/revoke`, in order.
    pub fn revoked(&self) -> Vec<String> {
        self.shared.lock().revoked.clone()
    }

    /// Refresh requests the grant logic answered (new tokens or
    /// `invalid_grant`); 503s and refused client authentication are not
    /// counted.
    pub fn refresh_count(&self) -> usize {
        self.shared.lock().refreshes
    }

    /// Returns once [`Self::refresh_count`] is at least `n`.
    pub async fn wait_refreshes(&self, n: usize) {
        self.wait_until(|state| state.refreshes >= n).await;
    }

    /// Returns once at least `n` tokens were posted to `/revoke`.
    pub async fn wait_revoked(&self, n: usize) {
        self.wait_until(|state| state.revoked.len() >= n).await;
    }

    /// `METHOD PATH` of every request so far (queries left out).
    pub fn requests_seen(&self) -> Vec<String> {
        self.shared.lock().requests.clone()
    }

    async fn wait_until(&self, done: impl Fn(&State) -> bool) {
        loop {
            let notified = self.shared.changed.notified();
            tokio::pin!(notified);
            // Registered before the check, so no change slips between.
            notified.as_mut().enable();
            if done(&self.shared.lock()) {
                return;
            }
            notified.await;
        }
    }
}

/// Opens `url` as a browser would and returns where it redirects to
/// (not followed): for `/authorize`, the client's redirect URI with the
/// code or the error.
pub async fn redirect_location(url: &str) -> String {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("HTTP client");
    let response = browser.get(url).send().await;
    let response = response.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert!(response.status().is_redirection(), "{url}: {response:?}");
    let location = response.headers().get(reqwest::header::LOCATION);
    let location = location.and_then(|l| l.to_str().ok()).expect("Location");
    location.to_owned()
}

/// The PKCE S256 challenge of `verifier`: BASE64URL(SHA256(verifier)).
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// An unguessable value with a prefix that says what it is.
fn random_value(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        URL_SAFE_NO_PAD.encode(rand::random::<[u8; 24]>())
    )
}

/// Whether an access token that expires at `expires_at` is still valid.
fn live(expires_at: i64) -> bool {
    unix_now() < expires_at
}
