//! Cutting text that came from the network before it is kept, logged,
//! queued or returned: to a byte limit on a character boundary, and with
//! control characters (NUL, line breaks, escapes) made spaces. The lowest
//! floor of the crate: it knows no protocol and no storage.

#![deny(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used
)]

use std::borrow::Cow;

/// How much of a server's own words (a BYE, NO or BAD text, an error) is
/// kept: enough to read the reason, too little to fill a log or an answer.
pub const MAX_SERVER_TEXT: usize = 1024;

/// At most `max` bytes of `text`, cut on a character boundary.
pub fn truncate_bytes(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end = end.saturating_sub(1);
    }
    text.get(..end).unwrap_or_default()
}

/// At most `max` characters of `text`.
pub fn truncate_chars(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((end, _)) => text.get(..end).unwrap_or(text),
        None => text,
    }
}

/// `text` with every control character made a space: a payload or a
/// status is shown as one line, and some clients stop at NUL. Never longer
/// than `text`.
pub fn clean(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect(),
    )
}

/// Cuts `text` in place to at most `max` bytes on a character boundary,
/// with its control characters made spaces.
pub fn trim(text: &mut String, max: usize) {
    let end = truncate_bytes(text, max).len();
    text.truncate(end);
    if let Cow::Owned(cleaned) = clean(text) {
        *text = cleaned;
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cuts_on_character_boundaries() {
        assert_eq!(truncate_bytes("héllo", 2), "h");
        assert_eq!(truncate_bytes("héllo", 3), "hé");
        assert_eq!(truncate_bytes("abc", 10), "abc");
        assert_eq!(truncate_chars("héllo", 2), "hé");
        assert_eq!(truncate_chars("hé", 5), "hé");
    }

    #[test]
    fn control_characters_become_spaces() {
        assert_eq!(clean("a\0b\r\nc"), "a b  c");
        assert!(matches!(clean("plain"), Cow::Borrowed(_)));
        let mut s = "x\0".repeat(1000);
        trim(&mut s, 5);
        assert_eq!(s, "x x x");
    }
}
