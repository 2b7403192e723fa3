//! Durable state: accounts (with sealed secrets), hashed API tokens, devices,
//! per-mailbox cursors, the push queue, and the send path's uploads and
//! outbox (`send.rs`), and what OAuth2 sign-in keeps (`oauth.rs`).
//!
//! Everything goes through the async [`Store`] trait, which knows no
//! backend: sled (embedded, one process) and PostgreSQL (a cluster of
//! nodes) implement it, and one conformance suite (`conformance.rs`) holds
//! both to the same promises. Writes that must survive a crash are followed
//! by [`Store::flush`], a no-op where every commit is durable already.

#[doc(hidden)]
pub mod conformance;
mod group_commit;
pub mod migrate;
pub mod oauth;
pub mod postgres;
mod queued;
mod seal;
pub mod send;
mod sled_export;
mod sled_oauth;
mod sled_open;
mod sled_send;
mod sled_store;
mod types;

pub use oauth::{OAuthStore, Ticket};
pub use postgres::{PgOptions, PgStore};
pub use seal::{create_private_file, SealError, Sealer};
pub use send::SendStore;
pub use sled_export::{Export, ExportedCursor, SledOpenError};
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
    /// The database cannot be reached now (connection refused or lost, a
    /// timeout, a failover under way): try again later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A fenced write was refused: this node no longer owns the account
    /// (its lease ran out, or the account moved to another node).
    #[error("this node no longer owns the account")]
    Fenced,
}

impl StoreError {
    pub fn class(&self) -> ErrorClass {
        match self {
            StoreError::Unavailable(_) => ErrorClass::Transient,
            StoreError::Backend(_) | StoreError::Corrupt(_) | StoreError::Fenced => {
                ErrorClass::Permanent
            }
        }
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// New mail found in one mailbox, to be queued for the devices that get
/// it, together with the cursor that moves past it.
#[derive(Debug, Clone)]
pub struct NewMail<'a> {
    pub account_id: &'a str,
    pub mailbox: &'a str,
    /// What each device that watches `mailbox` (see [`lists_mailbox`]), as
    /// the caller read them, gets of the mail.
    pub deliveries: Vec<DeviceMail<'a>>,
    /// The cursor after these messages.
    pub cursor: Cursor,
    /// Messages in the mailbox without `\Seen` once this mail arrived,
    /// when the watcher counted them.
    pub unseen: Option<u32>,
    /// The watcher's ownership of the account.
    pub fence: Fence,
}

/// Pushed mail read, moved or deleted elsewhere, to be taken out of the
/// pushes of its mailbox that still wait (see [`Store::forget_read`]).
#[derive(Debug, Clone)]
pub struct ReadMail<'a> {
    pub account_id: &'a str,
    pub mailbox: &'a str,
    /// The mailbox's UIDVALIDITY, with which `uids` name messages.
    pub uidvalidity: u32,
    pub uids: &'a [u32],
    /// Messages in the mailbox without `\Seen` now, when counted.
    pub unseen: Option<u32>,
    /// A push due at this time (Unix milliseconds) or before may be on
    /// its way to the device, and is left alone.
    pub now_ms: i64,
}

/// Read mail taken out of one device's waiting push: it was never shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unshown {
    pub device_id: String,
    pub uids: Vec<u32>,
}

/// What one device gets of new mail: the messages its rules let it see,
/// how many new messages the push stands for (muted ones included), and
/// from when it may go out.
#[derive(Debug, Clone)]
pub struct DeviceMail<'a> {
    pub device_id: &'a str,
    /// Summaries of the newest messages it may show, oldest first.
    pub messages: std::borrow::Cow<'a, [MessageSummary]>,
    /// How many new messages arrived, whether its rules show them or not.
    pub count: u32,
    /// Unix milliseconds before which the push waits (the end of the
    /// device's quiet hours); 0 for now, [`DORMANT`] for mail that alone
    /// never makes a push (all of it muted).
    pub not_before_ms: i64,
    /// Unix milliseconds when an undelivered push expires.
    pub expires_at_ms: i64,
}

impl<'a> DeviceMail<'a> {
    /// All of the mail, at once.
    pub fn now(
        device_id: &'a str,
        messages: &'a [MessageSummary],
        count: u32,
        expires_at_ms: i64,
    ) -> Self {
        DeviceMail {
            device_id,
            messages: std::borrow::Cow::Borrowed(messages),
            count,
            not_before_ms: 0,
            expires_at_ms,
        }
    }
}

