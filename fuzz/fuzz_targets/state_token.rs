//! Read-API state tokens as clients send them back: any text decodes or is
//! refused without panicking; a decoded token has its UIDs below its UIDNEXT
//! and encodes to a token that decodes to the same state.
#![no_main]

use lemonade::fuzzing::StateToken;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(token) = StateToken::decode(text) else {
        return;
    };
    assert!(token.uidnext > 0);
    if let Some(uids) = &token.uids {
        assert!(uids.max().is_none_or(|u| u < token.uidnext));
        assert!(uids.count() <= 1_000_000);
        assert!(uids.ranges() <= text.len());
    }
    assert_eq!(StateToken::decode(&token.encode()), Some(token));
});
