//! The SASL error challenge of a refused OAuth2 token (a base64 JSON
//! object): any text a server sends is read or refused without panicking,
//! the fields kept are short and free of control characters, and the
//! refusal text built from them stays within the server-text limit.
//!
//! Input: one byte `m`, then the rest. Even `m`: the rest is the decoded
//! challenge (JSON), base64-encoded here so the fuzzer works on the JSON;
//! odd `m`: the rest is the challenge text as sent.
#![no_main]

use lemonade::fuzzing::{
    base64_encode, refusal_text, sasl_challenge, ErrorChallenge, MAX_CHALLENGE_FIELD,
};
use lemonade::text::MAX_SERVER_TEXT;
use lemonade_fuzz::{bounded, Counting};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: Counting = Counting;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = if mode % 2 == 0 {
        base64_encode(rest)
    } else {
        String::from_utf8_lossy(rest).into_owned()
    };
    let parsed = bounded(text.len(), 64, "parse", || sasl_challenge(&text));
    assert_eq!(parsed, sasl_challenge(&text));
    let Some(challenge) = parsed else {
        return;
    };
    let ErrorChallenge {
        status,
        scope,
        schemes,
    } = &challenge;
    for value in [status, scope, schemes].into_iter().flatten() {
        assert!(value.len() <= MAX_CHALLENGE_FIELD, "{value:?}");
        assert!(!value.chars().any(char::is_control), "{value:?}");
    }
    let server = String::from_utf8_lossy(rest);
    let text = refusal_text(&server, Some(&challenge));
    assert!(text.len() <= MAX_SERVER_TEXT);
    if let Some(summary) = challenge.summary() {
        assert!(text.ends_with(&format!("({summary})")), "{text:?}");
    }
});
