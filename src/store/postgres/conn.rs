//! Connections to PostgreSQL: the pool, TLS, and one connection checked
//! out for one store call ([`Conn`]), whose every statement has a deadline.
//!
//! A database behind a partition does not refuse a query, it never answers
//! it; so each store call gets a deadline, and a connection that missed one
//! is dropped from the pool rather than handed to the next caller.
//! Connection failures, timeouts and the errors a failover produces are
//! [`StoreError::Unavailable`] (transient); everything else is
//! [`StoreError::Backend`].

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio::time::Instant;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::store::{StoreError, StoreResult};

/// How the store reaches its database.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// `postgres://user:password@host:port/database?sslmode=…`
    pub url: String,
    pub pool_size: usize,
    /// PEM roots for TLS to the database (else the web PKI roots).
    pub ca_file: Option<std::path::PathBuf>,
    /// The longest one store call may take.
    pub call_timeout: Duration,
}

impl PgOptions {
    pub fn new(url: &str) -> Self {
        PgOptions {
            url: url.to_string(),
            pool_size: 16,
            ca_file: None,
            call_timeout: Duration::from_secs(5),
        }
    }
}

/// The TLS connector for the database: rustls, used when the URL asks for
/// TLS (`sslmode=require`; with the default `prefer` it is tried first).
pub(super) fn tls(options: &PgOptions) -> StoreResult<tokio_postgres_rustls::MakeRustlsConnect> {
    let mut roots = rustls::RootCertStore::empty();
    match &options.ca_file {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| StoreError::Backend(format!("{}: {e}", path.display())))?;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.map_err(|e| StoreError::Backend(e.to_string()))?;
                roots
                    .add(cert)
                    .map_err(|e| StoreError::Backend(e.to_string()))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// A pool of connections for `options`.
pub(super) fn pool(options: &PgOptions) -> StoreResult<Pool> {
    let config: tokio_postgres::Config = options
        .url
        .parse()
        .map_err(|e| StoreError::Backend(format!("database URL: {e}")))?;
    let manager = Manager::from_config(
        config,
        tls(options)?,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(options.pool_size.max(1))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(options.call_timeout))
        .create_timeout(Some(options.call_timeout))
        .build()
        .map_err(|e| StoreError::Backend(e.to_string()))
}

/// A checked-out connection with the deadline of the store call using it.
pub(super) struct Conn {
    object: Option<Object>,
    deadline: Instant,
    /// A statement missed the deadline, or a transaction failed midway:
    /// the connection leaves the pool when dropped.
    broken: bool,
    in_transaction: bool,
}

impl Conn {
    pub(super) async fn get(pool: &Pool, timeout: Duration) -> StoreResult<Conn> {
        let deadline = Instant::now() + timeout;
        let object = match tokio::time::timeout_at(deadline, pool.get()).await {
            Ok(Ok(object)) => object,
            Ok(Err(e)) => return Err(StoreError::Unavailable(e.to_string())),
            Err(_) => return Err(unavailable("no database connection in time")),
        };
        Ok(Conn {
            object: Some(object),
            deadline,
            broken: false,
            in_transaction: false,
        })
    }

    fn client(&self) -> &Object {
        // Only taken in `drop`.
        self.object
            .as_ref()
            .expect("connection present until dropped")
    }

    pub(super) async fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<Vec<Row>> {
        let deadline = self.deadline;
        let client = self.client();
        let result = tokio::time::timeout_at(deadline, async {
            let statement = client.prepare_cached(sql).await?;
            client.query(&statement, params).await
        })
        .await;
        self.settle(result)
    }

    pub(super) async fn query_opt(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<Option<Row>> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }

    pub(super) async fn execute(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<u64> {
        let deadline = self.deadline;
        let client = self.client();
        let result = tokio::time::timeout_at(deadline, async {
            let statement = client.prepare_cached(sql).await?;
            client.execute(&statement, params).await
        })
        .await;
        self.settle(result)
    }

    /// Runs statements without parameters (BEGIN, COMMIT, migrations).
    pub(super) async fn batch(&mut self, sql: &str) -> StoreResult<()> {
        let deadline = self.deadline;
        let result = tokio::time::timeout_at(deadline, self.client().batch_execute(sql)).await;
        self.settle(result)
    }

    /// Starts a transaction; [`Conn::commit`] ends it. A connection
    /// dropped in a transaction (a failed step) leaves the pool, which
    /// rolls it back.
    pub(super) async fn begin(&mut self) -> StoreResult<()> {
        self.batch("BEGIN").await?;
        self.in_transaction = true;
        Ok(())
    }

    pub(super) async fn commit(&mut self) -> StoreResult<()> {
        self.batch("COMMIT").await?;
        self.in_transaction = false;
        Ok(())
    }

    /// Ends a transaction that must not commit. A failure leaves the
    /// connection broken, so it is not reused.
    pub(super) async fn rollback(&mut self) {
        if self.batch("ROLLBACK").await.is_ok() {
            self.in_transaction = false;
        }
    }

    fn settle<T>(
        &mut self,
        result: Result<Result<T, tokio_postgres::Error>, tokio::time::error::Elapsed>,
    ) -> StoreResult<T> {
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                self.broken = true;
                Err(pg_error(e))
            }
            Err(_) => {
                self.broken = true;
                Err(unavailable("the database did not answer in time"))
            }
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if self.broken || self.in_transaction {
            if let Some(object) = self.object.take() {
                drop(Object::take(object));
            }
        }
    }
}

fn unavailable(what: &str) -> StoreError {
    StoreError::Unavailable(what.to_string())
}

/// Classifies a database error: what a lost connection, a restart or a
/// failover produces is transient.
pub(super) fn pg_error(e: tokio_postgres::Error) -> StoreError {
    if e.is_closed() {
        return StoreError::Unavailable(e.to_string());
    }
    match e.code() {
        // Connection exceptions, shutdowns, insufficient resources,
        // serialization failures and deadlocks: try again.
        Some(code) => {
            let code = code.code();
            if ["08", "53", "57", "40"].iter().any(|c| code.starts_with(c)) {
                StoreError::Unavailable(e.to_string())
            } else {
                StoreError::Backend(e.to_string())
            }
        }
        // No SQLSTATE: an I/O error on the connection.
        None => StoreError::Unavailable(e.to_string()),
    }
}
