//! The push plaintext: compact JSON shaped by the device's payload tier.
//!
//! ```text
//! wake     {"v":1,"type":"wake","account_id":"a1"}
//! count    {"v":1,"type":"mail","account_id":"a1","mailbox":"INBOX","count":3,"unseen":5}
//! headers  … ,"messages":[{"id":"x2Ab…","uid":9,"from":{"name":"Ann","email":"ann@x"},"subject":"Hi"}]}
//! preview  … each message also carries "preview" (≤ 200 characters)
//! read     {"v":1,"type":"read","account_id":"a1","mailbox":"INBOX","uids":[9],"ids":["x2Ab…"],"unseen":4}
//! ```
//!
//! `unseen` is the mailbox's count of messages without `\Seen` (left out
//! when the server could not say); `id` is [`message_id`], the same in
//! every push about the message; `"vip":true` marks a sender on the
//! device's VIP list.
//!
//! ```text
//! ```
//!
//! [`build`] always returns something within its byte budget: it drops the
//! oldest messages first, then shortens the one left (preview, then subject,
//! then sender name, on character boundaries), and only then falls back to
//! smaller shapes. `count` is always the real count, whatever was dropped.
//! Control characters (NUL included) in what a server sent become spaces.
//!
//! [`crate::mail::trim_queued`] cuts queued summaries to what a payload can carry, so the
//! push queue never stores (and rewrites) more than a push could use.

use std::borrow::Cow;

use serde::Serialize;

use crate::mail::{MessageSummary, PREVIEW_CHARS};
use crate::store::PayloadTier;
use crate::text::{clean, truncate_bytes, truncate_chars};

/// The payload format version; bump when a field changes meaning.
pub const PAYLOAD_VERSION: u8 = 1;

#[derive(Serialize)]
struct WakePayload<'a> {
    v: u8,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_id: Option<&'a str>,
}

#[derive(Serialize)]
struct TestPayload<'a> {
    v: u8,
    #[serde(rename = "type")]
    kind: &'static str,
    account_id: &'a str,
    device_id: &'a str,
}

/// The plaintext of a test push: `{"v":1,"type":"test","account_id","device_id"}`.
pub fn test(account_id: &str, device_id: &str) -> Vec<u8> {
    to_json(&TestPayload {
        v: PAYLOAD_VERSION,
        kind: "test",
        account_id,
        device_id,
    })
}

#[derive(Serialize)]
struct AccountPayload<'a> {
    v: u8,
    #[serde(rename = "type")]
    kind: &'static str,
    account_id: &'a str,
    state: &'a str,
}

/// The plaintext of an account's news:
/// `{"v":1,"type":"account","account_id","state":"auth_failed"}`.
pub fn account_state(account_id: &str, state: &str) -> Vec<u8> {
    to_json(&AccountPayload {
        v: PAYLOAD_VERSION,
        kind: "account",
        account_id,
        state,
    })
}

#[derive(Serialize)]
struct ReauthPayload<'a> {
    v: u8,
    #[serde(rename = "type")]
    kind: &'static str,
    account_id: &'a str,
}

/// The plaintext telling an account's devices that its provider no longer
/// accepts its sign-in: `{"v":1,"type":"reauth","account_id"}`.
pub fn reauth(account_id: &str) -> Vec<u8> {
    to_json(&ReauthPayload {
        v: PAYLOAD_VERSION,
        kind: "reauth",
        account_id,
    })
}

#[derive(Serialize)]
struct MailPayload<'a> {
    v: u8,
    #[serde(rename = "type")]
    kind: &'static str,
    account_id: &'a str,
    mailbox: &'a str,
    count: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    unseen: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    messages: Option<&'a [MessageEntry<'a>]>,
}

#[derive(Serialize, Clone)]
struct MessageEntry<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    uid: u32,
    from: SenderEntry<'a>,
    subject: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    preview: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    vip: bool,
}

#[derive(Serialize, Clone)]
struct SenderEntry<'a> {
    name: &'a str,
    email: &'a str,
}

/// Which mail a push is about, beside its messages.
#[derive(Debug, Clone, Copy)]
pub struct Mail<'a> {
    pub account_id: &'a str,
    pub mailbox: &'a str,
    /// UIDVALIDITY of the mailbox; 0 when unknown (no message ids then).
    pub uidvalidity: u32,
    /// How many new messages the push stands for.
    pub count: u32,
    /// Messages without `\Seen` in the mailbox, when counted.
    pub unseen: Option<u32>,
}

