//! `/v1/uploads`: files for later sends, stored under `data_dir/uploads`.
//!
//! `POST` with the raw body stores a file in one go (`201 {"upload_id",
//! "size", "sha256"}`). With `Upload-Length` the upload is resumable
//! (tus-style): the record exists before the first byte arrives, whatever
//! arrives is kept when the connection breaks, `HEAD` answers
//! `Upload-Offset`, and `PATCH` with a matching `Upload-Offset` appends the
//! rest; one `PATCH` at a time per upload. An upload has no overall time
//! limit, but each wait for more of its body is bounded by
//! `api.request_timeout_secs` (408). Uploads expire after
//! `send.upload_ttl_secs` and count against `send.upload_quota_bytes` per
//! account, those still streaming included (`upload_quota`).

use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::accounts::account_lock;
use super::auth::AccountId;
use super::codec::Format;
use super::error::ApiError;
use super::upload_quota::{quota_exceeded, stored_bytes};
use super::{ApiPath, AppState};
use crate::error_code::ErrorCode;
use crate::send::prepare::{new_id, upload_file, valid_id};
use crate::store::send::UploadRecord;

fn header_u64(headers: &HeaderMap, name: &str) -> Result<Option<u64>, ApiError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidHeader,
                    format!("{name} must be a non-negative integer"),
                )
            }),
    }
}

/// The file's type: `Content-Type`, else tus `Upload-Metadata`'s
/// `filetype`, else `application/octet-stream`.
fn content_type(headers: &HeaderMap, metadata: &Metadata) -> String {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(usable_type)
        .or_else(|| metadata.filetype.as_deref().and_then(usable_type))
        .unwrap_or_else(|| "application/octet-stream".into())
}

fn usable_type(text: &str) -> Option<String> {
    let t = text.trim().to_ascii_lowercase();
    (t.len() <= 200
        && t.contains('/')
        && t.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
        && !t.contains('"')
        && !t.contains('\\'))
    .then_some(t)
}

/// What a tus client says of the file in `Upload-Metadata`: comma-separated
/// `key base64(value)` pairs; the name and the type are taken (also under
/// the names other clients use), the rest ignored.
#[derive(Debug, Default, PartialEq)]
struct Metadata {
    filename: Option<String>,
    filetype: Option<String>,
}

fn metadata(headers: &HeaderMap) -> Result<Metadata, ApiError> {
    let mut out = Metadata::default();
    let Some(header) = headers.get("upload-metadata") else {
        return Ok(out);
    };
    let bad =
        |why: &str| ApiError::new(ErrorCode::InvalidHeader, format!("Upload-Metadata: {why}"));
    let text = header.to_str().map_err(|_| bad("not ASCII"))?;
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once(' ').unwrap_or((pair, ""));
        let decoded =
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, value.trim())
                .map_err(|_| bad("a value is not base64"))?;
        let value = String::from_utf8(decoded).map_err(|_| bad("a value is not UTF-8"))?;
        match key {
            "filename" | "name" => {
                if value.len() > 255 || value.chars().any(char::is_control) {
                    return Err(bad(
                        "filename is longer than 255 bytes or has control characters",
                    ));
                }
                out.filename = Some(value).filter(|v| !v.is_empty());
            }
            "filetype" | "type" | "contentType" => out.filetype = Some(value),
            _ => {}
        }
    }
    Ok(out)
}

/// Deletes expired uploads (records and files).
async fn sweep(state: &AppState) -> Result<(), ApiError> {
    let now = crate::unix_millis();
    for upload in state.store.uploads().await? {
        if upload.expires_ms <= now {
            let _ = std::fs::remove_file(upload_file(state.config.shared_dir(), &upload.id));
            state.store.delete_upload(&upload.id).await?;
        }
    }
    Ok(())
}

fn with_offset(status: StatusCode, upload: &UploadRecord) -> Response {
    let answer = super::messages::upload(upload);
    let mut response = Format::Json.respond(status, &answer);
    response
        .headers_mut()
        .insert("upload-offset", HeaderValue::from(upload.offset));
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/uploads/{}", upload.id)) {
        response
            .headers_mut()
            .insert(axum::http::header::LOCATION, location);
    }
    response
}

