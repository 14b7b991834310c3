//! The wasm side of the host: one Engine, components compiled once and
//! pre-instantiated, and a fresh Store + instance for every request.

use crate::frames::Feeds;
use crate::guest::{self, ComponentInfo};
use crate::mediafs::MediaDir;
use crate::pacing::Pace;
use crate::relay::Handover;
use anyhow::{Context, Result, anyhow};
use sha2::{Digest, Sha256};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use wasmtime::component::{Component, Linker, ResourceTable};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use wasmtime::{CallHook, Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, UpdateDeadline};
use std::path::PathBuf;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::{Proxy, ProxyPre};
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// What every instance may ask the host about.
pub struct HostInfo {
    pub feeds: Arc<Feeds>,
    pub started: Instant,
    components: RwLock<Vec<ComponentInfo>>,
    /// Stores alive now (one per instance, made or being made).
    instances: AtomicU64,
    /// Set once the server is shutting down: streams the host relays end.
    shutting_down: tokio::sync::watch::Sender<bool>,
}

impl HostInfo {
    pub fn new(feeds: Arc<Feeds>) -> Arc<Self> {
        Arc::new(HostInfo {
            feeds,
            started: Instant::now(),
            components: RwLock::default(),
            instances: AtomicU64::new(0),
            shutting_down: tokio::sync::watch::Sender::new(false),
        })
    }
    pub fn components(&self) -> Vec<ComponentInfo> {
        self.components.read().unwrap().clone()
    }
    pub fn set_components(&self, list: Vec<ComponentInfo>) {
        *self.components.write().unwrap() = list;
    }
    pub fn instances_in_use(&self) -> u64 {
        self.instances.load(Ordering::Relaxed)
    }
    /// Tell everything the host streams by itself to end cleanly.
    pub fn shut_down(&self) {
        self.shutting_down.send_replace(true);
    }
    /// Becomes true when the server starts shutting down.
    pub fn shutting_down(&self) -> tokio::sync::watch::Receiver<bool> {
        self.shutting_down.subscribe()
    }
}

/// Per-request store data.
pub struct Ctx {
    pub table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: NoOutgoing,
    pub host: Arc<HostInfo>,
    /// The media folder, if this route has one (see [`crate::mediafs`]).
    pub media: Option<MediaDir>,
    /// The response's delivery accounting, if it goes to a socket (see [`crate::pacing`]).
    pub(crate) pace: Option<Arc<Pace>>,
    /// Where the host may take over the response's body (see [`crate::relay`]).
    pub(crate) handover: Option<Arc<Handover>>,
    /// Host calls the guest has made; the epoch check compares it tick to
    /// tick to see whether the guest has been computing all along.
    host_calls: u64,
    /// `host_calls` at the last epoch tick, and ticks since it last changed.
    seen_calls: u64,
    busy_ticks: u32,
    /// Set while the epoch check runs: wasmtime reports it as a host call,
    /// and it must not count as one.
    in_epoch_check: bool,
}

impl Drop for Ctx {
    fn drop(&mut self) {
        self.host.instances.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Handlers answer requests; they may not make outgoing ones.
struct NoOutgoing;

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<wasmtime_wasi_http::WasiBody>,
    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
)>;

impl wasmtime_wasi_http::WasiHttpHooks for NoOutgoing {
    fn send_request(
        &mut self,
        _request: http::Request<wasmtime_wasi_http::WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }

    /// Room for a whole MJPEG part (headers, frame, delimiter) so hyper can
    /// send it in one vectored write instead of three.
    fn p2_outgoing_body_buffer_chunks(&mut self) -> usize {
        4
    }
}

impl WasiView for Ctx {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for Ctx {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.hooks }
    }
}

/// A compiled, pre-instantiated handler component.
pub struct Loaded {
    pub pre: ProxyPre<Ctx>,
    /// `builtin:NAME` or the file it came from.
    pub source: String,
    pub sha256: String,
    pub loaded_at: SystemTime,
    /// It imports `frames` and so may hand its body over (`relay`): only its
    /// responses pay for the [`Handover`].
    relays: bool,
}

