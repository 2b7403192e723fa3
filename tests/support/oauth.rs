//! OAuth2 for the real-server tests: JWTs signed ES256 (a P-256 key with
//! a `kid`, as real authorization servers sign) or HS256 (ring's HMAC),
//! and the files that make Dovecot 2.3's `oauth2` passdb validate them
//! locally (no authorization server needed).
//!
//! ```ignore
//! let dovecot = Dovecot::builder().oauth2().start();
//! let token = dovecot.jwt().token("alice", 300);
//! ```
//!
//! Dovecot looks the key up at `<prefix><azp or default>/<alg>/<kid or
//! default>` (a base64 secret for HS256, a PEM public key for ES256) and
//! compares the token's `email` claim with the user name the client sent.

use std::fs;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::json;

/// The issuer Dovecot accepts.
pub const ISSUER: &str = "https://fake-as.test";

/// The DER prefix of a P-256 SubjectPublicKeyInfo (RFC 5480): the
/// uncompressed point follows.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// What a [`JwtSigner`] signs with.
#[derive(Debug, Clone)]
enum Key {
    /// HS256 with this shared secret; tokens carry no `kid`.
    Hs256(Vec<u8>),
    /// ES256 with this private key; tokens name it by `kid`.
    Es256 { key: SigningKey, kid: String },
}

/// Signs tokens with one key, for one issuer.
#[derive(Debug, Clone)]
pub struct JwtSigner {
    key: Key,
    issuer: String,
}

impl JwtSigner {
    /// An ES256 signer with a fresh P-256 key and key id, for [`ISSUER`].
    pub fn es256_random() -> JwtSigner {
        let kid = format!("k{:016x}", rand::random::<u64>());
        JwtSigner::es256_with_kid(kid)
    }

    /// An HS256 signer with a fresh random secret, for [`ISSUER`].
    pub fn hs256_random() -> JwtSigner {
        JwtSigner {
            key: Key::Hs256(rand::random::<[u8; 32]>().to_vec()),
            issuer: ISSUER.to_owned(),
        }
    }

    fn es256_with_kid(kid: String) -> JwtSigner {
        let key = SigningKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
        JwtSigner {
            key: Key::Es256 { key, kid },
            issuer: ISSUER.to_owned(),
        }
    }

    /// Tokens for `user` the server must refuse, each with why: expired,
    /// from another issuer, signed with another key (same algorithm and
    /// key id, so only the signature is wrong), for another user.
    pub fn refused_tokens(&self, user: &str) -> [(&'static str, String); 4] {
        [
            ("expired", self.token(user, -120)),
            (
                "wrong issuer",
                self.with_issuer("https://other-as.test").token(user, 300),
            ),
            ("bad signature", self.with_other_key().token(user, 300)),
            ("another user's", self.token("bob", 300)),
        ]
    }

    /// What Dovecot 2.3 logs refusing each of [`Self::refused_tokens`], in
    /// order (its words for a bad signature depend on the algorithm).
    pub fn dovecot_refusals(&self, user: &str) -> [String; 4] {
        let bad_signature = match self.key {
            Key::Hs256(_) => "Incorrect JWT signature",
            Key::Es256 { .. } => "Bad signature",
        };
        [
            "Token has expired".to_owned(),
            "Issuer 'https://other-as.test' is not allowed".to_owned(),
            bad_signature.to_owned(),
            format!("Username '{user}' did not match 'bob'"),
        ]
    }

    /// The same key, another issuer (a token Dovecot must refuse).
    pub fn with_issuer(&self, issuer: &str) -> JwtSigner {
        JwtSigner {
            key: self.key.clone(),
            issuer: issuer.to_owned(),
        }
    }

    /// A fresh key of the same algorithm under the same key id.
    fn with_other_key(&self) -> JwtSigner {
        let other = match &self.key {
            Key::Hs256(_) => JwtSigner::hs256_random(),
            Key::Es256 { kid, .. } => JwtSigner::es256_with_kid(kid.clone()),
        };
        other.with_issuer(&self.issuer)
    }

    /// The issuer (`iss`) of the tokens.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The JWS algorithm: `ES256` or `HS256`.
    pub fn alg(&self) -> &'static str {
        match self.key {
            Key::Hs256(_) => "HS256",
            Key::Es256 { .. } => "ES256",
        }
    }

