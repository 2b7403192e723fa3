//! The connection core: greeting, STARTTLS, login, sending commands and
//! reading responses into typed results and queued events.
//!
//! Commands run one at a time (`run`): the command is written (waiting for
//! `+` before synchronizing literals and SASL data), then responses are read
//! until the tagged completion. Untagged responses the command wants are
//! handed to it; everything else that matters (EXISTS, EXPUNGE, STATUS,
//! VANISHED, FETCH, BYE) becomes an [`IdleEvent`] in a queue, so nothing a
//! server says during a command is lost. Each command is bounded by the
//! client's timeout; a timeout or I/O error marks the connection unusable.
//!
//! Reading: the buffer is allocated only when bytes arrive, and released as
//! soon as it holds no unfinished response (shrunk when it holds only the
//! start of the next one). Waiting for the next response first awaits
//! socket readiness without any buffer. What a command collects and what
//! the buffer holds are bounded by the budgets of [`super::budget`].

use std::collections::VecDeque;
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::budget::{Holding, InflightBudget, IDLE_BUDGET};
use super::command::{Command, Part};
use super::error::{cut, ImapError, MAX_SERVER_TEXT};
use super::framer::Framer;
use super::parser::{parse_response, Code, Response, Status, Untagged};
use super::IdleEvent;
use crate::error::ErrorClass;
use crate::net::{self, MaybeTls, Security, TlsConnector, Upstream};

/// Default bound on each command (and on connecting).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// How much is read at a time when no literal size says otherwise.
const READ_CHUNK: usize = 4096;
/// Largest single read reservation while a big literal arrives.
const MAX_READ_CHUNK: usize = 256 * 1024;
/// A buffer larger than this that holds only a quarter of its capacity is
/// shrunk after a response was taken out of it: a connection that received
/// one large response must not keep its buffer while it idles.
const SHRINK_ABOVE: usize = 64 * 1024;
/// Events kept for the caller at most; beyond, the oldest are dropped.
const MAX_EVENTS: usize = 1024;
/// LOGOUT gets at most this long.
pub(crate) const LOGOUT_TIMEOUT: Duration = Duration::from_secs(5);

/// The server's capabilities, kept as one string to stay small.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    list: Box<str>,
}

impl Capabilities {
    pub(crate) fn new(names: &[String]) -> Self {
        Capabilities {
            list: names.join(" ").into_boxed_str(),
        }
    }

    /// Whether the server advertised `name` (case-insensitive, exact match:
    /// `has("AUTH=PLAIN")`, `has("IDLE")`).
    pub fn has(&self, name: &str) -> bool {
        self.iter().any(|c| c.eq_ignore_ascii_case(name))
    }

    /// Every advertised capability, as the server spelled it.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.list.split(' ').filter(|c| !c.is_empty())
    }

    fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// What the server reported in a command's tagged completion.
#[derive(Debug)]
pub(crate) struct Completion {
    pub status: Status,
    pub code: Option<Code>,
    pub text: String,
}

/// Extensions turned on with ENABLE that change how the client talks.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Enabled {
    pub utf8: bool,
    pub condstore: bool,
    pub qresync: bool,
}

