//! Sending pushes through `PushClient` to a real test push service: the body
//! decrypts with an independent implementation, the VAPID JWT verifies, each
//! push-service answer becomes the right outcome, and over HTTPS the push
//! goes by HTTP/2 or HTTP/1.1, whichever the service offers. Also: the
//! local APNs and FCM impersonations check tokens and payloads as Apple
//! and Google do.

use crate::support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::http::Version;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

use lemonade::notify::{
    topic_for, PushClient, PushClientConfig, PushOutcome, Urgency, VapidKey, VapidSigner,
    MAX_PLAINTEXT,
};
use lemonade::store::PushSubscription;
use support::certs::make_certificates;
use support::native_push::client::{apns_provider_token, compact_jwt, fcm_assertion, h2_client};
use support::native_push::{FakeApns, FakeFcm};
use support::oauth::unix_now;
use support::push::*;

const WAIT: Duration = Duration::from_secs(5);

struct Setup {
    receiver: PushReceiver,
    client: PushClient,
    _key_dir: tempfile::TempDir,
}

async fn setup(allow_private_endpoints: bool) -> Setup {
    setup_with(PushReceiver::start().await, allow_private_endpoints, None)
}

fn setup_with(
    receiver: PushReceiver,
    allow_private_endpoints: bool,
    extra_ca_file: Option<PathBuf>,
) -> Setup {
    let key_dir = tempfile::tempdir().unwrap();
    let key = VapidKey::load_or_generate(&key_dir.path().join("vapid.pem")).unwrap();
    let signer = Arc::new(VapidSigner::new(key, "mailto:ops@example.org").unwrap());
    let config = PushClientConfig {
        allow_private_endpoints,
        request_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(1),
        extra_ca_file,
    };
    Setup {
        receiver,
        client: PushClient::new(config, signer).unwrap(),
        _key_dir: key_dir,
    }
}

/// A push to an HTTPS push service offering `alpn`, trusted through
/// `push.extra_ca_file`: delivered, decrypted and verified, and the HTTP
/// version it went by.
async fn push_over_https(alpn: &[&[u8]]) -> Version {
    let certs = tempfile::tempdir().unwrap();
    make_certificates(certs.path(), "Push test CA");
    let receiver = PushReceiver::start_tls(certs.path(), alpn).await;
    let s = setup_with(receiver, true, Some(certs.path().join("ca.pem")));
    let device = TestDevice::new(&s.receiver);
    assert!(device.endpoint().starts_with("https://127.0.0.1:"));

    let outcome = send(&s.client, &device.subscription(), b"over TLS").await;
    assert_eq!(outcome, PushOutcome::Delivered);
    let push = device.next_push(WAIT).await;
    assert_eq!(push.plaintext, b"over TLS");
    assert_eq!(push.vapid_claims["aud"], s.receiver.origin());
    push.request.version
}

#[tokio::test]
async fn over_https_a_push_goes_by_http2_when_offered() {
    assert_eq!(
        push_over_https(&[b"h2", b"http/1.1"]).await,
        Version::HTTP_2
    );
}

#[tokio::test]
async fn over_https_a_push_goes_by_http1_when_only_that_is_offered() {
    assert_eq!(push_over_https(&[b"http/1.1"]).await, Version::HTTP_11);
}

/// A certificate the gateway does not trust: nothing is sent, and the push
/// is tried again later (the service may fix its certificate).
#[tokio::test]
async fn a_push_service_with_an_untrusted_certificate_gets_nothing() {
    let certs = tempfile::tempdir().unwrap();
    make_certificates(certs.path(), "Untrusted CA");
    let receiver = PushReceiver::start_tls(certs.path(), &[b"h2", b"http/1.1"]).await;
    let s = setup_with(receiver, true, None);
    let device = TestDevice::new(&s.receiver);
    assert_eq!(
        send(&s.client, &device.subscription(), b"x").await,
        PushOutcome::Retry { after: None }
    );
    assert!(s.receiver.all_requests().is_empty());
}

async fn send(
    client: &PushClient,
    subscription: &PushSubscription,
    plaintext: &[u8],
) -> PushOutcome {
    client
        .send(subscription, plaintext, 3600, Urgency::Normal, "")
        .await
}

