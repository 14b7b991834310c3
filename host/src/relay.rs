//! Live streams a component has handed to the host (`frames.relay` in
//! `wit/camera.wit`): the component chose the camera, the headers and the
//! rate; from then on a host task moves the frames and the instance is
//! gone. Per frame that is a few Bytes handed to hyper (refcounts, never
//! a copy), with no store, fiber or guest pages held per viewer.
//!
//! The loop is the one the guest would run, with the same pacing: write a
//! part, flush, and before the next part wait for that flush only if it
//! has not completed, then take the newest frame (see [`crate::pacing`]).

use crate::frames::{Frame, Subscriber};
use crate::pacing::{self, Pace};
use bytes::Bytes;
use framewire_core::{mjpeg, query};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use wasmtime_wasi_http::p2::body::HostOutgoingBody;
use wasmtime_wasi_io::poll::Pollable as _;
use wasmtime_wasi_io::streams::{DynOutputStream, StreamError};

/// How often a relay with no pacing (a body not going to a socket) checks
/// whether its reader is still there.
const CHECK_OPEN: Duration = Duration::from_secs(1);
/// How often a paced relay checks on its camera and its body.
const FRAME_WAIT: Duration = Duration::from_secs(60);

/// Something a relay waits for beside its frames, polled again each frame
/// rather than made anew: its wake-up stays registered, where a fresh one
/// per frame registers and deregisters (and a fresh timer goes in and out
/// of the timer wheel) once per viewer per frame.
type Waiting = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

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

/// Start relaying `sub` into `body` on a task of its own. Fails, dropping
/// both (which ends the response), on bad options or a body already
/// written to. When the camera goes or `shutdown` turns true, the stream
/// is closed properly: an empty last part, the close delimiter, the end of
/// the body.
pub fn start(
    sub: Subscriber,
    mut body: HostOutgoingBody,
    pace: Option<Arc<Pace>>,
    options: Options,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), String> {
    options.check()?;
    let Some(out) = body.take_output_stream() else {
        return Err("the body's stream is already taken: relay a body before writing to it".into());
    };
    let gone: Waiting = match pace.clone() {
        Some(pace) => Box::pin(async move { pace.gone().await }),
        None => Box::pin(std::future::pending()),
    };
    let stopping: Waiting = Box::pin(async move {
        // A dropped sender (the server gone) stops the relay too.
        let _ = shutdown.wait_for(|&s| s).await;
    });
    let relay = Relay {
        out: pacing::paced(out, pace.clone()),
        check: Box::pin(tokio::time::sleep(check_every(pace.is_some()))),
        pace,
        sub,
        trailer: Bytes::from(mjpeg::part_trailer_for(&options.boundary)),
        interval: options.max_fps.map(|fps| Duration::from_secs_f64(1.0 / fps as f64)),
        gone,
        stopping,
    };
    let preamble = Bytes::from(mjpeg::preamble_for(&options.boundary));
    let closing = Bytes::from(mjpeg::closing_for(&options.boundary));
    tokio::spawn(async move {
        // The body stays open (unfinished) as long as the relay runs; a
        // body dropped unfinished is a response cut short.
        let mut relay = relay;
        let ended = match relay.run(preamble).await {
            Ok(()) => relay.close(closing).await,
            Err(e) => Err(e),
        };
        match ended {
            Ok(()) => {
                drop(relay);
                if let Err(e) = body.finish(None) {
                    tracing::debug!("relayed stream: cannot end the body: {e:?}");
                }
            }
            Err(StreamError::Closed) => tracing::debug!("relayed stream ended: client gone"),
            Err(e) => tracing::warn!("relayed stream failed: {e}"),
        }
    });
    Ok(())
}

struct Relay {
    out: DynOutputStream,
    /// The response's delivery accounting, when it goes to a socket.
    pace: Option<Arc<Pace>>,
    sub: Subscriber,
    trailer: Bytes,
    interval: Option<Duration>,
    /// Ends when the client has gone (never for a body not going to a socket).
    /// Neither this nor `stopping` is polled again once ended: either one
    /// ending ends the relay's loop.
    gone: Waiting,
    /// Ends when the server starts shutting down.
    stopping: Waiting,
    /// Fires every [`check_every`]: a check on the camera and the body,
    /// for when no frame comes.
    check: std::pin::Pin<Box<tokio::time::Sleep>>,
}

