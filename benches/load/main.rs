//! Load benchmark: ten thousand idle watched mailboxes on one box.
//!
//! Runs the release `lemonade` binary as its own process against the
//! load-test fake IMAP server (another process, see `fake_imap.rs`) on
//! several loopback addresses, with a Web Push receiver in this process,
//! and prints: memory per idle watched account (plain and TLS), time to
//! bring all accounts to watching and the peak of concurrent connects per
//! upstream host, new-mail→push latency at a given mail rate, CPU per
//! thousand notifications, the latency and CPU of telling devices about
//! mail read elsewhere, and a reconnect storm with exactly-once
//! accounting. With `--cluster K` it then runs the same accounts on K
//! gateway nodes sharing a private PostgreSQL (`cluster.rs`): latency and
//! CPU beside the embedded store's, and a `kill -9` of one node.
//! Everything lives in a temporary directory and every process started is
//! stopped at the end. Prints figures; asserts no times.
//!
//! ```text
//! cargo bench --bench load -- [--accounts 10000] [--rate 1000] [--seconds 10]
//!                             [--modes plain,tls] [--storm-rate 200] [--storm-seconds 5]
//!                             [--cluster 3] [--failover-rate 400] [--clear on|off]
//! ```

#[path = "../../tests/support/certs.rs"]
mod certs;
mod cluster;
mod coverage;
#[path = "../common/cpu_time.rs"]
mod cpu_time;
mod failover;
mod fake_imap;
mod gateway;
mod nodes;
#[path = "../../tests/support/postgres.rs"]
mod postgres;
mod reads;
mod receiver;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use gateway::{Api, Gateway};
use receiver::{now_us, Receiver, Tally};

/// Loopback addresses the fake listens on (one source/destination pair
/// holds at most ~28k connections).
const IPS: [&str; 8] = [
    "127.0.0.1",
    "127.0.0.2",
    "127.0.0.3",
    "127.0.0.4",
    "127.0.0.5",
    "127.0.0.6",
    "127.0.0.7",
    "127.0.0.8",
];

struct Options {
    accounts: usize,
    rate: usize,
    seconds: u64,
    modes: Vec<String>,
    storm_rate: usize,
    storm_seconds: u64,
    /// Gateway nodes of the cluster section (0: no cluster section).
    cluster: usize,
    /// New mails a second during the cluster's failover.
    failover_rate: usize,
    /// The devices' `clear` (`--clear on|off`; the preview tier's default, on).
    clear: Option<bool>,
}

impl Options {
    fn parse(args: &[String]) -> Options {
        let mut o = Options {
            accounts: 10_000,
            rate: 1000,
            seconds: 10,
            modes: vec!["plain".into(), "tls".into()],
            storm_rate: 200,
            storm_seconds: 5,
            cluster: 0,
            failover_rate: 400,
            clear: None,
        };
        let mut modes_given = false;
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = || it.next().cloned().unwrap_or_default();
            match arg.as_str() {
                "--accounts" => o.accounts = value().parse().expect("--accounts N"),
                "--rate" => o.rate = value().parse().expect("--rate N"),
                "--seconds" => o.seconds = value().parse().expect("--seconds N"),
                "--modes" => {
                    modes_given = true;
                    o.modes = value().split(',').map(str::to_string).collect();
                }
                "--storm-rate" => o.storm_rate = value().parse().expect("--storm-rate N"),
                "--storm-seconds" => o.storm_seconds = value().parse().expect("--storm-seconds N"),
                "--cluster" => o.cluster = value().parse().expect("--cluster NODES"),
                "--failover-rate" => o.failover_rate = value().parse().expect("--failover-rate N"),
                "--clear" => o.clear = Some(value() == "on"),
                _ => {} // `cargo bench` adds `--bench`.
            }
        }
        // Beside a cluster, the embedded store's figures are the plain ones.
        if o.cluster > 0 && !modes_given {
            o.modes = vec!["plain".into()];
        }
        o
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--load-test-fake-imap") {
        fake_imap::main(&args[1..]);
        return;
    }
    let options = Options::parse(&args);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let raised = rlimit::increase_nofile_limit(u64::MAX);
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).expect("getrlimit");
    println!("bench open-files limit: soft {soft}, hard {hard} (raise: {raised:?})");
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(bench(options));
}

/// The fake IMAP process and its control pipe.
struct Fake {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    plain: Vec<String>,
    tls: Vec<String>,
}

impl Fake {
    async fn start(dir: &Path, users: usize) -> Fake {
        let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
            .arg("--load-test-fake-imap")
            .arg(dir)
            .arg(users.to_string())
            .args(IPS)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the fake IMAP server");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready: serde_json::Value =
            serde_json::from_str(&stdout.next_line().await.unwrap().expect("fake ready")).unwrap();
        let list = |k: &str| -> Vec<String> {
            ready[k]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect()
        };
        Fake {
            plain: list("plain"),
            tls: list("tls"),
            child,
            stdin,
            stdout,
        }
    }

