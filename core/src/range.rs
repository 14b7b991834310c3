//! RFC 9110 byte ranges (§14): parsing a `Range` header against a
//! representation's size, with the amplification guards of CVE-2011-3192.
//!
//! Policy, as nginx and Go's `http.ServeContent` do it:
//! - a header that is not valid `bytes=` syntax (or another unit) is ignored:
//!   the full representation is served with 200;
//! - satisfiable ranges are clamped to the size, and overlapping or adjacent
//!   ones are coalesced; the rest keep the order they were asked in (RFC 9110
//!   §15.3.7.2: a player asking for its index first gets it first);
//! - if no range is satisfiable the answer is 416 (an empty representation
//!   satisfies no byte range, suffix ranges included);
//! - more than [`MAX_RANGES`] ranges, or ranges whose lengths add up to more
//!   than the size, are ignored: 200 with the full body, never a response
//!   larger than the file.

/// Most ranges one request may list before the header is ignored.
pub const MAX_RANGES: usize = 16;

/// An inclusive byte range within a representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    /// Last byte, inclusive.
    pub end: u64,
}

impl ByteRange {
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }
    pub fn is_empty(&self) -> bool {
        false
    }
    /// `Content-Range` value for this range of a `size`-byte representation.
    pub fn content_range(&self, size: u64) -> String {
        format!("bytes {}-{}/{size}", self.start, self.end)
    }
}

