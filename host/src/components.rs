//! Handler components built into the binary (compiled by `build.rs`).

/// The MJPEG / snapshot / state handler.
pub const MJPEG: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/framewire_mjpeg.wasm"));

/// The media folder handler: byte ranges, conditional requests, listings.
pub const FILES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/framewire_files.wasm"));

/// The web page at `/`: live views and the media library.
pub const PAGE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/framewire_page.wasm"));

/// A built-in component by name.
pub fn builtin(name: &str) -> Option<&'static [u8]> {
    match name {
        "mjpeg" => Some(MJPEG),
        "files" => Some(FILES),
        "page" => Some(PAGE),
        _ => None,
    }
}
