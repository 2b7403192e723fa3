//! The route registry: every operation of the API, registered once. Each
//! entry names its method in `proto/lemonade/v1/api.proto` (whose
//! `google.api.http` rule gives the HTTP method and path), its handler, and
//! what the proto cannot say: the success status, headers, the error codes
//! it answers with, whether it needs the bearer token. [`super::router`]
//! serves the entries and [`super::openapi`] documents them.

use axum::http::StatusCode;
use axum::routing::{on, MethodFilter, MethodRouter};

use super::{accounts, auth, device_rules, devices, mail, oauth, openapi, send, uploads, AppState};
use crate::error_code::ErrorCode;

/// A request or answer header an operation uses.
#[derive(Debug, Clone, Copy)]
pub struct Header {
    pub name: &'static str,
    /// JSON type of its value: "string" or "integer".
    pub kind: &'static str,
    pub required: bool,
    pub description: &'static str,
}

/// What the registry knows of an operation beyond its proto rule.
#[derive(Debug, Clone, Copy)]
pub struct Doc {
    /// The status of a successful answer.
    pub ok: StatusCode,
    /// Other successful answers and what they mean.
    pub also: &'static [(StatusCode, &'static str)],
    /// Request headers.
    pub headers: &'static [Header],
    /// Error codes particular to this operation (the common ones, such as
    /// `unauthorized` or `invalid_body`, are added by the document).
    pub errors: &'static [ErrorCode],
    /// Needs `Authorization: Bearer`.
    pub auth: bool,
    /// Offers protobuf as well as JSON (answers by `Accept`, bodies by
    /// `Content-Type`).
    pub protobuf: bool,
    /// The media type of an answer that is not a message
    /// (`google.api.HttpBody`).
    pub raw_answer: Option<&'static str>,
    /// The media type of a body that is not a message.
    pub raw_body: Option<&'static str>,
    /// Streams its body: no overall request timeout and no body limit
    /// (each wait for more is bounded instead).
    pub streaming: bool,
}

/// A message in, a message out, JSON or protobuf, with the bearer token.
const API: Doc = Doc {
    ok: StatusCode::OK,
    also: &[],
    headers: &[],
    errors: &[],
    auth: true,
    protobuf: true,
    raw_answer: None,
    raw_body: None,
    streaming: false,
};

/// An operation anyone may call.
const OPEN: Doc = Doc { auth: false, ..API };

/// One operation: its `Service.Method` in the proto, its handler (given
/// the method filter from the proto's rule) and its documentation.
pub struct Route {
    pub rpc: &'static str,
    pub handler: fn(MethodFilter) -> MethodRouter<AppState>,
    pub doc: Doc,
}

use ErrorCode as E;

const READ_ERRORS: &[ErrorCode] = &[
    E::InvalidPath,
    E::InvalidQuery,
    E::InvalidArgument,
    E::MailboxNotFound,
    E::ImapAuthFailed,
    E::ImapRefused,
    E::ImapUnavailable,
    E::ImapResponseTooLarge,
    E::ImapCoolingDown,
    E::UnsupportedByServer,
];

const UPLOAD_OFFSET: Header = Header {
    name: "Upload-Offset",
    kind: "integer",
    required: true,
    description: "where this chunk starts: the upload's current size",
};

/// Every operation of the API.
pub fn table() -> Vec<Route> {
    let mut routes = account_routes();
    routes.extend(oauth_routes());
    routes.extend(device_routes());
    routes.extend(mail_routes());
    routes.extend(send_routes());
    routes.extend(operation_routes());
    routes
}

fn oauth_routes() -> Vec<Route> {
    vec![
        Route {
            rpc: "OAuth.ListProviders",
            handler: |m| on(m, oauth::providers),
            doc: OPEN,
        },
        Route {
            rpc: "OAuth.StartSignIn",
            handler: |m| on(m, oauth::start),
            doc: Doc {
                errors: &[E::UnknownProvider, E::RedirectNotAllowed],
                ..OPEN
            },
        },
        Route {
            rpc: "OAuth.FinishSignIn",
            handler: |m| on(m, oauth::callback),
            doc: Doc {
                ok: StatusCode::SEE_OTHER,
                errors: &[E::OauthStateInvalid],
                protobuf: false,
                ..OPEN
            },
        },
        Route {
            rpc: "OAuth.RedeemGrant",
            handler: |m| on(m, oauth::redeem),
            doc: Doc {
                ok: StatusCode::CREATED,
                errors: &[E::OauthGrantInvalid],
                ..OPEN
            },
        },
    ]
}

