//! Protocol logic shared by the framewire host, its wasm components, the
//! tests and the benchmarks. Pure Rust, no I/O: it builds for the host and
//! for `wasm32-wasip2` alike.

pub mod authority;
pub mod byteranges;
pub mod conditional;
pub mod html;
pub mod jpeg;
pub mod media_path;
pub mod mime;
pub mod mjpeg;
pub mod mjpeg_source;
pub mod query;
pub mod range;
pub mod routes;
pub mod wasm;
