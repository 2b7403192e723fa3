//! Content negotiation for the mail API: the same protobuf messages as
//! protobuf (`application/x-protobuf`) or as their proto3 JSON mapping.
//!
//! Responses follow `Accept`; request bodies follow `Content-Type`. Errors
//! stay JSON (`{"error": {"code", "message"}}`, the `ErrorResponse`
//! message) whatever was asked, so a client can always read them.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::ApiError;
use crate::error_code::ErrorCode;

/// The protobuf media type.
pub const PROTOBUF: &str = "application/x-protobuf";

/// The encoding a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Protobuf,
}

impl Format {
    fn from_accept(accept: Option<&HeaderValue>) -> Format {
        let wants_proto = accept
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(',').any(|t| {
                    let mut params = t.split(';');
                    let media = params.next().unwrap_or("").trim();
                    let refused = params.any(|p| {
                        p.trim()
                            .strip_prefix("q=")
                            .and_then(|q| q.trim().parse::<f32>().ok())
                            .is_some_and(|q| q <= 0.0)
                    });
                    (media.eq_ignore_ascii_case(PROTOBUF)
                        || media.eq_ignore_ascii_case("application/protobuf"))
                        && !refused
                })
            })
            .unwrap_or(false);
        if wants_proto {
            Format::Protobuf
        } else {
            Format::Json
        }
    }

    /// Encodes `message` in this format as a response.
    pub fn respond<T: prost::Message + Serialize>(
        self,
        status: StatusCode,
        message: &T,
    ) -> Response {
        match self {
            Format::Protobuf => (
                status,
                [(header::CONTENT_TYPE, PROTOBUF)],
                message.encode_to_vec(),
            )
                .into_response(),
            Format::Json => match serde_json::to_vec(message) {
                Ok(body) => {
                    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
                }
                Err(e) => ApiError::new(ErrorCode::EncodingError, e.to_string()).into_response(),
            },
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Format {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(Format::from_accept(parts.headers.get(header::ACCEPT)))
    }
}

/// A request body decoded from protobuf or JSON by its `Content-Type`.
pub struct Body<T>(pub T);

impl<T, S> FromRequest<S> for Body<T>
where
    T: prost::Message + Default + DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let headers = req.headers().clone();
        let bytes = Bytes::from_request(req, state).await?;
        decode(&headers, &bytes).map(Body)
    }
}

/// Decodes a request body as protobuf or JSON by its `Content-Type`. JSON
/// takes proto field names and lowerCamelCase ones; an unknown field is an
/// error naming it.
pub fn decode<T>(headers: &HeaderMap, bytes: &[u8]) -> Result<T, ApiError>
where
    T: prost::Message + Default + DeserializeOwned,
{
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    let format = match content_type.as_deref() {
        Some(PROTOBUF) | Some("application/protobuf") => Format::Protobuf,
        Some("application/json") => Format::Json,
        Some(t) if t.starts_with("application/") && t.ends_with("+json") => Format::Json,
        _ => {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "send application/json or application/x-protobuf",
            ))
        }
    };
    match format {
        Format::Protobuf => {
            T::decode(bytes).map_err(|e| ApiError::new(ErrorCode::MalformedProtobuf, e.to_string()))
        }
        Format::Json => serde_json::from_slice(bytes).map_err(json_error),
    }
}

/// A JSON body that does not decode: `invalid_body` when it is JSON of the
/// wrong shape (serde's message names the field), else `malformed_json`.
fn json_error(e: serde_json::Error) -> ApiError {
    let code = if e.is_data() {
        ErrorCode::InvalidBody
    } else {
        ErrorCode::MalformedJson
    };
    ApiError::new(code, e.to_string())
}

/// Query parameters whose rejection is a 400 in our error format.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        serde_urlencoded_from_str(query).map(Query)
    }
}

fn serde_urlencoded_from_str<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    axum::extract::Query::<T>::try_from_uri(
        &format!("/?{query}")
            .parse()
            .map_err(|_| ApiError::new(ErrorCode::InvalidQuery, "unreadable query string"))?,
    )
    .map(|q| q.0)
    .map_err(|e| ApiError::new(ErrorCode::InvalidQuery, e.body_text()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_negotiation() {
        let f = |v: &'static str| Format::from_accept(Some(&HeaderValue::from_static(v)));
        assert_eq!(Format::from_accept(None), Format::Json);
        assert_eq!(f("application/x-protobuf"), Format::Protobuf);
        assert_eq!(
            f("application/json, application/x-protobuf;q=0.5"),
            Format::Protobuf
        );
        assert_eq!(f("application/x-protobuf;q=0"), Format::Json);
        assert_eq!(f("*/*"), Format::Json);
    }
}
