//! [`FakeFcm`]: Firebase Cloud Messaging as a server sees it, with
//! Google's OAuth2 token endpoint for service accounts on the same host.
//! It owns the service-account keys it made (their public halves), the
//! access tokens it issued, the scripted answers per registration token
//! and the record of every send. The HTTP side is in `fcm_routes.rs`.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openssl::pkey::{PKey, Public};
use openssl::rsa::Rsa;
use serde_json::{json, Value};
use tokio::sync::Notify;

use super::{fcm_routes, random_chars, wait_until, TlsServer};

/// The project of every service account [`FakeFcm`] makes.
pub const PROJECT_ID: &str = "lemonade-test";
/// The service account's e-mail address.
pub const CLIENT_EMAIL: &str = "push@lemonade-test.iam.gserviceaccount.com";

/// A request to `…/messages:send` as the fake saw it, and its answer.
#[derive(Debug, Clone)]
pub struct FcmDelivery {
    /// The project named in the path.
    pub project: String,
    /// The `message` object of the body (`Value::Null` when missing).
    pub message: Value,
    /// The status the fake answered with.
    pub status: u16,
}

/// A service-account key made by [`FakeFcm::make_service_account`].
pub(super) struct ServiceAccount {
    pub key_id: String,
    pub email: String,
    pub project: String,
    pub public: PKey<Public>,
}

/// An access token issued at `/token`.
pub(super) struct AccessToken {
    pub project: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// Everything the fake knows and has seen; behind one lock.
pub(super) struct Recorded {
    pub accounts: Vec<ServiceAccount>,
    pub token_lifetime: u64,
    pub tokens: HashMap<String, AccessToken>,
    pub answers: HashMap<String, VecDeque<(u16, &'static str)>>,
    /// Sent with every scripted error answer, when set.
    pub retry_after: Option<u64>,
    pub requests: Vec<FcmDelivery>,
    pub tokens_issued: usize,
}

pub(super) struct Shared {
    /// `https://127.0.0.1:PORT/token`, the audience of assertions.
    pub token_uri: String,
    recorded: Mutex<Recorded>,
    /// Woken after every request, so waits need no polling.
    pub changed: Notify,
}

impl Shared {
    fn new(token_uri: String) -> Shared {
        let recorded = Recorded {
            accounts: Vec::new(),
            token_lifetime: 3600,
            tokens: HashMap::new(),
            answers: HashMap::new(),
            retry_after: None,
            requests: Vec::new(),
            tokens_issued: 0,
        };
        Shared {
            token_uri,
            recorded: Mutex::new(recorded),
            changed: Notify::new(),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Recorded> {
        self.recorded.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The fake FCM API and token endpoint; stops when dropped.
pub struct FakeFcm {
    shared: Arc<Shared>,
    server: TlsServer,
}

impl FakeFcm {
    /// HTTPS on `127.0.0.1:0` with the server certificate in `certs`,
    /// HTTP/2 or HTTP/1.1 by ALPN as Google's hosts (`h2` preferred).
    pub async fn start(certs: &Path) -> FakeFcm {
        let mut made = None;
        let server = TlsServer::start(certs, true, |base_url| {
            let shared = Arc::new(Shared::new(format!("{base_url}/token")));
            made = Some(shared.clone());
            fcm_routes::router(shared)
        })
        .await;
        let shared = made.expect("the router was made");
        FakeFcm { shared, server }
    }

    /// `https://127.0.0.1:PORT`, the FCM API base.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// The token endpoint the key files name (`base_url() + "/token"`).
    pub fn token_uri(&self) -> String {
        self.shared.token_uri.clone()
    }

    /// TLS connections accepted so far.
    pub fn connections(&self) -> usize {
        self.server.connections()
    }

    /// Writes a Google service-account key file (RSA 2048, PKCS#8 PEM)
    /// for project [`PROJECT_ID`] into `dir`, trusts its key for
    /// assertions and returns the file's path.
    pub fn make_service_account(&self, dir: &Path) -> PathBuf {
        let rsa = Rsa::generate(2048).expect("an RSA key");
        let private = PKey::from_rsa(rsa).expect("an RSA key");
        let pem = private.private_key_to_pem_pkcs8().expect("PKCS#8 PEM");
        let public = private.public_key_to_der().expect("public key DER");
        let key_id = random_chars(b"0123456789abcdef", 40);
        let file = json!({
            "type": "service_account",
            "project_id": PROJECT_ID,
            "private_key_id": key_id,
            "private_key": String::from_utf8(pem).expect("PEM is ASCII"),
            "client_email": CLIENT_EMAIL,
            "client_id": random_chars(b"0123456789", 21),
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri(),
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "universe_domain": "googleapis.com",
        });
        let path = dir.join(format!("{PROJECT_ID}-{}.json", &key_id[..12]));
        let text = serde_json::to_string_pretty(&file).expect("key file JSON");
        std::fs::write(&path, text).expect("write the key file");
        self.shared.lock().accounts.push(ServiceAccount {
            key_id,
            email: CLIENT_EMAIL.to_owned(),
            project: PROJECT_ID.to_owned(),
            public: PKey::public_key_from_der(&public).expect("public key"),
        });
        path
    }

    /// The `expires_in` of access tokens issued from now on (default 3600).
    pub fn set_token_lifetime(&self, secs: u64) {
        self.shared.lock().token_lifetime = secs;
    }

    /// The next authenticated, well-formed sends to `registration_token`
    /// get these answers (status, FCM error code such as `UNREGISTERED`)
    /// in order; then `200` again. Replaces any answers still queued.
    pub fn respond_with(
        &self,
        registration_token: &str,
        answers: impl IntoIterator<Item = (u16, &'static str)>,
    ) {
        let queue = answers.into_iter().collect();
        let mut recorded = self.shared.lock();
        recorded
            .answers
            .insert(registration_token.to_owned(), queue);
    }

    /// Scripted error answers from now on carry `Retry-After: secs`.
    pub fn retry_after(&self, secs: u64) {
        self.shared.lock().retry_after = Some(secs);
    }

    /// The sends answered `200`, oldest first.
    pub fn deliveries(&self) -> Vec<FcmDelivery> {
        let recorded = self.shared.lock();
        let accepted = recorded.requests.iter().filter(|r| r.status == 200);
        accepted.cloned().collect()
    }

    /// Every request to `…/messages:send`, whatever it was answered.
    pub fn requests(&self) -> Vec<FcmDelivery> {
        self.shared.lock().requests.clone()
    }

    /// Returns once at least `n` sends were answered `200`.
    pub async fn wait_deliveries(&self, n: usize) {
        wait_until(&self.shared.changed, || self.deliveries().len() >= n).await;
    }

    /// Returns once at least `n` sends reached `…/messages:send`.
    pub async fn wait_requests(&self, n: usize) {
        wait_until(&self.shared.changed, || self.requests().len() >= n).await;
    }

    /// Access tokens issued so far.
    pub fn token_requests(&self) -> usize {
        self.shared.lock().tokens_issued
    }

    /// Returns once at least `n` access tokens were issued.
    pub async fn wait_token_requests(&self, n: usize) {
        wait_until(&self.shared.changed, || self.token_requests() >= n).await;
    }
}
