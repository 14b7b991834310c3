//! Request heads through the whole server: valid heads of every kind
//! framewire answers, mutated at random (bytes flipped, inserted, cut,
//! lines repeated, heads spliced), sent over real sockets to a server with
//! accounts and one without. Every answer must be a well-formed HTTP
//! status line and never a 500; afterwards the server still serves and no
//! instance is left behind. Not coverage-guided (core's parsers are, under
//! cargo-fuzz): this is the whole path, hyper's parser and ours together.
//!
//! `FRAMEWIRE_FUZZ_HEADS=N` sets how many (default 5000; `./dev fuzz`
//! sends 100,000), `FRAMEWIRE_FUZZ_SEED` the seed (printed).

use framewire::config::ServeArgs;
use framewire_tests::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Heads framewire answers, one of each kind.
const SEEDS: &[&str] = &[
    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "GET /stream?fps=5 HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic YW5uOnB3\r\n\r\n",
    "GET /cameras/cam/stream?relay=0&fps=2 HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "GET /snapshot HTTP/1.0\r\n\r\n",
    "HEAD /cameras/cam/snapshot HTTP/1.1\r\nHost: [::1]:8080\r\nIf-None-Match: \"x\"\r\n\r\n",
    "GET /media/sample.webm HTTP/1.1\r\nHost: 127.0.0.1\r\nRange: bytes=0-99,200-299,-50\r\nIf-Range: \"abc\"\r\n\r\n",
    "GET /media/ HTTP/1.1\r\nHost: 127.0.0.1\r\nIf-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\nIf-Match: *\r\n\r\n",
    "GET /media/%2e%2e/etc/passwd HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "GET /?action=stream HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: framewire_session=abc.def\r\n\r\n",
    "POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 27\r\n\r\nname=ann&password=pw&next=/",
    "GET /api/state?share=abc&exp=99 HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: https://dash.example\r\n\r\n",
    "OPTIONS /snapshot HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: https://dash.example\r\nAccess-Control-Request-Method: GET\r\n\r\n",
    "GET http://127.0.0.1/metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "PUT /media/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc",
];

/// Bytes that tend to matter to HTTP parsers.
const INTERESTING: &[&[u8]] = &[
    b"\r\n", b"\n", b"\r", b":", b" ", b"\t", b"\0", b"%", b"%00", b"%2f", b"..", b"/", b"?", b"&", b"=", b",",
    b"\"", b"W/", b"*", b"-", b"bytes=", b"99999999999999999999999", b"-1", b"\xff\xfe", b"\xc3\xa9",
    b"Host: evil.example\r\n", b"Content-Length: 5\r\n", b"Transfer-Encoding: chunked\r\n", b"Range: bytes=1-0\r\n",
    b"Authorization: Basic \r\n", b"Authorization: Bearer x\r\n", b"Cookie: framewire_session=\r\n",
];

fn mutate(rng: &mut fastrand::Rng, head: &[u8]) -> Vec<u8> {
    let mut h = head.to_vec();
    for _ in 0..rng.usize(1..=4) {
        let at = rng.usize(0..=h.len());
        match rng.u8(0..7) {
            0 if !h.is_empty() => {
                let i = rng.usize(0..h.len());
                h[i] ^= 1 << rng.u8(0..8);
            }
            1 => {
                let junk: Vec<u8> = (0..rng.usize(1..16)).map(|_| rng.u8(..)).collect();
                h.splice(at..at, junk);
            }
            2 => {
                let piece = INTERESTING[rng.usize(0..INTERESTING.len())];
                h.splice(at..at, piece.iter().copied());
            }
            3 => h.truncate(at),
            4 => {
                // Repeat a line (a header twice, say).
                let text = h.clone();
                let lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
                let line = lines[rng.usize(0..lines.len())];
                let mut repeated = line.to_vec();
                repeated.push(b'\n');
                for _ in 0..rng.usize(1..=100) {
                    h.splice(at..at, repeated.iter().copied());
                }
            }
            5 => {
                // Splice in the tail of another head.
                let other = SEEDS[rng.usize(0..SEEDS.len())].as_bytes();
                let from = rng.usize(0..other.len());
                h.splice(at.., other[from..].iter().copied());
            }
            _ => {
                // A long run of one byte (header size limits).
                let b = rng.u8(..);
                h.splice(at..at, std::iter::repeat_n(b, rng.usize(1..20_000)));
            }
        }
    }
    h
}

