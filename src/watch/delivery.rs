//! What a session does with the mail it finds and the mail read since:
//! queues each device's share of new mail under its rules, keeps the
//! window of pushed mail still unread, and reports what of it was read,
//! moved or deleted elsewhere (from FETCH FLAGS and EXPUNGE or VANISHED
//! during IDLE, NOTIFY's FlagChange and MessageExpunge, and a look at the
//! window whenever the mailbox is selected, which catches up after a
//! disconnect or a restart), taking it out of pushes that still wait.
//! The window in `Session::pushed` is always the selected mailbox's.

use std::time::Duration;

use tokio::time::Instant;

use super::cursor::Found;
use super::devices::{shares, Batch, DeviceWatch};
use super::session::Session;
use super::WatchError;
use crate::mail::MessageSummary;
use crate::notify::ReadNotice;
use crate::store::{AccountRecord, DeviceMail, NewMail, ReadMail, DORMANT};

/// How long after a flag change the watcher looks at what was read, so
/// that a client marking many messages is answered with one look.
pub const READ_SETTLE: Duration = Duration::from_millis(200);

impl Session {
    /// Queues the pushes and advances the cursor, wakes the notifier, and
    /// waits for the flush of both.
    ///
    /// Delivery does not wait for the flush. Waiting would not stop a crash
    /// from repeating a push: whatever the order, a push is repeated if the
    /// gateway dies after its POST and before the flush that covers its
    /// removal (its queue entry replays, or the mail is found again), and
    /// that flush also covers this write, which came first in the store's
    /// log. Nor can mail be lost: a crash before this write is durable leaves
    /// the cursor where it was, and the mail is found again. What waiting
    /// did cost was every mail found during a slow fsync (75-250 ms, seen in
    /// the load benchmark) waiting for it before its push went out.
    pub(super) async fn queue(
        &mut self,
        mailbox: &str,
        new: Found,
        messages: &[MessageSummary],
        devices: &[DeviceWatch],
        detected: Option<Instant>,
        unseen: Option<u32>,
    ) -> Result<(), WatchError> {
        // A device registered (or removed) since this attempt read them is
        // already stored, and its change is on its way to the actor: read
        // them again, so mail found after a registration was answered
        // reaches the new device. The attempt restarts soon after.
        let current;
        let devices = if self.device_changes.has_changed().unwrap_or(true) {
            current = DeviceWatch::of_account(&self.ctx, &self.account_id).await?;
            &current[..]
        } else {
            devices
        };
        let deliveries = shares(
            devices,
            &Batch {
                mailbox,
                messages,
                count: new.count,
                addresses: &self.addresses,
                now_ms: self.ctx.clock.now_ms(),
                ttl_ms: i64::from(self.ctx.config.push.ttl_secs) * 1000,
            },
        );
        let told = told_uids(devices, &deliveries, &new);
        let dormant: Vec<&str> = deliveries
            .iter()
            .filter(|d| d.not_before_ms == DORMANT)
            .map(|d| d.device_id)
            .collect();
        let keys = self
            .ctx
            .store
            .record_new_mail(&NewMail {
                account_id: &self.account_id,
                mailbox,
                deliveries,
                cursor: new.cursor,
                unseen,
                fence: self.fence,
            })
            .await?;
        // A push that only counts muted mail waits for mail worth one.
        let keys: Vec<_> = keys
            .into_iter()
            .filter(|key| !dormant.contains(&key.device_id.as_str()))
            .collect();
        self.note_pushed(mailbox, new.cursor.uidvalidity, told)
            .await?;
        self.selected_cursor = Some(new.cursor);
        tracing::debug!(account = %self.account_id, mailbox, count = new.count, devices = keys.len(), "new mail queued");
        if !keys.is_empty() {
            self.ctx.notifier.wake(keys, detected).await;
        }
        self.ctx.store.flush().await?;
        Ok(())
    }

    /// Whether some pushed mail of the selected mailbox is watched for reading.
    pub(super) fn tracks_reads(&self) -> bool {
        !self.pushed.uids.is_empty()
    }

