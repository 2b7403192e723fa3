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
mod pipelining;
mod session;
mod status;
mod supervisor;
mod throttle;

pub use control::WatchControl;
pub use cursor::{catch_up, found, CatchUp, Found};
pub use pipelining::{PipeliningHosts, Verdict};
pub use status::{cut_text, WatchState, WatchStates, WatchStatus};
pub use supervisor::{HostLimiter, Supervisor, WatchContext};

use crate::error::ErrorClass;
use crate::imap::ImapError;
use crate::store::{SealError, StoreError};

/// Why a watch attempt ended.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(transparent)]
    Imap(#[from] ImapError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored credentials do not open: {0}")]
    Seal(#[from] SealError),
    #[error("server closed the connection: {0}")]
    Bye(String),
}

impl WatchError {
    pub fn class(&self) -> ErrorClass {
        match self {
            WatchError::Imap(e) => e.class(),
            WatchError::Store(e) => e.class(),
            WatchError::Seal(_) => ErrorClass::Permanent,
            WatchError::Bye(_) => ErrorClass::Transient,
        }
    }
}

/// The mailbox every account watches: the cursor of INBOX is kept current
/// even with no device, so that a device registered later is never sent old
/// mail as new.
pub const INBOX: &str = "INBOX";
