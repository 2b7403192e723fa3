//! Reading a whole sled store out, for moving it to another backend
//! (`lemonade migrate`): opening an existing database without waiting long
//! for a gateway that still holds it, and [`SledStore::export`], which
//! reads every record another backend can take over, including what the
//! [`Store`](super::Store) trait has no method to list (the token hashes).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::send::{SendJob, SendSettings};
use super::sled_open::{lock_held, open_when_released};
use super::sled_store::SledStore;
use super::{
    AccountRecord, Cursor, DeviceRecord, PendingPush, PushedWindow, StoreError, StoreResult,
};

/// Why an existing sled store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SledOpenError {
    #[error("there is no sled store in {0}")]
    Missing(PathBuf),
    /// Another process (a gateway) holds the database's file lock.
    #[error("the sled store in {0} is in use by another process")]
    InUse(PathBuf),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A cursor as the store keeps it: per account and mailbox, with the
/// mailbox's window of pushed mail whose reading is followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedCursor {
    pub account_id: String,
    pub mailbox: String,
    pub cursor: Cursor,
    pub pushed: Option<PushedWindow>,
}

/// Everything in a sled store that another backend can take over, as read
/// at one moment (nothing else writes: the reader holds the file lock).
#[derive(Debug, Default)]
pub struct Export {
    pub accounts: Vec<AccountRecord>,
    /// Every API token's hash, with its account's id.
    pub tokens: Vec<([u8; 32], String)>,
    /// Devices listed in their account's index (as `devices_of` finds them).
    pub devices: Vec<DeviceRecord>,
    pub cursors: Vec<ExportedCursor>,
    pub pushes: Vec<PendingPush>,
    /// Settings by account id.
    pub send_settings: Vec<(String, SendSettings)>,
    /// Send jobs not finished yet: not exported (their spool files are
    /// local to this machine), only counted.
    pub unfinished_sends: usize,
    /// Uploads, complete or not: not exported (their files are local),
    /// only counted.
    pub uploads: usize,
}

impl SledStore {
    /// Opens the existing database in `dir` (never creates one), waiting
    /// at most `lock_wait` for another process to let go of it.
    pub fn open_existing(dir: &Path, lock_wait: Duration) -> Result<SledStore, SledOpenError> {
        // sled's own file (its lock is taken on it): a directory without it
        // would be made into a new, empty store.
        if !dir.join("db").is_file() {
            return Err(SledOpenError::Missing(dir.to_owned()));
        }
        match open_when_released(dir, lock_wait) {
            Ok(db) => Ok(SledStore::on(db, Duration::ZERO)?),
            Err(sled::Error::Io(e)) if lock_held(&e) => Err(SledOpenError::InUse(dir.to_owned())),
            Err(e) => Err(SledOpenError::Store(e.into())),
        }
    }

    /// Reads every account, token hash, device, cursor, queued push and
    /// send setting; counts unfinished sends and uploads. A record that
    /// does not decode is an error naming its tree and key.
    pub fn export(&self) -> StoreResult<Export> {
        Ok(Export {
            accounts: self.values("accounts")?,
            tokens: self.token_hashes()?,
            devices: self.indexed_devices()?,
            cursors: self.all_cursors()?,
            pushes: self.values("pushes")?,
            send_settings: self.keyed_values("send_settings")?,
            unfinished_sends: self
                .values::<SendJob>("send_jobs")?
                .iter()
                .filter(|job| !job.status.is_final())
                .count(),
            uploads: self.tree("uploads")?.len(),
        })
    }

    fn tree(&self, name: &str) -> StoreResult<sled::Tree> {
        Ok(self.db().open_tree(name)?)
    }

    fn values<T: DeserializeOwned>(&self, tree: &str) -> StoreResult<Vec<T>> {
        Ok(self
            .keyed_values(tree)?
            .into_iter()
            .map(|(_, value)| value)
            .collect())
    }

    /// Every value of a tree whose keys are text, with its key.
    fn keyed_values<T: DeserializeOwned>(&self, tree: &str) -> StoreResult<Vec<(String, T)>> {
        let mut out = Vec::new();
        for entry in self.tree(tree)?.iter() {
            let (key, value) = entry?;
            let key = text(tree, &key)?;
            let value = serde_json::from_slice(&value)
                .map_err(|e| StoreError::Corrupt(format!("{tree} {key:?}: {e}")))?;
            out.push((key, value));
        }
        Ok(out)
    }

    fn token_hashes(&self) -> StoreResult<Vec<([u8; 32], String)>> {
        let mut out = Vec::new();
        for entry in self.tree("tokens")?.iter() {
            let (hash, account_id) = entry?;
            let hash: [u8; 32] = hash.as_ref().try_into().map_err(|_| {
                StoreError::Corrupt(format!("tokens: a hash of {} bytes", hash.len()))
            })?;
            out.push((hash, text("tokens", &account_id)?));
        }
        Ok(out)
    }