    /// When a flag change or a message gone, seen now, may be looked at:
    /// shortly after, and later when looks keep finding nothing (a server
    /// announcing changes all the time cannot drive a loop). `None` when
    /// no pushed mail is followed.
    pub(super) fn read_look_at(&self) -> Option<Instant> {
        self.tracks_reads().then(|| {
            let settled = Instant::now() + READ_SETTLE;
            self.read_throttle
                .not_before()
                .map_or(settled, |at| at.max(settled))
        })
    }

    /// Adds the UIDs devices were told about to the mailbox's window.
    async fn note_pushed(
        &mut self,
        mailbox: &str,
        uidvalidity: u32,
        told: Vec<u32>,
    ) -> Result<(), WatchError> {
        if told.is_empty() {
            return Ok(());
        }
        self.pushed.add(uidvalidity, told);
        self.ctx
            .store
            .put_pushed_window(&self.account_id, mailbox, &self.pushed, self.fence)
            .await?;
        Ok(())
    }

    /// On selecting `mailbox`, before anything is queued from it: reads its
    /// window of pushed mail (none under another UIDVALIDITY).
    pub(super) async fn load_pushed(
        &mut self,
        mailbox: &str,
        uidvalidity: u32,
    ) -> Result<(), WatchError> {
        self.pushed = self
            .ctx
            .store
            .pushed_window(&self.account_id, mailbox)
            .await?
            .filter(|w| w.uidvalidity == uidvalidity)
            .unwrap_or_default();
        Ok(())
    }

    /// Looks which of the window's messages were read, moved or deleted,
    /// lets go of them and tells the devices.
    pub(super) async fn check_reads(&mut self, mailbox: &str) -> Result<(), WatchError> {
        if !self.tracks_reads() {
            return Ok(());
        }
        let read = self.client.read_or_gone(&self.pushed.uids).await?;
        if read.is_empty() {
            self.read_throttle.empty(Instant::now());
            return Ok(());
        }
        self.read_throttle.found();
        let unseen = self.client.unseen_count(mailbox).await?;
        // Out of waiting pushes first: should the store fail, the window
        // still holds the mail and the next look reports it again.
        let unshown = self
            .ctx
            .store
            .forget_read(&ReadMail {
                account_id: &self.account_id,
                mailbox,
                uidvalidity: self.pushed.uidvalidity,
                uids: &read,
                unseen,
                now_ms: self.ctx.clock.now_ms(),
            })
            .await?;
        if !unshown.is_empty() {
            tracing::debug!(account = %self.account_id, mailbox, pushes = unshown.len(), "read mail taken out of waiting pushes");
        }
        self.pushed.remove(&read);
        self.ctx
            .store
            .put_pushed_window(&self.account_id, mailbox, &self.pushed, self.fence)
            .await?;
        self.ctx.reads.tell(ReadNotice {
            account_id: self.account_id.clone(),
            mailbox: mailbox.to_string(),
            uidvalidity: self.pushed.uidvalidity,
            uids: read,
            unseen,
            unshown,
        });
        Ok(())
    }
}

/// The UIDs of new mail that some device which wants `read` pushes is told
/// about (not muted for it); every new one when nothing was summarised.
fn told_uids(devices: &[DeviceWatch], deliveries: &[DeviceMail<'_>], new: &Found) -> Vec<u32> {
    let clearing = |id: &str| devices.iter().any(|d| d.id == id && d.clear);
    let mut told: Vec<u32> = Vec::new();
    for share in deliveries.iter().filter(|d| clearing(d.device_id)) {
        if share.messages.is_empty() && share.not_before_ms != DORMANT {
            told.extend(&new.to_fetch);
        } else {
            told.extend(share.messages.iter().map(|m| m.uid));
        }
    }
    told.sort_unstable();
    told.dedup();
    told
}

/// The account's own addresses: its address, and its login when that is one.
pub(super) fn own_addresses(account: &AccountRecord) -> Vec<String> {
    let mut addresses = vec![account.email.trim().to_ascii_lowercase()];
    let login = account.imap.username.trim().to_ascii_lowercase();
    if login.contains('@') && !addresses.contains(&login) {
        addresses.push(login);
    }
    addresses
}