/// A connection to one IMAP server. See the module docs of [`super`] for the idle cost.
pub struct ImapClient {
    pub(super) stream: MaybeTls,
    /// Unparsed bytes; capacity 0 whenever no response is half-read.
    buf: Vec<u8>,
    framer: Framer,
    pub(super) caps: Capabilities,
    pub(crate) enabled: Enabled,
    events: VecDeque<IdleEvent>,
    pub(super) tag: u32,
    /// Bound on each command.
    pub(crate) timeout: Duration,
    /// The tag of the running IDLE command.
    pub(crate) idle_tag: Option<String>,
    /// Set when the server broke the connection by saying something the
    /// client could not take (a response too large, garbage): the pool of
    /// API sessions then lets the account cool down before connecting again.
    pub(super) misbehaved: bool,
    /// Set after a timeout or I/O error: the stream is out of sync.
    pub(super) broken: bool,
    /// A command is under way; still set when its future was dropped
    /// midway (a cancelled request), which leaves the stream out of sync.
    pub(super) in_command: bool,
    /// The server advertised PREVIEW but answered `PREVIEW NIL` (Cyrus
    /// before 3.13 unless configured): previews come from the body here on.
    pub(super) preview_unreliable: bool,
    /// Whether DONE may go out in front of a command, and IDLE behind one,
    /// in the same write (on unless the server is known to mishandle it).
    pub(super) pipelining: bool,
    /// An exchange that used pipelining failed in a way a server that
    /// mishandles pipelining would cause (a refusal, nonsense, silence).
    pub(super) pipelining_failed: bool,
    /// Text of a BYE seen, reported when the connection then closes.
    bye: Option<String>,
    /// The server greeted with PREAUTH: no login needed.
    pub(super) preauth: bool,
    /// Byte budget of the running command ([`IDLE_BUDGET`] between commands).
    pub(super) budget: usize,
    /// Bytes of the untagged responses the running command has taken.
    pub(super) collected: usize,
    /// Length of the last response read.
    pub(super) last_frame: usize,
    /// What this connection counts against the process budget.
    holding: Holding,
    /// Messages in the selected mailbox, as far as the server has said
    /// (EXISTS, less EXPUNGE); `None` when nothing is selected. No FETCH or
    /// SEARCH answer can be about more messages than this.
    pub(crate) exists: Option<u32>,
}

impl std::fmt::Debug for ImapClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImapClient")
            .field("tls", &self.stream.is_tls())
            .field("caps", &self.caps)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

/// A command's interest in untagged responses: return `None` for those it
/// consumed, `Some` for the rest (which become events).
pub(crate) type Handler<'a> = &'a mut (dyn FnMut(Untagged) -> Option<Untagged> + Send);

impl ImapClient {
    /// Connects, reads the greeting, upgrades with STARTTLS when
    /// `upstream.security` asks for it (refusing a server that does not offer
    /// it) and learns the capabilities. `timeout` bounds each step and is kept
    /// as the per-command timeout.
    pub async fn connect(
        upstream: &Upstream,
        tls: &TlsConnector,
        timeout: Duration,
    ) -> Result<Self, ImapError> {
        let stream = net::connect(upstream, tls, timeout).await?;
        let mut client = ImapClient {
            stream,
            buf: Vec::new(),
            framer: Framer::new(IDLE_BUDGET),
            caps: Capabilities::default(),
            enabled: Enabled::default(),
            events: VecDeque::new(),
            tag: 0,
            timeout,
            idle_tag: None,
            broken: false,
            misbehaved: false,
            in_command: false,
            preview_unreliable: false,
            pipelining: true,
            pipelining_failed: false,
            bye: None,
            preauth: false,
            budget: IDLE_BUDGET,
            collected: 0,
            last_frame: 0,
            holding: Holding::new(InflightBudget::global()),
            exists: None,
        };
        client.greeting().await?;
        if upstream.security == Security::Starttls {
            if client.preauth {
                // RFC 3501: STARTTLS is impossible once authenticated.
                return Err(ImapError::StarttlsUnavailable);
            }
            if client.caps.is_empty() {
                client.refresh_capabilities().await?;
            }
            if !client.caps.has("STARTTLS") {
                return Err(ImapError::StarttlsUnavailable);
            }
            client
                .run_ok("STARTTLS", Command::new("STARTTLS"), &mut Some)
                .await?;
            if !client.buf.is_empty() {
                // Bytes after the OK but before the handshake were not protected.
                return Err(ImapError::protocol("data injected before TLS"));
            }
            // Moving the field out of the owned client is fine: it is put
            // back before the client is used again.
            let plain = client.stream;
            let secured = tokio::time::timeout(timeout, plain.upgrade(tls, &upstream.host))
                .await
                .map_err(|_| ImapError::Timeout)??;
            client.stream = secured;
            client.caps = Capabilities::default();
        }
        if client.caps.is_empty() {
            client.refresh_capabilities().await?;
        }
        Ok(client)
    }