#[tokio::test]
async fn a_push_arrives_decryptable_and_signed() {
    let s = setup(true).await;
    let device =
        TestDevice::new(&s.receiver).expecting_vapid_key(s.client.signer().key().public_key());
    let plaintext = br#"{"v":1,"type":"wake","account_id":"a1"}"#;
    let topic = topic_for("a1", "INBOX");

    let outcome = s
        .client
        .send(
            &device.subscription(),
            plaintext,
            600,
            Urgency::High,
            &topic,
        )
        .await;
    assert_eq!(outcome, PushOutcome::Delivered);

    let push = device.next_push(WAIT).await;
    assert_eq!(push.plaintext, plaintext);
    assert_eq!(push.payload["account_id"], "a1");
    assert_eq!(push.ttl, Some(600));
    assert_eq!(push.urgency.as_deref(), Some("high"));
    assert_eq!(push.topic.as_deref(), Some(topic.as_str()));
    assert_eq!(push.vapid_claims["aud"], s.receiver.origin());
    assert_eq!(push.vapid_claims["sub"], "mailto:ops@example.org");
    assert_eq!(
        push.request.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(device.push_count(), 1);
}

#[tokio::test]
async fn the_vapid_token_is_reused_for_the_same_origin() {
    let s = setup(true).await;
    let first = TestDevice::new(&s.receiver);
    let second = TestDevice::new(&s.receiver);
    assert_eq!(
        send(&s.client, &first.subscription(), b"1").await,
        PushOutcome::Delivered
    );
    assert_eq!(
        send(&s.client, &second.subscription(), b"2").await,
        PushOutcome::Delivered
    );
    let a = first.next_push(WAIT).await;
    let b = second.next_push(WAIT).await;
    assert_eq!(
        a.request.header("authorization"),
        b.request.header("authorization")
    );
    assert!(
        a.request.header("topic").is_none(),
        "empty topic sends no header"
    );
}

#[tokio::test]
async fn the_largest_payload_fits_and_a_larger_one_is_too_large() {
    let s = setup(true).await;
    let device = TestDevice::new(&s.receiver);
    let largest = vec![b'x'; MAX_PLAINTEXT];
    assert_eq!(
        send(&s.client, &device.subscription(), &largest).await,
        PushOutcome::Delivered
    );
    let push = device.next_push(WAIT).await;
    assert_eq!(push.request.body.len(), 4096);
    assert_eq!(push.plaintext, largest);

    let too_large = vec![b'x'; MAX_PLAINTEXT + 1];
    assert_eq!(
        send(&s.client, &device.subscription(), &too_large).await,
        PushOutcome::TooLarge
    );
    assert_eq!(
        s.receiver.requests_for(device.path()).len(),
        1,
        "nothing sent"
    );
}

#[tokio::test]
async fn answers_become_outcomes() {
    let s = setup(true).await;
    let device = TestDevice::new(&s.receiver);
    let in_a_minute = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(61));
    s.receiver.respond_with(
        device.path(),
        [
            Answer::status(410),
            Answer::status(404),
            Answer::status(500),
            Answer::status(503).retry_after("30"),
            Answer::status(429).retry_after("7"),
            Answer::status(429).retry_after(in_a_minute),
            Answer::status(413),
            Answer::status(400),
            Answer::status(403),
            Answer::status(301),
        ],
    );
    let sub = device.subscription();
    assert_eq!(send(&s.client, &sub, b"x").await, PushOutcome::Gone);
    assert_eq!(send(&s.client, &sub, b"x").await, PushOutcome::Gone);
    assert_eq!(
        send(&s.client, &sub, b"x").await,
        PushOutcome::Retry { after: None }
    );
    assert_eq!(
        send(&s.client, &sub, b"x").await,
        PushOutcome::Retry {
            after: Some(Duration::from_secs(30))
        }
    );
    assert_eq!(
        send(&s.client, &sub, b"x").await,
        PushOutcome::Retry {
            after: Some(Duration::from_secs(7))
        }
    );
    match send(&s.client, &sub, b"x").await {
        PushOutcome::Retry { after: Some(after) } => {
            assert!(
                after > Duration::from_secs(50) && after <= Duration::from_secs(61),
                "{after:?}"
            )
        }
        other => panic!("expected a dated retry, got {other:?}"),
    }
    assert_eq!(send(&s.client, &sub, b"x").await, PushOutcome::TooLarge);
    assert_eq!(
        send(&s.client, &sub, b"x").await,
        PushOutcome::Rejected { status: 400 }
    );
    assert_eq!(
        send(&s.client, &sub, b"x").await,
        PushOutcome::Rejected { status: 403 }
    );
    assert_eq!(
        send(&s.client, &sub, b"x").await,
        PushOutcome::Rejected { status: 301 }
    );
    // The answers are used up: back to 201.
    assert_eq!(send(&s.client, &sub, b"ok").await, PushOutcome::Delivered);

    assert_eq!(
        s.receiver.requests_for(device.path()).len(),
        11,
        "no redirect followed"
    );
    assert_eq!(device.push_count(), 1);
    assert_eq!(device.next_push(WAIT).await.plaintext, b"ok");
}

