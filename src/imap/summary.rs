//! Turning FETCH responses into [`MessageSummary`] values for pushes.
//!
//! The sender and subject come from a few header fields; the preview from the
//! server's `PREVIEW` (RFC 8970) when it has one, otherwise from a bounded
//! prefix of the body parsed with mail-parser (which decodes charsets and
//! transfer encodings, and turns HTML-only mail into text). Pure: fetch items
//! in, summaries out. Control characters (NUL, escapes, CR/LF of a badly
//! folded header) never reach a summary, and its texts are cut to
//! [`MAX_SERVER_TEXT`] bytes.

#![deny(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used
)]

use mail_parser::MessageParser;

use super::error::{cut, MAX_SERVER_TEXT};
use super::parser::Value;
use crate::mail::{Address, HeaderFacts, MessageSummary, MAX_RECIPIENTS, PREVIEW_CHARS};

/// How many bytes of the body are fetched when the preview is computed here:
/// enough for the first paragraphs even of HTML, small enough to stay cheap.
pub const BODY_PREFIX: usize = 16 * 1024;

/// The header fields needed: sender and subject, the fields devices' rules
/// decide by (recipients, mailing list, precedence), plus the MIME fields
/// that say how to read the body prefix.
const HEADER_FIELDS: &str = "BODY.PEEK[HEADER.FIELDS (FROM SUBJECT TO CC LIST-ID PRECEDENCE \
     MIME-VERSION CONTENT-TYPE CONTENT-TRANSFER-ENCODING)]";

/// Where the preview text comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreviewSource {
    /// No preview wanted: headers only.
    None,
    /// The server computes it (`PREVIEW`, RFC 8970).
    Server,
    /// The server speaks the earlier draft (`PREVIEW=FUZZY`).
    ServerFuzzy,
    /// Fetch a body prefix and extract the text here.
    Body,
}

impl PreviewSource {
    /// The FETCH item list for this source.
    pub fn fetch_items(self) -> String {
        match self {
            PreviewSource::None => format!("(UID {HEADER_FIELDS})"),
            PreviewSource::Server => format!("(UID {HEADER_FIELDS} PREVIEW)"),
            PreviewSource::ServerFuzzy => format!("(UID {HEADER_FIELDS} PREVIEW (FUZZY))"),
            PreviewSource::Body => {
                format!("(UID {HEADER_FIELDS} BODY.PEEK[TEXT]<0.{BODY_PREFIX}>)")
            }
        }
    }
}

/// Whether the server answered `PREVIEW NIL`: it offers no preview of this
/// message (RFC 8970 §3.2), which some servers answer for every message.
pub fn preview_is_nil(items: &[(String, Value)]) -> bool {
    items
        .iter()
        .any(|(key, value)| key == "PREVIEW" && matches!(value, Value::Nil))
}

/// Builds a summary from one FETCH response's items; `None` without a UID.
pub fn from_fetch(items: &[(String, Value)]) -> Option<MessageSummary> {
    let mut uid = None;
    let mut header: &[u8] = &[];
    let mut text: Option<&[u8]> = None;
    let mut server_preview: Option<&[u8]> = None;
    for (key, value) in items {
        match (key.as_str(), value) {
            ("UID", v) => uid = v.as_u32(),
            (k, Value::Str(b)) if k.starts_with("BODY[HEADER") => header = b,
            (k, Value::Str(b)) if k.starts_with("BODY[TEXT]") => text = Some(b),
            ("PREVIEW", Value::Str(b)) => server_preview = Some(b),
            // The draft form: `PREVIEW (FUZZY "text")`.
            ("PREVIEW", Value::List(list)) => {
                server_preview = list.iter().rev().find_map(|v| match v {
                    Value::Str(b) => Some(b.as_slice()),
                    _ => None,
                })
            }
            _ => {}
        }
    }
    let uid = uid?;
    let mut raw = header.to_vec();
    if let Some(text) = text {
        if !raw.ends_with(b"\r\n\r\n") && !raw.ends_with(b"\n\n") {
            raw.extend_from_slice(b"\r\n");
        }
        raw.extend_from_slice(text);
    }
    let parser = MessageParser::default();
    let message = if text.is_some() {
        parser.parse(&raw)
    } else {
        parser.parse_headers(&raw)
    };
    let mut summary = MessageSummary {
        uid,
        ..Default::default()
    };
    if let Some(message) = &message {
        if let Some(addr) = message.from().and_then(|a| a.first()) {
            summary.from = Address {
                name: clean_text(addr.name.as_deref().unwrap_or("")),
                email: clean_text(addr.address.as_deref().unwrap_or("")),
            };
        }
        summary.subject = clean_text(message.subject().unwrap_or(""));
        summary.facts = header_facts(message);
        if text.is_some() {
            if let Some(body) = message.body_text(0) {
                summary.preview = fold_preview(&body);
            }
        }
    }
    if let Some(preview) = server_preview {
        summary.preview = fold_preview(&String::from_utf8_lossy(preview));
    }
    Some(summary)
}

/// The recipients in To and Cc, and whether a mailing list or bulk sender
/// sent it.
fn header_facts(message: &mail_parser::Message<'_>) -> HeaderFacts {
    let mut recipients = Vec::new();
    for list in [message.to(), message.cc()].into_iter().flatten() {
        for address in list.iter() {
            if recipients.len() == MAX_RECIPIENTS {
                break;
            }
            if let Some(email) = address.address.as_deref() {
                recipients.push(clean_text(email).to_ascii_lowercase());
            }
        }
    }
    let precedence = message
        .header_raw("Precedence")
        .map(|p| p.trim().to_ascii_lowercase());
    let list = message.header_raw("List-Id").is_some()
        || matches!(precedence.as_deref(), Some("bulk" | "list" | "junk"));
    HeaderFacts { recipients, list }
}

