//! Gateway nodes as processes of the real binary, sharing one PostgreSQL
//! database (and one shared directory), for the tests of cluster mode: each
//! node can be killed (`kill -9`), paused (`SIGSTOP`/`SIGCONT`), stopped
//! gracefully (`SIGTERM`) or started again with the same node id.
//!
//! Timings are short so that failovers happen within a test: a lease of
//! 3 s renewed every second, claims one second after a lease ran out, a
//! round every second.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::gateway::Gateway;

/// What every node of one test shares.
pub struct Cluster {
    pub db_url: String,
    root: tempfile::TempDir,
    /// The cluster's keys, made once by `lemonade keygen`.
    keys: PathBuf,
}

impl Cluster {
    /// A cluster on a fresh database of the test PostgreSQL server.
    pub async fn new() -> Cluster {
        let db_url = super::postgres::server().await.fresh_database().await;
        Cluster::on(db_url)
    }

    /// A cluster whose nodes reach the database at `db_url`.
    pub fn on(db_url: String) -> Cluster {
        let root = tempfile::tempdir().unwrap();
        let keys = root.path().join("keys");
        let status = Command::new(env!("CARGO_BIN_EXE_lemonade"))
            .arg("keygen")
            .arg(&keys)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "keygen failed");
        std::fs::create_dir_all(root.path().join("shared")).unwrap();
        Cluster { db_url, root, keys }
    }

    /// A cluster on `db_url` whose keys are the ones in `keys_dir` (a
    /// single gateway's data dir, moved to the cluster by `lemonade
    /// migrate`) instead of fresh ones.
    pub fn with_keys_from(db_url: String, keys_dir: &Path) -> Cluster {
        let root = tempfile::tempdir().unwrap();
        let keys = root.path().join("keys");
        std::fs::create_dir_all(&keys).unwrap();
        for key in ["master.key", "vapid.pk8"] {
            std::fs::copy(keys_dir.join(key), keys.join(key)).unwrap();
        }
        std::fs::create_dir_all(root.path().join("shared")).unwrap();
        Cluster { db_url, root, keys }
    }

    pub fn shared_dir(&self) -> PathBuf {
        self.root.path().join("shared")
    }

    /// Starts node `id` (with the cluster's keys copied to its data dir)
    /// and waits until it holds its lease.
    pub async fn start(&self, id: &str) -> Node {
        self.start_with(id, &self.db_url, &[]).await
    }

    /// [`Cluster::start`] with another database URL (through a proxy) and
    /// extra `LEMONADE_*` settings.
    pub async fn start_with(&self, id: &str, db_url: &str, env: &[(&str, &str)]) -> Node {
        let data_dir = self.root.path().join(id);
        std::fs::create_dir_all(&data_dir).unwrap();
        for key in ["master.key", "vapid.pk8"] {
            let target = data_dir.join(key);
            if !target.exists() {
                std::fs::copy(self.keys.join(key), &target).unwrap();
            }
        }
        let mut node = Node {
            id: id.to_string(),
            data_dir,
            db_url: db_url.to_string(),
            shared_dir: self.shared_dir(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            child: None,
            gateway: None,
            port: free_port(),
        };
        node.spawn().await;
        node
    }
}

/// A loopback port free now (a process started next may take it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One node: a `lemonade serve` process.
pub struct Node {
    pub id: String,
    data_dir: PathBuf,
    db_url: String,
    shared_dir: PathBuf,
    env: Vec<(String, String)>,
    child: Option<Child>,
    gateway: Option<Gateway>,
    port: u16,
}

impl Node {
    /// Its API, as the in-process gateway's helpers reach it.
    pub fn api(&self) -> &Gateway {
        self.gateway.as_ref().expect("node running")
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn log_path(&self) -> PathBuf {
        self.data_dir.join("node.log")
    }

    /// The node's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_lemonade"));
        command
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LEMONADE_LISTEN", format!("127.0.0.1:{}", self.port))
            .env("LEMONADE_DATA_DIR", &self.data_dir)
            .env("LEMONADE_LOG", "info,lemonade=debug")
            .env("LEMONADE_LOG_FORMAT", "json")
            .env("LEMONADE_STORE_BACKEND", "postgres")
            .env("LEMONADE_STORE_POSTGRES_URL", &self.db_url)
            .env("LEMONADE_STORE_POSTGRES_POOL_SIZE", "8")
            .env("LEMONADE_STORE_SHARED_DIR", &self.shared_dir)
            .env("LEMONADE_CLUSTER_NODE_ID", &self.id)
            .env("LEMONADE_CLUSTER_LEASE_TTL_SECS", "3")
            .env("LEMONADE_CLUSTER_LEASE_RENEW_SECS", "1")
            .env("LEMONADE_CLUSTER_CLAIM_GRACE_SECS", "1")
            .env("LEMONADE_CLUSTER_REBALANCE_SECS", "1")
            .env("LEMONADE_CLUSTER_PUSH_POLL_SECS", "1")
            .env("LEMONADE_PUSH_ALLOW_PRIVATE_ENDPOINTS", "true")
            .env("LEMONADE_UPSTREAM_ALLOW_PLAINTEXT", "true")
            .env("LEMONADE_UPSTREAM_ALLOW_PRIVATE_HOSTS", "true")
            .env("LEMONADE_WATCH_BACKOFF_MIN_MS", "200")
            .env("LEMONADE_WATCH_BACKOFF_MAX_SECS", "2")
            .env("LEMONADE_API_ACCOUNTS_PER_CLIENT", "100000")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (key, value) in &self.env {
            command.env(key, value);
        }
        self.child = Some(command.spawn().unwrap());
        self.gateway = Some(Gateway::attach(&format!("http://127.0.0.1:{}", self.port)));
        self.wait_ready().await;
    }

    /// Waits until `/readyz` says the node holds its lease.
    pub async fn wait_ready(&mut self) {
        for _ in 0..600 {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("node {} exited ({status}):\n{}", self.id, self.log());
            }
            let ready = self.api().http.get(self.api().at("/readyz")).send().await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("node {} never became ready:\n{}", self.id, self.log());
    }

    /// `/readyz`'s status now.
    pub async fn readiness(&self) -> u16 {
        match self.api().http.get(self.api().at("/readyz")).send().await {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        }
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("node running").id();
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// `kill -9`: the node dies on the spot.
    pub fn kill(&mut self) {
        self.signal("-KILL");
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
        self.gateway = None;
    }

    /// `SIGSTOP`: the node is frozen (a long pause).
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// `SIGCONT`: the frozen node runs on.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// `SIGTERM`, and waits until the process has ended (graceful leave).
    pub async fn terminate(&mut self) {
        self.signal("-TERM");
        let mut child = self.child.take().expect("node running");
        let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
            .await
            .unwrap();
        assert!(status.success(), "node {} exited with {status}", self.id);
        self.gateway = None;
    }

    /// Starts the node again, with the same id and data dir.
    pub async fn restart(&mut self) {
        self.spawn().await;
    }

    /// How many lines of its log have this message.
    pub fn log_count(&self, message: &str) -> usize {
        self.log()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| line["fields"]["message"] == message)
            .count()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A paused node must be resumed to die of SIGKILL promptly.
            let _ = child.kill();
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}
