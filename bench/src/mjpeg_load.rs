//! MJPEG load generator: starts framewire (or uses a running one), opens N
//! stream clients, and reports what they received and what it cost the host.
//!
//! `cargo run --release -p framewire-bench --bin mjpeg-load -- --help`

use anyhow::{Context, Result, bail};
use framewire_bench::{Server, cpu_seconds, percentile, rss_kib, self_cpu_seconds};
use bytes::Bytes;
use clap::Parser as _;
use framewire_core::mjpeg::{self, Parser};
use http_body_util::{BodyExt, Empty};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(clap::Parser, Debug)]
#[command(about = "Open N MJPEG clients against framewire and report delivery, latency, CPU and memory")]
struct Args {
    /// framewire binary to start (with the camera below).
    #[arg(long, default_value = "target/release/framewire")]
    server: String,
    /// Camera source for the started server (always on: the idle figure is
    /// then the camera's own capture and encode cost).
    #[arg(long, default_value = "test:640x480@30,always-on")]
    camera: String,
    /// Client counts to run, one after another.
    #[arg(long, value_delimiter = ',', default_value = "1,200,500,1000")]
    clients: Vec<usize>,
    /// Seconds to let clients settle before measuring.
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// Seconds to measure.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Path to stream.
    #[arg(long, default_value = "/stream")]
    path: String,
    /// Rounds per client count, framewire and the baseline taking turns;
    /// more than one prints the median ratio and its spread (the VM's own
    /// speed drifts between runs, the baseline's included).
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// The native baseline run beside framewire, or `off`.
    #[arg(long, default_value = "target/release/mjpeg-baseline")]
    baseline: Option<String>,
}

/// What one client saw during the measured window.
#[derive(Default)]
struct ClientStats {
    frames: u64,
    first_seq: Option<u64>,
    last_seq: u64,
    latencies_us: Vec<u64>,
    error: Option<String>,
}

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as u64
}

/// Clients connecting at once: viewers arrive over time, not in the same
/// millisecond, and each handshake runs a handler instance whose pool slot
/// keeps its pages for reuse; so an unbounded burst would measure the peak
/// of instances in flight rather than what a stream costs.
const CONNECTING: usize = 32;

async fn client(addr: SocketAddr, path: String, window: (Instant, Instant), arriving: Arc<tokio::sync::Semaphore>) -> ClientStats {
    let mut stats = ClientStats::default();
    if let Err(e) = run_client(addr, &path, window, arriving, &mut stats).await {
        stats.error = Some(format!("{e:#}"));
    }
    stats
}

async fn run_client(
    addr: SocketAddr,
    path: &str,
    (start, end): (Instant, Instant),
    arriving: Arc<tokio::sync::Semaphore>,
    stats: &mut ClientStats,
) -> Result<()> {
    // Held until the first part arrives.
    let mut arriving = Some(arriving.acquire_owned().await?);
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = hyper::Request::get(path).header("host", addr.to_string()).body(Empty::<Bytes>::new())?;
    let resp = sender.send_request(req).await?;
    if resp.status() != 200 {
        bail!("status {}", resp.status());
    }
    let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    let mut parser = Parser::from_content_type(ct)?.skip_bodies();
    let mut body = resp.into_body();
    let deadline = tokio::time::Instant::from_std(end);
    while let Ok(next) = tokio::time::timeout_at(deadline, body.frame()).await {
        let Some(frame) = next else { bail!("stream ended") };
        let Ok(data) = frame?.into_data() else { continue };
        let parts = parser.feed(&data)?;
        if !parts.is_empty() {
            arriving.take();
        }
        let now = Instant::now();
        if now < start {
            continue;
        }
        let received = now_us();
        for p in parts {
            let seq: u64 = p.header("x-frame-sequence").context("no X-Frame-Sequence")?.parse()?;
            let ts = mjpeg::parse_timestamp(p.header("x-timestamp").context("no X-Timestamp")?)
                .context("bad X-Timestamp")?;
            stats.frames += 1;
            stats.first_seq.get_or_insert(seq);
            stats.last_seq = seq;
            stats.latencies_us.push(received.saturating_sub(ts));
        }
    }
    Ok(())
}

async fn camera_clients(addr: SocketAddr) -> Result<u64> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = hyper::Request::get("/api/state").header("host", addr.to_string()).body(Empty::<Bytes>::new())?;
    let body = sender.send_request(req).await?.into_body().collect().await?.to_bytes();
    let state: serde_json::Value = serde_json::from_slice(&body)?;
    state["cameras"][0]["clients"].as_u64().context("no clients in state")
}

/// One measured server: what it is, and its idle cost.
struct Measured {
    name: &'static str,
    server: Server,
    idle_cpu: f64,
    base_rss: Option<(usize, u64)>,
}

impl Measured {
    async fn new(name: &'static str, server: Server) -> Result<Measured> {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let pid = server.pid();
        let idle_rss = rss_kib(pid)?;
        let c0 = cpu_seconds(pid)?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let idle_cpu = (cpu_seconds(pid)? - c0) / 3.0;
        println!("{name:>9} {} | idle: {:.1}% of a core, RSS {} KiB", server.addr, idle_cpu * 100.0, idle_rss);
        Ok(Measured { name, server, idle_cpu, base_rss: None })
    }

