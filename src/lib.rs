//! Lemonade: a push mail gateway for phones.
#![forbid(unsafe_code)]

pub mod backoff;
pub mod config;
pub mod error;
pub mod imap;
pub mod mail;
pub mod metrics;
pub mod net;
pub mod notify;
pub mod store;

/// Milliseconds since the Unix epoch, for records that outlive the process.
pub fn unix_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
