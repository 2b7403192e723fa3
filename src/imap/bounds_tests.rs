//! What a hostile server can make the client hold, against a scripted
//! loopback server: floods of FETCH, SEARCH and LIST answers fail their
//! command with a "response too large" error instead of being collected;
//! the process budget fails the connection that would exceed it; texts are
//! cut where they are parsed; answers about messages nobody asked for are
//! dropped; the read buffer does not stay large on an idle connection.

use super::tests::{connect, serve, Step::*};
use super::*;
use crate::error::ErrorClass;
use crate::imap::budget::{InflightBudget, FETCH_NEW_BUDGET, LIST_BUDGET};
use crate::imap::fetch::MAX_MAILBOXES;
use crate::imap::parser::{MAX_CAPABILITIES, MAX_CAPABILITY_LEN};
use crate::imap::{SummaryDetail, MAX_SERVER_TEXT};

const GREETING: &[u8] = b"* OK [CAPABILITY IMAP4rev1 IDLE] hi\r\n";
const HEADERS: &str =
    "(UID BODY.PEEK[HEADER.FIELDS (FROM SUBJECT TO CC LIST-ID PRECEDENCE MIME-VERSION CONTENT-TYPE CONTENT-TRANSFER-ENCODING)])";

/// EXAMINE INBOX answered with `exists` messages, as command `L{tag}`.
fn examine(tag: u32, exists: u32) -> Vec<super::tests::Step> {
    vec![
        Expect(Box::leak(format!("L{tag} EXAMINE INBOX\r\n").into_boxed_str())),
        SendOwned(
            format!(
                "* {exists} EXISTS\r\n* OK [UIDVALIDITY 1] x\r\n* OK [UIDNEXT 100] x\r\nL{tag} OK done\r\n"
            )
            .into_bytes(),
        ),
    ]
}

fn assert_too_large(err: &ImapError) {
    assert!(matches!(err, ImapError::TooLarge(_)), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Protocol);
}

#[tokio::test]
async fn repeated_huge_summaries_fail_fetch_new() {
    // The case: one preview fetch answered with copies of a FETCH
    // whose subject is large, far more than a few new messages.
    let subject = "x".repeat(256 * 1024);
    let header = format!("Subject: {subject}\r\n\r\n");
    let mut flood = Vec::new();
    let copies = FETCH_NEW_BUDGET / header.len() + 2;
    for n in 0..copies {
        flood.extend_from_slice(
            format!(
                "* 1 FETCH (UID {} BODY[HEADER.FIELDS (SUBJECT)] {{{}}}\r\n{header})\r\n",
                n + 5,
                header.len()
            )
            .as_bytes(),
        );
    }
    flood.extend_from_slice(b"L1 OK done\r\n");
    let mut script = vec![Send(GREETING)];
    script.push(Expect(Box::leak(
        format!("L1 UID FETCH 5:* {HEADERS}\r\n").into_boxed_str(),
    )));
    script.push(SendOwned(flood));
    let (upstream, server) = serve(script).await;
    let mut client = connect(&upstream, DEFAULT_TIMEOUT).await;
    let err = client
        .fetch_new(5, SummaryDetail::Headers, false)
        .await
        .unwrap_err();
    assert_too_large(&err);
    assert!(client.is_broken());
    drop(client);
    server.await.unwrap();
}

#[tokio::test]
async fn search_flood_fails_and_numbers_are_bounded_by_exists() {
    // Three messages: a SEARCH answer may not name more, nor take more
    // bytes than three numbers need.
    let mut flood = Vec::new();
    for _ in 0..20_000 {
        flood.extend_from_slice(b"* SEARCH 1 2 3 4 5 6 7 8 9 10\r\n");
    }
    flood.extend_from_slice(b"L2 OK done\r\n");
    let mut script = vec![Send(GREETING)];
    script.extend(examine(1, 3));
    script.push(Expect("L2 UID SEARCH UID 1:*\r\n"));
    script.push(SendOwned(flood));
    let (upstream, server) = serve(script).await;
    let mut client = connect(&upstream, DEFAULT_TIMEOUT).await;
    client.examine("INBOX").await.unwrap();
    assert_too_large(&client.uid_search_from(1).await.unwrap_err());
    drop(client);
    server.await.unwrap();

    let mut script = vec![Send(GREETING)];
    script.extend(examine(1, 3));
    script.push(Expect("L2 UID SEARCH UID 1:*\r\n"));
    script.push(Send(b"* SEARCH 1 2 3 4 5 6\r\nL2 OK done\r\n"));
    let (upstream, server) = serve(script).await;
    let mut client = connect(&upstream, DEFAULT_TIMEOUT).await;
    client.examine("INBOX").await.unwrap();
    assert_too_large(&client.uid_search_from(1).await.unwrap_err());
    drop(client);
    server.await.unwrap();
}

