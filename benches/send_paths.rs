//! Forwarding a 1 MiB attachment with 1 KiB of new text, on each send path
//! and by a naive client, against a real Dovecot (IMAP + submission)
//! relaying to a real SMTP sink on loopback. Prints, per path: bytes from
//! the phone, bytes gateway→IMAP, bytes IMAP→gateway, bytes gateway→SMTP,
//! and the median wall time of a send.
//!
//! Run: `cargo bench --bench send_paths` (needs root and Dovecot, like the tests).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use lemonade::imap::{AppendPart, ImapClient};
use lemonade::net::{TlsConnector, Upstream};
use lemonade::smtp::SmtpClient;
use lemonade::store::Security;
use serde_json::json;
use support::dovecot::Dovecot;
use support::gateway::{data_dir, Gateway};
use support::send::*;
use support::smtp_sink::SmtpSink;

const ATTACHMENT: usize = 1024 * 1024;
const RUNS: usize = 5;

struct Row {
    name: &'static str,
    from_client: u64,
    to_client: u64,
    to_imap: u64,
    from_imap: u64,
    to_smtp: u64,
    millis: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

async fn gateway_path(name: &'static str, caps: Option<&str>) -> Row {
    let (sink, dovecot) = mail_servers(caps);
    let uid = dovecot.append(
        USER,
        PASS,
        "INBOX",
        &message_with_attachment(&bytes(ATTACHMENT, 1), "<b@test.local>"),
    );
    let (_dir, data) = data_dir();
    let gateway = Gateway::start(&data).await;
    let token = register(&gateway, &dovecot).await;
    let text = "x".repeat(1024);
    let mut times = Vec::new();
    let mut last = serde_json::Value::Null;
    for run in 0..RUNS {
        let body = json!({"to": ["bob@test.local"], "subject": "Fwd: report", "text": text,
                          "attachments": [{"ref": {"mailbox": "INBOX", "uid": uid, "part": "2"}}]});
        let started = tokio::time::Instant::now();
        last = send(&gateway, &token, &format!("bench-{run}"), &body).await;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(last["status"], "done", "{last}");
        assert_eq!(last["path"], name, "{last}");
    }
    sink.wait_for(RUNS, Duration::from_secs(60));
    gateway.stop().await;
    let b = &last["bytes"];
    Row {
        name,
        from_client: b["from_client"].as_u64().unwrap_or(0),
        to_client: 0,
        to_imap: b["to_imap"].as_u64().unwrap_or(0),
        from_imap: b["from_imap"].as_u64().unwrap_or(0),
        to_smtp: b["to_smtp"].as_u64().unwrap_or(0),
        millis: median(times),
    }
}

/// A client without the gateway: downloads the attachment, builds the
/// message, submits it by DATA and APPENDs it to Sent (all over loopback).
async fn naive(dovecot: &Dovecot, uid: u32) -> (u64, u64, u64) {
    let tls = TlsConnector::new(None).unwrap();
    let imap_up = Upstream {
        host: "127.0.0.1".into(),
        port: dovecot.imap_port(),
        security: Security::Plain,
    };
    let mut imap = ImapClient::connect(&imap_up, &tls, Duration::from_secs(30))
        .await
        .unwrap();
    imap.login(USER, PASS).await.unwrap();
    imap.examine("INBOX").await.unwrap();
    let mime = imap
        .fetch_section_chunk(uid, "2.MIME", 0, 1 << 20)
        .await
        .unwrap();
    let mut part = Vec::new();
    loop {
        let chunk = imap
            .fetch_section_chunk(uid, "2", part.len() as u64, 1 << 20)
            .await
            .unwrap();
        let done = chunk.len() < 1 << 20;
        part.extend(chunk);
        if done {
            break;
        }
    }
    let downloaded = (mime.len() + part.len()) as u64;
    let mut message = format!(
        "From: alice@test.local\r\nTo: bob@test.local\r\nSubject: Fwd: report\r\nMessage-ID: <naive-{}@test.local>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"n\"\r\n\r\n--n\r\nContent-Type: text/plain\r\n\r\n{}\r\n--n\r\n",
        rand_id(),
        "x".repeat(1024)
    )
    .into_bytes();
    message.extend_from_slice(&mime);
    message.extend_from_slice(&part);
    message.extend_from_slice(b"\r\n--n--\r\n");
    let smtp_up = Upstream {
        host: "127.0.0.1".into(),
        port: dovecot.submission_port(),
        security: Security::Plain,
    };
    let mut smtp = SmtpClient::connect(&smtp_up, &tls, Duration::from_secs(30), "naive")
        .await
        .unwrap();
    smtp.auth(USER, PASS).await.unwrap();
    smtp.mail_from("alice@test.local", Some(message.len() as u64))
        .await
        .unwrap();
    smtp.rcpt_to("bob@test.local").await.unwrap();
    smtp.send_message(&mut &message[..], message.len() as u64)
        .await
        .unwrap();
    let to_smtp = smtp.written;
    smtp.quit().await;
    let (_, to_imap) = imap
        .append_parts("Sent", "\\Seen", vec![AppendPart::bytes(message)])
        .await
        .unwrap();
    imap.logout().await;
    (downloaded, to_imap, to_smtp)
}

fn rand_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

async fn naive_row() -> Row {
    let sink = SmtpSink::start();
    let dovecot = Dovecot::builder().relay_port(sink.port()).start();
    dovecot.add_user(USER, PASS);
    let uid = dovecot.append(
        USER,
        PASS,
        "INBOX",
        &message_with_attachment(&bytes(ATTACHMENT, 1), "<b@test.local>"),
    );
    let mut times = Vec::new();
    let mut counts = (0, 0, 0);
    for _ in 0..RUNS {
        let started = tokio::time::Instant::now();
        counts = naive(&dovecot, uid).await;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    sink.wait_for(RUNS, Duration::from_secs(60));
    let (downloaded, to_imap, to_smtp) = counts;
    Row {
        name: "naive client",
        // The phone itself talks to IMAP and SMTP: everything crosses its link.
        from_client: to_imap + to_smtp,
        to_client: downloaded,
        to_imap,
        from_imap: downloaded,
        to_smtp,
        millis: median(times),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rows = vec![
        gateway_path("burl", None).await,
        gateway_path("catenate", Some(CAPS_NO_URLAUTH)).await,
        gateway_path("assembled", Some(CAPS_PLAIN)).await,
        naive_row().await,
    ];
    println!(
        "forward a 1 MiB attachment with 1 KiB of new text (median of {RUNS} sends, loopback)"
    );
    println!(
        "| path | phone → up | down → phone | gateway → IMAP | IMAP → gateway | gateway → SMTP | wall time |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {:.0} ms |",
            r.name, r.from_client, r.to_client, r.to_imap, r.from_imap, r.to_smtp, r.millis
        );
    }
}
