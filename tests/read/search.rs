//! Search paging against a real Dovecot: `GET /v1/search` pages with
//! `cursor`/`next_cursor`, stay stable while mail arrives between pages,
//! and refuse cursors of another search, another mailbox or an old
//! UIDVALIDITY.

use crate::support::dovecot::{Dovecot, RawImap};
use crate::support::gateway::{data_dir, Gateway};
use crate::support::read_client::{code, enc, get_both};
use lemonade::proto::v1 as pb;

/// A short message whose subject is `subject`.
fn note(subject: &str, n: usize) -> Vec<u8> {
    format!(
        "From: \"Sender {n}\" <sender{n}@example.org>\r\nTo: alice@test.local\r\n\
         Subject: {subject}\r\nDate: Fri, 5 Jan 2024 10:{:02}:00 +0000\r\n\
         Message-ID: <note{n}@example.org>\r\n\r\nBody of note {n}.\r\n",
        n % 60
    )
    .into_bytes()
}

async fn page(g: &Gateway, token: &str, query: &str, cursor: &str) -> pb::SearchResponse {
    let mut path = format!("/v1/search?{query}");
    if !cursor.is_empty() {
        path.push_str(&format!("&cursor={}", enc(cursor)));
    }
    get_both(g, &path, token).await
}

#[tokio::test]
async fn search_pages_are_complete_and_stable_while_mail_arrives() {
    let dovecot = Dovecot::start();
    dovecot.add_user("alice", "secret");
    let mut matching = Vec::new();
    for n in 0..14 {
        if n % 3 == 1 {
            dovecot.append("alice", "secret", "INBOX", &note(&format!("Lunch {n}"), n));
        } else {
            let uid = dovecot.append(
                "alice",
                "secret",
                "INBOX",
                &note(&format!("Quarterly {n}"), n),
            );
            matching.push(uid);
        }
    }
    matching.reverse();
    assert_eq!(matching.len(), 9);
    let (_dir, path) = data_dir();
    let g = Gateway::start(&path).await;
    let (_, token) = g
        .register(dovecot.host(), dovecot.imap_port(), "alice", "secret")
        .await;
    let query = "subject=quarterly&limit=2";

    // Everything at once: one page, no cursor.
    let all = page(&g, &token, "subject=quarterly&limit=50", "").await;
    assert_eq!(all.uids, matching);
    assert_eq!(all.total, 9);
    assert_eq!(all.next_cursor, "");

    // Two at a time; a matching message (and another) arrives after the
    // second page.
    let mut pages: Vec<Vec<u32>> = Vec::new();
    let mut cursor = String::new();
    let mut arrived = None;
    loop {
        let p = page(&g, &token, query, &cursor).await;
        let served: Vec<u32> = p.messages.iter().map(|m| m.uid).collect();
        assert!(!served.is_empty() && served.len() <= 2, "{p:?}");
        assert_eq!(p.uids[..served.len()], served[..]);
        let before: usize = pages.iter().map(Vec::len).sum();
        // `uids` holds this page's matches and the later pages'.
        assert_eq!(p.uids, matching[before..]);
        assert_eq!(p.total, 9 + u32::from(arrived.is_some()));
        assert!(p
            .messages
            .iter()
            .all(|m| m.subject.starts_with("Quarterly")));
        pages.push(served);
        if pages.len() == 2 {
            arrived = Some(dovecot.append("alice", "secret", "INBOX", &note("Quarterly late", 60)));
            dovecot.append("alice", "secret", "INBOX", &note("Lunch late", 61));
        }
        if p.next_cursor.is_empty() {
            break;
        }
        cursor = p.next_cursor;
    }
    let expected: Vec<Vec<u32>> = matching.chunks(2).map(<[u32]>::to_vec).collect();
    assert_eq!(pages, expected, "pages shifted or lost a match");
    let mut collected: Vec<u32> = pages.concat();
    assert_eq!(collected, matching);
    collected.sort_unstable();
    collected.dedup();
    assert_eq!(collected.len(), 9, "a match was served twice");

    // A new search starts with the new match.
    let arrived = arrived.unwrap();
    let fresh = page(&g, &token, query, "").await;
    assert_eq!(fresh.uids[0], arrived);
    assert_eq!(fresh.messages[0].subject, "Quarterly late");
    assert_eq!(fresh.total, 10);
    assert!(!fresh.next_cursor.is_empty());
    // An empty cursor is the first page.
    let (status, body) = g
        .get(&format!("/v1/search?{query}&cursor="), Some(&token))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["uids"][0], arrived);

    // Cursors of another search, another mailbox, or not cursors at all.
    let other_search = page(&g, &token, "subject=lunch&limit=1", "").await;
    let other_mailbox = format!("mailbox=Sent&{query}");
    for (path, cursor) in [
        (query, other_search.next_cursor.as_str()),
        (other_mailbox.as_str(), fresh.next_cursor.as_str()),
        (query, "garbage"),
        (query, "AQAAAAEAAAAB"),
    ] {
        let (status, body) = g
            .get(
                &format!("/v1/search?{path}&cursor={}", enc(cursor)),
                Some(&token),
            )
            .await;
        assert_eq!(
            (status, code(&body)),
            (400, "invalid_cursor"),
            "{path} {cursor}: {body}"
        );
    }
    g.stop().await;
}

/// A cursor from before the mailbox was deleted and created again (a new
/// UIDVALIDITY) cannot say where the next page starts.
#[tokio::test]
async fn a_cursor_from_an_old_uidvalidity_needs_a_new_search() {
    let dovecot = Dovecot::start();
    dovecot.add_user("alice", "secret");
    dovecot.create_mailbox("alice", "secret", "Work");
    for n in 0..3 {
        dovecot.append("alice", "secret", "Work", &note("Plan", n));
    }
    let (_dir, path) = data_dir();
    let g = Gateway::start(&path).await;
    let (_, token) = g
        .register(dovecot.host(), dovecot.imap_port(), "alice", "secret")
        .await;
    let query = "mailbox=Work&subject=plan&limit=1";
    let first = page(&g, &token, query, "").await;
    assert_eq!(first.total, 3);
    let mut other = RawImap::login(dovecot.imap_port(), "alice", "secret");
    other.command("DELETE Work");
    other.command("CREATE Work");
    other.logout();
    for n in 0..3 {
        dovecot.append("alice", "secret", "Work", &note("Plan", n));
    }
    let (status, body) = g
        .get(
            &format!("/v1/search?{query}&cursor={}", enc(&first.next_cursor)),
            Some(&token),
        )
        .await;
    assert_eq!((status, code(&body)), (410, "resync_required"), "{body}");
    g.stop().await;
}
