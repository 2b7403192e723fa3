//! Cutting the server's byte stream into complete responses.
//!
//! An IMAP response is a line ending in CRLF, except that a line ending in a
//! literal announcement `{n}` (or `{n+}`) continues after exactly `n` raw bytes.
//! The [`Framer`] finds where a complete response ends without copying or
//! parsing it, and remembers how far it has already looked, so a large literal
//! arriving in many reads is scanned once. Pure: bytes in, lengths out.

#![deny(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used
)]

/// Why the stream cannot be framed any more.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// One response (with its literals) would exceed the limit.
    #[error("response longer than {0} bytes")]
    TooLarge(usize),
}

/// Incremental response framer. Keep one per connection; feed it the same
/// (growing) buffer until it reports a complete response, then remove that
/// many bytes from the front of the buffer.
#[derive(Debug, Clone)]
pub struct Framer {
    /// Bytes before this offset belong to the current, unfinished response and
    /// hold no line end still to be examined. May lie beyond the buffer's end
    /// while a literal is still arriving.
    scanned: usize,
    /// The largest response accepted.
    max_len: usize,
}

impl Framer {
    /// A framer refusing responses longer than `max_len` bytes.
    pub fn new(max_len: usize) -> Self {
        Framer {
            scanned: 0,
            max_len,
        }
    }

    /// Changes the largest response accepted from now on (a command sets
    /// its own budget; the response under way is held to it too).
    pub fn set_max_len(&mut self, max_len: usize) {
        self.max_len = max_len;
    }

    /// The largest response accepted.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// How many more bytes the current response needs at least, when known
    /// (a literal is being received). Lets the reader size its buffer.
    pub fn pending(&self, buffered: usize) -> usize {
        self.scanned.saturating_sub(buffered)
    }

    /// Looks for the end of the first response in `buf`. Returns its length
    /// (including the final CRLF) when complete, `None` when more bytes are
    /// needed. After `Some`, the caller must drop that many bytes from the
    /// front of `buf` before calling again.
    pub fn next_frame(&mut self, buf: &[u8]) -> Result<Option<usize>, FrameError> {
        loop {
            if self.scanned > self.max_len {
                return Err(FrameError::TooLarge(self.max_len));
            }
            let Some(rest) = buf.get(self.scanned..) else {
                return Ok(None);
            };
            let Some(lf) = rest.iter().position(|&b| b == b'\n') else {
                self.scanned = buf.len();
                if self.scanned > self.max_len {
                    return Err(FrameError::TooLarge(self.max_len));
                }
                return Ok(None);
            };
            let line_end = self.scanned.saturating_add(lf).saturating_add(1);
            let line = buf.get(..line_end.saturating_sub(1)).unwrap_or_default();
            match literal_len(line) {
                Some(n) => {
                    self.scanned = line_end
                        .checked_add(n)
                        .ok_or(FrameError::TooLarge(self.max_len))?;
                }
                None => {
                    self.scanned = 0;
                    if line_end > self.max_len {
                        return Err(FrameError::TooLarge(self.max_len));
                    }
                    return Ok(Some(line_end));
                }
            }
        }
    }
}

/// When `line` (without its LF) ends in `{n}` or `{n+}` (optionally followed by
/// CR), the literal's length `n`.
fn literal_len(line: &[u8]) -> Option<usize> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let digits = inner.get(open.saturating_add(1)..)?;
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0usize, |acc, &d| {
        acc.checked_mul(10)?
            .checked_add(usize::from(d.checked_sub(b'0')?))
    })
}

#[cfg(test)]
#[allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used
)]
mod tests {
    use super::*;

    /// Frames `input` fed in pieces cut at `cuts`, like reads from a socket.
    fn frames_split(input: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
        let mut framer = Framer::new(1 << 20);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        let mut last = 0;
        for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
            buf.extend_from_slice(&input[last..cut]);
            last = cut;
            while let Some(n) = framer.next_frame(&buf).unwrap() {
                out.push(buf.drain(..n).collect());
            }
        }
        assert!(
            buf.is_empty(),
            "left over: {:?}",
            String::from_utf8_lossy(&buf)
        );
        out
    }

    const TRANSCRIPT: &[u8] = b"* OK [CAPABILITY IMAP4rev1] ready\r\n\
* 1 FETCH (UID 7 BODY[HEADER.FIELDS (FROM)] {13}\r\nFrom: a@b\r\n\r\n FLAGS ())\r\n\
* 2 FETCH (BODY[] {0}\r\n)\r\n\
* 3 FETCH (BODY[] {5+}\r\n{3}\r\n BODY[1] {2}\r\nab)\r\n\
A1 OK done\r\n";

    fn expected() -> Vec<Vec<u8>> {
        vec![
            b"* OK [CAPABILITY IMAP4rev1] ready\r\n".to_vec(),
            b"* 1 FETCH (UID 7 BODY[HEADER.FIELDS (FROM)] {13}\r\nFrom: a@b\r\n\r\n FLAGS ())\r\n"
                .to_vec(),
            b"* 2 FETCH (BODY[] {0}\r\n)\r\n".to_vec(),
            b"* 3 FETCH (BODY[] {5+}\r\n{3}\r\n BODY[1] {2}\r\nab)\r\n".to_vec(),
            b"A1 OK done\r\n".to_vec(),
        ]
    }

    #[test]
    fn frames_whole_transcript() {
        assert_eq!(frames_split(TRANSCRIPT, &[]), expected());
    }

    #[test]
    fn frames_split_at_every_byte() {
        for cut in 0..=TRANSCRIPT.len() {
            assert_eq!(frames_split(TRANSCRIPT, &[cut]), expected(), "cut at {cut}");
        }
        let every: Vec<usize> = (1..TRANSCRIPT.len()).collect();
        assert_eq!(frames_split(TRANSCRIPT, &every), expected());
    }

    #[test]
    fn literal_length_recognised() {
        assert_eq!(literal_len(b"x {12}\r"), Some(12));
        assert_eq!(literal_len(b"x {12+}"), Some(12));
        assert_eq!(literal_len(b"x {}\r"), None);
        assert_eq!(literal_len(b"x {1a}\r"), None);
        assert_eq!(literal_len(b"x 12}\r"), None);
        assert_eq!(literal_len(b"{99999999999999999999}"), None);
    }

    #[test]
    fn refuses_oversized_response() {
        let mut framer = Framer::new(100);
        assert_eq!(
            framer.next_frame(b"* 1 FETCH (BODY[] {1000}\r\n"),
            Err(FrameError::TooLarge(100))
        );
        let mut framer = Framer::new(10);
        assert_eq!(
            framer.next_frame(b"* OK this line is long"),
            Err(FrameError::TooLarge(10))
        );
        let mut framer = Framer::new(1 << 20);
        assert!(framer.next_frame(b"* {9999999999999999999}\r\n").is_err());
        // Lengths beyond 64 bits are not literals at all, just text.
        let mut framer = Framer::new(usize::MAX);
        assert_eq!(
            framer.next_frame(b"* {99999999999999999999}\r\n"),
            Ok(Some(26))
        );
    }

    #[test]
    fn pending_reports_literal_remainder() {
        let mut framer = Framer::new(1 << 20);
        let buf = b"* 1 FETCH (BODY[] {100}\r\nabc";
        assert_eq!(framer.next_frame(buf), Ok(None));
        assert_eq!(framer.pending(buf.len()), 97);
    }
}
