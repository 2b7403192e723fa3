//! Signing in through OAuth2 providers, the gateway being a confidential
//! client: the providers' endpoints (`client.rs`, on the `oauth2` crate),
//! the access tokens of signed-in accounts with their refresh
//! (`tokens.rs`), and the one-time state and grants of a sign-in through
//! the browser (`signin.rs`).
//!
//! Above `config`, `store` and `sasl`; the API, the watcher, the read pool
//! and the send path get tokens only through [`TokenBroker`], by way of
//! `crate::credentials`.

mod client;
mod signin;
mod tokens;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use client::{email_claim, Authorization, ProviderClient, Tokens, MAX_ANSWER};
pub use signin::{Grant, PendingSignIn, SignIns, TicketError};
pub use tokens::TokenBroker;

use crate::config::{Config, Provider};
use crate::error::ErrorClass;
use crate::store::StoreError;

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// The provider refused the grant for good (`invalid_grant`): revoked,
    /// expired, password changed, a code used twice. The person must sign
    /// in again.
    #[error("the provider refused the grant (invalid_grant): sign in again")]
    Refused,
    /// The provider or the way to it failed; try again later.
    #[error("the provider cannot be reached now: {0}")]
    Transient(String),
    /// The gateway's own client settings are wrong (`invalid_client`, a bad URL).
    #[error("the gateway's OAuth client settings are refused: {0}")]
    Operator(String),
    /// Neither the ID token nor the userinfo endpoint named a mail address.
    #[error("the provider did not say which mail address signed in")]
    NoEmail,
    /// The account names a provider the configuration no longer has.
    #[error("the provider `{0}` is not configured")]
    UnknownProvider(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the stored refresh token cannot be unsealed")]
    Unsealable,
}

impl OAuthError {
    pub fn class(&self) -> ErrorClass {
        match self {
            OAuthError::Refused => ErrorClass::Auth,
            OAuthError::Transient(_) => ErrorClass::Transient,
            OAuthError::Store(e) => e.class(),
            OAuthError::Operator(_)
            | OAuthError::NoEmail
            | OAuthError::UnknownProvider(_)
            | OAuthError::Unsealable => ErrorClass::Permanent,
        }
    }
}

/// The configured providers' clients, by name.
pub type Providers = BTreeMap<String, Arc<ProviderClient>>;

/// The clients of every configured provider, sharing one HTTP client
/// (webpki roots plus `upstream.extra_ca_file`, no redirects).
pub fn providers(config: &Config) -> Result<Providers, OAuthError> {
    let resolved = config
        .oauth
        .providers()
        .map_err(|e| OAuthError::Operator(e.to_string()))?;
    if resolved.is_empty() {
        return Ok(Providers::new());
    }
    let http = http_client(config)?;
    resolved
        .into_values()
        .map(|provider: Provider| {
            let name = provider.name.clone();
            Ok((name, Arc::new(ProviderClient::new(provider, http.clone())?)))
        })
        .collect()
}

fn http_client(config: &Config) -> Result<reqwest::Client, OAuthError> {
    let operator = |e: String| OAuthError::Operator(e);
    let roots = crate::net::trusted_roots(config.upstream.extra_ca_file.as_deref())
        .map_err(|e| operator(e.to_string()))?;
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| operator(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let timeout = std::time::Duration::from_secs(config.upstream.connect_timeout_secs);
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        .user_agent(concat!("lemonade/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| operator(e.to_string()))
}
