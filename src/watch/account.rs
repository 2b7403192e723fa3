//! One account's actor: plans its connections, runs them, and reconnects
//! with backoff until the account is deleted or its credentials are refused.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::devices::DeviceWatch;
use super::session::{Group, Session};
use super::status::{cut_text, WatchState};
use super::supervisor::WatchContext;
use super::{WatchError, INBOX};
use crate::backoff::Backoff;
use crate::error::ErrorClass;
use crate::metrics::Metrics;
use crate::store::{Fence, StoreError};

/// How long connections get to say DONE and LOGOUT when stopping.
const GRACE: Duration = Duration::from_secs(2);

/// How long an attempt must have run before a protocol error resets the backoff.
const STABLE: Duration = Duration::from_secs(300);

/// A connection's watch, boxed (see [`AccountActor::attempt`]).
type Watch = Pin<Box<dyn Future<Output = Result<(), WatchError>> + Send>>;

/// Why an attempt ended without an error.
enum AttemptEnd {
    /// Shutdown or the account was deleted.
    Stopped,
    /// The devices changed: reconnect at once with the new mailbox set.
    Reconfigured,
}

pub(super) struct AccountActor {
    ctx: Arc<WatchContext>,
    account_id: String,
    /// This node's ownership of the account (see `store::Fence`).
    fence: Fence,
    changes: watch::Receiver<u64>,
    cancel: CancellationToken,
    /// Set once an attempt reaches IDLE, so the next failure may start the
    /// backoff afresh (see [`fresh_backoff`]).
    reached_watching: Arc<AtomicBool>,
}

impl AccountActor {
    pub(super) fn new(
        ctx: Arc<WatchContext>,
        account_id: String,
        fence: Fence,
        changes: watch::Receiver<u64>,
        cancel: CancellationToken,
    ) -> Self {
        AccountActor {
            ctx,
            account_id,
            fence,
            changes,
            cancel,
            reached_watching: Arc::new(AtomicBool::new(false)),
        }
    }

    fn set_state(&self, state: WatchState) {
        if !self.cancel.is_cancelled() {
            self.ctx.states.set(&self.account_id, state);
        }
    }

