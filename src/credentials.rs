//! The one place that logs in to an account's servers: with the sealed
//! password, or with an access token from the [`TokenBroker`] for an
//! account signed in through a provider. The watcher, the read pool and
//! the send path connect and then call [`Credentials::login_imap`] or
//! [`Credentials::login_smtp`]; none of them sees a password or a token.
//!
//! A token the server refuses is forgotten and a fresh one is tried once
//! on the same connection (a server may end a token's use before the
//! provider said it would). Secrets are unsealed for the login only.

use std::sync::Arc;

use crate::error::ErrorClass;
use crate::error_code::ErrorCode;
use crate::imap::{ImapClient, ImapError};
use crate::oauth::{OAuthError, TokenBroker};
use crate::sasl::OAuthMechanism;
use crate::smtp::{SmtpClient, SmtpError};
use crate::store::{AccountRecord, Sealer};

/// Why a login did not happen.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error(transparent)]
    Imap(#[from] ImapError),
    #[error(transparent)]
    Smtp(#[from] SmtpError),
    #[error(transparent)]
    OAuth(#[from] OAuthError),
    #[error("the stored password cannot be unsealed")]
    Unsealable,
    #[error("the account has no SMTP server")]
    NoSmtp,
}

impl LoginError {
    pub fn class(&self) -> ErrorClass {
        match self {
            LoginError::Imap(e) => e.class(),
            LoginError::Smtp(e) => e.class(),
            LoginError::OAuth(e) => e.class(),
            LoginError::Unsealable => ErrorClass::Auth,
            LoginError::NoSmtp => ErrorClass::Permanent,
        }
    }

    /// The catalogue's code for a login that failed before any server
    /// answered (the provider, the store); None for the servers' own errors.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            LoginError::Imap(_) | LoginError::Smtp(_) => None,
            LoginError::OAuth(e) => Some(oauth_code(e)),
            LoginError::Unsealable => Some(ErrorCode::InternalError),
            LoginError::NoSmtp => Some(ErrorCode::NoSmtpServer),
        }
    }

    /// The provider refused the account's grant: only signing in again helps.
    pub fn needs_sign_in(&self) -> bool {
        matches!(self, LoginError::OAuth(OAuthError::Refused))
    }
}

/// The catalogue's code for an OAuth failure.
pub fn oauth_code(e: &OAuthError) -> ErrorCode {
    match e {
        OAuthError::Refused => ErrorCode::ReauthRequired,
        OAuthError::Transient(_) => ErrorCode::ProviderUnavailable,
        OAuthError::Operator(_) | OAuthError::NoEmail | OAuthError::UnknownProvider(_) => {
            ErrorCode::ProviderRefusedClient
        }
        OAuthError::Store(_) => ErrorCode::StorageError,
        OAuthError::Unsealable => ErrorCode::InternalError,
    }
}

/// Logs in with what the store holds for an account; cheap to share.
pub struct Credentials {
    sealer: Arc<Sealer>,
    tokens: Arc<TokenBroker>,
}

impl Credentials {
    pub fn new(sealer: Arc<Sealer>, tokens: Arc<TokenBroker>) -> Self {
        Credentials { sealer, tokens }
    }

    pub fn tokens(&self) -> &Arc<TokenBroker> {
        &self.tokens
    }

    /// The mechanism the account's provider speaks; None for a password account.
    fn mechanism(&self, account: &AccountRecord) -> Result<Option<OAuthMechanism>, OAuthError> {
        let Some(grant) = &account.oauth else {
            return Ok(None);
        };
        let provider = self
            .tokens
            .providers()
            .get(&grant.provider)
            .ok_or_else(|| OAuthError::UnknownProvider(grant.provider.clone()))?;
        Ok(Some(provider.provider().mechanism))
    }

    /// Logs `client` in to the account's IMAP server.
    pub async fn login_imap(
        &self,
        client: &mut ImapClient,
        account: &AccountRecord,
    ) -> Result<(), LoginError> {
        let user = &account.imap.username;
        let Some(mechanism) = self.mechanism(account)? else {
            let password = self
                .sealer
                .open(&account.id, &account.imap.password_sealed)
                .map_err(|_| LoginError::Unsealable)?;
            return Ok(client.login(user, &password).await?);
        };
        let token = self.tokens.access_token(account).await?;
        match client
            .authenticate_oauth(Some(mechanism), user, &token)
            .await
        {
            Err(e) if e.class() == ErrorClass::Auth => {
                tracing::info!(account = %account.id, "the IMAP server refused the access token; trying a fresh one");
                self.tokens.forget(&account.id);
                let token = self.tokens.access_token(account).await?;
                Ok(client
                    .authenticate_oauth(Some(mechanism), user, &token)
                    .await?)
            }
            done => Ok(done?),
        }
    }

    /// Authenticates `client` to the account's submission server.
    pub async fn login_smtp(
        &self,
        client: &mut SmtpClient,
        account: &AccountRecord,
    ) -> Result<(), LoginError> {
        let server = account.smtp.as_ref().ok_or(LoginError::NoSmtp)?;
        let user = &server.username;
        let Some(mechanism) = self.mechanism(account)? else {
            let password = self
                .sealer
                .open(&account.id, &server.password_sealed)
                .map_err(|_| LoginError::Unsealable)?;
            return Ok(client.auth(user, &password).await?);
        };
        let token = self.tokens.access_token(account).await?;
        match client.auth_oauth(Some(mechanism), user, &token).await {
            Err(e) if e.class() == ErrorClass::Auth => {
                tracing::info!(account = %account.id, "the SMTP server refused the access token; trying a fresh one");
                self.tokens.forget(&account.id);
                let token = self.tokens.access_token(account).await?;
                Ok(client.auth_oauth(Some(mechanism), user, &token).await?)
            }
            done => Ok(done?),
        }
    }
}
