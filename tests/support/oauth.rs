//! OAuth2 for the real-server tests: HS256 JWTs minted with ring's HMAC,
//! and the files that make Dovecot 2.3's `oauth2` passdb validate them
//! locally (no authorization server needed).
//!
//! ```ignore
//! let dovecot = Dovecot::builder().oauth2().start();
//! let token = dovecot.jwt().token("alice", 300);
//! ```
//!
//! Dovecot looks the key up at `<prefix><azp or default>/<alg>/<kid or
//! default>` (a base64 secret for HS256) and compares the token's `email`
//! claim with the user name the client sent.

use std::fs;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde_json::json;

/// The issuer Dovecot accepts.
pub const ISSUER: &str = "https://fake-as.test";

/// Signs HS256 tokens with one key, for one issuer.
#[derive(Debug, Clone)]
pub struct JwtSigner {
    key: Vec<u8>,
    issuer: String,
}

impl JwtSigner {
    /// A signer with a fresh random key, for [`ISSUER`].
    pub fn random() -> JwtSigner {
        JwtSigner {
            key: rand::random::<[u8; 32]>().to_vec(),
            issuer: ISSUER.to_owned(),
        }
    }

    /// The same key, another issuer (a token Dovecot must refuse).
    /// Tokens for `user` the server must refuse, each with why: expired,
    /// from another issuer, signed with another key, for another user.
    pub fn refused_tokens(&self, user: &str) -> [(&'static str, String); 4] {
        [
            ("expired", self.token(user, -120)),
            (
                "wrong issuer",
                self.with_issuer("https://other-as.test").token(user, 300),
            ),
            ("bad signature", JwtSigner::random().token(user, 300)),
            ("another user's", self.token("bob", 300)),
        ]
    }

    pub fn with_issuer(&self, issuer: &str) -> JwtSigner {
        JwtSigner {
            key: self.key.clone(),
            issuer: issuer.to_owned(),
        }
    }

    /// A token for `email` that expires `lifetime_secs` from now (in the
    /// past when negative).
    pub fn token(&self, email: &str, lifetime_secs: i64) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs() as i64;
        self.sign(&json!({
            "iss": self.issuer,
            "sub": email,
            "email": email,
            "iat": now.min(now + lifetime_secs),
            "nbf": now.min(now + lifetime_secs) - 1,
            "exp": now + lifetime_secs,
        }))
    }

    /// A token with exactly these claims.
    pub fn sign(&self, claims: &serde_json::Value) -> String {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(json!({"alg": "HS256", "typ": "JWT"}).to_string());
        let body = b64.encode(claims.to_string());
        let input = format!("{header}.{body}");
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.key);
        let tag = ring::hmac::sign(&key, input.as_bytes());
        format!("{input}.{}", b64.encode(tag.as_ref()))
    }

    /// Writes the key where Dovecot's local validation looks for it and
    /// the passdb's settings file; returns the configuration that uses
    /// them (beside the passwd-file users, which keep PLAIN and LOGIN).
    pub fn dovecot_config(&self, root: &Path) -> String {
        let keys = root.join("oauth2-keys");
        let dir = keys.join("default").join("HS256");
        fs::create_dir_all(&dir).expect("key dir");
        let secret = base64::engine::general_purpose::STANDARD.encode(&self.key);
        fs::write(dir.join("default"), secret).expect("key file");
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
