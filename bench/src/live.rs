//! The live view in the field, measured: what a camera costs while nobody
//! watches (beside the same camera kept on), how soon a viewer or a
//! snapshot gets a frame after idling, how old the newest frame gets for
//! readers on slow links, and the CPU of a passed-through webcam frame
//! (the fake UVC camera) beside an encoded one.
//!
//! `./dev bench-live [--seconds 60]`

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::Parser as _;
use framewire_bench::{Server, cpu_seconds, percentile, rss_kib};
use framewire_tests::slow::{Bucket, Throttled, connect_small};
use framewire_tests::{Received, read_stream_on, worst_age};
use http_body_util::{BodyExt, Empty};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

#[derive(clap::Parser, Debug)]
#[command(about = "Idle cost, wake-up time, slow-link frame age and passthrough cost of framewire's live view")]
struct Args {
    /// framewire binary to start.
    #[arg(long, default_value = "target/release/framewire")]
    server: String,
    /// Seconds the slow-link readers read.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Seconds over which idle CPU is measured.
    #[arg(long, default_value_t = 20)]
    idle_seconds: u64,
}

const CAMERA: &str = "test=test:640x480@30";

fn now_us() -> u64 {
    framewire::frames::unix_micros(SystemTime::now())
}

async fn get(addr: SocketAddr, path: &str) -> Result<(hyper::http::response::Parts, Bytes)> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = hyper::Request::get(path).header("host", addr.to_string()).body(Empty::<Bytes>::new())?;
    let (parts, body) = sender.send_request(req).await?.into_parts();
    Ok((parts, body.collect().await?.to_bytes()))
}

async fn camera(addr: SocketAddr) -> Result<serde_json::Value> {
    let (_, body) = get(addr, "/api/state").await?;
    let state: serde_json::Value = serde_json::from_slice(&body)?;
    Ok(state["cameras"][0].clone())
}

async fn wait_idle(addr: SocketAddr) -> Result<()> {
    let start = Instant::now();
    while camera(addr).await?["status"] != "idle" {
        anyhow::ensure!(start.elapsed() < Duration::from_secs(20), "the camera never idled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// The server side's send queue (unsent and unacknowledged bytes) of the
/// connection from local port `client` to `server`, from /proc/net/tcp.
fn send_queue(server: u16, client: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let port = |addr: &str| u16::from_str_radix(addr.rsplit(':').next()?, 16).ok();
        (port(f[1])? == server && port(f[2])? == client)
            .then(|| u64::from_str_radix(f[4].split(':').next()?, 16).ok())
            .flatten()
    })
}

struct SlowResult {
    rate: Option<u64>,
    frames: Vec<Received>,
    end_us: u64,
    max_queue: u64,
}

/// One reader of `/stream` at `rate` bytes/s (None: as fast as it can) for
/// `secs`, sampling the server's send queue for it meanwhile.
async fn slow_reader(addr: SocketAddr, rate: Option<u64>, secs: u64) -> Result<SlowResult> {
    let stream = connect_small(addr).await?;
    let client_port = stream.local_addr()?.port();
    let sampler = tokio::spawn(async move {
        let mut max = 0;
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            match send_queue(addr.port(), client_port) {
                Some(q) => max = max.max(q),
                None => return max,
            }
        }
    });
    let duration = Duration::from_secs(secs);
    let (_, frames) = match rate {
        Some(rate) => read_stream_on(Throttled::new(stream, Bucket::new(rate)), addr, "/stream", duration).await?,
        None => read_stream_on(stream, addr, "/stream", duration).await?,
    };
    let end_us = now_us();
    Ok(SlowResult { rate, frames, end_us, max_queue: sampler.await? })
}

