//! Shared steps of the send tests: a Dovecot whose submission service
//! relays to an [`SmtpSink`], an account registered with IMAP and SMTP,
//! uploads, sends, and reading messages back.

use std::time::Duration;

use serde_json::{json, Value};

use super::dovecot::{Dovecot, RawImap};
use super::gateway::Gateway;
use super::smtp_sink::SmtpSink;

pub const USER: &str = "alice";
pub const PASS: &str = "secret";

/// Dovecot's post-login capabilities without URLAUTH (so no burl path).
pub const CAPS_NO_URLAUTH: &str = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED CONDSTORE QRESYNC ESEARCH SEARCHRES LIST-STATUS BINARY MOVE LITERAL+ NOTIFY SPECIAL-USE";
/// … and without CATENATE either (the assembled path).
pub const CAPS_PLAIN: &str = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE MULTIAPPEND UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED CONDSTORE QRESYNC ESEARCH SEARCHRES LIST-STATUS BINARY MOVE LITERAL+ NOTIFY SPECIAL-USE";

/// A Dovecot relaying to a fresh sink, with user alice.
pub fn mail_servers(caps: Option<&str>) -> (SmtpSink, Dovecot) {
    let sink = SmtpSink::start();
    let mut builder = Dovecot::builder().relay_port(sink.port());
    if let Some(caps) = caps {
        builder = builder.imap_capability(caps);
    }
    let dovecot = builder.start();
    dovecot.add_user(USER, PASS);
    (sink, dovecot)
}

/// Registers alice with IMAP and submission; returns the token.
pub async fn register(gateway: &Gateway, dovecot: &Dovecot) -> String {
    let server = |port: u16| json!({"host": dovecot.host(), "port": port, "security": "plain", "username": USER, "password": PASS});
    let (status, body) = gateway
        .post(
            "/v1/accounts",
            None,
            &json!({"email": "alice@test.local", "imap": server(dovecot.imap_port()), "smtp": server(dovecot.submission_port())}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

/// How often alice has logged in to Dovecot so far: (IMAP, submission).
pub fn logins(dovecot: &Dovecot) -> (usize, usize) {
    let log = dovecot.log();
    let count = |service: &str| {
        let line = format!("{service}-login: Info: Login: user=<{USER}>");
        log.matches(line.as_str()).count()
    };
    (count("imap"), count("submission"))
}

/// Deterministic pseudo-random bytes.
pub fn bytes(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2654435761).max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// A message with a short text and one binary attachment, base64 in 76 columns.
pub fn message_with_attachment(attachment: &[u8], message_id: &str) -> Vec<u8> {
    use base64::Engine;
    let mut body = String::new();
    for chunk in attachment.chunks(57) {
        body.push_str(&base64::engine::general_purpose::STANDARD.encode(chunk));
        body.push_str("\r\n");
    }
    format!(
        "From: Bob <bob@test.local>\r\nTo: alice@test.local\r\nSubject: the report\r\nMessage-ID: {message_id}\r\nReferences: <older@test.local>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"orig\"\r\n\r\n--orig\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee attached.\r\n--orig\r\nContent-Type: application/octet-stream; name=\"report.bin\"\r\nContent-Disposition: attachment; filename=\"report.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{body}--orig--\r\n"
    )
    .into_bytes()
}

/// Uploads `data` in one request; returns the upload id.
pub async fn upload(gateway: &Gateway, token: &str, data: &[u8], content_type: &str) -> String {
    let response = gateway
        .http
        .post(gateway.at("/v1/uploads"))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(data.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["size"], data.len());
    body["upload_id"].as_str().unwrap().to_owned()
}

/// POSTs a send and returns (status, body).
pub async fn post_send(gateway: &Gateway, token: &str, key: &str, body: &Value) -> (u16, Value) {
    let response = gateway
        .http
        .post(gateway.at("/v1/send"))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Waits until the send is final (fails instead of hanging).
pub async fn wait_final(gateway: &Gateway, token: &str, send_id: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..1200 {
        let (status, body) = gateway
            .get(&format!("/v1/send/{send_id}"), Some(token))
            .await;
        assert_eq!(status, 200, "{body}");
        if body["status"] == "done" || body["status"] == "failed" {
            return body;
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("send never finished: {last}");
}

/// Sends and waits for the final status.
pub async fn send(gateway: &Gateway, token: &str, key: &str, body: &Value) -> Value {
    let (status, answer) = post_send(gateway, token, key, body).await;
    assert!(status == 200 || status == 202, "{status} {answer}");
    wait_final(gateway, token, answer["send_id"].as_str().unwrap()).await
}

/// Every message in one of alice's mailboxes.
pub fn mailbox(dovecot: &Dovecot, name: &str) -> Vec<Vec<u8>> {
    let mut imap = RawImap::login(dovecot.imap_port(), USER, PASS);
    let all = imap.fetch_all(name);
    imap.logout();
    all
}

/// What must be the same whatever the path: headers that matter, and each
/// part's type, name and decoded bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct Shape {
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    pub parts: Vec<(String, Option<String>, Vec<u8>)>,
}

pub fn shape(raw: &[u8]) -> Shape {
    use mail_parser::{MessageParser, MimeHeaders};
    let m = MessageParser::default().parse(raw).expect("parses");
    let addrs = |a: Option<&mail_parser::Address>| -> Vec<String> {
        a.map(|a| {
            a.iter()
                .filter_map(|x| x.address().map(String::from))
                .collect()
        })
        .unwrap_or_default()
    };
    let parts = m
        .parts
        .iter()
        .filter(|p| !p.is_multipart())
        .map(|p| {
            let ct = p
                .content_type()
                .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")))
                .unwrap_or_default();
            (
                ct,
                p.attachment_name().map(String::from),
                p.contents().to_vec(),
            )
        })
        .collect();
    let refs = match m.references() {
        mail_parser::HeaderValue::Text(t) => vec![t.to_string()],
        mail_parser::HeaderValue::TextList(l) => l.iter().map(|t| t.to_string()).collect(),
        _ => Vec::new(),
    };
    Shape {
        from: addrs(m.from()).join(","),
        to: addrs(m.to()),
        subject: m.subject().unwrap_or("").to_owned(),
        in_reply_to: m.in_reply_to().as_text().map(String::from),
        references: refs,
        parts,
    }
}
