#![no_main]
//! Any request path under /media/: no panic, and what resolves can only
//! name something inside the media root, and survives a round trip.

use framewire_core::media_path::{encode_segment, resolve};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|raw: &str| {
    let Ok(path) = resolve(raw) else { return };
    for s in &path.segments {
        assert!(!s.is_empty() && !s.starts_with('.'), "{raw:?} gave segment {s:?}");
        assert!(!s.contains(['/', '\\', '\0']) && !s.chars().any(char::is_control), "{raw:?} gave segment {s:?}");
    }
    let relative = path.relative();
    assert!(!relative.starts_with('/') && !relative.split('/').any(|s| s == ".."));
    // Links the listing writes resolve to the same file.
    let link: Vec<String> = path.segments.iter().map(|s| encode_segment(s)).collect();
    let again = resolve(&link.join("/")).expect("an encoded path resolves");
    assert_eq!(again.segments, path.segments);
});
