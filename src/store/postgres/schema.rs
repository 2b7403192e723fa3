//! The database schema: migrations embedded in the binary, applied in
//! order at start. Several nodes starting at once take turns on an advisory
//! lock, so each migration runs once; each runs in its own transaction with
//! its version recorded, so a node that dies midway leaves nothing half
//! applied.

use super::conn::Conn;
use crate::store::{StoreError, StoreResult};

/// Every migration, oldest first: (version, SQL).
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("../../../migrations/0001_store.sql")),
    (2, include_str!("../../../migrations/0002_oauth.sql")),
    (3, include_str!("../../../migrations/0003_pushed.sql")),
];

/// The advisory lock key of migrations (any constant the gateway owns).
const MIGRATION_LOCK: i64 = 0x6c65_6d6f_6e61_6465; // "lemonade"

/// Brings the schema up to date.
pub(super) async fn migrate(conn: &mut Conn) -> StoreResult<()> {
    conn.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let applied = apply_missing(conn).await;
    let unlocked = conn
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    applied?;
    unlocked.map(drop)
}

async fn apply_missing(conn: &mut Conn) -> StoreResult<()> {
    // Checked first: CREATE TABLE IF NOT EXISTS on an existing table
    // sends a NOTICE that every node after the first would log.
    let exists = conn
        .query_opt("SELECT to_regclass('schema_migration')::text", &[])
        .await?
        .and_then(|row| row.get::<_, Option<String>>(0));
    if exists.is_none() {
        conn.batch(
            "CREATE TABLE schema_migration (\
               version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
    }
    let rows = conn
        .query("SELECT version FROM schema_migration", &[])
        .await?;
    let applied: Vec<i32> = rows.iter().map(|row| row.get(0)).collect();
    if let Some(newer) = applied.iter().find(|v| **v > latest()) {
        return Err(StoreError::Backend(format!(
            "the database schema is at version {newer}, newer than this gateway knows ({}); \
             run the newer gateway",
            latest()
        )));
    }
    for (version, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        conn.begin().await?;
        conn.batch(sql).await?;
        conn.execute(
            "INSERT INTO schema_migration (version) VALUES ($1)",
            &[version],
        )
        .await?;
        conn.commit().await?;
        tracing::info!(version, "database schema migrated");
    }
    Ok(())
}

fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |(v, _)| *v)
}
