//! The API's error catalogue: every code the gateway can put in an error
//! answer (`{"error": {"code", "message"}}`) or in a send's status
//! (`"error": {"code", …}`), with the HTTP status it is answered with and
//! what it means for an app. One table feeds the enum, its wire strings,
//! statuses and meanings, `docs/api.md` (checked by a test) and the OpenAPI
//! document, so a code cannot be sent without being documented.
//!
//! The floor of the crate: it imports nothing of it, so every module (the
//! read and send sides as well as the API) can name its codes.

use std::fmt;
use std::str::FromStr;

use http::StatusCode;

/// Declares the catalogue once: variant, wire code, status, meaning.
macro_rules! catalogue {
    ($($variant:ident = $code:literal, $status:ident, $meaning:literal;)*) => {
        /// A code of the error catalogue.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $(#[doc = $meaning] $variant,)*
        }

        impl ErrorCode {
            /// Every code, in the order of the catalogue.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The snake_case code sent on the wire.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }

            /// The HTTP status an error with this code is answered with.
            /// Codes that only appear in a send's status (see
            /// [`ErrorCode::only_in_send_status`]) have the status a
            /// synchronous answer of the same failure would have.
            pub const fn status(self) -> StatusCode {
                match self {
                    $(ErrorCode::$variant => StatusCode::$status,)*
                }
            }

            /// One sentence for app developers: what happened and what to do.
            pub const fn meaning(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $meaning,)*
                }
            }
        }
    };
}

