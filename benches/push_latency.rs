//! Push latency through a real Dovecot: delivers 200 messages, one after the
//! other, and prints the gateway's own share — from the EXISTS line's
//! arrival at the gateway to the push service's answer — as p50/p99, read
//! from the gateway's `lemonade_push_latency_seconds` histogram (linear
//! interpolation within a bucket, like Prometheus' `histogram_quantile`).
//! For context it also prints the end-to-end time from APPEND to the push's
//! arrival, which includes Dovecot's fixed ~0.5 s IDLE notification delay.
//!
//! Run: `cargo bench --bench push_latency` (needs root and Dovecot, like the tests).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use support::scenario::{Watched, PASSWORD, USER};
use tokio::time::Instant;

const MESSAGES: usize = 200;

fn quantile(buckets: &[(f64, f64)], q: f64) -> f64 {
    let Some(&(_, total)) = buckets.last() else {
        return f64::NAN;
    };
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(bound, count) in buckets {
        if count >= rank {
            if bound.is_infinite() {
                return lower.0;
            }
            let in_bucket = count - lower.1;
            let fraction = if in_bucket > 0.0 {
                (rank - lower.1) / in_bucket
            } else {
                0.0
            };
            return lower.0 + (bound - lower.0) * fraction;
        }
        lower = (bound, count);
    }
    f64::NAN
}

fn histogram(metrics: &str) -> Vec<(f64, f64)> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("lemonade_push_latency_seconds_bucket{le=\""))
        .filter_map(|rest| {
            let (bound, count) = rest.split_once("\"} ")?;
            let bound = if bound == "+Inf" {
                f64::INFINITY
            } else {
                bound.parse().ok()?
            };
            Some((bound, count.trim().parse().ok()?))
        })
        .collect()
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let w = Watched::start("preview").await;

    let mut end_to_end = Vec::with_capacity(MESSAGES);
    for i in 0..MESSAGES {
        let raw = format!(
            "From: Bench <bench@example.org>\r\nSubject: message {i}\r\nMessage-ID: <{i}.bench@test.local>\r\n\r\nHello number {i}, this is the body text.\r\n"
        );
        let started = Instant::now();
        w.dovecot.append(USER, PASSWORD, "INBOX", raw.as_bytes());
        let push = w.device.next_push(Duration::from_secs(30)).await;
        end_to_end.push(started.elapsed());
        assert_eq!(
            push.payload["messages"][0]["subject"],
            format!("message {i}")
        );
    }
    end_to_end.sort();

    let gateway = w.gateway();
    let metrics = gateway.metrics_text().await;
    let buckets = histogram(&metrics);
    w.finish().await;

    let ms = |s: f64| s * 1000.0;
    println!(
        "push latency over {MESSAGES} messages (Dovecot on loopback, push receiver on loopback)"
    );
    println!(
        "  gateway share, EXISTS arrival -> push service answer: p50 {:.2} ms, p99 {:.2} ms (n = {})",
        ms(quantile(&buckets, 0.50)),
        ms(quantile(&buckets, 0.99)),
        buckets.last().map(|b| b.1).unwrap_or(0.0)
    );
    println!(
        "  end to end, APPEND -> push received (includes Dovecot's IDLE delay): p50 {:.1} ms, p99 {:.1} ms",
        percentile(&end_to_end, 0.50).as_secs_f64() * 1000.0,
        percentile(&end_to_end, 0.99).as_secs_f64() * 1000.0,
    );
}
