//! One IMAP connection of a watched account: log in, catch up each of its
//! mailboxes from the stored cursors, then wait in IDLE and turn new mail
//! into queued pushes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::cursor::{catch_up, found, Arrivals, CatchUp};
use super::delivery::own_addresses;
use super::devices::{detail_for, DeviceWatch};
use super::pipelining::Verdict;
use super::status::{cut_text, WatchState};
use super::supervisor::WatchContext;
use super::throttle::CheckThrottle;
use super::{WatchError, INBOX};
use crate::imap::{IdleEvent, ImapClient, ImapError, SummaryDetail};
use crate::net::Upstream;
use crate::store::{AccountRecord, Cursor, Fence, PushedWindow};

/// How long DONE and LOGOUT may take when stopping.
const GRACE: Duration = Duration::from_secs(2);

/// The mailboxes one connection is responsible for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Group {
    /// Selected and watched with IDLE.
    pub idle: String,
    /// Watched through NOTIFY on the same connection.
    pub notify_others: Vec<String>,
    /// Checked with STATUS every `watch.poll_secs` (beyond the connection budget).
    pub polled: Vec<String>,
}

/// What an IDLE wake-up (or queued responses) asks for.
#[derive(Debug, Default)]
struct Work {
    /// New mail in the selected mailbox, and when its announcement arrived.
    selected: Option<Instant>,
    /// Other mailboxes NOTIFY said changed.
    others: Vec<String>,
    /// The IDLE refresh or poll timer fired.
    timer: bool,
    /// Flags changed or messages went in the selected mailbox while some
    /// of its pushed mail is watched for reading: when to look.
    reads: Option<Instant>,
}

impl Work {
    /// Whether there is work to do now: the timer fired, or mail was
    /// announced and `throttle` lets the watcher look for it.
    fn due(&self, throttle: &CheckThrottle) -> bool {
        self.timer
            || (self.announced() && throttle.allows(Instant::now()))
            || self.reads.is_some_and(|at| Instant::now() >= at)
    }

    fn announced(&self) -> bool {
        self.selected.is_some() || !self.others.is_empty()
    }

    /// When to stop waiting for news: at `wake_at` (the refresh or poll
    /// timer), or earlier when announced mail may be looked for then.
    fn deadline(&self, wake_at: Instant, throttle: &CheckThrottle) -> Instant {
        let wake_at = self.reads.map_or(wake_at, |at| wake_at.min(at));
        match throttle.not_before() {
            Some(at) if self.announced() => wake_at.min(at),
            None if self.announced() => Instant::now(),
            _ => wake_at,
        }
    }

    /// Adds one server event, counting the selected mailbox's messages in
    /// `arrivals`; a flag change or a message gone asks for a look at what
    /// was read at `read_look` (`None`: no pushed mail is followed). A BYE
    /// ends the session.
    fn add(
        &mut self,
        event: IdleEvent,
        group: &Group,
        arrivals: &mut Arrivals,
        read_look: Option<Instant>,
    ) -> Result<(), WatchError> {
        if let Some(at) = read_look {
            if matches!(
                event,
                IdleEvent::Fetch | IdleEvent::Expunge(_) | IdleEvent::Vanished
            ) {
                self.reads.get_or_insert(at);
            }
        }
        match event {
            IdleEvent::Exists(count) => {
                arrivals.exists(count);
                self.selected.get_or_insert_with(Instant::now);
            }
            IdleEvent::Expunge(_) => arrivals.expunge(),
            IdleEvent::Vanished => arrivals.lost_count(),
            IdleEvent::Status { mailbox, .. }
                if group.notify_others.contains(&mailbox) && !self.others.contains(&mailbox) =>
            {
                self.others.push(mailbox);
            }
            IdleEvent::Bye(text) => return Err(WatchError::Bye(text)),
            _ => {}
        }
        Ok(())
    }
}

