//! What an operator relies on: `/metrics`, the access log.

use framewire::config::ServeArgs;
use framewire_tests::*;
use http_body_util::BodyExt;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

/// Scrape until `cond` holds (responses are counted when they end, which
/// for a stream is when the server notices its client has gone).
async fn scrape_until(addr: SocketAddr, what: &str, cond: impl Fn(&HashMap<String, f64>) -> bool) -> HashMap<String, f64> {
    let start = Instant::now();
    loop {
        let m = scrape(addr).await;
        if cond(&m) {
            return m;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "never: {what}\n{m:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}


#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_responses_cameras_swaps_refusals_and_instances() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(ServeArgs {
        cameras: vec!["cam=test:160x120@20".into()],
        cache_dir: Some(dir.path().join("cache").display().to_string()),
        max_streams_per_client: Some(1),
        limit_loopback: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let addr = server.addr;
    let before = scrape(addr).await;
    assert_eq!(series_value(&before, "framewire_camera_target_fps{camera=\"cam\"}"), 20.0);
    assert!(series_value(&before, "process_resident_memory_bytes") > 1e6 && series_value(&before, "process_threads") >= 2.0, "{before:#?}");

    let mut snapshot_bytes = 0;
    for _ in 0..2 {
        let r = get(addr, "/snapshot").await.unwrap();
        assert_eq!(r.status, 200);
        snapshot_bytes += r.body.len();
    }
    let range = fetch_with(addr, "GET", "/media/sample.webm", &[("range", "bytes=0-99")]).await.unwrap();
    assert_eq!(range.status, 206);
    assert_eq!(get(addr, "/no/such/page").await.unwrap().status, 404);

    // A stream looping in its component holds an instance while it runs;
    // a second stream from the same client is refused (one allowed).
    let held = open(addr, "/stream?relay=0", &[]).await.unwrap();
    let mut body = held.into_body();
    let mut received = 0;
    while received < 3000 {
        received += body.frame().await.unwrap().unwrap().into_data().map_or(0, |d| d.len());
    }
    let (refused, _) = read_stream(addr, "/stream", Duration::from_millis(1)).await.unwrap();
    assert_eq!(refused.status, 429);
    let m = scrape(addr).await;
    assert!(series_value(&m, "framewire_instances_in_use") >= 1.0, "{m:#?}");
    assert!(series_value(&m, "framewire_camera_viewers{camera=\"cam\"}") >= 1.0);
    drop(body);

    // A swap refused (not a component) and one taken.
    let admin = server.admin.as_ref().unwrap().endpoint.clone();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"not wasm").unwrap();
    assert!(framewire::admin::swap_command(&admin, "mjpeg", &junk).await.is_err());
    let good = dir.path().join("mjpeg.wasm");
    std::fs::write(&good, framewire::components::MJPEG).unwrap();
    framewire::admin::swap_command(&admin, "mjpeg", &good).await.unwrap();

    let m = scrape_until(addr, "the stream counted as ended and its instance gone", |m| {
        series_value(m, "framewire_http_requests_total{route=\"mjpeg\",status=\"200\"}") >= 3.0
            && series_value(m, "framewire_instances_in_use") == 0.0
    })
    .await;
    assert_eq!(series_value(&m, "framewire_http_requests_total{route=\"files\",status=\"206\"}"), 1.0);
    assert_eq!(series_value(&m, "framewire_http_requests_total{route=\"page\",status=\"404\"}"), 1.0);
    assert_eq!(series_value(&m, "framewire_http_requests_total{route=\"host\",status=\"429\"}"), 1.0);
    assert_eq!(series_value(&m, "framewire_http_response_body_bytes_total{route=\"files\"}"), 100.0);
    // The range's read, from the page cache or (a cold file) on the pool.
    let reads = |m: &HashMap<String, f64>| {
        series_value(m, "framewire_media_reads_total{path=\"inline\"}") + series_value(m, "framewire_media_reads_total{path=\"pool\"}")
    };
    assert!(reads(&m) >= reads(&before) + 1.0, "no media read counted");
    assert!(series_value(&m, "framewire_http_response_body_bytes_total{route=\"mjpeg\"}") >= received as f64);
    assert_eq!(series_value(&m, "framewire_http_response_head_seconds_count{route=\"mjpeg\"}"), 3.0);
    assert_eq!(series_value(&m, "framewire_refused_requests_total{reason=\"client_streams\"}"), 1.0);
    assert_eq!(series_value(&m, "framewire_component_swaps_total{route=\"mjpeg\",result=\"refused\"}"), 1.0);
    assert_eq!(series_value(&m, "framewire_component_swaps_total{route=\"mjpeg\",result=\"ok\"}"), 1.0);
    assert!(series_value(&m, "framewire_camera_frames_encoded_total{camera=\"cam\"}") >= 1.0);
    // The two snapshots and the stream's first frame at least.
    assert!(series_value(&m, "framewire_camera_bytes_sent_total{camera=\"cam\"}") > snapshot_bytes as f64);
    assert!(series_value(&m, "process_cpu_seconds_total") > 0.0);
}

/// The access log's lines, once it has at least `n`.
async fn log_lines(path: &Path, n: usize) -> Vec<String> {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(String::from).collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "only {} lines:\n{text}", lines.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `HOST - USER [DATE] "REQUEST" STATUS BYTES "REFERER" "AGENT" SECONDS FRAMES`
struct Line {
    user: String,
    request: String,
    status: u16,
    bytes: String,
    agent: String,
    seconds: f64,
    frames: String,
}

fn parse(line: &str) -> Line {
    let (head, rest) = line.split_once(" [").unwrap();
    let mut head = head.split(' ');
    assert_eq!((head.next(), head.next()), (Some("127.0.0.1"), Some("-")), "{line}");
    let user = head.next().unwrap().to_string();
    let (date, rest) = rest.split_once("] \"").unwrap();
    assert_eq!(date.len(), "01/Dec/2026:06:50:00 +0000".len(), "{line}");
    let (request, rest) = rest.split_once("\" ").unwrap();
    let fields: Vec<&str> = rest.split(' ').collect();
    let quoted: Vec<&str> = rest.split('"').collect();
    let tail: Vec<&str> = quoted[4].trim().split(' ').collect();
    Line {
        user,
        request: request.to_string(),
        status: fields[0].parse().unwrap(),
        bytes: fields[1].to_string(),
        agent: quoted[3].to_string(),
        seconds: tail[0].parse().unwrap(),
        frames: tail[1].to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_has_a_line_per_response_when_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let server = start_with(ServeArgs {
        cameras: vec!["cam=test:160x120@20".into()],
        cache_dir: Some(dir.path().join("cache").display().to_string()),
        users: vec!["ann:pw".into()],
        access_log: Some(log.display().to_string()),
        ..Default::default()
    })
    .await
    .unwrap();
    let addr = server.addr;
    let basic = ("authorization", "Basic YW5uOnB3"); // ann:pw

    let snap = fetch_with(addr, "GET", "/snapshot", &[basic, ("user-agent", "tester \"quoted\"")]).await.unwrap();
    assert_eq!(snap.status, 200);
    assert_eq!(fetch(addr, "GET", "/snapshot").await.unwrap().status, 401);
    let stream = open(addr, "/stream", &[basic]).await.unwrap();
    let mut body = stream.into_body();
    let mut parts = 0;
    let mut bytes = 0;
    while parts < 5 {
        let data = body.frame().await.unwrap().unwrap().into_data().unwrap();
        bytes += data.len();
        parts += data.windows(14).filter(|w| w.eq_ignore_ascii_case(b"content-type: ")).count();
    }
    drop(body);

    // Each is written when its response ends: find them by what they are.
    let lines = log_lines(&log, 3).await;
    assert_eq!(lines.len(), 3, "{lines:#?}");
    let find = |status: u16, request: &str| {
        lines.iter().map(|l| parse(l)).find(|l| l.status == status && l.request == request).unwrap_or_else(|| panic!("no {status} {request}: {lines:#?}"))
    };
    let snapshot = find(200, "GET /snapshot HTTP/1.1");
    assert_eq!(snapshot.user, "ann");
    assert_eq!(snapshot.bytes, snap.body.len().to_string());
    assert_eq!(snapshot.agent, "tester \\x22quoted\\x22");
    assert_eq!(snapshot.frames, "-");
    assert_eq!(find(401, "GET /snapshot HTTP/1.1").user, "-");
    let streamed = find(200, "GET /stream HTTP/1.1");
    assert_eq!(streamed.user, "ann");
    assert!(streamed.bytes.parse::<usize>().unwrap() >= bytes, "{} < {bytes}", streamed.bytes);
    assert!(streamed.frames.parse::<u64>().unwrap() >= 4, "{}", streamed.frames);
    assert!(streamed.seconds > 0.0 && streamed.seconds < 30.0);
}

/// A relayed MJPEG body being read: its parser and the parts seen.
struct Reading {
    body: hyper::body::Incoming,
    parser: framewire_core::mjpeg::Parser,
    parts: usize,
}

impl Reading {
    fn new(body: hyper::body::Incoming) -> Self {
        Reading { body, parser: framewire_core::mjpeg::Parser::new(framewire_core::mjpeg::BOUNDARY), parts: 0 }
    }

    /// Read on until `parts` parts have come; false if the body ended first.
    async fn until(&mut self, parts: usize) -> bool {
        while self.parts < parts {
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.parts += self.parser.feed(&data).expect("valid framing").len();
                    }
                }
                _ => return false,
            }
        }
        true
    }

    /// Read to the end: the parts' count, and whether it ended with the
    /// close delimiter (a clean end) rather than being cut.
    async fn to_end(mut self) -> (usize, bool) {
        loop {
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.parts += self.parser.feed(&data).expect("valid framing").len();
                    }
                }
                Some(Err(_)) => return (self.parts, false),
                None => return (self.parts, self.parser.is_done()),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_streams_cleanly_and_lets_downloads_finish() {
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    std::fs::create_dir(&media).unwrap();
    let size = 16 << 20;
    std::fs::write(media.join("big.bin"), vec![7u8; size]).unwrap();
    let server = start_with(ServeArgs {
        cameras: vec!["cam=test:160x120@20".into()],
        cache_dir: Some(dir.path().join("cache").display().to_string()),
        media: Some(media),
        ..Default::default()
    })
    .await
    .unwrap();
    let addr = server.addr;

    // A relayed stream, a stream looping in its component, and a download
    // read slowly enough to be in flight when the server is told to stop.
    let mut relayed = Reading::new(open(addr, "/stream", &[]).await.unwrap().into_body());
    let mut looped = Reading::new(open(addr, "/stream?relay=0", &[]).await.unwrap().into_body());
    assert!(relayed.until(2).await && looped.until(2).await);
    let mut download = open(addr, "/media/big.bin", &[]).await.unwrap().into_body();
    let mut downloaded = 0;
    while downloaded < 1 << 20 {
        downloaded += download.frame().await.unwrap().unwrap().into_data().unwrap().len();
    }
    let relayed = tokio::spawn(relayed.to_end());
    let looped = tokio::spawn(looped.to_end());

    let grace = Duration::from_secs(5);
    let started = Instant::now();
    let stopping = tokio::spawn(server.shutdown(grace));

    let (parts, clean) = relayed.await.unwrap();
    assert!(clean, "the relayed stream was cut, not closed, after {parts} parts");
    // No more connections are taken.
    loop {
        match tokio::net::TcpStream::connect(addr).await {
            Err(_) => break,
            Ok(_) => assert!(started.elapsed() < grace, "still accepting connections"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The download in flight finishes.
    while let Some(frame) = download.frame().await {
        downloaded += frame.expect("download cut short").into_data().map_or(0, |d| d.len());
    }
    assert_eq!(downloaded, size);
    // The component's own loop cannot be closed by the host: it is cut
    // when the grace period ends, and then the server is gone.
    let (_, clean) = looped.await.unwrap();
    assert!(!clean);
    stopping.await.unwrap();
    assert!(started.elapsed() >= grace - Duration::from_millis(100), "stopped before the grace period, {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_connections_is_shared_by_the_http_threads() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(ServeArgs {
        cameras: vec!["cam=test:64x48@5".into()],
        cache_dir: Some(dir.path().join("cache").display().to_string()),
        http_threads: Some(3),
        ..Default::default()
    })
    .await
    .unwrap();
    let addr = server.addr;
    // 12 connections at once, as wrk or a wall of viewers opens them, each
    // kept open after one answered request.
    let connect = (0..12).map(|_| async move {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /api/state HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 12];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"HTTP/1.1 200");
        s
    });
    let held = futures_join_all(connect).await;
    let series = |t: u32| format!("framewire_http_connections{{thread=\"{t}\"}}");
    // The scrape's own connection makes 13.
    let m = scrape(addr).await;
    let per: Vec<f64> = (0..3).map(|t| series_value(&m, &series(t))).collect();
    assert_eq!(per.iter().sum::<f64>(), 13.0, "{per:?}");
    assert!(per.iter().all(|&n| (4.0..=5.0).contains(&n)), "connections per thread: {per:?}");
    drop(held);
    scrape_until(addr, "closed connections counted down", |m| (0..3).map(|t| series_value(m, &series(t))).sum::<f64>() == 1.0).await;
}

/// Run futures concurrently, results in order.
async fn futures_join_all<F: std::future::Future + Send + 'static>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F::Output: Send,
{
    let tasks: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}
