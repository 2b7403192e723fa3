//! How a queued push changes, whatever backend keeps it: new mail merges
//! into it, and a delivery leaves only what merged after the delivered
//! version. Pure functions, shared by every backend.

use super::{DeviceMail, NewMail, PendingPush, PushKey, MAX_QUEUED_MESSAGES};

/// Merges a device's share of new mail into its pending push. Messages the
/// push already holds (the same mail found again after a crash that kept
/// the push but not the cursor) are neither added nor counted twice.
///
/// A push not yet tried goes out at the earlier of its own time and the
/// new mail's (mail a device's rules let through wakes a push that waited
/// for the end of quiet hours, or that only counted muted mail); one
/// waiting to be retried keeps its time.
pub(super) fn merge(
    existing: Option<PendingPush>,
    key: PushKey,
    mail: &NewMail<'_>,
    share: &DeviceMail<'_>,
) -> PendingPush {
    let fresh = existing.is_none();
    let mut push = existing.unwrap_or(PendingPush {
        key,
        account_id: mail.account_id.to_string(),
        messages: Vec::new(),
        count: 0,
        version: 0,
        claim: 0,
        attempts: 0,
        not_before_ms: share.not_before_ms,
        expires_at_ms: 0,
        shrink: false,
        unseen: None,
        uidvalidity: 0,
    });
    let before = push.messages.len();
    for message in share.messages.iter() {
        if !push.messages[..before].iter().any(|m| m.uid == message.uid) {
            push.messages.push(message.clone());
        }
    }
    let repeated = (share.messages.len() - (push.messages.len() - before)) as u32;
    if push.messages.len() > MAX_QUEUED_MESSAGES {
        let excess = push.messages.len() - MAX_QUEUED_MESSAGES;
        push.messages.drain(..excess);
    }
    // What no payload could carry is not stored (nor rewritten at each retry).
    crate::mail::trim_queued(&mut push.messages);
    push.count = push
        .count
        .saturating_add(share.count.saturating_sub(repeated));
    push.version += 1;
    push.expires_at_ms = push.expires_at_ms.max(share.expires_at_ms);
    if !fresh && push.attempts == 0 {
        push.not_before_ms = push.not_before_ms.min(share.not_before_ms);
    }
    if mail.unseen.is_some() {
        push.unseen = mail.unseen;
    }
    push.uidvalidity = mail.cursor.uidvalidity;
    push
}

/// What is left of `stored` once `delivered` reached the device: nothing
/// when no mail merged in since, else only what merged after it.
pub(super) fn remainder(mut stored: PendingPush, delivered: &PendingPush) -> Option<PendingPush> {
    if stored.version == delivered.version {
        return None;
    }
    stored.count = stored.count.saturating_sub(delivered.count);
    stored
        .messages
        .retain(|m| !delivered.messages.iter().any(|d| d.uid == m.uid));
    if stored.count == 0 && stored.messages.is_empty() {
        return None;
    }
    stored.count = stored.count.max(stored.messages.len() as u32);
    Some(stored)
}

/// Records a failed attempt in `push`.
pub(super) fn reschedule(push: &mut PendingPush, attempts: u32, not_before_ms: i64, shrink: bool) {
    push.attempts = attempts;
    push.not_before_ms = not_before_ms;
    push.shrink = shrink;
    // An entry queued before summaries were trimmed shrinks at its first
    // retry instead of being rewritten whole.
    crate::mail::trim_queued(&mut push.messages);
}
