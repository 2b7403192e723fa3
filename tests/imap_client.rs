//! The IMAP client against a real Dovecot: login (password, OAuth2 tokens,
//! the fake authorization server's tokens), mailbox state, search,
//! summaries (server PREVIEW and local extraction), IDLE, NOTIFY, TLS, and
//! a server restart during IDLE. Timeouts only turn hangs into failures.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use lemonade::error::ErrorClass;
use lemonade::imap::{IdleEvent, ImapClient, ImapError};
use lemonade::net::{Security, TlsConnector, Upstream};
use lemonade::sasl::OAuthMechanism;
use support::dovecot::Dovecot;
use support::oauth::jwt_claims;
use support::oauth_server::{redirect_location, s256_challenge, FakeAuthServer};

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
