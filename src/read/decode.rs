//! Decoding a part's transfer encoding (base64, quoted-printable) piece by
//! piece, as its bytes arrive from the server in chunks, so a large part is
//! never held whole. Pure: bytes in, bytes out; the result does not depend
//! on where the input was cut.

#![deny(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used
)]

use mail_parser::decoders::{base64::base64_decode, quoted_printable::quoted_printable_decode};

/// Quoted-printable is decoded line by line; a "line" longer than this
/// (a server sending no line breaks) is decoded up to a safe point instead.
const MAX_QP_CARRY: usize = 64 * 1024;

/// An incremental decoder of one transfer encoding.
#[derive(Debug)]
pub struct Decoder {
    base64: bool,
    /// Input not decoded yet: base64 characters short of a quantum of four,
    /// or the quoted-printable text after the last line break.
    carry: Vec<u8>,
}

impl Decoder {
    /// A decoder for `encoding` (`base64` or `quoted-printable`), `None` for
    /// the others (their bytes are the part's bytes).
    pub fn new(encoding: &str) -> Option<Self> {
        match encoding {
            "base64" => Some(Decoder {
                base64: true,
                carry: Vec::new(),
            }),
            "quoted-printable" => Some(Decoder {
                base64: false,
                carry: Vec::new(),
            }),
            _ => None,
        }
    }

    /// Decodes what `input` completes; with `last`, everything left.
    pub fn feed(&mut self, input: &[u8], last: bool) -> Vec<u8> {
        if self.base64 {
            self.carry.extend(
                input
                    .iter()
                    .copied()
                    .filter(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')),
            );
            let len = self.carry.len();
            let ready = if last {
                len
            } else {
                len.saturating_sub(len % 4)
            };
            let block: Vec<u8> = self.carry.drain(..ready).collect();
            if block.is_empty() {
                return Vec::new();
            }
            // Undecodable text is served as it is (as a whole part was).
            base64_decode(&block).unwrap_or(block)
        } else {
            self.carry.extend_from_slice(input);
            let ready = if last {
                self.carry.len()
            } else {
                let len = self.carry.len();
                match self.carry.iter().rposition(|&b| b == b'\n') {
                    Some(lf) => lf.saturating_add(1),
                    // No line break for long: stop short of a possible `=XX`.
                    None if len > MAX_QP_CARRY => {
                        let tail = self.carry.get(len.saturating_sub(2)..).unwrap_or_default();
                        let keep = tail
                            .iter()
                            .position(|&b| b == b'=')
                            .map_or(0, |at| 2usize.saturating_sub(at));
                        len.saturating_sub(keep)
                    }
                    None => 0,
                }
            };
            let block: Vec<u8> = self.carry.drain(..ready).collect();
            if block.is_empty() {
                return Vec::new();
            }
            quoted_printable_decode(&block).unwrap_or(block)
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used
)]
mod tests {
    use super::*;

    fn whole(encoding: &str, input: &[u8]) -> Vec<u8> {
        Decoder::new(encoding).unwrap().feed(input, true)
    }

    fn pieces(encoding: &str, input: &[u8], size: usize) -> Vec<u8> {
        let mut d = Decoder::new(encoding).unwrap();
        let mut out = Vec::new();
        let chunks: Vec<&[u8]> = input.chunks(size).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            out.extend(d.feed(chunk, i + 1 == chunks.len()));
        }
        out
    }

    #[test]
    fn base64_split_anywhere_decodes_the_same() {
        let data: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
        let text = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &data);
        let wrapped: Vec<u8> = text
            .as_bytes()
            .chunks(76)
            .flat_map(|l| l.iter().copied().chain(*b"\r\n"))
            .collect();
        assert_eq!(whole("base64", &wrapped), data);
        for size in [1, 2, 3, 5, 77, 78, 1000] {
            assert_eq!(pieces("base64", &wrapped, size), data, "pieces of {size}");
        }
    }

    #[test]
    fn quoted_printable_split_anywhere_decodes_the_same() {
        let text = b"Caf=C3=A9 au lait, a long line that is soft-wrapped here =\r\nand goes on=\r\n.\r\nLast =3D line";
        let expected =
            "Café au lait, a long line that is soft-wrapped here and goes on.\r\nLast = line";
        assert_eq!(whole("quoted-printable", text), expected.as_bytes());
        for size in 1..text.len() {
            assert_eq!(
                pieces("quoted-printable", text, size),
                expected.as_bytes(),
                "pieces of {size}"
            );
        }
        // Without line breaks the carry stays bounded and nothing is lost.
        let long = "=41".repeat(MAX_QP_CARRY);
        let out = pieces("quoted-printable", long.as_bytes(), 1000);
        assert_eq!(out, vec![b'A'; MAX_QP_CARRY]);
    }
}
