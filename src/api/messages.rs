//! Between the proto messages of the non-mail routes and the types the
//! handlers and the store work with: request messages checked into the
//! handlers' inputs (a shape error is `400 invalid_body`, a bad value
//! `422`), and records turned into answer messages following the API's
//! conventions (RFC 3339 times, Message-IDs without angle brackets).

use serde::Serialize;

use super::accounts::{CreateAccount, ServerInput};
use super::device_rules::rules_from;
use super::device_targets::TargetInput;
use super::devices::CreateDevice;
use super::error::ApiError;
use crate::error_code::ErrorCode;
use crate::proto::v1 as pb;
use crate::proto::v1::OAuthCode;
use crate::send::prepare::{AttachmentRequest, MessageRef, PartRef, SendRequest};
use crate::store::send::{SendJob, UploadRecord};
use crate::store::{PayloadTier, Security, ServerRecord};

fn missing(field: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidBody, format!("missing field `{field}`"))
}

fn security(which: &str, word: &str) -> Result<Security, ApiError> {
    Security::ALL
        .into_iter()
        .find(|s| s.as_str() == word)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidBody,
                format!("{which}.security must be tls, starttls or plain"),
            )
        })
}

fn server(which: &str, input: pb::ServerLogin) -> Result<ServerInput, ApiError> {
    let port = u16::try_from(input.port).map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidPort,
            format!("{which}.port must be 1-65535"),
        )
    })?;
    Ok(ServerInput {
        host: input.host,
        port,
        security: security(which, &input.security)?,
        username: input.username,
        password: input.password,
    })
}

/// A registration: with a password, or with an OAuth2 authorization code.
#[derive(Debug)]
pub enum Registration {
    Password(CreateAccount),
    OAuth { email: String, code: OAuthCode },
}

impl TryFrom<pb::CreateAccountRequest> for Registration {
    type Error = ApiError;

    fn try_from(input: pb::CreateAccountRequest) -> Result<Self, ApiError> {
        match (input.imap, input.oauth) {
            (Some(imap), None) => Ok(Registration::Password(CreateAccount {
                email: input.email,
                imap: server("imap", imap)?,
                smtp: input.smtp.map(|s| server("smtp", s)).transpose()?,
            })),
            (None, Some(code)) if input.smtp.is_none() => Ok(Registration::OAuth {
                email: input.email,
                code,
            }),
            (None, Some(_)) => Err(ApiError::new(
                ErrorCode::InvalidBody,
                "`smtp` goes with `imap`; with `oauth` the provider names the servers",
            )),
            (Some(_), Some(_)) => Err(ApiError::new(
                ErrorCode::InvalidBody,
                "give `imap` (a password) or `oauth` (a provider's code), not both",
            )),
            (None, None) => Err(missing("imap` or `oauth")),
        }
    }
}

impl TryFrom<pb::CreateDeviceRequest> for CreateDevice {
    type Error = ApiError;

    fn try_from(mut input: pb::CreateDeviceRequest) -> Result<Self, ApiError> {
        let target = TargetInput::from_request(&mut input)?;
        let payload = match input.payload.as_str() {
            "" => PayloadTier::default(),
            word => payload_tier(word)?,
        };
        Ok(CreateDevice {
            target,
            mailboxes: (!input.mailboxes.is_empty()).then_some(input.mailboxes),
            payload,
            rules: input.rules.map(rules_from).transpose()?,
            clear: input.clear,
        })
    }
}

/// A payload tier by the word the API uses.
pub fn payload_tier(word: &str) -> Result<PayloadTier, ApiError> {
    PayloadTier::ALL
        .into_iter()
        .find(|t| t.as_str() == word)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidBody,
                "payload must be preview, headers, count or wake",
            )
        })
}

fn message_ref(r: pb::MessageRef) -> MessageRef {
    MessageRef {
        mailbox: r.mailbox,
        uid: r.uid,
    }
}

fn attachment(a: pb::Attachment) -> Result<AttachmentRequest, ApiError> {
    use pb::attachment::Source;
    match a.source {
        Some(Source::UploadId(upload_id)) => Ok(AttachmentRequest::Upload {
            upload_id,
            filename: a.filename,
        }),
        Some(Source::Ref(r)) => Ok(AttachmentRequest::Ref {
            part: PartRef {
                mailbox: r.mailbox,
                uid: r.uid,
                part: r.part,
            },
        }),
        None => Err(ApiError::new(
            ErrorCode::InvalidBody,
            "an attachment needs `upload_id` or `ref`",
        )),
    }
}

