//! The cluster section's processes: a private PostgreSQL server made
//! durable (the test harness's server, with `fsync` turned back on), and
//! gateway nodes (processes of the release binary) on one database of it,
//! with the sums the benchmark reads from them: accounts watching, pushes
//! sent, latency histograms, and CPU time from `/proc` (the nodes', and
//! the database server's: the postmaster and every process under it).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use crate::gateway::{Api, Gateway, Histogram};
use crate::postgres::PostgresServer;

/// The settings that make a commit durable; the harness turns them off.
const DURABLE: [&str; 3] = ["fsync", "synchronous_commit", "full_page_writes"];

/// One database of the private PostgreSQL server, and a client to it.
pub struct Database {
    pub url: String,
    server: &'static PostgresServer,
    client: tokio_postgres::Client,
}

impl Database {
    /// Starts the server (once per process), turns durability on, and
    /// creates an empty database.
    pub async fn start() -> Database {
        let server = crate::postgres::server().await;
        let url = server.fresh_database().await;
        make_durable(server, &url).await;
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connect to the benchmark's PostgreSQL");
        tokio::spawn(connection);
        Database {
            url,
            server,
            client,
        }
    }

    /// The server's version and durability settings, for the output.
    pub async fn describe(&self) -> String {
        let mut parts = Vec::new();
        for name in ["server_version"]
            .into_iter()
            .chain(DURABLE)
            .chain(["wal_sync_method", "shared_buffers"])
        {
            let row = self
                .client
                .query_one("SELECT current_setting($1)", &[&name])
                .await
                .expect("read a setting");
            parts.push(format!("{name} = {}", row.get::<_, String>(0)));
        }
        parts.join(", ")
    }

    /// User and system CPU seconds of the database server: the postmaster
    /// and its children now, plus the children it has reaped (backends of
    /// closed connections).
    pub fn cpu_times(&self) -> (f64, f64) {
        let pid_file = self.server.socket_dir().join("data/postmaster.pid");
        let text = std::fs::read_to_string(&pid_file).expect("postmaster.pid");
        let postmaster: u32 = text
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .expect("postmaster pid");
        let (mut user, mut system) = (0.0, 0.0);
        for (pid, stat) in processes() {
            if pid == postmaster || stat.ppid == postmaster {
                user += stat.user;
                system += stat.system;
            }
            if pid == postmaster {
                user += stat.children_user;
                system += stat.children_system;
            }
        }
        (user, system)
    }

    /// The owning node of each user's account (`u{index}`).
    pub async fn owners(&self) -> HashMap<usize, Option<String>> {
        let rows = self
            .client
            .query("SELECT imap_username, owner FROM account", &[])
            .await
            .expect("read account owners");
        rows.iter()
            .filter_map(|row| {
                let user: String = row.get(0);
                let index = user.strip_prefix('u')?.parse().ok()?;
                Some((index, row.get(1)))
            })
            .collect()
    }

    /// How many accounts `node` owns.
    pub async fn owned_by(&self, node: &str) -> i64 {
        self.count("SELECT count(*) FROM account WHERE owner = $1", node)
            .await
    }

    /// How many pushes are queued (delivered ones are deleted).
    pub async fn queued_pushes(&self) -> i64 {
        let row = self
            .client
            .query_one("SELECT count(*) FROM push", &[])
            .await
            .expect("count pushes");
        row.get(0)
    }

    /// The database's work so far, from its statistics views (which the
    /// server updates within about a second).
    pub async fn activity(&self) -> Activity {
        let row = self
            .client
            .query_one(
                "SELECT d.xact_commit, w.wal_records, w.wal_sync, w.wal_bytes::float8, w.wal_sync_time, \
                   (SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::bigint \
                    FROM pg_stat_user_tables) \
                 FROM pg_stat_database d, pg_stat_wal w WHERE d.datname = current_database()",
                &[],
            )
            .await
            .expect("read the database's statistics");
        Activity {
            commits: row.get::<_, i64>(0) as f64,
            wal_records: row.get::<_, i64>(1) as f64,
            wal_syncs: row.get::<_, i64>(2) as f64,
            wal_bytes: row.get(3),
            wal_sync_ms: row.get(4),
            rows_written: row.get::<_, i64>(5) as f64,
        }
    }

    async fn count(&self, sql: &str, arg: &str) -> i64 {
        let row = self.client.query_one(sql, &[&arg]).await.expect(sql);
        row.get(0)
    }
}

/// Counters of the database's work (see [`Database::activity`]).
#[derive(Debug, Clone, Copy)]
pub struct Activity {
    /// Transactions committed, each statement outside a transaction block
    /// counting as one.
    pub commits: f64,
    pub wal_records: f64,
    /// WAL flushes to the disk (`fdatasync`).
    pub wal_syncs: f64,
    pub wal_bytes: f64,
    /// Milliseconds spent in those flushes.
    pub wal_sync_ms: f64,
    /// Rows inserted, updated or deleted.
    pub rows_written: f64,
}

impl Activity {
    /// What happened from `earlier` to this, per `per` units of work.
    pub fn per(&self, earlier: &Activity, per: f64) -> Activity {
        let per = per.max(1.0);
        Activity {
            commits: (self.commits - earlier.commits) / per,
            wal_records: (self.wal_records - earlier.wal_records) / per,
            wal_syncs: (self.wal_syncs - earlier.wal_syncs) / per,
            wal_bytes: (self.wal_bytes - earlier.wal_bytes) / per,
            wal_sync_ms: (self.wal_sync_ms - earlier.wal_sync_ms) / per,
            rows_written: (self.rows_written - earlier.rows_written) / per,
        }
    }
}

