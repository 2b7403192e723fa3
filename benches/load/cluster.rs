//! The load benchmark's cluster section (`--cluster K`): the same number of
//! accounts on K gateway nodes (processes of the release binary) sharing a
//! private PostgreSQL server with durable commits, against the same fake
//! IMAP server and push receiver as the embedded store's section before it.
//!
//! It registers the accounts through the nodes' APIs in turn, measures
//! new mail → push latency and CPU per 1,000 notifications at the same mail
//! rate as the embedded store (the database server's CPU counted in), then
//! kills one node (`failover.rs`), and prints the figures beside the
//! embedded store's and the targets. It asserts no times.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use tokio::time::Instant;

use crate::coverage::Coverage;
use crate::failover::{self, FailoverFigures};
use crate::nodes::{Database, Nodes};
use crate::receiver::{Receiver, Tally};
use crate::{inject, per_account, quantile, register, Fake, Injected, Options, RateFigures};

/// Targets from the issue, printed beside the figures.
const FAILOVER_TARGET_S: f64 = 30.0;
const CPU_TARGET_X_SLED: f64 = 2.0;

/// What the cluster's 1,000 mails/s phase measured.
struct ClusterRate {
    figures: RateFigures,
    /// CPU per 1,000 notifications: the nodes', the database server's.
    nodes_ms: f64,
    database_ms: f64,
}

/// Runs the cluster section on users `base..base+accounts`.
pub async fn run(
    o: &Options,
    base: usize,
    fake: &mut Fake,
    receiver: &Receiver,
    tmp: &Path,
    sled: Option<&RateFigures>,
) {
    let n = o.accounts;
    println!("\n== cluster: {} nodes on PostgreSQL ==", o.cluster);
    let db = Database::start().await;
    println!(
        "PostgreSQL (private server on loopback): {}",
        db.describe().await
    );
    println!(
        "  durable commits: fsync, synchronous_commit and full_page_writes are ON here \
         (the tests' harness turns them off); every commit waits for its WAL to reach the disk"
    );
    let dir = tmp.join("cluster");
    std::fs::create_dir_all(&dir).unwrap();
    let mut nodes = Nodes::start(o.cluster, &db.url, &dir, &tmp.join("certs/ca.pem")).await;
    println!(
        "{} nodes ready (default cluster timings: lease 15 s renewed every 5 s, \
         claims 5 s after a lease ran out, rounds every 5 s, push poll 2 s)",
        o.cluster
    );
    let started = Instant::now();
    register(&nodes.apis(), receiver, &fake.plain, base, 0, n, false).await;
    let registered = started.elapsed().as_secs_f64();
    let all = nodes.wait_watching(n, Duration::from_secs(600)).await;
    println!(
        "registered {n} accounts with a device each through the {} nodes in turn in {registered:.1} s; \
         {} watching after {:.1} s",
        o.cluster,
        if all { "all" } else { "NOT all" },
        started.elapsed().as_secs_f64()
    );
    print_spread(&db, &nodes).await;

    let mut coverage = Coverage::default();
    let mut injected = Injected::default();
    let rate = rate_phase(
        o,
        base,
        fake,
        receiver,
        &nodes,
        &db,
        &mut coverage,
        &mut injected,
    )
    .await;
    let failed = failover::run(
        o,
        base,
        fake,
        receiver,
        &db,
        &mut nodes,
        &mut coverage,
        &mut injected,
    )
    .await;
    nodes.stop().await;
    summary(o, sled, &rate, &failed);
}

/// How many accounts each node owns, by the database.
async fn print_spread(db: &Database, nodes: &Nodes) {
    let mut spread = Vec::new();
    for node in nodes.live() {
        spread.push(format!("{} {}", node.id, db.owned_by(&node.id).await));
    }
    println!("  accounts per node (database): {}", spread.join(", "));
}

