//! The outbox: one task per send job, driving it through its steps and
//! recording each step's result before the next one starts.
//!
//! ```text
//!  burl:      queued ─APPEND CATENATE→ stored ─GENURLAUTH, MAIL/RCPT/BURL→ submitted → done
//!  catenate:  queued ─APPEND CATENATE→ stored ─spool Sent copy, MAIL/RCPT/DATA→ submitted → done
//!  assembled: queued ─spool, MAIL/RCPT/DATA→ submitted ─APPEND (or not)→ done
//! ```
//!
//! Crash safety: a job is stored (and flushed) before anything goes on the
//! wire, and after every step. Before an APPEND, Sent is searched for the
//! job's Message-ID, so a copy stored just before a crash is found instead
//! of stored twice. A submission is repeated only when no 250 was recorded:
//! the one unavoidable window is between the server's 250 to the final
//! command (BURL LAST, the end of DATA/BDAT) and the flush that records it
//! — a few milliseconds — where a crash leads to a second submission.
//! If submission fails for good after the Sent copy was stored, the copy is
//! deleted (UID EXPUNGE), so Sent never shows mail that was not sent.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use super::context::{upstream, SendContext, HELO_NAME};
use super::failure::StepError;
use super::spool::{self, SpoolError};
use crate::error::ErrorClass;
use crate::error_code::ErrorCode;
use crate::imap::{with_submit_access, AppendPart, ImapClient, MessageUrl};
use crate::smtp::{SmtpClient, SmtpError};
use crate::store::send::{SendFailure, SendJob, SendPath, SendStatus, SentRef};
use crate::store::{AccountRecord, StoreError};

/// Runs send jobs; cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

struct Inner {
    ctx: SendContext,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    running: Mutex<HashSet<String>>,
    /// Woken whenever a job's record changes.
    changed: Notify,
}

impl Outbox {
    pub fn new(ctx: SendContext, tracker: TaskTracker, shutdown: CancellationToken) -> Self {
        Outbox {
            inner: Arc::new(Inner {
                ctx,
                tracker,
                shutdown,
                running: Mutex::new(HashSet::new()),
                changed: Notify::new(),
            }),
        }
    }

    pub fn context(&self) -> &SendContext {
        &self.inner.ctx
    }

    /// Starts every job that had not finished (after a restart).
    pub async fn resume_all(&self) -> Result<usize, StoreError> {
        let jobs = self.inner.ctx.store.unfinished_send_jobs().await?;
        for job in &jobs {
            tracing::info!(send = %job.id, status = ?job.status, "resuming send");
            self.start(&job.id);
        }
        Ok(jobs.len())
    }

    /// In a cluster: every `every`, while this node holds its lease, starts
    /// the unfinished jobs no live node holds (their node died), besides
    /// those this node holds.
    pub async fn take_over_orphans(self, every: Duration, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.cancelled() => return,
            }
            if !self.inner.ctx.gate.is_held() {
                continue;
            }
            let jobs = match self.inner.ctx.store.unfinished_send_jobs().await {
                Ok(jobs) => jobs,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the outbox");
                    continue;
                }
            };
            for job in jobs {
                // A job this node runs already, or another holds, ends at once.
                self.start(&job.id);
            }
        }
    }

    /// Runs the job unless it is running already.
    pub fn start(&self, id: &str) {
        self.start_with(id, Connections::default());
    }

    /// Runs the job, starting on `connections` (see [`Connections`]),
    /// unless it is running already; then they are closed.
    pub fn start_with(&self, id: &str, connections: Connections) {
        let fresh = self
            .inner
            .running
            .lock()
            .map(|mut r| r.insert(id.to_owned()))
            .unwrap_or(false);
        if !fresh {
            self.inner.tracker.spawn(connections.close());
            return;
        }
        let inner = self.inner.clone();
        let id = id.to_owned();
        self.inner.tracker.spawn(async move {
            drive(&inner, &id, connections).await;
            if let Ok(mut r) = inner.running.lock() {
                r.remove(&id);
            }
            inner.changed.notify_waiters();
        });
    }

    /// The job once final, or as it is when `timeout` has passed.
    pub async fn wait(&self, id: &str, timeout: Duration) -> Result<Option<SendJob>, StoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.inner.changed.notified();
            let job = self.inner.ctx.store.send_job(id).await?;
            match &job {
                Some(j) if !j.status.is_final() && tokio::time::Instant::now() < deadline => {}
                _ => return Ok(job),
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }
}

async fn save(inner: &Inner, job: &SendJob) -> Result<(), StoreError> {
    inner.ctx.store.put_send_job(job).await?;
    inner.ctx.store.flush().await?;
    inner.changed.notify_waiters();
    Ok(())
}