#[tokio::test]
async fn a_retry_then_success() {
    let s = setup(true).await;
    let device = TestDevice::new(&s.receiver);
    s.receiver.respond_with(device.path(), [500, 201]);
    assert_eq!(
        send(&s.client, &device.subscription(), b"again").await,
        PushOutcome::Retry { after: None }
    );
    device.expect_no_push(Duration::from_millis(50)).await;
    assert_eq!(
        send(&s.client, &device.subscription(), b"again").await,
        PushOutcome::Delivered
    );
    assert_eq!(device.next_push(WAIT).await.plaintext, b"again");
}

#[tokio::test]
async fn an_unreachable_or_silent_push_service_means_retry() {
    let s = setup(true).await;
    let device = TestDevice::new(&s.receiver);

    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut sub = device.subscription();
    sub.endpoint = format!("http://127.0.0.1:{closed_port}/push/x");
    assert_eq!(
        send(&s.client, &sub, b"x").await,
        PushOutcome::Retry { after: None }
    );

    // Accepts connections and never answers: the request timeout applies.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    sub.endpoint = format!("http://{}/push/x", silent.local_addr().unwrap());
    let hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            open.push(stream);
        }
    });
    assert_eq!(send(&s.client, &sub, b"x").await, PushOutcome::TimedOut);
    hold.abort();
}

#[tokio::test]
async fn unusable_subscription_keys_mean_gone() {
    let s = setup(true).await;
    let device = TestDevice::new(&s.receiver);
    let mut sub = device.subscription();
    sub.p256dh[64] ^= 1; // off the curve
    assert_eq!(send(&s.client, &sub, b"x").await, PushOutcome::Gone);
    assert!(s.receiver.requests_for(device.path()).is_empty());
}

#[tokio::test]
async fn the_guard_refuses_http_and_private_literals_before_sending() {
    let s = setup(false).await;
    let device = TestDevice::new(&s.receiver);
    let mut sub = device.subscription();
    assert!(sub.endpoint.starts_with("http://127.0.0.1:"));
    assert_eq!(send(&s.client, &sub, b"x").await, PushOutcome::Blocked);
    sub.endpoint = format!("https://127.0.0.1:{}{}", s.receiver.port(), device.path());
    assert_eq!(send(&s.client, &sub, b"x").await, PushOutcome::Blocked);
    sub.endpoint = format!(
        "https://[::ffff:127.0.0.1]:{}{}",
        s.receiver.port(),
        device.path()
    );
    assert_eq!(send(&s.client, &sub, b"x").await, PushOutcome::Blocked);
    assert!(s.receiver.all_requests().is_empty());
}

