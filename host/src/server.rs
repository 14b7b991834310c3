//! HTTP: accept connections, route each request to a fresh instance of
//! its component.

use crate::camera::Cameras;
use crate::config::Config;
use crate::pacing::{Link, LinkIo, Pace, PacedBody};
use crate::reply::json_response;
use crate::routes::Routes;
use crate::streams::{Full, StreamSlots};
use crate::tls::Tls;
use crate::runtime::{HostInfo, Overloaded, Runtime};
use crate::access_log::AccessLog;
use crate::exchange::{Exchange, Observers, Served};
use crate::metrics::{Metrics, refusal};
use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioTimer;
use hyper_util::server::graceful::GracefulShutdown;
use std::net::SocketAddr;
use std::sync::Arc;
use prometheus_client::metrics::gauge::Gauge;
use std::time::Duration;
use tokio::net::TcpListener;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// Everything a running framewire owns.
pub struct App {
    pub runtime: Runtime,
    pub routes: Routes,
    pub cameras: Cameras,
    pub limits: HttpLimits,
    /// Host names requests may name besides localhost and IP literals.
    pub allow_hosts: Vec<String>,
    /// Origins whose pages may read responses cross-origin.
    pub allow_origins: Vec<String>,
    pub streams: Arc<StreamSlots>,
    /// Viewer accounts, if any are configured.
    pub accounts: Option<crate::auth::Accounts>,
    /// The listener speaks TLS (session cookies are then Secure).
    pub tls: bool,
    /// Metrics and the access log.
    pub observers: Arc<Observers>,
}

/// What a request may bring, enforced before any component sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// Request line plus headers, in bytes (431 beyond; hyper also caps
    /// the count of header fields at 100).
    pub max_header_bytes: usize,
    /// Request body, in bytes: 413 when Content-Length says more; a chunked
    /// body that grows past it fails the component's read.
    pub max_body_bytes: u64,
    /// A connection whose client accepts no bytes this long is closed (and
    /// its stream ended).
    pub stall_timeout: Duration,
    /// Live streams per client address; more get 429.
    pub max_streams_per_client: u32,
    /// Count loopback clients against that limit too.
    pub limit_loopback: bool,
    /// Live streams in all, loopback included; more get 503.
    pub max_streams: u32,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_header_bytes: 16 * 1024,
            max_body_bytes: 1024 * 1024,
            stall_timeout: Duration::from_secs(30),
            max_streams_per_client: crate::streams::MAX_PER_CLIENT,
            limit_loopback: false,
            max_streams: crate::streams::MAX_TOTAL,
        }
    }
}

impl App {
    pub fn new(config: &Config) -> Result<Arc<App>> {
        let cameras = Cameras::start(&config.cameras, config.media.as_deref())?;
        let runtime = Runtime::with_options(HostInfo::new(cameras.feeds.clone()), config.runtime.clone())?;
        let routes = Routes::load(&runtime, &config.routes, config.media.as_deref(), config.media_read_timeout)?;
        let http = &config.http;
        let streams = StreamSlots::new(http.max_streams_per_client, http.limit_loopback, http.max_streams);
        let accounts = match config.users.as_slice() {
            [] => None,
            users => Some(crate::auth::Accounts::new(users.to_vec(), &crate::auth::key_dir(config))?),
        };
        let observers = Arc::new(Observers {
            metrics: Metrics::new(runtime.host.clone()),
            access_log: config.access_log.as_deref().map(AccessLog::open).transpose()?,
        });
        Ok(Arc::new(App {
            observers,
            runtime,
            routes,
            cameras,
            limits: config.http,
            allow_hosts: config.allow_hosts.clone(),
            allow_origins: config.allow_origins.clone(),
            streams,
            accounts,
            tls: config.tls.is_some(),
        }))
    }