/// The logged-in connections a job holds between steps. `prepare` hands
/// over the ones it opened to look at the request, so that a send logs in
/// to each server once rather than twice.
#[derive(Default)]
pub struct Connections {
    pub imap: Option<ImapClient>,
    pub smtp: Option<SmtpClient>,
}

impl Connections {
    /// Says LOGOUT and QUIT to whatever is open.
    pub async fn close(self) {
        if let Some(imap) = self.imap {
            imap.logout().await;
        }
        if let Some(smtp) = self.smtp {
            smtp.quit().await;
        }
    }
}

async fn drive(inner: &Inner, id: &str, conns: Connections) {
    // Another node may hold it (in a cluster): then it is that node's.
    match inner.ctx.store.claim_send_job(id).await {
        Ok(true) => drive_claimed(inner, id, conns).await,
        Ok(false) => conns.close().await,
        Err(e) => {
            tracing::warn!(send = %id, error = %e, "cannot claim send job");
            conns.close().await;
        }
    }
}

async fn drive_claimed(inner: &Inner, id: &str, mut conns: Connections) {
    let backoff = crate::backoff::Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        if inner.shutdown.is_cancelled() || !inner.ctx.gate.is_held() {
            // Resumed when the lease is back, here or by another node.
            conns.close().await;
            return;
        }
        let mut job = match inner.ctx.store.send_job(id).await {
            Ok(Some(job)) => job,
            // Its account was deleted: so is whatever the last step wrote.
            Ok(None) => {
                let _ = tokio::fs::remove_dir_all(inner.ctx.job_dir(id)).await;
                return;
            }
            Err(e) => {
                tracing::error!(send = %id, error = %e, "cannot read send job");
                return;
            }
        };
        if job.status.is_final() {
            let _ = tokio::fs::remove_dir_all(inner.ctx.job_dir(id)).await;
            return;
        }
        let result = step(inner, &mut job, &mut conns).await;
        let Err(err) = result else {
            continue;
        };
        conns = Connections::default();
        tracing::warn!(send = %id, code = %err.failure.code, error = %err.failure.message, "send step failed");
        let retry = err.class == ErrorClass::Transient
            && job.attempts + 1 < inner.ctx.config.send.max_attempts;
        if retry {
            job.attempts += 1;
            job.error = Some(err.failure);
            if save(inner, &job).await.is_err() {
                return;
            }
            let delay = backoff.delay_for(job.attempts, &mut rand::thread_rng());
            tokio::select! {
                _ = inner.shutdown.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
        } else if job.status == SendStatus::Submitted {
            // The message went out; only the Sent copy is missing. Report
            // the send as done, with why the copy is not there.
            job.status = SendStatus::Done;
            job.error = Some(SendFailure {
                code: ErrorCode::SentCopyFailed.as_str().into(),
                ..err.failure
            });
            if save(inner, &job).await.is_err() {
                return;
            }
        } else {
            fail(inner, &mut job, err.failure).await;
        }
    }
}

/// Marks the job failed, removing its Sent copy unless it was submitted.
async fn fail(inner: &Inner, job: &mut SendJob, failure: SendFailure) {
    if let (Some(sent), false) = (&job.sent, job.status == SendStatus::Submitted) {
        let removed = async {
            let account = account(inner, job).await?;
            let mut imap = inner.ctx.imap(&account).await?;
            let uidvalidity = imap.select(&sent.mailbox).await?;
            if uidvalidity == sent.uidvalidity {
                imap.delete_uids(&[sent.uid]).await?;
            }
            imap.logout().await;
            Ok::<_, StepError>(())
        };
        match removed.await {
            Ok(()) => job.sent = None,
            Err(e) => {
                tracing::warn!(send = %job.id, error = %e.failure.message, "could not remove the Sent copy of a failed send")
            }
        }
    }
    job.status = SendStatus::Failed;
    job.error = Some(failure);
    if let Err(e) = save(inner, job).await {
        tracing::error!(send = %job.id, error = %e, "cannot record failed send");
    }
}

async fn account(inner: &Inner, job: &SendJob) -> Result<AccountRecord, StepError> {
    inner
        .ctx
        .store
        .account(&job.account_id)
        .await?
        .ok_or_else(|| {
            StepError::new(
                ErrorClass::Permanent,
                ErrorCode::AccountDeleted,
                "the account was deleted".into(),
                None,
            )
        })
}

