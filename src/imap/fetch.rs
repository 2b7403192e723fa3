//! Commands of the mail API that read: LIST (with SPECIAL-USE and
//! LIST-STATUS), SELECT/EXAMINE, and UID FETCH of arbitrary items with
//! CONDSTORE/QRESYNC `CHANGEDSINCE … VANISHED`.
//!
//! Results are raw but typed ([`MailboxEntry`], [`FetchedMessage`]); turning
//! them into API answers is [`crate::read`]'s job.

#![deny(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used
)]

use std::collections::HashMap;

use super::budget::LIST_BUDGET;
use super::client::ImapClient;
use super::command::Command;
use super::error::{ImapError, MAX_SERVER_TEXT};
use super::parser::{Untagged, Value};
use super::uidset::UidSet;

/// Most UIDs a reported set may expand to; a larger set is a protocol error
/// (a server could otherwise make the gateway allocate gigabytes).
pub const MAX_SET_EXPANSION: usize = 1_000_000;

/// One mailbox from LIST, with its STATUS when the server gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxEntry {
    /// The decoded name.
    pub name: String,
    pub delimiter: Option<char>,
    /// Attributes as sent (`\HasNoChildren`, `\Sent`, `\Noselect`).
    pub attributes: Vec<String>,
    /// MESSAGES, UNSEEN, UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ as reported.
    pub status: Vec<(String, u64)>,
}

impl MailboxEntry {
    /// Whether the mailbox can be selected.
    pub fn selectable(&self) -> bool {
        !self.attributes.iter().any(|a| {
            a.eq_ignore_ascii_case("\\Noselect") || a.eq_ignore_ascii_case("\\NonExistent")
        })
    }

    /// A STATUS item by name.
    pub fn status_item(&self, name: &str) -> Option<u64> {
        self.status.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
    }
}

/// One message's FETCH data, by item.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchedMessage {
    pub uid: u32,
    pub flags: Vec<String>,
    pub size: Option<u32>,
    pub internal_date: Option<String>,
    pub modseq: Option<u64>,
    pub preview: Option<Vec<u8>>,
    pub bodystructure: Option<Value>,
    /// `BODY[...]` and `BINARY[...]` sections by their name as sent
    /// (`BODY[HEADER.FIELDS (FROM)]`, `BINARY[2]<0>`).
    pub sections: Vec<(String, Vec<u8>)>,
    /// `BINARY.SIZE[...]` values.
    pub binary_sizes: Vec<(String, u64)>,
}

impl FetchedMessage {
    /// Builds from one FETCH response's items; `None` without a UID.
    pub fn from_items(items: Vec<(String, Value)>) -> Option<Self> {
        let mut m = FetchedMessage::default();
        let mut uid = None;
        for (key, value) in items {
            match key.as_str() {
                "UID" => uid = value.as_u32(),
                "FLAGS" => {
                    if let Value::List(list) = value {
                        m.flags = list
                            .into_iter()
                            .filter_map(|v| match v {
                                Value::Atom(a) => Some(a),
                                _ => None,
                            })
                            .collect();
                    }
                }
                "RFC822.SIZE" => m.size = value.as_u32(),
                "INTERNALDATE" => {
                    m.internal_date = value
                        .as_bytes()
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                }
                "MODSEQ" => {
                    if let Value::List(list) = value {
                        m.modseq = list.first().and_then(Value::as_u64);
                    }
                }
                "PREVIEW" => {
                    m.preview = match value {
                        Value::Str(b) => Some(b),
                        // The draft form: `PREVIEW (FUZZY "text")`.
                        Value::List(list) => list.into_iter().rev().find_map(|v| match v {
                            Value::Str(b) => Some(b),
                            _ => None,
                        }),
                        _ => None,
                    }
                }
                "BODYSTRUCTURE" | "BODY" => m.bodystructure = Some(value),
                k if k.starts_with("BINARY.SIZE[") => {
                    if let Some(n) = value.as_u64() {
                        m.binary_sizes.push((key, n));
                    }
                }
                k if k.starts_with("BODY[") || k.starts_with("BINARY[") => {
                    let bytes = match value {
                        Value::Str(b) => b,
                        _ => Vec::new(),
                    };
                    m.sections.push((key, bytes));
                }
                _ => {}
            }
        }
        m.uid = uid?;
        Some(m)
    }