#[tokio::test]
async fn the_guard_resolver_refuses_names_that_resolve_to_loopback() {
    let s = setup(false).await;
    let device = TestDevice::new(&s.receiver);
    let mut sub = device.subscription();
    // Passes the form check (https, a name), so only the resolver can stop it.
    sub.endpoint = format!("https://localhost:{}{}", s.receiver.port(), device.path());
    assert!(lemonade::notify::check_endpoint(&sub.endpoint, false).is_ok());
    assert_eq!(send(&s.client, &sub, b"x").await, PushOutcome::Blocked);
    assert!(s.receiver.all_requests().is_empty());
    assert!(
        lemonade::notify::check_endpoint_resolves(&sub.endpoint, false)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn the_subscription_json_looks_like_a_browsers() {
    let receiver = PushReceiver::start().await;
    let device = TestDevice::new(&receiver);
    let json = device.subscription_json();
    assert_eq!(json["endpoint"], device.endpoint());
    let p256dh = json["keys"]["p256dh"].as_str().unwrap();
    let auth = json["keys"]["auth"].as_str().unwrap();
    assert_eq!(p256dh.len(), 87);
    assert_eq!(auth.len(), 22);
    assert!(!p256dh.contains('=') && !p256dh.contains('+') && !p256dh.contains('/'));
    let sub = device.subscription();
    assert!(lemonade::notify::ece::validate_keys(&sub.p256dh, &sub.auth).is_ok());
}

/// The same token signed with a key of nobody's.
fn forged_apns_jwt(key_id: &str, team_id: &str) -> String {
    use p256::ecdsa::signature::Signer;
    let key = p256::ecdsa::SigningKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
    let header = json!({"alg": "ES256", "kid": key_id});
    let claims = json!({"iss": team_id, "iat": unix_now()});
    compact_jwt(header, claims, |m| {
        let signature: p256::ecdsa::Signature = key.sign(m);
        signature.to_bytes().to_vec()
    })
}

async fn apns_post(
    client: &reqwest::Client,
    apns: &FakeApns,
    device: &str,
    jwt: &str,
    payload: Value,
) -> reqwest::Response {
    let url = format!("{}/3/device/{device}", apns.base_url());
    let response = client
        .post(url)
        .header("authorization", format!("bearer {jwt}"))
        .header("apns-topic", "org.example.mail")
        .header("apns-push-type", "alert")
        .header("apns-priority", "10")
        .header("apns-collapse-id", "inbox")
        .body(payload.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), Version::HTTP_2);
    response
}

async fn reason(response: reqwest::Response) -> Value {
    response.json::<Value>().await.unwrap()["reason"].clone()
}

async fn check_fake_apns(client: &reqwest::Client, certs: &Path) {
    let apns = FakeApns::start(certs).await;
    let dir = tempfile::tempdir().unwrap();
    let (p8, key_id, team_id) = apns.make_key(dir.path());
    let pem = std::fs::read_to_string(&p8).unwrap();
    let apple = "-----BEGIN PRIVATE KEY-----\nMIGTAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBHkwdwIBAQQg";
    assert!(pem.starts_with(apple), "{pem}");
    assert_eq!((key_id.len(), team_id.len()), (10, 10));
    let jwt = apns_provider_token(&p8, &key_id, &team_id);
    let device = "0a".repeat(32);
    let alert = json!({"aps": {"alert": "New mail", "mutable-content": 1}});

    let response = apns_post(client, &apns, &device, &jwt, alert.clone()).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("apns-id"));
    tokio::time::timeout(WAIT, apns.wait_deliveries(1))
        .await
        .unwrap();
    let delivered = &apns.deliveries()[0];
    assert_eq!(
        (delivered.topic.as_str(), delivered.push_type.as_str()),
        ("org.example.mail", "alert")
    );
    assert_eq!(delivered.collapse_id.as_deref(), Some("inbox"));
    assert_eq!(delivered.body, alert);

    let forged = forged_apns_jwt(&key_id, &team_id);
    let response = apns_post(client, &apns, &device, &forged, alert.clone()).await;
    assert_eq!(response.status(), 403);
    assert_eq!(reason(response).await, "InvalidProviderToken");

    apns.respond_with(&device, [(410, "Unregistered")]);
    let response = apns_post(client, &apns, &device, &jwt, alert.clone()).await;
    assert_eq!(response.status(), 410);
    let body = response.json::<Value>().await.unwrap();
    assert_eq!(body["reason"], "Unregistered");
    assert!(body["timestamp"].is_u64(), "{body}");
    let response = apns_post(client, &apns, &device, &jwt, alert).await;
    assert_eq!(response.status(), 200, "after the script, 200 again");

    let large = json!({"aps": {"alert": "x".repeat(5 * 1024)}});
    let response = apns_post(client, &apns, &device, &jwt, large).await;
    assert_eq!(response.status(), 413);
    assert_eq!(reason(response).await, "PayloadTooLarge");

    let statuses: Vec<u16> = apns.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 403, 410, 200, 413]);
    assert_eq!(apns.jwts_seen(), [jwt, forged]);
    assert_eq!(apns.connections(), 1, "every push on one HTTP/2 connection");
}

