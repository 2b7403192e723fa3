//! A device's notification settings over the API: its rules (`rules`,
//! checked by [`crate::rules`]) and whether it is told of mail read
//! elsewhere (`clear`), as registration takes them and listings show them,
//! and `PATCH /v1/devices/{device_id}`, which changes them (and the
//! mailboxes and payload tier) without registering the device again.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::auth::AccountId;
use super::codec::{Body, Format};
use super::devices::{check_mailboxes_exist, listed, store_device, validate_mailboxes};
use super::error::ApiError;
use super::messages::payload_tier;
use super::{ApiPath, AppState};
use crate::error_code::ErrorCode;
use crate::proto::v1 as pb;
use crate::rules::{QuietHoursInput, Rules, RulesInput};
use crate::store::{DeviceRecord, PayloadTier};

/// The rules a client sent, checked (`422 invalid_rules` naming the field).
pub fn rules_from(input: pb::NotificationRules) -> Result<Rules, ApiError> {
    RulesInput {
        quiet_hours: input.quiet_hours.map(|q| QuietHoursInput {
            start: q.start,
            end: q.end,
            days: q.days,
            time_zone: q.time_zone,
        }),
        except_vip: input.except_vip,
        vip: input.vip,
        only_direct: input.only_direct,
        mute_lists: input.mute_lists,
        mute_senders: input.mute_senders,
    }
    .validate()
    .map_err(|e| ApiError::new(ErrorCode::InvalidRules, e.to_string()))
}

/// Stored rules as answers show them.
pub fn rules_message(rules: &Rules) -> pb::NotificationRules {
    pb::NotificationRules {
        quiet_hours: rules.quiet_hours.as_ref().map(|q| pb::QuietHours {
            start: q.start.to_string(),
            end: q.end.to_string(),
            days: q.days.iter().map(|d| d.as_str().to_string()).collect(),
            time_zone: q.time_zone.clone(),
        }),
        except_vip: rules.except_vip,
        vip: rules.vip.clone(),
        only_direct: rules.only_direct,
        mute_lists: rules.mute_lists,
        mute_senders: rules.mute_senders.clone(),
    }
}

/// `PATCH /v1/devices/{device_id}`: changes what the request gives and
/// answers the device as `GET /v1/devices` lists it. Everything is checked
/// before anything is stored; the slow check (mailboxes on the IMAP
/// server) runs before the device's lock is taken, and the record is read
/// again under it, so changes of one device in this process take turns
/// and a device deleted meanwhile stays deleted.
pub async fn update(
    State(state): State<AppState>,
    AccountId(account_id): AccountId,
    ApiPath(device_id): ApiPath<String>,
    format: Format,
    Body(changes): Body<pb::DeviceChanges>,
) -> Result<Response, ApiError> {
    let rules = changes.rules.map(rules_from).transpose()?;
    let payload = changes.payload.as_deref().map(payload_tier).transpose()?;
    let mailboxes = if changes.mailboxes.is_empty() {
        None
    } else {
        Some(validate_mailboxes(Some(changes.mailboxes))?)
    };
    owned_device(&state, &device_id, &account_id).await?;
    if let Some(mailboxes) = &mailboxes {
        check_mailboxes_exist(&state, &account_id, mailboxes).await?;
    }
    let work = async move {
        let _turn = state.locks.lock(&device_lock(&device_id)).await;
        let mut device = owned_device(&state, &device_id, &account_id).await?;
        if let Some(rules) = rules {
            device.rules = rules;
        }
        if let Some(clear) = changes.clear {
            device.clear = Some(clear);
        }
        if let Some(payload) = payload {
            device.payload = payload;
            check_payload_has_keys(&device)?;
        }
        if let Some(mailboxes) = mailboxes {
            device.mailboxes = mailboxes;
        }
        let device = store_device(state.clone(), device).await?;
        listed(&state, &device).await
    };
    let answer = super::to_completion(work).await?;
    Ok(format.respond(StatusCode::OK, &answer))
}

/// The name of the lock that orders changes of one device.
pub fn device_lock(device_id: &str) -> String {
    format!("device:{device_id}")
}

/// The device, when it exists and belongs to the account (else the 404
/// that DELETE answers too).
async fn owned_device(
    state: &AppState,
    device_id: &str,
    account_id: &str,
) -> Result<DeviceRecord, ApiError> {
    state
        .store
        .device(device_id)
        .await?
        .filter(|d| d.account_id == account_id)
        .ok_or_else(|| ApiError::not_found("device"))
}

/// A native device registered without keys gets only payloads that show
/// nothing of the mail (see `device_targets::subscription`).
fn check_payload_has_keys(device: &DeviceRecord) -> Result<(), ApiError> {
    let keyless = device.subscription.p256dh.is_empty();
    if keyless && !matches!(device.payload, PayloadTier::Wake | PayloadTier::Count) {
        return Err(ApiError::new(
            ErrorCode::PayloadNeedsKeys,
            "this device was registered without keys: only the wake or count payload",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_come_back_as_they_were_stored() {
        let sent = pb::NotificationRules {
            quiet_hours: Some(pb::QuietHours {
                start: "22:00".into(),
                end: "07:00".into(),
                days: vec!["Sat".into(), "sun".into()],
                time_zone: "Europe/Berlin".into(),
            }),
            except_vip: true,
            vip: vec!["Boss@Corp.Example".into()],
            only_direct: false,
            mute_lists: true,
            mute_senders: vec![],
        };
        let shown = rules_message(&rules_from(sent).unwrap());
        let quiet = shown.quiet_hours.as_ref().unwrap();
        assert_eq!(quiet.days, ["sat", "sun"]);
        assert_eq!(shown.vip, ["boss@corp.example"]);
        assert!(shown.except_vip && shown.mute_lists && !shown.only_direct);
        assert_eq!(
            rules_from(shown.clone())
                .map(|r| rules_message(&r))
                .unwrap(),
            shown
        );
    }

    #[test]
    fn bad_rules_are_invalid_rules() {
        let bad = pb::NotificationRules {
            mute_senders: vec!["nobody".into()],
            ..Default::default()
        };
        let error = rules_from(bad).unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidRules);
        assert!(
            error.message.starts_with("rules.mute_senders[0]"),
            "{}",
            error.message
        );
    }
}
