//! How a queued push changes, whatever backend keeps it: new mail merges
//! into it, and a delivery leaves only what merged after the delivered
//! version. Pure functions, shared by every backend.

use super::{
    DeviceMail, NewMail, PendingPush, PushKey, ReadMail, DORMANT, MAX_MERGE_TIMES,
    MAX_QUEUED_MESSAGES,
};

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
        merge_times: Vec::new(),
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
    push.merge_times.push((push.version, share.not_before_ms));
    let old = push.merge_times.len().saturating_sub(MAX_MERGE_TIMES);
    push.merge_times.drain(..old);
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
/// when no mail merged in since, else only what merged after it, which
/// waits as its own mail would have: mail held for quiet hours is not
/// pushed at once because a push was on its way when it came, nor is
/// muted mail alone. (When the push does not remember every change since,
/// what is left goes out at once, as before.)
pub(super) fn remainder(mut stored: PendingPush, delivered: &PendingPush) -> Option<PendingPush> {
    if stored.version == delivered.version {
        return None;
    }
    let since: Vec<i64> = (stored.merge_times.iter())
        .filter(|(version, _)| *version > delivered.version)
        .map(|(_, at)| *at)
        .collect();
    let changes = stored.version.saturating_sub(delivered.version);
    if since.len() as u64 == changes && stored.attempts == 0 {
        stored.not_before_ms = since.into_iter().min().unwrap_or(stored.not_before_ms);
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

/// What [`forget_read`] does to a queued push.
#[derive(Debug, PartialEq)]
pub(super) enum Forgotten {
    /// It lists none of the mail read, or may be on its way: left alone.
    Unchanged,
    /// Read mail taken out (these UIDs); this is what is left.
    Changed(PendingPush, Vec<u32>),
    /// It held nothing but read mail (these UIDs): drop it.
    Emptied(Vec<u32>),
}

/// Takes the mail of `read` out of `push` if it waits: listed messages
/// read elsewhere go, with their part of the count. A push not yet tried
/// that is left with only unlisted mail (muted, or beyond the list)
/// waits, as a share of muted mail alone does, for mail worth a push.
pub(super) fn forget_read(mut push: PendingPush, read: &ReadMail<'_>) -> Forgotten {
    if push.not_before_ms <= read.now_ms || push.uidvalidity != read.uidvalidity {
        return Forgotten::Unchanged;
    }
    let (gone, kept) = std::mem::take(&mut push.messages)
        .into_iter()
        .partition::<Vec<_>, _>(|m| read.uids.contains(&m.uid));
    if gone.is_empty() {
        return Forgotten::Unchanged;
    }
    let gone: Vec<u32> = gone.iter().map(|m| m.uid).collect();
    push.messages = kept;
    push.count = push.count.saturating_sub(gone.len() as u32);
    if push.count == 0 {
        return Forgotten::Emptied(gone);
    }
    push.count = push.count.max(push.messages.len() as u32);
    if push.messages.is_empty() && push.attempts == 0 {
        push.not_before_ms = DORMANT;
    }
    if read.unseen.is_some() {
        push.unseen = read.unseen;
    }
    push.version += 1;
    Forgotten::Changed(push, gone)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::MessageSummary;

    fn waiting(uids: &[u32], count: u32, attempts: u32) -> PendingPush {
        PendingPush {
            key: PushKey {
                device_id: "d1".into(),
                mailbox: "INBOX".into(),
            },
            account_id: "a1".into(),
            messages: uids
                .iter()
                .map(|&uid| MessageSummary {
                    uid,
                    ..Default::default()
                })
                .collect(),
            count,
            version: 3,
            attempts,
            not_before_ms: 9_000,
            expires_at_ms: i64::MAX,
            shrink: false,
            unseen: Some(4),
            uidvalidity: 7,
            claim: 0,
            merge_times: Vec::new(),
        }
    }

    fn read(uids: &[u32]) -> ReadMail<'_> {
        ReadMail {
            account_id: "a1",
            mailbox: "INBOX",
            uidvalidity: 7,
            uids,
            unseen: Some(1),
            now_ms: 1_000,
        }
    }

    #[test]
    fn a_retry_left_with_unlisted_mail_keeps_its_time() {
        // Two messages listed, one more counted (muted): the listed go.
        let Forgotten::Changed(left, gone) = forget_read(waiting(&[5, 6], 3, 1), &read(&[6, 5]))
        else {
            panic!("unchanged");
        };
        assert_eq!(gone, [5, 6]);
        assert_eq!((left.count, left.messages.len(), left.version), (1, 0, 4));
        assert_eq!((left.not_before_ms, left.unseen), (9_000, Some(1)));
        // Not yet tried, the same push would wait for mail worth one.
        let Forgotten::Changed(left, _) = forget_read(waiting(&[5, 6], 3, 0), &read(&[5, 6]))
        else {
            panic!("unchanged");
        };
        assert_eq!(left.not_before_ms, DORMANT);
    }

    /// Merges one message (or, with no uid, one muted) due at `not_before_ms`.
    fn merged(existing: Option<PendingPush>, uid: Option<u32>, not_before_ms: i64) -> PendingPush {
        let key = waiting(&[], 0, 0).key;
        let messages: Vec<MessageSummary> = uid
            .map(|uid| MessageSummary {
                uid,
                ..Default::default()
            })
            .into_iter()
            .collect();
        let share = DeviceMail {
            device_id: "d1",
            messages: std::borrow::Cow::Owned(messages),
            count: 1,
            not_before_ms,
            expires_at_ms: i64::MAX,
        };
        let mail = NewMail {
            account_id: "a1",
            mailbox: "INBOX",
            deliveries: Vec::new(),
            cursor: crate::store::Cursor {
                uidvalidity: 7,
                uidnext: 10,
                highestmodseq: None,
                max_uid_seen: false,
            },
            unseen: None,
            fence: crate::store::Fence::SOLE_OWNER,
        };
        merge(existing, key, &mail, &share)
    }

    #[test]
    fn mail_merged_while_a_push_was_on_its_way_waits_as_its_own_would() {
        let on_its_way = merged(None, Some(1), 0);
        let held = merged(Some(on_its_way.clone()), Some(2), 9_000);
        let left = remainder(held.clone(), &on_its_way).unwrap();
        assert_eq!(
            (left.not_before_ms, left.count, left.messages.len()),
            (9_000, 1, 1)
        );
        let muted = merged(Some(on_its_way.clone()), None, DORMANT);
        assert_eq!(
            remainder(muted, &on_its_way).unwrap().not_before_ms,
            DORMANT
        );
        // Mail worth a push now among what came: all of it goes now.
        let due = merged(Some(held), Some(3), 0);
        assert_eq!(remainder(due, &on_its_way).unwrap().not_before_ms, 0);
        // A push that forgot some of its merges sends what is left at once.
        let mut many = on_its_way.clone();
        for uid in 10..20 {
            many = merged(Some(many), Some(uid), 9_000);
        }
        assert_eq!(many.merge_times.len(), MAX_MERGE_TIMES);
        assert_eq!(remainder(many, &on_its_way).unwrap().not_before_ms, 0);
    }

    #[test]
    fn a_due_push_or_one_of_another_uidvalidity_is_left_alone() {
        let mut due = waiting(&[5], 1, 0);
        due.not_before_ms = 1_000;
        assert_eq!(forget_read(due, &read(&[5])), Forgotten::Unchanged);
        let mut other = waiting(&[5], 1, 0);
        other.uidvalidity = 8;
        assert_eq!(forget_read(other, &read(&[5])), Forgotten::Unchanged);
        let only = waiting(&[5], 1, 0);
        assert_eq!(forget_read(only, &read(&[5])), Forgotten::Emptied(vec![5]));
    }
}
