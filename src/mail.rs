//! What the gateway knows about a message when it tells a phone about it.
//!
//! The watcher fills a [`MessageSummary`] from IMAP, the store keeps it in the
//! push queue, and the notifier turns it into a payload for each device tier.

use serde::{Deserialize, Serialize};

use crate::text::{trim, truncate_chars};

/// A sender or recipient as shown on a phone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    /// Display name, decoded from RFC 2047; empty when the header had none.
    pub name: String,
    /// The address itself (`local@domain`).
    pub email: String,
}

/// One new message, as much as a push payload may carry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageSummary {
    /// The message's UID in its mailbox.
    pub uid: u32,
    /// The first `From` address.
    pub from: Address,
    /// The decoded subject.
    pub subject: String,
    /// Up to [`PREVIEW_CHARS`] characters of the plain text, whitespace folded.
    pub preview: String,
    /// The sender is one of the device's VIPs (set per device when queued).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub vip: bool,
    /// What a device's rules decide by; read from the headers, never queued.
    #[serde(skip)]
    pub facts: HeaderFacts,
}

/// What rules decide by, beyond the sender: the recipients and whether the
/// message came through a mailing list or as bulk mail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderFacts {
    /// The addresses in `To` and `Cc`, lower-cased; at most [`MAX_RECIPIENTS`].
    pub recipients: Vec<String>,
    /// It has a `List-Id`, or `Precedence: bulk`, `list` or `junk`.
    pub list: bool,
}

/// Most recipients kept of one message: enough to find the account's
/// address in any mail a person writes, bounded for mail to thousands.
pub const MAX_RECIPIENTS: usize = 100;

impl HeaderFacts {
    /// Whether `address` is among the recipients (case-insensitive).
    pub fn names(&self, address: &str) -> bool {
        let address = address.trim().to_ascii_lowercase();
        !address.is_empty() && self.recipients.contains(&address)
    }
}

/// The longest preview a push or a listing carries, in characters.
pub const PREVIEW_CHARS: usize = 200;

/// The most text one push payload can carry: the plaintext of one RFC 8291
/// record (4096 bytes less its header, tag and padding delimiter). The
/// notifier checks at compile time that its own limit is the same.
pub const MAX_PAYLOAD_TEXT: usize = 3993;

/// Cuts queued summaries to what a payload can carry: each text to what the
/// largest payload could show of it (control characters made spaces), and
/// then the oldest messages whose texts could no longer fit beside the newer
/// ones. The notifier renders the same payload from the result as from the
/// original, for every budget up to [`MAX_PAYLOAD_TEXT`]; the newest message
/// is always kept.
pub fn trim_queued(messages: &mut Vec<MessageSummary>) {
    let mut cost_by_uid: Vec<(u32, usize)> = Vec::with_capacity(messages.len());
    for m in messages.iter_mut() {
        trim(&mut m.from.name, MAX_PAYLOAD_TEXT);
        trim(&mut m.from.email, MAX_PAYLOAD_TEXT);
        trim(&mut m.subject, MAX_PAYLOAD_TEXT);
        let preview = truncate_chars(&m.preview, PREVIEW_CHARS).len();
        trim(&mut m.preview, preview);
        let cost = m.from.name.len() + m.from.email.len() + m.subject.len() + m.preview.len();
        cost_by_uid.push((m.uid, cost));
    }
    // An entry renders to more than its texts' bytes, so once the texts of
    // the newest messages add up past the limit, the older ones never fit.
    cost_by_uid.sort_by_key(|&(uid, _)| std::cmp::Reverse(uid));
    let mut total = 0usize;
    let mut oldest_kept = None;
    for (i, &(uid, cost)) in cost_by_uid.iter().enumerate() {
        total = total.saturating_add(cost);
        if i > 0 && total > MAX_PAYLOAD_TEXT {
            break;
        }
        oldest_kept = Some(uid);
    }
    if let Some(oldest) = oldest_kept {
        messages.retain(|m| m.uid >= oldest);
    }
}