/// Turns on what the test harness turns off for speed, and waits until
/// the server runs with it: every commit then waits for its WAL to be on
/// the disk. What was written before is synced by a checkpoint.
async fn make_durable(server: &PostgresServer, url: &str) {
    for name in DURABLE {
        server
            .psql(url, &format!("ALTER SYSTEM SET {name} = on"))
            .await;
    }
    // For the mean time of a WAL flush (pg_stat_wal.wal_sync_time).
    server
        .psql(url, "ALTER SYSTEM SET track_wal_io_timing = on")
        .await;
    server.psql(url, "SELECT pg_reload_conf()").await;
    let query = DURABLE
        .map(|n| format!("current_setting('{n}')"))
        .join(" || ',' || ");
    let wanted = DURABLE.map(|_| "on").join(",");
    let end = Instant::now() + Duration::from_secs(30);
    while server.psql(url, &format!("SELECT {query}")).await != wanted {
        assert!(Instant::now() < end, "PostgreSQL did not take fsync = on");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.psql(url, "CHECKPOINT").await;
}

/// CPU fields of one process's `/proc/PID/stat`, in seconds.
struct Stat {
    ppid: u32,
    user: f64,
    system: f64,
    children_user: f64,
    children_system: f64,
}

/// Every process's parent and CPU times.
fn processes() -> Vec<(u32, Stat)> {
    let ticks = crate::cpu_time::clock_ticks();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let after = stat.rsplit_once(')')?.1;
            let f: Vec<f64> = after
                .split_whitespace()
                .map(|v| v.parse().unwrap_or(0.0))
                .collect();
            let stat = Stat {
                ppid: *f.get(1)? as u32,
                user: f.get(11)? / ticks,
                system: f.get(12)? / ticks,
                children_user: f.get(13)? / ticks,
                children_system: f.get(14)? / ticks,
            };
            Some((pid, stat))
        })
        .collect()
}

/// One gateway node.
pub struct Node {
    pub id: String,
    pub gateway: Gateway,
}

/// The gateway nodes of the cluster; a killed node's place is empty.
pub struct Nodes {
    pub nodes: Vec<Option<Node>>,
}

impl Nodes {
    /// Makes the cluster's keys with `lemonade keygen` and starts `count`
    /// nodes (`node-1` …) on `db_url` with the default cluster timings;
    /// returns once each holds its lease (`/readyz`).
    pub async fn start(count: usize, db_url: &str, dir: &Path, ca: &Path) -> Nodes {
        let keys = dir.join("keys");
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_lemonade"))
            .arg("keygen")
            .arg(&keys)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("run lemonade keygen");
        assert!(status.success(), "lemonade keygen failed");
        let shared = dir.join("shared");
        std::fs::create_dir_all(&shared).unwrap();
        let mut nodes = Vec::new();
        for i in 1..=count {
            let id = format!("node-{i}");
            let data = private_dir(&dir.join(&id));
            for key in ["master.key", "vapid.pk8"] {
                std::fs::copy(keys.join(key), data.join(key)).expect("copy a key");
            }
            let env = [
                ("LEMONADE_STORE_BACKEND", "postgres".to_string()),
                ("LEMONADE_STORE_POSTGRES_URL", db_url.to_string()),
                ("LEMONADE_STORE_SHARED_DIR", shared.display().to_string()),
                ("LEMONADE_CLUSTER_NODE_ID", id.clone()),
            ];
            let gateway = Gateway::start_with(&data, ca, &env, "/readyz").await;
            nodes.push(Some(Node { id, gateway }));
        }
        Nodes { nodes }
    }

    pub fn live(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().flatten()
    }

    /// Every live node's API, to spread requests over.
    pub fn apis(&self) -> Vec<Api> {
        self.live().map(|n| n.gateway.api()).collect()
    }

    /// Accounts watching on all live nodes together.
    pub async fn watching(&self) -> usize {
        let mut sum = 0;
        for node in self.live() {
            sum += node.gateway.watching().await;
        }
        sum
    }

    /// Waits until `n` accounts are watching in all; returns false if
    /// `limit` passed first.
    pub async fn wait_watching(&self, n: usize, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        while self.watching().await < n {
            if Instant::now() > end {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        true
    }

    pub async fn pushes_sent(&self) -> u64 {
        let mut sum = 0;
        for node in self.live() {
            sum += node.gateway.pushes_sent().await;
        }
        sum
    }

    /// The live nodes' latency histograms, added up.
    pub async fn latency_histogram(&self) -> Histogram {
        let mut sum = Histogram::default();
        for node in self.live() {
            sum = sum.plus(&node.gateway.latency_histogram().await);
        }
        sum
    }

    /// User and system CPU seconds of the live nodes together.
    pub fn cpu_times(&self) -> (f64, f64) {
        self.live()
            .map(|n| n.gateway.cpu_times())
            .fold((0.0, 0.0), |(u, s), (nu, ns)| (u + nu, s + ns))
    }

    /// `kill -9` of node `index`; returns its id.
    pub async fn kill(&mut self, index: usize) -> String {
        let node = self.nodes[index].take().expect("node running");
        node.gateway.kill().await;
        node.id
    }

    /// Stops the live nodes gracefully.
    pub async fn stop(self) {
        for node in self.nodes.into_iter().flatten() {
            node.gateway.stop().await;
        }
    }
}

/// Creates `path` as a directory only its owner may read (mode 0700).
fn private_dir(path: &Path) -> PathBuf {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .expect("node data dir");
    path.to_path_buf()
}
