//! SMTP submission (RFC 6409): a small client for the send path.
//!
//! `reply.rs` is the pure part (reply framing, EHLO capabilities, tested with
//! transcripts split at every byte); `client.rs` owns one connection:
//! greeting, EHLO, STARTTLS, AUTH (PLAIN, LOGIN; XOAUTH2 and OAUTHBEARER
//! with [`crate::sasl`]), MAIL/RCPT, `BURL imap` (RFC 4468) and the
//! message itself by DATA (dot-stuffed while streaming) or BDAT (RFC 3030).
//! Hand-written rather than lettre's: lettre sends a message only from one
//! in-memory buffer and hides EHLO keywords it does not know (`BURL`), while
//! the send path streams messages from disk and must see `BURL imap`.

mod client;
mod reply;

pub use client::{SmtpClient, SmtpError};
pub use reply::{parse_reply, Ehlo, Reply, ReplyError};
