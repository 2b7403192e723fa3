//! A small real SMTP server on 127.0.0.1:0 that records what it receives:
//! the relay target of Dovecot's submission service in tests.
//!
//! It speaks what Dovecot's relay uses: EHLO/HELO, MAIL, RCPT, DATA (with
//! dot-unstuffing), BDAT (CHUNKING), RSET, NOOP and QUIT, pipelined or not.
//! A chosen recipient can be refused with a 5xx, and MAIL can be answered
//! with a temporary 451 (for retry and crash tests).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One message the sink accepted.
#[derive(Debug, Clone)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub data: Vec<u8>,
}

#[derive(Default)]
struct Shared {
    messages: Vec<Received>,
    reject_rcpt: Vec<String>,
    tempfail_mail: bool,
    commands: Vec<String>,
}

/// A running sink; it stops accepting when dropped.
#[derive(Clone)]
pub struct SmtpSink {
    port: u16,
    shared: Arc<Mutex<Shared>>,
}

impl SmtpSink {
    pub fn start() -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind sink");
        let port = listener.local_addr().expect("addr").port();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let accept_shared = shared.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                let shared = accept_shared.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &shared);
                });
            }
        });
        SmtpSink { port, shared }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Refuse this recipient with `550 5.1.1`.
    pub fn reject_recipient(&self, addr: &str) {
        self.shared
            .lock()
            .unwrap()
            .reject_rcpt
            .push(addr.to_ascii_lowercase());
    }

    /// Answer MAIL with `451 4.3.0` (temporary) while set.
    pub fn tempfail_mail(&self, on: bool) {
        self.shared.lock().unwrap().tempfail_mail = on;
    }

    pub fn messages(&self) -> Vec<Received> {
        self.shared.lock().unwrap().messages.clone()
    }

    /// Every command line received, in order (for failure messages).
    pub fn commands(&self) -> Vec<String> {
        self.shared.lock().unwrap().commands.clone()
    }

    /// Waits until at least `count` messages arrived (panics after `timeout`).
    pub fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Received> {
        let step = Duration::from_millis(50);
        let mut waited = Duration::ZERO;
        loop {
            let messages = self.messages();
            if messages.len() >= count {
                return messages;
            }
            assert!(
                waited < timeout,
                "sink got {} messages, wanted {count}; commands: {:?}",
                messages.len(),
                self.commands()
            );
            std::thread::sleep(step);
            waited += step;
        }
    }
}

fn serve(stream: TcpStream, shared: &Mutex<Shared>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut out = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    out.write_all(b"220 sink.test ESMTP ready\r\n")?;
    let mut from: Option<String> = None;
    let mut rcpts: Vec<String> = Vec::new();
    let mut bdat: Vec<u8> = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let line = line.trim_end_matches(['\r', '\n']).to_owned();
        shared.lock().unwrap().commands.push(line.clone());
        let upper = line.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") {
            "250-sink.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-CHUNKING\r\n250-SIZE 52428800\r\n250 ENHANCEDSTATUSCODES\r\n".into()
        } else if upper.starts_with("HELO") {
            "250 sink.test\r\n".into()
        } else if upper.starts_with("MAIL FROM:") {
            if shared.lock().unwrap().tempfail_mail {
                "451 4.3.0 try again later\r\n".into()
            } else {
                from = Some(address(&line[10..]));
                rcpts.clear();
                bdat.clear();
                "250 2.1.0 ok\r\n".into()
            }
        } else if upper.starts_with("RCPT TO:") {
            let addr = address(&line[8..]);
            if shared
                .lock()
                .unwrap()
                .reject_rcpt
                .contains(&addr.to_ascii_lowercase())
            {
                format!("550 5.1.1 <{addr}>: recipient rejected\r\n")
            } else {
                rcpts.push(addr);
                "250 2.1.5 ok\r\n".into()
            }
        } else if upper == "DATA" {
            if from.is_none() || rcpts.is_empty() {
                "503 5.5.1 need MAIL and RCPT\r\n".into()
            } else {
                out.write_all(b"354 go ahead\r\n")?;
                let mut data = Vec::new();
                loop {
                    let mut l = Vec::new();
                    if reader.read_until(b'\n', &mut l)? == 0 {
                        return Ok(());
                    }
                    if l == b".\r\n" || l == b".\n" {
                        break;
                    }
                    if l.starts_with(b".") {
                        l.remove(0);
                    }
                    data.extend_from_slice(&l);
                }
                accept(shared, &mut from, &mut rcpts, data)
            }
        } else if let Some(args) = upper.strip_prefix("BDAT ") {
            let mut words = args.split_whitespace();
            let size: usize = words.next().and_then(|n| n.parse().ok()).unwrap_or(0);
            let last = words.next() == Some("LAST");
            let mut chunk = vec![0u8; size];
            reader.read_exact(&mut chunk)?;
            bdat.extend_from_slice(&chunk);
            if from.is_none() || rcpts.is_empty() {
                "503 5.5.1 need MAIL and RCPT\r\n".into()
            } else if last {
                let data = std::mem::take(&mut bdat);
                accept(shared, &mut from, &mut rcpts, data)
            } else {
                format!("250 2.0.0 {size} octets received\r\n")
            }
        } else if upper == "RSET" {
            from = None;
            rcpts.clear();
            bdat.clear();
            "250 2.0.0 ok\r\n".into()
        } else if upper == "NOOP" {
            "250 2.0.0 ok\r\n".into()
        } else if upper == "QUIT" {
            out.write_all(b"221 2.0.0 bye\r\n")?;
            return Ok(());
        } else {
            "502 5.5.2 not implemented\r\n".into()
        };
        out.write_all(reply.as_bytes())?;
    }
}

fn accept(
    shared: &Mutex<Shared>,
    from: &mut Option<String>,
    rcpts: &mut Vec<String>,
    data: Vec<u8>,
) -> String {
    let mut s = shared.lock().unwrap();
    s.messages.push(Received {
        mail_from: from.take().unwrap_or_default(),
        rcpt_to: std::mem::take(rcpts),
        data,
    });
    format!("250 2.0.0 ok: queued as {}\r\n", s.messages.len())
}

/// The address inside `<…>` (parameters after it are ignored).
fn address(arg: &str) -> String {
    let arg = arg.trim();
    match (arg.find('<'), arg.find('>')) {
        (Some(a), Some(b)) if a < b => arg[a + 1..b].to_owned(),
        _ => arg.split_whitespace().next().unwrap_or("").to_owned(),
    }
}
