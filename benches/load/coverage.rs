//! Which pushes told of which mail: the cluster section's accounting of
//! missed and repeated notifications, before and after the push service's
//! replacement of a waiting message by a newer one with the same `Topic`
//! (RFC 8030 §5.4).
//!
//! A push of the `preview` tier lists the newest messages it tells of and
//! counts them all. The fake gives an account's messages UIDs 1, 2, … and
//! the gateway's cursor moves over them in order, so a push with count `c`
//! whose highest listed UID is `h` tells of UIDs `h-c+1 ..= h`.
//!
//! A mail told of by more than one push is repeated. A push service
//! replaces only a message it still holds: one whose device has not taken
//! it yet. What a phone is shown twice therefore depends on the phone:
//! - online throughout, it takes each push the moment the push service has
//!   it (here: when the receiver answered it, which it does at once), so a
//!   repeat is replaced only if it arrived, with the same `Topic`, before
//!   the push it repeats was answered;
//! - offline from before the first push until after the repeat, every
//!   repeat with the same `Topic` as the push before it replaces that one,
//!   so only repeats without it are shown twice.

use std::collections::HashMap;

use crate::receiver::Opened;

/// One push's telling of one mail.
struct Told {
    at_us: u64,
    topic: Option<String>,
}

/// Per mail, every push that told of it, in arrival order.
#[derive(Default)]
pub struct Coverage {
    told: HashMap<(usize, u32), Vec<Told>>,
    /// Pushes that listed no UID, so cannot be placed.
    pub unplaced: u64,
}

/// Missed and repeated mail among a list of mails.
pub struct Repeats {
    pub mails: usize,
    pub missed: usize,
    /// Tellings beyond the first, as the push service received them.
    pub as_sent: usize,
    /// Of those, shown twice by a phone online throughout.
    pub online: usize,
    /// Of those, shown twice by a phone offline until after the repeat:
    /// repeats whose `Topic` differed from the push before, or was absent.
    pub offline: usize,
    /// Milliseconds from a mail's first push to each repeat, sorted.
    pub gaps_ms: Vec<f64>,
}

impl Coverage {
    /// Records what one push told of.
    pub fn add(&mut self, opened: &Opened) {
        let Some(&high) = opened.uids.iter().max() else {
            self.unplaced += 1;
            return;
        };
        let count = (opened.count as u32).max(1);
        let low = high.saturating_sub(count - 1).max(1);
        for uid in low..=high {
            self.told
                .entry((opened.account, uid))
                .or_default()
                .push(Told {
                    at_us: opened.at_us,
                    topic: opened.topic.clone(),
                });
        }
    }

    /// When the first push told of `mail`.
    pub fn first(&self, mail: &(usize, u32)) -> Option<u64> {
        self.told.get(mail)?.iter().map(|t| t.at_us).min()
    }

    /// Counts what happened to `mails`.
    pub fn report(&self, mails: &[(usize, u32)]) -> Repeats {
        let mut r = Repeats {
            mails: mails.len(),
            missed: 0,
            as_sent: 0,
            online: 0,
            offline: 0,
            gaps_ms: Vec::new(),
        };
        for mail in mails {
            let Some(told) = self.told.get(mail) else {
                r.missed += 1;
                continue;
            };
            let mut told: Vec<&Told> = told.iter().collect();
            told.sort_by_key(|t| t.at_us);
            for pair in told.windows(2) {
                let (before, repeat) = (pair[0], pair[1]);
                let same_topic = repeat.topic.is_some() && repeat.topic == before.topic;
                r.as_sent += 1;
                r.gaps_ms
                    .push((repeat.at_us - told[0].at_us) as f64 / 1000.0);
                // The receiver answers a push as soon as it has read it.
                let answered_us = before.at_us;
                if !(same_topic && repeat.at_us < answered_us) {
                    r.online += 1;
                }
                if !same_topic {
                    r.offline += 1;
                }
            }
        }
        r.gaps_ms.sort_by(|a, b| a.total_cmp(b));
        r
    }
}
