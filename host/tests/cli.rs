//! The `framewire` binary: start-up output and clear errors for bad input.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

fn framewire(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_framewire")).args(args).output().unwrap()
}

fn fails_with(args: &[&str], needle: &str) {
    let out = framewire(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} should fail");
    assert!(err.contains(needle), "{args:?}: stderr lacks {needle:?}:\n{err}");
}

/// `framewire serve ARGS` running, and its stdout (stderr discarded).
fn serve(args: &[&str]) -> (Child, BufReader<ChildStdout>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_framewire"))
        .arg("serve")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    (child, out)
}

/// `framewire serve` on a small test camera, caching in `cache`, started by
/// a shell after `limit` (a `ulimit`), with `extra` arguments; with its
/// first line of output (the URL, if it came up) and stderr kept.
fn serve_limited(limit: &str, cache: &std::path::Path, extra: &[&str]) -> (Child, String) {
    let script = format!(
        r#"{limit}; bin=$0; cache=$1; shift; exec "$bin" serve --listen 127.0.0.1:0 --admin off --camera t=test:64x48@5 --cache-dir "$cache" "$@""#
    );
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .arg(env!("CARGO_BIN_EXE_framewire"))
        .arg(cache)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    (child, line)
}

/// A plain HTTP/1.0 GET sent over a socket, no client library; reads on it
/// time out after `read_timeout`.
fn http10_request(addr: &str, path: &str, read_timeout: Duration) -> std::net::TcpStream {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(read_timeout)).unwrap();
    std::io::Write::write_all(&mut s, format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes()).unwrap();
    s
}

/// The whole answer to a plain HTTP/1.0 GET.
fn http10_get(addr: &str, path: &str) -> String {
    let mut s = http10_request(addr, path, Duration::from_secs(10));
    let mut resp = Vec::new();
    let _ = std::io::Read::read_to_end(&mut s, &mut resp);
    String::from_utf8_lossy(&resp).into_owned()
}

#[test]
fn bad_input_is_a_clear_error() {
    fails_with(&["serve", "--camera", "x=ftp://nowhere"], "unknown camera kind");
    fails_with(&["serve", "--camera", "x=rtsp://127.0.0.1:1/cam", "--listen", "127.0.0.1:0"], "DESCRIBE");
    fails_with(&["serve", "--camera", "x=http://u:pw@127.0.0.1:1/cam", "--listen", "127.0.0.1:0"], "x=http://u:***@127.0.0.1:1/cam: cannot connect");
    fails_with(&["serve", "--camera", "x=test:99999x1"], "out of range");
    fails_with(&["serve", "--camera", "justaname"], "NAME=SOURCE");
    fails_with(&["serve", "--camera", "usb=v4l:/dev/video63", "--listen", "127.0.0.1:0"], "/dev/video63");
    fails_with(&["serve", "--config", "/nonexistent.toml"], "cannot read config");
    fails_with(&["serve", "--listen", "not-an-address"], "invalid value");
    fails_with(&["serve", "--route", "mjpeg=/nonexistent.wasm", "--listen", "127.0.0.1:0"], "cannot read component");
    fails_with(&["nonsense"], "unrecognized subcommand");
    // A second recording camera that cannot write: a clear error, and the
    // first camera's recorder ends rather than holding the exit.
    let media = tempfile::tempdir().unwrap();
    std::fs::write(media.path().join("blocker"), b"").unwrap();
    let media_arg = media.path().display().to_string();
    let args = ["serve", "--listen", "127.0.0.1:0", "--media", &media_arg, "--camera", "a=test,record", "--camera", "b=test,record,record-dir=blocker/x"];
    fails_with(&args, "the media folder must be writable to record");
}

