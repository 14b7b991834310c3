#![no_main]
//! Any header and size: no panic, and a partial answer is always disjoint
//! and not adjacent (coalesced), inside the file and no larger than it. It
//! keeps the order asked (RFC 9110 §15.3.7.2), so it need not be sorted.

use framewire_core::range::{Ranges, evaluate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, u64)| {
    let (header, size) = input;
    if let Ranges::Partial(ranges) = evaluate(header, size) {
        assert!(!ranges.is_empty());
        let mut total = 0u64;
        for r in &ranges {
            assert!(r.start <= r.end && r.end < size);
            total += r.len();
        }
        assert!(total <= size);
        let mut sorted = ranges.clone();
        sorted.sort_by_key(|r| r.start);
        for w in sorted.windows(2) {
            assert!(w[0].end + 1 < w[1].start);
        }
    }
});