catalogue! {
    // The request itself.
    BadRequest = "bad_request", BAD_REQUEST,
        "The request could not be read; fix it before sending it again.";
    MalformedJson = "malformed_json", BAD_REQUEST,
        "The body is not valid JSON; fix the syntax the message points at.";
    MalformedProtobuf = "malformed_protobuf", BAD_REQUEST,
        "The body is not a valid protobuf encoding of the route's request message.";
    InvalidBody = "invalid_body", BAD_REQUEST,
        "The body does not have the route's shape (an unknown field, a wrong type or a missing field, named in the message); fix the field.";
    InvalidQuery = "invalid_query", BAD_REQUEST,
        "A query parameter is missing, unknown or of the wrong type (named in the message); fix the query string.";
    InvalidPath = "invalid_path", BAD_REQUEST,
        "A path parameter is not of its type (a UID that is not a number, for example); fix the path.";
    InvalidHeader = "invalid_header", BAD_REQUEST,
        "A request header (Idempotency-Key, Upload-Offset, Upload-Length, Upload-Metadata) is malformed; fix it as the message says.";
    InvalidRange = "invalid_range", BAD_REQUEST,
        "The Range header is not a single `bytes=` range; send one range or none.";
    InvalidCursor = "invalid_cursor", BAD_REQUEST,
        "The search cursor is not one this search gave (another search, another mailbox, or not a cursor); search again without it.";
    InvalidState = "invalid_state", BAD_REQUEST,
        "The `since` value is not a state token of this gateway; list the mailbox again to get one.";
    UploadInterrupted = "upload_interrupted", BAD_REQUEST,
        "The upload's body ended early; ask HEAD for the offset of a resumable upload and continue from there, or upload again.";
    Unauthorized = "unauthorized", UNAUTHORIZED,
        "The bearer token is missing, wrong or revoked, or its account was deleted; register the account again for a new token.";
    NotFound = "not_found", NOT_FOUND,
        "No such route, device, upload or send for this account; check the path and the id.";
    MailboxNotFound = "mailbox_not_found", NOT_FOUND,
        "The mail server has no mailbox of that name; list the mailboxes for the names it has.";
    MessageNotFound = "message_not_found", NOT_FOUND,
        "The mailbox has no message with that UID (any more); refresh the message list.";
    PartNotFound = "part_not_found", NOT_FOUND,
        "The message has no part with that number; take part numbers from the message's parts.";
    MethodNotAllowed = "method_not_allowed", METHOD_NOT_ALLOWED,
        "The route does not take this method; the Allow header lists those it takes.";
    UploadStalled = "upload_stalled", REQUEST_TIMEOUT,
        "No more of the upload's body arrived for a while; a resumable upload keeps what arrived, so ask HEAD for the offset and continue.";
    UploadInProgress = "upload_in_progress", CONFLICT,
        "Another request is appending to this upload; ask HEAD for the offset once it ends and continue from there.";
    UploadComplete = "upload_complete", CONFLICT,
        "The upload already has all its bytes; nothing more can be appended.";
    OffsetMismatch = "offset_mismatch", CONFLICT,
        "Upload-Offset is not where the upload stands; ask HEAD for the offset and send from there.";
    NotResumable = "not_resumable", CONFLICT,
        "Only uploads created with Upload-Length can be continued; upload the file again.";
    ResyncRequired = "resync_required", GONE,
        "The state token cannot be used any more (the mailbox was reset or is older than it); list the mailbox again.";
    DeviceGone = "device_gone", GONE,
        "The push service says the device's subscription is gone, so the device was removed; subscribe again and register the new subscription.";
    BodyTooLarge = "body_too_large", PAYLOAD_TOO_LARGE,
        "The request body is larger than the gateway takes (`api.max_body_bytes`); send less.";
    UploadTooLarge = "upload_too_large", PAYLOAD_TOO_LARGE,
        "The file is larger than uploads may be (`send.max_upload_bytes`); send a smaller file.";
    MessageTooLarge = "message_too_large", PAYLOAD_TOO_LARGE,
        "The composed message is larger than the submission server accepts (its SIZE); send fewer or smaller attachments.";
    UnsupportedMediaType = "unsupported_media_type", UNSUPPORTED_MEDIA_TYPE,
        "The body's Content-Type is not one the route takes (application/json, or application/x-protobuf where offered); set it.";
    RangeNotSatisfiable = "range_not_satisfiable", RANGE_NOT_SATISFIABLE,
        "The requested range lies outside the part; the message gives the part's size.";

    // Values the gateway refuses (well-formed requests).
    InvalidEmail = "invalid_email", UNPROCESSABLE_ENTITY,
        "`email` is not a valid address; fix it.";
    InvalidHost = "invalid_host", UNPROCESSABLE_ENTITY,
        "A server's host is not a valid host name or address; fix it.";
    InvalidPort = "invalid_port", UNPROCESSABLE_ENTITY,
        "A server's port is not 1-65535; fix it.";
    InvalidCredentials = "invalid_credentials", UNPROCESSABLE_ENTITY,
        "A username or password is empty, too long or has control characters; fix it.";
    PlaintextNotAllowed = "plaintext_not_allowed", UNPROCESSABLE_ENTITY,
        "This gateway only connects to mail servers with TLS; use `tls` or `starttls`.";
    ImapHostNotPublic = "imap_host_not_public", UNPROCESSABLE_ENTITY,
        "The IMAP host resolves to a loopback or private address, which this gateway does not connect to; give a public host.";
    SmtpHostNotPublic = "smtp_host_not_public", UNPROCESSABLE_ENTITY,
        "The SMTP host resolves to a loopback or private address, which this gateway does not connect to; give a public host.";
    ImapAuthFailed = "imap_auth_failed", UNPROCESSABLE_ENTITY,
        "The IMAP server refused the username or password (at registration, or later when the password changed); ask the user and register the account again.";
    SmtpAuthFailed = "smtp_auth_failed", UNPROCESSABLE_ENTITY,
        "The SMTP server refused the username or password (at registration, or when sending); ask the user and register the account again.";
    InvalidEndpoint = "invalid_endpoint", UNPROCESSABLE_ENTITY,
        "The push endpoint is not an https URL of a public host; register the subscription the browser or phone gave.";
    InvalidKeys = "invalid_keys", UNPROCESSABLE_ENTITY,
        "The subscription's keys are not a P-256 point (p256dh) and 16 bytes (auth) in base64url; send the keys the subscription gave.";
    InvalidDeviceToken = "invalid_device_token", UNPROCESSABLE_ENTITY,
        "An APNs device token is not 64-200 hex digits, its topic not a bundle id, its environment not production or sandbox, or an FCM token is malformed; send what the platform gave.";
    PushKindNotConfigured = "push_kind_not_configured", UNPROCESSABLE_ENTITY,
        "This gateway has no APNs (`push.apns`) or FCM (`push.fcm`) set up for that kind of device; register a Web Push subscription, or ask the operator.";
    PayloadNeedsKeys = "payload_needs_keys", UNPROCESSABLE_ENTITY,
        "Without `keys`, a native device may only have the `wake` or `count` payload (nothing of the mail in clear through Apple or Google); send keys or choose one of those.";
    InvalidMailboxes = "invalid_mailboxes", UNPROCESSABLE_ENTITY,
        "A device's mailbox list is empty, too long, or has a malformed name; fix the list.";
    InvalidRules = "invalid_rules", UNPROCESSABLE_ENTITY,
        "A device's notification rules are not valid (an unknown time zone, a time that is not HH:MM, an unknown day, a malformed address or domain, a list too long); the message names the field.";
    UnknownMailbox = "unknown_mailbox", UNPROCESSABLE_ENTITY,
        "A mailbox named in the request does not exist on the mail server; list the mailboxes for the names it has.";
    TooManyDevices = "too_many_devices", UNPROCESSABLE_ENTITY,
        "The account has as many devices as allowed (`push.max_devices_per_account`); delete one first.";
    InvalidLimit = "invalid_limit", UNPROCESSABLE_ENTITY,
        "`limit` is outside the range the route allows (given in the message).";
    InvalidUid = "invalid_uid", UNPROCESSABLE_ENTITY,
        "UIDs start at 1; fix the UID in the path.";
    InvalidUids = "invalid_uids", UNPROCESSABLE_ENTITY,
        "`uids` must name 1 to 5000 messages, none of them 0; fix the list.";
    InvalidMailbox = "invalid_mailbox", UNPROCESSABLE_ENTITY,
        "A mailbox name is empty, too long or has control characters; fix it.";
    InvalidFlags = "invalid_flags", UNPROCESSABLE_ENTITY,
        "No flags were given, or one is neither a system flag nor a keyword atom; fix the flags.";
    InvalidPart = "invalid_part", UNPROCESSABLE_ENTITY,
        "The part is not a section number such as 2 or 1.2; fix it.";
    InvalidDate = "invalid_date", UNPROCESSABLE_ENTITY,
        "A search date is not YYYY-MM-DD; fix it.";
    InvalidSearch = "invalid_search", UNPROCESSABLE_ENTITY,
        "A search parameter is empty, longer than 1000 characters or cannot be searched for; fix it.";
    InvalidArgument = "invalid_argument", UNPROCESSABLE_ENTITY,
        "A value cannot be sent to the mail server (a control character, for example); fix it.";
    InvalidField = "invalid_field", UNPROCESSABLE_ENTITY,
        "A field of the message to send is too long or has control characters (named in the message); fix it.";
    InvalidAddress = "invalid_address", UNPROCESSABLE_ENTITY,
        "A recipient is not a plain address (user@example.org, no name or angle brackets); fix it.";
    NoRecipients = "no_recipients", UNPROCESSABLE_ENTITY,
        "`to`, `cc` or `bcc` must name someone.";
    TooManyRecipients = "too_many_recipients", UNPROCESSABLE_ENTITY,
        "A message may have at most 100 recipients; send several messages.";
    TooManyAttachments = "too_many_attachments", UNPROCESSABLE_ENTITY,
        "A message may have at most 100 attachments; send fewer.";
    UnknownUpload = "unknown_upload", UNPROCESSABLE_ENTITY,
        "An attached upload does not exist for this account or has expired; upload the file again.";
    UploadIncomplete = "upload_incomplete", UNPROCESSABLE_ENTITY,
        "An attached upload has not received all its bytes; finish it first.";
    UnknownMessage = "unknown_message", UNPROCESSABLE_ENTITY,
        "A message the send refers to (reply, forward, attached part) does not exist; refresh the message list.";
    UnknownPart = "unknown_part", UNPROCESSABLE_ENTITY,
        "An attached part does not exist in its message or is not a section number; take it from the message's parts.";
    UnsupportedPart = "unsupported_part", UNPROCESSABLE_ENTITY,
        "A multipart section cannot be attached as it is; attach its parts.";
    NoSmtpServer = "no_smtp_server", UNPROCESSABLE_ENTITY,
        "The account was registered without an SMTP server, so it cannot send; register it again with `smtp`.";
    RecipientRejected = "recipient_rejected", UNPROCESSABLE_ENTITY,
        "In a send's status: the SMTP server refused a recipient (its reply is in `smtp_reply`); fix the address and send again.";
    UnknownProvider = "unknown_provider", UNPROCESSABLE_ENTITY,
        "The gateway has no OAuth provider of that name (`oauth.providers`); use one the operator configured, or sign in with a password.";
    RedirectNotAllowed = "redirect_not_allowed", UNPROCESSABLE_ENTITY,
        "`app_redirect_uri` is not one of the gateway's `oauth.app_redirect_uris`; use the app's registered URI.";
    OauthCodeRejected = "oauth_code_rejected", UNPROCESSABLE_ENTITY,
        "The provider refused the authorization code (used, expired, or issued for another client or redirect URI); sign in again for a new code.";
    OauthEmailMismatch = "oauth_email_mismatch", UNPROCESSABLE_ENTITY,
        "The provider signed in another address than `email`; register with the address that signed in.";
    OauthStateInvalid = "oauth_state_invalid", BAD_REQUEST,
        "The sign-in this callback belongs to is unknown, finished already or expired; start the sign-in again.";
    OauthGrantInvalid = "oauth_grant_invalid", BAD_REQUEST,
        "The grant is unknown, redeemed already or expired (it lives `oauth.grant_ttl_secs`); sign in again.";
    ReauthRequired = "reauth_required", FORBIDDEN,
        "The provider no longer accepts the account's sign-in (access revoked, password changed, grant expired); sign in again with the same account, which keeps its devices.";
    AccountDeleted = "account_deleted", GONE,
        "In a send's status: the account was deleted while the send was under way, so it stopped; nothing more is sent.";
    ReferenceGone = "reference_gone", UNPROCESSABLE_ENTITY,
        "In a send's status: a message the send refers to was deleted before it went out; send again without it.";

    // Too many requests.
    TooManyRegistrations = "too_many_registrations", TOO_MANY_REQUESTS,
        "Too many accounts were registered from this client; wait for Retry-After.";
    TooManyFailedLogins = "too_many_failed_logins", TOO_MANY_REQUESTS,
        "The IMAP login was refused too often, for this login or from this client; wait for Retry-After and check the password.";

    // The gateway's own trouble.
    InternalError = "internal_error", INTERNAL_SERVER_ERROR,
        "The gateway failed to finish the request; try again, and report it if it persists.";
    StorageError = "storage_error", INTERNAL_SERVER_ERROR,
        "The gateway could not read or write its store or files; try again later.";
    EncodingError = "encoding_error", INTERNAL_SERVER_ERROR,
        "The gateway could not encode its answer; report it.";
    SpoolError = "spool_error", INTERNAL_SERVER_ERROR,
        "In a send's status: the gateway could not read or write the message's spool file; it retries, and the send fails if that keeps happening.";
    UnsupportedByServer = "unsupported_by_server", NOT_IMPLEMENTED,
        "The mail server lacks an extension this operation needs (UIDPLUS to delete, for example); the operation is not available for this account.";

    // Upstream servers (IMAP, SMTP, push services).
    ImapUnreachable = "imap_unreachable", BAD_GATEWAY,
        "The IMAP server could not be reached; check the host and port, or try again later.";
    ImapError = "imap_error", BAD_GATEWAY,
        "The IMAP server answered in a way the gateway cannot use; try again later, and check the server if it persists.";
    ImapRefused = "imap_refused", BAD_GATEWAY,
        "The IMAP server refused the command (NO or BAD; its text is in the message).";
    ImapResponseTooLarge = "imap_response_too_large", BAD_GATEWAY,
        "The IMAP server's answer is larger than this request allows; ask for less (a smaller limit or a range).";
    ImapUnavailable = "imap_unavailable", BAD_GATEWAY,
        "The connection to the IMAP server failed during the request; try again.";
    SmtpUnreachable = "smtp_unreachable", BAD_GATEWAY,
        "The SMTP server could not be reached; check the host and port, or try again later.";
    SmtpError = "smtp_error", BAD_GATEWAY,
        "The SMTP server answered in a way the gateway cannot use; try again later.";
    SmtpRejected = "smtp_rejected", BAD_GATEWAY,
        "In a send's status: the SMTP server refused the message (its reply is in `smtp_reply`).";
    SentCopyFailed = "sent_copy_failed", BAD_GATEWAY,
        "In a send's status (with status done): the message was sent, but its copy could not be stored in the Sent mailbox.";
    SentCopyGone = "sent_copy_gone", CONFLICT,
        "In a send's status: the Sent copy the gateway stored was deleted before submission, so nothing was sent; send again.";
    ProviderUnavailable = "provider_unavailable", BAD_GATEWAY,
        "The OAuth provider could not be reached or failed for now; try again later.";
    ProviderRefusedClient = "provider_refused_client", BAD_GATEWAY,
        "The OAuth provider refused the gateway's client settings or did not say which address signed in; the operator must check `oauth.providers`.";
    PushServiceUnavailable = "push_service_unavailable", BAD_GATEWAY,
        "The push service did not take the test push now; try again later.";
    PushServiceRefused = "push_service_refused", BAD_GATEWAY,
        "The push service refused the test push; register the device's subscription again.";
    PushEndpointNotPublic = "push_endpoint_not_public", BAD_GATEWAY,
        "The device's push endpoint now resolves to a private address, which the gateway does not send to.";

    // Try again soon.
    StorageUnavailable = "storage_unavailable", SERVICE_UNAVAILABLE,
        "The gateway cannot reach its database; try again after Retry-After.";
    RegistrationConflict = "registration_conflict", SERVICE_UNAVAILABLE,
        "The login is being registered and deleted at once; try again.";
    ImapCoolingDown = "imap_cooling_down", SERVICE_UNAVAILABLE,
        "The IMAP server recently sent something the gateway could not take; try again after Retry-After.";
    RequestTimeout = "request_timeout", GATEWAY_TIMEOUT,
        "The request was not answered within `api.request_timeout_secs` (usually a slow mail server); try again.";
    UploadQuotaExceeded = "upload_quota_exceeded", INSUFFICIENT_STORAGE,
        "The account's uploads would exceed its quota; send or let old uploads expire first.";
}

