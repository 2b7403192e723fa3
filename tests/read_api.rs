//! The read API against a real Dovecot with real messages: listings,
//! previews, non-ASCII headers, MIME structure, body text, parts with
//! ranges, delta sync with QRESYNC (the fallbacks: `read_delta.rs`), an
//! invalidated state token, flags/move/delete, search, JSON and protobuf
//! answers carrying the same data, compression, and bad input.

use crate::support;

#[path = "read/search.rs"]
mod search;

use prost::Message;
use serde_json::json;
use support::dovecot::{Dovecot, RawImap};
use support::gateway::{data_dir, Gateway};
use support::samples;

use lemonade::proto::v1 as pb;
use support::read_client::{code, enc, get_both, get_raw, PROTOBUF};

/// A part larger than any single IMAP answer may be (32 MiB) is fetched and
/// sent in pieces: it downloads whole, and ranges of it too.
#[tokio::test]
async fn parts_larger_than_one_answer_download_in_pieces() {
    let dovecot = Dovecot::start();
    dovecot.add_user("alice", "secret");
    let attachment = samples::noise(34 * 1024 * 1024 + 5, 11);
    let uid = dovecot.append("alice", "secret", "INBOX", &samples::mixed(&attachment));
    let (_dir, path) = data_dir();
    let g = Gateway::start(&path).await;
    let (_, token) = g
        .register(dovecot.host(), dovecot.imap_port(), "alice", "secret")
        .await;
    let part_url = g.at(&format!("/v1/messages/INBOX/{uid}/parts/2"));
    let r = g
        .http
        .get(&part_url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.bytes().await.unwrap();
    assert_eq!(body.len(), attachment.len());
    assert!(body.as_ref() == attachment.as_slice());
    let r = g
        .http
        .get(&part_url)
        .bearer_auth(&token)
        .header("range", "bytes=33554000-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"],
        format!(
            "bytes 33554000-{}/{}",
            attachment.len() - 1,
            attachment.len()
        )
    );
    assert!(r.bytes().await.unwrap().as_ref() == &attachment[33_554_000..]);
}

