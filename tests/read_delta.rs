//! Delta sync against a real Dovecot whose capability list hides QRESYNC
//! (and CONDSTORE): the fallbacks of `GET /v1/mailboxes/{mailbox}/changes`.
//! And mail in the charsets people write in, decoded.

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

/// Subjects, sender names and bodies in the multi-byte charsets of Chinese,
/// Japanese and Korean mail and in common single-byte ones, encoded here by
/// an independent implementation (encoding_rs), read back as UTF-8.
#[tokio::test]
async fn mail_in_every_common_charset_is_decoded() {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    let cases = [
        (
            "ISO-2022-JP",
            "会議の予定について",
            "山田太郎",
            "明日の会議は十時からです。",
        ),
        (
            "Shift_JIS",
            "お知らせ",
            "佐藤花子",
            "よろしくお願いします。",
        ),
        (
            "EUC-JP",
            "請求書の送付",
            "鈴木一郎",
            "添付をご確認ください。",
        ),
        ("GB2312", "会议通知", "张伟", "明天上午十点开会。"),
        ("GBK", "本周周报", "王芳", "本周工作总结如下。"),
        ("GB18030", "你好世界", "李娜", "这是一封测试邮件。"),
        ("Big5", "會議記錄", "陳大文", "請查收附件。"),
        ("EUC-KR", "회의 안내", "김민수", "내일 회의가 있습니다."),
        (
            "ISO-8859-2",
            "Zażółć gęślą jaźń",
            "Łukasz Wójcik",
            "Dzień dobry.",
        ),
        (
            "windows-1251",
            "Привет из Москвы",
            "Иван Петров",
            "Добрый день.",
        ),
        ("KOI8-R", "Отчёт готов", "Пётр Иванов", "Всё готово."),
        (
            "windows-1252",
            "Café crème",
            "François Dupont",
            "À bientôt.",
        ),
    ];
    let dovecot = Dovecot::start();
    dovecot.add_user("alice", "secret");
    let mut uids = Vec::new();
    for (charset, subject, name, body) in cases {
        let encoding = encoding_rs::Encoding::for_label(charset.as_bytes()).unwrap();
        let encode = |text: &str| {
            let (bytes, _, unmappable) = encoding.encode(text);
            assert!(!unmappable, "{charset} cannot carry {text}");
            bytes.into_owned()
        };
        let word = |text: &str| format!("=?{charset}?B?{}?=", STANDARD.encode(encode(text)));
        let raw = format!(
            "From: {} <sender@example.org>\r\nTo: alice@example.org\r\nSubject: {}\r\n\
             Date: Mon, 7 Dec 2026 10:00:00 +0000\r\nMessage-ID: <{charset}@example.org>\r\n\
             MIME-Version: 1.0\r\nContent-Type: text/plain; charset={charset}\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{}\r\n",
            word(name),
            word(subject),
            STANDARD.encode(encode(body)),
        );
        uids.push(dovecot.append("alice", "secret", "INBOX", raw.as_bytes()));
    }
    let (_dir, path) = data_dir();
    let g = Gateway::start(&path).await;
    let (_, token) = g
        .register(dovecot.host(), dovecot.imap_port(), "alice", "secret")
        .await;
    for ((charset, subject, name, body), uid) in cases.iter().zip(uids) {
        let msg: pb::GetMessageResponse =
            get_both(&g, &format!("/v1/messages/INBOX/{uid}"), &token).await;
        assert_eq!(msg.subject, *subject, "{charset}");
        assert_eq!(msg.from.as_ref().unwrap().name, *name, "{charset}");
        assert_eq!(msg.text.trim_end(), *body, "{charset}");
    }
    g.stop().await;
}
