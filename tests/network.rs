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
