//! The commands the send path runs on single messages: SELECT, the body
//! structure, a section fetched piecewise (`BODY.PEEK[s]<offset.len>`, so
//! nothing large is held at once), SEARCH by Message-ID, removing a message
//! (UID STORE \Deleted + UID EXPUNGE), GENURLAUTH and URLFETCH (RFC 4467).

#![deny(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used
)]

use super::budget::{search_budget, BASE_BUDGET, MAX_RESPONSE, STRUCTURE_BUDGET};
use super::client::ImapClient;
use super::command::Command;
use super::error::ImapError;
use super::parser::{Untagged, Value};
use super::uidset::UidSet;

/// Where a referenced part is, and how big it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartInfo {
    /// `type/subtype`, lower case.
    pub content_type: String,
    /// Encoded size of the part's body in octets.
    pub size: u64,
}

impl ImapClient {
    /// Selects `mailbox` read-write; returns its UIDVALIDITY.
    pub async fn select(&mut self, mailbox: &str) -> Result<u32, ImapError> {
        Ok(self.open_mailbox(mailbox, true).await?.uidvalidity)
    }

    /// The RFC822.SIZE and BODYSTRUCTURE of a message in the selected
    /// mailbox; `None` when no message has that UID.
    pub async fn fetch_structure(&mut self, uid: u32) -> Result<Option<(u64, Value)>, ImapError> {
        let cmd = Command::new("UID FETCH")
            .raw(&format!("{uid} (RFC822.SIZE BODYSTRUCTURE)"))
            .budget(STRUCTURE_BUDGET);
        let mut found = None;
        self.run_ok("UID FETCH", cmd, &mut |u| match u {
            Untagged::Fetch { seq, items } => {
                if item(&items, "UID").and_then(Value::as_u32) != Some(uid) {
                    return Some(Untagged::Fetch { seq, items });
                }
                let size = item(&items, "RFC822.SIZE").and_then(Value::as_u64);
                let structure = item(&items, "BODYSTRUCTURE").cloned();
                if let (Some(size), Some(structure)) = (size, structure) {
                    found = Some((size, structure));
                }
                None
            }
            other => Some(other),
        })
        .await?;
        Ok(found)
    }

    /// Up to `len` bytes of `section` (`""` for the whole message, `2.MIME`…)
    /// of message `uid` from `offset` on, without setting \Seen. Fewer bytes
    /// than asked means the end was reached.
    pub async fn fetch_section_chunk(
        &mut self,
        uid: u32,
        section: &str,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, ImapError> {
        if !section
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.')
        {
            return Err(ImapError::InvalidArgument(super::command::InvalidArgument(
                "section",
            )));
        }
        // The chunk asked for, and room for the rest of the answer.
        let budget = usize::try_from(len)
            .unwrap_or(usize::MAX)
            .saturating_add(BASE_BUDGET);
        let cmd = Command::new("UID FETCH")
            .raw(&format!("{uid} (BODY.PEEK[{section}]<{offset}.{len}>)"))
            .budget(budget);
        let wanted = format!("BODY[{}]", section.to_ascii_uppercase());
        let mut data = None;
        self.run_ok("UID FETCH", cmd, &mut |u| match u {
            Untagged::Fetch { seq, items } => {
                if item(&items, "UID").and_then(Value::as_u32) != Some(uid) {
                    return Some(Untagged::Fetch { seq, items });
                }
                for (key, value) in items {
                    if key.starts_with(&wanted) {
                        data = Some(match value {
                            Value::Str(bytes) => bytes,
                            _ => Vec::new(),
                        });
                    }
                }
                None
            }
            other => Some(other),
        })
        .await?;
        data.ok_or_else(|| ImapError::protocol(format!("no BODY[{section}] for UID {uid}")))
    }

    /// UIDs in the selected mailbox whose `Message-ID` header contains `id`.
    pub async fn search_message_id(&mut self, id: &str) -> Result<Vec<u32>, ImapError> {
        let cmd = Command::new("UID SEARCH HEADER Message-ID")
            .string(id.as_bytes(), false)?
            .budget(search_budget(self.exists));
        let mut uids = UidSet::new();
        self.run_ok("UID SEARCH", cmd, &mut |u| match u {
            Untagged::Search(found) => {
                uids.extend_from(&found);
                None
            }
            other => Some(other),
        })
        .await?;
        uids.normalize();
        self.search_result(uids)
    }

    /// Removes messages from the selected mailbox: `\Deleted`, then UID
    /// EXPUNGE (UIDPLUS) so no other deleted message goes with them. Without
    /// UIDPLUS they stay flagged `\Deleted` (hidden by most clients).
    pub async fn delete_uids(&mut self, uids: &[u32]) -> Result<(), ImapError> {
        if uids.is_empty() {
            return Ok(());
        }
        let set = super::command::uid_set(uids);
        let store = Command::new("UID STORE").raw(&format!("{set} +FLAGS.SILENT (\\Deleted)"));
        self.run_ok("UID STORE", store, &mut Some).await?;
        if self.capabilities().has("UIDPLUS") {
            let expunge = Command::new("UID EXPUNGE").raw(&set);
            self.run_ok("UID EXPUNGE", expunge, &mut Some).await?;
        }
        Ok(())
    }

    /// GENURLAUTH for one URL (which must end in `;urlauth=<access>`) with
    /// the INTERNAL mechanism; returns the authorized URL.
    pub async fn gen_urlauth(&mut self, url: &str) -> Result<String, ImapError> {
        if !self.capabilities().has("URLAUTH") {
            return Err(ImapError::Unsupported("URLAUTH"));
        }
        let cmd = Command::new("GENURLAUTH")
            .string(url.as_bytes(), false)?
            .raw("INTERNAL");
        let mut out = None;
        self.run_ok("GENURLAUTH", cmd, &mut |u| match u {
            Untagged::GenUrlAuth(urls) => {
                out = urls.into_iter().next();
                None
            }
            other => Some(other),
        })
        .await?;
        let url = out.ok_or_else(|| ImapError::protocol("GENURLAUTH without URL"))?;
        String::from_utf8(url).map_err(|_| ImapError::protocol("GENURLAUTH URL not UTF-8"))
    }

    /// URLFETCH of one authorized URL (RFC 4467): its bytes, held whole
    /// (use it for parts, not for large messages). `None` when the server
    /// refuses the URL (it answers NIL).
    pub async fn url_fetch(&mut self, url: &str) -> Result<Option<Vec<u8>>, ImapError> {
        if !self.capabilities().has("URLAUTH") {
            return Err(ImapError::Unsupported("URLAUTH"));
        }
        let cmd = Command::new("URLFETCH")
            .string(url.as_bytes(), false)?
            .budget(MAX_RESPONSE);
        let mut out = None;
        self.run_ok("URLFETCH", cmd, &mut |u| match u {
            Untagged::UrlFetch(items) => {
                out = items
                    .into_iter()
                    .find(|(u, _)| u == url.as_bytes())
                    .and_then(|(_, data)| data);
                None
            }
            other => Some(other),
        })
        .await?;
        Ok(out)
    }
}

fn item<'a>(items: &'a [(String, Value)], name: &str) -> Option<&'a Value> {
    items.iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// Finds `section` (`1`, `2.1`; not `.MIME`) in a BODYSTRUCTURE. A message
