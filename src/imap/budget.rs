//! What a server may make the gateway hold: a byte budget per command, sized
//! to what the command asked, and one budget for the whole process.
//!
//! A command's budget bounds the responses it collects (every untagged
//! response it takes is counted, whole) and each single response; going over
//! fails the command with [`ImapError::TooLarge`] and breaks the connection,
//! so its account backs off. The process budget ([`InflightBudget`]) bounds
//! what all connections together hold beyond a small allowance each while
//! large responses arrive: the connection whose growth would exceed it fails
//! the same way, the others go on.
//!
//! [`ImapError::TooLarge`]: super::ImapError::TooLarge

use std::sync::atomic::{AtomicUsize, Ordering};

/// Largest single response of any command (a response is held whole before
/// parsing): a 25 MiB attachment, base64-encoded, fits.
pub const MAX_RESPONSE: usize = 32 * 1024 * 1024;
/// Between commands (greeting, IDLE) only short responses are expected
/// (EXISTS, EXPUNGE, FETCH of flags, a VANISHED set, STATUS, BYE); a mass
/// expunge of scattered UIDs is the longest, well under this.
pub const IDLE_BUDGET: usize = 1024 * 1024;
/// Commands that collect little or nothing (LOGIN, SELECT, STATUS, STORE…):
/// their answers are a few lines, FLAGS lists the longest.
pub const SMALL_BUDGET: usize = 1024 * 1024;
/// Per new message in `fetch_new` with summaries: the header fields a push
/// needs plus the 16 KiB body prefix and the response's framing, with room
/// for long header lines.
pub const PER_SUMMARY: usize = 64 * 1024;
/// `fetch_new` is meant for a few new messages (the watcher uses it for up
/// to `watch.fetch_limit`, 20 by default): room for 32 summaries, or for
/// 10,000 UID-only answers (about 25 bytes each) in the same space.
pub const FETCH_NEW_BUDGET: usize = 32 * PER_SUMMARY;
/// Fixed room of every sized budget (the tagged line, unrelated responses).
pub const BASE_BUDGET: usize = 64 * 1024;
/// Per message a SEARCH answer may name: ten digits and a space.
pub const PER_SEARCH_UID: usize = 11;
/// A LIST answer (with LIST-STATUS): 4 MiB holds the 20,000 mailboxes a
/// list may name (`fetch::MAX_MAILBOXES`) at 200 bytes each (attributes, a
/// usual name, the STATUS line), or 2,500 with names of 1 KiB (longer names
/// cannot be used through the API). No more, because every byte of a flood
/// is read and parsed before the budget stops it.
pub const LIST_BUDGET: usize = 4 * 1024 * 1024;
/// A BODYSTRUCTURE (with RFC822.SIZE): thousands of parts fit.
pub const STRUCTURE_BUDGET: usize = 4 * 1024 * 1024;
/// Most UIDs any SEARCH answer may name once expanded (4 MiB as a list).
pub const MAX_SEARCH_UIDS: usize = 1_000_000;

/// The budget of a SEARCH over a mailbox of `exists` messages (unknown:
/// [`MAX_SEARCH_UIDS`]): no answer can name more messages than it holds.
pub fn search_budget(exists: Option<u32>) -> usize {
    let n = exists.map_or(MAX_SEARCH_UIDS, |e| (e as usize).min(MAX_SEARCH_UIDS));
    BASE_BUDGET.saturating_add(n.saturating_mul(PER_SEARCH_UID))
}

/// The process-wide budget of upstream bytes held while responses arrive.
#[derive(Debug)]
pub struct InflightBudget {
    limit: AtomicUsize,
    used: AtomicUsize,
    /// What each connection may hold without counting: idle and ordinary
    /// connections never touch the shared counter.
    free: usize,
}

/// Default of the process budget (`upstream.max_inflight_bytes`).
pub const DEFAULT_MAX_INFLIGHT: usize = 256 * 1024 * 1024;
/// What one connection holds without counting against the process budget:
/// an ordinary command's answer fits, so only large responses are counted.
pub const FREE_PER_CONNECTION: usize = 1024 * 1024;

/// The budget every client uses unless given another (tests do).
static GLOBAL: InflightBudget = InflightBudget::new(DEFAULT_MAX_INFLIGHT, FREE_PER_CONNECTION);

impl InflightBudget {
    /// A budget of `limit` bytes beyond `free` per connection.
    pub const fn new(limit: usize, free: usize) -> Self {
        InflightBudget {
            limit: AtomicUsize::new(limit),
            used: AtomicUsize::new(0),
            free,
        }
    }

    /// The budget shared by every connection of the process.
    pub fn global() -> &'static InflightBudget {
        &GLOBAL
    }

    /// Sets the limit (at start, from the configuration).
    pub fn set_limit(&self, limit: usize) {
        self.limit.store(limit, Ordering::Relaxed);
    }

    /// The limit.
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// Bytes counted now, over all connections.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Counts `more` bytes; refused (nothing counted) beyond the limit.
    fn take(&self, more: usize) -> bool {
        let limit = self.limit();
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(more).filter(|&total| total <= limit)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: usize) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(bytes))
            });
    }
}

/// What one connection counts against an [`InflightBudget`]; given back
/// when it holds less, and when dropped.
#[derive(Debug)]
pub(crate) struct Holding {
    budget: &'static InflightBudget,
    counted: usize,
}

impl Holding {
    pub(crate) fn new(budget: &'static InflightBudget) -> Self {
        Holding { budget, counted: 0 }
    }

    /// The connection now holds `bytes`: counts the growth beyond the free
    /// allowance, or gives back the shrink. `false` when the growth would
    /// exceed the process budget (then nothing more is counted).
    pub(crate) fn hold(&mut self, bytes: usize) -> bool {
        let wanted = bytes.saturating_sub(self.budget.free);
        if wanted > self.counted {
            let more = wanted.saturating_sub(self.counted);
            if !self.budget.take(more) {
                return false;
            }
        } else {
            self.budget.give_back(self.counted.saturating_sub(wanted));
        }
        self.counted = wanted;
        true
    }

    /// The process budget's limit, for error messages.
    pub(crate) fn limit(&self) -> usize {
        self.budget.limit()
    }

    pub(crate) fn set_budget(&mut self, budget: &'static InflightBudget) {
        self.hold(0);
        self.budget = budget;
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        self.hold(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holdings_count_beyond_the_allowance_and_give_back() {
        let budget: &'static InflightBudget = Box::leak(Box::new(InflightBudget::new(100, 10)));
        let mut a = Holding::new(budget);
        let mut b = Holding::new(budget);
        assert!(a.hold(10));
        assert_eq!(budget.used(), 0);
        assert!(a.hold(70));
        assert_eq!(budget.used(), 60);
        assert!(!b.hold(60), "60 + 50 is over 100");
        assert_eq!(budget.used(), 60);
        assert!(b.hold(50));
        assert_eq!(budget.used(), 100);
        assert!(a.hold(0));
        assert_eq!(budget.used(), 40);
        drop(b);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn search_budget_follows_the_mailbox() {
        assert_eq!(search_budget(Some(0)), BASE_BUDGET);
        assert!(search_budget(Some(10)) < search_budget(Some(1000)));
        assert_eq!(search_budget(None), search_budget(Some(u32::MAX)));
    }
}
