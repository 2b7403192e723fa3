//! One function per read-API operation, over a logged-in session. Each
//! opens the mailbox it needs (EXAMINE to read, SELECT to change), so the
//! answer reflects the server's state at that moment.

use super::convert::{self, summary_items};
use super::cursor::SearchCursor;
use super::state::StateToken;
use super::structure;
use super::ReadError;
use crate::error_code::ErrorCode;
use crate::imap::budget::{BASE_BUDGET, STRUCTURE_BUDGET};
use crate::imap::{
    search_criteria, uid_set, Command, ImapClient, ImapError, MailboxStatus, SearchQuery,
};
use crate::proto::v1 as pb;

/// Most UIDs one batch request may name.
pub const MAX_BATCH: usize = 5000;
/// Largest raw part fetched to extract body text.
const MAX_TEXT_SOURCE: u32 = 8 * 1024 * 1024;
/// What one listed message may take of an answer: its header fields,
/// BODYSTRUCTURE, the 16 KiB body prefix (or PREVIEW) and flags, with room
/// for long headers. A listing's budget follows its `limit`.
const PER_LISTED: usize = 64 * 1024;
/// What one message's UID, FLAGS and MODSEQ may take in a delta.
const PER_FLAGS: usize = 512;
/// A message's whole header and BODYSTRUCTURE, as `GET /v1/messages/…` fetches them.
const MESSAGE_HEAD_BUDGET: usize = 8 * 1024 * 1024;

fn server_preview(c: &ImapClient) -> bool {
    c.capabilities().has("PREVIEW")
}

/// EXAMINE or SELECT, with a NO meaning the mailbox does not exist.
pub(super) async fn open(
    c: &mut ImapClient,
    mailbox: &str,
    writable: bool,
) -> Result<MailboxStatus, ReadError> {
    check_mailbox(mailbox)?;
    match c.open_mailbox(mailbox, writable).await {
        Ok(s) => Ok(s),
        Err(ImapError::No { .. }) => Err(ReadError::MailboxNotFound(mailbox.to_string())),
        Err(e) => Err(e.into()),
    }
}

/// A mailbox name must be non-empty text without control characters.
pub fn check_mailbox(name: &str) -> Result<(), ReadError> {
    if name.is_empty() || name.len() > 1024 || name.chars().any(char::is_control) {
        return Err(ReadError::Invalid(
            ErrorCode::InvalidMailbox,
            "mailbox name is empty, too long or has control characters".into(),
        ));
    }
    Ok(())
}

fn check_uids(uids: &[u32]) -> Result<(), ReadError> {
    if uids.is_empty() || uids.len() > MAX_BATCH || uids.contains(&0) {
        return Err(ReadError::Invalid(
            ErrorCode::InvalidUids,
            format!("uids must name 1 to {MAX_BATCH} messages, none 0"),
        ));
    }
    Ok(())
}

/// The state token of a mailbox as just opened; on servers without QRESYNC
/// it carries the UIDs present (searched here).
async fn state_of(c: &mut ImapClient, status: &MailboxStatus) -> Result<StateToken, ReadError> {
    let uids = if c.qresync_enabled() {
        None
    } else {
        Some(
            all_uids_below(c, status.uidnext)
                .await?
                .into_iter()
                .collect(),
        )
    };
    Ok(StateToken {
        uidvalidity: status.uidvalidity,
        uidnext: status.uidnext,
        modseq: status.highestmodseq.unwrap_or(0),
        uids,
    })
}

async fn all_uids_below(c: &mut ImapClient, uidnext: u32) -> Result<Vec<u32>, ReadError> {
    if uidnext <= 1 {
        return Ok(Vec::new());
    }
    let mut uids = c
        .uid_search(Command::new("").raw(&format!("UID 1:{}", uidnext - 1)))
        .await?;
    uids.retain(|&u| u < uidnext);
    Ok(uids)
}

/// Summaries of `uids`, newest first.
async fn summaries(c: &mut ImapClient, uids: &[u32]) -> Result<Vec<pb::MessageSummary>, ReadError> {
    if uids.is_empty() {
        return Ok(Vec::new());
    }
    let items = summary_items(server_preview(c));
    let mut out = Vec::with_capacity(uids.len());
    for batch in uids.chunks(500) {
        // One message with thousands of parts has a long BODYSTRUCTURE:
        // even a short listing may take one of those.
        let budget = BASE_BUDGET
            .saturating_add(batch.len().saturating_mul(PER_LISTED))
            .max(STRUCTURE_BUDGET);
        let fetched = c.uid_fetch(&uid_set(batch), &items, None, budget).await?;
        out.extend(
            fetched
                .messages
                .iter()
                .filter(|m| batch.contains(&m.uid))
                .map(convert::summary),
        );
    }
    out.sort_by_key(|m| std::cmp::Reverse(m.uid));
    out.dedup_by_key(|m| m.uid);
    Ok(out)
}