/// A logged-in connection of one account.
pub(crate) struct Session {
    pub(super) ctx: Arc<WatchContext>,
    pub(super) account_id: String,
    /// This node's ownership of the account, checked by every write.
    pub(super) fence: Fence,
    host: String,
    pub(super) client: ImapClient,
    /// The account's devices when this attempt started; a change of them
    /// starts a new attempt with new sessions.
    devices: Arc<[DeviceWatch]>,
    /// Says whether the devices changed since `devices` was read.
    pub(super) device_changes: watch::Receiver<u64>,
    /// The stored cursor of the selected mailbox, as this session last read
    /// or wrote it (only this session moves it), so a wake-up needs no read.
    pub(super) selected_cursor: Option<Cursor>,
    /// Counts the selected mailbox's messages between checks.
    arrivals: Arrivals,
    /// Set while this connection tries pipelining again on a marked host.
    probe: Option<Box<Probe>>,
    /// The account's own addresses, for devices that want only direct mail.
    pub(super) addresses: Vec<String>,
    /// The selected mailbox's pushed mail watched for reading elsewhere.
    pub(super) pushed: PushedWindow,
    /// Spaces out looks at what was read that find nothing.
    pub(super) read_throttle: CheckThrottle,
}

/// A connection's try of pipelining on a marked host. Dropped before its
/// check reported (the connection ended first), it lets another connection try.
struct Probe {
    ctx: Arc<WatchContext>,
    host: String,
    reported: bool,
}

impl Drop for Probe {
    fn drop(&mut self) {
        if !self.reported {
            self.ctx.pipelining.probe_ended(&self.host);
        }
    }
}

impl Session {
    /// Connects and logs in, holding a connect slot of the upstream host meanwhile.
    pub(crate) async fn open(
        ctx: Arc<WatchContext>,
        account: &AccountRecord,
        devices: Arc<[DeviceWatch]>,
        device_changes: watch::Receiver<u64>,
        fence: Fence,
    ) -> Result<Session, WatchError> {
        let upstream = Upstream {
            host: account.imap.host.clone(),
            port: account.imap.port,
            security: account.imap.security,
        };
        let timeout = Duration::from_secs(ctx.config.upstream.connect_timeout_secs);
        let permit = ctx.limiter.acquire(&upstream.host, upstream.port).await;
        let mut client = ImapClient::connect(&upstream, &ctx.tls, timeout).await?;
        ctx.credentials.login_imap(&mut client, account).await?;
        drop(permit);
        if client.capabilities().has("CONDSTORE") {
            client.enable(&["CONDSTORE"]).await?;
        }
        let capabilities = client.capabilities().iter().map(str::to_string).collect();
        let lists = ctx.states.set_capabilities(&account.id, capabilities);
        ctx.metrics
            .status_lists
            .store(lists as u64, Ordering::Relaxed);
        Ok(Session {
            ctx,
            account_id: account.id.clone(),
            fence,
            host: upstream.host,
            client,
            devices,
            device_changes,
            selected_cursor: None,
            arrivals: Arrivals::default(),
            probe: None,
            addresses: own_addresses(account),
            pushed: PushedWindow::default(),
            read_throttle: CheckThrottle::default(),
        })
    }

    pub(crate) fn has_notify(&self) -> bool {
        self.client.capabilities().has("NOTIFY")
    }