/// How often a relay checks on its camera and body while no frame comes.
fn check_every(paced: bool) -> Duration {
    if paced { FRAME_WAIT } else { CHECK_OPEN }
}

impl Relay {
    /// Send frames until the client goes (an error), or until the camera
    /// goes or the server shuts down (Ok: the stream is to be closed).
    async fn run(&mut self, preamble: Bytes) -> Result<(), StreamError> {
        self.write(preamble).await?;
        let mut next_due = Instant::now();
        let mut last = 0;
        loop {
            if let Some(interval) = self.interval {
                if !self.until_closed(tokio::time::sleep_until(next_due)).await? {
                    return Ok(());
                }
                next_due = next_due.max(Instant::now() - interval) + interval;
            }
            let Some(mut frame) = self.next_frame(last).await? else {
                return Ok(());
            };
            // The last part may still be on its way to a slow client: once
            // it has left, send the newest frame, not this one.
            if self.writable().await?.1
                && let Some(newer) = self.sub.current_after(frame.sequence)
            {
                frame = newer;
            }
            last = frame.sequence;
            self.send(&frame).await?;
        }
    }

    /// The last part sent, end the stream properly.
    async fn close(&mut self, closing: Bytes) -> Result<(), StreamError> {
        self.write(closing).await?;
        self.out.flush()
    }

    /// The next frame after `last`, or None if the camera is gone or the
    /// server is shutting down; fails if the client goes first.
    async fn next_frame(&mut self, last: u64) -> Result<Option<Arc<Frame>>, StreamError> {
        loop {
            tokio::select! {
                frame = self.sub.newer(last) => return Ok(frame),
                () = &mut self.gone => return Err(StreamError::Closed),
                () = &mut self.stopping => return Ok(None),
                () = &mut self.check => {
                    if self.sub.ended() {
                        return Ok(None);
                    }
                    self.out.check_write()?;
                    self.check.as_mut().reset(Instant::now() + check_every(self.pace.is_some()));
                }
            }
        }
    }

    /// Run `f` unless the client goes first (an error) or the server
    /// starts shutting down (false).
    async fn until_closed<F: Future<Output = ()>>(&mut self, f: F) -> Result<bool, StreamError> {
        tokio::select! {
            () = f => {
                if self.pace.is_none() {
                    self.out.check_write()?;
                }
                Ok(true)
            }
            () = &mut self.gone => Err(StreamError::Closed),
            () = &mut self.stopping => Ok(false),
        }
    }

    /// One part: header, the shared JPEG, trailer (with the next
    /// delimiter), then a flush (hyper sends the three in one writev).
    async fn send(&mut self, frame: &Frame) -> Result<(), StreamError> {
        let header = mjpeg::part_header(frame.jpeg.len(), frame.captured_at_us, frame.sequence);
        self.write(Bytes::from(header)).await?;
        self.write(frame.jpeg.clone()).await?;
        self.write(self.trailer.clone()).await?;
        self.sub.feed().stats.count_sent(frame.jpeg.len());
        if let Some(pace) = &self.pace {
            pace.count_frame();
        }
        self.out.flush()
    }

    /// Wait until the output takes bytes: how many it takes now, and
    /// whether it had to wait.
    async fn writable(&mut self) -> Result<(usize, bool), StreamError> {
        let mut waited = false;
        loop {
            match self.out.check_write()? {
                0 => self.out.ready().await,
                n => return Ok((n, waited)),
            }
            waited = true;
        }
    }

    async fn write(&mut self, mut bytes: Bytes) -> Result<(), StreamError> {
        while !bytes.is_empty() {
            let n = self.writable().await?.0.min(bytes.len());
            self.out.write(bytes.split_to(n))?;
        }
        Ok(())
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
