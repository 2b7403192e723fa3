//! Pushes per second and CPU per 1,000 pushes for each transport (Web
//! Push, APNs, FCM), through the gateway's own `Transports` against the
//! local impersonations the tests use: a Web Push receiver over HTTPS with
//! HTTP/2, and the APNs and FCM fakes (HTTP/2 over TLS). Each sends 3,000
//! pushes with a `headers`-sized plaintext, 64 at a time, to devices with
//! keys (so each is an RFC 8291 encryption). The receivers run in the same
//! process: the CPU figure is both sides together (the fakes verify a JWT
//! and parse JSON per request, a push service's share).
//!
//! Run: `cargo bench --bench push_transports`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lemonade::config::Config;
use lemonade::notify::{
    apns_endpoint, fcm_endpoint, ApnsEnvironment, PushClient, PushClientConfig, PushOutcome,
    PushSender, Transports, Urgency, VapidKey, VapidSigner,
};
use lemonade::store::PushSubscription;
use support::certs::make_certificates;
use support::native_push::{FakeApns, FakeFcm};
use support::push::{PushReceiver, TestDevice};
use tokio::time::Instant;

const PUSHES: usize = 3000;
const AT_ONCE: usize = 64;

/// CPU time of this process so far (user + system), from /proc.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let after_name = &stat[stat.rfind(')').expect("stat") + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}

async fn run(name: &str, sender: &Transports, device: &PushSubscription, plaintext: &[u8]) {
    let cpu = cpu_time();
    let start = Instant::now();
    let delivered = futures_util::stream::iter(0..PUSHES)
        .map(|_| sender.send_push(device, plaintext, 3600, Urgency::Normal, "bench"))
        .buffer_unordered(AT_ONCE)
        .filter(|o| std::future::ready(*o == PushOutcome::Delivered))
        .count()
        .await;
    let wall = start.elapsed();
    let cpu = cpu_time() - cpu;
    assert_eq!(delivered, PUSHES, "{name}: not every push was delivered");
    println!(
        "{name:<8} {:>7.0} pushes/s   {:>6.1} ms CPU per 1,000 pushes",
        PUSHES as f64 / wall.as_secs_f64(),
        cpu.as_secs_f64() * 1000.0 / (PUSHES as f64 / 1000.0)
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(bench());
}

async fn bench() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certs = tempfile::tempdir().expect("dir");
    make_certificates(certs.path(), "127.0.0.1");
    let receiver = PushReceiver::start_tls(certs.path(), &[b"h2"]).await;
    let apns = FakeApns::start(certs.path()).await;
    let fcm = FakeFcm::start(certs.path()).await;

    let mut config = Config::default();
    config.push.allow_private_endpoints = true;
    config.push.extra_ca_file = Some(certs.path().join("ca.pem"));
    let (key_file, key_id, team_id) = apns.make_key(certs.path());
    config.push.apns.key_file = Some(key_file);
    config.push.apns.key_id = key_id;
    config.push.apns.team_id = team_id;
    config.push.apns.production_url = apns.base_url();
    config.push.fcm.service_account_file = Some(fcm.make_service_account(certs.path()));
    config.push.fcm.base_url = fcm.base_url();

    let vapid = VapidKey::generate_into(&certs.path().join("vapid.pem")).expect("VAPID key");
    let signer = VapidSigner::new(vapid, "mailto:bench@localhost");
    let web = PushClient::new(
        PushClientConfig {
            allow_private_endpoints: true,
            extra_ca_file: config.push.extra_ca_file.clone(),
            ..PushClientConfig::default()
        },
        Arc::new(signer.expect("signer")),
    )
    .expect("web push client");
    let transports = Transports::new(&config, Arc::new(web)).expect("transports");

    let device = TestDevice::new(&receiver).subscription();
    let native = |endpoint: String| PushSubscription {
        endpoint,
        ..device.clone()
    };
    let apns_device = native(
        apns_endpoint(
            ApnsEnvironment::Production,
            "com.example.mail",
            &"ab".repeat(32),
        )
        .expect("apns"),
    );
    let fcm_device = native(fcm_endpoint("bench-device").expect("fcm"));
    let plaintext = br#"{"v":1,"type":"mail","account_id":"0123456789abcdef","mailbox":"INBOX","count":1,"messages":[{"uid":42,"from":{"name":"Zoe","email":"zoe@example.org"},"subject":"A subject of ordinary length for a benchmark"}]}"#;

    println!("{PUSHES} pushes per transport, {AT_ONCE} at a time, HTTP/2 over TLS on loopback:");
    run("webpush", &transports, &device, plaintext).await;
    run("apns", &transports, &apns_device, plaintext).await;
    run("fcm", &transports, &fcm_device, plaintext).await;
    println!(
        "TLS connections opened: APNs {}, FCM {} (HTTP/2 multiplexes the rest)",
        apns.connections(),
        fcm.connections()
    );
}