/// GET /v1/mailboxes
pub async fn list_mailboxes(c: &mut ImapClient) -> Result<pb::ListMailboxesResponse, ReadError> {
    let entries = c.list_mailboxes().await?;
    let qresync = c.qresync_enabled();
    let mut mailboxes = Vec::with_capacity(entries.len());
    for e in entries.iter().filter(|e| e.selectable()) {
        let small = |k| e.status_item(k).and_then(|v| u32::try_from(v).ok());
        let role = e
            .attributes
            .iter()
            .find_map(|a| {
                let a = a.strip_prefix('\\')?.to_ascii_lowercase();
                [
                    "sent",
                    "drafts",
                    "trash",
                    "junk",
                    "archive",
                    "all",
                    "flagged",
                    "important",
                ]
                .contains(&a.as_str())
                .then_some(a)
            })
            .or_else(|| {
                e.name
                    .eq_ignore_ascii_case("INBOX")
                    .then(|| "inbox".to_string())
            })
            .unwrap_or_default();
        // Without QRESYNC a token needs the UID list: GET …/messages gives it.
        let state = match (small("UIDVALIDITY"), small("UIDNEXT"), qresync) {
            (Some(uidvalidity), Some(uidnext), true) => StateToken {
                uidvalidity,
                uidnext,
                modseq: e.status_item("HIGHESTMODSEQ").unwrap_or(0),
                uids: None,
            }
            .encode(),
            _ => String::new(),
        };
        mailboxes.push(pb::Mailbox {
            name: e.name.clone(),
            role,
            total: small("MESSAGES").unwrap_or(0),
            unseen: small("UNSEEN").unwrap_or(0),
            state,
            delimiter: e.delimiter.map(String::from).unwrap_or_default(),
        });
    }
    // The server's order varies between calls: INBOX first, then by name.
    mailboxes.sort_by(|a, b| (a.role != "inbox", &a.name).cmp(&(b.role != "inbox", &b.name)));
    Ok(pb::ListMailboxesResponse { mailboxes })
}

/// GET /v1/mailboxes/{mailbox}/messages
pub async fn list_messages(
    c: &mut ImapClient,
    mailbox: &str,
    limit: u32,
    before_uid: Option<u32>,
) -> Result<pb::ListMessagesResponse, ReadError> {
    let status = open(c, mailbox, false).await?;
    let all = all_uids_below(c, status.uidnext).await?;
    let below: Vec<u32> = match before_uid {
        Some(b) => all.iter().copied().filter(|&u| u < b).collect(),
        None => all.clone(),
    };
    let take = below.len().min(limit as usize);
    let chosen = &below[below.len() - take..];
    let messages = summaries(c, chosen).await?;
    let state = StateToken {
        uidvalidity: status.uidvalidity,
        uidnext: status.uidnext,
        modseq: status.highestmodseq.unwrap_or(0),
        uids: (!c.qresync_enabled()).then(|| all.iter().copied().collect()),
    };
    Ok(pb::ListMessagesResponse {
        messages,
        state: state.encode(),
        total: status.exists,
        more: below.len() > take,
    })
}

