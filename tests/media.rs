//! The media route end to end: a real host serving a temporary folder over
//! real sockets, checked against RFC 9110 semantics.

use framewire::config::ServeArgs;
use framewire_tests::*;
use http_body_util::BodyExt;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, UNIX_EPOCH};

/// Held by the tests that load the machine or measure this process's memory,
/// so that they neither disturb nor are disturbed by one another.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Media {
    dir: tempfile::TempDir,
    server: framewire::Server,
}

/// A media folder with known content, and a host serving it.
async fn media() -> Media {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("sub dir")).unwrap();
    std::fs::write(root.join("data.bin"), pattern(1000)).unwrap();
    // Written an hour ago: its Last-Modified is a strong validator.
    let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options().write(true).open(root.join("data.bin")).unwrap().set_modified(an_hour_ago).unwrap();
    std::fs::write(root.join("empty.txt"), b"").unwrap();
    std::fs::write(root.join("sub dir/<b>&.txt"), b"nested").unwrap();
    std::fs::write(root.join(".env"), b"PASSWORD=hunter2").unwrap();
    std::fs::create_dir_all(root.join(".git")).unwrap();
    std::fs::write(root.join(".git/config"), b"[remote]").unwrap();
    std::fs::write(root.join("page.html"), b"<script>alert(1)</script>").unwrap();
    std::fs::write(root.join("icon.svg"), b"<svg xmlns='http://www.w3.org/2000/svg'/>").unwrap();
    rustix::fs::mknodat(rustix::fs::CWD, root.join("fifo"), rustix::fs::FileType::Fifo, rustix::fs::Mode::from(0o644), 0).unwrap();
    std::fs::write(dir.path().join("secret.txt"), b"TOP SECRET OUTSIDE THE ROOT").unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("escape.txt")).unwrap();
    std::os::unix::fs::symlink("/etc", root.join("etc")).unwrap();
    std::os::unix::fs::symlink("data.bin", root.join("inside-link.bin")).unwrap();
    for ext in ["mp4", "webm", "mkv", "mov", "m4a", "mp3", "ogg", "pdf", "jpg", "png", "m3u8", "ts", "txt", "xyz123"] {
        std::fs::write(root.join(format!("t.{ext}")), b"x").unwrap();
    }
    let server = start_with(ServeArgs {
        cameras: vec!["cam=test:64x48@5".into()],
        media: Some(root),
        ..Default::default()
    })
    .await
    .unwrap();
    Media { dir, server }
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

