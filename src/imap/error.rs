//! The IMAP client's error type and how each error drives the reconnect policy.

use crate::error::ErrorClass;
use crate::net::NetError;
use crate::sasl::SaslError;

use super::command::InvalidArgument;

/// Why an IMAP operation failed. Texts carry the server's words, never a password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImapError {
    /// Connecting or securing the connection failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// Reading or writing the socket failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The server did not answer in time.
    #[error("timed out waiting for the server")]
    Timeout,
    /// The server closed the connection without a BYE.
    #[error("connection closed by the server")]
    Closed,
    /// The server said BYE (shutdown, idle timeout, too many connections).
    #[error("server closed the connection: {0}")]
    Bye(String),
    /// Login refused: wrong credentials (or the account is disabled).
    #[error("login refused: {0}")]
    Auth(String),
    /// The server asked to try again later (RFC 5530 `UNAVAILABLE`).
    #[error("server temporarily unavailable: {0}")]
    Unavailable(String),
    /// The server answered NO to a command.
    #[error("{command} refused: {text}")]
    No { command: &'static str, text: String },
    /// The server answered BAD: it did not understand a command.
    #[error("{command} rejected as malformed: {text}")]
    Bad { command: &'static str, text: String },
    /// The server sent something the client cannot make sense of.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// TLS was required through STARTTLS, but the server does not offer it.
    #[error("server does not offer STARTTLS")]
    StarttlsUnavailable,
    /// The server refuses to log in over this connection (`LOGINDISABLED`).
    #[error("server refuses login on this connection (LOGINDISABLED)")]
    LoginDisabled,
    /// The server lacks an extension the operation needs.
    #[error("server does not support {0}")]
    Unsupported(&'static str),
    /// An OAuth2 login cannot be tried: no mechanism for it, or a user
    /// name or token that cannot be sent.
    #[error(transparent)]
    Sasl(#[from] SaslError),
    /// An argument could not be put in a command safely.
    #[error(transparent)]
    InvalidArgument(#[from] InvalidArgument),
    /// An earlier timeout or I/O error left the connection out of sync.
    #[error("connection unusable after an earlier error")]
    Unusable,
    /// IDLE was started while it was already running.
    #[error("IDLE is already running")]
    Idling,
    /// The server sent more than the command asked for (its byte budget),
    /// or more than the gateway holds for all upstreams at once. The
    /// connection is dropped and the account backs off.
    #[error("response too large: {0}")]
    TooLarge(String),
}

pub use crate::text::MAX_SERVER_TEXT;

/// `text` cut to at most `max` bytes on a character boundary.
pub(crate) fn cut(mut text: String, max: usize) -> String {
    let end = crate::text::truncate_bytes(&text, max).len();
    text.truncate(end);
    text
}

impl ImapError {
    /// A protocol error whose text (which may quote the server) is cut to
    /// [`MAX_SERVER_TEXT`].
    pub(crate) fn protocol(text: impl Into<String>) -> Self {
        ImapError::Protocol(cut(text.into(), MAX_SERVER_TEXT))
    }

    /// How the reconnect policy should treat this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            ImapError::Net(e) => e.class(),
            ImapError::Io(_)
            | ImapError::Timeout
            | ImapError::Closed
            | ImapError::Bye(_)
            | ImapError::Unavailable(_)
            | ImapError::Unusable => ErrorClass::Transient,
            ImapError::Auth(_) => ErrorClass::Auth,
            // Too large is the server's doing and likely to happen again at
            // once: the watcher's backoff keeps growing, as after garbage.
            ImapError::Bad { .. }
            | ImapError::Protocol(_)
            | ImapError::TooLarge(_)
            | ImapError::Idling => ErrorClass::Protocol,
            ImapError::No { .. }
            | ImapError::StarttlsUnavailable
            | ImapError::LoginDisabled
            | ImapError::Unsupported(_)
            | ImapError::Sasl(_)
            | ImapError::InvalidArgument(_) => ErrorClass::Permanent,
        }
    }

    /// Whether the connection can no longer be trusted to be in sync.
    pub(crate) fn breaks_connection(&self) -> bool {
        matches!(
            self,
            ImapError::Net(_)
                | ImapError::Io(_)
                | ImapError::Timeout
                | ImapError::Closed
                | ImapError::Bye(_)
                | ImapError::Protocol(_)
                | ImapError::TooLarge(_)
        )
    }
}