    /// The first section whose name starts with `prefix` (e.g. `BODY[HEADER`).
    pub fn section(&self, prefix: &str) -> Option<&[u8]> {
        self.sections
            .iter()
            .find(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v.as_slice())
    }
}

/// Most mailboxes a LIST answer may name: far more than any person keeps,
/// few enough that the list stays a few MiB once parsed.
pub const MAX_MAILBOXES: usize = 20_000;

/// What a `UID FETCH … (CHANGEDSINCE …)` returned.
#[derive(Debug, Default)]
pub struct FetchResult {
    pub messages: Vec<FetchedMessage>,
    /// UIDs from `VANISHED (EARLIER)`.
    pub vanished: Vec<u32>,
}

impl ImapClient {
    /// Lists every mailbox with its special-use attributes, and with MESSAGES,
    /// UNSEEN, UIDVALIDITY, UIDNEXT (and HIGHESTMODSEQ under CONDSTORE) from
    /// LIST-STATUS (RFC 5819) when offered; otherwise STATUS per mailbox.
    pub async fn list_mailboxes(&mut self) -> Result<Vec<MailboxEntry>, ImapError> {
        let caps = self.capabilities();
        let condstore = caps.has("CONDSTORE");
        let status_items = if condstore {
            "(MESSAGES UNSEEN UIDVALIDITY UIDNEXT HIGHESTMODSEQ)"
        } else {
            "(MESSAGES UNSEEN UIDVALIDITY UIDNEXT)"
        };
        let list_status = caps.has("LIST-STATUS");
        let mut returns = Vec::new();
        if caps.has("SPECIAL-USE") {
            returns.push("SPECIAL-USE".to_string());
        }
        if list_status {
            returns.push(format!("STATUS {status_items}"));
        }
        let mut cmd = Command::new("LIST \"\" \"*\"").budget(LIST_BUDGET);
        if !returns.is_empty() {
            cmd = cmd.raw(&format!("RETURN ({})", returns.join(" ")));
        }
        let mut entries: Vec<MailboxEntry> = Vec::new();
        let mut statuses: HashMap<Vec<u8>, Vec<(String, u64)>> = HashMap::new();
        let mut too_many = false;
        self.run_ok("LIST", cmd, &mut |u| match u {
            // A longer name cannot be used through the API: left out.
            Untagged::List { mailbox, .. } if mailbox.len() > MAX_SERVER_TEXT => None,
            Untagged::List { .. } | Untagged::Status { .. }
                if entries.len() >= MAX_MAILBOXES || statuses.len() >= MAX_MAILBOXES =>
            {
                too_many = true;
                None
            }
            Untagged::List {
                attributes,
                delimiter,
                mailbox,
            } => {
                entries.push(MailboxEntry {
                    name: String::from_utf8_lossy(&mailbox).into_owned(),
                    delimiter: delimiter.map(char::from),
                    attributes,
                    status: Vec::new(),
                });
                None
            }
            Untagged::Status { mailbox, items } => {
                statuses.entry(mailbox).or_insert(items);
                None
            }
            other => Some(other),
        })
        .await?;
        if too_many {
            return Err(self.fail(ImapError::TooLarge(format!(
                "the server lists more than {MAX_MAILBOXES} mailboxes"
            ))));
        }
        for entry in &mut entries {
            let raw = entry.name.clone();
            entry.name = self.decode_mailbox(raw.as_bytes());
            if let Some(items) = statuses.get(raw.as_bytes()) {
                entry.status = items.clone();
            }
        }
        if !list_status {
            for entry in entries.iter_mut().filter(|e| e.selectable()) {
                let cmd = Command::new("STATUS")
                    .mailbox(&entry.name, self.enabled.utf8)?
                    .raw(status_items);
                let mut found = None;
                self.run_ok("STATUS", cmd, &mut |u| match u {
                    Untagged::Status { items, .. } if found.is_none() => {
                        found = Some(items);
                        None
                    }
                    other => Some(other),
                })
                .await?;
                entry.status = found.unwrap_or_default();
            }
        }
        Ok(entries)
    }

