//! Bytes a phone receives for three reading tasks: through Lemonade's read
//! API (compressed, as sent: every byte of the HTTP response read from the
//! socket) versus a mobile IMAP client talking to Dovecot directly (every
//! byte read from the socket, with and without COMPRESS=DEFLATE).
//!
//! 1. first sync of the newest 50 INBOX messages with previews;
//! 2. a delta after 5 new messages, 10 flag changes and 3 expunges;
//! 3. reading the text of a 300 KiB HTML newsletter.
//!
//! The IMAP client does what a good mobile client does: log in, SELECT,
//! `UID FETCH` of ENVELOPE, FLAGS, RFC822.SIZE, BODYSTRUCTURE and PREVIEW
//! (the server's preview: the cheapest way to previews in IMAP); for the
//! delta it reconnects and uses QRESYNC (`SELECT … (QRESYNC …)`), then
//! fetches the new messages; to read, it fetches BODYSTRUCTURE and the HTML
//! part. Plaintext on loopback on both sides (TLS adds the same framing to
//! both).
//!
//! Run: `cargo bench --bench read_bytes` (needs Dovecot installed, as for the
//! tests; the byte counts do not depend on the build profile).

#[path = "../tests/support/mod.rs"]
#[allow(unused_imports)]
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use support::dovecot::{Dovecot, RawImap};
use support::gateway::{data_dir, Gateway};
use support::samples;

/// A minimal IMAP client that counts the bytes it reads from the socket.
struct CountingImap {
    stream: TcpStream,
    received: usize,
    decoded: Vec<u8>,
    inflate: Option<Decompress>,
    deflate: Option<Compress>,
    tag: u32,
}

impl CountingImap {
    fn connect(port: u16, user: &str, pass: &str, compress: bool) -> CountingImap {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut c = CountingImap {
            stream,
            received: 0,
            decoded: Vec::new(),
            inflate: None,
            deflate: None,
            tag: 0,
        };
        c.read_line();
        c.command(&format!("LOGIN {user} {pass}"));
        if compress {
            c.command("COMPRESS DEFLATE");
            c.inflate = Some(Decompress::new(false));
            c.deflate = Some(Compress::new(Compression::default(), false));
        }
        c
    }

    fn fill(&mut self) {
        let mut buf = [0u8; 16384];
        let n = self.stream.read(&mut buf).unwrap();
        assert!(n > 0, "server closed");
        self.received += n;
        match &mut self.inflate {
            None => self.decoded.extend_from_slice(&buf[..n]),
            Some(z) => {
                let mut input = &buf[..n];
                while !input.is_empty() {
                    let mut out = vec![0u8; 65536];
                    let before_in = z.total_in();
                    let before_out = z.total_out();
                    z.decompress(input, &mut out, FlushDecompress::Sync)
                        .unwrap();
                    let used = (z.total_in() - before_in) as usize;
                    let made = (z.total_out() - before_out) as usize;
                    self.decoded.extend_from_slice(&out[..made]);
                    input = &input[used..];
                    if used == 0 && made == 0 {
                        break;
                    }
                }
            }
        }
    }

    /// One response line with its literals.
    fn read_line(&mut self) -> Vec<u8> {
        let mut start = 0;
        loop {
            if let Some(pos) = self.decoded[start..].iter().position(|&b| b == b'\n') {
                let end = start + pos + 1;
                let line = &self.decoded[..end];
                let trimmed = line.strip_suffix(b"\r\n").unwrap_or(line);
                if let Some(open) = trimmed.iter().rposition(|&b| b == b'{') {
                    if trimmed.ends_with(b"}") {
                        if let Ok(n) = std::str::from_utf8(&trimmed[open + 1..trimmed.len() - 1])
                            .unwrap_or("x")
                            .trim_end_matches('+')
                            .parse::<usize>()
                        {
                            while self.decoded.len() < end + n {
                                self.fill();
                            }
                            start = end + n;
                            continue;
                        }
                    }
                }
                return self.decoded.drain(..end).collect();
            }
            start = self.decoded.len();
            self.fill();
        }
    }

