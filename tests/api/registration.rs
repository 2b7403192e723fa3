//! Registering a login that has an account already.

use serde_json::json;

use crate::support::dovecot::Dovecot;
use crate::support::gateway::{account_body, data_dir, Gateway};

/// Registering a login again without `smtp` keeps the SMTP settings it had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registering_again_without_smtp_keeps_the_smtp_settings() {
    use lemonade::store::{SledStore, Store};

    let dovecot = Dovecot::start();
    dovecot.add_user("alice", "secret");
    let (host, port) = (dovecot.host(), dovecot.imap_port());
    let (_tmp, dir) = data_dir();
    let gateway = Gateway::start(&dir).await;
    let mut with_smtp = account_body(host, port, "alice", "secret");
    with_smtp["smtp"] = json!({"host": host, "port": dovecot.submission_port(),
        "security": "plain", "username": "alice", "password": "secret"});
    let (status, first) = gateway.post("/v1/accounts", None, &with_smtp).await;
    assert_eq!(status, 201, "{first}");
    let (id, _) = gateway.register(host, port, "alice", "secret").await;
    assert_eq!(first["account_id"], id.as_str());
    gateway.stop().await;
    let store = SledStore::open(&dir.join("db")).unwrap();
    let account = store.account(&id).await.unwrap().unwrap();
    let smtp = account.smtp.expect("the SMTP settings were dropped");
    assert_eq!(
        (smtp.port, smtp.username.as_str()),
        (dovecot.submission_port(), "alice")
    );
}
