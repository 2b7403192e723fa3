//! Client tests against a scripted loopback server: the paths Dovecot does
//! not take (synchronizing literals, SASL without SASL-IR, LOGINDISABLED,
//! timeouts) and cancel-safety of `idle_next` with input arriving byte by byte.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::*;
use crate::error::ErrorClass;
use crate::imap::SummaryDetail;

pub(super) enum Step {
    /// Send these bytes.
    Send(&'static [u8]),
    /// Send these bytes (made by the test).
    SendOwned(Vec<u8>),
    /// Send these bytes one at a time, pausing between them.
    Trickle(&'static [u8]),
    /// Read one line and compare it (CRLF included).
    Expect(&'static str),
    /// [`Expect`], and nothing more has arrived: the client is waiting for
    /// an answer rather than pipelining.
    ExpectAlone(&'static str),
}
pub(super) use Step::*;

/// Serves one connection following `script`, then waits for the client to close.
pub(super) async fn serve(script: Vec<Step>) -> (Upstream, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = Upstream {
        host: "127.0.0.1".into(),
        port: listener.local_addr().unwrap().port(),
        security: Security::Plain,
    };
    let task = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let (read, mut write) = socket.into_split();
        let mut read = BufReader::new(read);
        for step in script {
            match step {
                Send(bytes) => write.write_all(bytes).await.unwrap(),
                // The client may give up reading midway (that is the point).
                SendOwned(bytes) => {
                    let _ = write.write_all(&bytes).await;
                }
                Trickle(bytes) => {
                    for byte in bytes {
                        write.write_all(&[*byte]).await.unwrap();
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                }
                Expect(line) => {
                    let mut got = Vec::new();
                    read.read_until(b'\n', &mut got).await.unwrap();
                    assert_eq!(String::from_utf8_lossy(&got), line);
                }
                ExpectAlone(line) => {
                    let mut got = Vec::new();
                    read.read_until(b'\n', &mut got).await.unwrap();
                    assert_eq!(String::from_utf8_lossy(&got), line);
                    assert!(read.buffer().is_empty(), "pipelined after {line:?}");
                }
            }
        }
        let mut rest = Vec::new();
        let _ = read.read_to_end(&mut rest).await;
    });
    (upstream, task)
}

pub(super) async fn connect(upstream: &Upstream, timeout: Duration) -> ImapClient {
    let tls = TlsConnector::new(None).unwrap();
    ImapClient::connect(upstream, &tls, timeout).await.unwrap()
}

#[tokio::test]
async fn login_with_synchronizing_literals() {
    let (upstream, server) = serve(vec![
        Send(b"* OK [CAPABILITY IMAP4rev1 IDLE] hi\r\n"),
        Expect("L1 LOGIN {6}\r\n"),
        Send(b"+ go on\r\n"),
        Expect("\u{e5}lice \"p w\"\r\n"),
        Send(b"L1 OK [CAPABILITY IMAP4rev1 IDLE LITERAL+] welcome\r\n"),
        Expect("L2 LOGIN {6+}\r\n"),
        Expect("\u{e5}lice x\r\n"),
        Send(b"L2 NO [UNAVAILABLE] later\r\n"),
    ])
    .await;
    let mut client = connect(&upstream, DEFAULT_TIMEOUT).await;
    client.login("ålice", "p w").await.unwrap();
    assert!(client.capabilities().has("literal+"));
    // The second login (with LITERAL+ now) tests the non-synchronizing form
    // and that UNAVAILABLE is temporary, not an auth failure.
    let err = client.login("ålice", "x").await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Transient, "{err:?}");
    drop(client);
    server.await.unwrap();
}

#[tokio::test]
async fn refused_literal_ends_the_command_cleanly() {
    let (upstream, server) = serve(vec![
        Send(b"* OK [CAPABILITY IMAP4rev1] hi\r\n"),
        Expect("L1 LOGIN {2}\r\n"),
        Send(b"L1 NO [AUTHENTICATIONFAILED] nope\r\n"),
        Expect("L2 NOOP\r\n"),
        Send(b"* 4 EXISTS\r\nL2 OK\r\n"),
    ])
    .await;
    let mut client = connect(&upstream, DEFAULT_TIMEOUT).await;
    let err = client.login("\u{e9}", "pw").await.unwrap_err();
    assert!(matches!(err, ImapError::Auth(_)), "{err:?}");
    client.noop().await.unwrap();
    assert_eq!(client.take_events(), [IdleEvent::Exists(4)]);
    drop(client);
    server.await.unwrap();
}

#[tokio::test]
async fn authenticate_plain_without_sasl_ir() {
    let (upstream, server) = serve(vec![
        Send(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n"),
        Expect("L1 AUTHENTICATE PLAIN\r\n"),
        Send(b"+ \r\n"),
        // base64("\0bob\0pw")
        Expect("AGJvYgBwdw==\r\n"),
        Send(b"L1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"),
    ])
    .await;
    let mut client = connect(&upstream, DEFAULT_TIMEOUT).await;
    let err = client.login("bob", "pw").await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Auth);
    assert!(!format!("{err} {err:?}").contains("AGJvYgBwdw"));
    drop(client);
    server.await.unwrap();
}

#[tokio::test]
async fn login_disabled_is_permanent() {
    let (upstream, server) = serve(vec![Send(
        b"* OK [CAPABILITY IMAP4rev1 LOGINDISABLED STARTTLS] hi\r\n",
    )])
    .await;
    let mut client = connect(&upstream, DEFAULT_TIMEOUT).await;
    let err = client.login("bob", "pw").await.unwrap_err();
    assert!(matches!(err, ImapError::LoginDisabled));
    assert_eq!(err.class(), ErrorClass::Permanent);
    drop(client);
    server.await.unwrap();
}

#[tokio::test]
async fn timeout_makes_the_connection_unusable() {
    let (upstream, server) = serve(vec![
        Send(b"* OK [CAPABILITY IMAP4rev1] hi\r\n"),
        Expect("L1 NOOP\r\n"),
    ])
    .await;
    let mut client = connect(&upstream, Duration::from_millis(300)).await;
    let err = client.noop().await.unwrap_err();
    assert!(matches!(err, ImapError::Timeout), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Transient);
    assert!(matches!(client.noop().await, Err(ImapError::Unusable)));
    drop(client);
    server.await.unwrap();
}

#[tokio::test]
async fn idle_next_is_cancel_safe_and_releases_its_buffer() {
    let (upstream, server) = serve(vec![
        Send(b"* OK [CAPABILITY IMAP4rev1 IDLE] hi\r\n"),
        Expect("L1 IDLE\r\n"),
        Send(b"+ idling\r\n"),
        Trickle(b"* 1 FETCH (UID 5 BODY[] {12}\r\nab\r\ncd)\r\n* 7)\r\n* OK Still here\r\n* 3 EXISTS\r\n"),
        Expect("DONE\r\n"),
        Send(b"* 2 EXPUNGE\r\nL1 OK done\r\n"),
    ])
    .await;
    let mut client = connect(&upstream, DEFAULT_TIMEOUT).await;
    client.idle_start().await.unwrap();
    assert_eq!(client.buf.capacity(), 0);
    let mut events = Vec::new();
    let mut cancelled = 0;
    while events.last() != Some(&IdleEvent::Exists(3)) {
        tokio::select! {
            event = client.idle_next() => events.push(event.unwrap()),
            _ = tokio::time::sleep(Duration::from_millis(1)) => cancelled += 1,
        }
    }
    assert!(cancelled > 0);
    assert_eq!(
        events,
        [IdleEvent::Fetch, IdleEvent::Other, IdleEvent::Exists(3)]
    );
    // Nothing half-read: the idle connection holds no read buffer.
    assert_eq!(client.buf.capacity(), 0);
    client.idle_done().await.unwrap();
    assert_eq!(client.take_events(), [IdleEvent::Expunge(2)]);
    drop(client);
    server.await.unwrap();
}

/// A command issued during IDLE goes out behind DONE before the server has
/// answered DONE, and IDLE behind a command before its completion: the
/// script reads every line of a write before it replies at all.
#[tokio::test]
async fn a_command_during_idle_is_pipelined_behind_done() {
    let (upstream, server) = serve(vec![
        Send(b"* OK [CAPABILITY IMAP4rev1 IDLE] hi\r\n"),
        Expect("L1 IDLE\r\n"),
        Send(b"+ idling\r\n* 4 EXISTS\r\n"),
        Expect("DONE\r\n"),
        Expect("L2 UID FETCH 5:* (UID)\r\n"),
        Send(b"* 5 EXISTS\r\nL1 OK idle done\r\n"),
        // UID 3 is the `n:*` quirk (the last message, below n): left out.
        Send(b"* 3 FETCH (UID 3)\r\n* 4 FETCH (UID 6)\r\n* 5 FETCH (UID 5)\r\nL2 OK done\r\n"),
        Expect("L3 UID FETCH 7:* (UID)\r\n"),
        Expect("L4 IDLE\r\n"),
        Send(b"* 5 FETCH (UID 6)\r\nL3 OK done\r\n+ idling\r\n* 6 EXISTS\r\n"),
        Expect("DONE\r\n"),
        Send(b"L4 OK idle done\r\n"),
    ])
    .await;
    let mut client = connect(&upstream, DEFAULT_TIMEOUT).await;
    client.idle_start().await.unwrap();
    assert_eq!(client.idle_next().await.unwrap(), IdleEvent::Exists(4));
    let new = client
        .fetch_new(5, SummaryDetail::UidsOnly, false)
        .await
        .unwrap();
    assert_eq!(new.uids, [5, 6]);
    assert!(new.summaries.is_empty());
    // What arrived while DONE was on its way is kept for the watcher.
    assert_eq!(client.take_events(), [IdleEvent::Exists(5)]);
    // Not idling any more; this time IDLE goes out behind the command.
    assert!(!client.is_idling());
    let none = client
        .fetch_new(7, SummaryDetail::UidsOnly, true)
        .await
        .unwrap();
    assert!(none.uids.is_empty());
    assert!(client.is_idling());
    assert_eq!(client.idle_next().await.unwrap(), IdleEvent::Exists(6));
    client.idle_done().await.unwrap();
    drop(client);
    server.await.unwrap();
}

/// A refused DONE leaves the pipelined command in doubt: the connection
/// is given up rather than read out of step.
#[tokio::test]
async fn a_refused_done_breaks_the_connection() {
    let (upstream, _server) = serve(vec![
        Send(b"* OK [CAPABILITY IMAP4rev1 IDLE] hi\r\n"),
        Expect("L1 IDLE\r\n"),
        Send(b"+ idling\r\n"),
        Expect("DONE\r\n"),
        Expect("L2 NOOP\r\n"),
        Send(b"L1 BAD what\r\n"),
    ])
    .await;
    let mut client = connect(&upstream, DEFAULT_TIMEOUT).await;
    client.idle_start().await.unwrap();
    let err = client.noop().await.unwrap_err();
    assert!(matches!(err, ImapError::Protocol(_)), "{err:?}");
    assert!(client.is_broken());
    assert!(client.pipelining_failed());
}

/// A server that takes a command pipelined behind DONE for part of IDLE
/// answers it BAD: noticed as pipelining trouble. A plain NO is not.
#[tokio::test]
async fn a_bad_answer_to_a_pipelined_command_is_noticed_a_no_is_not() {
    let (upstream, _server) = serve(vec![
        Send(b"* OK [CAPABILITY IMAP4rev1 IDLE] hi\r\n"),
        Expect("L1 IDLE\r\n"),
        Send(b"+ idling\r\n"),
        Expect("DONE\r\n"),
        Expect("L2 NOOP\r\n"),
        Send(b"L1 OK done\r\nL2 NO not now\r\n"),
        Expect("L3 IDLE\r\n"),
        Send(b"+ idling\r\n"),
        Expect("DONE\r\n"),
        Expect("L4 UID FETCH 5:* (UID)\r\n"),
        Expect("L5 IDLE\r\n"),
        Send(b"L3 OK done\r\nL4 BAD expected DONE\r\nL5 BAD expected DONE\r\n"),
    ])
    .await;
    let mut client = connect(&upstream, DEFAULT_TIMEOUT).await;
    client.idle_start().await.unwrap();
    let err = client.noop().await.unwrap_err();
    assert!(matches!(err, ImapError::No { .. }), "{err:?}");
    assert!(!client.pipelining_failed());
    client.idle_start().await.unwrap();
    let err = client
        .fetch_new(5, SummaryDetail::UidsOnly, true)
        .await
        .unwrap_err();
    // The IDLE behind the command is answered first, and refused.
    assert!(matches!(err, ImapError::Protocol(_)), "{err:?}");
    assert!(client.pipelining_failed());
    assert!(client.is_broken());
}

/// With pipelining off, DONE, the command and IDLE each wait for the
/// server's answer to what went before.
#[tokio::test]
async fn without_pipelining_done_the_command_and_idle_go_one_at_a_time() {
    let (upstream, server) = serve(vec![
        Send(b"* OK [CAPABILITY IMAP4rev1 IDLE] hi\r\n"),
        ExpectAlone("L1 IDLE\r\n"),
        Send(b"+ idling\r\n* 4 EXISTS\r\n"),
        ExpectAlone("DONE\r\n"),
        Send(b"L1 OK done\r\n"),
        ExpectAlone("L2 UID FETCH 5:* (UID)\r\n"),
        Send(b"* 4 FETCH (UID 5)\r\nL2 OK done\r\n"),
        ExpectAlone("L3 IDLE\r\n"),
        Send(b"+ idling\r\n"),
        ExpectAlone("DONE\r\n"),
        Send(b"L3 OK done\r\n"),
        ExpectAlone("L4 NOOP\r\n"),
        Send(b"L4 OK done\r\n"),
    ])
    .await;
    let mut client = connect(&upstream, DEFAULT_TIMEOUT).await;
    client.set_pipelining(false);
    client.idle_start().await.unwrap();
    assert_eq!(client.idle_next().await.unwrap(), IdleEvent::Exists(4));
    let new = client
        .fetch_new(5, SummaryDetail::UidsOnly, true)
        .await
        .unwrap();
    assert_eq!(new.uids, [5]);
    assert!(client.is_idling());
    client.noop().await.unwrap();
    assert!(!client.is_idling() && !client.pipelining_failed());
    drop(client);
    server.await.unwrap();
}

#[test]
fn idle_client_is_small() {
    // The struct itself; the socket and (with TLS) the boxed TLS state come on top.
    let size = std::mem::size_of::<ImapClient>();
    println!("ImapClient: {size} bytes");
    assert!(size <= 256, "{size}");
}

/// A command whose future is dropped before its completion (a cancelled
/// request) leaves the connection marked unusable, so a pool drops it.
#[tokio::test]
async fn a_cancelled_command_marks_the_connection_unusable() {
    let (upstream, _task) = serve(vec![
        Send(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n"),
        Expect("L1 NOOP\r\n"),
        Send(b"* 3 EXISTS\r\n"),
    ])
    .await;
    let mut client = connect(&upstream, Duration::from_secs(30)).await;
    assert!(!client.is_broken());
    let cancelled = tokio::time::timeout(Duration::from_millis(200), client.noop()).await;
    assert!(
        cancelled.is_err(),
        "NOOP completed without its tagged answer"
    );
    assert!(client.is_broken());
    assert!(matches!(client.noop().await, Err(ImapError::Unusable)));
}

/// A server that advertises PREVIEW and answers `PREVIEW NIL` (Cyrus before
/// 3.13 unless configured) gets asked for the body text instead, at once
/// for a listing and from then on for new mail.
#[tokio::test]
async fn previews_come_from_the_body_when_the_server_answers_preview_nil() {
    const FIELDS: &str = "BODY.PEEK[HEADER.FIELDS (FROM SUBJECT TO CC LIST-ID PRECEDENCE MIME-VERSION CONTENT-TYPE CONTENT-TRANSFER-ENCODING)]";
    let header = "Subject: hello\r\n\r\n";
    let text = "The body says hello.\r\n";
    let answer = |items: String| format!("* 1 FETCH (UID 5 {items})\r\n").into_bytes();
    let with_header = format!(
        "BODY[HEADER.FIELDS (SUBJECT)] {{{}}}\r\n{header}",
        header.len()
    );
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let (upstream, task) = serve(vec![
        Send(b"* OK [CAPABILITY IMAP4rev1 PREVIEW] hi\r\n"),
        Expect(leak(format!("L1 UID FETCH 5 (UID {FIELDS} PREVIEW)\r\n"))),
        SendOwned(answer(format!("{with_header} PREVIEW NIL"))),
        Send(b"L1 OK done\r\n"),
        Expect(leak(format!(
            "L2 UID FETCH 5 (UID {FIELDS} BODY.PEEK[TEXT]<0.16384>)\r\n"
        ))),
        SendOwned(answer(format!(
            "{with_header} BODY[TEXT]<0> {{{}}}\r\n{text}",
            text.len()
        ))),
        Send(b"L2 OK done\r\n"),
        Expect(leak(format!(
            "L3 UID FETCH 5:* (UID {FIELDS} BODY.PEEK[TEXT]<0.16384>)\r\n"
        ))),
        SendOwned(answer(format!(
            "{with_header} BODY[TEXT]<0> {{{}}}\r\n{text}",
            text.len()
        ))),
        Send(b"L3 OK done\r\n"),
    ])
    .await;
    let mut client = connect(&upstream, Duration::from_secs(30)).await;
    let summaries = client.fetch_summaries(&[5], true).await.unwrap();
    assert_eq!(summaries[0].subject, "hello");
    assert_eq!(summaries[0].preview, "The body says hello.");
    let new = client
        .fetch_new(5, SummaryDetail::Preview, false)
        .await
        .unwrap();
    assert_eq!(new.summaries[0].preview, "The body says hello.");
    drop(client);
    task.await.unwrap();
}
