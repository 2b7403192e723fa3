//! Sealing of stored upstream passwords with the master key.
//!
//! XChaCha20-Poly1305 with a random 24-byte nonce per seal and the account id
//! as associated data, so a sealed password copied onto another account's
//! record does not open. The master key lives in a 0600 file in the data
//! directory, generated on first start.

use std::io::Write;
use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use zeroize::Zeroizing;

const NONCE_LEN: usize = 24;
const KEY_LEN: usize = 32;

/// Why a secret could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("master key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
    #[error("sealed secret does not open with this master key")]
    Open,
}

/// Seals and opens secrets with the master key.
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// Loads the master key from `path`, creating it (mode 0600) if absent.
    pub fn load_or_create(path: &Path) -> Result<Self, SealError> {
        let key_error = |reason: String| SealError::KeyFile {
            path: path.display().to_string(),
            reason,
        };
        let key = match std::fs::read(path) {
            Ok(bytes) => Zeroizing::new(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = Zeroizing::new(vec![0u8; KEY_LEN]);
                rand::rngs::OsRng.fill_bytes(&mut key);
                write_private_file(path, &key).map_err(|e| key_error(e.to_string()))?;
                key
            }
            Err(e) => return Err(key_error(e.to_string())),
        };
        if key.len() != KEY_LEN {
            return Err(key_error(format!(
                "expected {KEY_LEN} bytes, found {}",
                key.len()
            )));
        }
        Ok(Self::from_key(&key))
    }

    /// A sealer over a raw 32-byte key.
    pub fn from_key(key: &[u8]) -> Self {
        Sealer {
            cipher: XChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(key)),
        }
    }

    /// Seals `secret`, bound to `context` (the account id).
    pub fn seal(&self, context: &str, secret: &str) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let payload = Payload {
            msg: secret.as_bytes(),
            aad: context.as_bytes(),
        };
        // Encryption with a valid key and in-memory buffers cannot fail.
        let ciphertext = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), payload)
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        out
    }

    /// Opens what [`Sealer::seal`] produced for the same `context`.
    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Zeroizing<String>, SealError> {
        if sealed.len() < NONCE_LEN {
            return Err(SealError::Open);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let payload = Payload {
            msg: ciphertext,
            aad: context.as_bytes(),
        };
        let plain = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), payload)
            .map_err(|_| SealError::Open)?;
        String::from_utf8(plain)
            .map(Zeroizing::new)
            .map_err(|_| SealError::Open)
    }
}

/// Writes a file readable only by its owner, atomically (temp file + rename).
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trips_and_binds_context() {
        let sealer = Sealer::from_key(&[7u8; 32]);
        let sealed = sealer.seal("acct-1", "hunter2");
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(sealer.open("acct-1", &sealed).unwrap().as_str(), "hunter2");
        assert!(sealer.open("acct-2", &sealed).is_err());
        assert!(Sealer::from_key(&[8u8; 32])
            .open("acct-1", &sealed)
            .is_err());
        assert!(sealer.open("acct-1", &sealed[..10]).is_err());
    }

    #[test]
    fn master_key_is_created_once_with_private_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let sealed = Sealer::load_or_create(&path).unwrap().seal("a", "pw");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = Sealer::load_or_create(&path).unwrap();
        assert_eq!(again.open("a", &sealed).unwrap().as_str(), "pw");
        std::fs::write(&path, b"short").unwrap();
        assert!(Sealer::load_or_create(&path).is_err());
    }
}
