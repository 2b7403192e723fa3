//! Replies, forwards, Sent-copy settings, refused recipients, resumable
//! uploads, idempotency, bad input and deleting an account's send data,
//! against a real Dovecot relaying to a real SMTP sink; and the web app
//! in a real browser against the same (`web_app`).

use crate::support;

use std::io::Write;
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::gateway::{data_dir, Gateway};
use support::send::*;

#[path = "send/protobuf.rs"]
mod protobuf;
#[path = "send/web_app.rs"]
mod web_app;
#[path = "send/web_oauth.rs"]
mod web_oauth;
#[path = "send/web_oracle.rs"]
mod web_oracle;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_forwards_sent_copies_and_refused_recipients() {
    let (sink, dovecot) = mail_servers(None);
    let original_bytes = message_with_attachment(&bytes(5000, 3), "<orig@test.local>");
    let uid = dovecot.append(USER, PASS, "INBOX", &original_bytes);
    let (_dir, data) = data_dir();
    let gateway = Gateway::start(&data).await;
    let token = register(&gateway, &dovecot).await;

    // A reply that also forwards the original as message/rfc822.
    let status = send(
        &gateway,
        &token,
        "reply-1",
        &json!({
            "to": ["bob@test.local"],
            "subject": "Re: the report",
            "text": "Thanks!",
            "html": "<p>Thanks!</p>",
            // As a proto3 JSON writer spells it.
            "inReplyTo": {"mailbox": "INBOX", "uid": uid},
            "forward": {"mailbox": "INBOX", "uid": uid}
        }),
    )
    .await;
    assert_eq!(status["status"], "done", "{status}");
    let received = sink.wait_for(1, Duration::from_secs(30));
    let s = shape(&received[0].data);
    assert_eq!(s.in_reply_to.as_deref(), Some("orig@test.local"));
    assert_eq!(s.references, ["older@test.local", "orig@test.local"]);
    let parsed = mail_parser::MessageParser::default()
        .parse(&received[0].data)
        .unwrap();
    assert_eq!(parsed.body_html(0).unwrap().trim(), "<p>Thanks!</p>");
    let forwarded = parsed
        .attachments()
        .find_map(|a| a.message())
        .expect("message/rfc822 part");
    assert_eq!(forwarded.raw_message(), &original_bytes[..]);
    assert_eq!(mailbox(&dovecot, "Sent").len(), 1);

    // The provider files Sent copies itself: no APPEND.
    let (code, body) = put(&gateway, &token, &json!({"save_sent": false})).await;
    assert_eq!(code, 200, "{body}");
    let status = send(
        &gateway,
        &token,
        "no-copy",
        &json!({"to": ["bob@test.local"], "subject": "no copy", "text": "x"}),
    )
    .await;
    assert_eq!(status["status"], "done", "{status}");
    assert_eq!(status["path"], "assembled");
    assert!(status.get("sent").is_none());
    sink.wait_for(2, Duration::from_secs(30));
    assert_eq!(mailbox(&dovecot, "Sent").len(), 1);
    put(&gateway, &token, &json!({})).await;

    // A recipient the relay refuses: failed with its reply, no Sent copy left.
    sink.reject_recipient("nobody@test.local");
    let status = send(
        &gateway,
        &token,
        "refused",
        &json!({"to": ["bob@test.local", "nobody@test.local"], "subject": "x", "text": "x",
                "attachments": [{"ref": {"mailbox": "INBOX", "uid": uid, "part": "2"}}]}),
    )
    .await;
    assert_eq!(status["status"], "failed", "{status}");
    assert_eq!(status["error"]["code"], "recipient_rejected");
    let reply = status["error"]["smtp_reply"].as_str().unwrap();
    assert!(
        reply.starts_with("550") && reply.contains("nobody@test.local"),
        "{reply}"
    );
    assert!(status.get("sent").is_none(), "{status}");
    assert_eq!(
        mailbox(&dovecot, "Sent").len(),
        1,
        "a copy of the failed send stayed"
    );
    assert_eq!(sink.messages().len(), 2);
    gateway.stop().await;
}

