//! What each of an account's devices gets of new mail: the watcher's view
//! of a device (its mailboxes, payload tier, rules and whether it wants
//! `read` pushes), what must be fetched for them all, and each device's
//! share of a batch of new mail under its rules. Pure, so the rules'
//! effect on what is queued is tested on its own.

use std::borrow::Cow;
use std::sync::Arc;

use super::supervisor::WatchContext;
use crate::imap::SummaryDetail;
use crate::mail::MessageSummary;
use crate::rules::{MessageFacts, Rules, Verdict};
use crate::store::{lists_mailbox, DeviceMail, PayloadTier, StoreError, DORMANT};

/// What the watcher needs of a device, kept for the whole attempt (not its
/// push subscription, which the delivery reads when it sends).
#[derive(Debug, Clone)]
pub(crate) struct DeviceWatch {
    pub id: String,
    pub payload: PayloadTier,
    pub mailboxes: Vec<String>,
    pub rules: Rules,
    /// Wants `read` pushes for mail it was told about.
    pub clear: bool,
}

impl DeviceWatch {
    /// What the watcher needs of each of the account's stored devices.
    pub(crate) async fn of_account(
        ctx: &WatchContext,
        account_id: &str,
    ) -> Result<Arc<[DeviceWatch]>, StoreError> {
        Ok(ctx
            .store
            .devices_of(account_id)
            .await?
            .into_iter()
            .map(|device| DeviceWatch {
                clear: device.clears(),
                id: device.id,
                payload: device.payload,
                mailboxes: device.mailboxes,
                rules: device.rules,
            })
            .collect())
    }
}

/// What the devices need fetched about new mail: what their payload tiers
/// show, and the headers their rules decide by even where the tier shows
/// none.
pub(crate) fn detail_for(devices: &[DeviceWatch]) -> SummaryDetail {
    if devices.iter().any(|d| d.payload == PayloadTier::Preview) {
        SummaryDetail::Preview
    } else if devices
        .iter()
        .any(|d| d.payload == PayloadTier::Headers || !d.rules.is_empty())
    {
        SummaryDetail::Headers
    } else {
        SummaryDetail::UidsOnly
    }
}

/// New mail of one mailbox as the watcher found it.
pub(crate) struct Batch<'a> {
    pub mailbox: &'a str,
    /// Summaries of the newest messages, oldest first.
    pub messages: &'a [MessageSummary],
    /// How many messages arrived (may exceed `messages.len()`).
    pub count: u32,
    /// The account's own addresses, for `only_direct`.
    pub addresses: &'a [String],
    /// Wall time now, for quiet hours.
    pub now_ms: i64,
    /// How long an undelivered push lives.
    pub ttl_ms: i64,
}

/// Each device's share of `batch`: every device that watches the mailbox,
/// with the messages its rules let through (VIPs marked), the whole count,
/// and when its push may go out (now, the end of its quiet hours unless a
/// VIP breaks through, or never on its own when its rules mute it all).
pub(crate) fn shares<'a>(devices: &'a [DeviceWatch], batch: &Batch<'a>) -> Vec<DeviceMail<'a>> {
    devices
        .iter()
        .filter(|d| lists_mailbox(&d.mailboxes, batch.mailbox))
        .map(|device| share(device, batch))
        .collect()
}

fn share<'a>(device: &'a DeviceWatch, batch: &Batch<'a>) -> DeviceMail<'a> {
    let now = DeviceMail::now(
        &device.id,
        batch.messages,
        batch.count,
        batch.now_ms + batch.ttl_ms,
    );
    let rules = &device.rules;
    if rules.is_empty() {
        return now;
    }
    let verdicts: Vec<Verdict> = batch
        .messages
        .iter()
        .map(|m| rules.verdict(&facts(m, batch.addresses)))
        .collect();
    let shown: Vec<MessageSummary> = batch
        .messages
        .iter()
        .zip(&verdicts)
        .filter_map(|(m, verdict)| match verdict {
            Verdict::Mute => None,
            Verdict::Notify { vip } => Some(MessageSummary {
                vip: *vip,
                ..m.clone()
            }),
        })
        .collect();
    // Only what was summarised can be muted: messages beyond the fetch
    // limit are counted, and counted as worth a push.
    let unsummarised = batch.count as usize > batch.messages.len();
    let not_before_ms = if shown.is_empty() && !unsummarised {
        DORMANT
    } else if verdicts.iter().any(|v| rules.breaks_quiet(*v)) {
        0
    } else {
        rules.quiet_until(batch.now_ms).unwrap_or(0)
    };
    DeviceMail {
        messages: Cow::Owned(shown),
        not_before_ms,
        // A held push lives its time from when it may go out.
        expires_at_ms: match not_before_ms {
            DORMANT => now.expires_at_ms,
            at => at.max(batch.now_ms).saturating_add(batch.ttl_ms),
        },
        ..now
    }
}

/// What rules decide one message by.
fn facts<'a>(message: &'a MessageSummary, addresses: &[String]) -> MessageFacts<'a> {
    MessageFacts {
        from: &message.from.email,
        direct: addresses.iter().any(|a| message.facts.names(a)),
        list: message.facts.list,
    }
}

#[cfg(test)]
#[path = "devices_tests.rs"]
mod tests;
