#![no_main]
//! Any query string: no panic; a stream's options, once accepted, are ones
//! the host accepts too.

use framewire_core::query::{check_fps, pairs, stream_query};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|query: &str| {
    let _ = pairs(query);
    if let Ok(q) = stream_query(query) {
        if let Some(fps) = q.fps {
            assert!(check_fps(fps).is_ok(), "{query:?} gave fps {fps}");
        }
    }
});
