//! The API's session pool against a real Dovecot: sessions are reused,
//! bounded per account, and logged out after `read.idle_secs` unused.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use lemonade::config::Config;
use lemonade::credentials::Credentials;
use lemonade::net::TlsConnector;
use lemonade::oauth::{Providers, TokenBroker};
use lemonade::read::SessionPool;
use lemonade::store::{AccountRecord, Sealer, Security, ServerRecord, SledStore, Store};
use support::dovecot::Dovecot;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn sessions_are_reused_bounded_and_closed_when_idle() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dovecot = Dovecot::start();
    dovecot.add_user("alice", "secret");
    let dir = tempfile::tempdir().unwrap();
    let sealer = Arc::new(Sealer::load_or_create(&dir.path().join("master.key")).unwrap());
    let store: Arc<dyn Store> = Arc::new(SledStore::open(&dir.path().join("db")).unwrap());
    let account = AccountRecord {
        id: "acct1".into(),
        email: "alice@test.local".into(),
        imap: ServerRecord {
            host: dovecot.host().to_string(),
            port: dovecot.imap_port(),
            security: Security::Plain,
            username: "alice".into(),
            password_sealed: sealer.seal("acct1", "secret"),
        },
        smtp: None,
        created_at: 0,
        oauth: None,
    };
    store.create_account(&account, &[1; 32]).await.unwrap();
    let mut config = Config::default();
    config.read.idle_secs = 1;
    config.read.sessions_per_account = 2;
    let shutdown = CancellationToken::new();
    let tokens = TokenBroker::new(Providers::new(), store.clone(), sealer.clone());
    let credentials = Arc::new(Credentials::new(sealer, Arc::new(tokens)));
    let pool = SessionPool::new(
        Arc::new(config),
        store,
        credentials,
        TlsConnector::new(None).unwrap(),
    );
    let reaper = tokio::spawn(pool.reaper(shutdown.clone()));

    // Two sessions at once; a third waits until one is handed back.
    let mut a = pool.session("acct1").await.unwrap();
    let b = pool.session("acct1").await.unwrap();
    a.noop().await.unwrap();
    let third = tokio::time::timeout(Duration::from_millis(300), pool.session("acct1")).await;
    assert!(
        third.is_err(),
        "a third session was opened beyond the limit"
    );
    drop(b);
    let c = tokio::time::timeout(Duration::from_secs(30), pool.session("acct1"))
        .await
        .expect("a returned session is handed out")
        .unwrap();
    drop(c);
    drop(a);
    assert_eq!(pool.idle_sessions(), 2);

    // Unused sessions are logged out.
    let mut closed = false;
    for _ in 0..300 {
        if pool.idle_sessions() == 0 {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(closed, "idle sessions were not closed");

    // An unknown account is an error, not a hang.
    assert!(pool.session("nobody").await.is_err());
    shutdown.cancel();
    reaper.await.unwrap();
}
