//! Building commands safely, and mailbox-name encoding.
//!
//! Every argument that comes from outside (mailbox names, user names,
//! passwords) goes through [`Command::string`], which picks an atom, a quoted
//! string (escaping `"` and `\`) or a literal; CR, LF and NUL never reach the
//! wire outside a literal, so no argument can inject a second command. The
//! client decides how literals are sent (`LITERAL+` or synchronizing).
//! Mailbox names are modified UTF-7 (RFC 3501 5.1.3) unless the server has
//! enabled `UTF8=ACCEPT` (RFC 6855).

use zeroize::Zeroizing;

/// A piece of a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Bytes sent as they are (already safe).
    Text(Vec<u8>),
    /// A literal: `{n}` CRLF then the bytes.
    Literal(Vec<u8>),
    /// Bytes sent only after the server's `+` (a SASL response): the line so
    /// far is ended with CRLF first.
    Continuation(Vec<u8>),
}

impl Part {
    /// How many bytes it puts on the wire, besides a literal's `{n}` line.
    pub fn len(&self) -> usize {
        match self {
            Part::Text(b) | Part::Literal(b) | Part::Continuation(b) => b.len(),
        }
    }

    /// Whether it puts nothing on the wire.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The part, its bytes zeroed when dropped.
    pub fn into_secret(self) -> SecretPart {
        match self {
            Part::Text(b) => SecretPart::Text(Zeroizing::new(b)),
            Part::Literal(b) => SecretPart::Literal(Zeroizing::new(b)),
            Part::Continuation(b) => SecretPart::Continuation(Zeroizing::new(b)),
        }
    }
}

/// A [`Part`] whose bytes are zeroed when dropped (it may hold a password).
pub enum SecretPart {
    Text(Zeroizing<Vec<u8>>),
    Literal(Zeroizing<Vec<u8>>),
    Continuation(Zeroizing<Vec<u8>>),
}

/// An argument that cannot be sent at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("argument cannot be sent to the server: {0}")]
pub struct InvalidArgument(pub &'static str);

/// A command without its tag and final CRLF.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Command {
    pub parts: Vec<Part>,
    /// Bytes of answer the command may collect (and the longest single
    /// response); `None`: [`super::budget::SMALL_BUDGET`].
    pub budget: Option<usize>,
}

impl Command {
    /// Starts a command with its (trusted, constant) name, e.g. `"UID SEARCH"`.
    pub fn new(name: &str) -> Self {
        Command {
            parts: vec![Part::Text(name.as_bytes().to_vec())],
            budget: None,
        }
    }

    /// Sets how many bytes of answer the command may take (see
    /// [`super::budget`]); more fails it with `ImapError::TooLarge`.
    pub fn budget(mut self, bytes: usize) -> Self {
        self.budget = Some(bytes);
        self
    }

    /// Appends trusted protocol text (keywords, numbers, built item lists),
    /// preceded by a space.
    pub fn raw(mut self, text: &str) -> Self {
        self.push_text(b" ");
        self.push_text(text.as_bytes());
        self
    }

    /// Appends trusted protocol text with no space before it (e.g. `(` or `)`).
    pub fn join(mut self, text: &str) -> Self {
        self.push_text(text.as_bytes());
        self
    }

    /// Appends an untrusted string argument, preceded by a space unless it
    /// opens a parenthesised list. `utf8` allows raw UTF-8 in quoted strings
    /// (after `ENABLE UTF8=ACCEPT`).
    pub fn string(mut self, value: &[u8], utf8: bool) -> Result<Self, InvalidArgument> {
        if value.contains(&0) {
            return Err(InvalidArgument("NUL byte"));
        }
        if !matches!(self.parts.last(), Some(Part::Text(t)) if t.ends_with(b"(")) {
            self.push_text(b" ");
        }
        let needs_literal = value
            .iter()
            .any(|&b| b == b'\r' || b == b'\n' || (b >= 0x80 && !utf8) || (b < 0x20 && b != b'\t'));
        if needs_literal {
            self.parts.push(Part::Literal(value.to_vec()));
        } else if !value.is_empty() && value.iter().all(|&b| is_atom_char(b)) {
            self.push_text(value);
        } else {
            let mut quoted = Vec::with_capacity(value.len() + 2);
            quoted.push(b'"');
            for &b in value {
                if b == b'"' || b == b'\\' {
                    quoted.push(b'\\');
                }
                quoted.push(b);
            }
            quoted.push(b'"');
            self.push_text(&quoted);
        }
        Ok(self)
    }

    /// Appends a mailbox name, encoded for the server.
    pub fn mailbox(self, name: &str, utf8: bool) -> Result<Self, InvalidArgument> {
        if utf8 {
            self.string(name.as_bytes(), true)
        } else {
            self.string(encode_utf7(name).as_bytes(), false)
        }
    }

    fn push_text(&mut self, bytes: &[u8]) {
        if let Some(Part::Text(last)) = self.parts.last_mut() {
            last.extend_from_slice(bytes);
        } else {
            self.parts.push(Part::Text(bytes.to_vec()));
        }
    }
}

/// Characters that may stand alone as an atom (RFC 3501 ATOM-CHAR), minus
/// `]` which is only allowed in some positions.
fn is_atom_char(b: u8) -> bool {
    b.is_ascii_graphic() && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
}

