//! The gateway's wall clock: Unix time in milliseconds, against which quiet
//! hours are read and the push queue's times are kept. Real time, or real
//! time shifted by a fixed amount, so that a test can be at a given local
//! time (just before the end of quiet hours in some zone) without waiting
//! for it. Durations still come from `tokio::time`.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// Unix milliseconds, shared by every part that reads wall time.
#[derive(Debug, Clone, Default)]
pub struct WallClock {
    offset_ms: Arc<AtomicI64>,
}

impl WallClock {
    /// The system's clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// Milliseconds since the Unix epoch, as this clock reads them.
    pub fn now_ms(&self) -> i64 {
        crate::unix_millis().saturating_add(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Makes this clock (and every copy of it) read `at_ms` now, running on
    /// from there at the system clock's pace.
    pub fn set_now_ms(&self, at_ms: i64) {
        self.offset_ms.store(
            at_ms.saturating_sub(crate::unix_millis()),
            Ordering::Relaxed,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_clock_runs_on_from_where_it_was_set() {
        let clock = WallClock::system();
        let copy = clock.clone();
        let target = 1_900_000_000_000;
        clock.set_now_ms(target);
        let now = copy.now_ms();
        assert!(now >= target && now < target + 60_000, "{now}");
        assert!(WallClock::system().now_ms() < target);
    }
}