    /// The key id the tokens carry (ES256 only).
    pub fn kid(&self) -> Option<&str> {
        match &self.key {
            Key::Hs256(_) => None,
            Key::Es256 { kid, .. } => Some(kid),
        }
    }

    /// A token for `email` that expires `lifetime_secs` from now (in the
    /// past when negative).
    pub fn token(&self, email: &str, lifetime_secs: i64) -> String {
        let now = unix_now();
        self.sign(&json!({
            "iss": self.issuer,
            "sub": email,
            "email": email,
            "iat": now.min(now + lifetime_secs),
            "nbf": now.min(now + lifetime_secs) - 1,
            "exp": now + lifetime_secs,
            // ECDSA here and HMAC sign deterministically: without this,
            // two tokens minted in the same second would be the same.
            "jti": format!("{:016x}", rand::random::<u64>()),
        }))
    }

    /// A token with exactly these claims.
    pub fn sign(&self, claims: &serde_json::Value) -> String {
        let mut header = json!({"alg": self.alg(), "typ": "JWT"});
        if let Some(kid) = self.kid() {
            header["kid"] = kid.into();
        }
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = match &self.key {
            Key::Hs256(secret) => {
                let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
                ring::hmac::sign(&key, input.as_bytes()).as_ref().to_vec()
            }
            // JWS wants the fixed-size R || S form (RFC 7518 section 3.4).
            Key::Es256 { key, .. } => {
                let signature: Signature = key.sign(input.as_bytes());
                signature.to_bytes().to_vec()
            }
        };
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// The ES256 public key as a PEM `PUBLIC KEY` (SubjectPublicKeyInfo).
    pub fn public_key_pem(&self) -> Option<String> {
        let Key::Es256 { key, .. } = &self.key else {
            return None;
        };
        let point = key.verifying_key().to_encoded_point(false);
        let der = [&P256_SPKI_PREFIX[..], point.as_bytes()].concat();
        let b64 = STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
            .collect();
        Some(format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        ))
    }

    /// What Dovecot's key file holds: the PEM public key for ES256, the
    /// base64 secret for HS256.
    fn dovecot_key(&self) -> String {
        match &self.key {
            Key::Hs256(secret) => STANDARD.encode(secret),
            Key::Es256 { .. } => self.public_key_pem().expect("ES256 key"),
        }
    }

    /// Writes the key where Dovecot's local validation looks for it and
    /// the passdb's settings file; returns the configuration that uses
    /// them (beside the passwd-file users, which keep PLAIN and LOGIN).
    pub fn dovecot_config(&self, root: &Path) -> String {
        let keys = root.join("oauth2-keys");
        let dir = keys.join("default").join(self.alg());
        fs::create_dir_all(&dir).expect("key dir");
        let file = dir.join(self.kid().unwrap_or("default"));
        fs::write(file, self.dovecot_key()).expect("key file");
        let settings = root.join("dovecot-oauth2.conf.ext");
        fs::write(
            &settings,
            format!(
                "introspection_mode = local\n\
                 local_validation_key_dict = fs:posix:prefix={}/\n\
                 username_attribute = email\n\
                 issuers = {}\n",
                keys.display(),
                self.issuer
            ),
        )
        .expect("oauth2 settings");
        format!(
            "passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = {}\n}}\n",
            settings.display()
        )
    }
}

/// The claims of a JWT, not verified (for tests that look inside tokens).
pub fn jwt_claims(jwt: &str) -> serde_json::Value {
    let payload = jwt.split('.').nth(1).expect("a JWT has three parts");
    let json = URL_SAFE_NO_PAD.decode(payload).expect("base64url claims");
    serde_json::from_slice(&json).expect("JSON claims")
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}