/// What to do with a request's Range header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ranges {
    /// Serve the full representation with 200.
    Full,
    /// 416 with `Content-Range: bytes */SIZE`.
    Unsatisfiable,
    /// One or more satisfiable ranges: 206 (multipart/byteranges if many),
    /// coalesced, in the order asked for.
    Partial(Vec<ByteRange>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spec {
    /// `first-last` or `first-`.
    From(u64, Option<u64>),
    /// `-suffix`.
    Suffix(u64),
}

/// Parse `bytes=...`; None if the syntax is invalid or the unit unknown.
fn parse_specs(header: &str) -> Option<Vec<Spec>> {
    let (unit, set) = header.trim().split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return None;
    }
    let digits = |s: &str| -> Option<u64> {
        let s = s.trim_matches([' ', '\t']);
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let mut specs = Vec::new();
    // Empty list elements are allowed and skipped (RFC 9110 §5.6.1).
    for item in set.split(',').map(|s| s.trim_matches([' ', '\t'])).filter(|s| !s.is_empty()) {
        let (first, last) = item.split_once('-')?;
        let spec = if first.trim().is_empty() {
            Spec::Suffix(digits(last)?)
        } else {
            let first = digits(first)?;
            let last = if last.trim().is_empty() { None } else { Some(digits(last)?) };
            if last.is_some_and(|l| l < first) {
                return None;
            }
            Spec::From(first, last)
        };
        specs.push(spec);
    }
    if specs.is_empty() { None } else { Some(specs) }
}

/// Decide how to answer `Range: header` for a representation of `size` bytes.
pub fn evaluate(header: &str, size: u64) -> Ranges {
    let Some(specs) = parse_specs(header) else { return Ranges::Full };
    if specs.len() > MAX_RANGES {
        return Ranges::Full;
    }
    let ranges: Vec<ByteRange> = specs
        .iter()
        .filter_map(|spec| match *spec {
            Spec::From(first, _) if first >= size => None,
            Spec::From(first, last) => Some(ByteRange { start: first, end: last.unwrap_or(u64::MAX).min(size - 1) }),
            Spec::Suffix(0) => None,
            Spec::Suffix(_) if size == 0 => None,
            Spec::Suffix(n) => Some(ByteRange { start: size - n.min(size), end: size - 1 }),
        })
        .collect();
    if ranges.is_empty() {
        return Ranges::Unsatisfiable;
    }
    let requested: u128 = ranges.iter().map(|r| r.len() as u128).sum();
    if ranges.len() > 1 && requested > size as u128 {
        return Ranges::Full;
    }
    // Each range joins the first kept one it overlaps or touches, where that
    // one stands; what it then reaches joins too. At most MAX_RANGES each.
    let touch = |a: &ByteRange, b: &ByteRange| a.start <= b.end.saturating_add(1) && b.start <= a.end.saturating_add(1);
    let mut merged: Vec<ByteRange> = Vec::with_capacity(ranges.len());
    for r in ranges {
        let Some(i) = merged.iter().position(|m| touch(m, &r)) else {
            merged.push(r);
            continue;
        };
        merged[i] = ByteRange { start: merged[i].start.min(r.start), end: merged[i].end.max(r.end) };
        while let Some(j) = (i + 1..merged.len()).find(|&j| touch(&merged[i], &merged[j])) {
            let other = merged.remove(j);
            merged[i] = ByteRange { start: merged[i].start.min(other.start), end: merged[i].end.max(other.end) };
        }
    }
    Ranges::Partial(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: u64, end: u64) -> ByteRange {
        ByteRange { start, end }
    }

    #[test]
    fn single_ranges() {
        assert_eq!(evaluate("bytes=0-99", 1000), Ranges::Partial(vec![r(0, 99)]));
        assert_eq!(evaluate("bytes=500-", 1000), Ranges::Partial(vec![r(500, 999)]));
        assert_eq!(evaluate("bytes=-100", 1000), Ranges::Partial(vec![r(900, 999)]));
        assert_eq!(evaluate("bytes=-5000", 1000), Ranges::Partial(vec![r(0, 999)]), "suffix longer than file");
        assert_eq!(evaluate("bytes=990-5000", 1000), Ranges::Partial(vec![r(990, 999)]), "end clamped");
        assert_eq!(evaluate("BYTES = 1-1", 1000), Ranges::Partial(vec![r(1, 1)]));
        assert_eq!(r(0, 99).content_range(1000), "bytes 0-99/1000");
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(evaluate("bytes=-0", 1000), Ranges::Unsatisfiable);
        assert_eq!(evaluate("bytes=1000-", 1000), Ranges::Unsatisfiable);
        assert_eq!(evaluate("bytes=2000-3000", 1000), Ranges::Unsatisfiable);
        assert_eq!(evaluate("bytes=0-", 0), Ranges::Unsatisfiable);
        assert_eq!(evaluate("bytes=-10", 0), Ranges::Unsatisfiable);
        // One satisfiable range among unsatisfiable ones is served.
        assert_eq!(evaluate("bytes=5000-,0-0", 1000), Ranges::Partial(vec![r(0, 0)]));
    }

    #[test]
    fn invalid_syntax_is_ignored() {
        for h in [
            "bytes=", "bytes", "items=0-1", "bytes=a-b", "bytes=5-1", "bytes=1-2-3", "bytes=--1", "bytes=0x1-2",
            "bytes=+1-2", "bytes=-", "bytes=,", "=0-1", "bytes=1 2-3",
        ] {
            assert_eq!(evaluate(h, 1000), Ranges::Full, "{h:?}");
        }
    }

    #[test]
    fn many_ranges_coalesce() {
        assert_eq!(
            evaluate("bytes=0-9, 20-29,10-19, 50-59", 1000),
            Ranges::Partial(vec![r(0, 29), r(50, 59)]),
            "adjacent merged"
        );
        assert_eq!(
            evaluate("bytes=900-999,0-99,500-599", 1000),
            Ranges::Partial(vec![r(900, 999), r(0, 99), r(500, 599)]),
            "the order asked for"
        );
        assert_eq!(
            evaluate("bytes=50-59,0-9,20-29,10-19", 1000),
            Ranges::Partial(vec![r(50, 59), r(0, 29)]),
            "a range joining two kept ones merges them where the first stands"
        );
        assert_eq!(evaluate("bytes=0-50,40-60", 1000), Ranges::Partial(vec![r(0, 60)]), "overlap merged");
        assert_eq!(evaluate("bytes=,0-1,,", 1000), Ranges::Partial(vec![r(0, 1)]), "empty elements skipped");
    }

    #[test]
    fn amplification_is_refused() {
        let many = format!("bytes={}", (0..17).map(|i| format!("{i}-{i}")).collect::<Vec<_>>().join(","));
        assert_eq!(evaluate(&many, 1000), Ranges::Full, "too many ranges");
        assert_eq!(evaluate("bytes=0-,0-,0-", 1000), Ranges::Full, "overlaps adding up beyond the size");
        assert_eq!(evaluate("bytes=0-999,0-999", 1000), Ranges::Full);
        let exactly = format!("bytes={}", (0..16).map(|i| format!("{i}-{i}")).collect::<Vec<_>>().join(","));
        assert_eq!(evaluate(&exactly, 1000), Ranges::Partial(vec![r(0, 15)]));
    }

    #[test]
    fn huge_numbers() {
        assert_eq!(evaluate("bytes=0-99999999999999999999999", 10), Ranges::Full, "overflow is invalid syntax");
        assert_eq!(evaluate("bytes=0-18446744073709551615", 10), Ranges::Partial(vec![r(0, 9)]));
        assert_eq!(evaluate("bytes=4294967000-", 4 << 30), Ranges::Partial(vec![r(4294967000, (4 << 30) - 1)]));
    }
}
