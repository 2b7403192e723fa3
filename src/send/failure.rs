//! Why a send step did not complete: the error class that decides between
//! retrying and failing, and the failure reported to the client (with the
//! SMTP server's reply when there is one).

use super::spool::SpoolError;
use crate::credentials::LoginError;
use crate::error::ErrorClass;
use crate::error_code::ErrorCode;
use crate::imap::ImapError;
use crate::smtp::SmtpError;
use crate::store::send::SendFailure;
use crate::store::StoreError;

/// A step that did not complete.
pub(super) struct StepError {
    pub(super) class: ErrorClass,
    pub(super) failure: SendFailure,
}

impl StepError {
    pub(super) fn new(
        class: ErrorClass,
        code: ErrorCode,
        message: String,
        reply: Option<String>,
    ) -> Self {
        StepError {
            class,
            failure: SendFailure {
                code: code.as_str().into(),
                message,
                smtp_reply: reply,
            },
        }
    }
}

impl From<ImapError> for StepError {
    fn from(e: ImapError) -> Self {
        let code = if e.class() == ErrorClass::Auth {
            ErrorCode::ImapAuthFailed
        } else {
            ErrorCode::ImapError
        };
        StepError::new(e.class(), code, e.to_string(), None)
    }
}

impl From<LoginError> for StepError {
    fn from(e: LoginError) -> Self {
        match (e.code(), e) {
            (_, LoginError::Imap(e)) => e.into(),
            (_, LoginError::Smtp(e)) => e.into(),
            (Some(code), e) => StepError::new(e.class(), code, e.to_string(), None),
            (None, e) => StepError::new(e.class(), ErrorCode::InternalError, e.to_string(), None),
        }
    }
}

impl From<SmtpError> for StepError {
    fn from(e: SmtpError) -> Self {
        let code = match (&e, e.class()) {
            (_, ErrorClass::Auth) => ErrorCode::SmtpAuthFailed,
            (
                SmtpError::Rejected {
                    command: "RCPT TO", ..
                },
                _,
            ) => ErrorCode::RecipientRejected,
            (SmtpError::Rejected { .. }, _) => ErrorCode::SmtpRejected,
            _ => ErrorCode::SmtpError,
        };
        let reply = e.reply().map(|r| r.text());
        StepError::new(e.class(), code, e.to_string(), reply)
    }
}

impl From<SpoolError> for StepError {
    fn from(e: SpoolError) -> Self {
        match e {
            SpoolError::Imap(e) => e.into(),
            SpoolError::Io(e) => StepError::new(
                ErrorClass::Transient,
                ErrorCode::SpoolError,
                e.to_string(),
                None,
            ),
            SpoolError::Gone(what) => StepError::new(
                ErrorClass::Permanent,
                ErrorCode::ReferenceGone,
                format!("referenced message {what} no longer exists"),
                None,
            ),
        }
    }
}

impl From<StoreError> for StepError {
    fn from(e: StoreError) -> Self {
        StepError::new(
            ErrorClass::Transient,
            ErrorCode::StorageError,
            e.to_string(),
            None,
        )
    }
}