/// GET /v1/mailboxes/{mailbox}/changes?since=
pub async fn changes(
    c: &mut ImapClient,
    mailbox: &str,
    since: &str,
    limit: u32,
) -> Result<pb::ChangesResponse, ReadError> {
    let token = StateToken::decode(since).ok_or(ReadError::BadState)?;
    let status = open(c, mailbox, false).await?;
    if status.uidvalidity != token.uidvalidity {
        return Err(ReadError::ResyncRequired(
            "the mailbox's UIDVALIDITY changed",
        ));
    }
    if token.uidnext > status.uidnext {
        return Err(ReadError::ResyncRequired(
            "the token is newer than the mailbox",
        ));
    }
    let current_modseq = status.highestmodseq.unwrap_or(0);
    if token.modseq > current_modseq {
        return Err(ReadError::ResyncRequired(
            "the server's change history was reset",
        ));
    }
    let qresync = c.qresync_enabled() && token.modseq > 0;
    let condstore = status.highestmodseq.is_some() && token.modseq > 0;
    if !qresync && token.uids.is_none() {
        return Err(ReadError::ResyncRequired(
            "this server needs a token from a message listing",
        ));
    }
    let mut flags = Vec::new();
    let mut vanished = Vec::new();
    let mut present_old: Option<Vec<u32>> = None;
    if token.uidnext > 1 {
        let old = format!("1:{}", token.uidnext - 1);
        // Flags of every message at most: the budget follows the mailbox.
        let budget = BASE_BUDGET.saturating_add((status.exists as usize).saturating_mul(PER_FLAGS));
        if condstore {
            let r = c
                .uid_fetch(&old, "(UID FLAGS)", Some(token.modseq), budget)
                .await?;
            flags = r.messages;
            vanished = r.vanished;
        } else {
            let r = c.uid_fetch(&old, "(UID FLAGS)", None, budget).await?;
            present_old = Some(r.messages.iter().map(|m| m.uid).collect());
            flags = r.messages;
        }
        if !qresync {
            let present = match present_old {
                Some(p) => p,
                None => all_uids_below(c, token.uidnext).await?,
            };
            vanished = token
                .uids
                .iter()
                .flat_map(|known| known.iter())
                .filter(|u| present.binary_search(u).is_err())
                .collect();
        }
    }
    flags.retain(|m| m.uid < token.uidnext && vanished.binary_search(&m.uid).is_err());
    flags.sort_by_key(|m| m.uid);
    let new_uids: Vec<u32> = if status.uidnext > token.uidnext {
        let mut uids = c
            .uid_search(Command::new("").raw(&format!(
                "UID {}:{}",
                token.uidnext,
                status.uidnext - 1
            )))
            .await?;
        uids.retain(|&u| u >= token.uidnext && u < status.uidnext);
        uids
    } else {
        Vec::new()
    };
    let take = new_uids.len().min(limit as usize);
    let added = summaries(c, &new_uids[new_uids.len() - take..]).await?;
    let state = state_of(c, &status).await?;
    Ok(pb::ChangesResponse {
        added,
        flags: flags
            .into_iter()
            .map(|m| pb::FlagUpdate {
                uid: m.uid,
                flags: m.flags,
            })
            .collect(),
        vanished,
        state: state.encode(),
        more: new_uids.len() > take,
    })
}

/// GET /v1/messages/{mailbox}/{uid}
pub async fn get_message(
    c: &mut ImapClient,
    mailbox: &str,
    uid: u32,
    max_bytes: u32,
) -> Result<pb::GetMessageResponse, ReadError> {
    open(c, mailbox, false).await?;
    let fetched = c
        .uid_fetch(
            &uid.to_string(),
            "(UID FLAGS RFC822.SIZE INTERNALDATE BODYSTRUCTURE BODY.PEEK[HEADER])",
            None,
            MESSAGE_HEAD_BUDGET,
        )
        .await?;
    let m = fetched
        .messages
        .into_iter()
        .find(|m| m.uid == uid)
        .ok_or(ReadError::MessageNotFound(uid))?;
    let parts = m
        .bodystructure
        .as_ref()
        .map(structure::parts)
        .unwrap_or_default();
    let header = m.section("BODY[HEADER").unwrap_or(&[]);
    let h = convert::Headers::parse(header);
    let (text_part, html_part) = convert::pick_text_part(&parts);
    let mut text = String::new();
    let mut truncated = false;
    if let Some(part) = text_part {
        let limit = part.size.min(MAX_TEXT_SOURCE);
        let section = format!("BODY.PEEK[{}]<0.{}>", part.id, limit.max(1));
        let r = c
            .uid_fetch(
                &uid.to_string(),
                &format!("(UID {section})"),
                None,
                BASE_BUDGET.saturating_add(limit as usize),
            )
            .await?;
        let raw = r
            .messages
            .iter()
            .find(|x| x.uid == uid)
            .and_then(|x| x.section(&format!("BODY[{}]", part.id)))
            .unwrap_or(&[]);
        text = convert::part_text(part, raw);
        truncated = part.size > MAX_TEXT_SOURCE;
        truncated |= convert::truncate(&mut text, max_bytes as usize);
    }
    Ok(pb::GetMessageResponse {
        uid,
        date: h.date(
            m.internal_date
                .as_deref()
                .and_then(convert::internal_date_secs),
        ),
        from: h.from(),
        to: h.to(),
        cc: h.cc(),
        reply_to: h.reply_to(),
        subject: h.subject(),
        message_id: h.message_id(),
        in_reply_to: h.in_reply_to(),
        references: h.references(),
        flags: m.flags.clone(),
        size: m.size.unwrap_or(0),
        parts: convert::api_parts(&parts),
        text,
        text_part: text_part.map(|p| p.id.clone()).unwrap_or_default(),
        from_html: text_part.is_some_and(|p| p.mime == "text/html"),
        truncated,
        html_part: html_part.map(|p| p.id.clone()).unwrap_or_default(),
    })
}

