//! The live watch state of every account, as the API and `/metrics` show it.
//!
//! Each account actor is the only writer of its own entry; readers take a
//! snapshot. A plain mutex is enough: writes happen on state changes, not per
//! message.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use time::OffsetDateTime;

/// Where an account's watcher is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WatchState {
    Connecting,
    Watching,
    Backoff,
    AuthFailed,
}

impl WatchState {
    pub const ALL: [WatchState; 4] = [
        WatchState::Connecting,
        WatchState::Watching,
        WatchState::Backoff,
        WatchState::AuthFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WatchState::Connecting => "connecting",
            WatchState::Watching => "watching",
            WatchState::Backoff => "backoff",
            WatchState::AuthFailed => "auth_failed",
        }
    }
}

/// One account's state, since when, and what its server offers.
#[derive(Debug, Clone)]
pub struct WatchStatus {
    pub state: WatchState,
    pub since: OffsetDateTime,
    pub capabilities: Arc<[String]>,
    /// The mailboxes the current attempt watches.
    pub mailboxes: Arc<[String]>,
    /// Why the last attempt ended, until one reaches watching again.
    pub error: Option<Arc<str>>,
}

/// All accounts' states.
#[derive(Debug, Clone, Default)]
pub struct WatchStates {
    inner: Arc<Mutex<HashMap<String, WatchStatus>>>,
    /// Distinct capability and mailbox lists: accounts on one server (or
    /// watching just INBOX) share one copy.
    lists: Arc<Mutex<Vec<Arc<[String]>>>>,
}

impl WatchStates {
    /// Moves an account to `state` (keeping `since` when the state is
    /// unchanged); reaching watching forgets the last error.
    pub fn set(&self, account_id: &str, state: WatchState) {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match map.get_mut(account_id) {
            Some(status) if status.state == state => {}
            Some(status) => {
                status.state = state;
                status.since = OffsetDateTime::now_utc();
                if state == WatchState::Watching {
                    status.error = None;
                }
            }
            None => {
                map.insert(
                    account_id.to_string(),
                    WatchStatus {
                        state,
                        since: OffsetDateTime::now_utc(),
                        capabilities: Arc::from(Vec::new()),
                        mailboxes: Arc::from(Vec::new()),
                        error: None,
                    },
                );
            }
        }
    }

    fn intern(&self, list: Vec<String>) -> Arc<[String]> {
        let mut lists = self.lists.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(known) = lists.iter().find(|known| ***known == *list) {
            return known.clone();
        }
        let shared: Arc<[String]> = Arc::from(list);
        lists.push(shared.clone());
        shared
    }

    pub fn set_capabilities(&self, account_id: &str, capabilities: Vec<String>) {
        let shared = self.intern(capabilities);
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(status) = map.get_mut(account_id) {
            status.capabilities = shared;
        }
    }

    pub fn set_mailboxes(&self, account_id: &str, mailboxes: Vec<String>) {
        let shared = self.intern(mailboxes);
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(status) = map.get_mut(account_id) {
            status.mailboxes = shared;
        }
    }

    /// Records why an account's attempt ended (shown until it watches again).
    pub fn set_error(&self, account_id: &str, error: &str) {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(status) = map.get_mut(account_id) {
            status.error = Some(Arc::from(error));
        }
    }

    pub fn get(&self, account_id: &str) -> Option<WatchStatus> {
        let map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        map.get(account_id).cloned()
    }

    pub fn remove(&self, account_id: &str) {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(account_id);
    }

    /// How many accounts are in each state.
    pub fn counts(&self) -> Vec<(&'static str, usize)> {
        let map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        WatchState::ALL
            .iter()
            .map(|s| (s.as_str(), map.values().filter(|v| v.state == *s).count()))
            .collect()
    }
}
