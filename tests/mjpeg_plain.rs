//! The built-in MJPEG component under plain wasmtime, without the framewire
//! host: composed with the virtual camera (examples/virtual-camera, plugged
//! in by tests/build.rs as `wac plug` would), it imports only WASI and
//! streams over a real loopback socket, an instance per request, as
//! `wasmtime serve -Scli` runs it.

use anyhow::{Result, bail};
use bytes::Bytes;
use framewire_core::mjpeg::{self, Parser, Part};
use framewire_tests::decode_jpeg;
use framewire_tests::plain::{self, Server, State};
use http_body_util::{BodyExt, Empty};
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpStream;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

const COMPOSITE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/mjpeg_plain.wasm"));

/// Each test's limit once the component is compiled.
const LIMIT: Duration = Duration::from_secs(10);

/// The composite, compiled once for all tests.
fn pre() -> ProxyPre<State> {
    static PRE: OnceLock<ProxyPre<State>> = OnceLock::new();
    PRE.get_or_init(|| plain::proxy_pre(COMPOSITE).unwrap()).clone()
}

/// A server with plain WASI, as `wasmtime serve -Scli`: no preopened
/// directory. The components' stderr goes to the returned pipe.
async fn server() -> (Server, MemoryOutputPipe) {
    let stderr = MemoryOutputPipe::new(1 << 20);
    let pipe = stderr.clone();
    let server = Server::start(pre(), move || WasiCtx::builder().stderr(pipe.clone()).build()).await.unwrap();
    (server, stderr)
}

/// A server whose instances get `dir` preopened read-write as `/`
/// (`wasmtime serve -Scli --dir DIR::/`): `frame.body()` works there.
async fn server_with_dir(dir: &std::path::Path) -> Server {
    let dir = dir.to_path_buf();
    Server::start(pre(), move || {
        let mut wasi = WasiCtx::builder();
        wasi.preopened_dir(&dir, "/", FsPerms::ReadWrite).unwrap();
        wasi.build()
    })
    .await
    .unwrap()
}

/// An open response on a connection of its own, which `close` ends.
struct Open {
    resp: hyper::Response<hyper::body::Incoming>,
    conn: tokio::task::JoinHandle<()>,
}

impl Open {
    async fn get(addr: SocketAddr, path: &str) -> Result<Open> {
        let stream = TcpStream::connect(addr).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        let conn = tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = hyper::Request::get(path).header("host", addr.to_string()).body(Empty::<Bytes>::new())?;
        let resp = sender.send_request(req).await?;
        Ok(Open { resp, conn })
    }