    /// The devices the account index lists under their own account (a
    /// device record left without its index entry is one no gateway would
    /// find).
    fn indexed_devices(&self) -> StoreResult<Vec<DeviceRecord>> {
        let devices = self.tree("devices")?;
        let mut out = Vec::new();
        for entry in self.tree("account_devices")?.iter() {
            let (key, _) = entry?;
            let (account_id, device_id) = split_pair("account_devices", &key)?;
            if let Some(value) = devices.get(device_id.as_bytes())? {
                let device: DeviceRecord = serde_json::from_slice(&value)
                    .map_err(|e| StoreError::Corrupt(format!("devices {device_id:?}: {e}")))?;
                if device.account_id == account_id {
                    out.push(device);
                }
            }
        }
        Ok(out)
    }

    fn all_cursors(&self) -> StoreResult<Vec<ExportedCursor>> {
        let mut out = Vec::new();
        let windows = self.tree("pushed")?;
        for entry in self.tree("cursors")?.iter() {
            let (key, value) = entry?;
            let (account_id, mailbox) = split_pair("cursors", &key)?;
            let corrupt = |tree: &str, e: serde_json::Error| {
                StoreError::Corrupt(format!("{tree} {account_id:?} {mailbox:?}: {e}"))
            };
            let cursor = serde_json::from_slice(&value).map_err(|e| corrupt("cursors", e))?;
            let pushed = match windows.get(&key)? {
                Some(window) => {
                    Some(serde_json::from_slice(&window).map_err(|e| corrupt("pushed", e))?)
                }
                None => None,
            };
            out.push(ExportedCursor {
                account_id,
                mailbox,
                cursor,
                pushed,
            });
        }
        Ok(out)
    }
}

fn text(tree: &str, bytes: &[u8]) -> StoreResult<String> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| StoreError::Corrupt(format!("{tree}: a key or id that is not UTF-8")))
}

/// Splits a key `a NUL b` (see `sled_store::pair_key`).
fn split_pair(tree: &str, key: &[u8]) -> StoreResult<(String, String)> {
    let at = key
        .iter()
        .position(|b| *b == 0)
        .ok_or_else(|| StoreError::Corrupt(format!("{tree}: a key without its separator")))?;
    Ok((text(tree, &key[..at])?, text(tree, &key[at + 1..])?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::{account, device};
    use crate::store::{DeviceMail, Fence, NewMail, SendStore, Store};

    #[tokio::test]
    async fn export_reads_every_record_and_counts_what_stays_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        store
            .create_account(&account("a1"), &[1; 32])
            .await
            .unwrap();
        store
            .create_account(&account("a1"), &[2; 32])
            .await
            .unwrap();
        let d1 = device("d1", "a1", &["INBOX", "Work"]);
        store.put_device(&d1, 10).await.unwrap();
        let cursor = Cursor {
            uidvalidity: 7,
            uidnext: 3,
            highestmodseq: Some(9),
            max_uid_seen: false,
        };
        store
            .put_cursor("a1", "Work", &cursor, Fence::SOLE_OWNER)
            .await
            .unwrap();
        let mut window = PushedWindow::default();
        window.add(7, [2, 1]);
        let put = store.put_pushed_window("a1", "Work", &window, Fence::SOLE_OWNER);
        put.await.unwrap();
        let devices = ["d1".to_string()];
        let mail = NewMail {
            account_id: "a1",
            mailbox: "INBOX",
            deliveries: DeviceMail::to_each(&devices, &[], 2, 1_000),
            cursor,
            unseen: None,
            fence: Fence::SOLE_OWNER,
        };
        store.record_new_mail(&mail).await.unwrap();
        let settings = SendSettings {
            save_sent: Some(false),
            sent_mailbox: Some("Gesendet".into()),
        };
        store.put_send_settings("a1", &settings).await.unwrap();

        let export = store.export().unwrap();
        assert_eq!(export.accounts.len(), 1);
        let mut tokens = export.tokens.clone();
        tokens.sort();
        assert_eq!(tokens, [([1; 32], "a1".into()), ([2; 32], "a1".into())]);
        assert_eq!(export.devices.len(), 1);
        assert_eq!(export.devices[0].mailboxes, d1.mailboxes);
        let mut mailboxes: Vec<_> = export.cursors.iter().map(|c| &c.mailbox).collect();
        mailboxes.sort();
        assert_eq!(mailboxes, ["INBOX", "Work"]);
        assert!(export.cursors.iter().all(|c| c.cursor == cursor));
        let windows: Vec<_> = export.cursors.iter().map(|c| c.pushed.as_ref()).collect();
        assert!(windows.contains(&Some(&window)) && windows.contains(&None));
        assert_eq!(export.pushes, store.pending_pushes().await.unwrap());
        assert_eq!(export.pushes[0].count, 2);
        assert_eq!(export.send_settings, [("a1".to_string(), settings)]);
        assert_eq!((export.unfinished_sends, export.uploads), (0, 0));
    }

    #[test]
    fn opening_refuses_a_directory_without_a_store_and_a_store_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let missing = SledStore::open_existing(dir.path(), Duration::ZERO).err();
        assert!(
            matches!(missing, Some(SledOpenError::Missing(_))),
            "{missing:?}"
        );
        assert!(!dir.path().join("db").exists(), "a store was created");

        let held = SledStore::open(dir.path()).unwrap();
        let busy = SledStore::open_existing(dir.path(), Duration::from_millis(200)).err();
        assert!(matches!(busy, Some(SledOpenError::InUse(_))), "{busy:?}");
        drop(held);
    }
}
