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

    /// A TLS connection to `server` that trusts only `cert_file`, for
    /// `localhost`, offering `alpn`; returns the stream and the protocol
    /// the server chose.
    async fn connect(
        addr: std::net::SocketAddr,
        cert_file: &std::path::Path,
        alpn: &[u8],
    ) -> anyhow::Result<(tokio_rustls::client::TlsStream<tokio::net::TcpStream>, Vec<u8>)> {
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
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let stream = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(ServerName::try_from("localhost")?, tcp).await?;
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

    /// A certificate framewire did not make (another server's, self-signed).
    fn rcgen_free_cert(dir: &std::path::Path) -> std::path::PathBuf {
        let cache = dir.join("cache");
        let other = framewire::tls::Tls::load(&framewire::tls::TlsSource::SelfSigned, Some(&cache)).unwrap();
        other.cert_file
    }
}
