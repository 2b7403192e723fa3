//! Apple Push Notification service: `POST /3/device/<token>` over HTTP/2,
//! token-based authentication with an ES256 JWT made from the operator's
//! `.p8` key. The JWT is reused for 40 minutes (Apple refuses one older
//! than an hour and renewals more often than every 20 minutes) and renewed
//! at once when Apple says it expired.
//!
//! Answers: 200 delivered; 410 `Unregistered`, 400 `BadDeviceToken` or
//! `DeviceTokenNotForTopic`: the device is gone; 403 `ExpiredProviderToken`:
//! a new JWT and one retry; 413: smaller; 429 and 5xx: retry (after
//! `Retry-After`); anything else: rejected.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::native::{self, MAX_NATIVE_PAYLOAD};
use super::{ApnsEnvironment, PushOutcome, Urgency};
use crate::config::ApnsConfig;
use crate::store::PushSubscription;

/// How long one JWT is used.
const JWT_REUSE: Duration = Duration::from_secs(40 * 60);

/// Why APNs cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ApnsError {
    #[error("push.apns.key_file: {0}")]
    Key(String),
    #[error("APNs HTTP client: {0}")]
    Http(String),
}

/// Sends to APNs; one per gateway (its HTTP/2 connections are shared).
pub struct ApnsClient {
    http: reqwest::Client,
    key: EcdsaKeyPair,
    key_id: String,
    team_id: String,
    production_url: String,
    sandbox_url: String,
    jwt: Mutex<Option<(String, Instant)>>,
}

/// One APNs message, before it is sent.
pub struct ApnsMessage<'a> {
    pub environment: ApnsEnvironment,
    pub topic: &'a str,
    pub token: &'a str,
    pub ttl_secs: u32,
    pub urgency: Urgency,
    pub collapse_id: &'a str,
}

impl ApnsClient {
    pub fn new(config: &ApnsConfig, http: reqwest::Client) -> Result<Self, ApnsError> {
        let path = config
            .key_file
            .as_ref()
            .ok_or_else(|| ApnsError::Key("not set".into()))?;
        let pem = std::fs::read(path).map_err(|e| ApnsError::Key(e.to_string()))?;
        let der = rustls_pemfile::private_key(&mut pem.as_slice())
            .map_err(|e| ApnsError::Key(e.to_string()))?
            .ok_or_else(|| ApnsError::Key("no private key in the file".into()))?;
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            der.secret_der(),
            &SystemRandom::new(),
        )
        .map_err(|e| ApnsError::Key(format!("not a P-256 key: {e}")))?;
        Ok(ApnsClient {
            http,
            key,
            key_id: config.key_id.clone(),
            team_id: config.team_id.clone(),
            production_url: config.production_url.trim_end_matches('/').to_owned(),
            sandbox_url: config.sandbox_url.trim_end_matches('/').to_owned(),
            jwt: Mutex::new(None),
        })
    }

    /// The provider token: the one in use while young enough, else a new one.
    fn provider_token(&self, renew: bool) -> Option<String> {
        let mut kept = self.jwt.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((jwt, made)) = &*kept {
            if !renew && made.elapsed() < JWT_REUSE {
                return Some(jwt.clone());
            }
        }
        let iat = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
        let header = json!({"alg": "ES256", "kid": self.key_id});
        let claims = json!({"iss": self.team_id, "iat": iat});
        let rng = SystemRandom::new();
        let jwt = native::jwt(&header, &claims, |input| {
            self.key.sign(&rng, input).ok().map(|s| s.as_ref().to_vec())
        })?;
        *kept = Some((jwt.clone(), Instant::now()));
        Some(jwt)
    }

    /// Sends `plaintext` to the device; never fails, as [`super::PushClient::send`].
    pub async fn send(
        &self,
        message: &ApnsMessage<'_>,
        device: &PushSubscription,
        plaintext: &[u8],
    ) -> PushOutcome {
        let lemonade = match native::sealed_payload(device, plaintext) {
            Ok(sealed) => sealed,
            Err(outcome) => return outcome,
        };
        let body = json!({
            "aps": {"alert": {"title": native::generic_alert(plaintext)}, "mutable-content": 1},
            "lemonade": lemonade,
        })
        .to_string();
        if body.len() > MAX_NATIVE_PAYLOAD {
            return PushOutcome::TooLarge;
        }
        match self.post(message, &body, false).await {
            Answer::ExpiredToken => match self.post(message, &body, true).await {
                Answer::Done(outcome) => outcome,
                Answer::ExpiredToken => PushOutcome::Retry { after: None },
            },
            Answer::Done(outcome) => outcome,
        }
    }

    async fn post(&self, message: &ApnsMessage<'_>, body: &str, renew: bool) -> Answer {
        let Some(jwt) = self.provider_token(renew) else {
            return Answer::Done(PushOutcome::Retry { after: None });
        };
        let base = match message.environment {
            ApnsEnvironment::Production => &self.production_url,
            ApnsEnvironment::Sandbox => &self.sandbox_url,
        };
        let expiration = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() + u64::from(message.ttl_secs))
            .unwrap_or(0);
        let priority = match message.urgency {
            Urgency::High | Urgency::Normal => "10",
            Urgency::Low | Urgency::VeryLow => "5",
        };
        let request = self
            .http
            .post(format!("{base}/3/device/{}", message.token))
            .bearer_auth(jwt)
            .header("apns-topic", message.topic)
            .header("apns-push-type", "alert")
            .header("apns-priority", priority)
            .header("apns-expiration", expiration.to_string())
            .header("apns-collapse-id", message.collapse_id)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_owned());
        match request.send().await {
            Ok(mut answer) => {
                let status = answer.status().as_u16();
                let retry_after = native::retry_after(answer.headers());
                let detail = native::read_some(&mut answer, 512).await;
                let reason = serde_json::from_slice::<Value>(&detail)
                    .ok()
                    .and_then(|v| v["reason"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                answer_for(status, &reason, retry_after)
            }
            Err(e) => Answer::Done(native::send_failed(&e)),
        }
    }
}