impl Loaded {
    pub fn info(&self, route: &str) -> ComponentInfo {
        ComponentInfo {
            route: route.to_string(),
            source: self.source.clone(),
            sha256: self.sha256.clone(),
            loaded_at_ms: self.loaded_at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
            previous_sha256: None,
            last_error: None,
        }
    }

    /// An instance of this component in `store`, which must be fresh: what
    /// every request pays before the handler runs. [`Overloaded`] when the
    /// pool is full.
    async fn instantiate_in(&self, store: &mut Store<Ctx>) -> Result<Proxy> {
        // The first tick counts from here, not from the store's creation: a
        // store that waited its turn across a tick would otherwise be taken
        // for a busy guest and yield (holding its slot) before running.
        store.set_epoch_deadline(1);
        match self.pre.instantiate_async(store).await {
            Ok(proxy) => Ok(proxy),
            Err(e) if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>().is_some() => {
                Err(anyhow::Error::new(Overloaded))
            }
            Err(e) => Err(anyhow!("{}: cannot instantiate: {e:#}", self.source)),
        }
    }
}

/// Instances that may exist at once by default (live streams included).
pub const MAX_INSTANCES: u32 = 2048;

/// All instances are busy: the request should be retried later (503).
#[derive(Debug)]
pub struct Overloaded;

impl std::fmt::Display for Overloaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("all handler instances are busy")
    }
}

impl std::error::Error for Overloaded {}
/// Linear memory one instance may use.
pub const MAX_INSTANCE_MEMORY: usize = 64 << 20;
/// Dirty bytes of a freed instance slot reset in place rather than dropped.
const KEEP_RESIDENT: usize = 1 << 20;

/// The one place the engine is configured. A pooling allocator: instances
/// reuse pre-reserved slots instead of mapping and unmapping memory per
/// request, which on a busy multi-threaded host costs a TLB shootdown each.
fn engine_config(max_instances: u32) -> Config {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(max_instances)
        // A Rust component is one core module plus a few canonical-ABI shims.
        .total_core_instances(max_instances * 4)
        .total_memories(max_instances)
        .total_tables(max_instances * 4)
        .total_stacks(max_instances)
        .max_memory_size(MAX_INSTANCE_MEMORY)
        // Resetting a slot for the next request: with PAGEMAP_SCAN (Linux
        // 6.7+; ignored elsewhere) only the pages a request dirtied are
        // zeroed in place, up to this much, instead of an madvise that drops
        // them, faults them back in next time and interrupts the other cores
        // to flush their TLBs. Halves a trivial request's cost here
        // (`./dev bench-instantiate`). The price: those pages stay resident.
        .pagemap_scan(wasmtime::Enabled::Auto)
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT);
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    // Reserve address space for what an instance may use, not the default
    // 4 GiB per slot: the pool stays ~200 GiB of address space, not ~8 TiB.
    config.memory_reservation(MAX_INSTANCE_MEMORY as u64);
    config
}

/// The engine with a pool for `max_instances`, or for fewer where the
/// address space cannot hold that many slots (each reserves ~100 MiB of
/// virtual memory: a 39-bit ARM kernel's 512 GiB holds the default 2048, a
/// smaller one does not), halving until it fits rather than not starting.
fn engine_fitting(max_instances: u32) -> Result<Engine> {
    const FEWEST: u32 = 16;
    let mut n = max_instances;
    loop {
        match Engine::new(&engine_config(n)) {
            Ok(engine) => {
                if n < max_instances {
                    tracing::warn!(
                        "the address space holds {n} handler instances, not {max_instances}: serving with at most {n} at once"
                    );
                }
                return Ok(engine);
            }
            Err(e) if n > FEWEST => {
                tracing::debug!("no pool for {n} instances: {e:#}");
                n = (n / 2).max(FEWEST);
            }
            Err(e) => {
                return Err(anyhow::Error::from(e)
                    .context(format!("cannot reserve address space for {n} handler instances (about 100 MiB each)")));
            }
        }
    }
}