    async fn handle(&self, req: hyper::Request<hyper::body::Incoming>, local: SocketAddr, peer: SocketAddr, pace: Arc<Pace>) -> hyper::Response<HyperOutgoingBody> {
        let origin = crate::cors::allowed_origin(req.headers(), &self.allow_origins);
        let preflight = crate::cors::is_preflight(&req);
        let mut resp = if preflight {
            json_response(if origin.is_some() { 204 } else { 403 }, "cross-origin requests are allowed only from --allow-origin")
        } else {
            self.dispatch(req, local, peer, pace).await
        };
        crate::cors::decorate(resp.headers_mut(), origin, preflight);
        resp
    }

    /// Check a request, route it and run its component.
    async fn dispatch(&self, mut req: hyper::Request<hyper::body::Incoming>, local: SocketAddr, peer: SocketAddr, pace: Arc<Pace>) -> hyper::Response<HyperOutgoingBody> {
        // HTTP/1.0 clients may omit Host; wasi:http needs an authority.
        if req.uri().authority().is_none() && !req.headers().contains_key(hyper::header::HOST) {
            req.headers_mut().insert(hyper::header::HOST, local.to_string().parse().expect("socket address is a valid header"));
        }
        // A Host that is not an authority (bytes past ASCII, spaces) is the
        // client's error: a 400 here, not a failed handler. (Found by
        // tests/fuzz_heads.rs: with accounts, such a request reached wasi-http.)
        if let Some(host) = req.headers().get(hyper::header::HOST)
            && !host.to_str().is_ok_and(|h| h.parse::<hyper::http::uri::Authority>().is_ok())
        {
            return json_response(400, "the Host header is not a host name or address");
        }
        let gate = crate::guard::Gate { accounts: self.accounts.as_ref(), allow_hosts: &self.allow_hosts, tls: self.tls };
        let mut req = match gate.admit(req, peer).await {
            Ok(req) => req,
            Err(answer) => return answer,
        };
        if let Some(alias) = framewire_core::routes::mjpg_streamer_alias(req.uri().path(), req.uri().query().unwrap_or("")) {
            let target = format!("{alias}?{}", req.uri().query().unwrap_or(""));
            let mut parts = req.uri().clone().into_parts();
            parts.path_and_query = target.parse().ok();
            if let Ok(uri) = hyper::Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
        let path = req.uri().path().to_string();
        if path == METRICS_PATH {
            return self.metrics_response(req.method());
        }
        let Some(route) = self.routes.find(&path) else {
            return json_response(404, &format!("no route for {path}"));
        };
        let user = req.extensions_mut().remove::<crate::auth::SignedIn>().map(|u| u.0);
        let req = match limit_body(req, self.limits.max_body_bytes) {
            Ok(req) => req,
            Err(too_large) => {
                self.observers.metrics.refused(refusal::BODY_SIZE);
                return too_large;
            }
        };
        let served = Served { route: Some(route.label.clone()), user };
        match self.runtime.handle(route.current.load_full(), req, route.media.as_ref(), Some(pace)).await {
            Ok(mut resp) => {
                resp.extensions_mut().insert(served);
                resp
            }
            Err(e) if e.downcast_ref::<Overloaded>().is_some() => {
                tracing::warn!(route = %route.name, "{e}");
                self.observers.metrics.refused(refusal::INSTANCES);
                let mut resp = json_response(503, "server busy, retry shortly");
                resp.headers_mut().insert("retry-after", hyper::header::HeaderValue::from_static("1"));
                resp
            }
            Err(e) => {
                tracing::error!(route = %route.name, %path, "{e:#}");
                json_response(500, "the handler failed; see the server log")
            }
        }
    }
}

/// Where the host serves its metrics, before any route.
pub const METRICS_PATH: &str = "/metrics";

impl App {
    fn metrics_response(&self, method: &hyper::Method) -> hyper::Response<HyperOutgoingBody> {
        if method != hyper::Method::GET && method != hyper::Method::HEAD {
            let mut resp = json_response(405, "GET or HEAD");
            resp.headers_mut().insert("allow", hyper::header::HeaderValue::from_static("GET, HEAD"));
            return resp;
        }
        crate::reply::uncached(200, crate::metrics::CONTENT_TYPE, self.observers.metrics.encode())
    }
}

/// The request with its body capped at `max` bytes: a declared length past
/// it is a 413 before any instance exists (hyper then closes the connection
/// rather than read the body); a chunked body fails the component's read
/// with wasi-http's `HttpRequestBodySize` once it passes the cap.
#[allow(clippy::result_large_err)]
fn limit_body(
    req: hyper::Request<hyper::body::Incoming>,
    max: u64,
) -> Result<hyper::Request<impl hyper::body::Body<Data = Bytes, Error = wasmtime_wasi_http::Error> + Send + 'static>, hyper::Response<HyperOutgoingBody>>
{
    let declared = req.headers().get(hyper::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(json_response(413, &format!("request body larger than {max} bytes")));
    }
    Ok(req.map(|body| {
        http_body_util::Limited::new(body, usize::try_from(max).unwrap_or(usize::MAX)).map_err(move |e| {
            match e.downcast::<hyper::Error>() {
                Ok(e) => wasmtime_wasi_http::Error::Hyper(*e),
                Err(_) => wasmtime_wasi_http::Error::HttpRequestBodySize(Some(max)),
            }
        })
    }))
}

/// A client already holds its share of live streams (429), or the host
/// serves all it may (503); the stream that would have been ends with its
/// dropped response.
fn too_many_streams(full: Full, metrics: &Metrics) -> hyper::Response<HyperOutgoingBody> {
    let mut resp = match full {
        Full::Client(n) => {
            metrics.refused(refusal::CLIENT_STREAMS);
            json_response(429, &format!("this address already has {n} live streams open; close one"))
        }
        Full::Host(n) => {
            metrics.refused(refusal::HOST_STREAMS);
            json_response(503, &format!("the server has {n} live streams open, as many as it may"))
        }
    };
    resp.headers_mut().insert("retry-after", hyper::header::HeaderValue::from_static("5"));
    resp
}

/// A server accepting connections in the background: one thread per core,
/// each with its own single-threaded tokio runtime, and an acceptor handing
/// each new connection to the thread with the fewest open. A request and
/// its instance stay on that thread: no work stealing, no cross-thread
/// wake-ups, which on a busy host costs less than a shared multi-threaded
/// runtime (see the README).
pub struct Server {
    pub addr: SocketAddr,
    /// The admin API, if it is on.
    pub admin: Option<crate::admin::Admin>,
    /// The listener's TLS, if it speaks TLS (then only TLS).
    pub tls: Option<TlsInfo>,
    pub app: Arc<App>,
    /// Stops the threads: dropped, at once; given a deadline, once the
    /// connections are done or it passes.
    stop: tokio::sync::watch::Sender<Option<std::time::Instant>>,
    /// Closes when every thread has ended.
    ended: tokio::sync::mpsc::Receiver<()>,
    _watcher: Option<notify::RecommendedWatcher>,
}

/// What a TLS listener tells its operator.
pub struct TlsInfo {
    /// SHA-256 of its certificate, `AB:CD:...`.
    pub fingerprint: String,
    pub cert_file: std::path::PathBuf,
}

impl Server {
    /// `https` or `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// Build the app and start serving on `config.listen` (port 0 picks
    /// one), or on the socket systemd passed.
    pub async fn start(config: &Config) -> Result<Server> {
        let tls = config.tls.as_ref().map(|t| Tls::load(t, config.runtime.cache_dir.as_deref())).transpose()?;
        let listener = match crate::systemd::inherited_listener()? {
            Some(l) => l,
            None => std::net::TcpListener::bind(config.listen).with_context(|| format!("cannot listen on {}", config.listen))?,
        };
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        // The address may be one systemd chose rather than the config's.
        crate::config::check_exposure(addr, &config.users, config.no_auth)?;
        let app = App::new(config)?;
        let dir = crate::admin::admin_dir(config.runtime.cache_dir.as_deref());
        let admin = crate::admin::start(app.clone(), &config.admin, config.admin_token.clone(), &dir, addr).await?;
        let watcher = crate::swap::watch(&app)?;
        let (stop, stopped) = tokio::sync::watch::channel(None);
        let (ended_tx, ended) = tokio::sync::mpsc::channel(1);
        let mut threads = Vec::new();
        for i in 0..config.http_threads {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start an HTTP runtime")?;
            let (app, mut stopped, ended_tx) = (app.clone(), stopped.clone(), ended_tx.clone());
            let tls = tls.as_ref().map(|t| t.acceptor.clone());
            let (handed, mut arrivals) = tokio::sync::mpsc::unbounded_channel();
            let open = app.observers.metrics.connections(i as u32);
            threads.push(HttpThread { handed, open: open.clone() });
            std::thread::Builder::new()
                .name(format!("http-{i}"))
                .spawn(move || {
                    let _ended = ended_tx;
                    runtime.block_on(async move {
                        let connections = GracefulShutdown::new();
                        tokio::select! {
                            () = async {
                                while let Some((stream, peer)) = arrivals.recv().await {
                                    serve_connection(stream, peer, &app, &tls, &connections, Open::new(&open));
                                }
                            } => {}
                            _ = stopped.changed() => {}
                        }
                        // Shutting down: idle connections close, responses in
                        // flight finish, until the deadline.
                        let deadline: Option<std::time::Instant> = *stopped.borrow();
                        if let Some(deadline) = deadline {
                            let open = connections.count();
                            if tokio::time::timeout_at(deadline.into(), connections.shutdown()).await.is_err() {
                                tracing::info!("thread {i}: connections still open at the deadline are cut (of {open} at shutdown)");
                            }
                        }
                    });
                    // Open connections and their instances end with the runtime.
                    runtime.shutdown_background();
                })
                .context("cannot start an HTTP thread")?;
        }
        let acceptor = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the acceptor's runtime")?;
        let mut stopped = stopped.clone();
        std::thread::Builder::new()
            .name("accept".into())
            .spawn(move || {
                acceptor.block_on(async move {
                    match TcpListener::from_std(listener) {
                        Ok(listener) => tokio::select! {
                            () = accept_loop(listener, threads) => {}
                            _ = stopped.changed() => {}
                        },
                        Err(e) => tracing::error!("cannot accept: {e}"),
                    }
                })
            })
            .context("cannot start the acceptor")?;
        let tls = tls.map(|t| TlsInfo { fingerprint: t.fingerprint, cert_file: t.cert_file });
        Ok(Server { addr, admin, tls, app, stop, ended, _watcher: watcher })
    }

