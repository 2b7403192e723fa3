//! The SMTP reply parser, fed a server's bytes whole and cut at points the
//! fuzzer chooses: both must give the same replies and the same error, each
//! reply's code in 200..600, and no allocation far beyond the input.
//!
//! Input: one byte `k`, then `k % 8` cut points (two bytes each, little
//! endian, taken modulo the stream's length), then the stream.
#![no_main]

use lemonade::fuzzing::{smtp_reply, Reply};
use lemonade_fuzz::{bounded, Counting};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: Counting = Counting;

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

    let whole = replies(&[stream]);
    let split = replies(&pieces);
    assert_eq!(whole, split);
    for reply in &whole.0 {
        assert!((200..600).contains(&reply.code), "{reply:?}");
        // Each line is one of the stream's lines: the text never grows.
        assert!(reply.lines.iter().map(|l| l.len()).sum::<usize>() <= 3 * stream.len());
    }
});

/// The replies of the stream arriving in `pieces`, and whether it ended in
/// an error.
fn replies(pieces: &[&[u8]]) -> (Vec<Reply>, bool) {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match bounded(buf.len(), 64, "parse", || smtp_reply(&buf)) {
                Ok(Some((reply, used))) => {
                    assert!(used > 0 && used <= buf.len());
                    out.push(reply);
                    buf.drain(..used);
                }
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}
