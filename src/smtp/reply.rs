//! SMTP replies (RFC 5321 4.2): cutting the server's bytes into complete,
//! possibly multi-line replies. Pure: bytes in, replies out; never panics.
#![deny(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used
)]

use crate::text::{trim, MAX_SERVER_TEXT};

/// One complete reply: its code and its text lines (without code and CRLF).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    /// 2xx.
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// 3xx (DATA's 354, AUTH's 334).
    pub fn is_intermediate(&self) -> bool {
        (300..400).contains(&self.code)
    }

    /// 4xx: try again later.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// 5xx: do not try again.
    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }

    /// The reply as one line, as a server would print it (`550 5.1.1 no such user`),
    /// cut to [`MAX_SERVER_TEXT`] bytes: it is logged, stored with a send's
    /// status and returned by the API, and a reply may hold 2 MiB.
    pub fn text(&self) -> String {
        let mut text = format!("{} {}", self.code, self.lines.join(" / "));
        trim(&mut text, MAX_SERVER_TEXT);
        text
    }
}

/// Why the reply stream cannot be read any more.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("malformed SMTP reply line")]
    Malformed,
    #[error("SMTP reply too long")]
    TooLong,
}

impl ReplyError {
    pub fn class(&self) -> crate::error::ErrorClass {
        crate::error::ErrorClass::Protocol
    }
}

/// Longest reply line accepted (RFC 5321 says 512; servers send longer EHLO lines).
const MAX_LINE: usize = 4096;
/// Most lines in one reply.
const MAX_LINES: usize = 512;

/// Looks for one complete reply at the front of `buf`. Returns the reply and
/// how many bytes it used, or `None` when more bytes are needed.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Reply, usize)>, ReplyError> {
    let mut rest = buf;
    let mut lines = Vec::new();
    let mut code = None;
    loop {
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            if rest.len() > MAX_LINE {
                return Err(ReplyError::TooLong);
            }
            return Ok(None);
        };
        if end > MAX_LINE {
            return Err(ReplyError::TooLong);
        }
        let (line, after) = rest.split_at(end);
        // `after` starts with the LF.
        rest = after.get(1..).unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let (this_code, tail) = match line {
            [a, b, c, tail @ ..] if [a, b, c].iter().all(|d| d.is_ascii_digit()) => {
                let digit = |d: &u8| u16::from(d.saturating_sub(b'0'));
                let code = digit(a)
                    .saturating_mul(100)
                    .saturating_add(digit(b).saturating_mul(10))
                    .saturating_add(digit(c));
                (code, tail)
            }
            _ => return Err(ReplyError::Malformed),
        };
        if !(200..600).contains(&this_code) {
            return Err(ReplyError::Malformed);
        }
        if *code.get_or_insert(this_code) != this_code {
            return Err(ReplyError::Malformed);
        }
        let (more, text) = match tail {
            [] => (false, tail),
            [b'-', text @ ..] => (true, text),
            [b' ', text @ ..] => (false, text),
            _ => return Err(ReplyError::Malformed),
        };
        lines.push(String::from_utf8_lossy(text).into_owned());
        if lines.len() > MAX_LINES {
            return Err(ReplyError::TooLong);
        }
        if !more {
            let used = buf.len().saturating_sub(rest.len());
            return Ok(Some((
                Reply {
                    code: this_code,
                    lines,
                },
                used,
            )));
        }
    }
}

/// What the server offers, from its EHLO reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ehlo {
    /// Extension lines (the first line, the greeting, left out), as sent.
    pub extensions: Vec<String>,
}

impl Ehlo {
    pub fn from_reply(reply: &Reply) -> Self {
        Ehlo {
            extensions: reply.lines.iter().skip(1).cloned().collect(),
        }
    }

    /// The parameters of extension `name` (case-insensitive), when offered.
    pub fn params(&self, name: &str) -> Option<Vec<&str>> {
        self.extensions.iter().find_map(|line| {
            let mut words = line.split_ascii_whitespace();
            let first = words.next()?;
            first.eq_ignore_ascii_case(name).then(|| words.collect())
        })
    }

