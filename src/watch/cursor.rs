//! What to do when a mailbox is (re)selected, given its stored cursor.
//!
//! Pure decisions, so the rules that guarantee "no missed mail, nothing old
//! pushed as new, no storm after a UIDVALIDITY change" are tested on their own.

use crate::store::Cursor;

/// The outcome of comparing a stored cursor with the mailbox's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// Store this cursor and push nothing: a first watch, or UIDVALIDITY
    /// changed so the old UIDs mean nothing (pushing the whole mailbox again
    /// would be a storm of old mail).
    Record(Cursor),
    /// Mail arrived while nobody watched: push UIDs from this one up.
    Fetch { from_uid: u32 },
    /// Nothing new.
    UpToDate,
}

/// Compares the stored cursor with a mailbox's UIDVALIDITY and UIDNEXT.
pub fn catch_up(
    stored: Option<Cursor>,
    uidvalidity: u32,
    uidnext: u32,
    highestmodseq: Option<u64>,
) -> CatchUp {
    let fresh = Cursor {
        uidvalidity,
        uidnext,
        highestmodseq,
        max_uid_seen: false,
    };
    match stored {
        None => CatchUp::Record(fresh),
        Some(c) if c.uidvalidity != uidvalidity => CatchUp::Record(fresh),
        Some(c) if uidnext > c.uidnext => CatchUp::Fetch {
            from_uid: c.uidnext,
        },
        Some(_) => CatchUp::UpToDate,
    }
}

/// New mail found by a search from the cursor: which UIDs to summarise, how
/// many there are, and the cursor that moves past them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub to_fetch: Vec<u32>,
    pub count: u32,
    pub cursor: Cursor,
}

/// Turns the UIDs a search returned into the work for one push. UIDs below
/// the cursor (a server answering `n:*` with the last message) are ignored;
/// only the newest `fetch_limit` are summarised, the rest only counted.
/// Once UID 4294967295 was pushed nothing is new any more: the server
/// answers `4294967295:*` with that message again.
pub fn found(cursor: Cursor, mut uids: Vec<u32>, fetch_limit: usize) -> Option<Found> {
    if cursor.max_uid_seen {
        return None;
    }
    uids.retain(|uid| *uid >= cursor.uidnext);
    uids.sort_unstable();
    uids.dedup();
    let last = *uids.last()?;
    let count = uids.len() as u32;
    let skip = uids.len().saturating_sub(fetch_limit);
    Some(Found {
        to_fetch: uids.split_off(skip),
        count,
        cursor: Cursor {
            uidnext: last.saturating_add(1),
            max_uid_seen: last == u32::MAX,
            ..cursor
        },
    })
}

/// How many messages arrived in the selected mailbox since it was last
/// checked, counted from the EXISTS and EXPUNGE responses in their order.
///
/// Only an estimate to choose how to look (a few new messages are fetched in
/// one command; many are searched first, so only the newest are summarised):
/// an expunged message is assumed to be an old one, which can only make the
/// estimate larger. After VANISHED (which gives no count) it is unknown until
/// the next check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Arrivals {
    /// Messages in the mailbox now, as far as the responses tell.
    known: Option<u32>,
    /// Messages in the mailbox when it was last checked.
    checked: Option<u32>,
}

impl Arrivals {
    /// Just selected (or checked in full) with this many messages.
    pub fn selected(exists: u32) -> Self {
        Arrivals {
            known: Some(exists),
            checked: Some(exists),
        }
    }

    pub fn exists(&mut self, count: u32) {
        self.known = Some(count);
    }

    pub fn expunge(&mut self) {
        self.known = self.known.map(|n| n.saturating_sub(1));
        self.checked = self.checked.map(|n| n.saturating_sub(1));
    }

    /// Messages went away without a count (QRESYNC's VANISHED).
    pub fn lost_count(&mut self) {
        *self = Arrivals::default();
    }

    /// The mailbox was just checked for new mail.
    pub fn checked(&mut self) {
        self.checked = self.known;
    }

