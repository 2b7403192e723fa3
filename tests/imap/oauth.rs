//! OAuth2 against a real Dovecot's `oauth2` passdb: tokens it must take
//! and refuse, and the fake authorization server's tokens logging in.

use std::collections::HashMap;

use lemonade::error::ErrorClass;
use lemonade::imap::ImapClient;
use lemonade::sasl::OAuthMechanism;

use super::{connector, plain, HANG, PASS, USER};
use crate::support::dovecot::Dovecot;
use crate::support::oauth::jwt_claims;
use crate::support::oauth_server::{redirect_location, s256_challenge, FakeAuthServer};

#[tokio::test]
async fn oauth2_tokens_log_in_and_bad_ones_are_auth_errors() {
    let dovecot = Dovecot::builder().oauth2().start();
    dovecot.add_user(USER, PASS);
    let jwt = dovecot.jwt();
    let connect = || async {
        ImapClient::connect(&plain(&dovecot), &connector(), HANG)
            .await
            .unwrap()
    };
    let refused = jwt.refused_tokens(USER);
    for mechanism in [OAuthMechanism::XOAuth2, OAuthMechanism::OAuthBearer] {
        let mut client = connect().await;
        client
            .authenticate_oauth(Some(mechanism), USER, &jwt.token(USER, 300))
            .await
            .unwrap_or_else(|e| panic!("{mechanism}: {e}\n{}", dovecot.log()));
        assert!(client.capabilities().has("IDLE"));
        client.examine("INBOX").await.unwrap();
        client.logout().await;
        for (what, token) in &refused {
            let mut client = connect().await;
            let err = client
                .authenticate_oauth(Some(mechanism), USER, token)
                .await
                .unwrap_err();
            assert_eq!(err.class(), ErrorClass::Auth, "{mechanism} {what}: {err:?}");
            assert!(!format!("{err} {err:?}").contains(token.as_str()));
            // The error challenge was read: its status is in the message.
            assert!(err.to_string().contains("(status "), "{err}");
            client.noop().await.unwrap();
        }
    }
    // Each was refused for the reason meant.
    let log = dovecot.log();
    for reason in jwt.dovecot_refusals(USER) {
        assert_eq!(log.matches(&reason).count(), 2, "{reason}:\n{log}");
    }
    // The passwd-file users still log in with a password.
    let mut client = connect().await;
    client.login(USER, PASS).await.unwrap();
    client.logout().await;
}

const CLIENT_ID: &str = "lemonade-test";
const CLIENT_SECRET: &str = "client-s3cret";
/// Where the fake authorization server sends the browser back (its query
/// must survive the code being appended).
const REDIRECT: &str = "http://127.0.0.1:9/callback?from=test";
const VERIFIER: &str = "a-pkce-verifier-of-at-least-43-characters-0123456789";

/// POSTs a form, with the client's credentials by HTTP Basic when
/// `basic`, else in the form; the status and the JSON answer (null if none).
async fn post_form(url: &str, basic: bool, form: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let mut fields = form.to_vec();
    let mut request = reqwest::Client::new().post(url);
    if basic {
        request = request.basic_auth(CLIENT_ID, Some(CLIENT_SECRET));
    } else {
        fields.extend([("client_id", CLIENT_ID), ("client_secret", CLIENT_SECRET)]);
    }
    let response = request.form(&fields).send().await.unwrap();
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or_default())
}

/// Opens the authorization URL as a browser would; the query of the
/// redirect back to [`REDIRECT`].
async fn authorize(server: &FakeAuthServer, challenge: &str) -> HashMap<String, String> {
    let mut url = url::Url::parse(&server.authorize_url()).unwrap();
    url.query_pairs_mut().extend_pairs([
        ("response_type", "code"),
        ("client_id", CLIENT_ID),
        ("redirect_uri", REDIRECT),
        ("scope", "openid email"),
        ("state", "st4te"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
        ("access_type", "offline"),
    ]);
    let location = redirect_location(url.as_str()).await;
    assert!(location.starts_with(REDIRECT), "{location}");
    let back = url::Url::parse(&location).unwrap();
    let params: HashMap<String, String> = back.query_pairs().into_owned().collect();
    assert_eq!((&*params["from"], &*params["state"]), ("test", "st4te"));
    params
}

/// Signs in through `/authorize` (refused until a user is set) and
/// exchanges the code with Basic client authentication; the tokens.
async fn browser_sign_in(server: &FakeAuthServer) -> serde_json::Value {
    let challenge = s256_challenge(VERIFIER);
    let denied = authorize(server, &challenge).await;
    assert_eq!(denied["error"], "access_denied");
    server.set_user(USER);
    let code = &authorize(server, &challenge).await["code"];
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    let (status, tokens) = post_form(&server.token_url(), true, &form).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], "openid email");
    let id = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["email"], USER);
    assert_eq!(id["aud"], CLIENT_ID);
    tokens
}

