//! The configuration of where state lives and how nodes share it: the
//! `[store]` section (the embedded sled store or PostgreSQL) and the
//! `[cluster]` section (node id, lease and rebalancing timings), with their
//! defaults and their validation.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// Longest node id: it fits a DNS label, so a host name usually qualifies.
pub const MAX_NODE_ID_LEN: usize = 63;

/// Which store holds accounts, devices and queued pushes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// The embedded store in `data_dir`: one gateway process.
    Sled,
    /// A PostgreSQL database shared by every node of a cluster.
    Postgres,
}

/// The store.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Under load (the last flush served several writers), how long the
    /// next flush waits for more writes to join it (group commit). Longer:
    /// fewer flushes and less CPU; watchers wait longer before their next
    /// check (pushes do not wait for flushes). A lone writer never waits.
    pub commit_window_ms: u64,
    /// The embedded store, or PostgreSQL (cluster mode).
    pub backend: StoreBackend,
    /// `postgres://user:password@host:port/db`; required with the postgres
    /// backend. `?sslmode=require` asks for TLS.
    pub postgres_url: String,
    /// Database connections one node holds at most.
    pub postgres_pool_size: usize,
    /// PEM roots to trust for TLS to the database (a private CA); without
    /// it, the web PKI roots.
    pub postgres_ca_file: Option<PathBuf>,
    /// Where uploads and the outbox spool live; every node of a cluster
    /// must see the same directory. Default: `data_dir`.
    pub shared_dir: Option<PathBuf>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            commit_window_ms: 10,
            backend: StoreBackend::Sled,
            postgres_url: String::new(),
            postgres_pool_size: 16,
            postgres_ca_file: None,
            shared_dir: None,
        }
    }
}

/// How nodes of a cluster share the accounts (used with the postgres backend).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node's name, unique in the cluster: letters, digits, `.`, `_`
    /// and `-`, at most 63 bytes. Default: the host name.
    pub node_id: String,
    /// How long a node's lease lasts without renewal (database clock).
    pub lease_ttl_secs: u64,
    /// How often a node renews its lease; at least twice per TTL, so one
    /// late renewal does not lose it.
    pub lease_renew_secs: u64,
    /// An expired node's accounts are claimed this long after its lease ran out.
    pub claim_grace_secs: u64,
    /// How often a node looks for accounts to claim or hand over.
    pub rebalance_secs: u64,
    /// How often the shared push queue is polled, in case a wake-up was missed.
    pub push_poll_secs: u64,
    /// A dead node's unfinished sends are taken over this long after its
    /// lease ran out: longer than any SMTP step, so that a node cut off
    /// from the database in the middle of a submission is not doubled.
    pub send_takeover_secs: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            node_id: host_name(),
            lease_ttl_secs: 15,
            lease_renew_secs: 5,
            claim_grace_secs: 5,
            rebalance_secs: 5,
            push_poll_secs: 2,
            send_takeover_secs: 60,
        }
    }
}

/// The host name: the kernel's, else `$HOSTNAME`, else `lemonade`.
fn host_name() -> String {
    let non_empty = |s: String| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .and_then(non_empty)
        .or_else(|| std::env::var("HOSTNAME").ok().and_then(non_empty))
        .unwrap_or_else(|| "lemonade".to_string())
}

/// Whether `id` may name a node: it appears in logs, the database and
/// metrics as is.
pub fn is_valid_node_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_NODE_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

fn invalid(key: &'static str, reason: &str) -> Result<(), ConfigError> {
    Err(ConfigError::Invalid {
        key,
        reason: reason.to_string(),
    })
}

impl StoreConfig {
    /// Checks the store settings; the database URL only with the postgres
    /// backend. Errors never quote the URL: it may hold a password.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.commit_window_ms > 1000 {
            return invalid("store.commit_window_ms", "must be at most 1000");
        }
        if self.postgres_pool_size == 0 {
            return invalid("store.postgres_pool_size", "must be at least 1");
        }
        if self.backend == StoreBackend::Postgres {
            let scheme_ok = url::Url::parse(&self.postgres_url)
                .is_ok_and(|url| matches!(url.scheme(), "postgres" | "postgresql"));
            if !scheme_ok {
                return invalid(
                    "store.postgres_url",
                    "backend = \"postgres\" needs a postgres:// or postgresql:// URL",
                );
            }
        }
        if let Some(path) = &self.postgres_ca_file {
            if !path.is_file() {
                return invalid("store.postgres_ca_file", "is not a readable file");
            }
        }
        if self
            .shared_dir
            .as_ref()
            .is_some_and(|d| d.as_os_str().is_empty())
        {
            return invalid(
                "store.shared_dir",
                "must not be empty; leave it out for data_dir",
            );
        }
        Ok(())
    }

    /// The database URL with its password (if any) replaced by `***`, for
    /// printing and logging.
    pub fn postgres_url_redacted(&self) -> String {
        match url::Url::parse(&self.postgres_url) {
            Ok(mut url) if url.password().is_some() => {
                let _ = url.set_password(Some("***"));
                url.to_string()
            }
            _ => self.postgres_url.clone(),
        }
    }
}

impl ClusterConfig {
    /// Checks the timings always, the node id only in cluster mode (a
    /// single node never shows it, so an odd host name does not stop it).
    pub(super) fn validate(&self, cluster_mode: bool) -> Result<(), ConfigError> {
        if cluster_mode && !is_valid_node_id(&self.node_id) {
            return invalid(
                "cluster.node_id",
                "must be 1 to 63 letters, digits, '.', '_' or '-' (set it, or LEMONADE_CLUSTER_NODE_ID, when the host name does not qualify)",
            );
        }
        for (key, secs) in [
            ("cluster.lease_ttl_secs", self.lease_ttl_secs),
            ("cluster.lease_renew_secs", self.lease_renew_secs),
            ("cluster.rebalance_secs", self.rebalance_secs),
            ("cluster.push_poll_secs", self.push_poll_secs),
        ] {
            if secs == 0 {
                return invalid(key, "must be at least 1");
            }
        }
        if self.lease_renew_secs.saturating_mul(2) >= self.lease_ttl_secs {
            return invalid(
                "cluster.lease_renew_secs",
                "must be less than half of cluster.lease_ttl_secs",
            );
        }
        Ok(())
    }
}
