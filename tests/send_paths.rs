//! The three send paths against a real Dovecot (IMAP + submission) relaying
//! to a real SMTP sink run by the test: burl when CATENATE, URLAUTH and
//! `BURL imap` work; catenate with URLAUTH hidden; assembled with CATENATE
//! hidden too. All three must produce the same message.

use crate::support;

use std::time::Duration;

use serde_json::json;
use support::gateway::{data_dir, Gateway};
use support::send::*;

const ATTACHMENT: usize = 200 * 1024;

/// Runs the same send (text, an uploaded file, a forwarded 200 KiB part)
/// with the given capabilities; returns (final status, sink bytes, Sent copies, originals).
async fn run(caps: Option<&str>) -> (serde_json::Value, Vec<u8>, Vec<Vec<u8>>, Vec<u8>, Vec<u8>) {
    let (sink, dovecot) = mail_servers(caps);
    let original = bytes(ATTACHMENT, 7);
    let uid = dovecot.append(
        USER,
        PASS,
        "INBOX",
        &message_with_attachment(&original, "<orig@test.local>"),
    );
    let (_dir, data) = data_dir();
    let gateway = Gateway::start(&data).await;
    let token = register(&gateway, &dovecot).await;
    // The watcher's login is done before logins are counted.
    gateway.wait_watching(&token, &["INBOX"]).await;
    let small = bytes(3000, 11);
    let upload_id = upload(&gateway, &token, &small, "image/png").await;
    let logins_before = logins(&dovecot);
    let status = send(
        &gateway,
        &token,
        "k1",
        &json!({
            "to": ["bob@test.local"],
            "cc": ["carol@test.local"],
            "bcc": ["dave@test.local"],
            "subject": "Fwd: the report — übersicht",
            "text": "Here it is.\n.\nBye",
            "attachments": [
                {"upload_id": upload_id, "filename": "photo.png"},
                {"ref": {"mailbox": "INBOX", "uid": uid, "part": "2"}}
            ]
        }),
    )
    .await;
    assert_eq!(status["status"], "done", "{status}\n{}", dovecot.log());
    // One IMAP and one SMTP login per send: the outbox carries on with the
    // sessions that looked at the request.
    let (imap, submission) = logins(&dovecot);
    assert_eq!(
        (imap - logins_before.0, submission - logins_before.1),
        (1, 1),
        "{}",
        dovecot.log()
    );
    let received = sink.wait_for(1, Duration::from_secs(30));
    assert_eq!(received.len(), 1);
    let mut rcpts = received[0].rcpt_to.clone();
    rcpts.sort();
    assert_eq!(
        rcpts,
        ["bob@test.local", "carol@test.local", "dave@test.local"]
    );
    assert_eq!(received[0].mail_from, "alice@test.local");
    let sent = mailbox(&dovecot, "Sent");
    gateway.stop().await;
    (status, received[0].data.clone(), sent, original, small)
}

fn check_message(raw: &[u8], original: &[u8], small: &[u8]) -> Shape {
    let s = shape(raw);
    assert_eq!(s.from, "alice@test.local");
    assert_eq!(s.to, ["bob@test.local"]);
    assert_eq!(s.subject, "Fwd: the report — übersicht");
    assert!(
        !String::from_utf8_lossy(raw).contains("dave@"),
        "Bcc leaked into the message"
    );
    assert_eq!(
        s.parts.len(),
        3,
        "{:?}",
        s.parts.iter().map(|p| (&p.0, &p.1)).collect::<Vec<_>>()
    );
    assert_eq!(s.parts[0].2, b"Here it is.\r\n.\r\nBye\r\n");
    assert_eq!(s.parts[1].0, "image/png");
    assert_eq!(s.parts[1].1.as_deref(), Some("photo.png"));
    assert_eq!(s.parts[1].2, small);
    assert_eq!(s.parts[2].1.as_deref(), Some("report.bin"));
    assert!(
        s.parts[2].2 == original,
        "forwarded attachment bytes differ"
    );
    s
}