fn account_routes() -> Vec<Route> {
    vec![
        Route {
            rpc: "Accounts.CreateAccount",
            handler: |m| on(m, accounts::create),
            doc: Doc {
                ok: StatusCode::CREATED,
                errors: &[
                    E::InvalidField,
                    E::ImapAuthFailed,
                    E::SmtpAuthFailed,
                    E::ImapUnreachable,
                    E::SmtpUnreachable,
                    E::ImapHostNotPublic,
                    E::SmtpHostNotPublic,
                    E::PlaintextNotAllowed,
                    E::TooManyFailedLogins,
                    E::TooManyRegistrations,
                    E::UnknownProvider,
                    E::OauthCodeRejected,
                    E::OauthEmailMismatch,
                    E::ProviderUnavailable,
                    E::ProviderRefusedClient,
                ],
                ..OPEN
            },
        },
        Route {
            rpc: "Accounts.GetAccount",
            handler: |m| on(m, accounts::me),
            doc: API,
        },
        Route {
            rpc: "Accounts.DeleteAccount",
            handler: |m| on(m, accounts::delete),
            doc: Doc {
                ok: StatusCode::NO_CONTENT,
                ..API
            },
        },
        Route {
            rpc: "Accounts.RevokeOtherTokens",
            handler: |m| on(m, auth::revoke_others),
            doc: API,
        },
        Route {
            rpc: "Accounts.RevokeCurrentToken",
            handler: |m| on(m, auth::revoke_current),
            doc: Doc {
                ok: StatusCode::NO_CONTENT,
                ..API
            },
        },
    ]
}

fn device_routes() -> Vec<Route> {
    vec![
        Route {
            rpc: "Devices.GetVapidKey",
            handler: |m| on(m, super::vapid),
            doc: OPEN,
        },
        Route {
            rpc: "Devices.ListDevices",
            handler: |m| on(m, devices::list),
            doc: API,
        },
        Route {
            rpc: "Devices.CreateDevice",
            handler: |m| on(m, devices::create),
            doc: Doc {
                ok: StatusCode::CREATED,
                errors: &[
                    E::InvalidEndpoint,
                    E::InvalidKeys,
                    E::InvalidMailboxes,
                    E::UnknownMailbox,
                    E::TooManyDevices,
                    E::InvalidRules,
                ],
                ..API
            },
        },
        Route {
            rpc: "Devices.UpdateDevice",
            handler: |m| on(m, device_rules::update),
            doc: Doc {
                errors: &[
                    E::NotFound,
                    E::InvalidPath,
                    E::InvalidRules,
                    E::InvalidMailboxes,
                    E::UnknownMailbox,
                    E::PayloadNeedsKeys,
                ],
                ..API
            },
        },
        Route {
            rpc: "Devices.DeleteDevice",
            handler: |m| on(m, devices::delete),
            doc: Doc {
                ok: StatusCode::NO_CONTENT,
                errors: &[E::NotFound, E::InvalidPath],
                ..API
            },
        },
        Route {
            rpc: "Devices.TestDevice",
            handler: |m| on(m, devices::test),
            doc: Doc {
                errors: &[
                    E::NotFound,
                    E::InvalidPath,
                    E::DeviceGone,
                    E::PushServiceRefused,
                    E::PushServiceUnavailable,
                    E::PushEndpointNotPublic,
                ],
                ..API
            },
        },
    ]
}

