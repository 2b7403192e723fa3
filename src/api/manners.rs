//! HTTP manners of every answer: CORS for the web apps the operator allows
//! (`api.cors_origins`), `Vary: Accept` (the body's format follows it), no
//! second compression of media that are compressed already (a PDF or a
//! DOCX keeps its `Content-Length` and `Accept-Ranges`), and an
//! `X-Request-Id` on every answer — the client's own when it sent a
//! usable one — that the logs of the request carry too; and `Connection:
//! close` after a body refused unread.

use axum::extract::Request;
use axum::http::header::{HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE, VARY};
use axum::http::{Method, Response};
use axum::middleware::Next;
use tower_http::compression::predicate::{DefaultPredicate, Predicate};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::Instrument;

/// The request id header.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id taken from a client.
const MAX_REQUEST_ID: usize = 128;

/// CORS for `origins` (none: no browser on another origin may call).
pub fn cors(origins: &[String]) -> CorsLayer {
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    let name = HeaderName::from_static;
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(allowed))
        .allow_methods([
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            name("authorization"),
            name("content-type"),
            name("accept"),
            name("idempotency-key"),
            name("upload-length"),
            name("upload-offset"),
            name("upload-metadata"),
            name("tus-resumable"),
            name("range"),
            REQUEST_ID,
        ])
        .expose_headers([
            name("upload-offset"),
            name("upload-length"),
            name("location"),
            name("retry-after"),
            name("content-range"),
            name("accept-ranges"),
            REQUEST_ID,
        ])
        .max_age(std::time::Duration::from_secs(600))
}

/// Media types (prefixes) whose bodies are compressed already.
const COMPRESSED: &[&str] = &[
    "application/pdf",
    "application/zip",
    "application/gzip",
    "application/zstd",
    "application/x-7z-compressed",
    "application/x-rar-compressed",
    "application/x-bzip2",
    "application/x-xz",
    "application/epub+zip",
    "application/vnd.openxmlformats-officedocument.",
    "application/vnd.oasis.opendocument.",
    "audio/",
    "video/",
    "font/woff",
];

/// When to compress: as tower-http's default (not images, not tiny
/// bodies), and never media that are compressed already.
#[derive(Clone, Copy, Debug, Default)]
pub struct CompressWhen;

impl Predicate for CompressWhen {
    fn should_compress<B>(&self, response: &axum::http::Response<B>) -> bool
    where
        B: http_body::Body,
    {
        let compressed = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| {
                let t = t.to_ascii_lowercase();
                COMPRESSED.iter().any(|c| t.starts_with(c))
            });
        !compressed && DefaultPredicate::new().should_compress(response)
    }
}

/// Adds `Accept` to `Vary`: JSON or protobuf follows it.
pub async fn vary_accept<B>(mut response: Response<B>) -> Response<B> {
    let varies = response.headers().get_all(VARY).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|s| s.trim().eq_ignore_ascii_case("accept"))
        })
    });
    if !varies {
        response
            .headers_mut()
            .append(VARY, HeaderValue::from_name(ACCEPT));
    }
    response
}

/// A body refused as too large (413) was not read to its end: the server
/// drops the connection after answering, so the answer says
/// `Connection: close`, and the client does not send its next request on a
/// connection that is going away.
pub async fn close_after_unread_body<B>(mut response: Response<B>) -> Response<B> {
    if response.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            HeaderValue::from_static("close"),
        );
    }
    response
}

/// Gives the request an id (the client's `X-Request-Id` when it is short
/// and printable, else a new one), runs it in a span carrying the id, and
/// returns the id on the answer.
pub async fn request_id(mut request: Request, next: Next) -> axum::response::Response {
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty() && v.len() <= MAX_REQUEST_ID && v.bytes().all(|b| b.is_ascii_graphic())
        })
        .map(str::to_owned)
        .unwrap_or_else(new_id);
    let value = HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("-"));
    request.headers_mut().insert(REQUEST_ID, value.clone());
    let span = tracing::info_span!("request", id = %id);
    let mut response = next.run(request).instrument(span).await;
    response.headers_mut().insert(REQUEST_ID, value);
    response
}

fn new_id() -> String {
    let bytes: [u8; 12] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
