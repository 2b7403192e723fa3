//! Refused registration logins, counted per IMAP login (host, port and
//! username): after `api.login_failures_allowed` refusals within
//! `api.login_failure_window_secs`, registrations for that login get 429
//! until the window ends, whatever password they carry, so the gateway
//! cannot be used to guess a mailbox's password. A successful login clears
//! the count.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Above this many logins counted, windows that ended are pruned.
const PRUNE_ABOVE: usize = 10_000;
/// Never more logins counted than this (about 100 bytes each); beyond it
/// new logins are not counted until old windows end.
const MOST_COUNTED: usize = 100_000;

#[derive(Debug)]
struct Failures {
    count: u32,
    since: Instant,
}

#[derive(Debug)]
pub struct LoginGuard {
    allowed: u32,
    window: Duration,
    failures: Mutex<HashMap<String, Failures>>,
}

impl LoginGuard {
    pub fn new(allowed: u32, window: Duration) -> Self {
        LoginGuard {
            allowed,
            window,
            failures: Mutex::default(),
        }
    }

    fn key(host: &str, port: u16, username: &str) -> String {
        format!("{}:{port}:{username}", host.to_ascii_lowercase())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Failures>> {
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Err(wait)` while this login may not be tried: how long until it may.
    pub fn check(&self, host: &str, port: u16, username: &str) -> Result<(), Duration> {
        let failures = self.lock();
        match failures.get(&Self::key(host, port, username)) {
            Some(f) if f.count >= self.allowed => {
                let ends = f.since + self.window;
                let now = Instant::now();
                if now < ends {
                    Err(ends - now)
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// The server refused this login.
    pub fn failed(&self, host: &str, port: u16, username: &str) {
        let now = Instant::now();
        let mut failures = self.lock();
        if failures.len() > PRUNE_ABOVE {
            failures.retain(|_, f| now < f.since + self.window);
        }
        let key = Self::key(host, port, username);
        if failures.len() >= MOST_COUNTED && !failures.contains_key(&key) {
            return;
        }
        let entry = failures.entry(key).or_insert(Failures {
            count: 0,
            since: now,
        });
        if now >= entry.since + self.window {
            *entry = Failures {
                count: 0,
                since: now,
            };
        }
        entry.count += 1;
    }

    /// The server accepted this login.
    pub fn succeeded(&self, host: &str, port: u16, username: &str) {
        self.lock().remove(&Self::key(host, port, username));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(900);

    #[tokio::test(start_paused = true)]
    async fn a_login_refused_too_often_waits_for_its_window_to_end() {
        let guard = LoginGuard::new(3, WINDOW);
        for _ in 0..3 {
            assert_eq!(guard.check("imap.example.org", 993, "alice"), Ok(()));
            guard.failed("IMAP.example.org", 993, "alice");
        }
        assert_eq!(guard.check("imap.example.org", 993, "alice"), Err(WINDOW));
        // Other logins, and the same user elsewhere, are not affected.
        assert_eq!(guard.check("imap.example.org", 993, "bob"), Ok(()));
        assert_eq!(guard.check("imap.example.org", 143, "alice"), Ok(()));

        tokio::time::advance(Duration::from_secs(600)).await;
        assert_eq!(
            guard.check("imap.example.org", 993, "alice"),
            Err(Duration::from_secs(300))
        );
        tokio::time::advance(Duration::from_secs(300)).await;
        assert_eq!(guard.check("imap.example.org", 993, "alice"), Ok(()));
        // A new window starts with the next refusal.
        guard.failed("imap.example.org", 993, "alice");
        assert_eq!(guard.check("imap.example.org", 993, "alice"), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_successful_login_clears_the_count() {
        let guard = LoginGuard::new(2, WINDOW);
        guard.failed("imap.example.org", 993, "alice");
        guard.succeeded("imap.example.org", 993, "alice");
        guard.failed("imap.example.org", 993, "alice");
        assert_eq!(guard.check("imap.example.org", 993, "alice"), Ok(()));
    }
}
