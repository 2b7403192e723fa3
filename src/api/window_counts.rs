//! Counts per key within a fixed window, in a table of bounded size: the
//! bookkeeping under the failed-login guard and the registration limit.
//!
//! A key's window starts at its first count and ends `window` later. The
//! table never holds more than its capacity: when it is full, windows that
//! ended are dropped first, then the keys with the lowest counts (the
//! oldest among equals). A flood of new keys therefore never switches the
//! counting off, and to push out a key that is being refused an attacker
//! must first give as many keys an even higher count.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
struct Count {
    count: u32,
    since: Instant,
}

/// Counts per key within a window (see the module's description).
#[derive(Debug)]
pub struct WindowCounts {
    allowed: u32,
    window: Duration,
    capacity: usize,
    counts: HashMap<String, Count>,
}

impl WindowCounts {
    /// `allowed` counts per key within `window`; at most `capacity` keys.
    pub fn new(allowed: u32, window: Duration, capacity: usize) -> Self {
        WindowCounts {
            allowed,
            window,
            capacity: capacity.max(1),
            counts: HashMap::new(),
        }
    }

    /// The key's count in its current window.
    #[cfg(test)]
    pub fn count(&self, key: &str, now: Instant) -> u32 {
        match self.counts.get(key) {
            Some(c) if now < c.since + self.window => c.count,
            _ => 0,
        }
    }

    /// How long `key` must wait, if it reached its allowance: until its
    /// window ends.
    pub fn wait(&self, key: &str, now: Instant) -> Option<Duration> {
        let c = self.counts.get(key)?;
        let ends = c.since + self.window;
        (c.count >= self.allowed && now < ends).then(|| ends - now)
    }

    /// Counts one more for `key` (a new window if its last one ended).
    pub fn add(&mut self, key: &str, now: Instant) {
        if !self.counts.contains_key(key) && self.counts.len() >= self.capacity {
            self.make_room(now);
        }
        let window = self.window;
        let entry = self.counts.entry(key.to_owned()).or_insert(Count {
            count: 0,
            since: now,
        });
        if now >= entry.since + window {
            *entry = Count {
                count: 0,
                since: now,
            };
        }
        entry.count = entry.count.saturating_add(1);
    }

    /// Takes one count back from `key` (a reservation not used).
    pub fn remove_one(&mut self, key: &str) {
        if let Some(c) = self.counts.get_mut(key) {
            c.count = c.count.saturating_sub(1);
            if c.count == 0 {
                self.counts.remove(key);
            }
        }
    }

    /// Forgets `key`.
    pub fn clear(&mut self, key: &str) {
        self.counts.remove(key);
    }

    /// Keys counted.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    /// Drops ended windows; if that frees less than an eighth of the table,
    /// also the lowest counts, oldest first, down to seven eighths (so that
    /// a full table is not scanned again at every new key).
    fn make_room(&mut self, now: Instant) {
        let window = self.window;
        self.counts.retain(|_, c| now < c.since + window);
        let keep = self.capacity - self.capacity.div_ceil(8);
        let excess = self.counts.len().saturating_sub(keep);
        if excess == 0 {
            return;
        }
        // Lowest first: by count, then by age (older windows end sooner).
        let mut ranks: Vec<(u32, std::cmp::Reverse<Instant>)> = self
            .counts
            .values()
            .map(|c| (c.count, std::cmp::Reverse(c.since)))
            .collect();
        let (_, threshold, _) = ranks.select_nth_unstable(excess - 1);
        let threshold = *threshold;
        let mut to_drop = excess;
        self.counts.retain(|_, c| {
            let rank = (c.count, std::cmp::Reverse(c.since));
            // Ties with the threshold go until enough went.
            if rank < threshold || (rank == threshold && to_drop > 0) {
                to_drop = to_drop.saturating_sub(1);
                false
            } else {
                true
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(600);

    #[tokio::test(start_paused = true)]
    async fn a_full_table_drops_the_lowest_counts_not_the_refused_keys() {
        let mut counts = WindowCounts::new(3, WINDOW, 8);
        for _ in 0..3 {
            counts.add("guessed", Instant::now());
        }
        assert_eq!(counts.wait("guessed", Instant::now()), Some(WINDOW));
        // A flood of new keys, each counted once.
        for i in 0..1000 {
            tokio::time::advance(Duration::from_millis(10)).await;
            counts.add(&format!("flood-{i}"), Instant::now());
            assert!(counts.len() <= 8);
        }
        // Still counted, still refused; the newest keys are counted too.
        assert!(counts.wait("guessed", Instant::now()).is_some());
        assert_eq!(counts.count("flood-999", Instant::now()), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn ended_windows_make_room_first() {
        let mut counts = WindowCounts::new(2, WINDOW, 4);
        for key in ["a", "b", "c", "d"] {
            counts.add(key, Instant::now());
            counts.add(key, Instant::now());
        }
        tokio::time::advance(WINDOW).await;
        counts.add("e", Instant::now());
        assert_eq!(counts.len(), 1);
        assert_eq!(counts.wait("a", Instant::now()), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_count_taken_back_frees_its_place() {
        let mut counts = WindowCounts::new(1, WINDOW, 4);
        counts.add("a", Instant::now());
        assert!(counts.wait("a", Instant::now()).is_some());
        counts.remove_one("a");
        assert_eq!(counts.wait("a", Instant::now()), None);
        assert_eq!(counts.len(), 0);
    }
}
