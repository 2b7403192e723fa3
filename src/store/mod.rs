//! Durable state: accounts (with sealed secrets), hashed API tokens, devices,
//! per-mailbox cursors, the push queue, and the send path's uploads and
//! outbox (`send.rs`).
//!
//! Everything goes through the [`Store`] trait so that sled, the embedded
//! default, stays replaceable. Writes that must survive a crash are followed
//! by [`Store::flush`].

mod group_commit;
mod seal;
pub mod send;
mod sled_send;
mod sled_store;
mod types;

use std::future::Future;
use std::pin::Pin;

pub use seal::{create_private_file, SealError, Sealer};
pub use send::SendStore;
pub use sled_store::SledStore;
pub use types::*;

use crate::error::ErrorClass;
use crate::mail::MessageSummary;

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage failure: {0}")]
    Backend(String),
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Permanent
    }
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// New mail found in one mailbox, to be queued for every interested device
/// together with the cursor that moves past it.
#[derive(Debug, Clone)]
pub struct NewMail<'a> {
    pub account_id: &'a str,
    pub mailbox: &'a str,
    /// The devices that watch `mailbox` (see [`lists_mailbox`]), as the
    /// caller read them: each gets the mail.
    pub device_ids: &'a [String],
    /// Summaries of the newest messages, oldest first (may be fewer than `count`).
    pub messages: &'a [MessageSummary],
    /// How many new messages arrived.
    pub count: u32,
    /// The cursor after these messages.
    pub cursor: Cursor,
    /// Unix milliseconds when an undelivered push expires.
    pub expires_at_ms: i64,
}

/// The gateway's durable state.
pub trait Store: SendStore + Send + Sync + 'static {
    /// Stores an account (new, or updated credentials) together with the
    /// hash of a new API token; earlier tokens stay valid.
    fn create_account(&self, account: &AccountRecord, token_hash: &[u8; 32]) -> StoreResult<()>;
    fn account(&self, id: &str) -> StoreResult<Option<AccountRecord>>;
    fn accounts(&self) -> StoreResult<Vec<AccountRecord>>;
    /// The account registered for this IMAP login, if any.
    fn account_for_login(
        &self,
        host: &str,
        port: u16,
        username: &str,
    ) -> StoreResult<Option<String>>;
    /// The account a token hash belongs to.
    fn account_for_token(&self, token_hash: &[u8; 32]) -> StoreResult<Option<String>>;
    /// Revokes the account's tokens, all but `keep` when given; returns how
    /// many were revoked.
    fn revoke_tokens(&self, account_id: &str, keep: Option<&[u8; 32]>) -> StoreResult<usize>;
    /// Revokes one token; false when it was not there.
    fn revoke_token(&self, token_hash: &[u8; 32]) -> StoreResult<bool>;
    /// Removes the account, its tokens, devices, cursors and queued pushes;
    /// false when there was no account record (devices and cursors left
    /// under its id are removed all the same).
    fn delete_account(&self, id: &str) -> StoreResult<bool>;

    /// Stores a device; when it replaces an earlier registration, mailboxes
    /// it no longer asks for (and no other device does) lose their cursors.
    fn put_device(&self, device: &DeviceRecord) -> StoreResult<()>;
    fn device(&self, id: &str) -> StoreResult<Option<DeviceRecord>>;
    fn devices_of(&self, account_id: &str) -> StoreResult<Vec<DeviceRecord>>;
    /// Removes the device and its queued pushes, and forgets the cursors of
    /// mailboxes no device watches any more. False if it did not exist.
    fn delete_device(&self, id: &str) -> StoreResult<bool>;

    fn cursor(&self, account_id: &str, mailbox: &str) -> StoreResult<Option<Cursor>>;
    /// Sets a cursor without queuing anything (first watch, UIDVALIDITY reset).
    fn put_cursor(&self, account_id: &str, mailbox: &str, cursor: &Cursor) -> StoreResult<()>;
    /// Merges new mail into the pending push of every device of
    /// `mail.devices` that watches the mailbox, then advances the cursor. A
    /// crash in between may keep the pushes without the cursor, never the
    /// reverse; recording the same mail again does not queue it twice.
    /// Returns the keys touched.
    fn record_new_mail(&self, mail: &NewMail<'_>) -> StoreResult<Vec<PushKey>>;

    fn pending_pushes(&self) -> StoreResult<Vec<PendingPush>>;
    /// The pushes queued for one device, by mailbox.
    fn pending_pushes_of_device(&self, device_id: &str) -> StoreResult<Vec<PendingPush>>;
    fn pending_push(&self, key: &PushKey) -> StoreResult<Option<PendingPush>>;
    /// Records that `delivered` (the push as read before sending) reached the
    /// device: removes the push if nothing merged into it since; otherwise
    /// keeps only what merged after (its count less the delivered count, its
    /// messages less the delivered ones), so nothing is pushed twice.
    /// Returns false when something is left to deliver.
    fn finish_push(&self, key: &PushKey, delivered: &PendingPush) -> StoreResult<bool>;
    /// Records a failed attempt: attempts, the earliest next try, and whether
    /// to shrink the payload. Merged messages are kept.
    fn reschedule_push(
        &self,
        key: &PushKey,
        attempts: u32,
        not_before_ms: i64,
        shrink: bool,
    ) -> StoreResult<()>;
    /// Drops a push whatever its version (expired, device gone).
    fn remove_push(&self, key: &PushKey) -> StoreResult<()>;

    /// Makes every write so far durable.
    fn flush(&self) -> Pin<Box<dyn Future<Output = StoreResult<()>> + Send + '_>>;

    /// Asks for every write so far to be made durable soon, without waiting
    /// (a failure reaches only those who wait, at their next `flush`).
    fn request_flush(&self);
}