#[tokio::test]
async fn list_flood_fails_list_mailboxes() {
    let line = format!("* LIST () \"/\" {}\r\n", "m".repeat(1000));
    let mut flood = Vec::new();
    for _ in 0..LIST_BUDGET / line.len() + 2 {
        flood.extend_from_slice(line.as_bytes());
    }
    flood.extend_from_slice(b"L1 OK done\r\n");
    let (upstream, server) = serve(vec![
        Send(GREETING),
        Expect("L1 LIST \"\" \"*\"\r\n"),
        SendOwned(flood),
    ])
    .await;
    let mut client = connect(&upstream, DEFAULT_TIMEOUT).await;
    assert_too_large(&client.list_mailboxes().await.unwrap_err());
    drop(client);
    server.await.unwrap();

    // Short lines, within the bytes, but more mailboxes than anyone keeps.
    let mut flood = Vec::new();
    for n in 0..=MAX_MAILBOXES {
        flood.extend_from_slice(format!("* LIST () \"/\" m{n}\r\n").as_bytes());
    }
    flood.extend_from_slice(b"L1 OK done\r\n");
    let (upstream, server) = serve(vec![
        Send(GREETING),
        Expect("L1 LIST \"\" \"*\"\r\n"),
        SendOwned(flood),
    ])
    .await;
    let mut client = connect(&upstream, DEFAULT_TIMEOUT).await;
    assert_too_large(&client.list_mailboxes().await.unwrap_err());
    drop(client);
    server.await.unwrap();
}

#[tokio::test]
async fn process_budget_fails_the_connection_that_exceeds_it() {
    let budget: &'static InflightBudget =
        Box::leak(Box::new(InflightBudget::new(512 * 1024, 64 * 1024)));
    let body = vec![b'a'; 2 * 1024 * 1024];
    let mut answer = format!("* 1 FETCH (UID 7 BODY[]<0> {{{}}}\r\n", body.len()).into_bytes();
    answer.extend_from_slice(&body);
    answer.extend_from_slice(b")\r\nL1 OK done\r\n");
    let (upstream, server) = serve(vec![
        Send(GREETING),
        Expect("L1 UID FETCH 7 (BODY.PEEK[]<0.4194304>)\r\n"),
        SendOwned(answer),
    ])
    .await;
    let mut client = connect(&upstream, DEFAULT_TIMEOUT).await;
    client.set_inflight_budget(budget);
    let err = client
        .fetch_section_chunk(7, "", 0, 4 * 1024 * 1024)
        .await
        .unwrap_err();
    assert_too_large(&err);
    assert!(err.to_string().contains("budget"), "{err}");
    assert!(client.is_broken());
    drop(client);
    assert_eq!(budget.used(), 0, "given back when the connection is gone");
    server.await.unwrap();
}

#[tokio::test]
async fn the_read_buffer_shrinks_when_the_connection_goes_idle() {
    // A large unsolicited response, then the completion and the start of
    // another response in the same write: the start stays buffered.
    let mut answer = format!("* 1 FETCH (BODY[] {{{}}}\r\n", 900_000).into_bytes();
    answer.extend_from_slice(&vec![b'a'; 900_000]);
    answer.extend_from_slice(b")\r\nL1 OK done\r\n* OK par");
    let (upstream, server) = serve(vec![
        Send(GREETING),
        Expect("L1 NOOP\r\n"),
        SendOwned(answer),
    ])
    .await;
    let mut client = connect(&upstream, DEFAULT_TIMEOUT).await;
    client.noop().await.unwrap();
    assert!(
        client.buffer_capacity() <= 64 * 1024,
        "{} bytes kept for 8 buffered",
        client.buffer_capacity()
    );
    drop(client);
    server.await.unwrap();
}

