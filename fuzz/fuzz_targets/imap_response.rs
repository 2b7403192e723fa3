//! The IMAP framer and response parser, fed a server's bytes whole and cut
//! into pieces at points the fuzzer chooses: both must give the same frames,
//! the same parses and the same error, and parsing a frame must not
//! allocate far beyond its length.
//!
//! Input: one byte `k`, then `k % 8` cut points (two bytes each, little
//! endian, taken modulo the stream's length), then the stream.
#![no_main]

use lemonade::fuzzing::{imap_parse, ImapFramer};
use lemonade_fuzz::{bounded, Counting};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: Counting = Counting;

/// Largest response accepted, small so that the limit is reached.
const MAX_RESPONSE: usize = 4096;
/// Bytes a parse may allocate per byte of its frame.
const PER_BYTE: usize = 128;

fuzz_target!(|data: &[u8]| {
    let Some((&k, rest)) = data.split_first() else {
        return;
    };
    let cut_bytes = usize::from(k % 8) * 2;
    if rest.len() < cut_bytes {
        return;
    }
    let (cuts, stream) = rest.split_at(cut_bytes);
    let mut cuts: Vec<usize> = cuts
        .chunks(2)
        .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])) % (stream.len() + 1))
        .collect();
    cuts.sort_unstable();
    let mut pieces = Vec::new();
    let mut at = 0;
    for cut in cuts {
        pieces.push(&stream[at..cut]);
        at = cut;
    }
    pieces.push(&stream[at..]);

    let whole = frames(&[stream]);
    let split = frames(&pieces);
    assert_eq!(
        whole,
        split,
        "cut at {:?}",
        pieces.iter().map(|p| p.len()).collect::<Vec<_>>()
    );

    for frame in &whole.0 {
        let parsed = bounded(frame.len(), PER_BYTE, "parse", || imap_parse(frame));
        assert_eq!(parsed, imap_parse(frame));
    }
});

/// The frames of the stream arriving in `pieces`, and whether it ended in
/// an error.
fn frames(pieces: &[&[u8]]) -> (Vec<Vec<u8>>, bool) {
    let mut framer = ImapFramer::new(MAX_RESPONSE);
    let mut buf = Vec::new();
    let mut out = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match framer.next_frame(&buf) {
                Ok(Some(n)) => {
                    assert!(n > 0 && n <= buf.len() && n <= MAX_RESPONSE, "frame of {n}");
                    assert_eq!(buf[n - 1], b'\n');
                    out.push(buf.drain(..n).collect());
                }
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}
