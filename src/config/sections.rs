//! The configuration sections of the gateway's single-node concerns: the
//! API, Web Push, upstream servers, watching, the mail API's sessions and
//! sending; each with its one default.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::notify::Urgency;

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
    /// Origins of web apps allowed to call the API from a browser (CORS),
    /// e.g. `https://mail.example.org`; none by default.
    pub cors_origins: Vec<String>,
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
    /// Apple Push Notification service, for native iOS apps.
    pub apns: super::ApnsConfig,
    /// Firebase Cloud Messaging, for native Android apps.
    pub fcm: super::FcmConfig,
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

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            max_body_bytes: 64 * 1024,
            request_timeout_secs: 60,
            login_failures_allowed: 5,
            client_failures_allowed: 20,
            login_failure_window_secs: 900,
            trusted_proxies: Vec::new(),
            cors_origins: Vec::new(),
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
            apns: super::ApnsConfig::default(),
            fcm: super::FcmConfig::default(),
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
