//! The gateway's VAPID identity (RFC 8292): its P-256 signing key and the
//! `Authorization: vapid t=…, k=…` header each push carries.
//!
//! The key is generated with ring on first start and kept as PKCS#8 (PEM) in a
//! file readable only by the gateway, written atomically so a crash never
//! leaves half a key; later starts load the same key, so subscriptions made
//! with its public key keep working. Signing an ES256 JWT costs more than
//! encrypting a payload, so one token per push-service origin is cached for
//! 12 hours and re-signed when less than an hour is left.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde::Serialize;

use crate::error::ErrorClass;

/// How long a signed token is valid (RFC 8292 allows at most 24 hours).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// A cached token is replaced when it has less than this left, so a push
/// service never sees one that expires in flight or while queued.
pub const RESIGN_MARGIN: Duration = Duration::from_secs(3600);

/// More origins than this and the cache drops expired tokens (or starts over).
const MAX_CACHED_ORIGINS: usize = 1024;

const PEM_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const PEM_END: &str = "-----END PRIVATE KEY-----";

/// Why the VAPID key could not be loaded or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VapidError {
    /// Reading or writing the key file failed.
    #[error("VAPID key file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The key file does not exist (and was not to be generated).
    #[error("VAPID key file {path} does not exist: in a cluster every node needs the cluster's keys in its data_dir (made once with `lemonade keygen DIR`, then copied)")]
    Missing { path: PathBuf },
    /// A new key was to be written where one exists already.
    #[error("VAPID key file {path} exists already; a key is never replaced")]
    Exists { path: PathBuf },
    /// The key file holds something that is not a PKCS#8 ECDSA P-256 key.
    #[error("VAPID key file {path} does not hold a PKCS#8 P-256 private key")]
    InvalidKey { path: PathBuf },
    /// The subject is neither a `mailto:` nor an `https:` URI.
    #[error("VAPID subject must be a mailto: or https: URI, got {0:?}")]
    InvalidSubject(String),
    /// Key generation or signing failed (the system random source).
    #[error("VAPID key generation or signing failed")]
    Crypto,
}

impl VapidError {
    /// What to do about it: a broken key file or subject is a configuration
    /// problem; a failing random source may recover.
    pub fn class(&self) -> ErrorClass {
        match self {
            VapidError::Crypto => ErrorClass::Transient,
            _ => ErrorClass::Permanent,
        }
    }
}

/// The gateway's ECDSA P-256 key pair.
pub struct VapidKey {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
}

impl std::fmt::Debug for VapidKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VapidKey")
            .field("public_key", &self.public_key_b64url())
            .finish_non_exhaustive()
    }
}

impl VapidKey {
    /// Loads the key at `path`, or generates one and writes it there (mode
    /// 0600, atomically) when the file does not exist yet.
    pub fn load_or_generate(path: &Path) -> Result<Self, VapidError> {
        match Self::load(path) {
            Err(VapidError::Missing { .. }) => {}
            loaded => return loaded,
        }
        match Self::generate_into(path) {
            // Someone else created it first: use theirs, so all agree.
            Err(VapidError::Exists { .. }) => Self::load(path),
            generated => generated,
        }
    }

