//! New accounts per client: at most `api.accounts_per_client` accounts
//! registered from one client (its address, an IPv6 one by its /64) within
//! `api.accounts_per_client_window_secs`; beyond that its registrations get
//! 429 until the window ends. Each account costs a watcher, IMAP
//! connections and store space, so one client must not create them by the
//! hundred. Registering a login that has an account already (a reinstalled
//! app) creates nothing and is not counted.
//!
//! A registration takes its place before it logs in upstream and gives it
//! back if it fails or finds the login's account, so that registrations
//! running at once cannot exceed the allowance together.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::client_ip::client_key;
use super::window_counts::WindowCounts;

/// Clients counted at most (about 100 bytes each); beyond it the lowest
/// counts make room (see [`WindowCounts`]).
const MOST_COUNTED: usize = 100_000;

/// New accounts per client within a window.
#[derive(Debug)]
pub struct RegistrationLimit {
    counts: Mutex<WindowCounts>,
}

impl RegistrationLimit {
    /// `per_client` new accounts allowed within `window`.
    pub fn new(per_client: u32, window: Duration) -> Self {
        RegistrationLimit {
            counts: Mutex::new(WindowCounts::new(per_client, window, MOST_COUNTED)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WindowCounts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a place for a new account from `client`, or says how long it
    /// must wait for one.
    pub fn reserve(self: &Arc<Self>, client: IpAddr) -> Result<Reservation, Duration> {
        let key = client_key(client);
        let now = Instant::now();
        let mut counts = self.lock();
        if let Some(wait) = counts.wait(&key, now) {
            return Err(wait);
        }
        counts.add(&key, now);
        Ok(Reservation {
            limit: self.clone(),
            key,
            kept: false,
        })
    }
}

/// A place taken by a registration under way; given back when dropped
/// unless [kept](Reservation::keep).
#[derive(Debug)]
pub struct Reservation {
    limit: Arc<RegistrationLimit>,
    key: String,
    kept: bool,
}

impl Reservation {
    /// A new account was stored: the place stays taken until its window ends.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.kept {
            self.limit.lock().remove_one(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(3600);

    #[tokio::test(start_paused = true)]
    async fn places_not_kept_are_given_back() {
        let limit = Arc::new(RegistrationLimit::new(2, WINDOW));
        let phone: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_net: IpAddr = "2001:db8:1:2::9".parse().unwrap();
        limit.reserve(phone).unwrap().keep();
        // Two at once: the second waits, until the first gives its place back.
        let failing = limit.reserve(phone).unwrap();
        assert_eq!(limit.reserve(same_net).unwrap_err(), WINDOW);
        drop(failing);
        limit.reserve(same_net).unwrap().keep();
        tokio::time::advance(Duration::from_secs(600)).await;
        assert_eq!(limit.reserve(phone).unwrap_err(), Duration::from_secs(3000));
        let elsewhere: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(limit.reserve(elsewhere).is_ok());
        tokio::time::advance(Duration::from_secs(3000)).await;
        assert!(limit.reserve(phone).is_ok());
    }
}