impl<'a> Mail<'a> {
    /// `count` new messages in `mailbox`, nothing else known.
    pub fn new(account_id: &'a str, mailbox: &'a str, count: u32) -> Self {
        Mail {
            account_id,
            mailbox,
            uidvalidity: 0,
            count,
            unseen: None,
        }
    }
}

/// A message's stable id, the same in every push about it and usable as a
/// notification tag: the first 16 characters of the unpadded base64url
/// SHA-256 of `account_id`, `mailbox`, UIDVALIDITY and UID (the numbers in
/// decimal), each followed by a NUL byte.
pub fn message_id(account_id: &str, mailbox: &str, uidvalidity: u32, uid: u32) -> String {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for part in [
        account_id.as_bytes(),
        mailbox.as_bytes(),
        uidvalidity.to_string().as_bytes(),
        uid.to_string().as_bytes(),
    ] {
        hash.update(part);
        hash.update([0u8]);
    }
    let digest = hash.finalize();
    let mut id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
    id.truncate(16);
    id
}

/// Renders the plaintext of one push for `tier`, never longer than `max_bytes`.
///
/// `messages` may come in any order; the payload lists them newest (highest
/// UID) first. `mail.count` is how many new messages the push stands for
/// and is passed through unchanged. When even the smallest shape does not
/// fit (a budget of a few bytes), the result is empty: a push without payload.
pub fn build(
    tier: PayloadTier,
    mail: &Mail<'_>,
    messages: &[MessageSummary],
    max_bytes: usize,
) -> Vec<u8> {
    let account_id = mail.account_id;
    let with_preview = match tier {
        PayloadTier::Wake => return wake(account_id, max_bytes),
        PayloadTier::Count => {
            let payload = mail_payload(mail, None);
            return fit_or_wake(to_json(&payload), account_id, max_bytes);
        }
        PayloadTier::Headers => false,
        PayloadTier::Preview => true,
    };

    let mut newest_first: Vec<&MessageSummary> = messages.iter().collect();
    newest_first.sort_by_key(|m| std::cmp::Reverse(m.uid));
    let ids: Vec<Option<String>> = newest_first
        .iter()
        .map(|m| {
            (mail.uidvalidity != 0)
                .then(|| message_id(account_id, mail.mailbox, mail.uidvalidity, m.uid))
        })
        .collect();
    // Cut before cleaning: cleaning never makes a text longer.
    let cleaned: Vec<[Cow<str>; 4]> = newest_first
        .iter()
        .map(|m| {
            [
                clean(truncate_bytes(&m.from.name, max_bytes)),
                clean(truncate_bytes(&m.from.email, max_bytes)),
                clean(truncate_bytes(&m.subject, max_bytes)),
                clean(truncate_chars(&m.preview, PREVIEW_CHARS)),
            ]
        })
        .collect();
    let entries: Vec<MessageEntry> = newest_first
        .iter()
        .zip(&cleaned)
        .zip(&ids)
        .map(|((m, [name, email, subject, preview]), id)| MessageEntry {
            id: id.as_deref(),
            uid: m.uid,
            from: SenderEntry { name, email },
            subject,
            preview: with_preview.then_some(&**preview),
            vip: m.vip,
        })
        .collect();

    // The skeleton with an empty list; each entry adds its own length plus a comma.
    let skeleton = to_json(&mail_payload(mail, Some(&[])));
    if skeleton.len() > max_bytes {
        let payload = mail_payload(mail, None);
        return fit_or_wake(to_json(&payload), account_id, max_bytes);
    }
    let budget = max_bytes - skeleton.len();

    let mut used = 0usize;
    let mut kept = 0usize;
    for entry in &entries {
        let cost = to_json(entry).len() + usize::from(kept > 0);
        if used + cost > budget {
            break;
        }
        used += cost;
        kept += 1;
    }

    let list: Vec<MessageEntry> = if kept > 0 {
        entries[..kept].to_vec()
    } else {
        match entries.first() {
            Some(newest) => shrink_to_fit(newest.clone(), budget).into_iter().collect(),
            None => Vec::new(),
        }
    };
    let out = to_json(&mail_payload(mail, Some(&list)));
    debug_assert!(out.len() <= max_bytes);
    out
}

