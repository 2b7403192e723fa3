//! Validation of the single-node sections: values that parse but make no
//! sense are refused at start with the key they belong to.

use super::{
    ApiConfig, ConfigError, PushConfig, ReadConfig, SendConfig, UpstreamConfig, WatchConfig,
};

type Checked = Result<(), ConfigError>;

fn invalid(key: &'static str, reason: &str) -> Checked {
    Err(ConfigError::Invalid {
        key,
        reason: reason.to_string(),
    })
}

impl PushConfig {
    pub(super) fn validate(&self) -> Checked {
        let subject = &self.vapid_subject;
        if !(subject.starts_with("mailto:") || subject.starts_with("https://")) {
            return invalid("push.vapid_subject", "must start with mailto: or https://");
        }
        if self.ttl_secs == 0 || self.ttl_secs > 28 * 24 * 3600 {
            return invalid("push.ttl_secs", "must be between 1 and 2419200 (28 days)");
        }
        for (key, value) in [
            ("push.concurrency", self.concurrency),
            ("push.concurrency_per_account", self.concurrency_per_account),
            ("push.concurrency_per_service", self.concurrency_per_service),
            ("push.concurrency_timed_out", self.concurrency_timed_out),
            ("push.max_devices_per_account", self.max_devices_per_account),
        ] {
            if value == 0 {
                return invalid(key, "must be at least 1");
            }
        }
        if self.extra_ca_file.as_ref().is_some_and(|p| !p.is_file()) {
            return invalid("push.extra_ca_file", "is not a readable file");
        }
        self.apns.validate()?;
        self.fcm.validate()
    }
}

impl ApiConfig {
    pub(super) fn validate(&self) -> Checked {
        if self.login_failures_allowed == 0
            || self.client_failures_allowed == 0
            || self.login_failure_window_secs == 0
        {
            return invalid(
                "api.login_failures_allowed",
                "login_failures_allowed, client_failures_allowed and login_failure_window_secs must be positive",
            );
        }
        if self.accounts_per_client == 0 || self.accounts_per_client_window_secs == 0 {
            return invalid(
                "api.accounts_per_client",
                "accounts_per_client and accounts_per_client_window_secs must be positive",
            );
        }
        if self.header_read_timeout_secs == 0 || self.idle_timeout_secs == 0 {
            return invalid(
                "api.header_read_timeout_secs",
                "header_read_timeout_secs and idle_timeout_secs must be positive",
            );
        }
        if let Some(bad) = self.cors_origins.iter().find(|o| !is_origin(o)) {
            return invalid(
                "api.cors_origins",
                &format!("{bad:?} is not an origin (scheme://host[:port], nothing after)"),
            );
        }
        Ok(())
    }
}

impl SendConfig {
    pub(super) fn validate(&self) -> Checked {
        if self.max_upload_bytes == 0 || self.upload_quota_bytes < self.max_upload_bytes {
            return invalid(
                "send.upload_quota_bytes",
                "must be at least send.max_upload_bytes, which must be above 0",
            );
        }
        if self.max_attempts == 0 {
            return invalid("send.max_attempts", "must be at least 1");
        }
        Ok(())
    }
}

impl WatchConfig {
    pub(super) fn validate(&self) -> Checked {
        let refresh_ok = |secs: u64| (10..=29 * 60).contains(&secs);
        if !refresh_ok(self.idle_refresh_secs)
            || !self.idle_refresh_by_host.values().all(|s| refresh_ok(*s))
        {
            return invalid(
                "watch.idle_refresh_secs",
                "must be between 10 and 1740 seconds (RFC 2177)",
            );
        }
        if self.backoff_min_ms == 0 || self.backoff_min_ms > self.backoff_max_secs * 1000 {
            return invalid(
                "watch.backoff_min_ms",
                "must be positive and at most backoff_max_secs",
            );
        }
        if self.connections_per_account == 0 {
            return invalid("watch.connections_per_account", "must be at least 1");
        }
        if self.fetch_limit == 0 || self.poll_secs == 0 {
            return invalid(
                "watch.fetch_limit",
                "fetch_limit and poll_secs must be positive",
            );
        }
        if self.pipelining_retry_secs == 0 {
            return invalid("watch.pipelining_retry_secs", "must be at least 1");
        }
        Ok(())
    }
}

impl ReadConfig {
    pub(super) fn validate(&self) -> Checked {
        if self.sessions_per_account == 0 || self.idle_secs == 0 || self.max_list == 0 {
            return invalid(
                "read.sessions_per_account",
                "sessions_per_account, idle_secs and max_list must be positive",
            );
        }
        Ok(())
    }
}

impl UpstreamConfig {
    /// `request_timeout_secs` is the API's, checked here with the other timeout.
    pub(super) fn validate(&self, request_timeout_secs: u64) -> Checked {
        if self.max_connects_per_host == 0 {
            return invalid("upstream.max_connects_per_host", "must be at least 1");
        }
        if self.max_inflight_bytes < crate::imap::budget::MAX_RESPONSE {
            return invalid(
                "upstream.max_inflight_bytes",
                "must hold at least one largest response (33554432 bytes)",
            );
        }
        if self.connect_timeout_secs == 0 || request_timeout_secs == 0 {
            return invalid("upstream.connect_timeout_secs", "timeouts must be positive");
        }
        if self.extra_ca_file.as_ref().is_some_and(|p| !p.is_file()) {
            return invalid("upstream.extra_ca_file", "is not a readable file");
        }
        Ok(())
    }
}

/// Whether `text` is a web origin as a browser sends it: `http(s)://host[:port]`.
fn is_origin(text: &str) -> bool {
    match url::Url::parse(text) {
        Ok(url) => {
            matches!(url.scheme(), "http" | "https")
                && url.host_str().is_some()
                && url.path() == "/"
                && url.query().is_none()
                && url.fragment().is_none()
                && url.username().is_empty()
                && !text.ends_with('/')
        }
        Err(_) => false,
    }
}
