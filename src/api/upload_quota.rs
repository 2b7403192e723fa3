//! The upload quota (`send.upload_quota_bytes` per account): what an
//! account's stored uploads count, and what its uploads still streaming may
//! add (their records are written when they end).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::error::ApiError;
use super::AppState;
use crate::error_code::ErrorCode;

/// Bytes that uploads still streaming may add, per account. Their records
/// are written when they end, so without this parallel uploads would each
/// pass the quota check and together exceed it.
#[derive(Debug, Default)]
pub struct UploadReservations {
    bytes: Mutex<HashMap<String, u64>>,
}

impl UploadReservations {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.bytes.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn of(&self, account: &str) -> u64 {
        self.lock().get(account).copied().unwrap_or(0)
    }

    pub(super) fn reserve(self: &Arc<Self>, account: &str, bytes: u64) -> Reservation {
        *self.lock().entry(account.to_string()).or_default() += bytes;
        Reservation {
            owner: self.clone(),
            account: account.to_string(),
            bytes,
        }
    }
}

/// Gives its bytes back when dropped (the upload ended, however it ended).
pub(super) struct Reservation {
    owner: Arc<UploadReservations>,
    account: String,
    bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut reserved = self.owner.lock();
        if let Some(bytes) = reserved.get_mut(&self.account) {
            *bytes = bytes.saturating_sub(self.bytes);
            if *bytes == 0 {
                reserved.remove(&self.account);
            }
        }
    }
}

/// Bytes of the account's stored uploads: a resumable one counts its whole
/// announced length from the start.
pub(super) async fn stored_bytes(state: &AppState, account: &str) -> Result<u64, ApiError> {
    Ok(state
        .store
        .uploads()
        .await?
        .iter()
        .filter(|u| u.account_id == account)
        .map(|u| u.length.unwrap_or(u.offset))
        .sum())
}

pub(super) fn quota_exceeded(quota: u64) -> ApiError {
    ApiError::new(ErrorCode::UploadQuotaExceeded,
        format!(
            "uploads of this account would exceed {quota} bytes; send or wait for old ones to expire"
        ),
    )
}
