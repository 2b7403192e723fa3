//! Hostile accounts beside well-behaved ones: what one bad account costs
//! everyone else.
//!
//! Runs the release `lemonade` binary as its own process, with well-behaved
//! accounts on the load benchmark's fake IMAP server (another process, see
//! `load/fake_imap.rs`) and hostile accounts on the scripted hostile server
//! of the tests (`tests/support/hostile_imap.rs`, in this process, each
//! mode on its own loopback address). First a phase with the well-behaved
//! accounts alone, then one phase per hostile mode: its accounts are
//! registered while their server behaves, then it turns hostile for the
//! phase (list-flood accounts also ask `GET /v1/mailboxes` every two
//! seconds), and they are deleted after it. Meanwhile new mail reaches
//! the well-behaved accounts at a steady rate. Per phase it prints the
//! gateway's peak RSS, the growth of its data directory (peak, and after
//! the hostile accounts were deleted) and the well-behaved accounts'
//! new-mail→push latency, p50 and p99. Prints figures; asserts nothing.
//!
//! ```text
//! cargo bench --bench hostile -- [--accounts 1000] [--hostile 10] [--seconds 30]
//!                                [--rate 20] [--scale 1.0] [--modes huge_fetch,max_uid,…]
//! ```
//! `--scale` multiplies the hostile sizes (copies of the 1 MiB-subject
//! FETCH, SEARCH and LIST bytes, the BYE's size, unasked UIDs), which are
//! by default those of the issue that reported them.

#[path = "../tests/support/certs.rs"]
mod certs;
#[path = "common/cpu_time.rs"]
#[allow(dead_code)]
mod cpu_time;
#[path = "load/fake_imap.rs"]
mod fake_imap;
#[path = "load/gateway.rs"]
#[allow(dead_code)]
mod gateway;
#[path = "../tests/support/hostile_imap.rs"]
#[allow(dead_code)]
mod hostile_imap;
#[path = "load/receiver.rs"]
#[allow(dead_code)]
mod receiver;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin};
use tokio::time::Instant;

use gateway::Gateway;
use hostile_imap::{HostileImap, Mode};
use receiver::{now_us, Receiver};

/// Where the fake of the well-behaved accounts listens.
const FAKE_IPS: [&str; 4] = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"];
/// Push receiver account numbers of hostile devices start here.
const HOSTILE_BASE: usize = 1_000_000;

struct Options {
    accounts: usize,
    hostile: usize,
    seconds: u64,
    rate: usize,
    scale: f64,
    modes: Vec<String>,
}

impl Options {
    fn parse(args: &[String]) -> Options {
        let mut o = Options {
            accounts: 1000,
            hostile: 10,
            seconds: 30,
            rate: 20,
            scale: 1.0,
            modes: Mode::all_hostile()
                .iter()
                .map(|m| m.name().to_string())
                .collect(),
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = || it.next().cloned().unwrap_or_default();
            match arg.as_str() {
                "--accounts" => o.accounts = value().parse().expect("--accounts N"),
                "--hostile" => o.hostile = value().parse().expect("--hostile N"),
                "--seconds" => o.seconds = value().parse().expect("--seconds N"),
                "--rate" => o.rate = value().parse().expect("--rate N"),
                "--scale" => o.scale = value().parse().expect("--scale F"),
                "--modes" => o.modes = value().split(',').map(str::to_string).collect(),
                _ => {} // `cargo bench` adds `--bench`.
            }
        }
        o
    }
}

