//! Routes of the read API: mailboxes, message lists, changes, messages,
//! parts, flags, move, delete and search. Each takes a session from the
//! account's pool, runs one operation of [`crate::read::ops`], and answers
//! in the format negotiated by [`super::codec`].

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::auth::AccountId;
use super::codec::{Body, Format, Query};
use super::error::ApiError;
use super::{ApiPath, AppState};
use crate::error::ErrorClass;
use crate::error_code::ErrorCode;
use crate::imap::{ImapError, SearchQuery};
use crate::proto::v1 as pb;
use crate::read::{ops, range, ReadError};

/// The code of a read error.
fn read_code(e: &ReadError) -> ErrorCode {
    match e {
        ReadError::MailboxNotFound(_) => ErrorCode::MailboxNotFound,
        ReadError::MessageNotFound(_) => ErrorCode::MessageNotFound,
        ReadError::PartNotFound(_) => ErrorCode::PartNotFound,
        ReadError::ResyncRequired(_) => ErrorCode::ResyncRequired,
        ReadError::BadState => ErrorCode::InvalidState,
        ReadError::BadCursor => ErrorCode::InvalidCursor,
        ReadError::Invalid(code, _) => *code,
        ReadError::RangeNotSatisfiable(_) => ErrorCode::RangeNotSatisfiable,
        ReadError::NoAccount => ErrorCode::Unauthorized,
        ReadError::Imap(ImapError::Auth(_)) => ErrorCode::ImapAuthFailed,
        ReadError::Imap(ImapError::InvalidArgument(_)) => ErrorCode::InvalidArgument,
        ReadError::Imap(ImapError::Unsupported(_)) => ErrorCode::UnsupportedByServer,
        ReadError::Imap(ImapError::No { .. } | ImapError::Bad { .. }) => ErrorCode::ImapRefused,
        ReadError::Imap(ImapError::TooLarge(_)) => ErrorCode::ImapResponseTooLarge,
        ReadError::Imap(_) => ErrorCode::ImapUnavailable,
        ReadError::CoolingDown(_) => ErrorCode::ImapCoolingDown,
        ReadError::Login(e) => e.code().unwrap_or(ErrorCode::InternalError),
        ReadError::Store(_) | ReadError::Poisoned => ErrorCode::InternalError,
    }
}

impl From<ReadError> for ApiError {
    fn from(e: ReadError) -> Self {
        let code = read_code(&e);
        let quiet = matches!(e, ReadError::CoolingDown(_));
        if code.status().is_server_error() && e.class() != ErrorClass::Permanent && !quiet {
            tracing::warn!(error = %e, "read request failed upstream");
        }
        let mut err = ApiError::new(code, e.to_string());
        match e {
            ReadError::RangeNotSatisfiable(total) => {
                err.message = format!("range not satisfiable; the part has {total} bytes");
            }
            ReadError::CoolingDown(wait) => err = err.retry_after(wait),
            _ => {}
        }
        err
    }
}

/// GET /v1/mailboxes
pub async fn mailboxes(
    State(s): State<AppState>,
    AccountId(id): AccountId,
    f: Format,
) -> Result<Response, ApiError> {
    let mut session = s.pool.session(&id).await?;
    let r = ops::list_mailboxes(&mut session).await?;
    Ok(f.respond(StatusCode::OK, &r))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    limit: Option<u32>,
    before_uid: Option<u32>,
}

fn limit(s: &AppState, asked: Option<u32>, default: u32) -> Result<u32, ApiError> {
    let max = s.config.read.max_list;
    match asked {
        None => Ok(default.min(max)),
        Some(n) if n >= 1 && n <= max => Ok(n),
        Some(_) => Err(ApiError::new(
            ErrorCode::InvalidLimit,
            format!("limit must be between 1 and {max}"),
        )),
    }
}