    /// Catches up, then watches until cancelled (Ok) or the connection fails.
    /// Boxed: an async fn keeps its arguments twice, and the session is big.
    pub(crate) async fn watch(
        mut self: Box<Self>,
        mut group: Group,
        cancel: CancellationToken,
        watching: Arc<AtomicBool>,
    ) -> Result<(), WatchError> {
        // Every step but the wait in IDLE is boxed: this future stays resident
        // for each watched account, and an async fn is as large as its
        // largest await, so only the idle wait is kept inline.
        group.notify_others =
            Box::pin(self.existing(std::mem::take(&mut group.notify_others))).await?;
        group.polled = Box::pin(self.existing(std::mem::take(&mut group.polled))).await?;
        match Box::pin(self.select_and_catch_up(&group.idle)).await {
            Err(WatchError::Imap(ImapError::No { text, .. })) if group.idle != INBOX => {
                // A mailbox a device asked for that the server does not have:
                // nothing to watch on this connection until the devices change.
                tracing::warn!(account = %self.account_id, mailbox = %group.idle, reason = %cut_text(&text), "cannot watch mailbox");
                cancel.cancelled().await;
                Box::pin(self.client.logout()).await;
                return Ok(());
            }
            result => {
                result?;
            }
        }
        if !group.notify_others.is_empty() {
            Box::pin(self.client.notify_set(true, &group.notify_others)).await?;
        }
        if !cancel.is_cancelled() {
            self.ctx.states.set(&self.account_id, WatchState::Watching);
        }
        watching.store(true, Ordering::Relaxed);

        let has_idle = self.client.capabilities().has("IDLE");
        let refresh = self.ctx.config.idle_refresh_for(&self.host);
        let poll = Duration::from_secs(self.ctx.config.watch.poll_secs);
        let mut next_poll = Instant::now() + poll;
        // Spaces out looks for announced mail that find nothing.
        let mut throttle = CheckThrottle::default();
        loop {
            let mut work = Work::default();
            for event in self.client.take_events() {
                let read_look = self.read_look_at();
                work.add(event, &group, &mut self.arrivals, read_look)?;
            }
            if !work.due(&throttle) {
                let mut wake_at = Instant::now() + refresh;
                if !group.polled.is_empty() || !has_idle {
                    wake_at = wake_at.min(next_poll);
                }
                if has_idle {
                    // Already running when it went out behind the last check.
                    if !self.client.is_idling() {
                        Box::pin(self.client.idle_start()).await?;
                    }
                    loop {
                        let deadline = work.deadline(wake_at, &throttle);
                        tokio::select! {
                            biased;
                            _ = cancel.cancelled() => {
                                let _ = tokio::time::timeout(GRACE, Box::pin(self.client.idle_done())).await;
                                Box::pin(self.client.logout()).await;
                                return Ok(());
                            }
                            event = self.client.idle_next() => {
                                let read_look = self.read_look_at();
                                work.add(event?, &group, &mut self.arrivals, read_look)?;
                                if work.due(&throttle) {
                                    break;
                                }
                            }
                            _ = tokio::time::sleep_until(deadline) => {
                                work.timer = Instant::now() >= wake_at;
                                break;
                            }
                        }
                    }
                    // New mail in the selected mailbox ends IDLE with the
                    // command that looks for it (one write); anything else first.
                    if work.selected.is_none() {
                        Box::pin(self.client.idle_done()).await?;
                    }
                } else {
                    let deadline = work.deadline(wake_at, &throttle);
                    tokio::select! {
                        _ = cancel.cancelled() => {
                            Box::pin(self.client.logout()).await;
                            return Ok(());
                        }
                        _ = tokio::time::sleep_until(deadline) => {}
                    }
                    if Instant::now() >= wake_at {
                        Box::pin(self.client.noop()).await?;
                        work.timer = true;
                        for event in self.client.take_events() {
                            let read_look = self.read_look_at();
                            work.add(event, &group, &mut self.arrivals, read_look)?;
                        }
                    }
                }
            }

            let announced = work.selected.is_some() || !work.others.is_empty();
            let mut found = false;
            if let Some(detected) = work.selected {
                // Nothing else to do after this check: IDLE can go out behind it.
                let then_idle = has_idle && work.others.is_empty() && !work.timer;
                self.follow_pipelining_verdict();
                let checked =
                    Box::pin(self.check_selected(&group.idle, Some(detected), then_idle)).await;
                self.report_pipelining(checked.is_ok());
                found |= checked?;
            }
            for mailbox in &work.others {
                found |= Box::pin(self.check_other(mailbox, Some(&group.idle))).await?;
            }
            if work.reads.is_some() {
                Box::pin(self.check_reads(&group.idle)).await?;
            }
            if found {
                throttle.found();
            } else if announced {
                throttle.empty(Instant::now());
            }
            if work.timer && Instant::now() >= next_poll {
                for mailbox in &group.polled {
                    Box::pin(self.check_other(mailbox, Some(&group.idle))).await?;
                }
                next_poll = Instant::now() + poll;
            }
        }
    }

