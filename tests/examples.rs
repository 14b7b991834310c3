//! The handlers in `examples/`, built as their READMEs say (tests/build.rs),
//! swapped into a running framewire on a route of their own, and asked.

use framewire::config::ServeArgs;
use framewire_tests::*;
use std::path::Path;
use std::time::{Duration, Instant};

const THUMBNAIL: &str = concat!(env!("OUT_DIR"), "/thumbnail.wasm");
const PYTHON_BOARD: &str = concat!(env!("OUT_DIR"), "/python_board.wasm");

/// framewire with a new route `name` at `path`, first served by the
/// built-in page component, then swapped to `wasm` through the admin API,
/// as a user would: `framewire swap NAME FILE`.
async fn serve_swapped(dir: &Path, cameras: &[&str], name: &str, path: &str, wasm: &str) -> framewire::Server {
    let config = dir.join("framewire.toml");
    std::fs::write(&config, format!("[routes.{name}]\npaths = [\"{path}\"]\ncomponent = \"builtin:page\"\n")).unwrap();
    let server = start_with(ServeArgs {
        cameras: cameras.iter().map(|c| c.to_string()).collect(),
        config: Some(config),
        cache_dir: Some(dir.join("cache").display().to_string()),
        ..Default::default()
    })
    .await
    .unwrap();
    let before = get(server.addr, &format!("{path}/cam.jpg")).await.unwrap();
    assert_ne!(before.header("content-type"), Some("image/jpeg"), "the page component answered before the swap");
    let admin = server.admin.as_ref().unwrap().endpoint.clone();
    framewire::admin::swap_command(&admin, name, Path::new(wasm)).await.unwrap();
    let route = state(server.addr).await.unwrap()["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["route"] == name)
        .unwrap()
        .clone();
    assert_eq!(route["sha256"], framewire::runtime::sha256_hex(&std::fs::read(wasm).unwrap()), "{route}");
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_thumbnail_scales_frames_in_the_sandbox_and_revalidates_by_frame() {
    let dir = tempfile::tempdir().unwrap();
    // One frame a second: a page that polls sees the same frame many times.
    let server = serve_swapped(dir.path(), &["cam=test:320x240@1"], "thumbs", "/thumbnails", THUMBNAIL).await;
    let addr = server.addr;

    let r = get(addr, "/thumbnails/cam.jpg?w=80").await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    assert_eq!(decode_jpeg(&r.body).unwrap(), (80, 60), "scaled, aspect kept");
    let seq: u64 = r.header("x-frame-sequence").unwrap().parse().unwrap();
    let etag = r.header("etag").unwrap().to_string();
    assert_eq!(etag, format!("\"cam-{seq}-80\""));

    // Revalidating: 200 with a newer frame, or 304 and no body while the
    // frame is the same. At one frame a second a 304 must come.
    let start = Instant::now();
    let mut last = etag;
    loop {
        let r = fetch_with(addr, "GET", "/thumbnails/cam.jpg?w=80", &[("if-none-match", &last)]).await.unwrap();
        if r.status == 304 {
            assert!(r.body.is_empty());
            assert_eq!(r.header("etag"), Some(last.as_str()));
            break;
        }
        assert_eq!(r.status, 200);
        let now = r.header("etag").unwrap().to_string();
        assert_ne!(now, last, "a 200 to If-None-Match must be a newer frame");
        last = now;
        assert!(start.elapsed() < Duration::from_secs(20), "never a 304");
    }

    // Never scaled up; the default width; bad input.
    assert_eq!(decode_jpeg(&get(addr, "/thumbnails/cam.jpg?w=5000").await.unwrap().body).unwrap(), (320, 240));
    assert_eq!(decode_jpeg(&get(addr, "/thumbnails/cam.jpg").await.unwrap().body).unwrap(), (160, 120));
    for (path, status) in [("/thumbnails/cam.jpg?w=0", 400), ("/thumbnails/cam.jpg?w=x", 400), ("/thumbnails/nope.jpg", 404)] {
        let r = get(addr, path).await.unwrap();
        assert_eq!(r.status, status, "{path}: {:?}", r.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_board_lists_cameras_and_serves_their_frames() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_swapped(dir.path(), &["cam=test:320x240@10", "yard=test:160x120@5"], "board", "/board", PYTHON_BOARD).await;
    let addr = server.addr;

    let r = get(addr, "/board?format=json").await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    let j = r.json();
    let cams = j["cameras"].as_array().unwrap();
    let names: Vec<_> = cams.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["cam", "yard"]);
    assert_eq!((cams[1]["width"].as_u64(), cams[1]["target_fps"].as_f64()), (Some(160), Some(5.0)));
    assert_eq!(j["host"], state(addr).await.unwrap()["version"], "{j}");

    let page = get(addr, "/board/").await.unwrap();
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    let html = String::from_utf8_lossy(&page.body);
    assert!(html.contains("<td>yard</td>") && html.contains("src='cam.jpg'"), "{html}");

    let frame = get(addr, "/board/yard.jpg").await.unwrap();
    assert_eq!(frame.status, 200, "{:?}", frame.body);
    assert_eq!(decode_jpeg(&frame.body).unwrap(), (160, 120));
    assert!(frame.header("x-frame-sequence").unwrap().parse::<u64>().unwrap() > 0);

    let head = fetch(addr, "HEAD", "/board/cam.jpg").await.unwrap();
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty() && head.header("content-length").unwrap().parse::<u64>().unwrap() > 0);
    assert_eq!(get(addr, "/board/nope.jpg").await.unwrap().status, 404);
    assert_eq!(fetch(addr, "POST", "/board").await.unwrap().status, 405);

    // Concurrent requests, each with an interpreter of its own.
    let tasks: Vec<_> = (0..8).map(|_| tokio::spawn(async move { get(addr, "/board?format=json").await })).collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().status, 200);
    }
}
