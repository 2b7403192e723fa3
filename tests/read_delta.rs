//! Delta sync against a real Dovecot whose capability list hides QRESYNC
//! (and CONDSTORE): the fallbacks of `GET /v1/mailboxes/{mailbox}/changes`.

mod support;

use lemonade::proto::v1 as pb;
use support::dovecot::{Dovecot, RawImap};
use support::gateway::{data_dir, Gateway};
use support::read_client::{enc, get_both};
use support::samples;

/// Delta sync on a server that offers neither CONDSTORE nor QRESYNC: the
/// state token carries the UID set, flags are reported for every known
/// message, and expunges are found by comparison.
#[tokio::test]
async fn delta_sync_without_condstore() {
    delta_sync_with_capabilities(
        "IMAP4rev1 LITERAL+ SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT UIDPLUS MOVE SPECIAL-USE ESEARCH AUTH=PLAIN",
        false,
    )
    .await;
}

/// CONDSTORE without QRESYNC: flag changes by CHANGEDSINCE, expunges by
/// comparing the UID set in the token.
#[tokio::test]
async fn delta_sync_with_condstore_only() {
    delta_sync_with_capabilities(
        "IMAP4rev1 LITERAL+ SASL-IR LOGIN-REFERRALS ID ENABLE IDLE UIDPLUS MOVE CONDSTORE AUTH=PLAIN",
        true,
    )
    .await;
}

async fn delta_sync_with_capabilities(capabilities: &str, condstore: bool) {
    let dovecot = Dovecot::builder().imap_capability(capabilities).start();
    dovecot.add_user("alice", "secret");
    let mut uids = Vec::new();
    for n in 0..4 {
        uids.push(dovecot.append("alice", "secret", "INBOX", &samples::simple(n)));
    }
    let (_dir, path) = data_dir();
    let g = Gateway::start(&path).await;
    let (_, token) = g
        .register(dovecot.host(), dovecot.imap_port(), "alice", "secret")
        .await;
    let boxes: pb::ListMailboxesResponse = get_both(&g, "/v1/mailboxes", &token).await;
    let inbox = boxes.mailboxes.iter().find(|m| m.name == "INBOX").unwrap();
    assert_eq!(inbox.total, 4);
    // Without QRESYNC the mailbox list cannot give a usable token.
    assert_eq!(inbox.state, "");
    let list: pb::ListMessagesResponse = get_both(&g, "/v1/mailboxes/INBOX/messages", &token).await;
    assert_eq!(list.messages.len(), 4);
    assert!(
        list.messages[0]
            .preview
            .starts_with("Hello Alice, this is message 3."),
        "{}",
        list.messages[0].preview
    );
    let new = dovecot.append("alice", "secret", "INBOX", &samples::simple(9));
    let mut other = RawImap::login(dovecot.imap_port(), "alice", "secret");
    other.command("SELECT INBOX");
    other.command(&format!("UID STORE {} +FLAGS (\\Seen)", uids[1]));
    other.command(&format!("UID STORE {} +FLAGS (\\Deleted)", uids[2]));
    other.command("EXPUNGE");
    other.logout();
    let delta: pb::ChangesResponse = get_both(
        &g,
        &format!("/v1/mailboxes/INBOX/changes?since={}", enc(&list.state)),
        &token,
    )
    .await;
    assert_eq!(
        delta.added.iter().map(|m| m.uid).collect::<Vec<_>>(),
        vec![new]
    );
    assert_eq!(delta.vanished, vec![uids[2]]);
    let seen = delta.flags.iter().find(|f| f.uid == uids[1]).unwrap();
    assert_eq!(seen.flags, vec!["\\Seen"]);
    if condstore {
        // Only the changed message, not every known one.
        assert_eq!(delta.flags.len(), 1, "{:?}", delta.flags);
    } else {
        assert_eq!(delta.flags.len(), 3, "{:?}", delta.flags);
    }
    let again: pb::ChangesResponse = get_both(
        &g,
        &format!("/v1/mailboxes/INBOX/changes?since={}", enc(&delta.state)),
        &token,
    )
    .await;
    assert!(again.added.is_empty() && again.vanished.is_empty());
    g.stop().await;
}
