//! Runs the gateway in-process for integration tests: on a loopback port,
//! with its state in a directory the test owns, so it can be stopped and
//! started again on the same state.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lemonade::config::Config;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running gateway.
pub struct Gateway {
    pub url: String,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), lemonade::RunError>>,
}

/// The configuration tests run with: loopback push endpoints, plaintext and
/// loopback IMAP and SMTP allowed, short reconnect backoff, no limit on new
/// accounts per client that a test would reach.
pub fn test_config(data_dir: &Path) -> Config {
    let mut config = Config {
        data_dir: data_dir.to_path_buf(),
        ..Config::default()
    };
    config.push.allow_private_endpoints = true;
    config.upstream.allow_plaintext = true;
    config.upstream.allow_private_hosts = true;
    config.upstream.connect_timeout_secs = 10;
    config.watch.backoff_min_ms = 200;
    config.watch.backoff_max_secs = 2;
    // Every test registers from loopback.
    config.api.accounts_per_client = 100_000;
    config
}

impl Gateway {
    /// Starts a gateway with the test configuration on `data_dir`.
    pub async fn start(data_dir: &Path) -> Gateway {
        Self::start_with(test_config(data_dir)).await
    }

    pub async fn start_with(config: Config) -> Gateway {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_on(listener, config).await
    }

    /// Starts a gateway on a listener bound already (when the
    /// configuration must name the gateway's own address).
    pub async fn start_on(listener: tokio::net::TcpListener, config: Config) -> Gateway {
        Self::start_on_clock(listener, config, lemonade::clock::WallClock::system()).await
    }

    /// Starts a gateway that reads wall time from `clock` (which the test
    /// may set to a given moment).
    pub async fn start_clocked(config: Config, clock: lemonade::clock::WallClock) -> Gateway {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_on_clock(listener, config, clock).await
    }

    async fn start_on_clock(
        listener: tokio::net::TcpListener,
        config: Config,
        clock: lemonade::clock::WallClock,
    ) -> Gateway {
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(lemonade::run_with_clock(
            config,
            listener,
            shutdown.clone(),
            clock,
        ));
        // The test's own HTTP client uses the process-wide rustls provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let gateway = Gateway {
            url,
            http,
            shutdown,
            task,
        };
        for _ in 0..200 {
            if let Ok(r) = gateway.http.get(gateway.at("/healthz")).send().await {
                if r.status().is_success() {
                    return gateway;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("gateway did not come up");
    }

    /// The API of a gateway running elsewhere (a node process) at `url`;
    /// `stop` only lets go of it.
    pub fn attach(url: &str) -> Gateway {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let shutdown = CancellationToken::new();
        let stopped = shutdown.clone();
        let task = tokio::spawn(async move {
            stopped.cancelled().await;
            Ok(())
        });
        Gateway {
            url: url.to_string(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            shutdown,
            task,
        }
    }

    /// Stops the gateway and waits until it has released its store.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }

    pub fn at(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics_text(&self) -> String {
        let response = self.http.get(self.at("/metrics")).send().await.unwrap();
        response.text().await.unwrap()
    }

    /// POSTs JSON, returns (status, body as JSON or Null).
    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        let mut request = self.http.post(self.at(path)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        answer(request.send().await.unwrap()).await
    }

    /// PATCHes JSON, returns (status, body as JSON or Null).
    pub async fn patch(&self, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        let mut request = self.http.patch(self.at(path)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        answer(request.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut request = self.http.get(self.at(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        answer(request.send().await.unwrap()).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut request = self.http.delete(self.at(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        answer(request.send().await.unwrap()).await
    }

    /// Registers an IMAP account on a plaintext loopback server; returns (account id, token).
    pub async fn register(
        &self,
        host: &str,
        port: u16,
        user: &str,
        password: &str,
    ) -> (String, String) {
        let (status, body) = self
            .post(
                "/v1/accounts",
                None,
                &account_body(host, port, user, password),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        (
            body["account_id"].as_str().unwrap().to_string(),
            body["token"].as_str().unwrap().to_string(),
        )
    }

    /// Registers a device; returns its id.
    pub async fn add_device(
        &self,
        token: &str,
        subscription: Value,
        mailboxes: &[&str],
        payload: &str,
    ) -> String {
        let (status, body) = self
            .post(
                "/v1/devices",
                Some(token),
                &json!({"subscription": subscription, "mailboxes": mailboxes, "payload": payload}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["device_id"].as_str().unwrap().to_string()
    }

    /// Waits until the account's watcher is in `state` (fails instead of hanging).
    pub async fn wait_state(&self, token: &str, state: &str) -> Value {
        self.wait_watching_state(token, state, &[]).await
    }

    /// Waits until the account is watching at least these mailboxes.
    pub async fn wait_watching(&self, token: &str, mailboxes: &[&str]) -> Value {
        self.wait_watching_state(token, "watching", mailboxes).await
    }

    async fn wait_watching_state(&self, token: &str, state: &str, mailboxes: &[&str]) -> Value {
        let mut last = Value::Null;
        for _ in 0..600 {
            let (status, body) = self.get("/v1/accounts/me", Some(token)).await;
            let watched = body["watch"]["mailboxes"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if status == 200
                && body["watch"]["state"] == state
                && mailboxes.iter().all(|m| watched.iter().any(|w| w == m))
            {
                return body;
            }
            last = body;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("account never reached {state}: {last}");
    }
}

/// A registration with an IMAP server only (no SMTP: nothing is sent).
pub fn account_body(host: &str, port: u16, user: &str, password: &str) -> Value {
    let server = json!({"host": host, "port": port, "security": "plain", "username": user, "password": password});
    json!({"email": format!("{user}@test.local"), "imap": server})
}

async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A fresh directory for a gateway's state.
pub fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    (dir, path)
}
