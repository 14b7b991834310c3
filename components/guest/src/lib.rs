//! What framewire's handler components share: building a response and
//! writing its body with back-pressure and splice for bytes
//! that come from the host (frames, files) so they never enter guest memory.

mod body;
mod reply;

pub use body::{Body, Error};
pub use reply::{NO_CACHE, Reply};

/// What a read-only handler is asked for: a GET or HEAD request's path and
/// query (the part after `?`, empty if none).
pub struct Target {
    pub path: String,
    pub query: String,
    pub head: bool,
}

/// The request's target if it is a GET or HEAD. Any other method is
/// answered here, 405 with `Allow`, and `out` is used up.
pub fn get_or_head(
    req: &spin_sdk::http::IncomingRequest,
    out: spin_sdk::http::ResponseOutparam,
) -> Option<(Target, spin_sdk::http::ResponseOutparam)> {
    use spin_sdk::http::Method;
    let head = match req.method() {
        Method::Get => false,
        Method::Head => true,
        _ => {
            Reply::error(405, "only GET and HEAD are allowed").header("allow", "GET, HEAD").send(out, false);
            return None;
        }
    };
    let target = req.path_with_query().unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    Some((Target { path: path.to_string(), query: query.to_string(), head }, out))
}

/// A request's headers, fetched from the host in one call.
pub struct Headers(Vec<(String, Vec<u8>)>);

impl Headers {
    /// Only handlers that read headers fetch them: three host calls.
    pub fn of(req: &spin_sdk::http::IncomingRequest) -> Headers {
        Headers(req.headers().entries())
    }

    /// A header's value, if the request has it (repeated headers joined by commas).
    pub fn get(&self, name: &str) -> Option<String> {
        let values: Vec<_> = self
            .0
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v))
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    }
}
