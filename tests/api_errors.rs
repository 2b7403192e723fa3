//! Bad requests get a clear error and change nothing: against a real Dovecot
//! for the login checks, with the SSRF guard on for the endpoint checks.
//! Also home of the API contract tests (`contract/`), to save a binary.

use crate::support;

#[path = "contract/mod.rs"]
mod contract;
#[path = "api/device_rules.rs"]
mod device_rules;
#[path = "api/registration.rs"]
mod registration;

use lemonade::error_code::ErrorCode;
use reqwest::Method;
use serde_json::{json, Value};
use support::api::{error_code, raw_post, stored_accounts};
use support::dovecot::Dovecot;
use support::gateway::{account_body, data_dir, test_config, Gateway};
use support::push::{PushReceiver, TestDevice};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_refuses_bad_credentials_and_servers_and_stores_nothing() {
    let dovecot = Dovecot::start();
    dovecot.add_user("alice", "secret");
    let (_tmp, dir) = data_dir();
    let gateway = Gateway::start(&dir).await;
    let (host, port) = (dovecot.host(), dovecot.imap_port());

    let (status, body) = gateway
        .post(
            "/v1/accounts",
            None,
            &account_body(host, port, "alice", "wrong"),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (422, "imap_auth_failed"),
        "{body}"
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let (status, body) = gateway
        .post(
            "/v1/accounts",
            None,
            &account_body(host, closed_port, "alice", "secret"),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (502, "imap_unreachable"),
        "{body}"
    );

    // The IMAP login works; the SMTP one (Dovecot's submission) does not,
    // or nothing listens for it.
    let submission = |port: u16, password: &str| {
        json!({"host": host, "port": port, "security": "plain",
               "username": "alice", "password": password})
    };
    let mut smtp_wrong = account_body(host, port, "alice", "secret");
    smtp_wrong["smtp"] = submission(dovecot.submission_port(), "wrong");
    let (status, body) = gateway.post("/v1/accounts", None, &smtp_wrong).await;
    assert_eq!(
        (status, error_code(&body)),
        (422, "smtp_auth_failed"),
        "{body}"
    );
    let mut smtp_closed = account_body(host, port, "alice", "secret");
    smtp_closed["smtp"] = submission(closed_port, "secret");
    let (status, body) = gateway.post("/v1/accounts", None, &smtp_closed).await;
    assert_eq!(
        (status, error_code(&body)),
        (502, "smtp_unreachable"),
        "{body}"
    );

    let mut bad_host = account_body(host, port, "alice", "secret");
    bad_host["imap"]["host"] = json!("imap.example.org\r\nA1 LOGOUT");
    let (status, body) = gateway.post("/v1/accounts", None, &bad_host).await;
    assert_eq!((status, error_code(&body)), (422, "invalid_host"), "{body}");

    let mut bad_email = account_body(host, port, "alice", "secret");
    bad_email["email"] = json!("not an address");
    let (status, _) = gateway.post("/v1/accounts", None, &bad_email).await;
    assert_eq!(status, 422);

    let mut bad_security = account_body(host, port, "alice", "secret");
    bad_security["imap"]["security"] = json!("carrier-pigeon");
    let (status, body) = gateway.post("/v1/accounts", None, &bad_security).await;
    assert_eq!((status, error_code(&body)), (400, "invalid_body"), "{body}");

    let (status, body) = raw_post(
        &gateway,
        "/v1/accounts",
        None,
        "application/json",
        b"{\"email\": ".to_vec(),
    )
    .await;
    assert_eq!(
        (status, error_code(&body)),
        (400, "malformed_json"),
        "{body}"
    );
    let (status, _) = raw_post(&gateway, "/v1/accounts", None, "text/plain", b"{}".to_vec()).await;
    assert_eq!(status, 415);
    let huge = vec![b' '; 200 * 1024];
    let (status, body) = raw_post(&gateway, "/v1/accounts", None, "application/json", huge).await;
    assert_eq!(
        (status, error_code(&body)),
        (413, "body_too_large"),
        "{body}"
    );

    gateway.stop().await;
    assert_eq!(stored_accounts(&dir).await, 0);

    // A login refused too often is not tried again until its window ends,
    // whatever the password; other logins are not affected.
    let mut config = test_config(&dir);
    config.api.login_failures_allowed = 2;
    let gateway = Gateway::start_with(config).await;
    for _ in 0..2 {
        let wrong = account_body(host, port, "alice", "wrong");
        let (status, body) = gateway.post("/v1/accounts", None, &wrong).await;
        assert_eq!((status, error_code(&body)), (422, "imap_auth_failed"));
    }
    let response = gateway
        .http
        .post(gateway.at("/v1/accounts"))
        .json(&account_body(host, port, "alice", "secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    let wait: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&wait), "{wait}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), "too_many_failed_logins");
    dovecot.add_user("carol", "pass");
    let carol = account_body(host, port, "carol", "pass");
    let (status, body) = gateway.post("/v1/accounts", None, &carol).await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = gateway
        .delete("/v1/accounts/me", body["token"].as_str())
        .await;
    assert_eq!(status, 204);
    gateway.stop().await;
    assert_eq!(stored_accounts(&dir).await, 0);

    // With plaintext upstreams disallowed (the default), "plain" is refused before any login.
    let mut config = test_config(&dir);
    config.upstream.allow_plaintext = false;
    let gateway = Gateway::start_with(config).await;
    let (status, body) = gateway
        .post(
            "/v1/accounts",
            None,
            &account_body(host, port, "alice", "secret"),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (422, "plaintext_not_allowed"),
        "{body}"
    );
    gateway.stop().await;
    assert_eq!(stored_accounts(&dir).await, 0);

    // With private hosts disallowed (the default), a server on loopback is
    // refused before any connection, IMAP or SMTP, by address or by name.
    let mut config = test_config(&dir);
    config.upstream.allow_private_hosts = false;
    let gateway = Gateway::start_with(config).await;
    // A listener of our own stands for the servers: nothing may connect to it.
    let servers = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    servers.set_nonblocking(true).unwrap();
    let servers_port = servers.local_addr().unwrap().port();
    for imap_host in [host, "localhost"] {
        let imap_only = account_body(imap_host, servers_port, "alice", "secret");
        let (status, body) = gateway.post("/v1/accounts", None, &imap_only).await;
        assert_eq!(
            (status, error_code(&body)),
            (422, "imap_host_not_public"),
            "{body}"
        );
    }
    let mut with_smtp = account_body(host, servers_port, "alice", "secret");
    with_smtp["smtp"] = with_smtp["imap"].clone();
    let (status, body) = gateway.post("/v1/accounts", None, &with_smtp).await;
    assert_eq!(
        (status, error_code(&body)),
        (422, "smtp_host_not_public"),
        "{body}"
    );
    let accepted = servers.accept();
    assert!(
        matches!(&accepted, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "something connected: {accepted:?}"
    );
    gateway.stop().await;
    assert_eq!(stored_accounts(&dir).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_devices_are_checked() {
    let dovecot = Dovecot::start();
    dovecot.add_user("alice", "secret");
    dovecot.add_user("bob", "hunter2");
    let receiver = PushReceiver::start().await;
    let (_tmp, dir) = data_dir();
    let mut config = test_config(&dir);
    config.push.allow_private_endpoints = false;
    let gateway = Gateway::start_with(config).await;
    let (_, alice) = gateway
        .register(dovecot.host(), dovecot.imap_port(), "alice", "secret")
        .await;
    let (_, bob) = gateway
        .register(dovecot.host(), dovecot.imap_port(), "bob", "hunter2")
        .await;

    // Missing, malformed and unknown tokens.
    let (status, body) = gateway.get("/v1/accounts/me", None).await;
    assert_eq!((status, error_code(&body)), (401, "unauthorized"));
    let (status, _) = gateway
        .get("/v1/accounts/me", Some("lmn_not-a-token"))
        .await;
    assert_eq!(status, 401);
    let response = gateway
        .http
        .get(gateway.at("/v1/accounts/me"))
        .header("authorization", format!("Basic {alice}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let (status, _) = gateway.delete("/v1/accounts/me", Some("wrong")).await;
    assert_eq!(status, 401);
    let (status, me) = gateway.get("/v1/accounts/me", Some(&alice)).await;
    assert_eq!(status, 200);
    assert_eq!(me["email"], "alice@test.local");

    let device = TestDevice::new(&receiver);
    let good = device.subscription_json();
    let register = |subscription: Value| json!({"subscription": subscription, "mailboxes": ["INBOX"], "payload": "preview"});
    let refused = [
        // http endpoint / loopback address with the guard on
        (
            "http endpoint",
            json!({"endpoint": "http://push.example.org/x", "keys": good["keys"]}),
        ),
        (
            "loopback",
            json!({"endpoint": good["endpoint"].as_str().unwrap().replace("http://", "https://"), "keys": good["keys"]}),
        ),
        (
            "private",
            json!({"endpoint": "https://10.1.2.3/push/x", "keys": good["keys"]}),
        ),
        (
            "link-local",
            json!({"endpoint": "https://[fe80::1]/push/x", "keys": good["keys"]}),
        ),
        (
            "resolves to loopback",
            json!({"endpoint": "https://localhost/push/x", "keys": good["keys"]}),
        ),
        (
            "not a url",
            json!({"endpoint": "push me", "keys": good["keys"]}),
        ),
        (
            "point off the curve",
            json!({"endpoint": "https://push.example.org/x", "keys": {"p256dh": format!("BA{}", "A".repeat(85)), "auth": good["keys"]["auth"]}}),
        ),
        (
            "short auth",
            json!({"endpoint": "https://push.example.org/x", "keys": {"p256dh": good["keys"]["p256dh"], "auth": "AAAA"}}),
        ),
        (
            "not base64",
            json!({"endpoint": "https://push.example.org/x", "keys": {"p256dh": "!!", "auth": "??"}}),
        ),
    ];
    for (what, subscription) in refused {
        let (status, body) = gateway
            .post("/v1/devices", Some(&alice), &register(subscription))
            .await;
        assert_eq!(status, 422, "{what}: {body}");
        assert!(!error_code(&body).is_empty(), "{what}: {body}");
    }
    let (status, body) = gateway
        .post(
            "/v1/devices",
            Some(&alice),
            &json!({"subscription": good, "payload": "everything"}),
        )
        .await;
    assert_eq!((status, error_code(&body)), (400, "invalid_body"), "{body}");
    let (status, _) = gateway
        .post(
            "/v1/devices",
            Some(&alice),
            &json!({"subscription": good, "mailboxes": []}),
        )
        .await;
    assert_eq!(status, 422);
    let (status, _) = gateway
        .post("/v1/devices", None, &register(good.clone()))
        .await;
    assert_eq!(status, 401);
    let (_, me) = gateway.get("/v1/accounts/me", Some(&alice)).await;
    assert_eq!(me["devices"], 0, "a refused device was stored: {me}");

    // A device of one account cannot be deleted with another account's
    // token, nor listed with it.
    gateway.stop().await;
    let mut config = test_config(&dir);
    config.push.max_devices_per_account = 2;
    let gateway = Gateway::start_with(config).await;
    let device_id = gateway
        .add_device(&alice, good.clone(), &["INBOX"], "preview")
        .await;
    let (status, body) = gateway
        .delete(&format!("/v1/devices/{device_id}"), Some(&bob))
        .await;
    assert_eq!((status, error_code(&body)), (404, "not_found"));
    let (status, _) = gateway
        .delete("/v1/devices/no-such-device", Some(&alice))
        .await;
    assert_eq!(status, 404);
    let (_, me) = gateway.get("/v1/accounts/me", Some(&alice)).await;
    assert_eq!(me["devices"], 1);
    // Each account lists its own devices, without their endpoints.
    let (status, listed) = gateway.get("/v1/devices", Some(&alice)).await;
    assert_eq!(status, 200, "{listed}");
    let listed = listed["devices"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["device_id"], device_id.as_str());
    assert_eq!(listed[0]["push_service"], receiver.origin().as_str());
    assert_eq!(listed[0]["mailboxes"], json!(["INBOX"]));
    assert_eq!(listed[0]["payload"], "preview");
    assert!(listed[0]["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(!listed[0].to_string().contains(device.path()));
    let (status, listed) = gateway.get("/v1/devices", Some(&bob)).await;
    assert_eq!((status, listed["devices"].clone()), (200, json!([])));
    let (status, _) = gateway.get("/v1/devices", None).await;
    assert_eq!(status, 401);
    let (status, _) = gateway
        .delete(&format!("/v1/devices/{device_id}"), Some(&alice))
        .await;
    assert_eq!(status, 204);
    let (_, listed) = gateway.get("/v1/devices", Some(&alice)).await;
    assert_eq!(listed["devices"], json!([]));

    // At most `push.max_devices_per_account` devices; registering one of
    // them again replaces it and is not refused.
    let first = gateway
        .add_device(&alice, good.clone(), &["INBOX"], "preview")
        .await;
    let second = TestDevice::new(&receiver);
    gateway
        .add_device(&alice, second.subscription_json(), &["INBOX"], "count")
        .await;
    let third = TestDevice::new(&receiver);
    let (status, body) = gateway
        .post(
            "/v1/devices",
            Some(&alice),
            &register(third.subscription_json()),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (422, "too_many_devices"),
        "{body}"
    );
    let again = gateway
        .add_device(&alice, good, &["INBOX"], "headers")
        .await;
    assert_eq!(again, first);
    let (_, listed) = gateway.get("/v1/devices", Some(&alice)).await;
    assert_eq!(listed["devices"].as_array().unwrap().len(), 2, "{listed}");

    // Tokens are revoked all but the caller's (after a phone was lost), or
    // one by one; the account and its devices stay.
    let (_, second_token) = gateway
        .register(dovecot.host(), dovecot.imap_port(), "alice", "secret")
        .await;
    let (_, third_token) = gateway
        .register(dovecot.host(), dovecot.imap_port(), "alice", "secret")
        .await;
    let (status, body) = gateway.delete("/v1/tokens", Some(&third_token)).await;
    assert_eq!((status, body["revoked"].clone()), (200, json!(2)), "{body}");
    for revoked in [&alice, &second_token] {
        let (status, _) = gateway.get("/v1/accounts/me", Some(revoked)).await;
        assert_eq!(status, 401);
    }
    let (status, me) = gateway.get("/v1/accounts/me", Some(&third_token)).await;
    assert_eq!((status, me["devices"].clone()), (200, json!(2)), "{me}");
    let (status, _) = gateway.get("/v1/accounts/me", Some(&bob)).await;
    assert_eq!(status, 200);
    let (status, _) = gateway
        .delete("/v1/tokens/current", Some(&third_token))
        .await;
    assert_eq!(status, 204);
    let (status, _) = gateway.get("/v1/accounts/me", Some(&third_token)).await;
    assert_eq!(status, 401);
    let (status, _) = gateway
        .delete("/v1/tokens/current", Some(&third_token))
        .await;
    assert_eq!(status, 401);
    let (_, alice) = gateway
        .register(dovecot.host(), dovecot.imap_port(), "alice", "secret")
        .await;
    let (_, me) = gateway.get("/v1/accounts/me", Some(&alice)).await;
    assert_eq!(me["devices"], 2, "{me}");

    // Deleting the account revokes its token.
    let (status, _) = gateway.delete("/v1/accounts/me", Some(&alice)).await;
    assert_eq!(status, 204);
    let (status, _) = gateway.get("/v1/accounts/me", Some(&alice)).await;
    assert_eq!(status, 401);
    let (status, _) = gateway.get("/v1/accounts/me", Some(&bob)).await;
    assert_eq!(status, 200);
    let (status, body) = gateway.get("/v1/no/such/route", None).await;
    assert_eq!((status, error_code(&body)), (404, "not_found"));
    gateway.stop().await;
}

/// Every error answer is JSON with a code: axum's own rejections (a path
/// value that does not parse, a body over the limit, a method the route
/// does not have) and the request timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_answer_is_json() {
    let dovecot = Dovecot::start();
    dovecot.add_user("alice", "secret");
    let (_tmp, dir) = data_dir();
    let gateway = Gateway::start(&dir).await;
    let (_, token) = gateway
        .register(dovecot.host(), dovecot.imap_port(), "alice", "secret")
        .await;
    let huge = format!("{{\"to\": \"{}\"}}", "x".repeat(200 * 1024)).into_bytes();
    let (status, body) =
        raw_post(&gateway, "/v1/send", Some(&token), "application/json", huge).await;
    assert_eq!(
        (status, error_code(&body)),
        (413, "body_too_large"),
        "{body}"
    );
    for path in [
        "/v1/messages/INBOX/not-a-uid",
        "/v1/messages/INBOX/not-a-uid/parts/1",
    ] {
        let response = gateway.http.get(gateway.at(path)).bearer_auth(&token);
        expect_error(response.send().await.unwrap(), "invalid_path").await;
    }

    // Routing: an unknown path, with a token or without (`/` is the web
    // app's, but not a file it lacks), and a method a route does not take
    // (with `Allow` kept).
    for path in ["/v1/no/such/route", "/v2/mailboxes", "/no-such-page.html"] {
        let response = gateway.http.get(gateway.at(path)).send().await.unwrap();
        expect_error(response, "not_found").await;
        let response = gateway.http.get(gateway.at(path)).bearer_auth(&token);
        expect_error(response.send().await.unwrap(), "not_found").await;
    }
    let response = gateway
        .http
        .delete(gateway.at("/v1/push/vapid"))
        .send()
        .await
        .unwrap();
    let allow = response.headers()["allow"].to_str().unwrap().to_owned();
    assert!(allow.contains("GET"), "{allow}");
    expect_error(response, "method_not_allowed").await;
    let response = gateway
        .http
        .put(gateway.at("/v1/messages/INBOX/1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    expect_error(response, "method_not_allowed").await;

    // A body of the wrong shape is a 400 naming the field, whichever way
    // the route decodes it (protobuf JSON, serde, the send request).
    let unknown_field: [(Method, &str, Value); 3] = [
        (
            Method::POST,
            "/v1/messages/flags",
            json!({"mailbox": "INBOX", "uids": [1], "add": ["\\Seen"], "colour": "red"}),
        ),
        (
            Method::PUT,
            "/v1/send/settings",
            json!({"save_sent": true, "colour": "red"}),
        ),
        (
            Method::POST,
            "/v1/send",
            json!({"to": ["bob@test.local"], "subject": "s", "text": "t", "colour": "red"}),
        ),
    ];
    for (method, path, body) in unknown_field {
        let request = gateway.http.request(method, gateway.at(path));
        let response = request
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let answer = expect_error(response, "invalid_body").await;
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains("colour"), "{path}: {message}");
    }
    let wrong_type = json!({"mailbox": "INBOX", "uids": "all", "add": ["\\Seen"]});
    let response = gateway
        .http
        .post(gateway.at("/v1/messages/flags"))
        .bearer_auth(&token)
        .json(&wrong_type)
        .send()
        .await
        .unwrap();
    expect_error(response, "invalid_body").await;
    gateway.stop().await;

    // A server that accepts and never greets holds a registration past the
    // request timeout.
    let mut config = test_config(&dir);
    config.api.request_timeout_secs = 1;
    let gateway = Gateway::start_with(config).await;
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let (status, body) = gateway
        .post(
            "/v1/accounts",
            None,
            &account_body(dovecot.host(), silent_port, "alice", "secret"),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (504, "request_timeout"),
        "{body}"
    );
    holder.abort();
    gateway.stop().await;
}

/// Asserts that `response` is the JSON error object with `code`, answered
/// with the status the error catalogue gives that code; returns the body.
async fn expect_error(response: reqwest::Response, code: &str) -> Value {
    let status = response.status();
    let url = response.url().path().to_owned();
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("application/json"),
        "{url}: {content_type}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), code, "{url}: {body}");
    let listed: ErrorCode = code.parse().expect("a code of the catalogue");
    assert_eq!(status, listed.status(), "{url}: {body}");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    body
}
