//! A minimal blocking IMAP client the harness uses to set up test data,
//! independent of the client under test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A minimal blocking IMAP client for setting up test data.
pub struct RawImap {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    tag: u32,
}

impl RawImap {
    pub fn login(port: u16, user: &str, pass: &str) -> RawImap {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to dovecot");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let writer = stream.try_clone().expect("clone");
        let mut imap = RawImap {
            reader: BufReader::new(stream),
            writer,
            tag: 0,
        };
        let greeting = imap.line();
        assert!(greeting.starts_with("* OK"), "greeting: {greeting}");
        imap.command(&format!("LOGIN {} {}", quote(user), quote(pass)));
        imap
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).expect("read from dovecot");
        assert!(n > 0, "dovecot closed the connection");
        line
    }

    /// Sends a command; panics unless it ends in OK. Returns the tagged line.
    pub fn command(&mut self, command: &str) -> String {
        self.tag += 1;
        let tag = format!("h{}", self.tag);
        write!(self.writer, "{tag} {command}\r\n").expect("write");
        self.read_tagged(&tag, command)
    }

    fn read_tagged(&mut self, tag: &str, what: &str) -> String {
        loop {
            let line = self.line();
            if let Some(rest) = line.strip_prefix(tag) {
                assert!(rest.starts_with(" OK"), "{what} failed: {line}");
                return line;
            }
            // Skip literals in untagged responses.
            if let Some(n) = literal_len(&line) {
                let mut skip = vec![0; n];
                self.reader.read_exact(&mut skip).expect("read literal");
            }
        }
    }

    pub fn append(&mut self, mailbox: &str, raw: &[u8]) -> u32 {
        self.tag += 1;
        let tag = format!("h{}", self.tag);
        write!(
            self.writer,
            "{tag} APPEND {} {{{}}}\r\n",
            quote(mailbox),
            raw.len()
        )
        .expect("write");
        let cont = self.line();
        assert!(cont.starts_with('+'), "APPEND refused: {cont}");
        self.writer.write_all(raw).expect("write message");
        self.writer.write_all(b"\r\n").expect("write");
        let done = self.read_tagged(&tag, "APPEND");
        // `hN OK [APPENDUID <validity> <uid>] ...`
        done.split("APPENDUID ")
            .nth(1)
            .and_then(|rest| rest.split([' ', ']']).nth(1))
            .and_then(|uid| uid.parse().ok())
            .unwrap_or_else(|| panic!("no APPENDUID in {done}"))
    }

    pub fn logout(mut self) {
        let _ = write!(self.writer, "z LOGOUT\r\n");
        let mut rest = Vec::new();
        let _ = self.reader.read_to_end(&mut rest);
    }
}

fn literal_len(line: &str) -> Option<usize> {
    let inner = line.trim_end().strip_suffix('}')?;
    let open = inner.rfind('{')?;
    inner[open + 1..].trim_end_matches('+').parse().ok()
}

/// A quoted IMAP string.
pub(crate) fn quote(s: &str) -> String {
    assert!(!s.contains(['\r', '\n']));
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

impl RawImap {
    /// Every message of `mailbox` (whole, as stored), in UID order.
    pub fn fetch_all(&mut self, mailbox: &str) -> Vec<Vec<u8>> {
        self.command(&format!("SELECT {}", quote(mailbox)));
        self.tag += 1;
        let tag = format!("h{}", self.tag);
        write!(self.writer, "{tag} UID FETCH 1:* (BODY.PEEK[])\r\n").expect("write");
        let mut out = Vec::new();
        loop {
            let line = self.line();
            if let Some(rest) = line.strip_prefix(&tag) {
                assert!(rest.starts_with(" OK"), "FETCH failed: {line}");
                return out;
            }
            if let Some(n) = literal_len(&line) {
                let mut body = vec![0; n];
                self.reader.read_exact(&mut body).expect("read literal");
                out.push(body);
            }
        }
    }

    /// The untagged lines a command produced (no literals expected).
    pub fn lines_of(&mut self, command: &str) -> Vec<String> {
        self.tag += 1;
        let tag = format!("h{}", self.tag);
        write!(self.writer, "{tag} {command}\r\n").expect("write");
        let mut out = Vec::new();
        loop {
            let line = self.line();
            if line.starts_with(&tag) {
                return out;
            }
            out.push(line);
        }
    }
}
