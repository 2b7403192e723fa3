//! Firebase Cloud Messaging, HTTP v1 API: `POST
//! /v1/projects/<project>/messages:send` with a data message, authorised
//! by an access token from the service account's `token_uri` (an RS256 JWT
//! exchanged by the JWT-bearer grant), kept until five minutes before it
//! expires and renewed at once when FCM answers 401.
//!
//! Answers: 200 delivered; 404 `UNREGISTERED`, 403 `SENDER_ID_MISMATCH` and
//! 400 `INVALID_ARGUMENT` about the registration token: the device is gone;
//! 429, 500 and 503: retry (after `Retry-After`); anything else: rejected.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::native::{self, MAX_NATIVE_PAYLOAD};
use super::{PushOutcome, Urgency};
use crate::config::FcmConfig;
use crate::store::PushSubscription;

const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

/// Why FCM cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FcmError {
    #[error("push.fcm.service_account_file: {0}")]
    Key(String),
}

/// The fields of a service-account key file the gateway uses.
#[derive(Deserialize)]
struct ServiceAccount {
    project_id: String,
    private_key: String,
    #[serde(default)]
    private_key_id: String,
    client_email: String,
    token_uri: String,
}

/// Sends to FCM; one per gateway.
pub struct FcmClient {
    http: reqwest::Client,
    key: RsaKeyPair,
    account: ServiceAccount,
    send_url: String,
    token: tokio::sync::Mutex<Option<(String, Instant)>>,
}

impl FcmClient {
    pub fn new(config: &FcmConfig, http: reqwest::Client) -> Result<Self, FcmError> {
        let path = config
            .service_account_file
            .as_ref()
            .ok_or_else(|| FcmError::Key("not set".into()))?;
        let text = std::fs::read(path).map_err(|e| FcmError::Key(e.to_string()))?;
        let account: ServiceAccount = serde_json::from_slice(&text)
            .map_err(|e| FcmError::Key(format!("not a service-account key: {e}")))?;
        let der = rustls_pemfile::private_key(&mut account.private_key.as_bytes())
            .map_err(|e| FcmError::Key(e.to_string()))?
            .ok_or_else(|| FcmError::Key("no private key".into()))?;
        let key = RsaKeyPair::from_pkcs8(der.secret_der())
            .map_err(|e| FcmError::Key(format!("not an RSA key: {e}")))?;
        let send_url = format!(
            "{}/v1/projects/{}/messages:send",
            config.base_url.trim_end_matches('/'),
            account.project_id
        );
        Ok(FcmClient {
            http,
            key,
            account,
            send_url,
            token: tokio::sync::Mutex::new(None),
        })
    }

    /// An access token: the one kept while it has five minutes left, else
    /// a new one from the token endpoint.
    async fn access_token(&self, renew: bool) -> Result<String, PushOutcome> {
        let mut kept = self.token.lock().await;
        if let Some((token, until)) = &*kept {
            if !renew && Instant::now() < *until {
                return Ok(token.clone());
            }
        }
        let (token, lifetime) = self.fetch_token().await?;
        let until = Instant::now() + lifetime.saturating_sub(Duration::from_secs(300));
        *kept = Some((token.clone(), until));
        Ok(token)
    }

