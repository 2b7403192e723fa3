//! `/v1/accounts`: registering a mail account (after a real IMAP login),
//! reading its watch state, and deleting it.

use std::net::IpAddr;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::auth::{new_id, new_token, AccountId};
use super::client_ip::ClientIp;
use super::codec::{Body, Format};
use super::error::ApiError;
use super::messages::Registration;
use super::registration_limit::Reservation;
use super::{messages, AppState};
use crate::error::ErrorClass;
use crate::error_code::ErrorCode;
use crate::imap::{ImapClient, ImapError};
use crate::net::{self, NetError, Upstream};
use crate::proto::v1 as pb;
use crate::send::outbox::HELO_NAME;
use crate::send::prepare::upload_file;
use crate::smtp::{SmtpClient, SmtpError};
use crate::store::{AccountRecord, AccountStored, Security, ServerRecord};
use crate::watch::WatchStatus;

/// An upstream server as the client sends it.
#[derive(Debug)]
pub struct ServerInput {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub username: String,
    pub password: String,
}

impl ServerInput {
    /// Where to connect for a registration check, and the limit on each step.
    fn upstream(&self, state: &AppState) -> (Upstream, Duration) {
        let upstream = Upstream {
            host: self.host.clone(),
            port: self.port,
            security: self.security,
        };
        let timeout = Duration::from_secs(state.config.upstream.connect_timeout_secs);
        (upstream, timeout)
    }
}

#[derive(Debug)]
pub struct CreateAccount {
    pub email: String,
    pub imap: ServerInput,
    pub smtp: Option<ServerInput>,
}

fn text_ok(value: &str, max: usize) -> bool {
    !value.is_empty() && value.len() <= max && !value.chars().any(|c| c.is_control())
}

fn validate_host(host: &str) -> bool {
    if host.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    text_ok(host, 253)
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn validate_server(
    which: &'static str,
    server: &ServerInput,
    allow_plaintext: bool,
) -> Result<(), ApiError> {
    if !validate_host(&server.host) {
        return Err(ApiError::new(
            ErrorCode::InvalidHost,
            format!("{which}.host is not a valid host name or address"),
        ));
    }
    if server.port == 0 {
        return Err(ApiError::new(
            ErrorCode::InvalidPort,
            format!("{which}.port must be 1-65535"),
        ));
    }
    if !text_ok(&server.username, 1024) || !text_ok(&server.password, 1024) {
        return Err(ApiError::new(ErrorCode::InvalidCredentials,
            format!("{which}.username and {which}.password must be 1-1024 characters without control characters"),
        ));
    }
    if server.security == Security::Plain && !allow_plaintext {
        return Err(ApiError::new(
            ErrorCode::PlaintextNotAllowed,
            format!("{which}.security must be tls or starttls (plaintext upstreams are disabled)"),
        ));
    }
    Ok(())
}

/// The lock held while a registration looks up and writes its login's
/// account, named like the store's login index (host case-insensitive).
fn login_lock(login: &Login) -> String {
    format!(
        "login\0{}\0{}\0{}",
        login.host.to_ascii_lowercase(),
        login.port,
        login.username
    )
}

/// The IMAP login that identifies an account: the same one registered
/// again is the same account.
pub(super) struct Login<'a> {
    pub host: &'a str,
    pub port: u16,
    pub username: &'a str,
}

impl ServerInput {
    fn login(&self) -> Login<'_> {
        Login {
            host: &self.host,
            port: self.port,
            username: &self.username,
        }
    }
}

/// The lock held while an account's devices are changed or the account is
/// deleted.
pub(super) fn account_lock(account_id: &str) -> String {
    format!("account\0{account_id}")
}

pub(super) fn validate_email(email: &str) -> bool {
    text_ok(email, 254)
        && !email.contains(char::is_whitespace)
        && matches!(email.rsplit_once('@'), Some((local, domain)) if !local.is_empty() && (domain.contains('.') || domain == "localhost"))
}