impl TryFrom<pb::SendRequest> for SendRequest {
    type Error = ApiError;

    fn try_from(r: pb::SendRequest) -> Result<Self, ApiError> {
        Ok(SendRequest {
            to: r.to,
            cc: r.cc,
            bcc: r.bcc,
            subject: r.subject,
            text: r.text,
            html: r.html,
            attachments: r
                .attachments
                .into_iter()
                .map(attachment)
                .collect::<Result<_, _>>()?,
            in_reply_to: r.in_reply_to.map(message_ref),
            forward: r.forward.map(message_ref),
        })
    }
}

/// The word serde writes for a unit variant (`"done"`, `"burl"`).
fn word<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// Unix milliseconds or seconds as RFC 3339 UTC with whole seconds.
pub fn rfc3339(unix_secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix_secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// A Message-ID as the API writes it: without angle brackets.
pub fn bare_message_id(id: &str) -> String {
    let id = id.trim();
    id.strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(id)
        .to_string()
}

fn clamp(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

pub fn send_status(job: &SendJob) -> pb::SendStatusResponse {
    pb::SendStatusResponse {
        send_id: job.id.clone(),
        status: word(&job.status),
        path: word(&job.path),
        message_id: bare_message_id(&job.message_id),
        size: clamp(job.size),
        attempts: job.attempts,
        sent: job.sent.as_ref().map(|s| pb::MessageRef {
            mailbox: s.mailbox.clone(),
            uid: s.uid,
        }),
        error: job.error.as_ref().map(|e| pb::SendError {
            code: e.code.clone(),
            message: e.message.clone(),
            smtp_reply: e.smtp_reply.clone(),
        }),
        smtp_reply: job.smtp_reply.clone(),
        bytes: Some(pb::SendBytes {
            from_client: clamp(job.bytes.from_client),
            to_imap: clamp(job.bytes.to_imap),
            from_imap: clamp(job.bytes.from_imap),
            to_smtp: clamp(job.bytes.to_smtp),
        }),
    }
}

pub fn upload(upload: &UploadRecord) -> pb::UploadResponse {
    pb::UploadResponse {
        upload_id: upload.id.clone(),
        size: clamp(upload.offset),
        sha256: upload.sha256.clone().unwrap_or_default(),
        length: upload.length.map(clamp),
        content_type: upload.content_type.clone(),
        filename: upload.filename.clone(),
        expires_at: rfc3339(upload.expires_ms / 1000),
    }
}

pub fn server_view(server: &ServerRecord) -> pb::Server {
    pb::Server {
        host: server.host.clone(),
        port: u32::from(server.port),
        security: server.security.as_str().to_string(),
        username: server.username.clone(),
    }
}

/// A watcher's status view (its JSON form, as a cluster stores it) and the
/// node that reported it.
pub fn watch_status(view: &serde_json::Value, node: Option<String>) -> pb::WatchStatus {
    let text = |key: &str| view[key].as_str().unwrap_or_default().to_string();
    let list = |key: &str| -> Vec<String> {
        view[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    pb::WatchStatus {
        state: text("state"),
        since: text("since"),
        capabilities: list("capabilities"),
        mailboxes: list("mailboxes"),
        error: view["error"].as_str().map(str::to_string),
        node,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conventions() {
        assert_eq!(bare_message_id("<a@b.example>"), "a@b.example");
        assert_eq!(bare_message_id("a@b.example"), "a@b.example");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn requests_are_checked() {
        let no_imap = pb::CreateAccountRequest {
            email: "a@example.org".into(),
            ..Default::default()
        };
        let e = Registration::try_from(no_imap).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidBody);
        let bad_port = pb::CreateAccountRequest {
            imap: Some(pb::ServerLogin {
                port: 70000,
                security: "tls".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            Registration::try_from(bad_port).unwrap_err().code,
            ErrorCode::InvalidPort
        );
        let oauth_with_smtp = pb::CreateAccountRequest {
            oauth: Some(OAuthCode::default()),
            smtp: Some(pb::ServerLogin::default()),
            ..Default::default()
        };
        assert_eq!(
            Registration::try_from(oauth_with_smtp).unwrap_err().code,
            ErrorCode::InvalidBody
        );
        let no_source = pb::SendRequest {
            attachments: vec![pb::Attachment::default()],
            ..Default::default()
        };
        assert!(SendRequest::try_from(no_source).is_err());
    }
}