    pub fn has(&self, name: &str) -> bool {
        self.params(name).is_some()
    }

    /// The largest message accepted (`SIZE n`; `None` when unlimited or unknown).
    pub fn max_size(&self) -> Option<u64> {
        let params = self.params("SIZE")?;
        params
            .first()
            .and_then(|n| n.parse::<u64>().ok())
            .filter(|&n| n > 0)
    }

    /// Whether `BURL imap` (RFC 4468) is offered.
    pub fn burl_imap(&self) -> bool {
        self.params("BURL")
            .is_some_and(|p| p.iter().any(|w| w.eq_ignore_ascii_case("imap")))
    }

    /// Whether AUTH offers `mechanism`.
    pub fn auth(&self, mechanism: &str) -> bool {
        self.params("AUTH")
            .is_some_and(|p| p.iter().any(|w| w.eq_ignore_ascii_case(mechanism)))
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Feeds `input` in two pieces at every split point and collects replies.
    fn replies_split_everywhere(input: &[u8]) -> Vec<Reply> {
        let mut expected = None;
        for cut in 0..=input.len() {
            let mut buf = Vec::new();
            let mut out = Vec::new();
            for piece in [&input[..cut], &input[cut..]] {
                buf.extend_from_slice(piece);
                while let Some((reply, used)) = parse_reply(&buf).unwrap() {
                    out.push(reply);
                    buf.drain(..used);
                }
            }
            assert!(buf.is_empty(), "left over at cut {cut}");
            match &expected {
                None => expected = Some(out),
                Some(e) => assert_eq!(e, &out, "cut {cut}"),
            }
        }
        expected.unwrap_or_default()
    }

    #[test]
    fn ehlo_transcript() {
        let input = b"220 test.local ESMTP Dovecot\r\n250-test.local\r\n250-8BITMIME\r\n250-AUTH PLAIN LOGIN\r\n250-BURL imap\r\n250-CHUNKING\r\n250-SIZE 41943040\r\n250 PIPELINING\r\n";
        let replies = replies_split_everywhere(input);
        assert_eq!(replies.len(), 2);
        assert_eq!(replies[0].code, 220);
        let ehlo = Ehlo::from_reply(&replies[1]);
        assert!(ehlo.burl_imap());
        assert!(ehlo.has("chunking"));
        assert!(ehlo.auth("PLAIN"));
        assert_eq!(ehlo.max_size(), Some(41943040));
        assert!(!ehlo.has("STARTTLS"));
    }

    #[test]
    fn rejections_and_bare_codes() {
        let input = b"550 5.1.1 <bob@x>: no such user\r\n354\r\n250 2.0.0 Ok: queued as 42\n";
        let replies = replies_split_everywhere(input);
        assert_eq!(replies[0].code, 550);
        assert!(replies[0].is_permanent());
        assert_eq!(replies[0].text(), "550 5.1.1 <bob@x>: no such user");
        // What is kept of a long reply is cut, control characters too.
        let long = format!("{}250 end\r\n", "250-\x1bxxxxxxxxxx\r\n".repeat(500));
        let (reply, _) = parse_reply(long.as_bytes()).unwrap().unwrap();
        assert_eq!(reply.lines.len(), 501);
        assert!(reply.text().len() <= MAX_SERVER_TEXT);
        assert!(!reply.text().contains('\x1b'));
        assert!(replies[1].is_intermediate());
        assert!(replies[2].is_positive());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            &b"hello\r\n"[..],
            b"25\r\n",
            b"250-a\r\n251 b\r\n",
            b"250xx\r\n",
            b"999 x\r\n",
            b"\xff\xfe\r\n",
        ] {
            assert!(parse_reply(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(
            parse_reply(&[b'2'; MAX_LINE + 2]),
            Err(ReplyError::TooLong)
        ));
    }
}