/// `POST /v1/uploads`
pub async fn create(
    State(state): State<AppState>,
    AccountId(account): AccountId,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let max = state.config.send.max_upload_bytes;
    let length = header_u64(&headers, "upload-length")?;
    let declared = length.or(header_u64(&headers, "content-length")?);
    if declared.is_some_and(|n| n > max) {
        return Err(too_large(max));
    }
    let now = crate::unix_millis();
    let metadata = metadata(&headers)?;
    let mut upload = UploadRecord {
        id: new_id(),
        account_id: account,
        content_type: content_type(&headers, &metadata),
        filename: metadata.filename,
        length,
        offset: 0,
        sha256: None,
        created_ms: now,
        expires_ms: now.saturating_add(
            i64::try_from(state.config.send.upload_ttl_secs.saturating_mul(1000))
                .unwrap_or(i64::MAX),
        ),
    };
    let path = upload_file(state.config.shared_dir(), &upload.id);
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(io_error)?;
    }
    // Held while this request appends, as a PATCH holds it (HEAD then
    // leaves the record alone).
    let _appending = state.locks.lock(&appending_lock(&upload.id)).await;
    tokio::fs::File::create(&path).await.map_err(io_error)?;
    let mut file = RemoveUnlessKept::new(&path);
    let mut limit = length.unwrap_or(max).min(max);
    let mut cut_by_quota = false;
    // The quota is checked, and what this upload may add is counted, under
    // the account's lock: parallel uploads each see the others.
    let reservation = {
        let _account = state.locks.lock(&account_lock(&upload.account_id)).await;
        sweep(&state).await?;
        let used = stored_bytes(&state, &upload.account_id).await?
            + state.upload_reservations.of(&upload.account_id);
        let room = state.config.send.upload_quota_bytes.saturating_sub(used);
        if declared.is_some_and(|n| n > room) || room == 0 {
            return Err(quota_exceeded(state.config.send.upload_quota_bytes));
        }
        if length.is_some() {
            // Resumable: the record exists before the first byte arrives,
            // and counts its whole length; the file stays with it.
            state.store.put_upload(&upload).await?;
            file.keep();
            None
        } else {
            // Of unknown length: what is left of the quota, at most.
            let wanted = declared.unwrap_or(limit).min(limit);
            cut_by_quota = room < wanted;
            limit = wanted.min(room);
            Some(state.upload_reservations.reserve(&upload.account_id, limit))
        }
    };
    let idle = Duration::from_secs(state.config.api.request_timeout_secs);
    let received = append_body(&path, body, limit, idle).await;
    match received {
        Ok(n) => upload.offset = n,
        Err(BodyError::TooLong) => {
            let _ = tokio::fs::remove_file(&path).await;
            state.store.delete_upload(&upload.id).await?;
            return Err(if cut_by_quota {
                // Stopped by what was left of the quota, not the size limit.
                quota_exceeded(state.config.send.upload_quota_bytes)
            } else {
                too_large(limit)
            });
        }
        Err(e @ (BodyError::Broken(n) | BodyError::Stalled(n))) => {
            // The client went away or stalled: keep what arrived for a
            // resumable upload (the file of any other goes with `file`).
            if length.is_some() {
                upload.offset = n;
                keep(&state, &upload, &path).await?;
            }
            return Err(cut_short(matches!(e, BodyError::Stalled(_))));
        }
        Err(BodyError::Io(e)) => {
            let _ = tokio::fs::remove_file(&path).await;
            state.store.delete_upload(&upload.id).await?;
            return Err(io_error(e));
        }
    }
    finish_if_complete(&mut upload, &path).await?;
    // From here the record is written even if the client goes away, so the
    // file is no longer this request's to remove (`keep` removes it if the
    // account is gone; a store failure leaves it to the sweep at start).
    file.keep();
    let kept = {
        let (state, upload, path) = (state.clone(), upload.clone(), path.clone());
        super::to_completion(async move { keep(&state, &upload, &path).await })
    };
    kept.await?;
    // The record counts the bytes now.
    drop(reservation);
    Ok(with_offset(StatusCode::CREATED, &upload))
}

/// Held by the request appending to an upload.
fn appending_lock(upload_id: &str) -> String {
    format!("upload\0{upload_id}")
}

