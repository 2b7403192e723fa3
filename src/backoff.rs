//! Jittered exponential backoff: between IMAP reconnects and between push retries.

use std::time::Duration;

use rand::Rng;

/// Delays that double from `min` up to `max`, each drawn between half and
/// all of the current step so that accounts dropped together (a server
/// restart, a network cut) do not reconnect together.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max: max.max(min),
            attempt: 0,
        }
    }

    /// The delay before the next attempt; each call moves one step up.
    pub fn next_delay<R: Rng + ?Sized>(&mut self, rng: &mut R) -> Duration {
        let step = self
            .min
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = step / 2;
        half + Duration::from_millis(rng.gen_range(0..=half.as_millis() as u64))
    }

    /// The delay before attempt number `attempt` (0-based), without keeping state.
    pub fn delay_for<R: Rng + ?Sized>(&self, attempt: u32, rng: &mut R) -> Duration {
        let mut backoff = Backoff {
            attempt,
            ..self.clone()
        };
        backoff.next_delay(rng)
    }

    /// Back to the shortest delay, after a connection that worked.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Attempts since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn doubles_with_jitter_up_to_the_cap_and_resets() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
        let mut steps = Vec::new();
        for _ in 0..15 {
            steps.push(backoff.next_delay(&mut rng));
        }
        let expected_step = |i: u32| Duration::from_secs((1u64 << i).min(300));
        for (i, delay) in steps.iter().enumerate() {
            let step = expected_step(i as u32);
            assert!(*delay >= step / 2 && *delay <= step, "{i}: {delay:?}");
        }
        assert!(steps[14] >= Duration::from_secs(150));
        assert_eq!(backoff.attempts(), 15);
        backoff.reset();
        assert!(backoff.next_delay(&mut rng) <= Duration::from_secs(1));
    }

    #[test]
    fn jitter_spreads_accounts_apart() {
        let mut rng = StdRng::seed_from_u64(2);
        let delays: std::collections::HashSet<_> = (0..50)
            .map(|_| {
                let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
                b.next_delay(&mut rng);
                b.next_delay(&mut rng).as_millis()
            })
            .collect();
        assert!(delays.len() > 25);
    }
}
