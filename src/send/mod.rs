//! Sending mail the Lemonade way: the message goes to SMTP and to Sent
//! without travelling twice, and forwarded parts never pass through the
//! phone (nor, with BURL, through the gateway).
//!
//! ```text
//!  api/send.rs ──prepare──▶ SendJob (store, flushed) ──▶ outbox task
//!                 │                                         │ per step: record result
//!   compose.rs: segments      plan.rs: burl | catenate | assembled
//!   (text, uploads, IMAP refs)  spool.rs: base64 uploads, piecewise FETCH, spool file
//! ```
//!
//! `compose` and `plan` are pure; `prepare` resolves a request against the
//! uploads and the IMAP server (so bad references are refused before
//! anything is stored); `outbox` runs the state machine (see its docs for
//! the crash-safety rules).

pub mod compose;
mod context;
mod failure;
pub mod outbox;
pub mod plan;
pub mod prepare;
mod request;
pub mod spool;

pub use outbox::{Outbox, SendContext};
