//! Telling devices that mail they were told about was read elsewhere: the
//! watcher reports messages that became `\Seen`, moved away or were
//! expunged; this actor coalesces the reports of one mailbox over a short
//! window and sends each device that asked for it (`clear`) one `read`
//! push, with low urgency and the mailbox's Topic, so that a mail push
//! still waiting at the push service is replaced rather than delivered.
//!
//! Best effort and not queued: a read push that fails is not retried (the
//! next mail push carries the badge again), and reports beyond the
//! bounded channel are dropped and counted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{payload, topic_for, PushOutcome, PushSender, Urgency};
use crate::metrics::Metrics;
use crate::store::{lists_mailbox, Store, Unshown};

/// How long reports of one mailbox are gathered into one push.
pub const READ_WINDOW: Duration = Duration::from_millis(500);
/// Reports waiting for the actor; beyond, they are dropped.
const CHANNEL: usize = 1024;
/// Read pushes sent at once.
const IN_FLIGHT: usize = 64;

/// Messages of one mailbox that were read, moved or deleted elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadNotice {
    pub account_id: String,
    pub mailbox: String,
    pub uidvalidity: u32,
    pub uids: Vec<u32>,
    /// The mailbox's count of messages without `\Seen`, when known.
    pub unseen: Option<u32>,
    /// Read mail taken out of devices' waiting pushes: they were never
    /// told of it, so it is not reported to them.
    pub unshown: Vec<Unshown>,
}

/// The watcher's handle.
#[derive(Clone)]
pub struct ReadNotifier {
    tx: mpsc::Sender<ReadNotice>,
    metrics: Arc<Metrics>,
}

impl ReadNotifier {
    /// Reports read messages; never waits (a full channel drops the report).
    pub fn tell(&self, notice: ReadNotice) {
        if self.tx.try_send(notice).is_err() {
            Metrics::inc(&self.metrics.read_pushes_failed);
        }
    }
}

/// Settings of the read push actor.
pub struct ReadPushes {
    pub store: Arc<dyn Store>,
    pub pusher: Arc<dyn PushSender>,
    pub metrics: Arc<Metrics>,
    pub ttl_secs: u32,
}

impl ReadPushes {
    /// Creates the handle and the actor future to spawn.
    pub fn start(
        self,
        shutdown: CancellationToken,
    ) -> (ReadNotifier, impl std::future::Future<Output = ()> + Send) {
        let (tx, rx) = mpsc::channel(CHANNEL);
        let notifier = ReadNotifier {
            tx,
            metrics: self.metrics.clone(),
        };
        (notifier, self.run(rx, shutdown))
    }

    async fn run(self, mut rx: mpsc::Receiver<ReadNotice>, shutdown: CancellationToken) {
        let this = Arc::new(self);
        let mut waiting: HashMap<(String, String), (Instant, ReadNotice)> = HashMap::new();
        let mut sends = JoinSet::new();
        loop {
            let next = waiting.values().map(|(at, _)| *at).min();
            tokio::select! {
                notice = rx.recv(), if sends.len() < IN_FLIGHT => {
                    let Some(notice) = notice else { break };
                    gather(&mut waiting, notice);
                }
                _ = sleep_until_opt(next) => {
                    let now = Instant::now();
                    let due: Vec<_> = waiting
                        .iter()
                        .filter(|(_, (at, _))| *at <= now)
                        .map(|(key, _)| key.clone())
                        .collect();
                    for key in due {
                        if let Some((_, notice)) = waiting.remove(&key) {
                            let this = this.clone();
                            sends.spawn(async move { this.send(notice).await });
                        }
                    }
                }
                Some(_) = sends.join_next(), if !sends.is_empty() => {}
                _ = shutdown.cancelled() => break,
            }
        }
    }

