//! The page's files, compiled in. Each static asset carries a strong ETag
//! made from its bytes at build time, so a browser revalidates cheaply.

use framewire_guest::{Body, Reply};
use spin_sdk::http::ResponseOutparam;

pub const INDEX: &str = include_str!("../assets/index.html");
pub const NOT_FOUND: &str = include_str!("../assets/404.html");

pub struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    etag: &'static str,
}

/// FNV-1a, enough to tell versions of a file apart.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

/// `"` + 16 hex digits + `"`.
const fn etag_bytes(body: &[u8]) -> [u8; 18] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let h = fnv1a(body);
    let mut out = [b'"'; 18];
    let mut i = 0;
    while i < 16 {
        out[1 + i] = HEX[((h >> (60 - 4 * i)) & 0xf) as usize];
        i += 1;
    }
    out
}

macro_rules! asset {
    ($path:literal, $file:literal, $type:literal) => {{
        const BODY: &[u8] = include_bytes!(concat!("../assets/", $file));
        const ETAG: [u8; 18] = etag_bytes(BODY);
        Asset {
            path: $path,
            content_type: $type,
            body: BODY,
            etag: match std::str::from_utf8(&ETAG) {
                Ok(s) => s,
                Err(_) => panic!("hex is ASCII"),
            },
        }
    }};
}

const ASSETS: &[Asset] = &[
    asset!("/ui/app.js", "app.js", "text/javascript; charset=utf-8"),
    asset!("/ui/app.css", "app.css", "text/css; charset=utf-8"),
    asset!("/ui/icon.svg", "icon.svg", "image/svg+xml"),
    asset!("/favicon.ico", "icon.svg", "image/svg+xml"),
];

pub fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

impl Asset {
    /// 304 when the browser's copy is current, else the file.
    pub fn send(&self, if_none_match: Option<&str>, out: ResponseOutparam, head: bool) {
        let fresh = if_none_match.is_some_and(|v| v.split(',').any(|t| t.trim() == self.etag || t.trim() == "*"));
        let reply = Reply::new(if fresh { 304 } else { 200 })
            .header("etag", self.etag)
            .header("cache-control", "no-cache")
            .header("x-content-type-options", "nosniff");
        if fresh {
            // No body and no Content-Length: that of the 200 would be a lie here.
            return reply.start(out).map_or((), Body::finish);
        }
        reply.header("content-type", self.content_type).body(self.body.to_vec()).send(out, head)
    }
}