    fn write(&mut self, line: &str) {
        let bytes = line.as_bytes();
        match &mut self.deflate {
            None => self.stream.write_all(bytes).unwrap(),
            Some(z) => {
                let mut out = vec![0u8; bytes.len() + 1024];
                let before = z.total_out();
                z.compress(bytes, &mut out, FlushCompress::Sync).unwrap();
                let n = (z.total_out() - before) as usize;
                self.stream.write_all(&out[..n]).unwrap();
            }
        }
    }

    /// Runs a command; returns the untagged responses (whole).
    fn command(&mut self, cmd: &str) -> Vec<Vec<u8>> {
        self.tag += 1;
        let tag = format!("b{}", self.tag);
        self.write(&format!("{tag} {cmd}\r\n"));
        let mut out = Vec::new();
        loop {
            let line = self.read_line();
            if line.starts_with(tag.as_bytes()) {
                assert!(
                    line[tag.len()..].starts_with(b" OK"),
                    "{cmd}: {}",
                    String::from_utf8_lossy(&line)
                );
                return out;
            }
            out.push(line);
        }
    }

    fn logout(mut self) -> usize {
        self.command("LOGOUT");
        self.received
    }
}

fn find_number(lines: &[Vec<u8>], key: &str) -> u64 {
    for line in lines {
        let text = String::from_utf8_lossy(line);
        if let Some(i) = text.find(key) {
            let rest = &text[i + key.len()..];
            let digits: String = rest
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            if let Ok(n) = digits.parse() {
                return n;
            }
        }
    }
    panic!("{key} not found");
}

/// A GET on a fresh HTTP/1.1 connection; every byte of the response counted.
fn http_get(base: &str, path: &str, token: &str, accept: &str, encoding: &str) -> (usize, Vec<u8>) {
    let addr = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nAccept: {accept}\r\nAccept-Encoding: {encoding}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    assert!(
        all.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&all[..all.len().min(300)])
    );
    let body_at = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    (all.len(), all[body_at..].to_vec())
}

const SUMMARY_ITEMS: &str = "(UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE BODYSTRUCTURE PREVIEW)";

fn imap_first_sync(port: u16, compress: bool) -> (usize, u64, u64) {
    let mut c = CountingImap::connect(port, "alice", "secret", compress);
    c.command("ENABLE QRESYNC");
    let sel = c.command("SELECT INBOX");
    let exists = sel
        .iter()
        .find_map(|l| {
            let t = String::from_utf8_lossy(l);
            t.strip_prefix("* ")
                .and_then(|r| r.strip_suffix(" EXISTS\r\n"))
                .and_then(|n| n.parse::<u64>().ok())
        })
        .unwrap();
    let uidvalidity = find_number(&sel, "UIDVALIDITY");
    let modseq = find_number(&sel, "HIGHESTMODSEQ");
    c.command(&format!(
        "FETCH {}:{} {SUMMARY_ITEMS}",
        exists.saturating_sub(49).max(1),
        exists
    ));
    (c.logout(), uidvalidity, modseq)
}

fn imap_delta(port: u16, compress: bool, uidvalidity: u64, modseq: u64, uidnext: u32) -> usize {
    let mut c = CountingImap::connect(port, "alice", "secret", compress);
    c.command("ENABLE QRESYNC");
    c.command(&format!("SELECT INBOX (QRESYNC ({uidvalidity} {modseq}))"));
    c.command(&format!("UID FETCH {uidnext}:* {SUMMARY_ITEMS}"));
    c.logout()
}

fn imap_read(port: u16, compress: bool, uid: u32) -> usize {
    let mut c = CountingImap::connect(port, "alice", "secret", compress);
    c.command("SELECT INBOX");
    c.command(&format!("UID FETCH {uid} (BODYSTRUCTURE)"));
    c.command(&format!("UID FETCH {uid} (BODY.PEEK[1])"));
    c.logout()
}

