//! A device's notification rules: which new messages it is told about
//! (VIP senders, muted senders, mailing lists, mail not addressed to the
//! account), and when (quiet hours in its owner's time zone).
//!
//! Pure code over plain values: no store, no network, no clock (the
//! caller passes "now"). The store keeps [`Rules`] in each device's record,
//! the API checks what clients send with [`RulesInput::validate`], and the
//! watcher asks [`Rules::verdict`] for each new message and
//! [`Rules::quiet_until`] before sending.
//!
//! How a verdict is reached, in order:
//! 1. A sender named by `mute_senders` is muted, unless `vip` names it
//!    more specifically (an address beats a domain, a subdomain beats its
//!    parent; on a tie the mute wins).
//! 2. A sender named by `vip` is notified as VIP: `mute_lists` and
//!    `only_direct` do not apply to it.
//! 3. With `mute_lists`, list mail (`List-Id`, `Precedence: bulk|list|junk`)
//!    and automated senders (`noreply@…`, `MAILER-DAEMON`) are muted.
//! 4. With `only_direct`, mail that does not name the account's address in
//!    To or Cc is muted.
//! 5. Everything else is notified.

mod input;
mod quiet;
mod senders;

use serde::{Deserialize, Serialize};

pub use input::{QuietHoursInput, RuleError, RulesInput, MAX_PATTERNS};
pub use quiet::{ClockTime, QuietHours, Weekday};
pub use senders::{normalize_pattern, Sender, MAX_PATTERN_BYTES};

/// The rules of one device. The default (every field empty) notifies
/// about every message at any time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rules {
    /// When nothing is pushed; the watcher holds pushes until it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<QuietHours>,
    /// Mail from `vip` senders breaks through quiet hours.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub except_vip: bool,
    /// Normalized patterns: lowercase `ann@example.org` or `example.org`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vip: Vec<String>,
    /// Only mail naming the account's address in To or Cc.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub only_direct: bool,
    /// No list mail and no mail from automated senders.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mute_lists: bool,
    /// Normalized patterns never to notify about.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mute_senders: Vec<String>,
}

/// What the watcher knows of a new message when it applies the rules.
#[derive(Debug, Clone, Copy)]
pub struct MessageFacts<'a> {
    /// The From address (a bare address or `Name <address>`); may be
    /// empty or garbage from a hostile server.
    pub from: &'a str,
    /// The account's address is in To or Cc.
    pub direct: bool,
    /// The message has `List-Id`, or `Precedence: bulk`, `list` or `junk`.
    pub list: bool,
}

/// What the rules say about one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No push for it (it still counts in later pushes' counts).
    Mute,
    /// Push it; `vip` marks it in the payload.
    Notify { vip: bool },
}

impl Rules {
    /// The verdict on one message (see the module docs for the order).
    pub fn verdict(&self, facts: &MessageFacts) -> Verdict {
        let sender = Sender::parse(facts.from);
        let best = |patterns: &[String]| sender.as_ref().and_then(|s| s.best_match(patterns));
        let (mute, vip) = (best(&self.mute_senders), best(&self.vip));
        match (mute, vip) {
            (Some(m), Some(v)) if m >= v => return Verdict::Mute,
            (Some(_), None) => return Verdict::Mute,
            (_, Some(_)) => return Verdict::Notify { vip: true },
            (None, None) => {}
        }
        let automated = sender.as_ref().is_some_and(Sender::is_noreply);
        if self.mute_lists && (facts.list || automated) {
            return Verdict::Mute;
        }
        if self.only_direct && !facts.direct {
            return Verdict::Mute;
        }
        Verdict::Notify { vip: false }
    }

    /// None when pushes may go at `now_unix_ms`; otherwise the unix ms at
    /// which the current quiet period ends.
    pub fn quiet_until(&self, now_unix_ms: i64) -> Option<i64> {
        self.quiet_hours.as_ref()?.quiet_until(now_unix_ms)
    }

    /// Whether a message with this verdict is pushed during quiet hours.
    pub fn breaks_quiet(&self, verdict: Verdict) -> bool {
        self.except_vip && verdict == Verdict::Notify { vip: true }
    }

    /// Whether verdicts need To, Cc, List-Id and Precedence: the watcher
    /// fetches them even for payload tiers that show no headers.
    pub fn needs_recipients(&self) -> bool {
        self.only_direct || self.mute_lists
    }

    /// No rule set: every message is notified at any time.
    pub fn is_empty(&self) -> bool {
        *self == Rules::default()
    }
}

#[cfg(test)]
mod tests;