    /// Serve until every thread has ended.
    pub async fn wait(&mut self) {
        while self.ended.recv().await.is_some() {}
    }

    /// Stop gracefully: accept no more connections, close idle ones, end
    /// the streams the host relays with a final boundary, and let other
    /// responses in flight finish for up to `grace`; then cut what is left.
    /// Returns once every HTTP thread has ended.
    pub async fn shutdown(mut self, grace: Duration) {
        self.app.runtime.host.shut_down();
        self.stop.send_replace(Some(std::time::Instant::now() + grace));
        self.wait().await;
    }
}

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// An HTTP thread as the acceptor sees it.
struct HttpThread {
    handed: tokio::sync::mpsc::UnboundedSender<(std::net::TcpStream, SocketAddr)>,
    /// Its connections open now (counted up here, down by [`Open`]).
    open: Gauge,
}

/// Counts a connection open on its thread until dropped.
struct Open(Gauge);

impl Open {
    fn new(count: &Gauge) -> Open {
        Open(count.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Accept, and hand each connection to the thread with the fewest open.
/// Threads that each accepted from the socket themselves would not share
/// a burst: the first to wake takes every connection queued (wrk's 64, a
/// wall of cameras' viewers), and keep-alive keeps them there.
async fn accept_loop(listener: TcpListener, threads: Vec<HttpThread>) {
    let mut next = 0;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: back off, keep serving.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // The least loaded, ties taken in turn.
        let n = threads.len();
        let i = (0..n).map(|k| (next + k) % n).min_by_key(|&i| threads[i].open.get()).unwrap_or(0);
        next = (i + 1) % n.max(1);
        threads[i].open.inc();
        // The stream moves to its thread's reactor there; a thread that has
        // ended drops it (and the count with its receiver).
        match stream.into_std() {
            Ok(std) => {
                if threads[i].handed.send((std, peer)).is_err() {
                    threads[i].open.dec();
                }
            }
            Err(_) => {
                threads[i].open.dec();
            }
        }
    }
}

fn serve_connection(
    stream: std::net::TcpStream,
    peer: SocketAddr,
    app: &Arc<App>,
    tls: &Option<tokio_rustls::TlsAcceptor>,
    connections: &GracefulShutdown,
    open: Open,
) {
    let stream = match tokio::net::TcpStream::from_std(stream) {
        Ok(s) => s,
        Err(e) => return tracing::warn!(%peer, "cannot serve a connection: {e}"),
    };
    let Ok(local) = stream.local_addr() else { return };
    let (app, watcher) = (app.clone(), connections.watcher());
    let limits = app.limits;
    let link = Link::new();
    let service = service(app, local, peer, link.clone());
    // Two tasks, not one with both paths: a task's allocation is its future's
    // size, and the TLS path's (handshake, HTTP/2) is several times plain
    // HTTP/1.1's, which every viewer of a plain server would carry.
    match tls.clone() {
        None => {
            let conn = watcher.watch(http1_builder(&limits).serve_connection(LinkIo::new(stream, link, limits.stall_timeout), service));
            tokio::spawn(async move {
                let _open = open;
                if let Err(e) = conn.await {
                    tracing::debug!(%peer, "connection ended: {e}");
                }
            });
        }
        Some(acceptor) => {
            tokio::spawn(async move {
                let _open = open;
                let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => return tracing::debug!(%peer, "TLS handshake failed: {e}"),
                    Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
                };
                // HTTP/2 or HTTP/1.1, as ALPN settled.
                let mut builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
                builder
                    .http1()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .max_buf_size(limits.max_header_bytes.max(8192))
                    .keep_alive(true);
                builder
                    .http2()
                    .timer(TokioTimer::new())
                    .max_header_list_size(limits.max_header_bytes as u32);
                if let Err(e) = watcher.watch(builder.serve_connection(LinkIo::new(stream, link, limits.stall_timeout), service)).await {
                    tracing::debug!(%peer, "connection ended: {e}");
                }
            });
        }
    }
}

fn http1_builder(limits: &HttpLimits) -> http1::Builder {
    let mut b = http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .max_header_size(limits.max_header_bytes)
        .keep_alive(true);
    b
}

/// One connection's requests: each through [`App::handle`], its response
/// paced, a live stream holding its client's slot.
fn service(
    app: Arc<App>,
    local: SocketAddr,
    peer: SocketAddr,
    link: Arc<Link>,
) -> impl hyper::service::Service<hyper::Request<hyper::body::Incoming>, Response = hyper::Response<PacedBody>, Error = std::convert::Infallible, Future: Send>
+ Clone {
    service_fn(move |req| {
        let app = app.clone();
        let pace = Pace::new(&link);
        async move {
            let mut exchange = Exchange::begin(&app.observers, &req, peer, pace.clone());
            let mut resp = app.handle(req, local, peer, pace.clone()).await;
            let mut slot = None;
            if crate::streams::is_live(&resp) {
                match app.streams.take(peer.ip()) {
                    Ok(s) => slot = Some(s),
                    // The stream that would have been ends with its dropped response.
                    Err(full) => resp = too_many_streams(full, &app.observers.metrics),
                }
            }
            exchange.head(&resp);
            Ok(resp.map(|body| PacedBody::new(body, pace).holding(slot).observed(exchange)))
        }
    })
}
