//! The embedded default store, on sled.
//!
//! Values are JSON (small, readable with a debugger, tolerant of new fields).
//! Keys that belong to one owner share a prefix ending in a NUL byte, which
//! neither generated ids nor IMAP mailbox names can contain.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::group_commit::GroupCommit;
use super::queued::{forget_read, merge, remainder, reschedule, Forgotten};
use super::sled_open::{open_when_released, start_group_commit, LOCK_WAIT};
use super::{
    lists_mailbox, AccountRecord, AccountStored, Cursor, DeviceRecord, DeviceStored, Fence,
    NewMail, PendingPush, PushKey, PushedWindow, ReadMail, Store, StoreError, StoreResult, Unshown,
};
use crate::metrics::Histogram;

/// [`Store`] on an embedded sled database.
pub struct SledStore {
    db: sled::Db,
    accounts: sled::Tree,
    /// token hash → account id
    tokens: sled::Tree,
    /// IMAP host NUL port NUL username → account id
    logins: sled::Tree,
    devices: sled::Tree,
    /// account id NUL device id → empty: the devices of an account
    account_devices: sled::Tree,
    /// account id NUL mailbox → cursor
    cursors: sled::Tree,
    /// Per account and mailbox, the recently pushed messages ([`PushedWindow`]).
    pushed: sled::Tree,
    /// device id NUL mailbox → pending push
    pushes: sled::Tree,
    /// Serves `flush` for every caller at once.
    commit: GroupCommit,
    /// Held by the steps that read, check and write registrations (one
    /// device per endpoint, the device limit) and by account deletion, so
    /// that they are atomic to each other.
    registrations: Mutex<()>,
    /// How long each flush took.
    flush_times: Arc<Histogram>,
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

fn pair_key(a: &str, b: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(a.len() + b.len() + 1);
    key.extend_from_slice(a.as_bytes());
    key.push(0);
    key.extend_from_slice(b.as_bytes());
    key
}

fn prefix(a: &str) -> Vec<u8> {
    let mut key = a.as_bytes().to_vec();
    key.push(0);
    key
}

fn encode<T: Serialize>(value: &T) -> StoreResult<Vec<u8>> {
    Ok(serde_json::to_vec(value)?)
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> StoreResult<T> {
    Ok(serde_json::from_slice(bytes)?)
}

fn login_key(host: &str, port: u16, username: &str) -> Vec<u8> {
    pair_key(&format!("{}\0{port}", host.to_ascii_lowercase()), username)
}

fn push_key(key: &PushKey) -> Vec<u8> {
    pair_key(&key.device_id, &key.mailbox)
}

/// Whether a device asked for this mailbox.
fn device_watches(device: &DeviceRecord, mailbox: &str) -> bool {
    lists_mailbox(&device.mailboxes, mailbox)
}

impl SledStore {
    /// Opens (or creates) the database in `dir`; flushes start at once.
    pub fn open(dir: &Path) -> StoreResult<Self> {
        Self::open_with_commit_window(dir, Duration::ZERO)
    }

    /// Opens (or creates) the database in `dir`; under load a flush waits
    /// `window` for more writers to join it (see `group_commit`).
    pub fn open_with_commit_window(dir: &Path, window: Duration) -> StoreResult<Self> {
        Self::on(open_when_released(dir, LOCK_WAIT)?, window)
    }

    /// The store on an opened database.
    pub(super) fn on(db: sled::Db, window: Duration) -> StoreResult<Self> {
        let flush_times = Arc::new(Histogram::default());
        Ok(SledStore {
            accounts: db.open_tree("accounts")?,
            tokens: db.open_tree("tokens")?,
            logins: db.open_tree("logins")?,
            devices: db.open_tree("devices")?,
            account_devices: db.open_tree("account_devices")?,
            cursors: db.open_tree("cursors")?,
            pushed: db.open_tree("pushed")?,
            pushes: db.open_tree("pushes")?,
            commit: start_group_commit(&db, window, flush_times.clone())?,
            registrations: Mutex::new(()),
            flush_times,
            db,
        })
    }

    /// The durations of this store's flushes, for `/metrics`.
    pub fn flush_times(&self) -> Arc<Histogram> {
        self.flush_times.clone()
    }

    /// The database, for the send path's trees (`sled_send.rs`).
    pub(super) fn db(&self) -> &sled::Db {
        &self.db
    }

    /// Drops the cursor of each of `mailboxes` (other than INBOX) that no
    /// device of the account watches any more, so asking for it again later
    /// starts afresh instead of pushing what arrived in between as new.
    fn read_account(&self, id: &str) -> StoreResult<Option<AccountRecord>> {
        self.accounts.get(id)?.map(|v| decode(&v)).transpose()
    }

    fn read_devices_of(&self, account_id: &str) -> StoreResult<Vec<DeviceRecord>> {
        let mut out = Vec::new();
        for entry in self.account_devices.scan_prefix(prefix(account_id)) {
            let (key, _) = entry?;
            let device_id = &key[account_id.len() + 1..];
            if let Some(value) = self.devices.get(device_id)? {
                out.push(decode(&value)?);
            }
        }
        Ok(out)
    }

    fn count_devices_of(&self, account_id: &str) -> usize {
        self.account_devices.scan_prefix(prefix(account_id)).count()
    }

    fn revoke_tokens_of(&self, account_id: &str, keep: Option<&[u8; 32]>) -> StoreResult<usize> {
        let mut revoked = 0;
        for entry in self.tokens.iter() {
            let (hash, owner) = entry?;
            if owner.as_ref() == account_id.as_bytes() && keep.is_none_or(|k| hash != k[..]) {
                self.tokens.remove(hash)?;
                revoked += 1;
            }
        }
        Ok(revoked)
    }

    fn forget_unwatched(&self, account_id: &str, mailboxes: &[String]) -> StoreResult<()> {
        let remaining = self.read_devices_of(account_id)?;
        for mailbox in mailboxes {
            let watched = mailbox.eq_ignore_ascii_case("INBOX")
                || remaining.iter().any(|d| device_watches(d, mailbox));
            if !watched {
                self.cursors.remove(pair_key(account_id, mailbox))?;
                self.pushed.remove(pair_key(account_id, mailbox))?;
            }
        }
        Ok(())
    }

    /// Removes every queued push of the account, also those of devices
    /// already gone: a watcher that read its devices before one was deleted
    /// may queue for it afterwards. Reads the whole queue, which holds only
    /// what is undelivered.
    fn remove_pushes_of_account(&self, account_id: &str) -> StoreResult<()> {
        #[derive(serde::Deserialize)]
        struct Owner<'a> {
            #[serde(borrow)]
            account_id: std::borrow::Cow<'a, str>,
        }
        for entry in self.pushes.iter() {
            let (key, value) = entry?;
            let owned = serde_json::from_slice::<Owner>(&value)
                .is_ok_and(|owner| owner.account_id == account_id);
            if owned {
                self.pushes.remove(key)?;
            }
        }
        Ok(())
    }

    fn remove_pushes_of_device(&self, device_id: &str) -> StoreResult<()> {
        for entry in self.pushes.scan_prefix(prefix(device_id)) {
            let (key, _) = entry?;
            self.pushes.remove(key)?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Store for SledStore {
    async fn create_account(
        &self,
        account: &AccountRecord,
        token_hash: &[u8; 32],
    ) -> StoreResult<AccountStored> {
        let value = encode(account)?;
        let login = login_key(
            &account.imap.host,
            account.imap.port,
            &account.imap.username,
        );
        (&self.accounts, &self.tokens, &self.logins)
            .transaction(|(accounts, tokens, logins)| {
                if let Some(owner) = logins.get(login.as_slice())? {
                    if owner.as_ref() != account.id.as_bytes() {
                        let owner = String::from_utf8_lossy(&owner).into_owned();
                        return Ok(AccountStored::LoginTaken(owner));
                    }
                }
                accounts.insert(account.id.as_bytes(), value.as_slice())?;
                tokens.insert(&token_hash[..], account.id.as_bytes())?;
                logins.insert(login.as_slice(), account.id.as_bytes())?;
                Ok::<_, ConflictableTransactionError<StoreError>>(AccountStored::Stored)
            })
            .map_err(tx_error)
    }

    async fn account(&self, id: &str) -> StoreResult<Option<AccountRecord>> {
        self.read_account(id)
    }

    async fn accounts(&self) -> StoreResult<Vec<AccountRecord>> {
        self.accounts.iter().values().map(|v| decode(&v?)).collect()
    }

    async fn account_for_login(
        &self,
        host: &str,
        port: u16,
        username: &str,
    ) -> StoreResult<Option<String>> {
        self.logins
            .get(login_key(host, port, username))?
            .map(|v| String::from_utf8(v.to_vec()).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()
    }

    async fn account_for_token(&self, token_hash: &[u8; 32]) -> StoreResult<Option<String>> {
        self.tokens
            .get(token_hash)?
            .map(|v| String::from_utf8(v.to_vec()).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()
    }

    async fn revoke_tokens(&self, account_id: &str, keep: Option<&[u8; 32]>) -> StoreResult<usize> {
        self.revoke_tokens_of(account_id, keep)
    }

    async fn revoke_token(&self, token_hash: &[u8; 32]) -> StoreResult<bool> {
        Ok(self.tokens.remove(token_hash)?.is_some())
    }

    async fn delete_account(&self, id: &str) -> StoreResult<bool> {
        let _registrations = self.registrations.lock().unwrap_or_else(|e| e.into_inner());
        let account = self.read_account(id)?;
        if let Some(account) = &account {
            let login = login_key(
                &account.imap.host,
                account.imap.port,
                &account.imap.username,
            );
            self.logins.remove(login)?;
            self.accounts.remove(id)?;
            self.revoke_tokens_of(id, None)?;
        }
        // Also without the account record: what a watcher that stopped late
        // wrote after the account was deleted goes the same way.
        for entry in self.account_devices.scan_prefix(prefix(id)) {
            let (key, _) = entry?;
            let device_id = String::from_utf8_lossy(&key[id.len() + 1..]).into_owned();
            self.devices.remove(device_id.as_bytes())?;
            self.remove_pushes_of_device(&device_id)?;
            self.account_devices.remove(key)?;
        }
        for tree in [&self.cursors, &self.pushed] {
            for entry in tree.scan_prefix(prefix(id)) {
                let (key, _) = entry?;
                tree.remove(key)?;
            }
        }
        self.remove_pushes_of_account(id)?;
        Ok(account.is_some())
    }

    async fn put_device(
        &self,
        device: &DeviceRecord,
        max_devices: usize,
    ) -> StoreResult<DeviceStored> {
        let _registrations = self.registrations.lock().unwrap_or_else(|e| e.into_inner());
        if !self.accounts.contains_key(device.account_id.as_bytes())? {
            return Ok(DeviceStored::NoAccount);
        }
        let devices = self.read_devices_of(&device.account_id)?;
        let endpoint = &device.subscription.endpoint;
        let previous = devices
            .into_iter()
            .find(|d| d.id == device.id || d.subscription.endpoint == *endpoint);
        if previous.is_none() && self.count_devices_of(&device.account_id) >= max_devices {
            return Ok(DeviceStored::TooMany);
        }
        let device = &DeviceRecord {
            id: previous
                .as_ref()
                .map_or(device.id.clone(), |p| p.id.clone()),
            ..device.clone()
        };
        let value = encode(device)?;
        let index = pair_key(&device.account_id, &device.id);
        (&self.devices, &self.account_devices)
            .transaction(|(devices, account_devices)| {
                devices.insert(device.id.as_bytes(), value.as_slice())?;
                account_devices.insert(index.as_slice(), &[][..])?;
                Ok::<_, ConflictableTransactionError<StoreError>>(())
            })
            .map_err(tx_error)?;
        if let Some(previous) = previous {
            self.forget_unwatched(&device.account_id, &previous.mailboxes)?;
        }
        Ok(DeviceStored::Stored(device.id.clone()))
    }

    async fn device(&self, id: &str) -> StoreResult<Option<DeviceRecord>> {
        self.devices.get(id)?.map(|v| decode(&v)).transpose()
    }

    async fn devices_of(&self, account_id: &str) -> StoreResult<Vec<DeviceRecord>> {
        self.read_devices_of(account_id)
    }

    async fn delete_device(&self, id: &str) -> StoreResult<bool> {
        let _registrations = self.registrations.lock().unwrap_or_else(|e| e.into_inner());
        let Some(device) = self
            .devices
            .get(id)?
            .map(|v| decode::<DeviceRecord>(&v))
            .transpose()?
        else {
            return Ok(false);
        };
        self.account_devices
            .remove(pair_key(&device.account_id, id))?;
        self.devices.remove(id)?;
        self.remove_pushes_of_device(id)?;
        self.forget_unwatched(&device.account_id, &device.mailboxes)?;
        Ok(true)
    }

    async fn pushed_window(
        &self,
        account_id: &str,
        mailbox: &str,
    ) -> StoreResult<Option<PushedWindow>> {
        self.pushed
            .get(pair_key(account_id, mailbox))?
            .map(|v| decode(&v))
            .transpose()
    }

    async fn put_pushed_window(
        &self,
        account_id: &str,
        mailbox: &str,
        window: &PushedWindow,
        _fence: Fence,
    ) -> StoreResult<()> {
        self.pushed
            .insert(pair_key(account_id, mailbox), encode(window)?)?;
        Ok(())
    }

    async fn cursor(&self, account_id: &str, mailbox: &str) -> StoreResult<Option<Cursor>> {
        self.cursors
            .get(pair_key(account_id, mailbox))?
            .map(|v| decode(&v))
            .transpose()
    }

    async fn put_cursor(
        &self,
        account_id: &str,
        mailbox: &str,
        cursor: &Cursor,
        _fence: Fence,
    ) -> StoreResult<()> {
        self.cursors
            .insert(pair_key(account_id, mailbox), encode(cursor)?)?;
        Ok(())
    }

    async fn record_new_mail(&self, mail: &NewMail<'_>) -> StoreResult<Vec<PushKey>> {
        // A device deleted since the caller read the list gets nothing: its
        // entry would outlive it.
        let mut shares = Vec::with_capacity(mail.deliveries.len());
        for share in &mail.deliveries {
            if self.devices.contains_key(share.device_id.as_bytes())? {
                shares.push(share);
            }
        }
        let keys: Vec<PushKey> = shares
            .iter()
            .map(|share| PushKey {
                device_id: share.device_id.to_string(),
                mailbox: mail.mailbox.to_string(),
            })
            .collect();
        // No sled transaction: each costs two extra writes of sled's log
        // buffer, most of the store's CPU per new mail. The pushes are merged
        // first, each an atomic update of its own key, and then the cursor
        // moves. sled recovers a prefix of its log, so a crash may keep the
        // pushes without the cursor but never the cursor without the pushes;
        // the watcher then finds the same mail again, which `merge` does not
        // add twice.
        for (key, share) in keys.iter().zip(shares) {
            self.pushes.fetch_and_update(push_key(key), |old| {
                // A corrupt entry could never be delivered: start afresh.
                let existing = old.and_then(|v| serde_json::from_slice::<PendingPush>(v).ok());
                let merged = merge(existing, key.clone(), mail, share);
                // Encoding a value of this type cannot fail; keep the old one if it did.
                serde_json::to_vec(&merged)
                    .ok()
                    .or_else(|| old.map(<[u8]>::to_vec))
            })?;
        }
        self.cursors.insert(
            pair_key(mail.account_id, mail.mailbox),
            encode(&mail.cursor)?,
        )?;
        Ok(keys)
    }

    async fn pending_pushes(&self) -> StoreResult<Vec<PendingPush>> {
        self.pushes.iter().values().map(|v| decode(&v?)).collect()
    }

    async fn pending_pushes_of_device(&self, device_id: &str) -> StoreResult<Vec<PendingPush>> {
        self.pushes
            .scan_prefix(prefix(device_id))
            .values()
            .map(|v| decode(&v?))
            .collect()
    }

    async fn pending_push(&self, key: &PushKey) -> StoreResult<Option<PendingPush>> {
        self.pushes
            .get(push_key(key))?
            .map(|v| decode(&v))
            .transpose()
    }

    /// One process delivers (its schedule keeps one attempt per key at a
    /// time), so a claim is a read.
    async fn claim_push(&self, key: &PushKey, _claim_ms: i64) -> StoreResult<Option<PendingPush>> {
        self.pending_push(key).await
    }

    async fn due_pushes(&self, now_ms: i64, limit: usize) -> StoreResult<Vec<PushKey>> {
        let mut due = Vec::new();
        for value in self.pushes.iter().values() {
            let push: PendingPush = decode(&value?)?;
            if push.not_before_ms <= now_ms {
                due.push(push.key);
                if due.len() == limit {
                    break;
                }
            }
        }
        Ok(due)
    }

    async fn finish_push(&self, key: &PushKey, delivered: &PendingPush) -> StoreResult<bool> {
        let raw_key = push_key(key);
        // The usual case, nothing merged in meanwhile: the stored bytes are
        // what was read, and one compare-and-swap removes them undecoded.
        let unchanged = encode(delivered)?;
        if self
            .pushes
            .compare_and_swap(&raw_key, Some(unchanged), None::<&[u8]>)?
            .is_ok()
        {
            return Ok(true);
        }
        let mut removed = false;
        self.pushes.fetch_and_update(&raw_key, |old| {
            let old = old?;
            // A corrupt entry can never be delivered: drop it.
            let Ok(stored) = serde_json::from_slice::<PendingPush>(old) else {
                removed = true;
                return None;
            };
            match remainder(stored, delivered) {
                None => {
                    removed = true;
                    None
                }
                // A re-encoding cannot fail for a value just decoded.
                Some(left) => serde_json::to_vec(&left)
                    .ok()
                    .or_else(|| Some(old.to_vec())),
            }
        })?;
        Ok(removed)
    }

    async fn reschedule_push(
        &self,
        key: &PushKey,
        attempts: u32,
        not_before_ms: i64,
        shrink: bool,
    ) -> StoreResult<()> {
        self.pushes.fetch_and_update(push_key(key), |old| {
            let old = old?;
            let mut push = serde_json::from_slice::<PendingPush>(old).ok()?;
            reschedule(&mut push, attempts, not_before_ms, shrink);
            serde_json::to_vec(&push).ok()
        })?;
        Ok(())
    }

    async fn remove_push(&self, key: &PushKey) -> StoreResult<()> {
        self.pushes.remove(push_key(key))?;
        Ok(())
    }

    async fn forget_read(&self, read: &ReadMail<'_>) -> StoreResult<Vec<Unshown>> {
        let mut changed = Vec::new();
        for device in self.read_devices_of(read.account_id)? {
            let key = PushKey {
                device_id: device.id,
                mailbox: read.mailbox.to_string(),
            };
            let mut gone = Vec::new();
            // A corrupt entry is left to the deliverer, which drops it.
            self.pushes.fetch_and_update(push_key(&key), |old| {
                let old = old?;
                let outcome = serde_json::from_slice(old)
                    .map_or(Forgotten::Unchanged, |stored| forget_read(stored, read));
                let (value, uids) = match outcome {
                    Forgotten::Unchanged => (Some(old.to_vec()), Vec::new()),
                    Forgotten::Changed(left, uids) => (serde_json::to_vec(&left).ok(), uids),
                    Forgotten::Emptied(uids) => (None, uids),
                };
                gone = uids;
                value
            })?;
            if !gone.is_empty() {
                changed.push(Unshown {
                    device_id: key.device_id,
                    uids: gone,
                });
            }
        }
        Ok(changed)
    }

    async fn flush(&self) -> StoreResult<()> {
        self.commit.flush().await.map_err(StoreError::Backend)
    }

    fn request_flush(&self) {
        self.commit.request();
    }
}

pub(super) fn tx_error(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => e.into(),
    }
}

#[cfg(test)]
#[path = "sled_store_tests.rs"]
mod tests;