/// Header text as a summary may carry it: control characters become
/// spaces (a NUL or an escape sequence must not reach a phone's screen or a
/// log), the ends are trimmed, and the text is cut to [`MAX_SERVER_TEXT`].
pub fn clean_text(text: &str) -> String {
    let head = crate::text::truncate_chars(text, MAX_SERVER_TEXT);
    let cleaned = crate::text::clean(head);
    cut(cleaned.trim().to_owned(), MAX_SERVER_TEXT)
}

/// Folds runs of whitespace to one space and keeps at most
/// [`PREVIEW_CHARS`] characters.
pub fn fold_preview(text: &str) -> String {
    let mut out = String::new();
    for (count, word) in text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .enumerate()
    {
        if count > 0 {
            out.push(' ');
        }
        out.push_str(word);
        if out.chars().nth(PREVIEW_CHARS).is_some() {
            break;
        }
    }
    out.chars().take(PREVIEW_CHARS).collect()
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;

    fn items(header: &[u8], text: Option<&[u8]>) -> Vec<(String, Value)> {
        let mut v = vec![
            ("UID".to_string(), Value::Number(9)),
            (
                "BODY[HEADER.FIELDS (FROM SUBJECT)]".to_string(),
                Value::Str(header.to_vec()),
            ),
        ];
        if let Some(t) = text {
            v.push(("BODY[TEXT]<0>".into(), Value::Str(t.to_vec())));
        }
        v
    }

    #[test]
    fn decodes_encoded_headers() {
        let s = from_fetch(&items(
            b"From: =?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?= <jm@example.org>\r\n\
Subject: =?ISO-8859-1?Q?Gr=FC=DFe?= aus Berlin\r\n\r\n",
            None,
        ))
        .unwrap();
        assert_eq!(s.uid, 9);
        assert_eq!(s.from.name, "Jürgen Müller");
        assert_eq!(s.from.email, "jm@example.org");
        assert_eq!(s.subject, "Grüße aus Berlin");
        assert_eq!(s.preview, "");
    }

    #[test]
    fn preview_from_body_prefix() {
        let s = from_fetch(&items(
            b"From: a@b.c\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\r\n",
            Some(b"Caf=E9   au\r\n\r\n  lait"),
        ))
        .unwrap();
        assert_eq!(s.from.email, "a@b.c");
        assert_eq!(s.preview, "Café au lait");
    }

    #[test]
    fn server_preview_wins_and_is_bounded() {
        let long = "word ".repeat(100);
        let mut it = items(b"Subject: x\r\n\r\n", None);
        it.push(("PREVIEW".into(), Value::Str(long.into_bytes())));
        let s = from_fetch(&it).unwrap();
        assert_eq!(s.preview.chars().count(), PREVIEW_CHARS);
        assert!(s.preview.starts_with("word word"));
        let mut it = items(b"Subject: x\r\n\r\n", None);
        it.push((
            "PREVIEW".into(),
            Value::List(vec![
                Value::Atom("FUZZY".into()),
                Value::Str(b" hi\n".to_vec()),
            ]),
        ));
        assert_eq!(from_fetch(&it).unwrap().preview, "hi");
    }

    #[test]
    fn control_characters_never_reach_a_summary() {
        let s = from_fetch(&items(
            b"From: \"Ev\x00il\x1b[2J\" <a\x00@b.c>\r\nSubject: Hi\x00 there\x07\r\n\r\n",
            Some(b"pre\x00view\x1b text"),
        ))
        .unwrap();
        for text in [&s.subject, &s.from.name, &s.from.email, &s.preview] {
            assert!(!text.chars().any(char::is_control), "{text:?}");
        }
        assert_eq!(s.subject, "Hi  there");
        assert_eq!(s.preview, "pre view text");
        let long = from_fetch(&items(
            format!("Subject: {}\r\n\r\n", "\u{e9}".repeat(5000)).as_bytes(),
            None,
        ))
        .unwrap();
        assert!(long.subject.len() <= MAX_SERVER_TEXT);
    }

    #[test]
    fn recipients_and_list_headers_become_facts() {
        let s = from_fetch(&items(
            b"From: a@b.c\r\nTo: \"Me\" <Me@Example.org>, x@y.z\r\nCc: team@example.org\r\n\
List-Id: <dev.lists.example.org>\r\nSubject: s\r\n\r\n",
            None,
        ))
        .unwrap();
        assert_eq!(
            s.facts.recipients,
            ["me@example.org", "x@y.z", "team@example.org"]
        );
        assert!(s.facts.list);
        assert!(s.facts.names("ME@example.org"));
        assert!(!s.facts.names("a@b.c"));
        let bulk = from_fetch(&items(b"Precedence: Bulk\r\n\r\n", None)).unwrap();
        assert!(bulk.facts.list);
        let plain = from_fetch(&items(b"Precedence: first-class\r\n\r\n", None)).unwrap();
        assert!(!plain.facts.list);
        let many: String = (0..500).map(|i| format!("u{i}@x.y, ")).collect();
        let wide = from_fetch(&items(format!("To: {many}\r\n\r\n").as_bytes(), None)).unwrap();
        assert_eq!(wide.facts.recipients.len(), MAX_RECIPIENTS);
    }

    #[test]
    fn no_uid_no_summary() {
        assert!(from_fetch(&[("FLAGS".into(), Value::List(vec![]))]).is_none());
    }

    #[test]
    fn folding() {
        assert_eq!(fold_preview("  a\t\r\n b  "), "a b");
        assert_eq!(
            fold_preview(&"ü".repeat(500)).chars().count(),
            PREVIEW_CHARS
        );
    }
}
