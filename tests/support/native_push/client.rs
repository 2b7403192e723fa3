//! The provider's side, for tests that talk to the fakes directly: an
//! HTTP/2-only client trusting the test CA, and the tokens a provider
//! signs (an APNs provider token from the `.p8` file, a JWT-bearer
//! assertion from a service-account key file), signed with ring as the
//! gateway signs them.

use std::path::Path;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rustls::pki_types::PrivateKeyDer;
use serde_json::{json, Value};

use crate::support::oauth::unix_now;

const FCM_SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

/// A client as the gateway's native transports build one: HTTP/2 only
/// (ALPN `h2`), trusting nothing but the CA in `ca_pem`.
pub fn h2_client(ca_pem: &Path) -> reqwest::Client {
    let pem = std::fs::read(ca_pem).expect("read the CA");
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots
            .add(cert.expect("a CA certificate"))
            .expect("a usable CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .build()
        .expect("an HTTP client")
}

/// `header.claims.signature`, each part base64url; `sign` gets the first
/// two parts joined by a dot.
pub fn compact_jwt(header: Value, claims: Value, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
    let encode = |value: Value| URL_SAFE_NO_PAD.encode(value.to_string());
    let signed = format!("{}.{}", encode(header), encode(claims));
    let signature = URL_SAFE_NO_PAD.encode(sign(signed.as_bytes()));
    format!("{signed}.{signature}")
}

/// The DER of the PKCS#8 key in `pem`.
fn pkcs8_der(pem: &[u8]) -> Vec<u8> {
    match rustls_pemfile::private_key(&mut &pem[..]).expect("a PEM file") {
        Some(PrivateKeyDer::Pkcs8(key)) => key.secret_pkcs8_der().to_vec(),
        other => panic!("not a PKCS#8 key: {other:?}"),
    }
}

/// An APNs provider token issued now, signed ES256 with the `.p8` key.
pub fn apns_provider_token(p8: &Path, key_id: &str, team_id: &str) -> String {
    let der = pkcs8_der(&std::fs::read(p8).expect("read the .p8 key"));
    let rng = ring::rand::SystemRandom::new();
    let alg = &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let key = ring::signature::EcdsaKeyPair::from_pkcs8(alg, &der, &rng).expect("ring reads .p8");
    let header = json!({"alg": "ES256", "kid": key_id});
    let claims = json!({"iss": team_id, "iat": unix_now()});
    compact_jwt(header, claims, |m| {
        key.sign(&rng, m).expect("ES256").as_ref().to_vec()
    })
}

/// A JWT-bearer assertion for FCM, valid for an hour, signed RS256 with
/// the key of the service-account key file `key_file` (parsed JSON).
pub fn fcm_assertion(key_file: &Value) -> String {
    let pem = key_file["private_key"].as_str().expect("private_key");
    let der = pkcs8_der(pem.as_bytes());
    let key = ring::signature::RsaKeyPair::from_pkcs8(&der).expect("ring reads the key");
    let now = unix_now();
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": key_file["private_key_id"]});
    let claims = json!({
        "iss": key_file["client_email"],
        "scope": FCM_SCOPE,
        "aud": key_file["token_uri"],
        "iat": now,
        "exp": now + 3600,
    });
    compact_jwt(header, claims, |m| {
        let mut signature = vec![0; key.public().modulus_len()];
        let rng = ring::rand::SystemRandom::new();
        let pkcs1 = &ring::signature::RSA_PKCS1_SHA256;
        key.sign(pkcs1, &rng, m, &mut signature).expect("RS256");
        signature
    })
}
