//! Sealing of stored upstream passwords with the master key.
//!
//! XChaCha20-Poly1305 with a random 24-byte nonce per seal and the account id
//! as associated data, so a sealed password copied onto another account's
//! record does not open. The master key lives in a 0600 file in the data
//! directory, generated on first start and never overwritten.

use std::io::Write;
use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use zeroize::Zeroizing;

const NONCE_LEN: usize = 24;
const KEY_LEN: usize = 32;

/// The master key's fingerprint is SHA-256 over this label and the key, so
/// that it says nothing about the key used elsewhere.
const FINGERPRINT_LABEL: &[u8] = b"lemonade master key fingerprint\0";

/// Why a secret could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("master key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
    #[error("master key file {path} does not exist: in a cluster every node needs the cluster's keys in its data_dir (made once with `lemonade keygen DIR`, then copied)")]
    Missing { path: String },
    #[error("master key file {path} exists already; a key is never replaced")]
    Exists { path: String },
    #[error("sealed secret does not open with this master key")]
    Open,
}

/// Seals and opens secrets with the master key.
pub struct Sealer {
    cipher: XChaCha20Poly1305,
    /// See [`Sealer::fingerprint`].
    fingerprint: String,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealer({})", self.fingerprint)
    }
}

impl Sealer {
    /// Loads the master key from `path`, creating it (mode 0600) if absent.
    pub fn load_or_create(path: &Path) -> Result<Self, SealError> {
        match Self::load(path) {
            Err(SealError::Missing { .. }) => {}
            loaded => return loaded,
        }
        match Self::create_new(path) {
            // Another instance starting on the same fresh directory created
            // it meanwhile: then its key is the key, or what one of us sealed
            // would not open after a restart.
            Err(SealError::Exists { .. }) => Self::load(path),
            created => created,
        }
    }

    /// Loads the master key from `path`, which must exist.
    pub fn load(path: &Path) -> Result<Self, SealError> {
        let key = std::fs::read(path).map(Zeroizing::new).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                SealError::Missing {
                    path: path.display().to_string(),
                }
            } else {
                key_file_error(path, e.to_string())
            }
        })?;
        if key.len() != KEY_LEN {
            let reason = format!("expected {KEY_LEN} bytes, found {}", key.len());
            return Err(key_file_error(path, reason));
        }
        Ok(Self::from_key(&key))
    }

    /// Writes a fresh master key to `path` (mode 0600) and returns its
    /// sealer; refuses, writing nothing, if `path` exists.
    pub fn create_new(path: &Path) -> Result<Self, SealError> {
        let mut key = Zeroizing::new(vec![0u8; KEY_LEN]);
        rand::rngs::OsRng.fill_bytes(&mut key);
        match create_private_file(path, &key) {
            Ok(true) => Ok(Self::from_key(&key)),
            Ok(false) => Err(SealError::Exists {
                path: path.display().to_string(),
            }),
            Err(e) => Err(key_file_error(path, e.to_string())),
        }
    }

    /// A sealer over a raw 32-byte key.
    pub fn from_key(key: &[u8]) -> Self {
        Sealer {
            cipher: XChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(key)),
            fingerprint: crate::keys::fingerprint(&[FINGERPRINT_LABEL, key]),
        }
    }

    /// A short hex digest that is the same for the same key and tells
    /// nothing about it: nodes compare it to find out whether they share
    /// the master key.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
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

fn key_file_error(path: &Path, reason: String) -> SealError {
    SealError::KeyFile {
        path: path.display().to_string(),
        reason,
    }
}

/// Creates a file readable only by its owner with `contents`, unless `path`
/// exists: `false` then, and nothing is written. The contents are written
/// to a temporary file beside it first and linked into place, so a reader
/// never sees the file half written; where hard links are not supported the
/// file is created with `O_EXCL` and written in place.
pub fn create_private_file(path: &Path, contents: &[u8]) -> std::io::Result<bool> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.tmp-{:016x}", rand::random::<u64>()));
    let create_new = |at: &Path| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(at)?;
        file.write_all(contents)?;
        file.sync_all()
    };
    let linked = create_new(&temp).and_then(|()| std::fs::hard_link(&temp, path));
    let _ = std::fs::remove_file(&temp);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(_) => match create_new(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(e),
        },
    }
    if let Ok(dir) = std::fs::File::open(dir) {
        // Makes the new directory entry durable; not all filesystems allow it.
        let _ = dir.sync_all();
    }
    Ok(true)
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

    #[test]
    fn a_new_key_never_replaces_one_and_loading_never_creates_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let err = Sealer::load(&path).unwrap_err();
        assert!(matches!(err, SealError::Missing { .. }), "{err}");
        assert!(!path.exists());
        let created = Sealer::create_new(&path).unwrap();
        let on_disk = std::fs::read(&path).unwrap();
        let err = Sealer::create_new(&path).unwrap_err();
        assert!(err.to_string().contains("master.key"), "{err}");
        assert!(matches!(err, SealError::Exists { .. }), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), on_disk);
        let loaded = Sealer::load(&path).unwrap();
        assert_eq!(loaded.fingerprint(), created.fingerprint());
    }

    #[test]
    fn fingerprints_tell_keys_apart_and_do_not_show_them() {
        let key = [7u8; 32];
        let sealer = Sealer::from_key(&key);
        assert_eq!(sealer.fingerprint(), Sealer::from_key(&key).fingerprint());
        assert_ne!(
            sealer.fingerprint(),
            Sealer::from_key(&[8u8; 32]).fingerprint()
        );
        assert_eq!(sealer.fingerprint().len(), 32);
        assert!(sealer.fingerprint().bytes().all(|b| b.is_ascii_hexdigit()));
        // Not the key's plain digest, which would be the same in any program.
        let plain = crate::keys::fingerprint(&[&key]);
        assert_ne!(sealer.fingerprint(), plain);
    }

    #[test]
    fn instances_starting_at_once_on_a_fresh_directory_agree_on_the_key() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("master.key");
            let start = std::sync::Barrier::new(8);
            let sealed: Vec<Vec<u8>> = std::thread::scope(|s| {
                let openers: Vec<_> = (0..8)
                    .map(|_| {
                        s.spawn(|| {
                            start.wait();
                            Sealer::load_or_create(&path).unwrap().seal("a", "pw")
                        })
                    })
                    .collect();
                openers.into_iter().map(|t| t.join().unwrap()).collect()
            });
            // What each sealed opens with the key on disk.
            let on_disk = Sealer::load_or_create(&path).unwrap();
            for sealed in &sealed {
                assert_eq!(on_disk.open("a", sealed).unwrap().as_str(), "pw");
            }
            let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
            assert_eq!(names.len(), 1, "temporary files were left: {names:?}");
        }
    }
}