/// Burl: the Sent copy is built by CATENATE, the submission server fetches
/// it by BURL; the forwarded part crosses neither link through the gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burl_path_forwards_without_carrying_the_attachment() {
    let (status, at_sink, sent, original, small) = run(None).await;
    assert_eq!(status["path"], "burl", "{status}");
    assert_eq!(sent.len(), 1);
    // The relay gets the Sent copy, with Dovecot's Received: header in front.
    assert!(at_sink.ends_with(&sent[0]), "sink and Sent differ");
    check_message(&sent[0], &original, &small);
    let to_imap = status["bytes"]["to_imap"].as_u64().unwrap();
    assert!(to_imap < 20 * 1024, "to_imap {to_imap}");
    assert!(to_imap > 0);
    assert!(status["bytes"]["to_smtp"].as_u64().unwrap() < 2 * 1024);
    assert_eq!(status["bytes"]["from_imap"], 0);
    assert_eq!(status["sent"]["mailbox"], "Sent");
}

/// Catenate (URLAUTH hidden) and assembled (CATENATE hidden too) give the
/// same message as burl: same headers that matter, same parts, same bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catenate_and_assembled_paths_give_the_same_message() {
    let (burl, burl_sink, _, original, small) = run(None).await;
    assert_eq!(burl["path"], "burl");
    let reference = check_message(&burl_sink, &original, &small);

    let (cat, cat_sink, cat_sent, _, _) = run(Some(CAPS_NO_URLAUTH)).await;
    assert_eq!(cat["path"], "catenate", "{cat}");
    assert_eq!(cat_sent.len(), 1);
    assert!(cat_sink.ends_with(&cat_sent[0]));
    assert_eq!(check_message(&cat_sink, &original, &small), reference);
    assert!(cat["bytes"]["to_imap"].as_u64().unwrap() < 20 * 1024);

    let (asm, asm_sink, asm_sent, _, _) = run(Some(CAPS_PLAIN)).await;
    assert_eq!(asm["path"], "assembled", "{asm}");
    assert_eq!(asm_sent.len(), 1);
    assert_eq!(check_message(&asm_sink, &original, &small), reference);
    assert_eq!(shape(&asm_sent[0]), reference);
    assert!(asm["bytes"]["from_imap"].as_u64().unwrap() > ATTACHMENT as u64);
}

/// Advertisements are not trusted: without `mail_attribute_dict` Dovecot
/// cannot authorize URLs, yet the capability list (set here to include
/// URLAUTH) and EHLO say it can. The burl attempt fails and the send
/// finishes on the catenate path, with one message at the sink and in Sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_urlauth_falls_back_to_catenate() {
    let sink = support::smtp_sink::SmtpSink::start();
    let dovecot = support::dovecot::Dovecot::builder()
        .relay_port(sink.port())
        .without_attribute_dict()
        .imap_capability(&format!("{CAPS_NO_URLAUTH} URLAUTH"))
        .start();
    dovecot.add_user(USER, PASS);
    let original = bytes(20_000, 4);
    let uid = dovecot.append(
        USER,
        PASS,
        "INBOX",
        &message_with_attachment(&original, "<u@test.local>"),
    );
    let (_dir, data) = data_dir();
    let gateway = Gateway::start(&data).await;
    let token = register(&gateway, &dovecot).await;
    let body = json!({"to": ["bob@test.local"], "subject": "fallback", "text": "x",
                      "attachments": [{"ref": {"mailbox": "INBOX", "uid": uid, "part": "2"}}]});
    let first = send(&gateway, &token, "f1", &body).await;
    assert_eq!(first["status"], "done", "{first}");
    assert_eq!(first["path"], "catenate", "{first}");
    let received = sink.wait_for(1, Duration::from_secs(30));
    assert!(shape(&received[0].data).parts[1].2 == original);
    assert_eq!(mailbox(&dovecot, "Sent").len(), 1);
    // The account is remembered: the next send plans catenate at once.
    let second = send(&gateway, &token, "f2", &body).await;
    assert_eq!(second["path"], "catenate");
    assert_eq!(sink.wait_for(2, Duration::from_secs(30)).len(), 2);
    assert_eq!(mailbox(&dovecot, "Sent").len(), 2);
    gateway.stop().await;
}
