//! A virtual camera: a component that exports `framewire:camera/frames` and
//! `framewire:camera/host` with one camera, `test`, showing a moving test
//! pattern. Composed into a handler component that imports those interfaces
//! (`wac plug`), it lets that handler run on any wasi:http host, such as
//! plain `wasmtime serve`, without the framewire host. See README.md.
//!
//! The frames are rendered and JPEG-encoded here, on demand: the camera is
//! a clock, and a frame is drawn only when someone asks for it.

mod pattern;
mod scratch;

wit_bindgen::generate!({
    path: "../../wit",
    inline: r"
        package framewire:virtual-camera;

        world virtual-camera {
            import wasi:clocks/wall-clock@0.2.0;
            import wasi:filesystem/preopens@0.2.0;
            import wasi:random/random@0.2.0;
            export framewire:camera/frames@0.2.2;
            export framewire:camera/host@0.2.2;
        }
    ",
    world: "framewire:virtual-camera/virtual-camera",
    // Bindings for the WASI interfaces too (wasi:io, wasi:http/types, ...),
    // from the same WIT folder the handlers use.
    generate_all,
});

use exports::framewire::camera::frames::{
    self, CameraInfo, Error, FrameInfo, GuestFrame, GuestSubscription, RelayOptions, Status,
};
use exports::framewire::camera::host::{self, ComponentInfo};
use framewire_core::{mjpeg, query};
use std::cell::{Cell, RefCell};
use std::convert::Infallible;
use std::sync::OnceLock;
use wasi::clocks::{monotonic_clock, wall_clock};
use wasi::filesystem::types::Descriptor;
use wasi::http::types::OutgoingBody;
use wasi::io::streams::{InputStream, OutputStream, StreamError};

const NAME: &str = "test";
const WIDTH: u32 = 320;
const HEIGHT: u32 = 240;
const DEFAULT_FPS: f32 = 15.0;

/// Frame rate: `VIRTUAL_CAMERA_FPS` from the environment (e.g.
/// `wasmtime serve --env VIRTUAL_CAMERA_FPS=30`), else 15.
fn fps() -> f32 {
    static FPS: OnceLock<f32> = OnceLock::new();
    *FPS.get_or_init(|| {
        std::env::var("VIRTUAL_CAMERA_FPS")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .filter(|f| query::check_fps(*f).is_ok())
            .unwrap_or(DEFAULT_FPS)
    })
}

fn interval_ns() -> u64 {
    (1e9 / fps() as f64) as u64
}

/// When this instance first looked at its clock: frame 1 starts there.
/// (`wasmtime serve` makes an instance per request, so every request's
/// camera starts at frame 1.)
fn start() -> u64 {
    static START: OnceLock<u64> = OnceLock::new();
    *START.get_or_init(monotonic_clock::now)
}

/// The frame the camera shows at `now`: one more every interval.
fn sequence_at(now: u64) -> u64 {
    1 + now.saturating_sub(start()) / interval_ns()
}

/// When frame `sequence` is published.
fn published_at(sequence: u64) -> u64 {
    start() + (sequence - 1) * interval_ns()
}

fn sleep_until(when: monotonic_clock::Instant) {
    monotonic_clock::subscribe_instant(when).block();
}

thread_local! {
    /// Frames encoded and subscriptions alive, for `list-cameras`.
    static ENCODED: Cell<u64> = const { Cell::new(0) };
    static CLIENTS: Cell<u32> = const { Cell::new(0) };
}

fn check_camera(name: &str) -> Result<(), Error> {
    if name == NAME { Ok(()) } else { Err(Error::UnknownCamera(name.to_string())) }
}

pub struct Frame {
    info: FrameInfo,
    jpeg: Vec<u8>,
    /// Scratch files behind the streams `body` handed out: a stream is a
    /// child of its file, so the files live as long as the frame.
    files: RefCell<Vec<Descriptor>>,
}

impl Frame {
    fn render(sequence: u64) -> Frame {
        let jpeg = pattern::jpeg(WIDTH, HEIGHT, sequence);
        ENCODED.set(ENCODED.get() + 1);
        let now = wall_clock::now();
        let info = FrameInfo {
            sequence,
            width: WIDTH,
            height: HEIGHT,
            captured_at_us: now.seconds * 1_000_000 + u64::from(now.nanoseconds / 1_000),
            size: jpeg.len() as u32,
            no_signal: false,
        };
        Frame { info, jpeg, files: RefCell::new(Vec::new()) }
    }

    /// The frame the camera shows now.
    fn current() -> Frame {
        Frame::render(sequence_at(monotonic_clock::now()))
    }
}

impl GuestFrame for Frame {
    fn info(&self) -> FrameInfo {
        self.info
    }

    /// A component cannot make a `wasi:io` input-stream from bytes: only the
    /// host can. The one way here is a file: the JPEG is written to a
    /// scratch file in the first preopened directory and read back as a
    /// stream. Without a writable preopened directory (`wasmtime serve
    /// --dir`) there is no stream to return, and this traps, saying so.
    fn body(&self) -> InputStream {
        match scratch::stream(&self.jpeg) {
            Ok((file, stream)) => {
                self.files.borrow_mut().push(file);
                stream
            }
            Err(e) => panic!(
                "virtual camera: frame.body() needs a writable preopened directory \
                 (e.g. `wasmtime serve -Scli --dir /tmp/vcam::/`), as a component cannot \
                 make a wasi:io input-stream from bytes: {e}. Streams (relay) work without one."
            ),
        }
    }
}

