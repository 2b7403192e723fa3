//! `web.*`: the mail web app the gateway serves at `/` (its files are
//! embedded in the binary; `web.dir` serves them from a folder instead, for
//! working on the app without rebuilding).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// The web app.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Serve the web app at `/`.
    pub enabled: bool,
    /// Serve the app's files from this folder instead of those built in.
    pub dir: Option<PathBuf>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            enabled: true,
            dir: None,
        }
    }
}

impl WebConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        match &self.dir {
            Some(dir) if self.enabled && !dir.join("index.html").is_file() => {
                Err(ConfigError::Invalid {
                    key: "web.dir",
                    reason: format!("{} has no index.html", dir.display()),
                })
            }
            _ => Ok(()),
        }
    }
}