/// Counts what a resumable upload's file holds, when its record says less
/// (or more). A request cut off mid-body without an error to handle (its
/// future dropped when the gateway stopped) wrote bytes its record never
/// counted. With one writer at a time the file is always a prefix of what the
/// client sent, so those bytes are good; counting them keeps the next
/// `PATCH` from appending the same bytes a second time.
async fn count_what_arrived(state: &AppState, upload: &mut UploadRecord) -> Result<(), ApiError> {
    let (Some(length), None) = (upload.length, &upload.sha256) else {
        return Ok(());
    };
    let path = upload_file(state.config.shared_dir(), &upload.id);
    let Ok(meta) = tokio::fs::metadata(&path).await else {
        return Ok(());
    };
    let received = meta.len().min(length);
    if received == upload.offset {
        return Ok(());
    }
    upload.offset = received;
    finish_if_complete(upload, &path).await?;
    keep(state, upload, &path).await
}

/// Deletes a new upload's file when dropped, unless kept: a request that
/// ends without a record naming its file (an error, or its future dropped
/// mid-body at shutdown) leaves no file that nothing would ever delete.
struct RemoveUnlessKept {
    path: Option<std::path::PathBuf>,
}

impl RemoveUnlessKept {
    fn new(path: &std::path::Path) -> Self {
        RemoveUnlessKept {
            path: Some(path.to_path_buf()),
        }
    }

    fn keep(&mut self) {
        self.path = None;
    }
}

