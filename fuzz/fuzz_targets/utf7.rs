//! Modified UTF-7 mailbox names (RFC 3501 5.1.3): any name encodes to
//! printable ASCII and decodes back; any bytes a server sends decode or are
//! refused without panicking, and what decodes encodes to a form that
//! decodes to the same name.
#![no_main]

use lemonade::fuzzing::{utf7_decode, utf7_encode};
use lemonade_fuzz::{bounded, Counting};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: Counting = Counting;

fuzz_target!(|data: &[u8]| {
    if let Ok(name) = std::str::from_utf8(data) {
        let encoded = bounded(data.len(), 16, "encode", || utf7_encode(name));
        assert!(
            encoded.bytes().all(|b| (0x20..0x7f).contains(&b)),
            "{encoded:?}"
        );
        assert_eq!(utf7_decode(encoded.as_bytes()).as_deref(), Some(name));
    }
    if let Some(name) = bounded(data.len(), 16, "decode", || utf7_decode(data)) {
        let again = utf7_encode(&name);
        assert_eq!(utf7_decode(again.as_bytes()), Some(name));
    }
});
