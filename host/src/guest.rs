//! The host side of our WIT (`wit/camera.wit`): what components see of the
//! cameras and of the host.

use crate::frames::{Feed, Frame, Status, Subscriber};
use crate::runtime::Ctx;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::Resource;
use wasmtime_wasi_http::p2::body::HostOutgoingBody;
use wasmtime_wasi_io::streams::{DynInputStream, InputStream, StreamError, StreamResult};

wasmtime::component::bindgen!({
    path: "../wit",
    world: "framewire:camera/camera-guest",
    // The admin API shows ComponentInfo as JSON with the WIT's field names.
    additional_derives: [serde::Serialize],
    imports: {
        "framewire:camera/frames.[method]subscription.next": async | trappable,
        "framewire:camera/frames.latest": async | trappable,
        default: trappable,
    },
    with: {
        "wasi:io": wasmtime_wasi_io::bindings::wasi::io,
        // Only the one resource we take: mapping all of wasi:http would make
        // the (unused) world-level add_to_linker need its link options.
        "wasi:http/types.outgoing-body": wasmtime_wasi_http::p2::body::HostOutgoingBody,
        "framewire:camera/frames.frame": crate::guest::FrameHandle,
        "framewire:camera/frames.subscription": crate::frames::Subscriber,
    },
});

use self::framewire::camera::{frames, host};

/// How long `latest` waits for a fresh frame (a camera waking from idle).
const LATEST_WAIT: Duration = Duration::from_secs(2);

/// A component's handle on one shared frame.
pub struct FrameHandle {
    frame: Arc<Frame>,
    /// Its camera, whose `bytes_sent` its bodies count in.
    feed: Arc<Feed>,
}

/// The frame's JPEG as an input-stream: each read hands out a slice of the
/// shared buffer (a refcount, not a copy), which splice passes on as is.
struct FrameBody(Bytes);

impl InputStream for FrameBody {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        if self.0.is_empty() {
            return Err(StreamError::Closed);
        }
        Ok(self.0.split_to(size.min(self.0.len())))
    }
}

#[wasmtime_wasi_io::async_trait]
impl wasmtime_wasi_io::poll::Pollable for FrameBody {
    async fn ready(&mut self) {}
}

impl From<Status> for frames::Status {
    fn from(s: Status) -> Self {
        match s {
            Status::Starting => frames::Status::Starting,
            Status::Live => frames::Status::Live,
            Status::Idle => frames::Status::Idle,
            Status::NoSignal => frames::Status::NoSignal,
            Status::Failed => frames::Status::Failed,
        }
    }
}

fn info(f: &Frame) -> frames::FrameInfo {
    frames::FrameInfo {
        sequence: f.sequence,
        width: f.width,
        height: f.height,
        captured_at_us: f.captured_at_us,
        size: f.jpeg.len() as u32,
        no_signal: f.no_signal,
    }
}

impl frames::Host for Ctx {
    fn list_cameras(&mut self) -> wasmtime::Result<Vec<frames::CameraInfo>> {
        use std::sync::atomic::Ordering::Relaxed;
        Ok(self
            .host
            .feeds
            .iter()
            .map(|f| {
                let (status, last_error) = f.stats.health();
                let (width, height) = f.stats.size();
                frames::CameraInfo {
                    name: f.name.clone(),
                    spec: f.spec.clone(),
                    width,
                    height,
                    target_fps: f.target_fps,
                    measured_fps: f.stats.measured_fps(),
                    status: status.into(),
                    last_error,
                    format: f.stats.format(),
                    frames_captured: f.stats.captured.load(Relaxed),
                    frames_encoded: f.stats.encoded.load(Relaxed),
                    frames_passed_through: f.stats.passed_through.load(Relaxed),
                    frames_dropped: f.stats.dropped.load(Relaxed),
                    clients: f.stats.clients.load(Relaxed),
                }
            })
            .collect())
    }

    fn details(&mut self, camera: String) -> wasmtime::Result<Result<frames::CameraDetails, frames::Error>> {
        use std::sync::atomic::Ordering::Relaxed;
        let Some(f) = self.host.feeds.get(&camera) else {
            return Ok(Err(frames::Error::UnknownCamera(camera)));
        };
        let recording = f.recording.get().map(|r| frames::RecordingInfo {
            folder: r.folder.clone(),
            file: r.segment().map(|p| p.to_string_lossy().into_owned()),
            error: r.error(),
            segments: r.segments_finished.load(Relaxed),
            frames_written: r.frames_written.load(Relaxed),
            bytes_written: r.bytes_written.load(Relaxed),
            frames_dropped: r.frames_dropped.load(Relaxed),
        });
        let source = frames::SourceStats { bitrate: f.stats.bitrate.load(Relaxed), reconnects: f.stats.reconnects.load(Relaxed) };
        Ok(Ok(frames::CameraDetails { source, recording }))
    }

