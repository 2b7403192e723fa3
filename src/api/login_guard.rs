//! Refused registration logins, counted twice: per IMAP login (host, port
//! and username) and per client (the address the request came from, an
//! IPv6 client by its /64). After `api.login_failures_allowed` refusals of
//! one login, or `api.client_failures_allowed` refusals for one client,
//! within `api.login_failure_window_secs`, registrations for that login, or
//! from that client, get 429 until the window ends, whatever password they
//! carry. The first stops guessing one mailbox's password; the second stops
//! one client from trying a common password against many mailboxes
//! (password spraying). A successful login clears its login's count, not
//! its client's: a sprayer's hit must not buy more guesses.
//!
//! In a cluster the counts are kept in the database (fixed windows), so
//! that N nodes do not allow N times the guesses; a database that cannot
//! be reached counts here meanwhile.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::client_ip::client_key;
use super::window_counts::WindowCounts;
use crate::store::PgStore;

/// Keys counted at most, per kind (about 100 bytes each); beyond it the
/// lowest counts make room (see [`WindowCounts`]).
const MOST_COUNTED: usize = 100_000;

#[derive(Debug)]
struct Counters {
    logins: WindowCounts,
    clients: WindowCounts,
}

pub struct LoginGuard {
    counters: Mutex<Counters>,
    per_login: u32,
    per_client: u32,
    window: Duration,
    /// In a cluster: the counts every node shares.
    shared: Option<Arc<PgStore>>,
}

impl LoginGuard {
    /// `per_login` and `per_client` refusals allowed within `window`.
    pub fn new(per_login: u32, per_client: u32, window: Duration) -> Self {
        Self::with_capacity(per_login, per_client, window, MOST_COUNTED)
    }

    /// As [`LoginGuard::new`], counting at most `capacity` logins and as
    /// many clients.
    pub fn with_capacity(
        per_login: u32,
        per_client: u32,
        window: Duration,
        capacity: usize,
    ) -> Self {
        LoginGuard {
            counters: Mutex::new(Counters {
                logins: WindowCounts::new(per_login, window, capacity),
                clients: WindowCounts::new(per_client, window, capacity),
            }),
            per_login,
            per_client,
            window,
            shared: None,
        }
    }

    /// This guard, counting in the cluster's database.
    pub fn shared(mut self, store: Arc<PgStore>) -> Self {
        self.shared = Some(store);
        self
    }

    fn shared_keys(client: IpAddr, host: &str, port: u16, username: &str) -> [String; 2] {
        [
            format!("login:{}", Self::login_key(host, port, username)),
            format!("client:{}", client_key(client)),
        ]
    }