#[test]
fn lists_cameras() {
    let out = framewire(&["cameras"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("test"));
}

#[test]
fn serve_prints_its_url_and_serves() {
    let (mut child, mut out) = serve(&["--listen", "127.0.0.1:0", "--camera", "t=test:160x120@10"]);
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let url = line.trim().strip_prefix("framewire listening on ").unwrap_or_else(|| panic!("{line:?}")).to_string();
    let mut page = String::new();
    out.read_line(&mut page).unwrap();
    let text = http10_get(url.strip_prefix("http://").unwrap(), "/snapshot");
    let html = http10_get(url.strip_prefix("http://").unwrap(), "/");
    child.kill().unwrap();
    let _ = child.wait();
    assert_eq!(page.trim(), format!("page         {url}/"));
    assert!(text.starts_with("HTTP/1.0 200"), "{text:.200}");
    assert!(text.contains("content-type: image/jpeg"));
    assert!(html.starts_with("HTTP/1.0 200") && html.contains("data-camera=\"t\""), "{html:.300}");
}

#[test]
fn swap_finds_the_server_by_its_address_and_exits_non_zero_with_the_reason() {
    let dir = std::env::temp_dir().join(format!("framewire-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let junk = dir.join("junk.wasm");
    std::fs::write(&junk, b"junk").unwrap();
    // Admin sockets go to $XDG_RUNTIME_DIR/framewire: a private one here.
    let run = dir.join("run");
    std::fs::create_dir_all(&run).unwrap();
    let cli = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_framewire")).args(args).env("XDG_RUNTIME_DIR", &run).output().unwrap();
    let stderr = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();

    let missing = cli(&["swap", "mjpeg", "/nonexistent.wasm", "--listen", "127.0.0.1:1"]);
    assert!(stderr(&missing).contains("cannot read"), "{}", stderr(&missing));
    let nobody = cli(&["swap", "mjpeg", junk.to_str().unwrap(), "--listen", "127.0.0.1:1"]);
    assert!(!nobody.status.success());
    assert!(stderr(&nobody).contains("cannot reach the admin API at unix:"), "{}", stderr(&nobody));

    let mut child = Command::new(env!("CARGO_BIN_EXE_framewire"))
        .args(["serve", "--listen", "127.0.0.1:0", "--camera", "t=test:64x48@5"])
        .env("XDG_RUNTIME_DIR", &run)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    let addr = first.trim().strip_prefix("framewire listening on http://").unwrap().to_string();
    let admin_line = loop {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "no admin line");
        if line.trim_start().starts_with("admin") {
            break line;
        }
    };
    assert!(admin_line.contains(&format!("unix:{}/framewire/admin-", run.display())), "{admin_line}");
    let refused = cli(&["swap", "mjpeg", junk.to_str().unwrap(), "--listen", &addr]);
    let unknown = cli(&["swap", "nope", junk.to_str().unwrap(), "--listen", &addr]);
    child.kill().unwrap();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("not a valid wasm component"), "{}", stderr(&refused));
    assert!(stderr(&unknown).contains("no route named"), "{}", stderr(&unknown));
}

#[test]
fn a_closed_stdout_does_not_stop_the_server() {
    let (mut child, mut out) = serve(&["--listen", "127.0.0.1:0", "--admin", "off", "--camera", "t=test:64x48@5"]);
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    drop(out); // the pipe closes here
    let addr = line.trim().strip_prefix("framewire listening on http://").unwrap().to_string();
    std::thread::sleep(Duration::from_millis(500));
    assert!(child.try_wait().unwrap().is_none(), "server exited after its stdout closed");
    let resp = http10_get(&addr, "/api/state");
    child.kill().unwrap();
    let _ = child.wait();
    assert!(resp.starts_with("HTTP/1.0 200"), "{resp:.100}");
}

#[test]
fn hash_password_and_share_print_what_the_config_and_a_viewer_need() {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_framewire"))
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"correct horse\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    // The hash works in a config: the server accepts the password.
    let dir = std::env::temp_dir().join(format!("framewire-cli-share-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("framewire.toml");
    std::fs::write(&config, format!("cache_dir = \"{}\"\n[[users]]\nname = \"ann\"\npassword_hash = \"{}\"\n", dir.display(), hash.trim())).unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_framewire"))
        .args(["serve", "--listen", "127.0.0.1:0", "--admin", "off", "--camera", "t=test:64x48@5", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("framewire listening on http://").unwrap().to_string();
    let denied = http10_get(&addr, "/snapshot");
    let share = Command::new(env!("CARGO_BIN_EXE_framewire"))
        .args(["share", "/snapshot", "--ttl", "10m", "--base", &format!("http://{addr}"), "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let link = String::from_utf8(share.stdout).unwrap();
    let shared = http10_get(&addr, link.trim().strip_prefix(&format!("http://{addr}")).unwrap());
    server.kill().unwrap();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(denied.starts_with("HTTP/1.0 401"), "{denied:.60}");
    assert!(link.starts_with(&format!("http://{addr}/snapshot?share=")), "{link}");
    assert!(shared.starts_with("HTTP/1.0 200"), "{shared:.60}");
}

#[test]
fn check_passes_a_handler_and_explains_what_a_swap_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_string()
    };
    let good = file("mjpeg.wasm", framewire::components::MJPEG);
    let out = framewire(&["check", &good]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [": ok", "framewire:camera/frames@0.2.2", "wasi:http/incoming-handler@0.2.0", "instantiated once"] {
        assert!(text.contains(needle), "lacks {needle:?}:\n{text}");
    }
    let media = file("files.wasm", framewire::components::FILES);
    let out = framewire(&["check", &media, "--media", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    fails_with(&["check", &file("garbage.wasm", b"not wasm at all")], "not a valid wasm component");
    fails_with(&["check", &file("core.wasm", b"\0asm\x01\0\0\0")], "not a valid wasm component");
    fails_with(&["check", &dir.path().join("missing.wasm").to_string_lossy()], "cannot read component");

    // Imports what framewire does not provide: named, with what it does.
    use wasm_encoder::{Component, ComponentImportSection, ComponentTypeRef, ComponentTypeSection, InstanceType};
    let mut tcp = InstanceType::new();
    tcp.ty().function().params(std::iter::empty::<(&str, wasm_encoder::ComponentValType)>()).result(None);
    tcp.export("connect", ComponentTypeRef::Func(0));
    let mut types = ComponentTypeSection::new();
    types.instance(&tcp);
    let mut imports = ComponentImportSection::new();
    imports.import("wasi:sockets/tcp@0.2.0", ComponentTypeRef::Instance(0));
    let mut sockets = Component::new();
    sockets.section(&types).section(&imports);
    let sockets = file("sockets.wasm", &sockets.finish());
    fails_with(&["check", &sockets], "wasi:sockets/tcp@0.2.0");
    fails_with(&["check", &sockets], "framewire provides: wasi:io");

    // A component with no HTTP handler.
    fails_with(&["check", &file("empty.wasm", &Component::new().finish())], "does not export wasi:http/incoming-handler");
}

#[test]
fn sigterm_and_sigint_stop_the_server_with_status_zero() {
    for signal in [rustix::process::Signal::TERM, rustix::process::Signal::INT] {
        let (mut child, mut out) = serve(&["--listen", "127.0.0.1:0", "--admin", "off", "--camera", "t=test:64x48@5"]);
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let addr = line.trim().strip_prefix("framewire listening on http://").unwrap().to_string();
        assert!(http10_get(&addr, "/api/state").starts_with("HTTP/1.0 200"));
        rustix::process::kill_process(rustix::process::Pid::from_child(&child), signal).unwrap();
        let status = child.wait().unwrap();
        assert!(status.success(), "{signal:?}: {status}");
        assert!(std::net::TcpStream::connect(&addr).is_err(), "still listening after {signal:?}");
    }
}

/// Datagrams the server sends to a NOTIFY_SOCKET, as they come.
fn notify_socket(dir: &std::path::Path) -> (std::path::PathBuf, std::os::unix::net::UnixDatagram) {
    let path = dir.join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    (path, sock)
}

/// Messages received until `until` matches one or `limit` passes.
fn notifications(sock: &std::os::unix::net::UnixDatagram, limit: Duration, until: impl Fn(&str) -> bool) -> Vec<String> {
    let start = std::time::Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        if let Ok(n) = sock.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).trim_end().to_string());
            if until(got.last().unwrap()) {
                break;
            }
        }
    }
    got
}

#[test]
fn systemd_hears_ready_and_watchdog_pings_only_while_cameras_are_healthy() {
    let dir = tempfile::tempdir().unwrap();
    for (cameras, healthy) in [(&["t=test:64x48@5"][..], true), (&["t=test:64x48@5", "usb=v4l:/dev/video63"][..], false)] {
        let (path, sock) = notify_socket(dir.path());
        let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--admin", "off"];
        for c in cameras {
            args.extend(["--camera", c]);
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_framewire"))
            .args(&args)
            .env("NOTIFY_SOCKET", &path)
            .env("WATCHDOG_USEC", "200000")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let ready = notifications(&sock, Duration::from_secs(60), |m| m.contains("READY=1"));
        assert!(ready.last().is_some_and(|m| m.contains("READY=1") && m.contains("STATUS=serving http://127.0.0.1:")), "{ready:?}");
        // Pings come every 100 ms while healthy; none while a camera fails.
        let later = notifications(&sock, Duration::from_secs(if healthy { 10 } else { 2 }), |m| m == "WATCHDOG=1");
        let _ = child.kill();
        let _ = child.wait();
        std::fs::remove_file(&path).unwrap();
        if healthy {
            assert_eq!(later.last().map(String::as_str), Some("WATCHDOG=1"), "{later:?}");
        } else {
            assert!(!later.iter().any(|m| m == "WATCHDOG=1"), "pinged with a failed camera: {later:?}");
            assert!(later.iter().any(|m| m.contains("STATUS=camera usb is failing")), "{later:?}");
        }
    }
}

#[test]
fn socket_activation_serves_on_the_socket_systemd_passes() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    // As systemd does: the socket as fd 3, LISTEN_PID the server's own pid
    // (the shell's, which exec keeps), LISTEN_FDS=1.
    let mut child = Command::new("sh")
        .args(["-c", r#"exec 3<&0 0</dev/null; LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" serve --listen 127.0.0.1:1 --admin off --camera t=test:64x48@5"#])
        .arg(env!("CARGO_BIN_EXE_framewire"))
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(listener)))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let resp = http10_get(&addr, "/api/state");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(line.trim(), format!("framewire listening on http://{addr}"));
    assert!(resp.starts_with("HTTP/1.0 200"), "{resp:.100}");
}

#[test]
fn a_compile_cache_that_cannot_be_written_is_survived() {
    // As good as a full disk: writes past 64 KiB fail (EFBIG; SIGXFSZ
    // ignored, as the shell leaves it across exec). Compiled components
    // are megabytes.
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let (mut child, line) = serve_limited("trap '' XFSZ; ulimit -f 128", &cache, &[]);
    let addr = line.trim().strip_prefix("framewire listening on http://").unwrap().to_string();
    let snapshot = http10_get(&addr, "/snapshot");
    let page = http10_get(&addr, "/");
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(snapshot.starts_with("HTTP/1.0 200") && page.starts_with("HTTP/1.0 200"), "{snapshot:.100}\n{page:.100}\n{err}");
    assert!(err.contains("cannot cache compiled component"), "{err}");
    // Nothing half-written is left to be loaded next time.
    let left: Vec<_> = std::fs::read_dir(&cache).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
    assert!(left.iter().all(|n| !n.to_string_lossy().contains(".tmp")), "{left:?}");
}

#[test]
fn a_small_address_space_gets_a_smaller_instance_pool_not_a_failed_start() {
    // 60 GiB of address space (`ulimit -v`), as on a kernel with fewer
    // virtual address bits: the default pool of 2048 instances reserves
    // ~200 GiB. The server starts with what fits, says so, and serves.
    let dir = tempfile::tempdir().unwrap();
    let (mut child, line) = serve_limited("ulimit -v 62914560", &dir.path().join("cache"), &[]);
    let addr = line.trim().strip_prefix("framewire listening on http://").map(str::to_string);
    let snapshot = addr.as_deref().map(|a| http10_get(a, "/snapshot"));
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(snapshot.is_some_and(|s| s.starts_with("HTTP/1.0 200")), "{line}\n{err}");
    let held: u32 = err
        .split("the address space holds ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no warning about the pool's size:\n{err}"));
    assert!((16..2048).contains(&held) && err.contains(&format!("holds {held} handler instances, not 2048")), "{err}");
}

/// JPEG parts of `path`'s MJPEG stream received in `time`.
fn stream_parts(addr: &str, path: &str, time: Duration) -> usize {
    let mut s = http10_request(addr, path, Duration::from_millis(200));
    let (mut got, mut buf, start) = (Vec::new(), [0u8; 65536], Instant::now());
    while start.elapsed() < time {
        match std::io::Read::read(&mut s, &mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    got.windows(24).filter(|w| w.eq_ignore_ascii_case(b"Content-Type: image/jpeg")).count()
}

#[test]
fn a_full_disk_stops_recording_not_the_live_view() {
    // Writes past 128 KiB fail (EFBIG, as good as a full disk): the
    // recording of a 640x480 camera stops within a second or two.
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    std::fs::create_dir_all(&media).unwrap();
    let media_arg = media.display().to_string();
    let extra = ["--media", &media_arg, "--camera", "rec=test:640x480@30,record"];
    let (mut child, line) = serve_limited("trap '' XFSZ; ulimit -f 256", &dir.path().join("cache"), &extra);
    let addr = line.trim().strip_prefix("framewire listening on http://").unwrap().to_string();
    let start = Instant::now();
    let failed = loop {
        let metrics = http10_get(&addr, "/metrics");
        if metrics.contains("framewire_recording_failed{camera=\"rec\"} 1") {
            break true;
        }
        if start.elapsed() > Duration::from_secs(60) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // The live view goes on.
    let parts = stream_parts(&addr, "/cameras/rec/stream", Duration::from_secs(2));
    let snapshot = http10_get(&addr, "/cameras/rec/snapshot");
    let state = http10_get(&addr, "/api/state");
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(failed, "recording never reported failed:\n{err}");
    assert!(parts >= 10 && snapshot.starts_with("HTTP/1.0 200"), "{parts} parts in 2 s, {snapshot:.60}\n{err}");
    assert!(err.contains("recording stopped: ") && err.contains("File too large"), "{err}");
    assert!(state.contains(r#""error":"recording stopped: "#) && state.contains("File too large"), "{state}");
}