async fn imap<'a>(
    inner: &Inner,
    conns: &'a mut Connections,
    account: &AccountRecord,
) -> Result<&'a mut ImapClient, StepError> {
    if conns.imap.is_none() {
        conns.imap = Some(inner.ctx.imap(account).await?);
    }
    conns.imap.as_mut().ok_or_else(|| {
        StepError::new(
            ErrorClass::Transient,
            ErrorCode::ImapError,
            "no connection".into(),
            None,
        )
    })
}

/// Does the next step of `job` and records its result.
async fn step(inner: &Inner, job: &mut SendJob, conns: &mut Connections) -> Result<(), StepError> {
    let account = account(inner, job).await?;
    match (job.status, job.path) {
        (SendStatus::Queued, SendPath::Burl | SendPath::Catenate) => {
            let client = imap(inner, conns, &account).await?;
            store_copy(job, client, None).await?;
            job.status = SendStatus::Stored;
        }
        (SendStatus::Queued, SendPath::Assembled) => {
            if !job.spooled {
                let client = imap(inner, conns, &account).await?;
                let path = spool_path(inner, job);
                let (size, fetched) = spool::write_spool(client, &job.segments, &path).await?;
                job.size = size;
                job.bytes.from_imap += fetched;
                job.spooled = true;
                save(inner, job).await?;
            }
            submit_spool(inner, job, &account, conns).await?;
        }
        (SendStatus::Stored, SendPath::Burl) => submit_burl(inner, job, &account, conns).await?,
        (SendStatus::Stored, SendPath::Catenate) => {
            if !job.spooled {
                let sent = job.sent.clone().ok_or_else(missing_copy)?;
                let client = imap(inner, conns, &account).await?;
                if client.select(&sent.mailbox).await? != sent.uidvalidity {
                    return Err(missing_copy());
                }
                let size = spool::spool_message(client, sent.uid, &spool_path(inner, job)).await?;
                job.size = size;
                job.bytes.from_imap += size;
                job.spooled = true;
                save(inner, job).await?;
            }
            submit_spool(inner, job, &account, conns).await?;
        }
        (SendStatus::Submitted, SendPath::Assembled) if job.sent_mailbox.is_some() => {
            let path = spool_path(inner, job);
            let client = imap(inner, conns, &account).await?;
            store_copy(job, client, Some(path)).await?;
            job.status = SendStatus::Done;
        }
        (SendStatus::Submitted, _) | (SendStatus::Stored, SendPath::Assembled) => {
            job.status = SendStatus::Done;
        }
        (SendStatus::Done | SendStatus::Failed, _) => return Ok(()),
    }
    if job.status == SendStatus::Done {
        job.error = None;
        std::mem::take(conns).close().await;
    }
    save(inner, job).await?;
    Ok(())
}

fn missing_copy() -> StepError {
    StepError::new(
        ErrorClass::Permanent,
        ErrorCode::SentCopyGone,
        "the Sent copy disappeared before submission".into(),
        None,
    )
}

fn spool_path(inner: &Inner, job: &SendJob) -> PathBuf {
    inner.ctx.job_dir(&job.id).join("message.eml")
}

/// Stores the Sent copy unless Sent already holds the job's Message-ID:
/// from the spool file when given, else with CATENATE from the segments.
async fn store_copy(
    job: &mut SendJob,
    client: &mut ImapClient,
    spooled: Option<PathBuf>,
) -> Result<(), StepError> {
    let mailbox = job.sent_mailbox.clone().unwrap_or_else(|| "Sent".into());
    let uidvalidity = client.select(&mailbox).await?;
    if let Some(&uid) = client.search_message_id(&job.message_id).await?.last() {
        job.sent = Some(SentRef {
            mailbox,
            uidvalidity,
            uid,
        });
        return Ok(());
    }
    let parts = if let Some(path) = spooled {
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| StepError::from(SpoolError::Io(e)))?;
        vec![AppendPart::Text {
            len: job.size,
            reader: Box::pin(file),
        }]
    } else {
        spool::catenate_parts(&job.segments)
    };
    let (appended, written) = client.append_parts(&mailbox, "\\Seen", parts).await?;
    job.bytes.to_imap += written;
    let (uidvalidity, uid) = match appended {
        Some(a) => (a.uidvalidity, a.uid),
        None => {
            // No UIDPLUS: find the copy by its Message-ID.
            let uidvalidity = client.select(&mailbox).await?;
            let uid = client
                .search_message_id(&job.message_id)
                .await?
                .last()
                .copied()
                .ok_or_else(missing_copy)?;
            (uidvalidity, uid)
        }
    };
    job.sent = Some(SentRef {
        mailbox,
        uidvalidity,
        uid,
    });
    Ok(())
}

