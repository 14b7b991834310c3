//! Safe on a network: requests naming a foreign host (DNS rebinding) are
//! refused, cross-origin reads only for named origins.

use framewire::config::ServeArgs;
use framewire_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_host_names_get_421_unless_allowed() {
    let server = start_with(ServeArgs {
        cameras: vec!["cam=test:64x48@5".into()],
        allow_hosts: vec!["cam.example".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let ask = |host: &str| format!("GET /snapshot HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    for (host, ok) in [
        ("evil.example", false),
        ("127.0.0.1.nip.io:8080", false),
        ("localhost:8080", true),
        ("127.0.0.1", true),
        ("[::1]:8080", true),
        ("cam.example:8080", true),
    ] {
        let answer = raw(server.addr, ask(host).as_bytes()).await.unwrap();
        let want = if ok { "HTTP/1.1 200" } else { "HTTP/1.1 421" };
        assert!(answer.starts_with(want), "{host}: {answer:.80}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_origin_reads_only_for_allowed_origins() {
    let server = start_with(ServeArgs {
        cameras: vec!["cam=test:64x48@5".into()],
        allow_origins: vec!["https://dash.example".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let addr = server.addr;
    let r = fetch_with(addr, "GET", "/snapshot", &[("origin", "https://dash.example")]).await.unwrap();
    assert_eq!(r.header("access-control-allow-origin"), Some("https://dash.example"));
    assert!(r.header("access-control-expose-headers").unwrap().contains("x-timestamp"));
    assert_eq!(r.header("vary"), Some("Origin"));
    let r = fetch_with(addr, "GET", "/snapshot", &[("origin", "https://evil.example")]).await.unwrap();
    assert_eq!((r.status, r.header("access-control-allow-origin")), (200, None));
    let preflight = [("origin", "https://dash.example"), ("access-control-request-method", "GET"), ("access-control-request-headers", "range")];
    let r = fetch_with(addr, "OPTIONS", "/media/sample.webm", &preflight).await.unwrap();
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-methods"), Some("GET, HEAD"));
    assert!(r.header("access-control-allow-headers").unwrap().contains("range"));
    let r = fetch_with(addr, "OPTIONS", "/snapshot", &[("origin", "https://evil.example"), ("access-control-request-method", "GET")]).await.unwrap();
    assert_eq!((r.status, r.header("access-control-allow-origin")), (403, None));
    // Without --allow-origin, CORS stays off.
    let plain = start_with(ServeArgs { cameras: vec!["cam=test:64x48@5".into()], ..Default::default() }).await.unwrap();
    let r = fetch_with(plain.addr, "GET", "/snapshot", &[("origin", "https://dash.example")]).await.unwrap();
    assert_eq!(r.header("access-control-allow-origin"), None);
}

mod tls {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    use std::sync::Arc;
    use std::time::Duration;

    /// A TLS client that trusts only `cert_file` and offers `alpn`.
    fn client(cert_file: &std::path::Path, alpn: &[u8]) -> anyhow::Result<tokio_rustls::TlsConnector> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(cert_file)? {
            roots.add(cert?)?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
    }

    /// A TLS connection to `server` as `localhost` through [`client`];
    /// returns the stream and the protocol the server chose.
    async fn connect(
        addr: std::net::SocketAddr,
        cert_file: &std::path::Path,
        alpn: &[u8],
    ) -> anyhow::Result<(tokio_rustls::client::TlsStream<tokio::net::TcpStream>, Vec<u8>)> {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let stream = client(cert_file, alpn)?.connect(ServerName::try_from("localhost")?, tcp).await?;
        let chosen = stream.get_ref().1.alpn_protocol().unwrap_or_default().to_vec();
        Ok((stream, chosen))
    }

    fn get(path: &str) -> hyper::Request<Empty<Bytes>> {
        hyper::Request::get(format!("https://localhost{path}")).body(Empty::new()).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn https_speaks_http2_and_http11_with_a_certificate_made_once() {
        let cache = tempfile::tempdir().unwrap();
        let args = || ServeArgs {
            cameras: vec!["cam=test:160x120@30".into()],
            tls_self_signed: true,
            cache_dir: Some(cache.path().display().to_string()),
            ..Default::default()
        };
        let server = start_with(args()).await.unwrap();
        let tls = server.tls.as_ref().unwrap();
        use sha2::Digest;
        let der = CertificateDer::from_pem_file(&tls.cert_file).unwrap();
        let fingerprint = sha2::Sha256::digest(&der).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":");
        assert_eq!(tls.fingerprint, fingerprint);

        // HTTP/2: a stream, a snapshot and a range on one connection.
        let (stream, alpn) = connect(server.addr, &tls.cert_file, b"h2").await.unwrap();
        assert_eq!(alpn, b"h2");
        let (mut h2, conn) = hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let resp = h2.send_request(get("/cameras/cam/stream")).await.unwrap();
        assert_eq!(resp.status(), 200);
        let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
        let mut parser = framewire_core::mjpeg::Parser::from_content_type(&ct).unwrap();
        let mut body = resp.into_body();
        let mut parts = Vec::new();
        while parts.len() < 5 {
            let frame = tokio::time::timeout(Duration::from_secs(5), body.frame()).await.unwrap().unwrap().unwrap();
            if let Ok(data) = frame.into_data() {
                parts.extend(parser.feed(&data).unwrap());
            }
        }
        assert_eq!(decode_jpeg(&parts[0].body).unwrap(), (160, 120));
        let snap = h2.send_request(get("/snapshot")).await.unwrap();
        assert_eq!(snap.status(), 200);
        assert_eq!(decode_jpeg(&snap.into_body().collect().await.unwrap().to_bytes()).unwrap(), (160, 120));
        let mut ranged = get("/media/sample.webm");
        ranged.headers_mut().insert("range", "bytes=100-199".parse().unwrap());
        let r = h2.send_request(ranged).await.unwrap();
        assert_eq!(r.status(), 206);
        assert_eq!(r.into_body().collect().await.unwrap().to_bytes().len(), 100);
        // Resetting the HTTP/2 stream ends that stream only: its instance
        // goes, the connection serves on.
        drop(body);
        let start = std::time::Instant::now();
        loop {
            let state = h2.send_request(get("/api/state")).await.unwrap();
            assert_eq!(state.status(), 200);
            let state: serde_json::Value = serde_json::from_slice(&state.into_body().collect().await.unwrap().to_bytes()).unwrap();
            if state["cameras"][0]["clients"] == 0 {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(5), "the reset stream's instance lives on: {state}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        // HTTP/1.1 over TLS.
        let (stream, alpn) = connect(server.addr, &tls.cert_file, b"http/1.1").await.unwrap();
        assert_eq!(alpn, b"http/1.1");
        let (_, frames) = read_stream_on(stream, server.addr, "/stream", Duration::from_millis(800)).await.unwrap();
        assert!(frames.len() >= 5, "{} frames over HTTP/1.1 and TLS", frames.len());
        let (stream, _) = connect(server.addr, &tls.cert_file, b"http/1.1").await.unwrap();
        let (mut h1, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.unwrap();
        tokio::spawn(conn);
        let mut ranged = hyper::Request::get("/media/sample.webm").header("host", "localhost").body(Empty::<Bytes>::new()).unwrap();
        ranged.headers_mut().insert("range", "bytes=0-99".parse().unwrap());
        let r = h1.send_request(ranged).await.unwrap();
        assert_eq!(r.status(), 206);
        assert_eq!(r.into_body().collect().await.unwrap().to_bytes().len(), 100);
        // The next request on this connection once hyper has taken in the
        // end of the last response.
        h1.ready().await.unwrap();
        let page = h1.send_request(hyper::Request::get("/").header("host", "localhost").body(Empty::new()).unwrap()).await.unwrap();
        assert_eq!(page.status(), 200);

        // Plain HTTP is not spoken on a TLS listener.
        assert!(framewire_tests::get(server.addr, "/snapshot").await.is_err());
        // A client that does not trust the certificate is refused by its own check.
        let other = tempfile::tempdir().unwrap();
        let stranger = rcgen_free_cert(other.path());
        assert!(connect(server.addr, &stranger, b"h2").await.is_err(), "verification is real");

        // The certificate is made once: a restart serves the same one.
        let fingerprint = tls.fingerprint.clone();
        drop(server);
        let server = start_with(args()).await.unwrap();
        assert_eq!(server.tls.as_ref().unwrap().fingerprint, fingerprint);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_link_over_http2_gets_the_newest_frame() {
        let cache = tempfile::tempdir().unwrap();
        let server = start_with(ServeArgs {
            cameras: vec!["cam=test:640x480@30".into()],
            tls_self_signed: true,
            cache_dir: Some(cache.path().display().to_string()),
            ..Default::default()
        })
        .await
        .unwrap();
        let cert = server.tls.as_ref().unwrap().cert_file.clone();
        // TLS over a 100 kB/s link: the throttle is below TLS, on the socket.
        let link = framewire_tests::slow::connect_slow(server.addr, 100_000).await.unwrap();
        let stream = client(&cert, b"h2").unwrap().connect(ServerName::try_from("localhost").unwrap(), link).await.unwrap();
        let (mut h2, conn) = hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let resp = h2.send_request(get("/stream")).await.unwrap();
        let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
        let mut parser = framewire_core::mjpeg::Parser::from_content_type(&ct).unwrap();
        let mut body = resp.into_body();
        let secs = 15;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        let now_us = || framewire::frames::unix_micros(std::time::SystemTime::now());
        let (mut frames, mut worst, mut last_captured) = (0, 0u64, None::<u64>);
        while let Ok(Some(frame)) = tokio::time::timeout_at(deadline, body.frame()).await {
            let Ok(data) = frame.unwrap().into_data() else { continue };
            for part in parser.feed(&data).unwrap() {
                let at = now_us();
                if let Some(c) = last_captured {
                    worst = worst.max(at - c);
                }
                last_captured = framewire_core::mjpeg::parse_timestamp(part.header("x-timestamp").unwrap());
                frames += 1;
            }
        }
        let worst = Duration::from_micros(worst.max(now_us() - last_captured.unwrap()));
        eprintln!("HTTP/2 over TLS at 100 kB/s: {frames} frames in {secs} s, newest frame at most {worst:?} old");
        assert!(worst <= Duration::from_secs(1), "the newest frame got {worst:?} old over HTTP/2");
        assert!(frames as f64 / secs as f64 >= 3.0, "{frames} frames in {secs} s");
    }

    /// A certificate framewire did not make (another server's, self-signed).
    fn rcgen_free_cert(dir: &std::path::Path) -> std::path::PathBuf {
        let cache = dir.join("cache");
        let other = framewire::tls::Tls::load(&framewire::tls::TlsSource::SelfSigned, Some(&cache)).unwrap();
        other.cert_file
    }
}

mod accounts {
    use super::*;
    use std::process::Command;
    use std::time::Duration;

    fn with_user(cache: &std::path::Path) -> ServeArgs {
        ServeArgs {
            cameras: vec!["front=test:160x120@10".into(), "back=test:160x120@10".into()],
            users: vec!["ann:correct horse".into()],
            cache_dir: Some(cache.display().to_string()),
            ..Default::default()
        }
    }

    fn curl(url: &str) -> (String, usize) {
        let out = Command::new("curl").args(["-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", url]).output().expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (code, size) = text.split_once(' ').unwrap();
        (code.to_string(), size.parse().unwrap())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_route_needs_a_credential_basic_works_in_curl_and_ffmpeg() {
        let cache = tempfile::tempdir().unwrap();
        let server = start_with(with_user(cache.path())).await.unwrap();
        let addr = server.addr;
        let r = get(addr, "/snapshot").await.unwrap();
        assert_eq!(r.status, 401);
        assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"framewire\", charset=\"UTF-8\""));
        for path in ["/", "/api/state", "/media/", "/media/sample.webm", "/cameras/front/stream"] {
            assert_eq!(get(addr, path).await.unwrap().status, 401, "{path}");
        }
        // A browser opening a page is sent to the login form.
        let r = fetch_with(addr, "GET", "/cameras/front/stream?fps=2", &[("accept", "text/html,*/*")]).await.unwrap();
        assert_eq!((r.status, r.header("location")), (303, Some("/login?next=%2Fcameras%2Ffront%2Fstream%3Ffps%3D2")));
        assert_eq!(get(addr, "/login").await.unwrap().status, 200, "the login page is open");

        let port = addr.port();
        let (code, size) = curl(&format!("http://ann:correct%20horse@127.0.0.1:{port}/snapshot"));
        assert_eq!(code, "200");
        assert!(size > 500);
        assert_eq!(curl(&format!("http://ann:wrong@127.0.0.1:{port}/snapshot")).0, "401");
        let ffmpeg = |pass: &str| {
            Command::new("ffmpeg")
                .args(["-nostdin", "-loglevel", "error", "-i", &format!("http://ann:{pass}@127.0.0.1:{port}/cameras/back/stream")])
                .args(["-frames:v", "3", "-f", "null", "-"])
                .output()
                .expect("ffmpeg")
        };
        let ok = ffmpeg("correct%20horse");
        assert!(ok.status.success(), "ffmpeg read the stream: {}", String::from_utf8_lossy(&ok.stderr));
        assert!(!ffmpeg("wrong").status.success(), "ffmpeg with a wrong password");

        // With accounts the credential, not the Host name, protects the server.
        let basic = "Basic YW5uOmNvcnJlY3QgaG9yc2U="; // ann:correct horse
        let r = fetch_with(addr, "GET", "/api/state", &[("authorization", basic), ("host", "cams.example")]).await.unwrap();
        assert_eq!(r.status, 200);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failed_sign_ins_are_limited_per_address_and_share_links_open_one_path() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let cache = tempfile::tempdir().unwrap();
        let args = with_user(cache.path());
        let server = start_with(args.clone()).await.unwrap();
        let addr = server.addr;
        let ask = |from: &'static str, auth: &'static str| async move {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
            let mut s = socket.connect(addr).await.unwrap();
            let req = format!("GET /api/state HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic {auth}\r\nConnection: close\r\n\r\n");
            s.write_all(req.as_bytes()).await.unwrap();
            let mut head = [0u8; 12];
            s.read_exact(&mut head).await.unwrap();
            String::from_utf8_lossy(&head[9..12]).into_owned()
        };
        let (wrong, right) = ("YW5uOmd1ZXNz", "YW5uOmNvcnJlY3QgaG9yc2U="); // ann:guess, ann:correct horse
        for _ in 0..framewire::auth::MAX_FAILURES {
            assert_eq!(ask("127.0.0.2", wrong).await, "401");
        }
        assert_eq!(ask("127.0.0.2", right).await, "429", "that address now waits, right password or not");
        assert_eq!(ask("127.0.0.1", right).await, "200", "other addresses are not held up");

        let config = framewire::config::Config::from_args(&args).unwrap();
        let base = format!("http://{addr}");
        let link = framewire::auth::share_link_for(&config, &base, "/cameras/front/snapshot", Duration::from_secs(3600)).unwrap();
        let target = link.strip_prefix(&base).unwrap();
        let r = get(addr, target).await.unwrap();
        assert_eq!(r.status, 200, "{link}");
        assert_eq!(decode_jpeg(&r.body).unwrap(), (160, 120));
        let query = target.split_once('?').unwrap().1;
        assert_eq!(get(addr, &format!("/cameras/back/snapshot?{query}")).await.unwrap().status, 401, "that path only");
        let expired = framewire::auth::share_link_for(&config, &base, "/cameras/front/snapshot", Duration::ZERO).unwrap();
        assert_eq!(get(addr, expired.strip_prefix(&base).unwrap()).await.unwrap().status, 401, "expired");
    }

    #[test]
    fn a_network_address_without_accounts_is_refused_unless_no_auth() {
        let open = ServeArgs { listen: Some("0.0.0.0:8080".parse().unwrap()), ..Default::default() };
        let err = framewire::config::Config::from_args(&open).unwrap_err();
        let err = format!("{err:#}");
        assert!(err.contains("--user") && err.contains("--no-auth"), "{err}");
        assert!(framewire::config::Config::from_args(&ServeArgs { no_auth: true, ..open.clone() }).is_ok());
        let with_user = ServeArgs { users: vec!["ann:pw".into()], ..open };
        assert!(framewire::config::Config::from_args(&with_user).is_ok());
    }
}
