//! Where a registering device's pushes go: a browser's Web Push
//! subscription, or a native app's APNs or FCM token with (optionally) its
//! own keys. Everything is checked before anything is stored; the result
//! is the stored form (`notify::Target` reads it back).

use base64::Engine;

use super::error::ApiError;
use super::AppState;
use crate::error_code::ErrorCode;
use crate::notify::ece::validate_keys;
use crate::notify::{apns_endpoint, check_endpoint_resolves, fcm_endpoint, ApnsEnvironment};
use crate::proto::v1 as pb;
use crate::store::{PayloadTier, PushSubscription};

/// The device kind a registration asks for.
#[derive(Debug)]
pub enum TargetInput {
    WebPush(pb::WebPushSubscription),
    Apns(pb::ApnsDevice, Option<pb::WebPushKeys>),
    Fcm(pb::FcmDevice, Option<pb::WebPushKeys>),
}

impl TargetInput {
    /// Exactly one kind from a request's fields.
    pub fn from_request(request: &mut pb::CreateDeviceRequest) -> Result<Self, ApiError> {
        let keys = request.keys.take();
        let kinds = (
            request.subscription.take(),
            request.apns.take(),
            request.fcm.take(),
        );
        match kinds {
            (Some(web), None, None) if keys.is_none() => Ok(TargetInput::WebPush(web)),
            (None, Some(apns), None) => Ok(TargetInput::Apns(apns, keys)),
            (None, None, Some(fcm)) => Ok(TargetInput::Fcm(fcm, keys)),
            _ => Err(ApiError::new(
                ErrorCode::InvalidBody,
                "give exactly one of `subscription`, `apns` and `fcm` (`keys` goes with apns or fcm)",
            )),
        }
    }
}

/// Browsers send unpadded URL-safe base64; accept padding and the standard
/// alphabet too.
fn decode_key(value: &str) -> Option<Vec<u8>> {
    let trimmed = value.trim_end_matches('=');
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(trimmed)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed))
        .ok()
}

/// The decoded keys, checked to be a P-256 point and a 16-byte secret.
fn keys(keys: &pb::WebPushKeys) -> Result<(Vec<u8>, Vec<u8>), ApiError> {
    let (Some(p256dh), Some(auth)) = (decode_key(&keys.p256dh), decode_key(&keys.auth)) else {
        return Err(ApiError::new(
            ErrorCode::InvalidKeys,
            "keys.p256dh and keys.auth must be base64url",
        ));
    };
    validate_keys(&p256dh, &auth)
        .map_err(|e| ApiError::new(ErrorCode::InvalidKeys, e.to_string()))?;
    Ok((p256dh, auth))
}

/// What to store for the device: its endpoint and keys.
pub async fn subscription(
    state: &AppState,
    target: TargetInput,
    payload: PayloadTier,
) -> Result<PushSubscription, ApiError> {
    let (endpoint, device_keys) = match target {
        TargetInput::WebPush(web) => {
            let endpoint = web.endpoint.trim().to_string();
            check_endpoint_resolves(&endpoint, state.config.push.allow_private_endpoints)
                .await
                .map_err(|e| ApiError::new(ErrorCode::InvalidEndpoint, e.to_string()))?;
            let device_keys = web.keys.ok_or_else(|| {
                ApiError::new(ErrorCode::InvalidBody, "missing field `subscription.keys`")
            })?;
            return keys(&device_keys).map(|(p256dh, auth)| PushSubscription {
                endpoint,
                p256dh,
                auth,
            });
        }
        TargetInput::Apns(apns, device_keys) => (apns_target(state, &apns)?, device_keys),
        TargetInput::Fcm(fcm, device_keys) => (fcm_target(state, &fcm)?, device_keys),
    };
    let (p256dh, auth) = match &device_keys {
        Some(device_keys) => keys(device_keys)?,
        None if matches!(payload, PayloadTier::Wake | PayloadTier::Count) => (vec![], vec![]),
        None => {
            return Err(ApiError::new(
                ErrorCode::PayloadNeedsKeys,
                "without keys a native device gets only the wake or count payload",
            ))
        }
    };
    Ok(PushSubscription {
        endpoint,
        p256dh,
        auth,
    })
}

fn not_configured(kind: &str) -> ApiError {
    ApiError::new(
        ErrorCode::PushKindNotConfigured,
        format!("this gateway does not send {kind} pushes"),
    )
}

fn apns_target(state: &AppState, apns: &pb::ApnsDevice) -> Result<String, ApiError> {
    if !state.config.push.apns.enabled() {
        return Err(not_configured("APNs"));
    }
    let environment = match apns.environment.as_str() {
        "" => Some(ApnsEnvironment::Production),
        word => ApnsEnvironment::parse(word),
    };
    let bad = || {
        ApiError::new(
            ErrorCode::InvalidDeviceToken,
            "apns needs a token of 64-200 hex digits, the app's bundle id as topic, and environment production or sandbox",
        )
    };
    let environment = environment.ok_or_else(bad)?;
    apns_endpoint(environment, &apns.topic, &apns.token).ok_or_else(bad)
}

fn fcm_target(state: &AppState, fcm: &pb::FcmDevice) -> Result<String, ApiError> {
    if !state.config.push.fcm.enabled() {
        return Err(not_configured("FCM"));
    }
    fcm_endpoint(&fcm.token).ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidDeviceToken,
            "fcm.token is not a registration token (letters, digits, - _ :, at most 4096)",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_decode_in_every_base64_flavour() {
        assert_eq!(decode_key("AQID").unwrap(), vec![1, 2, 3]);
        assert_eq!(decode_key("-_8").unwrap(), vec![251, 255]);
        assert_eq!(decode_key("+/8=").unwrap(), vec![251, 255]);
        assert!(decode_key("***").is_none());
    }
}
