//! Live streams a component has handed to the host (`frames.relay` in
//! `wit/camera.wit`): the component chose the camera, the headers and the
//! rate; from then on the host moves the frames and the instance is gone.
//! The relay becomes the response's body: the connection's own task pulls
//! each part from it as hyper's queue takes one (a few `Bytes`, refcounts,
//! never a copy), with no store, fiber, guest pages, task or channel held
//! per viewer.
//!
//! The pacing is the one a guest looping itself gets (see [`crate::pacing`]):
//! before a part goes, the previous one must have been flushed to a socket
//! that keeps little unsent, and then the newest frame goes, never a queue
//! of old ones.

use crate::frames::{Frame, Subscriber};
use crate::pacing::Pace;
use bytes::Bytes;
use framewire_core::{mjpeg, query};
use futures::StreamExt as _;
use http_body_util::StreamBody;
use hyper::body::{Body, Frame as BodyFrame};
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use wasmtime_wasi_http::p2::body::{HostOutgoingBody, HyperOutgoingBody};

/// Something a relay waits for beside its frames, polled again each frame
/// rather than made anew: its wake-up stays registered, where a fresh one
/// per frame registers and deregisters on a notifier every viewer shares,
/// once per viewer per frame.
type Waiting = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How a relayed stream is sent, as the component asked.
pub struct Options {
    pub boundary: String,
    pub max_fps: Option<f32>,
}

impl Options {
    fn check(&self) -> Result<(), String> {
        mjpeg::check_boundary(&self.boundary)?;
        self.max_fps.map_or(Ok(()), query::check_fps).map_err(|e| format!("max-{e}"))
    }
}

/// Where a handler's response body can be replaced by one the host makes,
/// after the response has gone to hyper: one per request.
#[derive(Default)]
pub struct Handover {
    taken_over: AtomicBool,
    body: Mutex<Option<HyperOutgoingBody>>,
}

impl Handover {
    fn put(&self, body: HyperOutgoingBody) {
        *self.body.lock().unwrap() = Some(body);
        self.taken_over.store(true, Ordering::Release);
    }

    /// `body` (what the handler writes), until the host hands over another.
    pub fn wrap(self: Arc<Self>, body: HyperOutgoingBody) -> HyperOutgoingBody {
        HyperOutgoingBody::new(HandedOver { body, handover: Some(self) })
    }
}

/// A response body that switches to the one handed over, if any, before it
/// is next polled.
struct HandedOver {
    body: HyperOutgoingBody,
    /// Until it has been looked at after a hand-over.
    handover: Option<Arc<Handover>>,
}