async fn put(gateway: &Gateway, token: &str, body: &Value) -> (u16, Value) {
    let r = gateway
        .http
        .put(gateway.at("/v1/send/settings"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// Sends a PATCH whose body stops half-way, then closes the connection.
fn interrupted_patch(url: &str, token: &str, id: &str, total: usize, part: &[u8]) {
    let addr = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "PATCH /v1/uploads/{id} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nUpload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\nContent-Length: {total}\r\n\r\n"
    )
    .unwrap();
    stream.write_all(part).unwrap();
    stream.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop(stream);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumable_upload_and_idempotent_send() {
    let (sink, dovecot) = mail_servers(None);
    let (_dir, data) = data_dir();
    let gateway = Gateway::start(&data).await;
    let token = register(&gateway, &dovecot).await;
    let file = bytes(300_000, 5);

    // A tus client names the file and its type in Upload-Metadata.
    let r = gateway
        .http
        .post(gateway.at("/v1/uploads"))
        .bearer_auth(&token)
        .header("upload-length", file.len())
        .header(
            "upload-metadata",
            "filename ZG9jLnBkZg==,filetype YXBwbGljYXRpb24vcGRm",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let created: Value = r.json().await.unwrap();
    let id = created["upload_id"].as_str().unwrap().to_owned();
    assert_eq!(created["size"], 0);
    assert_eq!(created["sha256"], "", "no digest before the last byte");
    assert_eq!(
        (&created["filename"], &created["content_type"]),
        (&json!("doc.pdf"), &json!("application/pdf"))
    );

    let half = file.len() / 2;
    let (url, tok, id2, total, part) = (
        gateway.url.clone(),
        token.clone(),
        id.clone(),
        file.len(),
        file[..half].to_vec(),
    );
    tokio::task::spawn_blocking(move || interrupted_patch(&url, &tok, &id2, total, &part))
        .await
        .unwrap();
    let mut offset = 0;
    for _ in 0..200 {
        let r = gateway
            .http
            .head(gateway.at(&format!("/v1/uploads/{id}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        offset = r.headers()["upload-offset"]
            .to_str()
            .unwrap()
            .parse::<usize>()
            .unwrap();
        if offset == half {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(offset, half, "the interrupted half was not kept");

    // Sending with the incomplete upload is refused and changes nothing.
    let (code, body) = post_send(
        &gateway,
        &token,
        "early",
        &json!({"to": ["bob@test.local"], "attachments": [{"upload_id": id}]}),
    )
    .await;
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (422, Some("upload_incomplete")),
        "{body}"
    );

    // A PATCH at the wrong offset is refused; at the right one it completes.
    let r = gateway
        .http
        .patch(gateway.at(&format!("/v1/uploads/{id}")))
        .bearer_auth(&token)
        .header("upload-offset", 0)
        .body(file.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 409);
    let r = gateway
        .http
        .patch(gateway.at(&format!("/v1/uploads/{id}")))
        .bearer_auth(&token)
        .header("upload-offset", offset)
        .body(file[offset..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let done: Value = r.json().await.unwrap();
    let sha: String = Sha256::digest(&file)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(done["sha256"], sha);
    assert_eq!(done["size"], file.len());

    // The same Idempotency-Key twice (once while running): one message.
    // No filename in the request: the upload's own is used.
    let request = json!({"to": ["bob@test.local"], "subject": "once", "text": "x", "attachments": [{"upload_id": id}]});
    let (first, second) = tokio::join!(post_send(&gateway, &token, "same-key", &request), async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        post_send(&gateway, &token, "same-key", &request).await
    });
    assert!(first.0 == 200 || first.0 == 202, "{first:?}");
    assert!(second.0 == 200 || second.0 == 202, "{second:?}");
    assert_eq!(first.1["send_id"], second.1["send_id"]);
    let id = first.1["send_id"].as_str().unwrap();
    assert_eq!(wait_final(&gateway, &token, id).await["status"], "done");
    let (_, third) = post_send(&gateway, &token, "same-key", &request).await;
    assert_eq!(third["send_id"], id);
    let received = sink.wait_for(1, Duration::from_secs(30));
    let s = shape(&received[0].data);
    assert_eq!(s.parts[1].1.as_deref(), Some("doc.pdf"));
    assert!(s.parts[1].2 == file);
    // Give a duplicate the chance to show up before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.messages().len(), 1);
    assert_eq!(mailbox(&dovecot, "Sent").len(), 1);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_changes_nothing() {
    let (sink, dovecot) = mail_servers(None);
    let uid = dovecot.append(
        USER,
        PASS,
        "INBOX",
        &message_with_attachment(&bytes(100, 1), "<o@test.local>"),
    );
    let (_dir, data) = data_dir();
    let mut config = support::gateway::test_config(&data);
    config.send.max_upload_bytes = 10_000;
    config.send.upload_quota_bytes = 25_000;
    let gateway = Gateway::start_with(config).await;
    let token = register(&gateway, &dovecot).await;
    let ok = |extra: Value| {
        let mut v = json!({"to": ["bob@test.local"], "subject": "s", "text": "t"});
        for (k, val) in extra.as_object().unwrap() {
            v[k] = val.clone();
        }
        v
    };
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({"to": []}), 422, "no_recipients"),
        (
            ok(json!({"to": ["not an address"]})),
            422,
            "invalid_address",
        ),
        (
            ok(json!({"to": ["a@x\r\nRCPT TO:<evil@x>"]})),
            422,
            "invalid_address",
        ),
        (ok(json!({"bcc": ["<a@x>"]})), 422, "invalid_address"),
        (
            ok(json!({"subject": "a\r\nBcc: evil@x"})),
            422,
            "invalid_field",
        ),
        (
            ok(json!({"attachments": [{"upload_id": "0123456789abcdef0123456789abcdef"}]})),
            422,
            "unknown_upload",
        ),
        (
            ok(json!({"attachments": [{"upload_id": "../../etc/passwd"}]})),
            422,
            "unknown_upload",
        ),
        (
            ok(json!({"attachments": [{"ref": {"mailbox": "INBOX", "uid": 999, "part": "2"}}]})),
            422,
            "unknown_message",
        ),
        (
            ok(json!({"attachments": [{"ref": {"mailbox": "INBOX", "uid": uid, "part": "7"}}]})),
            422,
            "unknown_part",
        ),
        (
            ok(
                json!({"attachments": [{"ref": {"mailbox": "INBOX", "uid": uid, "part": "2.MIME"}}]}),
            ),
            422,
            "unknown_part",
        ),
        (
            ok(json!({"attachments": [{"ref": {"mailbox": "Nope", "uid": 1, "part": "1"}}]})),
            422,
            "unknown_mailbox",
        ),
        (
            ok(json!({"in_reply_to": {"mailbox": "INBOX", "uid": 4242}})),
            422,
            "unknown_message",
        ),
        (
            ok(json!({"forward": {"mailbox": "INBOX", "uid": 0}})),
            422,
            "unknown_message",
        ),
        (
            ok(json!({"attachments": [{"what": 1}]})),
            400,
            "invalid_body",
        ),
        (json!([1, 2]), 400, "invalid_body"),
        // A misspelt field would be ignored: it is refused, by name.
        (ok(json!({"subjet": "typo"})), 400, "invalid_body"),
        (
            ok(json!({"in_reply_to": {"mailbox": "INBOX", "uid": 1, "x": 1}})),
            400,
            "invalid_body",
        ),
    ];
    for (i, (body, status, code)) in cases.into_iter().enumerate() {
        let (got, answer) = post_send(&gateway, &token, &format!("bad-{i}"), &body).await;
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "case {i}: {body} → {answer}"
        );
        if body.get("subjet").is_some() {
            let message = answer["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains("subjet"), "{message}");
        }
    }
    // Malformed JSON, wrong type, bad header, no token.
    let r = gateway
        .http
        .post(gateway.at("/v1/send"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"to\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = gateway
        .http
        .post(gateway.at("/v1/send"))
        .bearer_auth(&token)
        .body("to=bob")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
    let r = gateway
        .http
        .post(gateway.at("/v1/send"))
        .bearer_auth(&token)
        .header("idempotency-key", "bad key")
        .json(&ok(json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = gateway
        .http
        .post(gateway.at("/v1/send"))
        .json(&ok(json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // Uploads: too large, unknown, PATCH without offset, quota.
    let r = gateway
        .http
        .post(gateway.at("/v1/uploads"))
        .bearer_auth(&token)
        .body(vec![0u8; 20_000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    let r = gateway
        .http
        .head(gateway.at("/v1/uploads/0123456789abcdef0123456789abcdef"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let r = gateway
        .http
        .patch(gateway.at("/v1/uploads/..%2F..%2Fdb"))
        .bearer_auth(&token)
        .header("upload-offset", 0)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let (code, _) = gateway
        .get("/v1/send/0123456789abcdef0123456789abcdef", Some(&token))
        .await;
    assert_eq!(code, 404);
    for _ in 0..2 {
        upload(
            &gateway,
            &token,
            &bytes(9_000, 2),
            "application/octet-stream",
        )
        .await;
    }
    let r = gateway
        .http
        .post(gateway.at("/v1/uploads"))
        .bearer_auth(&token)
        .body(vec![1u8; 9_000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 507);

    // Nothing was sent or stored.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sink.messages().is_empty());
    assert!(mailbox(&dovecot, "Sent").is_empty());
    let outbox = data.join("outbox");
    let leftovers = std::fs::read_dir(&outbox).map(|d| d.count()).unwrap_or(0);
    assert_eq!(leftovers, 0, "job directories left behind");
    gateway.stop().await;
}

/// A message over the submission server's SIZE is refused up front (413),
/// and nothing is stored or sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_over_the_size_limit_are_refused() {
    let sink = support::smtp_sink::SmtpSink::start();
    let dovecot = support::dovecot::Dovecot::builder()
        .relay_port(sink.port())
        .max_mail_size(20_000)
        .start();
    dovecot.add_user(USER, PASS);
    let uid = dovecot.append(
        USER,
        PASS,
        "INBOX",
        &message_with_attachment(&bytes(30_000, 6), "<big@test.local>"),
    );
    let (_dir, data) = data_dir();
    let gateway = Gateway::start(&data).await;
    let token = register(&gateway, &dovecot).await;
    let (code, body) = post_send(
        &gateway,
        &token,
        "big",
        &json!({"to": ["bob@test.local"], "forward": {"mailbox": "INBOX", "uid": uid}}),
    )
    .await;
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (413, Some("message_too_large")),
        "{body}"
    );
    let (code, body) = post_send(
        &gateway,
        &token,
        "small",
        &json!({"to": ["bob@test.local"], "text": "fits"}),
    )
    .await;
    assert!(code == 200 || code == 202, "{body}");
    assert_eq!(
        wait_final(&gateway, &token, body["send_id"].as_str().unwrap()).await["status"],
        "done"
    );
    assert_eq!(sink.wait_for(1, Duration::from_secs(30)).len(), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.messages().len(), 1);
    assert_eq!(mailbox(&dovecot, "Sent").len(), 1);
    gateway.stop().await;
}

/// Deleting the account deletes what the send path kept for it: uploads
/// (records and files), sends and their idempotency keys, and settings;
/// and its watcher has stopped, so its cursor is gone for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_account_deletes_its_uploads_and_sends() {
    use lemonade::store::{SendStore, SledStore, Store};

    let (_sink, dovecot) = mail_servers(None);
    let (_dir, data) = data_dir();
    let gateway = Gateway::start(&data).await;
    let token = register(&gateway, &dovecot).await;
    // Watching, so the account has a cursor, and a watcher to stop.
    gateway.wait_watching(&token, &["INBOX"]).await;
    let unused = upload(&gateway, &token, b"never sent", "text/plain").await;
    let attached = upload(&gateway, &token, &bytes(2_000, 9), "application/pdf").await;
    let request = json!({"to": ["bob@test.local"], "subject": "bye", "text": "x",
                         "attachments": [{"upload_id": attached, "filename": "doc.pdf"}]});
    let sent = send(&gateway, &token, "last-words", &request).await;
    assert_eq!(sent["status"], "done", "{sent}");
    let send_id = sent["send_id"].as_str().unwrap().to_owned();
    let upload_files = data.join("uploads");
    assert!(upload_files.join(&unused).exists());
    let (_, me) = gateway.get("/v1/accounts/me", Some(&token)).await;
    let account_id = me["account_id"].as_str().unwrap().to_owned();

    let (status, body) = gateway.delete("/v1/accounts/me", Some(&token)).await;
    assert_eq!(status, 204, "{body}");
    assert!(!upload_files.join(&unused).exists());
    assert!(!upload_files.join(&attached).exists());
    gateway.stop().await;

    let store = SledStore::open(&data.join("db")).unwrap();
    assert!(store.uploads().await.unwrap().is_empty());
    assert!(store.send_job(&send_id).await.unwrap().is_none());
    assert!(store
        .send_id_for_key(&account_id, "last-words")
        .await
        .unwrap()
        .is_none());
    assert!(store.cursor(&account_id, "INBOX").await.unwrap().is_none());
    assert!(store.account(&account_id).await.unwrap().is_none());
}
