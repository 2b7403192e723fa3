//! UID sets: any list of UIDs makes a compact set that expands back to it
//! sorted and without repeats; any set text expands within its limit or is
//! refused, and what expands makes the same set again.
#![no_main]

use arbitrary::Arbitrary;
use lemonade::fuzzing::{expand_uid_set, uid_set};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Input {
    Uids(Vec<u32>),
    Set { text: String, limit: u16 },
}

fuzz_target!(|input: Input| match input {
    Input::Uids(uids) => {
        let mut expected = uids.clone();
        expected.sort_unstable();
        expected.dedup();
        let set = uid_set(&uids);
        assert_eq!(expand_uid_set(&set, expected.len()), Some(expected));
    }
    Input::Set { text, limit } => {
        let limit = usize::from(limit);
        if let Some(uids) = expand_uid_set(&text, limit) {
            assert!(uids.len() <= limit, "{} UIDs for limit {limit}", uids.len());
            assert!(uids.windows(2).all(|w| w[0] < w[1]));
            assert_eq!(expand_uid_set(&uid_set(&uids), limit), Some(uids));
        }
    }
});
