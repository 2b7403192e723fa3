//! Reading the tokens of one response frame: atoms, numbers, quoted
//! strings, literals, NIL and parenthesised lists, with `BODY[…]<…>` section
//! specifiers kept as one atom. The parser builds typed responses on top.

use super::parser::{ParseError, Value};

/// Deepest list nesting accepted; real responses stay far below.
const MAX_DEPTH: usize = 32;

/// A position in a frame.
pub(super) struct Cursor<'a> {
    pub(super) buf: &'a [u8],
    pub(super) pos: usize,
}

impl Cursor<'_> {
    pub(super) fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    pub(super) fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
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
            self.pos += 1;
        }
    }

    pub(super) fn at_end(&self) -> bool {
        matches!(self.peek(), None | Some(b'\r') | Some(b'\n'))
    }

    /// Bytes up to the next space or line end, as text.
    pub(super) fn word(&mut self) -> String {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if matches!(b, b' ' | b'\r' | b'\n') {
                break;
            }
            self.pos += 1;
        }
        String::from_utf8_lossy(&self.buf[start..self.pos]).into_owned()
    }

    /// A response code's name: up to a space or `]`.
    pub(super) fn word_until_bracket(&mut self) -> String {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if matches!(b, b' ' | b']' | b'\r' | b'\n') {
                break;
            }
            self.pos += 1;
        }
        String::from_utf8_lossy(&self.buf[start..self.pos]).into_owned()
    }

    /// The rest of the line as text (human-readable part of a response).
    pub(super) fn rest_text(&mut self) -> String {
        let start = self.pos;
        while !self.at_end() {
            self.pos += 1;
        }
        String::from_utf8_lossy(&self.buf[start..self.pos]).into_owned()
    }

    pub(super) fn atoms_to_end(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            self.skip_spaces();
            if self.at_end() {
                return out;
            }
            let w = self.word();
            if !w.is_empty() {
                out.push(w);
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
        match self.peek() {
            None => Err(self.error("unexpected end")),
            Some(b'(') => {
                if depth >= MAX_DEPTH {
                    return Err(self.error("lists nested too deep"));
                }
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_spaces();
                    if self.eat(b')') {
                        return Ok(Value::List(items));
                    }
                    if self.at_end() {
                        return Err(self.error("unclosed list"));
                    }
                    items.push(self.value(depth + 1)?);
                }
            }
            Some(b'"') => self.quoted(),
            Some(b'{') => self.literal(),
            // RFC 3516 literal8 (`~{n}`), as sent for BINARY[...].
            Some(b'~') if self.buf.get(self.pos + 1) == Some(&b'{') => {
                self.pos += 1;
                self.literal()
            }
            Some(_) => self.atom(),
        }
    }

    pub(super) fn quoted(&mut self) -> Result<Value, ParseError> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None | Some(b'\r') | Some(b'\n') => return Err(self.error("unclosed string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Value::Str(out));
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        None | Some(b'\r') | Some(b'\n') => {
                            return Err(self.error("unclosed string"))
                        }
                        Some(b) => out.push(b),
                    }
                    self.pos += 1;
                }
                Some(b) => {
                    out.push(b);
                    self.pos += 1;
                }
            }
        }
    }

    pub(super) fn literal(&mut self) -> Result<Value, ParseError> {
        self.pos += 1;
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        let len: usize = std::str::from_utf8(&self.buf[start..self.pos])
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
        let bytes = self.buf[self.pos..end].to_vec();
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
                b'[' => brackets += 1,
                b']' if brackets == 0 => break,
                b']' => brackets -= 1,
                b' ' | b'(' | b')' | b'"' | b'{' if brackets == 0 => break,
                _ => {}
            }
            self.pos += 1;
        }
        if brackets > 0 {
            return Err(self.error("unclosed section"));
        }
        if self.pos == start {
            return Err(self.error("expected a value"));
        }
        let raw = &self.buf[start..self.pos];
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
