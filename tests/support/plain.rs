//! Components under plain wasmtime, without the framewire host: WASI (p2)
//! and wasi:http only, linked as `wasmtime serve -Scli` links them, a fresh
//! instance per request. Proves a component needs nothing of ours.

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::BodyExt;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::task::JoinHandle;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// One instance's host state.
pub struct State {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: Offline,
    /// Held while the instance lives (see [`Server::instances`]).
    _alive: Option<Arc<()>>,
}

impl State {
    pub fn new(wasi: WasiCtx) -> Self {
        State { table: ResourceTable::new(), wasi, http: WasiHttpCtx::new(), hooks: Offline, _alive: None }
    }
}

/// This embedding allows no outgoing requests.
struct Offline;

impl wasmtime_wasi_http::WasiHttpHooks for Offline {
    fn send_request(
        &mut self,
        _: http::Request<wasmtime_wasi_http::WasiBody>,
        _: Option<wasmtime_wasi_http::RequestOptions>,
        _: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<
        dyn Future<
                Output = wasmtime_wasi_http::Result<(
                    http::Response<wasmtime_wasi_http::WasiBody>,
                    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
                )>,
            > + Send,
    > {
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.hooks }
    }
}

/// `component` linked against WASI and wasi:http alone: fails if it
/// imports anything else.
pub fn proxy_pre(bytes: &[u8]) -> Result<ProxyPre<State>> {
    let engine = Engine::default();
    let mut linker = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    let component = Component::new(&engine, bytes)?;
    let pre = linker.instantiate_pre(&component).map_err(anyhow::Error::from).context("needs only WASI and wasi:http")?;
    Ok(ProxyPre::new(pre)?)
}

/// The names a component imports.
pub fn imports(bytes: &[u8]) -> Result<Vec<String>> {
    let engine = Engine::default();
    let component = Component::new(&engine, bytes)?;
    Ok(component.component_type().imports(&engine).map(|(name, _)| name.to_string()).collect())
}

/// Handle `req` in a fresh instance. Returns the response as soon as the
/// component has set it (its body streams from the instance), and the
/// handler call, which runs on for as long as the component's handler does
/// and then drops the instance.
pub async fn handle<B>(
    pre: &ProxyPre<State>,
    state: State,
    req: hyper::Request<B>,
) -> Result<(hyper::Response<HyperOutgoingBody>, JoinHandle<Result<()>>)>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<wasmtime_wasi_http::Error>,
{
    let mut store = Store::new(pre.engine(), state);
    let req = store.data_mut().http().new_incoming_request(Scheme::Http, req)?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let out = store.data_mut().http().new_response_outparam(tx)?;
    let pre = pre.clone();
    let call = tokio::spawn(async move {
        let proxy = pre.instantiate_async(&mut store).await?;
        Ok(proxy.wasi_http_incoming_handler().call_handle(&mut store, req, out).await?)
    });
    match rx.await {
        Ok(resp) => Ok((resp.map_err(|e| anyhow::anyhow!("component answered with error {e:?}"))?, call)),
        // The handler ended without a response: it trapped, say.
        Err(_) => match call.await? {
            Err(e) => Err(anyhow::Error::from(e).context("component failed before it responded")),
            Ok(()) => bail!("component returned without a response"),
        },
    }
}

/// A component served over HTTP/1.1 on a loopback port, as `wasmtime serve`
/// serves it.
pub struct Server {
    pub addr: SocketAddr,
    /// One more reference for each instance alive.
    alive: Arc<()>,
    accept: JoinHandle<()>,
}

impl Server {
    /// Listen on 127.0.0.1 (a free port); each request gets an instance
    /// with the WASI context `wasi` makes.
    pub async fn start(pre: ProxyPre<State>, wasi: impl Fn() -> WasiCtx + Send + Sync + 'static) -> Result<Server> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let alive = Arc::new(());
        let ctx = Arc::new((pre, wasi, Arc::downgrade(&alive)));
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let ctx = ctx.clone();
                let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let ctx = ctx.clone();
                    async move {
                        let (pre, wasi, alive) = &*ctx;
                        let state = State { _alive: alive.upgrade(), ..State::new(wasi()) };
                        match handle(pre, state, req).await {
                            Ok((resp, call)) => {
                                tokio::spawn(async move {
                                    if let Ok(Err(e)) = call.await {
                                        eprintln!("handler failed: {e:#}");
                                    }
                                });
                                Ok::<_, std::convert::Infallible>(resp)
                            }
                            Err(e) => {
                                eprintln!("request failed: {e:#}");
                                let body = http_body_util::Full::new(Bytes::from(format!("{e:#}")));
                                let body = body.map_err(|never| match never {}).boxed_unsync();
                                Ok(hyper::Response::builder().status(500).body(body).unwrap())
                            }
                        }
                    }
                });
                tokio::spawn(async move {
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
                });
            }
        });
        Ok(Server { addr, alive, accept })
    }

    /// Instances alive: requests whose handler still runs (a stream, say).
    pub fn instances(&self) -> usize {
        Arc::strong_count(&self.alive) - 1
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.accept.abort();
    }
}
