//! Commands of the mail API that change or search a mailbox: UID STORE,
//! UID MOVE (or COPY + delete where MOVE is missing), UID EXPUNGE, and
//! UID SEARCH (ESEARCH where available).
//!
//! Flags and search criteria come from phones, so they are validated here
//! and only ever sent as atoms or safely quoted strings.

#![deny(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used
)]

use super::budget::search_budget;
use super::client::ImapClient;
use super::command::{Command, InvalidArgument};
use super::error::ImapError;
use super::parser::Untagged;
use super::uidset::UidSet;

/// Search criteria (all optional; all given ones must match).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub subject: Option<String>,
    pub text: Option<String>,
    /// IMAP date (`1-Feb-2024`): internal date on or after.
    pub since: Option<String>,
    /// IMAP date: internal date before.
    pub before: Option<String>,
    pub unseen: Option<bool>,
    pub flagged: Option<bool>,
}

/// Whether `flag` may be sent: a system flag (`\Seen`) or a keyword atom.
pub fn valid_flag(flag: &str) -> bool {
    let keyword = flag.strip_prefix('\\').unwrap_or(flag);
    !keyword.is_empty()
        && keyword.len() <= 64
        && keyword.bytes().all(|b| {
            b.is_ascii_graphic()
                && !matches!(
                    b,
                    b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']' | b'['
                )
        })
        && (!flag.starts_with('\\')
            || ["Seen", "Answered", "Flagged", "Deleted", "Draft"]
                .iter()
                .any(|s| s.eq_ignore_ascii_case(keyword)))
}

/// Builds the criteria of `UID SEARCH` (after the command name and any
/// RETURN/CHARSET), e.g. `FROM "x" UNSEEN`.
pub fn search_criteria(q: &SearchQuery) -> Result<Command, InvalidArgument> {
    let non_ascii = [&q.from, &q.to, &q.subject, &q.text]
        .iter()
        .any(|v| v.as_deref().is_some_and(|s| !s.is_ascii()));
    let mut cmd = Command::new("");
    if non_ascii {
        cmd = cmd.raw("CHARSET UTF-8");
    }
    let mut any = false;
    for (key, value) in [
        ("FROM", &q.from),
        ("TO", &q.to),
        ("SUBJECT", &q.subject),
        ("TEXT", &q.text),
    ] {
        if let Some(v) = value {
            cmd = cmd.raw(key).string(v.as_bytes(), false)?;
            any = true;
        }
    }
    for (key, value) in [("SINCE", &q.since), ("BEFORE", &q.before)] {
        if let Some(date) = value {
            if !date.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return Err(InvalidArgument("date"));
            }
            cmd = cmd.raw(key).raw(date);
            any = true;
        }
    }
    for (set, unset, value) in [
        ("UNSEEN", "SEEN", q.unseen),
        ("FLAGGED", "UNFLAGGED", q.flagged),
    ] {
        if let Some(v) = value {
            cmd = cmd.raw(if v { set } else { unset });
            any = true;
        }
    }
    if !any {
        cmd = cmd.raw("ALL");
    }
    Ok(cmd)
}

impl ImapClient {
    /// `UID STORE set ±FLAGS.SILENT (flags)` in the selected mailbox.
    pub async fn uid_store(
        &mut self,
        set: &str,
        add: bool,
        flags: &[String],
    ) -> Result<(), ImapError> {
        if flags.is_empty() {
            return Ok(());
        }
        if flags.iter().any(|f| !valid_flag(f)) {
            return Err(InvalidArgument("flag").into());
        }
        let op = if add {
            "+FLAGS.SILENT"
        } else {
            "-FLAGS.SILENT"
        };
        let cmd = Command::new("UID STORE")
            .raw(set)
            .raw(op)
            .raw(&format!("({})", flags.join(" ")));
        self.run_ok("UID STORE", cmd, &mut Some).await?;
        Ok(())
    }

