//! Helpers for framewire's tests: start a real host on an ephemeral port,
//! talk to it over real sockets, read MJPEG with a strict parser.

pub mod browser;
pub mod fakecam;
pub mod faultfs;
pub mod plain;
pub mod rtsp;
pub mod slow;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use framewire::config::{Config, ServeArgs};
use framewire_core::mjpeg::{Parser, Part};
use http_body_util::{BodyExt, Empty};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Open a response and hand back its head and streaming body.
pub async fn open(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<hyper::Response<hyper::body::Incoming>> {
    let mut sender = connect(addr).await?;
    Ok(sender.send_request(request_with("GET", addr, path, headers)?).await?)
}

/// Start framewire in this process with the given cameras (`NAME=SOURCE`).
pub async fn start(cameras: &[&str]) -> Result<framewire::Server> {
    start_with(ServeArgs { cameras: cameras.iter().map(|s| s.to_string()).collect(), ..Default::default() }).await
}

pub async fn start_with(mut args: ServeArgs) -> Result<framewire::Server> {
    args.listen.get_or_insert("127.0.0.1:0".parse()?);
    let config = Config::from_args(&args)?;
    framewire::Server::start(&config).await
}

/// A response read completely.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

async fn connect(addr: SocketAddr) -> Result<hyper::client::conn::http1::SendRequest<Empty<Bytes>>> {
    let stream = TcpStream::connect(addr).await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

fn request(method: &str, addr: SocketAddr, path: &str) -> Result<hyper::Request<Empty<Bytes>>> {
    request_with(method, addr, path, &[])
}

fn request_with(method: &str, addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Result<hyper::Request<Empty<Bytes>>> {
    let mut b = hyper::Request::builder().method(method).uri(path).header("host", addr.to_string());
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    Ok(b.body(Empty::new())?)
}

/// One request on a fresh connection, body read to the end (10 s limit).
pub async fn fetch(addr: SocketAddr, method: &str, path: &str) -> Result<Reply> {
    fetch_with(addr, method, path, &[]).await
}

/// Like [`fetch`], with request headers.
pub async fn fetch_with(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Result<Reply> {
    tokio::time::timeout(Duration::from_secs(10), async {
        let mut sender = connect(addr).await?;
        let resp = sender.send_request(request_with(method, addr, path, headers)?).await?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Reply { status: parts.status.as_u16(), headers: parts.headers, body })
    })
    .await
    .context("request timed out")?
}

pub async fn get(addr: SocketAddr, path: &str) -> Result<Reply> {
    fetch(addr, "GET", path).await
}

/// `/api/state` as JSON.
pub async fn state(addr: SocketAddr) -> Result<serde_json::Value> {
    let r = get(addr, "/api/state").await?;
    anyhow::ensure!(r.status == 200, "state answered {}", r.status);
    Ok(r.json())
}

/// The named camera's entry in `/api/state`.
pub async fn camera_state(addr: SocketAddr, name: &str) -> Result<serde_json::Value> {
    let s = state(addr).await?;
    s["cameras"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == name).cloned())
        .with_context(|| format!("camera {name} not in state: {s}"))
}

/// Poll `cond` on the camera's state until it holds or `limit` passes.
pub async fn wait_for_camera<F>(addr: SocketAddr, name: &str, limit: Duration, cond: F) -> Result<serde_json::Value>
where
    F: Fn(&serde_json::Value) -> bool,
{
    let start = Instant::now();
    loop {
        let c = camera_state(addr, name).await?;
        if cond(&c) {
            return Ok(c);
        }
        if start.elapsed() > limit {
            bail!("camera state never matched within {limit:?}: {c}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A frame received from an MJPEG stream.
#[derive(Debug)]
pub struct Received {
    pub part: Part,
    pub at: Instant,
    pub sequence: u64,
    /// Its X-Timestamp and when it arrived, µs since the Unix epoch.
    pub captured_us: u64,
    pub received_us: u64,
}

/// Read an MJPEG stream for `duration`, checking its framing strictly.
pub async fn read_stream(addr: SocketAddr, path: &str, duration: Duration) -> Result<(Reply, Vec<Received>)> {
    read_stream_on(TcpStream::connect(addr).await?, addr, path, duration).await
}

/// [`read_stream`] over a given connection (a slow one, say).
pub async fn read_stream_on<S>(io: S, addr: SocketAddr, path: &str, duration: Duration) -> Result<(Reply, Vec<Received>)>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io)).await?;
    tokio::spawn(conn);
    let resp = sender.send_request(request("GET", addr, path)?).await?;
    let (parts, mut body) = resp.into_parts();
    let head = Reply { status: parts.status.as_u16(), headers: parts.headers, body: Bytes::new() };
    if head.status != 200 {
        return Ok((head, Vec::new()));
    }
    let mut parser = Parser::from_content_type(head.header("content-type").unwrap_or(""))?;
    let mut frames = Vec::new();
    let deadline = tokio::time::Instant::now() + duration;
    while let Ok(next) = tokio::time::timeout_at(deadline, body.frame()).await {
        let Some(frame) = next else { bail!("stream ended early") };
        let Ok(data) = frame?.into_data() else { continue };
        for part in parser.feed(&data)? {
            let sequence = part
                .header("x-frame-sequence")
                .and_then(|s| s.parse().ok())
                .context("part without X-Frame-Sequence")?;
            let captured_us = part
                .header("x-timestamp")
                .and_then(framewire_core::mjpeg::parse_timestamp)
                .context("part without X-Timestamp")?;
            let received_us = framewire::frames::unix_micros(std::time::SystemTime::now());
            frames.push(Received { part, at: Instant::now(), sequence, captured_us, received_us });
        }
    }
    Ok((head, frames))
}

/// The oldest the newest frame a viewer held ever got, from its first frame
/// until `until_us` (wall clock, µs): the age of each frame just before the
/// next one arrived.
pub fn worst_age(frames: &[Received], until_us: u64) -> Duration {
    let ends = frames.iter().skip(1).map(|f| f.received_us).chain([until_us]);
    let worst = frames.iter().zip(ends).map(|(f, end)| end.saturating_sub(f.captured_us)).max().unwrap_or(0);
    Duration::from_micros(worst)
}

/// Decode a JPEG fully; returns (width, height).
pub fn decode_jpeg(data: &[u8]) -> Result<(usize, usize)> {
    let mut d = zune_jpeg::JpegDecoder::new(data);
    let pixels = d.decode().map_err(|e| anyhow::anyhow!("JPEG does not decode: {e:?}"))?;
    let (w, h) = d.dimensions().context("no dimensions")?;
    anyhow::ensure!(pixels.len() >= w * h, "short pixel buffer");
    Ok((w, h))
}

/// Send raw bytes and return whatever the server answers before closing
/// (or within 5 s). A server may answer and close before it has read all
/// of a large request (and a reset may then lose its answer): a failed
/// write is not an error, the answer is whatever arrived.
pub async fn raw(addr: SocketAddr, request: &[u8]) -> Result<String> {
    let mut s = TcpStream::connect(addr).await?;
    let _ = s.write_all(request).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Resident set size of this process, in bytes.
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

/// A component that traps, loops or allocates without bound, by path
/// (`…/trap`, `…/loop`, `…/alloc`; anything else answers "ok").
pub const MISBEHAVE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/framewire_fixture_misbehave.wasm"));

/// `/metrics` parsed: series (name with labels, as written) to value.
pub async fn scrape(addr: SocketAddr) -> HashMap<String, f64> {
    let r = get(addr, "/metrics").await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/openmetrics-text; version=1.0.0; charset=utf-8"));
    let text = String::from_utf8(r.body.to_vec()).unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_string(), value.parse().unwrap())
        })
        .collect()
}

/// A series' value in a scrape (0 if absent).
pub fn series_value(m: &HashMap<String, f64>, series: &str) -> f64 {
    m.get(series).copied().unwrap_or(0.0)
}
