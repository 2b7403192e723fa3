//! The SMTP client against a scripted server on loopback: for what the
//! real submission server in the integration tests does not show (DATA
//! without CHUNKING, odd replies, a connection dropped mid-transaction).

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use super::*;
use crate::net::{Security, TlsConnector, Upstream};

/// Serves one connection: greets with `ehlo` extensions, answers each
/// command by the first matching `(prefix, reply)` rule, and returns every
/// line received plus the DATA payload (as sent, still dot-stuffed).
async fn scripted(
    ehlo: &'static str,
    rules: Vec<(&'static str, &'static str)>,
) -> (u16, tokio::task::JoinHandle<(Vec<String>, Vec<u8>)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (read, mut write) = stream.into_split();
        let mut read = BufReader::new(read);
        write.write_all(b"220 scripted\r\n").await.unwrap();
        let mut lines = Vec::new();
        let mut data = Vec::new();
        loop {
            let mut line = String::new();
            if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                return (lines, data);
            }
            let line = line.trim_end().to_owned();
            lines.push(line.clone());
            if line.starts_with("EHLO") {
                write.write_all(ehlo.as_bytes()).await.unwrap();
                continue;
            }
            if line == "DATA" {
                write.write_all(b"354 go\r\n").await.unwrap();
                loop {
                    let mut l = Vec::new();
                    read.read_until(b'\n', &mut l).await.unwrap();
                    if l == b".\r\n" {
                        break;
                    }
                    data.extend_from_slice(&l);
                }
            }
            if let Some(size) = line.strip_prefix("BDAT ") {
                let n: usize = size.split(' ').next().unwrap().parse().unwrap();
                let mut chunk = vec![0; n];
                read.read_exact(&mut chunk).await.unwrap();
                data.extend_from_slice(&chunk);
            }
            let reply = rules
                .iter()
                .find(|(prefix, _)| line.starts_with(prefix))
                .map(|(_, r)| *r)
                .unwrap_or("250 ok\r\n");
            if reply == "DROP" {
                return (lines, data);
            }
            write.write_all(reply.as_bytes()).await.unwrap();
        }
    });
    (port, task)
}

async fn connect(port: u16) -> SmtpClient {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let upstream = Upstream {
        host: "127.0.0.1".into(),
        port,
        security: Security::Plain,
    };
    let tls = TlsConnector::new(None).unwrap();
    SmtpClient::connect(&upstream, &tls, Duration::from_secs(5), "test")
        .await
        .unwrap()
}

#[tokio::test]
async fn data_is_dot_stuffed_and_refusals_are_classified() {
    let (port, server) = scripted(
        "250-scripted\r\n250-SIZE 1000\r\n250 AUTH LOGIN\r\n",
        vec![
            ("AUTH LOGIN", "334 VXNlcm5hbWU6\r\n"),
            ("YWxpY2U=", "334 UGFzc3dvcmQ6\r\n"),
            ("c2VjcmV0", "235 ok\r\n"),
            ("RCPT TO:<gone@x>", "550 5.1.1 no such user\r\n"),
            ("RCPT TO:<later@x>", "451 4.3.0 later\r\n"),
        ],
    )
    .await;
    let mut smtp = connect(port).await;
    assert_eq!(smtp.ehlo().max_size(), Some(1000));
    assert!(!smtp.ehlo().burl_imap());
    smtp.auth("alice", "secret").await.unwrap();
    smtp.mail_from("a@x", Some(12)).await.unwrap();
    let e = smtp.rcpt_to("gone@x").await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Permanent);
    assert_eq!(e.reply().unwrap().code, 550);
    let e = smtp.rcpt_to("later@x").await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Transient);
    smtp.rcpt_to("b@x").await.unwrap();
    let message = b"Subject: x\r\n\r\n.hidden\r\nend";
    let reply = smtp
        .send_message(&mut &message[..], message.len() as u64)
        .await
        .unwrap();
    assert!(reply.is_positive());
    smtp.quit().await;
    let (lines, data) = server.await.unwrap();
    assert_eq!(data, b"Subject: x\r\n\r\n..hidden\r\nend\r\n");
    assert!(lines.contains(&"MAIL FROM:<a@x> SIZE=12".to_string()));
}

#[tokio::test]
async fn bdat_chunks_and_a_dropped_connection() {
    let (port, server) = scripted(
        "250-scripted\r\n250 CHUNKING\r\n",
        vec![("BDAT", "250 ok\r\n"), ("RSET", "DROP")],
    )
    .await;
    let mut smtp = connect(port).await;
    smtp.mail_from("a@x", None).await.unwrap();
    smtp.rcpt_to("b@x").await.unwrap();
    let message = vec![b'.'; 150_000];
    smtp.send_message(&mut &message[..], message.len() as u64)
        .await
        .unwrap();
    let e = smtp.rset().await.unwrap_err();
    assert!(matches!(e, SmtpError::Closed), "{e:?}");
    assert_eq!(e.class(), ErrorClass::Transient);
    let (lines, data) = server.await.unwrap();
    assert_eq!(data, message);
    let bdats: Vec<&String> = lines.iter().filter(|l| l.starts_with("BDAT")).collect();
    assert_eq!(bdats.len(), 3);
    assert!(bdats[2].ends_with("LAST"));
}

#[tokio::test]
async fn a_reply_line_that_never_ends_is_refused_without_waiting() {
    // More than a reply line may hold, and no line end: refused as soon as
    // it is over the limit, not when the command times out.
    let endless: &'static str = Box::leak(format!("250-{}", "x".repeat(5000)).into_boxed_str());
    let (port, _server) = scripted("250 scripted\r\n", vec![("RSET", endless)]).await;
    let mut smtp = connect(port).await;
    let e = smtp.rset().await.unwrap_err();
    assert!(matches!(e, SmtpError::Protocol(_)), "{e:?}");
}

