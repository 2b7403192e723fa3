//! Properties of the payload builder over arbitrary summaries and budgets.

use proptest::prelude::*;

use super::*;
use crate::mail::trim_queued;
use crate::mail::Address;
use crate::notify::ece::MAX_PLAINTEXT;
use crate::proto::v1;

/// Text as servers send it: any characters, control ones and long runs
/// included.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any::<String>(),
        2 => "[\\x00-\\x1f\\x7f\\u{80}-\\u{9f}\"\\\\a-zé🎉]{0,300}",
        1 => (any::<char>(), 0usize..6000).prop_map(|(c, n)| c.to_string().repeat(n)),
    ]
}

fn summary() -> impl Strategy<Value = MessageSummary> {
    (any::<u32>(), text(), text(), text(), text()).prop_map(
        |(uid, name, email, subject, preview)| MessageSummary {
            uid,
            from: Address { name, email },
            subject,
            preview,
            ..Default::default()
        },
    )
}

fn tier() -> impl Strategy<Value = PayloadTier> {
    prop_oneof![
        Just(PayloadTier::Preview),
        Just(PayloadTier::Headers),
        Just(PayloadTier::Count),
        Just(PayloadTier::Wake),
    ]
}

fn has_control(text: &str) -> bool {
    text.chars().any(char::is_control)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn payloads_fit_decode_and_keep_the_count(
        tier in tier(),
        mailbox in "[A-Za-z0-9/ ._&-]{1,60}",
        count in any::<u32>(),
        messages in prop::collection::vec(summary(), 0..25),
        max in prop_oneof![Just(MAX_PLAINTEXT), Just(1024usize), 0usize..MAX_PLAINTEXT],
    ) {
        let account_id = "acc-0123456789abcdef";
        let out = build(tier, &Mail::new(account_id, &mailbox, count), &messages, max);
        prop_assert!(out.len() <= max, "{} > {max}", out.len());
        if out.is_empty() {
            // Only a budget too small for the smallest shape gives no payload.
            let smallest = br#"{"v":1,"type":"wake"}"#.len();
            prop_assert!(max < smallest);
            return Ok(());
        }
        prop_assert!(!out.contains(&0), "a NUL byte in the payload");
        let payload: v1::PushPayload = serde_json::from_slice(&out)
            .map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&out))))?;
        prop_assert_eq!(payload.v, 1);
        let skeleton = mail_payload(&Mail::new(account_id, &mailbox, count), None);
        if tier != PayloadTier::Wake && to_json(&skeleton).len() <= max {
            prop_assert_eq!(payload.r#type.as_str(), "mail");
            prop_assert_eq!(payload.count, count);
            prop_assert_eq!(payload.mailbox.as_str(), mailbox.as_str());
        }
        prop_assert!(payload.messages.len() <= messages.len());
        for m in &payload.messages {
            let from = m.from.clone().unwrap_or_default();
            prop_assert!(!has_control(&m.subject) && !has_control(&m.preview));
            prop_assert!(!has_control(&from.name) && !has_control(&from.email));
            prop_assert!(m.preview.chars().count() <= PREVIEW_CHARS);
        }
    }

    #[test]
    fn trimmed_queues_are_bounded_and_keep_the_newest(
        messages in prop::collection::vec(summary(), 0..25),
    ) {
        let mut trimmed = messages.clone();
        trim_queued(&mut trimmed);
        let texts: usize = trimmed
            .iter()
            .map(|m| m.subject.len() + m.preview.len() + m.from.name.len() + m.from.email.len())
            .sum();
        // The newest alone may take three fields' worth and a preview.
        prop_assert!(texts <= 4 * MAX_PLAINTEXT, "{texts}");
        let newest = |list: &[MessageSummary]| list.iter().map(|m| m.uid).max();
        prop_assert_eq!(newest(&trimmed), newest(&messages));
        for m in &trimmed {
            prop_assert!(!has_control(&m.subject) && !has_control(&m.preview));
            prop_assert!(!has_control(&m.from.name) && !has_control(&m.from.email));
        }
    }
}
