//! A response under construction.

use crate::body::Body;
use spin_sdk::http::{Fields, OutgoingBody, OutgoingResponse, ResponseOutparam};

/// Cache-Control for live or generated content.
pub const NO_CACHE: &str = "no-store, no-cache, must-revalidate, max-age=0";

pub struct Reply {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl Reply {
    pub fn new(status: u16) -> Self {
        Reply { status, headers: Vec::new(), body: Vec::new() }
    }

    /// A JSON document with its Content-Type; errors are `{"error": ...}`.
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        let mut body = serde_json::to_vec(value).expect("JSON values serialize");
        body.push(b'\n');
        Reply::new(status)
            .header("content-type", "application/json")
            .header("cache-control", NO_CACHE)
            .body(body)
    }

    pub fn error(status: u16, message: &str) -> Self {
        Reply::json(status, &serde_json::json!({ "error": message }))
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.as_bytes().to_vec()));
        self
    }

    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }

    fn response(&self) -> Result<(OutgoingResponse, OutgoingBody), ()> {
        let fields = Fields::from_list(&self.headers).map_err(|e| eprintln!("bad header: {e:?}"))?;
        let resp = OutgoingResponse::new(fields);
        resp.set_status_code(self.status).map_err(|_| eprintln!("bad status {}", self.status))?;
        let body = resp.body().map_err(|_| eprintln!("response body taken twice"))?;
        Ok((resp, body))
    }

    /// Send the status and headers now; the caller writes the body. For
    /// streams, whose first bytes may be a while coming.
    pub fn start(self, out: ResponseOutparam) -> Result<Body, ()> {
        let (resp, body) = self.response()?;
        out.set(resp);
        Body::new(body).map_err(|e| eprintln!("{e}"))
    }

    /// Send the status and headers now and hand back the body unwritten,
    /// for the host to write (a relayed stream).
    pub fn start_unwritten(self, out: ResponseOutparam) -> Result<OutgoingBody, ()> {
        let (resp, body) = self.response()?;
        out.set(resp);
        Ok(body)
    }

    /// Like [`Reply::start`], but the head leaves with the first body bytes
    /// the host sends (see [`Body::held`]). A body that ends unfinished
    /// before then turns into the host's 500, never a truncated response.
    pub fn start_held(self, out: ResponseOutparam) -> Result<Body, ()> {
        let (resp, body) = self.response()?;
        Body::held(body, out, resp).map_err(|e| eprintln!("{e}"))
    }

    /// Send the whole response with its Content-Length (headers only for HEAD).
    pub fn send(mut self, out: ResponseOutparam, head: bool) {
        let data = std::mem::take(&mut self.body);
        let reply = self.header("content-length", &data.len().to_string());
        let Ok(mut body) = reply.start_held(out) else { return };
        if head {
            return body.end_head();
        }
        if let Err(e) = body.write_all(&data) {
            e.report("response");
            return;
        }
        body.finish();
    }
}
