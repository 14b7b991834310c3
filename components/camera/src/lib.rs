//! The guest side of `framewire:camera` (`wit/camera.wit`), generated once
//! for every component that imports it. `wasi:io` maps to the `wasi` crate
//! spin-sdk uses, so a frame's body is a stream spin-sdk's bodies can splice,
//! and `wasi:http/types` to spin-sdk's own, so `relay` takes its bodies.

wit_bindgen::generate!({
    path: "../../wit",
    world: "framewire:camera/camera-guest",
    with: {
        "wasi:io/error@0.2.0": ::wasi::io::error,
        "wasi:io/streams@0.2.0": ::wasi::io::streams,
        "wasi:io/poll@0.2.0": ::wasi::io::poll,
        "wasi:clocks/monotonic-clock@0.2.0": ::wasi::clocks::monotonic_clock,
        "wasi:http/types@0.2.0": ::spin_sdk::wit::wasi::http0_2_0::types,
    },
});

pub use framewire::camera::{frames, host};

/// A camera status as it appears in `/api/state` and on the page.
pub fn status_name(status: frames::Status) -> &'static str {
    match status {
        frames::Status::Starting => "starting",
        frames::Status::Live => "live",
        frames::Status::Idle => "idle",
        frames::Status::NoSignal => "no-signal",
        frames::Status::Failed => "failed",
    }
}
