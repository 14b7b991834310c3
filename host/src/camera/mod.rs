//! Cameras: each runs capture → encode → publish on its own thread, so no
//! client can ever slow a camera down, and each frame is encoded once.

mod draw;
pub mod http;
pub mod rtsp;
pub mod source_tls;
pub mod source_url;
pub mod spec;
mod synthetic;
#[cfg(feature = "v4l")]
mod v4l;

use crate::encode;
use crate::record;
use crate::frames::{FRESH, Feed, Feeds, Status};
use anyhow::{Context, Result, bail};
use bytes::Bytes;
use spec::{CameraSpec, Kind};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// A frame as a source delivers it.
pub enum Image<'a> {
    /// Packed RGB8 pixels at the size `open` reported.
    Rgb { pixels: &'a [u8], captured: SystemTime },
    /// A JPEG straight from the device: published without re-encoding.
    Jpeg { jpeg: Bytes, captured: SystemTime },
}

/// What an opened source delivers.
pub struct Opened {
    pub size: (u32, u32),
    /// For the state page, e.g. `MJPEG 640x480@30, passed through`.
    pub format: String,
}

/// Where frames come from.
pub trait Source {
    /// Open (or reopen) the device.
    fn open(&mut self) -> Result<Opened>;
    /// Block until the next frame.
    fn capture(&mut self) -> Result<Image<'_>>;
    /// Called instead of `capture` while nobody watches. A device that keeps
    /// running takes one frame and drops it undecoded, so that the next
    /// frame asked for is a fresh one and an unplug is noticed: it returns
    /// true. Others return false at once and are not called again until
    /// someone watches.
    fn discard(&mut self) -> Result<bool> {
        Ok(false)
    }
    fn close(&mut self) {}
    /// The camera records: a source with compressed video of its own
    /// (H.264) hands it to `sink` as it arrives, and then records itself.
    fn record_into(&mut self, _sink: record::Sink) {}
    /// Whether the source records itself now (see [`Source::record_into`]);
    /// otherwise every published frame is handed to the recorder.
    fn records_itself(&self) -> bool {
        false
    }
}

fn make_source(spec: &CameraSpec, stop: &Arc<AtomicBool>) -> Result<Box<dyn Source>> {
    Ok(match &spec.kind {
        Kind::Test => Box::new(synthetic::Synthetic::new(spec)),
        #[cfg(feature = "v4l")]
        Kind::V4l { index } => Box::new(v4l::V4l::new(spec, *index)),
        #[cfg(not(feature = "v4l"))]
        Kind::V4l { .. } => bail!("camera {}: this framewire was built without V4L2 support", spec.name),
        Kind::Http { url } => Box::new(http::HttpMjpeg::new(url.clone(), &spec.tls_trust, stop.clone())?),
        Kind::Rtsp { url } => Box::new(rtsp::Rtsp::new(url.clone(), stop.clone())?),
    })
}

/// Devices the host can capture from, one line each.
pub fn list_devices() -> Result<Vec<String>> {
    let mut out = vec!["test  built-in synthetic test pattern (test:WxH@FPS)".to_string()];
    #[cfg(feature = "v4l")]
    out.extend(v4l::list()?);
    Ok(out)
}

/// The running cameras; stops their threads when dropped.
pub struct Cameras {
    pub feeds: Arc<Feeds>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// Dropped after the camera threads, so each finishes its file.
    recorders: Vec<record::Recorder>,
}

