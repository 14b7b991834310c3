//! Back-pressure that reaches the guest: on a paced response, a `flush` of
//! the body's output-stream completes only once everything written before
//! it has left user space (wasi-http's body channel and hyper's write
//! queue) for a socket that keeps little unsent (`TCP_NOTSENT_LOWAT`).
//!
//! Without it, a live stream on a slow link queues frames at three places
//! the guest never sees: the body channel, hyper's write buffer (up to 16
//! parts) and the kernel's send buffer (up to `tcp_wmem` max, megabytes).
//! A guest that writes a frame, flushes and only then picks the next one
//! gets the newest frame each time the link can take one; at most one part
//! waits in hyper and one in the kernel.
//!
//! The pieces: [`Link`] is one connection's flush events, written by
//! [`LinkIo`] (the connection's socket as hyper sees it); [`Pace`] is one
//! response's accounting, fed by [`PacedBody`] (what hyper pulls) and
//! [`PacedStream`] (what the guest writes).

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use hyper_util::rt::TokioIo;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::body::{HostOutgoingBody, HyperOutgoingBody};
use wasmtime_wasi_io::streams::{DynOutputStream, OutputStream, StreamError, StreamResult};

/// Unsent bytes past which a paced connection's socket stops taking
/// writes. Small: the part a stream is sending is all that should wait in
/// the kernel; bytes in flight (the congestion window) keep the link busy.
pub const NOTSENT_LOWAT: u32 = 4096;

/// One connection's flush events, shared by its socket and the response
/// being written on it.
#[derive(Debug, Default)]
pub struct Link {
    /// Times hyper found its write queue empty and flushed the socket.
    flushes: AtomicU64,
    /// Set by the first paced flush: the socket then gets [`NOTSENT_LOWAT`].
    low_latency: AtomicBool,
    changed: tokio::sync::Notify,
}

impl Link {
    pub fn new() -> Arc<Link> {
        Arc::default()
    }
}

/// A connection's stream (TCP, or TLS over TCP) and its socket.
pub trait Tcp: AsyncRead + AsyncWrite + Unpin {
    fn tcp(&self) -> &TcpStream;
}

impl Tcp for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Tcp for tokio_rustls::server::TlsStream<TcpStream> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0
    }
}

/// A connection's stream as hyper sees it (through `TokioIo`): counts
/// hyper's flushes (hyper flushes only once its write queue is empty; over
/// TLS the flush also empties rustls's buffer into the socket), applies the
/// low-water mark a paced response asks for, and ends a connection whose
/// client accepts nothing for too long. Only this owner of the socket
/// touches it: a `Link` may outlive the connection.
pub struct LinkIo<T> {
    io: T,
    link: Arc<Link>,
    lowat_set: bool,
    /// How long the client may accept nothing while bytes wait for it.
    stall_timeout: std::time::Duration,
    /// Running while a write waits: the connection fails when it fires.
    stall: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T: Tcp> LinkIo<T> {
    pub fn new(stream: T, link: Arc<Link>, stall_timeout: std::time::Duration) -> TokioIo<Self> {
        TokioIo::new(LinkIo { io: stream, link, lowat_set: false, stall_timeout, stall: None })
    }

    /// A write's outcome, with the stall clock: started when the socket
    /// first refuses bytes, stopped when it takes some, and past its limit
    /// an error that ends the connection (hyper then drops the response,
    /// and a stream ends: its relay, or its instance).
    fn watch_stall(&mut self, cx: &mut Context<'_>, written: Poll<std::io::Result<usize>>) -> Poll<std::io::Result<usize>> {
        match written {
            Poll::Pending => {
                let timeout = self.stall_timeout;
                let stall = self.stall.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if stall.as_mut().poll(cx).is_ready() {
                    let secs = timeout.as_secs_f64();
                    return Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::TimedOut, format!("client accepted nothing for {secs} s"))));
                }
                Poll::Pending
            }
            done => {
                self.stall = None;
                done
            }
        }
    }

    fn apply_low_latency(&mut self) {
        if !self.lowat_set && self.link.low_latency.load(SeqCst) {
            self.lowat_set = true;
            if let Err(e) = socket2::SockRef::from(self.io.tcp()).set_tcp_notsent_lowat(NOTSENT_LOWAT) {
                tracing::debug!("cannot set TCP_NOTSENT_LOWAT: {e}");
            }
        }
    }
}

