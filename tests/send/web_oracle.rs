//! The browser tests' window on the servers: a loopback JSON service the
//! script in `tests/web/` asks what Dovecot holds, what the SMTP sink
//! received, to deliver new mail, and for a real push plaintext (mail
//! appended, the gateway's push to a test-held device decrypted).
//!
//! - `GET /mailbox/{name}`: `{"messages": [{"uid", "subject", "flags"}]}`
//! - `POST /append/{name}?subject=&from=`: `{"uid"}`
//! - `POST /push?subject=`: `{"plaintext"}` of the push that carried it
//! - `POST /read?uid=`: marks INBOX's message read (another client's
//!   `\Seen`) and answers the `{"plaintext"}` of the `read` push about it
//! - `GET /smtp`: `{"messages": [{"mail_from", "rcpt_to", "data"}]}`
//! - `GET /pixel?wait=N`: `{"connections"}` the remote-image server has
//!   taken (waiting, at most 30 s, until there are N)
//! - `GET /devices`: the test's device id, and the account's devices as
//!   `GET /v1/devices` lists them (`{"device_id", "devices"}`)

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::support::dovecot::Dovecot;
use crate::support::push::TestDevice;
use crate::support::raw_imap::RawImap;
use crate::support::send::{PASS, USER};
use crate::support::smtp_sink::SmtpSink;

/// What the oracle reaches.
#[derive(Clone)]
pub struct Oracle {
    pub dovecot: Arc<Dovecot>,
    pub sink: SmtpSink,
    pub device: Arc<TestDevice>,
    /// The test device's id, and the gateway and token it was registered with.
    pub device_id: String,
    pub gateway: String,
    pub token: String,
    pub pixel: Pixel,
}

/// A loopback port standing in for a remote image's server: it counts the
/// connections the browser opens and closes them (so the image fails).
#[derive(Clone)]
pub struct Pixel {
    pub port: u16,
    connections: tokio::sync::watch::Receiver<usize>,
}

impl Pixel {
    pub async fn start() -> Pixel {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, connections) = tokio::sync::watch::channel(0);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                drop(tcp);
                tx.send_modify(|n| *n += 1);
            }
        });
        Pixel { port, connections }
    }
}

/// Serves the oracle on a loopback port; returns its URL.
pub async fn start(oracle: Oracle) -> String {
    let router = Router::new()
        .route("/mailbox/{name}", get(mailbox))
        .route("/append/{name}", post(append))
        .route("/push", post(push))
        .route("/read", post(read))
        .route("/smtp", get(smtp))
        .route("/devices", get(devices))
        .route("/pixel", get(pixel))
        .with_state(oracle);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    url
}

/// A plain text message.
pub fn text_message(from: &str, subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: Alice <alice@test.local>\r\nSubject: {subject}\r\nDate: Mon, 07 Dec 2026 10:00:00 +0000\r\nMessage-ID: <{}@test.local>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n",
        rand::random::<u64>()
    )
    .into_bytes()
}

/// Subjects and flags of a mailbox's messages, in UID order.
fn contents(dovecot: &Dovecot, name: &str) -> Value {
    let mut imap = RawImap::login(dovecot.imap_port(), USER, PASS);
    let raw = imap.fetch_all(name);
    let lines = imap.lines_of("UID FETCH 1:* (UID FLAGS)");
    imap.logout();
    let flags: Vec<(u64, Vec<String>)> = lines.iter().filter_map(|l| uid_and_flags(l)).collect();
    let messages: Vec<Value> = raw
        .iter()
        .zip(flags)
        .map(|(raw, (uid, flags))| {
            let parsed = mail_parser::MessageParser::default().parse(raw);
            let subject = parsed
                .as_ref()
                .and_then(|m| m.subject())
                .unwrap_or("")
                .to_string();
            json!({"uid": uid, "subject": subject, "flags": flags})
        })
        .collect();
    json!({ "messages": messages })
}

/// `* 3 FETCH (UID 7 FLAGS (\Seen \Flagged))` → (7, ["\\Seen", "\\Flagged"]).
fn uid_and_flags(line: &str) -> Option<(u64, Vec<String>)> {
    let uid = line
        .split("UID ")
        .nth(1)?
        .split([' ', ')'])
        .next()?
        .parse()
        .ok()?;
    let flags = line.split("FLAGS (").nth(1)?.split(')').next()?;
    Some((uid, flags.split_whitespace().map(String::from).collect()))
}