/// Host CPU per delivered frame with one viewer reading for `secs`.
async fn cpu_per_frame(server: &Server, secs: u64) -> Result<(f64, usize)> {
    let stream = tokio::net::TcpStream::connect(server.addr).await?;
    let c0 = cpu_seconds(server.pid())?;
    let (_, frames) = read_stream_on(stream, server.addr, "/stream", Duration::from_secs(secs)).await?;
    let cpu = cpu_seconds(server.pid())? - c0;
    Ok((cpu / frames.len().max(1) as f64 * 1e6, frames.len()))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let idle = Server::start(&args.server, &[CAMERA.into()], &[])?;
    let on = Server::start(&args.server, &[format!("{CAMERA},always-on")], &[])?;
    wait_idle(idle.addr).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;

    println!("== nobody watching: {CAMERA}, {} s", args.idle_seconds);
    let (i0, o0) = (cpu_seconds(idle.pid())?, cpu_seconds(on.pid())?);
    tokio::time::sleep(Duration::from_secs(args.idle_seconds)).await;
    let secs = args.idle_seconds as f64;
    let (i1, o1) = (cpu_seconds(idle.pid())?, cpu_seconds(on.pid())?);
    println!("   idle (default):  {:5.2} % of a core, RSS {} KiB", (i1 - i0) / secs * 100.0, rss_kib(idle.pid())?);
    println!("   always-on:       {:5.2} % of a core, RSS {} KiB", (o1 - o0) / secs * 100.0, rss_kib(on.pid())?);

    println!("== waking from idle (5 tries each)");
    let (mut first, mut first_age, mut snap, mut snap_age) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..5 {
        wait_idle(idle.addr).await?;
        tokio::time::sleep(framewire::frames::FRESH + Duration::from_millis(100)).await;
        let asked = Instant::now();
        let (parts, _) = get(idle.addr, "/snapshot").await?;
        snap.push(asked.elapsed().as_micros() as u64);
        let ts = parts.headers.get("x-timestamp").context("no X-Timestamp")?.to_str()?;
        snap_age.push(now_us() - framewire_core::mjpeg::parse_timestamp(ts).context("bad X-Timestamp")?);

        wait_idle(idle.addr).await?;
        tokio::time::sleep(framewire::frames::FRESH + Duration::from_millis(100)).await;
        let asked = Instant::now();
        let stream = tokio::net::TcpStream::connect(idle.addr).await?;
        let (_, frames) = read_stream_on(stream, idle.addr, "/stream", Duration::from_millis(700)).await?;
        let f = frames.first().context("no frame")?;
        first.push((f.at - asked).as_micros() as u64);
        first_age.push(f.received_us - f.captured_us);
    }
    for v in [&mut first, &mut first_age, &mut snap, &mut snap_age] {
        v.sort_unstable();
    }
    let show = |v: &[u64]| format!("p50 {:.1} ms, max {:.1} ms", ms(percentile(v, 0.5)), ms(*v.last().unwrap()));
    println!("   stream, request → first frame:   {}", show(&first));
    println!("   stream, first frame's age:       {}", show(&first_age));
    println!("   snapshot, request → answer:      {}", show(&snap));
    println!("   snapshot, X-Timestamp age:       {}", show(&snap_age));

    println!("== slow links: 100 kB/s, 300 kB/s and an unthrottled reader together, {} s (receive buffers {} KiB)", args.seconds, framewire_tests::slow::SLOW_RCVBUF / 1024);
    let readers: Vec<_> = [Some(100_000), Some(300_000), None]
        .into_iter()
        .map(|rate| tokio::spawn(slow_reader(idle.addr, rate, args.seconds)))
        .collect();
    println!("   {:>10} {:>7} {:>6} {:>9} {:>12} {:>12} {:>13} {:>14}", "link", "frames", "fps", "kB/s", "age p50", "age p99", "newest ≤", "send queue ≤");
    for r in readers {
        let r = r.await??;
        let mut ages: Vec<u64> = r.frames.iter().map(|f| f.received_us - f.captured_us).collect();
        ages.sort_unstable();
        let bytes: usize = r.frames.iter().map(|f| f.part.len).sum();
        println!(
            "   {:>10} {:>7} {:>6.1} {:>9.1} {:>9.0} ms {:>9.0} ms {:>10.0} ms {:>10.1} KiB",
            r.rate.map_or("fast".into(), |b| format!("{} kB/s", b / 1000)),
            r.frames.len(),
            r.frames.len() as f64 / args.seconds as f64,
            bytes as f64 / args.seconds as f64 / 1000.0,
            ms(percentile(&ages, 0.5)),
            ms(percentile(&ages, 0.99)),
            worst_age(&r.frames, r.end_us).as_secs_f64() * 1000.0,
            r.max_queue as f64 / 1024.0,
        );
    }
    println!("   age = receipt − X-Timestamp per frame; newest ≤ = the oldest the newest frame held ever got; send queue = the server's kernel queue for that socket (unsent + in flight)");

    println!("== CPU per frame, one viewer, 15 s: a webcam's MJPEG passed through vs the test camera encoded");
    let frames = tempfile::tempdir()?;
    for i in 0..30 {
        let (_, jpeg) = get(on.addr, "/snapshot").await?;
        std::fs::write(frames.path().join(format!("640x480-{i:03}.jpg")), &jpeg)?;
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let control = tempfile::tempdir()?;
    let webcam = Server::start(
        &args.server,
        &["usb=v4l:42:640x480@30".into()],
        &[
            ("LD_PRELOAD", framewire_tests::fakecam::LIBRARY),
            ("FAKECAM_DEVICE", framewire_tests::fakecam::DEVICE),
            ("FAKECAM_FRAMES", frames.path().to_str().context("temp path")?),
            ("FAKECAM_CONTROL", control.path().to_str().context("temp path")?),
        ],
    )?;
    drop(idle);
    let (pass, n_pass) = cpu_per_frame(&webcam, 15).await?;
    let (enc, n_enc) = cpu_per_frame(&on, 15).await?;
    let state = camera(webcam.addr).await?;
    println!("   passthrough (fake UVC, {}): {pass:.0} µs/frame over {n_pass} frames", state["format"]);
    println!("   encoded (test camera):  {enc:.0} µs/frame over {n_enc} frames; passthrough/encoded = {:.2}", pass / enc);
    println!("   (whole process CPU per delivered frame, stream included; the passthrough figure includes the fake device's own work and nokhwa's copy of each whole 600 KiB buffer)");
    Ok(())
}