    /// Before a check, which pipelines DONE, the command and IDLE: a
    /// connection to a host marked in [`PipeliningHosts`] sends one at a
    /// time, unless it is the one trying the host again.
    ///
    /// [`PipeliningHosts`]: super::PipeliningHosts
    fn follow_pipelining_verdict(&mut self) {
        if self.probe.is_some() {
            return;
        }
        let verdict = self.ctx.pipelining.verdict(&self.host);
        if verdict == Verdict::Probe {
            self.probe = Some(Box::new(Probe {
                ctx: self.ctx.clone(),
                host: self.host.clone(),
                reported: false,
            }));
        }
        self.client.set_pipelining(verdict != Verdict::OneAtATime);
    }

    /// What a check says about pipelining on this host: failing as it would
    /// with a server that mishandles pipelining marks the host (its
    /// connections then send one thing at a time, this one from its
    /// reconnect on); the trying connection's success clears the mark.
    fn report_pipelining(&mut self, ok: bool) {
        if !ok && self.client.pipelining_failed() {
            if let Some(mut probe) = self.probe.take() {
                probe.reported = true;
            }
            if self.ctx.pipelining.failed(&self.host) {
                tracing::warn!(host = %self.host, "a pipelined command failed; this host's connections now send DONE, commands and IDLE one at a time");
            }
        } else if ok {
            if let Some(mut probe) = self.probe.take() {
                probe.reported = true;
                self.ctx.pipelining.probe_worked(&self.host);
                tracing::info!(host = %self.host, "pipelined commands work again on this host");
            }
        }
    }

