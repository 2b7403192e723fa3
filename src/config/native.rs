//! `push.apns` and `push.fcm`: the native push services, beside Web Push.
//! Each is off until its key file is set; their base URLs default to
//! Apple's and Google's and are configurable (a local impersonation in the
//! tests, a proxy in front of them).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// Apple Push Notification service, with token-based authentication.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ApnsConfig {
    /// The `.p8` key from Apple's developer account; unset: APNs is off.
    pub key_file: Option<PathBuf>,
    /// The key's id (10 characters, shown beside the key).
    pub key_id: String,
    /// The developer team's id (10 characters).
    pub team_id: String,
    pub production_url: String,
    pub sandbox_url: String,
}

impl Default for ApnsConfig {
    fn default() -> Self {
        ApnsConfig {
            key_file: None,
            key_id: String::new(),
            team_id: String::new(),
            production_url: "https://api.push.apple.com".into(),
            sandbox_url: "https://api.sandbox.push.apple.com".into(),
        }
    }
}

/// Firebase Cloud Messaging, HTTP v1 API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FcmConfig {
    /// The Firebase project's service-account key (JSON); unset: FCM is
    /// off. Its `token_uri` is where access tokens come from.
    pub service_account_file: Option<PathBuf>,
    pub base_url: String,
}

impl Default for FcmConfig {
    fn default() -> Self {
        FcmConfig {
            service_account_file: None,
            base_url: "https://fcm.googleapis.com".into(),
        }
    }
}

fn invalid(key: &'static str, reason: impl Into<String>) -> Result<(), ConfigError> {
    Err(ConfigError::Invalid {
        key,
        reason: reason.into(),
    })
}

fn https_or_local(key: &'static str, url: &str) -> Result<(), ConfigError> {
    match url::Url::parse(url) {
        Ok(u) if u.scheme() == "https" && u.host().is_some() => Ok(()),
        _ => invalid(key, format!("`{url}` is not an https URL")),
    }
}

impl ApnsConfig {
    pub fn enabled(&self) -> bool {
        self.key_file.is_some()
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        https_or_local("push.apns.production_url", &self.production_url)?;
        https_or_local("push.apns.sandbox_url", &self.sandbox_url)?;
        let Some(file) = &self.key_file else {
            return Ok(());
        };
        if !file.is_file() {
            return invalid("push.apns.key_file", "is not a readable file");
        }
        for (key, value) in [
            ("push.apns.key_id", &self.key_id),
            ("push.apns.team_id", &self.team_id),
        ] {
            if value.len() != 10 || !value.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return invalid(key, "must be the 10 characters Apple shows");
            }
        }
        Ok(())
    }
}

impl FcmConfig {
    pub fn enabled(&self) -> bool {
        self.service_account_file.is_some()
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        https_or_local("push.fcm.base_url", &self.base_url)?;
        match &self.service_account_file {
            Some(file) if !file.is_file() => {
                invalid("push.fcm.service_account_file", "is not a readable file")
            }
            _ => Ok(()),
        }
    }
}
