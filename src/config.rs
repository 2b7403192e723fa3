//! The gateway's configuration: one typed struct, its defaults, overrides from
//! a TOML file and from `LEMONADE_*` environment variables, and validation.
//!
//! Every key has exactly one default, written in the `Default` impls below.
//! The environment variable for a key is `LEMONADE_` followed by its path in
//! upper case with `.` replaced by `_`: `push.allow_private_endpoints` is
//! `LEMONADE_PUSH_ALLOW_PRIVATE_ENDPOINTS`. The environment is passed in as a
//! list of pairs, so tests never touch the process environment.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::notify::Urgency;

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
    pub api: ApiConfig,
    pub store: StoreConfig,
    pub push: PushConfig,
    pub upstream: UpstreamConfig,
    pub watch: WatchConfig,
    pub read: ReadConfig,
    pub send: SendConfig,
}

/// The embedded store.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Under load (the last flush served several writers), how long the
    /// next flush waits for more writes to join it (group commit). Longer:
    /// fewer flushes and less CPU; watchers wait longer before their next
    /// check (pushes do not wait for flushes). A lone writer never waits.
    pub commit_window_ms: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            commit_window_ms: 10,
        }
    }
}

/// The mail API's IMAP sessions (separate from the watchers').
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ReadConfig {
    /// IMAP sessions one account may have open for API requests at once.
    pub sessions_per_account: usize,
    /// An unused API session is logged out after this many seconds.
    pub idle_secs: u64,
    /// Largest `limit` of a message listing.
    pub max_list: u32,
    /// Body text returned by GET /v1/messages/… when `max_bytes` is not given.
    pub default_text_bytes: u32,
}

impl Default for ReadConfig {
    fn default() -> Self {
        ReadConfig {
            sessions_per_account: 2,
            idle_secs: 120,
            max_list: 500,
            default_text_bytes: 32 * 1024,
        }
    }
}

/// The HTTP API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Largest accepted JSON request body, in bytes.
    pub max_body_bytes: usize,
    /// Upper bound on handling one request (account registration logs in
    /// upstream). Uploads have none as a whole; each wait for more of their
    /// body has this one.
    pub request_timeout_secs: u64,
    /// Refused IMAP logins allowed per login (host, port, username) within
    /// `login_failure_window_secs` before registrations for it get 429.
    pub login_failures_allowed: u32,
    /// Refused IMAP logins allowed per client (its address, an IPv6 one by
    /// its /64) within `login_failure_window_secs`, whatever logins they
    /// were for, before its registrations get 429: against one client
    /// trying a common password on many mailboxes.
    pub client_failures_allowed: u32,
    /// The window of `login_failures_allowed` and `client_failures_allowed`,
    /// in seconds.
    pub login_failure_window_secs: u64,
    /// Addresses of proxies in front of the API whose `X-Forwarded-For` is
    /// believed; for any other peer the peer is the client.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// New accounts one client (its address, an IPv6 one by its /64) may
    /// register within `accounts_per_client_window_secs` before its
    /// registrations get 429; registering a login again is not counted.
    pub accounts_per_client: u32,
    /// The window of `accounts_per_client`, in seconds.
    pub accounts_per_client_window_secs: u64,
    /// A connection that has not sent a request's whole header this many
    /// seconds after its first byte is closed.
    pub header_read_timeout_secs: u64,
    /// A connection with no request under way is closed after this many
    /// seconds; so is one whose response has not moved for as long.
    pub idle_timeout_secs: u64,
}

/// Web Push delivery.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PushConfig {
    /// Allow push endpoints over http or on loopback/private addresses (tests, private push servers).
    pub allow_private_endpoints: bool,
    /// The VAPID `sub` claim: a `mailto:` or `https:` contact for push services.
    pub vapid_subject: String,
    /// How long a push service keeps an undelivered message, and how long we retry.
    pub ttl_secs: u32,
    /// The Urgency header of new-mail pushes: very-low, low, normal or high.
    pub urgency: Urgency,
    /// Timeout of one POST to a push service.
    pub request_timeout_secs: u64,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// Deliveries of one account in flight at once: an account whose
    /// endpoints never answer holds no more slots than this.
    pub concurrency_per_account: usize,
    /// Deliveries to one push service (endpoint origin) in flight at once.
    pub concurrency_per_service: usize,
    /// Deliveries in flight at once to all push services whose last
    /// request timed out (until they answer again).
    pub concurrency_timed_out: usize,
    /// Devices one account may register: each gets every push, so this
    /// bounds what one account's mail makes the gateway send.
    pub max_devices_per_account: usize,
    /// A PEM file of extra CA certificates to trust for push services
    /// (a self-hosted push server with a private CA).
    pub extra_ca_file: Option<PathBuf>,
}