/// Latency and CPU at `o.rate` new mails a second, as in the embedded
/// store's section; CPU is the nodes' plus the database server's.
#[allow(clippy::too_many_arguments)]
async fn rate_phase(
    o: &Options,
    base: usize,
    fake: &mut Fake,
    receiver: &Receiver,
    nodes: &Nodes,
    db: &Database,
    coverage: &mut Coverage,
    injected: &mut Injected,
) -> ClusterRate {
    let n = o.accounts;
    // Idle: leases, rounds, published states and the push poll.
    let (idle_nodes0, idle_db0) = (sum(nodes.cpu_times()), sum(db.cpu_times()));
    let idle_started = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_secs = idle_started.elapsed().as_secs_f64();
    let idle_nodes = (sum(nodes.cpu_times()) - idle_nodes0) / idle_secs;
    let idle_db = (sum(db.cpu_times()) - idle_db0) / idle_secs;

    let hist0 = nodes.latency_histogram().await;
    let pushes0 = nodes.pushes_sent().await;
    let activity0 = db.activity().await;
    let (nodes0, db0) = (nodes.cpu_times(), db.cpu_times());
    let phase_started = Instant::now();
    let mails = inject(fake, injected, base, n, o.rate, o.seconds).await;
    let mut tally = Tally::default();
    let expected = per_account(&mails);
    wait_pushed(
        receiver,
        &mut tally,
        coverage,
        &expected,
        Duration::from_secs(120),
    )
    .await;
    let (nodes1, db1) = (nodes.cpu_times(), db.cpu_times());
    let phase = phase_started.elapsed().as_secs_f64();
    let pushes = (nodes.pushes_sent().await - pushes0).max(1) as f64;
    // The statistics views lag by up to a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let work = db.activity().await.per(&activity0, pushes);
    let hist = nodes.latency_histogram().await.minus(&hist0);
    let mut e2e: Vec<f64> = mails
        .iter()
        .filter_map(|m| Some(coverage.first(m)?.saturating_sub(injected.at_us[m]) as f64 / 1000.0))
        .collect();
    e2e.sort_by(|a, b| a.total_cmp(b));
    let (missed, dup, repeated) = tally.check(&expected);
    println!(
        "{} mails at {}/s over {n} accounts: {missed} missed, {dup} duplicated ({repeated} listed UIDs repeated)",
        mails.len(),
        o.rate
    );
    let (p50, p99) = (hist.quantile(0.5) * 1000.0, hist.quantile(0.99) * 1000.0);
    println!(
        "LATENCY gateway-internal (EXISTS read → push service answered; the nodes' /metrics histograms added up): \
         p50 {p50:.1} ms, p99 {p99:.1} ms; fake→receiver ({} mails): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        e2e.len(),
        quantile(&e2e, 0.5),
        quantile(&e2e, 0.99),
        e2e.last().copied().unwrap_or(f64::NAN),
    );
    let nodes_cpu = sum(nodes1) - sum(nodes0);
    let db_cpu = sum(db1) - sum(db0);
    let per = |cpu: f64| cpu / pushes * 1e6;
    let cpu = nodes_cpu + db_cpu;
    let less_idle = (cpu - (idle_nodes + idle_db) * phase).max(0.0);
    println!(
        "CPU: {cpu:.2} s for {pushes} pushes = {:.0} ms per 1000 notifications, counting the database server \
         (the sum of the postgres processes' CPU from /proc): nodes {:.0} ms ({:.0}% system), database {:.0} ms ({:.0}% system)",
        per(cpu),
        per(nodes_cpu),
        100.0 * (nodes1.1 - nodes0.1) / nodes_cpu.max(f64::MIN_POSITIVE),
        per(db_cpu),
        100.0 * (db1.1 - db0.1) / db_cpu.max(f64::MIN_POSITIVE),
    );
    println!(
        "  the database's work per notification: {:.1} transactions committed (a statement outside BEGIN … COMMIT \
         counts as one), {:.1} rows written, {:.1} WAL records, {:.0} bytes of WAL, {:.2} WAL flushes to the disk \
         (fdatasync, {:.2} ms each on average)",
        work.commits,
        work.rows_written,
        work.wal_records,
        work.wal_bytes,
        work.wal_syncs,
        work.wal_sync_ms / work.wal_syncs.max(f64::MIN_POSITIVE)
    );
    println!(
        "  idle with {n} watching: nodes {:.0} ms/s, database {:.0} ms/s; less that idle rate over the {phase:.1} s phase: {:.0} ms per 1000",
        idle_nodes * 1000.0,
        idle_db * 1000.0,
        per(less_idle)
    );
    ClusterRate {
        figures: RateFigures {
            p50_ms: p50,
            p99_ms: p99,
            e2e_p50_ms: quantile(&e2e, 0.5),
            e2e_p99_ms: quantile(&e2e, 0.99),
            cpu_ms: per(cpu),
            cpu_less_idle_ms: per(less_idle),
        },
        nodes_ms: per(nodes_cpu),
        database_ms: per(db_cpu),
    }
}