/// How a runtime is set up.
#[derive(Debug, Clone)]
pub struct Options {
    /// Instances that may run at once; more requests get [`Overloaded`].
    pub max_instances: u32,
    /// Where compiled components are kept, keyed by their SHA-256 (None: no cache).
    pub cache_dir: Option<PathBuf>,
    /// Longest a guest may compute without calling the host before its
    /// request is ended. Waiting (for a frame, a socket) does not count.
    pub cpu_limit: Duration,
}

/// Default for [`Options::cpu_limit`].
pub const CPU_LIMIT: Duration = Duration::from_secs(1);
/// Epoch tick: the granularity of the CPU limit, and how often a busy guest
/// yields its worker thread to other tasks.
const TICK: Duration = Duration::from_millis(10);

impl Default for Options {
    fn default() -> Self {
        Options { max_instances: MAX_INSTANCES, cache_dir: None, cpu_limit: CPU_LIMIT }
    }
}

pub struct Runtime {
    engine: Engine,
    linker: Linker<Ctx>,
    cache_dir: Option<PathBuf>,
    cpu_limit: Duration,
    ticker_stop: Arc<AtomicBool>,
    pub host: Arc<HostInfo>,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

impl Runtime {
    pub fn new(host: Arc<HostInfo>) -> Result<Self> {
        Self::with_options(host, Options::default())
    }