impl<T: Tcp> AsyncRead for LinkIo<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut tokio::io::ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: Tcp> AsyncWrite for LinkIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.apply_low_latency();
        let written = Pin::new(&mut self.io).poll_write(cx, buf);
        self.watch_stall(cx, written)
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<std::io::Result<usize>> {
        self.apply_low_latency();
        let written = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.watch_stall(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        if r.is_ready() {
            self.link.flushes.fetch_add(1, SeqCst);
            self.link.changed.notify_waiters();
        }
        r
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// One response's accounting: bytes the guest wrote, bytes hyper pulled,
/// and whether hyper has flushed since it pulled the last of them.
#[derive(Debug)]
pub struct Pace {
    link: Arc<Link>,
    written: AtomicU64,
    pulled: AtomicU64,
    /// Parts of a relayed stream sent, for the access log.
    frames: AtomicU64,
    /// `link.flushes` when hyper last pulled bytes of this response.
    pulled_at_flush: AtomicU64,
    /// Hyper has dropped the body: the client is gone or the body ended.
    closed: AtomicBool,
}

impl Pace {
    pub fn new(link: &Arc<Link>) -> Arc<Pace> {
        Arc::new(Pace {
            link: link.clone(),
            written: AtomicU64::new(0),
            pulled: AtomicU64::new(0),
            frames: AtomicU64::new(0),
            pulled_at_flush: AtomicU64::new(link.flushes.load(SeqCst)),
            closed: AtomicBool::new(false),
        })
    }

    /// Body bytes hyper has taken (to send) so far.
    pub fn bytes_sent(&self) -> u64 {
        self.pulled.load(SeqCst)
    }

    pub fn count_frame(&self) {
        self.frames.fetch_add(1, SeqCst);
    }

    /// Frames a relayed stream has sent; 0 for other responses.
    pub fn frames(&self) -> u64 {
        self.frames.load(SeqCst)
    }

    /// Everything written has been pulled by hyper and written to the socket.
    fn drained(&self) -> bool {
        self.pulled.load(SeqCst) == self.written.load(SeqCst) && self.flushed()
    }

    fn closed(&self) -> bool {
        self.closed.load(SeqCst)
    }

    /// Completes once `done` holds, checked at each change on the link.
    async fn until(&self, done: impl Fn(&Pace) -> bool) {
        loop {
            let changed = self.link.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if done(self) {
                return;
            }
            changed.await;
        }
    }

    async fn drained_or_closed(&self) {
        self.until(|p| p.drained() || p.closed()).await
    }

    /// Hyper has flushed since it last pulled bytes of this response: for a
    /// body hyper pulls from the host directly (a relay), where everything
    /// produced has been pulled, this is [`Pace::drained`].
    pub fn flushed(&self) -> bool {
        self.link.flushes.load(SeqCst) > self.pulled_at_flush.load(SeqCst)
    }

    /// Completes once [`Pace::flushed`] holds or the client is gone.
    pub async fn flushed_or_closed(&self) {
        self.until(|p| p.flushed() || p.closed()).await
    }

    /// Keep little unsent in the socket from now on ([`NOTSENT_LOWAT`]), as
    /// a paced flush does: for a response that paces itself.
    pub fn low_latency(&self) {
        self.link.low_latency.store(true, SeqCst);
    }
}

/// The response body hyper pulls from, counting what it takes.
pub struct PacedBody {
    inner: HyperOutgoingBody,
    pace: Arc<Pace>,
    /// Kept as long as the body: a live stream's slot.
    _lease: Option<crate::streams::Slot>,
    /// Counted and logged when the body is dropped.
    _exchange: Option<crate::exchange::Exchange>,
}

impl PacedBody {
    pub fn new(inner: HyperOutgoingBody, pace: Arc<Pace>) -> Self {
        PacedBody { inner, pace, _lease: None, _exchange: None }
    }

    /// The body, ending `exchange` when it is dropped.
    pub fn observed(mut self, exchange: crate::exchange::Exchange) -> Self {
        self._exchange = Some(exchange);
        self
    }

    /// The body, holding `lease` until it is dropped.
    pub fn holding(mut self, lease: Option<crate::streams::Slot>) -> Self {
        self._lease = lease;
        self
    }
}

impl Body for PacedBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            let pace = &self.pace;
            pace.pulled_at_flush.store(pace.link.flushes.load(SeqCst), SeqCst);
            pace.pulled.fetch_add(data.len() as u64, SeqCst);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for PacedBody {
    fn drop(&mut self) {
        self.pace.closed.store(true, SeqCst);
        self.pace.link.changed.notify_waiters();
    }
}

/// The guest's side of a paced body: wasi-http's own stream, with a flush
/// that waits for the bytes to leave (see the module docs).
struct PacedStream {
    inner: DynOutputStream,
    pace: Arc<Pace>,
    flushing: bool,
}

impl PacedStream {
    /// Whether a flush is still under way; ends it once it has completed.
    fn still_flushing(&mut self) -> StreamResult<bool> {
        if self.flushing {
            if self.pace.closed() {
                return Err(StreamError::Closed);
            }
            self.flushing = !self.pace.drained();
        }
        Ok(self.flushing)
    }
}

#[wasmtime_wasi_io::async_trait]
impl OutputStream for PacedStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        if self.still_flushing()? {
            return Err(StreamError::trap("write while a flush is under way (check-write returned 0)"));
        }
        let n = bytes.len() as u64;
        self.inner.write(bytes)?;
        self.pace.written.fetch_add(n, SeqCst);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        self.inner.flush()?;
        self.pace.low_latency();
        self.flushing = true;
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        if self.still_flushing()? {
            return Ok(0);
        }
        self.inner.check_write()
    }
}