    /// Moves messages of the selected mailbox to `destination` (UID MOVE,
    /// RFC 6851; otherwise COPY, flag `\Deleted` and UID EXPUNGE). A missing
    /// destination gives [`ImapError::No`].
    pub async fn uid_move(&mut self, set: &str, destination: &str) -> Result<(), ImapError> {
        let utf8 = self.enabled.utf8;
        if self.capabilities().has("MOVE") {
            let cmd = Command::new("UID MOVE")
                .raw(set)
                .mailbox(destination, utf8)?;
            self.run_ok("UID MOVE", cmd, &mut Some).await?;
            return Ok(());
        }
        let cmd = Command::new("UID COPY")
            .raw(set)
            .mailbox(destination, utf8)?;
        self.run_ok("UID COPY", cmd, &mut Some).await?;
        self.uid_store(set, true, &["\\Deleted".to_string()])
            .await?;
        self.uid_expunge(set).await
    }

    /// Removes the messages for good: `\Deleted` then `UID EXPUNGE`
    /// (UIDPLUS). Without UIDPLUS a plain EXPUNGE would also remove other
    /// messages someone flagged `\Deleted`, so that is refused.
    pub async fn uid_delete(&mut self, set: &str) -> Result<(), ImapError> {
        if !self.capabilities().has("UIDPLUS") {
            return Err(ImapError::Unsupported("UIDPLUS"));
        }
        self.uid_store(set, true, &["\\Deleted".to_string()])
            .await?;
        self.uid_expunge(set).await
    }

    async fn uid_expunge(&mut self, set: &str) -> Result<(), ImapError> {
        if !self.capabilities().has("UIDPLUS") {
            return Err(ImapError::Unsupported("UIDPLUS"));
        }
        let cmd = Command::new("UID EXPUNGE").raw(set);
        self.run_ok("UID EXPUNGE", cmd, &mut Some).await?;
        Ok(())
    }

    /// UIDs matching `criteria` (trusted text built by [`search_criteria`]
    /// or a UID range) in the selected mailbox, ascending. Uses ESEARCH
    /// (`RETURN (ALL)`, a compact set) when offered.
    pub async fn uid_search(&mut self, criteria: Command) -> Result<Vec<u32>, ImapError> {
        let esearch = self.capabilities().has("ESEARCH");
        let mut cmd = Command::new(if esearch {
            "UID SEARCH RETURN (ALL)"
        } else {
            "UID SEARCH"
        });
        cmd.parts.extend(criteria.parts);
        let cmd = cmd.budget(search_budget(self.exists));
        let mut uids = UidSet::new();
        self.run_ok("UID SEARCH", cmd, &mut |u| match u {
            Untagged::Search(found) => {
                uids.extend_from(&found);
                None
            }
            Untagged::Esearch { all, .. } => {
                uids.extend_from(&all.unwrap_or_default());
                None
            }
            other => Some(other),
        })
        .await?;
        uids.normalize();
        self.search_result(uids)
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
    use crate::imap::command::Part;

    fn text(cmd: &Command) -> String {
        cmd.parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => String::from_utf8_lossy(t).into_owned(),
                Part::Literal(l) => format!("{{{}}}{}", l.len(), String::from_utf8_lossy(l)),
                Part::Continuation(_) => String::new(),
            })
            .collect()
    }

    #[test]
    fn flags_are_validated() {
        assert!(valid_flag("\\Seen"));
        assert!(valid_flag("\\flagged"));
        assert!(valid_flag("$Forwarded"));
        assert!(!valid_flag("\\Recent"));
        assert!(!valid_flag("a b"));
        assert!(!valid_flag("x)\r\nA1 LOGOUT"));
        assert!(!valid_flag(""));
        assert!(!valid_flag("\\"));
    }

    #[test]
    fn criteria_are_quoted() {
        let q = SearchQuery {
            from: Some("alice".into()),
            subject: Some("a \"b\"".into()),
            unseen: Some(true),
            flagged: Some(false),
            since: Some("1-Feb-2024".into()),
            ..Default::default()
        };
        assert_eq!(
            text(&search_criteria(&q).unwrap()),
            " FROM alice SUBJECT \"a \\\"b\\\"\" SINCE 1-Feb-2024 UNSEEN UNFLAGGED"
        );
        assert_eq!(
            text(&search_criteria(&SearchQuery::default()).unwrap()),
            " ALL"
        );
        let q = SearchQuery {
            text: Some("Grüße\r\n".into()),
            ..Default::default()
        };
        let t = text(&search_criteria(&q).unwrap());
        assert!(t.starts_with(" CHARSET UTF-8 TEXT {"), "{t}");
        let q = SearchQuery {
            since: Some("1 Feb".into()),
            ..Default::default()
        };
        assert!(search_criteria(&q).is_err());
    }
}