/// UIDs of `uids` that exist in the opened mailbox.
async fn existing(c: &mut ImapClient, uids: &[u32]) -> Result<Vec<u32>, ReadError> {
    let mut found = c
        .uid_search(Command::new("").raw(&format!("UID {}", uid_set(uids))))
        .await?;
    found.retain(|u| uids.contains(u));
    Ok(found)
}

/// POST /v1/messages/flags
pub async fn set_flags(
    c: &mut ImapClient,
    req: &pb::FlagsRequest,
) -> Result<pb::BatchResponse, ReadError> {
    check_uids(&req.uids)?;
    if req.add.is_empty() && req.remove.is_empty() {
        return Err(ReadError::Invalid(
            ErrorCode::InvalidFlags,
            "give flags to add or remove".into(),
        ));
    }
    if let Some(bad) = req
        .add
        .iter()
        .chain(&req.remove)
        .find(|f| !crate::imap::valid_flag(f))
    {
        return Err(ReadError::Invalid(
            ErrorCode::InvalidFlags,
            format!("not a flag: {bad:?}"),
        ));
    }
    open(c, &req.mailbox, true).await?;
    let uids = existing(c, &req.uids).await?;
    if !uids.is_empty() {
        let set = uid_set(&uids);
        c.uid_store(&set, true, &req.add).await?;
        c.uid_store(&set, false, &req.remove).await?;
    }
    Ok(pb::BatchResponse { uids })
}

/// POST /v1/messages/move
pub async fn move_messages(
    c: &mut ImapClient,
    req: &pb::MoveRequest,
) -> Result<pb::BatchResponse, ReadError> {
    check_uids(&req.uids)?;
    check_mailbox(&req.destination)?;
    open(c, &req.mailbox, true).await?;
    let uids = existing(c, &req.uids).await?;
    if !uids.is_empty() {
        match c.uid_move(&uid_set(&uids), &req.destination).await {
            Ok(()) => {}
            Err(ImapError::No { .. }) => {
                return Err(ReadError::MailboxNotFound(req.destination.clone()))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(pb::BatchResponse { uids })
}

/// POST /v1/messages/delete
pub async fn delete_messages(
    c: &mut ImapClient,
    req: &pb::DeleteRequest,
) -> Result<pb::BatchResponse, ReadError> {
    check_uids(&req.uids)?;
    open(c, &req.mailbox, true).await?;
    let uids = existing(c, &req.uids).await?;
    if !uids.is_empty() {
        c.uid_delete(&uid_set(&uids)).await?;
    }
    Ok(pb::BatchResponse { uids })
}

/// GET /v1/search: the page of at most `limit` matches, newest first,
/// after `cursor` (from the page before).
pub async fn search(
    c: &mut ImapClient,
    mailbox: &str,
    query: &SearchQuery,
    limit: u32,
    cursor: Option<&str>,
) -> Result<pb::SearchResponse, ReadError> {
    let criteria = search_criteria(query)
        .map_err(|e| ReadError::Invalid(ErrorCode::InvalidSearch, e.to_string()))?;
    let cursor = cursor
        .map(|t| SearchCursor::decode(t, mailbox, query).ok_or(ReadError::BadCursor))
        .transpose()?;
    let status = open(c, mailbox, false).await?;
    if cursor.is_some_and(|k| k.uidvalidity != status.uidvalidity) {
        return Err(ReadError::ResyncRequired(
            "the mailbox's UIDVALIDITY changed: search again without a cursor",
        ));
    }
    let mut uids = c.uid_search(criteria).await?;
    let total = uids.len() as u32;
    // Only matches older than the last one served: mail that arrived since
    // has higher UIDs and does not shift the pages.
    if let Some(k) = cursor {
        uids.retain(|&u| u < k.last_uid);
    }
    uids.reverse();
    let take = uids.len().min(limit as usize);
    let messages = summaries(c, &uids[..take]).await?;
    let next_cursor = match uids[..take].last() {
        Some(&last) if uids.len() > take => {
            SearchCursor::new(mailbox, query, status.uidvalidity, last).encode()
        }
        _ => String::new(),
    };
    Ok(pb::SearchResponse {
        uids,
        messages,
        total,
        next_cursor,
    })
}
