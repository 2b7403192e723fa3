//! The IMAP client against a real Dovecot: login (password, OAuth2 tokens,
//! the fake authorization server's tokens), mailbox state, search,
//! summaries (server PREVIEW and local extraction), IDLE, NOTIFY, TLS, and
//! a server restart during IDLE. Timeouts only turn hangs into failures.

use crate::support;

#[path = "imap/oauth.rs"]
mod oauth;

use std::time::Duration;

use lemonade::error::ErrorClass;
use lemonade::imap::{IdleEvent, ImapClient, ImapError};
use lemonade::net::{Security, TlsConnector, Upstream};
use support::dovecot::Dovecot;

/// Generous bound that only turns a hang into a failure.
const HANG: Duration = Duration::from_secs(30);

const USER: &str = "alice";
const PASS: &str = "s3cret \"quoted\" \\ wörd";

fn plain(dovecot: &Dovecot) -> Upstream {
    Upstream {
        host: dovecot.host().to_owned(),
        port: dovecot.imap_port(),
        security: Security::Plain,
    }
}

fn connector() -> TlsConnector {
    TlsConnector::new(None).unwrap()
}

async fn logged_in(dovecot: &Dovecot) -> ImapClient {
    let mut client = ImapClient::connect(&plain(dovecot), &connector(), HANG)
        .await
        .unwrap();
    client.login(USER, PASS).await.unwrap();
    client
}

fn started() -> Dovecot {
    let dovecot = Dovecot::start();
    dovecot.add_user(USER, PASS);
    dovecot
}

/// Waits (bounded) for the first event matching `want` during IDLE.
async fn wait_for(
    client: &mut ImapClient,
    want: impl Fn(&IdleEvent) -> bool,
) -> Result<IdleEvent, ImapError> {
    tokio::time::timeout(HANG, async {
        loop {
            let event = client.idle_next().await?;
            if want(&event) {
                return Ok(event);
            }
        }
    })
    .await
    .expect("no matching event before the timeout")
}

const LATIN1: &[u8] = b"From: =?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?= <juergen@example.org>\r\n\
To: alice@test.local\r\n\
Subject: =?ISO-8859-1?Q?Gr=FC=DFe_aus_K=F6ln?=\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=ISO-8859-1\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Sch=F6ne Gr=FC=DFe,\r\n\
   wie geht's?\r\n";

const ALTERNATIVE: &[u8] = b"From: Bob <bob@example.org>\r\n\
Subject: Plain and HTML\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/alternative; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
The plain part.\r\n\
--b1\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<p>The <b>HTML</b> part.</p>\r\n\
--b1--\r\n";

const HTML_ONLY: &[u8] = b"From: news@example.org\r\n\
Subject: Only HTML\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<html><head><style>p {color: red}</style></head>\r\n\
<body><h1>Hello</h1><p>World &amp; more</p></body></html>\r\n";

fn simple(subject: &str) -> Vec<u8> {
    format!("From: x@example.org\r\nSubject: {subject}\r\n\r\nbody\r\n").into_bytes()
}

#[tokio::test]
async fn login_and_capabilities() {
    let dovecot = started();
    let mut client = ImapClient::connect(&plain(&dovecot), &connector(), HANG)
        .await
        .unwrap();
    assert!(client.capabilities().has("auth=plain"));
    client.login(USER, PASS).await.unwrap();
    let caps = client.capabilities();
    for cap in ["IDLE", "NOTIFY", "CONDSTORE", "QRESYNC", "PREVIEW", "idle"] {
        assert!(caps.has(cap), "{cap} missing");
    }
    client.enable(&["QRESYNC", "UTF8=ACCEPT"]).await.unwrap();
    client.noop().await.unwrap();
    client.logout().await;
}

/// Access tokens against Dovecot's `oauth2` passdb (local JWT validation):
/// a valid token logs in with either mechanism; an expired one, one from
/// another issuer, one with a bad signature and another user's are refused
/// as auth errors, and the connection is not left waiting after the error
/// challenge (it still answers NOOP).
#[tokio::test]
async fn wrong_password_is_an_auth_error() {
    let dovecot = started();
    let mut client = ImapClient::connect(&plain(&dovecot), &connector(), HANG)
        .await
        .unwrap();
    let err = client.login(USER, "wrong").await.unwrap_err();
    assert!(matches!(err, ImapError::Auth(_)), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Auth);
    assert!(!err.to_string().contains("wrong"));
}

#[tokio::test]
async fn starttls_required_but_not_offered_is_permanent() {
    let dovecot = started();
    let mut upstream = plain(&dovecot);
    upstream.security = Security::Starttls;
    let err = ImapClient::connect(&upstream, &connector(), HANG)
        .await
        .unwrap_err();
    assert!(matches!(err, ImapError::StarttlsUnavailable), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Permanent);
}

