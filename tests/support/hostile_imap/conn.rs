//! One connection of the hostile IMAP server: reading commands and
//! answering them as the connection's [`Mode`] says.

use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use super::{Mode, Shared, MAX_UID};

/// A 64 KiB run of one letter, written again and again for big texts.
fn filler() -> &'static [u8] {
    static FILLER: [u8; 64 * 1024] = [b'a'; 64 * 1024];
    &FILLER
}

/// Counts and writes what goes to the client.
struct Out<W> {
    write: W,
    shared: Arc<Shared>,
}

impl<W: AsyncWrite + Unpin> Out<W> {
    async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.write.write_all(bytes).await?;
        let exists = bytes.windows(7).filter(|w| w == b" EXISTS").count() as u64;
        let n = bytes.len() as u64;
        self.shared.note(|s| {
            s.bytes_sent += n;
            s.exists_sent += exists;
        });
        Ok(())
    }

    /// `n` bytes of filler.
    async fn fill(&mut self, mut n: usize) -> std::io::Result<()> {
        let total = n as u64;
        while n > 0 {
            let chunk = n.min(filler().len());
            self.write.write_all(&filler()[..chunk]).await?;
            n -= chunk;
        }
        self.shared.note(|s| s.bytes_sent += total);
        Ok(())
    }
}

pub(super) struct Conn {
    pub(super) shared: Arc<Shared>,
    pub(super) mode: Mode,
    pub(super) user: Option<String>,
    /// The message announced after IDLE has arrived (modes that add one).
    pub(super) arrived: bool,
    /// The message count last announced.
    pub(super) reported: u32,
}

const CAPS: &str = "IMAP4rev1 LITERAL+ IDLE ENABLE PREVIEW";

impl Conn {
    /// The UIDs of the user's INBOX as this connection shows them.
    fn uids(&self) -> Vec<u32> {
        let user = self.user.as_deref().unwrap_or("");
        let mut uids = self.shared.uids(user);
        match self.mode {
            Mode::MaxUid => {
                uids = vec![1, MAX_UID];
            }
            Mode::HugeFetch { .. } | Mode::UnaskedUids { .. } | Mode::SearchFlood { .. } => {
                let base = uids.last().copied().unwrap_or(0);
                if uids.is_empty() {
                    uids.push(1);
                }
                if self.arrived {
                    uids.push(base.max(1) + 1);
                }
            }
            _ => {}
        }
        uids
    }

    /// The number of messages announced for the mailbox now.
    fn exists(&self) -> u32 {
        match self.mode {
            Mode::MaxUid if !self.arrived => 1,
            Mode::SearchFlood { .. } if self.arrived => self.uids().len() as u32 + 1000,
            _ => self.uids().len() as u32,
        }
    }

    pub(super) async fn run<S: AsyncRead + AsyncWrite + Unpin>(&mut self, stream: S) {
        let (read, write) = tokio::io::split(stream);
        let mut read = BufReader::new(read);
        let mut out = Out {
            write,
            shared: self.shared.clone(),
        };
        if let Mode::HugeBye { bytes } = self.mode {
            let _ = async {
                out.send(b"* BYE ").await?;
                out.fill(bytes).await?;
                out.send(b"\r\n").await?;
                out.write.shutdown().await
            }
            .await;
            return;
        }
        let greeting = format!("* OK [CAPABILITY {CAPS}] hostile IMAP ready\r\n");
        if out.send(greeting.as_bytes()).await.is_err() {
            return;
        }
        while let Some(line) = read_command(&mut read, &mut out).await {
            let (tag, name, rest) = split_command(&line);
            self.shared
                .note(|s| *s.commands.entry(name.clone()).or_default() += 1);
            let done = match name.as_str() {
                "IDLE" => self.idle(&tag, &mut read, &mut out).await,
                _ => self.command(&tag, &name, &rest, &mut out).await,
            };
            match done {
                Ok(true) => {}
                Ok(false) | Err(_) => return,
            }
        }
    }

