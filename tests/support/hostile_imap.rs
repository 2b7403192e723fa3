//! A scripted hostile IMAP server: it logs any user in and then misbehaves
//! in a chosen [`Mode`], the way a server chosen by whoever registers an
//! account may. It is a fake on purpose: no real server sends a 30 MiB BYE
//! or answers a fetch with a thousand copies of one message.
//!
//! It speaks just enough IMAP for the gateway's watcher, its registration
//! check and its read API: greeting, CAPABILITY, LOGIN, ENABLE,
//! SELECT/EXAMINE, STATUS, LIST, IDLE/DONE, UID SEARCH, UID FETCH (UID,
//! header fields, PREVIEW, a body prefix), NOOP, LOGOUT; plain TCP on a
//! loopback address. Each user has one INBOX, empty until
//! [`HostileImap::deliver`] adds a message.
//!
//! It counts what it saw ([`Seen`]): connections, logins, commands by name,
//! EXISTS lines sent, bytes sent; tests wait on those with
//! [`HostileImap::wait_for`] instead of sleeping. The mode applies to
//! connections accepted after [`HostileImap::set_mode`]; together with
//! [`HostileImap::drop_connections`] a test registers an account while the
//! server behaves (registration needs a login) and then turns it hostile.
//!
//! Self-contained (tokio and std only), so a benchmark can include it with
//! `#[path = "../tests/support/hostile_imap.rs"] mod hostile_imap;`.
//!
//! ```ignore
//! let imap = HostileImap::start(Mode::WellBehaved).await;
//! let (_, token) = gateway.register("127.0.0.1", imap.port(), "eve", "any").await;
//! imap.set_mode(Mode::HugeBye { bytes: 30 << 20 });
//! imap.drop_connections();
//! imap.wait_for("a BYE", |seen| seen.connections >= 3).await;
//! ```

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};

// A path of its own, so that the module resolves the same way when a
// benchmark includes this file with `#[path]`.
#[path = "hostile_imap/conn.rs"]
mod conn;

use conn::Conn;

/// The largest UID IMAP allows.
pub const MAX_UID: u32 = u32::MAX;

/// How the server misbehaves once a user is logged in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// A plain server: mail arrives through [`HostileImap::deliver`].
    WellBehaved,
    /// After IDLE, announces one new message, and answers any UID FETCH
    /// with `copies` FETCH responses for it, each with a subject of
    /// `subject_bytes` bytes (a header literal of that size).
    HugeFetch { copies: usize, subject_bytes: usize },
    /// After IDLE, announces a thousand new messages (so the watcher
    /// searches), and answers UID SEARCH with `* SEARCH` lines of numbers
    /// totalling `bytes`.
    SearchFlood { bytes: usize },
    /// Answers LIST with `\Noselect` mailboxes totalling `bytes`.
    ListFlood { bytes: usize },
    /// Greets every connection with `* BYE` and a text of `bytes` bytes,
    /// then closes.
    HugeBye { bytes: usize },
    /// Each login answers with a capability list no login had before
    /// (`extra` padding capabilities besides the usual ones), and the
    /// connection is closed (`* BYE`) once IDLE starts, so the watcher logs
    /// in again.
    CapabilityChurn { extra: usize },
    /// `* 0 EXISTS` as soon as each IDLE starts, and again every `every`
    /// while it runs (`None`: once).
    ZeroExists { every: Option<Duration> },
    /// After the first IDLE of a connection, announces one new message, and
    /// answers each UID FETCH with `count` more FETCH responses for UIDs
    /// nobody asked for (above every UID of the mailbox and of the set).
    UnaskedUids { count: u32 },
    /// The mailbox holds UID 1 and UID 4294967295 (UIDNEXT 4294967295 at
    /// SELECT, one message); each IDLE announces `* 2 EXISTS`.
    MaxUid,
}

impl Mode {
    /// A short name, for reports.
    pub fn name(&self) -> &'static str {
        match self {
            Mode::WellBehaved => "well_behaved",
            Mode::HugeFetch { .. } => "huge_fetch",
            Mode::SearchFlood { .. } => "search_flood",
            Mode::ListFlood { .. } => "list_flood",
            Mode::HugeBye { .. } => "huge_bye",
            Mode::CapabilityChurn { .. } => "capability_churn",
            Mode::ZeroExists { .. } => "zero_exists",
            Mode::UnaskedUids { .. } => "unasked_uids",
            Mode::MaxUid => "max_uid",
        }
    }

    /// Every hostile mode at the sizes the issue reported (a 1 MiB subject
    /// a thousand and five hundred times, 300 MiB of SEARCH, 80 MB of LIST,
    /// a 30 MiB BYE, 200,000 unasked UIDs).
    pub fn all_hostile() -> Vec<Mode> {
        vec![
            Mode::HugeFetch {
                copies: 1500,
                subject_bytes: 1 << 20,
            },
            Mode::SearchFlood { bytes: 300 << 20 },
            Mode::ListFlood { bytes: 80_000_000 },
            Mode::HugeBye { bytes: 30 << 20 },
            Mode::CapabilityChurn { extra: 40 },
            Mode::ZeroExists { every: None },
            Mode::UnaskedUids { count: 200_000 },
            Mode::MaxUid,
        ]
    }
}

