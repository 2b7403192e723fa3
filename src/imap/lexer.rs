//! Reading the tokens of one response frame: atoms, numbers, quoted
//! strings, literals, NIL and parenthesised lists, with `BODY[…]<…>` section
//! specifiers kept as one atom. The parser builds typed responses on top.
//!
//! What a frame may cost once read is bounded: human-readable text is cut to
//! [`MAX_SERVER_TEXT`], and a frame yields at most [`MAX_TOKENS`] tokens (a
//! token takes some 60 bytes, against two bytes of input at least).

#![deny(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used
)]

use super::error::{cut, MAX_SERVER_TEXT};
use super::parser::{ParseError, Value};
use super::uidset::UidSet;

/// Deepest list nesting accepted; real responses stay far below.
const MAX_DEPTH: usize = 32;
/// Most tokens one frame may yield: a BODYSTRUCTURE of thousands of parts
/// fits; beyond, the frame is refused instead of taking 30 times its size.
pub(super) const MAX_TOKENS: usize = 200_000;

/// A position in a frame.
pub(super) struct Cursor<'a> {
    pub(super) buf: &'a [u8],
    pub(super) pos: usize,
    /// Tokens made so far.
    pub(super) tokens: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Cursor {
            buf,
            pos: 0,
            tokens: 0,
        }
    }

    pub(super) fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    fn advance(&mut self) {
        self.pos = self.pos.saturating_add(1);
    }

    pub(super) fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.advance();
            true
        } else {
            false
        }
    }

    pub(super) fn error(&self, what: &'static str) -> ParseError {
        ParseError { at: self.pos, what }
    }

    pub(super) fn expect_space(&mut self) -> Result<(), ParseError> {
        if self.eat(b' ') {
            self.skip_spaces();
            Ok(())
        } else {
            Err(self.error("expected space"))
        }
    }

    pub(super) fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.advance();
        }
    }

    pub(super) fn at_end(&self) -> bool {
        matches!(self.peek(), None | Some(b'\r') | Some(b'\n'))
    }

    /// The bytes from `start` to the current position.
    fn since(&self, start: usize) -> &'a [u8] {
        self.buf.get(start..self.pos).unwrap_or_default()
    }

    /// Advances over bytes until one that `stop` accepts (or the end).
    fn until(&mut self, stop: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if stop(b) {
                break;
            }
            self.advance();
        }
        self.since(start)
    }

    /// Bytes up to the next space or line end.
    pub(super) fn word_bytes(&mut self) -> &'a [u8] {
        self.until(|b| matches!(b, b' ' | b'\r' | b'\n'))
    }

    /// Bytes up to the next space or line end, as text.
    pub(super) fn word(&mut self) -> String {
        String::from_utf8_lossy(self.word_bytes()).into_owned()
    }

    /// A response code's name: up to a space or `]`.
    pub(super) fn word_until_bracket(&mut self) -> String {
        let raw = self.until(|b| matches!(b, b' ' | b']' | b'\r' | b'\n'));
        String::from_utf8_lossy(raw).into_owned()
    }

    /// The rest of the line as text (human-readable part of a response),
    /// cut to [`MAX_SERVER_TEXT`] bytes.
    pub(super) fn rest_text(&mut self) -> String {
        let raw = self.until(|b| matches!(b, b'\r' | b'\n'));
        // Lossy decoding may add up to two bytes per byte: decode only a
        // prefix that is sure to cover the kept text.
        let head = raw.get(..MAX_SERVER_TEXT).unwrap_or(raw);
        cut(String::from_utf8_lossy(head).into_owned(), MAX_SERVER_TEXT)
    }

    /// Atoms to the end of the line, at most `max_count` of them, each
    /// at most `max_len` bytes (longer ones are skipped).
    pub(super) fn atoms_to_end(&mut self, max_count: usize, max_len: usize) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            self.skip_spaces();
            if self.at_end() {
                return out;
            }
            let w = self.word_bytes();
            if !w.is_empty() && w.len() <= max_len && out.len() < max_count {
                out.push(String::from_utf8_lossy(w).into_owned());
            }
        }
    }

    /// Numbers to the end of the line, into a compact set (a SEARCH
    /// answer). A parenthesised list (CONDSTORE's `(MODSEQ n)`) and anything
    /// that is not a 32-bit number is skipped.
    pub(super) fn numbers_to_end(&mut self) -> Result<UidSet, ParseError> {
        let mut set = UidSet::new();
        loop {
            self.skip_spaces();
            if self.at_end() {
                set.normalize();
                return Ok(set);
            }
            if self.peek() == Some(b'(') {
                self.value(0)?;
                continue;
            }
            let w = self.word_bytes();
            if w.len() <= 10 && !w.is_empty() && w.iter().all(u8::is_ascii_digit) {
                if let Some(n) = std::str::from_utf8(w).ok().and_then(|s| s.parse().ok()) {
                    set.push(n);
                }
            }
        }
    }

    pub(super) fn values_to_end(&mut self) -> Result<Vec<Value>, ParseError> {
        let mut out = Vec::new();
        loop {
            self.skip_spaces();
            if self.at_end() {
                return Ok(out);
            }
            out.push(self.value(0)?);
        }
    }

    /// One token: list, quoted string, literal, NIL, number or atom.
    pub(super) fn value(&mut self, depth: usize) -> Result<Value, ParseError> {
        self.tokens = self.tokens.saturating_add(1);
        if self.tokens > MAX_TOKENS {
            return Err(self.error("too many tokens"));
        }
        match self.peek() {
            None => Err(self.error("unexpected end")),
            Some(b'(') => {
                if depth >= MAX_DEPTH {
                    return Err(self.error("lists nested too deep"));
                }
                self.advance();
                let mut items = Vec::new();
                loop {
                    self.skip_spaces();
                    if self.eat(b')') {
                        return Ok(Value::List(items));
                    }
                    if self.at_end() {
                        return Err(self.error("unclosed list"));
                    }
                    items.push(self.value(depth.saturating_add(1))?);
                }
            }
            Some(b'"') => self.quoted(),
            Some(b'{') => self.literal(),
            // RFC 3516 literal8 (`~{n}`), as sent for BINARY[...].
            Some(b'~') if self.buf.get(self.pos.saturating_add(1)) == Some(&b'{') => {
                self.advance();
                self.literal()
            }
            Some(_) => self.atom(),
        }
    }

    pub(super) fn quoted(&mut self) -> Result<Value, ParseError> {
        self.advance();
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None | Some(b'\r') | Some(b'\n') => return Err(self.error("unclosed string")),
                Some(b'"') => {
                    self.advance();
                    return Ok(Value::Str(out));
                }
                Some(b'\\') => {
                    self.advance();
                    match self.peek() {
                        None | Some(b'\r') | Some(b'\n') => {
                            return Err(self.error("unclosed string"))
                        }
                        Some(b) => out.push(b),
                    }
                    self.advance();
                }
                Some(b) => {
                    out.push(b);
                    self.advance();
                }
            }
        }
    }

    pub(super) fn literal(&mut self) -> Result<Value, ParseError> {
        self.advance();
        let digits = self.until(|b| !b.is_ascii_digit());
        let len: usize = std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| self.error("bad literal length"))?;
        self.eat(b'+');
        if !self.eat(b'}') {
            return Err(self.error("bad literal"));
        }
        self.eat(b'\r');
        if !self.eat(b'\n') {
            return Err(self.error("literal without line end"));
        }
        let end = self
            .pos
            .checked_add(len)
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| self.error("literal truncated"))?;
        let bytes = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| self.error("literal truncated"))?
            .to_vec();
        self.pos = end;
        Ok(Value::Str(bytes))
    }

    /// An atom; `[...]` inside it (a section) may hold spaces and parentheses.
    pub(super) fn atom(&mut self) -> Result<Value, ParseError> {
        let start = self.pos;
        let mut brackets = 0usize;
        while let Some(b) = self.peek() {
            match b {
                b'\r' | b'\n' => break,
                b'[' => brackets = brackets.saturating_add(1),
                b']' if brackets == 0 => break,
                b']' => brackets = brackets.saturating_sub(1),
                b' ' | b'(' | b')' | b'"' | b'{' if brackets == 0 => break,
                _ => {}
            }
            self.advance();
        }
        if brackets > 0 {
            return Err(self.error("unclosed section"));
        }
        if self.pos == start {
            return Err(self.error("expected a value"));
        }
        let raw = self.since(start);
        if raw.eq_ignore_ascii_case(b"NIL") {
            return Ok(Value::Nil);
        }
        if raw.iter().all(u8::is_ascii_digit) {
            if let Some(n) = std::str::from_utf8(raw).ok().and_then(|s| s.parse().ok()) {
                return Ok(Value::Number(n));
            }
        }
        Ok(Value::Atom(String::from_utf8_lossy(raw).into_owned()))
    }
}