    async fn latest(&mut self, camera: String) -> wasmtime::Result<Result<Resource<FrameHandle>, frames::Error>> {
        let Some(feed) = self.host.feeds.get(&camera) else {
            return Ok(Err(frames::Error::UnknownCamera(camera)));
        };
        // As a new viewer would: the current frame if fresh, else the next.
        match feed.subscribe().next(0, LATEST_WAIT).await {
            Some(frame) => Ok(Ok(self.table.push(FrameHandle { frame, feed: feed.clone() })?)),
            None => Ok(Err(frames::Error::NoFrame)),
        }
    }

    fn relay(
        &mut self,
        sub: Resource<Subscriber>,
        body: Resource<HostOutgoingBody>,
        options: frames::RelayOptions,
    ) -> wasmtime::Result<Result<(), String>> {
        let sub = self.table.delete(sub)?;
        let body = match self.table.delete(body) {
            Ok(body) => body,
            Err(wasmtime::component::ResourceTableError::HasChildren) => {
                return Ok(Err("the body's stream is open: relay a body before writing to it".into()));
            }
            Err(e) => return Err(e.into()),
        };
        let options = crate::relay::Options { boundary: options.boundary, max_fps: options.max_fps };
        let Some(handover) = &self.handover else {
            return Ok(Err("this response cannot be handed over".into()));
        };
        Ok(crate::relay::start(sub, body, handover, self.pace.clone(), options, self.host.shutting_down()))
    }

    fn subscribe(&mut self, camera: String) -> wasmtime::Result<Result<Resource<Subscriber>, frames::Error>> {
        let Some(feed) = self.host.feeds.get(&camera) else {
            return Ok(Err(frames::Error::UnknownCamera(camera)));
        };
        let sub = feed.subscribe();
        Ok(Ok(self.table.push(sub)?))
    }
}

impl frames::HostFrame for Ctx {
    fn info(&mut self, frame: Resource<FrameHandle>) -> wasmtime::Result<frames::FrameInfo> {
        Ok(info(&self.table.get(&frame)?.frame))
    }

    fn body(&mut self, frame: Resource<FrameHandle>) -> wasmtime::Result<Resource<DynInputStream>> {
        let handle = self.table.get(&frame)?;
        let bytes = handle.frame.jpeg.clone();
        handle.feed.stats.count_sent(bytes.len());
        let stream: DynInputStream = Box::new(FrameBody(bytes));
        Ok(self.table.push(stream)?)
    }

    fn drop(&mut self, frame: Resource<FrameHandle>) -> wasmtime::Result<()> {
        self.table.delete(frame)?;
        Ok(())
    }
}

impl frames::HostSubscription for Ctx {
    async fn next(
        &mut self,
        sub: Resource<Subscriber>,
        after: u64,
        timeout_ms: u32,
    ) -> wasmtime::Result<Option<Resource<FrameHandle>>> {
        let sub = self.table.get_mut(&sub)?;
        let frame = sub.next(after, Duration::from_millis(timeout_ms.into())).await;
        let feed = sub.feed().clone();
        Ok(match frame {
            Some(frame) => Some(self.table.push(FrameHandle { frame, feed })?),
            None => None,
        })
    }

    fn drop(&mut self, sub: Resource<Subscriber>) -> wasmtime::Result<()> {
        self.table.delete(sub)?;
        Ok(())
    }
}

impl host::Host for Ctx {
    fn components(&mut self) -> wasmtime::Result<Vec<host::ComponentInfo>> {
        Ok(self.host.components())
    }

    fn uptime_ms(&mut self) -> wasmtime::Result<u64> {
        Ok(self.host.started.elapsed().as_millis() as u64)
    }

    fn version(&mut self) -> wasmtime::Result<String> {
        Ok(env!("CARGO_PKG_VERSION").to_string())
    }
}

pub use self::framewire::camera::host::ComponentInfo;

/// Add our WIT interfaces (not wasi:io, which wasmtime-wasi provides) to a linker.
pub fn add_to_linker(linker: &mut wasmtime::component::Linker<Ctx>) -> wasmtime::Result<()> {
    use wasmtime::component::HasSelf;
    frames::add_to_linker::<Ctx, HasSelf<Ctx>>(linker, |c| c)?;
    host::add_to_linker::<Ctx, HasSelf<Ctx>>(linker, |c| c)
}
