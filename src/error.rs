//! Error classification shared by every module boundary.
//!
//! Each module has its own `thiserror` enum; each of those can say which
//! [`ErrorClass`] an error belongs to, so the reconnect and retry policies can
//! decide what to do without knowing the module's details.

/// What a caller should do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Try again after a backoff: timeouts, refused connections, 5xx, dropped sockets.
    Transient,
    /// The credentials were refused: stop, tell the user, do not hammer the server.
    Auth,
    /// The peer said something we did not expect: log it and reconnect.
    Protocol,
    /// Retrying will not help (bad configuration, invalid data, storage failure).
    Permanent,
}
