//! The page component over HTTP (the browser tests check what it does):
//! cards rendered from the host's cameras, its own assets with validators,
//! a 404 page for paths nothing else serves, and nothing fetched elsewhere.

use framewire_tests::*;

#[tokio::test]
async fn page_lists_the_hosts_cameras_and_links_only_local_files() {
    let server = start(&["front=test:320x240@10", "back_yard=test:160x120@5"]).await.unwrap();
    let r = get(server.addr, "/").await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let html = String::from_utf8(r.body.to_vec()).unwrap();
    for (name, w, h) in [("front", 320, 240), ("back_yard", 160, 120)] {
        assert!(html.contains(&format!("data-camera=\"{name}\"")), "no card for {name}");
        assert!(html.contains(&format!("width=\"{w}\" height=\"{h}\"")), "{name}: size not rendered");
        assert!(html.contains(&format!("href=\"/cameras/{name}/snapshot\"")));
    }
    assert!(html.contains(&format!("framewire {}", env!("CARGO_PKG_VERSION"))), "version from the host");
    // Offline edge boxes: every src/href is a local path.
    for attr in ["src=\"", "href=\""] {
        for url in html.split(attr).skip(1).map(|s| s.split('"').next().unwrap()) {
            assert!(url.starts_with('/'), "{attr}{url}\" leaves the box");
        }
    }
    assert!(!html.contains("//"), "protocol-relative or absolute URL in the page");

    let head = fetch(server.addr, "HEAD", "/").await.unwrap();
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), Some(html.len().to_string().as_str()));

    let post = fetch(server.addr, "POST", "/").await.unwrap();
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
}

#[tokio::test]
async fn assets_revalidate_with_etags() {
    let server = start(&["front=test:160x120@5"]).await.unwrap();
    for (path, ctype, needle) in [
        ("/ui/app.js", "text/javascript; charset=utf-8", "/api/state"),
        ("/ui/app.css", "text/css; charset=utf-8", ".camera"),
        ("/ui/icon.svg", "image/svg+xml", "<svg"),
        ("/favicon.ico", "image/svg+xml", "<svg"),
    ] {
        let r = get(server.addr, path).await.unwrap();
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some(ctype), "{path}");
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert!(String::from_utf8_lossy(&r.body).contains(needle), "{path}");
        let etag = r.header("etag").expect("etag").to_string();
        assert!(etag.starts_with('"') && etag.len() == 18, "{etag}");

        let again = fetch_with(server.addr, "GET", path, &[("if-none-match", &format!("\"x\", {etag}"))]).await.unwrap();
        assert_eq!(again.status, 304, "{path}");
        assert!(again.body.is_empty());
        assert_eq!(again.header("etag"), Some(etag.as_str()));
        let stale = fetch_with(server.addr, "GET", path, &[("if-none-match", "\"0000000000000000\"")]).await.unwrap();
        assert_eq!(stale.status, 200, "{path}");
    }
    // Different files, different tags.
    let js = get(server.addr, "/ui/app.js").await.unwrap();
    let css = get(server.addr, "/ui/app.css").await.unwrap();
    assert_ne!(js.header("etag"), css.header("etag"));
}

#[tokio::test]
async fn unknown_paths_get_an_escaped_404_page_and_other_routes_still_win() {
    let server = start(&["front=test:160x120@5"]).await.unwrap();
    let r = get(server.addr, "/nope").await.unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(String::from_utf8_lossy(&r.body).contains("Not found"));
    // `'` and `&` are legal in a path and must not reach the HTML as is.
    let r = get(server.addr, "/nope/it's&more").await.unwrap();
    assert_eq!(r.status, 404);
    let html = String::from_utf8(r.body.to_vec()).unwrap();
    assert!(html.contains("/nope/it&#39;s&amp;more"), "path not escaped: {html}");

    // `/` covers what no other route does, and only that.
    assert_eq!(get(server.addr, "/api/state").await.unwrap().header("content-type"), Some("application/json"));
    assert_eq!(get(server.addr, "/snapshot").await.unwrap().header("content-type"), Some("image/jpeg"));
    assert_eq!(get(server.addr, "/media/sample.pdf").await.unwrap().header("content-type"), Some("application/pdf"));
    let routes: Vec<_> = state(server.addr).await.unwrap()["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["route"].as_str().unwrap().to_string())
        .collect();
    assert!(routes.contains(&"page".to_string()), "{routes:?}");
}
