//! What the watcher asks about mail it pushed already: which of it was
//! read, moved or deleted since, and how many messages are unread.
//!
//! Both answer from the selected mailbox in one command each: `UID FETCH
//! set (FLAGS)` for a bounded set of UIDs, and the unseen count from
//! ESEARCH (`SEARCH RETURN (COUNT) UNSEEN`, RFC 4731) where offered, else
//! `STATUS (UNSEEN)`.

use super::budget::BASE_BUDGET;
use super::client::ImapClient;
use super::command::{uid_set, Command};
use super::error::ImapError;
use super::parser::{Untagged, Value};

/// Most UIDs asked about at once (the watcher's window is smaller).
const MAX_ASKED: usize = 1000;

impl ImapClient {
    /// Of `uids` in the selected mailbox, those now `\Seen` or no longer
    /// there (expunged, moved away), ascending: a message the server
    /// answers for without `\Seen` among its flags (or without flags) is
    /// unread, one it does not answer for is gone. At most the first
    /// [`MAX_ASKED`] are asked about.
    pub async fn read_or_gone(&mut self, uids: &[u32]) -> Result<Vec<u32>, ImapError> {
        let mut asked: Vec<u32> = uids.iter().copied().take(MAX_ASKED).collect();
        asked.sort_unstable();
        asked.dedup();
        if asked.is_empty() {
            return Ok(Vec::new());
        }
        let cmd = Command::new("UID FETCH")
            .raw(&uid_set(&asked))
            .raw("(UID FLAGS)")
            .budget(BASE_BUDGET.saturating_add(asked.len().saturating_mul(128)));
        let mut there = Vec::new();
        let mut seen = Vec::new();
        self.run_ok("UID FETCH", cmd, &mut |u| match u {
            Untagged::Fetch { seq, items } => match uid_and_seen(&items) {
                Some((uid, is_seen)) if asked.binary_search(&uid).is_ok() => {
                    there.push(uid);
                    if is_seen {
                        seen.push(uid);
                    }
                    None
                }
                _ => Some(Untagged::Fetch { seq, items }),
            },
            other => Some(other),
        })
        .await?;
        Ok(asked
            .into_iter()
            .filter(|uid| seen.contains(uid) || !there.contains(uid))
            .collect())
    }

    /// Messages without `\Seen` in the selected mailbox, `mailbox`; `None`
    /// when the server refuses to say (NO, BAD, or no count in its answer).
    pub async fn unseen_count(&mut self, mailbox: &str) -> Result<Option<u32>, ImapError> {
        match self.ask_unseen(mailbox).await {
            Err(ImapError::No { .. } | ImapError::Bad { .. }) => Ok(None),
            other => other,
        }
    }

    async fn ask_unseen(&mut self, mailbox: &str) -> Result<Option<u32>, ImapError> {
        if self.capabilities().has("ESEARCH") {
            let cmd = Command::new("SEARCH RETURN (COUNT) UNSEEN");
            let mut count = None;
            self.run_ok("SEARCH", cmd, &mut |u| match u {
                Untagged::Esearch { items, .. } => {
                    count = items
                        .iter()
                        .find(|(k, _)| k == "COUNT")
                        .and_then(|(_, v)| v.as_u32());
                    None
                }
                other => Some(other),
            })
            .await?;
            // No COUNT: no message matched (RFC 4731 §3.1 allows leaving it out).
            return Ok(Some(count.unwrap_or(0)));
        }
        let cmd = Command::new("STATUS")
            .mailbox(mailbox, self.enabled.utf8)?
            .raw("(UNSEEN)");
        let mut count = None;
        self.run_ok("STATUS", cmd, &mut |u| match u {
            Untagged::Status { items, .. } if count.is_none() => {
                count = items
                    .iter()
                    .find(|(k, _)| k == "UNSEEN")
                    .and_then(|(_, v)| u32::try_from(*v).ok());
                None
            }
            other => Some(other),
        })
        .await?;
        Ok(count)
    }
}

/// The UID of a FETCH answer (`None` without one), and whether its FLAGS
/// hold `\Seen` (false without FLAGS).
fn uid_and_seen(items: &[(String, Value)]) -> Option<(u32, bool)> {
    let uid = items.iter().find(|(k, _)| k == "UID")?.1.as_u32()?;
    let seen = items.iter().any(|(k, v)| {
        k == "FLAGS"
            && matches!(v, Value::List(flags) if flags.iter().any(
                |f| matches!(f, Value::Atom(a) if a.eq_ignore_ascii_case("\\Seen"))
            ))
    });
    Some((uid, seen))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(key: &str, value: Value) -> (String, Value) {
        (key.to_string(), value)
    }

    #[test]
    fn seen_is_read_from_flags() {
        let seen = [
            item("UID", Value::Number(7)),
            item(
                "FLAGS",
                Value::List(vec![
                    Value::Atom("\\Flagged".into()),
                    Value::Atom("\\SEEN".into()),
                ]),
            ),
        ];
        assert_eq!(uid_and_seen(&seen), Some((7, true)));
        let unseen = [
            item("FLAGS", Value::List(vec![])),
            item("UID", Value::Number(8)),
        ];
        assert_eq!(uid_and_seen(&unseen), Some((8, false)));
        assert_eq!(
            uid_and_seen(&[item("UID", Value::Number(8))]),
            Some((8, false))
        );
        assert_eq!(uid_and_seen(&[item("FLAGS", Value::List(vec![]))]), None);
    }
}
