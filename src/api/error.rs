//! The API's error answers: `{"error": {"code", "message"}}` with the
//! status of their code ([`crate::error_code`]).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::error_code::ErrorCode;
use crate::store::StoreError;

/// An error answer; its status is its code's.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// Sent as `Retry-After` (whole seconds, rounded up).
    pub retry_after: Option<std::time::Duration>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The status it is answered with.
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// This answer with a `Retry-After` header.
    pub fn retry_after(mut self, wait: std::time::Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    pub fn unauthorized() -> Self {
        Self::new(ErrorCode::Unauthorized, "missing or invalid bearer token")
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("no such {what}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = json!({"error": {"code": self.code.as_str(), "message": self.message}});
        let mut response = (status, Json(body)).into_response();
        if let Some(wait) = self.retry_after {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store failure while answering a request");
        if let StoreError::Unavailable(_) = e {
            return ApiError::new(
                ErrorCode::StorageUnavailable,
                "the gateway cannot reach its database; try again soon",
            )
            .retry_after(std::time::Duration::from_secs(5));
        }
        ApiError::new(
            ErrorCode::StorageError,
            "the gateway could not read or write its store",
        )
    }
}