impl DeviceMail<'_> {
    /// The same mail, all of it at once, for each of `device_ids`.
    pub fn to_each<'a>(
        device_ids: &'a [String],
        messages: &'a [MessageSummary],
        count: u32,
        expires_at_ms: i64,
    ) -> Vec<DeviceMail<'a>> {
        device_ids
            .iter()
            .map(|id| DeviceMail::now(id, messages, count, expires_at_ms))
            .collect()
    }
}

/// The `not_before_ms` of a queued push that waits for mail worth a push:
/// it only counts messages its device's rules mute.
pub const DORMANT: i64 = i64::MAX;

/// A watcher's proof that its node owns the account: the epoch of the
/// account's owner, raised at every change of owner. A backend shared by
/// several nodes refuses a fenced write ([`StoreError::Fenced`]) unless
/// this node still owns the account with this epoch and holds a live lease;
/// a single-process backend owns every account and ignores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fence {
    pub epoch: i64,
}

impl Fence {
    /// The fence of a single-process store, which every account belongs to.
    pub const SOLE_OWNER: Fence = Fence { epoch: 0 };
}

/// What storing a registration did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountStored {
    /// Stored (new, or new credentials of the account with this id).
    Stored,
    /// Another account (this id) holds the login already, registered at the
    /// same moment elsewhere: seal the secrets for that id and store again.
    LoginTaken(String),
}

/// What storing a device did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceStored {
    /// Stored under this id: the record's own, or that of the account's
    /// earlier registration of the same push endpoint, which it replaced.
    Stored(String),
    /// The account has the most devices allowed already.
    TooMany,
    /// The account is gone.
    NoAccount,
}

