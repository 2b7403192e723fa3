//! The gateway under test: the release `lemonade` binary in its own process
//! (so its RSS and CPU time can be read from /proc), and its HTTP API.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use tokio::process::Child;
use tokio::time::Instant;

/// The per-host connect limit the gateway runs with (its default).
pub const MAX_CONNECTS_PER_HOST: usize = 16;

pub struct Gateway {
    child: Child,
    pid: u32,
    api: Api,
}

#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    base: String,
    /// The devices' `clear` (read pushes), when not the tier's default.
    clear: Option<bool>,
}

/// Resident memory of a process, in KiB.
#[derive(Debug, Clone, Copy)]
pub struct Rss {
    pub total_kib: u64,
    pub anon_kib: u64,
}

impl fmt::Display for Rss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:.1} MiB (anonymous {:.1} MiB)",
            self.total_kib as f64 / 1024.0,
            self.anon_kib as f64 / 1024.0
        )
    }
}

impl Rss {
    /// KiB per account above `base` (total, anonymous).
    pub fn per(&self, base: &Rss, n: usize) -> (f64, f64) {
        let n = n.max(1) as f64;
        (
            (self.total_kib as f64 - base.total_kib as f64) / n,
            (self.anon_kib as f64 - base.anon_kib as f64) / n,
        )
    }
}

