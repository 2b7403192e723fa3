//! Checks of the harness's own parts (the private PostgreSQL, the cuttable
//! proxy) and of what `deploy/` ships. Only `api_races.rs` includes this
//! file, with `#[path]`, so the checks run once per test run rather than
//! once per binary, without a test binary of their own.

use crate::support::postgres;

/// Two fresh databases are distinct, empty and reachable over TCP.
#[tokio::test]
async fn fresh_databases_are_distinct_and_reachable() {
    let pg = postgres::server().await;
    let first = pg.fresh_database().await;
    let second = pg.fresh_database().await;
    assert_ne!(first, second);
    let prefix = format!("postgres://postgres@127.0.0.1:{}/", pg.port());
    assert!(first.starts_with(&prefix), "{first}");
    let first_name = pg.psql(&first, "SELECT current_database()").await;
    let second_name = pg.psql(&second, "SELECT current_database()").await;
    assert_eq!(first, format!("{prefix}{first_name}"));
    assert_eq!(second, format!("{prefix}{second_name}"));
    pg.psql(
        &first,
        "CREATE TABLE marker (n int); INSERT INTO marker VALUES (7)",
    )
    .await;
    assert_eq!(pg.psql(&first, "SELECT n FROM marker").await, "7");
    let tables = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'";
    assert_eq!(pg.psql(&second, tables).await, "0", "the second is empty");
    let max = pg.psql(&second, "SHOW max_connections").await;
    assert_eq!(max, "300");
}
