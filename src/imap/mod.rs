//! A small, memory-lean async IMAP client for the watcher and the mail API.
//!
//! This module owns everything IMAP on the wire: the greeting and STARTTLS,
//! login (`AUTHENTICATE PLAIN` or `LOGIN`; with an OAuth2 token `XOAUTH2` or
//! `OAUTHBEARER`, `oauth.rs`), capabilities, ENABLE, EXAMINE,
//! STATUS, UID SEARCH, the FETCH of push summaries, NOTIFY and IDLE; for the
//! mail API also LIST, SELECT, UID FETCH with CHANGEDSINCE/VANISHED
//! (`fetch.rs`), UID STORE/MOVE/EXPUNGE and SEARCH/ESEARCH (`modify.rs`); and
//! for the send path APPEND with CATENATE (`append.rs`), sections fetched
//! piecewise, SEARCH by Message-ID, removal and GENURLAUTH (`message.rs`),
//! and IMAP URLs (`url.rs`).
//! Connecting and TLS live in [`crate::net`].
//!
//! ```text
//!  socket ──bytes──▶ framer ──one response──▶ parser ──▶ Response
//!                  (framer.rs)              (parser.rs)     │
//!   command.rs ◀── typed calls ── ImapClient ◀──────────────┘
//!   (quoting, literals,           (client.rs: core, login;
//!    modified UTF-7)               exchange.rs: one command, with
//!                                  DONE before / IDLE behind it;
//!                                  mailbox.rs; idle.rs)
//! ```
//!
//! The protocol code (framer, parser, command builder, summary extraction)
//! is pure and tested with transcripts split at every byte. Only `client.rs`,
//! `exchange.rs`, `mailbox.rs` and `idle.rs` touch the socket.
//!
//! # Idle cost
//! An idle watcher holds thousands of [`ImapClient`]s, so an idle one holds
//! no read buffer: `idle_next` waits for socket readiness first and only
//! then allocates a 4 KiB read buffer, which is released as soon as the
//! complete response has been parsed. What stays is the struct itself
//! (about 200 bytes), the capability list as one string (a few hundred
//! bytes), the socket, and with TLS the boxed rustls connection state (its buffers;
//! about 7 KiB measured for rustls in general). The event queue allocates
//! only while it holds events.
//!
//! # What a server can cost
//! Each command has a byte budget sized to what it asked (`budget.rs`): the
//! responses it collects and each single one are bounded by it, and one
//! process-wide budget bounds the large responses all connections hold at
//! once. Going over fails the command with [`ImapError::TooLarge`] and
//! drops the connection. Texts from the server are cut to
//! [`MAX_SERVER_TEXT`] where they are parsed; numbers in SEARCH,
//! ESEARCH and VANISHED become a compact [`UidSet`]. FETCH answers about
//! messages the command did not ask for, or beyond the mailbox's EXISTS,
//! are dropped.

mod append;
/// Public so the gateway can set the process budget at start.
pub mod budget;
mod client;
mod command;
mod error;
mod exchange;
mod fetch;
/// Public so fuzz targets can drive it; the client is the normal entry.
pub mod framer;
mod idle;
mod lexer;
mod mailbox;
mod message;
mod modify;
mod oauth;
/// Public so fuzz targets can drive it; the client is the normal entry.
pub mod parser;
mod seen;
mod summary;
pub use summary::{clean_text as summary_text, fold_preview, from_fetch as summary_from_fetch};
/// Public so fuzz targets can drive it; the client is the normal entry.
pub mod uidset;
mod url;

pub use append::{AppendPart, AppendUid};
pub use budget::InflightBudget;
pub use client::{Capabilities, ImapClient, DEFAULT_TIMEOUT};
pub use command::{decode_utf7, encode_utf7};
pub use command::{uid_set, Command};
pub use error::{ImapError, MAX_SERVER_TEXT};
pub use fetch::{expand_set, FetchResult, FetchedMessage, MailboxEntry};
pub use mailbox::{NewMessages, SummaryDetail};
pub use message::{find_part, PartInfo};
pub use modify::{search_criteria, valid_flag, SearchQuery};
pub use parser::Value;
pub use uidset::UidSet;
pub use url::{with_submit_access, MessageUrl};

/// The state of a mailbox, from EXAMINE or STATUS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxStatus {
    pub uidvalidity: u32,
    pub uidnext: u32,
    /// Messages in the mailbox (EXISTS, or STATUS MESSAGES).
    pub exists: u32,
    /// Present when the server supports CONDSTORE for this mailbox.
    pub highestmodseq: Option<u64>,
}

/// Something the server reported without being asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdleEvent {
    /// The selected mailbox now has this many messages.
    Exists(u32),
    /// The message with this sequence number was expunged.
    Expunge(u32),
    /// Messages were expunged (QRESYNC reports UIDs instead of numbers).
    Vanished,
    /// Flags or other data of a message changed.
    Fetch,
    /// Another mailbox changed (NOTIFY); the name is decoded.
    Status {
        mailbox: String,
        uidnext: Option<u32>,
        uidvalidity: Option<u32>,
        messages: Option<u32>,
    },
    /// The server is closing the connection; its reason.
    Bye(String),
    /// Anything else (e.g. `* OK Still here`).
    Other,
}
