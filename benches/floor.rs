//! The least CPU any gateway can spend per new-mail notification on this
//! machine, to set beside the load benchmark's measured CPU per notification.
//!
//! A notification needs at least:
//! - one RFC 8291 encryption, with a fresh P-256 key pair and one ECDH per
//!   message (RFC 8291 §3.1), measured with the gateway's `ece::encrypt`;
//! - one IMAP exchange (a `UID FETCH` out, its answer in) over loopback;
//! - one HTTP exchange (the push POST out, the push service's answer in).
//!
//! The exchanges are measured as bare blocking ping-pong on one loopback
//! connection: no parsing, no TLS, no event loop, no storage. The CPU counted
//! is the calling thread's user and system time, which on loopback includes
//! the kernel's delivery of each request to the peer (the same share the
//! gateway pays for its own writes). Anything real costs more than this.
//!
//! Prints microseconds (median of 5 rounds); asserts nothing.
//!
//! Run: `cargo bench --bench floor`

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use lemonade::notify::ece;

#[path = "common/cpu_time.rs"]
mod cpu_time;

const ROUNDS: usize = 5;
/// Exchanges per round: about 0.4 s of CPU, so the 10 ms tick of
/// `/proc/thread-self/stat` is under 3% of a round.
const EXCHANGES: u32 = 25_000;
/// Encryptions per round: about 0.8 s of CPU.
const ENCRYPTIONS: u32 = 10_000;
/// The budget, in microseconds per notification.
const BUDGET_US: f64 = 150.0;

/// Sizes of one exchange as the load benchmark sees them.
struct Exchange {
    name: &'static str,
    request: usize,
    answer: usize,
}

/// `a7 UID FETCH 4211 (UID BODY.PEEK[HEADER.FIELDS (...)] PREVIEW)` out, one
/// message's header fields and preview back.
const IMAP: Exchange = Exchange {
    name: "IMAP `UID FETCH` out, header fields and preview back",
    request: 110,
    answer: 420,
};
/// The push POST (headers with the VAPID JWT, about 0.5 KiB encrypted body)
/// out, `201 Created` back.
const HTTP: Exchange = Exchange {
    name: "HTTP push POST out (headers, VAPID, 0.5 KiB body), `201` back",
    request: 1_150,
    answer: 160,
};

/// User plus system CPU seconds of the calling thread.
fn thread_cpu() -> f64 {
    let (user, system) = cpu_time::user_and_system("/proc/thread-self/stat");
    user + system
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Median CPU microseconds of the calling side per exchange.
fn exchange_cpu(exchange: &Exchange) -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let address = listener.local_addr().expect("address");
    let total = EXCHANGES as usize * ROUNDS;
    let (request, answer) = (exchange.request, exchange.answer);
    let peer = std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().expect("accept");
        socket.set_nodelay(true).expect("nodelay");
        let mut incoming = vec![0u8; request];
        let outgoing = vec![b'a'; answer];
        for _ in 0..total {
            socket.read_exact(&mut incoming).expect("read request");
            socket.write_all(&outgoing).expect("write answer");
        }
    });
    let mut socket = TcpStream::connect(address).expect("connect");
    socket.set_nodelay(true).expect("nodelay");
    let outgoing = vec![b'r'; request];
    let mut incoming = vec![0u8; answer];
    let rounds = (0..ROUNDS)
        .map(|_| {
            let start = thread_cpu();
            for _ in 0..EXCHANGES {
                socket.write_all(&outgoing).expect("write request");
                socket.read_exact(&mut incoming).expect("read answer");
            }
            (thread_cpu() - start) * 1e6 / f64::from(EXCHANGES)
        })
        .collect();
    peer.join().expect("peer thread");
    median(rounds)
}

/// Median CPU microseconds per `ece::encrypt` of a `size`-byte payload.
fn encryption_cpu(size: usize) -> f64 {
    let rng = ring::rand::SystemRandom::new();
    let device = ring::agreement::EphemeralPrivateKey::generate(&ring::agreement::ECDH_P256, &rng)
        .expect("device key");
    let p256dh = device.compute_public_key().expect("public key");
    let auth = [7u8; 16];
    let payload = vec![b'x'; size];
    let rounds = (0..ROUNDS)
        .map(|_| {
            let start = thread_cpu();
            for _ in 0..ENCRYPTIONS {
                let body = ece::encrypt(p256dh.as_ref(), &auth, &payload).expect("encrypt");
                std::hint::black_box(body);
            }
            (thread_cpu() - start) * 1e6 / f64::from(ENCRYPTIONS)
        })
        .collect();
    median(rounds)
}

fn main() {
    let encryption = encryption_cpu(512);
    let imap = exchange_cpu(&IMAP);
    let http = exchange_cpu(&HTTP);
    let floor = encryption + imap + http;

    println!("CPU floor per new-mail notification, microseconds (median of {ROUNDS} rounds)");
    println!("| part | µs |");
    println!("| --- | ---: |");
    println!("| RFC 8291 encryption of a 0.5 KiB payload (ring) | {encryption:.1} |");
    println!(
        "| {} ({} B / {} B) | {imap:.1} |",
        IMAP.name, IMAP.request, IMAP.answer
    );
    println!(
        "| {} ({} B / {} B) | {http:.1} |",
        HTTP.name, HTTP.request, HTTP.answer
    );
    println!("| **floor** | **{floor:.1}** |");
    println!(
        "budget {BUDGET_US:.0} µs per notification: {:.1} µs ({:.0}% of it) left for parsing, \
         TLS, storage, the event loop and everything else",
        BUDGET_US - floor,
        100.0 * (BUDGET_US - floor) / BUDGET_US
    );
}