/// What the server saw so far.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// Connections accepted.
    pub connections: u64,
    /// Connections open now.
    pub open: u64,
    /// When each of the first thousand connections was accepted.
    pub accepted_at: Vec<tokio::time::Instant>,
    /// Successful logins.
    pub logins: u64,
    /// Commands by name (`LOGIN`, `UID FETCH`, `IDLE`, `DONE`, …).
    pub commands: BTreeMap<String, u64>,
    /// EXISTS lines sent.
    pub exists_sent: u64,
    /// Bytes written to clients.
    pub bytes_sent: u64,
}

impl Seen {
    /// How many commands of this name arrived (`"UID FETCH"`, `"IDLE"`).
    pub fn count(&self, name: &str) -> u64 {
        self.commands.get(name).copied().unwrap_or(0)
    }

    /// Looks for new mail: UID FETCH and UID SEARCH commands.
    pub fn checks(&self) -> u64 {
        self.count("UID FETCH") + self.count("UID SEARCH")
    }
}

#[derive(Default)]
struct Mailbox {
    /// UIDs, ascending.
    uids: Vec<u32>,
}

struct Shared {
    mode: Mutex<Mode>,
    seen: Mutex<Seen>,
    /// Bumped at every change of `seen`, so waiters wake without polling.
    changed: watch::Sender<u64>,
    mailboxes: Mutex<HashMap<String, Mailbox>>,
    /// Wakes IDLE connections when mail is delivered.
    news: Notify,
    drops: watch::Sender<u64>,
    logins: Mutex<u64>,
}

impl Shared {
    fn note(&self, f: impl FnOnce(&mut Seen)) {
        f(&mut self.seen.lock().unwrap_or_else(|e| e.into_inner()));
        self.changed.send_modify(|n| *n += 1);
    }

    fn uids(&self, user: &str) -> Vec<u32> {
        let boxes = self.mailboxes.lock().unwrap_or_else(|e| e.into_inner());
        boxes.get(user).map(|b| b.uids.clone()).unwrap_or_default()
    }
}

/// The running server. Stops accepting when dropped.
pub struct HostileImap {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HostileImap {
    fn drop(&mut self) {
        self.task.abort();
        self.shared.drops.send_modify(|n| *n += 1);
    }
}

impl HostileImap {
    /// Starts on `127.0.0.1`, on a free port.
    pub async fn start(mode: Mode) -> HostileImap {
        Self::start_on("127.0.0.1", mode).await
    }

    /// Starts on a loopback address of the caller's choice (`127.0.0.2`…),
    /// on a free port.
    pub async fn start_on(ip: &str, mode: Mode) -> HostileImap {
        let listener = TcpListener::bind((ip, 0)).await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let shared = Arc::new(Shared {
            mode: Mutex::new(mode),
            seen: Mutex::default(),
            changed: watch::channel(0).0,
            mailboxes: Mutex::default(),
            news: Notify::new(),
            drops: watch::channel(0).0,
            logins: Mutex::new(0),
        });
        let task = tokio::spawn(accept_loop(listener, shared.clone()));
        HostileImap { addr, shared, task }
    }

    pub fn host(&self) -> String {
        self.addr.ip().to_string()
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The mode of connections accepted from now on.
    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap_or_else(|e| e.into_inner()) = mode;
    }

    /// Closes every open connection (the gateway reconnects).
    pub fn drop_connections(&self) {
        self.shared.drops.send_modify(|n| *n += 1);
    }

    /// A new message in `user`'s INBOX, announced to its IDLE connections;
    /// returns its UID.
    pub fn deliver(&self, user: &str) -> u32 {
        let uid = {
            let mut boxes = self
                .shared
                .mailboxes
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let mailbox = boxes.entry(user.to_string()).or_default();
            let uid = mailbox.uids.last().map_or(1, |u| u.saturating_add(1));
            mailbox.uids.push(uid);
            uid
        };
        self.shared.news.notify_waiters();
        uid
    }

    /// What the server saw so far.
    pub fn seen(&self) -> Seen {
        self.shared
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits until `done` holds for what the server saw, at most a minute
    /// (then fails the test, saying `what`). Returns what it saw then.
    pub async fn wait_for(&self, what: &str, done: impl Fn(&Seen) -> bool) -> Seen {
        self.wait_for_within(what, Duration::from_secs(60), done)
            .await
    }

    /// [`HostileImap::wait_for`] with a bound of the caller's choice.
    pub async fn wait_for_within(
        &self,
        what: &str,
        limit: Duration,
        done: impl Fn(&Seen) -> bool,
    ) -> Seen {
        let mut changed = self.shared.changed.subscribe();
        let waited = tokio::time::timeout(limit, async {
            loop {
                changed.mark_unchanged();
                let seen = self.seen();
                if done(&seen) {
                    return seen;
                }
                if changed.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        })
        .await;
        waited.unwrap_or_else(|_| panic!("the IMAP server never saw {what}: {:?}", self.seen()))
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let mode = shared
            .mode
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            shared.note(|s| {
                s.connections += 1;
                s.open += 1;
                if s.accepted_at.len() < 1000 {
                    s.accepted_at.push(tokio::time::Instant::now());
                }
            });
            let mut conn = Conn {
                shared: shared.clone(),
                mode,
                user: None,
                arrived: false,
                reported: 0,
            };
            let mut drops = shared.drops.subscribe();
            drops.mark_unchanged();
            tokio::select! {
                _ = conn.run(tcp) => {}
                _ = drops.changed() => {}
            }
            shared.note(|s| s.open -= 1);
        });
    }
}