async fn fcm_token(client: &reqwest::Client, token_uri: &str, assertion: &str) -> (u16, Value) {
    let grant_type = "urn:ietf:params:oauth:grant-type:jwt-bearer";
    let form = [("grant_type", grant_type), ("assertion", assertion)];
    let response = client.post(token_uri).form(&form).send().await.unwrap();
    assert_eq!(response.version(), Version::HTTP_2);
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn fcm_send(
    client: &reqwest::Client,
    fcm: &FakeFcm,
    bearer: &str,
    token: &str,
) -> (u16, Value) {
    let url = format!("{}/v1/projects/lemonade-test/messages:send", fcm.base_url());
    let message = json!({"message": {
        "token": token,
        "data": {"m": "Y2lwaGVydGV4dA"},
        "android": {"priority": "high", "ttl": "86400s", "collapse_key": "inbox"},
    }});
    let response = client
        .post(url)
        .bearer_auth(bearer)
        .json(&message)
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), Version::HTTP_2);
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn check_fake_fcm(client: &reqwest::Client, certs: &Path) {
    let fcm = FakeFcm::start(certs).await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = std::fs::read(fcm.make_service_account(dir.path())).unwrap();
    let key_file: Value = serde_json::from_slice(&key_file).unwrap();
    let token_uri = key_file["token_uri"].as_str().unwrap().to_owned();
    assert_eq!(token_uri, format!("{}/token", fcm.base_url()));

    let assertion = fcm_assertion(&key_file);
    let (signed, _) = assertion.rsplit_once('.').unwrap();
    let tampered = format!("{signed}.{}", URL_SAFE_NO_PAD.encode([7u8; 256]));
    let (status, refused) = fcm_token(client, &token_uri, &tampered).await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, answer) = fcm_token(client, &token_uri, &assertion).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (answer["token_type"].as_str(), answer["expires_in"].as_u64()),
        (Some("Bearer"), Some(3600))
    );
    assert_eq!(fcm.token_requests(), 1);
    let access_token = answer["access_token"].as_str().unwrap();

    let (status, sent) = fcm_send(client, &fcm, access_token, "fcm-device-1").await;
    assert_eq!(status, 200, "{sent}");
    assert!(sent["name"]
        .as_str()
        .unwrap()
        .starts_with("projects/lemonade-test/messages/"));
    tokio::time::timeout(WAIT, fcm.wait_deliveries(1))
        .await
        .unwrap();
    assert_eq!(fcm.deliveries()[0].message["data"]["m"], "Y2lwaGVydGV4dA");

    let (status, refused) = fcm_send(client, &fcm, "ya29.unknown", "fcm-device-1").await;
    assert_eq!(
        (status, refused["error"]["status"].as_str()),
        (401, Some("UNAUTHENTICATED"))
    );

    fcm.respond_with("fcm-device-gone", [(404, "UNREGISTERED")]);
    let (status, refused) = fcm_send(client, &fcm, access_token, "fcm-device-gone").await;
    assert_eq!(status, 404);
    let detail = &refused["error"]["details"][0];
    assert_eq!(
        detail["@type"],
        "type.googleapis.com/google.firebase.fcm.v1.FcmError"
    );
    assert_eq!(detail["errorCode"], "UNREGISTERED");
    let statuses: Vec<u16> = fcm.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 401, 404]);
}

#[tokio::test]
async fn native_fakes_check_what_apple_and_google_check() {
    let certs = tempfile::tempdir().unwrap();
    make_certificates(certs.path(), "Native push test CA");
    let client = h2_client(&certs.path().join("ca.pem"));
    check_fake_apns(&client, certs.path()).await;
    check_fake_fcm(&client, certs.path()).await;
}