/// GET /v1/mailboxes/{mailbox}/messages
pub async fn messages(
    State(s): State<AppState>,
    AccountId(id): AccountId,
    f: Format,
    ApiPath(mailbox): ApiPath<String>,
    Query(q): Query<ListParams>,
) -> Result<Response, ApiError> {
    let limit = limit(&s, q.limit, 50)?;
    let mut session = s.pool.session(&id).await?;
    let r = ops::list_messages(&mut session, &mailbox, limit, q.before_uid).await?;
    Ok(f.respond(StatusCode::OK, &r))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangesParams {
    since: String,
    limit: Option<u32>,
}

/// GET /v1/mailboxes/{mailbox}/changes?since=
pub async fn changes(
    State(s): State<AppState>,
    AccountId(id): AccountId,
    f: Format,
    ApiPath(mailbox): ApiPath<String>,
    Query(q): Query<ChangesParams>,
) -> Result<Response, ApiError> {
    let limit = limit(&s, q.limit, s.config.read.max_list)?;
    let mut session = s.pool.session(&id).await?;
    let r = ops::changes(&mut session, &mailbox, &q.since, limit).await?;
    Ok(f.respond(StatusCode::OK, &r))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageParams {
    max_bytes: Option<u32>,
}

/// GET /v1/messages/{mailbox}/{uid}
pub async fn message(
    State(s): State<AppState>,
    AccountId(id): AccountId,
    f: Format,
    ApiPath((mailbox, uid)): ApiPath<(String, u32)>,
    Query(q): Query<MessageParams>,
) -> Result<Response, ApiError> {
    let max_bytes = q.max_bytes.unwrap_or(s.config.read.default_text_bytes);
    if uid == 0 {
        return Err(ApiError::new(ErrorCode::InvalidUid, "UIDs start at 1"));
    }
    let mut session = s.pool.session(&id).await?;
    let r = ops::get_message(&mut session, &mailbox, uid, max_bytes).await?;
    Ok(f.respond(StatusCode::OK, &r))
}

/// GET /v1/messages/{mailbox}/{uid}/parts/{part}
pub async fn part(
    State(s): State<AppState>,
    AccountId(id): AccountId,
    ApiPath((mailbox, uid, part)): ApiPath<(String, u32, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let requested = match headers.get(header::RANGE).map(|v| v.to_str()) {
        None => None,
        Some(Ok(v)) => range::parse(v)
            .map_err(|_| ApiError::new(ErrorCode::InvalidRange, "unreadable Range header"))?,
        Some(Err(_)) => {
            return Err(ApiError::new(
                ErrorCode::InvalidRange,
                "unreadable Range header",
            ))
        }
    };
    if uid == 0 {
        return Err(ApiError::new(ErrorCode::InvalidUid, "UIDs start at 1"));
    }
    let mut session = s.pool.session(&id).await?;
    let download =
        crate::read::part::get_part(&mut session, &mailbox, uid, &part, requested).await?;
    let mime = HeaderValue::from_str(&download.mime)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let disposition = HeaderValue::from_str(&content_disposition(&download.filename))
        .unwrap_or(HeaderValue::from_static("attachment"));
    let (range, total) = (download.range, download.total);
    // The body is fetched piece by piece while it is sent; the session
    // goes back to the pool when the last piece is out (or is dropped,
    // mid-command, when the client goes away).
    let pieces = futures_util::stream::try_unfold(
        (session, download),
        |(mut session, mut download)| async move {
            match download.next_chunk(&mut session).await {
                Ok(Some(bytes)) => Ok(Some((bytes::Bytes::from(bytes), (session, download)))),
                Ok(None) => Ok(None),
                Err(e) => {
                    tracing::warn!(error = %e, "part download failed midway");
                    Err(e)
                }
            }
        },
    );
    let mut response = (
        [
            (header::CONTENT_TYPE, mime),
            (header::ACCEPT_RANGES, HeaderValue::from_static("bytes")),
            // A part is the sender's content: never shown or run on the
            // API's origin, whatever its type says.
            (header::CONTENT_DISPOSITION, disposition),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(PART_CSP),
            ),
        ],
        axum::body::Body::from_stream(pieces),
    )
        .into_response();
    // The length, when known before sending, lets a client show progress
    // and resume; the stream never carries more than it.
    let length = match (range, total) {
        (Some(r), _) => Some(r.len()),
        (None, total) => total,
    };
    if let Some(length) = length {
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    if let (Some(r), Some(total)) = (range, total) {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {}-{}/{}", r.start, r.end, total)) {
            response.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(response)
}

/// The policy served with parts: no script, no plugin, no request of any
/// kind, and a unique origin (`sandbox`) even if a browser renders it.
const PART_CSP: &str = "sandbox; default-src 'none'";

/// `attachment; filename="ascii"; filename*=UTF-8''percent-encoded` (RFC 6266);
/// plain `attachment` for a part without a name.
fn content_disposition(name: &str) -> String {
    if name.is_empty() {
        return "attachment".to_string();
    }
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_ ".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b".-_".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// POST /v1/messages/flags
pub async fn flags(
    State(s): State<AppState>,
    AccountId(id): AccountId,
    f: Format,
    Body(req): Body<pb::FlagsRequest>,
) -> Result<Response, ApiError> {
    ops::check_mailbox(&req.mailbox)?;
    let mut session = s.pool.session(&id).await?;
    let r = ops::set_flags(&mut session, &req).await?;
    Ok(f.respond(StatusCode::OK, &r))
}

/// POST /v1/messages/move
pub async fn move_messages(
    State(s): State<AppState>,
    AccountId(id): AccountId,
    f: Format,
    Body(req): Body<pb::MoveRequest>,
) -> Result<Response, ApiError> {
    ops::check_mailbox(&req.mailbox)?;
    let mut session = s.pool.session(&id).await?;
    let r = ops::move_messages(&mut session, &req).await?;
    Ok(f.respond(StatusCode::OK, &r))
}

/// POST /v1/messages/delete
pub async fn delete(
    State(s): State<AppState>,
    AccountId(id): AccountId,
    f: Format,
    Body(req): Body<pb::DeleteRequest>,
) -> Result<Response, ApiError> {
    ops::check_mailbox(&req.mailbox)?;
    let mut session = s.pool.session(&id).await?;
    let r = ops::delete_messages(&mut session, &req).await?;
    Ok(f.respond(StatusCode::OK, &r))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    mailbox: Option<String>,
    from: Option<String>,
    to: Option<String>,
    subject: Option<String>,
    text: Option<String>,
    since: Option<String>,
    before: Option<String>,
    unseen: Option<bool>,
    flagged: Option<bool>,
    limit: Option<u32>,
    /// `next_cursor` of the page before; empty or absent for the first page.
    cursor: Option<String>,
}

/// `YYYY-MM-DD` as an IMAP date (`1-Feb-2024`).
fn imap_date(field: &'static str, value: &str) -> Result<String, ApiError> {
    let format = time::format_description::parse_borrowed::<1>("[year]-[month]-[day]")
        .map_err(|e| ApiError::new(ErrorCode::InternalError, e.to_string()))?;
    let date = time::Date::parse(value, &format).map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidDate,
            format!("{field} must be YYYY-MM-DD"),
        )
    })?;
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    Ok(format!(
        "{}-{}-{}",
        date.day(),
        MONTHS[usize::from(u8::from(date.month())) - 1],
        date.year()
    ))
}

/// GET /v1/search
pub async fn search(
    State(s): State<AppState>,
    AccountId(id): AccountId,
    f: Format,
    Query(q): Query<SearchParams>,
) -> Result<Response, ApiError> {
    let mailbox = q.mailbox.unwrap_or_else(|| "INBOX".to_string());
    ops::check_mailbox(&mailbox)?;
    let text = |v: Option<String>, field: &'static str| -> Result<Option<String>, ApiError> {
        match v {
            Some(t) if t.is_empty() || t.len() > 1000 || t.chars().any(char::is_control) => {
                Err(ApiError::new(
                    ErrorCode::InvalidSearch,
                    format!("{field} must be 1 to 1000 characters of text"),
                ))
            }
            other => Ok(other),
        }
    };
    let query = SearchQuery {
        from: text(q.from, "from")?,
        to: text(q.to, "to")?,
        subject: text(q.subject, "subject")?,
        text: text(q.text, "text")?,
        since: q
            .since
            .as_deref()
            .map(|d| imap_date("since", d))
            .transpose()?,
        before: q
            .before
            .as_deref()
            .map(|d| imap_date("before", d))
            .transpose()?,
        unseen: q.unseen,
        flagged: q.flagged,
    };
    let limit = limit(&s, q.limit, 20)?;
    let mut session = s.pool.session(&id).await?;
    let cursor = q.cursor.as_deref().filter(|c| !c.is_empty());
    let r = ops::search(&mut session, &mailbox, &query, limit, cursor).await?;
    Ok(f.respond(StatusCode::OK, &r))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query string with every parameter the proto's request message
    /// gives the route (so, the OpenAPI document too).
    fn documented_query(rpc: &str) -> String {
        use prost_reflect::Kind;
        let rule = super::super::contract::rule(rpc).expect(rpc);
        let pairs: Vec<String> = rule
            .query_fields()
            .iter()
            .map(|f| {
                let value = match f.kind() {
                    Kind::Bool => "true",
                    Kind::String => "x",
                    _ => "1",
                };
                format!("{}={value}", f.name())
            })
            .collect();
        pairs.join("&")
    }

    fn parses<T: serde::de::DeserializeOwned>(rpc: &str) {
        let query = documented_query(rpc);
        let uri: axum::http::Uri = format!("/?{query}").parse().unwrap();
        if let Err(e) = axum::extract::Query::<T>::try_from_uri(&uri) {
            panic!("{rpc}: {query}: {}", e.body_text());
        }
    }

    /// The handlers take every query parameter the contract documents.
    #[test]
    fn query_parameters_are_the_contracts() {
        parses::<ListParams>("Mail.ListMessages");
        parses::<ChangesParams>("Mail.ListChanges");
        parses::<MessageParams>("Mail.GetMessage");
        parses::<SearchParams>("Mail.SearchMessages");
    }

    #[test]
    fn dispositions() {
        assert_eq!(content_disposition(""), "attachment");
        assert_eq!(
            content_disposition("Résumé \"x\".pdf"),
            "attachment; filename=\"R_sum_ _x_.pdf\"; filename*=UTF-8''R%C3%A9sum%C3%A9%20%22x%22.pdf"
        );
    }

    #[test]
    fn dates() {
        assert_eq!(imap_date("since", "2024-02-01").unwrap(), "1-Feb-2024");
        assert!(imap_date("since", "2024-13-01").is_err());
        assert!(imap_date("since", "1 Feb").is_err());
    }
}