#[tokio::test]
async fn server_texts_are_cut_where_they_are_parsed() {
    let long = "\u{e9}".repeat(100_000);
    let greeting: &'static [u8] = Box::leak(format!("* BYE {long}\r\n").into_bytes().into());
    let (upstream, server) = serve(vec![Send(greeting)]).await;
    let tls = TlsConnector::new(None).unwrap();
    let err = ImapClient::connect(&upstream, &tls, DEFAULT_TIMEOUT)
        .await
        .unwrap_err();
    let ImapError::Bye(text) = &err else {
        panic!("{err:?}")
    };
    assert!(text.len() <= MAX_SERVER_TEXT && text.starts_with('\u{e9}'));
    server.await.unwrap();

    let no: &'static [u8] = Box::leak(format!("L1 NO {long}\r\n").into_bytes().into());
    let tag: &'static [u8] = Box::leak(format!("L{long} OK x\r\n").into_bytes().into());
    let (upstream, server) = serve(vec![
        Send(GREETING),
        Expect("L1 LOGIN a b\r\n"),
        Send(no),
        Expect("L2 NOOP\r\n"),
        Send(tag),
    ])
    .await;
    let mut client = connect(&upstream, DEFAULT_TIMEOUT).await;
    let err = client.login("a", "b").await.unwrap_err();
    let ImapError::Auth(text) = &err else {
        panic!("{err:?}")
    };
    assert!(text.len() <= MAX_SERVER_TEXT);
    let err = client.noop().await.unwrap_err();
    assert!(matches!(err, ImapError::Protocol(_)), "{err:?}");
    assert!(
        err.to_string().len() <= MAX_SERVER_TEXT + 100,
        "{}",
        err.to_string().len()
    );
    drop(client);
    server.await.unwrap();
}

#[tokio::test]
async fn capability_lists_are_bounded() {
    let mut caps = String::from("* OK [CAPABILITY IMAP4rev1");
    for n in 0..5000 {
        caps.push_str(&format!(" X-{n}"));
    }
    caps.push_str(&format!(" {} IDLE] hi\r\n", "Y".repeat(1000)));
    let greeting: &'static [u8] = Box::leak(caps.into_bytes().into());
    let (upstream, server) = serve(vec![Send(greeting)]).await;
    let client = connect(&upstream, DEFAULT_TIMEOUT).await;
    assert_eq!(client.capabilities().iter().count(), MAX_CAPABILITIES);
    assert!(client
        .capabilities()
        .iter()
        .all(|c| c.len() <= MAX_CAPABILITY_LEN));
    drop(client);
    server.await.unwrap();
}

#[tokio::test]
async fn answers_about_messages_never_asked_for_are_dropped() {
    let mut script = vec![Send(GREETING)];
    script.extend(examine(1, 3));
    script.push(Expect("L2 UID FETCH 2:* (UID)\r\n"));
    // A second answer for message 2, and answers beyond the 3 messages.
    script.push(Send(
        b"* 2 FETCH (UID 2)\r\n* 2 FETCH (UID 5)\r\n* 3 FETCH (UID 3)\r\n\
* 4 FETCH (UID 4)\r\n* 200000 FETCH (UID 200000)\r\nL2 OK done\r\n",
    ));
    script.push(Expect("L3 UID FETCH 2:3 (UID FLAGS)\r\n"));
    script.push(Send(
        b"* 1 FETCH (UID 1 FLAGS ())\r\n* 2 FETCH (UID 2 FLAGS ())\r\n\
* 3 FETCH (UID 3 FLAGS ())\r\n* 3 FETCH (UID 7 FLAGS ())\r\nL3 OK done\r\n",
    ));
    let (upstream, server) = serve(script).await;
    let mut client = connect(&upstream, DEFAULT_TIMEOUT).await;
    client.examine("INBOX").await.unwrap();
    let new = client
        .fetch_new(2, SummaryDetail::UidsOnly, false)
        .await
        .unwrap();
    assert_eq!(new.uids, [2, 3]);
    let r = client
        .uid_fetch("2:3", "(UID FLAGS)", None, 1 << 20)
        .await
        .unwrap();
    let uids: Vec<u32> = r.messages.iter().map(|m| m.uid).collect();
    assert_eq!(uids, [2, 3]);
    drop(client);
    server.await.unwrap();
}