const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.eyJlbWFpbCI6ImFsaWNlIn0.c2lnbmF0dXJl";
/// base64 of Gmail's error challenge.
const CHALLENGE: &str = "eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIiwic2NvcGUiOiJodHRwczovL21haWwuZ29vZ2xlLmNvbS8ifQ==";

#[tokio::test]
async fn oauth_tokens_go_in_the_initial_response() {
    let (port, server) = scripted(
        "250-scripted\r\n250 AUTH PLAIN XOAUTH2 OAUTHBEARER\r\n",
        vec![("AUTH ", "235 2.7.0 ok\r\n")],
    )
    .await;
    let mut smtp = connect(port).await;
    smtp.auth_oauth(None, "alice", TOKEN).await.unwrap();
    smtp.auth_oauth(Some(crate::sasl::OAuthMechanism::XOAuth2), "alice", TOKEN)
        .await
        .unwrap();
    smtp.quit().await;
    let (lines, _) = server.await.unwrap();
    let bearer = crate::sasl::OAuthMechanism::OAuthBearer
        .initial_response("alice", TOKEN)
        .unwrap();
    assert_eq!(lines[1], format!("AUTH OAUTHBEARER {}", bearer.as_str()));
    assert!(lines[2].starts_with("AUTH XOAUTH2 "), "{lines:?}");
}

#[tokio::test]
async fn an_oauth_refusal_is_an_auth_error_with_the_challenge() {
    let challenge: &'static str = Box::leak(format!("334 {CHALLENGE}\r\n").into_boxed_str());
    let (port, server) = scripted(
        "250-scripted\r\n250 AUTH OAUTHBEARER\r\n",
        vec![
            ("AUTH OAUTHBEARER", challenge),
            ("AQ==", "535 5.7.8 Username and Password not accepted\r\n"),
        ],
    )
    .await;
    let mut smtp = connect(port).await;
    let e = smtp.auth_oauth(None, "alice", TOKEN).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Auth, "{e:?}");
    assert_eq!(
        e.reply().unwrap().text(),
        "535 5.7.8 Username and Password not accepted (status 401, scope https://mail.google.com/)"
    );
    assert!(!format!("{e} {e:?}").contains(TOKEN));
    // The exchange is over: the connection takes the next command.
    smtp.rset().await.unwrap();
    smtp.quit().await;
    let (lines, _) = server.await.unwrap();
    assert_eq!(lines[2], "AQ==");
    assert_eq!(lines[3], "RSET");
}

#[tokio::test]
async fn no_oauth_mechanism_is_permanent_and_sends_nothing() {
    let (port, server) = scripted("250-scripted\r\n250 AUTH PLAIN XOAUTH2\r\n", vec![]).await;
    let mut smtp = connect(port).await;
    let e = smtp
        .auth_oauth(Some(crate::sasl::OAuthMechanism::OAuthBearer), "a", TOKEN)
        .await
        .unwrap_err();
    assert!(matches!(e, SmtpError::Sasl(_)), "{e:?}");
    assert_eq!(e.class(), ErrorClass::Permanent);
    let e = smtp.auth_oauth(None, "a\r\nRSET", TOKEN).await.unwrap_err();
    assert!(matches!(e, SmtpError::Sasl(_)), "{e:?}");
    smtp.quit().await;
    let (lines, _) = server.await.unwrap();
    assert_eq!(lines, ["EHLO test", "QUIT"]);
}

/// The XOAUTH2 error challenge and the refusal, each arriving split at
/// every byte: the empty answer goes out once the challenge is whole, and
/// the refusal is read whole.
#[tokio::test]
async fn xoauth2_error_challenge_split_at_every_byte() {
    let challenge = format!("334 {CHALLENGE}\r\n");
    let refusal = "535-5.7.8 Username and Password not accepted.\r\n535 5.7.8 Learn more\r\n";
    for cut in 0..challenge.len().max(refusal.len()) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (challenge, refusal) = (challenge.clone(), refusal.to_owned());
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (read, mut write) = stream.into_split();
            let mut read = BufReader::new(read);
            let mut line = String::new();
            write.write_all(b"220 hi\r\n").await.unwrap();
            read.read_line(&mut line).await.unwrap();
            write
                .write_all(b"250-hi\r\n250 AUTH XOAUTH2\r\n")
                .await
                .unwrap();
            let mut got = Vec::new();
            for reply in [challenge, refusal] {
                line.clear();
                read.read_line(&mut line).await.unwrap();
                got.push(line.clone());
                let at = cut.min(reply.len());
                write.write_all(&reply.as_bytes()[..at]).await.unwrap();
                write.flush().await.unwrap();
                tokio::task::yield_now().await;
                write.write_all(&reply.as_bytes()[at..]).await.unwrap();
            }
            got
        });
        let mut smtp = connect(port).await;
        let e = smtp.auth_oauth(None, "alice", TOKEN).await.unwrap_err();
        assert_eq!(e.class(), ErrorClass::Auth, "cut {cut}: {e:?}");
        assert!(
            e.to_string()
                .ends_with("Learn more (status 401, scope https://mail.google.com/)"),
            "{e}"
        );
        let got = server.await.unwrap();
        assert!(got[0].starts_with("AUTH XOAUTH2 "));
        assert_eq!(got[1], "\r\n", "cut {cut}");
    }
}