pub fn mem_total() -> String {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        })
        .map(|m| format!("{m} RAM"))
        .unwrap_or_default()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Gateway {
    /// Starts `lemonade serve` on a free port with its state in `data` and
    /// the fake's CA trusted; waits until it answers.
    pub async fn start(data: &Path, ca: &Path) -> Gateway {
        Gateway::start_with(data, ca, &[], "/healthz").await
    }

    /// [`Gateway::start`] with more `LEMONADE_*` settings; waits until
    /// `ready` (a path of the API) answers 200.
    pub async fn start_with(
        data: &Path,
        ca: &Path,
        env: &[(&str, String)],
        ready: &str,
    ) -> Gateway {
        let port = free_port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data.with_extension("log"))
            .unwrap();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_lemonade"))
            .arg("serve")
            .env_clear()
            .env("LEMONADE_LISTEN", format!("127.0.0.1:{port}"))
            .env("LEMONADE_DATA_DIR", data)
            .env(
                "LEMONADE_LOG",
                std::env::var("LOAD_GATEWAY_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .env("LEMONADE_UPSTREAM_ALLOW_PLAINTEXT", "true")
            .env("LEMONADE_UPSTREAM_ALLOW_PRIVATE_HOSTS", "true")
            .env("LEMONADE_UPSTREAM_EXTRA_CA_FILE", ca)
            .env(
                "LEMONADE_UPSTREAM_MAX_CONNECTS_PER_HOST",
                MAX_CONNECTS_PER_HOST.to_string(),
            )
            .env("LEMONADE_PUSH_ALLOW_PRIVATE_ENDPOINTS", "true")
            // Every account is registered from loopback.
            .env("LEMONADE_API_ACCOUNTS_PER_CLIENT", "1000000")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start lemonade");
        let pid = child.id().unwrap();
        let gw = Gateway {
            child,
            pid,
            api: Api {
                client: reqwest::Client::builder()
                    .pool_max_idle_per_host(64)
                    .build()
                    .unwrap(),
                base: format!("http://127.0.0.1:{port}"),
                clear: None,
            },
        };
        let end = Instant::now() + Duration::from_secs(60);
        while Instant::now() < end {
            let answer = gw.api.client.get(format!("{}{ready}", gw.api.base));
            if let Ok(r) = answer.send().await {
                if r.status().is_success() {
                    return gw;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "lemonade did not answer {ready} within 60 s; see {}",
            data.with_extension("log").display()
        );
    }

    pub fn api(&self) -> Api {
        self.api.clone()
    }

    pub fn rss(&self) -> Rss {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Rss {
            total_kib: field("VmRSS:"),
            anon_kib: field("RssAnon:"),
        }
    }

    pub fn open_files_limit(&self) -> String {
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", self.pid)).unwrap();
        limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .map(|l| {
                let v: Vec<&str> = l.split_whitespace().collect();
                format!("soft {}, hard {}", v[3], v[4])
            })
            .unwrap_or_default()
    }

    /// User plus system CPU time so far.
    pub fn cpu_seconds(&self) -> f64 {
        let (user, system) = self.cpu_times();
        user + system
    }

    /// User and system (kernel, on the gateway's behalf) CPU time so far.
    pub fn cpu_times(&self) -> (f64, f64) {
        crate::cpu_time::user_and_system(&format!("/proc/{}/stat", self.pid))
    }

    pub async fn metrics(&self) -> String {
        self.api
            .client
            .get(format!("{}/metrics", self.api.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    async fn metric(&self, name: &str) -> f64 {
        let text = self.metrics().await;
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    }

    pub async fn watching(&self) -> usize {
        self.metric("lemonade_accounts{state=\"watching\"}").await as usize
    }

    pub async fn pushes_sent(&self) -> u64 {
        self.metric("lemonade_pushes_sent_total").await as u64
    }

    pub async fn wait_watching(&self, n: usize, limit: Duration) {
        let end = Instant::now() + limit;
        loop {
            let now = self.watching().await;
            if now >= n {
                return;
            }
            assert!(
                Instant::now() < end,
                "only {now} of {n} accounts watching after {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn latency_histogram(&self) -> Histogram {
        self.histogram("lemonade_push_latency_seconds").await
    }

    /// The durations of the store's flushes so far.
    pub async fn flush_histogram(&self) -> Histogram {
        self.histogram("lemonade_store_flush_seconds").await
    }

    async fn histogram(&self, name: &str) -> Histogram {
        let text = self.metrics().await;
        let prefix = format!("{name}_bucket{{le=\"");
        let mut h = Histogram::default();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix(prefix.as_str()) else {
                continue;
            };
            let Some((bound, value)) = rest.split_once("\"} ") else {
                continue;
            };
            let bound = if bound == "+Inf" {
                f64::INFINITY
            } else {
                bound.parse().unwrap()
            };
            h.buckets.push((bound, value.trim().parse().unwrap()));
        }
        h
    }

    /// `kill -9`: the process dies on the spot; returns once it is gone.
    pub async fn kill(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// SIGTERM, then waits for a clean stop (SIGKILL after 20 s).
    pub async fn stop(mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        if tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// Cumulative latency buckets, as `/metrics` shows them.
#[derive(Default, Clone)]
pub struct Histogram {
    buckets: Vec<(f64, f64)>,
}

impl Histogram {
    /// The buckets of both (histograms of several processes).
    pub fn plus(&self, other: &Histogram) -> Histogram {
        if self.buckets.is_empty() {
            return other.clone();
        }
        Histogram {
            buckets: self
                .buckets
                .iter()
                .zip(&other.buckets)
                .map(|((b, v), (_, w))| (*b, v + w))
                .collect(),
        }
    }

    pub fn minus(&self, earlier: &Histogram) -> Histogram {
        Histogram {
            buckets: self
                .buckets
                .iter()
                .zip(&earlier.buckets)
                .map(|((b, v), (_, w))| (*b, v - w))
                .collect(),
        }
    }

    /// How many values were observed.
    pub fn count(&self) -> f64 {
        self.buckets.last().map_or(0.0, |&(_, total)| total)
    }

    /// The upper bound of the bucket of the largest value.
    pub fn slowest_bound(&self) -> f64 {
        let mut below = 0.0;
        let mut slowest = f64::NAN;
        for &(bound, cumulative) in &self.buckets {
            if cumulative > below {
                slowest = bound;
            }
            below = cumulative;
        }
        slowest
    }

    /// Like Prometheus' `histogram_quantile`: linear within the bucket.
    pub fn quantile(&self, q: f64) -> f64 {
        let Some(&(_, total)) = self.buckets.last() else {
            return f64::NAN;
        };
        if total <= 0.0 {
            return f64::NAN;
        }
        let rank = q * total;
        let (mut lower, mut below) = (0.0, 0.0);
        for &(bound, cumulative) in &self.buckets {
            if cumulative >= rank {
                if bound.is_infinite() {
                    return lower;
                }
                if cumulative == below {
                    return bound;
                }
                return lower + (bound - lower) * (rank - below) / (cumulative - below);
            }
            lower = bound;
            below = cumulative;
        }
        lower
    }
}

impl Api {
    /// Registers devices with `clear` set (`None`: the tier's default).
    pub fn with_clear(mut self, clear: Option<bool>) -> Api {
        self.clear = clear;
        self
    }

    /// `http://127.0.0.1:PORT`, the gateway's API (for the hostile benchmark).
    #[allow(dead_code)]
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Registers user `u{user}` on the fake at `host:port` and one device.
    pub async fn register(
        &self,
        user: usize,
        host: &str,
        port: u16,
        tls: bool,
        subscription: serde_json::Value,
    ) {
        let body = serde_json::json!({
            "email": format!("u{user}@load.example.org"),
            "imap": {
                "host": host,
                "port": port,
                "security": if tls { "tls" } else { "plain" },
                "username": format!("u{user}"),
                "password": "load-test",
            }
        });
        let r = self
            .client
            .post(format!("{}/v1/accounts", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let answer: serde_json::Value = r.json().await.unwrap();
        assert_eq!(status.as_u16(), 201, "registering u{user}: {answer}");
        let token = answer["token"].as_str().unwrap().to_string();
        let mut device = serde_json::json!({ "subscription": subscription, "mailboxes": ["INBOX"], "payload": "preview" });
        if let Some(clear) = self.clear {
            device["clear"] = clear.into();
        }
        let r = self
            .client
            .post(format!("{}/v1/devices", self.base))
            .bearer_auth(token)
            .json(&device)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let answer: serde_json::Value = r.json().await.unwrap();
        assert_eq!(status.as_u16(), 201, "device of u{user}: {answer}");
    }
}