#[tokio::test]
async fn read_api_against_dovecot() {
    let dovecot = Dovecot::start();
    dovecot.add_user("alice", "secret");
    let attachment = samples::noise(300 * 1024, 7);
    let latin1 = dovecot.append("alice", "secret", "INBOX", &samples::latin1());
    let alt = dovecot.append("alice", "secret", "INBOX", &samples::alternative());
    let mixed = dovecot.append("alice", "secret", "INBOX", &samples::mixed(&attachment));
    let broken = dovecot.append("alice", "secret", "INBOX", &samples::malformed());
    let news = dovecot.append("alice", "secret", "INBOX", &samples::newsletter(300 * 1024));
    let (_dir, path) = data_dir();
    let g = Gateway::start(&path).await;
    let (_, token) = g
        .register(dovecot.host(), dovecot.imap_port(), "alice", "secret")
        .await;

    // Mailboxes with roles and counts.
    let boxes: pb::ListMailboxesResponse = get_both(&g, "/v1/mailboxes", &token).await;
    let inbox = boxes.mailboxes.iter().find(|m| m.name == "INBOX").unwrap();
    assert_eq!(
        (inbox.role.as_str(), inbox.total, inbox.unseen),
        ("inbox", 5, 5)
    );
    assert!(!inbox.state.is_empty());
    assert!(boxes
        .mailboxes
        .iter()
        .any(|m| m.name == "Sent" && m.role == "sent"));
    assert!(boxes
        .mailboxes
        .iter()
        .any(|m| m.name == "Trash" && m.role == "trash"));

    // The listing: newest first, decoded headers, previews.
    let list: pb::ListMessagesResponse =
        get_both(&g, "/v1/mailboxes/INBOX/messages?limit=50", &token).await;
    let uids: Vec<u32> = list.messages.iter().map(|m| m.uid).collect();
    assert_eq!(uids, vec![news, broken, mixed, alt, latin1]);
    assert!(!list.more);
    let by_uid = |uid| list.messages.iter().find(|m| m.uid == uid).unwrap();
    let m = by_uid(latin1);
    assert_eq!(m.subject, "Grüße aus Köln");
    assert_eq!(m.from.as_ref().unwrap().name, "Jürgen Müller");
    assert!(m.preview.contains("Schöne Grüße"), "{}", m.preview);
    assert_eq!(m.message_id, "latin1@example.org");
    assert_eq!(m.date, "2024-01-01T09:00:00Z");
    // No Date header: the arrival time, written the same way.
    let d = &by_uid(broken).date;
    assert!(
        d.len() == 20 && d.starts_with("20") && d.ends_with('Z'),
        "{d}"
    );
    let m = by_uid(alt);
    assert_eq!(m.subject, "Re: Über den Plan");
    assert_eq!(m.in_reply_to, "latin1@example.org");
    assert_eq!(m.to.len(), 2);
    assert_eq!(m.cc[0].email, "carol@example.org");
    assert!(!m.has_attachments);
    assert!(by_uid(mixed).has_attachments);
    assert!(by_uid(mixed).size > 300 * 1024);
    assert!(by_uid(news).preview.chars().count() <= 200);
    // Paging.
    let page: pb::ListMessagesResponse = get_both(
        &g,
        &format!("/v1/mailboxes/INBOX/messages?limit=2&before_uid={mixed}"),
        &token,
    )
    .await;
    assert_eq!(
        page.messages.iter().map(|m| m.uid).collect::<Vec<_>>(),
        vec![alt, latin1]
    );
    assert!(!page.more);

    // Message bodies.
    let msg: pb::GetMessageResponse =
        get_both(&g, &format!("/v1/messages/INBOX/{latin1}"), &token).await;
    assert!(
        msg.text.contains("Schöne Grüße und einen schönen Tag!"),
        "{}",
        msg.text
    );
    assert_eq!(msg.date, "2024-01-01T09:00:00Z");
    assert!(!msg.text.contains('\r'), "{:?}", msg.text);
    let msg: pb::GetMessageResponse =
        get_both(&g, &format!("/v1/messages/INBOX/{alt}"), &token).await;
    assert_eq!(msg.text_part, "1");
    assert_eq!(msg.html_part, "2");
    assert!(msg.text.contains("ünïcödé ✓"));
    assert_eq!(msg.references, vec!["latin1@example.org"]);
    let msg: pb::GetMessageResponse =
        get_both(&g, &format!("/v1/messages/INBOX/{mixed}"), &token).await;
    let parts: Vec<(&str, &str)> = msg
        .parts
        .iter()
        .map(|p| (p.part.as_str(), p.r#type.as_str()))
        .collect();
    assert_eq!(
        parts,
        vec![
            ("", "multipart/mixed"),
            ("1", "text/plain"),
            ("2", "application/octet-stream"),
            ("3", "message/rfc822"),
            ("3.1", "text/plain")
        ]
    );
    assert_eq!(msg.parts[2].filename, "report.bin");
    assert_eq!(msg.parts[2].disposition, "attachment");
    assert!(msg.text.contains("See the attached report."));
    let msg: pb::GetMessageResponse = get_both(
        &g,
        &format!("/v1/messages/INBOX/{news}?max_bytes=4000"),
        &token,
    )
    .await;
    assert!(msg.from_html);
    assert!(msg.truncated);
    assert!(msg.text.len() <= 4000);
    assert!(
        msg.text.contains("Story 0: "),
        "{}",
        &msg.text[..200.min(msg.text.len())]
    );
    assert!(!msg.text.contains("<td"));
    // The malformed message answers, and the connection stays usable.
    let (status, _, body) = get_raw(
        &g,
        &format!("/v1/messages/INBOX/{broken}"),
        &token,
        "application/json",
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (status, _, _) = get_raw(
        &g,
        &format!("/v1/messages/INBOX/{broken}/parts/1"),
        &token,
        "*/*",
    )
    .await;
    assert!(status == 200 || status == 404, "{status}");

    // Parts: whole, ranges, and the nested message's text.
    let part_url = g.at(&format!("/v1/messages/INBOX/{mixed}/parts/2"));
    let r = g
        .http
        .get(&part_url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["accept-ranges"], "bytes");
    assert_eq!(
        r.headers()["content-disposition"],
        "attachment; filename=\"report.bin\"; filename*=UTF-8''report.bin"
    );
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(
        r.headers()["content-security-policy"],
        "sandbox; default-src 'none'"
    );
    assert_eq!(r.bytes().await.unwrap().as_ref(), attachment.as_slice());
    // An HTML part is served as a download that cannot run on the API's origin.
    let r = g
        .http
        .get(g.at(&format!("/v1/messages/INBOX/{alt}/parts/2")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert_eq!(r.headers()["content-disposition"], "attachment");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(
        r.headers()["content-security-policy"],
        "sandbox; default-src 'none'"
    );
    let r = g
        .http
        .get(&part_url)
        .bearer_auth(&token)
        .header("range", "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes 1000-1999/{}", attachment.len())
    );
    assert_eq!(r.bytes().await.unwrap().as_ref(), &attachment[1000..2000]);
    let r = g
        .http
        .get(&part_url)
        .bearer_auth(&token)
        .header("range", "bytes=-100")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.bytes().await.unwrap().as_ref(),
        &attachment[attachment.len() - 100..]
    );
    let r = g
        .http
        .get(&part_url)
        .bearer_auth(&token)
        .header("range", "bytes=999999999-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    let r = g
        .http
        .get(&part_url)
        .bearer_auth(&token)
        .header("range", "bytes=9-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = g
        .http
        .get(g.at(&format!("/v1/messages/INBOX/{mixed}/parts/3.1")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(String::from_utf8_lossy(&r.bytes().await.unwrap()).contains("Inner text."));

    // Delta sync across appends, flag changes and expunges by another client.
    let state = list.state.clone();
    let new1 = dovecot.append("alice", "secret", "INBOX", &samples::simple(1));
    let new2 = dovecot.append("alice", "secret", "INBOX", &samples::simple(2));
    let mut other = RawImap::login(dovecot.imap_port(), "alice", "secret");
    other.command("SELECT INBOX");
    other.command(&format!("UID STORE {alt} +FLAGS (\\Seen \\Flagged)"));
    other.command(&format!("UID STORE {broken} +FLAGS (\\Deleted)"));
    other.command("EXPUNGE");
    other.logout();
    let delta: pb::ChangesResponse = get_both(
        &g,
        &format!("/v1/mailboxes/INBOX/changes?since={}", enc(&state)),
        &token,
    )
    .await;
    assert_eq!(
        delta.added.iter().map(|m| m.uid).collect::<Vec<_>>(),
        vec![new2, new1]
    );
    assert!(delta.added[0].subject.starts_with("Message number 2: "));
    assert_eq!(delta.vanished, vec![broken]);
    let alt_flags = delta
        .flags
        .iter()
        .find(|f| f.uid == alt)
        .expect("flag change reported");
    assert!(alt_flags.flags.contains(&"\\Flagged".to_string()));
    assert!(delta.flags.iter().all(|f| f.uid != broken));
    // Nothing changed since the new state.
    let again: pb::ChangesResponse = get_both(
        &g,
        &format!("/v1/mailboxes/INBOX/changes?since={}", enc(&delta.state)),
        &token,
    )
    .await;
    assert!(
        again.added.is_empty() && again.flags.is_empty() && again.vanished.is_empty(),
        "{again:?}"
    );

    // Flags, search, move, delete through the API.
    let (status, body) = g
        .post(
            "/v1/messages/flags",
            Some(&token),
            &json!({"mailbox": "INBOX", "uids": [latin1, 999], "add": ["\\Flagged", "$Important"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["uids"], json!([latin1]));
    let found: pb::SearchResponse =
        get_both(&g, "/v1/search?mailbox=INBOX&flagged=true", &token).await;
    assert_eq!(found.uids, vec![alt, latin1]);
    let found: pb::SearchResponse =
        get_both(&g, &format!("/v1/search?subject={}", enc("Grüße")), &token).await;
    assert_eq!(found.uids, vec![latin1]);
    assert_eq!(found.messages[0].subject, "Grüße aus Köln");
    let found: pb::SearchResponse =
        get_both(&g, "/v1/search?from=sender2&since=2020-01-01", &token).await;
    assert_eq!(found.uids, vec![new2]);
    let after_flags: pb::ChangesResponse = get_both(
        &g,
        &format!("/v1/mailboxes/INBOX/changes?since={}", enc(&delta.state)),
        &token,
    )
    .await;
    assert_eq!(
        after_flags.flags.iter().map(|f| f.uid).collect::<Vec<_>>(),
        vec![latin1]
    );
    g.post(
        "/v1/messages/flags",
        Some(&token),
        &json!({"mailbox": "INBOX", "uids": [latin1], "remove": ["$Important"]}),
    )
    .await;
    dovecot.create_mailbox("alice", "secret", "Archive");
    let (status, body) = g
        .post(
            "/v1/messages/move",
            Some(&token),
            &json!({"mailbox": "INBOX", "uids": [new1], "destination": "Archive"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = g
        .post(
            "/v1/messages/move",
            Some(&token),
            &json!({"mailbox": "INBOX", "uids": [new2], "destination": "Nowhere"}),
        )
        .await;
    assert_eq!((status, code(&body)), (404, "mailbox_not_found"), "{body}");
    let archived: pb::ListMessagesResponse =
        get_both(&g, "/v1/mailboxes/Archive/messages", &token).await;
    assert_eq!(archived.messages.len(), 1);
    assert!(archived.messages[0]
        .subject
        .starts_with("Message number 1: "));
    let (status, body) = g
        .post(
            "/v1/messages/delete",
            Some(&token),
            &json!({"mailbox": "INBOX", "uids": [new2]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let delta2: pb::ChangesResponse = get_both(
        &g,
        &format!(
            "/v1/mailboxes/INBOX/changes?since={}",
            enc(&after_flags.state)
        ),
        &token,
    )
    .await;
    assert_eq!(delta2.vanished, vec![new1, new2]);

    // Protobuf request bodies work too.
    let req = pb::FlagsRequest {
        mailbox: "INBOX".into(),
        uids: vec![alt],
        add: vec![],
        remove: vec!["\\Flagged".into()],
    };
    let r = g
        .http
        .post(g.at("/v1/messages/flags"))
        .bearer_auth(&token)
        .header("content-type", PROTOBUF)
        .header("accept", PROTOBUF)
        .body(req.encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        pb::BatchResponse::decode(r.bytes().await.unwrap())
            .unwrap()
            .uids,
        vec![alt]
    );

    // An invalidated token: the mailbox was deleted and created again.
    dovecot.create_mailbox("alice", "secret", "Work");
    dovecot.append("alice", "secret", "Work", &samples::simple(3));
    let work: pb::ListMessagesResponse = get_both(&g, "/v1/mailboxes/Work/messages", &token).await;
    let mut other = RawImap::login(dovecot.imap_port(), "alice", "secret");
    other.command("DELETE Work");
    other.command("CREATE Work");
    other.logout();
    let (status, body) = g
        .get(
            &format!("/v1/mailboxes/Work/changes?since={}", enc(&work.state)),
            Some(&token),
        )
        .await;
    assert_eq!((status, code(&body)), (410, "resync_required"), "{body}");
    // A token from the future (not from this mailbox's history) too.
    let mut fields: Vec<String> = delta.state.split('.').map(str::to_string).collect();
    fields[2] = (fields[2].parse::<u32>().unwrap() + 100).to_string();
    let (status, body) = g
        .get(
            &format!(
                "/v1/mailboxes/INBOX/changes?since={}",
                enc(&fields.join("."))
            ),
            Some(&token),
        )
        .await;
    assert_eq!((status, code(&body)), (410, "resync_required"), "{body}");

    // Compression by Accept-Encoding.
    for encoding in ["gzip", "br", "zstd"] {
        let r = g
            .http
            .get(g.at("/v1/mailboxes/INBOX/messages"))
            .bearer_auth(&token)
            .header("accept-encoding", encoding)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-encoding"], encoding);
    }

    // The OpenAPI document.
    let (status, doc) = g.get("/v1/openapi.json", None).await;
    assert_eq!(status, 200);
    assert!(doc["paths"]["/v1/mailboxes/{mailbox}/changes"]["get"].is_object());

    // Bad input: clear 4xx, nothing changed.
    let bad: &[(&str, u16, &str)] = &[
        (
            "/v1/mailboxes/INBOX/changes?since=garbage",
            400,
            "invalid_state",
        ),
        ("/v1/mailboxes/INBOX/changes", 400, "invalid_query"),
        ("/v1/mailboxes/INBOX/messages?limit=0", 422, "invalid_limit"),
        (
            "/v1/mailboxes/INBOX/messages?limit=abc",
            400,
            "invalid_query",
        ),
        ("/v1/mailboxes/INBOX/messages?bogus=1", 400, "invalid_query"),
        ("/v1/mailboxes/NoSuchBox/messages", 404, "mailbox_not_found"),
        ("/v1/messages/INBOX/0", 422, "invalid_uid"),
        ("/v1/messages/INBOX/99999", 404, "message_not_found"),
        ("/v1/messages/INBOX/1/parts/1..2", 422, "invalid_part"),
        ("/v1/messages/INBOX/1/parts/9", 404, "part_not_found"),
        ("/v1/search?since=yesterday", 422, "invalid_date"),
    ];
    for (path, status, want) in bad {
        let (got, body) = g.get(path, Some(&token)).await;
        assert_eq!((got, code(&body)), (*status, *want), "{path}: {body}");
    }
    let (status, _) = g.get("/v1/mailboxes", None).await;
    assert_eq!(status, 401);
    let (status, body) = g
        .post(
            "/v1/messages/flags",
            Some(&token),
            &json!({"mailbox": "INBOX", "uids": [latin1], "add": ["bad flag)"]}),
        )
        .await;
    assert_eq!((status, code(&body)), (422, "invalid_flags"), "{body}");
    let (status, body) = g
        .post(
            "/v1/messages/flags",
            Some(&token),
            &json!({"mailbox": "INBOX", "uids": [], "add": ["\\Seen"]}),
        )
        .await;
    assert_eq!((status, code(&body)), (422, "invalid_uids"), "{body}");
    let (status, body) = g
        .post(
            "/v1/messages/delete",
            Some(&token),
            &json!({"mailbox": "", "uids": [1]}),
        )
        .await;
    assert_eq!((status, code(&body)), (422, "invalid_mailbox"), "{body}");
    let r = g
        .http
        .post(g.at("/v1/messages/delete"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = g
        .http
        .post(g.at("/v1/messages/delete"))
        .bearer_auth(&token)
        .header("content-type", PROTOBUF)
        .body(vec![0xff, 0xff, 0xff])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = g
        .http
        .post(g.at("/v1/messages/delete"))
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    // The rejected requests changed nothing.
    let inbox_now: pb::ListMessagesResponse =
        get_both(&g, "/v1/mailboxes/INBOX/messages", &token).await;
    assert_eq!(
        inbox_now.messages.iter().map(|m| m.uid).collect::<Vec<_>>(),
        vec![news, mixed, alt, latin1]
    );

    g.stop().await;
}
