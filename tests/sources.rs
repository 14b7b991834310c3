//! Network cameras: an MJPEG stream over HTTP as a source. A fake IP
//! camera on loopback (raw TCP, so its framing is exactly what real cameras
//! send: a boundary declared with its dashes, parts without
//! Content-Length, Digest authentication, a connection dropped mid-frame,
//! a camera that goes away and comes back), and a relay chain of three
//! framewires.

use framewire::config::ServeArgs;
use framewire_tests::*;
use md5::{Digest, Md5};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const USER: &str = "admin";
const PASSWORD: &str = "s3cret:pw";
const REALM: &str = "ipcam";
const NONCE: &str = "dcd98b7102dd2f0e8b11d0f600bfb0c093";

fn md5_hex(s: &str) -> String {
    Md5::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The `key="value"` and `key=value` pairs of a Digest header.
fn digest_params(h: &str) -> std::collections::HashMap<String, String> {
    let mut out = std::collections::HashMap::new();
    let mut rest = h.trim_start_matches("Digest").trim();
    while let Some((k, v)) = rest.split_once('=') {
        let k = k.trim().trim_start_matches(',').trim().to_string();
        let (value, after) = if let Some(v) = v.strip_prefix('"') {
            let end = v.find('"').unwrap_or(v.len());
            (v[..end].to_string(), &v[(end + 1).min(v.len())..])
        } else {
            let end = v.find(',').unwrap_or(v.len());
            (v[..end].trim().to_string(), &v[end..])
        };
        out.insert(k, value);
        rest = after.trim_start_matches(',').trim();
    }
    out
}

/// Whether an Authorization header is the right Digest answer (RFC 7616,
/// MD5, qop=auth), computed here independently of the client's library.
fn digest_ok(authorization: &str) -> bool {
    let p = digest_params(authorization);
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
    let ha1 = md5_hex(&format!("{USER}:{REALM}:{PASSWORD}"));
    let ha2 = md5_hex(&format!("GET:{}", get("uri")));
    let want = md5_hex(&format!("{ha1}:{NONCE}:{}:{}:auth:{ha2}", get("nc"), get("cnonce")));
    authorization.starts_with("Digest ") && get("username") == USER && get("nonce") == NONCE && get("qop") == "auth" && get("response") == want
}

#[derive(Default)]
struct Seen {
    /// Every request head received.
    heads: Vec<String>,
    /// Streams served after authentication.
    streams: usize,
}

/// A fake IP camera serving `frames` in a loop at `/video` at about 20 fps.
/// Its first authenticated stream sends three frames and half of the
/// fourth, then drops the connection.
struct IpCam {
    addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl IpCam {
    async fn start(addr: SocketAddr, frames: Arc<Vec<Vec<u8>>>, seen: Arc<Mutex<Seen>>) -> IpCam {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let s = seen.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((conn, _)) = listener.accept().await else { return };
                conns.spawn(serve(conn, frames.clone(), s.clone()));
            }
        });
        IpCam { addr, seen, task }
    }

    /// Gone: the listener and every connection.
    fn stop(self) -> (SocketAddr, Arc<Mutex<Seen>>) {
        self.task.abort();
        (self.addr, self.seen)
    }
}

