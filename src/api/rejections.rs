//! Every error answer in the API's format, also those no handler wrote:
//! path parameters that do not parse, the request timeout, and, as a net
//! under everything, any error answer that is not JSON (axum's own
//! rejections, 405 from the router) turned into `{"error": {"code",
//! "message"}}` with a code for its status.

use std::time::Duration;

use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::error_code::ErrorCode;

/// Path parameters whose rejection is a 400 `invalid_path` in our format.
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(value) = Path::<T>::from_request_parts(parts, state).await?;
        Ok(ApiPath(value))
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        let code = if rejection.status().is_client_error() {
            ErrorCode::InvalidPath
        } else {
            ErrorCode::InternalError
        };
        ApiError::new(code, rejection.body_text())
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        ApiError::new(code_for(rejection.status()), rejection.body_text())
    }
}

/// Bounds the handling of a request (`api.request_timeout_secs`).
pub async fn request_timeout(
    State(limit): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            ErrorCode::RequestTimeout,
            "the request was not answered within api.request_timeout_secs",
        )
        .into_response(),
    }
}

/// Longest text of a non-JSON error answer kept as its message.
const MOST_MESSAGE: usize = 1024;

/// Turns an error answer that is not JSON into one that is.
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MOST_MESSAGE)
        .await
        .ok()
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_string())
        .filter(|text| !text.is_empty());
    let message = text.unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
    let mut answer = ApiError::new(code_for(status), message).into_response();
    // Keep what else it said (`Allow` on a 405, `Retry-After`).
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            answer.headers_mut().insert(name.clone(), value.clone());
        }
    }
    answer
}

/// The code of an error answer that only has its status: those axum
/// gives (404, 405, body rejections); any other status becomes the generic
/// code of its class, answered with that code's status.
fn code_for(status: StatusCode) -> ErrorCode {
    match status {
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::BodyTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
        StatusCode::UNPROCESSABLE_ENTITY => ErrorCode::InvalidBody,
        StatusCode::GATEWAY_TIMEOUT => ErrorCode::RequestTimeout,
        s if s.is_server_error() => ErrorCode::InternalError,
        _ => ErrorCode::BadRequest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axum_statuses_keep_their_status_and_others_their_class() {
        for status in [
            StatusCode::NOT_FOUND,
            StatusCode::METHOD_NOT_ALLOWED,
            StatusCode::PAYLOAD_TOO_LARGE,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            StatusCode::GATEWAY_TIMEOUT,
        ] {
            assert_eq!(code_for(status).status(), status);
        }
        assert_eq!(code_for(StatusCode::IM_A_TEAPOT), ErrorCode::BadRequest);
        assert_eq!(
            code_for(StatusCode::NOT_IMPLEMENTED),
            ErrorCode::InternalError
        );
    }
}
