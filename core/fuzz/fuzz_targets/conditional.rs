#![no_main]
//! Any conditional headers against any validators: no panic, and the
//! answers RFC 9110 §13.2.2 fixes whatever else the request says.

use framewire_core::conditional::{Conditions, Outcome, Validators, evaluate};
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, UNIX_EPOCH};

type Input<'a> = (Option<&'a str>, Option<&'a str>, Option<&'a str>, Option<&'a str>, Option<&'a str>, (u64, u64, u32, bool));

fuzz_target!(|input: Input| {
    let (if_match, if_none_match, if_modified_since, if_unmodified_since, if_range, (id, size, secs, get)) = input;
    let modified = UNIX_EPOCH + Duration::from_secs(secs.into());
    let v = Validators::for_file(id, size, modified, modified + Duration::from_secs(5));
    let c = Conditions { if_match, if_none_match, if_modified_since, if_unmodified_since, if_range };
    let outcome = evaluate(&c, &v, get);
    // A failed If-Match wins over everything after it.
    if if_match.is_some_and(|m| m.trim() != "*" && !m.contains(v.etag.as_str())) {
        assert_eq!(outcome, Outcome::Failed);
    }
    // Only GET and HEAD can be answered 304.
    if !get {
        assert_ne!(outcome, Outcome::NotModified);
    }
    // No conditions: serve it, ranges and all.
    let none = Conditions::default();
    assert_eq!(evaluate(&none, &v, get), Outcome::Proceed { honor_range: true });
});
