//! One delivery pipeline, a transport per kind of device: the delivery
//! queue, the watcher and the API send every push through [`Transports`],
//! which hands it to Web Push, APNs or FCM by the device's [`Target`].
//! Queueing, coalescing, retries, TTL and pruning stay the queue's, the
//! same for every kind.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::apns::{ApnsClient, ApnsError, ApnsMessage};
use super::fcm::{FcmClient, FcmError};
use super::{native, PushClient, PushOutcome, PushSender, Target, Urgency};
use crate::config::Config;
use crate::store::PushSubscription;

/// Why a native transport could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error(transparent)]
    Apns(#[from] ApnsError),
    #[error(transparent)]
    Fcm(#[from] FcmError),
    #[error("native push HTTP client: {0}")]
    Http(String),
}

/// Every configured transport.
pub struct Transports {
    web: Arc<PushClient>,
    apns: Option<ApnsClient>,
    fcm: Option<FcmClient>,
}

impl Transports {
    /// Web Push with `web`, and APNs and FCM where configured.
    pub fn new(config: &Config, web: Arc<PushClient>) -> Result<Self, TransportError> {
        let push = &config.push;
        let native_http = || {
            let timeout = Duration::from_secs(push.request_timeout_secs);
            native::http_client(push.extra_ca_file.as_deref(), timeout)
                .map_err(TransportError::Http)
        };
        let apns = match push.apns.enabled() {
            true => Some(ApnsClient::new(&push.apns, native_http()?)?),
            false => None,
        };
        let fcm = match push.fcm.enabled() {
            true => Some(FcmClient::new(&push.fcm, native_http()?)?),
            false => None,
        };
        Ok(Transports { web, apns, fcm })
    }

    async fn send(
        &self,
        device: &PushSubscription,
        plaintext: &[u8],
        ttl_secs: u32,
        urgency: Urgency,
        topic: &str,
    ) -> PushOutcome {
        match Target::of(&device.endpoint) {
            Target::WebPush(_) => {
                self.web
                    .send(device, plaintext, ttl_secs, urgency, topic)
                    .await
            }
            Target::Apns {
                environment,
                topic: app,
                token,
            } => {
                let Some(apns) = &self.apns else {
                    return not_configured("apns");
                };
                let message = ApnsMessage {
                    environment,
                    topic: app,
                    token,
                    ttl_secs,
                    urgency,
                    collapse_id: topic,
                };
                apns.send(&message, device, plaintext).await
            }
            Target::Fcm { token } => {
                let Some(fcm) = &self.fcm else {
                    return not_configured("fcm");
                };
                fcm.send(token, device, plaintext, ttl_secs, urgency, topic)
                    .await
            }
        }
    }
}

/// A device of a kind the operator turned off since it registered: its
/// pushes are dropped, the device kept for when it is turned on again.
fn not_configured(kind: &str) -> PushOutcome {
    tracing::warn!(
        kind,
        "a push for a kind of device that is not configured was dropped"
    );
    PushOutcome::Rejected { status: 0 }
}

impl PushSender for Transports {
    fn send_push<'a>(
        &'a self,
        subscription: &'a PushSubscription,
        plaintext: &'a [u8],
        ttl_secs: u32,
        urgency: Urgency,
        topic: &'a str,
    ) -> Pin<Box<dyn Future<Output = PushOutcome> + Send + 'a>> {
        Box::pin(self.send(subscription, plaintext, ttl_secs, urgency, topic))
    }
}
