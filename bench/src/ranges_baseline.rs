//! The native floor for the media route, to measure framewire against
//! beside nginx: a plain hyper server with no wasm, threaded as framewire
//! is (one single-threaded runtime per core), answering a GET for a file
//! with one byte range as framewire's data path does: open, stat, read the
//! range into a buffer, write it with the head. It skips what framewire's
//! handler adds (conditional requests, validators, listings, the check that
//! the file did not change while served), so it is a floor, not a peer.
//!
//! `ranges-baseline --root DIR [--threads N]` serves `GET /media/NAME` on an
//! ephemeral port and prints `baseline listening on http://ADDR`.

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::Parser as _;
use framewire_core::range::{self, Ranges};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Parser, Debug)]
#[command(about = "A plain hyper range server (no wasm): the floor framewire's media route is measured against")]
struct Args {
    /// Folder whose files are served under /media/.
    #[arg(long)]
    root: PathBuf,
    /// HTTP threads (framewire's default: one per core).
    #[arg(long, default_value_t = std::thread::available_parallelism().map_or(1, |n| n.get()))]
    threads: usize,
}

type Response = hyper::Response<Full<Bytes>>;

fn status(code: u16) -> Response {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = hyper::StatusCode::from_u16(code).expect("a valid status");
    r
}

/// One request, on the HTTP thread as framewire does it on a local disk.
fn answer(root: &std::path::Path, req: &hyper::Request<hyper::body::Incoming>) -> Response {
    let Some(name) = req.uri().path().strip_prefix("/media/").filter(|n| !n.is_empty() && !n.contains("..")) else {
        return status(404);
    };
    let Ok(file) = std::fs::File::open(root.join(name)) else { return status(404) };
    let Ok(meta) = file.metadata() else { return status(404) };
    let size = meta.len();
    let range = req.headers().get(hyper::header::RANGE).and_then(|v| v.to_str().ok());
    let (code, r) = match range.map(|r| range::evaluate(r, size)) {
        Some(Ranges::Partial(rs)) if rs.len() == 1 => (206, rs[0]),
        Some(Ranges::Unsatisfiable) => return status(416),
        // Whole files and multipart ranges are not what this floor is for.
        _ => return status(501),
    };
    // Into an unzeroed buffer, as framewire reads (one pread from the page cache).
    let mut buf: Vec<u8> = Vec::with_capacity(r.len() as usize);
    // SAFETY: the kernel writes at most the spare capacity given, and the
    // length is set to what it wrote.
    let n = unsafe { libc::pread(file.as_raw_fd(), buf.as_mut_ptr().cast(), r.len() as usize, r.start as libc::off_t) };
    if n != r.len() as isize {
        return status(500);
    }
    unsafe { buf.set_len(n as usize) };
    hyper::Response::builder()
        .status(code)
        .header("content-type", "application/octet-stream")
        .header("content-range", r.content_range(size))
        .header("accept-ranges", "bytes")
        .body(Full::new(Bytes::from(buf)))
        .expect("valid parts")
}

fn main() -> Result<()> {
    let args = Args::parse();
    let root = Arc::new(args.root);
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    println!("baseline listening on http://{}", listener.local_addr()?);
    // One acceptor dealing connections out in turn, as framewire balances
    // them: threads accepting on their own split 64 connections unevenly
    // and the figures with them.
    let mut workers = Vec::new();
    for _ in 0..args.threads.max(1) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<std::net::TcpStream>();
        let root = root.clone();
        std::thread::spawn(move || -> Result<()> {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async move {
                while let Some(stream) = rx.recv().await {
                    stream.set_nonblocking(true)?;
                    let stream = tokio::net::TcpStream::from_std(stream)?;
                    let _ = stream.set_nodelay(true);
                    let root = root.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |req| {
                            let resp = answer(&root, &req);
                            async move { Ok::<_, std::convert::Infallible>(resp) }
                        });
                        let _ = http1::Builder::new().writev(true).serve_connection(TokioIo::new(stream), service).await;
                    });
                }
                Ok(())
            })
        });
        workers.push(tx);
    }
    for (i, stream) in listener.incoming().enumerate() {
        let stream = stream.context("accept")?;
        workers[i % workers.len()].send(stream).context("an HTTP thread ended")?;
    }
    Ok(())
}