/// What one APNs answer means.
enum Answer {
    Done(PushOutcome),
    /// The JWT is too old (or Apple thinks so): renew it and try again.
    ExpiredToken,
}

fn answer_for(status: u16, reason: &str, retry_after: Option<Duration>) -> Answer {
    let outcome = match (status, reason) {
        (200, _) => PushOutcome::Delivered,
        (403, "ExpiredProviderToken") => return Answer::ExpiredToken,
        (410, _) | (400, "BadDeviceToken" | "DeviceTokenNotForTopic") => PushOutcome::Gone,
        (413, _) => PushOutcome::TooLarge,
        (429, _) | (500..=599, _) => PushOutcome::Retry { after: retry_after },
        (status, _) => {
            tracing::warn!(status, reason, "APNs refused a push");
            PushOutcome::Rejected { status }
        }
    };
    Answer::Done(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(status: u16, reason: &str) -> Option<PushOutcome> {
        match answer_for(status, reason, None) {
            Answer::Done(outcome) => Some(outcome),
            Answer::ExpiredToken => None,
        }
    }

    #[test]
    fn answers_are_classified_as_apple_documents_them() {
        assert_eq!(outcome(200, ""), Some(PushOutcome::Delivered));
        assert_eq!(outcome(410, "Unregistered"), Some(PushOutcome::Gone));
        assert_eq!(outcome(400, "BadDeviceToken"), Some(PushOutcome::Gone));
        assert_eq!(
            outcome(400, "BadTopic"),
            Some(PushOutcome::Rejected { status: 400 })
        );
        assert_eq!(outcome(403, "ExpiredProviderToken"), None);
        assert_eq!(outcome(413, "PayloadTooLarge"), Some(PushOutcome::TooLarge));
        assert_eq!(outcome(503, ""), Some(PushOutcome::Retry { after: None }));
    }
}