    async fn send(&mut self, lines: &str) {
        self.stdin.write_all(lines.as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    async fn ask(&mut self, line: &str) -> serde_json::Value {
        self.send(&format!("{line}\n")).await;
        let answer = self.stdout.next_line().await.unwrap().expect("fake answer");
        serde_json::from_str(&answer).unwrap()
    }

    async fn stop(mut self) {
        drop(self.stdin);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        let _ = self.child.kill().await;
    }
}

/// Mail the bench injected: per account, when each UID was announced.
#[derive(Default)]
struct Injected {
    counts: HashMap<usize, u32>,
    at_us: HashMap<(usize, u32), u64>,
}

impl Injected {
    fn add(&mut self, account: usize) -> u32 {
        let uid = self.counts.entry(account).or_default();
        *uid += 1;
        self.at_us.insert((account, *uid), now_us());
        *uid
    }
}

/// Injects `rate` mails a second for `seconds` over users `base..base+n`.
async fn inject(
    fake: &mut Fake,
    injected: &mut Injected,
    base: usize,
    n: usize,
    rate: usize,
    seconds: u64,
) -> Vec<(usize, u32)> {
    let mut list = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let total = rate * seconds as usize;
    let per_tick = rate / 100;
    let mut sent = 0;
    while sent < total {
        tick.tick().await;
        let mut lines = String::new();
        for _ in 0..per_tick.max(1).min(total - sent) {
            let account = base + rand::thread_rng().gen_range(0..n);
            let uid = injected.add(account);
            list.push((account, uid));
            lines.push_str(&format!("mail {account}\n"));
            sent += 1;
        }
        fake.send(&lines).await;
    }
    list
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

async fn bench(o: Options) {
    let tmp = tempfile::Builder::new()
        .prefix("lemonade-load-")
        .tempdir()
        .expect("temp dir");
    let certs = tmp.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    certs::make_certificates(&certs, "Lemonade Load Test CA");
    let sections = o.modes.len() + usize::from(o.cluster > 0);
    let users = o.accounts * sections;
    let mut fake = Fake::start(&certs, users).await;
    let receiver = Receiver::start().await;
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    println!(
        "machine: {cpus} CPUs ({cpu_model}), {}",
        gateway::mem_total()
    );
    println!(
        "N = {} accounts per mode, one device each, INBOX only; fake on {} addresses",
        o.accounts,
        IPS.len()
    );
    let mut sled = None;
    for (m, mode) in o.modes.iter().enumerate() {
        let base = m * o.accounts;
        let figures = run_mode(&o, mode, base, &mut fake, &receiver, tmp.path()).await;
        if mode == "plain" {
            sled = Some(figures);
        }
    }
    if o.cluster > 0 {
        let base = o.modes.len() * o.accounts;
        cluster::run(&o, base, &mut fake, &receiver, tmp.path(), sled.as_ref()).await;
    }
    fake.stop().await;
}

/// What the 1,000 mails/s phase measured, to set beside the cluster's.
pub struct RateFigures {
    /// The gateway's own histogram: EXISTS read → push service answered.
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// The fake's EXISTS → the receiver.
    pub e2e_p50_ms: f64,
    pub e2e_p99_ms: f64,
    /// CPU per 1,000 notifications, as measured and less the idle rate.
    pub cpu_ms: f64,
    pub cpu_less_idle_ms: f64,
}

async fn run_mode(
    o: &Options,
    mode: &str,
    base: usize,
    fake: &mut Fake,
    receiver: &Receiver,
    tmp: &Path,
) -> RateFigures {
    let n = o.accounts;
    let tls = mode == "tls";
    println!("\n== {mode} ==");
    let data = tmp.join(format!("gateway-{mode}"));
    let ca = tmp.join("certs/ca.pem");
    let gw = Gateway::start(&data, &ca).await;
    let limits = gw.open_files_limit();
    println!("gateway open-files limit: {limits} (each watched account holds one socket)");
    let rss0 = gw.rss();
    println!("gateway RSS with no account: {rss0}");

    // Register in two halves, to see the marginal cost as well.
    let addrs = if tls {
        fake.tls.clone()
    } else {
        fake.plain.clone()
    };
    let started = Instant::now();
    let half = n / 2;
    let apis = [gw.api().with_clear(o.clear)];
    register(&apis, receiver, &addrs, base, 0, half, tls).await;
    gw.wait_watching(half, Duration::from_secs(600)).await;
    let rss_half = gw.rss();
    register(&apis, receiver, &addrs, base, half, n, tls).await;
    gw.wait_watching(n, Duration::from_secs(600)).await;
    println!(
        "registered {n} accounts with a device each in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_n = gw.rss();
    println!("gateway RSS with {half} watching: {rss_half}; with {n}: {rss_n}");
    println!(
        "  per account after registration: {:.2} KiB (RSS), {:.2} KiB (anon); marginal {half}→{n}: {:.2} KiB (anon)",
        rss_n.per(&rss0, n).0,
        rss_n.per(&rss0, n).1,
        rss_n.per(&rss_half, n - half).1
    );

    // Restart: every account comes back from the store.
    gw.stop().await;
    let _ = fake.ask("reset").await;
    let started = Instant::now();
    let gw = Gateway::start(&data, &ca).await;
    gw.wait_watching(n, Duration::from_secs(600)).await;
    let to_watch = started.elapsed().as_secs_f64();
    let stats = fake.ask("stats").await;
    println!(
        "restart: {n} accounts watching {to_watch:.1} s after start; peak concurrent connects per host: {} (limit {})",
        stats["peak_connecting"],
        gateway::MAX_CONNECTS_PER_HOST
    );
    // Idle: what N watched accounts cost with no mail arriving.
    let idle_cpu0 = gw.cpu_seconds();
    let idle_started = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_rate = (gw.cpu_seconds() - idle_cpu0) / idle_started.elapsed().as_secs_f64();
    let rss_r = gw.rss();
    let (kib, anon) = rss_r.per(&rss0, n);
    println!("gateway RSS with {n} watching after restart: {rss_r}");
    println!("MEMORY per idle watched account ({mode}): {kib:.2} KiB RSS, {anon:.2} KiB anonymous");

    // Latency and CPU at `rate` new mails a second.
    let mut injected = Injected::default();
    let mut first: HashMap<(usize, u32), u64> = HashMap::new();
    let hist0 = gw.latency_histogram().await;
    let flushes0 = gw.flush_histogram().await;
    let (user0, system0) = gw.cpu_times();
    let cpu0 = user0 + system0;
    let phase_started = Instant::now();
    let pushes0 = gw.pushes_sent().await;
    let mails = inject(fake, &mut injected, base, n, o.rate, o.seconds).await;
    let mut tally = Tally::default();
    let expected = per_account(&mails);
    wait_delivered(
        receiver,
        &mut tally,
        &mut first,
        &expected,
        Duration::from_secs(120),
    )
    .await;
    let (user1, system1) = gw.cpu_times();
    let cpu = user1 + system1 - cpu0;
    let system = system1 - system0;
    let phase = phase_started.elapsed().as_secs_f64();
    let pushes = gw.pushes_sent().await - pushes0;
    let hist = gw.latency_histogram().await.minus(&hist0);
    let flushes = gw.flush_histogram().await.minus(&flushes0);
    let mut e2e: Vec<f64> = mails
        .iter()
        .filter_map(|k| Some((first.get(k)?.saturating_sub(injected.at_us[k])) as f64 / 1000.0))
        .collect();
    e2e.sort_by(|a, b| a.total_cmp(b));
    let (missed_l, dup_l, rep_l) = tally.check(&expected);
    println!(
        "{} mails at {}/s over {n} accounts: {missed_l} missed, {dup_l} duplicated ({rep_l} listed UIDs repeated)",
        mails.len(),
        o.rate,
    );
    println!(
        "LATENCY gateway-internal (EXISTS read → push service answered; /metrics histogram): p50 {:.1} ms, p99 {:.1} ms; \
         fake→receiver ({} listed mails): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        hist.quantile(0.5) * 1000.0,
        hist.quantile(0.99) * 1000.0,
        e2e.len(),
        quantile(&e2e, 0.5),
        quantile(&e2e, 0.99),
        e2e.last().copied().unwrap_or(f64::NAN),
    );
    println!(
        "  store flushes (watchers wait for them; pushes do not): {:.0}, p50 {:.1} ms, p99 {:.1} ms, slowest at most {:.0} ms",
        flushes.count(),
        flushes.quantile(0.5) * 1000.0,
        flushes.quantile(0.99) * 1000.0,
        flushes.slowest_bound() * 1000.0,
    );
    println!(
        "CPU: {cpu:.2} s for {pushes} pushes = {:.0} ms per 1000 notifications \
         (idle with {n} watching: {:.0} ms/s; less that idle rate over the {phase:.1} s phase: {:.0} ms per 1000)",
        cpu / pushes.max(1) as f64 * 1e6,
        idle_rate * 1000.0,
        (cpu - idle_rate * phase).max(0.0) / pushes.max(1) as f64 * 1e6
    );
    println!(
        "  of that CPU, {:.0}% in the kernel on the gateway's behalf (system time: sockets, wake-ups, fsync)",
        100.0 * system / cpu.max(f64::MIN_POSITIVE)
    );
    let figures = RateFigures {
        p50_ms: hist.quantile(0.5) * 1000.0,
        p99_ms: hist.quantile(0.99) * 1000.0,
        e2e_p50_ms: quantile(&e2e, 0.5),
        e2e_p99_ms: quantile(&e2e, 0.99),
        cpu_ms: cpu / pushes.max(1) as f64 * 1e6,
        cpu_less_idle_ms: (cpu - idle_rate * phase).max(0.0) / pushes.max(1) as f64 * 1e6,
    };

    // Mail read elsewhere on up to 1,000 of the accounts that got mail
    // (devices without `clear` are told nothing of it).
    if o.clear != Some(false) {
        let mut readers: Vec<usize> = expected.keys().copied().collect();
        readers.sort_unstable();
        readers.truncate(1000);
        reads::read_phase(fake, receiver, &gw, &readers, o.rate).await;
    }

    // Reconnect storm: every connection dropped, mail injected meanwhile.
    tokio::time::sleep(Duration::from_secs(1)).await;
    collect(receiver, &mut Tally::default(), &mut first);
    let _ = fake.ask("reset").await;
    let dropped = fake.ask("drop").await;
    let started = Instant::now();
    let storm_mails = inject(fake, &mut injected, base, n, o.storm_rate, o.storm_seconds).await;
    gw.wait_watching(n, Duration::from_secs(600)).await;
    let back = started.elapsed().as_secs_f64();
    let stats = fake.ask("stats").await;
    let mut tally = Tally::default();
    let expected = per_account(&storm_mails);
    wait_delivered(
        receiver,
        &mut tally,
        &mut first,
        &expected,
        Duration::from_secs(120),
    )
    .await;
    // Late duplicates would show up here.
    tokio::time::sleep(Duration::from_secs(3)).await;
    collect(receiver, &mut tally, &mut first);
    let (missed, dup, repeated) = tally.check(&expected);
    println!(
        "STORM: {} connections dropped; all {n} watching again after {back:.1} s (reconnects wait the 1 s minimum backoff first); \
         peak concurrent connects per host {} (limit {})",
        dropped["dropped"],
        stats["peak_connecting"],
        gateway::MAX_CONNECTS_PER_HOST
    );
    println!(
        "  {} mails injected from the drop on ({}/s for {} s): {missed} missed, {dup} duplicated ({repeated} listed UIDs repeated)",
        storm_mails.len(),
        o.storm_rate,
        o.storm_seconds,
    );
    gw.stop().await;
    figures
}

/// Decrypts every new arrival into the tally.
fn collect(receiver: &Receiver, tally: &mut Tally, first: &mut HashMap<(usize, u32), u64>) {
    for arrival in receiver.take() {
        let opened = receiver.open(&arrival);
        for uid in &opened.uids {
            first.entry((opened.account, *uid)).or_insert(opened.at_us);
        }
        tally.add(&opened);
    }
}

/// How many mails each account was sent.
fn per_account(list: &[(usize, u32)]) -> HashMap<usize, u64> {
    let mut out = HashMap::new();
    for (a, _) in list {
        *out.entry(*a).or_default() += 1;
    }
    out
}

/// Waits until every account was pushed its mail (or `limit` passes).
async fn wait_delivered(
    receiver: &Receiver,
    tally: &mut Tally,
    first: &mut HashMap<(usize, u32), u64>,
    expected: &HashMap<usize, u64>,
    limit: Duration,
) {
    let end = Instant::now() + limit;
    loop {
        collect(receiver, tally, first);
        if tally.covers(expected) || Instant::now() > end {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Registers users `base+from..base+to`, each through one of `apis` in
/// turn (any node of a cluster serves every account).
async fn register(
    apis: &[Api],
    receiver: &Receiver,
    addrs: &[String],
    base: usize,
    from: usize,
    to: usize,
    tls: bool,
) {
    let gate = Arc::new(Semaphore::new(32));
    let mut tasks = tokio::task::JoinSet::new();
    for i in from..to {
        let user = base + i;
        let addr = addrs[i % addrs.len()].clone();
        let (host, port) = addr.rsplit_once(':').unwrap();
        let (host, port) = (host.to_string(), port.parse::<u16>().unwrap());
        let api = apis[i % apis.len()].clone();
        let subscription = receiver.subscription(user);
        let permit = gate.clone().acquire_owned().await.unwrap();
        tasks.spawn(async move {
            api.register(user, &host, port, tls, subscription).await;
            drop(permit);
        });
        while let Some(done) = tasks.try_join_next() {
            done.expect("registration");
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("registration");
    }
}