    /// Catches up each mailbox and keeps those the server has; a missing
    /// one (NO) is logged and left out rather than stopping the account.
    async fn existing(&mut self, mailboxes: Vec<String>) -> Result<Vec<String>, WatchError> {
        let mut kept = Vec::with_capacity(mailboxes.len());
        for mailbox in mailboxes {
            match self.check_other(&mailbox, None).await {
                Ok(_) => kept.push(mailbox),
                Err(WatchError::Imap(ImapError::No { text, .. })) => {
                    tracing::warn!(account = %self.account_id, %mailbox, reason = %cut_text(&text), "cannot watch mailbox");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(kept)
    }

    /// Selects (read-only) a mailbox and compares it with its stored cursor.
    /// True when it queued new mail.
    async fn select_and_catch_up(&mut self, mailbox: &str) -> Result<bool, WatchError> {
        self.selected_cursor = None;
        let status = self.client.examine(mailbox).await?;
        // The EXISTS that answers the select itself is not news.
        drop(self.client.take_events());
        self.load_pushed(mailbox, status.uidvalidity).await?;
        // How much arrived while nobody watched is not known: search for it.
        self.arrivals = Arrivals::default();
        let stored = self.ctx.store.cursor(&self.account_id, mailbox).await?;
        let mut found = false;
        match catch_up(
            stored,
            status.uidvalidity,
            status.uidnext,
            status.highestmodseq,
        ) {
            CatchUp::Record(cursor) => {
                if stored.is_some() {
                    tracing::info!(account = %self.account_id, mailbox, "UIDVALIDITY changed; cursor reset");
                }
                self.ctx
                    .store
                    .put_cursor(&self.account_id, mailbox, &cursor, self.fence)
                    .await?;
                self.ctx.store.flush().await?;
                self.selected_cursor = Some(cursor);
            }
            CatchUp::Fetch { .. } => found = self.check_selected(mailbox, None, false).await?,
            CatchUp::UpToDate => self.selected_cursor = stored,
        }
        self.arrivals = Arrivals::selected(status.exists);
        // What was read while nobody watched.
        self.check_reads(mailbox).await?;
        Ok(found)
    }

    /// Checks a mailbox that is not selected with STATUS; if it has new mail,
    /// selects it, queues the mail, and selects `then_select` again. True
    /// when it queued new mail.
    async fn check_other(
        &mut self,
        mailbox: &str,
        then_select: Option<&str>,
    ) -> Result<bool, WatchError> {
        let status = self.client.status(mailbox).await?;
        let stored = self.ctx.store.cursor(&self.account_id, mailbox).await?;
        match catch_up(stored, status.uidvalidity, status.uidnext, None) {
            CatchUp::Record(cursor) => {
                self.ctx
                    .store
                    .put_cursor(&self.account_id, mailbox, &cursor, self.fence)
                    .await?;
                self.ctx.store.flush().await?;
            }
            CatchUp::Fetch { .. } => {
                let found = self.select_and_catch_up(mailbox).await?;
                if let Some(idle) = then_select {
                    self.select_and_catch_up(idle).await?;
                }
                return Ok(found);
            }
            CatchUp::UpToDate => {}
        }
        Ok(false)
    }

    /// Looks for mail above the cursor in the selected mailbox and queues
    /// it. Ends IDLE if it is running; with `then_idle` it may start IDLE
    /// again in the same write as its last command. True when it queued
    /// new mail.
    async fn check_selected(
        &mut self,
        mailbox: &str,
        detected: Option<Instant>,
        then_idle: bool,
    ) -> Result<bool, WatchError> {
        let cursor = match self.selected_cursor {
            Some(cursor) => Some(cursor),
            None => self.ctx.store.cursor(&self.account_id, mailbox).await?,
        };
        // No cursor (the device was removed meanwhile), or the largest UID
        // already pushed: nothing can be new.
        let Some(cursor) = cursor.filter(|c| !c.max_uid_seen) else {
            self.client.idle_done().await?;
            self.arrivals.checked();
            return Ok(false);
        };
        self.selected_cursor = Some(cursor);
        let devices = self.devices.clone();
        let detail = detail_for(&devices);
        let limit = self.ctx.config.watch.fetch_limit;
        let few = self
            .arrivals
            .since_check()
            .is_some_and(|n| n as usize <= limit);
        let (new, messages) = if few {
            // The usual wake-up: one UID FETCH of everything new, behind DONE
            // and (with `then_idle`) before IDLE in the same write, instead
            // of DONE, a search, a fetch and IDLE, each a round trip.
            let fetched = self
                .client
                .fetch_new(cursor.uidnext, detail, then_idle)
                .await?;
            let new = found(cursor, fetched.uids, limit);
            let mut messages = fetched.summaries;
            if let Some(new) = &new {
                messages.retain(|m| new.to_fetch.binary_search(&m.uid).is_ok());
            }
            (new, messages)
        } else {
            let uids = self.client.uid_search_from(cursor.uidnext).await?;
            let new = found(cursor, uids, limit);
            let messages = match &new {
                Some(new) if detail != SummaryDetail::UidsOnly && !new.to_fetch.is_empty() => {
                    let with_preview = detail == SummaryDetail::Preview;
                    self.client
                        .fetch_summaries(&new.to_fetch, with_preview)
                        .await?
                }
                _ => Vec::new(),
            };
            (new, messages)
        };
        self.arrivals.checked();
        let Some(new) = new else {
            return Ok(false);
        };
        let unseen = self.client.unseen_count(mailbox).await?;
        self.queue(mailbox, new, &messages, &devices, detected, unseen)
            .await?;
        Ok(true)
    }
}
