//! The built MJPEG component in isolation: wasmtime + wasi-http with a fake
//! camera (frames published by the test), requests driven in memory with
//! no network and no capture threads.

use bytes::Bytes;
use framewire::frames::{Feed, Feeds};
use framewire::runtime::{HostInfo, Loaded, Runtime};
use framewire_core::mjpeg::{self, Parser};
use http_body_util::{BodyExt, Empty};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

struct Harness {
    runtime: Runtime,
    component: Arc<Loaded>,
    feed: Arc<Feed>,
}

impl Harness {
    fn new() -> Self {
        let feed = Feed::new("fake", "fake:test", (4, 3), 30.0, false);
        let other = Feed::new("empty", "fake:none", (4, 3), 30.0, false);
        let runtime = Runtime::new(HostInfo::new(Arc::new(Feeds::new(vec![feed.clone(), other])))).unwrap();
        let component = Arc::new(runtime.load("builtin:mjpeg", framewire::components::MJPEG).unwrap());
        Harness { runtime, component, feed }
    }

    async fn request(&self, method: &str, uri: &str) -> hyper::Response<HyperOutgoingBody> {
        let req = hyper::Request::builder()
            .method(method)
            .uri(format!("http://localhost{uri}"))
            .body(Empty::<Bytes>::new())
            .unwrap();
        self.runtime.handle(self.component.clone(), req, None, None).await.unwrap()
    }

    fn publish(&self, data: &'static [u8], at: SystemTime) -> u64 {
        self.feed.publish(Bytes::from_static(data), (4, 3), at, false)
    }
}

async fn body_bytes(resp: hyper::Response<HyperOutgoingBody>) -> Bytes {
    tokio::time::timeout(Duration::from_secs(5), resp.into_body().collect()).await.unwrap().unwrap().to_bytes()
}

async fn json(resp: hyper::Response<HyperOutgoingBody>) -> serde_json::Value {
    serde_json::from_slice(&body_bytes(resp).await).unwrap()
}

