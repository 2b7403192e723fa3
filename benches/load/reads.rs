//! The read phase: mail read elsewhere on many accounts (the fake announces
//! `FETCH (FLAGS (\Seen))` on each watched connection), and how long until
//! each account's device got its `read` push; the gateway's CPU for it.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::gateway::Gateway;
use crate::receiver::{now_us, Receiver};
use crate::{quantile, Fake};

/// Marks all mail of `accounts` read, `rate` accounts a second, and prints
/// the latency from the fake's announcement to the `read` push's arrival.
pub async fn read_phase(
    fake: &mut Fake,
    receiver: &Receiver,
    gw: &Gateway,
    accounts: &[usize],
    rate: usize,
) {
    let (user0, system0) = gw.cpu_times();
    let mut sent_at: HashMap<usize, u64> = HashMap::new();
    let mut arrived: HashMap<usize, u64> = HashMap::new();
    let mut extra = 0usize;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let per_tick = (rate / 100).max(1);
    for chunk in accounts.chunks(per_tick) {
        tick.tick().await;
        let mut lines = String::new();
        for account in chunk {
            lines.push_str(&format!("read {account}\n"));
            sent_at.insert(*account, now_us());
        }
        fake.send(&lines).await;
        take_reads(receiver, &mut arrived, &mut extra);
    }
    let end = Instant::now() + Duration::from_secs(60);
    while arrived.len() < accounts.len() && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100)).await;
        take_reads(receiver, &mut arrived, &mut extra);
    }
    // Late repeats would show here.
    tokio::time::sleep(Duration::from_secs(2)).await;
    take_reads(receiver, &mut arrived, &mut extra);
    let (user1, system1) = gw.cpu_times();
    let mut latency: Vec<f64> = arrived
        .iter()
        .filter_map(|(a, at)| Some(at.saturating_sub(*sent_at.get(a)?) as f64 / 1000.0))
        .collect();
    latency.sort_by(|a, b| a.total_cmp(b));
    let cpu = user1 + system1 - user0 - system0;
    println!(
        "READ: {} of {} accounts got their read push ({extra} more read pushes); \
         \\Seen announced → read push arrived: p50 {:.0} ms, p99 {:.0} ms \
         (of which {} ms settling and {} ms gathering by design); CPU {:.0} ms per 1000 read pushes",
        arrived.len(),
        accounts.len(),
        quantile(&latency, 0.5),
        quantile(&latency, 0.99),
        lemonade::watch::READ_SETTLE.as_millis(),
        lemonade::notify::reads::READ_WINDOW.as_millis(),
        cpu / arrived.len().max(1) as f64 * 1e6,
    );
}

/// Records the first read push of each account; counts any further ones.
fn take_reads(receiver: &Receiver, arrived: &mut HashMap<usize, u64>, extra: &mut usize) {
    for arrival in receiver.take() {
        let opened = receiver.open(&arrival);
        if opened.kind != "read" {
            continue;
        }
        if arrived.insert(opened.account, opened.at_us).is_some() {
            *extra += 1;
        }
    }
}
