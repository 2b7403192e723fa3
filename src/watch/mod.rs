//! Watching accounts: a supervisor that keeps one actor per account, each of
//! which connects to the account's IMAP server, catches up on mail that
//! arrived while nobody watched, then waits in IDLE (or NOTIFY) and queues a
//! push for every new message.
//!
//! Flow of one account: connect (admission-controlled per upstream host) →
//! log in → read capabilities → for each watched mailbox compare the stored
//! cursor with UIDVALIDITY/UIDNEXT → IDLE → on EXISTS fetch summaries, queue
//! pushes, then advance the cursor → wake the notifier → flush both. A look
//! that finds nothing spaces out the next ones (`throttle.rs`), so a server
//! announcing nothing new after every IDLE cannot drive a loop. Any error
//! backs off with jitter and reconnects; refused credentials stop the
//! actor in `auth_failed`. What the status keeps of a server is bounded
//! (`status.rs`).

mod account;
mod control;
mod cursor;
mod delivery;
mod devices;
mod pipelining;
mod session;
mod status;
mod supervisor;
mod throttle;

pub use control::WatchControl;
pub use cursor::{catch_up, found, CatchUp, Found};
pub use delivery::READ_SETTLE;
pub use pipelining::{PipeliningHosts, Verdict};
pub use status::{cut_text, WatchState, WatchStates, WatchStatus};
pub use supervisor::{HostLimiter, Supervisor, WatchContext};

use crate::credentials::LoginError;
use crate::error::ErrorClass;
use crate::imap::ImapError;
use crate::store::StoreError;

/// Why a watch attempt ended.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(transparent)]
    Imap(#[from] ImapError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No login: credentials that do not open, a provider that refused
    /// the account's grant or cannot be reached.
    #[error(transparent)]
    Login(LoginError),
    #[error("server closed the connection: {0}")]
    Bye(String),
}

impl WatchError {
    pub fn class(&self) -> ErrorClass {
        match self {
            WatchError::Imap(e) => e.class(),
            WatchError::Store(e) => e.class(),
            WatchError::Login(e) => e.class(),
            WatchError::Bye(_) => ErrorClass::Transient,
        }
    }
}

impl From<LoginError> for WatchError {
    fn from(e: LoginError) -> Self {
        match e {
            LoginError::Imap(e) => WatchError::Imap(e),
            other => WatchError::Login(other),
        }
    }
}

impl WatchError {
    /// The provider refused the account's grant: only signing in again helps.
    pub fn needs_sign_in(&self) -> bool {
        matches!(self, WatchError::Login(e) if e.needs_sign_in())
    }
}

/// The mailbox every account watches: the cursor of INBOX is kept current
/// even with no device, so that a device registered later is never sent old
/// mail as new.
pub const INBOX: &str = "INBOX";