    fn login_key(host: &str, port: u16, username: &str) -> String {
        format!("{}:{port}:{username}", host.to_ascii_lowercase())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Err(wait)` while this login may not be tried from this client: how
    /// long until it may.
    pub async fn check(
        &self,
        client: IpAddr,
        host: &str,
        port: u16,
        username: &str,
    ) -> Result<(), Duration> {
        if let Some(store) = &self.shared {
            let [login, client_key] = Self::shared_keys(client, host, port, username);
            let limits = [(login, self.per_login), (client_key, self.per_client)];
            match store.failure_wait(&limits, self.window).await {
                Ok(None) => {}
                Ok(Some(wait)) => return Err(wait),
                Err(e) => tracing::warn!(error = %e, "cannot read the shared login refusals"),
            }
        }
        let counters = self.lock();
        let now = Instant::now();
        let login = counters
            .logins
            .wait(&Self::login_key(host, port, username), now);
        let client = counters.clients.wait(&client_key(client), now);
        match login.max(client) {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    /// The server refused this login, tried from this client.
    pub async fn failed(&self, client: IpAddr, host: &str, port: u16, username: &str) {
        if let Some(store) = &self.shared {
            let keys = Self::shared_keys(client, host, port, username);
            match store.count_failure(&keys, self.window).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot count a login refusal in the database; counted here")
                }
            }
        }
        let now = Instant::now();
        let mut counters = self.lock();
        counters
            .logins
            .add(&Self::login_key(host, port, username), now);
        counters.clients.add(&client_key(client), now);
    }

    /// The server accepted this login.
    pub async fn succeeded(&self, host: &str, port: u16, username: &str) {
        if let Some(store) = &self.shared {
            let [login, _] = Self::shared_keys(IpAddr::from([0, 0, 0, 0]), host, port, username);
            if let Err(e) = store.clear_failures(&login).await {
                tracing::warn!(error = %e, "cannot clear the shared login refusals");
            }
        }
        self.lock()
            .logins
            .clear(&Self::login_key(host, port, username));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(900);
    const PHONE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 7));

    #[tokio::test(start_paused = true)]
    async fn a_login_refused_too_often_waits_for_its_window_to_end() {
        let guard = LoginGuard::new(3, 100, WINDOW);
        for _ in 0..3 {
            assert_eq!(
                guard.check(PHONE, "imap.example.org", 993, "alice").await,
                Ok(())
            );
            guard.failed(PHONE, "IMAP.example.org", 993, "alice").await;
        }
        assert_eq!(
            guard.check(PHONE, "imap.example.org", 993, "alice").await,
            Err(WINDOW)
        );
        // From anywhere: the login is what is being guessed.
        let elsewhere: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(
            guard
                .check(elsewhere, "imap.example.org", 993, "alice")
                .await,
            Err(WINDOW)
        );
        // Other logins, and the same user elsewhere, are not affected.
        assert_eq!(
            guard.check(PHONE, "imap.example.org", 993, "bob").await,
            Ok(())
        );
        assert_eq!(
            guard.check(PHONE, "imap.example.org", 143, "alice").await,
            Ok(())
        );

        tokio::time::advance(Duration::from_secs(600)).await;
        assert_eq!(
            guard.check(PHONE, "imap.example.org", 993, "alice").await,
            Err(Duration::from_secs(300))
        );
        tokio::time::advance(Duration::from_secs(300)).await;
        assert_eq!(
            guard.check(PHONE, "imap.example.org", 993, "alice").await,
            Ok(())
        );
        // A new window starts with the next refusal.
        guard.failed(PHONE, "imap.example.org", 993, "alice").await;
        assert_eq!(
            guard.check(PHONE, "imap.example.org", 993, "alice").await,
            Ok(())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_successful_login_clears_the_count_of_the_login_only() {
        let guard = LoginGuard::new(2, 3, WINDOW);
        guard.failed(PHONE, "imap.example.org", 993, "alice").await;
        guard.succeeded("imap.example.org", 993, "alice").await;
        guard.failed(PHONE, "imap.example.org", 993, "alice").await;
        assert_eq!(
            guard.check(PHONE, "imap.example.org", 993, "alice").await,
            Ok(())
        );
        // The client's two refusals still count: one more blocks it.
        guard.failed(PHONE, "imap.example.org", 993, "bob").await;
        assert_eq!(
            guard.check(PHONE, "imap.example.org", 993, "carol").await,
            Err(WINDOW)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_refused_too_often_waits_whatever_login_it_tries() {
        let guard = LoginGuard::new(5, 3, WINDOW);
        for user in ["alice", "bob", "carol"] {
            assert_eq!(
                guard.check(PHONE, "imap.example.org", 993, user).await,
                Ok(())
            );
            guard.failed(PHONE, "imap.example.org", 993, user).await;
        }
        assert_eq!(
            guard.check(PHONE, "other.example.net", 993, "dave").await,
            Err(WINDOW)
        );
        // Another client may still try those logins.
        let other: IpAddr = "198.51.100.8".parse().unwrap();
        assert_eq!(
            guard.check(other, "imap.example.org", 993, "alice").await,
            Ok(())
        );
        tokio::time::advance(WINDOW).await;
        assert_eq!(
            guard.check(PHONE, "other.example.net", 993, "dave").await,
            Ok(())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_ipv6_client_is_counted_by_its_64() {
        let guard = LoginGuard::new(5, 2, WINDOW);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let next_net: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        guard.failed(a, "imap.example.org", 993, "alice").await;
        guard.failed(b, "imap.example.org", 993, "bob").await;
        assert_eq!(
            guard.check(b, "imap.example.org", 993, "carol").await,
            Err(WINDOW)
        );
        assert_eq!(
            guard
                .check(next_net, "imap.example.org", 993, "carol")
                .await,
            Ok(())
        );
        // An IPv4 client seen through an IPv6 socket is the IPv4 address.
        let mapped: IpAddr = "::ffff:198.51.100.7".parse().unwrap();
        guard.failed(mapped, "imap.example.org", 993, "alice").await;
        guard.failed(PHONE, "imap.example.org", 993, "bob").await;
        assert_eq!(
            guard.check(PHONE, "imap.example.org", 993, "carol").await,
            Err(WINDOW)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_of_new_keys_does_not_switch_the_guard_off() {
        let guard = LoginGuard::with_capacity(3, 1000, WINDOW, 16);
        for _ in 0..3 {
            guard.failed(PHONE, "imap.example.org", 993, "alice").await;
        }
        // Refusals for many other logins, from many clients.
        for i in 0..5000u32 {
            let client = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            guard
                .failed(client, "imap.example.org", 993, &format!("user{i}"))
                .await;
        }
        assert!(guard
            .check(PHONE, "imap.example.org", 993, "alice")
            .await
            .is_err());
        // And new keys are still counted.
        for _ in 0..3 {
            guard
                .failed(PHONE, "imap.example.org", 993, "mallory")
                .await;
        }
        assert!(guard
            .check(PHONE, "imap.example.org", 993, "mallory")
            .await
            .is_err());
    }
}