    /// Answers one command; false when the connection ends.
    async fn command<W: AsyncWrite + Unpin>(
        &mut self,
        tag: &str,
        name: &str,
        rest: &str,
        out: &mut Out<W>,
    ) -> std::io::Result<bool> {
        let ok = |what: &str| format!("{tag} OK {what}\r\n");
        let reply = match name {
            "CAPABILITY" => format!("* CAPABILITY {CAPS}\r\n{}", ok("done")),
            "NOOP" => ok("done"),
            "LOGOUT" => {
                out.send(format!("* BYE bye\r\n{}", ok("done")).as_bytes())
                    .await?;
                return Ok(false);
            }
            "LOGIN" => {
                self.user = Some(words(rest).into_iter().next().unwrap_or_default());
                self.shared.note(|s| s.logins += 1);
                let caps = match self.mode {
                    Mode::CapabilityChurn { extra } => {
                        let n = {
                            let mut logins =
                                self.shared.logins.lock().unwrap_or_else(|e| e.into_inner());
                            *logins += 1;
                            *logins
                        };
                        let mut caps = format!("{CAPS} X-CHURN-{n}");
                        for i in 0..extra {
                            caps.push_str(&format!(" X-PAD-{n}-{i}"));
                        }
                        caps
                    }
                    _ => CAPS.to_string(),
                };
                format!("{tag} OK [CAPABILITY {caps}] logged in\r\n")
            }
            "ENABLE" => format!("* ENABLED\r\n{}", ok("enabled")),
            "SELECT" | "EXAMINE" => {
                let uids = self.uids();
                let exists = self.exists();
                let uidnext = match self.mode {
                    Mode::MaxUid => MAX_UID,
                    _ => uids.last().map_or(1, |u| u.saturating_add(1)),
                };
                self.reported = exists;
                format!(
                    "* FLAGS (\\Seen)\r\n* {exists} EXISTS\r\n* OK [UIDVALIDITY 1] ok\r\n\
                     * OK [UIDNEXT {uidnext}] ok\r\n{tag} OK [READ-ONLY] done\r\n"
                )
            }
            "STATUS" => {
                let uids = self.uids();
                let mailbox = rest.split(" (").next().unwrap_or("INBOX");
                let uidnext = uids.last().map_or(1, |u| u.saturating_add(1));
                format!(
                    "* STATUS {mailbox} (MESSAGES {} UNSEEN 0 UIDNEXT {uidnext} UIDVALIDITY 1)\r\n{}",
                    uids.len(),
                    ok("done")
                )
            }
            "LIST" => {
                if let Mode::ListFlood { bytes } = self.mode {
                    let mut sent = 0;
                    let mut n = 0u64;
                    while sent < bytes {
                        let mut lines = String::new();
                        while lines.len() < 64 * 1024 && sent + lines.len() < bytes {
                            n += 1;
                            lines.push_str(&format!(
                                "* LIST (\\Noselect \\HasNoChildren) \"/\" \"flood-{n:012}\"\r\n"
                            ));
                        }
                        sent += lines.len();
                        out.send(lines.as_bytes()).await?;
                    }
                }
                format!("* LIST (\\HasNoChildren) \"/\" INBOX\r\n{}", ok("done"))
            }
            "UID SEARCH" => {
                if let Mode::SearchFlood { bytes } = self.mode {
                    let mut sent = 0;
                    let mut n = 2u64;
                    while sent < bytes {
                        let mut line = String::from("* SEARCH");
                        while line.len() < 8 * 1024 && sent + line.len() < bytes {
                            line.push_str(&format!(" {}", n.min(u64::from(MAX_UID))));
                            n += 1;
                        }
                        line.push_str("\r\n");
                        sent += line.len();
                        out.send(line.as_bytes()).await?;
                    }
                    ok("done")
                } else {
                    let set = rest.trim_start_matches("UID ").trim();
                    let uids = self.uids();
                    let star = uids.last().copied().unwrap_or(0);
                    let found: Vec<String> = uids
                        .iter()
                        .filter(|u| in_set(set, **u, star))
                        .map(u32::to_string)
                        .collect();
                    format!("* SEARCH {}\r\n{}", found.join(" "), ok("done"))
                }
            }
            "UID FETCH" => {
                self.fetch(rest, out).await?;
                ok("done")
            }
            _ => format!("{tag} BAD unknown command\r\n"),
        };
        out.send(reply.as_bytes()).await?;
        Ok(true)
    }

