//! Slow links in-process: a reader that takes bytes from its socket no
//! faster than a set rate, with a small receive buffer so that what it has
//! not read yet backs up into the server (as on a real slow link, where the
//! bottleneck holds little and the sender's queue grows).

use anyhow::Result;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::{Instant, Sleep};

/// Receive buffer of a slow reader's socket (the kernel doubles it): about
/// what a slow link holds in flight.
pub const SLOW_RCVBUF: u32 = 16 * 1024;

/// A token bucket: `rate` bytes a second, at most `burst` at once.
#[derive(Debug)]
pub struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    pub fn new(bytes_per_s: u64) -> Arc<Mutex<Bucket>> {
        let burst = (bytes_per_s as f64 / 25.0).max(1024.0);
        Arc::new(Mutex::new(Bucket { rate: bytes_per_s as f64, burst, tokens: 0.0, at: Instant::now() }))
    }

    /// Bytes that may be read now, or how long until some may.
    fn take(&mut self, want: usize) -> Result<usize, Duration> {
        let now = Instant::now();
        self.tokens = (self.tokens + (now - self.at).as_secs_f64() * self.rate).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            let n = (self.tokens as usize).min(want);
            Ok(n)
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate).max(Duration::from_millis(1)))
        }
    }

    fn spend(&mut self, n: usize) {
        self.tokens -= n as f64;
    }
}

/// A stream whose reads are limited by a (possibly shared) [`Bucket`].
pub struct Throttled<S> {
    inner: S,
    bucket: Arc<Mutex<Bucket>>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<S> Throttled<S> {
    pub fn new(inner: S, bucket: Arc<Mutex<Bucket>>) -> Self {
        Throttled { inner, bucket, sleep: None }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Throttled<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        loop {
            if let Some(sleep) = &mut self.sleep {
                std::task::ready!(sleep.as_mut().poll(cx));
                self.sleep = None;
            }
            let allowed = self.bucket.lock().unwrap().take(buf.remaining());
            match allowed {
                Ok(n) => {
                    let mut limited = buf.take(n);
                    std::task::ready!(Pin::new(&mut self.inner).poll_read(cx, &mut limited))?;
                    let got = limited.filled().len();
                    // SAFETY: `limited` wrote `got` initialised bytes into `buf`'s unfilled part.
                    unsafe { buf.assume_init(got) };
                    buf.advance(got);
                    self.bucket.lock().unwrap().spend(got);
                    return Poll::Ready(Ok(()));
                }
                Err(wait) => self.sleep = Some(Box::pin(tokio::time::sleep(wait))),
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Throttled<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A connection with a small receive buffer, as a slow link's far end.
pub async fn connect_small(addr: SocketAddr) -> Result<TcpStream> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_recv_buffer_size(SLOW_RCVBUF)?;
    Ok(socket.connect(addr).await?)
}

/// A connection to `addr` read at most `bytes_per_s`.
pub async fn connect_slow(addr: SocketAddr, bytes_per_s: u64) -> Result<Throttled<TcpStream>> {
    Ok(Throttled::new(connect_small(addr).await?, Bucket::new(bytes_per_s)))
}

/// A proxy to `upstream` whose downstream direction (server to client) is
/// a link of `bytes_per_s` shared by all its connections, as a browser's
/// one slow link to the server. Runs until the test's runtime ends.
pub async fn slow_proxy(upstream: SocketAddr, bytes_per_s: u64) -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let bucket = Bucket::new(bytes_per_s);
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let bucket = bucket.clone();
            tokio::spawn(async move {
                let Ok(server) = connect_small(upstream).await else { return };
                let mut server = Throttled::new(server, bucket);
                let _ = tokio::io::copy_bidirectional_with_sizes(&mut client, &mut server, 4096, 4096).await;
            });
        }
    });
    Ok(addr)
}
