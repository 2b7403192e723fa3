//! HTTP `Range: bytes=…` for part downloads (RFC 9110 14.2): one range, in
//! the forms `a-b`, `a-` and `-n`. Pure.

#![deny(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used
)]

/// An inclusive byte range within a body of known size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

impl ByteRange {
    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start).saturating_add(1)
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

/// What a Range header asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// `a-b` or `a-` (end `None`).
    From { start: u64, end: Option<u64> },
    /// `-n`: the last n bytes.
    Suffix(u64),
}

/// A Range header that cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unreadable Range header")]
pub struct BadRange;

/// Parses a Range header. `Ok(None)`: not a single bytes range we serve
/// (other units, several ranges): send the whole body. `Err`: malformed.
pub fn parse(header: &str) -> Result<Option<RangeRequest>, BadRange> {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.trim().split_once('-').ok_or(BadRange)?;
    let num = |s: &str| s.trim().parse::<u64>().map_err(|_| BadRange);
    match (a.trim().is_empty(), b.trim().is_empty()) {
        (true, true) => Err(BadRange),
        (true, false) => Ok(Some(RangeRequest::Suffix(num(b)?))),
        (false, true) => Ok(Some(RangeRequest::From {
            start: num(a)?,
            end: None,
        })),
        (false, false) => {
            let (start, end) = (num(a)?, num(b)?);
            if end < start {
                return Err(BadRange);
            }
            Ok(Some(RangeRequest::From {
                start,
                end: Some(end),
            }))
        }
    }
}

impl RangeRequest {
    /// The range within a body of `total` bytes; `None` when unsatisfiable.
    pub fn resolve(self, total: u64) -> Option<ByteRange> {
        if total == 0 {
            return None;
        }
        match self {
            RangeRequest::From { start, end } => {
                if start >= total {
                    return None;
                }
                let last = total.saturating_sub(1);
                let end = end.unwrap_or(last).min(last);
                Some(ByteRange { start, end })
            }
            RangeRequest::Suffix(0) => None,
            RangeRequest::Suffix(n) => Some(ByteRange {
                start: total.saturating_sub(n),
                end: total.saturating_sub(1),
            }),
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

    #[test]
    fn ranges() {
        let r = |h| parse(h).unwrap().unwrap();
        assert_eq!(
            r("bytes=0-9").resolve(100),
            Some(ByteRange { start: 0, end: 9 })
        );
        assert_eq!(
            r("bytes=90-").resolve(100),
            Some(ByteRange { start: 90, end: 99 })
        );
        assert_eq!(
            r("bytes=-10").resolve(100),
            Some(ByteRange { start: 90, end: 99 })
        );
        assert_eq!(
            r("bytes=-1000").resolve(100),
            Some(ByteRange { start: 0, end: 99 })
        );
        assert_eq!(
            r("bytes=50-1000").resolve(100),
            Some(ByteRange { start: 50, end: 99 })
        );
        assert_eq!(r("bytes=100-").resolve(100), None);
        assert_eq!(r("bytes=-0").resolve(100), None);
        assert_eq!(parse("items=1-2"), Ok(None));
        assert_eq!(parse("bytes=1-2,4-5"), Ok(None));
        assert!(parse("bytes=5-1").is_err());
        assert!(parse("bytes=-").is_err());
        assert!(parse("bytes=x-1").is_err());
        assert_eq!(ByteRange { start: 3, end: 3 }.len(), 1);
    }
}