fn sum((user, system): (f64, f64)) -> f64 {
    user + system
}

/// Takes the receiver's new arrivals into `tally` and `coverage`.
pub fn gather(receiver: &Receiver, tally: &mut Tally, coverage: &mut Coverage) {
    for arrival in receiver.take() {
        let opened = receiver.open(&arrival);
        coverage.add(&opened);
        tally.add(&opened);
    }
}

/// Waits until every account was pushed its mail (or `limit` passes).
async fn wait_pushed(
    receiver: &Receiver,
    tally: &mut Tally,
    coverage: &mut Coverage,
    expected: &HashMap<usize, u64>,
    limit: Duration,
) {
    let end = Instant::now() + limit;
    loop {
        gather(receiver, tally, coverage);
        if tally.covers(expected) || Instant::now() > end {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The cluster's figures beside the embedded store's, with the targets.
fn summary(o: &Options, sled: Option<&RateFigures>, rate: &ClusterRate, f: &FailoverFigures) {
    let c = &rate.figures;
    println!("\n== summary: embedded store (sled, one process) beside the cluster ({} nodes + PostgreSQL, fsync on) ==", o.cluster);
    if let Some(s) = sled {
        println!(
            "new mail → push, gateway-internal p50 / p99: sled {:.1} / {:.1} ms; cluster {:.1} / {:.1} ms",
            s.p50_ms, s.p99_ms, c.p50_ms, c.p99_ms
        );
        println!(
            "  fake→receiver p50 / p99: sled {:.1} / {:.1} ms; cluster {:.1} / {:.1} ms",
            s.e2e_p50_ms, s.e2e_p99_ms, c.e2e_p50_ms, c.e2e_p99_ms
        );
        let ratio = c.cpu_ms / s.cpu_ms;
        println!(
            "CPU per 1000 notifications: sled {:.0} ms; cluster {:.0} ms (nodes {:.0} + database {:.0}) = {ratio:.2}× sled \
             [target ≤ {CPU_TARGET_X_SLED}×: {}]; less idle: sled {:.0}, cluster {:.0} ms",
            s.cpu_ms,
            c.cpu_ms,
            rate.nodes_ms,
            rate.database_ms,
            verdict(ratio <= CPU_TARGET_X_SLED),
            s.cpu_less_idle_ms,
            c.cpu_less_idle_ms
        );
    } else {
        println!("(no embedded-store figures: run with --modes plain to set them beside)");
    }
    println!(
        "failover after kill -9: {} accounts watched again after {} [target ≤ {FAILOVER_TARGET_S} s: {}]; \
         {} of {} mails missed [target 0: {}]",
        f.accounts,
        f.back_s
            .map_or("NEVER (within the limit)".into(), |s| format!("{s:.1} s")),
        verdict(f.back_s.is_some_and(|s| s <= FAILOVER_TARGET_S)),
        f.repeats.missed,
        f.repeats.mails,
        verdict(f.repeats.missed == 0)
    );
    println!(
        "  repeated mail: {} as sent; after Topic collapse {} (phone online) / {} (phone offline until after the repeat)",
        f.repeats.as_sent, f.repeats.online, f.repeats.offline
    );
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}