/// Send a head; the status code answered, if any, checking the status line.
async fn send(addr: SocketAddr, head: &[u8]) -> Option<u16> {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("server accepts");
    // The server may answer and close before reading everything.
    let _ = s.write_all(head).await;
    // A head cut short: say so (the server closes or answers 400 at once,
    // rather than wait for more). A whole one is left open, as clients
    // do: hyper takes the end of the input for the client leaving.
    if !head.windows(2).any(|w| w == b"\n\n") && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let _ = s.shutdown().await;
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    // Read up to the end of the first line (a stream goes on forever), or
    // until the server closes or waits for more of the request.
    while !got.contains(&b'\n') {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            // Waiting for the rest of a head or body it was promised: fine.
            Err(_) => break,
        }
    }
    if got.is_empty() {
        return None;
    }
    let line = String::from_utf8_lossy(&got[..got.iter().position(|&b| b == b'\n').unwrap_or(got.len())]).into_owned();
    let mut words = line.split(' ');
    let version = words.next().unwrap_or("");
    let status: u16 = words.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    assert!(
        (version == "HTTP/1.1" || version == "HTTP/1.0") && (100..600).contains(&status),
        "not a status line: {line:?}\nafter: {:?}",
        String::from_utf8_lossy(head)
    );
    Some(status)
}

/// `count` mutated heads from `workers` clients at once, each with its own
/// generator seeded from `seed`; the statuses answered.
async fn fuzz(addr: SocketAddr, seed: u64, count: usize) -> std::collections::BTreeMap<u16, usize> {
    const WORKERS: u64 = 16;
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..WORKERS {
        let n = count / WORKERS as usize + usize::from((w as usize) < count % WORKERS as usize);
        tasks.spawn(async move {
            let mut rng = fastrand::Rng::with_seed(seed.wrapping_add(w));
            let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
            for _ in 0..n {
                let seed_head = SEEDS[rng.usize(0..SEEDS.len())].as_bytes();
                let head = mutate(&mut rng, seed_head);
                if let Some(status) = send(addr, &head).await {
                    assert_ne!(status, 500, "500 for {:?}", String::from_utf8_lossy(&head));
                    *statuses.entry(status).or_default() += 1;
                }
            }
            statuses
        });
    }
    let mut all = std::collections::BTreeMap::new();
    while let Some(done) = tasks.join_next().await {
        for (status, n) in done.expect("a fuzzing client failed") {
            *all.entry(status).or_default() += n;
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_request_heads_get_well_formed_answers_and_leave_nothing_behind() {
    let count: usize = std::env::var("FRAMEWIRE_FUZZ_HEADS").ok().and_then(|s| s.parse().ok()).unwrap_or(5000);
    let seed: u64 = std::env::var("FRAMEWIRE_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| fastrand::u64(..));
    println!("request heads: {count} per server, FRAMEWIRE_FUZZ_SEED={seed}");
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    for users in [vec![], vec!["ann:pw".to_string()]] {
        let server = start_with(ServeArgs {
            cameras: vec!["cam=test:64x48@10".into()],
            cache_dir: Some(dir.path().join("cache").display().to_string()),
            users: users.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
        let addr = server.addr;
        // Found by this fuzzer: a Host of bytes past ASCII got through the
        // sign-in to wasi-http, which refused the request: a 500.
        let bad_host = b"GET /stream HTTP/1.1\r\nHost: local\xffhost\r\nAuthorization: Basic YW5uOnB3\r\n\r\n";
        assert_eq!(send(addr, bad_host).await, Some(400));
        let statuses = fuzz(addr, seed, count).await;
        println!("with {} accounts: statuses {statuses:?}", users.len());
        // Still serving (an answer, whatever it is: with accounts, this
        // address may be throttled by now), and every instance and camera
        // subscription given back.
        assert!(send(addr, b"GET /api/state HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.is_some(), "no answer after the fuzzing");
        let host = &server.app.runtime.host;
        let start = Instant::now();
        loop {
            let viewers: u32 = host.feeds.iter().map(|f| f.stats.clients.load(std::sync::atomic::Ordering::Relaxed)).sum();
            if host.instances_in_use() == 0 && viewers == 0 {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "left behind: {} instances, {viewers} viewers", host.instances_in_use());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    println!("{} heads in {:.1} s", 2 * count, started.elapsed().as_secs_f64());
}
