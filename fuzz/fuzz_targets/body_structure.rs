//! The BODYSTRUCTURE interpretation shared by the read and the send path:
//! a `* n FETCH (BODYSTRUCTURE ...)` response in, parts out. Every part is
//! found again by its section, the send path sees the same part, sections
//! are well formed, and nothing allocates far beyond the input.
#![no_main]

use lemonade::fuzzing::{body_structure, send_part_size};
use lemonade_fuzz::{bounded, Counting};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: Counting = Counting;

fuzz_target!(|frame: &[u8]| {
    let Some(structure) = bounded(frame.len(), 256, "interpret", || body_structure(frame)) else {
        return;
    };
    let parts = structure.parts();
    let lists = frame.iter().filter(|&&b| b == b'(').count();
    assert!(
        parts.len() <= lists + 1,
        "{} parts from {lists} lists",
        parts.len()
    );
    for (i, part) in parts.iter().enumerate() {
        if part.id.is_empty() {
            assert!(i == 0 && part.is_multipart(), "{part:?}");
            assert_eq!(structure.part(""), None);
            continue;
        }
        assert!(
            part.id.split('.').all(|n| !n.starts_with('0')
                && !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit())),
            "{:?}",
            part.id
        );
        let first = structure.part(&part.id).expect("found by its section");
        assert!(parts[..=i].iter().any(|p| std::ptr::eq(p, first)));
        if part.is_multipart() {
            assert_eq!((part.size, part.octets), (0, None));
            assert!(!part.is_attachment());
        } else {
            assert_eq!(
                u64::from(part.size),
                part.octets
                    .filter(|&n| n <= u64::from(u32::MAX))
                    .unwrap_or(0)
            );
        }
        let expected = if first.is_multipart() {
            Some((0, true))
        } else {
            first.octets.map(|n| (n, false))
        };
        assert_eq!(send_part_size(frame, &part.id), expected, "{}", part.id);
    }
});