    /// Messages that arrived since the last check, when known.
    pub fn since_check(&self) -> Option<u32> {
        Some(self.known?.saturating_sub(self.checked?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor(uidvalidity: u32, uidnext: u32) -> Cursor {
        Cursor {
            uidvalidity,
            uidnext,
            highestmodseq: None,
            max_uid_seen: false,
        }
    }

    #[test]
    fn first_watch_records_without_pushing() {
        assert_eq!(
            catch_up(None, 5, 100, Some(9)),
            CatchUp::Record(Cursor {
                uidvalidity: 5,
                uidnext: 100,
                highestmodseq: Some(9),
                max_uid_seen: false,
            })
        );
    }

    #[test]
    fn a_gap_fetches_from_the_cursor() {
        assert_eq!(
            catch_up(Some(cursor(5, 100)), 5, 103, None),
            CatchUp::Fetch { from_uid: 100 }
        );
        assert_eq!(
            catch_up(Some(cursor(5, 100)), 5, 100, None),
            CatchUp::UpToDate
        );
        // UIDNEXT never goes back within one UIDVALIDITY; if a server says so, wait.
        assert_eq!(
            catch_up(Some(cursor(5, 100)), 5, 90, None),
            CatchUp::UpToDate
        );
    }

    #[test]
    fn uidvalidity_change_resets_without_a_storm() {
        assert_eq!(
            catch_up(Some(cursor(5, 100)), 6, 4000, None),
            CatchUp::Record(cursor(6, 4000))
        );
    }

    #[test]
    fn found_moves_past_the_newest_and_bounds_the_fetch() {
        let f = found(cursor(5, 100), vec![104, 100, 101, 99, 102, 103, 104], 3).unwrap();
        assert_eq!(f.to_fetch, vec![102, 103, 104]);
        assert_eq!(f.count, 5);
        assert_eq!(f.cursor, cursor(5, 105));
        assert_eq!(found(cursor(5, 100), vec![99], 3), None);
        assert_eq!(found(cursor(5, 100), vec![], 3), None);
    }

    #[test]
    fn the_largest_uid_is_found_once() {
        let f = found(cursor(5, u32::MAX - 1), vec![u32::MAX - 1, u32::MAX], 3).unwrap();
        assert_eq!(f.count, 2);
        assert_eq!(f.cursor.uidnext, u32::MAX);
        assert!(f.cursor.max_uid_seen);
        // The server answers `4294967295:*` with it again: nothing new.
        assert_eq!(found(f.cursor, vec![u32::MAX], 3), None);
        // Nor after a reconnect.
        assert_eq!(
            catch_up(Some(f.cursor), 5, u32::MAX, None),
            CatchUp::UpToDate
        );
        // A new UIDVALIDITY starts over.
        assert_eq!(
            catch_up(Some(f.cursor), 6, 10, None),
            CatchUp::Record(cursor(6, 10))
        );
        // A UIDNEXT of 4294967295 is not the message itself.
        let f = found(cursor(5, 100), vec![u32::MAX - 1], 3).unwrap();
        assert!(!f.cursor.max_uid_seen);
    }

    #[test]
    fn arrivals_count_new_messages_between_checks() {
        let mut a = Arrivals::selected(10);
        assert_eq!(a.since_check(), Some(0));
        a.exists(12);
        assert_eq!(a.since_check(), Some(2));
        a.checked();
        assert_eq!(a.since_check(), Some(0));
        // An old message expunged, then one new: one arrival.
        a.expunge();
        a.exists(12);
        assert_eq!(a.since_check(), Some(1));
        // A new one expunged before the check still counts: two arrived,
        // one is left, the estimate says two (more, never fewer).
        a.exists(13);
        a.expunge();
        assert_eq!(a.since_check(), Some(2));
    }

    #[test]
    fn arrivals_are_unknown_after_vanished_until_checked_with_a_count() {
        let mut a = Arrivals::selected(10);
        a.lost_count();
        a.exists(11);
        assert_eq!(a.since_check(), None);
        a.checked();
        assert_eq!(a.since_check(), Some(0));
        assert_eq!(Arrivals::default().since_check(), None);
    }
}
