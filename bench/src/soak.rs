//! `./dev soak`: framewire under churn for a long while, its footprint
//! sampled. Viewers join and leave (relayed streams and streams looping in
//! the component), snapshots and random range requests keep coming, and the
//! MJPEG component is swapped every minute (a new version renamed over the
//! watched file). Every sample prints RSS, open fds, threads and handler
//! instances of the server (from /proc and its /metrics); the summary gives
//! their spread and drift after the warm-up, and the requests that failed.

use anyhow::{Context, Result, bail};
use clap::Parser;
use framewire_bench::{Server, rss_kib};
use framewire_core::wasm::with_custom_section;
use http_body_util::BodyExt;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// How long the churn runs.
    #[arg(long, default_value_t = 30.0)]
    minutes: f64,
    /// Seconds between samples.
    #[arg(long, default_value_t = 30)]
    sample_s: u64,
    /// Minutes of warm-up left out of the summary.
    #[arg(long, default_value_t = 5.0)]
    warmup_minutes: f64,
    /// Viewers coming and going at any time.
    #[arg(long, default_value_t = 16)]
    viewers: usize,
}

const COMPONENT: &str = "target/wasm-components/wasm32-wasip2/release/framewire_mjpeg.wasm";

#[derive(Default)]
struct Counts {
    streams: AtomicU64,
    snapshots: AtomicU64,
    ranges: AtomicU64,
    swaps: AtomicU64,
    failed: AtomicU64,
}

struct Sample {
    at_min: f64,
    rss_kib: u64,
    fds: u64,
    threads: u64,
    instances: u64,
}

fn proc_figures(pid: u32) -> Result<(u64, u64, u64)> {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count() as u64;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .context("no Threads")?
        .trim()
        .parse()?;
    Ok((rss_kib(pid)?, fds, threads))
}

async fn instances(addr: SocketAddr) -> Result<u64> {
    let r = framewire_tests::get(addr, "/metrics").await?;
    let text = String::from_utf8_lossy(&r.body).into_owned();
    let line = text.lines().find_map(|l| l.strip_prefix("framewire_instances_in_use ")).context("no instances metric")?;
    Ok(line.trim().parse()?)
}

/// A viewer: a stream held for a while, then gone; again and again.
async fn viewer(addr: SocketAddr, n: u64, stop: Arc<AtomicBool>, counts: Arc<Counts>) {
    let mut rng = fastrand::Rng::with_seed(n);
    while !stop.load(Relaxed) {
        let path = if rng.bool() { "/stream" } else { "/stream?relay=0" };
        let hold = Duration::from_millis(rng.u64(300..5_000));
        match framewire_tests::open(addr, path, &[]).await {
            Ok(resp) if resp.status() == 200 => {
                let mut body = resp.into_body();
                let _ = tokio::time::timeout(hold, async { while let Some(Ok(_)) = body.frame().await {} }).await;
                counts.streams.fetch_add(1, Relaxed);
            }
            _ => {
                counts.failed.fetch_add(1, Relaxed);
            }
        }
    }
}