/// that is not multipart has one part, `1`. Pure; `None` when absent.
pub fn find_part(structure: &Value, section: &str) -> Option<PartInfo> {
    let mut node = structure;
    for (depth, step) in section.split('.').enumerate() {
        let n: usize = step.parse().ok().filter(|&n| n >= 1)?;
        let Value::List(fields) = node else {
            return None;
        };
        let children: Vec<&Value> = fields
            .iter()
            .take_while(|v| matches!(v, Value::List(_)))
            .collect();
        if children.is_empty() {
            // A single part: `1` is the part itself; a message/rfc822 part
            // descends into the enclosed message's structure.
            if is_message_rfc822(fields) {
                node = fields.get(8)?;
                let Value::List(inner) = node else {
                    return None;
                };
                let inner_children: Vec<&Value> = inner
                    .iter()
                    .take_while(|v| matches!(v, Value::List(_)))
                    .collect();
                if inner_children.is_empty() {
                    if n != 1 {
                        return None;
                    }
                } else {
                    node = inner_children.get(n.checked_sub(1)?)?;
                }
                continue;
            }
            // Only a message that is not multipart has a part 1 (itself).
            if n != 1 || depth > 0 {
                return None;
            }
            continue;
        }
        node = children.get(n.checked_sub(1)?)?;
    }
    let Value::List(fields) = node else {
        return None;
    };
    if matches!(fields.first(), Some(Value::List(_))) {
        // A multipart part: its size is not in the structure.
        let subtype = fields.iter().find_map(|v| {
            v.as_bytes()
                .map(|b| String::from_utf8_lossy(&b).to_ascii_lowercase())
        })?;
        return Some(PartInfo {
            content_type: format!("multipart/{subtype}"),
            size: 0,
        });
    }
    let text = |i: usize| {
        fields.get(i).and_then(|v| {
            v.as_bytes()
                .map(|b| String::from_utf8_lossy(&b).to_ascii_lowercase())
        })
    };
    Some(PartInfo {
        content_type: format!("{}/{}", text(0)?, text(1)?),
        size: fields.get(6).and_then(Value::as_u64)?,
    })
}

fn is_message_rfc822(fields: &[Value]) -> bool {
    let text = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.as_bytes().map(|b| b.to_ascii_lowercase()))
    };
    text(0).as_deref() == Some(b"message") && text(1).as_deref() == Some(b"rfc822")
}

#[cfg(test)]
#[allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used
)]
mod tests {
    use super::*;
    use crate::imap::parser::parse_response;
    use crate::imap::parser::Response;

    fn structure(raw: &[u8]) -> Value {
        let Ok(Response::Untagged(Untagged::Fetch { items, .. })) = parse_response(raw) else {
            panic!("not a fetch");
        };
        items
            .into_iter()
            .find(|(k, _)| k == "BODYSTRUCTURE")
            .unwrap()
            .1
    }

    #[test]
    fn parts_are_found_by_section() {
        let s = structure(b"* 1 FETCH (BODYSTRUCTURE ((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 4 1 NIL NIL NIL NIL)(\"application\" \"octet-stream\" (\"name\" \"a.bin\") NIL NIL \"base64\" 280000 NIL (\"attachment\" (\"filename\" \"a.bin\")) NIL NIL) \"mixed\" (\"boundary\" \"b1\") NIL NIL NIL))\r\n");
        assert_eq!(
            find_part(&s, "2"),
            Some(PartInfo {
                content_type: "application/octet-stream".into(),
                size: 280000
            })
        );
        assert_eq!(find_part(&s, "1").unwrap().size, 4);
        assert_eq!(find_part(&s, "3"), None);
        assert_eq!(find_part(&s, "0"), None);
        assert_eq!(find_part(&s, "1.1"), None);
        assert_eq!(find_part(&s, "x"), None);
        let single = structure(b"* 1 FETCH (BODYSTRUCTURE (\"text\" \"plain\" NIL NIL NIL \"7bit\" 12 1 NIL NIL NIL NIL))\r\n");
        assert_eq!(find_part(&single, "1").unwrap().size, 12);
        assert_eq!(find_part(&single, "2"), None);
    }
}
