//! Cross-origin requests: off unless an origin is named with
//! `--allow-origin`, and then answered for that origin only (a page on it
//! may read streams, snapshots, state and media, byte ranges included).

use hyper::header::{HeaderMap, HeaderValue};

/// The request's Origin if it is one of `allowed`.
pub fn allowed_origin(headers: &HeaderMap, allowed: &[String]) -> Option<HeaderValue> {
    let origin = headers.get(hyper::header::ORIGIN)?;
    let o = origin.to_str().ok()?;
    allowed.iter().any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(o)).then(|| origin.clone())
}

/// Whether this is a CORS preflight (OPTIONS with Access-Control-Request-Method).
pub fn is_preflight<B>(req: &hyper::Request<B>) -> bool {
    req.method() == hyper::Method::OPTIONS && req.headers().contains_key(hyper::header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// Headers answering `origin` on a response; with `preflight`, what it may send.
pub fn decorate(headers: &mut HeaderMap, origin: Option<HeaderValue>, preflight: bool) {
    headers.append(hyper::header::VARY, HeaderValue::from_static("Origin"));
    let Some(origin) = origin else { return };
    headers.insert(hyper::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    if preflight {
        headers.insert(hyper::header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, HEAD"));
        headers.insert(
            hyper::header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("range, if-range, if-none-match, if-modified-since, authorization"),
        );
        headers.insert(hyper::header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    } else {
        headers.insert(
            hyper::header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("content-range, content-length, accept-ranges, etag, x-timestamp, x-frame-sequence"),
        );
    }
}
