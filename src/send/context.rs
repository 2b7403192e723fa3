//! What the send path needs from the rest of the gateway, and the one way
//! it reaches an account's servers (connect, then log in through
//! `crate::credentials`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::plan::BurlMemory;
use crate::config::Config;
use crate::credentials::{Credentials, LoginError};
use crate::imap::ImapClient;
use crate::lease::LeaseGate;
use crate::net::{TlsConnector, Upstream};
use crate::smtp::SmtpClient;
use crate::store::{AccountRecord, ServerRecord, Store};

/// Name the gateway gives in EHLO.
pub const HELO_NAME: &str = "lemonade.invalid";

/// What the send path needs from the rest of the gateway.
pub struct SendContext {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub credentials: Arc<Credentials>,
    pub tls: TlsConnector,
    /// One directory per job: its uploads (hard links) and spool file.
    pub spool_dir: PathBuf,
    pub burl: BurlMemory,
    /// Closed while this node may not act (its cluster lease is lost):
    /// no step starts meanwhile.
    pub gate: LeaseGate,
}

impl SendContext {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.config.upstream.connect_timeout_secs)
    }

    /// Connects and logs in to the account's IMAP server.
    pub async fn imap(&self, account: &AccountRecord) -> Result<ImapClient, LoginError> {
        let server = &account.imap;
        let mut client = ImapClient::connect(&upstream(server), &self.tls, self.timeout()).await?;
        self.credentials.login_imap(&mut client, account).await?;
        Ok(client)
    }

    /// Connects and authenticates to the account's submission server.
    pub async fn smtp(&self, account: &AccountRecord) -> Result<SmtpClient, LoginError> {
        let server = account.smtp.as_ref().ok_or(LoginError::NoSmtp)?;
        let mut client =
            SmtpClient::connect(&upstream(server), &self.tls, self.timeout(), HELO_NAME).await?;
        self.credentials.login_smtp(&mut client, account).await?;
        Ok(client)
    }

    pub fn job_dir(&self, job_id: &str) -> PathBuf {
        self.spool_dir.join(job_id)
    }
}

pub fn upstream(server: &ServerRecord) -> Upstream {
    Upstream {
        host: server.host.clone(),
        port: server.port,
        security: server.security,
    }
}