    pub(super) async fn run(mut self) {
        let config = &self.ctx.config.watch;
        let mut backoff = Backoff::new(
            Duration::from_millis(config.backoff_min_ms),
            Duration::from_secs(config.backoff_max_secs),
        );
        loop {
            self.set_state(WatchState::Connecting);
            self.reached_watching.store(false, Ordering::Relaxed);
            let started = Instant::now();
            let error = match self.attempt().await {
                Ok(AttemptEnd::Stopped) => return,
                Ok(AttemptEnd::Reconfigured) => continue,
                Err(e) => e,
            };
            if self.cancel.is_cancelled() {
                return;
            }
            if matches!(error, WatchError::Store(StoreError::Fenced)) {
                tracing::info!(account = %self.account_id, "the account moved to another node; stopped watching it");
                return;
            }
            // What the server said may be huge: what is kept and logged is cut.
            let text = error.to_string();
            let text = cut_text(&text);
            self.ctx.states.set_error(&self.account_id, &text);
            if error.needs_sign_in() {
                // The devices are told once, by whoever saw the refusal
                // (see `oauth::TokenBroker`).
                tracing::warn!(account = %self.account_id, "the provider refused the account's sign-in; not retrying");
                self.set_state(WatchState::ReauthRequired);
                return;
            }
            if error.class() == ErrorClass::Auth {
                tracing::warn!(account = %self.account_id, error = %text, "credentials refused; not retrying");
                self.set_state(WatchState::AuthFailed);
                self.tell_devices_auth_failed().await;
                return;
            }
            if fresh_backoff(
                self.reached_watching.load(Ordering::Relaxed),
                error.class(),
                started.elapsed(),
            ) {
                backoff.reset();
            }
            let delay = backoff.next_delay(&mut rand::thread_rng());
            tracing::info!(account = %self.account_id, error = %text, retry_in_ms = delay.as_millis() as u64, "watch interrupted");
            Metrics::inc(&self.ctx.metrics.reconnects);
            self.set_state(WatchState::Backoff);
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.changes.changed() => {}
                _ = self.cancel.cancelled() => return,
            }
        }
    }

    /// Sends every device of the account one push saying that its login
    /// was refused, so the app can ask for the password again instead of
    /// waiting for mail that will not come. Best effort: a failure is logged.
    async fn tell_devices_auth_failed(&self) {
        let plaintext = crate::notify::payload::account_state(&self.account_id, "auth_failed");
        crate::notify::tell_devices(
            self.ctx.store.as_ref(),
            self.ctx.pusher.as_ref(),
            self.ctx.config.push.ttl_secs,
            &self.account_id,
            &plaintext,
        )
        .await;
    }

    /// The mailboxes the account's devices asked for, INBOX first and always.
    fn mailboxes(devices: &[DeviceWatch]) -> Vec<String> {
        let mut mailboxes = vec![INBOX.to_string()];
        for mailbox in devices.iter().flat_map(|d| &d.mailboxes) {
            let name = if mailbox.eq_ignore_ascii_case(INBOX) {
                INBOX.to_string()
            } else {
                mailbox.clone()
            };
            if !mailboxes.contains(&name) {
                mailboxes.push(name);
            }
        }
        mailboxes
    }

    /// Connects the account's sessions and starts their watches: the first
    /// connection's as a future to drive, the others as tasks. None when the
    /// account is gone or the gateway stops meanwhile.
    async fn open_sessions(
        &mut self,
        attempt: &CancellationToken,
    ) -> Result<Option<(Watch, JoinSet<Result<(), WatchError>>)>, WatchError> {
        let Some(account) = self.ctx.store.account(&self.account_id).await? else {
            return Ok(None);
        };
        self.changes.mark_unchanged();
        // Read once per attempt and shared by its sessions: every change of
        // the devices reconfigures the account, which starts a new attempt.
        let devices = DeviceWatch::of_account(&self.ctx, &self.account_id).await?;
        let mailboxes = Self::mailboxes(&devices);
        if !self.cancel.is_cancelled() {
            let lists = self
                .ctx
                .states
                .set_mailboxes(&self.account_id, mailboxes.clone());
            self.ctx
                .metrics
                .status_lists
                .store(lists as u64, Ordering::Relaxed);
        }
        let primary = tokio::select! {
            session = Box::pin(Session::open(self.ctx.clone(), &account, devices.clone(), self.changes.clone(), self.fence)) => session?,
            _ = self.cancel.cancelled() => return Ok(None),
        };
        let (first, others) = plan_groups(
            &mailboxes,
            primary.has_notify(),
            self.ctx.config.watch.connections_per_account,
        );

        let mut secondary = JoinSet::new();
        for group in others {
            let ctx = self.ctx.clone();
            let account = account.clone();
            let devices = devices.clone();
            let changes = self.changes.clone();
            let token = attempt.clone();
            let fence = self.fence;
            let watching = Arc::new(AtomicBool::new(false));
            secondary.spawn(async move {
                let session =
                    Box::pin(Session::open(ctx, &account, devices, changes, fence)).await?;
                Box::new(session).watch(group, token, watching).await
            });
        }
        // Credentials are read from the store at each connect, not kept while
        // idle: `account` ends here.
        let primary_run =
            Box::new(primary).watch(first, attempt.clone(), self.reached_watching.clone());
        Ok(Some((Box::pin(primary_run), secondary)))
    }

    async fn attempt(&mut self) -> Result<AttemptEnd, WatchError> {
        let attempt = self.cancel.child_token();
        // Connecting is boxed, and so is the watch: this future stays resident
        // for each watched account, and an async fn is as large as its
        // largest await, connect and catch-up included.
        let Some((mut primary_run, mut secondary)) = Box::pin(self.open_sessions(&attempt)).await?
        else {
            return Ok(AttemptEnd::Stopped);
        };
        let result = tokio::select! {
            result = &mut primary_run => result.map(|()| AttemptEnd::Stopped),
            Some(joined) = secondary.join_next(), if !secondary.is_empty() => {
                attempt.cancel();
                let _ = tokio::time::timeout(GRACE, &mut primary_run).await;
                match joined {
                    Ok(Err(e)) => Err(e),
                    _ => Ok(AttemptEnd::Reconfigured),
                }
            }
            _ = self.changes.changed() => {
                attempt.cancel();
                let _ = tokio::time::timeout(GRACE, &mut primary_run).await;
                Ok(AttemptEnd::Reconfigured)
            }
        };
        attempt.cancel();
        let _ = tokio::time::timeout(GRACE, async {
            while secondary.join_next().await.is_some() {}
        })
        .await;
        secondary.abort_all();
        result
    }
}