    /// Sends one mailbox's `read` push to each device that watches it and
    /// asked for it.
    async fn send(&self, notice: ReadNotice) {
        let devices = match self.store.devices_of(&notice.account_id).await {
            Ok(devices) => devices,
            Err(e) => {
                tracing::warn!(account = %notice.account_id, error = %e, "cannot read the devices for a read push");
                Metrics::inc(&self.metrics.read_pushes_failed);
                return;
            }
        };
        let mail = payload::Mail {
            account_id: &notice.account_id,
            mailbox: &notice.mailbox,
            uidvalidity: notice.uidvalidity,
            count: 0,
            unseen: notice.unseen,
        };
        let topic = &topic_for(&notice.account_id, &notice.mailbox);
        let sends = devices
            .iter()
            .filter(|d| d.clears() && lists_mailbox(&d.mailboxes, &notice.mailbox))
            .filter_map(|device| {
                let uids = shown_to(&notice, &device.id);
                (!uids.is_empty()).then(|| (device, payload::read(&mail, &uids)))
            })
            .map(|(device, plaintext)| async move {
                let push = &device.subscription;
                (self.pusher)
                    .send_push(push, &plaintext, self.ttl_secs, Urgency::Low, topic)
                    .await
            });
        for outcome in futures_util::future::join_all(sends).await {
            if matches!(outcome, PushOutcome::Delivered) {
                Metrics::inc(&self.metrics.read_pushes_sent);
            } else {
                tracing::debug!(account = %notice.account_id, ?outcome, "a read push was not delivered");
                Metrics::inc(&self.metrics.read_pushes_failed);
            }
        }
    }
}

/// The read UIDs of `notice` that `device_id` was told about.
fn shown_to(notice: &ReadNotice, device_id: &str) -> Vec<u32> {
    let unshown = |uid: &u32| {
        (notice.unshown.iter()).any(|u| u.device_id == device_id && u.uids.contains(uid))
    };
    notice
        .uids
        .iter()
        .copied()
        .filter(|uid| !unshown(uid))
        .collect()
}

/// Adds a report to what waits for its mailbox: the UIDs together, the
/// latest count; the window starts with the first report.
fn gather(waiting: &mut HashMap<(String, String), (Instant, ReadNotice)>, notice: ReadNotice) {
    let key = (notice.account_id.clone(), notice.mailbox.clone());
    match waiting.get_mut(&key) {
        Some((_, held)) if held.uidvalidity == notice.uidvalidity => {
            held.uids.extend(notice.uids);
            held.uids.sort_unstable();
            held.uids.dedup();
            held.unshown.extend(notice.unshown);
            if notice.unseen.is_some() {
                held.unseen = notice.unseen;
            }
        }
        _ => {
            waiting.insert(key, (Instant::now() + READ_WINDOW, notice));
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(uids: &[u32], unseen: u32) -> ReadNotice {
        ReadNotice {
            account_id: "a1".into(),
            mailbox: "INBOX".into(),
            uidvalidity: 7,
            uids: uids.to_vec(),
            unseen: Some(unseen),
            unshown: Vec::new(),
        }
    }

    fn unshown(device_id: &str, uids: &[u32]) -> Unshown {
        Unshown {
            device_id: device_id.into(),
            uids: uids.to_vec(),
        }
    }

    #[test]
    fn a_device_hears_only_of_mail_it_was_shown() {
        let mut waiting = HashMap::new();
        let mut first = notice(&[1, 2], 5);
        first.unshown = vec![unshown("d1", &[2])];
        gather(&mut waiting, first);
        let mut second = notice(&[3], 4);
        second.unshown = vec![unshown("d1", &[3]), unshown("d2", &[3])];
        gather(&mut waiting, second);
        let (_, inbox) = &waiting[&("a1".to_string(), "INBOX".to_string())];
        assert_eq!(shown_to(inbox, "d1"), [1]);
        assert_eq!(shown_to(inbox, "d2"), [1, 2]);
        assert_eq!(shown_to(inbox, "d3"), [1, 2, 3]);
    }

    #[test]
    fn reports_of_one_mailbox_gather_into_one() {
        let mut waiting = HashMap::new();
        gather(&mut waiting, notice(&[3, 1], 9));
        gather(&mut waiting, notice(&[2, 3], 7));
        let mut other = notice(&[5], 1);
        other.mailbox = "Work".into();
        gather(&mut waiting, other);
        assert_eq!(waiting.len(), 2);
        let (_, inbox) = &waiting[&("a1".to_string(), "INBOX".to_string())];
        assert_eq!(inbox.uids, [1, 2, 3]);
        assert_eq!(inbox.unseen, Some(7));
    }
}
