//! The load-test fake IMAP server. It is a fake on purpose: no real server
//! holds ten thousand cheap idle connections on a small box, and the load
//! benchmark needs to inject new mail and drop every connection at will.
//!
//! It runs as its own process (the benchmark starts its own executable with
//! `--load-test-fake-imap`), so its memory and CPU are not the gateway's.
//! It speaks just enough IMAP for the watcher: greeting, CAPABILITY, LOGIN,
//! ENABLE, SELECT/EXAMINE (UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ), STATUS,
//! IDLE/DONE, UID SEARCH, UID FETCH of headers and PREVIEW or of FLAGS,
//! STATUS with UNSEEN, NOOP, LOGOUT;
//! plain and TLS, on several loopback addresses.
//!
//! Users are `u0` … `u{n-1}` (any password), each with one INBOX whose
//! messages have UIDs 1..=count. Control lines on stdin:
//! `mail I` (one new message for user I: an EXISTS to its idle connection),
//! `read I` (every message of user I read elsewhere: a FETCH FLAGS to its
//! idle connection for each newly read one),
//! `drop` (close every connection), `stats` (one JSON line on stdout),
//! `reset` (forget the peak counters), `idle_after T I J …` (how many of
//! users I, J, … have a connection that logged in and first went to IDLE
//! at or after T, microseconds since the Unix epoch, and when the last of
//! them did). End of stdin stops the process.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};

const CAPS: &str = "IMAP4rev1 LITERAL+ IDLE ENABLE CONDSTORE PREVIEW";

struct UserSlot {
    messages: AtomicU32,
    /// Messages with UIDs up to this one are `\Seen`.
    read_upto: AtomicU32,
    news: Notify,
    /// When the user's latest connection first went to IDLE (µs since
    /// the Unix epoch; 0 if none has yet): when it was watched again.
    watched_since_us: AtomicU64,
    /// Connections logged in as this user now.
    sessions: AtomicU32,
}

/// Connection attempts in progress (accepted, not yet logged in) on one address.
#[derive(Default)]
struct AddrStats {
    connecting: AtomicUsize,
    peak: AtomicUsize,
}

impl AddrStats {
    fn enter(&self) {
        let now = self.connecting.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
    }
    fn leave(&self) {
        self.connecting.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Shared {
    users: Vec<UserSlot>,
    addrs: Vec<AddrStats>,
    open: AtomicUsize,
    logins: AtomicU64,
    /// Logins of a user already logged in on another connection (two
    /// watchers of one account at once).
    double_logins: AtomicU64,
    drops: watch::Sender<u64>,
}

/// Entry point of the fake's process: `--load-test-fake-imap DIR USERS IP...`.
/// DIR holds `server.pem` and `server.key` for TLS.
pub fn main(args: &[String]) {
    let [dir, users, ips @ ..] = args else {
        eprintln!("usage: --load-test-fake-imap DIR USERS IP...");
        std::process::exit(2);
    };
    let users: usize = users.parse().expect("user count");
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(serve(Path::new(dir), users, ips));
}

fn tls_acceptor(dir: &Path) -> tokio_rustls::TlsAcceptor {
    let certs =
        rustls_pemfile::certs(&mut std::fs::read(dir.join("server.pem")).unwrap().as_slice())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
    let key =
        rustls_pemfile::private_key(&mut std::fs::read(dir.join("server.key")).unwrap().as_slice())
            .unwrap()
            .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

async fn serve(dir: &Path, users: usize, ips: &[String]) {
    let shared = Arc::new(Shared {
        users: (0..users)
            .map(|_| UserSlot {
                messages: AtomicU32::new(0),
                read_upto: AtomicU32::new(0),
                news: Notify::new(),
                watched_since_us: AtomicU64::new(0),
                sessions: AtomicU32::new(0),
            })
            .collect(),
        addrs: ips.iter().map(|_| AddrStats::default()).collect(),
        open: AtomicUsize::new(0),
        logins: AtomicU64::new(0),
        double_logins: AtomicU64::new(0),
        drops: watch::channel(0).0,
    });
    let acceptor = tls_acceptor(dir);
    let mut plain = Vec::new();
    let mut tls = Vec::new();
    for (i, ip) in ips.iter().enumerate() {
        for secure in [false, true] {
            let listener = TcpListener::bind((ip.as_str(), 0)).await.expect("bind");
            let addr: SocketAddr = listener.local_addr().unwrap();
            if secure { &mut tls } else { &mut plain }.push(addr.to_string());
            tokio::spawn(accept_loop(
                listener,
                secure.then(|| acceptor.clone()),
                shared.clone(),
                i,
            ));
        }
    }
    println!("{}", serde_json::json!({ "plain": plain, "tls": tls }));
    control(shared).await;
}

async fn control(shared: Arc<Shared>) {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("mail") => {
                let user = words.next().and_then(|w| w.parse::<usize>().ok());
                if let Some(slot) = user.and_then(|u| shared.users.get(u)) {
                    slot.messages.fetch_add(1, Ordering::SeqCst);
                    slot.news.notify_one();
                }
            }
            Some("read") => {
                let user = words.next().and_then(|w| w.parse::<usize>().ok());
                if let Some(slot) = user.and_then(|u| shared.users.get(u)) {
                    let n = slot.messages.load(Ordering::SeqCst);
                    slot.read_upto.fetch_max(n, Ordering::SeqCst);
                    slot.news.notify_one();
                }
            }
            Some("drop") => {
                let open = shared.open.load(Ordering::SeqCst);
                shared.drops.send_modify(|n| *n += 1);
                println!("{}", serde_json::json!({ "dropped": open }));
            }
            Some("reset") => {
                for a in &shared.addrs {
                    a.peak
                        .store(a.connecting.load(Ordering::SeqCst), Ordering::SeqCst);
                }
                println!("{{}}");
            }
            Some("stats") => {
                let peaks: Vec<usize> = shared
                    .addrs
                    .iter()
                    .map(|a| a.peak.load(Ordering::SeqCst))
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({
                        "open": shared.open.load(Ordering::SeqCst),
                        "logins": shared.logins.load(Ordering::SeqCst),
                        "double_logins": shared.double_logins.load(Ordering::SeqCst),
                        "peak_connecting": peaks,
                    })
                );
            }
            Some("idle_after") => println!("{}", idle_after(&shared, words)),
            _ => println!("{{\"error\":\"unknown control line\"}}"),
        }
    }
}

