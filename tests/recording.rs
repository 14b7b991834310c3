//! Recording into the media library: the test camera recorded with nobody
//! watching, in segments that ffprobe reads with the right length, served
//! with ranges by the media route and listed per camera and day; a file a
//! crash left unfinished recovered at start; retention by size.

use framewire::config::ServeArgs;
use framewire::record::h264::JpegToH264;
use framewire::record::mp4::{Codec, Segment, Track};
use framewire_tests::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// (duration in seconds, codec, width, height, frames) as ffprobe reads
/// them; fails if ffmpeg finds any error decoding the whole file.
fn probe(file: &Path) -> (f64, String, u64, u64, u64) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "format=duration:stream=codec_name,width,height,nb_read_frames", "-of", "json"])
        .arg(file)
        .output()
        .expect("ffprobe (./dev test installs ffmpeg)");
    assert!(out.status.success() && out.stderr.is_empty(), "ffprobe {}: {}", file.display(), String::from_utf8_lossy(&out.stderr));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &j["streams"][0];
    let num = |v: &serde_json::Value| v.as_str().map_or_else(|| v.as_f64().unwrap(), |t| t.parse().unwrap());
    (
        num(&j["format"]["duration"]),
        s["codec_name"].as_str().unwrap().to_string(),
        s["width"].as_u64().unwrap(),
        s["height"].as_u64().unwrap(),
        num(&s["nb_read_frames"]) as u64,
    )
}

/// The finished segments under `dir`, oldest first, and whether any file
/// is still being written.
fn segments(dir: &Path) -> (Vec<PathBuf>, bool) {
    let mut files = Vec::new();
    let mut writing = false;
    for day in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(day.path()).into_iter().flatten().flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if name.ends_with(".rec") || name.ends_with(".tmp") {
                writing = true;
            } else {
                files.push(f.path());
            }
        }
    }
    files.sort();
    (files, writing)
}

/// The types of a file's top-level boxes: an ordinary MP4 with its index
/// first is ftyp, moov, mdat; a fragmented one has moof/mdat pairs.
fn top_level_boxes(file: &[u8]) -> Vec<String> {
    let mut at = 0;
    let mut out = Vec::new();
    while at + 8 <= file.len() {
        let mut size = u32::from_be_bytes(file[at..at + 4].try_into().unwrap()) as u64;
        if size == 1 {
            size = u64::from_be_bytes(file[at + 8..at + 16].try_into().unwrap());
        }
        out.push(String::from_utf8_lossy(&file[at + 4..at + 8]).into_owned());
        at += size.max(8) as usize;
    }
    out
}

/// A server whose `cameras` record into `dir/media` (created), caching in `dir/cache`.
async fn serve_recording(dir: &Path, cameras: Vec<String>) -> framewire::Server {
    let media = dir.join("media");
    std::fs::create_dir_all(&media).unwrap();
    start_with(ServeArgs {
        cameras,
        media: Some(media),
        cache_dir: Some(dir.join("cache").display().to_string()),
        ..Default::default()
    })
    .await
    .unwrap()
}

/// The first segment an RTSP camera recording 3 s segments finishes,
/// checked: `codec` at 640x480, about 3 s, its index first.
async fn first_rtsp_segment(cam_dir: &Path, codec: &str) -> PathBuf {
    wait_for("a finished segment", Duration::from_secs(60), || !segments(cam_dir).0.is_empty()).await;
    let file = segments(cam_dir).0.remove(0);
    let (secs, found, w, h, frames) = probe(&file);
    assert_eq!((found.as_str(), w, h), (codec, 640, 480), "{}", file.display());
    assert!((2.9..4.5).contains(&secs) && frames >= 20, "{secs} s, {frames} frames");
    assert_eq!(top_level_boxes(&std::fs::read(&file).unwrap()), ["ftyp", "moov", "mdat"]);
    file
}

async fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A file as a crash leaves it: 25 frames of 64x48 at 10 fps, the last 5
/// never written out.
fn unfinished(path: &Path) {
    let calls = std::sync::atomic::AtomicU64::new(0);
    let mut enc = JpegToH264::new(10.0);
    let mut seg = None;
    for i in 0..25u64 {
        let rgb: Vec<u8> = (0..64 * 48 * 3).map(|p| ((p as u64 + i * 5) % 251) as u8).collect();
        let jpeg = framewire::encode::rgb_to_jpeg(&rgb, 64, 48, 80, &calls).unwrap();
        let (_, au) = enc.encode(&jpeg, i % 10 == 0).unwrap().unwrap();
        let seg = seg.get_or_insert_with(|| {
            let codec = Codec::Avc { sps: au.sps.clone().unwrap(), pps: au.pps.clone().unwrap() };
            let track = Track { width: 64, height: 48, codec };
            Segment::create(path, track).unwrap()
        });
        seg.push(au.data, i * 9000, au.key).unwrap();
    }
    seg.unwrap().abandon();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_camera_is_recorded_in_segments_the_library_serves() {
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    let cam_dir = media.join("recordings/front");
    let crashed = cam_dir.join("2026-01-01/00-00-00.mp4");
    std::fs::create_dir_all(crashed.parent().unwrap()).unwrap();
    unfinished(&crashed);
    assert!(!crashed.exists());

    let started = Instant::now();
    let server = serve_recording(dir.path(), vec!["front=test:320x240@15,record,record-segment=4s".into()]).await;
    let addr = server.addr;

    // The crash's file, finished at start with its two whole fragments.
    wait_for("the unfinished file recovered", Duration::from_secs(30), || crashed.exists()).await;
    let (secs, codec, w, h, frames) = probe(&crashed);
    assert_eq!((codec.as_str(), w, h, frames), ("h264", 64, 48, 20), "{secs}");
    assert_eq!(top_level_boxes(&std::fs::read(&crashed).unwrap()), ["ftyp", "moov", "mdat"]);
    assert!((secs - 2.0).abs() < 0.01, "recovered {secs} s, expected 2");
    std::fs::remove_dir_all(crashed.parent().unwrap()).unwrap();

    // Nobody watches, and the camera is recorded all the same.
    wait_for("two finished segments", Duration::from_secs(60), || segments(&cam_dir).0.len() >= 2).await;
    let m = scrape(addr).await;
    assert!(series_value(&m, "framewire_recording_segments_total{camera=\"front\"}") >= 2.0, "{m:?}");
    assert!(series_value(&m, "framewire_recording_frames_encoded_total{camera=\"front\"}") >= 60.0, "{m:?}");
    assert_eq!(series_value(&m, "framewire_recording_failed{camera=\"front\"}"), 0.0);
    let state = camera_state(addr, "front").await.unwrap();
    assert_eq!(state["clients"], 0);
    let rec = &state["recording"];
    assert!(rec["segments"].as_u64().is_some_and(|n| n >= 2) && rec["error"].is_null(), "{state}");
    assert_eq!(rec["folder"], "recordings/front");
    assert!(rec["file"].as_str().is_some_and(|f| f.starts_with("recordings/front/") && f.ends_with(".mp4")), "{state}");

    // Each finished segment: 4 s of H.264 (from its first frame to the
    // keyframe that started the next), moov first.
    let (files, _) = segments(&cam_dir);
    for f in &files[..2] {
        let (secs, codec, w, h, frames) = probe(f);
        assert_eq!((codec.as_str(), w, h), ("h264", 320, 240), "{}", f.display());
        assert!((3.9..4.2).contains(&secs), "{}: {secs} s", f.display());
        assert!(frames >= 15, "{}: {frames} frames", f.display());
        assert_eq!(top_level_boxes(&std::fs::read(f).unwrap()), ["ftyp", "moov", "mdat"], "{}", f.display());
    }

    // The library lists the camera, its day and its segments (never a file
    // being written), and serves them with ranges.
    let day = files[0].parent().unwrap().file_name().unwrap().to_string_lossy().into_owned();
    let cams = fetch_with(addr, "GET", "/media/recordings/", &[("accept", "application/json")]).await.unwrap().json();
    assert_eq!(cams["entries"][0]["name"], "front", "{cams}");
    let list = fetch_with(addr, "GET", &format!("/media/recordings/front/{day}/"), &[("accept", "application/json")]).await.unwrap().json();
    let names: Vec<&str> = list["entries"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    let first = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(names.contains(&first.as_str()) && names.iter().all(|n| n.ends_with(".mp4") && !n.starts_with('.')), "{names:?}");
    assert_eq!(list["entries"][0]["content_type"], "video/mp4");
    let href = format!("/media/recordings/front/{day}/{first}");
    let whole = get(addr, &href).await.unwrap();
    assert_eq!((whole.status, &whole.body[..]), (200, &std::fs::read(&files[0]).unwrap()[..]));
    let part = fetch_with(addr, "GET", &href, &[("range", "bytes=100-199")]).await.unwrap();
    assert_eq!((part.status, &part.body[..]), (206, &whole.body[100..200]));

    // Stopping finishes the segment being written: ~10 s recorded in all.
    wait_for("10 s of recording", Duration::from_secs(60), || started.elapsed() > Duration::from_secs(10)).await;
    let stopped = Instant::now();
    drop(server);
    wait_for("the last segment finished", Duration::from_secs(30), || !segments(&cam_dir).1).await;
    let ended = Instant::now();
    let (files, _) = segments(&cam_dir);
    let total: f64 = files.iter().map(|f| probe(f).0).sum();
    // Recording runs from before start-up returned until the cameras have
    // stopped, a little after the server was dropped; the last frame lasts
    // as long as the one before (1/15 s).
    let (least, most) = ((stopped - started).as_secs_f64() - 2.5, (ended - started).as_secs_f64() + 0.1);
    assert!((least..=most).contains(&total), "{total:.2} s recorded, expected {least:.2}..{most:.2}, in {} files", files.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_the_newest_segments_within_the_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    // In a folder of its own choosing.
    let cam_dir = dir.path().join("media/archive/yard");
    let spec = "r=test:320x240@15,record,record-segment=1s,record-max=100K,record-dir=archive/yard";
    let server = serve_recording(dir.path(), vec![spec.into()]).await;
    let addr = server.addr;
    let mut seen = Vec::new();
    wait_for("eight finished segments", Duration::from_secs(90), || {
        for f in segments(&cam_dir).0 {
            if !seen.contains(&f) {
                seen.push(f);
            }
        }
        seen.len() >= 8
    })
    .await;
    let m = scrape(addr).await;
    assert!(series_value(&m, "framewire_recording_segments_total{camera=\"r\"}") >= 8.0);
    assert_eq!(camera_state(addr, "r").await.unwrap()["recording"]["folder"], "archive/yard");
    let (left, _) = segments(&cam_dir);
    let total: u64 = left.iter().map(|f| f.metadata().map_or(0, |m| m.len())).sum();
    assert!(total <= 100 * 1024, "{total} bytes left in {left:?}");
    // The oldest went first.
    seen.sort();
    assert!(!left.contains(&seen[0]) && left.contains(seen.last().unwrap()), "left {left:?} of {seen:?}");
    for f in &left {
        assert!(probe(f).0 > 0.5, "{}", f.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtsp_h264_is_recorded_as_it_came_without_decoding() {
    let rtsp = framewire_tests::rtsp::RtspServer::start(0).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = serve_recording(dir.path(), vec![format!("rh={},record,record-segment=3s", rtsp.url("/h264"))]).await;
    let addr = server.addr;
    first_rtsp_segment(&dir.path().join("media/recordings/rh"), "h264").await;
    // Unwatched: nothing decoded, nothing encoded, for viewers or for the recording.
    let state = camera_state(addr, "rh").await.unwrap();
    assert_eq!(state["status"], "idle", "{state}");
    assert_eq!(state["frames_encoded"], 0, "{state}");
    let m = scrape(addr).await;
    assert_eq!(series_value(&m, "framewire_recording_frames_encoded_total{camera=\"rh\"}"), 0.0);
    assert!(series_value(&m, "framewire_recording_frames_written_total{camera=\"rh\"}") >= 20.0);
    // A viewer meanwhile gets decoded frames, and the recording goes on.
    let (_, live) = read_stream(addr, "/cameras/rh/stream", Duration::from_secs(2)).await.unwrap();
    assert!(live.len() >= 5 && live.iter().all(|f| decode_jpeg(&f.part.body).ok() == Some((640, 480))), "{} frames", live.len());
    let written = series_value(&scrape(addr).await, "framewire_recording_frames_written_total{camera=\"rh\"}");
    let start = Instant::now();
    while series_value(&scrape(addr).await, "framewire_recording_frames_written_total{camera=\"rh\"}") <= written {
        assert!(start.elapsed() < Duration::from_secs(30), "recording stopped while watched");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtsp_h265_is_recorded_as_it_came_and_its_live_view_says_why_it_is_blank() {
    let rtsp = framewire_tests::rtsp::RtspServer::start(0).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = serve_recording(dir.path(), vec![format!("hevc={},record,record-segment=3s", rtsp.url("/h265"))]).await;
    let addr = server.addr;
    first_rtsp_segment(&dir.path().join("media/recordings/hevc"), "hevc").await;
    let state = camera_state(addr, "hevc").await.unwrap();
    assert!(state["format"].as_str().unwrap().starts_with("H.265 640x480 from rtsp://"), "{state}");
    // No decoder: a viewer gets a card at the camera's size, once a second.
    let (_, live) = read_stream(addr, "/cameras/hevc/stream", Duration::from_secs(3)).await.unwrap();
    assert!((2..=5).contains(&live.len()), "{} cards in 3 s", live.len());
    assert!(live.iter().all(|f| decode_jpeg(&f.part.body).ok() == Some((640, 480))));
}
