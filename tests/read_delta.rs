//! Delta sync against a real Dovecot whose capability list hides QRESYNC
//! (and CONDSTORE): the fallbacks of `GET /v1/mailboxes/{mailbox}/changes`.
//! And mail in the charsets people write in, decoded.

use crate::support;

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

/// How a test message carries its body.
#[derive(Clone, Copy, Debug)]
enum Transfer {
    SevenBit,
    EightBit,
    Base64,
    QuotedPrintable,
}

/// RFC 2047 `Q` (`Q` true) or `B` encoded word of `bytes` in `charset`.
fn encoded_word(charset: &str, bytes: &[u8], q: bool) -> String {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    if !q {
        return format!("=?{charset}?B?{}?=", STANDARD.encode(bytes));
    }
    let text: String = bytes
        .iter()
        .map(|&b| match b {
            b' ' => "_".to_string(),
            b if b.is_ascii_alphanumeric() => char::from(b).to_string(),
            b => format!("={b:02X}"),
        })
        .collect();
    format!("=?{charset}?Q?{text}?=")
}

/// The body `bytes` (lines ending in CRLF) in `transfer`.
fn body_in(transfer: Transfer, bytes: &[u8]) -> Vec<u8> {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    match transfer {
        Transfer::SevenBit | Transfer::EightBit => bytes.to_vec(),
        Transfer::Base64 => format!("{}\r\n", STANDARD.encode(bytes)).into_bytes(),
        Transfer::QuotedPrintable => {
            let mut out = Vec::new();
            for line in bytes.split_inclusive(|&b| b == b'\n') {
                let text = line.strip_suffix(b"\r\n").unwrap_or(line);
                for &b in text {
                    if (b.is_ascii_graphic() && b != b'=') || b == b' ' {
                        out.push(b);
                    } else {
                        out.extend_from_slice(format!("={b:02X}").as_bytes());
                    }
                }
                out.extend_from_slice(b"\r\n");
            }
            out
        }
    }
}

/// Subjects (RFC 2047 encoded words, B and Q), sender names and bodies
/// (7bit, 8bit, base64 and quoted-printable) in the multi-byte charsets of
/// Chinese, Japanese and Korean mail and in common single-byte ones,
/// encoded here by an independent implementation (encoding_rs), read back
/// as UTF-8 with LF line endings, in the message and in the listing.
#[tokio::test]
async fn mail_in_every_common_charset_is_decoded() {
    use Transfer::*;
    let cases = [
        (
            "ISO-2022-JP",
            SevenBit,
            false,
            "会議の予定について",
            "山田太郎",
            "明日の会議は十時からです。",
        ),
        (
            "Shift_JIS",
            Base64,
            false,
            "お知らせ",
            "佐藤花子",
            "よろしくお願いします。",
        ),
        (
            "EUC-JP",
            EightBit,
            false,
            "請求書の送付",
            "鈴木一郎",
            "添付をご確認ください。",
        ),
        (
            "GB2312",
            Base64,
            false,
            "会议通知",
            "张伟",
            "明天上午十点开会。",
        ),
        (
            "GBK",
            QuotedPrintable,
            false,
            "本周周报",
            "王芳",
            "本周工作总结如下。",
        ),
        (
            "GB18030",
            Base64,
            true,
            "你好世界",
            "李娜",
            "这是一封测试邮件。",
        ),
        (
            "Big5",
            EightBit,
            false,
            "會議記錄",
            "陳大文",
            "請查收附件。",
        ),
        (
            "EUC-KR",
            Base64,
            false,
            "회의 안내",
            "김민수",
            "내일 회의가 있습니다.",
        ),
        // encoding_rs writes ISO-8859-1 as windows-1252, the same bytes for
        // these letters.
        (
            "ISO-8859-1",
            QuotedPrintable,
            true,
            "Grüße aus Köln",
            "Jürgen Müller",
            "Schöne Grüße!",
        ),
        (
            "ISO-8859-15",
            EightBit,
            true,
            "Œuvres complètes à 15 €",
            "Chloé Bœuf",
            "Prix : 15 €.",
        ),
        (
            "windows-1252",
            QuotedPrintable,
            true,
            "Café crème – 5 € “offert”",
            "François Dupont",
            "À bientôt…",
        ),
        (
            "KOI8-R",
            Base64,
            false,
            "Отчёт готов",
            "Пётр Иванов",
            "Всё готово.",
        ),
        (
            "ISO-8859-2",
            QuotedPrintable,
            true,
            "Zażółć gęślą jaźń",
            "Łukasz Wójcik",
            "Dzień dobry.",
        ),
        (
            "windows-1251",
            EightBit,
            false,
            "Привет из Москвы",
            "Иван Петров",
            "Добрый день.",
        ),
    ];
    let dovecot = Dovecot::start();
    dovecot.add_user("alice", "secret");
    let mut uids = Vec::new();
    for (charset, transfer, q, subject, name, body) in cases {
        let encoding = encoding_rs::Encoding::for_label(charset.as_bytes()).unwrap();
        let encode = |text: &str| {
            let (bytes, _, unmappable) = encoding.encode(text);
            assert!(!unmappable, "{charset} cannot carry {text}");
            bytes.into_owned()
        };
        let cte = match transfer {
            SevenBit => "7bit",
            EightBit => "8bit",
            Base64 => "base64",
            QuotedPrintable => "quoted-printable",
        };
        let mut raw = format!(
            "From: {} <sender@example.org>\r\nTo: alice@example.org\r\nSubject: {}\r\n\
             Date: Mon, 7 Dec 2026 10:00:00 +0000\r\nMessage-ID: <{charset}@example.org>\r\n\
             MIME-Version: 1.0\r\nContent-Type: text/plain; charset={charset}\r\n\
             Content-Transfer-Encoding: {cte}\r\n\r\n",
            encoded_word(charset, &encode(name), q),
            encoded_word(charset, &encode(subject), q),
        )
        .into_bytes();
        // Two lines, CRLF-terminated: read back with LF.
        raw.extend(body_in(transfer, &encode(&format!("{body}\r\n{name}\r\n"))));
        uids.push(dovecot.append("alice", "secret", "INBOX", &raw));
    }
    let (_dir, path) = data_dir();
    let g = Gateway::start(&path).await;
    let (_, token) = g
        .register(dovecot.host(), dovecot.imap_port(), "alice", "secret")
        .await;
    let list: pb::ListMessagesResponse = get_both(&g, "/v1/mailboxes/INBOX/messages", &token).await;
    for ((charset, transfer, _, subject, name, body), uid) in cases.iter().zip(uids) {
        let what = format!("{charset} {transfer:?}");
        let msg: pb::GetMessageResponse =
            get_both(&g, &format!("/v1/messages/INBOX/{uid}"), &token).await;
        assert_eq!(msg.subject, *subject, "{what}");
        assert_eq!(msg.from.as_ref().unwrap().name, *name, "{what}");
        assert_eq!(msg.text.trim_end(), format!("{body}\n{name}"), "{what}");
        assert_eq!(msg.date, "2026-12-07T10:00:00Z");
        let listed = list.messages.iter().find(|m| m.uid == uid).unwrap();
        assert_eq!(listed.subject, *subject, "{what}");
        assert_eq!(listed.from.as_ref().unwrap().name, *name, "{what}");
        assert!(
            listed.preview.starts_with(body),
            "{what}: {}",
            listed.preview
        );
    }
    g.stop().await;
}
