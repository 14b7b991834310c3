//! Components that trap, spin or hoard memory are contained: their request
//! ends with a 5xx, everyone else carries on.

use framewire::config::ServeArgs;
use framewire_tests::*;
use std::time::{Duration, Instant};

async fn with_misbehaving_route() -> (framewire::Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("misbehave.wasm");
    std::fs::write(&wasm, MISBEHAVE).unwrap();
    let config = dir.path().join("framewire.toml");
    std::fs::write(
        &config,
        format!("[routes.bad]\npaths = [\"/bad/\"]\ncomponent = \"{}\"\n", wasm.display()),
    )
    .unwrap();
    let server = start_with(ServeArgs {
        cameras: vec!["cam=test:160x120@30".into()],
        config: Some(config),
        cpu_limit_ms: Some(300),
        ..Default::default()
    })
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
