//! Turning new-mail events into Web Push deliveries.
//!
//! The pieces here are small and mostly pure:
//! - [`payload`] renders what a device is told, by its payload tier, within a size budget;
//! - [`ece`] encrypts that plaintext to the device (RFC 8291, `aes128gcm`);
//! - [`vapid`] keeps the gateway's VAPID key and signs the per-origin JWT (RFC 8292);
//! - [`endpoint`] keeps push endpoints out of private networks;
//! - [`client`] sends one push (RFC 8030) and classifies the push service's answer;
//! - [`queue`] is the delivery actor: schedule, fair shares of the delivery
//!   slots, retries and pruning (its bookkeeping in `schedule`).

pub mod client;
pub mod ece;
pub mod endpoint;
pub mod payload;
pub mod queue;
mod schedule;
pub mod vapid;

pub use client::{
    service_of, topic_for, PushClient, PushClientConfig, PushClientError, PushOutcome, PushSender,
    Urgency,
};
pub use ece::{EceError, MAX_PLAINTEXT};
pub use endpoint::{check_endpoint, check_endpoint_resolves, EndpointError};
pub use queue::{DeliveryQueue, Notifier};
pub use schedule::DeliveryLimits;
pub use vapid::{VapidError, VapidKey, VapidSigner};