pub struct Subscription;

impl Subscription {
    fn new() -> Subscription {
        CLIENTS.set(CLIENTS.get() + 1);
        Subscription
    }

    /// The newest frame after `after`, waiting up to `timeout_ms` for it.
    fn next_frame(&self, after: u64, timeout_ms: u32) -> Option<Frame> {
        let deadline = monotonic_clock::now() + u64::from(timeout_ms) * 1_000_000;
        loop {
            let sequence = sequence_at(monotonic_clock::now());
            if sequence > after {
                return Some(Frame::render(sequence));
            }
            // Frame `after + 1` is due later: wait for it, or time out.
            let due = published_at(after + 1);
            if due > deadline {
                sleep_until(deadline);
                return None;
            }
            sleep_until(due);
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        CLIENTS.set(CLIENTS.get() - 1);
    }
}

impl GuestSubscription for Subscription {
    fn next(&self, after: u64, timeout_ms: u32) -> Option<frames::Frame> {
        self.next_frame(after, timeout_ms).map(frames::Frame::new)
    }
}

struct Camera;

impl frames::Guest for Camera {
    type Frame = Frame;
    type Subscription = Subscription;

    /// Write the MJPEG stream into `body` until the client goes: what the
    /// framewire host does, done here in the component, so it blocks the
    /// caller for as long as the stream lasts (fine under `wasmtime serve`,
    /// where the caller is that request's own instance).
    fn relay(sub: frames::Subscription, body: OutgoingBody, options: RelayOptions) -> Result<(), String> {
        mjpeg::check_boundary(&options.boundary)?;
        if let Some(fps) = options.max_fps {
            query::check_fps(fps)?;
        }
        let out = body.write().map_err(|()| "response body already taken".to_string())?;
        // Only a failed write ends the stream: the client has gone. That is
        // how every stream ends, so it is no error.
        let _ = stream(sub.get::<Subscription>(), &out, &options);
        // The stream before its body (a child resource goes first); the body
        // dropped unfinished ends the response.
        drop(out);
        drop(body);
        Ok(())
    }

    fn list_cameras() -> Vec<CameraInfo> {
        vec![CameraInfo {
            name: NAME.into(),
            spec: format!("virtual:{WIDTH}x{HEIGHT}@{}", fps()),
            width: WIDTH,
            height: HEIGHT,
            target_fps: fps(),
            // The pattern's clock publishes at exactly its rate.
            measured_fps: fps(),
            status: Status::Live,
            last_error: None,
            format: format!("test pattern {WIDTH}x{HEIGHT}@{}, encoded on demand in the component", fps()),
            frames_captured: ENCODED.get(),
            frames_encoded: ENCODED.get(),
            frames_passed_through: 0,
            frames_dropped: 0,
            clients: CLIENTS.get(),
        }]
    }

    /// A clock has no network source and records nothing.
    fn details(camera: String) -> Result<frames::CameraDetails, Error> {
        check_camera(&camera)?;
        Ok(frames::CameraDetails { source: frames::SourceStats { bitrate: 0, reconnects: 0 }, recording: None })
    }

    fn latest(camera: String) -> Result<frames::Frame, Error> {
        check_camera(&camera)?;
        Ok(frames::Frame::new(Frame::current()))
    }

    fn subscribe(camera: String) -> Result<frames::Subscription, Error> {
        check_camera(&camera)?;
        Ok(frames::Subscription::new(Subscription::new()))
    }
}

/// Write the multipart body, a part per frame as the frames come (capped
/// at `max-fps`), each written and flushed before the next is taken, so a
/// slow client gets the newest frame each time, not a queue. Returns only
/// when a write fails.
fn stream(sub: &Subscription, out: &OutputStream, options: &RelayOptions) -> Result<Infallible, StreamError> {
    let max_fps_interval = options.max_fps.map(|f| (1e9 / f as f64) as u64);
    let mut next_due = monotonic_clock::now();
    let mut last = 0;
    write_all(out, mjpeg::preamble_for(&options.boundary).as_bytes())?;
    loop {
        if let Some(interval) = max_fps_interval {
            sleep_until(next_due);
            next_due = next_due.max(monotonic_clock::now().saturating_sub(interval)) + interval;
        }
        let Some(frame) = sub.next_frame(last, 1_000) else { continue };
        let info = &frame.info;
        last = info.sequence;
        let header = mjpeg::part_header(frame.jpeg.len(), info.captured_at_us, info.sequence);
        write_all(out, header.as_bytes())?;
        write_all(out, &frame.jpeg)?;
        write_all(out, mjpeg::part_trailer_for(&options.boundary).as_bytes())?;
    }
}

/// Write and flush in pieces of at most 4096 bytes, the most one
/// `blocking-write-and-flush` takes.
fn write_all(out: &OutputStream, data: &[u8]) -> Result<(), StreamError> {
    for chunk in data.chunks(4096) {
        out.blocking_write_and_flush(chunk)?;
    }
    Ok(())
}

impl host::Guest for Camera {
    /// No framewire host loaded anything here.
    fn components() -> Vec<ComponentInfo> {
        Vec::new()
    }

    fn uptime_ms() -> u64 {
        let start = start();
        (monotonic_clock::now() - start) / 1_000_000
    }

    fn version() -> String {
        concat!("virtual-camera ", env!("CARGO_PKG_VERSION"), " (no framewire host)").into()
    }
}

export!(Camera);
