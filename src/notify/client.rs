//! Sending one Web Push message (RFC 8030) and classifying the answer.
//!
//! [`PushClient`] owns one shared HTTP client (connection pool, TLS config,
//! the private-network guard of [`super::endpoint`]) and the VAPID signer. A
//! send encrypts the plaintext to the subscription, POSTs it with the RFC 8030
//! headers, and turns the push service's answer into a [`PushOutcome`] that
//! tells the delivery queue what to do next. Redirects are never followed and
//! proxies are never used, so a request goes only where the guard allowed.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::header::{HeaderMap, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ece::{self, EceError};
use super::endpoint::{check_endpoint, BlockedAddress, PublicOnlyResolver};
use super::vapid::VapidSigner;
use crate::error::ErrorClass;
use crate::net::{trusted_roots, NetError};
use crate::store::PushSubscription;

/// The longest `Topic` header value RFC 8030 §5.4 allows.
pub const MAX_TOPIC_LEN: usize = 32;

/// Longest Retry-After we honour; anything longer is treated as this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// How much of an error response body is read (for logs and connection reuse).
const MAX_ERROR_BODY: usize = 512;

/// How soon the push service should deliver (RFC 8030 §5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Urgency {
    VeryLow,
    Low,
    #[default]
    Normal,
    High,
}

impl Urgency {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::VeryLow => "very-low",
            Urgency::Low => "low",
            Urgency::Normal => "normal",
            Urgency::High => "high",
        }
    }
}

/// What the push service made of one message, and so what to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// 2xx (normally 201): accepted; the push is done.
    Delivered,
    /// 404 or 410: the subscription no longer exists; remove the device.
    /// Also returned when the stored keys cannot be used at all.
    Gone,
    /// 413 (or a plaintext over [`ece::MAX_PLAINTEXT`]): send a smaller payload.
    TooLarge,
    /// 429, 5xx or a network error: try again later, no sooner than `after`
    /// when the push service said so (Retry-After).
    Retry { after: Option<Duration> },
    /// No answer within the request timeout (a push service that accepts
    /// connections and never answers): transient, retried with the same
    /// backoff as a 5xx, but worth telling apart, since it held a delivery
    /// slot for the whole timeout.
    TimedOut,
    /// Any other answer (other 4xx, a redirect): this push will not be accepted.
    Rejected { status: u16 },
    /// The endpoint is not allowed (private address, plain http, a name that
    /// resolves only to private addresses): nothing was sent.
    Blocked,
}

/// How the client behaves; one per gateway.
#[derive(Debug, Clone)]
pub struct PushClientConfig {
    /// Allow `http` and private-network endpoints (tests, a LAN push server).
    pub allow_private_endpoints: bool,
    /// Limit on one whole request, connect to response.
    pub request_timeout: Duration,
    /// Limit on establishing the connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// Extra CA certificates (PEM) trusted besides the web PKI roots.
    pub extra_ca_file: Option<PathBuf>,
}

impl Default for PushClientConfig {
    fn default() -> Self {
        Self {
            allow_private_endpoints: false,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            extra_ca_file: None,
        }
    }
}

