//! Limits that keep one client from abusing the API: refused logins and new
//! accounts per client (against a real Dovecot), and connections that are
//! idle or slow to send a request. And the API's HTTP manners: CORS, Vary,
//! request ids, no second compression of compressed media.

use crate::support;

use serde_json::Value;
use support::api::{error_code, stored_accounts};
use support::dovecot::Dovecot;
use support::gateway::{account_body, data_dir, test_config, Gateway};

/// A client refused too often is not let try any login until the window
/// ends (password spraying: one common password against many mailboxes);
/// what it claims in X-Forwarded-For does not matter unless its peer is a
/// trusted proxy, and then clients behind the proxy are counted apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_limits_refused_logins_per_client() {
    let dovecot = Dovecot::builder().without_auth_penalty().start();
    dovecot.add_user("alice", "secret");
    let (host, port) = (dovecot.host(), dovecot.imap_port());
    let (_tmp, dir) = data_dir();
    let post_from = |gateway: &Gateway, forwarded_for: Option<&str>, user: &str, password: &str| {
        let mut request = gateway
            .http
            .post(gateway.at("/v1/accounts"))
            .json(&account_body(host, port, user, password));
        if let Some(client) = forwarded_for {
            request = request.header("x-forwarded-for", client);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap();
            (status, error_code(&body).to_string())
        }
    };
    let refused = (422, "imap_auth_failed".to_string());
    let blocked = (429, "too_many_failed_logins".to_string());
    let mut config = test_config(&dir);
    config.api.client_failures_allowed = 3;
    let gateway = Gateway::start_with(config).await;
    for user in ["bob", "dave", "erin"] {
        assert_eq!(post_from(&gateway, None, user, "123456").await, refused);
    }
    assert_eq!(post_from(&gateway, None, "alice", "secret").await, blocked);
    assert_eq!(
        post_from(&gateway, Some("203.0.113.7"), "alice", "secret").await,
        blocked
    );
    gateway.stop().await;
    let mut config = test_config(&dir);
    config.api.client_failures_allowed = 3;
    config.api.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    let gateway = Gateway::start_with(config).await;
    for user in ["bob", "dave", "erin"] {
        let sprayer = Some("198.51.100.7");
        assert_eq!(post_from(&gateway, sprayer, user, "123456").await, refused);
    }
    assert_eq!(
        post_from(&gateway, Some("198.51.100.7"), "alice", "secret").await,
        blocked
    );
    // The sprayer cannot pass for someone else by writing an address first.
    assert_eq!(
        post_from(
            &gateway,
            Some("203.0.113.7, 198.51.100.7"),
            "alice",
            "secret"
        )
        .await,
        blocked
    );
    assert_eq!(
        post_from(&gateway, Some("198.51.100.8"), "alice", "secret").await,
        (201, String::new())
    );
    gateway.stop().await;
    assert_eq!(stored_accounts(&dir).await, 1);
}

/// One client registers at most `api.accounts_per_client` new accounts
/// within the window; registering a login that has an account already, or
/// a registration that fails, takes no place; other clients are counted
/// apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_accounts_per_client_are_limited() {
    let dovecot = Dovecot::builder().without_auth_penalty().start();
    for user in ["alice", "bob", "carol", "dave"] {
        dovecot.add_user(user, "secret");
    }
    let (host, port) = (dovecot.host(), dovecot.imap_port());
    let (_tmp, dir) = data_dir();
    let mut config = test_config(&dir);
    config.api.accounts_per_client = 2;
    config.api.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    let gateway = Gateway::start_with(config).await;
    let register = |client: &'static str, user: &'static str, password: &'static str| {
        let request = gateway
            .http
            .post(gateway.at("/v1/accounts"))
            .header("x-forwarded-for", client)
            .json(&account_body(host, port, user, password));
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
            let body: Value = response.json().await.unwrap();
            (status, error_code(&body).to_string(), retry_after)
        }
    };
    let phone = "198.51.100.7";
    let created = (201, String::new(), None);
    assert_eq!(register(phone, "alice", "secret").await, created);
    assert_eq!(register(phone, "alice", "secret").await, created);
    assert_eq!(register(phone, "bob", "wrong").await.1, "imap_auth_failed");
    assert_eq!(register(phone, "bob", "secret").await, created);
    let (status, code, retry_after) = register(phone, "carol", "secret").await;
    assert_eq!((status, code.as_str()), (429, "too_many_registrations"));
    let wait = retry_after.expect("Retry-After");
    assert!((1..=3600).contains(&wait), "{wait}");
    // Its accounts are still its own to register again.
    assert_eq!(register(phone, "bob", "secret").await, created);
    // An IPv6 client is counted by its /64.
    let v6 = ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3"];
    gateway.stop().await;
    assert_eq!(stored_accounts(&dir).await, 2);

    let mut config = test_config(&dir);
    config.api.accounts_per_client = 1;
    config.api.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    let gateway = Gateway::start_with(config).await;
    let register = |client: &'static str, user: &'static str| {
        let request = gateway
            .http
            .post(gateway.at("/v1/accounts"))
            .header("x-forwarded-for", client)
            .json(&account_body(host, port, user, "secret"));
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap();
            (status, error_code(&body).to_string())
        }
    };
    let created = (201, String::new());
    assert_eq!(register(v6[0], "carol").await, created);
    assert_eq!(
        register(v6[1], "dave").await,
        (429, "too_many_registrations".to_string())
    );
    assert_eq!(register(v6[2], "carol").await, created);
    assert_eq!(register("2001:db8:1:3::1", "dave").await, created);
    gateway.stop().await;
    assert_eq!(stored_accounts(&dir).await, 4);
}

