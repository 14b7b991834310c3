//! End to end: a real host on an ephemeral port, real sockets, the real
//! built-in MJPEG component.

use framewire_tests::*;
use framewire_tests::slow;
use std::collections::HashSet;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_delivers_nearly_every_frame_as_decodable_jpegs() {
    let server = start(&["cam=test:320x240@30"]).await.unwrap();
    let (head, frames) = read_stream(server.addr, "/stream", Duration::from_secs(2)).await.unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-type"), Some(framewire_core::mjpeg::content_type().as_str()));
    assert!(head.header("cache-control").unwrap().contains("no-store"));

    let first = frames.first().expect("frames arrived").sequence;
    let last = frames.last().unwrap().sequence;
    let made = last - first + 1;
    let distinct: HashSet<u64> = frames.iter().map(|f| f.sequence).collect();
    assert!(made >= 45, "a 30 fps camera made only {made} frames in 2 s");
    assert!(
        distinct.len() as f64 >= 0.9 * made as f64,
        "received {} distinct of {made} frames made",
        distinct.len()
    );
    assert_eq!(distinct.len(), frames.len(), "no frame sent twice");
    for pair in frames.windows(2) {
        assert!(pair[1].sequence > pair[0].sequence, "sequence goes forward");
        assert_ne!(pair[0].part.body, pair[1].part.body, "consecutive frames differ");
    }
    for f in &frames {
        assert_eq!(f.part.header("content-type"), Some("image/jpeg"));
        assert_eq!(f.part.header("content-length").unwrap().parse::<usize>().unwrap(), f.part.body.len());
        let ts = framewire_core::mjpeg::parse_timestamp(f.part.header("x-timestamp").unwrap()).unwrap();
        assert!(ts > 1_600_000_000_000_000, "X-Timestamp is wall-clock time");
        assert_eq!(decode_jpeg(&f.part.body).unwrap(), (320, 240));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_and_named_camera_routes() {
    let server = start(&["a=test:160x120@10", "b=test:320x240@10"]).await.unwrap();
    let r = get(server.addr, "/snapshot").await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    assert_eq!(r.header("content-length").unwrap().parse::<usize>().unwrap(), r.body.len());
    assert_eq!(decode_jpeg(&r.body).unwrap(), (160, 120), "default camera is the first");

    let r = get(server.addr, "/cameras/b/snapshot").await.unwrap();
    assert_eq!(decode_jpeg(&r.body).unwrap(), (320, 240));

    let (head, frames) = read_stream(server.addr, "/cameras/b/stream", Duration::from_millis(600)).await.unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(decode_jpeg(&frames[0].part.body).unwrap(), (320, 240));

    let r = fetch(server.addr, "HEAD", "/snapshot").await.unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert!(r.header("content-length").unwrap().parse::<usize>().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_clients_all_get_frames_and_each_frame_is_encoded_once() {
    let server = start(&["cam=test:320x240@30"]).await.unwrap();
    let addr = server.addr;
    let clients: Vec<_> = (0..50)
        .map(|_| tokio::spawn(async move { read_stream(addr, "/stream", Duration::from_secs(2)).await }))
        .collect();
    let mut counts = Vec::new();
    for c in clients {
        let (head, frames) = c.await.unwrap().unwrap();
        assert_eq!(head.status, 200);
        counts.push(frames.len());
    }
    counts.sort();
    assert!(counts[0] >= 30, "every client gets frames; per-client counts: {counts:?}");

    // Once the clients are gone: no leaked instances, and once the camera
    // idles (its counts then stand still), one encoder call per capture.
    wait_for_camera(addr, "cam", Duration::from_secs(5), |c| c["clients"] == 0).await.unwrap();
    let cam = wait_for_camera(addr, "cam", Duration::from_secs(6), |c| c["status"] == "idle").await.unwrap();
    let captured = cam["frames_captured"].as_u64().unwrap();
    assert!(captured >= 60);
    assert_eq!(cam["frames_encoded"].as_u64().unwrap(), captured, "{cam}");
    assert_eq!(cam["frames_passed_through"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_clients_slow_nobody_and_memory_stays_bounded() {
    // Large frames, so per-client queueing would show plainly in RSS.
    let server = start(&["cam=test:1280x720@30"]).await.unwrap();
    let addr = server.addr;
    let before = rss_bytes();
    let mut stalled = Vec::new();
    for _ in 0..20 {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.set_recv_buffer_size(4096).unwrap();
        let mut s = s.connect(addr).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut s, b"GET /stream HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
        stalled.push(s);
    }
    let (_, frames) = read_stream(addr, "/stream", Duration::from_secs(3)).await.unwrap();
    let made = frames.last().unwrap().sequence - frames[0].sequence + 1;
    assert!(
        frames.len() as f64 >= 0.9 * made as f64,
        "a reading client got {} of {made} frames beside 20 stalled ones",
        frames.len()
    );
    let grown = rss_bytes().saturating_sub(before);
    // 20 clients x 90 frames of ~100 KB would be ~180 MB if frames queued.
    assert!(grown < 48 << 20, "RSS grew by {} MiB with 20 stalled clients", grown >> 20);
    // The reader has gone; the stalled ones are still connected.
    wait_for_camera(addr, "cam", Duration::from_secs(5), |c| c["clients"] == 20).await.unwrap();
    drop(stalled);
    wait_for_camera(addr, "cam", Duration::from_secs(5), |c| c["clients"] == 0).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_skips_to_the_newest_frame() {
    let server = start(&["cam=test:320x240@30"]).await.unwrap();
    let (_, frames) = read_stream(server.addr, "/stream?fps=2", Duration::from_millis(2600)).await.unwrap();
    assert!((4..=7).contains(&frames.len()), "fps=2 over 2.6 s gave {} frames", frames.len());
    for pair in frames.windows(2) {
        let gap = pair[1].sequence - pair[0].sequence;
        assert!(gap >= 10, "frames in between were skipped, not queued (gap {gap})");
        let dt = pair[1].at - pair[0].at;
        assert!(dt >= Duration::from_millis(400), "fps cap respected ({dt:?})");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_failure_keeps_clients_connected_and_recovers() {
    let server = start(&["cam=test:160x120@30,fail-after=30,down-ms=1200"]).await.unwrap();
    let addr = server.addr;
    let reader = tokio::spawn(async move { read_stream(addr, "/stream", Duration::from_millis(4500)).await });
    let down = wait_for_camera(addr, "cam", Duration::from_secs(5), |c| c["status"] == "no-signal").await.unwrap();
    assert!(down["error"].as_str().unwrap().contains("fail-after"), "{down}");
    wait_for_camera(addr, "cam", Duration::from_secs(8), |c| c["status"] == "live").await.unwrap();
    let (_, frames) = reader.await.unwrap().unwrap();
    // The same connection saw live frames, "no signal" frames (about one a
    // second) during the outage, then live frames again.
    let gaps: Vec<_> = frames.windows(2).map(|p| p[1].at - p[0].at).collect();
    let slow = gaps.iter().filter(|g| **g >= Duration::from_millis(500)).count();
    assert!(slow >= 1, "outage visible as slow frames: {gaps:?}");
    assert!(gaps.iter().all(|g| *g < Duration::from_millis(1600)), "no-signal frames keep coming: {gaps:?}");
    let last_slow = gaps.iter().rposition(|g| *g >= Duration::from_millis(500)).unwrap();
    let after = frames.len() - (last_slow + 2);
    assert!(after > 30, "live again after recovery: {after} frames after the outage");
    for f in &frames {
        decode_jpeg(&f.part.body).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_capture_is_a_failure_the_camera_recovers_from() {
    let server = start(&["cam=test:160x120@30,panic-after=20,down-ms=500"]).await.unwrap();
    let addr = server.addr;
    let reader = tokio::spawn(async move { read_stream(addr, "/stream", Duration::from_millis(4000)).await });
    let down = wait_for_camera(addr, "cam", Duration::from_secs(10), |c| c["status"] == "no-signal").await.unwrap();
    assert!(down["error"].as_str().unwrap().contains("panicked"), "{down}");
    wait_for_camera(addr, "cam", Duration::from_secs(10), |c| c["status"] == "live").await.unwrap();
    // The viewer's stream went on through it, and frames came after.
    let (_, frames) = reader.await.unwrap().unwrap();
    let last = frames.last().unwrap().sequence;
    assert!(last > 20 && frames.len() > 20, "{} frames, last {last}", frames.len());
    assert_eq!(get(addr, "/snapshot").await.unwrap().status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors_and_the_host_keeps_serving() {
    let server = start(&["cam=test:160x120@10"]).await.unwrap();
    let addr = server.addr;

    let r = get(addr, "/cameras/nope/stream").await.unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["cameras"][0], "cam");
    assert!(r.json()["error"].as_str().unwrap().contains("nope"));
    assert_eq!(get(addr, "/cameras/nope/snapshot").await.unwrap().status, 404);
    let r = get(addr, "/stream?fps=0").await.unwrap();
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("fps"));
    assert_eq!(get(addr, "/stream?fps=%ff").await.unwrap().status, 400);
    assert_eq!(get(addr, "/no/such/thing").await.unwrap().status, 404);
    assert_eq!(get(addr, "/cameras/cam/other").await.unwrap().status, 404);
    let r = fetch(addr, "POST", "/stream").await.unwrap();
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));

    for junk in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET /stream HTTP/1.1\r\nHost: localhost\r\nBad Header\r\n\r\n",
        b"GET /stream HTTP/9.9\r\n\r\n",
        b"\x00\x01\x02\x03\r\n\r\n",
    ] {
        let answer = raw(addr, junk).await.unwrap();
        assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 4"), "{junk:?} got {answer:?}");
    }
    let long = format!("GET /{} HTTP/1.1\r\nHost: localhost\r\n\r\n", "a".repeat(1 << 20));
    let answer = raw(addr, long.as_bytes()).await.unwrap();
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 4"), "{answer:.80}");

    // Still serving.
    let r = get(addr, "/snapshot").await.unwrap();
    assert_eq!(r.status, 200);
    decode_jpeg(&r.body).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_reports_cameras_clients_and_components() {
    let server = start(&["cam=test:160x120@15"]).await.unwrap();
    let addr = server.addr;
    let reader = tokio::spawn(async move { read_stream(addr, "/stream", Duration::from_secs(2)).await });
    // The measured rate settles within a second or so of start.
    let settled = |c: &serde_json::Value| c["clients"] == 1 && (12.0..=18.0).contains(&c["fps"].as_f64().unwrap());
    let cam = wait_for_camera(addr, "cam", Duration::from_secs(4), settled).await.unwrap();
    assert_eq!((cam["width"].as_u64(), cam["height"].as_u64()), (Some(160), Some(120)));
    assert_eq!(cam["status"], "live");
    assert_eq!(cam["spec"], "test:160x120@15");
    reader.await.unwrap().unwrap();
    wait_for_camera(addr, "cam", Duration::from_secs(3), |c| c["clients"] == 0).await.unwrap();

    let s = state(addr).await.unwrap();
    let comp = &s["components"][0];
    assert_eq!(comp["route"], "mjpeg");
    assert_eq!(comp["source"], "builtin:mjpeg");
    let sha = comp["sha256"].as_str().unwrap();
    assert_eq!(sha.len(), 64);
    use sha2::Digest;
    assert_eq!(sha, format!("{:x}", sha2::Sha256::digest(framewire::components::MJPEG)));
    assert!(comp["loaded_at_ms"].as_u64().unwrap() > 1_600_000_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_that_cannot_open_is_reported_and_others_run() {
    let server = start(&["cam=test:160x120@10", "usb=v4l:/dev/video63"]).await.unwrap();
    let usb = camera_state(server.addr, "usb").await.unwrap();
    assert_eq!(usb["status"], "failed");
    assert!(usb["error"].as_str().unwrap().contains("/dev/video63"), "{usb}");
    assert_eq!(get(server.addr, "/cameras/cam/snapshot").await.unwrap().status, 200);
    // The failed camera serves its "no signal" card meanwhile.
    let r = get(server.addr, "/cameras/usb/snapshot").await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(decode_jpeg(&r.body).unwrap(), (640, 480));

    let err = start(&["usb=v4l:/dev/video63"]).await.err().expect("no camera opens");
    assert!(format!("{err:#}").contains("/dev/video63"), "{err:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_component_files_are_refused_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"not wasm at all").unwrap();
    let args = framewire::config::ServeArgs {
        cameras: vec!["cam=test:160x120@10".into()],
        routes: vec![format!("mjpeg={}", garbage.display())],
        ..Default::default()
    };
    let err = start_with(args).await.err().expect("garbage refused");
    assert!(format!("{err:#}").contains("not a valid wasm component"), "{err:#}");

    let args = framewire::config::ServeArgs {
        cameras: vec!["cam=test:160x120@10".into()],
        routes: vec![format!("mjpeg={}", dir.path().join("missing.wasm").display())],
        ..Default::default()
    };
    let err = start_with(args).await.err().expect("missing file refused");
    assert!(format!("{err:#}").contains("cannot read component"), "{err:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_links_get_the_newest_frame_and_a_fast_one_every_frame() {
    slow_links("/stream").await
}

/// The same with the per-frame loop in the component instead of the host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_links_get_the_newest_frame_from_a_loop_in_the_component() {
    slow_links("/stream?relay=0").await
}

/// The slow-link tests one at a time: each has a fast reader that must get
/// nearly every frame, which two encoding cameras side by side on a busy
/// 2-core machine could deny it.
static SLOW_LINKS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn slow_links(path: &'static str) {
    let _alone = SLOW_LINKS.lock().await;
    let server = start(&["cam=test:640x480@30"]).await.unwrap();
    let addr = server.addr;
    let secs = 20;
    let read = |rate: Option<u64>| {
        tokio::spawn(async move {
            let duration = Duration::from_secs(secs);
            let (_, frames) = match rate {
                Some(rate) => read_stream_on(slow::connect_slow(addr, rate).await?, addr, path, duration).await?,
                None => read_stream(addr, path, duration).await?,
            };
            let end = framewire::frames::unix_micros(std::time::SystemTime::now());
            anyhow::Ok((frames, end))
        })
    };
    let (slowest, slow, fast) = (read(Some(100_000)), read(Some(300_000)), read(None));
    for (rate, reader) in [(100_000, slowest), (300_000, slow)] {
        let (frames, end) = reader.await.unwrap().unwrap();
        let age = worst_age(&frames, end);
        let fps = frames.len() as f64 / secs as f64;
        let bytes: usize = frames.iter().map(|f| f.part.len).sum();
        eprintln!("{path} at {rate} B/s: {} frames ({fps:.1}/s, {} B each), newest frame at most {age:?} old", frames.len(), bytes / frames.len().max(1));
        assert!(age <= Duration::from_secs(1), "at {rate} B/s the newest frame got {age:?} old");
        assert!(fps >= 3.0, "at {rate} B/s only {fps:.1} frames/s");
    }
    let (frames, _) = fast.await.unwrap().unwrap();
    let made = frames.last().unwrap().sequence - frames[0].sequence + 1;
    assert!(frames.len() as f64 >= 0.9 * made as f64, "the fast reader got {} of {made} frames", frames.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwatched_camera_idles_and_wakes_with_fresh_frames() {
    let server = start(&["cam=test:320x240@30", "on=test:160x120@10,always-on"]).await.unwrap();
    let addr = server.addr;
    let idle = wait_for_camera(addr, "cam", Duration::from_secs(5), |c| c["status"] == "idle").await.unwrap();
    let captured = |c: &serde_json::Value| c["frames_captured"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let still = camera_state(addr, "cam").await.unwrap();
    assert_eq!(captured(&still), captured(&idle), "an idle camera captures nothing: {still}");
    assert_eq!(still["status"], "idle");
    assert_eq!(still["fps"], 0.0);
    // An always-on camera captures with nobody watching.
    let on = camera_state(addr, "on").await.unwrap();
    assert_eq!(on["status"], "live", "{on}");
    let later = wait_for_camera(addr, "on", Duration::from_secs(5), |c| captured(c) > captured(&on) + 5).await.unwrap();
    assert_eq!(later["status"], "live");

    // A snapshot wakes it: a frame taken after the request, not the last one from before.
    let asked = framewire::frames::unix_micros(std::time::SystemTime::now());
    let r = get(addr, "/cameras/cam/snapshot").await.unwrap();
    assert_eq!(r.status, 200);
    let taken = framewire_core::mjpeg::parse_timestamp(r.header("x-timestamp").unwrap()).unwrap();
    assert!(taken >= asked, "snapshot of an idle camera is a new frame ({taken} < {asked})");
    decode_jpeg(&r.body).unwrap();

    // A new viewer after idling gets a new frame at once, then the full rate.
    wait_for_camera(addr, "cam", Duration::from_secs(5), |c| c["status"] == "idle").await.unwrap();
    tokio::time::sleep(framewire::frames::FRESH).await;
    let asked = std::time::Instant::now();
    let asked_us = framewire::frames::unix_micros(std::time::SystemTime::now());
    let (_, frames) = read_stream(addr, "/cameras/cam/stream", Duration::from_secs(2)).await.unwrap();
    let first = &frames[0];
    let wait = first.at - asked;
    eprintln!("first frame {wait:?} after the request, {} frames in 2 s", frames.len());
    assert!(first.captured_us >= asked_us, "the first frame is new, not the one from before idling ({} µs before)", asked_us as i64 - first.captured_us as i64);
    assert!(wait < Duration::from_millis(500), "first frame took {wait:?}");
    assert!(frames.len() >= 45, "only {} frames in 2 s", frames.len());

    // Once the viewer has gone, it idles again.
    let back = wait_for_camera(addr, "cam", Duration::from_secs(6), |c| c["status"] == "idle").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(captured(&camera_state(addr, "cam").await.unwrap()), captured(&back));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mjpg_streamer_urls_answer_like_stream_and_snapshot() {
    let server = start(&["first=test:160x120@10", "second=test:320x240@10"]).await.unwrap();
    let r = get(server.addr, "/?action=snapshot").await.unwrap();
    assert_eq!((r.status, r.header("content-type")), (200, Some("image/jpeg")));
    assert_eq!(decode_jpeg(&r.body).unwrap(), (160, 120), "the first camera");
    let (head, frames) = read_stream(server.addr, "/?action=stream", Duration::from_millis(800)).await.unwrap();
    assert_eq!(head.status, 200);
    assert!(frames.len() >= 3, "{} frames", frames.len());
    assert_eq!(decode_jpeg(&frames[0].part.body).unwrap(), (160, 120));
    // Without an action, `/` is still the page.
    let page = get(server.addr, "/").await.unwrap();
    assert!(page.header("content-type").unwrap().starts_with("text/html"));
}
