//! Composing a message as a list of [`Segment`]s: text the gateway writes
//! (headers, boundaries, encoded bodies), uploaded files (base64 on the
//! way out) and references to bytes already on the IMAP server. The same
//! segments become a CATENATE APPEND (references as `URL` parts) or a
//! message assembled in the gateway. Pure: no I/O.

use base64::Engine;

use crate::store::send::Segment;

/// An attachment resolved against the uploads and the IMAP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attachment {
    /// An uploaded file (already owned by the job: `file` is its path).
    Upload {
        file: String,
        raw_size: u64,
        content_type: String,
        filename: String,
    },
    /// A part of a message on the server: its MIME headers and body are
    /// copied as they are (`mime_size` is the size of `section.MIME`).
    Part {
        mailbox: String,
        uidvalidity: u32,
        uid: u32,
        section: String,
        mime_size: u64,
        size: u64,
    },
    /// A whole message, attached as message/rfc822 (a forward).
    Message {
        mailbox: String,
        uidvalidity: u32,
        uid: u32,
        size: u64,
    },
}

/// Everything a message is made of, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    pub attachments: Vec<Attachment>,
    /// The Message-ID of the mail replied to, and its References.
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    /// `<…>`, unique.
    pub message_id: String,
    /// RFC 5322 date.
    pub date: String,
    /// Unique boundary stem (no characters that need quoting).
    pub boundary: String,
}

/// The size of `raw` bytes as base64 in 76-column CRLF lines.
pub fn base64_lines_size(raw: u64) -> u64 {
    let full = raw / 57;
    let rem = raw % 57;
    full * 78 + if rem > 0 { rem.div_ceil(3) * 4 + 2 } else { 0 }
}

