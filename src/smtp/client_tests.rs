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