/// Whether the backoff starts afresh after an attempt that ended in an
/// error of `class`, having reached watching (or not) after running for
/// `ran`. A connection that worked resets it, unless the server then said
/// something the client could not take (a response too large, garbage):
/// that is likely to happen again at once, so the delays keep growing,
/// unless the connection had worked for a good while first.
pub(super) fn fresh_backoff(reached_watching: bool, class: ErrorClass, ran: Duration) -> bool {
    reached_watching && (class != ErrorClass::Protocol || ran >= STABLE)
}

/// Splits the watched mailboxes over connections: one connection for all
/// when the server has NOTIFY; otherwise one per mailbox up to the budget,
/// the rest polled by the first connection.
pub(super) fn plan_groups(
    mailboxes: &[String],
    notify: bool,
    budget: usize,
) -> (Group, Vec<Group>) {
    let (idle, rest) = match mailboxes.split_first() {
        Some((first, rest)) => (first.clone(), rest),
        None => (INBOX.to_string(), &[][..]),
    };
    if notify {
        let group = Group {
            idle,
            notify_others: rest.to_vec(),
            polled: Vec::new(),
        };
        return (group, Vec::new());
    }
    let own = rest.len().min(budget.saturating_sub(1));
    let others = rest[..own]
        .iter()
        .map(|m| Group {
            idle: m.clone(),
            notify_others: Vec::new(),
            polled: Vec::new(),
        })
        .collect();
    let first = Group {
        idle,
        notify_others: Vec::new(),
        polled: rest[own..].to_vec(),
    };
    (first, others)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_protocol_error_after_watching_keeps_the_backoff_growing() {
        let short = Duration::from_secs(1);
        assert!(fresh_backoff(true, ErrorClass::Transient, short));
        assert!(!fresh_backoff(true, ErrorClass::Protocol, short));
        assert!(fresh_backoff(true, ErrorClass::Protocol, STABLE));
        assert!(!fresh_backoff(false, ErrorClass::Transient, STABLE));
    }

    #[test]
    fn notify_watches_everything_on_one_connection() {
        let (first, others) = plan_groups(&names(&["INBOX", "Work", "Lists"]), true, 3);
        assert_eq!(first.idle, "INBOX");
        assert_eq!(first.notify_others, names(&["Work", "Lists"]));
        assert!(others.is_empty());
    }

    #[test]
    fn without_notify_the_budget_bounds_connections() {
        let all = names(&["INBOX", "A", "B", "C", "D"]);
        let (first, others) = plan_groups(&all, false, 3);
        assert_eq!(first.idle, "INBOX");
        assert_eq!(first.polled, names(&["C", "D"]));
        assert_eq!(
            others.iter().map(|g| g.idle.as_str()).collect::<Vec<_>>(),
            ["A", "B"]
        );
        let (first, others) = plan_groups(&all, false, 1);
        assert_eq!(first.polled.len(), 4);
        assert!(others.is_empty());
        let (first, others) = plan_groups(&names(&["INBOX"]), false, 3);
        assert!(first.polled.is_empty() && others.is_empty());
    }
}