/// `POST /v1/accounts`
pub async fn create(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    format: Format,
    Body(input): Body<pb::CreateAccountRequest>,
) -> Result<Response, ApiError> {
    let input = match Registration::try_from(input)? {
        Registration::Password(input) => input,
        Registration::OAuth { email, code } => {
            return super::oauth::register_with_code(state, client, format, email, code).await
        }
    };
    if !validate_email(&input.email) {
        return Err(ApiError::new(
            ErrorCode::InvalidEmail,
            "email is not a valid address",
        ));
    }
    let allow_plaintext = state.config.upstream.allow_plaintext;
    validate_server("imap", &input.imap, allow_plaintext)?;
    if let Some(smtp) = &input.smtp {
        validate_server("smtp", smtp, allow_plaintext)?;
    }
    let reservation = reserve_registration(&state, client, &input.imap.login()).await?;
    // The cheap check first: SMTP is only resolved, IMAP is logged in to.
    if let Some(smtp) = &input.smtp {
        check_smtp_host(&state, smtp).await?;
    }
    check_imap_login(&state, client, &input.imap).await?;
    if let Some(smtp) = &input.smtp {
        check_smtp_login(&state, smtp).await?;
    }

    let (id, token) = super::to_completion(async move {
        let login = input.imap.login();
        let record = |id: &str, existing: Option<&AccountRecord>| {
            account_record(&state, &input, id, existing)
        };
        store_account(&state, &login, reservation, record).await
    })
    .await?;
    let answer = pb::CreateAccountResponse {
        account_id: id,
        token,
    };
    Ok(format.respond(StatusCode::CREATED, &answer))
}

/// A place among the client's new accounts (see
/// [`RegistrationLimit`](super::RegistrationLimit)), unless the login has an
/// account already.
pub(super) async fn reserve_registration(
    state: &AppState,
    client: IpAddr,
    login: &Login<'_>,
) -> Result<Option<Reservation>, ApiError> {
    if state
        .store
        .account_for_login(login.host, login.port, login.username)
        .await?
        .is_some()
    {
        return Ok(None);
    }
    state
        .registrations
        .reserve(client)
        .map(Some)
        .map_err(|wait| {
            ApiError::new(
                ErrorCode::TooManyRegistrations,
                "too many accounts were registered from this client; try again later",
            )
            .retry_after(wait)
        })
}

/// Stores the account (a new one, or a new token for the login's account)
/// and starts watching it; returns its id and the new token. A new account
/// keeps the client's `reservation`. `record` makes the record to store
/// under an id, given the account's stored record if there is one.
pub(super) async fn store_account(
    state: &AppState,
    login: &Login<'_>,
    reservation: Option<Reservation>,
    record: impl Fn(&str, Option<&AccountRecord>) -> AccountRecord,
) -> Result<(String, String), ApiError> {
    // Registering the same mailbox again (a reinstalled app) gives a new
    // token for the same account, keeping its devices and cursors. Two
    // registrations of one login at once (here or on another node) find the
    // same account: the store refuses the second new id for the login, and
    // the second stores its token under the first one's id.
    let _login = state.locks.lock(&login_lock(login)).await;
    let mut known = state
        .store
        .account_for_login(login.host, login.port, login.username)
        .await?;
    for _ in 0..3 {
        let (id, existing, _account) = match known.take() {
            Some(id) => {
                // Not while the account is being deleted; gone after that,
                // the registration makes a new one.
                let lock = state.locks.lock(&account_lock(&id)).await;
                let existing = state.store.account(&id).await?;
                (id, existing, Some(lock))
            }
            None => (new_id(), None, None),
        };
        let record = record(&id, existing.as_ref());
        let (token, token_hash) = new_token();
        match state.store.create_account(&record, &token_hash).await? {
            AccountStored::LoginTaken(owner) => {
                known = Some(owner);
                continue;
            }
            AccountStored::Stored => {}
        }
        state.store.flush().await?;
        if existing.is_none() {
            if let Some(reservation) = reservation {
                reservation.keep();
            }
        }
        state.watchers.account_added(&id).await;
        tracing::info!(account = %id, "account registered");
        return Ok((id, token));
    }
    Err(ApiError::new(
        ErrorCode::RegistrationConflict,
        "this login is being registered and deleted at once; try again",
    ))
}

