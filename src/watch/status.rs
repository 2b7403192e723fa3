//! The live watch state of every account, as the API and `/metrics` show it.
//!
//! Each account actor is the only writer of its own entry; readers take a
//! snapshot. A plain mutex is enough: writes happen on state changes, not per
//! message.
//!
//! Everything kept here came from (or was caused by) a server the account's
//! owner chose, so it is bounded: texts are cut to [`MAX_TEXT`] bytes, lists
//! to [`MAX_LIST`] entries of at most [`MAX_ENTRY`] bytes, and the lists
//! shared between accounts are kept only while some account uses them, at
//! most [`MAX_SHARED_LISTS`] of them.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
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
    /// The account's OAuth provider refused its grant: nothing is tried
    /// until it signs in again.
    ReauthRequired,
}

impl WatchState {
    pub const ALL: [WatchState; 5] = [
        WatchState::Connecting,
        WatchState::Watching,
        WatchState::Backoff,
        WatchState::AuthFailed,
        WatchState::ReauthRequired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WatchState::Connecting => "connecting",
            WatchState::Watching => "watching",
            WatchState::Backoff => "backoff",
            WatchState::AuthFailed => "auth_failed",
            WatchState::ReauthRequired => "reauth_required",
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

impl WatchStatus {
    /// What the API shows of it: `{state, since, capabilities, mailboxes, error}`.
    pub fn view(&self) -> serde_json::Value {
        let since = self
            .since
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        serde_json::json!({
            "state": self.state,
            "since": since,
            "capabilities": &*self.capabilities,
            "mailboxes": &*self.mailboxes,
            "error": self.error.as_deref(),
        })
    }

    /// An account no watcher has reported on yet.
    pub fn unknown() -> WatchStatus {
        WatchStatus {
            state: WatchState::Connecting,
            since: OffsetDateTime::now_utc(),
            capabilities: Arc::from(Vec::new()),
            mailboxes: Arc::from(Vec::new()),
            error: None,
        }
    }
}

/// The longest text kept (an error), in bytes; longer ones are cut.
pub const MAX_TEXT: usize = crate::text::MAX_SERVER_TEXT;
/// Most entries kept of one list (capabilities, mailboxes).
pub const MAX_LIST: usize = 100;
/// The longest list entry kept, in bytes (a capability is a short atom).
pub const MAX_ENTRY: usize = 128;
/// Most distinct lists shared between accounts; beyond, each account keeps
/// its own copy (freed with its status).
pub const MAX_SHARED_LISTS: usize = 1024;

/// `text` cut to at most [`MAX_TEXT`] bytes (on a character boundary),
/// ending in `…` when it was cut: what may be stored, returned or logged of
/// a text that came from a server.
pub fn cut_text(text: &str) -> Cow<'_, str> {
    cut(text, MAX_TEXT)
}

fn cut(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let head = crate::text::truncate_bytes(text, max.saturating_sub('…'.len_utf8()));
    Cow::Owned(format!("{head}…"))
}

/// A list as kept: at most [`MAX_LIST`] entries of at most [`MAX_ENTRY`] bytes.
fn bounded(mut list: Vec<String>) -> Vec<String> {
    list.truncate(MAX_LIST);
    for entry in &mut list {
        if let Cow::Owned(short) = cut(entry, MAX_ENTRY) {
            *entry = short;
        }
    }
    list
}

/// All accounts' states.
#[derive(Debug, Clone, Default)]
pub struct WatchStates {
    inner: Arc<Mutex<HashMap<String, WatchStatus>>>,
    /// Distinct capability and mailbox lists: accounts on one server (or
    /// watching just INBOX) share one copy. A list no status holds any more
    /// is dropped at the next change.
    lists: Arc<Mutex<HashSet<Arc<[String]>>>>,
    /// Accounts whose entry changed since [`WatchStates::take_changed`]
    /// (a cluster node publishes those to the database).
    changed: Arc<Mutex<HashSet<String>>>,
}

impl WatchStates {
    /// Moves an account to `state` (keeping `since` when the state is
    /// unchanged); reaching watching forgets the last error.
    pub fn set(&self, account_id: &str, state: WatchState) {
        self.mark_changed(account_id);
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

    /// The shared copy of `list` (bounded), or a copy of its own when
    /// [`MAX_SHARED_LISTS`] others are in use.
    fn intern(&self, list: Vec<String>) -> Arc<[String]> {
        let list = bounded(list);
        let mut lists = self.lists.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(known) = lists.get(list.as_slice()) {
            return known.clone();
        }
        let shared: Arc<[String]> = Arc::from(list);
        if lists.len() >= MAX_SHARED_LISTS {
            sweep(&mut lists);
        }
        if lists.len() < MAX_SHARED_LISTS {
            lists.insert(shared.clone());
        }
        shared
    }

    /// Forgets the shared lists no status holds any more.
    fn sweep(&self) {
        sweep(&mut self.lists.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// How many distinct lists are kept for sharing (for `/metrics`).
    pub fn shared_lists(&self) -> usize {
        self.lists.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Sets an account's capabilities; returns [`WatchStates::shared_lists`].
    pub fn set_capabilities(&self, account_id: &str, capabilities: Vec<String>) -> usize {
        self.mark_changed(account_id);
        let shared = self.intern(capabilities);
        let old = {
            let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            map.get_mut(account_id)
                .map(|status| std::mem::replace(&mut status.capabilities, shared))
        };
        drop(old);
        self.sweep();
        self.shared_lists()
    }

    /// Sets the mailboxes an account watches; returns [`WatchStates::shared_lists`].
    pub fn set_mailboxes(&self, account_id: &str, mailboxes: Vec<String>) -> usize {
        self.mark_changed(account_id);
        let shared = self.intern(mailboxes);
        let old = {
            let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            map.get_mut(account_id)
                .map(|status| std::mem::replace(&mut status.mailboxes, shared))
        };
        drop(old);
        self.sweep();
        self.shared_lists()
    }

    /// Records why an account's attempt ended (shown until it watches again).
    pub fn set_error(&self, account_id: &str, error: &str) {
        self.mark_changed(account_id);
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(status) = map.get_mut(account_id) {
            status.error = Some(Arc::from(cut_text(error).as_ref()));
        }
    }

    fn mark_changed(&self, account_id: &str) {
        let mut changed = self.changed.lock().unwrap_or_else(|e| e.into_inner());
        if !changed.contains(account_id) {
            changed.insert(account_id.to_string());
        }
    }

    /// The accounts whose entry changed since the last call, and what they
    /// show now (None: forgotten).
    pub fn take_changed(&self) -> Vec<(String, Option<serde_json::Value>)> {
        let ids = std::mem::take(&mut *self.changed.lock().unwrap_or_else(|e| e.into_inner()));
        ids.into_iter()
            .map(|id| {
                let view = self.get(&id).map(|status| status.view());
                (id, view)
            })
            .collect()
    }

    pub fn get(&self, account_id: &str) -> Option<WatchStatus> {
        let map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        map.get(account_id).cloned()
    }

    /// Forgets a deleted account, and the lists only it used; returns
    /// [`WatchStates::shared_lists`].
    pub fn remove(&self, account_id: &str) -> usize {
        let removed = {
            let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            map.remove(account_id)
        };
        drop(removed);
        self.sweep();
        self.shared_lists()
    }

    /// How many accounts have a state.
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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

/// Drops the lists only the set itself holds.
fn sweep(lists: &mut HashSet<Arc<[String]>>) {
    lists.retain(|list| Arc::strong_count(list) > 1);
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
