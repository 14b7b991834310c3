//! The native floor for MJPEG fan-out, to measure framewire against: a
//! plain hyper server with no wasm that sends the frames framewire would
//! (the same JPEGs, the same multipart framing from `framewire-core`) as
//! shared `Bytes` to every client, newest frame first, one task and one
//! small channel per client.
//!
//! `mjpeg-baseline --frames DIR [--fps 30]` serves `GET /stream` on an
//! ephemeral port and prints `baseline listening on http://ADDR`.

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::Parser as _;
use framewire_core::mjpeg;
use hyper::body::{Body, Frame};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, watch};

#[derive(clap::Parser, Debug)]
#[command(about = "A plain hyper MJPEG server (no wasm): the floor framewire is measured against")]
struct Args {
    /// Folder of JPEG files, sent in name order, looping.
    #[arg(long)]
    frames: std::path::PathBuf,
    #[arg(long, default_value_t = 30.0)]
    fps: f64,
}

/// A published frame: sequence, capture time (µs since the epoch), JPEG.
type Published = Option<Arc<(u64, u64, Bytes)>>;

/// A response body fed by a channel of chunks.
struct Chunks(mpsc::Receiver<Bytes>);

impl Body for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
    }
}

/// Feed one client: the newest frame each time the last one was taken.
async fn feed(mut frames: watch::Receiver<Published>, tx: mpsc::Sender<Bytes>) {
    if tx.send(Bytes::from(mjpeg::preamble())).await.is_err() {
        return;
    }
    while frames.changed().await.is_ok() {
        let Some(frame) = frames.borrow_and_update().clone() else { continue };
        let (seq, at, jpeg) = &*frame;
        let parts = [Bytes::from(mjpeg::part_header(jpeg.len(), *at, *seq)), jpeg.clone(), Bytes::from(mjpeg::part_trailer())];
        for part in parts {
            if tx.send(part).await.is_err() {
                return;
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let mut names: Vec<_> = std::fs::read_dir(&args.frames)?.flatten().map(|e| e.path()).collect();
    names.sort();
    let jpegs: Vec<Bytes> = names.iter().map(|p| std::fs::read(p).map(Bytes::from)).collect::<Result<_, _>>()?;
    anyhow::ensure!(!jpegs.is_empty(), "no frames in {}", args.frames.display());

    let (publish, frames) = watch::channel::<Published>(None);
    let interval = Duration::from_secs_f64(1.0 / args.fps);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for seq in 1u64.. {
            tick.tick().await;
            let at = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_micros() as u64;
            let jpeg = jpegs[(seq as usize - 1) % jpegs.len()].clone();
            publish.send_replace(Some(Arc::new((seq, at, jpeg))));
        }
    });

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("baseline listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await.context("accept")?;
        let _ = stream.set_nodelay(true);
        let frames = frames.clone();
        tokio::spawn(async move {
            let service = service_fn(move |_req| {
                // Room for one part (header, frame, trailer): one writev each.
                let (tx, rx) = mpsc::channel(3);
                tokio::spawn(feed(frames.clone(), tx));
                let resp = hyper::Response::builder()
                    .header("content-type", mjpeg::content_type())
                    .header("cache-control", "no-store")
                    .body(Chunks(rx))
                    .expect("static parts are valid");
                async move { Ok::<_, std::convert::Infallible>(resp) }
            });
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}
