//! Compact sets of UIDs (or sequence numbers): sorted, merged ranges, never
//! one entry per number. What a server sends in SEARCH, ESEARCH `ALL` and
//! VANISHED is read into one of these straight from the response bytes, so
//! `1:4294967295` costs one range and a list of consecutive numbers one
//! range; a list of scattered numbers costs eight bytes each, which the
//! command's byte budget bounds. Pure.

#![deny(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used
)]

/// A set of numbers as inclusive ranges, ascending, not touching.
///
/// Numbers added out of order are appended and sorted in by
/// [`UidSet::normalize`] (once, in O(n log n), rather than at each one):
/// call it after adding before asking anything of the set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UidSet {
    ranges: Vec<(u32, u32)>,
    /// Some range was appended out of order.
    unsorted: bool,
}

impl UidSet {
    /// The empty set.
    pub fn new() -> Self {
        UidSet::default()
    }

    /// Parses `1:3,7,9:*` (`*` stands for the largest number); `None` when
    /// malformed or when it would hold more than `max_ranges` ranges.
    pub fn parse(text: &[u8], max_ranges: usize) -> Option<Self> {
        let mut set = UidSet::new();
        if text.is_empty() {
            return Some(set);
        }
        let mut pieces = 0usize;
        for range in text.split(|&b| b == b',') {
            pieces = pieces.checked_add(1)?;
            if pieces > max_ranges {
                return None;
            }
            let mut ends = range.splitn(2, |&b| b == b':');
            let a = number(ends.next()?)?;
            let b = match ends.next() {
                Some(b) => number(b)?,
                None => a,
            };
            set.insert(a.min(b), a.max(b));
        }
        set.normalize();
        Some(set)
    }

    /// Adds one number; cheap when numbers come in ascending order.
    pub fn push(&mut self, n: u32) {
        self.insert(n, n);
    }

    /// Adds the inclusive range `lo..=hi` (`lo <= hi`); cheap when ranges
    /// come in ascending order, else [`UidSet::normalize`] must follow.
    pub fn insert(&mut self, lo: u32, hi: u32) {
        match self.ranges.last_mut() {
            Some(last) if lo >= last.0 && lo <= last.1.saturating_add(1) => {
                last.1 = last.1.max(hi);
            }
            Some(last) => {
                if lo < last.0 {
                    self.unsorted = true;
                }
                self.ranges.push((lo, hi));
            }
            None => self.ranges.push((lo, hi)),
        }
    }

    /// Adds every number of `other` (range by range);
    /// [`UidSet::normalize`] must follow.
    pub fn extend_from(&mut self, other: &UidSet) {
        for &(lo, hi) in &other.ranges {
            self.insert(lo, hi);
        }
    }

    /// Sorts and merges ranges added out of order.
    pub fn normalize(&mut self) {
        if !self.unsorted {
            return;
        }
        self.unsorted = false;
        self.ranges.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(self.ranges.len());
        for &(lo, hi) in &self.ranges {
            match merged.last_mut() {
                Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        self.ranges = merged;
    }

    /// Whether `n` is in the set.
    pub fn contains(&self, n: u32) -> bool {
        let at = self.ranges.partition_point(|r| r.1 < n);
        self.ranges.get(at).is_some_and(|r| r.0 <= n)
    }

    /// How many numbers the set holds.
    pub fn count(&self) -> u64 {
        self.ranges
            .iter()
            .map(|&(lo, hi)| {
                u64::from(hi)
                    .saturating_sub(u64::from(lo))
                    .saturating_add(1)
            })
            .fold(0u64, u64::saturating_add)
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// How many ranges the set is made of (its memory is eight bytes each).
    pub fn ranges(&self) -> usize {
        self.ranges.len()
    }

    /// The largest number, if any.
    pub fn max(&self) -> Option<u32> {
        self.ranges.last().map(|r| r.1)
    }

    /// The numbers, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.ranges.iter().flat_map(|&(lo, hi)| lo..=hi)
    }

    /// Keeps only the numbers in `lo..=hi`.
    pub fn clamp(&mut self, lo: u32, hi: u32) {
        self.ranges.retain(|r| r.1 >= lo && r.0 <= hi);
        for r in &mut self.ranges {
            r.0 = r.0.max(lo);
            r.1 = r.1.min(hi);
        }
    }

    /// The numbers as a vector, ascending; `None` when there are more than `limit`.
    pub fn to_vec(&self, limit: usize) -> Option<Vec<u32>> {
        let count = usize::try_from(self.count()).ok()?;
        if count > limit {
            return None;
        }
        let mut out = Vec::with_capacity(count);
        out.extend(self.iter());
        Some(out)
    }
}

impl FromIterator<u32> for UidSet {
    /// Collects numbers in any order (cheapest ascending).
    fn from_iter<I: IntoIterator<Item = u32>>(numbers: I) -> Self {
        let mut set = UidSet::new();
        for n in numbers {
            set.push(n);
        }
        set.normalize();
        set
    }
}

/// The set in IMAP's sequence-set syntax: `1:3,7`.
impl std::fmt::Display for UidSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, &(lo, hi)) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if lo == hi {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}:{hi}")?;
            }
        }
        Ok(())
    }
}

/// A decimal number of at most 32 bits, or `*` (the largest).
fn number(digits: &[u8]) -> Option<u32> {
    if digits == b"*" {
        return Some(u32::MAX);
    }
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_and_merges() {
        let s = UidSet::parse(b"1:3,7,5:4,6", 10).unwrap();
        assert_eq!(s.ranges(), 1);
        assert_eq!(s.iter().collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(s.count(), 7);
        let s = UidSet::parse(b"1:*", 10).unwrap();
        assert_eq!(s.count(), u64::from(u32::MAX));
        assert_eq!(s.ranges(), 1);
        assert!(s.to_vec(1000).is_none());
        assert!(UidSet::parse(b"", 1).unwrap().is_empty());
        for bad in [
            &b"a"[..],
            b"1:",
            b"1,,2",
            b":3",
            b"99999999999",
            b"4294967296",
        ] {
            assert_eq!(UidSet::parse(bad, 10), None, "{bad:?}");
        }
        assert_eq!(UidSet::parse(b"1,3,5", 2), None);
    }

    #[test]
    fn ascending_pushes_stay_compact() {
        let mut s = UidSet::new();
        for n in 1..=100_000 {
            s.push(n);
        }
        s.push(200_000);
        s.push(7);
        s.normalize();
        assert_eq!(s.ranges(), 2);
        assert!(s.contains(100_000) && s.contains(200_000) && !s.contains(150_000));
        s.push(150_000);
        s.push(3);
        s.normalize();
        assert_eq!(s.ranges(), 3);
        s.clamp(100_000, 160_000);
        assert_eq!(s.iter().collect::<Vec<_>>(), [100_000, 150_000]);
        assert_eq!(s.max(), Some(150_000));
    }
}
