//! Entry points for the fuzz targets in `fuzz/` (a crate of its own, so the
//! normal build never needs a fuzzer): thin wrappers over the parsers that
//! take what the network or a client sent, so the targets do not depend on
//! how the modules behind them are laid out. Also the property tests of the
//! same functions, run with the unit tests. Not an API.
#![deny(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used
)]

use crate::imap::framer::{FrameError, Framer};
use crate::imap::parser::{parse_response, ParseError, Response, Untagged};
use crate::send::compose;
use crate::store::send::Segment;

pub use crate::imap::UidSet;
pub use crate::mail::{MessageSummary, MAX_RECIPIENTS};
pub use crate::oauth::email_claim;
pub use crate::read::state::StateToken;
pub use crate::read::structure::{BodyStructure, Part};
pub use crate::rules::{MessageFacts, QuietHoursInput, RulesInput, Verdict};
pub use crate::sasl::{refusal_text, ErrorChallenge, MAX_CHALLENGE_FIELD};
pub use crate::send::compose::{valid_address, Attachment, Draft};
pub use crate::smtp::{Reply, ReplyError};

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod properties;

/// The IMAP response framer of one connection.
#[derive(Debug, Clone)]
pub struct ImapFramer(Framer);

impl ImapFramer {
    /// A framer refusing responses longer than `max_len` bytes.
    pub fn new(max_len: usize) -> Self {
        ImapFramer(Framer::new(max_len))
    }

    /// The length of the first complete response in `buf`, as
    /// [`Framer::next_frame`].
    pub fn next_frame(&mut self, buf: &[u8]) -> Result<Option<usize>, FrameError> {
        self.0.next_frame(buf)
    }
}

/// Parses one framed IMAP response.
pub fn imap_parse(frame: &[u8]) -> Result<Response, ParseError> {
    parse_response(frame)
}

/// The summary a push would carry of a message with this header block
/// (sender, subject, and the recipients and list marks rules decide by).
pub fn header_summary(header: &[u8]) -> Option<MessageSummary> {
    crate::imap::summary_from_fetch(&[
        ("UID".into(), crate::imap::Value::Number(1)),
        (
            "BODY[HEADER.FIELDS (FROM SUBJECT TO CC LIST-ID PRECEDENCE)]".into(),
            crate::imap::Value::Str(header.to_vec()),
        ),
    ])
}

/// The BODYSTRUCTURE of a framed `* n FETCH (... BODYSTRUCTURE (...))`
/// response, interpreted; `None` when the frame carries none.
pub fn body_structure(frame: &[u8]) -> Option<BodyStructure> {
    let Ok(Response::Untagged(Untagged::Fetch { items, .. })) = parse_response(frame) else {
        return None;
    };
    let (_, value) = items.iter().find(|(k, _)| k == "BODYSTRUCTURE")?;
    Some(BodyStructure::from_value(value))
}

/// What the send path makes of `section` in the BODYSTRUCTURE of `frame`:
/// its declared size and whether it is a multipart (`None`: no such part or
/// no size, or no BODYSTRUCTURE).
pub fn send_part_size(frame: &[u8], section: &str) -> Option<(u64, bool)> {
    let Ok(Response::Untagged(Untagged::Fetch { items, .. })) = parse_response(frame) else {
        return None;
    };
    let (_, value) = items.iter().find(|(k, _)| k == "BODYSTRUCTURE")?;
    crate::send::prepare::part_size(value, section)
}

/// One complete SMTP reply at the front of `buf`, as the client reads it.
pub fn smtp_reply(buf: &[u8]) -> Result<Option<(Reply, usize)>, ReplyError> {
    crate::smtp::parse_reply(buf)
}

/// A mailbox name in modified UTF-7 (RFC 3501 5.1.3).
pub fn utf7_encode(name: &str) -> String {
    crate::imap::encode_utf7(name)
}

/// A mailbox name from modified UTF-7; `None` when not valid.
pub fn utf7_decode(encoded: &[u8]) -> Option<String> {
    crate::imap::decode_utf7(encoded)
}

/// UIDs as a compact IMAP set (`1:3,7`).
pub fn uid_set(uids: &[u32]) -> String {
    crate::imap::uid_set(uids)
}

/// An IMAP UID set expanded, sorted and without repeats; `None` when
/// malformed or holding more than `limit` UIDs.
pub fn expand_uid_set(set: &str, limit: usize) -> Option<Vec<u32>> {
    crate::imap::expand_set(set, limit)
}

/// The message `draft` composes to, with the bytes of each uploaded
/// attachment taken from `uploads` in order (missing ones are empty) and
/// references to the server left out.
pub fn compose_message(draft: &Draft, uploads: &[&[u8]]) -> Vec<u8> {
    let mut uploads = uploads.iter();
    let mut out = Vec::new();
    for segment in compose::compose(draft) {
        match segment {
            Segment::Text { text } => out.extend_from_slice(text.as_bytes()),
            Segment::Upload { .. } => {
                let raw = uploads.next().copied().unwrap_or_default();
                out.extend_from_slice(&compose::base64_lines(raw));
            }
            Segment::Ref { .. } => {}
        }
    }
    out
}

/// The size the send path announces for what `draft` composes to.
pub fn composed_size(draft: &Draft) -> u64 {
    compose::total_size(&compose::compose(draft))
}

/// A SASL error challenge as the IMAP and SMTP clients read it (the text
/// after `+ ` or `334 `).
pub fn sasl_challenge(text: &str) -> Option<ErrorChallenge> {
    ErrorChallenge::parse(text)
}

/// `raw` in standard base64, as a server encodes its challenge.
pub fn base64_encode(raw: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(raw)
}