/// Builds a compact UID set such as `1:3,7,9:10` from sorted or unsorted UIDs.
pub fn uid_set(uids: &[u32]) -> String {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end.wrapping_add(1) {
            i += 1;
            end = sorted[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// Encodes a mailbox name in modified UTF-7 (RFC 3501 5.1.3).
pub fn encode_utf7(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        if pending.is_empty() {
            return;
        }
        let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
        out.push('&');
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            let chars = chunk.len() + 1;
            for k in 0..chars {
                out.push(char::from(B64[((n >> (18 - 6 * k)) & 63) as usize]));
            }
        }
        out.push('-');
        pending.clear();
    };
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut pending, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut units = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut units));
        }
    }
    flush(&mut pending, &mut out);
    out
}

/// Decodes a modified UTF-7 mailbox name; `None` when it is not valid.
/// Reads what a server sent, so it never indexes or overflows.
#[deny(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used
)]
pub fn decode_utf7(encoded: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(encoded.len());
    let mut rest = encoded;
    while let Some((&b, after)) = rest.split_first() {
        rest = after;
        if b != b'&' {
            if !(0x20..=0x7e).contains(&b) {
                return None;
            }
            out.push(char::from(b));
            continue;
        }
        let dash = rest.iter().position(|&c| c == b'-')?;
        let (run, after) = rest.split_at(dash);
        rest = after.get(1..).unwrap_or_default();
        if run.is_empty() {
            out.push('&');
            continue;
        }
        let mut bits = 0u32;
        let mut nbits = 0u32;
        let mut bytes = Vec::with_capacity(run.len());
        for &c in run {
            let v = u32::try_from(B64.iter().position(|&x| x == c)?).ok()?;
            bits = (bits << 6) | v;
            nbits = nbits.saturating_add(6);
            if nbits >= 8 {
                nbits = nbits.saturating_sub(8);
                bytes.push(u8::try_from((bits >> nbits) & 0xff).ok()?);
                bits &= (1u32 << nbits).saturating_sub(1);
            }
        }
        if bytes.is_empty() || bytes.len() % 2 != 0 || bits != 0 {
            return None;
        }
        let units: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|p| match p {
                [hi, lo] => u16::from_be_bytes([*hi, *lo]),
                _ => 0,
            })
            .collect();
        let text = String::from_utf16(&units).ok()?;
        // Printable ASCII must not be encoded (keeps names canonical).
        if text.chars().any(|c| (' '..='~').contains(&c)) {
            return None;
        }
        out.push_str(&text);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(cmd: &Command) -> String {
        cmd.parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => String::from_utf8_lossy(t).into_owned(),
                Part::Literal(l) => format!("{{{}}}<{}>", l.len(), String::from_utf8_lossy(l)),
                Part::Continuation(c) => format!("+<{}>", String::from_utf8_lossy(c)),
            })
            .collect()
    }

    #[test]
    fn strings_are_atoms_quoted_or_literals() {
        let c = Command::new("LOGIN")
            .string(b"alice", false)
            .unwrap()
            .string(b"p\"a\\ss word", false)
            .unwrap();
        assert_eq!(text(&c), r#"LOGIN alice "p\"a\\ss word""#);
        let c = Command::new("X").string(b"", false).unwrap();
        assert_eq!(text(&c), r#"X """#);
        let c = Command::new("X").string(b"a\r\nB LOGOUT", false).unwrap();
        assert_eq!(text(&c), "X {11}<a\r\nB LOGOUT>");
        let c = Command::new("X")
            .string("pässword".as_bytes(), false)
            .unwrap();
        assert!(matches!(c.parts[1], Part::Literal(_)));
        let c = Command::new("X")
            .string("pässword".as_bytes(), true)
            .unwrap();
        assert_eq!(text(&c), "X \"pässword\"");
        assert!(Command::new("X").string(b"a\0b", false).is_err());
        let c = Command::new("X").string(b"a*b", false).unwrap();
        assert_eq!(text(&c), r#"X "a*b""#);
    }

    #[test]
    fn mailbox_names() {
        let c = Command::new("EXAMINE").mailbox("Entwürfe", false).unwrap();
        assert_eq!(text(&c), "EXAMINE Entw&APw-rfe");
        let c = Command::new("EXAMINE").mailbox("Entwürfe", true).unwrap();
        assert_eq!(text(&c), "EXAMINE \"Entwürfe\"");
        let c = Command::new("EXAMINE")
            .mailbox("Sent Items", false)
            .unwrap();
        assert_eq!(text(&c), "EXAMINE \"Sent Items\"");
        let c = Command::new("X")
            .raw("(")
            .mailbox("a", false)
            .unwrap()
            .mailbox("b c", false)
            .unwrap()
            .join(")");
        assert_eq!(text(&c), "X (a \"b c\")");
    }

    #[test]
    fn utf7_round_trips() {
        for (plain, encoded) in [
            ("INBOX", "INBOX"),
            ("A&B", "A&-B"),
            ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
            ("Entwürfe", "Entw&APw-rfe"),
            ("😀", "&2D3eAA-"),
            ("ä ö", "&AOQ- &APY-"),
        ] {
            assert_eq!(encode_utf7(plain), encoded);
            assert_eq!(decode_utf7(encoded.as_bytes()).as_deref(), Some(plain));
        }
        for bad in ["&", "&AOQ", "&A-", "&AGE-", "é", "&2D0-"] {
            assert_eq!(decode_utf7(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn uid_sets_are_compact() {
        assert_eq!(uid_set(&[5, 1, 2, 3, 9, 10, 7]), "1:3,5,7,9:10");
        assert_eq!(uid_set(&[4]), "4");
        assert_eq!(uid_set(&[]), "");
        assert_eq!(uid_set(&[u32::MAX, u32::MAX - 1]), "4294967294:4294967295");
    }
}