/// Why a [`PushClient`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PushClientError {
    #[error("TLS configuration failed: {0}")]
    Tls(#[from] rustls::Error),
    #[error(transparent)]
    CaFile(#[from] NetError),
    #[error("HTTP client could not be built: {0}")]
    Http(#[from] reqwest::Error),
}

impl PushClientError {
    /// Building the client fails only on a broken build or configuration.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Permanent
    }
}

/// Sends pushes; cheap to clone, all clones share one connection pool.
#[derive(Debug, Clone)]
pub struct PushClient {
    http: reqwest::Client,
    signer: Arc<VapidSigner>,
    allow_private: bool,
}

impl PushClient {
    /// A client with its own rustls configuration (ring provider, webpki
    /// roots and `extra_ca_file`), so no process-wide crypto provider needs
    /// installing. It offers HTTP/2 and HTTP/1.1 by ALPN.
    pub fn new(
        config: PushClientConfig,
        signer: Arc<VapidSigner>,
    ) -> Result<Self, PushClientError> {
        let roots = trusted_roots(config.extra_ca_file.as_deref())?;
        let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

        let mut builder = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("lemonade/", env!("CARGO_PKG_VERSION")));
        if !config.allow_private_endpoints {
            builder = builder
                .https_only(true)
                .dns_resolver(Arc::new(PublicOnlyResolver));
        }
        Ok(Self {
            http: builder.build()?,
            signer,
            allow_private: config.allow_private_endpoints,
        })
    }

    /// The VAPID signer (its public key is what clients subscribe with).
    pub fn signer(&self) -> &VapidSigner {
        &self.signer
    }

    /// Encrypts `plaintext` to `subscription` and POSTs it. Never fails: every
    /// problem becomes the [`PushOutcome`] that says what to do about it.
    /// An empty or invalid `topic` sends no `Topic` header.
    pub async fn send(
        &self,
        subscription: &PushSubscription,
        plaintext: &[u8],
        ttl_secs: u32,
        urgency: Urgency,
        topic: &str,
    ) -> PushOutcome {
        let url = match check_endpoint(&subscription.endpoint, self.allow_private) {
            Ok(url) => url,
            Err(err) => {
                tracing::warn!(error = %err, "push endpoint refused");
                return PushOutcome::Blocked;
            }
        };
        let body = match ece::encrypt(&subscription.p256dh, &subscription.auth, plaintext) {
            Ok(body) => body,
            Err(EceError::PlaintextTooLarge { .. }) => return PushOutcome::TooLarge,
            Err(EceError::Crypto) => return PushOutcome::Retry { after: None },
            Err(err) => {
                tracing::warn!(error = %err, "subscription keys unusable");
                return PushOutcome::Gone;
            }
        };
        let origin = url.origin().ascii_serialization();
        let authorization = match self.signer.authorization(&origin) {
            Ok(value) => value,
            Err(err) => {
                tracing::error!(error = %err, "VAPID signing failed");
                return PushOutcome::Retry { after: None };
            }
        };

        let mut request = self
            .http
            .post(url)
            .header(CONTENT_ENCODING, "aes128gcm")
            .header(CONTENT_TYPE, "application/octet-stream")
            .header("TTL", ttl_secs)
            .header("Urgency", urgency.as_str())
            .header(AUTHORIZATION, authorization)
            .body(body);
        if is_valid_topic(topic) {
            request = request.header("Topic", topic);
        } else if !topic.is_empty() {
            tracing::debug!(topic, "invalid push topic left out");
        }

        match request.send().await {
            Ok(mut response) => {
                let status = response.status();
                let outcome = outcome_for(status, response.headers(), SystemTime::now());
                if !matches!(outcome, PushOutcome::Delivered) {
                    let mut detail = Vec::new();
                    while let Ok(Some(chunk)) = response.chunk().await {
                        detail.extend_from_slice(&chunk);
                        if detail.len() >= MAX_ERROR_BODY {
                            break;
                        }
                    }
                    detail.truncate(MAX_ERROR_BODY);
                    tracing::debug!(
                        status = status.as_u16(),
                        body = %String::from_utf8_lossy(&detail),
                        "push not delivered"
                    );
                }
                outcome
            }
            Err(err) if is_blocked(&err) => {
                tracing::warn!(error = %err, "push endpoint resolves only to private addresses");
                PushOutcome::Blocked
            }
            Err(err) if err.is_timeout() => {
                tracing::debug!(error = %err, "push service did not answer in time");
                PushOutcome::TimedOut
            }
            Err(err) => {
                tracing::debug!(error = %err, "push request failed");
                PushOutcome::Retry { after: None }
            }
        }
    }
}

/// What the delivery queue sends with: [`PushClient`], or a stand-in that
/// plays a push service's faults in tests.
pub trait PushSender: Send + Sync + 'static {
    /// Sends one push; see [`PushClient::send`].
    fn send_push<'a>(
        &'a self,
        subscription: &'a PushSubscription,
        plaintext: &'a [u8],
        ttl_secs: u32,
        urgency: Urgency,
        topic: &'a str,
    ) -> Pin<Box<dyn Future<Output = PushOutcome> + Send + 'a>>;
}

