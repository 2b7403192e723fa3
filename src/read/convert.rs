//! Turning IMAP FETCH data into the API's messages: summaries (headers
//! decoded with mail-parser: RFC 2047, charsets), message details, and the
//! body text of one part (transfer encoding and charset decoded, HTML turned
//! into plain text). Pure.

use mail_parser::{HeaderValue, MessageParser};

use super::structure::{self, Part};
use crate::imap::fold_preview as summary_fold_preview;
use crate::imap::summary_text as clean_text;
use crate::imap::FetchedMessage;
use crate::proto::v1 as pb;

/// The header fields a listing needs, plus the MIME fields that say how to
/// read a body prefix when the server has no PREVIEW.
pub const LIST_HEADER_FIELDS: &str = "BODY.PEEK[HEADER.FIELDS (DATE FROM TO CC SUBJECT MESSAGE-ID IN-REPLY-TO MIME-VERSION CONTENT-TYPE CONTENT-TRANSFER-ENCODING)]";

/// Bytes of body text fetched for a preview when the server cannot make one.
pub const PREVIEW_BODY_PREFIX: usize = 16 * 1024;

/// The FETCH items of a listing, for a server with (or without) PREVIEW.
pub fn summary_items(server_preview: bool) -> String {
    if server_preview {
        format!("(UID FLAGS RFC822.SIZE INTERNALDATE BODYSTRUCTURE PREVIEW {LIST_HEADER_FIELDS})")
    } else {
        format!(
            "(UID FLAGS RFC822.SIZE INTERNALDATE BODYSTRUCTURE {LIST_HEADER_FIELDS} BODY.PEEK[TEXT]<0.{PREVIEW_BODY_PREFIX}>)"
        )
    }
}

/// Decodes RFC 2047 encoded words in a parameter value (file names).
pub fn decode_words(value: &str) -> String {
    if !value.contains("=?") {
        return value.to_string();
    }
    let raw = format!("Subject: {value}\r\n\r\n");
    MessageParser::default()
        .parse_headers(raw.as_bytes())
        .and_then(|m| m.subject().map(str::to_string))
        .unwrap_or_else(|| value.to_string())
}

fn addresses(a: Option<&mail_parser::Address<'_>>) -> Vec<pb::Address> {
    a.map(|a| {
        a.iter()
            .map(|addr| pb::Address {
                name: clean_text(addr.name().unwrap_or("")),
                email: clean_text(addr.address().unwrap_or("")),
            })
            .collect()
    })
    .unwrap_or_default()
}

fn first_text(v: &HeaderValue<'_>) -> String {
    v.as_text()
        .map(str::to_string)
        .or_else(|| {
            v.as_text_list()
                .and_then(|l| l.first())
                .map(|s| s.to_string())
        })
        .unwrap_or_default()
}

/// Seconds since the epoch of an IMAP INTERNALDATE (`17-Jul-1996 02:44:25 -0700`).
pub fn internal_date_secs(date: &str) -> Option<i64> {
    let format = time::format_description::parse_borrowed::<1>(
        "[day padding:space]-[month repr:short case_sensitive:false]-[year] [hour]:[minute]:[second] [offset_hour sign:mandatory][offset_minute]",
    )
    .ok()?;
    let date = date.trim();
    // The day is space-padded; a trimmed one-digit day gets its space back.
    let date = if date.as_bytes().get(1) == Some(&b'-') {
        format!(" {date}")
    } else {
        date.to_string()
    };
    let t = time::OffsetDateTime::parse(&date, &format).ok()?;
    Some(t.unix_timestamp())
}

/// Seconds since the epoch as the API writes times: RFC 3339 in UTC with
/// whole seconds (`2026-12-07T06:40:48Z`); `None` outside years 0 to 9999.
pub fn rfc3339(unix_secs: i64) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp(unix_secs)
        .ok()?
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// `text` with CRLF and lone CR made LF: text returned to clients has one
/// kind of line ending, whatever the sender's transfer encoding kept.
pub fn lf_lines(text: String) -> String {
    if !text.contains('\r') {
        return text;
    }
    text.replace("\r\n", "\n").replace('\r', "\n")
}

