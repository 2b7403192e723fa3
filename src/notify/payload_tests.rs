//! Unit tests of the payload builder.

use super::*;
use crate::mail::trim_queued;
use crate::mail::Address;
use crate::notify::ece::MAX_PLAINTEXT;
use serde_json::{json, Value};

fn message(uid: u32, subject: &str, preview: &str) -> MessageSummary {
    MessageSummary {
        uid,
        from: Address {
            name: "Ann Example".into(),
            email: "ann@example.org".into(),
        },
        subject: subject.into(),
        preview: preview.into(),
        ..Default::default()
    }
}

fn parse(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

fn two_messages() -> Vec<MessageSummary> {
    vec![
        message(7, "Older", "first text"),
        message(9, "Newer", "second text"),
    ]
}

#[test]
fn wake_tier_names_only_the_account() {
    let out = build(
        PayloadTier::Wake,
        &Mail::new("acc1", "INBOX", 2),
        &two_messages(),
        4096,
    );
    assert_eq!(out, br#"{"v":1,"type":"wake","account_id":"acc1"}"#);
}

#[test]
fn count_tier_adds_mailbox_and_count() {
    let out = build(
        PayloadTier::Count,
        &Mail::new("acc1", "INBOX", 2),
        &two_messages(),
        4096,
    );
    assert_eq!(
        out,
        br#"{"v":1,"type":"mail","account_id":"acc1","mailbox":"INBOX","count":2}"#
    );
}

#[test]
fn headers_tier_lists_sender_and_subject_newest_first() {
    let out = build(
        PayloadTier::Headers,
        &Mail::new("acc1", "INBOX", 2),
        &two_messages(),
        4096,
    );
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        r#"{"v":1,"type":"mail","account_id":"acc1","mailbox":"INBOX","count":2,"messages":[{"uid":9,"from":{"name":"Ann Example","email":"ann@example.org"},"subject":"Newer"},{"uid":7,"from":{"name":"Ann Example","email":"ann@example.org"},"subject":"Older"}]}"#
    );
}

#[test]
fn preview_tier_adds_the_preview() {
    let out = build(
        PayloadTier::Preview,
        &Mail::new("acc1", "INBOX", 2),
        &two_messages(),
        4096,
    );
    assert_eq!(
        parse(&out),
        json!({"v":1,"type":"mail","account_id":"acc1","mailbox":"INBOX","count":2,
            "messages":[
              {"uid":9,"from":{"name":"Ann Example","email":"ann@example.org"},"subject":"Newer","preview":"second text"},
              {"uid":7,"from":{"name":"Ann Example","email":"ann@example.org"},"subject":"Older","preview":"first text"}]})
    );
}

#[test]
fn previews_are_capped_at_200_characters() {
    let long = "é".repeat(500);
    let out = build(
        PayloadTier::Preview,
        &Mail::new("a", "INBOX", 1),
        &[message(1, "s", &long)],
        4096,
    );
    let preview = parse(&out)["messages"][0]["preview"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(preview.chars().count(), PREVIEW_CHARS);
}

#[test]
fn json_special_characters_are_escaped() {
    let msg = message(1, "quote \" backslash \\ slash /", "<b>&amp;</b> 'x'");
    let out = build(
        PayloadTier::Preview,
        &Mail::new("a", "INBOX", 1),
        std::slice::from_ref(&msg),
        4096,
    );
    let value = parse(&out);
    assert_eq!(value["messages"][0]["subject"], msg.subject.as_str());
    assert_eq!(value["messages"][0]["preview"], msg.preview.as_str());
}

#[test]
fn control_characters_never_reach_the_payload() {
    let mut msg = message(1, "nul\0 newline\n tab\t", "\u{1}ctl\u{7f}del\u{85}nel");
    msg.from.name = "Ann\0\r\nBcc: x".into();
    let out = build(
        PayloadTier::Preview,
        &Mail::new("a", "INBOX", 1),
        std::slice::from_ref(&msg),
        4096,
    );
    let text = std::str::from_utf8(&out).unwrap();
    assert!(!text.contains("\\u0000") && !text.contains('\0'), "{text}");
    let value = parse(&out);
    assert_eq!(value["messages"][0]["subject"], "nul  newline  tab ");
    assert_eq!(value["messages"][0]["preview"], " ctl del nel");
    assert_eq!(value["messages"][0]["from"]["name"], "Ann   Bcc: x");
}

#[test]
fn queued_summaries_keep_only_what_a_payload_can_carry() {
    let huge = "S".repeat(1 << 20);
    let mut messages: Vec<MessageSummary> = (1..=20)
        .map(|uid| {
            let mut m = message(uid, &huge, &"p\0".repeat(100_000));
            m.from.name = huge.clone();
            m
        })
        .collect();
    let untrimmed = messages.clone();
    trim_queued(&mut messages);
    // The newest only: its texts alone fill a payload.
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].uid, 20);
    assert_eq!(messages[0].subject.len(), MAX_PLAINTEXT);
    assert_eq!(messages[0].preview.chars().count(), PREVIEW_CHARS);
    assert!(!messages[0].preview.contains('\0'));
    for max in [MAX_PLAINTEXT, 1024, 300] {
        assert_eq!(
            build(
                PayloadTier::Preview,
                &Mail::new("a", "INBOX", 20),
                &messages,
                max
            ),
            build(
                PayloadTier::Preview,
                &Mail::new("a", "INBOX", 20),
                &untrimmed,
                max
            ),
        );
    }

    // Small summaries are all kept, unchanged.
    let mut small = two_messages();
    trim_queued(&mut small);
    assert_eq!(small, two_messages());
}

