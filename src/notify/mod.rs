//! Turning new-mail events into Web Push deliveries.
//!
//! The pieces here are small and mostly pure:
//! - [`payload`] renders what a device is told, by its payload tier, within a size budget;
//! - [`ece`] encrypts that plaintext to the device (RFC 8291, `aes128gcm`);
//! - [`vapid`] keeps the gateway's VAPID key and signs the per-origin JWT (RFC 8292);
//! - [`endpoint`] keeps push endpoints out of private networks;
//! - [`client`] sends one push (RFC 8030) and classifies the push service's answer;
//! - [`queue`] is the delivery actor: schedule, fair shares of the delivery
//!   slots, retries and pruning (its bookkeeping in `schedule`);
//! - [`reads`] tells devices that mail they were told about was read elsewhere.

pub mod apns;
pub mod client;
pub mod ece;
pub mod endpoint;
pub mod fcm;
mod native;
pub mod payload;
pub mod queue;
pub mod reads;
mod schedule;
mod target;
mod transports;
pub mod vapid;

pub use client::{
    service_of, topic_for, PushClient, PushClientConfig, PushClientError, PushOutcome, PushSender,
    Urgency,
};
pub use ece::{EceError, MAX_PLAINTEXT};
pub use endpoint::{check_endpoint, check_endpoint_resolves, EndpointError};
pub use queue::{DeliveryQueue, Notifier};
pub use reads::{ReadNotice, ReadNotifier, ReadPushes};
pub use schedule::DeliveryLimits;
pub use target::{apns_endpoint, fcm_endpoint, ApnsEnvironment, Target};
pub use transports::{TransportError, Transports};
pub use vapid::{VapidError, VapidKey, VapidSigner};

/// Sends every device of the account one push about the account itself
/// (its login was refused, its sign-in must be renewed), at once and not
/// queued: the account's mail pushes stop with it. Best effort: failures
/// are logged.
pub async fn tell_devices(
    store: &dyn crate::store::Store,
    pusher: &dyn PushSender,
    ttl_secs: u32,
    account_id: &str,
    plaintext: &[u8],
) {
    let devices = match store.devices_of(account_id).await {
        Ok(devices) => devices,
        Err(e) => {
            tracing::warn!(account = %account_id, error = %e, "cannot tell the devices about their account");
            return;
        }
    };
    let topic = topic_for(account_id, "account");
    let sends = devices.iter().map(|device| {
        pusher.send_push(
            &device.subscription,
            plaintext,
            ttl_secs,
            Urgency::Normal,
            &topic,
        )
    });
    for outcome in futures_util::future::join_all(sends).await {
        if !matches!(outcome, PushOutcome::Delivered) {
            tracing::info!(account = %account_id, ?outcome, "a device was not told about its account");
        }
    }
}
