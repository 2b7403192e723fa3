//! The gateway's configuration: one typed struct, its defaults, overrides from
//! a TOML file and from `LEMONADE_*` environment variables, and validation.
//!
//! Every key has exactly one default, written in the `Default` impls (the
//! sections' in `sections` and `cluster`). The environment variable for a key is `LEMONADE_` followed by its path in
//! upper case with `.` replaced by `_`: `push.allow_private_endpoints` is
//! `LEMONADE_PUSH_ALLOW_PRIVATE_ENDPOINTS`. The environment is passed in as a
//! list of pairs, so tests never touch the process environment.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod cluster;
mod native;
mod oauth;
mod sections;
mod validate;
mod web;

pub use cluster::{is_valid_node_id, ClusterConfig, StoreBackend, StoreConfig, MAX_NODE_ID_LEN};
pub use native::{ApnsConfig, FcmConfig};
pub use oauth::{OAuthConfig, Provider, ProviderConfig, ServerConfig};
pub use sections::{ApiConfig, PushConfig, ReadConfig, SendConfig, UpstreamConfig, WatchConfig};
pub use web::WebConfig;

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("invalid configuration: {0}")]
    Parse(String),
    #[error("unknown environment variable {0}: no such configuration key")]
    UnknownEnv(String),
    #[error("invalid value for {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP API listens on.
    pub listen: SocketAddr,
    /// Directory of the embedded store, the master key and the VAPID key.
    pub data_dir: PathBuf,
    /// Log filter (tracing `EnvFilter` syntax), e.g. `info` or `lemonade=debug`.
    pub log: String,
    /// Log lines as text, or one JSON object per line for log shippers.
    pub log_format: LogFormat,
    pub api: ApiConfig,
    pub store: StoreConfig,
    pub push: PushConfig,
    pub upstream: UpstreamConfig,
    pub watch: WatchConfig,
    pub read: ReadConfig,
    pub send: SendConfig,
    pub cluster: ClusterConfig,
    pub oauth: OAuthConfig,
    pub web: WebConfig,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event (colours only on a terminal).
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            log: "info".into(),
            log_format: LogFormat::Text,
            api: ApiConfig::default(),
            store: StoreConfig::default(),
            push: PushConfig::default(),
            upstream: UpstreamConfig::default(),
            watch: WatchConfig::default(),
            read: ReadConfig::default(),
            send: SendConfig::default(),
            cluster: ClusterConfig::default(),
            oauth: OAuthConfig::default(),
            web: WebConfig::default(),
        }
    }
}

/// Keys that have no value by default, so do not appear in the serialized defaults.
const OPTIONAL_KEYS: &[&str] = &[
    "upstream.extra_ca_file",
    "push.extra_ca_file",
    "store.postgres_ca_file",
    "store.shared_dir",
    "oauth.public_url",
    "push.apns.key_file",
    "push.fcm.service_account_file",
    "web.dir",
];

/// Environment variables that are not configuration keys but are ours.
const OTHER_ENV: &[&str] = &["LEMONADE_CONFIG"];

impl Config {
    /// Builds the configuration: defaults, then the file (if any), then the
    /// `LEMONADE_*` variables among `env`; then validates it.
    pub fn load<I>(file: Option<&Path>, env: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let mut value = toml::Value::try_from(Config::default())
            .map_err(|e| ConfigError::Parse(e.to_string()))?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            let from_file: toml::Value =
                toml::from_str(&text).map_err(|e| ConfigError::Parse(e.to_string()))?;
            merge(&mut value, from_file);
        }
        let mut keys = Vec::new();
        leaf_keys(&value, "", &mut keys);
        keys.extend(OPTIONAL_KEYS.iter().map(|k| k.to_string()));
        for (name, raw) in env {
            let Some(rest) = name.strip_prefix("LEMONADE_") else {
                continue;
            };
            if OTHER_ENV.contains(&name.as_str()) {
                continue;
            }
            let Some(key) = keys
                .iter()
                .find(|k| k.replace('.', "_").eq_ignore_ascii_case(rest))
            else {
                return Err(ConfigError::UnknownEnv(name));
            };
            let parsed = env_value(lookup(&value, key), &raw)
                .map_err(|reason| ConfigError::Parse(format!("{name}: {reason}")))?;
            set(&mut value, key, parsed);
        }
        let config: Config = value
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values that parse but make no sense; the first bad key is named.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.push.validate()?;
        self.store.validate()?;
        self.api.validate()?;
        self.send.validate()?;
        self.watch.validate()?;
        self.read.validate()?;
        self.upstream.validate(self.api.request_timeout_secs)?;
        self.oauth.validate()?;
        self.web.validate()?;
        self.cluster.validate(self.cluster_mode())
    }

    /// Whether this node is one of a cluster: the store is PostgreSQL.
    pub fn cluster_mode(&self) -> bool {
        self.store.backend == StoreBackend::Postgres
    }

    /// Where uploads and the outbox spool live: `store.shared_dir`, else
    /// `data_dir`.
    pub fn shared_dir(&self) -> &Path {
        self.store.shared_dir.as_deref().unwrap_or(&self.data_dir)
    }

    /// The IDLE refresh interval for an upstream host.
    pub fn idle_refresh_for(&self, host: &str) -> Duration {
        let secs = self
            .watch
            .idle_refresh_by_host
            .iter()
            .find(|(h, _)| h.eq_ignore_ascii_case(host))
            .map(|(_, s)| *s)
            .unwrap_or(self.watch.idle_refresh_secs);
        Duration::from_secs(secs)
    }
}

fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(base), toml::Value::Table(over)) => {
            for (k, v) in over {
                match base.get_mut(&k) {
                    Some(existing) if existing.is_table() && v.is_table() => merge(existing, v),
                    _ => {
                        base.insert(k, v);
                    }
                }
            }
        }
        (base, over) => *base = over,
    }
}

fn leaf_keys(value: &toml::Value, path: &str, out: &mut Vec<String>) {
    if let toml::Value::Table(table) = value {
        // Tables whose entries are data (host → seconds) are one key as a whole.
        if !path.is_empty() && (path.ends_with("_by_host") || path == "oauth.providers") {
            out.push(path.to_string());
            return;
        }
        for (k, v) in table {
            let child = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            leaf_keys(v, &child, out);
        }
    } else {
        out.push(path.to_string());
    }
}

fn lookup<'a>(value: &'a toml::Value, key: &str) -> Option<&'a toml::Value> {
    key.split('.').try_fold(value, |v, part| v.get(part))
}

fn set(value: &mut toml::Value, key: &str, new: toml::Value) {
    let mut parts: Vec<&str> = key.split('.').collect();
    let Some(last) = parts.pop() else { return };
    let mut cursor = value;
    for part in parts {
        let Some(table) = cursor.as_table_mut() else {
            return;
        };
        cursor = table
            .entry(part)
            .or_insert_with(|| toml::Value::Table(Default::default()));
    }
    if let Some(table) = cursor.as_table_mut() {
        table.insert(last.to_string(), new);
    }
}

/// Parses an environment value as the type the key already has: strings are
/// taken verbatim, everything else as a TOML value (`true`, `5`, `{a = 1}`).
fn env_value(current: Option<&toml::Value>, raw: &str) -> Result<toml::Value, String> {
    match current {
        None | Some(toml::Value::String(_)) => Ok(toml::Value::String(raw.to_string())),
        Some(_) => {
            let table: toml::Table =
                toml::from_str(&format!("v = {raw}")).map_err(|e| e.message().to_string())?;
            table
                .get("v")
                .cloned()
                .ok_or_else(|| "empty value".to_string())
        }
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