impl ErrorCode {
    /// Whether the code only appears in a send's status (`GET
    /// /v1/send/{send_id}`, `"error": {"code", …}`) and never as an error
    /// answer of its own.
    pub const fn only_in_send_status(self) -> bool {
        matches!(
            self,
            ErrorCode::RecipientRejected
                | ErrorCode::AccountDeleted
                | ErrorCode::ReferenceGone
                | ErrorCode::SpoolError
                | ErrorCode::SmtpRejected
                | ErrorCode::SentCopyFailed
                | ErrorCode::SentCopyGone
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not a code of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an error code: {0:?}")]
pub struct UnknownCode(pub String);

impl FromStr for ErrorCode {
    type Err = UnknownCode;

    fn from_str(s: &str) -> Result<Self, UnknownCode> {
        ErrorCode::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownCode(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_snake_case_and_parse_back() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "{s} twice");
            assert!(
                !s.is_empty()
                    && !s.starts_with('_')
                    && !s.ends_with('_')
                    && !s.contains("__")
                    && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{s} is not snake_case"
            );
            assert_eq!(s.parse::<ErrorCode>(), Ok(*code));
            assert_eq!(code.to_string(), s);
        }
        assert!("no_such_code".parse::<ErrorCode>().is_err());
    }

    #[test]
    fn statuses_are_errors_and_meanings_are_sentences() {
        for code in ErrorCode::ALL {
            let status = code.status();
            assert!(
                status.is_client_error() || status.is_server_error(),
                "{code}: {status}"
            );
            let meaning = code.meaning();
            assert!(
                meaning.len() > 20 && meaning.ends_with('.') && !meaning.contains('|'),
                "{code}: {meaning:?}"
            );
        }
    }

    #[test]
    fn send_status_codes_say_so() {
        for code in ErrorCode::ALL {
            assert_eq!(
                code.meaning().starts_with("In a send's status"),
                code.only_in_send_status(),
                "{code}"
            );
        }
    }

    /// The row of `code` in docs/api.md's error table.
    fn row(code: ErrorCode) -> String {
        format!(
            "| `{}` | {} | {} |",
            code.as_str(),
            code.status().as_u16(),
            code.meaning()
        )
    }

    #[test]
    fn docs_list_every_code_as_the_catalogue_says() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md");
        let doc = std::fs::read_to_string(path).expect("docs/api.md");
        let rows: Vec<&str> = doc.lines().filter(|l| l.starts_with("| `")).collect();
        let table: String = ErrorCode::ALL.iter().map(|c| row(*c) + "\n").collect();
        let missing: Vec<String> = ErrorCode::ALL
            .iter()
            .map(|c| row(*c))
            .filter(|r| !rows.contains(&r.as_str()))
            .collect();
        assert!(
            missing.is_empty(),
            "docs/api.md lacks or differs in these rows:\n{}\nthe whole table:\n{table}",
            missing.join("\n")
        );
    }
}