impl PushSender for PushClient {
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

/// The push service an endpoint belongs to, for per-service limits: its
/// origin (scheme, host, port), as VAPID signs it. An endpoint that does
/// not parse is its own service.
pub fn service_of(endpoint: &str) -> String {
    if let Some(native) = super::Target::of(endpoint).service() {
        return native;
    }
    match url::Url::parse(endpoint) {
        Ok(url) => url.origin().ascii_serialization(),
        Err(_) => endpoint.to_owned(),
    }
}

/// A `Topic` for one account's mailbox: the first 32 characters of the
/// URL-safe base64 SHA-256 of both, so a newer push replaces an undelivered
/// older one without telling the push service any names.
pub fn topic_for(account_id: &str, mailbox: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(account_id.as_bytes());
    hasher.update([0u8]);
    hasher.update(mailbox.as_bytes());
    let mut topic = URL_SAFE_NO_PAD.encode(hasher.finalize());
    topic.truncate(MAX_TOPIC_LEN);
    topic
}

/// At most 32 characters of the URL-safe base64 alphabet.
fn is_valid_topic(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= MAX_TOPIC_LEN
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Maps a push service's status (and Retry-After) to what to do next.
fn outcome_for(status: StatusCode, headers: &HeaderMap, now: SystemTime) -> PushOutcome {
    match status.as_u16() {
        200..=299 => PushOutcome::Delivered,
        404 | 410 => PushOutcome::Gone,
        413 => PushOutcome::TooLarge,
        429 | 500..=599 => PushOutcome::Retry {
            after: headers
                .get(RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| parse_retry_after(value, now)),
        },
        other => PushOutcome::Rejected { status: other },
    }
}

/// Retry-After as delay-seconds or an HTTP-date (RFC 9110 §10.2.3), capped
/// at a day. A date in the past means "now".
fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let delay = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits to fit a u64 is still "a long time".
        Duration::from_secs(value.parse::<u64>().unwrap_or(u64::MAX))
    } else {
        let date = httpdate::parse_http_date(value).ok()?;
        date.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

/// Whether the request failed because [`PublicOnlyResolver`] refused the name.
fn is_blocked(err: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = source {
        if current.is::<BlockedAddress>() {
            return true;
        }
        source = current.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    const NOW_SECS: u64 = 1_700_000_000;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(NOW_SECS)
    }

    fn outcome(status: u16, retry_after: Option<&str>) -> PushOutcome {
        let mut headers = HeaderMap::new();
        if let Some(value) = retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        }
        outcome_for(StatusCode::from_u16(status).unwrap(), &headers, now())
    }

    #[test]
    fn statuses_map_to_outcomes() {
        assert_eq!(outcome(201, None), PushOutcome::Delivered);
        assert_eq!(outcome(200, None), PushOutcome::Delivered);
        assert_eq!(outcome(202, None), PushOutcome::Delivered);
        assert_eq!(outcome(404, None), PushOutcome::Gone);
        assert_eq!(outcome(410, None), PushOutcome::Gone);
        assert_eq!(outcome(413, None), PushOutcome::TooLarge);
        assert_eq!(outcome(429, None), PushOutcome::Retry { after: None });
        assert_eq!(outcome(500, None), PushOutcome::Retry { after: None });
        assert_eq!(outcome(503, None), PushOutcome::Retry { after: None });
        assert_eq!(outcome(400, None), PushOutcome::Rejected { status: 400 });
        assert_eq!(outcome(401, None), PushOutcome::Rejected { status: 401 });
        assert_eq!(outcome(403, None), PushOutcome::Rejected { status: 403 });
        assert_eq!(outcome(301, None), PushOutcome::Rejected { status: 301 });
        assert_eq!(outcome(307, None), PushOutcome::Rejected { status: 307 });
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(
            outcome(429, Some("120")),
            PushOutcome::Retry { after: secs(120) }
        );
        assert_eq!(
            outcome(503, Some(" 0 ")),
            PushOutcome::Retry { after: secs(0) }
        );
        let in_90s = httpdate::fmt_http_date(now() + Duration::from_secs(90));
        assert_eq!(
            outcome(503, Some(&in_90s)),
            PushOutcome::Retry { after: secs(90) }
        );
        let past = httpdate::fmt_http_date(now() - Duration::from_secs(90));
        assert_eq!(
            outcome(503, Some(&past)),
            PushOutcome::Retry { after: secs(0) }
        );
        // Obsolete RFC 850 and asctime forms are HTTP-dates too.
        assert!(parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now()).is_some());
        assert!(parse_retry_after("Sun Nov  6 08:49:37 1994", now()).is_some());
        assert_eq!(parse_retry_after("soon", now()), None);
        assert_eq!(parse_retry_after("-5", now()), None);
        assert_eq!(parse_retry_after("", now()), None);
        assert_eq!(
            parse_retry_after("99999999999999999999999", now()),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(
            outcome(429, Some("soon")),
            PushOutcome::Retry { after: None }
        );
    }

    #[test]
    fn topics_are_short_url_safe_and_stable() {
        let topic = topic_for("account-1", "INBOX");
        assert_eq!(topic.len(), MAX_TOPIC_LEN);
        assert!(is_valid_topic(&topic));
        assert_eq!(topic, topic_for("account-1", "INBOX"));
        assert_ne!(topic, topic_for("account-1", "Archive"));
        // The separator keeps ("ab","c") and ("a","bc") apart.
        assert_ne!(topic_for("ab", "c"), topic_for("a", "bc"));
    }

    #[test]
    fn topic_validation() {
        assert!(is_valid_topic("abc-DEF_123"));
        assert!(!is_valid_topic(""));
        assert!(!is_valid_topic(&"a".repeat(33)));
        assert!(!is_valid_topic("with space"));
        assert!(!is_valid_topic("plus+slash/"));
        assert!(!is_valid_topic("padded=="));
    }

    #[test]
    fn urgency_header_values() {
        assert_eq!(Urgency::VeryLow.as_str(), "very-low");
        assert_eq!(Urgency::default().as_str(), "normal");
        assert_eq!(
            serde_json::to_string(&Urgency::VeryLow).unwrap(),
            "\"very-low\""
        );
    }
}
