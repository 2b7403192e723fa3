//! What APNs and FCM carry, and what they share: the payload (the same
//! plaintext as Web Push, encrypted to the device's keys with RFC 8291
//! `aes128gcm` when it has keys), the HTTP/2 client, and JWT signing.
//!
//! ```text
//!  with keys:     "lemonade": {"ciphertext": "<base64url aes128gcm record>"}
//!  without keys:  "lemonade": {"payload": {"v":1,"type":"mail",…}}   (wake and count tiers only)
//! ```
//!
//! APNs puts that object beside `aps` (an alert with generic text and
//! `mutable-content: 1`, so the app's notification service extension can
//! decrypt and show sender and subject); FCM puts its fields in `data`, as
//! strings (`payload` then holds the JSON text).

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

use super::ece::{self, EceError};
use super::PushOutcome;
use crate::store::PushSubscription;

/// Largest payload APNs and FCM take (bytes of the JSON body, or of
/// FCM's `data`).
pub const MAX_NATIVE_PAYLOAD: usize = 4096;

/// The object sent as `lemonade`: the ciphertext for a device with keys,
/// else the plaintext itself. Fails with the outcome to report.
pub fn sealed_payload(device: &PushSubscription, plaintext: &[u8]) -> Result<Value, PushOutcome> {
    if device.p256dh.is_empty() {
        let payload: Value = serde_json::from_slice(plaintext).map_err(|_| PushOutcome::Gone)?;
        return Ok(json!({ "payload": payload }));
    }
    match ece::encrypt(&device.p256dh, &device.auth, plaintext) {
        Ok(record) => Ok(json!({ "ciphertext": URL_SAFE_NO_PAD.encode(record) })),
        Err(EceError::PlaintextTooLarge { .. }) => Err(PushOutcome::TooLarge),
        Err(EceError::Crypto) => Err(PushOutcome::Retry { after: None }),
        Err(_) => Err(PushOutcome::Gone),
    }
}

/// The generic text of a notification, by the plaintext's `type`: what
/// Apple and Google may see instead of sender and subject.
pub fn generic_alert(plaintext: &[u8]) -> &'static str {
    let kind = serde_json::from_slice::<Value>(plaintext)
        .ok()
        .and_then(|v| v["type"].as_str().map(str::to_owned));
    match kind.as_deref() {
        Some("mail") | Some("wake") => "New mail",
        Some("test") => "Notifications work",
        _ => "Your mail account needs attention",
    }
}

/// The HTTP client of the native services: HTTP/2 over TLS (APNs speaks
/// nothing else; one connection per host, multiplexed), the web roots
/// plus `push.extra_ca_file`, no redirects.
pub fn http_client(
    extra_ca_file: Option<&std::path::Path>,
    timeout: Duration,
) -> Result<reqwest::Client, String> {
    let roots = crate::net::trusted_roots(extra_ca_file).map_err(|e| e.to_string())?;
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        // Known to be HTTP/2: pushes that start together wait for one
        // connection and share it, instead of each opening its own.
        .http2_prior_knowledge()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        .user_agent(concat!("lemonade/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| e.to_string())
}

/// `header.claims.signature` with `sign` over the first two, base64url.
pub fn jwt(
    header: &Value,
    claims: &Value,
    sign: impl FnOnce(&[u8]) -> Option<Vec<u8>>,
) -> Option<String> {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = sign(input.as_bytes())?;
    Some(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

/// Retry-After in seconds, if the answer has one.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let secs: u64 = value.trim().parse().ok()?;
    Some(Duration::from_secs(secs.min(24 * 3600)))
}

/// Reads at most `limit` bytes of an answer (error details).
pub async fn read_some(answer: &mut reqwest::Response, limit: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = answer.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() >= limit {
            body.truncate(limit);
            break;
        }
    }
    body
}

/// What a failed request means: no answer in time, or try again.
pub fn send_failed(e: &reqwest::Error) -> PushOutcome {
    if e.is_timeout() {
        PushOutcome::TimedOut
    } else {
        PushOutcome::Retry { after: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_without_keys_gets_the_plaintext_and_one_with_keys_ciphertext() {
        let plain = br#"{"v":1,"type":"wake","account_id":"a"}"#;
        let bare = PushSubscription {
            endpoint: "fcm:x".into(),
            p256dh: vec![],
            auth: vec![],
        };
        let sealed = sealed_payload(&bare, plain).unwrap();
        assert_eq!(sealed["payload"]["type"], "wake");
        let secret = ring::rand::SystemRandom::new();
        let key =
            ring::agreement::EphemeralPrivateKey::generate(&ring::agreement::ECDH_P256, &secret)
                .unwrap();
        let keyed = PushSubscription {
            p256dh: key.compute_public_key().unwrap().as_ref().to_vec(),
            auth: vec![7; 16],
            ..bare
        };
        let sealed = sealed_payload(&keyed, plain).unwrap();
        let record = URL_SAFE_NO_PAD
            .decode(sealed["ciphertext"].as_str().unwrap())
            .unwrap();
        assert!(record.len() > plain.len());
        assert_eq!(generic_alert(plain), "New mail");
        assert_eq!(
            generic_alert(b"{\"type\":\"reauth\"}"),
            "Your mail account needs attention"
        );
    }
}
