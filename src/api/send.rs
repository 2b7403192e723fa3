//! `/v1/send`: sending a message (idempotent by `Idempotency-Key`), its
//! status, and the account's send settings. The work is done by the outbox
//! (`crate::send`); this file validates, stores the job and reports.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::auth::AccountId;
use super::codec::{self, Body, Format};
use super::error::ApiError;
use super::{messages, ApiPath, AppState};
use crate::error_code::ErrorCode;
use crate::proto::v1 as pb;
use crate::send::prepare::{prepare, PrepareError, SendRequest};
use crate::store::send::{Created, SendJob, SendSettings};

impl From<PrepareError> for ApiError {
    fn from(e: PrepareError) -> Self {
        ApiError::new(e.code, e.message)
    }
}

fn answer(job: &SendJob, format: Format) -> Response {
    let status = if job.status.is_final() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    format.respond(status, &messages::send_status(job))
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
async fn settle(state: &AppState, id: &str, format: Format) -> Result<Response, ApiError> {
    let wait = Duration::from_secs(state.config.send.wait_secs);
    let job = state
        .outbox
        .wait(id, wait)
        .await?
        .ok_or_else(|| ApiError::not_found("send"))?;
    Ok(answer(&job, format))
}

/// `POST /v1/send`
pub async fn create(
    State(state): State<AppState>,
    AccountId(account_id): AccountId,
    format: Format,
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
            return settle(&state, &existing, format).await;
        }
    }
    let request: pb::SendRequest = codec::decode(&headers, &body)?;
    let request = SendRequest::try_from(request)?;
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
            settle(&state, &job.id, format).await
        }
        Created::Existing(id) => {
            tokio::spawn(connections.close());
            let _ = std::fs::remove_dir_all(ctx.job_dir(&job.id));
            state.outbox.start(&id);
            settle(&state, &id, format).await
        }
    }
}

/// `GET /v1/send/{send_id}`
pub async fn get(
    State(state): State<AppState>,
    AccountId(account_id): AccountId,
    ApiPath(id): ApiPath<String>,
    format: Format,
) -> Result<Response, ApiError> {
    let job = state
        .store
        .send_job(&id)
        .await?
        .filter(|j| j.account_id == account_id)
        .ok_or_else(|| ApiError::not_found("send"))?;
    Ok(format.respond(StatusCode::OK, &messages::send_status(&job)))
}

/// `GET /v1/send/settings`
pub async fn get_settings(
    State(state): State<AppState>,
    AccountId(account_id): AccountId,
    format: Format,
) -> Result<Response, ApiError> {
    let s = state.store.send_settings(&account_id).await?;
    Ok(format.respond(StatusCode::OK, &settings_message(s)))
}

fn settings_message(s: SendSettings) -> pb::SendSettings {
    pb::SendSettings {
        save_sent: s.save_sent,
        sent_mailbox: s.sent_mailbox,
    }
}

/// `PUT /v1/send/settings`: an absent field is the default (a Sent copy
/// except on hosts that file one themselves; the mailbox `Sent`).
pub async fn put_settings(
    State(state): State<AppState>,
    AccountId(account_id): AccountId,
    format: Format,
    Body(input): Body<pb::SendSettings>,
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
    Ok(format.respond(StatusCode::OK, &settings_message(settings)))
}