/// Read parts until `n` have arrived (or 5 s pass).
async fn parts(body: &mut HyperOutgoingBody, parser: &mut Parser, n: usize) -> Vec<mjpeg::Part> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while out.len() < n {
        let frame = tokio::time::timeout_at(deadline, body.frame()).await.expect("parts in time").unwrap().unwrap();
        if let Ok(data) = frame.into_data() {
            out.extend(parser.feed(&data).unwrap());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_frames_parts_exactly() {
    let h = Harness::new();
    let t1 = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
    h.publish(b"\xff\xd8first\xff\xd9", t1);
    let resp = h.request("GET", "/cameras/fake/stream").await;
    assert_eq!(resp.status(), 200);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert_eq!(ct, format!("multipart/x-mixed-replace; boundary={}", mjpeg::BOUNDARY));
    let cc = resp.headers()["cache-control"].to_str().unwrap();
    assert!(cc.contains("no-store") && cc.contains("no-cache"), "{cc}");
    let mut body = resp.into_body();
    let mut parser = Parser::from_content_type(&ct).unwrap();

    let first = parts(&mut body, &mut parser, 1).await;
    assert_eq!(first[0].body, b"\xff\xd8first\xff\xd9");
    assert_eq!(first[0].header("content-type"), Some("image/jpeg"));
    assert_eq!(first[0].header("content-length"), Some("9"));
    assert_eq!(first[0].header("x-timestamp"), Some("1700000000.123456"));
    assert_eq!(first[0].header("x-frame-sequence"), Some("1"));
    // The next delimiter came with the frame: nothing is left half-parsed.
    assert_eq!(parser.buffered(), 0, "boundary written right after the frame");

    h.publish(b"second", SystemTime::now());
    h.publish(b"third", SystemTime::now());
    let more = parts(&mut body, &mut parser, 1).await;
    assert!(more[0].body == b"second" || more[0].body == b"third");
    if more[0].body == b"second" {
        assert_eq!(parts(&mut body, &mut parser, 1).await[0].body, b"third");
    }
    assert_eq!(h.feed.stats.clients.load(Ordering::Relaxed), 1);

    // The client goes away: the instance ends and the count drops.
    drop(body);
    let start = Instant::now();
    while h.feed.stats.clients.load(Ordering::Relaxed) != 0 {
        assert!(start.elapsed() < Duration::from_secs(3), "instance not released after disconnect");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fps_cap_limits_a_clients_rate() {
    let h = Harness::new();
    h.publish(b"x", SystemTime::now());
    let feed = h.feed.clone();
    let publisher = tokio::spawn(async move {
        for _ in 0..250 {
            feed.publish(Bytes::from_static(b"frame"), (4, 3), SystemTime::now(), false);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let resp = h.request("GET", "/stream?fps=5").await;
    let mut parser = Parser::from_content_type(resp.headers()["content-type"].to_str().unwrap()).unwrap();
    let mut body = resp.into_body();
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < Duration::from_secs(2) {
        if let Ok(Some(Ok(f))) = tokio::time::timeout(Duration::from_millis(50), body.frame()).await
            && let Ok(d) = f.into_data()
        {
            n += parser.feed(&d).unwrap().len();
        }
    }
    publisher.abort();
    // 5 fps for 2 s from a ~100 fps source, plus the first frame at once.
    assert!((9..=12).contains(&n), "got {n} parts in 2 s at fps=5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_is_the_latest_frame() {
    let h = Harness::new();
    h.publish(b"old", SystemTime::now());
    h.publish(b"newest-frame", SystemTime::now());
    let resp = h.request("GET", "/snapshot").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/jpeg");
    assert_eq!(resp.headers()["content-length"], "12");
    assert_eq!(resp.headers()["x-frame-sequence"], "2");
    assert_eq!(&body_bytes(resp).await[..], b"newest-frame");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_before_the_first_frame_waits_for_it() {
    // A camera just started has no frame for a moment: a snapshot asked for
    // then gets the first one rather than a 503.
    let h = Arc::new(Harness::new());
    let publisher = {
        let h = h.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            h.publish(b"first-frame", SystemTime::now())
        })
    };
    let start = Instant::now();
    let resp = h.request("GET", "/cameras/fake/snapshot").await;
    assert_eq!(resp.status(), 200);
    assert!(start.elapsed() >= Duration::from_millis(250), "answered before the frame existed");
    assert_eq!(&body_bytes(resp).await[..], b"first-frame");
    publisher.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_json_with_the_right_status() {
    let h = Harness::new();
    let r = h.request("GET", "/cameras/nope/stream").await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/json");
    let j = json(r).await;
    assert_eq!(j["error"], "unknown camera: nope");
    assert_eq!(j["cameras"], serde_json::json!(["fake", "empty"]));

    for q in ["fps=0", "fps=abc", "fps=1e9", "fps=%ff"] {
        let r = h.request("GET", &format!("/stream?{q}")).await;
        assert_eq!(r.status(), 400, "{q}");
        assert!(json(r).await["error"].as_str().unwrap().len() > 5);
    }
    assert_eq!(h.request("GET", "/stream?t=123").await.status(), 200, "unknown parameters are ignored");

    // A camera that delivers nothing gets its grace period, then a 503.
    let start = Instant::now();
    let r = h.request("GET", "/cameras/empty/snapshot").await;
    assert!(start.elapsed() >= Duration::from_secs(2), "{:?}", start.elapsed());
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");

    assert_eq!(h.request("GET", "/elsewhere").await.status(), 404);
    let r = h.request("DELETE", "/snapshot").await;
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, HEAD");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_sends_headers_only() {
    let h = Harness::new();
    h.publish(b"abcdef", SystemTime::now());
    let r = h.request("HEAD", "/snapshot").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], "6");
    let r = h.request("HEAD", "/stream").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("multipart/x-mixed-replace"));
    assert!(body_bytes(r).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_lists_cameras_and_components() {
    let h = Harness::new();
    h.publish(b"a", SystemTime::now());
    h.runtime.host.set_components(vec![h.component.info("mjpeg")]);
    let j = json(h.request("GET", "/api/state").await).await;
    assert_eq!(j["cameras"][0]["name"], "fake");
    assert_eq!(j["cameras"][0]["spec"], "fake:test");
    assert_eq!(j["cameras"][1]["name"], "empty");
    assert_eq!(j["cameras"][0]["status"], "starting");
    assert_eq!(j["components"][0]["sha256"], h.component.sha256);
    assert_eq!(j["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_are_bounded_and_excess_is_refused() {
    let feed = Feed::new("fake", "fake:test", (4, 3), 30.0, false);
    feed.publish(Bytes::from_static(b"f"), (4, 3), SystemTime::now(), false);
    let host = HostInfo::new(Arc::new(Feeds::new(vec![feed.clone()])));
    let options = framewire::runtime::Options { max_instances: 2, ..Default::default() };
    let runtime = Runtime::with_options(host, options).unwrap();
    let component = Arc::new(runtime.load("builtin:mjpeg", framewire::components::MJPEG).unwrap());
    // Streams whose loop runs in the component hold their instance.
    let req = || hyper::Request::get("http://localhost/stream?relay=0").body(Empty::<Bytes>::new()).unwrap();
    let a = runtime.handle(component.clone(), req(), None, None).await.unwrap();
    let b = runtime.handle(component.clone(), req(), None, None).await.unwrap();
    let err = runtime.handle(component.clone(), req(), None, None).await.err().expect("a third instance is refused");
    assert!(err.downcast_ref::<framewire::runtime::Overloaded>().is_some(), "{err:#}");
    // A slot frees when a stream ends.
    drop(a);
    let start = Instant::now();
    while feed.stats.clients.load(Ordering::Relaxed) != 1 {
        assert!(start.elapsed() < Duration::from_secs(3));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let c = runtime.handle(component.clone(), req(), None, None).await.expect("a freed slot is reused");
    assert_eq!(c.status(), 200);
    drop((b, c));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_streams_hold_no_instance() {
    let feed = Feed::new("fake", "fake:test", (4, 3), 30.0, false);
    let host = HostInfo::new(Arc::new(Feeds::new(vec![feed.clone()])));
    let options = framewire::runtime::Options { max_instances: 1, ..Default::default() };
    let runtime = Runtime::with_options(host, options).unwrap();
    let component = Arc::new(runtime.load("builtin:mjpeg", framewire::components::MJPEG).unwrap());
    let req = || hyper::Request::get("http://localhost/stream").body(Empty::<Bytes>::new()).unwrap();
    // One instance slot, three streams: each hands its stream to the host
    // and frees the slot for the next request.
    let mut bodies = Vec::new();
    for _ in 0..3 {
        let resp = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match runtime.handle(component.clone(), req(), None, None).await {
                    Ok(resp) => break resp,
                    // The previous instance may not have ended yet.
                    Err(e) if e.downcast_ref::<framewire::runtime::Overloaded>().is_some() => {
                        tokio::time::sleep(Duration::from_millis(10)).await
                    }
                    Err(e) => panic!("{e:#}"),
                }
            }
        })
        .await
        .expect("a slot frees once a stream is handed over");
        let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
        bodies.push((resp.into_body(), Parser::from_content_type(&ct).unwrap()));
    }
    assert_eq!(feed.stats.clients.load(Ordering::Relaxed), 3);
    for seq in 1..=3u64 {
        let at = UNIX_EPOCH + Duration::from_micros(1_700_000_000_000_000 + seq);
        assert_eq!(feed.publish(Bytes::from(format!("frame {seq}")), (4, 3), at, false), seq);
        for (body, parser) in &mut bodies {
            let p = parts(body, parser, 1).await;
            assert_eq!(p[0].body, format!("frame {seq}").as_bytes());
            assert_eq!(p[0].header("x-frame-sequence"), Some(seq.to_string().as_str()));
            assert_eq!(p[0].header("x-timestamp"), Some(mjpeg::format_timestamp(1_700_000_000_000_000 + seq).as_str()));
        }
    }
    // A reader that goes ends its relay and its subscription.
    drop(bodies);
    let start = Instant::now();
    while feed.stats.clients.load(Ordering::Relaxed) != 0 {
        assert!(start.elapsed() < Duration::from_secs(5), "relays still subscribed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Requests that arrive together take turns through the pool: each one's
/// instance is made when its handler runs and is gone before the next is
/// made, so a burst on one thread holds a slot or two, not one per request
/// (16 at once on a four-slot pool: none is refused). A handler caught by
/// an epoch tick before its first host call yields and keeps its slot
/// meanwhile, hence the room for a few.
#[tokio::test(flavor = "current_thread")]
async fn requests_arriving_together_take_turns_through_a_few_slots() {
    let host = HostInfo::new(Arc::new(Feeds::new(Vec::new())));
    let options = framewire::runtime::Options { max_instances: 4, ..Default::default() };
    let runtime = Arc::new(Runtime::with_options(host, options).unwrap());
    let component = Arc::new(runtime.load("builtin:mjpeg", framewire::components::MJPEG).unwrap());
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (runtime, component) = (runtime.clone(), component.clone());
        let req = hyper::Request::get("http://localhost/api/state").body(Empty::<Bytes>::new()).unwrap();
        burst.spawn(async move { runtime.handle(component, req, None, None).await });
    }
    while let Some(done) = burst.join_next().await {
        let resp = done.unwrap().unwrap_or_else(|e| panic!("refused in a burst: {e:#}"));
        assert_eq!(resp.status(), 200);
        assert!(json(resp).await["cameras"].is_array());
    }
}