impl Cameras {
    /// Open every camera and start capturing. A camera that cannot be
    /// opened keeps retrying in the background, unless none can be opened:
    /// then this fails, naming each device and its error. Cameras that
    /// record do so into `media` (see [`crate::record`]).
    pub fn start(specs: &[CameraSpec], media: Option<&std::path::Path>) -> Result<Cameras> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut feeds = Vec::new();
        let mut threads = Vec::new();
        let mut opened = Vec::new();
        // Recorders first: a folder that cannot be written fails start-up
        // before any camera runs. Each pair is (sink, recorder): dropped in
        // that order, a recorder's thread sees its channel close and ends.
        let mut recorders = Vec::new();
        for spec in specs {
            recorders.push(match &spec.record {
                Some(r) => {
                    let media = media.with_context(|| format!("camera {} records, but there is no media folder to record into", spec.name))?;
                    let (recorder, sink) = record::Recorder::start(media, &spec.name, r.clone(), spec.fps)?;
                    Some((sink, recorder))
                }
                None => None,
            });
        }
        for (spec, recorder) in specs.iter().zip(&recorders) {
            let feed = Feed::new(&spec.name, &spec.source, (spec.width, spec.height), spec.fps, spec.always_on);
            let sink = recorder.as_ref().map(|(sink, r)| {
                let _ = feed.recording.set(r.state().clone());
                sink.clone()
            });
            let (tx, rx) = std::sync::mpsc::channel();
            let runner = Runner { feed: feed.clone(), stop: stop.clone(), size: (spec.width, spec.height), sink };
            let spec2 = spec.clone();
            // Sources are made on their own thread: device handles need not be Send.
            threads.push(
                std::thread::Builder::new()
                    .name(format!("camera-{}", spec.name))
                    .spawn(move || runner.run(spec2, tx))?,
            );
            feeds.push(feed);
            opened.push(rx);
        }
        let recorders = recorders.into_iter().flatten().map(|(_, r)| r).collect();
        let cams = Cameras { feeds: Arc::new(Feeds::new(feeds)), stop, threads, recorders };
        let mut errors = Vec::new();
        for (spec, rx) in specs.iter().zip(opened) {
            match rx.recv_timeout(OPEN_TIMEOUT) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => errors.push(format!("{}={}: {e}", spec.name, spec.source)),
                Err(_) => errors.push(format!("{}={}: did not open within {OPEN_TIMEOUT:?}", spec.name, spec.source)),
            }
        }
        if !specs.is_empty() && errors.len() == specs.len() {
            bail!("no camera could be opened:\n  {}", errors.join("\n  "));
        }
        Ok(cams)
    }
}

/// How long start-up waits for a camera to open.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

impl Drop for Cameras {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for feed in self.feeds.iter() {
            feed.wake();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.recorders.clear();
    }
}

/// Longest wait between reopen attempts of a failed camera: a replugged
/// webcam is live again within about this long.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Rate of "no signal" frames while a camera is down; at most [`FRESH`]
/// apart, so a snapshot or a new viewer never waits for one.
const NO_SIGNAL_INTERVAL: Duration = FRESH;
/// How often an idle capture thread checks whether it should stop.
const IDLE_CHECK: Duration = Duration::from_secs(1);

struct Runner {
    feed: Arc<Feed>,
    stop: Arc<AtomicBool>,
    size: (u32, u32),
    /// Where frames go to be recorded, if the camera records.
    sink: Option<record::Sink>,
}

