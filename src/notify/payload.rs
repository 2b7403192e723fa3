//! The push plaintext: compact JSON shaped by the device's payload tier.
//!
//! ```text
//! wake     {"v":1,"type":"wake","account_id":"a1"}
//! count    {"v":1,"type":"mail","account_id":"a1","mailbox":"INBOX","count":3}
//! headers  … ,"messages":[{"uid":9,"from":{"name":"Ann","email":"ann@x"},"subject":"Hi"}]}
//! preview  … each message also carries "preview" (≤ 200 characters)
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
    messages: Option<&'a [MessageEntry<'a>]>,
}

#[derive(Serialize, Clone)]
struct MessageEntry<'a> {
    uid: u32,
    from: SenderEntry<'a>,
    subject: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    preview: Option<&'a str>,
}

#[derive(Serialize, Clone)]
struct SenderEntry<'a> {
    name: &'a str,
    email: &'a str,
}

/// Renders the plaintext of one push for `tier`, never longer than `max_bytes`.
///
/// `messages` may come in any order; the payload lists them newest (highest
/// UID) first. `count` is how many new messages the push stands for and is
/// passed through unchanged. When even the smallest shape does not fit
/// (a budget of a few bytes), the result is empty: a push without payload.
pub fn build(
    tier: PayloadTier,
    account_id: &str,
    mailbox: &str,
    count: u32,
    messages: &[MessageSummary],
    max_bytes: usize,
) -> Vec<u8> {
    let with_preview = match tier {
        PayloadTier::Wake => return wake(account_id, max_bytes),
        PayloadTier::Count => {
            let payload = mail_payload(account_id, mailbox, count, None);
            return fit_or_wake(to_json(&payload), account_id, max_bytes);
        }
        PayloadTier::Headers => false,
        PayloadTier::Preview => true,
    };

    let mut newest_first: Vec<&MessageSummary> = messages.iter().collect();
    newest_first.sort_by_key(|m| std::cmp::Reverse(m.uid));
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
        .map(|(m, [name, email, subject, preview])| MessageEntry {
            uid: m.uid,
            from: SenderEntry { name, email },
            subject,
            preview: with_preview.then_some(&**preview),
        })
        .collect();

    // The skeleton with an empty list; each entry adds its own length plus a comma.
    let skeleton = to_json(&mail_payload(account_id, mailbox, count, Some(&[])));
    if skeleton.len() > max_bytes {
        let payload = mail_payload(account_id, mailbox, count, None);
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
    let out = to_json(&mail_payload(account_id, mailbox, count, Some(&list)));
    debug_assert!(out.len() <= max_bytes);
    out
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

fn mail_payload<'a>(
    account_id: &'a str,
    mailbox: &'a str,
    count: u32,
    messages: Option<&'a [MessageEntry<'a>]>,
) -> MailPayload<'a> {
    MailPayload {
        v: PAYLOAD_VERSION,
        kind: "mail",
        account_id,
        mailbox,
        count,
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