/// `idle_after T I J …`: of users I, J, …, how many were watched again
/// (a connection of theirs logged in and went to IDLE) at or after T, and
/// when the last of those was.
fn idle_after<'a>(shared: &Shared, mut words: impl Iterator<Item = &'a str>) -> serde_json::Value {
    let after: u64 = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
    let (mut of, mut idle, mut last) = (0, 0, 0);
    for slot in words.filter_map(|w| w.parse::<usize>().ok().and_then(|u| shared.users.get(u))) {
        of += 1;
        let since = slot.watched_since_us.load(Ordering::SeqCst);
        if since >= after {
            idle += 1;
            last = last.max(since);
        }
    }
    serde_json::json!({ "of": of, "idle": idle, "last_us": last })
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    addr_index: usize,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        // As real servers do: replies go out when written, not after an ACK.
        let _ = tcp.set_nodelay(true);
        let shared = shared.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            shared.addrs[addr_index].enter();
            shared.open.fetch_add(1, Ordering::SeqCst);
            let mut conn = Conn {
                shared: shared.clone(),
                addr_index,
                user: None,
                reported: 0,
                reported_read: 0,
                idled: false,
            };
            match tls {
                None => conn.run(tcp).await,
                Some(acceptor) => {
                    if let Ok(Ok(stream)) =
                        tokio::time::timeout(Duration::from_secs(30), acceptor.accept(tcp)).await
                    {
                        conn.run(stream).await
                    }
                }
            }
            match conn.user {
                None => shared.addrs[addr_index].leave(),
                Some(u) => {
                    shared.users[u].sessions.fetch_sub(1, Ordering::SeqCst);
                }
            }
            shared.open.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

struct Conn {
    shared: Arc<Shared>,
    addr_index: usize,
    user: Option<usize>,
    /// The message count last announced on this connection.
    reported: u32,
    /// Messages up to this UID were announced read on this connection.
    reported_read: u32,
    /// Whether this connection has been to IDLE yet.
    idled: bool,
}

impl Conn {
    fn messages(&self) -> u32 {
        self.user
            .map(|u| self.shared.users[u].messages.load(Ordering::SeqCst))
            .unwrap_or(0)
    }

    fn read_upto(&self) -> u32 {
        self.user
            .map(|u| self.shared.users[u].read_upto.load(Ordering::SeqCst))
            .unwrap_or(0)
    }

    /// Records the first IDLE of a logged-in connection.
    fn first_idle(&mut self) {
        if let (Some(u), false) = (self.user, self.idled) {
            self.idled = true;
            self.shared.users[u]
                .watched_since_us
                .store(now_us(), Ordering::SeqCst);
        }
    }

    async fn run<S: AsyncRead + AsyncWrite + Unpin>(&mut self, stream: S) {
        let mut drops = self.shared.drops.subscribe();
        drops.mark_unchanged();
        let (read, mut write) = tokio::io::split(stream);
        let mut read = BufReader::new(read);
        let greeting = format!("* OK [CAPABILITY {CAPS}] lemonade load-test fake IMAP ready\r\n");
        if write.write_all(greeting.as_bytes()).await.is_err() {
            return;
        }
        let mut line = Vec::new();
        let mut idling: Option<String> = None;
        // Replies to pipelined commands go out together, in one write.
        let mut replies = String::new();
        loop {
            let shared = self.shared.clone();
            let (user, is_idle) = (self.user, idling.is_some());
            let news = async move {
                match user {
                    Some(u) if is_idle => shared.users[u].news.notified().await,
                    _ => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = drops.changed() => return,
                _ = news => {
                    let n = self.messages();
                    let mut news = String::new();
                    if n != self.reported {
                        self.reported = n;
                        news.push_str(&format!("* {n} EXISTS\r\n"));
                    }
                    let read_upto = self.read_upto();
                    for seq in self.reported_read + 1..=read_upto.min(n) {
                        news.push_str(&format!("* {seq} FETCH (FLAGS (\\Seen))\r\n"));
                    }
                    self.reported_read = self.reported_read.max(read_upto);
                    if write.write_all(news.as_bytes()).await.is_err() {
                        return;
                    }
                    continue;
                }
                read = read.read_until(b'\n', &mut line) => {
                    match read {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                }
            }
            let text = String::from_utf8_lossy(&line).trim_end().to_string();
            line.clear();
            let reply = match idling.take() {
                Some(tag) if text.eq_ignore_ascii_case("DONE") => format!("{tag} OK IDLE done\r\n"),
                Some(tag) => format!("{tag} BAD expected DONE\r\n"),
                None => match self.command(&text) {
                    Reply::Text(t) => t,
                    Reply::Idle(tag) => {
                        idling = Some(tag);
                        self.first_idle();
                        let mut t = String::from("+ idling\r\n");
                        // Mail that arrived since the last report is announced at once.
                        let n = self.messages();
                        if n != self.reported {
                            self.reported = n;
                            t.push_str(&format!("* {n} EXISTS\r\n"));
                        }
                        t
                    }
                    Reply::Close(t) => {
                        replies.push_str(&t);
                        let _ = write.write_all(replies.as_bytes()).await;
                        let _ = write.shutdown().await;
                        return;
                    }
                },
            };
            replies.push_str(&reply);
            if read.buffer().contains(&b'\n') {
                continue;
            }
            if write.write_all(replies.as_bytes()).await.is_err() {
                return;
            }
            replies.clear();
        }
    }

    fn command(&mut self, text: &str) -> Reply {
        let mut parts = text.splitn(3, ' ');
        let tag = parts.next().unwrap_or("*").to_string();
        let name = parts.next().unwrap_or("").to_ascii_uppercase();
        let rest = parts.next().unwrap_or("");
        let ok = |what: &str| format!("{tag} OK {what}\r\n");
        Reply::Text(match name.as_str() {
            "CAPABILITY" => format!("* CAPABILITY {CAPS}\r\n{}", ok("done")),
            "NOOP" => {
                let n = self.messages();
                let mut t = String::new();
                if n != self.reported {
                    self.reported = n;
                    t.push_str(&format!("* {n} EXISTS\r\n"));
                }
                t + &ok("done")
            }
            "LOGOUT" => return Reply::Close(format!("* BYE bye\r\n{}", ok("done"))),
            "LOGIN" => {
                let user = words(rest)
                    .first()
                    .and_then(|u| u.strip_prefix('u'))
                    .and_then(|n| n.parse::<usize>().ok())
                    .filter(|n| *n < self.shared.users.len());
                match user {
                    Some(u) if self.user.is_none() => {
                        self.user = Some(u);
                        self.shared.logins.fetch_add(1, Ordering::SeqCst);
                        if self.shared.users[u].sessions.fetch_add(1, Ordering::SeqCst) > 0 {
                            self.shared.double_logins.fetch_add(1, Ordering::SeqCst);
                        }
                        self.shared.addrs[self.addr_index].leave();
                        format!("{tag} OK [CAPABILITY {CAPS}] logged in\r\n")
                    }
                    _ => format!("{tag} NO [AUTHENTICATIONFAILED] unknown user\r\n"),
                }
            }
            "ENABLE" => format!("* ENABLED CONDSTORE\r\n{}", ok("enabled")),
            "SELECT" | "EXAMINE" => {
                let n = self.messages();
                self.reported = n;
                self.reported_read = self.read_upto();
                format!(
                    "* FLAGS (\\Seen)\r\n* {n} EXISTS\r\n* OK [UIDVALIDITY 1] ok\r\n\
                     * OK [UIDNEXT {}] ok\r\n* OK [HIGHESTMODSEQ {}] ok\r\n{tag} OK [READ-ONLY] done\r\n",
                    n + 1,
                    n + 1
                )
            }
            "STATUS" => {
                let n = self.messages();
                let unseen = if rest.to_ascii_uppercase().contains("UNSEEN") {
                    format!(" UNSEEN {}", n.saturating_sub(self.read_upto()))
                } else {
                    String::new()
                };
                format!(
                    "* STATUS INBOX (MESSAGES {n} UIDNEXT {} UIDVALIDITY 1{unseen})\r\n{}",
                    n + 1,
                    ok("done")
                )
            }
            "IDLE" => return Reply::Idle(tag),
            "UID" => {
                let n = self.messages();
                let (sub, args) = rest.split_once(' ').unwrap_or((rest, ""));
                match sub.to_ascii_uppercase().as_str() {
                    "SEARCH" => {
                        let set = args.trim_start_matches("UID ").trim();
                        let mut found: Vec<u32> =
                            uid_set(set, n).into_iter().filter(|u| *u <= n).collect();
                        if found.is_empty() && n > 0 && set.ends_with(":*") {
                            found.push(n);
                        }
                        let list: Vec<String> = found.iter().map(u32::to_string).collect();
                        format!("* SEARCH {}\r\n{}", list.join(" "), ok("done"))
                    }
                    "FETCH" if args.to_ascii_uppercase().ends_with("(UID FLAGS)") => {
                        let set = args.split(' ').next().unwrap_or("");
                        let read_upto = self.read_upto();
                        let mut t = String::new();
                        for uid in uid_set(set, n).into_iter().filter(|u| (1..=n).contains(u)) {
                            let flags = if uid <= read_upto { "\\Seen" } else { "" };
                            t.push_str(&format!("* {uid} FETCH (UID {uid} FLAGS ({flags}))\r\n"));
                        }
                        t + &ok("done")
                    }
                    "FETCH" => {
                        let set = args.split(' ').next().unwrap_or("");
                        let mut t = String::new();
                        for uid in uid_set(set, n).into_iter().filter(|u| (1..=n).contains(u)) {
                            let header = format!(
                                "From: Load Test <load@example.org>\r\nSubject: message {uid}\r\n\r\n"
                            );
                            t.push_str(&format!(
                                "* {uid} FETCH (UID {uid} BODY[HEADER.FIELDS (FROM SUBJECT MIME-VERSION CONTENT-TYPE CONTENT-TRANSFER-ENCODING)] {{{}}}\r\n{header} PREVIEW \"preview of message {uid}\")\r\n",
                                header.len()
                            ));
                        }
                        t + &ok("done")
                    }
                    _ => format!("{tag} BAD unknown UID command\r\n"),
                }
            }
            _ => format!("{tag} BAD unknown command\r\n"),
        })
    }
}

enum Reply {
    Text(String),
    Idle(String),
    Close(String),
}

/// Atoms and quoted strings of a command's arguments.
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c == ' ' {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut w = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => w.extend(chars.next()),
                    '"' => break,
                    c => w.push(c),
                }
            }
            out.push(w);
        } else {
            let mut w = String::new();
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                w.push(c);
                chars.next();
            }
            out.push(w);
        }
    }
    out
}

/// The UIDs of a sequence set (`*` is the highest UID, `max`).
fn uid_set(set: &str, max: u32) -> Vec<u32> {
    let num = |s: &str| {
        if s == "*" {
            Some(max)
        } else {
            s.parse::<u32>().ok()
        }
    };
    let mut out = Vec::new();
    for range in set.split(',') {
        match range.split_once(':') {
            Some((a, b)) => {
                if let (Some(a), Some(b)) = (num(a), num(b)) {
                    let (lo, hi) = (a.min(b), a.max(b));
                    out.extend(lo..=hi.min(lo.saturating_add(100_000)));
                }
            }
            None => out.extend(num(range)),
        }
    }
    out
}
