//! Components that trap, spin or hoard memory are contained: their request
//! ends with a 5xx, everyone else carries on.

use framewire::config::ServeArgs;
use framewire_tests::*;
use std::time::{Duration, Instant};

async fn with_misbehaving_route() -> (framewire::Server, tempfile::TempDir) {
    misbehaving_route(ServeArgs { cpu_limit_ms: Some(300), ..Default::default() }).await
}

/// A host with the misbehaving fixture at `/bad/`, and `args` otherwise.
async fn misbehaving_route(args: ServeArgs) -> (framewire::Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("misbehave.wasm");
    std::fs::write(&wasm, MISBEHAVE).unwrap();
    let config = dir.path().join("framewire.toml");
    std::fs::write(
        &config,
        format!("[routes.bad]\npaths = [\"/bad/\"]\ncomponent = \"{}\"\n", wasm.display()),
    )
    .unwrap();
    let server = start_with(ServeArgs { cameras: vec!["cam=test:160x120@30".into()], config: Some(config), ..args })
        .await
        .unwrap();
    (server, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_components_are_contained() {
    let (server, _dir) = with_misbehaving_route().await;
    let addr = server.addr;
    assert_eq!(get(addr, "/bad/ok").await.unwrap().status, 200);

    // A viewer watches throughout.
    let viewer = tokio::spawn(async move { read_stream(addr, "/stream", Duration::from_secs(6)).await });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let r = get(addr, "/bad/trap").await.unwrap();
    assert_eq!(r.status, 500, "a trap ends the request with 500");

    let start = Instant::now();
    let r = get(addr, "/bad/loop").await.unwrap();
    assert_eq!(r.status, 500, "an endless loop is interrupted");
    let took = start.elapsed();
    assert!(took < Duration::from_secs(5), "interrupted near the 300 ms CPU limit, took {took:?}");

    let r = get(addr, "/bad/alloc").await.unwrap();
    assert_eq!(r.status, 500, "unbounded allocation hits the memory cap");

    // Two spinning requests at once on a two-thread runtime: both are cut,
    // and the viewer and other requests keep going meanwhile.
    let spinners: Vec<_> = (0..2).map(|_| tokio::spawn(async move { get(addr, "/bad/loop").await })).collect();
    for _ in 0..5 {
        assert_eq!(get(addr, "/snapshot").await.unwrap().status, 200);
    }
    for s in spinners {
        assert_eq!(s.await.unwrap().unwrap().status, 500);
    }
    assert_eq!(get(addr, "/bad/ok").await.unwrap().status, 200, "the route still serves");

    let (_, frames) = viewer.await.unwrap().unwrap();
    let worst = frames.windows(2).map(|w| w[1].at - w[0].at).max().unwrap();
    assert!(frames.len() > 100, "viewer got {} frames in 6 s", frames.len());
    assert!(worst < Duration::from_millis(500), "viewer never stalled long (worst gap {worst:?})");
}

fn status_of(response: &str) -> &str {
    response.split(' ').nth(1).unwrap_or("none")
}

/// A chunked POST of `total` bytes to the echo handler, in 8 KiB chunks.
fn chunked_echo(total: usize) -> Vec<u8> {
    let mut req = b"POST /bad/echo HTTP/1.1\r\nhost: localhost\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_vec();
    let chunk = vec![b'a'; 8192];
    let mut left = total;
    while left > 0 {
        let n = left.min(chunk.len());
        req.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        req.extend_from_slice(&chunk[..n]);
        req.extend_from_slice(b"\r\n");
        left -= n;
    }
    req.extend_from_slice(b"0\r\n\r\n");
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_head_and_body_sizes_are_limited() {
    let (server, _dir) = misbehaving_route(ServeArgs {
        max_header_bytes: Some(4096),
        max_body_bytes: Some(64 * 1024),
        ..Default::default()
    })
    .await;
    let addr = server.addr;
    let head = |extra: usize| {
        format!("GET /bad/ok HTTP/1.1\r\nhost: localhost\r\nx-pad: {}\r\nconnection: close\r\n\r\n", "p".repeat(extra))
    };

    // Headers: within the limit served, past it 431 before any component runs.
    assert_eq!(status_of(&raw(addr, head(3000).as_bytes()).await.unwrap()), "200");
    let r = raw(addr, head(5000).as_bytes()).await.unwrap();
    assert_eq!(status_of(&r), "431", "{r}");

    // A declared body past the limit: 413 at once, without reading a byte of it.
    let r = raw(addr, b"POST /bad/echo HTTP/1.1\r\nhost: localhost\r\ncontent-length: 70000\r\n\r\n").await.unwrap();
    assert_eq!(status_of(&r), "413", "{r}");
    assert!(r.contains("65536"), "the limit is named: {r}");
    let body = vec![b'b'; 60_000];
    let mut req = b"POST /bad/echo HTTP/1.1\r\nhost: localhost\r\ncontent-length: 60000\r\nconnection: close\r\n\r\n".to_vec();
    req.extend_from_slice(&body);
    let r = raw(addr, &req).await.unwrap();
    assert_eq!(status_of(&r), "200", "{r}");
    assert!(r.contains("\r\n60000\r\n"), "the component saw the whole body: {r}");

    // A chunked body has no declared length: the component's read fails
    // when it passes the limit, and it never sees more.
    let r = raw(addr, &chunked_echo(40_000)).await.unwrap();
    assert!(r.starts_with("HTTP/1.1 200") && r.contains("\r\n40000\r\n"), "{r}");
    let r = raw(addr, &chunked_echo(80_000)).await.unwrap();
    assert_eq!(status_of(&r), "500", "{r}");
    assert!(!r.contains("80000"), "{r}");

    // The host serves on.
    assert_eq!(get(addr, "/bad/ok").await.unwrap().status, 200);
    assert_eq!(get(addr, "/snapshot").await.unwrap().status, 200);
}

#[tokio::test]
async fn limits_are_configurable_and_checked() {
    // The defaults let a 12 KB head through, and a tighter limit refuses it.
    let (server, _dir) = misbehaving_route(ServeArgs::default()).await;
    let head = format!("GET /bad/ok HTTP/1.1\r\nhost: localhost\r\nx-pad: {}\r\nconnection: close\r\n\r\n", "p".repeat(12_000));
    assert_eq!(status_of(&raw(server.addr, head.as_bytes()).await.unwrap()), "200");
    let err = framewire::config::Config::from_args(&ServeArgs { max_header_bytes: Some(10), ..Default::default() })
        .unwrap_err();
    assert!(format!("{err:#}").contains("max-header-bytes must be at least 1024"), "{err:#}");
}

/// A stream request from `from` (a loopback address of the client's
/// choosing), its status line once the head arrives, and the open socket.
async fn stream_from(from: &str, addr: std::net::SocketAddr) -> (String, tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut s = socket.connect(addr).await.unwrap();
    s.write_all(b"GET /stream HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let mut head = vec![0u8; 12];
    s.read_exact(&mut head).await.unwrap();
    (String::from_utf8_lossy(&head).into_owned(), s)
}

/// A stream from `from` is served again (200) within 5 s of one closing.
async fn a_slot_comes_back(from: &str, addr: std::net::SocketAddr) {
    let start = Instant::now();
    loop {
        let (again, _s) = stream_from(from, addr).await;
        if again == "HTTP/1.1 200" {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "the closed stream's slot was never given back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_streams_are_shared_fairly_between_addresses() {
    let args = |limit_loopback| ServeArgs {
        cameras: vec!["cam=test:64x48@10".into()],
        max_streams_per_client: Some(2),
        limit_loopback,
        ..Default::default()
    };
    let server = start_with(args(true)).await.unwrap();
    let addr = server.addr;
    let (a1, s1) = stream_from("127.0.0.2", addr).await;
    let (a2, _s2) = stream_from("127.0.0.2", addr).await;
    assert_eq!((a1.as_str(), a2.as_str()), ("HTTP/1.1 200", "HTTP/1.1 200"));
    let (third, _s3) = stream_from("127.0.0.2", addr).await;
    assert_eq!(third, "HTTP/1.1 429", "a third stream from the same address");
    let (other, _s4) = stream_from("127.0.0.1", addr).await;
    assert_eq!(other, "HTTP/1.1 200", "another address is served as usual");
    assert_eq!(get(addr, "/snapshot").await.unwrap().status, 200, "and so are ordinary requests");
    drop(s1);
    a_slot_comes_back("127.0.0.2", addr).await;
    let r = raw(addr, b"GET /stream HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
    assert!(r.starts_with("HTTP/1.1 200") || r.starts_with("HTTP/1.1 429"), "{r:.40}");

    // By default loopback clients (local tools, a reverse proxy) are exempt.
    let server = start_with(args(false)).await.unwrap();
    let mut open = Vec::new();
    for _ in 0..4 {
        let (status, s) = stream_from("127.0.0.2", server.addr).await;
        assert_eq!(status, "HTTP/1.1 200");
        open.push(s);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_streams_in_all_are_capped_loopback_included() {
    // Relayed streams hold no instance: --max-streams is what bounds them.
    let server = start_with(ServeArgs {
        cameras: vec!["cam=test:64x48@10".into()],
        max_streams: Some(3),
        max_instances: Some(2),
        ..Default::default()
    })
    .await
    .unwrap();
    let addr = server.addr;
    let mut open = Vec::new();
    for from in ["127.0.0.2", "127.0.0.3", "127.0.0.2"] {
        let (status, s) = stream_from(from, addr).await;
        assert_eq!(status, "HTTP/1.1 200", "stream {} from {from}", open.len() + 1);
        open.push(s);
    }
    let r = raw(addr, b"GET /stream HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
    assert!(r.starts_with("HTTP/1.1 503"), "a fourth stream: {r:.60}");
    assert!(r.to_ascii_lowercase().contains("retry-after: 5"), "{r}");
    assert!(r.contains("3 live streams"), "{r}");
    assert_eq!(get(addr, "/snapshot").await.unwrap().status, 200, "ordinary requests are served");
    assert_eq!(camera_state(addr, "cam").await.unwrap()["clients"], 3);
    drop(open.pop());
    a_slot_comes_back("127.0.0.4", addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_reads_nothing_is_dropped_and_its_instance_freed() {
    let server = start_with(ServeArgs {
        cameras: vec!["cam=test:320x240@30".into()],
        stall_timeout_s: Some(2),
        ..Default::default()
    })
    .await
    .unwrap();
    let addr = server.addr;
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.set_recv_buffer_size(4096).unwrap();
    let mut stalled = s.connect(addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stalled, b"GET /stream HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    wait_for_camera(addr, "cam", Duration::from_secs(5), |c| c["clients"] == 1).await.unwrap();
    // It reads nothing: its instance is freed a stall timeout after the socket fills.
    let start = Instant::now();
    wait_for_camera(addr, "cam", Duration::from_secs(15), |c| c["clients"] == 0).await.unwrap();
    let took = start.elapsed();
    eprintln!("a client reading nothing was dropped {took:?} after its stream began");
    assert!(took >= Duration::from_millis(1500), "dropped before its stall timeout ({took:?})");
    // A reader meanwhile is unaffected, and the stalled socket is closed.
    assert_eq!(read_stream(addr, "/stream", Duration::from_millis(500)).await.unwrap().0.status, 200);
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), tokio::io::AsyncReadExt::read_to_end(&mut stalled, &mut rest)).await;
    assert!(read.is_ok(), "the server closed the connection");
}
