//! The two keys every node of a deployment must share, as files in a data
//! directory: the master key (`master.key`, seals stored passwords) and the
//! VAPID key (`vapid.pk8`, signs pushes; phones subscribed with its public
//! key). Writing a fresh pair for a new cluster (`lemonade keygen`), and the
//! fingerprints that tell whether two nodes hold the same keys without
//! showing them.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::notify::{VapidError, VapidKey};
use crate::store::{SealError, Sealer};

/// The master key's file name in a data directory.
pub const MASTER_KEY_FILE: &str = "master.key";
/// The VAPID key's file name in a data directory.
pub const VAPID_KEY_FILE: &str = "vapid.pk8";

/// Bytes of SHA-256 a fingerprint keeps: 128 bits, 32 hex digits.
const FINGERPRINT_BYTES: usize = 16;

/// Why no key pair was written.
#[derive(Debug, thiserror::Error)]
pub enum KeygenError {
    #[error("{0} exists already: keygen never replaces a key")]
    Exists(PathBuf),
    #[error("key directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error(transparent)]
    Vapid(#[from] VapidError),
}

/// What [`generate`] wrote, as an operator can compare it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKeys {
    /// [`Sealer::fingerprint`] of the new master key.
    pub master_key_fingerprint: String,
    /// [`VapidKey::fingerprint`] of the new VAPID key.
    pub vapid_fingerprint: String,
    /// The VAPID public key as the API serves it (base64url).
    pub vapid_public_key: String,
}

/// Writes a fresh master key and VAPID key into `dir` (created with mode
/// 0700 if missing; each file 0600). Refuses, writing nothing, if either
/// file exists.
pub fn generate(dir: &Path) -> Result<NewKeys, KeygenError> {
    crate::create_private_dir(dir).map_err(|source| KeygenError::Dir {
        path: dir.to_owned(),
        source,
    })?;
    let master = dir.join(MASTER_KEY_FILE);
    let vapid = dir.join(VAPID_KEY_FILE);
    for path in [&master, &vapid] {
        // symlink_metadata: a dangling link is a file in the way too.
        if path.symlink_metadata().is_ok() {
            return Err(KeygenError::Exists(path.clone()));
        }
    }
    let sealer = Sealer::create_new(&master)?;
    let vapid = VapidKey::generate_into(&vapid)?;
    Ok(NewKeys {
        master_key_fingerprint: sealer.fingerprint().to_string(),
        vapid_fingerprint: vapid.fingerprint(),
        vapid_public_key: vapid.public_key_b64url(),
    })
}

/// The first 128 bits of SHA-256 over `parts`, in lower-case hex.
pub(crate) fn fingerprint(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize()[..FINGERPRINT_BYTES]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_fresh_pair_is_private_and_its_fingerprints_match_the_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keys/new");
        let info = generate(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let master = Sealer::load(&dir.join(MASTER_KEY_FILE)).unwrap();
        let vapid = VapidKey::load(&dir.join(VAPID_KEY_FILE)).unwrap();
        assert_eq!(mode(&dir.join(MASTER_KEY_FILE)), 0o600);
        assert_eq!(mode(&dir.join(VAPID_KEY_FILE)), 0o600);
        assert_eq!(info.master_key_fingerprint, master.fingerprint());
        assert_eq!(info.vapid_fingerprint, vapid.fingerprint());
        assert_eq!(info.vapid_public_key, vapid.public_key_b64url());
        assert_ne!(info, generate(&tmp.path().join("other")).unwrap());
    }

    #[test]
    fn either_file_in_the_way_stops_it_before_anything_is_written() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(VAPID_KEY_FILE), "old").unwrap();
        let err = generate(tmp.path()).unwrap_err();
        assert!(err.to_string().contains(VAPID_KEY_FILE), "{err}");
        assert!(!tmp.path().join(MASTER_KEY_FILE).exists());
        assert_eq!(
            std::fs::read_to_string(tmp.path().join(VAPID_KEY_FILE)).unwrap(),
            "old"
        );
    }

    #[test]
    fn fingerprints_are_short_lower_hex_sha256() {
        // SHA-256("abc") begins ba7816bf8f01cfea414140de5dae2223.
        assert_eq!(
            fingerprint(&[b"a", b"bc"]),
            "ba7816bf8f01cfea414140de5dae2223"
        );
    }
}