/// The record to store for `input` under `id`, sealing the passwords for
/// that id; `existing` is the account's stored record, if any.
fn account_record(
    state: &AppState,
    input: &CreateAccount,
    id: &str,
    existing: Option<&AccountRecord>,
) -> AccountRecord {
    let seal = |server: &ServerInput| ServerRecord {
        host: server.host.to_ascii_lowercase(),
        port: server.port,
        security: server.security,
        username: server.username.clone(),
        password_sealed: state.sealer.seal(id, &server.password),
    };
    AccountRecord {
        id: id.to_string(),
        email: input.email.clone(),
        imap: seal(&input.imap),
        // Without new SMTP settings the stored ones stay: an app that
        // registers with IMAP only must not turn sending off.
        smtp: match (&input.smtp, existing) {
            (Some(smtp), _) => Some(seal(smtp)),
            (None, Some(account)) => account.smtp.clone(),
            (None, None) => None,
        },
        created_at: existing
            .map(|a| a.created_at)
            .unwrap_or_else(|| crate::unix_millis() / 1000),
        oauth: None,
    }
}

/// Logs in to the account's IMAP server, so nothing is stored for
/// credentials that do not work; a login refused too often is not tried
/// (see [`LoginGuard`](super::LoginGuard)).
async fn check_imap_login(
    state: &AppState,
    client: IpAddr,
    server: &ServerInput,
) -> Result<(), ApiError> {
    let guard = &state.login_guard;
    let (host, port, user) = (&server.host, server.port, &server.username);
    if let Err(wait) = guard.check(client, host, port, user).await {
        return Err(ApiError::new(ErrorCode::TooManyFailedLogins,
            "IMAP logins were refused too often, for this login or from this client; try again later",
        )
        .retry_after(wait));
    }
    let (upstream, timeout) = server.upstream(state);
    let attempt = async {
        let mut client = ImapClient::connect(&upstream, &state.tls, timeout).await?;
        client.login(&server.username, &server.password).await?;
        client.logout().await;
        Ok::<_, crate::imap::ImapError>(())
    };
    let result = attempt.await;
    match &result {
        Ok(()) => guard.succeeded(host, port, user).await,
        Err(e) if e.class() == ErrorClass::Auth => guard.failed(client, host, port, user).await,
        Err(_) => {}
    }
    result.map_err(|e| {
        let private = matches!(e, ImapError::Net(NetError::PrivateAddress { .. }));
        check_failed(Checked::Imap, private, e.class(), e)
    })
}

/// Refuses an SMTP server that could only be reached on a private address
/// before anything is dialled (IMAP included); other resolution failures
/// are left to [`check_smtp_login`].
async fn check_smtp_host(state: &AppState, server: &ServerInput) -> Result<(), ApiError> {
    if !state.tls.is_public_only() {
        return Ok(());
    }
    let timeout = Duration::from_secs(state.config.upstream.connect_timeout_secs);
    match tokio::time::timeout(timeout, net::resolve(&server.host, server.port, true)).await {
        Ok(Err(e @ NetError::PrivateAddress { .. })) => {
            Err(ApiError::new(ErrorCode::SmtpHostNotPublic, e.to_string()))
        }
        _ => Ok(()),
    }
}

/// Authenticates to the account's submission server, so that a wrong SMTP
/// password is found at registration rather than at the first send.
async fn check_smtp_login(state: &AppState, server: &ServerInput) -> Result<(), ApiError> {
    let (upstream, timeout) = server.upstream(state);
    let attempt = async {
        let mut client = SmtpClient::connect(&upstream, &state.tls, timeout, HELO_NAME).await?;
        client.auth(&server.username, &server.password).await?;
        client.quit().await;
        Ok::<_, SmtpError>(())
    };
    attempt.await.map_err(|e| {
        let private = matches!(e, SmtpError::Net(NetError::PrivateAddress { .. }));
        check_failed(Checked::Smtp, private, e.class(), e)
    })
}

/// The server a registration check was about.
#[derive(Debug, Clone, Copy)]
pub(super) enum Checked {
    Imap,
    Smtp,
}

