//! The media folder on a filesystem that fails: a FUSE mount (see
//! `support/faultfs.rs`) with a file that gives `EIO` part-way and one whose
//! reads never come back. Only the affected response fails; the host, its
//! camera and the other files keep being served, on the same HTTP thread.

use framewire::config::ServeArgs;
use framewire_tests::faultfs::{FaultFs, Fault, File};
use framewire_tests::*;
use http_body_util::BodyExt;
use std::time::{Duration, Instant};

const MIB: usize = 1024 * 1024;
/// The server's media read timeout, in seconds.
const READ_TIMEOUT_S: u64 = 5;

fn pattern(n: usize, seed: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 7 + seed) % 251) as u8).collect()
}

/// A response's status and as much of its body as came, and whether the
/// body ended cleanly.
async fn download(addr: std::net::SocketAddr, path: &str) -> (u16, Vec<u8>, bool) {
    let response = open(addr, path, &[]).await.unwrap();
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let mut got = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => got.extend_from_slice(f.data_ref().map_or(&[][..], |d| &d[..])),
            Err(_) => return (status, got, false),
        }
    }
    (status, got, true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_or_stalled_file_fails_only_its_own_response() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let good = pattern(2 * MIB, 1);
    let eio = pattern(2 * MIB, 2);
    let files = vec![
        File { name: "good.bin".into(), data: good.clone(), fault: Fault::None },
        File { name: "eio.bin".into(), data: eio.clone(), fault: Fault::EioFrom(MIB as u64) },
        File { name: "stall.bin".into(), data: pattern(MIB, 3), fault: Fault::Stall },
    ];
    let fs = FaultFs::mount(&mnt, files).expect("mount a FUSE filesystem (needs /dev/fuse, and root or fusermount3)");
    let server = start_with(ServeArgs {
        cameras: vec!["cam=test:64x48@10".into()],
        media: Some(mnt.clone()),
        cache_dir: Some(dir.path().join("cache").display().to_string()),
        // One HTTP thread: a read that blocked it would block everything.
        http_threads: Some(1),
        media_read_timeout_s: Some(READ_TIMEOUT_S),
        ..Default::default()
    })
    .await
    .unwrap();
    let addr = server.addr;

    let (status, body, whole) = download(addr, "/media/good.bin").await;
    assert!(status == 200 && whole && body == good, "good.bin: {status}, {} bytes, whole: {whole}", body.len());

    // EIO at 1 MiB: a 5xx, or a 200 cut short after bytes that are right.
    let (status, body, whole) = download(addr, "/media/eio.bin").await;
    assert!(
        status >= 500 || (status == 200 && !whole && body.len() < eio.len() && eio.starts_with(&body)),
        "eio.bin: {status}, {} bytes, ended cleanly: {whole}",
        body.len()
    );

    // A read that never comes back.
    let started = Instant::now();
    let stalled = tokio::spawn(async move {
        let r = download(addr, "/media/stall.bin").await;
        (r, started.elapsed())
    });
    let waiting = Instant::now();
    while fs.held() == 0 {
        assert!(waiting.elapsed() < Duration::from_secs(30), "stall.bin's read never reached the filesystem");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Meanwhile the same thread serves other files, the camera, the state.
    let limit = Duration::from_secs(60);
    for _ in 0..3 {
        let (status, body, whole) = tokio::time::timeout(limit, download(addr, "/media/good.bin")).await.expect("good.bin while stall.bin hangs");
        assert!(status == 200 && whole && body == good, "good.bin during the stall: {status}, {} bytes", body.len());
        let snap = tokio::time::timeout(limit, get(addr, "/snapshot")).await.unwrap().unwrap();
        assert_eq!((snap.status, decode_jpeg(&snap.body).unwrap()), (200, (64, 48)));
    }
    let served_by = started.elapsed();
    assert!(!stalled.is_finished(), "stall.bin ended before the read timeout");

    // The stalled response fails at the read timeout (a 5xx if its head had
    // not gone yet), and nothing else does.
    let ((status, body, whole), took) = tokio::time::timeout(limit, stalled).await.expect("stall.bin never ended").unwrap();
    assert!(
        status >= 500 || (status == 200 && !whole && body.is_empty()),
        "stall.bin: {status}, {} bytes, ended cleanly: {whole}",
        body.len()
    );
    assert!(took >= Duration::from_secs(READ_TIMEOUT_S) - Duration::from_millis(100), "cut after {took:?}");
    assert!(served_by < took, "other requests took {served_by:?}, the stalled one {took:?}");
    assert_eq!(state(addr).await.unwrap()["cameras"].as_array().unwrap().len(), 1);
    let (status, body, whole) = download(addr, "/media/good.bin").await;
    assert!(status == 200 && whole && body == good, "good.bin after: {status}");
    // FUSE cannot say what its cache holds: every read went to the pool.
    let m = scrape(addr).await;
    let (inline, pool) = (series_value(&m, "framewire_media_reads_total{path=\"inline\"}"), series_value(&m, "framewire_media_reads_total{path=\"pool\"}"));
    assert!(inline == 0.0 && pool >= 5.0, "media reads: {inline} inline, {pool} on the pool");

    fs.release();
    drop(server);
}