fn main() {
    // `cargo bench` passes --bench; nothing to parse.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dovecot = Dovecot::start();
    dovecot.add_user("alice", "secret");
    let attachment = samples::noise(40 * 1024, 3);
    let push = |raw: Vec<u8>| dovecot.append("alice", "secret", "INBOX", &raw);
    let news = push(samples::newsletter(300 * 1024));
    for i in 0..60 {
        let raw = match i % 15 {
            0 => samples::alternative(),
            1 => samples::latin1(),
            2 => samples::mixed(&attachment),
            _ => samples::simple(i),
        };
        push(raw);
    }
    let (_dir, path) = data_dir();
    let g = rt.block_on(Gateway::start(&path));
    let (_, token) =
        rt.block_on(g.register(dovecot.host(), dovecot.imap_port(), "alice", "secret"));
    let port = dovecot.imap_port();

    // 1. First sync.
    let list_path = "/v1/mailboxes/INBOX/messages?limit=50";
    let mut api1 = Vec::new();
    for (accept, enc) in [
        ("application/json", "gzip"),
        ("application/json", "br"),
        ("application/x-protobuf", "br"),
    ] {
        api1.push(http_get(&g.url, list_path, &token, accept, enc).0);
    }
    let (_, json) = http_get(&g.url, list_path, &token, "application/json", "identity");
    let list: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let state = list["state"].as_str().unwrap().to_string();
    let (imap1, uidvalidity, modseq) = imap_first_sync(port, false);
    let (imap1z, _, _) = imap_first_sync(port, true);
    let uidnext: u32 = state.split('.').nth(2).unwrap().parse().unwrap();

    // The changes: 5 new, 10 flag changes, 3 expunges among the listed.
    let listed: Vec<u64> = list["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["uid"].as_u64().unwrap())
        .collect();
    for i in 0..5 {
        dovecot.append("alice", "secret", "INBOX", &samples::simple(100 + i));
    }
    let mut other = RawImap::login(port, "alice", "secret");
    other.command("SELECT INBOX");
    for uid in &listed[5..15] {
        other.command(&format!("UID STORE {uid} +FLAGS (\\Seen)"));
    }
    for uid in &listed[20..23] {
        other.command(&format!("UID STORE {uid} +FLAGS (\\Deleted)"));
    }
    other.command("EXPUNGE");
    other.logout();

    // 2. Delta.
    let enc_state: String = url::form_urlencoded::byte_serialize(state.as_bytes()).collect();
    let delta_path = format!("/v1/mailboxes/INBOX/changes?since={enc_state}");
    let mut api2 = Vec::new();
    for (accept, enc) in [
        ("application/json", "gzip"),
        ("application/json", "br"),
        ("application/x-protobuf", "br"),
    ] {
        api2.push(http_get(&g.url, &delta_path, &token, accept, enc).0);
    }
    let imap2 = imap_delta(port, false, uidvalidity, modseq, uidnext);
    let imap2z = imap_delta(port, true, uidvalidity, modseq, uidnext);

    // 3. Reading the newsletter's text (all of it).
    let read_path = format!("/v1/messages/INBOX/{news}?max_bytes=1000000");
    let mut api3 = Vec::new();
    for (accept, enc) in [
        ("application/json", "gzip"),
        ("application/json", "br"),
        ("application/x-protobuf", "br"),
    ] {
        api3.push(http_get(&g.url, &read_path, &token, accept, enc).0);
    }
    let imap3 = imap_read(port, false, news);
    let imap3z = imap_read(port, true, news);

    println!("Bytes received by the phone (lower is better)\n");
    println!("| operation | IMAP | IMAP + COMPRESS | API JSON gzip | API JSON br | API protobuf br | best API / IMAP | best API / IMAP+COMPRESS |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (name, imap, imapz, api) in [
        (
            "1. first sync, newest 50 with previews",
            imap1,
            imap1z,
            &api1,
        ),
        (
            "2. delta: 5 new, 10 flag changes, 3 expunges",
            imap2,
            imap2z,
            &api2,
        ),
        ("3. text of a 300 KiB HTML newsletter", imap3, imap3z, &api3),
    ] {
        let best = *api.iter().min().unwrap();
        println!(
            "| {name} | {imap} | {imapz} | {} | {} | {} | {:.1}% | {:.1}% |",
            api[0],
            api[1],
            api[2],
            100.0 * best as f64 / imap as f64,
            100.0 * best as f64 / imapz as f64
        );
    }
    rt.block_on(g.stop());
}
