//! The files component under plain wasmtime, without the framewire host:
//! only WASI (p2) and wasi:http, a folder preopened read-only as `/`, and
//! requests driven in memory. Proves the component needs nothing of ours.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

struct State {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: Offline,
}

/// This embedding allows no outgoing requests.
struct Offline;

impl wasmtime_wasi_http::WasiHttpHooks for Offline {
    fn send_request(
        &mut self,
        _: http::Request<wasmtime_wasi_http::WasiBody>,
        _: Option<wasmtime_wasi_http::RequestOptions>,
        _: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<
        dyn Future<
                Output = wasmtime_wasi_http::Result<(
                    http::Response<wasmtime_wasi_http::WasiBody>,
                    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
                )>,
            > + Send,
    > {
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.hooks }
    }
}

struct Plain {
    pre: ProxyPre<State>,
    dir: tempfile::TempDir,
}

impl Plain {
    fn new() -> Self {
        let engine = Engine::default();
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).unwrap();
        let component = Component::new(&engine, framewire::components::FILES).unwrap();
        let pre = ProxyPre::new(linker.instantiate_pre(&component).expect("needs only WASI and wasi:http")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("clip.webm"), (0..=255u8).cycle().take(4096).collect::<Vec<_>>()).unwrap();
        Plain { pre, dir }
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> (http::response::Parts, Bytes) {
        let mut wasi = WasiCtx::builder();
        wasi.preopened_dir(self.dir.path(), "/", FsPerms::ReadOnly).unwrap();
        let state = State { table: ResourceTable::new(), wasi: wasi.build(), http: WasiHttpCtx::new(), hooks: Offline };
        let mut store = Store::new(self.pre.engine(), state);
        let mut req = hyper::Request::get(format!("http://localhost{path}"));
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        let req = store.data_mut().http().new_incoming_request(Scheme::Http, req.body(Empty::<Bytes>::new()).unwrap()).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let out = store.data_mut().http().new_response_outparam(tx).unwrap();
        let pre = self.pre.clone();
        let task = tokio::spawn(async move {
            let proxy = pre.instantiate_async(&mut store).await.unwrap();
            proxy.wasi_http_incoming_handler().call_handle(&mut store, req, out).await.unwrap();
        });
        let resp = rx.await.unwrap().unwrap();
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        task.await.unwrap();
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
