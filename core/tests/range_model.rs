//! `range::evaluate` against a model that works byte by byte.

use framewire_core::range::{ByteRange, MAX_RANGES, Ranges, evaluate};
use proptest::prelude::*;
use std::collections::BTreeSet;

#[derive(Debug, Clone)]
enum Spec {
    From(u64, Option<u64>),
    Suffix(u64),
}

fn render(specs: &[Spec]) -> String {
    let items: Vec<String> = specs
        .iter()
        .map(|s| match s {
            Spec::From(a, Some(b)) => format!("{a}-{b}"),
            Spec::From(a, None) => format!("{a}-"),
            Spec::Suffix(n) => format!("-{n}"),
        })
        .collect();
    format!("bytes={}", items.join(","))
}

/// The bytes each spec selects, by the letter of RFC 9110 §14.1.2.
fn model_bytes(spec: &Spec, size: u64) -> BTreeSet<u64> {
    match *spec {
        Spec::From(a, b) => (a..=b.unwrap_or(u64::MAX).min(size.saturating_sub(1))).filter(|i| *i < size).collect(),
        Spec::Suffix(n) => (size.saturating_sub(n)..size).collect(),
    }
}

fn spec() -> impl Strategy<Value = Spec> {
    prop_oneof![
        (0u64..150, proptest::option::of(0u64..150))
            .prop_map(|(a, b)| Spec::From(a, b.map(|b| a + b))),
        (0u64..150).prop_map(Spec::Suffix),
    ]
}

proptest! {
    #[test]
    fn matches_the_model(size in 0u64..120, specs in proptest::collection::vec(spec(), 1..24)) {
        let got = evaluate(&render(&specs), size);
        let sets: Vec<BTreeSet<u64>> = specs.iter().map(|s| model_bytes(s, size)).collect();
        let satisfiable: Vec<&BTreeSet<u64>> = sets.iter().filter(|s| !s.is_empty()).collect();
        if specs.len() > MAX_RANGES {
            prop_assert_eq!(got, Ranges::Full);
        } else if satisfiable.is_empty() {
            prop_assert_eq!(got, Ranges::Unsatisfiable);
        } else if satisfiable.len() > 1 && satisfiable.iter().map(|s| s.len() as u64).sum::<u64>() > size {
            prop_assert_eq!(got, Ranges::Full);
        } else {
            let Ranges::Partial(ranges) = got else { return Err(TestCaseError::fail(format!("expected Partial, got {got:?}"))) };
            let union: BTreeSet<u64> = satisfiable.iter().flat_map(|s| s.iter().copied()).collect();
            let served: BTreeSet<u64> = ranges.iter().flat_map(|r| r.start..=r.end).collect();
            prop_assert_eq!(&served, &union);
            // Disjoint and not adjacent: coalesced as far as possible.
            for (i, a) in ranges.iter().enumerate() {
                for b in &ranges[i + 1..] {
                    prop_assert!(a.end + 1 < b.start || b.end + 1 < a.start, "{:?}", ranges);
                }
            }
            // In the order asked for: each range stands where the first
            // spec it serves bytes of stood.
            let first_spec = |r: &ByteRange| sets.iter().position(|s| s.iter().any(|b| (r.start..=r.end).contains(b)));
            let order: Vec<_> = ranges.iter().map(first_spec).collect();
            prop_assert!(order.windows(2).all(|w| w[0] < w[1]), "{:?} from {}", ranges, render(&specs));
            let total: u64 = ranges.iter().map(ByteRange::len).sum();
            prop_assert!(total <= size, "never more bytes than the file");
        }
    }

    #[test]
    fn never_panics(header in ".{0,80}", size in any::<u64>()) {
        let _ = evaluate(&header, size);
    }
}
