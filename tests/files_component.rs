//! The files component under plain wasmtime, without the framewire host:
//! only WASI (p2) and wasi:http, a folder preopened read-only as `/`, and
//! requests driven in memory. Proves the component needs nothing of ours.

use bytes::Bytes;
use framewire_tests::plain::{self, State};
use http_body_util::{BodyExt, Empty};
use wasmtime_wasi::{FsPerms, WasiCtx};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

struct Plain {
    pre: ProxyPre<State>,
    dir: tempfile::TempDir,
}

impl Plain {
    fn new() -> Self {
        let pre = plain::proxy_pre(framewire::components::FILES).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("clip.webm"), (0..=255u8).cycle().take(4096).collect::<Vec<_>>()).unwrap();
        Plain { pre, dir }
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> (http::response::Parts, Bytes) {
        let mut wasi = WasiCtx::builder();
        wasi.preopened_dir(self.dir.path(), "/", FsPerms::ReadOnly).unwrap();
        let mut req = hyper::Request::get(format!("http://localhost{path}"));
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        let req = req.body(Empty::<Bytes>::new()).unwrap();
        let (resp, call) = plain::handle(&self.pre, State::new(wasi.build()), req).await.unwrap();
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        call.await.unwrap().unwrap();
        (parts, body)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_ranges_under_plain_wasmtime() {
    let p = Plain::new();
    let (head, body) = p.get("/media/clip.webm", &[]).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.headers["content-type"], "video/webm");
    assert_eq!(body.len(), 4096);

    let (head, body) = p.get("/media/clip.webm", &[("range", "bytes=256-259")]).await;
    assert_eq!(head.status, 206);
    assert_eq!(head.headers["content-range"], "bytes 256-259/4096");
    assert_eq!(&body[..], &[0, 1, 2, 3]);

    let etag = head.headers["etag"].to_str().unwrap().to_string();
    let (head, body) = p.get("/media/clip.webm", &[("if-none-match", &etag)]).await;
    assert_eq!((head.status.as_u16(), body.len()), (304, 0));

    // Longer than wasmtime-wasi's 64 KiB reads and its one-chunk body
    // buffer: the range check then holds back the last byte.
    let long: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(p.dir.path().join("long.bin"), &long).unwrap();
    let (head, body) = p.get("/media/long.bin", &[]).await;
    assert_eq!((head.status.as_u16(), &body[..]), (200, &long[..]));
    let (head, body) = p.get("/media/long.bin", &[("range", "bytes=1000-101399")]).await;
    assert_eq!((head.status.as_u16(), &body[..]), (206, &long[1000..101400]));

    let (head, _) = p.get("/media/../etc/passwd", &[]).await;
    assert_eq!(head.status, 404);
    let (head, body) = p.get("/media/", &[("accept", "application/json")]).await;
    assert_eq!(head.status, 200);
    let j: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(j["entries"][0]["name"], "clip.webm");
}
