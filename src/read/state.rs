//! State tokens for delta sync: what a client last saw of a mailbox.
//!
//! A token is opaque to clients: `1.UIDVALIDITY.UIDNEXT.MODSEQ` and, on
//! servers without QRESYNC (where expunges cannot be asked for), `.SET` with
//! the UIDs present then, as a compact set (`1:40,42`). MODSEQ is 0 without
//! CONDSTORE. Pure: parsing and formatting only.

#![deny(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used
)]

use crate::imap::UidSet;

/// Most UIDs a token may name: a delta compares each with the mailbox, so
/// a short token naming billions would cost a request that much work.
const MAX_TOKEN_UIDS: u64 = 1_000_000;
/// Longest token parsed: a request line cannot carry a longer one anyway
/// (URIs are limited to 64 KiB), so nothing longer is one of ours.
pub const MAX_TOKEN_LEN: usize = 64 * 1024;

/// A decoded state token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateToken {
    pub uidvalidity: u32,
    pub uidnext: u32,
    /// HIGHESTMODSEQ at the time; 0 when the server had no CONDSTORE.
    pub modseq: u64,
    /// The UIDs present, when the server lacks QRESYNC: as ranges, so
    /// what decoding holds grows with the token's length, not its numbers.
    pub uids: Option<UidSet>,
}

impl StateToken {
    /// Formats the token.
    pub fn encode(&self) -> String {
        let mut out = format!("1.{}.{}.{}", self.uidvalidity, self.uidnext, self.modseq);
        if let Some(uids) = &self.uids {
            out.push('.');
            out.push_str(&uids.to_string());
        }
        out
    }

    /// Parses a token; `None` when it is not one of ours.
    pub fn decode(token: &str) -> Option<StateToken> {
        if token.len() > MAX_TOKEN_LEN {
            return None;
        }
        let mut fields = token.splitn(5, '.');
        if fields.next()? != "1" {
            return None;
        }
        let uidvalidity = fields.next()?.parse().ok()?;
        let uidnext: u32 = fields.next()?.parse().ok()?;
        let modseq = fields.next()?.parse().ok()?;
        let uids = match fields.next() {
            Some(set) => Some(UidSet::parse(set.as_bytes(), MAX_TOKEN_LEN)?),
            None => None,
        };
        if uidnext == 0
            || uids.as_ref().is_some_and(|u| {
                u.count() > MAX_TOKEN_UIDS || u.max().is_some_and(|x| x >= uidnext)
            })
        {
            return None;
        }
        Some(StateToken {
            uidvalidity,
            uidnext,
            modseq,
            uids,
        })
    }
}

#[cfg(test)]
#[allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used
)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = StateToken {
            uidvalidity: 1700000000,
            uidnext: 51,
            modseq: 77,
            uids: None,
        };
        assert_eq!(t.encode(), "1.1700000000.51.77");
        assert_eq!(StateToken::decode(&t.encode()), Some(t));
        let t = StateToken {
            uidvalidity: 5,
            uidnext: 10,
            modseq: 0,
            uids: Some([1, 2, 3, 7].into_iter().collect()),
        };
        assert_eq!(t.encode(), "1.5.10.0.1:3,7");
        assert_eq!(StateToken::decode(&t.encode()), Some(t));
    }

    #[test]
    fn garbage_is_refused() {
        for bad in [
            "",
            "1",
            "2.1.2.3",
            "1.a.2.3",
            "1.1.0.3",
            "1.1.5.3.9",
            "1.1.5.3.x",
            "1.1.5.3.1:*",
            "1.1.5",
        ] {
            assert_eq!(StateToken::decode(bad), None, "{bad}");
        }
        // Long tokens are refused before they are parsed.
        let long = format!(
            "1.5.{}.0.{}",
            u32::MAX,
            "1,".repeat(MAX_TOKEN_LEN / 2) + "3"
        );
        assert_eq!(StateToken::decode(&long), None);
        // A short one may not name more than MAX_TOKEN_UIDS.
        assert_eq!(StateToken::decode("1.5.4294967295.0.1:4000000000"), None);
        assert_eq!(StateToken::decode("1.5.4294967295.0.1:1000001"), None);
        let most = StateToken::decode("1.5.4294967295.0.1:1000000").unwrap();
        assert_eq!(most.uids.unwrap().ranges(), 1);
    }
}
