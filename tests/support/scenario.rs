//! The common test setup: user `alice` on a fresh Dovecot, a gateway on its
//! own data directory watching her INBOX, and one device on a real push
//! receiver. Also the test messages.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use lemonade::config::Config;

use super::dovecot::Dovecot;
use super::gateway::{data_dir, test_config, Gateway};
use super::push::{PushReceiver, TestDevice};

pub const USER: &str = "alice";
pub const PASSWORD: &str = "secret";

/// A plain-text message with a unique Message-ID.
pub fn message(from: &str, subject: &str, body: &str) -> Vec<u8> {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    format!(
        "From: {from}\r\nTo: alice@test.local\r\nSubject: {subject}\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{id}.{}@test.local>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n",
        std::process::id(),
    )
    .into_bytes()
}

/// The UIDs a mail push carries, in payload order (newest first).
pub fn uids(push: &Value) -> Vec<u64> {
    push["messages"]
        .as_array()
        .map(|m| m.iter().filter_map(|m| m["uid"].as_u64()).collect())
        .unwrap_or_default()
}

/// Alice's INBOX watched by a gateway, with one device of the given tier.
pub struct Watched {
    pub dovecot: Dovecot,
    pub receiver: PushReceiver,
    pub device: TestDevice,
    pub token: String,
    pub account_id: String,
    gateway: Option<Gateway>,
    /// The gateway's configuration, kept for restarts.
    config: Config,
    _tmp: tempfile::TempDir,
}

impl Watched {
    pub async fn start(tier: &str) -> Watched {
        Self::start_on(Dovecot::start(), tier, |_| {}).await
    }

    /// [`Watched::start`] on a given Dovecot, with the test configuration
    /// changed by `configure`.
    pub async fn start_on(
        dovecot: Dovecot,
        tier: &str,
        configure: impl FnOnce(&mut Config),
    ) -> Watched {
        let port = dovecot.imap_port();
        Self::start_via(dovecot, port, tier, configure).await
    }

    /// [`Watched::start_on`], with the account's IMAP server at `imap_port`
    /// on loopback (something in front of `dovecot`).
    pub async fn start_via(
        dovecot: Dovecot,
        imap_port: u16,
        tier: &str,
        configure: impl FnOnce(&mut Config),
    ) -> Watched {
        dovecot.add_user(USER, PASSWORD);
        let receiver = PushReceiver::start().await;
        let device = TestDevice::new(&receiver);
        let (tmp, dir) = data_dir();
        let mut config = test_config(&dir);
        configure(&mut config);
        let gateway = Gateway::start_with(config.clone()).await;
        let (account_id, token) = gateway
            .register(dovecot.host(), imap_port, USER, PASSWORD)
            .await;
        gateway
            .add_device(&token, device.subscription_json(), &["INBOX"], tier)
            .await;
        gateway.wait_watching(&token, &["INBOX"]).await;
        Watched {
            dovecot,
            receiver,
            device,
            token,
            account_id,
            gateway: Some(gateway),
            config,
            _tmp: tmp,
        }
    }

    /// The gateway's data directory (its store is under `db`).
    pub fn data_dir(&self) -> &std::path::Path {
        &self.config.data_dir
    }

    /// The running gateway.
    pub fn gateway(&self) -> &Gateway {
        self.gateway.as_ref().expect("the gateway is stopped")
    }

    /// Appends a message from `from` with `subject` to alice's INBOX.
    pub fn append(&self, from: &str, subject: &str) -> u32 {
        self.dovecot
            .append(USER, PASSWORD, "INBOX", &message(from, subject, subject))
    }

    pub async fn stop_gateway(&mut self) {
        if let Some(gateway) = self.gateway.take() {
            gateway.stop().await;
        }
    }

    /// Starts the gateway again on the same data directory.
    pub async fn start_gateway(&mut self) {
        self.gateway = Some(Gateway::start_with(self.config.clone()).await);
    }

    /// [`Watched::start_gateway`] with the configuration changed by `configure` (kept).
    pub async fn start_gateway_with(&mut self, configure: impl FnOnce(&mut Config)) {
        configure(&mut self.config);
        self.start_gateway().await;
    }

    /// Waits until the INBOX is watched; returns `GET /v1/me`.
    pub async fn wait_watching(&self) -> Value {
        self.gateway().wait_watching(&self.token, &["INBOX"]).await
    }

    /// Stops the gateway cleanly (it releases its store).
    pub async fn finish(mut self) {
        self.stop_gateway().await;
    }
}
