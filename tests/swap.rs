//! Swapping a route's component under live traffic, by file and by the
//! admin API, and refusing broken components.

use framewire::config::ServeArgs;
use framewire::admin::Endpoint;
use framewire_tests::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The built-in MJPEG component with a custom section appended: the same
/// behaviour under a different SHA-256.
fn variant(n: u32) -> Vec<u8> {
    framewire_core::wasm::with_custom_section(framewire::components::MJPEG, "framewire-variant", &n.to_le_bytes())
}

fn sha(bytes: &[u8]) -> String {
    framewire::runtime::sha256_hex(bytes)
}

/// The `mjpeg` route's entry in `/api/state`.
async fn mjpeg_state(addr: std::net::SocketAddr) -> serde_json::Value {
    let s = state(addr).await.unwrap();
    s["components"].as_array().unwrap().iter().find(|c| c["route"] == "mjpeg").unwrap().clone()
}

async fn mjpeg_sha(addr: std::net::SocketAddr) -> String {
    mjpeg_state(addr).await["sha256"].as_str().unwrap().to_string()
}

async fn wait_for_sha(addr: std::net::SocketAddr, want: &str) -> Duration {
    let start = Instant::now();
    loop {
        let c = mjpeg_state(addr).await;
        if c["sha256"] == want {
            return start.elapsed();
        }
        assert!(start.elapsed() < Duration::from_secs(10), "swap to {want} never showed: {c}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Replace a file atomically (rename over) or in place.
fn replace(path: &Path, bytes: &[u8], rename: bool) {
    if rename {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, bytes).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    } else {
        std::fs::write(path, bytes).unwrap();
    }
}

async fn serve_from_file(dir: &Path) -> (framewire::Server, PathBuf) {
    let file = dir.join("mjpeg.wasm");
    std::fs::write(&file, variant(0)).unwrap();
    let server = start_with(ServeArgs {
        cameras: vec!["cam=test:160x120@30".into()],
        routes: vec![format!("mjpeg={}", file.display())],
        ..Default::default()
    })
    .await
    .unwrap();
    (server, file)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swap_twenty_times_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let (server, file) = serve_from_file(dir.path()).await;
    let addr = server.addr;
    let admin = server.admin.as_ref().unwrap().endpoint.clone();
    assert_eq!(mjpeg_sha(addr).await, sha(&variant(0)));

    // Five viewers for the whole run.
    let streams: Vec<_> = (0..5)
        .map(|_| tokio::spawn(async move { read_stream(addr, "/stream", Duration::from_secs(12)).await }))
        .collect();
    // Four clients looping snapshots until 2,000 requests are done.
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (done, failed) = (done.clone(), failed.clone());
            tokio::spawn(async move {
                while done.fetch_add(1, Ordering::Relaxed) < 2000 {
                    match get(addr, "/snapshot").await {
                        Ok(r) if r.status == 200 && !r.body.is_empty() => {}
                        other => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            eprintln!("failed request: {:?}", other.map(|r| r.status));
                        }
                    }
                }
            })
        })
        .collect();

    let mut latencies = Vec::new();
    for i in 1..=20u32 {
        let bytes = variant(i);
        let start = Instant::now();
        match i % 3 {
            0 => {
                framewire::admin::swap_command(&admin, "mjpeg", &write_tmp(dir.path(), &bytes)).await.unwrap();
            }
            1 => replace(&file, &bytes, true),
            _ => replace(&file, &bytes, false),
        }
        wait_for_sha(addr, &sha(&bytes)).await;
        latencies.push(start.elapsed());
    }
    for c in clients {
        c.await.unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0, "no request failed during 20 swaps");
    assert!(done.load(Ordering::Relaxed) >= 2000);

    for s in streams {
        let (head, frames) = s.await.unwrap().expect("stream not cut");
        assert_eq!(head.status, 200);
        let gaps = frames.windows(2).map(|w| w[1].at - w[0].at).max().unwrap();
        assert!(gaps < Duration::from_millis(700), "stream uninterrupted (largest gap {gaps:?})");
        assert!(frames.len() > 200, "{} frames in 12 s", frames.len());
    }
    let c = mjpeg_state(addr).await;
    assert_eq!(c["sha256"], sha(&variant(20)));
    assert_eq!(c["previous_sha256"], sha(&variant(19)));
    eprintln!("swap latencies (file or admin → first state showing it): {latencies:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_on_demand_stays_until_the_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (server, file) = serve_from_file(dir.path()).await;
    let (addr, admin) = (server.addr, server.admin.as_ref().unwrap().endpoint.clone());
    // The watcher has read the file at least once.
    replace(&file, &variant(1), false);
    wait_for_sha(addr, &sha(&variant(1))).await;

    framewire::admin::swap_command(&admin, "mjpeg", &write_tmp(dir.path(), &variant(2))).await.unwrap();
    wait_for_sha(addr, &sha(&variant(2))).await;
    // Reading the file and changing its times leave its content alone.
    std::fs::read(&file).unwrap();
    std::fs::File::options().write(true).open(&file).unwrap().set_modified(std::time::SystemTime::now()).unwrap();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(1) {
        assert_eq!(mjpeg_sha(addr).await, sha(&variant(2)), "the swap was undone after {:?}", start.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A new file content takes over again.
    replace(&file, &variant(3), true);
    wait_for_sha(addr, &sha(&variant(3))).await;
    assert_eq!(mjpeg_state(addr).await["previous_sha256"], sha(&variant(2)));
}

fn write_tmp(dir: &Path, bytes: &[u8]) -> PathBuf {
    let p = dir.join("upload.wasm");
    std::fs::write(&p, bytes).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_components_are_refused_and_the_old_one_serves() {
    let dir = tempfile::tempdir().unwrap();
    let (server, file) = serve_from_file(dir.path()).await;
    let (addr, admin) = (server.addr, server.admin.as_ref().unwrap().endpoint.clone());
    let good = sha(&variant(0));
    let empty_component = b"\0asm\x0d\0\x01\0".to_vec();
    let core_module = b"\0asm\x01\0\0\0".to_vec();
    for (bytes, why) in [
        (b"garbage, not wasm".to_vec(), "not a valid wasm component"),
        (core_module, "not a valid wasm component"),
        (empty_component, "does not export wasi:http/incoming-handler"),
    ] {
        let err = framewire::admin::swap_command(&admin, "mjpeg", &write_tmp(dir.path(), &bytes)).await.unwrap_err();
        assert!(format!("{err:#}").contains(why), "{err:#}");
        assert_eq!(mjpeg_sha(addr).await, good, "the old version keeps serving");
        assert_eq!(get(addr, "/snapshot").await.unwrap().status, 200);
    }
    let c = mjpeg_state(addr).await;
    assert!(c["last_error"].as_str().unwrap().contains("does not export"), "{c}");

    // Through the file watcher too.
    replace(&file, b"more garbage", true);
    let start = Instant::now();
    loop {
        let c = mjpeg_state(addr).await;
        if c["last_error"].as_str().unwrap_or("").contains("not a valid wasm component") {
            assert_eq!(c["sha256"], good);
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "watcher never reported the bad file: {c}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let err = framewire::admin::swap_command(&admin, "nope", &write_tmp(dir.path(), &variant(1))).await.unwrap_err();
    assert!(format!("{err:#}").contains("no route named"), "{err:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_is_a_private_socket_per_server() {
    use std::os::unix::fs::PermissionsExt;
    let cam = || ServeArgs { cameras: vec!["cam=test:64x48@5".into()], ..Default::default() };
    // Two servers side by side, each with its own socket named after its address.
    let (a, b) = (start_with(cam()).await.unwrap(), start_with(cam()).await.unwrap());
    let socket = |s: &framewire::Server| match &s.admin.as_ref().unwrap().endpoint {
        Endpoint::Socket(p) => p.clone(),
        other => panic!("not a socket: {other}"),
    };
    let (sa, sb) = (socket(&a), socket(&b));
    assert_ne!(sa, sb);
    assert!(sa.file_name().unwrap().to_string_lossy().contains(&a.addr.port().to_string()), "{}", sa.display());
    assert_eq!(std::fs::metadata(&sa).unwrap().permissions().mode() & 0o777, 0o600, "only its owner may connect");
    assert_eq!(std::fs::metadata(sa.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
    let dir = tempfile::tempdir().unwrap();
    let f = write_tmp(dir.path(), &variant(3));
    // `framewire swap --listen ADDR` finds it from the served address.
    let found = framewire::admin::find(b.addr, None, None, sb.parent().unwrap()).unwrap();
    assert_eq!(found, Endpoint::Socket(sb.clone()));
    framewire::admin::swap_command(&found, "mjpeg", &f).await.unwrap();
    assert_eq!(mjpeg_sha(b.addr).await, sha(&variant(3)));
    assert_ne!(mjpeg_sha(a.addr).await, sha(&variant(3)), "the other server is untouched");
    // A second server for the same address is refused while the first runs;
    // the socket goes with its server.
    let again = ServeArgs { admin: Some(sa.display().to_string()), ..cam() };
    let err = start_with(again).await.err().expect("the socket is taken");
    assert!(format!("{err:#}").contains("another framewire"), "{err:#}");
    drop(a);
    assert!(!sa.exists(), "socket removed when its server stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_admin_api_always_needs_a_token_and_a_local_host() {
    let run = tempfile::tempdir().unwrap();
    let args = |token: Option<&str>| ServeArgs {
        cameras: vec!["cam=test:64x48@5".into()],
        admin: Some("127.0.0.1:0".into()),
        admin_token: token.map(String::from),
        // The token file goes where the socket would: here, beside the cache.
        cache_dir: Some(run.path().display().to_string()),
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let f = write_tmp(dir.path(), &variant(7));

    // Loopback included: no token given, one is generated into a 0600 file.
    let server = start_with(args(None)).await.unwrap();
    let admin = server.admin.as_ref().unwrap();
    let Endpoint::Tcp(addr, token) = &admin.endpoint else { panic!("not TCP") };
    let file = admin.token_file.clone().expect("a token file");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), *token);
    assert!(token.len() >= 32);
    let wrong = Endpoint::Tcp(*addr, "wrong".into());
    let err = framewire::admin::swap_command(&wrong, "mjpeg", &f).await.unwrap_err();
    assert!(format!("{err:#}").contains("401"), "{err:#}");
    let no_token = raw(*addr, b"GET /routes HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();
    assert!(no_token.starts_with("HTTP/1.1 401"), "{no_token:.60}");
    // `framewire swap` reads the token file for the served address.
    let found = framewire::admin::find(server.addr, Some(&addr.to_string()), None, file.parent().unwrap()).unwrap();
    framewire::admin::swap_command(&found, "mjpeg", &f).await.unwrap();
    assert_eq!(mjpeg_sha(server.addr).await, sha(&variant(7)));
    // DNS rebinding: the right token under a foreign Host is still refused.
    let rebound = format!("GET /routes HTTP/1.1\r\nHost: evil.example:8079\r\nAuthorization: Bearer {token}\r\n\r\n");
    let answer = raw(*addr, rebound.as_bytes()).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 421"), "{answer:.60}");
    drop(server);

    let server = start_with(args(Some("s3cret"))).await.unwrap();
    let Endpoint::Tcp(addr, _) = server.admin.as_ref().unwrap().endpoint else { panic!("not TCP") };
    framewire::admin::swap_command(&Endpoint::Tcp(addr, "s3cret".into()), "mjpeg", &f).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_components_are_cached_by_hash() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let file = dir.path().join("mjpeg.wasm");
    std::fs::write(&file, variant(0)).unwrap();
    let args = || ServeArgs {
        cameras: vec!["cam=test:64x48@5".into()],
        routes: vec![format!("mjpeg={}", file.display())],
        cache_dir: Some(cache.display().to_string()),
        ..Default::default()
    };
    let entries = |sha: &str| {
        std::fs::read_dir(&cache)
            .map(|d| d.flatten().filter(|e| e.file_name().to_string_lossy().starts_with(sha)).count())
            .unwrap_or(0)
    };
    let server = start_with(args()).await.unwrap();
    assert_eq!(entries(&sha(&variant(0))), 1, "compiled once, cached");
    let up = write_tmp(dir.path(), &variant(1));
    framewire::admin::swap_command(&server.admin.as_ref().unwrap().endpoint, "mjpeg", &up).await.unwrap();
    assert_eq!(entries(&sha(&variant(1))), 1);
    drop(server);

    // A damaged entry is ignored and rewritten, never trusted.
    let entry = std::fs::read_dir(&cache).unwrap().flatten().find(|e| e.file_name().to_string_lossy().starts_with(&sha(&variant(0)))).unwrap();
    std::fs::write(entry.path(), b"damaged").unwrap();
    let server = start_with(args()).await.unwrap();
    assert_eq!(mjpeg_sha(server.addr).await, sha(&variant(0)));
    assert_eq!(get(server.addr, "/snapshot").await.unwrap().status, 200);
    assert!(std::fs::metadata(entry.path()).unwrap().len() > 1000, "entry rewritten");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_version_is_released_when_its_last_stream_ends() {
    use http_body_util::BodyExt;
    let dir = tempfile::tempdir().unwrap();
    let (server, file) = serve_from_file(dir.path()).await;
    let addr = server.addr;
    let old = Arc::downgrade(&server.app.routes.get("mjpeg").unwrap().current.load_full());

    // A viewer whose loop runs in an instance of the old version, and one
    // whose stream the old version handed to the host; both receiving.
    let mut body = open(addr, "/stream?relay=0", &[]).await.unwrap().into_body();
    body.frame().await.unwrap().unwrap();
    let mut relayed = open(addr, "/stream", &[]).await.unwrap().into_body();
    relayed.frame().await.unwrap().unwrap();
    async fn read_bytes(body: &mut hyper::body::Incoming, n: usize) {
        let mut got = 0;
        while got < n {
            got += body.frame().await.unwrap().unwrap().data_ref().map_or(0, |d| d.len());
        }
    }

    replace(&file, &variant(1), true);
    wait_for_sha(addr, &sha(&variant(1))).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(old.upgrade().is_some(), "the old version went while a stream still used it");
    read_bytes(&mut body, 20_000).await;
    read_bytes(&mut relayed, 20_000).await;

    // The viewer leaves: the instance notices within its frame wait (1 s)
    // and the old version is dropped with it.
    drop(body);
    let start = Instant::now();
    while old.upgrade().is_some() {
        assert!(start.elapsed() < Duration::from_secs(5), "the old version outlived its last stream");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The new one serves, and the relayed stream goes on without any
    // version of the component.
    assert_eq!(get(addr, "/snapshot").await.unwrap().status, 200);
    read_bytes(&mut relayed, 40_000).await;
}