/// Connections to upstream IMAP and SMTP servers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Allow accounts whose servers use neither TLS nor STARTTLS.
    pub allow_plaintext: bool,
    /// Allow IMAP/SMTP servers on loopback or private addresses (one
    /// organisation's own servers, tests); otherwise only public ones.
    pub allow_private_hosts: bool,
    /// A PEM file of extra CA certificates to trust (private servers).
    pub extra_ca_file: Option<PathBuf>,
    /// Timeout for connecting, TLS, greeting and login, and for each command.
    pub connect_timeout_secs: u64,
    /// Connection attempts in progress at once towards one upstream host.
    pub max_connects_per_host: usize,
    /// Bytes of large IMAP responses all connections together may hold at
    /// once; the connection that would exceed it fails (its account backs off).
    pub max_inflight_bytes: usize,
}

/// Watching mailboxes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WatchConfig {
    /// Re-issue IDLE after this many seconds (RFC 2177: before 29 minutes).
    pub idle_refresh_secs: u64,
    /// Shorter IDLE refresh for hosts known to drop idle connections sooner (host → seconds).
    pub idle_refresh_by_host: BTreeMap<String, u64>,
    /// First reconnect delay, in milliseconds; doubles up to `backoff_max_secs`, with jitter.
    pub backoff_min_ms: u64,
    /// Longest reconnect delay, in seconds.
    pub backoff_max_secs: u64,
    /// IMAP connections one account may hold when the server lacks NOTIFY.
    pub connections_per_account: usize,
    /// How often mailboxes beyond the connection budget are polled with STATUS.
    pub poll_secs: u64,
    /// Most message summaries fetched for one push; older new mail is only
    /// counted. Up to this many new messages are fetched in one command
    /// after an IDLE wake-up; more are searched first.
    pub fetch_limit: usize,
    /// A host where a pipelined exchange failed gets one command at a time;
    /// after this many seconds one connection tries pipelining again (the
    /// wait doubles after each failed try, up to a day).
    pub pipelining_retry_secs: u64,
}

/// Sending mail and uploads.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SendConfig {
    /// Largest single upload, in bytes.
    pub max_upload_bytes: u64,
    /// Bytes of unexpired uploads one account may hold.
    pub upload_quota_bytes: u64,
    /// Uploads (complete or not) are deleted this long after they were created.
    pub upload_ttl_secs: u64,
    /// How long `POST /v1/send` waits for the final status before answering 202.
    pub wait_secs: u64,
    /// Attempts of a send step that fails transiently before the send fails.
    pub max_attempts: u32,
    /// Hosts whose providers file a Sent copy themselves (no APPEND by default).
    pub provider_files_sent_hosts: Vec<String>,
}

impl Default for SendConfig {
    fn default() -> Self {
        SendConfig {
            max_upload_bytes: 25 * 1024 * 1024,
            upload_quota_bytes: 100 * 1024 * 1024,
            upload_ttl_secs: 24 * 3600,
            wait_secs: 10,
            max_attempts: 8,
            provider_files_sent_hosts: vec![
                "imap.gmail.com".into(),
                "imap.googlemail.com".into(),
                "outlook.office365.com".into(),
            ],
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            log: "info".into(),
            api: ApiConfig::default(),
            store: StoreConfig::default(),
            push: PushConfig::default(),
            upstream: UpstreamConfig::default(),
            watch: WatchConfig::default(),
            read: ReadConfig::default(),
            send: SendConfig::default(),
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            max_body_bytes: 64 * 1024,
            request_timeout_secs: 60,
            login_failures_allowed: 5,
            client_failures_allowed: 20,
            login_failure_window_secs: 900,
            trusted_proxies: Vec::new(),
            accounts_per_client: 10,
            accounts_per_client_window_secs: 3600,
            header_read_timeout_secs: 30,
            idle_timeout_secs: 90,
        }
    }
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            allow_private_endpoints: false,
            vapid_subject: "mailto:postmaster@localhost".into(),
            ttl_secs: 24 * 3600,
            urgency: Urgency::Normal,
            request_timeout_secs: 15,
            concurrency: 64,
            // An eighth of the slots: eight accounts with hanging endpoints
            // to fill them; a healthy push takes well under a second, so a
            // burst of one account's devices barely waits.
            concurrency_per_account: 8,
            // Half: the big push services (FCM, Mozilla, Apple) answer fast
            // and carry most devices, but one that hangs leaves half free.
            concurrency_per_service: 32,
            // A quarter: however many accounts and origins endpoints that
            // never answer are spread over, three quarters stay free once
            // they have timed out once.
            concurrency_timed_out: 16,
            max_devices_per_account: 20,
            extra_ca_file: None,
        }
    }
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            allow_plaintext: false,
            allow_private_hosts: false,
            extra_ca_file: None,
            connect_timeout_secs: 30,
            max_connects_per_host: 16,
            max_inflight_bytes: crate::imap::budget::DEFAULT_MAX_INFLIGHT,
        }
    }
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            idle_refresh_secs: 29 * 60 - 60,
            // Both drop IDLE sessions well before RFC 2177's 30 minutes.
            idle_refresh_by_host: BTreeMap::from([
                ("imap.gmail.com".to_string(), 9 * 60),
                ("outlook.office365.com".to_string(), 9 * 60),
            ]),
            backoff_min_ms: 1000,
            backoff_max_secs: 300,
            connections_per_account: 3,
            poll_secs: 120,
            fetch_limit: 20,
            pipelining_retry_secs: 3600,
        }
    }
}