#[tokio::test]
async fn refused_connection_is_transient() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let upstream = Upstream {
        host: "127.0.0.1".into(),
        port,
        security: Security::Plain,
    };
    let err = ImapClient::connect(&upstream, &connector(), HANG)
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Transient, "{err:?}");
}

#[tokio::test]
async fn examine_status_and_search() {
    let dovecot = started();
    dovecot.create_mailbox(USER, PASS, "Work");
    dovecot.create_mailbox(USER, PASS, "Entw&APw-rfe");
    let uids: Vec<u32> = (0..3)
        .map(|i| dovecot.append(USER, PASS, "INBOX", &simple(&format!("m{i}"))))
        .collect();
    assert_eq!(uids, [1, 2, 3]);
    dovecot.append(USER, PASS, "Entw&APw-rfe", &simple("draft"));

    let mut client = logged_in(&dovecot).await;
    let inbox = client.examine("INBOX").await.unwrap();
    assert_eq!((inbox.exists, inbox.uidnext), (3, 4));
    assert!(inbox.highestmodseq.is_some());
    let status = client.status("INBOX").await.unwrap();
    assert_eq!(status, inbox);
    let work = client.status("Work").await.unwrap();
    assert_eq!((work.exists, work.uidnext), (0, 1));
    let drafts = client.status("Entwürfe").await.unwrap();
    assert_eq!((drafts.exists, drafts.uidnext), (1, 2));

    assert_eq!(client.uid_search_from(2).await.unwrap(), [2, 3]);
    assert_eq!(client.uid_search_from(0).await.unwrap(), [1, 2, 3]);
    // `10:*` also matches UID 3 on the server: it must be filtered out.
    assert_eq!(client.uid_search_from(10).await.unwrap(), Vec::<u32>::new());

    let missing = client.examine("Nope").await.unwrap_err();
    assert_eq!(missing.class(), ErrorClass::Permanent, "{missing:?}");
    // The connection stays usable after a NO.
    client.examine("Work").await.unwrap();
    // Dovecot 2.3 has no UTF8=ACCEPT: enabling it is accepted and ignored,
    // and names keep going as modified UTF-7.
    client.enable(&["UTF8=ACCEPT"]).await.unwrap();
    assert!(!client.utf8_enabled());
    assert_eq!(client.status("Entwürfe").await.unwrap().exists, 1);
    client.logout().await;
}

/// Checks the summaries of the three fixture messages.
async fn check_summaries(dovecot: &Dovecot) {
    let uids = [LATIN1, ALTERNATIVE, HTML_ONLY].map(|m| dovecot.append(USER, PASS, "INBOX", m));
    let mut client = logged_in(dovecot).await;
    client.examine("INBOX").await.unwrap();
    let mut wanted = uids.to_vec();
    wanted.push(99); // gone UIDs are left out
    wanted.reverse();
    let summaries = client.fetch_summaries(&wanted, true).await.unwrap();
    assert_eq!(summaries.iter().map(|s| s.uid).collect::<Vec<_>>(), uids);

    let latin1 = &summaries[0];
    assert_eq!(latin1.from.name, "Jürgen Müller");
    assert_eq!(latin1.from.email, "juergen@example.org");
    assert_eq!(latin1.subject, "Grüße aus Köln");
    assert_eq!(latin1.preview, "Schöne Grüße, wie geht's?");

    let alternative = &summaries[1];
    assert_eq!(alternative.from.name, "Bob");
    assert_eq!(alternative.subject, "Plain and HTML");
    assert_eq!(alternative.preview, "The plain part.");

    let html = &summaries[2];
    assert_eq!(html.from.email, "news@example.org");
    assert!(html.preview.contains("Hello"), "{:?}", html.preview);
    assert!(html.preview.contains("World & more"), "{:?}", html.preview);
    assert!(!html.preview.contains('<'), "{:?}", html.preview);
    assert!(!html.preview.contains("color"), "{:?}", html.preview);

    let headers_only = client.fetch_summaries(&uids, false).await.unwrap();
    assert_eq!(headers_only[0].subject, "Grüße aus Köln");
    assert_eq!(headers_only[0].preview, "");
    assert!(client.fetch_summaries(&[], true).await.unwrap().is_empty());
    client.logout().await;
}

#[tokio::test]
async fn summaries_with_server_preview() {
    let dovecot = started();
    check_summaries(&dovecot).await;
}

#[tokio::test]
async fn summaries_without_server_preview() {
    let dovecot = Dovecot::builder()
        .imap_capability("IMAP4rev1 SASL-IR ID ENABLE IDLE CONDSTORE QRESYNC UIDPLUS NOTIFY")
        .start();
    dovecot.add_user(USER, PASS);
    {
        let client = logged_in(&dovecot).await;
        assert!(!client.capabilities().has("PREVIEW"));
        assert!(!client.capabilities().has("LITERAL+"));
        client.logout().await;
    }
    check_summaries(&dovecot).await;
}

