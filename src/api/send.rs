//! `/v1/send`: sending a message (idempotent by `Idempotency-Key`), its
//! status, and the account's send settings. The work is done by the outbox
//! (`crate::send`); this file validates, stores the job and reports.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::auth::AccountId;
use super::codec::json_error;
use super::error::ApiError;
use super::{ApiJson, ApiPath, AppState};
use crate::error_code::ErrorCode;
use crate::send::prepare::{prepare, PrepareError, SendRequest};
use crate::store::send::{Created, SendJob, SendSettings};

impl From<PrepareError> for ApiError {
    fn from(e: PrepareError) -> Self {
        ApiError::new(e.code, e.message)
    }
}

/// The JSON view of a job.
pub fn view(job: &SendJob) -> serde_json::Value {
    let mut v = json!({
        "send_id": job.id,
        "status": job.status,
        "path": job.path,
        "message_id": job.message_id,
        "size": job.size,
        "bytes": {
            "from_client": job.bytes.from_client,
            "to_imap": job.bytes.to_imap,
            "from_imap": job.bytes.from_imap,
            "to_smtp": job.bytes.to_smtp,
        },
        "attempts": job.attempts,
    });
    if let Some(sent) = &job.sent {
        v["sent"] = json!({"mailbox": sent.mailbox, "uid": sent.uid});
    }
    if let Some(e) = &job.error {
        v["error"] = json!({"code": e.code, "message": e.message, "smtp_reply": e.smtp_reply});
    }
    if let Some(reply) = &job.smtp_reply {
        v["smtp_reply"] = json!(reply);
    }
    v
}

fn answer(job: &SendJob) -> Response {
    let status = if job.status.is_final() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    (status, Json(view(job))).into_response()
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidHeader,
                "Idempotency-Key must be 1-255 printable ASCII characters",
            )
        })?;
    Ok(Some(key.to_owned()))
}

/// Waits briefly for a final status, then answers.
async fn settle(state: &AppState, id: &str) -> Result<Response, ApiError> {
    let wait = Duration::from_secs(state.config.send.wait_secs);
    let job = state
        .outbox
        .wait(id, wait)
        .await?
        .ok_or_else(|| ApiError::not_found("send"))?;
    Ok(answer(&job))
}

/// `POST /v1/send`
pub async fn create(
    State(state): State<AppState>,
    AccountId(account_id): AccountId,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body?;
    let key = idempotency_key(&headers)?;
    if let Some(key) = &key {
        if let Some(existing) = state.store.send_id_for_key(&account_id, key).await? {
            // A job stored by a request that ended before starting it (its
            // flush failed) starts now; one running or done is left alone.
            state.outbox.start(&existing);
            return settle(&state, &existing).await;
        }
    }
    let is_json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if !is_json {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "expected Content-Type: application/json",
        ));
    }
    let request: SendRequest = serde_json::from_slice(&body).map_err(json_error)?;
    let account = state
        .store
        .account(&account_id)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    let ctx = state.outbox.context();
    let (job, connections) = prepare(ctx, &account, &request, key, body.len() as u64).await?;
    let created = match state.store.create_send_job(&job).await {
        Ok(created) => created,
        Err(e) => {
            tokio::spawn(connections.close());
            return Err(e.into());
        }
    };
    match created {
        Created::New => {
            // Durable first (a crash after sending but before the job is on
            // disk would let a retry send it again), then started, even if
            // the client goes away in between.
            let started = {
                let state = state.clone();
                let id = job.id.clone();
                super::to_completion(async move {
                    if let Err(e) = state.store.flush().await {
                        tokio::spawn(connections.close());
                        return Err(e.into());
                    }
                    state.outbox.start_with(&id, connections);
                    Ok(())
                })
            };
            started.await?;
            tracing::info!(send = %job.id, path = ?job.path, size = job.size, "send queued");
            settle(&state, &job.id).await
        }
        Created::Existing(id) => {
            tokio::spawn(connections.close());
            let _ = std::fs::remove_dir_all(ctx.job_dir(&job.id));
            state.outbox.start(&id);
            settle(&state, &id).await
        }
    }
}

/// `GET /v1/send/{send_id}`
pub async fn get(
    State(state): State<AppState>,
    AccountId(account_id): AccountId,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let job = state
        .store
        .send_job(&id)
        .await?
        .filter(|j| j.account_id == account_id)
        .ok_or_else(|| ApiError::not_found("send"))?;
    Ok(Json(view(&job)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsInput {
    #[serde(default, alias = "saveSent")]
    pub save_sent: Option<bool>,
    #[serde(default, alias = "sentMailbox")]
    pub sent_mailbox: Option<String>,
}

/// `GET /v1/send/settings`
pub async fn get_settings(
    State(state): State<AppState>,
    AccountId(account_id): AccountId,
) -> Result<Response, ApiError> {
    let s = state.store.send_settings(&account_id).await?;
    Ok(Json(json!({"save_sent": s.save_sent, "sent_mailbox": s.sent_mailbox})).into_response())
}

/// `PUT /v1/send/settings`: `{"save_sent": bool|null, "sent_mailbox": name|null}`
/// (null: the default: by host, and `Sent`).
pub async fn put_settings(
    State(state): State<AppState>,
    AccountId(account_id): AccountId,
    ApiJson(input): ApiJson<SettingsInput>,
) -> Result<Response, ApiError> {
    if let Some(name) = &input.sent_mailbox {
        if name.is_empty() || name.len() > 1000 || name.chars().any(|c| c.is_control()) {
            return Err(ApiError::new(
                ErrorCode::InvalidMailbox,
                "sent_mailbox is empty or malformed",
            ));
        }
    }
    let settings = SendSettings {
        save_sent: input.save_sent,
        sent_mailbox: input.sent_mailbox,
    };
    state
        .store
        .put_send_settings(&account_id, &settings)
        .await?;
    state.store.flush().await?;
    Ok(
        Json(json!({"save_sent": settings.save_sent, "sent_mailbox": settings.sent_mailbox}))
            .into_response(),
    )
}