    /// Loads the key at `path`, which must exist.
    pub fn load(path: &Path) -> Result<Self, VapidError> {
        match std::fs::read(path) {
            Ok(contents) => Self::from_file_contents(path, &contents),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Err(VapidError::Missing {
                path: path.to_owned(),
            }),
            Err(source) => Err(VapidError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Generates a key and writes it to `path` (PEM, mode 0600,
    /// atomically); refuses, writing nothing, if `path` exists.
    pub fn generate_into(path: &Path) -> Result<Self, VapidError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| VapidError::Crypto)?;
        let pem = pem_encode(pkcs8.as_ref());
        match crate::store::create_private_file(path, pem.as_bytes()) {
            Ok(true) => Self::from_pkcs8(path, pkcs8.as_ref()),
            Ok(false) => Err(VapidError::Exists {
                path: path.to_owned(),
            }),
            Err(source) => Err(VapidError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Builds a key from PKCS#8 DER bytes.
    pub fn from_pkcs8_der(pkcs8: &[u8]) -> Result<Self, VapidError> {
        Self::from_pkcs8(Path::new("<memory>"), pkcs8)
    }

    fn from_file_contents(path: &Path, contents: &[u8]) -> Result<Self, VapidError> {
        if let Ok(metadata) = std::fs::metadata(path) {
            // Group-readable is fine: a Kubernetes secret volume mounted
            // for the pod's fsGroup is 0440.
            if metadata.permissions().mode() & 0o027 != 0 {
                tracing::warn!(path = %path.display(), "VAPID key file is open to others; chmod 600 it");
            }
        }
        let der = match std::str::from_utf8(contents) {
            Ok(text) if text.contains(PEM_BEGIN) => {
                pem_decode(text).ok_or_else(|| VapidError::InvalidKey {
                    path: path.to_owned(),
                })?
            }
            _ => contents.to_vec(),
        };
        Self::from_pkcs8(path, &der)
    }

    fn from_pkcs8(path: &Path, der: &[u8]) -> Result<Self, VapidError> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng).map_err(
            |_| VapidError::InvalidKey {
                path: path.to_owned(),
            },
        )?;
        Ok(Self { pair, rng })
    }

    /// The public key, 65 bytes uncompressed: the `applicationServerKey`
    /// a browser subscribes with.
    pub fn public_key(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// The public key in URL-safe base64 without padding, as the `k=` parameter
    /// and the API give it to clients.
    pub fn public_key_b64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.public_key())
    }

    /// A short hex digest of the public key: nodes compare it to find out
    /// whether they sign with the same key.
    pub fn fingerprint(&self) -> String {
        crate::keys::fingerprint(&[self.public_key()])
    }

    /// An ES256 signature (`r || s`, 64 bytes) over `message`.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, VapidError> {
        self.pair
            .sign(&self.rng, message)
            .map(|signature| signature.as_ref().to_vec())
            .map_err(|_| VapidError::Crypto)
    }
}

fn pem_encode(der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut pem = String::with_capacity(body.len() + 80);
    pem.push_str(PEM_BEGIN);
    pem.push('\n');
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str(PEM_END);
    pem.push('\n');
    pem
}

fn pem_decode(text: &str) -> Option<Vec<u8>> {
    let start = text.find(PEM_BEGIN)? + PEM_BEGIN.len();
    let end = start + text[start..].find(PEM_END)?;
    let body: String = text[start..end].split_whitespace().collect();
    STANDARD.decode(body).ok()
}

/// Signs and caches the VAPID `Authorization` header per push-service origin.
#[derive(Debug)]
pub struct VapidSigner {
    key: VapidKey,
    subject: String,
    /// The `k=` parameter, computed once.
    public_key_b64url: String,
    /// Origin → (header value, expiry in unix seconds).
    cache: Mutex<HashMap<String, CachedHeader>>,
}

#[derive(Debug, Clone)]
struct CachedHeader {
    value: String,
    expires_at: u64,
}

#[derive(Serialize)]
struct Claims<'a> {
    aud: &'a str,
    exp: u64,
    sub: &'a str,
}

/// `{"typ":"JWT","alg":"ES256"}`, base64url.
const JWT_HEADER_B64: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJFUzI1NiJ9";