#[test]
fn many_messages_drop_the_oldest_first_and_keep_the_real_count() {
    let messages: Vec<MessageSummary> = (1..=100)
        .map(|uid| message(uid, &format!("Subject number {uid}"), &"p".repeat(200)))
        .collect();
    let out = build(
        PayloadTier::Preview,
        &Mail::new("acc", "INBOX", 250),
        &messages,
        MAX_PLAINTEXT,
    );
    assert!(out.len() <= MAX_PLAINTEXT);
    let value = parse(&out);
    assert_eq!(value["count"], 250);
    let listed = value["messages"].as_array().unwrap();
    assert!(!listed.is_empty() && listed.len() < 100);
    let uids: Vec<u64> = listed.iter().map(|m| m["uid"].as_u64().unwrap()).collect();
    let expected: Vec<u64> = (0..listed.len() as u64).map(|i| 100 - i).collect();
    assert_eq!(uids, expected, "newest kept, in order");
    // Whole messages were dropped, none was shortened.
    assert!(listed
        .iter()
        .all(|m| m["preview"].as_str().unwrap().len() == 200));
}

#[test]
fn one_huge_message_is_shortened_preview_first_then_subject() {
    let huge_subject = "S".repeat(10_000);
    let messages = [
        message(1, "old", "old"),
        message(2, &huge_subject, &"x".repeat(200)),
    ];
    let out = build(
        PayloadTier::Preview,
        &Mail::new("acc", "INBOX", 2),
        &messages,
        1000,
    );
    assert!(out.len() <= 1000);
    let value = parse(&out);
    let listed = value["messages"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["uid"], 2);
    assert_eq!(listed[0]["preview"], "");
    let subject = listed[0]["subject"].as_str().unwrap();
    assert!(subject.len() > 500 && subject.chars().all(|c| c == 'S'));
    assert_eq!(value["count"], 2);
    // The budget is used well: nothing more would have fitted.
    assert!(out.len() > 995, "{}", out.len());
}

#[test]
fn a_long_preview_is_shortened_before_the_subject() {
    let messages = [message(3, "Short subject", &"word ".repeat(40))];
    let full = build(
        PayloadTier::Preview,
        &Mail::new("acc", "INBOX", 1),
        &messages,
        4096,
    );
    let out = build(
        PayloadTier::Preview,
        &Mail::new("acc", "INBOX", 1),
        &messages,
        full.len() - 50,
    );
    let value = parse(&out);
    assert_eq!(value["messages"][0]["subject"], "Short subject");
    let preview = value["messages"][0]["preview"].as_str().unwrap();
    assert_eq!(preview.len(), 150);
    assert_eq!(out.len(), full.len() - 50);
}

#[test]
fn multibyte_text_is_cut_on_character_boundaries() {
    let subject = "日本語のメール🎉".repeat(300);
    let preview = "Grüße 👋🏽 ".repeat(40);
    let messages = [message(5, &subject, &preview)];
    for max in (60..=1200).step_by(7) {
        let out = build(
            PayloadTier::Preview,
            &Mail::new("acc", "INBOX", 1),
            &messages,
            max,
        );
        assert!(out.len() <= max, "{} > {max}", out.len());
        let value = parse(&out); // valid UTF-8 and JSON
        if max >= 90 {
            assert_eq!(value["count"], 1, "{max}");
        }
        if max >= 200 {
            assert_eq!(value["messages"][0]["uid"], 5, "{max}");
        }
        if let Some(entry) = value["messages"].get(0) {
            let got = entry["subject"].as_str().unwrap();
            assert!(subject.starts_with(got));
        }
    }
}

#[test]
fn never_exceeds_any_budget() {
    let messages: Vec<MessageSummary> = (1..=20)
        .map(|uid| message(uid, &"ü".repeat(uid as usize * 30), &"ö".repeat(300)))
        .collect();
    for tier in [
        PayloadTier::Preview,
        PayloadTier::Headers,
        PayloadTier::Count,
        PayloadTier::Wake,
    ] {
        for max in 0..700 {
            let out = build(tier, &Mail::new("account-1", "INBOX", 20), &messages, max);
            assert!(out.len() <= max, "{tier:?} {max}: {}", out.len());
            if !out.is_empty() {
                parse(&out);
            }
        }
    }
}

#[test]
fn tiny_budgets_fall_back_to_smaller_shapes() {
    let messages = two_messages();
    let mail = build(
        PayloadTier::Preview,
        &Mail::new("acc1", "INBOX", 2),
        &messages,
        70,
    );
    assert_eq!(
        mail,
        br#"{"v":1,"type":"mail","account_id":"acc1","mailbox":"INBOX","count":2}"#
    );
    let wake = build(
        PayloadTier::Preview,
        &Mail::new("acc1", "INBOX", 2),
        &messages,
        50,
    );
    assert_eq!(wake, br#"{"v":1,"type":"wake","account_id":"acc1"}"#);
    let bare = build(
        PayloadTier::Count,
        &Mail::new("acc1", "INBOX", 2),
        &messages,
        30,
    );
    assert_eq!(bare, br#"{"v":1,"type":"wake"}"#);
    assert!(build(
        PayloadTier::Headers,
        &Mail::new("acc1", "INBOX", 2),
        &messages,
        10
    )
    .is_empty());
}

#[test]
fn an_empty_message_list_still_renders_the_list() {
    let out = build(PayloadTier::Headers, &Mail::new("a", "INBOX", 3), &[], 4096);
    assert_eq!(
        out,
        br#"{"v":1,"type":"mail","account_id":"a","mailbox":"INBOX","count":3,"messages":[]}"#
    );
}