fn mail_routes() -> Vec<Route> {
    vec![
        Route {
            rpc: "Mail.ListMailboxes",
            handler: |m| on(m, mail::mailboxes),
            doc: Doc {
                errors: READ_ERRORS,
                ..API
            },
        },
        Route {
            rpc: "Mail.ListMessages",
            handler: |m| on(m, mail::messages),
            doc: Doc {
                errors: READ_ERRORS,
                ..API
            },
        },
        Route {
            rpc: "Mail.ListChanges",
            handler: |m| on(m, mail::changes),
            doc: Doc {
                errors: &[
                    E::ResyncRequired,
                    E::InvalidState,
                    E::InvalidPath,
                    E::InvalidQuery,
                    E::MailboxNotFound,
                    E::ImapAuthFailed,
                    E::ImapUnavailable,
                    E::ImapResponseTooLarge,
                    E::ImapCoolingDown,
                ],
                ..API
            },
        },
        Route {
            rpc: "Mail.GetMessage",
            handler: |m| on(m, mail::message),
            doc: Doc {
                errors: &[
                    E::MessageNotFound,
                    E::MailboxNotFound,
                    E::InvalidPath,
                    E::InvalidQuery,
                    E::ImapAuthFailed,
                    E::ImapUnavailable,
                    E::ImapResponseTooLarge,
                    E::ImapCoolingDown,
                ],
                ..API
            },
        },
        Route {
            rpc: "Mail.GetPart",
            handler: |m| on(m, mail::part),
            doc: Doc {
                also: &[(StatusCode::PARTIAL_CONTENT, "the requested range")],
                headers: &[Header {
                    name: "Range",
                    kind: "string",
                    required: false,
                    description: "one range: bytes=a-b, bytes=a- or bytes=-n",
                }],
                errors: &[
                    E::PartNotFound,
                    E::MessageNotFound,
                    E::MailboxNotFound,
                    E::RangeNotSatisfiable,
                    E::InvalidRange,
                    E::InvalidPath,
                    E::ImapAuthFailed,
                    E::ImapUnavailable,
                    E::ImapResponseTooLarge,
                    E::ImapCoolingDown,
                ],
                protobuf: false,
                raw_answer: Some("application/octet-stream"),
                ..API
            },
        },
        Route {
            rpc: "Mail.SetFlags",
            handler: |m| on(m, mail::flags),
            doc: Doc {
                errors: READ_ERRORS,
                ..API
            },
        },
        Route {
            rpc: "Mail.MoveMessages",
            handler: |m| on(m, mail::move_messages),
            doc: Doc {
                errors: READ_ERRORS,
                ..API
            },
        },
        Route {
            rpc: "Mail.DeleteMessages",
            handler: |m| on(m, mail::delete),
            doc: Doc {
                errors: READ_ERRORS,
                ..API
            },
        },
        Route {
            rpc: "Mail.SearchMessages",
            handler: |m| on(m, mail::search),
            doc: Doc {
                errors: &[
                    E::InvalidCursor,
                    E::InvalidQuery,
                    E::InvalidArgument,
                    E::MailboxNotFound,
                    E::ImapAuthFailed,
                    E::ImapUnavailable,
                    E::ImapResponseTooLarge,
                    E::ImapCoolingDown,
                ],
                ..API
            },
        },
    ]
}

const UPLOAD_ERRORS: &[ErrorCode] = &[
    E::BodyTooLarge,
    E::UploadQuotaExceeded,
    E::UploadStalled,
    E::InvalidHeader,
];