impl Runner {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn run(mut self, spec: CameraSpec, opened: std::sync::mpsc::Sender<Result<(), String>>) {
        let mut source = match make_source(&spec, &self.stop) {
            Ok(mut s) => {
                if let Some(sink) = &self.sink {
                    s.record_into(sink.clone());
                }
                s
            }
            Err(e) => {
                self.feed.stats.set_health(Status::Failed, Some(format!("{e:#}")));
                let _ = opened.send(Err(format!("{e:#}")));
                return;
            }
        };
        let mut open = match unpanicked(OPEN_PANICKED, || source.open()) {
            Ok(mode) => {
                self.opened(mode);
                let _ = opened.send(Ok(()));
                true
            }
            Err(e) => {
                tracing::error!(camera = %self.feed.name, "{e:#}");
                self.feed.stats.set_health(Status::Failed, Some(format!("{e:#}")));
                // Viewers get the "no signal" card from the first moment.
                if let Some(card) = no_signal_card(&self.feed.name, self.size.0, self.size.1, &self.feed.stats.encoded) {
                    self.feed.publish(card, self.size, SystemTime::now(), true);
                }
                let _ = opened.send(Err(format!("{e:#}")));
                false
            }
        };
        let mut was_live = false;
        let mut times = VecDeque::new();
        while !self.stopped() {
            if !open {
                let status = if was_live { Status::NoSignal } else { Status::Failed };
                match self.recover(source.as_mut(), status) {
                    Some(opened) => {
                        self.feed.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                        self.opened(opened)
                    }
                    None => break,
                }
                times.clear();
            }
            open = true;
            was_live = true;
            // A recorder fed with published frames keeps the camera capturing.
            let wanted = self.feed.wanted() || (self.sink.is_some() && !source.records_itself());
            let result = unpanicked("camera source panicked", || {
                if wanted { self.capture_one(source.as_mut()) } else { self.idle(source.as_mut()) }
            });
            match result {
                Ok(()) if !wanted => times.clear(),
                Ok(()) => {
                    // Frame rate and bitrate over the last two seconds.
                    let now = Instant::now();
                    let stats = &self.feed.stats;
                    times.push_back((now, stats.bytes_published.load(Ordering::Relaxed)));
                    while times.front().is_some_and(|(t, _)| now - *t > Duration::from_secs(2)) {
                        times.pop_front();
                    }
                    if let (Some((first, bytes)), Some((_, last_bytes)), n) = (times.front(), times.back(), times.len())
                        && n > 1
                    {
                        let span = (now - *first).as_secs_f64();
                        stats.set_measured_fps(((n - 1) as f64 / span) as f32);
                        stats.bitrate.store(((last_bytes - bytes) as f64 * 8.0 / span) as u64, Ordering::Relaxed);
                    }
                }
                Err(e) => {
                    tracing::warn!(camera = %self.feed.name, "capture failed: {e:#}");
                    self.feed.stats.set_health(Status::NoSignal, Some(format!("{e:#}")));
                    self.feed.stats.set_measured_fps(0.0);
                    self.feed.stats.bitrate.store(0, Ordering::Relaxed);
                    source.close();
                    open = false;
                }
            }
        }
        source.close();
    }

    fn opened(&mut self, opened: Opened) {
        tracing::info!(camera = %self.feed.name, "{}", opened.format);
        self.size = opened.size;
        self.feed.stats.set_size(opened.size);
        self.feed.stats.set_format(opened.format);
    }

    fn capture_one(&mut self, source: &mut dyn Source) -> Result<()> {
        let (w, h) = self.size;
        let stats = &self.feed.stats;
        // A source that records its own compressed video gets no JPEGs back.
        let to_recorder = !source.records_itself();
        let image = source.capture()?;
        stats.captured.fetch_add(1, Ordering::Relaxed);
        let (jpeg, size, captured) = match image {
            Image::Rgb { pixels, captured } => (encode::rgb_to_jpeg(pixels, w, h, encode::QUALITY, &stats.encoded)?, (w, h), captured),
            Image::Jpeg { jpeg, captured } => match passthrough(jpeg) {
                Ok((jpeg, size)) => {
                    stats.passed_through.fetch_add(1, Ordering::Relaxed);
                    (jpeg, size, captured)
                }
                Err(broken) => {
                    stats.dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(camera = %self.feed.name, "dropped a broken frame: {broken}");
                    return Ok(());
                }
            },
        };
        // Live before the frame is out: whoever sees the frame sees the state.
        if stats.health().0 != Status::Live {
            tracing::info!(camera = %self.feed.name, "live");
            stats.set_health(Status::Live, None);
        }
        stats.bytes_published.fetch_add(jpeg.len() as u64, Ordering::Relaxed);
        if let Some(sink) = self.sink.as_mut().filter(|_| to_recorder) {
            sink.send(record::Input::Jpeg { jpeg: jpeg.clone(), captured });
        }
        self.feed.publish(jpeg, size, captured, false);
        Ok(())
    }

    /// Nobody watches: nothing is decoded or encoded (see [`Source::discard`]).
    fn idle(&mut self, source: &mut dyn Source) -> Result<()> {
        let stats = &self.feed.stats;
        if stats.health().0 != Status::Idle {
            tracing::info!(camera = %self.feed.name, "idle: nobody watches");
            stats.set_health(Status::Idle, None);
            stats.set_measured_fps(0.0);
            stats.bitrate.store(0, Ordering::Relaxed);
        }
        if !source.discard()? {
            self.feed.wait_until_wanted(IDLE_CHECK);
        }
        Ok(())
    }