async fn mailbox(State(o): State<Oracle>, Path(name): Path<String>) -> Json<Value> {
    let answer = tokio::task::spawn_blocking(move || contents(&o.dovecot, &name));
    Json(answer.await.unwrap())
}

async fn append(
    State(o): State<Oracle>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    let subject = q.get("subject").cloned().unwrap_or_default();
    let from = q
        .get("from")
        .cloned()
        .unwrap_or_else(|| "Carol <carol@test.local>".into());
    let raw = text_message(&from, &subject, "Delivered while the app was away.");
    let uid = tokio::task::spawn_blocking(move || o.dovecot.append(USER, PASS, &name, &raw));
    Json(json!({ "uid": uid.await.unwrap() }))
}

/// Appends a message to INBOX and answers the plaintext of the push that
/// carried it to the test device.
async fn push(State(o): State<Oracle>, Query(q): Query<HashMap<String, String>>) -> Json<Value> {
    let subject = q.get("subject").cloned().unwrap_or_default();
    let raw = text_message(
        "Dana Sender <dana@test.local>",
        &subject,
        "Are we still on for lunch tomorrow? I booked the table at noon.",
    );
    let dovecot = o.dovecot.clone();
    tokio::task::spawn_blocking(move || dovecot.append(USER, PASS, "INBOX", &raw))
        .await
        .unwrap();
    loop {
        let pushed = o.device.next_push(Duration::from_secs(60)).await;
        let carries = pushed.payload["messages"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["subject"] == subject.as_str()));
        if carries {
            let plaintext = String::from_utf8(pushed.plaintext).unwrap();
            return Json(json!({ "plaintext": plaintext }));
        }
    }
}

/// Marks a message of INBOX read from another IMAP client and answers the
/// plaintext of the `read` push that told the test device.
async fn read(State(o): State<Oracle>, Query(q): Query<HashMap<String, u32>>) -> Json<Value> {
    let uid = q.get("uid").copied().unwrap_or_default();
    let dovecot = o.dovecot.clone();
    tokio::task::spawn_blocking(move || {
        let mut imap = RawImap::login(dovecot.imap_port(), USER, PASS);
        imap.command("SELECT INBOX");
        imap.command(&format!("UID STORE {uid} +FLAGS (\\Seen)"));
        imap.logout();
    })
    .await
    .unwrap();
    loop {
        let pushed = o.device.next_push(Duration::from_secs(60)).await;
        let names = pushed.payload["type"] == "read"
            && pushed.payload["uids"]
                .as_array()
                .is_some_and(|u| u.iter().any(|u| *u == uid));
        if names {
            let plaintext = String::from_utf8(pushed.plaintext).unwrap();
            return Json(json!({ "plaintext": plaintext }));
        }
    }
}

async fn smtp(State(o): State<Oracle>) -> Json<Value> {
    let messages: Vec<Value> = o
        .sink
        .messages()
        .into_iter()
        .map(|m| {
            json!({
                "mail_from": m.mail_from,
                "rcpt_to": m.rcpt_to,
                "data": String::from_utf8_lossy(&m.data),
            })
        })
        .collect();
    Json(json!({ "messages": messages }))
}

async fn devices(State(o): State<Oracle>) -> Json<Value> {
    let listed: Value = reqwest::Client::new()
        .get(format!("{}/v1/devices", o.gateway))
        .bearer_auth(&o.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    Json(json!({"device_id": o.device_id, "devices": listed["devices"]}))
}

async fn pixel(State(o): State<Oracle>, Query(q): Query<HashMap<String, usize>>) -> Json<Value> {
    let wanted = q.get("wait").copied().unwrap_or(0);
    let mut connections = o.pixel.connections.clone();
    let waited = connections.wait_for(|n| *n >= wanted);
    let _ = tokio::time::timeout(Duration::from_secs(30), waited).await;
    let now = *connections.borrow();
    Json(json!({ "connections": now }))
}