/// A Message-ID as the API gives it: without the angle brackets (and the
/// spaces) around it, whatever the header parser left.
pub fn bare_message_id(id: &str) -> String {
    let id = id.trim();
    let id = id.strip_prefix('<').unwrap_or(id);
    let id = id.strip_suffix('>').unwrap_or(id);
    clean_text(id)
}

/// The message's headers, parsed.
pub struct Headers<'a> {
    message: Option<mail_parser::Message<'a>>,
}

impl<'a> Headers<'a> {
    pub fn parse(raw: &'a [u8]) -> Self {
        Headers {
            message: MessageParser::default().parse_headers(raw),
        }
    }

    /// The Date header as RFC 3339 UTC, else `fallback` (epoch seconds)
    /// so; "" when neither can be written.
    pub fn date(&self, fallback: Option<i64>) -> String {
        self.message
            .as_ref()
            .and_then(|m| m.date())
            .and_then(|d| rfc3339(d.to_timestamp()))
            .or_else(|| fallback.and_then(rfc3339))
            .unwrap_or_default()
    }

    pub fn from(&self) -> Option<pb::Address> {
        addresses(self.message.as_ref().and_then(|m| m.from()))
            .into_iter()
            .next()
    }

    pub fn to(&self) -> Vec<pb::Address> {
        addresses(self.message.as_ref().and_then(|m| m.to()))
    }

    pub fn cc(&self) -> Vec<pb::Address> {
        addresses(self.message.as_ref().and_then(|m| m.cc()))
    }

    pub fn reply_to(&self) -> Vec<pb::Address> {
        addresses(self.message.as_ref().and_then(|m| m.reply_to()))
    }

    pub fn subject(&self) -> String {
        self.message
            .as_ref()
            .and_then(|m| m.subject())
            .map(clean_text)
            .unwrap_or_default()
    }

    pub fn message_id(&self) -> String {
        bare_message_id(
            self.message
                .as_ref()
                .and_then(|m| m.message_id())
                .unwrap_or(""),
        )
    }

    pub fn in_reply_to(&self) -> String {
        self.message
            .as_ref()
            .map(|m| bare_message_id(&first_text(m.in_reply_to())))
            .unwrap_or_default()
    }

    pub fn references(&self) -> Vec<String> {
        let Some(m) = &self.message else {
            return Vec::new();
        };
        let refs = m.references();
        let ids: Vec<&str> = match (refs.as_text_list(), refs.as_text()) {
            (Some(list), _) => list.iter().map(|s| s.as_ref()).collect(),
            (None, Some(one)) => vec![one],
            (None, None) => Vec::new(),
        };
        ids.into_iter()
            .map(bare_message_id)
            .filter(|id| !id.is_empty())
            .collect()
    }
}

/// A listing entry from a FETCH of [`summary_items`].
pub fn summary(m: &FetchedMessage) -> pb::MessageSummary {
    let header = m.section("BODY[HEADER").unwrap_or(&[]);
    let headers = Headers::parse(header);
    let parts = m
        .bodystructure
        .as_ref()
        .map(structure::parts)
        .unwrap_or_default();
    let preview = match (&m.preview, m.section("BODY[TEXT]")) {
        (Some(p), _) => summary_fold_preview(&String::from_utf8_lossy(p)),
        (None, Some(text)) => body_prefix_preview(header, text),
        (None, None) => String::new(),
    };
    pb::MessageSummary {
        uid: m.uid,
        date: headers.date(m.internal_date.as_deref().and_then(internal_date_secs)),
        from: headers.from(),
        to: headers.to(),
        cc: headers.cc(),
        subject: headers.subject(),
        flags: m.flags.clone(),
        size: m.size.unwrap_or(0),
        has_attachments: parts.iter().any(|p| p.is_attachment()),
        preview,
        message_id: headers.message_id(),
        in_reply_to: headers.in_reply_to(),
    }
}