impl Media {
    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        fetch_with(self.server.addr, "GET", path, headers).await.unwrap()
    }
    fn root(&self) -> std::path::PathBuf {
        self.dir.path().join("root")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_file_with_validators() {
    let m = media().await;
    let r = m.get("/media/data.bin", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(&r.body[..], &pattern(1000)[..]);
    assert_eq!(r.header("content-length"), Some("1000"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    let etag = r.header("etag").unwrap();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "strong ETag: {etag}");
    let lm = httpdate::parse_http_date(r.header("last-modified").unwrap()).unwrap();
    let mtime = std::fs::metadata(m.root().join("data.bin")).unwrap().modified().unwrap();
    assert!(mtime.duration_since(lm).unwrap() < Duration::from_secs(1));

    let h = fetch_with(m.server.addr, "HEAD", "/media/data.bin", &[]).await.unwrap();
    assert_eq!(h.status, 200);
    assert!(h.body.is_empty());
    for name in ["content-length", "etag", "last-modified", "content-type", "accept-ranges"] {
        assert_eq!(h.header(name), r.header(name), "HEAD has GET's {name}");
    }
    let p = fetch_with(m.server.addr, "POST", "/media/data.bin", &[]).await.unwrap();
    assert_eq!((p.status, p.header("allow")), (405, Some("GET, HEAD")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_ranges() {
    let m = media().await;
    let data = pattern(1000);
    for (range, start, end) in [
        ("bytes=0-99", 0, 99),
        ("bytes=990-", 990, 999),
        ("bytes=-10", 990, 999),
        ("bytes=-5000", 0, 999),
        ("bytes=500-99999", 500, 999),
        ("bytes=7-7", 7, 7),
    ] {
        let r = m.get("/media/data.bin", &[("range", range)]).await;
        assert_eq!(r.status, 206, "{range}");
        assert_eq!(r.header("content-range").unwrap(), format!("bytes {start}-{end}/1000"), "{range}");
        assert_eq!(r.header("content-length").unwrap(), (end - start + 1).to_string());
        assert_eq!(&r.body[..], &data[start..=end], "{range}");
    }
    for range in ["bytes=-0", "bytes=1000-", "bytes=5000-6000"] {
        let r = m.get("/media/data.bin", &[("range", range)]).await;
        assert_eq!(r.status, 416, "{range}");
        assert_eq!(r.header("content-range"), Some("bytes */1000"), "{range}");
    }
    for range in ["bytes=abc", "items=0-5", "bytes=5-1", "bytes 0-5", "bytes=0-5;x"] {
        let r = m.get("/media/data.bin", &[("range", range)]).await;
        assert_eq!(r.status, 200, "{range} is ignored");
        assert_eq!(r.body.len(), 1000);
    }
}

/// Parse a multipart/byteranges body into (content-range, bytes) pairs.
fn byteranges(r: &Reply) -> Vec<(String, Vec<u8>)> {
    let ct = r.header("content-type").unwrap();
    let boundary = ct.strip_prefix("multipart/byteranges; boundary=").expect(ct);
    let delim = format!("--{boundary}");
    let body = &r.body[..];
    let mut parts = Vec::new();
    let mut pos = 0;
    let find = |from: usize, needle: &[u8]| body[from..].windows(needle.len()).position(|w| w == needle).map(|p| p + from);
    loop {
        let at = find(pos, delim.as_bytes()).expect("delimiter");
        let after = at + delim.len();
        if &body[after..after + 2] == b"--" {
            assert_eq!(&body[after + 2..], b"\r\n", "closing delimiter ends the body");
            break;
        }
        let head_end = find(after, b"\r\n\r\n").unwrap();
        let head = std::str::from_utf8(&body[after + 2..head_end]).unwrap();
        let cr = head.lines().find_map(|l| l.strip_prefix("Content-Range: ")).unwrap().to_string();
        let (a, b) = cr.strip_prefix("bytes ").unwrap().split_once('/').unwrap().0.split_once('-').unwrap();
        let len = b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap() + 1;
        let start = head_end + 4;
        parts.push((cr, body[start..start + len].to_vec()));
        assert_eq!(&body[start + len..start + len + 2], b"\r\n");
        pos = start + len;
    }
    parts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multiple_ranges() {
    let m = media().await;
    let data = pattern(1000);
    let r = m.get("/media/data.bin", &[("range", "bytes=900-909, 0-9,5-19,20-29")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-length").unwrap().parse::<usize>().unwrap(), r.body.len());
    let parts = byteranges(&r);
    assert_eq!(parts.len(), 2, "overlapping and adjacent ranges coalesced");
    assert_eq!(parts[0].0, "bytes 900-909/1000", "in the order asked for");
    assert_eq!(parts[0].1, &data[900..910]);
    assert_eq!(parts[1].0, "bytes 0-29/1000");
    assert_eq!(parts[1].1, &data[0..30]);

    // No amplification: too many ranges, or ranges adding up past the size.
    let many = format!("bytes={}", (0..40).map(|i| format!("{}-{}", i * 20, i * 20 + 1)).collect::<Vec<_>>().join(","));
    for range in [many.as_str(), "bytes=0-,0-,0-,0-", "bytes=0-999,1-999"] {
        let r = m.get("/media/data.bin", &[("range", range)]).await;
        assert_eq!(r.status, 200, "{range:.40}");
        assert_eq!(r.body.len(), 1000);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_requests() {
    let m = media().await;
    let first = m.get("/media/data.bin", &[]).await;
    let etag = first.header("etag").unwrap().to_string();
    let lm = first.header("last-modified").unwrap().to_string();
    let old = "Mon, 01 Jan 2001 00:00:00 GMT";

    let r = m.get("/media/data.bin", &[("if-none-match", &etag)]).await;
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    assert_eq!(m.get("/media/data.bin", &[("if-none-match", &format!("\"other\", W/{etag}"))]).await.status, 304);
    assert_eq!(m.get("/media/data.bin", &[("if-none-match", "\"other\"")]).await.status, 200);
    assert_eq!(m.get("/media/data.bin", &[("if-modified-since", &lm)]).await.status, 304);
    assert_eq!(m.get("/media/data.bin", &[("if-modified-since", old)]).await.status, 200);

    assert_eq!(m.get("/media/data.bin", &[("if-match", "\"other\"")]).await.status, 412);
    assert_eq!(m.get("/media/data.bin", &[("if-match", &etag)]).await.status, 200);
    assert_eq!(m.get("/media/data.bin", &[("if-unmodified-since", old)]).await.status, 412);
    assert_eq!(m.get("/media/data.bin", &[("if-unmodified-since", &lm)]).await.status, 200);

    let r = m.get("/media/data.bin", &[("range", "bytes=0-9"), ("if-range", &etag)]).await;
    assert_eq!((r.status, r.body.len()), (206, 10), "If-Range with the current ETag");
    let r = m.get("/media/data.bin", &[("range", "bytes=0-9"), ("if-range", "\"stale\"")]).await;
    assert_eq!((r.status, r.body.len()), (200, 1000), "If-Range with an old ETag: full body");
    let r = m.get("/media/data.bin", &[("range", "bytes=0-9"), ("if-range", &lm)]).await;
    assert_eq!(r.status, 206, "If-Range with the Last-Modified date");
    let r = m.get("/media/data.bin", &[("range", "bytes=0-9"), ("if-range", old)]).await;
    assert_eq!(r.status, 200, "If-Range with another date");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_replaced_with_the_same_size_and_time_gets_a_new_etag() {
    // What `cp -p` or `rsync -t` of another version does: size and mtime
    // unchanged, different bytes. A cache revalidating must not get 304.
    let m = media().await;
    let path = m.root().join("replaced.bin");
    std::fs::write(&path, b"first version").unwrap();
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    let first = m.get("/media/replaced.bin", &[]).await;
    let etag = first.header("etag").unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let tmp = m.root().join("replaced.tmp");
    std::fs::write(&tmp, b"other version").unwrap();
    std::fs::File::options().write(true).open(&tmp).unwrap().set_modified(mtime).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), mtime);

    let r = m.get("/media/replaced.bin", &[("if-none-match", &etag)]).await;
    assert_eq!((r.status, &r.body[..]), (200, &b"other version"[..]), "old ETag {etag}, now {:?}", r.header("etag"));
    assert_ne!(r.header("etag"), Some(etag.as_str()));
    assert_eq!(r.header("last-modified"), first.header("last-modified"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_types_and_empty_files() {
    let m = media().await;
    for (ext, ct) in [
        ("mp4", "video/mp4"),
        ("webm", "video/webm"),
        ("mkv", "video/x-matroska"),
        ("mov", "video/quicktime"),
        ("m4a", "audio/mp4"),
        ("mp3", "audio/mpeg"),
        ("ogg", "audio/ogg"),
        ("pdf", "application/pdf"),
        ("jpg", "image/jpeg"),
        ("png", "image/png"),
        ("m3u8", "application/vnd.apple.mpegurl"),
        ("ts", "video/mp2t"),
        ("txt", "text/plain; charset=utf-8"),
        ("xyz123", "application/octet-stream"),
    ] {
        let r = m.get(&format!("/media/t.{ext}"), &[]).await;
        assert_eq!(r.header("content-type"), Some(ct), "{ext}");
    }
    let r = m.get("/media/empty.txt", &[]).await;
    assert_eq!((r.status, r.body.len(), r.header("content-length")), (200, 0, Some("0")));
    let r = m.get("/media/empty.txt", &[("range", "bytes=0-")]).await;
    assert_eq!((r.status, r.header("content-range")), (416, Some("bytes */0")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_outside_the_root() {
    let m = media().await;
    for path in [
        "/media/../secret.txt",
        "/media/%2e%2e/secret.txt",
        "/media/%2E%2E/secret.txt",
        "/media/sub%20dir/%2e%2e/%2e%2e/secret.txt",
        "/media/..%5csecret.txt",
        "/media/%5c..%5csecret.txt",
        "/media/%2fetc/passwd",
        "/media//etc/passwd",
        "/media/data.bin%00.txt",
        "/media/escape.txt",
        "/media/etc/passwd",
        "/media/etc/",
        "/media/nope.bin",
        "/media/data.bin/",
    ] {
        let r = raw(m.server.addr, format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
        assert!(r.starts_with("HTTP/1.1 404") || r.starts_with("HTTP/1.1 400"), "{path}: {r:.60}");
        assert!(!r.contains("SECRET") && !r.contains("root:"), "{path} leaked");
    }
    let r = m.get("/media/inside-link.bin", &[]).await;
    assert_eq!((r.status, r.body.len()), (200, 1000), "links inside the root work");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings() {
    let m = media().await;
    let r = m.get("/media/", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let html = String::from_utf8_lossy(&r.body);
    assert!(html.contains("href=\"data.bin\""), "{html}");
    assert!(html.contains("href=\"sub%20dir/\""));

    let r = m.get("/media/", &[("accept", "application/json")]).await;
    let j = r.json();
    let names: Vec<&str> = j["entries"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names[0], "sub dir", "folders first");
    assert!(names.contains(&"data.bin") && names.contains(&"inside-link.bin"));
    assert!(!names.contains(&"escape.txt"), "links leading outside are not listed");
    let data = j["entries"].as_array().unwrap().iter().find(|e| e["name"] == "data.bin").unwrap();
    assert_eq!((data["size"].as_u64(), data["type"].as_str()), (Some(1000), Some("file")));

    let r = m.get("/media/sub%20dir/", &[]).await;
    let html = String::from_utf8_lossy(&r.body);
    assert!(html.contains("&lt;b&gt;&amp;.txt"), "names are escaped: {html}");
    assert!(html.contains("href=\"%3Cb%3E%26.txt\""));
    let r = m.get("/media/sub%20dir/%3Cb%3E%26.txt", &[]).await;
    assert_eq!(&r.body[..], b"nested");

    let r = m.get("/media/sub%20dir", &[]).await;
    assert_eq!((r.status, r.header("location")), (301, Some("/media/sub%20dir/")));
    let r = m.get("/media", &[]).await;
    assert_eq!((r.status, r.header("location")), (301, Some("/media/")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_media_folder_is_picked_up() {
    // The folder is opened once, not per request; replacing it (a new folder
    // renamed into place) must still show within a couple of seconds.
    let m = media().await;
    assert_eq!(m.get("/media/data.bin", &[]).await.status, 200);
    let fresh = m.dir.path().join("fresh");
    std::fs::create_dir(&fresh).unwrap();
    std::fs::write(fresh.join("new.txt"), b"new folder").unwrap();
    std::fs::rename(m.root(), m.dir.path().join("old")).unwrap();
    std::fs::rename(&fresh, m.root()).unwrap();
    let start = std::time::Instant::now();
    let r = loop {
        let r = m.get("/media/new.txt", &[]).await;
        if r.status == 200 || start.elapsed() > Duration::from_secs(5) {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!((r.status, &r.body[..]), (200, &b"new folder"[..]), "the new folder never showed");
    assert!(start.elapsed() < Duration::from_secs(3), "took {:?}", start.elapsed());
    assert_eq!(m.get("/media/data.bin", &[]).await.status, 404, "the old folder is still served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_gib_sparse_file_streams_in_bounded_memory() {
    let _alone = HEAVY.lock().await;
    let m = media().await;
    let size: u64 = 4 << 30;
    let f = std::fs::File::create(m.root().join("big.bin")).unwrap();
    f.set_len(size).unwrap();
    std::os::unix::fs::FileExt::write_at(&f, b"THE END", size - 7).unwrap();

    let r = fetch_with(m.server.addr, "HEAD", "/media/big.bin", &[]).await.unwrap();
    assert_eq!(r.header("content-length"), Some("4294967296"));
    let r = m.get("/media/big.bin", &[("range", "bytes=-7")]).await;
    assert_eq!((r.status, &r.body[..]), (206, &b"THE END"[..]));
    let r = m.get("/media/big.bin", &[("range", "bytes=4294967289-4294967295")]).await;
    assert_eq!(&r.body[..], b"THE END");

    let before = rss_bytes();
    let mut peak = before;
    let resp = open(m.server.addr, "/media/big.bin", &[]).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let (mut total, mut tail) = (0u64, Vec::new());
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            total += data.len() as u64;
            if total > size - 64 {
                tail.extend_from_slice(&data);
            }
            if total % (256 << 20) < data.len() as u64 {
                peak = peak.max(rss_bytes());
            }
        }
    }
    assert_eq!(total, size);
    assert!(tail.ends_with(b"THE END"));
    let grown = peak.saturating_sub(before);
    assert!(grown < 64 << 20, "RSS grew {} MiB streaming 4 GiB", grown >> 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_rewritten_while_served_never_completes_with_mixed_bytes() {
    let _alone = HEAVY.lock().await;
    let m = media().await;
    let path = m.root().join("changing.bin");
    let old = vec![b'A'; 32 << 20];
    std::fs::write(&path, &old).unwrap();
    let resp = open(m.server.addr, "/media/changing.bin", &[]).await.unwrap();
    let etag = resp.headers()["etag"].to_str().unwrap().to_string();
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert!(first.iter().all(|b| *b == b'A'));
    // Rewrite in place while the rest is still on its way.
    overwrite(&path, b'B');
    let mut received = first.len();
    let mut failed = false;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), body.frame()).await.expect("no stall") {
            Some(Ok(f)) => received += f.into_data().map_or(0, |d| d.len()),
            Some(Err(_)) => {
                failed = true;
                break;
            }
            None => break,
        }
    }
    assert!(failed, "the response under ETag {etag} must not complete ({received} bytes received)");
    assert!(received < old.len());
    let fresh = m.get("/media/changing.bin", &[("range", "bytes=0-0")]).await;
    assert_ne!(fresh.header("etag"), Some(etag.as_str()), "new content, new ETag");
    assert_eq!(&fresh.body[..], b"B");
}

fn overwrite(path: &Path, byte: u8) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all(&vec![byte; 32 << 20]).unwrap();
    f.sync_all().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_files_rewritten_under_requests_never_show_a_newer_version() {
    // A writer rewrites a 100 kB file in place every 10 ms, each version all
    // one letter (a, b, c, … in turn), while requests (the whole file, and a
    // range of two reads) keep coming. A completed response's ETag names the
    // version it was served as (by its mtime). Its bytes may come from that
    // version, or from the one before it when that rewrite was still copying
    // as the handler looked (Linux stamps a write when it starts: README);
    // bytes of any later version mean a change went unnoticed.
    let _alone = HEAVY.lock().await;
    let m = media().await;
    let path = m.root().join("flip.bin");
    const SIZE: usize = 100_000;
    let letter = |v: usize| b'a' + (v % 26) as u8;
    let mtime = |f: &std::fs::File| f.metadata().unwrap().modified().unwrap().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    std::fs::write(&path, vec![letter(0); SIZE]).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (path, stop) = (path.clone(), stop.clone());
        std::thread::spawn(move || {
            use std::os::unix::fs::FileExt;
            let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            // The mtime of each version, in order: same size, only times tell.
            let mut versions = vec![mtime(&file)];
            while !stop.load(Ordering::Relaxed) {
                file.write_all_at(&vec![letter(versions.len()); SIZE], 0).unwrap();
                versions.push(mtime(&file));
                // Changes closer together than the file system's timestamp
                // tick (4 ms here, 10 ms at most) cannot be told apart.
                std::thread::sleep(Duration::from_millis(10));
            }
            versions
        })
    };
    // (mtime named by the ETag, letters in the body) per completed response.
    let mut completed: Vec<(u128, [bool; 26])> = Vec::new();
    let mut refused = 0;
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(4) {
        for (range, len) in [(None, SIZE), (Some("bytes=1000-99999"), 99_000)] {
            let headers: Vec<(&str, &str)> = range.iter().map(|r| ("range", *r)).collect();
            let Ok(r) = fetch_with(m.server.addr, "GET", "/media/flip.bin", &headers).await else {
                refused += 1; // cut off mid-body
                continue;
            };
            match r.status {
                200 | 206 => {
                    assert_eq!(r.body.len(), len);
                    let etag = r.header("etag").unwrap();
                    let nanos = etag.trim_matches('"').rsplit('-').next().and_then(|n| u128::from_str_radix(n, 16).ok());
                    let mut letters = [false; 26];
                    for b in r.body.iter() {
                        letters[(b - b'a') as usize] = true;
                    }
                    completed.push((nanos.unwrap_or_else(|| panic!("no mtime in ETag {etag}")), letters));
                }
                // Refused before anything was sent.
                500 => refused += 1,
                s => panic!("unexpected status {s}"),
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let versions = writer.join().unwrap();
    let by_mtime: HashMap<u128, usize> = versions.iter().enumerate().map(|(v, t)| (*t, v)).collect();
    assert_eq!(by_mtime.len(), versions.len(), "two versions share an mtime: the writer is too fast for this file system");
    let mut mid_write = 0;
    for (nanos, letters) in &completed {
        let v = *by_mtime.get(nanos).unwrap_or_else(|| panic!("an ETag names mtime {nanos}, which no version had"));
        let seen = (0..26u8).filter(|i| letters[*i as usize]).map(|i| b'a' + i);
        let mut from_previous = false;
        for l in seen {
            if v > 0 && l == letter(v - 1) {
                from_previous = true;
            } else if l != letter(v) {
                panic!("a response under version {v}'s ETag holds '{}' bytes: a change went unnoticed", l as char);
            }
        }
        mid_write += from_previous as usize;
    }
    let whole = completed.len();
    eprintln!("{whole} completed ({mid_write} caught a rewrite mid-write), {refused} refused, {} rewrites", versions.len() - 1);
    assert!(whole >= 20 && refused >= 5, "the race was not exercised: {whole} completed, {refused} refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_files_fifos_and_active_content() {
    let m = media().await;
    for hidden in ["/media/.env", "/media/.git/config", "/media/.git/", "/media/%2Eenv"] {
        let r = m.get(hidden, &[]).await;
        assert_eq!(r.status, 404, "{hidden}");
        assert!(!String::from_utf8_lossy(&r.body).contains("hunter2"));
    }
    // A FIFO would block an open until a writer comes: it is refused at once,
    // and the thread is free for the next request.
    for _ in 0..4 {
        let r = tokio::time::timeout(Duration::from_secs(5), m.get("/media/fifo", &[])).await.expect("a FIFO answered at once");
        assert_eq!(r.status, 404);
    }
    assert_eq!(m.get("/media/data.bin", &[]).await.status, 200);
    for (file, active) in [("page.html", true), ("icon.svg", true), ("data.bin", false), ("t.mp4", false)] {
        let r = m.get(&format!("/media/{file}"), &[]).await;
        assert_eq!(r.status, 200);
        let csp = r.header("content-security-policy");
        assert_eq!(csp == Some("sandbox"), active, "{file}: {csp:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_ignores_range_and_a_fresh_date_does_not_validate_if_range() {
    let m = media().await;
    let r = fetch_with(m.server.addr, "HEAD", "/media/data.bin", &[("range", "bytes=0-9")]).await.unwrap();
    assert_eq!(r.status, 200, "HEAD with Range is answered as without it");
    assert_eq!(r.header("content-length"), Some("1000"));
    assert!(r.header("content-range").is_none());

    // A file written within the last second: its Last-Modified is weak, so
    // an If-Range date cannot validate a range of it (the full file comes).
    std::fs::write(m.root().join("fresh.bin"), pattern(100)).unwrap();
    let full = m.get("/media/fresh.bin", &[]).await;
    let lm = full.header("last-modified").unwrap().to_string();
    let r = m.get("/media/fresh.bin", &[("range", "bytes=0-9"), ("if-range", &lm)]).await;
    assert_eq!((r.status, r.body.len()), (200, 100), "weak date");
    // data.bin was last written an hour ago: its date validates.
    let lm = m.get("/media/data.bin", &[]).await.header("last-modified").unwrap().to_string();
    let r = m.get("/media/data.bin", &[("range", "bytes=0-9"), ("if-range", &lm)]).await;
    assert_eq!((r.status, r.body.len()), (206, 10), "strong date");
}