impl Body for HandedOver {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<BodyFrame<Bytes>, Self::Error>>> {
        // The guest's body is dropped (unfinished) only after the new one is
        // in place, and its drop wakes this task: the switch happens before
        // the old body could report itself cut short.
        if let Some(h) = &self.handover
            && h.taken_over.load(Ordering::Acquire)
        {
            let body = h.body.lock().unwrap().take();
            self.handover = None;
            if let Some(body) = body {
                self.body = body;
            }
        }
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.handover.as_ref().is_none_or(|h| !h.taken_over.load(Ordering::Acquire)) && self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// Make `sub` the body of the response `body` belongs to, through
/// `handover`. Fails, dropping both (which ends the response), on bad
/// options or a body already written to. When the camera goes or
/// `shutdown` turns true, the stream is closed properly: the close
/// delimiter, then the end of the body.
pub fn start(
    sub: Subscriber,
    mut body: HostOutgoingBody,
    handover: &Handover,
    pace: Option<Arc<Pace>>,
    options: Options,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), String> {
    options.check()?;
    if body.take_output_stream().is_none() {
        return Err("the body's stream is already taken: relay a body before writing to it".into());
    }
    if let Some(pace) = &pace {
        pace.low_latency();
    }
    let relay = Relay {
        sub,
        pace,
        interval: options.max_fps.map(|fps| Duration::from_secs_f64(1.0 / fps as f64)),
        next_due: Instant::now(),
        last: 0,
        trailer: Bytes::from(mjpeg::part_trailer_for(&options.boundary)),
        closing: Some(Bytes::from(mjpeg::closing_for(&options.boundary))),
        queued: VecDeque::from([Bytes::from(mjpeg::preamble_for(&options.boundary))]),
        stopping: Box::pin(async move {
            // A dropped sender (the server gone) stops the relay too.
            let _ = shutdown.wait_for(|&s| s).await;
        }),
    };
    let parts = futures::stream::unfold(relay, |mut relay| async move {
        let chunk = relay.next_chunk().await?;
        Some((chunk, relay))
    });
    let chunks = parts.map(|chunk| Ok::<_, wasmtime_wasi_http::Error>(BodyFrame::data(chunk)));
    handover.put(HyperOutgoingBody::new(StreamBody::new(chunks)));
    // Only now: the guest's body, dropped unfinished, would end the response.
    drop(body);
    Ok(())
}

struct Relay {
    sub: Subscriber,
    /// The response's delivery accounting, when it goes to a socket.
    pace: Option<Arc<Pace>>,
    interval: Option<Duration>,
    next_due: Instant,
    /// The sequence of the last frame sent.
    last: u64,
    trailer: Bytes,
    /// The close delimiter, until it has been queued.
    closing: Option<Bytes>,
    /// Chunks of the part being sent, in order.
    queued: VecDeque<Bytes>,
    /// Ends when the server starts shutting down.
    stopping: Waiting,
}

impl Relay {
    /// The next chunk of the body: the rest of the part being sent, else
    /// the next part's, else the close delimiter; none after that.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(chunk) = self.queued.pop_front() {
            return Some(chunk);
        }
        self.closing.as_ref()?;
        match self.next_frame().await {
            Some(frame) => {
                let header = mjpeg::part_header(frame.jpeg.len(), frame.captured_at_us, frame.sequence);
                self.queued.extend([frame.jpeg.clone(), self.trailer.clone()]);
                self.sub.feed().stats.count_sent(frame.jpeg.len());
                if let Some(pace) = &self.pace {
                    pace.count_frame();
                }
                Some(Bytes::from(header))
            }
            None => self.closing.take(),
        }
    }

    /// The frame to send next, once the rate cap and the link allow one;
    /// None once the camera is gone or the server is shutting down.
    async fn next_frame(&mut self) -> Option<Arc<Frame>> {
        if let Some(interval) = self.interval {
            unless_stopping(&mut self.stopping, tokio::time::sleep_until(self.next_due)).await?;
            self.next_due = self.next_due.max(Instant::now() - interval) + interval;
        }
        // None: the server is shutting down, or the camera is gone.
        let mut frame = unless_stopping(&mut self.stopping, self.sub.newer(self.last)).await??;
        // The last part may still be on its way to a slow client: once it
        // has left, send the newest frame, not this one.
        if let Some(pace) = &self.pace
            && !pace.flushed()
        {
            unless_stopping(&mut self.stopping, pace.flushed_or_closed()).await?;
            if let Some(newer) = self.sub.current_after(frame.sequence) {
                frame = newer;
            }
        }
        self.last = frame.sequence;
        Some(frame)
    }
}

/// `f`'s output, or None if the server starts shutting down first.
async fn unless_stopping<T>(stopping: &mut Waiting, f: impl Future<Output = T>) -> Option<T> {
    tokio::select! {
        t = f => Some(t),
        () = stopping => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked() {
        let opts = |boundary: &str, max_fps| Options { boundary: boundary.into(), max_fps };
        assert!(opts(mjpeg::BOUNDARY, None).check().is_ok());
        assert!(opts(mjpeg::BOUNDARY, Some(2.5)).check().is_ok());
        assert!(opts("has space", None).check().unwrap_err().contains("boundary"));
        for bad in [0.0, 1000.0, f32::NAN, f32::INFINITY] {
            let e = opts(mjpeg::BOUNDARY, Some(bad)).check().unwrap_err();
            assert!(e.starts_with("max-fps must be between"), "{bad}: {e}");
        }
    }
}
