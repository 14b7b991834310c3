//! Answers the host gives itself, before or instead of a component (errors,
//! redirects, small pages), and what it reads of a request to decide.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

type Response = hyper::Response<HyperOutgoingBody>;

/// The host a request names: its Host header, else its URI's authority.
pub fn host_of<B>(req: &hyper::Request<B>) -> Option<&str> {
    req.headers().get(hyper::header::HOST).and_then(|h| h.to_str().ok()).or_else(|| req.uri().authority().map(|a| a.as_str()))
}

/// A JSON error, `{"error": message}`.
pub fn json_response(status: u16, message: &str) -> Response {
    let body = format!("{}\n", serde_json::json!({ "error": message }));
    hyper::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .body(Full::new(Bytes::from(body)).map_err(|e| match e {}).boxed_unsync())
        .expect("static response parts are valid")
}

/// 303 to `to`, setting `cookie` if given.
pub fn redirect(to: &str, cookie: Option<String>) -> Response {
    let mut b = hyper::Response::builder().status(303).header("location", to).header("content-length", 0);
    if let Some(c) = cookie {
        b = b.header("set-cookie", c);
    }
    b.body(Full::new(Bytes::new()).map_err(|e| match e {}).boxed_unsync()).expect("redirect parts are valid")
}

/// A small HTML page, not cached.
pub fn html(status: u16, page: String) -> Response {
    uncached(status, "text/html; charset=utf-8", page)
}

/// `body` as `content_type`, never cached (hyper leaves the body out for HEAD).
pub fn uncached(status: u16, content_type: &str, body: String) -> Response {
    hyper::Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("content-length", body.len())
        .header("cache-control", "no-store")
        .body(Full::new(Bytes::from(body)).map_err(|e| match e {}).boxed_unsync())
        .expect("page parts are valid")
}
