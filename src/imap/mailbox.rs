//! Mailbox commands: ENABLE, EXAMINE, STATUS, UID SEARCH and the FETCH of
//! message summaries (of chosen UIDs, or of every message from a UID up).

#![deny(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used
)]

use super::budget::{search_budget, BASE_BUDGET, FETCH_NEW_BUDGET, MAX_SEARCH_UIDS, PER_SUMMARY};
use super::client::ImapClient;
use super::command::{uid_set, Command};
use super::error::ImapError;
use super::parser::{Code, Status, Untagged, Value};
use super::summary::{self, PreviewSource};
use super::uidset::UidSet;
use super::MailboxStatus;
use crate::mail::MessageSummary;

/// UIDs per FETCH command, so command lines stay short for scattered UIDs.
const FETCH_BATCH: usize = 256;

impl ImapClient {
    /// Turns on extensions (RFC 5161), e.g. `["QRESYNC", "UTF8=ACCEPT"]`.
    /// Those the server confirms change how later commands are built.
    pub async fn enable(&mut self, extensions: &[&str]) -> Result<(), ImapError> {
        if !self.capabilities().has("ENABLE") {
            return Err(ImapError::Unsupported("ENABLE"));
        }
        if extensions.is_empty() {
            return Ok(());
        }
        let mut cmd = Command::new("ENABLE");
        for ext in extensions {
            // Extension names are atoms; anything else is a caller error.
            if ext.is_empty() || !ext.bytes().all(|b| b.is_ascii_graphic() && b != b'"') {
                return Err(super::command::InvalidArgument("extension name").into());
            }
            cmd = cmd.raw(ext);
        }
        let mut confirmed = Vec::new();
        self.run_ok("ENABLE", cmd, &mut |u| match u {
            Untagged::Enabled(list) => {
                confirmed.extend(list);
                None
            }
            other => Some(other),
        })
        .await?;
        for ext in confirmed {
            match ext.to_ascii_uppercase().as_str() {
                "UTF8=ACCEPT" => self.enabled.utf8 = true,
                "CONDSTORE" => self.enabled.condstore = true,
                "QRESYNC" => {
                    self.enabled.qresync = true;
                    self.enabled.condstore = true;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Whether `ENABLE UTF8=ACCEPT` succeeded (mailbox names then go as UTF-8).
    pub fn utf8_enabled(&self) -> bool {
        self.enabled.utf8
    }

    /// Selects `mailbox` read-only and reports its state. With CONDSTORE
    /// advertised, HIGHESTMODSEQ is asked for too.
    pub async fn examine(&mut self, mailbox: &str) -> Result<MailboxStatus, ImapError> {
        self.open_mailbox(mailbox, false).await
    }

    /// SELECTs (`writable`) or EXAMINEs `mailbox` and reports its state.
    /// A mailbox that does not exist gives [`ImapError::No`].
    pub async fn open_mailbox(
        &mut self,
        mailbox: &str,
        writable: bool,
    ) -> Result<MailboxStatus, ImapError> {
        let name = if writable { "SELECT" } else { "EXAMINE" };
        let mut cmd = Command::new(name).mailbox(mailbox, self.enabled.utf8)?;
        if self.capabilities().has("CONDSTORE") && !self.enabled.condstore {
            cmd = cmd.raw("(CONDSTORE)");
        }
        // A failed SELECT leaves no mailbox selected (RFC 3501 6.3.1).
        self.exists = None;
        let (mut uidvalidity, mut uidnext, mut exists, mut modseq) = (None, None, 0, None);
        let mut take = |u: Untagged| match u {
            Untagged::Exists(n) => {
                exists = n;
                None
            }
            Untagged::Condition {
                status: Status::Ok,
                code: Some(code),
                text,
            } => match code {
                Code::UidValidity(n) => {
                    uidvalidity = Some(n);
                    None
                }
                Code::UidNext(n) => {
                    uidnext = Some(n);
                    None
                }
                Code::HighestModSeq(n) => {
                    modseq = Some(n);
                    None
                }
                Code::NoModSeq => None,
                code => Some(Untagged::Condition {
                    status: Status::Ok,
                    code: Some(code),
                    text,
                }),
            },
            other => Some(other),
        };
        self.run_ok(name, cmd, &mut take).await?;
        self.exists = Some(exists);
        let uidvalidity = uidvalidity
            .ok_or_else(|| ImapError::protocol(format!("{name} without UIDVALIDITY")))?;
        let uidnext = match uidnext {
            Some(n) => n,
            None => self.guess_uidnext(exists).await?,
        };
        Ok(MailboxStatus {
            uidvalidity,
            uidnext,
            exists,
            highestmodseq: modseq,
        })
    }

    /// For servers that omit UIDNEXT: one past the last message's UID (a
    /// lower bound of the real value, which is all a cursor needs).
    async fn guess_uidnext(&mut self, exists: u32) -> Result<u32, ImapError> {
        if exists == 0 {
            return Ok(1);
        }
        let mut last = None;
        self.run_ok("FETCH", Command::new("FETCH * (UID)"), &mut |u| match u {
            Untagged::Fetch { seq, items } if seq == exists => {
                last = items
                    .iter()
                    .find(|(k, _)| k == "UID")
                    .and_then(|(_, v)| v.as_u32());
                None
            }
            other => Some(other),
        })
        .await?;
        Ok(last.map_or(1, |uid| uid.saturating_add(1)))
    }

    /// STATUS of a mailbox that need not be selected: MESSAGES (as `exists`),
    /// UIDNEXT, UIDVALIDITY, and HIGHESTMODSEQ when CONDSTORE is offered.
    pub async fn status(&mut self, mailbox: &str) -> Result<MailboxStatus, ImapError> {
        let items = if self.capabilities().has("CONDSTORE") {
            "(MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ)"
        } else {
            "(MESSAGES UIDNEXT UIDVALIDITY)"
        };
        let cmd = Command::new("STATUS")
            .mailbox(mailbox, self.enabled.utf8)?
            .raw(items);
        let wanted = mailbox.to_owned();
        let mut found: Option<Vec<(String, u64)>> = None;
        let utf8 = self.enabled.utf8;
        self.run_ok("STATUS", cmd, &mut |u| match u {
            Untagged::Status { mailbox, items }
                if found.is_none() && same_mailbox(&mailbox, &wanted, utf8) =>
            {
                found = Some(items);
                None
            }
            other => Some(other),
        })
        .await?;
        let items = found.ok_or_else(|| ImapError::protocol("STATUS without data"))?;
        let get = |name: &str| items.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
        let small = |name: &str| get(name).and_then(|v| u32::try_from(v).ok());
        Ok(MailboxStatus {
            uidvalidity: small("UIDVALIDITY")
                .ok_or_else(|| ImapError::protocol("STATUS without UIDVALIDITY"))?,
            uidnext: small("UIDNEXT")
                .ok_or_else(|| ImapError::protocol("STATUS without UIDNEXT"))?,
            exists: small("MESSAGES").unwrap_or(0),
            highestmodseq: get("HIGHESTMODSEQ"),
        })
    }

    /// UIDs of the selected mailbox that are `>= first_uid`, ascending.
    /// The answer may name no more messages than the mailbox holds.
    pub async fn uid_search_from(&mut self, first_uid: u32) -> Result<Vec<u32>, ImapError> {
        let first = first_uid.max(1);
        let cmd = Command::new("UID SEARCH UID")
            .raw(&format!("{first}:*"))
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
        // `n:*` also matches the last message when its UID is below n.
        uids.clamp(first, u32::MAX);
        self.search_result(uids)
    }

    /// A SEARCH answer as a list: no longer than the mailbox (its EXISTS,
    /// when known) or [`MAX_SEARCH_UIDS`].
    pub(super) fn search_result(&mut self, uids: UidSet) -> Result<Vec<u32>, ImapError> {
        let most = self
            .exists
            .map_or(MAX_SEARCH_UIDS, |e| (e as usize).min(MAX_SEARCH_UIDS));
        match uids.to_vec(most) {
            Some(uids) => Ok(uids),
            None => Err(self.fail(ImapError::TooLarge(format!(
                "a SEARCH answer names more than the {most} messages the mailbox holds"
            )))),
        }
    }

    /// Sender, subject and (when `with_preview`) a short plain-text preview
    /// of each UID in the selected mailbox, sorted by UID. UIDs that no
    /// longer exist are left out. Uses the server's PREVIEW when offered,
    /// otherwise the first 16 KiB of the body text.
    pub async fn fetch_summaries(
        &mut self,
        uids: &[u32],
        with_preview: bool,
    ) -> Result<Vec<MessageSummary>, ImapError> {
        let mut wanted = uids.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        let source = self.preview_source(with_preview);
        let mut out = self.fetch_summaries_with(&wanted, source).await?;
        // A server that answered PREVIEW NIL gets asked for body text.
        let nil: Vec<u32> = out
            .iter()
            .filter(|s| s.preview_nil)
            .map(|s| s.summary.uid)
            .collect();
        if !nil.is_empty() {
            self.preview_unreliable = true;
            let from_body = self.fetch_summaries_with(&nil, PreviewSource::Body).await?;
            for found in from_body {
                if let Some(s) = out.iter_mut().find(|s| s.summary.uid == found.summary.uid) {
                    s.summary.preview = found.summary.preview;
                }
            }
        }
        Ok(out.into_iter().map(|s| s.summary).collect())
    }

    /// [`Self::fetch_summaries`] of sorted, distinct `wanted` from `source`.
    async fn fetch_summaries_with(
        &mut self,
        wanted: &[u32],
        source: PreviewSource,
    ) -> Result<Vec<Fetched>, ImapError> {
        let mut out = Vec::with_capacity(wanted.len());
        for batch in wanted.chunks(FETCH_BATCH) {
            let cmd = Command::new("UID FETCH")
                .raw(&uid_set(batch))
                .raw(&source.fetch_items())
                .budget(BASE_BUDGET.saturating_add(batch.len().saturating_mul(PER_SUMMARY)));
            self.run_ok("UID FETCH", cmd, &mut |u| match u {
                Untagged::Fetch { seq, items } => {
                    match uid_of(&items).filter(|uid| batch.binary_search(uid).is_ok()) {
                        Some(_) => {
                            let preview_nil = summary::preview_is_nil(&items);
                            out.extend(summary::from_fetch(&items).map(|summary| Fetched {
                                summary,
                                preview_nil,
                            }));
                            None
                        }
                        None => Some(Untagged::Fetch { seq, items }),
                    }
                }
                other => Some(other),
            })
            .await?;
        }
        out.sort_by_key(|s| s.summary.uid);
        out.dedup_by_key(|s| s.summary.uid);
        Ok(out)
    }

    /// The messages from `first_uid` up in the selected mailbox, in one
    /// command (during IDLE, pipelined behind DONE): their UIDs, ascending,
    /// and with `detail` their summaries. Meant for a few new messages: it
    /// fetches every one of them, within [`FETCH_NEW_BUDGET`] bytes. Answers
    /// beyond the mailbox's EXISTS, or a second one for a message, are not
    /// counted. With `then_idle`, IDLE goes out right behind the command and
    /// is running when this returns Ok.
    pub async fn fetch_new(
        &mut self,
        first_uid: u32,
        detail: SummaryDetail,
        then_idle: bool,
    ) -> Result<NewMessages, ImapError> {
        let first = first_uid.max(1);
        let items = match detail {
            SummaryDetail::UidsOnly => "(UID)".to_string(),
            SummaryDetail::Headers => self.preview_source(false).fetch_items(),
            SummaryDetail::Preview => self.preview_source(true).fetch_items(),
        };
        let cmd = Command::new("UID FETCH")
            .raw(&format!("{first}:*"))
            .raw(&items)
            .budget(FETCH_NEW_BUDGET);
        // Each message once (the first answer for a sequence number), and
        // only those within the mailbox's EXISTS once the command is done.
        let mut seen = std::collections::BTreeSet::new();
        let mut preview_nil = false;
        let mut found: Vec<(u32, u32, Option<MessageSummary>)> = Vec::new();
        let mut collect = |u| match u {
            Untagged::Fetch { seq, .. } if seen.contains(&seq) => None,
            // `n:*` also matches the last message when its UID is below n.
            Untagged::Fetch { seq, items } => match uid_of(&items) {
                Some(uid) if uid >= first => {
                    seen.insert(seq);
                    let summary = match detail {
                        SummaryDetail::UidsOnly => None,
                        _ => summary::from_fetch(&items),
                    };
                    // The next fetch (IDLE may be running by the time
                    // this one ends) takes the preview from the body.
                    preview_nil |= summary::preview_is_nil(&items);
                    found.push((seq, uid, summary));
                    None
                }
                Some(_) => None,
                None => Some(Untagged::Fetch { seq, items }),
            },
            other => Some(other),
        };
        if then_idle {
            self.run_ok_then_idle("UID FETCH", cmd, &mut collect)
                .await?;
        } else {
            self.run_ok("UID FETCH", cmd, &mut collect).await?;
        }
        self.preview_unreliable |= preview_nil;
        let mut new = NewMessages::default();
        for (seq, uid, summary) in found {
            if self.exists.is_some_and(|e| seq > e) {
                continue;
            }
            new.uids.push(uid);
            new.summaries.extend(summary);
        }
        new.uids.sort_unstable();
        new.uids.dedup();
        new.summaries.sort_by_key(|s| s.uid);
        new.summaries.dedup_by_key(|s| s.uid);
        Ok(new)
    }

    fn preview_source(&self, with_preview: bool) -> PreviewSource {
        if !with_preview {
            PreviewSource::None
        } else if self.preview_unreliable {
            PreviewSource::Body
        } else if self.capabilities().has("PREVIEW") {
            PreviewSource::Server
        } else if self.capabilities().has("PREVIEW=FUZZY") {
            PreviewSource::ServerFuzzy
        } else {
            PreviewSource::Body
        }
    }
}

/// A summary as fetched, and whether the server answered `PREVIEW NIL`.
struct Fetched {
    summary: MessageSummary,
    preview_nil: bool,
}

/// What [`ImapClient::fetch_new`] fetches besides the UIDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SummaryDetail {
    UidsOnly,
    /// Sender and subject.
    Headers,
    /// Sender, subject and a short plain-text preview.
    Preview,
}

/// What [`ImapClient::fetch_new`] found.
#[derive(Debug, Default)]
pub struct NewMessages {
    pub uids: Vec<u32>,
    pub summaries: Vec<MessageSummary>,
}

fn uid_of(items: &[(String, Value)]) -> Option<u32> {
    items
        .iter()
        .find(|(k, _)| k == "UID")
        .and_then(|(_, v)| v.as_u32())
}

/// Whether a STATUS response's raw mailbox name is the one asked for.
fn same_mailbox(raw: &[u8], wanted: &str, utf8: bool) -> bool {
    let decoded = if utf8 {
        String::from_utf8_lossy(raw).into_owned()
    } else {
        super::command::decode_utf7(raw)
            .unwrap_or_else(|| String::from_utf8_lossy(raw).into_owned())
    };
    decoded == wanted
        || (decoded.eq_ignore_ascii_case("INBOX") && wanted.eq_ignore_ascii_case("INBOX"))
}
