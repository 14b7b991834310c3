//! What framewire's handler components share: building a response and
//! writing its body with back-pressure, a stall limit, and splice for bytes
//! that come from the host (frames, files) so they never enter guest memory.

mod body;
mod reply;

pub use body::{Body, Error, STALL_LIMIT_NS};
pub use reply::{NO_CACHE, Reply};

/// A header's value, if the request has it (repeated headers joined by commas).
pub fn header(req: &spin_sdk::http::IncomingRequest, name: &str) -> Option<String> {
    let values = req.headers().get(&name.to_string());
    if values.is_empty() {
        return None;
    }
    let joined: Vec<String> = values.iter().map(|v| String::from_utf8_lossy(v).into_owned()).collect();
    Some(joined.join(", "))
}