    /// `UID FETCH set items`, and with `changed_since` the CONDSTORE modifier
    /// (`CHANGEDSINCE n`, plus `VANISHED` when QRESYNC is enabled). `items`
    /// is trusted protocol text such as `(FLAGS RFC822.SIZE)`; `set` a UID set.
    /// The answer may take `budget` bytes (size it to the request); answers
    /// about UIDs outside `set`, or beyond the mailbox's EXISTS, are dropped.
    pub async fn uid_fetch(
        &mut self,
        set: &str,
        items: &str,
        changed_since: Option<u64>,
        budget: usize,
    ) -> Result<FetchResult, ImapError> {
        let asked = UidSet::parse(set.as_bytes(), MAX_ASKED_RANGES)
            .ok_or(super::command::InvalidArgument("UID set"))?;
        let mut cmd = Command::new("UID FETCH").raw(set).raw(items).budget(budget);
        if let Some(modseq) = changed_since {
            if self.enabled.qresync {
                cmd = cmd.raw(&format!("(CHANGEDSINCE {modseq} VANISHED)"));
            } else {
                cmd = cmd.raw(&format!("(CHANGEDSINCE {modseq})"));
            }
        }
        let mut result = FetchResult::default();
        let mut bad_set = false;
        let mut found: Vec<(u32, FetchedMessage)> = Vec::new();
        self.run_ok("UID FETCH", cmd, &mut |u| match u {
            Untagged::Fetch { seq, items } => {
                if let Some(m) = FetchedMessage::from_items(items).filter(|m| asked.contains(m.uid))
                {
                    found.push((seq, m));
                }
                None
            }
            Untagged::Vanished {
                earlier: true,
                uids,
            } => {
                let room = MAX_SET_EXPANSION.saturating_sub(result.vanished.len());
                match uids.to_vec(room) {
                    Some(v) => result.vanished.extend(v),
                    None => bad_set = true,
                }
                None
            }
            other => Some(other),
        })
        .await?;
        // Answers about messages beyond the mailbox's EXISTS are not real.
        let exists = self.exists;
        result.messages = found
            .into_iter()
            .filter(|(seq, _)| exists.is_none_or(|e| *seq <= e))
            .map(|(_, m)| m)
            .collect();
        if bad_set {
            return Err(ImapError::protocol("unusable VANISHED set"));
        }
        result.vanished.sort_unstable();
        result.vanished.dedup();
        Ok(result)
    }

    /// Whether QRESYNC was enabled on this connection.
    pub fn qresync_enabled(&self) -> bool {
        self.enabled.qresync
    }
}

/// Most ranges of a UID set the gateway itself asks for.
const MAX_ASKED_RANGES: usize = 100_000;

/// Expands a UID/sequence set such as `1:3,7` (no `*`) into numbers,
/// ascending; `None` when malformed or larger than `limit`.
pub fn expand_set(set: &str, limit: usize) -> Option<Vec<u32>> {
    if set.contains('*') {
        return None;
    }
    UidSet::parse(set.as_bytes(), limit)?.to_vec(limit)
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
    fn sets_expand_within_limits() {
        assert_eq!(expand_set("1:3,7,5:4", 100), Some(vec![1, 2, 3, 4, 5, 7]));
        assert_eq!(expand_set("", 100), Some(vec![]));
        assert_eq!(expand_set("1:*", 100), None);
        assert_eq!(expand_set("1:4294967295", 1000), None);
        assert_eq!(expand_set("a", 10), None);
    }

    #[test]
    fn fetched_message_from_items() {
        let items = vec![
            ("UID".into(), Value::Number(7)),
            (
                "FLAGS".into(),
                Value::List(vec![Value::Atom("\\Seen".into())]),
            ),
            ("RFC822.SIZE".into(), Value::Number(1200)),
            ("MODSEQ".into(), Value::List(vec![Value::Number(55)])),
            ("PREVIEW".into(), Value::Str(b"hello".to_vec())),
            (
                "BODY[HEADER.FIELDS (FROM)]".into(),
                Value::Str(b"From: a\r\n".to_vec()),
            ),
            ("BINARY.SIZE[2]".into(), Value::Number(99)),
        ];
        let m = FetchedMessage::from_items(items).unwrap();
        assert_eq!(m.uid, 7);
        assert_eq!(m.flags, vec!["\\Seen"]);
        assert_eq!(m.size, Some(1200));
        assert_eq!(m.modseq, Some(55));
        assert_eq!(m.preview.as_deref(), Some(&b"hello"[..]));
        assert_eq!(m.section("BODY[HEADER"), Some(&b"From: a\r\n"[..]));
        assert_eq!(m.binary_sizes, vec![("BINARY.SIZE[2]".into(), 99)]);
        assert!(FetchedMessage::from_items(vec![]).is_none());
    }
}
