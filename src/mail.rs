//! What the gateway knows about a message when it tells a phone about it.
//!
//! The watcher fills a [`MessageSummary`] from IMAP, the store keeps it in the
//! push queue, and the notifier turns it into a payload for each device tier.

use serde::{Deserialize, Serialize};

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
}

/// The longest preview a push or a listing carries, in characters.
pub const PREVIEW_CHARS: usize = 200;