/// The SMTP session to submit on: the one `prepare` authenticated, when
/// the job was handed it and it still answers (RSET, one round trip instead
/// of connect, TLS, EHLO and AUTH), else a new one.
async fn smtp_session(
    inner: &Inner,
    conns: &mut Connections,
    account: &AccountRecord,
) -> Result<SmtpClient, StepError> {
    if let Some(mut smtp) = conns.smtp.take() {
        if smtp.rset().await.is_ok() {
            return Ok(smtp);
        }
    }
    Ok(inner.ctx.smtp(account).await?)
}

/// MAIL FROM and every RCPT TO; any refused recipient fails the send.
async fn envelope(smtp: &mut SmtpClient, job: &SendJob) -> Result<(), StepError> {
    smtp.mail_from(&job.from, Some(job.size)).await?;
    for rcpt in &job.recipients {
        if let Err(e) = smtp.rcpt_to(rcpt).await {
            let _ = smtp.rset().await;
            return Err(e.into());
        }
    }
    Ok(())
}

/// Submits the spool file by DATA or BDAT.
async fn submit_spool(
    inner: &Inner,
    job: &mut SendJob,
    account: &AccountRecord,
    conns: &mut Connections,
) -> Result<(), StepError> {
    let mut smtp = smtp_session(inner, conns, account).await?;
    let result = async {
        envelope(&mut smtp, job).await?;
        job.submit_started = true;
        save(inner, job).await?;
        let mut file = tokio::fs::File::open(spool_path(inner, job))
            .await
            .map_err(|e| StepError::from(SpoolError::Io(e)))?;
        let reply = smtp.send_message(&mut file, job.size).await?;
        Ok::<_, StepError>(reply)
    }
    .await;
    job.bytes.to_smtp += smtp.written;
    let reply = result?;
    smtp.quit().await;
    job.smtp_reply = Some(reply.text());
    job.status = SendStatus::Submitted;
    Ok(())
}

/// GENURLAUTH on the Sent copy, then MAIL/RCPT/BURL. When the servers turn
/// out not to support it after all, the job continues on the catenate path.
async fn submit_burl(
    inner: &Inner,
    job: &mut SendJob,
    account: &AccountRecord,
    conns: &mut Connections,
) -> Result<(), StepError> {
    let sent = job.sent.clone().ok_or_else(missing_copy)?;
    if job.url.is_none() {
        let client = imap(inner, conns, account).await?;
        let absolute = MessageUrl {
            mailbox: sent.mailbox.clone(),
            uidvalidity: Some(sent.uidvalidity),
            uid: sent.uid,
            section: None,
        }
        .absolute(
            &account.imap.username,
            &account.imap.host,
            account.imap.port,
        );
        let url = with_submit_access(&absolute, &account.imap.username);
        match client.gen_urlauth(&url).await {
            Ok(url) => {
                job.url = Some(url);
                save(inner, job).await?;
            }
            Err(e) if e.class() == ErrorClass::Permanent || e.class() == ErrorClass::Protocol => {
                tracing::info!(send = %job.id, error = %e, "GENURLAUTH unusable; submitting the Sent copy instead");
                return fall_back_to_catenate(inner, job).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let url = job.url.clone().unwrap_or_default();
    let mut smtp = smtp_session(inner, conns, account).await?;
    if !smtp.ehlo().burl_imap() {
        smtp.quit().await;
        return fall_back_to_catenate(inner, job).await;
    }
    let result = async {
        envelope(&mut smtp, job).await?;
        job.submit_started = true;
        save(inner, job).await?;
        match smtp.burl_last(&url).await {
            Ok(reply) => Ok(Some(reply)),
            Err(SmtpError::Rejected { reply, .. }) if reply.is_permanent() => {
                tracing::info!(send = %job.id, reply = %reply.text(), "BURL refused; submitting the Sent copy instead");
                let _ = smtp.rset().await;
                Ok(None)
            }
            Err(e) => Err(StepError::from(e)),
        }
    }
    .await;
    job.bytes.to_smtp += smtp.written;
    match result? {
        Some(reply) => {
            smtp.quit().await;
            job.smtp_reply = Some(reply.text());
            job.status = SendStatus::Submitted;
            Ok(())
        }
        None => {
            smtp.quit().await;
            fall_back_to_catenate(inner, job).await
        }
    }
}

async fn fall_back_to_catenate(inner: &Inner, job: &mut SendJob) -> Result<(), StepError> {
    inner.ctx.burl.record_failure(&job.account_id);
    job.path = SendPath::Catenate;
    job.url = None;
    job.submit_started = false;
    save(inner, job).await?;
    Ok(())
}