#[derive(Serialize)]
struct ReadPayload<'a> {
    v: u8,
    #[serde(rename = "type")]
    kind: &'static str,
    account_id: &'a str,
    mailbox: &'a str,
    uids: &'a [u32],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    ids: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    unseen: Option<u32>,
}

/// Most UIDs one `read` push names: it fits any push service's budget.
pub const MAX_READ_UIDS: usize = 100;

/// The plaintext telling a device that messages it was told about were
/// read, moved or deleted elsewhere:
/// `{"v":1,"type":"read","account_id","mailbox","uids":[…],"ids":[…],"unseen":n}`,
/// naming the newest [`MAX_READ_UIDS`] of `uids`.
pub fn read(mail: &Mail<'_>, uids: &[u32]) -> Vec<u8> {
    let mut newest: Vec<u32> = uids.to_vec();
    newest.sort_unstable_by(|a, b| b.cmp(a));
    newest.dedup();
    newest.truncate(MAX_READ_UIDS);
    let ids: Vec<String> = if mail.uidvalidity == 0 {
        Vec::new()
    } else {
        newest
            .iter()
            .map(|&uid| message_id(mail.account_id, mail.mailbox, mail.uidvalidity, uid))
            .collect()
    };
    to_json(&ReadPayload {
        v: PAYLOAD_VERSION,
        kind: "read",
        account_id: mail.account_id,
        mailbox: truncate_chars(mail.mailbox, 512),
        uids: &newest,
        ids: &ids,
        unseen: mail.unseen,
    })
}

/// Shortens one entry until it takes at most `budget` bytes: the preview
/// first, then the subject, then the sender's name. `None` when even the bare
/// entry (uid and address) is too long.
fn shrink_to_fit(mut entry: MessageEntry<'_>, budget: usize) -> Option<MessageEntry<'_>> {
    let fits = |e: &MessageEntry| to_json(e).len() <= budget;
    if let Some(preview) = entry.preview {
        entry.preview = Some(longest_prefix(preview, |p| {
            fits(&MessageEntry {
                preview: Some(p),
                ..entry.clone()
            })
        }));
        if fits(&entry) {
            return Some(entry);
        }
    }
    entry.subject = longest_prefix(entry.subject, |s| {
        fits(&MessageEntry {
            subject: s,
            ..entry.clone()
        })
    });
    if fits(&entry) {
        return Some(entry);
    }
    entry.from.name = longest_prefix(entry.from.name, |n| {
        let mut probe = entry.clone();
        probe.from.name = n;
        fits(&probe)
    });
    fits(&entry).then_some(entry)
}

/// The longest prefix of `text` (on a character boundary) that `fits`,
/// assuming a shorter prefix never fits worse. Binary search over characters.
fn longest_prefix<'a>(text: &'a str, fits: impl Fn(&'a str) -> bool) -> &'a str {
    let bounds: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(text.len()))
        .collect();
    // bounds[0] = 0 (empty prefix); find the largest index whose prefix fits.
    let (mut low, mut high) = (0usize, bounds.len() - 1);
    if fits(text) {
        return text;
    }
    while low < high {
        let mid = (low + high).div_ceil(2);
        if fits(&text[..bounds[mid]]) {
            low = mid;
        } else {
            high = mid - 1;
        }
    }
    &text[..bounds[low]]
}

fn mail_payload<'a>(mail: &Mail<'a>, messages: Option<&'a [MessageEntry<'a>]>) -> MailPayload<'a> {
    MailPayload {
        v: PAYLOAD_VERSION,
        kind: "mail",
        account_id: mail.account_id,
        mailbox: mail.mailbox,
        count: mail.count,
        unseen: mail.unseen,
        messages,
    }
}

fn fit_or_wake(rendered: Vec<u8>, account_id: &str, max_bytes: usize) -> Vec<u8> {
    if rendered.len() <= max_bytes {
        rendered
    } else {
        wake(account_id, max_bytes)
    }
}

/// The wake shape; without the account id if that is what it takes, and
/// empty when not even `{"v":1,"type":"wake"}` fits.
fn wake(account_id: &str, max_bytes: usize) -> Vec<u8> {
    [Some(account_id), None]
        .into_iter()
        .map(|account_id| {
            to_json(&WakePayload {
                v: PAYLOAD_VERSION,
                kind: "wake",
                account_id,
            })
        })
        .find(|rendered| rendered.len() <= max_bytes)
        .unwrap_or_default()
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing plain structs of strings and integers into memory cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
#[path = "payload_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "payload_props.rs"]
mod props;