    /// What the server offers (as of the last greeting, login or CAPABILITY).
    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    /// Logs in with `AUTHENTICATE PLAIN` (SASL-IR when offered) or `LOGIN`.
    /// Refused credentials give [`ImapError::Auth`]. Capabilities are refreshed.
    pub async fn login(&mut self, username: &str, password: &str) -> Result<(), ImapError> {
        if self.preauth {
            return Ok(());
        }
        if self.caps.has("LOGINDISABLED") {
            return Err(ImapError::LoginDisabled);
        }
        let mut caps = None;
        let mut collect = |u: Untagged| match u {
            Untagged::Capability(list) => {
                caps = Some(list);
                None
            }
            other => Some(other),
        };
        let done = if self.caps.has("AUTH=PLAIN") {
            // Zeroed when dropped, as the command is (see `exchange.rs`).
            let mut blob =
                zeroize::Zeroizing::new(Vec::with_capacity(username.len() + password.len() + 2));
            blob.push(0);
            blob.extend_from_slice(username.as_bytes());
            blob.push(0);
            blob.extend_from_slice(password.as_bytes());
            let encoded =
                zeroize::Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&*blob));
            let mut cmd = Command::new("AUTHENTICATE PLAIN");
            if self.caps.has("SASL-IR") {
                // An empty response is sent as "=" (RFC 4959).
                cmd.parts
                    .push(Part::Text(format!(" {}", encoded.as_str()).into_bytes()));
            } else {
                cmd.parts
                    .push(Part::Continuation(encoded.as_bytes().to_vec()));
            }
            self.run(cmd, &mut collect).await?
        } else {
            let cmd = Command::new("LOGIN")
                .string(username.as_bytes(), false)?
                .string(password.as_bytes(), false)?;
            self.run(cmd, &mut collect).await?
        };
        self.complete_login(done, caps).await
    }

    /// Ends a login: a refusal becomes [`ImapError::Auth`] (or `Unavailable`),
    /// and the capabilities are taken from the completion, from an untagged
    /// CAPABILITY the login collected, or asked for.
    pub(super) async fn complete_login(
        &mut self,
        done: Completion,
        caps: Option<Vec<String>>,
    ) -> Result<(), ImapError> {
        match done.status {
            Status::Ok => {}
            Status::No if done.code == Some(Code::Unavailable) => {
                return Err(ImapError::Unavailable(done.text))
            }
            Status::No => return Err(ImapError::Auth(done.text)),
            _ => {
                return Err(ImapError::Bad {
                    command: "LOGIN",
                    text: done.text,
                })
            }
        }
        match (done.code, caps) {
            (Some(Code::Capability(list)), _) | (_, Some(list)) => {
                self.caps = Capabilities::new(&list)
            }
            _ => self.refresh_capabilities().await?,
        }
        Ok(())
    }

    /// Asks the server for its capabilities again.
    pub async fn refresh_capabilities(&mut self) -> Result<(), ImapError> {
        let mut caps = None;
        let done = self
            .run_ok("CAPABILITY", Command::new("CAPABILITY"), &mut |u| match u {
                Untagged::Capability(list) => {
                    caps = Some(list);
                    None
                }
                other => Some(other),
            })
            .await?;
        match (caps, done.code) {
            (Some(list), _) | (None, Some(Code::Capability(list))) => {
                self.caps = Capabilities::new(&list);
                Ok(())
            }
            _ => Err(ImapError::protocol("no CAPABILITY in response")),
        }
    }

    async fn greeting(&mut self) -> Result<(), ImapError> {
        let timeout = self.timeout;
        let greeting = tokio::time::timeout(timeout, self.read_response())
            .await
            .map_err(|_| ImapError::Timeout)??;
        match greeting {
            Response::Untagged(Untagged::Condition { status, code, text }) => {
                match status {
                    Status::Ok => {}
                    Status::Preauth => self.preauth = true,
                    Status::Bye => return Err(ImapError::Bye(text)),
                    _ => return Err(ImapError::protocol(format!("bad greeting: {text}"))),
                }
                if let Some(Code::Capability(list)) = code {
                    self.caps = Capabilities::new(&list);
                }
                Ok(())
            }
            _ => Err(ImapError::protocol("unexpected greeting")),
        }
    }

    /// Takes every event queued during commands (and not yet returned by `idle_next`).
    pub fn take_events(&mut self) -> Vec<IdleEvent> {
        std::mem::take(&mut self.events).into()
    }

    pub(crate) fn pop_event(&mut self) -> Option<IdleEvent> {
        let ev = self.events.pop_front();
        if self.events.is_empty() && self.events.capacity() > 0 {
            self.events = VecDeque::new();
        }
        ev
    }

    /// Queues what matters in an untagged response nobody consumed.
    pub(crate) fn queue_event(&mut self, u: Untagged) {
        let Some(ev) = self.event_from(u) else {
            return;
        };
        if matches!(ev, IdleEvent::Other) {
            return;
        }
        if matches!(ev, IdleEvent::Fetch) && matches!(self.events.back(), Some(IdleEvent::Fetch)) {
            return;
        }
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(ev);
    }

    /// The event an untagged response stands for (`Other` for the rest).
    pub(crate) fn event_from(&mut self, u: Untagged) -> Option<IdleEvent> {
        Some(match u {
            Untagged::Exists(n) => {
                self.exists = Some(n);
                IdleEvent::Exists(n)
            }
            Untagged::Expunge(n) => {
                self.exists = self.exists.map(|e| e.saturating_sub(1));
                IdleEvent::Expunge(n)
            }
            Untagged::Vanished { earlier: false, .. } => IdleEvent::Vanished,
            Untagged::Fetch { .. } => IdleEvent::Fetch,
            Untagged::Status { mailbox, items } => {
                let get = |name: &str| {
                    items
                        .iter()
                        .find(|(k, _)| k == name)
                        .and_then(|(_, v)| u32::try_from(*v).ok())
                };
                // Longer names cannot be watched: no need to keep them.
                let raw = mailbox.get(..MAX_SERVER_TEXT).unwrap_or(&mailbox);
                IdleEvent::Status {
                    mailbox: cut(self.decode_mailbox(raw), MAX_SERVER_TEXT),
                    uidnext: get("UIDNEXT"),
                    uidvalidity: get("UIDVALIDITY"),
                    messages: get("MESSAGES"),
                }
            }
            Untagged::Condition {
                status: Status::Bye,
                text,
                ..
            } => {
                self.bye = Some(text.clone());
                IdleEvent::Bye(text)
            }
            _ => IdleEvent::Other,
        })
    }

    /// A mailbox name as the server sent it, decoded for display and matching.
    pub(crate) fn decode_mailbox(&self, raw: &[u8]) -> String {
        if self.enabled.utf8 {
            return String::from_utf8_lossy(raw).into_owned();
        }
        super::command::decode_utf7(raw)
            .unwrap_or_else(|| String::from_utf8_lossy(raw).into_owned())
    }

    /// Reads one complete response. Cancel-safe: bytes read so far stay in
    /// `self.buf`, and parsing happens only once a response is complete.
    /// A response longer than the running command's budget, or a buffer
    /// that the process budget cannot hold, fails with [`ImapError::TooLarge`].
    pub(crate) async fn read_response(&mut self) -> Result<Response, ImapError> {
        loop {
            if !self.buf.is_empty() {
                let frame = self.framer.next_frame(&self.buf).map_err(|_| {
                    ImapError::TooLarge(format!(
                        "one response is longer than the {} bytes allowed",
                        self.framer.max_len()
                    ))
                })?;
                if let Some(n) = frame {
                    let parsed = parse_response(self.buf.get(..n).unwrap_or_default());
                    self.buf.drain(..n);
                    self.last_frame = n;
                    self.shrink_buffer();
                    return parsed.map_err(|e| ImapError::protocol(e.to_string()));
                }
            } else {
                if self.buf.capacity() > 0 {
                    self.buf = Vec::new();
                    self.holding.hold(self.collected);
                }
                // Wait without a buffer: an idle connection holds none.
                self.stream.readable().await?;
            }
            let want = self
                .framer
                .pending(self.buf.len())
                .clamp(READ_CHUNK, MAX_READ_CHUNK);
            let needed = self.buf.len().saturating_add(want);
            if needed > self.buf.capacity() {
                // What `reserve` will allocate (it at least doubles).
                let grown = needed.max(self.buf.capacity().saturating_mul(2));
                self.hold(grown)?;
                self.buf.reserve(want);
                self.hold(self.buf.capacity())?;
            }
            let n = self.stream.read_buf(&mut self.buf).await?;
            if n == 0 {
                return Err(match self.bye.take() {
                    Some(text) => ImapError::Bye(text),
                    None => ImapError::Closed,
                });
            }
        }
    }

    /// Frees or shrinks the read buffer once a response was taken out.
    fn shrink_buffer(&mut self) {
        if self.buf.is_empty() {
            self.buf = Vec::new();
        } else if self.buf.capacity() > SHRINK_ABOVE && self.buf.len() <= self.buf.capacity() / 4 {
            self.buf.shrink_to(self.buf.len().max(READ_CHUNK));
        }
        self.holding
            .hold(self.buf.capacity().saturating_add(self.collected));
    }

    /// Counts holding a buffer of `capacity` bytes (plus what the command
    /// collected) against the process budget.
    fn hold(&mut self, capacity: usize) -> Result<(), ImapError> {
        if self.holding.hold(capacity.saturating_add(self.collected)) {
            Ok(())
        } else {
            Err(ImapError::TooLarge(format!(
                "upstream responses in flight exceed the gateway's budget of {} bytes",
                self.holding.limit()
            )))
        }
    }

    /// The running command took the last response read: counts it against
    /// the command's budget and the process budget.
    pub(super) fn collect_last(&mut self) -> Result<(), ImapError> {
        self.collected = self.collected.saturating_add(self.last_frame);
        if self.collected > self.budget {
            return Err(ImapError::TooLarge(format!(
                "the answer to one command is longer than the {} bytes it may take",
                self.budget
            )));
        }
        self.hold(self.buf.capacity())
    }

    /// Starts a command's budget: `budget` bytes for what it collects and
    /// for each response.
    pub(super) fn begin_budget(&mut self, budget: usize) {
        self.budget = budget;
        self.collected = 0;
        self.framer.set_max_len(budget);
    }

    /// Ends the running command's budget: back to the one between commands.
    pub(super) fn end_budget(&mut self) {
        self.begin_budget(IDLE_BUDGET);
        self.holding.hold(self.buf.capacity());
    }

    /// Uses `budget` instead of the process-wide one (tests, and callers
    /// that want a separate pool).
    pub fn set_inflight_budget(&mut self, budget: &'static InflightBudget) {
        self.holding.set_budget(budget);
    }

    /// Bytes the read buffer holds allocated (0 when idle).
    #[cfg(test)]
    pub(crate) fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Marks the connection unusable after an error outside `run`.
    pub(crate) fn fail(&mut self, e: ImapError) -> ImapError {
        self.break_on(&e);
        e
    }

    /// Marks the connection unusable when `e` leaves it out of sync, and
    /// notes when that was the server's doing (a protocol-class error).
    pub(crate) fn break_on(&mut self, e: &ImapError) {
        if e.breaks_connection() {
            self.broken = true;
            if e.class() == ErrorClass::Protocol {
                self.misbehaved = true;
            }
        }
    }

    /// Whether the server broke this connection with something the client
    /// could not take (see [`ImapError::class`]: protocol errors).
    pub fn misbehaved(&self) -> bool {
        self.misbehaved
    }

    /// Next tag, for commands that are not run through `run` (IDLE).
    pub(crate) fn next_tag(&mut self) -> String {
        self.tag = self.tag.wrapping_add(1);
        format!("L{}", self.tag)
    }

    pub(crate) fn is_broken(&self) -> bool {
        self.broken || self.in_command
    }

    /// Closes the stream (after LOGOUT), ignoring errors.
    pub(crate) async fn shutdown(&mut self) {
        let _ = self.stream.shutdown().await;
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "bounds_tests.rs"]
mod bounds_tests;

#[cfg(test)]
#[path = "oauth_tests.rs"]
mod oauth_tests;