async fn snapshots_and_ranges(addr: SocketAddr, n: u64, size: u64, stop: Arc<AtomicBool>, counts: Arc<Counts>) {
    let mut rng = fastrand::Rng::with_seed(1000 + n);
    while !stop.load(Relaxed) {
        let ok = if rng.bool() {
            counts.snapshots.fetch_add(1, Relaxed);
            framewire_tests::get(addr, "/snapshot").await.is_ok_and(|r| r.status == 200)
        } else {
            counts.ranges.fetch_add(1, Relaxed);
            let start = rng.u64(0..size);
            let range = format!("bytes={start}-{}", (start + 65_535).min(size - 1));
            framewire_tests::fetch_with(addr, "GET", "/media/sample.mp4", &[("range", &range)]).await.is_ok_and(|r| r.status == 206)
        };
        if !ok {
            counts.failed.fetch_add(1, Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(rng.u64(5..50))).await;
    }
}

fn spread(v: impl Iterator<Item = u64> + Clone) -> String {
    format!("{}–{}", v.clone().min().unwrap_or(0), v.max().unwrap_or(0))
}

/// Least-squares slope of `y` per minute.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let (mx, my) = (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let cov: f64 = points.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let var: f64 = points.iter().map(|(x, _)| (x - mx).powi(2)).sum();
    if var == 0.0 { 0.0 } else { cov / var }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let base = std::fs::read(COMPONENT).with_context(|| format!("{COMPONENT}: build with cargo build --release -p framewire"))?;
    let variant = |n: u64| with_custom_section(&base, "framewire-soak", &n.to_le_bytes());
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("mjpeg.wasm");
    std::fs::write(&file, variant(0))?;
    let mut cmd = Command::new("target/release/framewire");
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--admin", "off", "--camera", "cam=test:320x240@15"])
        .arg("--route")
        .arg(format!("mjpeg={}", file.display()))
        .arg("--cache-dir")
        .arg(dir.path().join("cache"));
    let server = Server::spawn(cmd, "framewire listening on http://")?;
    let (addr, pid) = (server.addr, server.pid());
    let size = std::fs::metadata("media/sample.mp4").context("run from the repository")?.len();

    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let mut tasks = Vec::new();
    for n in 0..args.viewers as u64 {
        tasks.push(tokio::spawn(viewer(addr, n, stop.clone(), counts.clone())));
    }
    for n in 0..4 {
        tasks.push(tokio::spawn(snapshots_and_ranges(addr, n, size, stop.clone(), counts.clone())));
    }

    println!("soak: {} min, {} viewers coming and going, snapshots and 64 KiB ranges from 4 clients, a swap a minute", args.minutes, args.viewers);
    println!("{:>6}  {:>9}  {:>5}  {:>7}  {:>9}  {:>8}  {:>9}  {:>7}  {:>5}  {:>6}", "min", "RSS KiB", "fds", "threads", "instances", "streams", "snapshots", "ranges", "swaps", "failed");
    let start = Instant::now();
    let total = Duration::from_secs_f64(args.minutes * 60.0);
    let mut next_swap = start + Duration::from_secs(60);
    let mut next_sample = start;
    let mut samples = Vec::new();
    while start.elapsed() < total {
        if Instant::now() >= next_swap {
            let n = counts.swaps.fetch_add(1, Relaxed) + 1;
            let tmp = file.with_extension("tmp");
            std::fs::write(&tmp, variant(n))?;
            std::fs::rename(&tmp, &file)?;
            next_swap += Duration::from_secs(60);
        }
        if Instant::now() >= next_sample {
            let (rss_kib, fds, threads) = proc_figures(pid)?;
            let instances = instances(addr).await.unwrap_or(u64::MAX);
            let s = Sample { at_min: start.elapsed().as_secs_f64() / 60.0, rss_kib, fds, threads, instances };
            println!(
                "{:>6.1}  {:>9}  {:>5}  {:>7}  {:>9}  {:>8}  {:>9}  {:>7}  {:>5}  {:>6}",
                s.at_min,
                s.rss_kib,
                s.fds,
                s.threads,
                s.instances,
                counts.streams.load(Relaxed),
                counts.snapshots.load(Relaxed),
                counts.ranges.load(Relaxed),
                counts.swaps.load(Relaxed),
                counts.failed.load(Relaxed)
            );
            samples.push(s);
            next_sample += Duration::from_secs(args.sample_s);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Relaxed);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    // Everything let go: instances back to none.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_instances = instances(addr).await?;
    let (rss_end, fds_end, threads_end) = proc_figures(pid)?;

    let after: Vec<&Sample> = samples.iter().filter(|s| s.at_min >= args.warmup_minutes).collect();
    if after.len() < 2 {
        bail!("no samples after the warm-up: run longer than --warmup-minutes");
    }
    let per_min = |f: fn(&Sample) -> u64| slope(&after.iter().map(|s| (s.at_min, f(s) as f64)).collect::<Vec<_>>());
    println!();
    println!("after the {:.0}-minute warm-up ({} samples):", args.warmup_minutes, after.len());
    println!("  RSS      {} KiB, drift {:+.1} KiB/min", spread(after.iter().map(|s| s.rss_kib)), per_min(|s| s.rss_kib));
    println!("  fds      {}, drift {:+.2}/min", spread(after.iter().map(|s| s.fds)), per_min(|s| s.fds));
    println!("  threads  {}, drift {:+.2}/min", spread(after.iter().map(|s| s.threads)), per_min(|s| s.threads));
    println!("  instances {} while loaded; {idle_instances} once the clients stopped", spread(after.iter().map(|s| s.instances)));
    println!("  at the end, idle: RSS {rss_end} KiB, {fds_end} fds, {threads_end} threads");
    println!(
        "  done: {} streams, {} snapshots, {} ranges, {} swaps; failed requests: {}",
        counts.streams.load(Relaxed),
        counts.snapshots.load(Relaxed),
        counts.ranges.load(Relaxed),
        counts.swaps.load(Relaxed),
        counts.failed.load(Relaxed)
    );
    drop(server);
    Ok(())
}
