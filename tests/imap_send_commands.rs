//! The IMAP commands of the send path against a real Dovecot: body
//! structure, piecewise section fetch, APPEND with CATENATE and APPENDUID,
//! SEARCH by Message-ID, GENURLAUTH and URLFETCH, removal; and the
//! submission service's AUTH with OAuth2 tokens.

use crate::support;

use std::time::Duration;

use lemonade::error::ErrorClass;
use lemonade::imap::{find_part, with_submit_access, AppendPart, ImapClient, MessageUrl};
use lemonade::net::{TlsConnector, Upstream};
use lemonade::sasl::OAuthMechanism;
use lemonade::smtp::SmtpClient;
use lemonade::store::Security;
use support::dovecot::Dovecot;
use support::send::*;
use support::smtp_sink::SmtpSink;

#[tokio::test]
async fn catenate_urlauth_and_sections_against_dovecot() {
    let (_sink, dovecot) = mail_servers(None);
    let attachment = bytes(100_000, 8);
    let original = message_with_attachment(&attachment, "<src@test.local>");
    let uid = dovecot.append(USER, PASS, "INBOX", &original);

    let _ = rustls::crypto::ring::default_provider().install_default();
    let upstream = Upstream {
        host: dovecot.host().into(),
        port: dovecot.imap_port(),
        security: Security::Plain,
    };
    let tls = TlsConnector::new(None).unwrap();
    let mut imap = ImapClient::connect(&upstream, &tls, Duration::from_secs(30))
        .await
        .unwrap();
    imap.login(USER, PASS).await.unwrap();

    let status = imap.examine("INBOX").await.unwrap();
    let (size, structure) = imap.fetch_structure(uid).await.unwrap().unwrap();
    assert_eq!(size, original.len() as u64);
    let part = find_part(&structure, "2").unwrap();
    assert_eq!(part.content_type, "application/octet-stream");
    assert!(imap.fetch_structure(uid + 100).await.unwrap().is_none());
    // Piecewise: 3 pieces of 64 KiB give the whole encoded body.
    let mut body = Vec::new();
    loop {
        let chunk = imap
            .fetch_section_chunk(uid, "2", body.len() as u64, 64 * 1024)
            .await
            .unwrap();
        let last = chunk.len() < 64 * 1024;
        body.extend(chunk);
        if last {
            break;
        }
    }
    assert_eq!(body.len() as u64, part.size);
    let mime = imap
        .fetch_section_chunk(uid, "2.MIME", 0, 4096)
        .await
        .unwrap();
    assert!(mime.starts_with(b"Content-Type: application/octet-stream"));
    assert!(mime.ends_with(b"\r\n\r\n"));

    // CATENATE: new text around the referenced part, never downloaded.
    let head = b"From: alice@test.local\r\nMessage-ID: <cat@test.local>\r\nContent-Type: multipart/mixed; boundary=\"x\"\r\n\r\n--x\r\n".to_vec();
    let url = |section: &str| MessageUrl {
        mailbox: "INBOX".into(),
        uidvalidity: Some(status.uidvalidity),
        uid,
        section: Some(section.into()),
    };
    let parts = vec![
        AppendPart::bytes(head.clone()),
        AppendPart::Url(url("2.MIME").path()),
        AppendPart::Url(url("2").path()),
        AppendPart::bytes(b"\r\n--x--\r\n".to_vec()),
    ];
    let (appended, written) = imap.append_parts("Sent", "\\Seen", parts).await.unwrap();
    let appended = appended.expect("APPENDUID");
    assert!(written < 1024, "wrote {written}");
    let sent_validity = imap.select("Sent").await.unwrap();
    assert_eq!(sent_validity, appended.uidvalidity);
    assert_eq!(
        imap.search_message_id("<cat@test.local>").await.unwrap(),
        vec![appended.uid]
    );
    assert!(imap
        .search_message_id("<other@test.local>")
        .await
        .unwrap()
        .is_empty());
    let stored = mailbox(&dovecot, "Sent").remove(0);
    let mut expected = head;
    expected.extend_from_slice(&mime);
    expected.extend_from_slice(&body);
    expected.extend_from_slice(b"\r\n--x--\r\n");
    assert!(stored == expected, "CATENATE result differs");

    // GENURLAUTH: `submit+` for BURL; `user+` can be fetched back here.
    let absolute = MessageUrl {
        mailbox: "Sent".into(),
        uidvalidity: Some(appended.uidvalidity),
        uid: appended.uid,
        section: None,
    }
    .absolute(USER, dovecot.host(), dovecot.imap_port());
    let submit = imap
        .gen_urlauth(&with_submit_access(&absolute, USER))
        .await
        .unwrap();
    assert!(
        submit.contains(";urlauth=submit+alice:internal:"),
        "{submit}"
    );
    let user = imap
        .gen_urlauth(&format!("{absolute};urlauth=user+{USER}"))
        .await
        .unwrap();
    assert_eq!(
        imap.url_fetch(&user).await.unwrap().as_deref(),
        Some(&expected[..])
    );

    imap.delete_uids(&[appended.uid]).await.unwrap();
    assert!(mailbox(&dovecot, "Sent").is_empty());
    imap.logout().await;
}

/// `AUTH XOAUTH2` and `AUTH OAUTHBEARER` on Dovecot's submission service
/// with its `oauth2` passdb: a valid token logs in and may send; refused
/// tokens give an auth error after the error challenge, and the same
/// connection then logs in with a valid one (nothing left half-done).
#[tokio::test]
async fn submission_takes_oauth2_tokens() {
    let sink = SmtpSink::start();
    let dovecot = Dovecot::builder().relay_port(sink.port()).oauth2().start();
    let jwt = dovecot.jwt();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let upstream = Upstream {
        host: dovecot.host().into(),
        port: dovecot.submission_port(),
        security: Security::Plain,
    };
    let tls = TlsConnector::new(None).unwrap();
    let timeout = Duration::from_secs(30);
    let refused = jwt.refused_tokens(USER);
    for mechanism in [OAuthMechanism::XOAuth2, OAuthMechanism::OAuthBearer] {
        for (what, token) in &refused {
            let mut smtp = SmtpClient::connect(&upstream, &tls, timeout, "test")
                .await
                .unwrap();
            let err = smtp
                .auth_oauth(Some(mechanism), USER, token)
                .await
                .unwrap_err();
            assert_eq!(err.class(), ErrorClass::Auth, "{mechanism} {what}: {err:?}");
            assert_eq!(err.reply().map(|r| r.code), Some(535), "{err}");
            // The error challenge was read: its status is in the reply.
            assert!(err.to_string().contains("(status "), "{err}");
            assert!(!format!("{err} {err:?}").contains(token.as_str()));
            smtp.auth_oauth(Some(mechanism), USER, &jwt.token(USER, 300))
                .await
                .unwrap_or_else(|e| panic!("{mechanism} after {what}: {e}\n{}", dovecot.log()));
            smtp.mail_from("alice@test.local", None).await.unwrap();
            smtp.quit().await;
        }
    }
    // Each was refused for the reason meant.
    let log = dovecot.log();
    for reason in jwt.dovecot_refusals(USER) {
        assert_eq!(log.matches(&reason).count(), 2, "{reason}:\n{log}");
    }
}