/// The gateway's durable state.
///
/// Every method is atomic. Checks that guard against races between
/// requests (one account per login, one device per push endpoint, the
/// device limit, idempotency keys) are made by the store itself, so they
/// hold across processes sharing a backend.
#[async_trait::async_trait]
pub trait Store: SendStore + OAuthStore + Send + Sync + 'static {
    /// Stores an account (new, or updated credentials) together with the
    /// hash of a new API token; earlier tokens stay valid. Refused with
    /// [`AccountStored::LoginTaken`] when another account holds its login.
    async fn create_account(
        &self,
        account: &AccountRecord,
        token_hash: &[u8; 32],
    ) -> StoreResult<AccountStored>;
    async fn account(&self, id: &str) -> StoreResult<Option<AccountRecord>>;
    async fn accounts(&self) -> StoreResult<Vec<AccountRecord>>;
    /// The account registered for this IMAP login, if any.
    async fn account_for_login(
        &self,
        host: &str,
        port: u16,
        username: &str,
    ) -> StoreResult<Option<String>>;
    /// The account a token hash belongs to.
    async fn account_for_token(&self, token_hash: &[u8; 32]) -> StoreResult<Option<String>>;
    /// Revokes the account's tokens, all but `keep` when given; returns how
    /// many were revoked.
    async fn revoke_tokens(&self, account_id: &str, keep: Option<&[u8; 32]>) -> StoreResult<usize>;
    /// Revokes one token; false when it was not there.
    async fn revoke_token(&self, token_hash: &[u8; 32]) -> StoreResult<bool>;
    /// Removes the account, its tokens, devices, cursors and queued pushes;
    /// false when there was no account record (devices and cursors left
    /// under its id are removed all the same).
    async fn delete_account(&self, id: &str) -> StoreResult<bool>;

    /// Stores a device. The account's earlier registration of the same push
    /// endpoint is replaced (its id kept); mailboxes it no longer asks for
    /// (and no other device does) lose their cursors. A new endpoint is
    /// refused when the account has `max_devices` already.
    async fn put_device(
        &self,
        device: &DeviceRecord,
        max_devices: usize,
    ) -> StoreResult<DeviceStored>;
    async fn device(&self, id: &str) -> StoreResult<Option<DeviceRecord>>;
    async fn devices_of(&self, account_id: &str) -> StoreResult<Vec<DeviceRecord>>;
    /// Removes the device and its queued pushes, and forgets the cursors of
    /// mailboxes no device watches any more. False if it did not exist.
    async fn delete_device(&self, id: &str) -> StoreResult<bool>;

    async fn cursor(&self, account_id: &str, mailbox: &str) -> StoreResult<Option<Cursor>>;
    /// Sets a cursor without queuing anything (first watch, UIDVALIDITY
    /// reset); fenced like [`Store::record_new_mail`].
    async fn put_cursor(
        &self,
        account_id: &str,
        mailbox: &str,
        cursor: &Cursor,
        fence: Fence,
    ) -> StoreResult<()>;
    /// The mailbox's recently pushed messages, whose reading is watched.
    async fn pushed_window(
        &self,
        account_id: &str,
        mailbox: &str,
    ) -> StoreResult<Option<PushedWindow>>;
    /// Replaces the mailbox's recently pushed messages; fenced like
    /// [`Store::record_new_mail`].
    async fn put_pushed_window(
        &self,
        account_id: &str,
        mailbox: &str,
        window: &PushedWindow,
        fence: Fence,
    ) -> StoreResult<()>;
    /// Merges new mail into the pending push of every device of
    /// `mail.devices` that watches the mailbox, then advances the cursor. A
    /// crash in between may keep the pushes without the cursor, never the
    /// reverse; recording the same mail again does not queue it twice.
    /// Refused with [`StoreError::Fenced`] (nothing written) when this
    /// node no longer owns the account. Returns the keys touched.
    async fn record_new_mail(&self, mail: &NewMail<'_>) -> StoreResult<Vec<PushKey>>;

    async fn pending_pushes(&self) -> StoreResult<Vec<PendingPush>>;
    /// The pushes queued for one device, by mailbox.
    async fn pending_pushes_of_device(&self, device_id: &str) -> StoreResult<Vec<PendingPush>>;
    async fn pending_push(&self, key: &PushKey) -> StoreResult<Option<PendingPush>>;
    /// Takes a queued push for delivery: `None` when there is none, or when
    /// another deliverer holds it (a backend shared by several processes
    /// lets one claim it at a time, for `claim_ms`; the claim is in
    /// [`PendingPush::claim`]).
    async fn claim_push(&self, key: &PushKey, claim_ms: i64) -> StoreResult<Option<PendingPush>>;
    /// Gives back a claim without changing the push (it is not due yet).
    async fn release_push(&self, _key: &PushKey, _claim: i64) -> StoreResult<()> {
        Ok(())
    }
    /// Queued pushes due at `now_ms` that nobody holds, at most `limit`.
    async fn due_pushes(&self, now_ms: i64, limit: usize) -> StoreResult<Vec<PushKey>>;
    /// Records that `delivered` (the push as claimed before sending)
    /// reached the device: removes the push if nothing merged into it
    /// since; otherwise keeps only what merged after (its count less the
    /// delivered count, its messages less the delivered ones), so nothing is
    /// pushed twice, and releases the claim. Changes nothing when the claim
    /// was lost to another deliverer. Returns false when something is left
    /// to deliver.
    async fn finish_push(&self, key: &PushKey, delivered: &PendingPush) -> StoreResult<bool>;
    /// Records a failed attempt: attempts, the earliest next try, and whether
    /// to shrink the payload; releases the claim. Merged messages are kept.
    async fn reschedule_push(
        &self,
        key: &PushKey,
        attempts: u32,
        not_before_ms: i64,
        shrink: bool,
    ) -> StoreResult<()>;
    /// Drops a push whatever its version (expired, device gone).
    async fn remove_push(&self, key: &PushKey) -> StoreResult<()>;
    /// Takes `read.uids` out of the account's pushes for the mailbox that
    /// wait (quiet hours, a retry's backoff, muted mail only) and nobody
    /// holds, so that a summary never lists mail already read elsewhere;
    /// a push left with nothing is dropped. Returns, for each device whose
    /// push changed, the UIDs taken out: mail it was never shown. Not
    /// fenced: a read is a fact of the server, whichever node reports it.
    async fn forget_read(&self, read: &ReadMail<'_>) -> StoreResult<Vec<Unshown>>;

    /// Makes every write so far durable (nothing to do for a backend whose
    /// every commit is durable).
    async fn flush(&self) -> StoreResult<()>;

    /// Asks for every write so far to be made durable soon, without waiting
    /// (a failure reaches only those who wait, at their next `flush`).
    fn request_flush(&self);
}