/// A connection that does not finish a request's header in time, or stays
/// idle after its answer, is closed by the gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (_tmp, dir) = data_dir();
    let mut config = test_config(&dir);
    config.api.header_read_timeout_secs = 1;
    config.api.idle_timeout_secs = 1;
    let gateway = Gateway::start_with(config).await;
    let address = gateway.url.trim_start_matches("http://").to_string();
    // Everything until the gateway closes; the bound only turns a gateway
    // that never does into a failure.
    let until_closed = |mut socket: tokio::net::TcpStream| async move {
        let read_all = async {
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => return got,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(30), read_all)
            .await
            .expect("the gateway never closed the connection")
    };

    let mut slow = tokio::net::TcpStream::connect(&address).await.unwrap();
    slow.write_all(b"GET /healthz HT").await.unwrap();
    assert!(until_closed(slow).await.is_empty());

    let mut idle = tokio::net::TcpStream::connect(&address).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: gateway\r\n\r\n")
        .await
        .unwrap();
    let answer = String::from_utf8(until_closed(idle).await).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_vary_request_ids_and_compressed_media() {
    let dovecot = Dovecot::start();
    dovecot.add_user("alice", "secret");
    // A PDF part and a text part, both large and compressible.
    let filler = "the same line again and again\r\n".repeat(2000);
    let raw = format!(
        "From: a@example.org\r\nTo: alice@example.org\r\nSubject: report\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"B\"\r\n\r\n\
         --B\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{filler}\r\n\
         --B\r\nContent-Type: application/pdf; name=\"r.pdf\"\r\n\r\n%PDF-1.4\r\n{filler}\r\n--B--\r\n"
    );
    let uid = dovecot.append("alice", "secret", "INBOX", raw.as_bytes());
    let (_tmp, dir) = data_dir();
    let mut config = test_config(&dir);
    config.api.cors_origins = vec!["https://app.example.org".into()];
    let gateway = Gateway::start_with(config).await;
    let (_, token) = gateway
        .register(dovecot.host(), dovecot.imap_port(), "alice", "secret")
        .await;

    // A preflight from the allowed origin is answered for it; from another, not.
    let preflight = |origin: &'static str| {
        gateway
            .http
            .request(reqwest::Method::OPTIONS, gateway.at("/v1/accounts/me"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let allowed = preflight("https://app.example.org").await.unwrap();
    assert!(allowed.status().is_success(), "{}", allowed.status());
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example.org"
    );
    let allow_headers = allowed.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap();
    assert!(allow_headers.contains("authorization"), "{allow_headers}");
    let other = preflight("https://elsewhere.example.org").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());

    // Every answer has a request id (the client's own when it sent one)
    // and varies with Accept.
    let me = gateway
        .http
        .get(gateway.at("/v1/accounts/me"))
        .bearer_auth(&token)
        .header("origin", "https://app.example.org")
        .header("x-request-id", "phone-42")
        .send()
        .await
        .unwrap();
    assert_eq!(me.headers()["x-request-id"], "phone-42");
    assert_eq!(
        me.headers()["access-control-allow-origin"],
        "https://app.example.org"
    );
    let vary: Vec<String> = me
        .headers()
        .get_all("vary")
        .iter()
        .map(|v| v.to_str().unwrap().to_ascii_lowercase())
        .collect();
    assert!(
        vary.iter()
            .flat_map(|v| v.split(','))
            .any(|p| p.trim() == "accept"),
        "{vary:?}"
    );
    let missing = gateway
        .http
        .get(gateway.at("/nowhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.headers()["x-request-id"].len(), 24);

    // The PDF goes out as it is, with its length and ranges; the text is compressed.
    let part = |n: u32| {
        gateway
            .http
            .get(gateway.at(&format!("/v1/messages/INBOX/{uid}/parts/{n}")))
            .bearer_auth(&token)
            .header("accept-encoding", "gzip")
            .send()
    };
    let pdf = part(2).await.unwrap();
    assert_eq!(pdf.status().as_u16(), 200);
    assert!(pdf.headers().get("content-encoding").is_none());
    assert!(pdf.headers().get("content-length").is_some());
    assert_eq!(pdf.headers()["accept-ranges"], "bytes");
    let text = part(1).await.unwrap();
    assert_eq!(text.headers()["content-encoding"], "gzip");
    gateway.stop().await;
}
