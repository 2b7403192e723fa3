//! The SASL messages against the examples of RFC 7628 and Google's
//! XOAUTH2 documentation, and error challenges as servers send them.
#![allow(clippy::indexing_slicing, clippy::unwrap_used)]

use base64::Engine;

use super::*;

fn decode(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

fn encode(raw: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(raw)
}

#[test]
fn xoauth2_initial_response_is_googles_format() {
    // Google's documented example.
    let ir = OAuthMechanism::XOAuth2
        .initial_response(
            "someuser@example.com",
            "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg",
        )
        .unwrap();
    assert_eq!(
        ir.as_str(),
        "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ=="
    );
}

#[test]
fn oauthbearer_initial_response_escapes_the_user() {
    let ir = OAuthMechanism::OAuthBearer
        .initial_response(
            "user@example.com",
            "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==",
        )
        .unwrap();
    // RFC 7628 section 4.1, without the optional host and port.
    assert_eq!(
        decode(&ir),
        b"n,a=user@example.com,\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"
    );
    let ir = OAuthMechanism::OAuthBearer
        .initial_response("a,b=c", "t")
        .unwrap();
    assert_eq!(decode(&ir), b"n,a=a=2Cb=3Dc,\x01auth=Bearer t\x01\x01");
}

#[test]
fn credentials_that_would_break_the_framing_are_refused() {
    for m in [OAuthMechanism::XOAuth2, OAuthMechanism::OAuthBearer] {
        assert_eq!(m.initial_response("", "t"), Err(SaslError::BadUser));
        assert_eq!(m.initial_response("a\x01b", "t"), Err(SaslError::BadUser));
        assert_eq!(m.initial_response("a\r\nb", "t"), Err(SaslError::BadUser));
        assert_eq!(m.initial_response("a", ""), Err(SaslError::BadToken));
        assert_eq!(
            m.initial_response("a", "x\x01auth"),
            Err(SaslError::BadToken)
        );
        assert_eq!(m.initial_response("a", "x y"), Err(SaslError::BadToken));
        assert_eq!(m.initial_response("a", "tök"), Err(SaslError::BadToken));
        assert!(m.initial_response("ålice", "a-b._~+/=").is_ok());
    }
}

#[test]
fn errors_never_show_the_token() {
    let err = OAuthMechanism::XOAuth2
        .initial_response("a", "secret-token\n")
        .unwrap_err();
    assert!(!format!("{err} {err:?}").contains("secret"));
}

#[test]
fn oauthbearer_is_preferred_and_a_wish_must_be_offered() {
    let both = |m: &str| m == "XOAUTH2" || m == "OAUTHBEARER";
    let google = OAuthMechanism::choose(None, both).unwrap();
    assert_eq!(google, OAuthMechanism::OAuthBearer);
    let microsoft = OAuthMechanism::choose(None, |m| m == "XOAUTH2").unwrap();
    assert_eq!(microsoft, OAuthMechanism::XOAuth2);
    assert_eq!(
        OAuthMechanism::choose(None, |m| m == "PLAIN"),
        Err(SaslError::NoMechanism)
    );
    assert_eq!(
        OAuthMechanism::choose(Some(OAuthMechanism::XOAuth2), both),
        Ok(OAuthMechanism::XOAuth2)
    );
    let err =
        OAuthMechanism::choose(Some(OAuthMechanism::OAuthBearer), |m| m == "XOAUTH2").unwrap_err();
    assert_eq!(
        err.to_string(),
        "the server does not offer AUTH=OAUTHBEARER"
    );
}

#[test]
fn error_answers_end_the_exchange() {
    assert_eq!(OAuthMechanism::XOAuth2.error_answer(), "");
    assert_eq!(decode(OAuthMechanism::OAuthBearer.error_answer()), [1]);
}

#[test]
fn googles_error_challenge_is_read() {
    // What Gmail sends after a refused XOAUTH2 response.
    let text = "eyJzdGF0dXMiOiI0MDAiLCJzY2hlbWVzIjoiQmVhcmVyIiwic2NvcGUiOiJodHRwczovL21haWwuZ29vZ2xlLmNvbS8ifQ==";
    let challenge = ErrorChallenge::parse(text).unwrap();
    assert_eq!(challenge.status.as_deref(), Some("400"));
    assert_eq!(challenge.schemes.as_deref(), Some("Bearer"));
    assert_eq!(challenge.scope.as_deref(), Some("https://mail.google.com/"));
    assert_eq!(
        challenge.summary().unwrap(),
        "status 400, scope https://mail.google.com/"
    );
    // Surrounding blanks (a trailing space before CRLF) are forgiven.
    assert_eq!(ErrorChallenge::parse(&format!(" {text} ")), Some(challenge));
}

#[test]
fn odd_challenges_give_what_they_can() {
    let numeric = ErrorChallenge::parse(&encode(r#"{"status":401,"extra":[1,2]}"#)).unwrap();
    assert_eq!(numeric.status.as_deref(), Some("401"));
    assert_eq!(numeric.summary().unwrap(), "status 401");
    let empty = ErrorChallenge::parse(&encode("{}")).unwrap();
    assert_eq!(empty, ErrorChallenge::default());
    assert_eq!(empty.summary(), None);
    for text in [
        "",
        "not base64!",
        &encode("[1]"),
        &encode("{\"status\":"),
        &encode("\"401\""),
    ] {
        assert_eq!(ErrorChallenge::parse(text), None, "{text:?}");
    }
    // Long or controlled values are cut and cleaned.
    let long = format!(r#"{{"scope":"{}\u0000\n"}}"#, "s".repeat(1000));
    let challenge = ErrorChallenge::parse(&encode(&long)).unwrap();
    assert_eq!(challenge.scope.unwrap(), "s".repeat(MAX_CHALLENGE_FIELD));
    let tricky = ErrorChallenge::parse(&encode(r#"{"status":"4\r\n01"}"#)).unwrap();
    assert_eq!(tricky.status.unwrap(), "4  01");
}

#[test]
fn refusals_keep_the_challenge_within_the_limit() {
    let challenge = ErrorChallenge {
        status: Some("401".into()),
        scope: Some("x".into()),
        schemes: None,
    };
    assert_eq!(
        refusal_text("[AUTHENTICATIONFAILED] no", Some(&challenge)),
        "[AUTHENTICATIONFAILED] no (status 401, scope x)"
    );
    assert_eq!(refusal_text("no", None), "no");
    assert_eq!(refusal_text("no", Some(&ErrorChallenge::default())), "no");
    let long = "é".repeat(MAX_SERVER_TEXT);
    let text = refusal_text(&long, Some(&challenge));
    assert!(text.len() <= MAX_SERVER_TEXT);
    assert!(text.ends_with(" (status 401, scope x)"), "{text}");
    assert_eq!(refusal_text(&long, None).len(), MAX_SERVER_TEXT);
}