fn body_prefix_preview(header: &[u8], text: &[u8]) -> String {
    let mut raw = header.to_vec();
    if !raw.ends_with(b"\r\n\r\n") && !raw.ends_with(b"\n\n") {
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(text);
    MessageParser::default()
        .parse(&raw)
        .and_then(|m| m.body_text(0).map(|t| summary_fold_preview(&t)))
        .unwrap_or_default()
}

/// Picks the part whose text a reader shows: the first text/plain that is
/// not an attachment and not inside an attached message, else the first
/// such text/html, else any text part. Returns it and the HTML part if any.
pub fn pick_text_part(parts: &[Part]) -> (Option<&Part>, Option<&Part>) {
    let readable = |p: &&Part| !p.is_attachment() && !p.nested;
    let plain = parts
        .iter()
        .filter(readable)
        .find(|p| p.mime == "text/plain");
    let html = parts
        .iter()
        .filter(readable)
        .find(|p| p.mime == "text/html");
    let any = parts.iter().find(|p| p.mime.starts_with("text/"));
    (plain.or(html).or(any), html)
}

/// The text of one part's raw (still transfer-encoded) bytes, decoded and
/// as plain text (HTML converted). Malformed input gives what could be read.
pub fn part_text(part: &Part, raw: &[u8]) -> String {
    let charset = if part.charset.is_empty() {
        "us-ascii"
    } else {
        &part.charset
    };
    let charset: String = charset
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
        .collect();
    let encoding: String = part
        .encoding
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    let mime = if part.mime.starts_with("text/") {
        part.mime.as_str()
    } else {
        "text/plain"
    };
    let mut message = format!(
        "MIME-Version: 1.0\r\nContent-Type: {mime}; charset=\"{charset}\"\r\nContent-Transfer-Encoding: {encoding}\r\n\r\n"
    )
    .into_bytes();
    message.extend_from_slice(raw);
    let Some(parsed) = MessageParser::default().parse(&message) else {
        return lf_lines(String::from_utf8_lossy(raw).into_owned());
    };
    parsed
        .body_text(0)
        .map(|t| lf_lines(t.into_owned()))
        .unwrap_or_default()
}

/// Cuts `text` to at most `max` bytes on a character boundary.
pub fn truncate(text: &mut String, max: usize) -> bool {
    if text.len() <= max {
        return false;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    true
}

/// Converts structure parts to the API's form.
pub fn api_parts(parts: &[Part]) -> Vec<pb::MessagePart> {
    parts
        .iter()
        .map(|p| pb::MessagePart {
            part: p.id.clone(),
            r#type: p.mime.clone(),
            size: p.size,
            charset: p.charset.clone(),
            filename: p.filename.clone(),
            disposition: p.disposition.clone(),
            encoding: p.encoding.clone(),
            content_id: p.content_id.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::Value;

    #[test]
    fn internal_dates() {
        assert_eq!(
            internal_date_secs("17-Jul-1996 02:44:25 -0700"),
            Some(837596665)
        );
        assert_eq!(rfc3339(837596665).as_deref(), Some("1996-07-17T09:44:25Z"));
        assert_eq!(rfc3339(1796625648).as_deref(), Some("2026-12-07T06:40:48Z"));
        assert_eq!(rfc3339(-86400).as_deref(), Some("1969-12-31T00:00:00Z"));
        assert_eq!(rfc3339(i64::MAX), None);
        assert_eq!(
            internal_date_secs(" 1-Jan-2024 00:00:00 +0000"),
            Some(1704067200)
        );
        assert_eq!(internal_date_secs("garbage"), None);
    }

    #[test]
    fn summary_from_headers_and_preview() {
        let m = FetchedMessage {
            uid: 4,
            flags: vec!["\\Seen".into()],
            size: Some(900),
            sections: vec![(
                "BODY[HEADER.FIELDS (DATE FROM)]".into(),
                b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nFrom: =?ISO-8859-1?Q?J=F6rg?= <j@x.org>\r\nTo: a@b.c, \"B\" <b@c.d>\r\nSubject: =?UTF-8?B?w5xiZXI=?=\r\nMessage-ID: <m1@x>\r\nIn-Reply-To: <m0@x>\r\n\r\n".to_vec(),
            )],
            preview: Some(b"  hello\r\n world ".to_vec()),
            bodystructure: Some(Value::Nil),
            ..Default::default()
        };
        let s = summary(&m);
        assert_eq!(s.date, "2024-01-01T00:00:00Z");
        assert_eq!(s.from.as_ref().unwrap().name, "Jörg");
        assert_eq!(s.to.len(), 2);
        assert_eq!(s.subject, "Über");
        assert_eq!(s.preview, "hello world");
        assert_eq!(s.message_id, "m1@x");
        assert_eq!(s.in_reply_to, "m0@x");
        assert!(!s.has_attachments);
    }

    #[test]
    fn text_of_parts() {
        let part = Part {
            mime: "text/plain".into(),
            charset: "iso-8859-1".into(),
            encoding: "quoted-printable".into(),
            ..Default::default()
        };
        assert_eq!(part_text(&part, b"Caf=E9 cr=E8me"), "Café crème");
        let html = Part {
            mime: "text/html".into(),
            charset: "utf-8".into(),
            encoding: "base64".into(),
            ..Default::default()
        };
        let t = part_text(&html, b"PHA+SGVsbG8gPGI+d29ybGQ8L2I+PC9wPg==");
        assert!(t.contains("Hello world"), "{t}");
        let mut s = "aé".to_string();
        assert!(truncate(&mut s, 2));
        assert_eq!(s, "a");
    }

    #[test]
    fn body_text_has_lf_line_endings_whatever_the_transfer_encoding() {
        use base64::Engine;
        let plain = |encoding: &str| Part {
            mime: "text/plain".into(),
            charset: "utf-8".into(),
            encoding: encoding.into(),
            ..Default::default()
        };
        let want = "Line one\nLine two\n\nLine four\nend";
        let crlf = "Line one\r\nLine two\r\n\r\nLine four\rend";
        let b64 = base64::engine::general_purpose::STANDARD.encode(crlf);
        assert_eq!(part_text(&plain("base64"), b64.as_bytes()), want);
        // Encoded CRLF (=0D=0A) as well as literal line breaks.
        let qp = b"Line one=0D=0ALine two\r\n\r\nLine four=0Dend";
        assert_eq!(part_text(&plain("quoted-printable"), qp), want);
        assert_eq!(part_text(&plain("8bit"), crlf.as_bytes()), want);
        let latin1 = Part {
            charset: "iso-8859-1".into(),
            ..plain("base64")
        };
        let b64 = base64::engine::general_purpose::STANDARD.encode(b"Gr\xfc\xdfe\r\nK\xf6ln\r\n");
        assert_eq!(part_text(&latin1, b64.as_bytes()), "Grüße\nKöln\n");
        let html = Part {
            mime: "text/html".into(),
            ..plain("quoted-printable")
        };
        let t = part_text(&html, b"<p>One</p>\r\n<pre>a\r\nb\rc</pre>=0D=0A");
        assert!(!t.contains('\r'), "{t:?}");
        assert_eq!(lf_lines("a\r\r\nb".into()), "a\n\nb");
    }

    fn headers_of(raw: &str) -> Headers<'_> {
        Headers::parse(raw.as_bytes())
    }

    #[test]
    fn message_ids_come_without_angle_brackets() {
        let h = headers_of(
            "Message-ID: <abc@example.org>\r\nIn-Reply-To: <p1@example.org>\r\n\
             References: <r1@example.org> <r2@example.org>\r\n <p1@example.org>\r\n\r\n",
        );
        assert_eq!(h.message_id(), "abc@example.org");
        assert_eq!(h.in_reply_to(), "p1@example.org");
        assert_eq!(
            h.references(),
            vec!["r1@example.org", "r2@example.org", "p1@example.org"]
        );
        // Ids written without brackets, with spaces or a comment.
        let h = headers_of(
            "Message-ID: bare@example.org\r\nIn-Reply-To:  < spaced@example.org >\r\n\
             References: <one@example.org>\r\n\r\n",
        );
        assert_eq!(h.message_id(), "bare@example.org");
        assert!(!h.in_reply_to().contains(['<', '>']), "{}", h.in_reply_to());
        assert_eq!(h.references(), vec!["one@example.org"]);
        let h = headers_of("In-Reply-To: <x@example.org> (Ann's message)\r\n\r\n");
        assert_eq!(h.in_reply_to(), "x@example.org");
        assert_eq!(h.message_id(), "");
        assert!(h.references().is_empty());
        assert_eq!(bare_message_id(" <a@b> "), "a@b");
        assert_eq!(bare_message_id("a@b"), "a@b");
    }
}