    /// Answers `UID FETCH set items`, as the mode says.
    async fn fetch<W: AsyncWrite + Unpin>(
        &mut self,
        rest: &str,
        out: &mut Out<W>,
    ) -> std::io::Result<()> {
        let (set, items) = rest.split_once(' ').unwrap_or((rest, ""));
        let uids = self.uids();
        let star = uids.last().copied().unwrap_or(0);
        let asked: Vec<u32> = uids
            .iter()
            .copied()
            .filter(|u| in_set(set, *u, star))
            .collect();
        let items = items.to_ascii_uppercase();
        if let Mode::HugeFetch {
            copies,
            subject_bytes,
        } = self.mode
        {
            let Some(&uid) = asked.last() else {
                return Ok(());
            };
            for _ in 0..copies {
                let head = "From: Hostile <hostile@example.org>\r\nSubject: ";
                let tail = "\r\n\r\n";
                let len = head.len() + subject_bytes + tail.len();
                out.send(
                    format!(
                        "* {uid} FETCH (UID {uid} BODY[HEADER.FIELDS (FROM SUBJECT)] {{{len}}}\r\n{head}"
                    )
                    .as_bytes(),
                )
                .await?;
                out.fill(subject_bytes).await?;
                out.send(format!("{tail} PREVIEW \"huge\")\r\n").as_bytes())
                    .await?;
            }
            return Ok(());
        }
        let mut text = String::new();
        for (seq, uid) in asked.iter().enumerate() {
            text.push_str(&fetch_response(seq as u32 + 1, *uid, &items));
        }
        out.send(text.as_bytes()).await?;
        if let Mode::UnaskedUids { count } = self.mode {
            let highest = set_max(set).unwrap_or(0).max(star);
            let mut lines = String::new();
            for i in 1..=count {
                let Some(uid) = highest.checked_add(i) else {
                    break;
                };
                lines.push_str(&format!("* {i} FETCH (UID {uid})\r\n"));
                if lines.len() >= 64 * 1024 {
                    out.send(lines.as_bytes()).await?;
                    lines.clear();
                }
            }
            out.send(lines.as_bytes()).await?;
        }
        Ok(())
    }

    /// Runs one IDLE until DONE; false when the connection ends.
    async fn idle<R, W>(
        &mut self,
        tag: &str,
        read: &mut BufReader<R>,
        out: &mut Out<W>,
    ) -> std::io::Result<bool>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        out.send(b"+ idling\r\n").await?;
        let mut repeat = None;
        match self.mode.clone() {
            Mode::CapabilityChurn { .. } => {
                out.send(b"* BYE churning\r\n").await?;
                return Ok(false);
            }
            Mode::ZeroExists { every } => {
                out.send(b"* 0 EXISTS\r\n").await?;
                repeat = every;
            }
            Mode::MaxUid => {
                self.arrived = true;
                out.send(b"* 2 EXISTS\r\n").await?;
            }
            Mode::HugeFetch { .. } | Mode::SearchFlood { .. } | Mode::UnaskedUids { .. } => {
                let first = !self.arrived;
                self.arrived = true;
                if first || !matches!(self.mode, Mode::UnaskedUids { .. }) {
                    let n = self.exists();
                    self.reported = n;
                    out.send(format!("* {n} EXISTS\r\n").as_bytes()).await?;
                }
            }
            _ => {
                // Mail delivered since the last report.
                let n = self.exists();
                if n != self.reported {
                    self.reported = n;
                    out.send(format!("* {n} EXISTS\r\n").as_bytes()).await?;
                }
            }
        }
        let mut line = Vec::new();
        loop {
            let news = self.shared.news.notified();
            let tick = async {
                match repeat {
                    Some(every) => tokio::time::sleep(every).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                got = read.read_until(b'\n', &mut line) => {
                    if !matches!(got, Ok(n) if n > 0) {
                        return Ok(false);
                    }
                    let text = String::from_utf8_lossy(&line).trim_end().to_string();
                    line.clear();
                    self.shared.note(|s| *s.commands.entry("DONE".into()).or_default() += 1);
                    if !text.eq_ignore_ascii_case("DONE") {
                        out.send(format!("{tag} BAD expected DONE\r\n").as_bytes()).await?;
                        return Ok(true);
                    }
                    out.send(format!("{tag} OK IDLE done\r\n").as_bytes()).await?;
                    return Ok(true);
                }
                _ = news => {
                    let n = self.exists();
                    if n != self.reported {
                        self.reported = n;
                        out.send(format!("* {n} EXISTS\r\n").as_bytes()).await?;
                    }
                }
                _ = tick => {
                    out.send(b"* 0 EXISTS\r\n").await?;
                }
            }
        }
    }
}