    /// `n` clients for the run's window; prints a row, returns CPU µs per
    /// client-frame above idle.
    async fn run(&mut self, n: usize, args: &Args) -> Result<f64> {
        let (addr, pid) = (self.server.addr, self.server.pid());
        let start = Instant::now() + Duration::from_secs_f64(args.warmup);
        let end = start + Duration::from_secs_f64(args.seconds);
        let arriving = Arc::new(tokio::sync::Semaphore::new(CONNECTING));
        let tasks: Vec<_> = (0..n).map(|_| tokio::spawn(client(addr, args.path.clone(), (start, end), arriving.clone()))).collect();
        tokio::time::sleep_until(start.into()).await;
        let (cpu0, gen0) = (cpu_seconds(pid)?, self_cpu_seconds());
        tokio::time::sleep_until((start + Duration::from_secs_f64(args.seconds / 2.0)).into()).await;
        let rss = rss_kib(pid)?;
        tokio::time::sleep_until(end.into()).await;
        let (cpu1, gen1) = (cpu_seconds(pid)?, self_cpu_seconds());
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await?);
        }
        let errors: Vec<_> = results.iter().filter_map(|r| r.error.as_ref()).collect();
        let mut fps: Vec<f64> = results.iter().map(|r| r.frames as f64 / args.seconds).collect();
        fps.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let delivered: u64 = results.iter().map(|r| r.frames).sum();
        let made: u64 = results.iter().map(|r| r.first_seq.map_or(0, |f| r.last_seq - f + 1)).sum();
        let mut lat: Vec<u64> = results.iter().flat_map(|r| r.latencies_us.iter().copied()).collect();
        lat.sort_unstable();
        let host_cpu = cpu1 - cpu0;
        let per_frame = host_cpu / delivered.max(1) as f64 * 1e6;
        let per_frame_above_idle = (host_cpu - self.idle_cpu * args.seconds).max(0.0) / delivered.max(1) as f64 * 1e6;
        let per_client = match self.base_rss {
            Some((n0, r0)) if n > n0 => format!("{:.0}", (rss as f64 - r0 as f64) / (n - n0) as f64),
            _ => "-".into(),
        };
        if self.base_rss.is_none() {
            self.base_rss = Some((n, rss));
        }
        println!(
            "{:>9} {:>6} {:>9.1} {:>9.1} {:>9.2} {:>6.1}ms {:>6.1}ms {:>8.1} {:>10} {:>10.1} {:>9.1} {:>7.0}%",
            self.name,
            n,
            fps.first().copied().unwrap_or(0.0),
            fps.get(fps.len() / 2).copied().unwrap_or(0.0),
            100.0 * delivered as f64 / made.max(1) as f64,
            percentile(&lat, 0.5) as f64 / 1000.0,
            percentile(&lat, 0.99) as f64 / 1000.0,
            rss as f64 / 1024.0,
            per_client,
            per_frame,
            per_frame_above_idle,
            (gen1 - gen0) / args.seconds * 100.0,
        );
        if !errors.is_empty() {
            println!("          {} client errors, e.g. {}", errors.len(), errors[0]);
        }
        Ok(per_frame_above_idle)
    }
}

/// `count` of the framewire camera's frames, as the baseline's to send.
async fn frames_of(addr: SocketAddr, count: usize) -> Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    for i in 0..count {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let req = hyper::Request::get("/snapshot").header("host", addr.to_string()).body(Empty::<Bytes>::new())?;
        let jpeg = sender.send_request(req).await?.into_body().collect().await?.to_bytes();
        std::fs::write(dir.path().join(format!("{i:03}.jpg")), &jpeg)?;
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    Ok(dir)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let mut framewire = Measured::new("framewire", Server::start(&args.server, &[format!("cam={}", args.camera)], &[])?).await?;
    let frames = frames_of(framewire.server.addr, 30).await?;
    let mut baseline = match &args.baseline {
        Some(bin) if bin != "off" => {
            let mut cmd = std::process::Command::new(bin);
            cmd.arg("--frames").arg(frames.path());
            Some(Measured::new("baseline", Server::spawn(cmd, "baseline listening on http://")?).await?)
        }
        _ => None,
    };
    println!("camera {}; baseline: a plain hyper server sending 30 of its frames as shared Bytes (bench/src/baseline.rs)", args.camera);
    println!(
        "{:>9} {:>6} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8} {:>10} {:>10} {:>9} {:>8}",
        "server", "N", "fps min", "fps med", "deliv %", "lat p50", "lat p99", "RSS MiB", "KiB/client", "µs/cframe", "µs/c-idle", "gen cpu"
    );
    for &n in &args.clients {
        let mut ratios = Vec::new();
        for _ in 0..args.repeat.max(1) {
            let ours = framewire.run(n, &args).await?;
            // Let framewire release every instance before the next round.
            let wait = Instant::now();
            while camera_clients(framewire.server.addr).await? > 0 && wait.elapsed() < Duration::from_secs(10) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if let Some(b) = &mut baseline {
                let floor = b.run(n, &args).await?;
                let ratio = ours / floor.max(f64::EPSILON);
                println!("{:>9} {:>6} framewire / baseline CPU per client-frame above idle: {ratio:.2}x", "ratio", n);
                ratios.push(ratio);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        if ratios.len() > 1 {
            ratios.sort_by(f64::total_cmp);
            let m = ratios.len() / 2;
            let median = if ratios.len() % 2 == 1 { ratios[m] } else { (ratios[m - 1] + ratios[m]) / 2.0 };
            let (lo, hi) = (ratios[0], ratios[ratios.len() - 1]);
            println!("{:>9} {:>6} median of {} rounds: {median:.2}x ({lo:.2}-{hi:.2})", "ratio", n, ratios.len());
        }
    }
    println!("deliv % = frames received / frames the camera made while each client watched; lat = receive time - X-Timestamp (capture);");
    println!("µs/cframe = host CPU per delivered client-frame (µs/c-idle: minus the server's idle cost); gen cpu = this load generator's CPU.");
    Ok(())
}