/// A code issued as an app gets it: a wrong verifier is refused without
/// using the code up, the right one exchanges it (form client
/// authentication, no redirect URI), and a second exchange is refused.
async fn app_code_exchange(server: &FakeAuthServer) -> serde_json::Value {
    let code = server.issue_code(USER, "", Some(&s256_challenge(VERIFIER)));
    let wrong = format!("{VERIFIER}-wrong");
    let mut answers = Vec::new();
    for verifier in [wrong.as_str(), VERIFIER, VERIFIER] {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", verifier),
        ];
        answers.push(post_form(&server.token_url(), false, &form).await);
    }
    for (status, answer) in [&answers[0], &answers[2]] {
        assert_eq!((*status, &answer["error"]), (400, &"invalid_grant".into()));
    }
    assert_eq!(answers[1].0, 200, "{}", answers[1].1);
    answers.swap_remove(1).1
}

/// Refreshes with `refresh_token`; the status and the answer.
async fn refresh(server: &FakeAuthServer, refresh_token: &str) -> (u16, serde_json::Value) {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ];
    post_form(&server.token_url(), false, &form).await
}

/// Rotation retires the used refresh token; a refused user, a wrong
/// client secret and a scripted outage are told apart. Returns the live
/// refresh token and the last answer.
async fn refresh_checks(server: &FakeAuthServer, first: &str) -> (String, serde_json::Value) {
    let (status, answer) = refresh(server, first).await;
    assert_eq!(status, 200, "{answer}");
    let rotated = answer["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rotated, first);
    assert_eq!(refresh(server, first).await.1["error"], "invalid_grant");
    server.refuse_refresh(USER);
    assert_eq!(refresh(server, &rotated).await.1["error"], "invalid_grant");
    server.allow_refresh(USER);
    server.fail_token_endpoint(1);
    let (status, outage) = refresh(server, &rotated).await;
    assert_eq!(status, 503);
    assert_eq!(outage["error"], "temporarily_unavailable");
    let form = [("grant_type", "refresh_token"), ("refresh_token", &rotated)];
    let request = reqwest::Client::new().post(server.token_url()).form(&form);
    let refused = request.basic_auth(CLIENT_ID, Some("wrong")).send().await;
    assert_eq!(refused.unwrap().status(), 401);
    server.set_rotation(false);
    let (status, answer) = refresh(server, &rotated).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.get("refresh_token").is_none(), "{answer}");
    // Outages and bad client credentials are not counted.
    server.wait_refreshes(4).await;
    assert_eq!(server.refresh_count(), 4);
    (rotated, answer)
}

/// The fake authorization server of the sign-in tests hands out tokens
/// Dovecot accepts (ES256, checked against the key file it reads): codes
/// from `/authorize` and from `issue_code` are exchanged once and only
/// with their PKCE verifier, refreshes rotate and fail as scripted,
/// revocation is recorded and ends the refresh token, and `/userinfo`
/// names the user of an access token.
#[tokio::test]
async fn fake_authorization_server_tokens_log_in_to_dovecot() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dovecot = Dovecot::builder().oauth2().start();
    assert_eq!(dovecot.jwt().alg(), "ES256");
    let server = FakeAuthServer::start(dovecot.jwt().clone(), CLIENT_ID, CLIENT_SECRET).await;
    let browser = browser_sign_in(&server).await;
    let app = app_code_exchange(&server).await;
    let (live, refreshed) = refresh_checks(&server, app["refresh_token"].as_str().unwrap()).await;
    for answer in [&browser, &app, &refreshed] {
        let token = answer["access_token"].as_str().unwrap();
        let mut client = ImapClient::connect(&plain(&dovecot), &connector(), HANG)
            .await
            .unwrap();
        client
            .authenticate_oauth(Some(OAuthMechanism::XOAuth2), USER, token)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", dovecot.log()));
        client.examine("INBOX").await.unwrap();
        client.logout().await;
    }
    let waiter = tokio::spawn({
        let server = server.clone();
        async move { server.wait_revoked(1).await }
    });
    let (status, _) = post_form(&server.revoke_url(), true, &[("token", &live)]).await;
    assert_eq!(status, 200);
    tokio::time::timeout(HANG, waiter).await.unwrap().unwrap();
    assert_eq!(server.revoked(), std::slice::from_ref(&live));
    assert_eq!(refresh(&server, &live).await.1["error"], "invalid_grant");
    let userinfo = |token: &str| {
        let request = reqwest::Client::new().get(server.userinfo_url());
        request.bearer_auth(token).send()
    };
    let access = refreshed["access_token"].as_str().unwrap();
    let me: serde_json::Value = userinfo(access).await.unwrap().json().await.unwrap();
    assert_eq!(me["email"], USER);
    assert_eq!(me["email_verified"], true);
    assert_eq!(userinfo("forged").await.unwrap().status(), 401);
}
