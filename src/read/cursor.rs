//! Search cursors: where the next page of a search starts.
//!
//! A cursor is opaque to clients: base64url (no padding) of a version byte,
//! the mailbox's UIDVALIDITY, the last UID served (both big-endian) and a
//! fingerprint of the mailbox name and the search's criteria, so a cursor
//! given to another search or mailbox is refused instead of paging
//! something else. Pure: formatting and parsing only.

#![deny(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used
)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::imap::SearchQuery;

const VERSION: u8 = 1;
const FINGERPRINT_LEN: usize = 8;
const CURSOR_LEN: usize = 1 + 4 + 4 + FINGERPRINT_LEN;
/// Longest text that could be a cursor: nothing longer is decoded.
const MAX_CURSOR_TEXT: usize = 64;

/// What a cursor says: the next page holds the matches below `last_uid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchCursor {
    pub uidvalidity: u32,
    pub last_uid: u32,
    fingerprint: [u8; FINGERPRINT_LEN],
}

impl SearchCursor {
    /// The cursor after `last_uid` in the search `query` of `mailbox`.
    pub fn new(mailbox: &str, query: &SearchQuery, uidvalidity: u32, last_uid: u32) -> Self {
        SearchCursor {
            uidvalidity,
            last_uid,
            fingerprint: fingerprint(mailbox, query),
        }
    }

    /// The cursor as clients see it.
    pub fn encode(&self) -> String {
        let mut raw = Vec::with_capacity(CURSOR_LEN);
        raw.push(VERSION);
        raw.extend_from_slice(&self.uidvalidity.to_be_bytes());
        raw.extend_from_slice(&self.last_uid.to_be_bytes());
        raw.extend_from_slice(&self.fingerprint);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Parses a cursor of the search `query` of `mailbox`; `None` when the
    /// text is not a cursor or belongs to another search or mailbox.
    pub fn decode(text: &str, mailbox: &str, query: &SearchQuery) -> Option<Self> {
        if text.len() > MAX_CURSOR_TEXT {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(text).ok()?;
        let (&version, rest) = raw.split_first()?;
        if version != VERSION || rest.len() != CURSOR_LEN.checked_sub(1)? {
            return None;
        }
        let (uidvalidity, rest) = rest.split_first_chunk::<4>()?;
        let (last_uid, rest) = rest.split_first_chunk::<4>()?;
        let fingerprint: [u8; FINGERPRINT_LEN] = rest.try_into().ok()?;
        let cursor = SearchCursor {
            uidvalidity: u32::from_be_bytes(*uidvalidity),
            last_uid: u32::from_be_bytes(*last_uid),
            fingerprint,
        };
        (cursor.last_uid > 0 && fingerprint == self::fingerprint(mailbox, query)).then_some(cursor)
    }
}

/// The first bytes of SHA-256 over the mailbox name and every criterion,
/// each tagged and length-prefixed so no two searches run together.
fn fingerprint(mailbox: &str, q: &SearchQuery) -> [u8; FINGERPRINT_LEN] {
    let mut h = Sha256::new();
    let mut field = |tag: u8, value: Option<&[u8]>| {
        h.update([tag]);
        if let Some(v) = value {
            h.update((v.len() as u64).to_be_bytes());
            h.update(v);
        }
    };
    let flag = |b: Option<bool>| b.map(|b| if b { &b"1"[..] } else { &b"0"[..] });
    field(b'm', Some(mailbox.as_bytes()));
    field(b'f', q.from.as_deref().map(str::as_bytes));
    field(b't', q.to.as_deref().map(str::as_bytes));
    field(b's', q.subject.as_deref().map(str::as_bytes));
    field(b'x', q.text.as_deref().map(str::as_bytes));
    field(b'a', q.since.as_deref().map(str::as_bytes));
    field(b'b', q.before.as_deref().map(str::as_bytes));
    field(b'u', flag(q.unseen));
    field(b'g', flag(q.flagged));
    let digest = h.finalize();
    let mut out = [0; FINGERPRINT_LEN];
    out.copy_from_slice(
        digest
            .get(..FINGERPRINT_LEN)
            .unwrap_or(&[0; FINGERPRINT_LEN]),
    );
    out
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;

    fn query(subject: &str) -> SearchQuery {
        SearchQuery {
            subject: Some(subject.into()),
            ..Default::default()
        }
    }

    #[test]
    fn round_trip() {
        let q = query("report");
        let c = SearchCursor::new("INBOX", &q, 1_700_000_000, 4711);
        let text = c.encode();
        assert!(text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        let back = SearchCursor::decode(&text, "INBOX", &q).unwrap();
        assert_eq!(back, c);
        assert_eq!((back.uidvalidity, back.last_uid), (1_700_000_000, 4711));
    }

    #[test]
    fn another_search_or_mailbox_is_refused() {
        let q = query("report");
        let text = SearchCursor::new("INBOX", &q, 5, 9).encode();
        assert_eq!(SearchCursor::decode(&text, "Archive", &q), None);
        assert_eq!(
            SearchCursor::decode(&text, "INBOX", &query("reports")),
            None
        );
        let unseen = SearchQuery {
            unseen: Some(true),
            ..q.clone()
        };
        assert_eq!(SearchCursor::decode(&text, "INBOX", &unseen), None);
        // Fields do not run into each other.
        let a = SearchQuery {
            from: Some("ab".into()),
            to: Some("c".into()),
            ..Default::default()
        };
        let b = SearchQuery {
            from: Some("a".into()),
            to: Some("bc".into()),
            ..Default::default()
        };
        let text = SearchCursor::new("INBOX", &a, 5, 9).encode();
        assert_eq!(SearchCursor::decode(&text, "INBOX", &b), None);
    }

    #[test]
    fn garbage_is_refused() {
        let q = SearchQuery::default();
        let good = SearchCursor::new("INBOX", &q, 5, 9).encode();
        let zero = SearchCursor::new("INBOX", &q, 5, 0).encode();
        for bad in [
            "",
            "x",
            "!!!!",
            &good[..good.len() - 1],
            &format!("{good}AA"),
            &"A".repeat(1000),
            &zero,
        ] {
            assert_eq!(SearchCursor::decode(bad, "INBOX", &q), None, "{bad}");
        }
        let mut raw = URL_SAFE_NO_PAD.decode(&good).unwrap();
        raw[0] = 2;
        assert_eq!(
            SearchCursor::decode(&URL_SAFE_NO_PAD.encode(raw), "INBOX", &q),
            None
        );
    }
}
