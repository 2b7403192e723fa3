//! Counters, the push latency histogram and the store's flush durations,
//! rendered in the Prometheus text format at `/metrics`.
//!
//! A handful of atomics is all the gateway needs, so no metrics crate: each
//! value has one owner that updates it and the API renders them on demand.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds: fine below 100 ms, where
/// the gateway's own share should be (quantiles are interpolated within a
/// bucket), coarse above.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.02,
    0.03, 0.04, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A cumulative histogram with fixed buckets.
#[derive(Debug)]
pub struct Histogram {
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    /// Sum in microseconds, to stay integral.
    sum_micros: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: LATENCY_BUCKETS.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn observe(&self, value: Duration) {
        let secs = value.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(value.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, name: &str, out: &mut String) {
        let mut cumulative = 0;
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// Everything `/metrics` reports besides the account states.
#[derive(Debug, Default)]
pub struct Metrics {
    pub pushes_sent: AtomicU64,
    pub pushes_failed: AtomicU64,
    pub pushes_pruned: AtomicU64,
    pub push_retries: AtomicU64,
    /// The same four outcomes (sent, failed, pruned, retry) by transport
    /// (see [`TRANSPORTS`]).
    pub by_transport: [[AtomicU64; 4]; 3],
    pub reconnects: AtomicU64,
    /// `read` pushes accepted by push services, and not sent (failed,
    /// dropped when too many waited).
    pub read_pushes_sent: AtomicU64,
    pub read_pushes_failed: AtomicU64,
    /// Distinct capability and mailbox lists kept for the accounts' status (a gauge).
    pub status_lists: AtomicU64,
    /// From the IMAP line that announced new mail to the push service's answer.
    pub push_latency: Histogram,
    /// How long each of the store's flushes (a write and an fsync) took;
    /// new mail is pushed only after one, so its tail is the disk's.
    pub store_flush: Arc<Histogram>,
}

/// The transports `by_transport` counts, in its order.
pub const TRANSPORTS: [&str; 3] = ["webpush", "apns", "fcm"];
/// The outcomes `by_transport` counts, in its order.
pub const PUSH_OUTCOMES: [&str; 4] = ["sent", "failed", "pruned", "retry"];

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one push outcome (a [`PUSH_OUTCOMES`] word) of a transport
    /// (a [`TRANSPORTS`] word); unknown words count nothing.
    pub fn count_push(&self, transport: &str, outcome: &str) {
        let t = TRANSPORTS.iter().position(|t| *t == transport);
        let o = PUSH_OUTCOMES.iter().position(|o| *o == outcome);
        if let (Some(t), Some(o)) = (t, o) {
            Self::inc(&self.by_transport[t][o]);
        }
    }

    fn render_by_transport(&self, out: &mut String) {
        let name = "lemonade_pushes_by_transport_total";
        let _ = writeln!(out, "# HELP {name} Push attempts by transport and what the push service answered: sent, failed (rejected, too large), pruned (device gone), retry.\n# TYPE {name} counter");
        for (t, transport) in TRANSPORTS.iter().enumerate() {
            for (o, outcome) in PUSH_OUTCOMES.iter().enumerate() {
                let n = self.by_transport[t][o].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "{name}{{transport=\"{transport}\",outcome=\"{outcome}\"}} {n}"
                );
            }
        }
    }

    /// Renders the metrics; `states` are (state name, number of accounts).
    pub fn render(&self, states: &[(&str, usize)]) -> String {
        let mut out = String::with_capacity(2048);
        out.push_str("# HELP lemonade_accounts Watched accounts by watch state.\n");
        out.push_str("# TYPE lemonade_accounts gauge\n");
        for (state, n) in states {
            let _ = writeln!(out, "lemonade_accounts{{state=\"{state}\"}} {n}");
        }
        let counters = [
            (
                "lemonade_pushes_sent_total",
                "Pushes the push service accepted.",
                &self.pushes_sent,
            ),
            (
                "lemonade_pushes_failed_total",
                "Pushes given up (expired, rejected).",
                &self.pushes_failed,
            ),
            (
                "lemonade_pushes_pruned_total",
                "Devices removed because their push service said gone.",
                &self.pushes_pruned,
            ),
            (
                "lemonade_push_retries_total",
                "Push attempts to be retried (429, 5xx, network).",
                &self.push_retries,
            ),
            (
                "lemonade_reconnects_total",
                "IMAP reconnect attempts after a failure.",
                &self.reconnects,
            ),
            (
                "lemonade_read_pushes_sent_total",
                "Pushes telling a device that mail it was told about was read elsewhere.",
                &self.read_pushes_sent,
            ),
            (
                "lemonade_read_pushes_failed_total",
                "Read pushes not sent (push service refused, or too many waiting).",
                &self.read_pushes_failed,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        self.render_by_transport(&mut out);
        out.push_str("# HELP lemonade_watch_status_lists Distinct capability and mailbox lists kept for the accounts' status.\n");
        out.push_str("# TYPE lemonade_watch_status_lists gauge\n");
        let _ = writeln!(
            out,
            "lemonade_watch_status_lists {}",
            self.status_lists.load(Ordering::Relaxed)
        );
        out.push_str("# HELP lemonade_push_latency_seconds From the new-mail line's arrival to the push service's answer.\n");
        out.push_str("# TYPE lemonade_push_latency_seconds histogram\n");
        self.push_latency
            .render("lemonade_push_latency_seconds", &mut out);
        out.push_str("# HELP lemonade_store_flush_seconds How long each flush of the store (write and fsync) took.\n");
        out.push_str("# TYPE lemonade_store_flush_seconds histogram\n");
        self.store_flush
            .render("lemonade_store_flush_seconds", &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        Metrics::inc(&m.pushes_sent);
        m.push_latency.observe(Duration::from_millis(4));
        m.push_latency.observe(Duration::from_secs(100));
        let text = m.render(&[("watching", 3)]);
        assert!(text.contains("lemonade_accounts{state=\"watching\"} 3"));
        assert!(text.contains("lemonade_pushes_sent_total 1"));
        assert!(text.contains("lemonade_push_latency_seconds_bucket{le=\"0.003\"} 0"));
        assert!(text.contains("lemonade_push_latency_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("lemonade_push_latency_seconds_bucket{le=\"30\"} 1"));
        assert!(text.contains("lemonade_push_latency_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(text.contains("lemonade_push_latency_seconds_count 2"));
        m.store_flush.observe(Duration::from_millis(30));
        let text = m.render(&[]);
        assert!(text.contains("lemonade_store_flush_seconds_bucket{le=\"0.03\"} 1"));
        assert!(text.contains("lemonade_store_flush_seconds_count 1"));
    }
}