    async fn fetch_token(&self) -> Result<(String, Duration), PushOutcome> {
        let retry = PushOutcome::Retry { after: None };
        let iat = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| retry.clone())?
            .as_secs();
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": self.account.private_key_id});
        let claims = json!({
            "iss": self.account.client_email, "scope": SCOPE,
            "aud": self.account.token_uri, "iat": iat, "exp": iat + 3600,
        });
        let assertion = native::jwt(&header, &claims, |input| {
            let mut signature = vec![0; self.key.public().modulus_len()];
            let rng = SystemRandom::new();
            let signed = self
                .key
                .sign(&RSA_PKCS1_SHA256, &rng, input, &mut signature);
            signed.ok().map(|()| signature)
        })
        .ok_or_else(|| retry.clone())?;
        let form = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", &assertion),
        ];
        let request = self.http.post(&self.account.token_uri).form(&form);
        let mut answer = request.send().await.map_err(|e| native::send_failed(&e))?;
        let status = answer.status();
        let body = native::read_some(&mut answer, 16 * 1024).await;
        let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        match (status.is_success(), parsed["access_token"].as_str()) {
            (true, Some(token)) => {
                let secs = parsed["expires_in"].as_u64().unwrap_or(3600);
                Ok((token.to_owned(), Duration::from_secs(secs)))
            }
            _ => {
                tracing::warn!(status = status.as_u16(), error = %parsed["error"], "FCM's token endpoint gave no access token");
                Err(retry)
            }
        }
    }

    /// Sends `plaintext` to the device; never fails, as [`super::PushClient::send`].
    pub async fn send(
        &self,
        token: &str,
        device: &PushSubscription,
        plaintext: &[u8],
        ttl_secs: u32,
        urgency: Urgency,
        collapse_key: &str,
    ) -> PushOutcome {
        let data = match native::sealed_payload(device, plaintext) {
            Ok(sealed) => data_of(sealed),
            Err(outcome) => return outcome,
        };
        if data.to_string().len() > MAX_NATIVE_PAYLOAD {
            return PushOutcome::TooLarge;
        }
        let priority = match urgency {
            Urgency::High | Urgency::Normal => "high",
            Urgency::Low | Urgency::VeryLow => "normal",
        };
        let body = json!({"message": {
            "token": token, "data": data,
            "android": {"priority": priority, "ttl": format!("{ttl_secs}s"), "collapse_key": collapse_key},
        }});
        match self.post(&body, false).await {
            Answer::Unauthenticated => match self.post(&body, true).await {
                Answer::Done(outcome) => outcome,
                Answer::Unauthenticated => PushOutcome::Retry { after: None },
            },
            Answer::Done(outcome) => outcome,
        }
    }

    async fn post(&self, body: &Value, renew: bool) -> Answer {
        let token = match self.access_token(renew).await {
            Ok(token) => token,
            Err(outcome) => return Answer::Done(outcome),
        };
        let request = self
            .http
            .post(&self.send_url)
            .bearer_auth(token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        match request.send().await {
            Ok(mut answer) => {
                let status = answer.status().as_u16();
                let retry_after = native::retry_after(answer.headers());
                let detail = native::read_some(&mut answer, 4096).await;
                let error = serde_json::from_slice::<Value>(&detail).unwrap_or(Value::Null);
                answer_for(status, &error["error"], retry_after)
            }
            Err(e) => Answer::Done(native::send_failed(&e)),
        }
    }
}

/// FCM's `data` holds strings only.
fn data_of(sealed: Value) -> Value {
    match sealed {
        Value::Object(fields) => fields
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => (k, Value::String(s)),
                other => (k, Value::String(other.to_string())),
            })
            .collect(),
        other => other,
    }
}

enum Answer {
    Done(PushOutcome),
    Unauthenticated,
}

fn answer_for(status: u16, error: &Value, retry_after: Option<Duration>) -> Answer {
    let code = error["details"]
        .as_array()
        .and_then(|d| d.iter().find_map(|d| d["errorCode"].as_str()))
        .or_else(|| error["status"].as_str())
        .unwrap_or_default();
    let about_token = error["message"]
        .as_str()
        .is_some_and(|m| m.to_ascii_lowercase().contains("registration token"));
    let outcome = match (status, code) {
        (200, _) => PushOutcome::Delivered,
        (401, _) => return Answer::Unauthenticated,
        (404, _) | (403, "SENDER_ID_MISMATCH") | (400, "UNREGISTERED") => PushOutcome::Gone,
        (400, "INVALID_ARGUMENT") if about_token => PushOutcome::Gone,
        (429, _) | (500 | 503, _) => PushOutcome::Retry { after: retry_after },
        (status, code) => {
            tracing::warn!(status, code, "FCM refused a push");
            PushOutcome::Rejected { status }
        }
    };
    Answer::Done(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(status: u16, error: Value) -> Option<PushOutcome> {
        match answer_for(status, &error, None) {
            Answer::Done(outcome) => Some(outcome),
            Answer::Unauthenticated => None,
        }
    }

    #[test]
    fn answers_are_classified_as_google_documents_them() {
        let detail = |code: &str, message: &str| json!({"status": "X", "message": message, "details": [{"errorCode": code}]});
        assert_eq!(outcome(200, Value::Null), Some(PushOutcome::Delivered));
        assert_eq!(
            outcome(404, detail("UNREGISTERED", "")),
            Some(PushOutcome::Gone)
        );
        let bad_token = detail("INVALID_ARGUMENT", "The registration token is not valid");
        assert_eq!(outcome(400, bad_token), Some(PushOutcome::Gone));
        let too_big = detail("INVALID_ARGUMENT", "Message is too big");
        assert_eq!(
            outcome(400, too_big),
            Some(PushOutcome::Rejected { status: 400 })
        );
        assert_eq!(outcome(401, Value::Null), None);
        assert_eq!(
            outcome(503, detail("UNAVAILABLE", "")),
            Some(PushOutcome::Retry { after: None })
        );
        let data = data_of(json!({"payload": {"v": 1}}));
        assert_eq!(data["payload"], "{\"v\":1}");
    }
}
