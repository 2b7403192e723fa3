//! Spacing the checks that find nothing.
//!
//! A server announces new mail (EXISTS, a NOTIFY STATUS) and the watcher
//! looks for it. Now and then a look finds nothing (the message was expunged
//! meanwhile); a server that announces nothing new after every IDLE (`* 0
//! EXISTS`) would make that a loop of commands as fast as the network
//! allows. So after a look that found nothing, the next one waits: not at
//! all after the first, then an interval that doubles with each empty look
//! that follows soon after, up to [`MAX_INTERVAL`]. A look that finds mail,
//! or an empty one after a quiet spell, starts over. Pure: the caller passes
//! the time (from `tokio::time`).

use std::time::Duration;

use tokio::time::Instant;

/// The wait after the second empty look in a row.
pub(super) const FIRST_INTERVAL: Duration = Duration::from_millis(500);
/// The longest wait between two looks that find nothing.
pub(super) const MAX_INTERVAL: Duration = Duration::from_secs(60);

/// When the next look for announced mail may happen.
#[derive(Debug, Default)]
pub(super) struct CheckThrottle {
    /// Looks that found nothing, each soon after the one before.
    empty_in_row: u32,
    last_empty: Option<Instant>,
    not_before: Option<Instant>,
}

impl CheckThrottle {
    /// A look found new mail: the next one may follow at once.
    pub(super) fn found(&mut self) {
        *self = CheckThrottle::default();
    }

    /// A look at `now` found nothing.
    pub(super) fn empty(&mut self, now: Instant) {
        if let Some(last) = self.last_empty {
            let quiet = (self.interval() * 4).max(FIRST_INTERVAL * 4);
            if now.saturating_duration_since(last) >= quiet {
                self.empty_in_row = 0;
            }
        }
        self.empty_in_row = self.empty_in_row.saturating_add(1);
        self.last_empty = Some(now);
        self.not_before = Some(now + self.interval());
    }

    /// The wait after the latest empty look.
    fn interval(&self) -> Duration {
        match self.empty_in_row {
            0 | 1 => Duration::ZERO,
            n => FIRST_INTERVAL
                .saturating_mul(1 << (n - 2).min(16))
                .min(MAX_INTERVAL),
        }
    }

    /// The earliest time of the next look, when it must wait.
    pub(super) fn not_before(&self) -> Option<Instant> {
        self.not_before
    }

    /// Whether a look may happen at `now`.
    pub(super) fn allows(&self, now: Instant) -> bool {
        self.not_before.is_none_or(|at| now >= at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The waits a server announcing nothing new at once gets, in a row.
    fn waits(throttle: &mut CheckThrottle, looks: usize) -> Vec<Duration> {
        (0..looks)
            .map(|_| {
                let now = Instant::now();
                throttle.empty(now);
                let at = throttle.not_before().unwrap();
                assert!(!throttle.allows(at - Duration::from_millis(1)) || at == now);
                assert!(throttle.allows(at));
                at - now
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn empty_looks_in_a_row_wait_longer_and_longer() {
        let mut throttle = CheckThrottle::default();
        assert!(throttle.allows(Instant::now()));
        let mut seen = Vec::new();
        for _ in 0..12 {
            let wait = waits(&mut throttle, 1)[0];
            seen.push(wait);
            tokio::time::advance(wait).await;
        }
        assert_eq!(seen[0], Duration::ZERO);
        assert_eq!(seen[1], FIRST_INTERVAL);
        assert_eq!(seen[2], FIRST_INTERVAL * 2);
        assert!(seen.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(*seen.last().unwrap(), MAX_INTERVAL);
        // An hour of such a server: about a minute apart, not a busy loop.
        let mut looks = 0;
        let end = Instant::now() + Duration::from_secs(3600);
        while Instant::now() < end {
            let wait = waits(&mut throttle, 1)[0];
            looks += 1;
            tokio::time::advance(wait).await;
        }
        assert!(looks <= 61, "{looks}");
    }

    #[tokio::test(start_paused = true)]
    async fn found_mail_or_a_quiet_spell_starts_over() {
        let mut throttle = CheckThrottle::default();
        waits(&mut throttle, 5);
        throttle.found();
        assert!(throttle.allows(Instant::now()));
        assert_eq!(waits(&mut throttle, 2), [Duration::ZERO, FIRST_INTERVAL]);

        // Now and then an empty look, minutes apart: never a wait.
        let mut throttle = CheckThrottle::default();
        for _ in 0..10 {
            assert_eq!(waits(&mut throttle, 1), [Duration::ZERO]);
            tokio::time::advance(Duration::from_secs(180)).await;
        }
    }
}