    fn header(&self, name: &str) -> &str {
        self.resp.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    /// Parts until `n` have arrived.
    async fn parts(&mut self, n: usize) -> Result<Vec<Part>> {
        let mut parser = Parser::from_content_type(self.header("content-type"))?;
        let mut parts = Vec::new();
        while parts.len() < n {
            let Some(frame) = self.resp.body_mut().frame().await else { bail!("stream ended after {} parts", parts.len()) };
            if let Ok(data) = frame?.into_data() {
                parts.extend(parser.feed(&data)?);
            }
        }
        Ok(parts)
    }

    async fn body(self) -> Result<Bytes> {
        Ok(self.resp.into_body().collect().await?.to_bytes())
    }

    /// Hang up: the socket closes.
    async fn close(self) {
        drop(self.resp);
        self.conn.abort();
        let _ = self.conn.await;
    }
}

/// Check `parts` are the virtual camera's frames, in order; returns their
/// sequence numbers.
fn check_frames(parts: &[Part]) -> Vec<u64> {
    let now_us = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as u64;
    let mut sequences = Vec::new();
    for part in parts {
        assert_eq!(part.header("content-type"), Some("image/jpeg"));
        assert_eq!(part.header("content-length"), Some(part.body.len().to_string().as_str()));
        assert_eq!(decode_jpeg(&part.body).unwrap(), (320, 240), "frame size");
        let at = part.header("x-timestamp").and_then(mjpeg::parse_timestamp).expect("X-Timestamp");
        assert!(at.abs_diff(now_us) < 60_000_000, "X-Timestamp {at} is not now ({now_us})");
        sequences.push(part.header("x-frame-sequence").and_then(|s| s.parse().ok()).expect("X-Frame-Sequence"));
    }
    assert!(sequences.windows(2).all(|w| w[0] < w[1]), "sequences not increasing: {sequences:?}");
    sequences
}

/// Wait until every instance has ended.
async fn all_ended(server: &Server) {
    while server.instances() > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Run a test's body within [`LIMIT`]; a timeout names the instances still
/// alive (streams that did not end when their client went).
async fn within(servers: &[&Server], test: impl Future<Output = Result<()>>) {
    match tokio::time::timeout(LIMIT, test).await {
        Ok(result) => result.unwrap(),
        Err(_) => {
            let running: usize = servers.iter().map(|s| s.instances()).sum();
            panic!("timed out after {LIMIT:?}, {running} instance(s) still alive");
        }
    }
}

#[test]
fn composite_imports_only_wasi() {
    let imports = plain::imports(COMPOSITE).unwrap();
    assert!(!imports.is_empty());
    let foreign: Vec<_> = imports.iter().filter(|n| !n.starts_with("wasi:")).collect();
    assert!(foreign.is_empty(), "imports beyond WASI: {foreign:?}");
    assert!(imports.iter().any(|n| n.starts_with("wasi:http/types@")), "{imports:?}");
    // And it links against WASI and wasi:http alone.
    pre();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_until_the_client_goes() {
    let (server, _) = server().await;
    within(&[&server], async {
        let mut open = Open::get(server.addr, "/cameras/test/stream").await?;
        assert_eq!(open.resp.status(), 200);
        assert_eq!(open.header("content-type"), format!("multipart/x-mixed-replace; boundary={}", mjpeg::BOUNDARY));
        let parts = open.parts(5).await?;
        let sequences = check_frames(&parts);
        assert!(sequences[0] >= 1, "{sequences:?}");
        // The stream runs inside the request's instance (the virtual
        // camera's relay blocks there), which ends once the client goes.
        assert_eq!(server.instances(), 1);
        open.close().await;
        all_ended(&server).await;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_route_fps_cap_and_state() {
    let (server, _) = server().await;
    within(&[&server], async {
        let mut open = Open::get(server.addr, "/stream?fps=30").await?;
        assert_eq!(open.resp.status(), 200);
        check_frames(&open.parts(2).await?);
        open.close().await;

        let open = Open::get(server.addr, "/api/state").await?;
        assert_eq!(open.resp.status(), 200);
        let state: serde_json::Value = serde_json::from_slice(&open.body().await?)?;
        assert_eq!(state["cameras"][0]["name"], "test", "{state}");
        assert_eq!(state["cameras"][0]["spec"], "virtual:320x240@15", "{state}");
        assert_eq!(state["cameras"][0]["width"], 320);
        assert!(state["version"].as_str().unwrap().starts_with("virtual-camera"), "{state}");
        assert!(state["uptime_ms"].as_u64().unwrap() < 60_000, "{state}");
        assert_eq!(state["components"], serde_json::json!([]));

        let open = Open::get(server.addr, "/cameras/nope/stream").await?;
        assert_eq!(open.resp.status(), 404);
        let body: serde_json::Value = serde_json::from_slice(&open.body().await?)?;
        assert_eq!(body["error"], "unknown camera: nope");
        assert_eq!(body["cameras"], serde_json::json!(["test"]));
        all_ended(&server).await;
        Ok(())
    })
    .await;
}

/// `frame.body()` needs a stream made from bytes, which only a host can
/// make: the virtual camera writes a scratch file into a preopened
/// directory and streams that. Without one, it traps, and wasmtime answers
/// 500; with one, snapshots and the in-component stream loop work, and no
/// scratch file is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_bodies_need_a_preopened_directory() {
    let (server, stderr) = server().await;
    let dir = tempfile::tempdir().unwrap();
    let with_dir = server_with_dir(dir.path()).await;
    within(&[&server, &with_dir], async {
        let open = Open::get(server.addr, "/cameras/test/snapshot").await?;
        assert_eq!(open.resp.status(), 500);
        open.close().await;
        let said = String::from_utf8_lossy(&stderr.contents()).into_owned();
        assert!(said.contains("frame.body() needs a writable preopened directory"), "stderr: {said}");

        let open = Open::get(with_dir.addr, "/cameras/test/snapshot").await?;
        assert_eq!(open.resp.status(), 200);
        assert_eq!(open.header("content-type"), "image/jpeg");
        assert!(open.header("x-frame-sequence").parse::<u64>()? >= 1);
        let jpeg = open.body().await?;
        assert_eq!(decode_jpeg(&jpeg)?, (320, 240));

        let mut open = Open::get(with_dir.addr, "/cameras/test/stream?relay=0").await?;
        assert_eq!(open.resp.status(), 200);
        check_frames(&open.parts(3).await?);
        open.close().await;
        all_ended(&server).await;
        all_ended(&with_dir).await;
        let left: Vec<_> = std::fs::read_dir(dir.path())?.collect();
        assert!(left.is_empty(), "scratch files left: {left:?}");
        Ok(())
    })
    .await;
}