async fn serve(mut conn: TcpStream, frames: Arc<Vec<Vec<u8>>>, seen: Arc<Mutex<Seen>>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte).await.unwrap_or(0) == 0 || head.len() > 8192 {
            return;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let authorization =
        head.lines().find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("authorization")).map(|(_, v)| v.trim().to_string()));
    let first = {
        let mut seen = seen.lock().unwrap();
        seen.heads.push(head.clone());
        if !head.starts_with("GET /video ") || !authorization.as_deref().is_some_and(digest_ok) {
            None
        } else {
            seen.streams += 1;
            Some(seen.streams == 1)
        }
    };
    let Some(first) = first else {
        let challenge = format!("Digest realm=\"{REALM}\", nonce=\"{NONCE}\", qop=\"auth\", algorithm=MD5");
        let _ = conn
            .write_all(format!("HTTP/1.0 401 Unauthorized\r\nWWW-Authenticate: {challenge}\r\nContent-Length: 0\r\n\r\n").as_bytes())
            .await;
        return;
    };
    // As many cameras: the declared boundary carries the dashes, and parts
    // have no Content-Length.
    let _ = conn.write_all(b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=\"--ipcam\"\r\n\r\n").await;
    for (i, frame) in frames.iter().cycle().enumerate() {
        let mut part = b"--ipcam\r\nContent-Type: image/jpeg\r\n\r\n".to_vec();
        if first && i == 3 {
            part.extend_from_slice(&frame[..frame.len() / 2]);
            let _ = conn.write_all(&part).await;
            return;
        }
        part.extend_from_slice(frame);
        part.extend_from_slice(b"\r\n");
        if conn.write_all(&part).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Distinct JPEGs from a framewire's test camera.
async fn some_jpegs(n: usize) -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let a = start_with(ServeArgs {
        cameras: vec!["cam=test:96x64@20".into()],
        cache_dir: Some(dir.path().join("cache").display().to_string()),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut out: Vec<Vec<u8>> = Vec::new();
    while out.len() < n {
        let (_, frames) = read_stream(a.addr, "/stream", Duration::from_secs(1)).await.unwrap();
        out.extend(frames.into_iter().map(|f| f.part.body));
        out.dedup();
    }
    out.truncate(n);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ip_camera_with_digest_is_passed_through_reconnected_and_recovered() {
    let frames = Arc::new(some_jpegs(8).await);
    let served: HashSet<Vec<u8>> = frames.iter().cloned().collect();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let cam = IpCam::start("127.0.0.1:0".parse().unwrap(), frames.clone(), seen.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let pw = "s3cret%3Apw";
    let server = start_with(ServeArgs {
        cameras: vec![format!("ip=http://{USER}:{pw}@{}/video,always-on", cam.addr)],
        cache_dir: Some(dir.path().join("cache").display().to_string()),
        ..Default::default()
    })
    .await
    .unwrap();
    let addr = server.addr;

    // Live, with the camera's own bytes (nothing decoded or re-encoded), and
    // a truncated frame never served: every frame is one the camera sent.
    let state = wait_for_camera(addr, "ip", Duration::from_secs(30), |c| c["status"] == "live").await.unwrap();
    let (_, got) = read_stream(addr, "/cameras/ip/stream", Duration::from_secs(2)).await.unwrap();
    assert!(got.len() >= 5, "{} frames in 2 s", got.len());
    for f in &got {
        assert!(served.contains(&f.part.body), "frame {} is not one the camera sent ({} bytes)", f.sequence, f.part.body.len());
    }
    let snap = get(addr, "/cameras/ip/snapshot").await.unwrap();
    assert!(served.contains(&snap.body.to_vec()));
    assert_eq!((state["width"].as_u64(), state["height"].as_u64()), (Some(96), Some(64)), "{state}");

    // The password shows nowhere; the camera asked for Digest and got it.
    let text = get(addr, "/api/state").await.unwrap().body;
    let text = String::from_utf8_lossy(&text);
    assert!(!text.contains("s3cret") && text.contains(&format!("http://{USER}:***@{}/video", cam.addr)), "{text}");
    {
        let seen = seen.lock().unwrap();
        assert!(seen.heads.iter().all(|h| !h.contains("s3cret") && !h.to_ascii_lowercase().contains("basic")), "{:?}", seen.heads);
        assert!(seen.streams >= 2, "the dropped stream was not reconnected: {} streams", seen.streams);
    }
    let metrics = scrape(addr).await;
    assert!(series_value(&metrics, "framewire_camera_reconnects_total{camera=\"ip\"}") >= 1.0, "{metrics:#?}");
    assert!(series_value(&metrics, "framewire_camera_frames_passed_through_total{camera=\"ip\"}") >= 5.0, "{metrics:#?}");
    // /api/state too: the reconnect, and the bitrate while watched.
    let watching = tokio::spawn(read_stream(addr, "/cameras/ip/stream", Duration::from_secs(3)));
    let live = wait_for_camera(addr, "ip", Duration::from_secs(10), |c| c["bitrate"].as_u64().is_some_and(|b| b > 0)).await.unwrap();
    assert!(live["reconnects"].as_u64().is_some_and(|r| r >= 1) && live["recording"].is_null(), "{live}");
    watching.await.unwrap().unwrap();

    // The camera goes away: no signal, with the reason; viewers stay.
    let (cam_addr, seen) = cam.stop();
    let down = wait_for_camera(addr, "ip", Duration::from_secs(30), |c| c["status"] == "no-signal").await.unwrap();
    assert!(down["error"].as_str().is_some_and(|e| !e.is_empty()), "{down}");
    // It comes back on the same address: live again, timed.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let back = Instant::now();
    let _cam = IpCam::start(cam_addr, frames.clone(), seen).await;
    wait_for_camera(addr, "ip", Duration::from_secs(30), |c| c["status"] == "live").await.unwrap();
    let (_, got) = read_stream(addr, "/cameras/ip/stream", Duration::from_secs(1)).await.unwrap();
    assert!(!got.is_empty() && got.iter().all(|f| served.contains(&f.part.body)));
    println!("live again {:?} after the camera came back", back.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_a_clear_state_not_a_crash() {
    let frames = Arc::new(some_jpegs(2).await);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let cam = IpCam::start("127.0.0.1:0".parse().unwrap(), frames, seen).await;
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(ServeArgs {
        cameras: vec![format!("ip=http://{USER}:wrong@{}/video", cam.addr), "t=test:64x48@5".into()],
        cache_dir: Some(dir.path().join("cache").display().to_string()),
        ..Default::default()
    })
    .await
    .unwrap();
    let c = wait_for_camera(server.addr, "ip", Duration::from_secs(30), |c| c["status"] == "failed").await.unwrap();
    assert!(c["error"].as_str().is_some_and(|e| e.contains("401")), "{c}");
    // A snapshot is the no-signal card, and the other camera is fine.
    assert_eq!(get(server.addr, "/cameras/ip/snapshot").await.unwrap().status, 200);
    assert_eq!(get(server.addr, "/cameras/t/snapshot").await.unwrap().status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_chain_of_three_passes_frames_through_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let serve = |cameras: Vec<String>, n: &str| {
        let cache = dir.path().join(n).display().to_string();
        async move { start_with(ServeArgs { cameras, cache_dir: Some(cache), ..Default::default() }).await.unwrap() }
    };
    let a = serve(vec!["cam=test:160x120@10".into()], "a").await;
    let b = serve(vec![format!("hop=http://{}/cameras/cam/stream", a.addr)], "b").await;
    let c = serve(vec![format!("end=http://{}/cameras/hop/stream", b.addr)], "c").await;
    // Watch the source and the end of the chain at once: a viewer at the end
    // wakes each hop in turn (idle sources hold no connection).
    let (at_a, at_c) = tokio::join!(
        read_stream(a.addr, "/cameras/cam/stream", Duration::from_secs(8)),
        read_stream(c.addr, "/cameras/end/stream", Duration::from_secs(6)),
    );
    let source: HashSet<Vec<u8>> = at_a.unwrap().1.into_iter().map(|f| f.part.body).collect();
    let (_, end) = at_c.unwrap();
    assert!(end.len() >= 10, "{} frames at the end of the chain in 6 s", end.len());
    for f in &end {
        assert!(source.contains(&f.part.body), "frame {} at the end is not byte for byte one from the source", f.sequence);
        assert_eq!(decode_jpeg(&f.part.body).unwrap(), (160, 120));
    }
    let hop = camera_state(b.addr, "hop").await.unwrap();
    assert!(hop["format"].as_str().unwrap().contains("passed through"), "{hop}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_source_with_a_pinned_certificate_and_the_wrong_ones_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = start_with(ServeArgs {
        cameras: vec!["cam=test:128x96@10".into()],
        cache_dir: Some(dir.path().join("a").display().to_string()),
        tls_self_signed: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let pin = a.tls.as_ref().unwrap().fingerprint.clone();
    let wrong: String = pin.chars().map(|c| if c == 'A' { 'B' } else if c == ':' { ':' } else { 'A' }).collect();
    let url = format!("https://127.0.0.1:{}/cameras/cam/stream", a.addr.port());
    let b = start_with(ServeArgs {
        cameras: vec![
            format!("pinned={url},tls-fingerprint={pin}"),
            format!("wrong={url},tls-fingerprint={wrong}"),
            format!("untrusted={url}"),
            format!("insecure={url},tls-insecure"),
        ],
        cache_dir: Some(dir.path().join("b").display().to_string()),
        ..Default::default()
    })
    .await
    .unwrap();
    for name in ["pinned", "insecure"] {
        let (_, frames) = read_stream(b.addr, &format!("/cameras/{name}/stream"), Duration::from_secs(3)).await.unwrap();
        let real: Vec<_> = frames.iter().filter(|f| decode_jpeg(&f.part.body).ok() == Some((128, 96))).collect();
        assert!(real.len() >= 5, "{name}: {} frames of the source in 3 s", real.len());
    }
    let c = wait_for_camera(b.addr, "wrong", Duration::from_secs(30), |c| c["status"] == "failed").await.unwrap();
    assert!(c["error"].as_str().unwrap().contains("is not the pinned"), "{c}");
    let c = wait_for_camera(b.addr, "untrusted", Duration::from_secs(30), |c| c["status"] == "failed").await.unwrap();
    assert!(c["error"].as_str().unwrap().to_lowercase().contains("certificate"), "{c}");
}
