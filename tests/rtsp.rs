//! RTSP cameras against a real RTSP server (GStreamer's, on loopback):
//! JPEG passed through, H.264 decoded and encoded once per frame only while
//! someone watches, and a server that goes away and comes back.

use framewire::config::ServeArgs;
use framewire_tests::rtsp::RtspServer;
use framewire_tests::*;
use std::time::{Duration, Instant};

fn counter(state: &serde_json::Value, name: &str) -> u64 {
    state[name].as_u64().unwrap_or_else(|| panic!("no {name} in {state}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jpeg_is_passed_through_and_h264_decoded_only_while_watched() {
    let rtsp = RtspServer::start(0).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(ServeArgs {
        cameras: vec![format!("rj={}", rtsp.url("/jpeg")), format!("rh={}", rtsp.url("/h264"))],
        cache_dir: Some(dir.path().join("cache").display().to_string()),
        ..Default::default()
    })
    .await
    .unwrap();
    let addr = server.addr;

    // JPEG: the camera's own JPEGs, never encoded here.
    let (_, frames) = read_stream(addr, "/cameras/rj/stream", Duration::from_secs(3)).await.unwrap();
    assert!(frames.len() >= 10, "{} JPEG frames in 3 s", frames.len());
    for f in &frames {
        assert_eq!(decode_jpeg(&f.part.body).unwrap(), (320, 240));
    }
    let rj = camera_state(addr, "rj").await.unwrap();
    assert!(rj["format"].as_str().unwrap().starts_with("JPEG 320x240 from rtsp://127.0.0.1:"), "{rj}");
    assert!(counter(&rj, "frames_passed_through") >= 10 && counter(&rj, "frames_encoded") == 0, "{rj}");

    // H.264: decoded and encoded once per frame.
    let (_, frames) = read_stream(addr, "/cameras/rh/stream", Duration::from_secs(3)).await.unwrap();
    assert!(frames.len() >= 10, "{} H.264 frames in 3 s", frames.len());
    for f in &frames {
        assert_eq!(decode_jpeg(&f.part.body).unwrap(), (640, 480));
    }
    let rh = camera_state(addr, "rh").await.unwrap();
    assert!(rh["format"].as_str().unwrap().starts_with("H.264 640x480 from rtsp://"), "{rh}");
    assert!(counter(&rh, "frames_encoded") >= 10, "{rh}");
    assert_eq!(counter(&rh, "frames_encoded"), counter(&rh, "frames_captured"), "{rh}");

    // Nobody watches: idle, and nothing more is decoded or encoded.
    let idle = wait_for_camera(addr, "rh", Duration::from_secs(30), |c| c["status"] == "idle").await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let later = camera_state(addr, "rh").await.unwrap();
    assert_eq!(counter(&idle, "frames_encoded"), counter(&later, "frames_encoded"), "encoding while idle: {idle} → {later}");
    // And a viewer brings it back.
    let (_, frames) = read_stream(addr, "/cameras/rh/stream", Duration::from_secs(3)).await.unwrap();
    assert!(frames.len() >= 5, "{} frames after idle", frames.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_that_goes_away_and_comes_back_is_reconnected() {
    let rtsp = RtspServer::start(0).unwrap();
    let port = rtsp.port;
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(ServeArgs {
        cameras: vec![format!("rj={},always-on", rtsp.url("/jpeg"))],
        cache_dir: Some(dir.path().join("cache").display().to_string()),
        ..Default::default()
    })
    .await
    .unwrap();
    let addr = server.addr;
    wait_for_camera(addr, "rj", Duration::from_secs(30), |c| c["status"] == "live").await.unwrap();
    drop(rtsp);
    let down = wait_for_camera(addr, "rj", Duration::from_secs(30), |c| c["status"] == "no-signal").await.unwrap();
    assert!(down["error"].as_str().is_some_and(|e| !e.is_empty()), "{down}");
    // Viewers meanwhile get the no-signal card.
    let snap = get(addr, "/cameras/rj/snapshot").await.unwrap();
    assert_eq!(snap.status, 200);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let back = Instant::now();
    let _rtsp = RtspServer::start(port).unwrap();
    wait_for_camera(addr, "rj", Duration::from_secs(30), |c| c["status"] == "live").await.unwrap();
    let (_, frames) = read_stream(addr, "/cameras/rj/stream", Duration::from_secs(2)).await.unwrap();
    assert!(frames.iter().any(|f| decode_jpeg(&f.part.body).ok() == Some((320, 240))));
    println!("live again {:?} after the RTSP server came back", back.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_wanting_digest_streams_with_its_password_and_fails_clearly_without() {
    let rtsp = RtspServer::start_with(0, Some("cam:pa55")).unwrap();
    let url = |creds: &str| rtsp.url("/jpeg").replace("rtsp://", &format!("rtsp://{creds}"));
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(ServeArgs {
        cameras: vec![format!("good={}", url("cam:pa55@")), format!("wrong={}", url("cam:nope@")), format!("none={}", url(""))],
        cache_dir: Some(dir.path().join("cache").display().to_string()),
        ..Default::default()
    })
    .await
    .unwrap();
    let addr = server.addr;
    let (_, frames) = read_stream(addr, "/cameras/good/stream", Duration::from_secs(2)).await.unwrap();
    assert!(frames.len() >= 5 && frames.iter().all(|f| decode_jpeg(&f.part.body).ok() == Some((320, 240))), "{} frames", frames.len());
    for name in ["wrong", "none"] {
        let c = wait_for_camera(addr, name, Duration::from_secs(30), |c| c["status"] == "failed").await.unwrap();
        assert!(c["error"].as_str().is_some_and(|e| e.contains("401")), "{c}");
    }
    let text = get(addr, "/api/state").await.unwrap().body;
    let text = String::from_utf8_lossy(&text);
    assert!(!text.contains("pa55") && !text.contains("nope") && text.contains("rtsp://cam:***@"), "{text}");
}