#[wasmtime_wasi_io::async_trait]
impl wasmtime_wasi_io::poll::Pollable for PacedStream {
    async fn ready(&mut self) {
        if self.flushing {
            self.pace.drained_or_closed().await;
        }
        self.inner.ready().await;
    }
}

/// A body's stream, paced when the response goes to a socket.
pub fn paced(stream: DynOutputStream, pace: Option<Arc<Pace>>) -> DynOutputStream {
    match pace {
        Some(pace) => Box::new(PacedStream { inner: stream, pace, flushing: false }),
        None => stream,
    }
}

/// Where wasmtime-wasi-http defines `outgoing-body.write`.
const HTTP_TYPES: &str = "wasi:http/types@0.2.12";

/// Replace `outgoing-body.write` in `linker` (which must already hold
/// wasmtime-wasi-http's) with one that hands paced requests a
/// [`PacedStream`]; `pace_of` finds the request's [`Pace`], if any.
pub fn add_to_linker<T: WasiHttpView + 'static>(linker: &mut Linker<T>, pace_of: fn(&T) -> Option<Arc<Pace>>) -> wasmtime::Result<()> {
    let write = move |mut store: wasmtime::StoreContextMut<'_, T>, (body,): (Resource<HostOutgoingBody>,)| {
        let pace = pace_of(store.data());
        let table = store.data_mut().http().table;
        let Some(stream) = table.get_mut(&body)?.take_output_stream() else {
            return Ok((Err(()),));
        };
        Ok((Ok(table.push_child(paced(stream, pace), &body)?),))
    };
    // Without shadowing, defining it must fail: that proves wasmtime-wasi-http's
    // is there under this name, and that ours replaces it.
    if linker.instance(HTTP_TYPES)?.func_wrap("[method]outgoing-body.write", write).is_ok() {
        wasmtime::bail!("wasmtime-wasi-http no longer provides {HTTP_TYPES}; update pacing::HTTP_TYPES");
    }
    linker.allow_shadowing(true);
    linker.instance(HTTP_TYPES)?.func_wrap("[method]outgoing-body.write", write)?;
    linker.allow_shadowing(false);
    Ok(())
}