/// Keys that have no value by default, so do not appear in the serialized defaults.
const OPTIONAL_KEYS: &[&str] = &["upstream.extra_ca_file", "push.extra_ca_file"];

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

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.to_string(),
            })
        };
        let subject = &self.push.vapid_subject;
        if !(subject.starts_with("mailto:") || subject.starts_with("https://")) {
            return invalid("push.vapid_subject", "must start with mailto: or https://");
        }
        if self.push.ttl_secs == 0 || self.push.ttl_secs > 28 * 24 * 3600 {
            return invalid("push.ttl_secs", "must be between 1 and 2419200 (28 days)");
        }
        if self.store.commit_window_ms > 1000 {
            return invalid("store.commit_window_ms", "must be at most 1000");
        }
        if self.push.concurrency == 0 {
            return invalid("push.concurrency", "must be at least 1");
        }
        if self.push.concurrency_per_account == 0 {
            return invalid("push.concurrency_per_account", "must be at least 1");
        }
        if self.push.concurrency_per_service == 0 {
            return invalid("push.concurrency_per_service", "must be at least 1");
        }
        if self.push.concurrency_timed_out == 0 {
            return invalid("push.concurrency_timed_out", "must be at least 1");
        }
        if self.api.login_failures_allowed == 0
            || self.api.client_failures_allowed == 0
            || self.api.login_failure_window_secs == 0
        {
            return invalid(
                "api.login_failures_allowed",
                "login_failures_allowed, client_failures_allowed and login_failure_window_secs must be positive",
            );
        }
        if self.api.accounts_per_client == 0 || self.api.accounts_per_client_window_secs == 0 {
            return invalid(
                "api.accounts_per_client",
                "accounts_per_client and accounts_per_client_window_secs must be positive",
            );
        }
        if self.api.header_read_timeout_secs == 0 || self.api.idle_timeout_secs == 0 {
            return invalid(
                "api.header_read_timeout_secs",
                "header_read_timeout_secs and idle_timeout_secs must be positive",
            );
        }
        if self.push.max_devices_per_account == 0 {
            return invalid("push.max_devices_per_account", "must be at least 1");
        }
        if self.send.max_upload_bytes == 0
            || self.send.upload_quota_bytes < self.send.max_upload_bytes
        {
            return invalid(
                "send.upload_quota_bytes",
                "must be at least send.max_upload_bytes, which must be above 0",
            );
        }
        if self.send.max_attempts == 0 {
            return invalid("send.max_attempts", "must be at least 1");
        }
        let refresh_ok = |secs: u64| (10..=29 * 60).contains(&secs);
        if !refresh_ok(self.watch.idle_refresh_secs)
            || !self
                .watch
                .idle_refresh_by_host
                .values()
                .all(|s| refresh_ok(*s))
        {
            return invalid(
                "watch.idle_refresh_secs",
                "must be between 10 and 1740 seconds (RFC 2177)",
            );
        }
        if self.watch.backoff_min_ms == 0
            || self.watch.backoff_min_ms > self.watch.backoff_max_secs * 1000
        {
            return invalid(
                "watch.backoff_min_ms",
                "must be positive and at most backoff_max_secs",
            );
        }
        if self.watch.connections_per_account == 0 {
            return invalid("watch.connections_per_account", "must be at least 1");
        }
        if self.watch.fetch_limit == 0 || self.watch.poll_secs == 0 {
            return invalid(
                "watch.fetch_limit",
                "fetch_limit and poll_secs must be positive",
            );
        }
        if self.watch.pipelining_retry_secs == 0 {
            return invalid("watch.pipelining_retry_secs", "must be at least 1");
        }
        if self.read.sessions_per_account == 0
            || self.read.idle_secs == 0
            || self.read.max_list == 0
        {
            return invalid(
                "read.sessions_per_account",
                "sessions_per_account, idle_secs and max_list must be positive",
            );
        }
        if self.upstream.max_connects_per_host == 0 {
            return invalid("upstream.max_connects_per_host", "must be at least 1");
        }
        if self.upstream.max_inflight_bytes < crate::imap::budget::MAX_RESPONSE {
            return invalid(
                "upstream.max_inflight_bytes",
                "must hold at least one largest response (33554432 bytes)",
            );
        }
        if self.upstream.connect_timeout_secs == 0 || self.api.request_timeout_secs == 0 {
            return invalid("upstream.connect_timeout_secs", "timeouts must be positive");
        }
        for (key, file) in [
            ("upstream.extra_ca_file", &self.upstream.extra_ca_file),
            ("push.extra_ca_file", &self.push.extra_ca_file),
        ] {
            if file.as_ref().is_some_and(|path| !path.is_file()) {
                return invalid(key, "is not a readable file");
            }
        }
        Ok(())
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
        if !path.is_empty() && path.ends_with("_by_host") {
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
