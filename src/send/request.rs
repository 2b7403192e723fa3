//! A send request as the API hands it over, the refusal of one
//! ([`PrepareError`], with the catalogue's code), and the checks that need
//! no server: addresses, sizes, shapes.

use super::compose;
use super::prepare::valid_id;
use crate::credentials::LoginError;
use crate::error::ErrorClass;
use crate::error_code::ErrorCode;
use crate::imap::ImapError;

/// A message the phone wants sent (the API reads it from the proto's
/// `SendRequest`).
#[derive(Debug, Clone, Default)]
pub struct SendRequest {
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    pub attachments: Vec<AttachmentRequest>,
    pub in_reply_to: Option<MessageRef>,
    pub forward: Option<MessageRef>,
}

/// An attachment: an upload, or a part of a message on the server.
#[derive(Debug, Clone)]
pub enum AttachmentRequest {
    Upload {
        upload_id: String,
        filename: Option<String>,
    },
    Ref {
        part: PartRef,
    },
}

#[derive(Debug, Clone)]
pub struct PartRef {
    pub mailbox: String,
    pub uid: u32,
    pub part: String,
}

#[derive(Debug, Clone)]
pub struct MessageRef {
    pub mailbox: String,
    pub uid: u32,
}

/// Why a request was refused: a code (which gives the HTTP status) and a
/// message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct PrepareError {
    pub code: ErrorCode,
    pub message: String,
}

impl PrepareError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        PrepareError {
            code,
            message: message.into(),
        }
    }

    /// Upstream or storage trouble (5xx) may pass; everything else is the
    /// request's fault.
    pub fn class(&self) -> ErrorClass {
        if self.code.status().is_server_error() {
            ErrorClass::Transient
        } else {
            ErrorClass::Permanent
        }
    }
}

pub(super) fn upstream_error(
    which: &str,
    class: ErrorClass,
    e: impl std::fmt::Display,
) -> PrepareError {
    let code = match (which, class) {
        ("imap", ErrorClass::Auth) => ErrorCode::ImapAuthFailed,
        ("imap", _) => ErrorCode::ImapUnreachable,
        (_, ErrorClass::Auth) => ErrorCode::SmtpAuthFailed,
        _ => ErrorCode::SmtpUnreachable,
    };
    PrepareError::new(code, format!("{which}: {e}"))
}

impl From<ImapError> for PrepareError {
    fn from(e: ImapError) -> Self {
        upstream_error("imap", e.class(), e)
    }
}

impl From<LoginError> for PrepareError {
    fn from(e: LoginError) -> Self {
        match (e.code(), e) {
            (_, LoginError::Imap(e)) => e.into(),
            (_, LoginError::Smtp(e)) => upstream_error("smtp", e.class(), e),
            (Some(code), e) => PrepareError::new(code, e.to_string()),
            (None, e) => PrepareError::new(ErrorCode::InternalError, e.to_string()),
        }
    }
}

/// Most recipients of one message.
const MAX_RECIPIENTS: usize = 100;

fn check_text(field: &str, value: &str, max: usize) -> Result<(), PrepareError> {
    if value.len() > max {
        return Err(PrepareError::new(
            ErrorCode::InvalidField,
            format!("{field} is longer than {max} bytes"),
        ));
    }
    Ok(())
}

fn check_mailbox(name: &str) -> Result<(), PrepareError> {
    if name.is_empty() || name.len() > 1000 || name.chars().any(|c| c.is_control()) {
        return Err(PrepareError::new(
            ErrorCode::InvalidMailbox,
            "mailbox name is empty or malformed",
        ));
    }
    Ok(())
}

/// Validates what needs no server: addresses, sizes, shapes.
pub fn validate(req: &SendRequest) -> Result<(), PrepareError> {
    let all = req.to.iter().chain(&req.cc).chain(&req.bcc);
    let mut count = 0;
    for addr in all {
        count += 1;
        if !compose::valid_address(addr) {
            return Err(PrepareError::new(
                ErrorCode::InvalidAddress,
                format!(
                    "not a valid address: {:?}",
                    addr.chars().take(80).collect::<String>()
                ),
            ));
        }
    }
    if count == 0 {
        return Err(PrepareError::new(
            ErrorCode::NoRecipients,
            "to, cc or bcc must name someone",
        ));
    }
    if count > MAX_RECIPIENTS {
        return Err(PrepareError::new(
            ErrorCode::TooManyRecipients,
            format!("at most {MAX_RECIPIENTS} recipients"),
        ));
    }
    check_text("subject", &req.subject, 900)?;
    if req.subject.chars().any(|c| c.is_control()) {
        return Err(PrepareError::new(
            ErrorCode::InvalidField,
            "subject contains control characters",
        ));
    }
    check_text("text", &req.text, 1 << 20)?;
    check_text("html", req.html.as_deref().unwrap_or(""), 1 << 20)?;
    if req.attachments.len() > 100 {
        return Err(PrepareError::new(
            ErrorCode::TooManyAttachments,
            "at most 100 attachments",
        ));
    }
    for a in &req.attachments {
        match a {
            AttachmentRequest::Upload {
                upload_id,
                filename,
            } => {
                if !valid_id(upload_id) {
                    return Err(PrepareError::new(
                        ErrorCode::UnknownUpload,
                        "no such upload",
                    ));
                }
                if let Some(f) = filename {
                    check_text("filename", f, 255)?;
                    if f.chars().any(|c| c.is_control()) {
                        return Err(PrepareError::new(
                            ErrorCode::InvalidField,
                            "filename contains control characters",
                        ));
                    }
                }
            }
            AttachmentRequest::Ref { part } => {
                check_mailbox(&part.mailbox)?;
                let ok = !part.part.is_empty()
                    && part.part.len() <= 40
                    && part
                        .part
                        .split('.')
                        .all(|s| s.parse::<u32>().is_ok_and(|n| n > 0));
                if !ok || part.uid == 0 {
                    return Err(PrepareError::new(
                        ErrorCode::UnknownPart,
                        "part must be a section number such as 2 or 1.2",
                    ));
                }
            }
        }
    }
    for m in req.in_reply_to.iter().chain(&req.forward) {
        check_mailbox(&m.mailbox)?;
        if m.uid == 0 {
            return Err(PrepareError::new(
                ErrorCode::UnknownMessage,
                "uid must be above 0",
            ));
        }
    }
    Ok(())
}