    pub fn with_options(host: Arc<HostInfo>, options: Options) -> Result<Self> {
        let engine = engine_fitting(options.max_instances)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        crate::mediafs::add_to_linker(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        crate::pacing::add_to_linker(&mut linker, |ctx: &Ctx| ctx.pace.clone())?;
        guest::add_to_linker(&mut linker)?;
        let ticker_stop = Arc::new(AtomicBool::new(false));
        let (e, stop) = (engine.clone(), ticker_stop.clone());
        std::thread::Builder::new().name("epoch-ticker".into()).spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(TICK);
                e.increment_epoch();
            }
        })?;
        Ok(Runtime { engine, linker, cache_dir: options.cache_dir, cpu_limit: options.cpu_limit, ticker_stop, host })
    }

    /// The compiled form of `bytes`, from the cache when it has it. Cache
    /// entries are named by the component's hash and this engine's
    /// compatibility hash, so a different wasmtime or setting never loads them.
    fn compile(&self, bytes: &[u8], sha256: &str) -> Result<Component> {
        let Some(dir) = &self.cache_dir else {
            return Ok(Component::new(&self.engine, bytes)?);
        };
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(&self.engine.precompile_compatibility_hash(), &mut h);
        let path = dir.join(format!("{sha256}-{:016x}.cwasm", std::hash::Hasher::finish(&h)));
        if path.is_file() {
            // SAFETY: only this cache's own output, written below from a
            // successful compile and renamed into place whole, is read here.
            match unsafe { Component::deserialize_file(&self.engine, &path) } {
                Ok(c) => return Ok(c),
                Err(e) => tracing::warn!("ignoring cache entry {}: {e:#}", path.display()),
            }
        }
        let component = Component::new(&self.engine, bytes)?;
        let written = std::fs::create_dir_all(dir).and_then(|()| {
            // Unique per write: two servers in one process may compile the
            // same component at once, and must not write one file together.
            static WRITES: AtomicU64 = AtomicU64::new(0);
            let n = WRITES.fetch_add(1, Ordering::Relaxed);
            let tmp = path.with_extension(format!("tmp{}-{n}", std::process::id()));
            let done = component
                .serialize()
                .map_err(std::io::Error::other)
                .and_then(|bytes| std::fs::write(&tmp, bytes))
                .and_then(|()| std::fs::rename(&tmp, &path));
            if done.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            done
        });
        if let Err(e) = written {
            tracing::warn!("cannot cache compiled component in {}: {e}", dir.display());
        }
        Ok(component)
    }

    /// Compile a component and check that it is a handler whose imports we
    /// can satisfy.
    pub fn load(&self, source: &str, bytes: &[u8]) -> Result<Loaded> {
        let sha256 = sha256_hex(bytes);
        let component =
            self.compile(bytes, &sha256).map_err(|e| anyhow!("{source}: not a valid wasm component: {e:#}"))?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| anyhow!("{source}: imports something framewire does not provide: {e:#}\nframewire provides: {PROVIDED}"))?;
        let pre = ProxyPre::new(pre)
            .map_err(|e| anyhow!("{source}: does not export wasi:http/incoming-handler@0.2: {e:#}"))?;
        let relays = component
            .component_type()
            .imports(&self.engine)
            .any(|(name, _)| name.starts_with("framewire:camera/frames@"));
        Ok(Loaded {
            relays,
            pre,
            source: source.to_string(),
            sha256,
            loaded_at: SystemTime::now(),
        })
    }

    /// A fresh store for one instance; `media` is what it sees as `/` (see `mediafs`).
    fn store(&self, media: Option<&MediaDir>, pace: Option<Arc<Pace>>, relays: bool) -> Result<Store<Ctx>> {
        let mut wasi = WasiCtx::builder();
        wasi.inherit_stderr();
        // Page-cache reads and stats take microseconds: doing them on this
        // thread beats a round trip through the blocking pool. The media
        // folder is not preopened here: see `mediafs`.
        wasi.allow_blocking_current_thread(true);
        self.host.instances.fetch_add(1, Ordering::Relaxed);
        let ctx = Ctx {
            table: ResourceTable::new(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            hooks: NoOutgoing,
            host: self.host.clone(),
            media: media.cloned(),
            pace,
            handover: relays.then(Arc::default),
            host_calls: 0,
            seen_calls: 0,
            busy_ticks: 0,
            in_epoch_check: false,
        };
        let mut store = Store::new(&self.engine, ctx);
        // CPU limit: at every tick, a guest that has made no host call since
        // the previous tick has been computing all along; past the limit it
        // is interrupted, within it it yields so it cannot hog a worker. A
        // guest that has been waiting (a stream between frames) continues.
        let limit_ticks = (self.cpu_limit.as_millis() / TICK.as_millis()).max(1) as u32;
        store.epoch_deadline_callback(move |mut ctx| {
            let d = ctx.data_mut();
            d.in_epoch_check = true;
            if d.host_calls == d.seen_calls {
                d.busy_ticks += 1;
            } else {
                (d.seen_calls, d.busy_ticks) = (d.host_calls, 0);
            }
            Ok(match d.busy_ticks {
                // It waited on the host since the last tick: nothing to do.
                0 => UpdateDeadline::Continue(1),
                n if n > limit_ticks => UpdateDeadline::Interrupt,
                _ => UpdateDeadline::Yield(1),
            })
        });
        store.call_hook(|mut ctx, hook| {
            if let CallHook::ReturningFromHost = hook {
                let d = ctx.data_mut();
                if d.in_epoch_check {
                    d.in_epoch_check = false;
                } else {
                    d.host_calls += 1;
                }
            }
            Ok(())
        });
        Ok(store)
    }

    /// Instantiate once without serving anything: a component whose start-up
    /// traps, or that cannot be instantiated, fails here and not on a request.
    pub async fn smoke_test(&self, component: &Loaded, media: Option<&MediaDir>) -> Result<()> {
        self.instantiate(component, media, None).await.map(drop)
    }

    /// A fresh store and instance of `component` (see [`Loaded::instantiate_in`]).
    pub async fn instantiate(&self, component: &Loaded, media: Option<&MediaDir>, pace: Option<Arc<Pace>>) -> Result<(Store<Ctx>, Proxy)> {
        let mut store = self.store(media, pace, component.relays)?;
        let proxy = component.instantiate_in(&mut store).await?;
        Ok((store, proxy))
    }

    /// Run one request through a new instance of `component`. Returns once
    /// the component has sent its response head; the body streams on.
    /// `pace` paces the body's flushes to the socket it goes to.
    pub async fn handle<B>(
        &self,
        component: Arc<Loaded>,
        req: hyper::Request<B>,
        media: Option<&MediaDir>,
        pace: Option<Arc<Pace>>,
    ) -> Result<hyper::Response<HyperOutgoingBody>>
    where
        B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let mut store = self.store(media, pace, component.relays)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let req = store.data_mut().http().new_incoming_request(Scheme::Http, req)?;
        let out = store.data_mut().http().new_response_outparam(tx)?;
        let handover = store.data().handover.clone();
        let source = component.source.clone();
        // How the handler ended, for this request if it has no response yet;
        // once the response is out, the task reports failures itself.
        let (done_tx, mut done_rx) = tokio::sync::oneshot::channel::<Result<(), Ended>>();
        let task_source = source.clone();
        tokio::spawn(async move {
            // Instantiated here rather than before the spawn: requests that
            // arrive together then take turns through one warm pool slot per
            // thread, each instance gone before the next is made, instead of
            // all holding a slot until the first one runs.
            let ended = match component.instantiate_in(&mut store).await {
                Ok(proxy) => proxy.wasi_http_incoming_handler().call_handle(&mut store, req, out).await.map_err(|e| Ended::Failed(e.into())),
                Err(e) => Err(Ended::NotStarted(e)),
            };
            // The version stays loaded while any of its instances runs, and
            // goes (compiled code and all) with the last one after a swap.
            drop(component);
            if let Err(Err(e)) = done_tx.send(ended) {
                tracing::warn!(component = %task_source, "handler failed after responding: {e:#}");
            }
        });
        match rx.await {
            Ok(Ok(resp)) => {
                // From here on the task reports; an end it already sent is
                // reported here.
                done_rx.close();
                if let Ok(Err(e)) = done_rx.try_recv() {
                    tracing::warn!(component = %source, "handler failed after responding: {e:#}");
                }
                Ok(match handover {
                    Some(handover) => resp.map(|body| handover.wrap(body)),
                    None => resp,
                })
            }
            Ok(Err(code)) => Err(anyhow!("{source} answered with error {code:?}")),
            // The response went unset: the handler has ended (its store, and
            // with it the response slot, is dropped after it reports).
            Err(_) => match done_rx.await {
                // A full pool stays `Overloaded` for the caller to answer 503.
                Ok(Err(Ended::NotStarted(e))) => return Err(e),
                Ok(Ok(())) => Err(anyhow!("{source} returned without sending a response")),
                Ok(Err(Ended::Failed(e))) => Err(anyhow!("{source} failed: {e:#}")),
                Err(_) => Err(anyhow!("{source} panicked")),
            },
        }
        .context("handler error")
    }
}

/// How a handler that did not finish cleanly ended.
enum Ended {
    /// Its instance could not be made (see [`Loaded::instantiate_in`]).
    NotStarted(anyhow::Error),
    /// It trapped or failed.
    Failed(anyhow::Error),
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (Ended::NotStarted(e) | Ended::Failed(e)) = self;
        write!(f, "{e:#}")
    }
}

/// What framewire gives a handler, named when an import is missing.
pub const PROVIDED: &str = "wasi:io, wasi:clocks, wasi:random, wasi:cli (stdout and stderr only), \
wasi:filesystem (the media folder, read-only, on the files route), wasi:http/types and \
wasi:http/outgoing-handler (outgoing requests are refused), framewire:camera/frames and \
framewire:camera/host @0.2.x";

/// Hex SHA-256 of a component's bytes: its identity in state and caches.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
