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
pub fn found(cursor: Cursor, mut uids: Vec<u32>, fetch_limit: usize) -> Option<Found> {
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
            ..cursor
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor(uidvalidity: u32, uidnext: u32) -> Cursor {
        Cursor {
            uidvalidity,
            uidnext,
            highestmodseq: None,
        }
    }

    #[test]
    fn first_watch_records_without_pushing() {
        assert_eq!(
            catch_up(None, 5, 100, Some(9)),
            CatchUp::Record(Cursor {
                uidvalidity: 5,
                uidnext: 100,
                highestmodseq: Some(9)
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
}
