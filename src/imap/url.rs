//! IMAP URLs (RFC 5092) naming a message or a part of one, as CATENATE,
//! GENURLAUTH and BURL want them. Pure string building, with the escaping
//! the RFC asks for so no name can break out of its component.

#![deny(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used
)]

/// A message (or a section of it) on the IMAP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageUrl {
    pub mailbox: String,
    pub uidvalidity: Option<u32>,
    pub uid: u32,
    /// `2`, `2.MIME`, `1.2`…; `None` for the whole message.
    pub section: Option<String>,
}

impl MessageUrl {
    /// The server-relative form: `/INBOX;UIDVALIDITY=7/;UID=3/;SECTION=2.MIME`.
    pub fn path(&self) -> String {
        let mut out = String::from("/");
        out.push_str(&escape(&self.mailbox, b"&=~:@/"));
        if let Some(v) = self.uidvalidity {
            out.push_str(&format!(";UIDVALIDITY={v}"));
        }
        out.push_str(&format!("/;UID={}", self.uid));
        if let Some(section) = &self.section {
            out.push_str("/;SECTION=");
            out.push_str(&escape(section, b"&=~:@/"));
        }
        out
    }

    /// The absolute form with the user and the server's authority, which
    /// GENURLAUTH and the submission server need:
    /// `imap://alice@127.0.0.1:143/Sent;UIDVALIDITY=7/;UID=3`.
    pub fn absolute(&self, user: &str, host: &str, port: u16) -> String {
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        format!(
            "imap://{}@{host}:{port}{}",
            escape(user, b"&=~"),
            self.path()
        )
    }
}

/// Appends the URLAUTH access for submission by `user` (RFC 4467
/// `submit+<user>`) to an absolute URL, ready for GENURLAUTH.
pub fn with_submit_access(absolute: &str, user: &str) -> String {
    format!("{absolute};urlauth=submit+{}", escape(user, b"&=~"))
}

/// Percent-encodes UTF-8 except unreserved characters and `keep`.
fn escape(value: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') || keep.contains(&b)
        {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether `url` can go on a command line inside double quotes as it is.
pub(crate) fn quotable(url: &str) -> bool {
    !url.is_empty()
        && url
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
}

#[cfg(test)]
#[allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used
)]
mod tests {
    use super::*;

    #[test]
    fn urls_escape_what_they_must() {
        let url = MessageUrl {
            mailbox: "Sent Items/Ärger;x".into(),
            uidvalidity: Some(7),
            uid: 3,
            section: Some("2.MIME".into()),
        };
        assert_eq!(
            url.path(),
            "/Sent%20Items/%C3%84rger%3Bx;UIDVALIDITY=7/;UID=3/;SECTION=2.MIME"
        );
        let url = MessageUrl {
            mailbox: "Sent".into(),
            uidvalidity: Some(1),
            uid: 9,
            section: None,
        };
        assert_eq!(
            url.absolute("al ice@x/y", "127.0.0.1", 10143),
            "imap://al%20ice%40x%2Fy@127.0.0.1:10143/Sent;UIDVALIDITY=1/;UID=9"
        );
        assert!(quotable(&url.absolute("a", "::1", 1)));
        assert!(!quotable("a\"b"));
        assert!(!quotable("a\r\nb"));
    }
}