/// `mode` with its sizes multiplied by `scale` (at least one of each).
fn scaled(mode: Mode, scale: f64) -> Mode {
    let s = |n: usize| ((n as f64 * scale) as usize).max(1);
    match mode {
        Mode::HugeFetch {
            copies,
            subject_bytes,
        } => Mode::HugeFetch {
            copies: s(copies),
            subject_bytes,
        },
        Mode::SearchFlood { bytes } => Mode::SearchFlood { bytes: s(bytes) },
        Mode::ListFlood { bytes } => Mode::ListFlood { bytes: s(bytes) },
        Mode::HugeBye { bytes } => Mode::HugeBye { bytes: s(bytes) },
        Mode::UnaskedUids { count } => Mode::UnaskedUids {
            count: s(count as usize) as u32,
        },
        other => other,
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
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(bench(options));
}

/// The fake IMAP process of the well-behaved accounts and its control pipe.
struct Fake {
    child: Child,
    stdin: ChildStdin,
    plain: Vec<String>,
}

impl Fake {
    async fn start(dir: &Path, users: usize) -> Fake {
        let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
            .arg("--load-test-fake-imap")
            .arg(dir)
            .arg(users.to_string())
            .args(FAKE_IPS)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the fake IMAP server");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready: serde_json::Value =
            serde_json::from_str(&stdout.next_line().await.unwrap().expect("fake ready")).unwrap();
        let plain = ready["plain"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        // Its later answers (none asked here) are left unread.
        tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
        Fake {
            child,
            stdin,
            plain,
        }
    }

    async fn send(&mut self, lines: &str) {
        self.stdin.write_all(lines.as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    async fn stop(mut self) {
        drop(self.stdin);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        let _ = self.child.kill().await;
    }
}

/// Bytes of the files under `dir`.
fn disk_usage(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_usage(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// A hostile account: its API token.
struct HostileAccount {
    token: String,
}

/// The gateway's HTTP API, as a hostile account's owner uses it.
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn register(
        &self,
        host: &str,
        port: u16,
        user: &str,
        device: serde_json::Value,
    ) -> String {
        let body = serde_json::json!({
            "email": format!("{user}@hostile.example.org"),
            "imap": {"host": host, "port": port, "security": "plain",
                     "username": user, "password": "hostile"}
        });
        let r = self
            .http
            .post(format!("{}/v1/accounts", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let answer: serde_json::Value = r.json().await.unwrap();
        assert_eq!(status.as_u16(), 201, "registering {user}: {answer}");
        let token = answer["token"].as_str().unwrap().to_string();
        let r = self
            .http
            .post(format!("{}/v1/devices", self.base))
            .bearer_auth(&token)
            .json(&serde_json::json!({"subscription": device, "mailboxes": ["INBOX"], "payload": "preview"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201, "device of {user}");
        token
    }

    async fn state(&self, token: &str) -> String {
        let r = self
            .http
            .get(format!("{}/v1/accounts/me", self.base))
            .bearer_auth(token)
            .send()
            .await;
        match r {
            Ok(r) => r.json::<serde_json::Value>().await.map_or_else(
                |_| String::new(),
                |v| v["watch"]["state"].as_str().unwrap_or("").to_string(),
            ),
            Err(_) => String::new(),
        }
    }

    async fn mailboxes(&self, token: &str) -> u16 {
        let r = self
            .http
            .get(format!("{}/v1/mailboxes", self.base))
            .bearer_auth(token)
            .send()
            .await;
        match r {
            Ok(r) => {
                let status = r.status().as_u16();
                let _ = r.bytes().await;
                status
            }
            Err(_) => 0,
        }
    }

    async fn delete(&self, token: &str) {
        let _ = self
            .http
            .delete(format!("{}/v1/accounts/me", self.base))
            .bearer_auth(token)
            .send()
            .await;
    }
}

/// What one phase measured.
struct Phase {
    name: String,
    peak_rss_mib: f64,
    disk_peak_mib: f64,
    disk_after_mib: f64,
    mails: usize,
    delivered: usize,
    p50_ms: f64,
    p99_ms: f64,
    note: String,
}

async fn bench(o: Options) {
    let tmp = tempfile::Builder::new()
        .prefix("lemonade-hostile-")
        .tempdir()
        .expect("temp dir");
    let certs = tmp.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    certs::make_certificates(&certs, "Lemonade Hostile Bench CA");
    let mut fake = Fake::start(&certs, o.accounts).await;
    let receiver = Receiver::start().await;
    let data = tmp.path().join("gateway");
    let gw = Gateway::start(&data, &certs.join("ca.pem")).await;
    let client = Client {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap(),
        base: gw.api().base().to_string(),
    };
    println!(
        "{} well-behaved accounts (preview devices), {} hostile accounts per mode, {} s per phase, {} new mails/s, sizes ×{}",
        o.accounts, o.hostile, o.seconds, o.rate, o.scale
    );
    let started = Instant::now();
    let api = gw.api();
    for i in 0..o.accounts {
        let addr = &fake.plain[i % fake.plain.len()];
        let (host, port) = addr.rsplit_once(':').unwrap();
        api.register(
            i,
            host,
            port.parse().unwrap(),
            false,
            receiver.subscription(i),
        )
        .await;
    }
    gw.wait_watching(o.accounts, Duration::from_secs(600)).await;
    println!(
        "registered {} well-behaved accounts in {:.1} s; gateway RSS {}",
        o.accounts,
        started.elapsed().as_secs_f64(),
        gw.rss()
    );

    // Mail sent to each well-behaved account so far (the fake numbers it from 1).
    let mut counts = HashMap::new();
    let mut phases = vec![
        run_phase(
            &o,
            &gw,
            &client,
            &mut fake,
            &mut counts,
            &receiver,
            &data,
            None,
            0,
        )
        .await,
    ];
    for (k, mode) in Mode::all_hostile().into_iter().enumerate() {
        if !o.modes.iter().any(|m| m == mode.name()) {
            continue;
        }
        let mode = scaled(mode, o.scale);
        let phase = run_phase(
            &o,
            &gw,
            &client,
            &mut fake,
            &mut counts,
            &receiver,
            &data,
            Some(mode),
            k,
        )
        .await;
        phases.push(phase);
    }

    println!(
        "\n{:<18} {:>14} {:>15} {:>16} {:>12} {:>9} {:>9}",
        "phase", "peak RSS MiB", "disk peak +MiB", "disk after +MiB", "pushed", "p50 ms", "p99 ms"
    );
    for p in &phases {
        println!(
            "{:<18} {:>14.1} {:>15.1} {:>16.1} {:>12} {:>9.1} {:>9.1}",
            p.name,
            p.peak_rss_mib,
            p.disk_peak_mib,
            p.disk_after_mib,
            format!("{}/{}", p.delivered, p.mails),
            p.p50_ms,
            p.p99_ms
        );
    }
    for p in &phases {
        if !p.note.is_empty() {
            println!("{}: {}", p.name, p.note);
        }
    }
    gw.stop().await;
    fake.stop().await;
}

/// One phase: `mode`'s hostile accounts (none for the baseline) beside the
/// well-behaved ones for `o.seconds`, new mail to the well-behaved ones.
#[allow(clippy::too_many_arguments)]
async fn run_phase(
    o: &Options,
    gw: &Gateway,
    client: &Client,
    fake: &mut Fake,
    counts: &mut HashMap<usize, u32>,
    receiver: &Receiver,
    data: &Path,
    mode: Option<Mode>,
    k: usize,
) -> Phase {
    let name = mode.as_ref().map_or("baseline", Mode::name).to_string();
    println!("\n== {name} ==");
    let disk0 = disk_usage(data);
    let mut hostile = Vec::new();
    let mut server = None;
    if let Some(mode) = &mode {
        let imap = HostileImap::start_on(&format!("127.0.0.{}", 10 + k), Mode::WellBehaved).await;
        for i in 0..o.hostile {
            let device = receiver.subscription(HOSTILE_BASE + k * 1000 + i);
            let token = client
                .register(&imap.host(), imap.port(), &format!("h{k}-{i}"), device)
                .await;
            hostile.push(HostileAccount { token });
        }
        for account in &hostile {
            let end = Instant::now() + Duration::from_secs(60);
            while client.state(&account.token).await != "watching" && Instant::now() < end {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        imap.set_mode(mode.clone());
        imap.drop_connections();
        server = Some(imap);
    }

    // Peak RSS and disk, sampled at every injected mail and while waiting.
    let stop = Arc::new(AtomicBool::new(false));
    let mut peak_kib = 0u64;
    let mut disk_peak = disk0;
    let mut samples = 0u64;
    let mut sample = |peak_kib: &mut u64, disk_peak: &mut u64| {
        *peak_kib = (*peak_kib).max(gw.rss().total_kib);
        if samples % 10 == 0 {
            *disk_peak = (*disk_peak).max(disk_usage(data));
        }
        samples += 1;
    };
    // List-flood accounts ask for their mailboxes every two seconds.
    let lister = (mode.as_ref().map(Mode::name) == Some("list_flood")).then(|| {
        let tokens: Vec<String> = hostile.iter().map(|a| a.token.clone()).collect();
        let (client, stop) = (client.clone(), stop.clone());
        tokio::spawn(async move {
            let mut answers: HashMap<u16, u64> = HashMap::new();
            while !stop.load(Ordering::Relaxed) {
                let mut tasks = tokio::task::JoinSet::new();
                for token in &tokens {
                    let (client, token) = (client.clone(), token.clone());
                    tasks.spawn(async move { client.mailboxes(&token).await });
                }
                while let Some(Ok(status)) = tasks.join_next().await {
                    *answers.entry(status).or_default() += 1;
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            answers
        })
    });

    // New mail to random well-behaved accounts at `rate` a second.
    drop(receiver.take());
    let mut injected: HashMap<(usize, u32), u64> = HashMap::new();
    let total = o.rate * o.seconds as usize;
    let mut tick = tokio::time::interval(Duration::from_secs(1) / o.rate.max(1) as u32);
    for _ in 0..total {
        tick.tick().await;
        let account = rand::thread_rng().gen_range(0..o.accounts);
        // The fake numbers each user's mail from 1.
        let uid = counts.entry(account).or_default();
        *uid += 1;
        injected.insert((account, *uid), now_us());
        fake.send(&format!("mail {account}\n")).await;
        sample(&mut peak_kib, &mut disk_peak);
    }
    // Let the last mails through (at most 30 s).
    let mut first: HashMap<(usize, u32), u64> = HashMap::new();
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        for arrival in receiver.take() {
            if arrival.account >= HOSTILE_BASE {
                continue;
            }
            let opened = receiver.open(&arrival);
            for uid in opened.uids {
                first.entry((opened.account, uid)).or_insert(opened.at_us);
            }
        }
        if injected.keys().all(|k| first.contains_key(k)) || Instant::now() > end {
            break;
        }
        sample(&mut peak_kib, &mut disk_peak);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut note = String::new();
    if let Some(lister) = lister {
        if let Ok(answers) = lister.await {
            note.push_str(&format!("GET /v1/mailboxes answers {answers:?}; "));
        }
    }
    if let Some(imap) = &server {
        let seen = imap.seen();
        note.push_str(&format!(
            "the hostile server saw {} connections, {} logins, {} looks (UID FETCH/SEARCH), {} IDLEs, sent {:.1} MiB",
            seen.connections,
            seen.logins,
            seen.checks(),
            seen.count("IDLE"),
            mib(seen.bytes_sent)
        ));
    }
    for account in &hostile {
        client.delete(&account.token).await;
    }
    drop(server);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let disk_after = disk_usage(data);

    let mut latencies: Vec<f64> = injected
        .iter()
        .filter_map(|(k, at)| Some(first.get(k)?.saturating_sub(*at) as f64 / 1000.0))
        .collect();
    latencies.sort_by(|a, b| a.total_cmp(b));
    let phase = Phase {
        name,
        peak_rss_mib: peak_kib as f64 / 1024.0,
        disk_peak_mib: mib(disk_peak.saturating_sub(disk0)),
        disk_after_mib: mib(disk_after.saturating_sub(disk0)),
        mails: injected.len(),
        delivered: latencies.len(),
        p50_ms: quantile(&latencies, 0.5),
        p99_ms: quantile(&latencies, 0.99),
        note,
    };
    println!(
        "peak RSS {:.1} MiB; data directory +{:.1} MiB at peak, +{:.1} MiB after deleting; {}/{} mails pushed, p50 {:.1} ms, p99 {:.1} ms",
        phase.peak_rss_mib,
        phase.disk_peak_mib,
        phase.disk_after_mib,
        phase.delivered,
        phase.mails,
        phase.p50_ms,
        phase.p99_ms
    );
    if !phase.note.is_empty() {
        println!("{}", phase.note);
    }
    phase
}