/// The answer to a failed registration check: a server on a private
/// address or refused credentials are the client's to fix (422), anything
/// else is the server's trouble (502).
pub(super) fn check_failed(
    server: Checked,
    private: bool,
    class: ErrorClass,
    e: impl std::fmt::Display,
) -> ApiError {
    let (name, not_public, auth_failed, unreachable, unusable) = match server {
        Checked::Imap => (
            "IMAP",
            ErrorCode::ImapHostNotPublic,
            ErrorCode::ImapAuthFailed,
            ErrorCode::ImapUnreachable,
            ErrorCode::ImapError,
        ),
        Checked::Smtp => (
            "SMTP",
            ErrorCode::SmtpHostNotPublic,
            ErrorCode::SmtpAuthFailed,
            ErrorCode::SmtpUnreachable,
            ErrorCode::SmtpError,
        ),
    };
    if private {
        return ApiError::new(not_public, e.to_string());
    }
    match class {
        ErrorClass::Auth => ApiError::new(
            auth_failed,
            format!("the {name} server refused the username or password"),
        ),
        ErrorClass::Transient => {
            ApiError::new(unreachable, format!("cannot reach the {name} server: {e}"))
        }
        ErrorClass::Protocol | ErrorClass::Permanent => {
            ApiError::new(unusable, format!("the {name} server cannot be used: {e}"))
        }
    }
}

/// `GET /v1/accounts/me`
pub async fn me(
    State(state): State<AppState>,
    AccountId(id): AccountId,
    format: Format,
) -> Result<Response, ApiError> {
    let account = state
        .store
        .account(&id)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    let devices = state.store.devices_of(&id).await?.len();
    let watch = watch_view(&state, &id).await?;
    let answer = pb::Account {
        account_id: account.id,
        email: account.email,
        imap: Some(messages::server_view(&account.imap)),
        smtp: account.smtp.as_ref().map(messages::server_view),
        watch: Some(watch),
        devices: u32::try_from(devices).unwrap_or(u32::MAX),
        provider: account.oauth.map(|grant| grant.provider),
    };
    Ok(format.respond(StatusCode::OK, &answer))
}

/// The account's watch state, as its watcher last reported it: here, or
/// in a cluster from whichever node owns the account (named in `node`).
async fn watch_view(state: &AppState, id: &str) -> Result<pb::WatchStatus, ApiError> {
    if let Some(status) = state.states.get(id) {
        return Ok(messages::watch_status(
            &status.view(),
            state.node_id.clone(),
        ));
    }
    if let Some(cluster) = &state.cluster {
        if let Some((owner, view)) = cluster.watch_state(id).await? {
            return Ok(messages::watch_status(&view, Some(owner)));
        }
    }
    Ok(messages::watch_status(&WatchStatus::unknown().view(), None))
}

/// `DELETE /v1/accounts/me`
pub async fn delete(
    State(state): State<AppState>,
    AccountId(id): AccountId,
) -> Result<StatusCode, ApiError> {
    super::to_completion(delete_account(state, id)).await
}

/// Stops the account's watcher, then deletes its records and files.
async fn delete_account(state: AppState, id: String) -> Result<StatusCode, ApiError> {
    let _account = state.locks.lock(&account_lock(&id)).await;
    state.watchers.account_removed(&id).await;
    let record = state.store.account(&id).await?;
    let send_data = state.store.remove_send_data(&id).await?;
    state.store.delete_account(&id).await?;
    state.store.flush().await?;
    // Gone here whatever the provider says: revoking is a courtesy to the
    // person, so the gateway's grant does not outlive the account.
    if let Some(record) = &record {
        state.credentials.tokens().revoke(record).await;
    }
    // The records are gone first, so a send still under way stops at its
    // next step (and removes its directory again if it wrote to it).
    for upload in &send_data.uploads {
        remove_if_present(
            tokio::fs::remove_file(upload_file(state.config.shared_dir(), upload)).await,
        );
    }
    for job in &send_data.jobs {
        remove_if_present(tokio::fs::remove_dir_all(state.outbox.context().job_dir(job)).await);
    }
    tracing::info!(account = %id, uploads = send_data.uploads.len(), sends = send_data.jobs.len(), "account deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Logs a file that could not be deleted; one that is not there is fine.
fn remove_if_present(result: std::io::Result<()>) {
    match result {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!(error = %e, "cannot delete a file of a deleted account");
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_addresses_are_checked() {
        assert!(validate_host("imap.example.org"));
        assert!(validate_host("127.0.0.1"));
        assert!(validate_host("::1"));
        assert!(!validate_host(""));
        assert!(!validate_host("imap.example.org\r\nA1 LOGOUT"));
        assert!(!validate_host("bad_host.example"));
        assert!(!validate_host("-x.example"));
        assert!(validate_email("alice@example.org"));
        assert!(validate_email("alice@localhost"));
        assert!(!validate_email("alice"));
        assert!(!validate_email("@example.org"));
        assert!(!validate_email("a b@example.org"));
    }
}