impl Drop for RemoveUnlessKept {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Deletes upload files that no record names, and returns how many. A
/// request cut off before writing its record could leave one (before
/// `RemoveUnlessKept` removed them), and nothing else would ever delete it.
/// Run at start, before any request can be creating an upload; only files
/// named like uploads are touched.
pub async fn remove_unnamed_files(
    store: &dyn crate::store::Store,
    data_dir: &std::path::Path,
) -> Result<usize, crate::store::StoreError> {
    let named: std::collections::HashSet<String> =
        store.uploads().await?.into_iter().map(|u| u.id).collect();
    let Ok(entries) = std::fs::read_dir(data_dir.join("uploads")) else {
        return Ok(0);
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if valid_id(name) && !named.contains(name) && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Writes the upload's record, unless its account was deleted while the
/// body streamed: then the file and any record go, and the caller gets 401.
/// Deletion holds the account's lock, so a record written under it cannot
/// outlive the account.
async fn keep(
    state: &AppState,
    upload: &UploadRecord,
    path: &std::path::Path,
) -> Result<(), ApiError> {
    let _account = state.locks.lock(&account_lock(&upload.account_id)).await;
    if state.store.account(&upload.account_id).await?.is_none() {
        let _ = tokio::fs::remove_file(path).await;
        state.store.delete_upload(&upload.id).await?;
        state.store.flush().await?;
        return Err(ApiError::unauthorized());
    }
    state.store.put_upload(upload).await?;
    state.store.flush().await?;
    Ok(())
}

async fn owned(state: &AppState, account: &str, id: &str) -> Result<UploadRecord, ApiError> {
    if !valid_id(id) {
        return Err(ApiError::not_found("upload"));
    }
    state
        .store
        .upload(id)
        .await?
        .filter(|u| u.account_id == account && u.expires_ms > crate::unix_millis())
        .ok_or_else(|| ApiError::not_found("upload"))
}

/// `HEAD /v1/uploads/{id}` (and GET, with the JSON view).
pub async fn head(
    State(state): State<AppState>,
    AccountId(account): AccountId,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let mut upload = owned(&state, &account, &id).await?;
    // Not while a PATCH appends: it counts its bytes when it ends.
    if let Some(_appending) = state.locks.try_lock(&appending_lock(&id)) {
        count_what_arrived(&state, &mut upload).await?;
    }
    let mut response = with_offset(StatusCode::OK, &upload);
    if let Some(length) = upload.length {
        response
            .headers_mut()
            .insert("upload-length", HeaderValue::from(length));
    }
    Ok(response)
}

/// `PATCH /v1/uploads/{id}`
pub async fn patch(
    State(state): State<AppState>,
    AccountId(account): AccountId,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // One request appends at a time; a second one (a retry while the first
    // still streams, or its connection is not yet known to be dead) is told
    // to ask for the offset again later.
    let Some(_appending) = state.locks.try_lock(&appending_lock(&id)) else {
        return Err(ApiError::new(
            ErrorCode::UploadInProgress,
            "another request is appending to this upload; ask HEAD for the offset once it ends",
        ));
    };
    let mut upload = owned(&state, &account, &id).await?;
    count_what_arrived(&state, &mut upload).await?;
    let offset = header_u64(&headers, "upload-offset")?
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidHeader, "Upload-Offset is required"))?;
    if upload.complete() {
        return Err(ApiError::new(
            ErrorCode::UploadComplete,
            "the upload is complete already",
        ));
    }
    if offset != upload.offset {
        return Err(ApiError::new(
            ErrorCode::OffsetMismatch,
            format!("the upload is at offset {}", upload.offset),
        ));
    }
    let Some(length) = upload.length else {
        return Err(ApiError::new(
            ErrorCode::NotResumable,
            "only uploads created with Upload-Length can be continued",
        ));
    };
    let path = upload_file(state.config.shared_dir(), &upload.id);
    // Anything beyond the announced length is refused; what fits is kept.
    let idle = Duration::from_secs(state.config.api.request_timeout_secs);
    let result = append_body(&path, body, length - upload.offset, idle).await;
    let (added, error) = match result {
        Ok(n) => (n, None),
        Err(BodyError::Broken(n)) => (n, Some(cut_short(false))),
        Err(BodyError::Stalled(n)) => (n, Some(cut_short(true))),
        Err(BodyError::TooLong) => return Err(too_large(length)),
        Err(BodyError::Io(e)) => return Err(io_error(e)),
    };
    upload.offset += added;
    finish_if_complete(&mut upload, &path).await?;
    keep(&state, &upload, &path).await?;
    match error {
        Some(e) => Err(e),
        None => Ok(with_offset(StatusCode::OK, &upload)),
    }
}

enum BodyError {
    TooLong,
    /// The body ended with an error after this many bytes were written.
    Broken(u64),
    /// No more of the body came for the idle timeout, after this many bytes.
    Stalled(u64),
    Io(std::io::Error),
}

/// Appends the body to `path`, refusing more than `limit` bytes. Bytes are
/// flushed to the file as they come, so a broken upload keeps them.
async fn append_body(
    path: &std::path::Path,
    body: Body,
    limit: u64,
    idle: Duration,
) -> Result<u64, BodyError> {
    let mut file = tokio::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .await
        .map_err(BodyError::Io)?;
    let start = file.metadata().await.map_err(BodyError::Io)?.len();
    let mut stream = body.into_data_stream();
    let mut written = 0u64;
    loop {
        let next = tokio::time::timeout(idle, stream.next()).await;
        let chunk = match next {
            Ok(None) => break,
            Ok(Some(Ok(chunk))) => chunk,
            Ok(Some(Err(_))) | Err(_) => {
                file.flush().await.map_err(BodyError::Io)?;
                file.sync_all().await.map_err(BodyError::Io)?;
                return Err(if next.is_err() {
                    BodyError::Stalled(written)
                } else {
                    BodyError::Broken(written)
                });
            }
        };
        if written + chunk.len() as u64 > limit {
            // Keep the file as it was before this request.
            let _ = file.set_len(start).await;
            return Err(BodyError::TooLong);
        }
        file.write_all(&chunk).await.map_err(BodyError::Io)?;
        written += chunk.len() as u64;
    }
    file.flush().await.map_err(BodyError::Io)?;
    file.sync_all().await.map_err(BodyError::Io)?;
    Ok(written)
}

/// Computes the SHA-256 once all bytes are in.
async fn finish_if_complete(
    upload: &mut UploadRecord,
    path: &std::path::Path,
) -> Result<(), ApiError> {
    if upload.length.is_some_and(|l| upload.offset < l) {
        return Ok(());
    }
    let mut file = tokio::fs::File::open(path).await.map_err(io_error)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).await.map_err(io_error)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    upload.sha256 = Some(
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    );
    Ok(())
}

/// The answer to a body that stopped before its end: the client went
/// away, or sent nothing more for the idle timeout.
fn cut_short(stalled: bool) -> ApiError {
    if stalled {
        ApiError::new(
            ErrorCode::UploadStalled,
            "no more of the body arrived for a while; what arrived of a resumable upload is kept",
        )
    } else {
        ApiError::new(ErrorCode::UploadInterrupted, "the request body ended early")
    }
}

fn too_large(max: u64) -> ApiError {
    ApiError::new(
        ErrorCode::UploadTooLarge,
        format!("uploads are limited to {max} bytes"),
    )
}

fn io_error(e: std::io::Error) -> ApiError {
    tracing::error!(error = %e, "upload file error");
    ApiError::new(
        ErrorCode::StorageError,
        "the gateway could not write the upload",
    )
}

#[cfg(test)]
#[path = "uploads_tests.rs"]
mod tests;
