//! `authenticate_oauth` against a scripted server: SASL-IR or not, the
//! mechanism chosen from the capabilities, and the error challenge (sent a
//! byte at a time) answered so that the refusal arrives and the connection
//! stays usable.

use base64::Engine;

use super::tests::{connect, serve, Step::*};
use super::*;
use crate::error::ErrorClass;
use crate::sasl::{OAuthMechanism, SaslError};

const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.eyJlbWFpbCI6ImFsaWNlIn0.c2lnbmF0dXJl";

/// The initial response for alice's token, as a leaked `'static` line.
fn response_line(mechanism: OAuthMechanism, prefix: &str) -> &'static str {
    let ir = mechanism.initial_response("alice", TOKEN).unwrap();
    Box::leak(format!("{prefix}{}\r\n", ir.as_str()).into_boxed_str())
}

/// An error challenge line, as Gmail sends it.
fn challenge(prefix: &str) -> &'static [u8] {
    let json = r#"{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}"#;
    let b64 = base64::engine::general_purpose::STANDARD.encode(json);
    Box::leak(format!("{prefix}{b64}\r\n").into_bytes().into_boxed_slice())
}

#[tokio::test]
async fn xoauth2_with_sasl_ir_logs_in_and_takes_the_new_capabilities() {
    let (upstream, server) = serve(vec![
        Send(b"* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] hi\r\n"),
        ExpectAlone(response_line(
            OAuthMechanism::XOAuth2,
            "L1 AUTHENTICATE XOAUTH2 ",
        )),
        Send(b"L1 OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n"),
    ])
    .await;
    let mut client = connect(&upstream, DEFAULT_TIMEOUT).await;
    client
        .authenticate_oauth(None, "alice", TOKEN)
        .await
        .unwrap();
    assert!(client.capabilities().has("IDLE"));
    drop(client);
    server.await.unwrap();
}

#[tokio::test]
async fn oauthbearer_is_preferred_and_its_error_challenge_answered() {
    let (upstream, server) = serve(vec![
        Send(b"* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2 AUTH=OAUTHBEARER] hi\r\n"),
        ExpectAlone("L1 AUTHENTICATE OAUTHBEARER\r\n"),
        Send(b"+ \r\n"),
        ExpectAlone(response_line(OAuthMechanism::OAuthBearer, "")),
        Trickle(challenge("+ ")),
        ExpectAlone("AQ==\r\n"),
        Trickle(b"* OK still here\r\nL1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"),
        Expect("L2 NOOP\r\n"),
        Send(b"L2 OK done\r\n"),
    ])
    .await;
    let mut client = connect(&upstream, DEFAULT_TIMEOUT).await;
    let err = client
        .authenticate_oauth(None, "alice", TOKEN)
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Auth, "{err:?}");
    let ImapError::Auth(text) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        text,
        "Authentication failed. (status 401, scope https://mail.google.com/)"
    );
    assert!(!format!("{err} {err:?} {client:?}").contains(TOKEN));
    // The exchange ended where the server ended it: the connection goes on.
    client.noop().await.unwrap();
    drop(client);
    server.await.unwrap();
}

#[tokio::test]
async fn xoauth2_answers_the_challenge_with_an_empty_line() {
    let (upstream, server) = serve(vec![
        Send(b"* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2 AUTH=OAUTHBEARER] hi\r\n"),
        ExpectAlone(response_line(
            OAuthMechanism::XOAuth2,
            "L1 AUTHENTICATE XOAUTH2 ",
        )),
        Trickle(b"+ bm90IGpzb24=\r\n"),
        ExpectAlone("\r\n"),
        Send(b"L1 NO [UNAVAILABLE] try later\r\n"),
    ])
    .await;
    let mut client = connect(&upstream, DEFAULT_TIMEOUT).await;
    let err = client
        .authenticate_oauth(Some(OAuthMechanism::XOAuth2), "alice", TOKEN)
        .await
        .unwrap_err();
    // UNAVAILABLE stays temporary; a challenge that is not JSON adds nothing.
    assert!(
        matches!(&err, ImapError::Unavailable(t) if t == "try later"),
        "{err:?}"
    );
    drop(client);
    server.await.unwrap();
}

#[tokio::test]
async fn a_refusal_before_the_response_is_taken_as_it_comes() {
    let (upstream, server) = serve(vec![
        Send(b"* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2] hi\r\n"),
        ExpectAlone("L1 AUTHENTICATE XOAUTH2\r\n"),
        Send(b"L1 NO [AUTHENTICATIONFAILED] not now\r\n"),
        Expect("L2 NOOP\r\n"),
        Send(b"L2 OK done\r\n"),
    ])
    .await;
    let mut client = connect(&upstream, DEFAULT_TIMEOUT).await;
    let err = client
        .authenticate_oauth(None, "alice", TOKEN)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ImapError::Auth(t) if t == "not now"),
        "{err:?}"
    );
    client.noop().await.unwrap();
    drop(client);
    server.await.unwrap();
}

#[tokio::test]
async fn a_second_challenge_breaks_the_connection() {
    let (upstream, _server) = serve(vec![
        Send(b"* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=OAUTHBEARER] hi\r\n"),
        Expect(response_line(
            OAuthMechanism::OAuthBearer,
            "L1 AUTHENTICATE OAUTHBEARER ",
        )),
        Send(challenge("+ ")),
        Expect("AQ==\r\n"),
        Send(b"+ more?\r\n"),
    ])
    .await;
    let mut client = connect(&upstream, DEFAULT_TIMEOUT).await;
    let err = client
        .authenticate_oauth(None, "alice", TOKEN)
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Protocol, "{err:?}");
    assert!(matches!(client.noop().await, Err(ImapError::Unusable)));
}

#[tokio::test]
async fn no_oauth_mechanism_is_a_permanent_error_and_sends_nothing() {
    let (upstream, server) = serve(vec![
        Send(b"* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN AUTH=XOAUTH2] hi\r\n"),
        Expect("L1 NOOP\r\n"),
        Send(b"L1 OK done\r\n"),
    ])
    .await;
    let mut client = connect(&upstream, DEFAULT_TIMEOUT).await;
    let err = client
        .authenticate_oauth(Some(OAuthMechanism::OAuthBearer), "alice", TOKEN)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        ImapError::Sasl(SaslError::NotOffered(OAuthMechanism::OAuthBearer))
    ));
    assert_eq!(err.class(), ErrorClass::Permanent);
    let err = client
        .authenticate_oauth(None, "alice", "bad token")
        .await
        .unwrap_err();
    assert!(
        matches!(err, ImapError::Sasl(SaslError::BadToken)),
        "{err:?}"
    );
    client.noop().await.unwrap();
    drop(client);
    server.await.unwrap();
}

#[tokio::test]
async fn neither_mechanism_offered() {
    let (upstream, _server) =
        serve(vec![Send(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n")]).await;
    let mut client = connect(&upstream, DEFAULT_TIMEOUT).await;
    let err = client
        .authenticate_oauth(None, "alice", TOKEN)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ImapError::Sasl(SaslError::NoMechanism)),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Permanent);
}