fn send_routes() -> Vec<Route> {
    let upload = Doc {
        protobuf: false,
        streaming: true,
        ..API
    };
    vec![
        Route {
            rpc: "Send.CreateUpload",
            handler: |m| on(m, uploads::create),
            doc: Doc {
                ok: StatusCode::CREATED,
                headers: &[
                    Header {
                        name: "Upload-Length",
                        kind: "integer",
                        required: false,
                        description: "the file's whole size: makes the upload resumable",
                    },
                    Header {
                        name: "Upload-Metadata",
                        kind: "string",
                        required: false,
                        description: "tus metadata: filename and filetype, base64 values",
                    },
                ],
                errors: UPLOAD_ERRORS,
                raw_body: Some("application/octet-stream"),
                ..upload
            },
        },
        Route {
            rpc: "Send.GetUpload",
            handler: |m| on(m, uploads::head),
            doc: Doc {
                errors: &[E::NotFound, E::InvalidPath],
                ..upload
            },
        },
        Route {
            rpc: "Send.HeadUpload",
            handler: |m| on(m, uploads::head),
            doc: Doc {
                errors: &[E::NotFound, E::InvalidPath],
                ..upload
            },
        },
        Route {
            rpc: "Send.AppendUpload",
            handler: |m| on(m, uploads::patch),
            doc: Doc {
                headers: &[UPLOAD_OFFSET],
                errors: &[
                    E::NotFound,
                    E::OffsetMismatch,
                    E::UploadInProgress,
                    E::NotResumable,
                    E::BodyTooLarge,
                    E::UploadQuotaExceeded,
                    E::UploadStalled,
                    E::InvalidHeader,
                ],
                raw_body: Some("application/offset+octet-stream"),
                ..upload
            },
        },
        Route {
            rpc: "Send.SendMessage",
            handler: |m| on(m, send::create),
            doc: Doc {
                ok: StatusCode::ACCEPTED,
                also: &[(StatusCode::OK, "the send finished within send.wait_secs")],
                headers: &[Header {
                    name: "Idempotency-Key",
                    kind: "string",
                    required: false,
                    description: "1-255 printable characters; the same key returns the same \
                                  send and never sends twice",
                }],
                errors: &[
                    E::InvalidHeader,
                    E::NoRecipients,
                    E::InvalidAddress,
                    E::InvalidField,
                    E::UnknownUpload,
                    E::UploadIncomplete,
                    E::UnknownMailbox,
                    E::UnknownMessage,
                    E::UnknownPart,
                    E::NoSmtpServer,
                    E::MessageTooLarge,
                    E::ImapAuthFailed,
                    E::SmtpAuthFailed,
                    E::ImapUnavailable,
                    E::SmtpUnreachable,
                    E::StorageError,
                ],
                ..API
            },
        },
        Route {
            rpc: "Send.GetSendStatus",
            handler: |m| on(m, send::get),
            doc: Doc {
                errors: &[E::NotFound, E::InvalidPath],
                ..API
            },
        },
        Route {
            rpc: "Send.GetSendSettings",
            handler: |m| on(m, send::get_settings),
            doc: API,
        },
        Route {
            rpc: "Send.UpdateSendSettings",
            handler: |m| on(m, send::put_settings),
            doc: Doc {
                errors: &[E::InvalidMailbox],
                ..API
            },
        },
    ]
}

fn operation_routes() -> Vec<Route> {
    vec![
        Route {
            rpc: "Operations.GetHealth",
            handler: |m| on(m, super::healthz),
            doc: OPEN,
        },
        Route {
            rpc: "Operations.GetReadiness",
            handler: |m| on(m, super::readyz),
            doc: Doc {
                also: &[(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not ready: this node does not hold its cluster lease",
                )],
                ..OPEN
            },
        },
        Route {
            rpc: "Operations.GetMetrics",
            handler: |m| on(m, super::metrics),
            doc: Doc {
                protobuf: false,
                raw_answer: Some("text/plain"),
                ..OPEN
            },
        },
        Route {
            rpc: "Operations.GetOpenApi",
            handler: |m| on(m, openapi::serve),
            doc: Doc {
                protobuf: false,
                raw_answer: Some("application/json"),
                ..OPEN
            },
        },
    ]
}

/// The method filter of an HTTP method named by a proto rule.
pub fn filter(method: &axum::http::Method) -> Option<MethodFilter> {
    MethodFilter::try_from(method.clone()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every method of the proto's services is served, and every entry
    /// names a method that exists.
    #[test]
    fn the_registry_and_the_proto_agree() {
        let table = table();
        let rules = super::super::contract::rules();
        for rule in &rules {
            assert!(
                table.iter().any(|r| r.rpc == rule.rpc),
                "{} has no handler",
                rule.rpc
            );
        }
        for route in &table {
            let rule = super::super::contract::rule(route.rpc)
                .unwrap_or_else(|| panic!("{} is not in api.proto", route.rpc));
            assert!(filter(&rule.method).is_some(), "{}", route.rpc);
        }
        assert_eq!(table.len(), rules.len());
    }
}