/// Encodes `raw` as base64 in 76-column CRLF lines. Feed whole multiples of
/// 57 bytes except for the last call to get the lines of the whole.
pub fn base64_lines(raw: &[u8]) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut out = Vec::with_capacity(raw.len() / 57 * 78 + 80);
    for line in raw.chunks(57) {
        out.extend_from_slice(b64.encode(line).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The size of a message built from `segments`.
pub fn total_size(segments: &[Segment]) -> u64 {
    segments
        .iter()
        .map(|s| match s {
            Segment::Text { text } => text.len() as u64,
            Segment::Upload { raw_size, .. } => base64_lines_size(*raw_size),
            Segment::Ref { size, .. } => *size,
        })
        .sum()
}

/// An RFC 2047 encoded word when `value` is not plain ASCII.
fn header_text(value: &str) -> String {
    if value.is_ascii() && !value.chars().any(|c| c.is_ascii_control()) {
        return value.to_owned();
    }
    // Encoded words are at most 75 characters: split the UTF-8 on character
    // boundaries into pieces of at most 45 bytes.
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut words = Vec::new();
    let mut piece = String::new();
    for c in value.chars().filter(|c| !c.is_control()) {
        if piece.len() + c.len_utf8() > 45 {
            words.push(format!("=?UTF-8?B?{}?=", b64.encode(&piece)));
            piece.clear();
        }
        piece.push(c);
    }
    if !piece.is_empty() {
        words.push(format!("=?UTF-8?B?{}?=", b64.encode(&piece)));
    }
    words.join("\r\n ")
}

/// A text body as (Content-Transfer-Encoding, encoded CRLF text).
fn encode_body(text: &str) -> (&'static str, String) {
    let normalized = text.replace("\r\n", "\n").replace('\r', "\n");
    let lines_ok = normalized.lines().all(|l| l.len() <= 900);
    if normalized.is_ascii() && lines_ok && !normalized.chars().any(|c| c == '\0') {
        let mut out = normalized.replace('\n', "\r\n");
        if !out.ends_with("\r\n") {
            out.push_str("\r\n");
        }
        return ("7bit", out);
    }
    let encoded = base64_lines(normalized.replace('\n', "\r\n").as_bytes());
    ("base64", String::from_utf8_lossy(&encoded).into_owned())
}

fn text_part(content_type: &str, body: &str) -> String {
    let (cte, encoded) = encode_body(body);
    format!(
        "Content-Type: {content_type}; charset=utf-8\r\nContent-Transfer-Encoding: {cte}\r\n\r\n{encoded}"
    )
}

/// Quotes a MIME parameter value (filenames): non-ASCII becomes RFC 2231.
fn mime_param(name: &str, value: &str) -> String {
    if value.is_ascii() && !value.chars().any(|c| c.is_ascii_control()) {
        let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
        return format!("{name}=\"{escaped}\"");
    }
    let mut out = format!("{name}*=UTF-8''");
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Builds the segments of `draft`.
pub fn compose(draft: &Draft) -> Vec<Segment> {
    let mut head = String::new();
    head.push_str(&format!("Date: {}\r\n", draft.date));
    head.push_str(&format!("From: {}\r\n", draft.from));
    if !draft.to.is_empty() {
        head.push_str(&format!("To: {}\r\n", draft.to.join(",\r\n ")));
    }
    if !draft.cc.is_empty() {
        head.push_str(&format!("Cc: {}\r\n", draft.cc.join(",\r\n ")));
    }
    head.push_str(&format!("Subject: {}\r\n", header_text(&draft.subject)));
    head.push_str(&format!("Message-ID: {}\r\n", draft.message_id));
    if let Some(parent) = &draft.in_reply_to {
        head.push_str(&format!("In-Reply-To: {parent}\r\n"));
        let mut refs = draft.references.clone();
        if !refs.contains(parent) {
            refs.push(parent.clone());
        }
        head.push_str(&format!("References: {}\r\n", refs.join("\r\n ")));
    }
    head.push_str("MIME-Version: 1.0\r\n");

    let body = match &draft.html {
        None => text_part("text/plain", &draft.text),
        Some(html) => {
            let alt = format!("{}-alt", draft.boundary);
            format!(
                "Content-Type: multipart/alternative; boundary=\"{alt}\"\r\n\r\n--{alt}\r\n{}\r\n--{alt}\r\n{}\r\n--{alt}--\r\n",
                text_part("text/plain", &draft.text),
                text_part("text/html", html),
            )
        }
    };
    if draft.attachments.is_empty() {
        head.push_str(&body);
        return vec![Segment::Text { text: head }];
    }

    let b = &draft.boundary;
    let mut segments = Vec::new();
    let mut text = head;
    text.push_str(&format!(
        "Content-Type: multipart/mixed; boundary=\"{b}\"\r\n\r\n--{b}\r\n{body}"
    ));
    for attachment in &draft.attachments {
        text.push_str(&format!("\r\n--{b}\r\n"));
        match attachment {
            Attachment::Upload {
                file,
                raw_size,
                content_type,
                filename,
            } => {
                text.push_str(&format!(
                    "Content-Type: {content_type}; {}\r\nContent-Disposition: attachment; {}\r\nContent-Transfer-Encoding: base64\r\n\r\n",
                    mime_param("name", filename),
                    mime_param("filename", filename),
                ));
                segments.push(Segment::Text {
                    text: std::mem::take(&mut text),
                });
                segments.push(Segment::Upload {
                    file: file.clone(),
                    raw_size: *raw_size,
                });
            }
            Attachment::Part {
                mailbox,
                uidvalidity,
                uid,
                section,
                mime_size,
                size,
            } => {
                segments.push(Segment::Text {
                    text: std::mem::take(&mut text),
                });
                segments.push(Segment::Ref {
                    mailbox: mailbox.clone(),
                    uidvalidity: *uidvalidity,
                    uid: *uid,
                    section: Some(format!("{section}.MIME")),
                    size: *mime_size,
                });
                segments.push(Segment::Ref {
                    mailbox: mailbox.clone(),
                    uidvalidity: *uidvalidity,
                    uid: *uid,
                    section: Some(section.clone()),
                    size: *size,
                });
            }
            Attachment::Message {
                mailbox,
                uidvalidity,
                uid,
                size,
            } => {
                text.push_str(
                    "Content-Type: message/rfc822\r\nContent-Disposition: attachment; filename=\"forwarded.eml\"\r\n\r\n",
                );
                segments.push(Segment::Text {
                    text: std::mem::take(&mut text),
                });
                segments.push(Segment::Ref {
                    mailbox: mailbox.clone(),
                    uidvalidity: *uidvalidity,
                    uid: *uid,
                    section: None,
                    size: *size,
                });
            }
        }
    }
    text.push_str(&format!("\r\n--{b}--\r\n"));
    segments.push(Segment::Text { text });
    segments
}

/// `Sat, 28 Nov 2026 00:39:39 +0000` for a Unix time in seconds.
pub fn rfc5322_date(unix_secs: i64) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(unix_secs) else {
        return "Thu, 01 Jan 1970 00:00:00 +0000".into();
    };
    let weekday = &t.weekday().to_string()[..3];
    let month = &t.month().to_string()[..3];
    format!(
        "{weekday}, {:02} {month} {} {:02}:{:02}:{:02} +0000",
        t.day(),
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Whether `addr` is a plain address the gateway will put in headers and
/// SMTP commands: `local@domain`, printable ASCII, no specials that could
/// break out of a header or a command.
pub fn valid_address(addr: &str) -> bool {
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return false;
    };
    addr.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && !domain.is_empty()
        && addr
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"<>()[]\\,;:\"".contains(&b))
        && domain
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> Draft {
        Draft {
            from: "alice@example.org".into(),
            to: vec!["bob@example.org".into()],
            cc: vec![],
            subject: "Grüße".into(),
            text: "Hi\n.dot line\n".into(),
            html: None,
            attachments: vec![],
            in_reply_to: None,
            references: vec![],
            message_id: "<m1@example.org>".into(),
            date: rfc5322_date(0),
            boundary: "lmn-b1".into(),
        }
    }

    #[test]
    fn simple_message_is_one_text_segment_that_parses() {
        let segments = compose(&draft());
        assert_eq!(segments.len(), 1);
        let Segment::Text { text } = &segments[0] else {
            panic!()
        };
        assert!(text.starts_with("Date: Thu, 01 Jan 1970 00:00:00 +0000\r\n"));
        let parsed = mail_parser::MessageParser::default()
            .parse(text.as_bytes())
            .unwrap();
        assert_eq!(parsed.subject(), Some("Grüße"));
        assert_eq!(parsed.body_text(0).unwrap(), "Hi\r\n.dot line\r\n");
        assert!(!text.contains("\n\n") && !text.replace("\r\n", "").contains('\n'));
    }

    #[test]
    fn attachments_and_replies() {
        let mut d = draft();
        d.html = Some("<p>Hi</p>".into());
        d.in_reply_to = Some("<p@x>".into());
        d.references = vec!["<r@x>".into()];
        d.attachments = vec![
            Attachment::Upload {
                file: "/f".into(),
                raw_size: 100,
                content_type: "image/png".into(),
                filename: "ä.png".into(),
            },
            Attachment::Part {
                mailbox: "INBOX".into(),
                uidvalidity: 1,
                uid: 5,
                section: "2".into(),
                mime_size: 60,
                size: 1000,
            },
            Attachment::Message {
                mailbox: "INBOX".into(),
                uidvalidity: 1,
                uid: 6,
                size: 5000,
            },
        ];
        let s = compose(&d);
        assert!(matches!(s[1], Segment::Upload { raw_size: 100, .. }));
        assert!(matches!(&s[3], Segment::Ref { section: Some(x), .. } if x == "2.MIME"));
        assert!(matches!(&s[6], Segment::Ref { section: None, .. }));
        let Segment::Text { text } = &s[0] else {
            panic!()
        };
        assert!(text.contains("In-Reply-To: <p@x>\r\nReferences: <r@x>\r\n <p@x>\r\n"));
        assert!(text.contains("filename*=UTF-8''%C3%A4.png"));
        assert_eq!(total_size(&s), {
            let texts: u64 = s
                .iter()
                .map(|x| match x {
                    Segment::Text { text } => text.len() as u64,
                    _ => 0,
                })
                .sum();
            texts + base64_lines_size(100) + 60 + 1000 + 5000
        });
    }

    #[test]
    fn base64_sizes_match() {
        for n in [0usize, 1, 2, 3, 56, 57, 58, 114, 1000, 57 * 1024 + 5] {
            let raw = vec![7u8; n];
            assert_eq!(
                base64_lines(&raw).len() as u64,
                base64_lines_size(n as u64),
                "{n}"
            );
        }
    }

    #[test]
    fn addresses() {
        assert!(valid_address("a.b+c@example.org"));
        for bad in [
            "",
            "a",
            "@x",
            "a@",
            "a b@x",
            "a@x\r\nRCPT TO:<e@x>",
            "<a@x>",
            "a@x..y",
            "a,b@x",
        ] {
            assert!(!valid_address(bad), "{bad}");
        }
    }
}
