//! The read side of the mail API: mailbox lists, message lists with
//! previews, delta sync, message text, parts, flags, moves, deletes and
//! search, over IMAP sessions from a per-account [`SessionPool`].
//!
//! ```text
//!  api/mail.rs ──▶ ops.rs (one function per endpoint) ──▶ imap (fetch.rs, modify.rs)
//!                    │ convert.rs (headers, text)  structure.rs (MIME parts)
//!                    │ state.rs (delta-sync tokens) range.rs (HTTP Range)
//!                    │ cursor.rs (search pages)
//!                    │ part.rs (part downloads, in pieces; decode.rs)
//!                    └─ pool.rs: sessions per account, closed when idle
//! ```

pub mod convert;
pub mod cursor;
pub mod decode;
pub mod ops;
pub mod part;
pub mod pool;
pub mod range;
pub mod state;
pub mod structure;

pub use pool::{PooledSession, SessionPool};

use crate::credentials::LoginError;
use crate::error::ErrorClass;
use crate::error_code::ErrorCode;
use crate::imap::ImapError;
use crate::store::StoreError;

/// Why a read operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Imap(#[from] ImapError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No login: credentials that do not open, a provider that refused
    /// the account's grant or cannot be reached.
    #[error(transparent)]
    Login(LoginError),
    #[error("the account no longer exists")]
    NoAccount,
    #[error("no mailbox {0}")]
    MailboxNotFound(String),
    #[error("no message with UID {0}")]
    MessageNotFound(u32),
    #[error("no part {0} in this message")]
    PartNotFound(String),
    /// The state token cannot be used any more: list the mailbox again.
    #[error("resync required: {0}")]
    ResyncRequired(&'static str),
    /// Not a state token of ours.
    #[error("not a valid state token")]
    BadState,
    /// Not a cursor of this search in this mailbox.
    #[error("not a cursor of this search: search again without one")]
    BadCursor,
    /// A request value is unusable; the code names it.
    #[error("{1}")]
    Invalid(ErrorCode, String),
    /// The requested byte range lies outside the part (its size).
    #[error("range not satisfiable (size {0})")]
    RangeNotSatisfiable(u64),
    #[error("internal lock poisoned")]
    Poisoned,
    /// The account's server recently broke a session with what the client
    /// could not take; requests wait this long before it is tried again.
    #[error("the mail server sent something it should not; trying it again in {}s", .0.as_secs().max(1))]
    CoolingDown(std::time::Duration),
}

impl From<LoginError> for ReadError {
    fn from(e: LoginError) -> Self {
        match e {
            LoginError::Imap(e) => ReadError::Imap(e),
            other => ReadError::Login(other),
        }
    }
}

impl ReadError {
    pub fn class(&self) -> ErrorClass {
        match self {
            ReadError::Imap(e) => e.class(),
            ReadError::CoolingDown(_) => ErrorClass::Transient,
            ReadError::Store(e) => e.class(),
            ReadError::Login(e) => e.class(),
            ReadError::Poisoned => ErrorClass::Permanent,
            _ => ErrorClass::Permanent,
        }
    }
}
