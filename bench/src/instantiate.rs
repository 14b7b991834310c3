//! Per-request instantiation overhead: what framewire pays to give every
//! request a fresh instance, with a trivial component (the test fixture's
//! `/x/ok`, which answers "ok"), measured in-process on the host's own
//! `Runtime` so that no socket or load generator is in the figure.
//!
//! For each concurrency it prints the p50/p99 of
//! - `instantiate`: a fresh store plus instance from the pre-instantiated
//!   component (pooling allocator, as served);
//! - `+ teardown`: the same plus dropping it (the pool slot is reset);
//! - `request`: a whole in-memory GET through `Runtime::handle`, body read,
//!   and the request rate this reaches.
//!
//! `./dev bench-instantiate [--seconds S] [--concurrency 1,2,16,64]`

use anyhow::Result;
use bytes::Bytes;
use clap::Parser;
use framewire::frames::Feeds;
use framewire::runtime::{HostInfo, Loaded, Options, Runtime};
use http_body_util::{BodyExt, Empty};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// Seconds per measurement.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Concurrent request loops, comma-separated.
    #[arg(long, default_value = "1,2,16,64", value_delimiter = ',')]
    concurrency: Vec<usize>,
}

#[derive(Clone, Copy)]
enum Measure {
    Instantiate,
    WithTeardown,
    Request,
}

async fn one(runtime: &Runtime, loaded: &Arc<Loaded>, what: Measure) -> Result<Duration> {
    let start = Instant::now();
    match what {
        Measure::Instantiate => {
            let instance = runtime.instantiate(loaded, None, None).await?;
            let took = start.elapsed();
            drop(instance);
            return Ok(took);
        }
        Measure::WithTeardown => drop(runtime.instantiate(loaded, None, None).await?),
        Measure::Request => {
            let req = hyper::Request::builder().uri("http://bench/x/ok").body(Empty::<Bytes>::new())?;
            let resp = runtime.handle(loaded.clone(), req, None, None).await?;
            anyhow::ensure!(resp.status() == 200, "status {}", resp.status());
            let body = resp.into_body().collect().await.map_err(|e| anyhow::anyhow!("{e:?}"))?.to_bytes();
            anyhow::ensure!(&body[..] == b"ok", "body {body:?}");
        }
    }
    Ok(start.elapsed())
}

/// Run `concurrency` loops for `seconds`; all samples and the elapsed time.
async fn run(runtime: &Arc<Runtime>, loaded: &Arc<Loaded>, what: Measure, concurrency: usize, seconds: f64) -> Result<(Vec<Duration>, Duration)> {
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (runtime, loaded) = (runtime.clone(), loaded.clone());
            tokio::spawn(async move {
                let mut samples = Vec::with_capacity(200_000);
                while Instant::now() < deadline {
                    samples.push(one(&runtime, &loaded, what).await?);
                }
                anyhow::Ok(samples)
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    all.sort();
    Ok((all, start.elapsed()))
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() -> Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async {
        let host = HostInfo::new(Arc::new(Feeds::new(Vec::new())));
        let runtime = Arc::new(Runtime::with_options(host, Options::default())?);
        let loaded = Arc::new(runtime.load("fixture:misbehave", framewire_tests::MISBEHAVE)?);
        // Warm the pool's slots and the allocator before measuring.
        run(&runtime, &loaded, Measure::Request, 4, 0.5).await?;
        println!("trivial component (/x/ok), 2 tokio workers, {} s per row", args.seconds);
        println!(
            "{:>5}  {:>22}  {:>22}  {:>22}  {:>10}",
            "conc", "instantiate p50/p99", "+ teardown p50/p99", "request p50/p99", "req/s"
        );
        for &c in &args.concurrency {
            let mut cells = Vec::new();
            let mut rate = 0.0;
            for what in [Measure::Instantiate, Measure::WithTeardown, Measure::Request] {
                let (s, elapsed) = run(&runtime, &loaded, what, c, args.seconds).await?;
                let p = |q: f64| s[((s.len() as f64 * q) as usize).min(s.len() - 1)];
                cells.push(format!("{:>8.1} / {:>8.1} µs", us(p(0.5)), us(p(0.99))));
                rate = s.len() as f64 / elapsed.as_secs_f64();
            }
            println!("{c:>5}  {:>22}  {:>22}  {:>22}  {rate:>10.0}", cells[0], cells[1], cells[2]);
        }
        anyhow::Ok(())
    })
}