    /// Reopen with exponential backoff, publishing "no signal" frames
    /// meanwhile so clients stay connected and see why. None if stopped.
    fn recover(&mut self, source: &mut dyn Source, status: Status) -> Option<Opened> {
        let (w, h) = self.size;
        let card = no_signal_card(&self.feed.name, w, h, &self.feed.stats.encoded);
        let mut backoff = Duration::from_millis(100);
        let mut last_card: Option<Instant> = None;
        loop {
            let until = Instant::now() + backoff;
            while Instant::now() < until {
                if self.stopped() {
                    return None;
                }
                if last_card.is_none_or(|t| t.elapsed() >= NO_SIGNAL_INTERVAL) {
                    if let Some(card) = &card {
                        self.feed.publish(card.clone(), (w, h), SystemTime::now(), true);
                    }
                    last_card = Some(Instant::now());
                }
                std::thread::sleep((until - Instant::now().min(until)).min(Duration::from_millis(100)));
            }
            match unpanicked(OPEN_PANICKED, || source.open()) {
                Ok(opened) => {
                    tracing::info!(camera = %self.feed.name, "reopened");
                    return Some(opened);
                }
                Err(e) => {
                    tracing::debug!(camera = %self.feed.name, "reopen failed: {e:#}");
                    self.feed.stats.set_health(status, Some(format!("{e:#}")));
                }
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

const OPEN_PANICKED: &str = "camera source panicked while opening";

/// Run a source's call; a panic in it (a buggy driver binding, say) is a
/// failed open or capture, `why`, not a dead camera thread.
fn unpanicked<T>(why: &str, call: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).unwrap_or_else(|_| Err(anyhow::anyhow!("{why}")))
}

/// A device's JPEG as published: checked whole (a broken one is dropped),
/// cut at its EOI, the standard Huffman tables inserted if the device left
/// them out (as many UVC cameras do; Safari and strict decoders show nothing
/// without them). Returns it with its size. nokhwa hands over the whole
/// capture buffer (w×h×2 bytes for a ~20 KB frame): the frame is copied out
/// rather than sliced, so that the buffer is freed at once and not held as
/// long as any viewer holds the frame.
fn passthrough(buf: Bytes) -> Result<(Bytes, (u32, u32)), framewire_core::jpeg::Broken> {
    let info = framewire_core::jpeg::check_in_buffer(&buf)?;
    let jpeg = &buf[..info.len];
    let jpeg = framewire_core::jpeg::with_huffman_tables(jpeg).unwrap_or_else(|| jpeg.to_vec());
    Ok((Bytes::from(jpeg), (info.width.into(), info.height.into())))
}

/// The frame clients see while a camera is down, encoded once per outage.
fn no_signal_card(name: &str, w: u32, h: u32, encoded: &AtomicU64) -> Option<Bytes> {
    let pixels = card(w, h, "NO SIGNAL", name);
    encode::rgb_to_jpeg(&pixels, w, h, encode::QUALITY, encoded)
        .map_err(|e| tracing::error!("cannot render no-signal frame: {e:#}"))
        .ok()
}

/// A grey card, RGB8, with a title and a line under it.
fn card(w: u32, h: u32, title: &str, line: &str) -> Vec<u8> {
    let mut c = draw::Canvas::new(w, h);
    c.fill_rect(0, 0, w as i64, h as i64, [48, 48, 48]);
    let scale = (w / 160).max(1);
    let x = (w as i64 - draw::Canvas::text_width(title, scale)) / 2;
    c.text(x, h as i64 / 2 - 8 * scale as i64, scale, title, [255, 80, 80]);
    let sub = (scale / 2).max(1);
    let x = (w as i64 - draw::Canvas::text_width(line, sub)) / 2;
    c.text(x, h as i64 / 2 + 4 * scale as i64, sub, line, [220, 220, 220]);
    c.pixels
}