impl VapidSigner {
    /// A signer for `key`; `subject` is the operator contact the push service
    /// may use (`mailto:admin@example.org` or an `https://` URL).
    pub fn new(key: VapidKey, subject: &str) -> Result<Self, VapidError> {
        let valid = subject
            .strip_prefix("mailto:")
            .or_else(|| subject.strip_prefix("https://"))
            .is_some_and(|rest| !rest.is_empty() && !rest.chars().any(char::is_whitespace));
        if !valid {
            return Err(VapidError::InvalidSubject(subject.to_owned()));
        }
        Ok(Self {
            public_key_b64url: key.public_key_b64url(),
            key,
            subject: subject.to_owned(),
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The key this signer signs with.
    pub fn key(&self) -> &VapidKey {
        &self.key
    }

    /// The `Authorization` header value for a push to `endpoint_origin`
    /// (`scheme://host[:port]`, as [`reqwest::Url::origin`] serializes it).
    pub fn authorization(&self, endpoint_origin: &str) -> Result<String, VapidError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.authorization_at(endpoint_origin, now)
    }

    /// [`Self::authorization`] at a given wall-clock time (unix seconds).
    pub fn authorization_at(&self, endpoint_origin: &str, now: u64) -> Result<String, VapidError> {
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(cached) = cache.get(endpoint_origin) {
            if cached.expires_at > now + RESIGN_MARGIN.as_secs() {
                return Ok(cached.value.clone());
            }
        }
        let expires_at = now + TOKEN_LIFETIME.as_secs();
        let value = self.sign_header(endpoint_origin, expires_at)?;
        if cache.len() >= MAX_CACHED_ORIGINS {
            cache.retain(|_, cached| cached.expires_at > now + RESIGN_MARGIN.as_secs());
            if cache.len() >= MAX_CACHED_ORIGINS {
                cache.clear();
            }
        }
        cache.insert(
            endpoint_origin.to_owned(),
            CachedHeader {
                value: value.clone(),
                expires_at,
            },
        );
        Ok(value)
    }

    fn sign_header(&self, audience: &str, expires_at: u64) -> Result<String, VapidError> {
        let claims = Claims {
            aud: audience,
            exp: expires_at,
            sub: &self.subject,
        };
        let claims = serde_json::to_vec(&claims).map_err(|_| VapidError::Crypto)?;
        let mut token = format!("{JWT_HEADER_B64}.{}", URL_SAFE_NO_PAD.encode(claims));
        let signature = self.key.sign(token.as_bytes())?;
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(signature));
        Ok(format!("vapid t={token}, k={}", self.public_key_b64url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Verifier;
    use p256::ecdsa::{Signature, VerifyingKey};
    use serde_json::Value;

    fn signer() -> VapidSigner {
        let dir = tempfile::tempdir().unwrap();
        let key = VapidKey::load_or_generate(&dir.path().join("vapid.pem")).unwrap();
        VapidSigner::new(key, "mailto:ops@example.org").unwrap()
    }

    /// Checks the header with p256 and returns the claims.
    fn verify(header: &str, expected_key: &[u8]) -> Value {
        let rest = header.strip_prefix("vapid t=").unwrap();
        let (token, k) = rest.split_once(", k=").unwrap();
        assert_eq!(URL_SAFE_NO_PAD.decode(k).unwrap(), expected_key);
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let jwt_header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(jwt_header["alg"], "ES256");
        assert_eq!(jwt_header["typ"], "JWT");
        let verifying_key = VerifyingKey::from_sec1_bytes(expected_key).unwrap();
        let signature = Signature::from_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
        let signed = format!("{}.{}", parts[0], parts[1]);
        verifying_key.verify(signed.as_bytes(), &signature).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap()
    }

    #[test]
    fn generated_key_is_private_and_reloads_identically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vapid.pem");
        let first = VapidKey::load_or_generate(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let second = VapidKey::load_or_generate(&path).unwrap();
        assert_eq!(first.public_key(), second.public_key());
        assert_eq!(first.public_key().len(), 65);
        assert_eq!(first.public_key()[0], 0x04);
        assert_eq!(first.public_key_b64url().len(), 87);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(PEM_BEGIN));
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_new_key_never_replaces_one_and_loading_never_creates_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vapid.pk8");
        let err = VapidKey::load(&path).unwrap_err();
        assert!(matches!(err, VapidError::Missing { .. }), "{err}");
        assert!(!path.exists());
        let generated = VapidKey::generate_into(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let on_disk = std::fs::read(&path).unwrap();
        let err = VapidKey::generate_into(&path).unwrap_err();
        assert!(matches!(err, VapidError::Exists { .. }), "{err}");
        assert!(err.to_string().contains("vapid.pk8"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), on_disk);
        let loaded = VapidKey::load(&path).unwrap();
        assert_eq!(loaded.public_key(), generated.public_key());
        assert_eq!(loaded.fingerprint(), generated.fingerprint());
        let other = VapidKey::generate_into(&dir.path().join("other.pk8")).unwrap();
        assert_ne!(other.fingerprint(), generated.fingerprint());
        assert_eq!(generated.fingerprint().len(), 32);
    }

    #[test]
    fn a_der_key_file_loads_too() {
        let dir = tempfile::tempdir().unwrap();
        let rng = SystemRandom::new();
        let der = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let path = dir.path().join("vapid.der");
        std::fs::write(&path, der.as_ref()).unwrap();
        let key = VapidKey::load_or_generate(&path).unwrap();
        assert_eq!(
            key.public_key(),
            VapidKey::from_pkcs8_der(der.as_ref()).unwrap().public_key()
        );
    }

    #[test]
    fn a_garbage_key_file_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vapid.pem");
        std::fs::write(&path, "not a key").unwrap();
        let err = VapidKey::load_or_generate(&path).unwrap_err();
        assert!(matches!(err, VapidError::InvalidKey { .. }), "{err}");
        assert_eq!(err.class(), ErrorClass::Permanent);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a key");
    }

    #[test]
    fn a_missing_directory_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = VapidKey::load_or_generate(&dir.path().join("no/such/vapid.pem")).unwrap_err();
        assert!(matches!(err, VapidError::Io { .. }), "{err}");
    }

    #[test]
    fn subjects_must_be_mailto_or_https() {
        let key = || VapidKey::load_or_generate(&tempfile::tempdir().unwrap().path().join("k"));
        assert!(VapidSigner::new(key().unwrap(), "https://example.org/contact").is_ok());
        for bad in [
            "",
            "mailto:",
            "http://example.org",
            "ops@example.org",
            "mailto:a b",
        ] {
            assert!(matches!(
                VapidSigner::new(key().unwrap(), bad),
                Err(VapidError::InvalidSubject(_))
            ));
        }
    }

    #[test]
    fn header_verifies_with_p256_and_carries_the_claims() {
        let signer = signer();
        let now = 1_700_000_000;
        let header = signer
            .authorization_at("https://push.example.net", now)
            .unwrap();
        let claims = verify(&header, signer.key().public_key());
        assert_eq!(claims["aud"], "https://push.example.net");
        assert_eq!(claims["exp"], now + 12 * 3600);
        assert_eq!(claims["sub"], "mailto:ops@example.org");
    }

    #[test]
    fn tokens_are_cached_per_origin_and_resigned_near_expiry() {
        let signer = signer();
        let now = 1_700_000_000;
        let first = signer.authorization_at("https://a.example", now).unwrap();
        // ECDSA signatures are randomized, so equal strings mean a cache hit.
        let later = now + TOKEN_LIFETIME.as_secs() - RESIGN_MARGIN.as_secs() - 1;
        assert_eq!(
            signer.authorization_at("https://a.example", later).unwrap(),
            first
        );
        let other = signer.authorization_at("https://b.example", now).unwrap();
        assert_ne!(other, first);
        assert_eq!(
            verify(&other, signer.key().public_key())["aud"],
            "https://b.example"
        );

        let near_expiry = now + TOKEN_LIFETIME.as_secs() - RESIGN_MARGIN.as_secs();
        let renewed = signer
            .authorization_at("https://a.example", near_expiry)
            .unwrap();
        assert_ne!(renewed, first);
        let claims = verify(&renewed, signer.key().public_key());
        assert_eq!(claims["exp"], near_expiry + TOKEN_LIFETIME.as_secs());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let signer = signer();
        for i in 0..(MAX_CACHED_ORIGINS + 10) {
            signer
                .authorization_at(&format!("https://h{i}.example"), 1_700_000_000)
                .unwrap();
        }
        assert!(signer.cache.lock().unwrap().len() <= MAX_CACHED_ORIGINS);
    }
}