/// One FETCH response with the items a watcher asks for.
fn fetch_response(seq: u32, uid: u32, items: &str) -> String {
    let mut text = format!("* {seq} FETCH (UID {uid}");
    if items.contains("HEADER") {
        let header = format!("From: Sender <sender@example.org>\r\nSubject: message {uid}\r\n\r\n");
        text.push_str(&format!(
            " BODY[HEADER.FIELDS (FROM SUBJECT)] {{{}}}\r\n{header}",
            header.len()
        ));
    }
    if items.contains("BODY.PEEK[TEXT]") {
        let body = format!("Body of message {uid}.\r\n");
        text.push_str(&format!(" BODY[TEXT]<0> {{{}}}\r\n{body}", body.len()));
    }
    if items.contains("PREVIEW") {
        text.push_str(&format!(" PREVIEW \"Body of message {uid}.\""));
    }
    text.push_str(")\r\n");
    text
}

/// Reads one command line, with its literals (`{n}` answered with `+`,
/// `{n+}` not), at most 1 MiB each. None at the end of the stream.
async fn read_command<R, W>(read: &mut BufReader<R>, out: &mut Out<W>) -> Option<String>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut command = Vec::new();
    loop {
        let mut line = Vec::new();
        match read.read_until(b'\n', &mut line).await {
            Ok(n) if n > 0 => {}
            _ => return None,
        }
        while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            line.pop();
        }
        let literal = literal_len(&line);
        command.extend_from_slice(&line);
        let Some((len, sync)) = literal else {
            return Some(String::from_utf8_lossy(&command).into_owned());
        };
        if len > 1 << 20 {
            return None;
        }
        if sync && out.send(b"+ go ahead\r\n").await.is_err() {
            return None;
        }
        let mut bytes = vec![0; len];
        read.read_exact(&mut bytes).await.ok()?;
        command.extend_from_slice(&bytes);
    }
}

/// `{n}` or `{n+}` at the end of a line: (n, whether the client waits for `+`).
fn literal_len(line: &[u8]) -> Option<(usize, bool)> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|b| *b == b'{')?;
    let digits = &inner[open + 1..];
    let (digits, sync) = match digits.strip_suffix(b"+") {
        Some(d) => (d, false),
        None => (digits, true),
    };
    let len = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((len, sync))
}

/// (tag, command name in upper case, `UID FETCH` as one name, the rest).
fn split_command(line: &str) -> (String, String, String) {
    let mut parts = line.splitn(3, ' ');
    let tag = parts.next().unwrap_or("*").to_string();
    let mut name = parts.next().unwrap_or("").to_ascii_uppercase();
    let mut rest = parts.next().unwrap_or("").to_string();
    if name == "UID" {
        let (sub, args) = rest.split_once(' ').unwrap_or((&rest, ""));
        name = format!("UID {}", sub.to_ascii_uppercase());
        rest = args.to_string();
    }
    (tag, name, rest)
}

/// The words of a command's arguments, quotes removed.
fn words(rest: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = rest.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c == ' ' {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut word = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => word.extend(chars.next()),
                    '"' => break,
                    c => word.push(c),
                }
            }
            out.push(word);
        } else {
            let mut word = String::new();
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                word.push(c);
                chars.next();
            }
            out.push(word);
        }
    }
    out
}

/// Whether `uid` is in the UID set `set` (`*` standing for `star`).
fn in_set(set: &str, uid: u32, star: u32) -> bool {
    let value = |s: &str| {
        if s == "*" {
            Some(star)
        } else {
            s.parse::<u32>().ok()
        }
    };
    set.split(',').any(|range| match range.split_once(':') {
        Some((a, b)) => match (value(a), value(b)) {
            (Some(a), Some(b)) => (a.min(b)..=a.max(b)).contains(&uid),
            _ => false,
        },
        None => value(range) == Some(uid),
    })
}

/// The largest number written in a UID set (not counting `*`).
fn set_max(set: &str) -> Option<u32> {
    set.split([',', ':'])
        .filter_map(|n| n.parse::<u32>().ok())
        .max()
}
