//! Message composition round-tripped through mail-parser: whatever a phone
//! may send (the shapes `POST /v1/send` accepts), the composed message
//! parses back to the same subject, addresses, bodies and attachments, and
//! its size is the one the send path announces.
#![no_main]

use arbitrary::Arbitrary;
use lemonade::fuzzing::{compose_message, composed_size, valid_address, Attachment, Draft};
use libfuzzer_sys::fuzz_target;
use mail_parser::{MessageParser, MimeHeaders};

const CONTENT_TYPES: [&str; 4] = [
    "application/octet-stream",
    "image/png",
    "application/pdf",
    "text/plain",
];

const BOUNDARY: &str = "lmn-0123456789abcdef";

#[derive(Debug, Arbitrary)]
struct Input {
    to: Vec<String>,
    cc: Vec<String>,
    subject: String,
    text: String,
    html: Option<String>,
    attachments: Vec<(String, u8, Vec<u8>)>,
    in_reply_to: Option<String>,
    references: Vec<String>,
}

/// A valid address made from any text.
fn address(s: &str) -> String {
    let local: String = s
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-'))
        .take(60)
        .collect();
    let addr = format!("u{local}@example.org");
    assert!(valid_address(&addr), "{addr}");
    addr
}

fn message_id(s: &str) -> String {
    let id: String = s
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
        .take(60)
        .collect();
    format!("<m{id}@example.org>")
}

/// What `POST /v1/send` refuses: control characters and overlong fields.
fn acceptable(text: &str, max: usize) -> bool {
    text.len() <= max && !text.chars().any(char::is_control)
}

fuzz_target!(|input: Input| {
    if !acceptable(&input.subject, 900)
        || input.attachments.len() > 8
        || input.to.len() + input.cc.len() > 20
        || input
            .attachments
            .iter()
            .any(|(name, _, _)| !acceptable(name, 255))
        // The send path's boundaries hold a random 128-bit id, which a phone
        // cannot put in its text; this one is fixed.
        || [&input.text, input.html.as_deref().unwrap_or("")]
            .iter()
            .any(|t| t.contains(BOUNDARY))
    {
        return;
    }
    let to: Vec<String> = std::iter::once(String::new())
        .chain(input.to)
        .map(|a| address(&a))
        .collect();
    let cc: Vec<String> = input.cc.iter().map(|a| address(a)).collect();
    let uploads: Vec<&[u8]> = input
        .attachments
        .iter()
        .map(|(_, _, b)| b.as_slice())
        .collect();
    let draft = Draft {
        from: "alice@example.org".into(),
        to: to.clone(),
        cc: cc.clone(),
        subject: input.subject.clone(),
        text: input.text.clone(),
        html: input.html.clone(),
        attachments: input
            .attachments
            .iter()
            .enumerate()
            .map(|(i, (name, kind, bytes))| Attachment::Upload {
                file: format!("/upload-{i}"),
                raw_size: bytes.len() as u64,
                content_type: CONTENT_TYPES[usize::from(*kind) % CONTENT_TYPES.len()].into(),
                filename: name.clone(),
            })
            .collect(),
        in_reply_to: input.in_reply_to.as_deref().map(message_id),
        references: input.references.iter().map(|r| message_id(r)).collect(),
        message_id: "<id-1@example.org>".into(),
        date: "Thu, 01 Jan 1970 00:00:00 +0000".into(),
        boundary: BOUNDARY.into(),
    };
    let raw = compose_message(&draft, &uploads);
    assert_eq!(composed_size(&draft), raw.len() as u64, "announced size");
    assert!(
        !raw.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'),
        "bare LF"
    );

    let parsed = MessageParser::default().parse(&raw).expect("parses");
    // Unfolding may drop the white space around a plain subject.
    let subject = parsed.subject().unwrap_or("");
    assert!(
        subject == input.subject || subject == input.subject.trim(),
        "subject {subject:?} for {:?}",
        input.subject
    );
    assert_eq!(parsed.message_id(), Some("id-1@example.org"));
    let addresses = |a: Option<&mail_parser::Address<'_>>| -> Vec<String> {
        a.map(|a| {
            a.iter()
                .filter_map(|x| x.address().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
    };
    assert_eq!(addresses(parsed.to()), to, "to");
    assert_eq!(addresses(parsed.cc()), cc, "cc");
    assert_eq!(
        addresses(parsed.from()),
        vec!["alice@example.org".to_string()]
    );

    let lines = |s: &str| {
        s.replace("\r\n", "\n")
            .replace('\r', "\n")
            .trim_end_matches('\n')
            .to_owned()
    };
    let text = parsed.text_bodies().next().expect("a text part");
    assert_eq!(
        lines(&String::from_utf8_lossy(text.contents())),
        lines(&input.text),
        "text"
    );
    if let Some(html) = &input.html {
        let part = parsed.html_bodies().next().expect("an HTML part");
        assert_eq!(
            lines(&String::from_utf8_lossy(part.contents())),
            lines(html),
            "html"
        );
    }

    let attachments: Vec<_> = parsed.attachments().collect();
    assert_eq!(attachments.len(), input.attachments.len(), "attachments");
    for (part, (name, kind, bytes)) in attachments.iter().zip(&input.attachments) {
        // mail-parser hands text parts out as UTF-8, replacing what is not.
        let text = CONTENT_TYPES[usize::from(*kind) % CONTENT_TYPES.len()].starts_with("text/");
        if !text || std::str::from_utf8(bytes).is_ok() {
            assert_eq!(part.contents(), bytes.as_slice(), "attachment bytes");
        }
        assert_eq!(
            part.attachment_name().unwrap_or(""),
            name.as_str(),
            "file name"
        );
    }
});