#[tokio::test]
async fn idle_reports_new_mail_from_another_connection() {
    let dovecot = started();
    let mut client = logged_in(&dovecot).await;
    client.examine("INBOX").await.unwrap();
    client.idle_start().await.unwrap();
    let uid = dovecot.append(USER, PASS, "INBOX", &simple("new"));
    let event = wait_for(&mut client, |e| matches!(e, IdleEvent::Exists(_)))
        .await
        .unwrap();
    assert_eq!(event, IdleEvent::Exists(1));
    client.idle_done().await.unwrap();
    let new = client.uid_search_from(1).await.unwrap();
    assert_eq!(new, [uid]);
    let summary = client.fetch_summaries(&new, true).await.unwrap();
    assert_eq!(summary[0].subject, "new");
    client.take_events();

    // Cancelling idle_next (as a select! with a timer does) loses nothing.
    client.idle_start().await.unwrap();
    let quiet = tokio::time::timeout(Duration::from_millis(50), client.idle_next()).await;
    assert!(quiet.is_err(), "nothing should have arrived: {quiet:?}");
    dovecot.append(USER, PASS, "INBOX", &simple("second"));
    let event = wait_for(&mut client, |e| matches!(e, IdleEvent::Exists(_)))
        .await
        .unwrap();
    assert_eq!(event, IdleEvent::Exists(2));
    client.idle_done().await.unwrap();
    client.logout().await;
}

#[tokio::test]
async fn notify_reports_other_mailboxes() {
    let dovecot = started();
    dovecot.create_mailbox(USER, PASS, "Work");
    let mut client = logged_in(&dovecot).await;
    client.examine("INBOX").await.unwrap();
    client.notify_set(true, &["Work".to_owned()]).await.unwrap();
    client.idle_start().await.unwrap();
    dovecot.append(USER, PASS, "Work", &simple("work mail"));
    let event = wait_for(&mut client, |e| matches!(e, IdleEvent::Status { .. }))
        .await
        .unwrap();
    let IdleEvent::Status {
        mailbox, uidnext, ..
    } = event
    else {
        unreachable!()
    };
    assert_eq!(mailbox, "Work");
    assert_eq!(uidnext, Some(2));

    // New mail in the selected mailbox still arrives as EXISTS.
    dovecot.append(USER, PASS, "INBOX", &simple("inbox mail"));
    wait_for(&mut client, |e| matches!(e, IdleEvent::Exists(1)))
        .await
        .unwrap();
    client.idle_done().await.unwrap();
    client.notify_set(false, &[]).await.unwrap();
    client.logout().await;
}

#[tokio::test]
async fn server_restart_ends_idle_with_an_error() {
    let mut dovecot = started();
    let mut client = logged_in(&dovecot).await;
    client.examine("INBOX").await.unwrap();
    client.idle_start().await.unwrap();
    dovecot.restart();
    let err = wait_for(&mut client, |_| false).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Transient, "{err:?}");
    // Later calls fail fast instead of touching a dead stream.
    assert!(client.idle_next().await.is_err());
    // The restarted server takes new connections with the same mail.
    let mut again = logged_in(&dovecot).await;
    assert_eq!(again.examine("INBOX").await.unwrap().exists, 0);
    again.logout().await;
}

#[tokio::test]
async fn starttls_and_implicit_tls() {
    let dovecot = Dovecot::builder().tls().start();
    dovecot.add_user(USER, PASS);
    let tls = TlsConnector::new(Some(&dovecot.ca_file())).unwrap();
    for (port, security) in [
        (dovecot.imap_port(), Security::Starttls),
        (dovecot.imaps_port(), Security::Tls),
    ] {
        let upstream = Upstream {
            host: dovecot.host().to_owned(),
            port,
            security,
        };
        let mut client = ImapClient::connect(&upstream, &tls, HANG).await.unwrap();
        assert!(!client.capabilities().has("STARTTLS"));
        client.login(USER, PASS).await.unwrap();
        client.examine("INBOX").await.unwrap();
        client.idle_start().await.unwrap();
        dovecot.append(USER, PASS, "INBOX", &simple("over tls"));
        wait_for(&mut client, |e| matches!(e, IdleEvent::Exists(_)))
            .await
            .unwrap();
        client.idle_done().await.unwrap();
        client.logout().await;
    }
    // Without the test CA the certificate is refused, permanently.
    let upstream = Upstream {
        host: dovecot.host().to_owned(),
        port: dovecot.imaps_port(),
        security: Security::Tls,
    };
    let err = ImapClient::connect(&upstream, &connector(), HANG)
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Permanent, "{err:?}");
}
