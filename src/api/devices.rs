//! `/v1/devices`: registering a phone's Web Push subscription, listing the
//! account's devices, and removing one (changing one is in
//! `device_rules`).

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::auth::{new_id, AccountId};
use super::codec::{Body, Format};
use super::device_rules::{device_lock, rules_message};
use super::device_targets::{self, TargetInput};
use super::error::ApiError;
use super::messages::rfc3339;
use super::{ApiPath, AppState};
use crate::error_code::ErrorCode;
use crate::imap::{ImapClient, ImapError};
use crate::net::Upstream;
use crate::notify::{PushOutcome, Target, Urgency};
use crate::proto::v1 as pb;
use crate::rules::Rules;
use crate::store::{DeviceRecord, DeviceStored, PayloadTier, PendingPush, DORMANT};
use crate::watch::INBOX;

/// Most mailboxes one device may ask for.
const MAX_MAILBOXES: usize = 32;

#[derive(Debug)]
pub struct CreateDevice {
    pub target: TargetInput,
    pub mailboxes: Option<Vec<String>>,
    pub payload: PayloadTier,
    /// None: those of the registration this one replaces, if any.
    pub rules: Option<Rules>,
    /// None: that of the registration this one replaces, if any.
    pub clear: Option<bool>,
}

pub(super) fn validate_mailboxes(input: Option<Vec<String>>) -> Result<Vec<String>, ApiError> {
    let mailboxes = input.unwrap_or_else(|| vec![INBOX.to_string()]);
    if mailboxes.is_empty() || mailboxes.len() > MAX_MAILBOXES {
        return Err(ApiError::new(
            ErrorCode::InvalidMailboxes,
            format!("mailboxes must list 1 to {MAX_MAILBOXES} mailbox names"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(mailboxes.len());
    for name in mailboxes {
        if name.is_empty() || name.len() > 512 || name.chars().any(|c| c.is_control()) {
            return Err(ApiError::new(
                ErrorCode::InvalidMailboxes,
                "mailbox names must be 1-512 bytes without control characters",
            ));
        }
        let name = if name.eq_ignore_ascii_case(INBOX) {
            INBOX.to_string()
        } else {
            name
        };
        if !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(out)
}

/// `POST /v1/devices`
pub async fn create(
    State(state): State<AppState>,
    AccountId(account_id): AccountId,
    format: Format,
    Body(input): Body<pb::CreateDeviceRequest>,
) -> Result<Response, ApiError> {
    let input = CreateDevice::try_from(input)?;
    let subscription = device_targets::subscription(&state, input.target, input.payload).await?;
    let mailboxes = validate_mailboxes(input.mailboxes)?;
    check_mailboxes_exist(&state, &account_id, &mailboxes).await?;

    // An app registering again at each start keeps the rules it set.
    let (rules, clear) = match (input.rules, input.clear) {
        (Some(rules), Some(clear)) => (rules, Some(clear)),
        (rules, clear) => {
            let endpoint = &subscription.endpoint;
            let previous = state.store.devices_of(&account_id).await?;
            let previous = previous
                .into_iter()
                .find(|d| d.subscription.endpoint == *endpoint);
            let kept = previous.map(|p| (p.rules, p.clear)).unwrap_or_default();
            (rules.unwrap_or(kept.0), clear.or(kept.1))
        }
    };
    let device = DeviceRecord {
        id: new_id(),
        account_id,
        subscription,
        mailboxes,
        payload: input.payload,
        created_at: crate::unix_millis() / 1000,
        rules,
        clear,
    };
    let device = super::to_completion(store_device(state, device)).await?;
    let answer = pb::CreateDeviceResponse {
        rules: Some(rules_message(&device.rules)),
        clear: device.clears(),
        device_id: device.id,
        mailboxes: device.mailboxes,
        payload: device.payload.as_str().to_string(),
    };
    Ok(format.respond(StatusCode::CREATED, &answer))
}

/// Stores the device (replacing an earlier registration of its endpoint,
/// or the record of its id) and tells the account's watcher.
pub(super) async fn store_device(
    state: AppState,
    mut device: DeviceRecord,
) -> Result<DeviceRecord, ApiError> {
    // The store checks and writes at once: two registrations of one
    // subscription (on any node) find each other, so the phone is stored
    // once and not pushed every mail twice, and two new ones cannot both
    // pass the limit. The same subscription registered again replaces the
    // old registration.
    let most = state.config.push.max_devices_per_account;
    match state.store.put_device(&device, most).await? {
        DeviceStored::Stored(id) => device.id = id,
        DeviceStored::TooMany => {
            return Err(ApiError::new(
                ErrorCode::TooManyDevices,
                format!(
                    "this account already has {most} devices, the most allowed; delete one first"
                ),
            ))
        }
        // Deleted meanwhile.
        DeviceStored::NoAccount => return Err(ApiError::unauthorized()),
    }
    state.store.flush().await?;
    state.watchers.devices_changed(&device.account_id).await;
    Ok(device)
}

/// Asks the account's IMAP server whether the mailboxes other than INBOX
/// exist, so a typo gets a clear answer instead of a silently idle watch.
/// When the server cannot be reached now, the registration goes ahead (the
/// watcher skips mailboxes the server does not have).
pub(super) async fn check_mailboxes_exist(
    state: &AppState,
    account_id: &str,
    mailboxes: &[String],
) -> Result<(), ApiError> {
    let others: Vec<&String> = mailboxes.iter().filter(|m| *m != INBOX).collect();
    if others.is_empty() {
        return Ok(());
    }
    let account = state
        .store
        .account(account_id)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    let Ok(password) = state
        .sealer
        .open(&account.id, &account.imap.password_sealed)
    else {
        return Ok(());
    };
    let upstream = Upstream {
        host: account.imap.host.clone(),
        port: account.imap.port,
        security: account.imap.security,
    };
    let timeout = Duration::from_secs(state.config.upstream.connect_timeout_secs);
    let Ok(mut client) = ImapClient::connect(&upstream, &state.tls, timeout).await else {
        return Ok(());
    };
    if client
        .login(&account.imap.username, &password)
        .await
        .is_err()
    {
        return Ok(());
    }
    let mut missing = None;
    for mailbox in others {
        match client.status(mailbox).await {
            Err(ImapError::No { .. }) => {
                missing = Some(mailbox.clone());
                break;
            }
            Err(_) => break,
            Ok(_) => {}
        }
    }
    client.logout().await;
    match missing {
        Some(mailbox) => Err(ApiError::new(
            ErrorCode::UnknownMailbox,
            format!("the IMAP server has no mailbox named {mailbox:?}"),
        )),
        None => Ok(()),
    }
}

/// `GET /v1/devices`: the account's devices, oldest first, each with the
/// pushes still queued for it (a push service that keeps refusing shows as
/// attempts piling up). The push service is named by its origin only: the
/// endpoint itself lets anyone who holds it send to the device, and the
/// client that registered it has it anyway.
pub async fn list(
    State(state): State<AppState>,
    AccountId(account_id): AccountId,
    format: Format,
) -> Result<Response, ApiError> {
    let mut devices = state.store.devices_of(&account_id).await?;
    devices.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let mut answer = Vec::with_capacity(devices.len());
    for device in &devices {
        answer.push(listed(&state, device).await?);
    }
    let answer = pb::ListDevicesResponse { devices: answer };
    Ok(format.respond(StatusCode::OK, &answer))
}

/// A device as listed, with its queued pushes.
pub(super) async fn listed(
    state: &AppState,
    device: &DeviceRecord,
) -> Result<pb::Device, ApiError> {
    let now_ms = state.clock.now_ms();
    let queued: Vec<_> = state
        .store
        .pending_pushes_of_device(&device.id)
        .await?
        .iter()
        .map(|push| pb::QueuedPush {
            mailbox: push.key.mailbox.clone(),
            count: push.count,
            attempts: push.attempts,
            next_attempt_at: match push.not_before_ms {
                DORMANT => String::new(),
                at => rfc3339(at / 1000),
            },
            expires_at: rfc3339(push.expires_at_ms / 1000),
            held: held(push, now_ms).to_string(),
        })
        .collect();
    Ok(pb::Device {
        device_id: device.id.clone(),
        push_service: push_service(&device.subscription.endpoint).unwrap_or_default(),
        kind: Target::of(&device.subscription.endpoint).kind().to_string(),
        mailboxes: device.mailboxes.clone(),
        payload: device.payload.as_str().to_string(),
        created_at: rfc3339(device.created_at),
        queued,
        rules: Some(rules_message(&device.rules)),
        clear: device.clears(),
    })
}

/// Why a queued push waits, when a device's rules hold it: see
/// `QueuedPush.held`.
fn held(push: &PendingPush, now_ms: i64) -> &'static str {
    match push.not_before_ms {
        _ if push.attempts > 0 => "",
        DORMANT => "muted",
        at if at > now_ms => "quiet_hours",
        _ => "",
    }
}

/// The origin (scheme, host, port) of a push endpoint.
fn push_service(endpoint: &str) -> Option<String> {
    if let Some(native) = Target::of(endpoint).service() {
        return Some(native);
    }
    url::Url::parse(endpoint)
        .ok()
        .map(|url| url.origin().ascii_serialization())
}

/// `POST /v1/devices/{device_id}/test`: sends the device a test push at
/// once and says what its push service answered, so an app can check its
/// subscription. A subscription the push service says is gone is removed.
pub async fn test(
    State(state): State<AppState>,
    AccountId(account_id): AccountId,
    ApiPath(device_id): ApiPath<String>,
    format: Format,
) -> Result<Response, ApiError> {
    let device = state
        .store
        .device(&device_id)
        .await?
        .filter(|d| d.account_id == account_id)
        .ok_or_else(|| ApiError::not_found("device"))?;
    let plaintext = crate::notify::payload::test(&account_id, &device.id);
    let topic = crate::notify::topic_for(&account_id, "test");
    let outcome = state
        .pusher
        .send_push(
            &device.subscription,
            &plaintext,
            TEST_TTL_SECS,
            Urgency::High,
            &topic,
        )
        .await;
    let refused = |code, message: &str| ApiError::new(code, message.to_string());
    match outcome {
        PushOutcome::Delivered => {
            Ok(format.respond(StatusCode::OK, &pb::TestDeviceResponse { delivered: true }))
        }
        PushOutcome::Gone => {
            super::to_completion(async move {
                state.store.delete_device(&device.id).await?;
                state.store.flush().await?;
                state.watchers.devices_changed(&account_id).await;
                Ok(())
            })
            .await?;
            Err(ApiError::new(
                ErrorCode::DeviceGone,
                "the push service says this subscription is gone; the device was removed",
            ))
        }
        PushOutcome::Retry { .. } | PushOutcome::TimedOut => Err(refused(
            ErrorCode::PushServiceUnavailable,
            "the push service did not take the push now; try again later",
        )),
        PushOutcome::Blocked => Err(refused(
            ErrorCode::PushEndpointNotPublic,
            "the push endpoint resolves to a private address",
        )),
        PushOutcome::TooLarge | PushOutcome::Rejected { .. } => Err(refused(
            ErrorCode::PushServiceRefused,
            "the push service refused the push",
        )),
    }
}

/// How long a test push may wait at the push service, in seconds.
const TEST_TTL_SECS: u32 = 60;

/// `DELETE /v1/devices/{device_id}`
pub async fn delete(
    State(state): State<AppState>,
    AccountId(account_id): AccountId,
    ApiPath(device_id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state
        .store
        .device(&device_id)
        .await?
        .filter(|d| d.account_id == account_id)
        .ok_or_else(|| ApiError::not_found("device"))?;
    super::to_completion(async move {
        // Not while a PATCH of it writes (which would bring it back).
        let _turn = state.locks.lock(&device_lock(&device_id)).await;
        state.store.delete_device(&device_id).await?;
        state.store.flush().await?;
        state.watchers.devices_changed(&account_id).await;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailboxes_default_to_inbox_and_are_checked() {
        assert_eq!(validate_mailboxes(None).unwrap(), vec!["INBOX"]);
        assert_eq!(
            validate_mailboxes(Some(vec!["inbox".into(), "Work".into(), "INBOX".into()])).unwrap(),
            vec!["INBOX", "Work"]
        );
        assert!(validate_mailboxes(Some(vec![])).is_err());
        assert!(validate_mailboxes(Some(vec!["a\r\nb".into()])).is_err());
        assert!(validate_mailboxes(Some((0..40).map(|i| i.to_string()).collect())).is_err());
    }
}
