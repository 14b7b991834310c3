//! Recording cameras into the media folder, as
//! `recordings/CAMERA/YYYY-MM-DD/HH-MM-SS.mp4` (UTC, the segment's first
//! frame), each segment an MP4 the range handler serves and `<video>` seeks.
//!
//! Each recording camera has a recorder thread fed through a bounded
//! channel: the camera never waits for the disk, and a full disk stops the
//! recording (state and log say why), never the live view. H.264 and H.265
//! from the camera are recorded as they came; JPEG frames are encoded to
//! H.264 here, once per frame, for recording only.

pub mod h264;
pub mod mp4;
mod retention;

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use h264::{AccessUnit, JpegToH264};
use mp4::{Segment, TIMESCALE, Track};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// The folder under the media folder that recordings go to.
pub const FOLDER: &str = "recordings";

/// A camera's `record` options.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordSpec {
    /// Where its segments go, relative to the media folder (and served
    /// from there); None: `recordings/CAMERA`.
    pub folder: Option<String>,
    /// A new file starts (at a keyframe) after this long.
    pub segment: Duration,
    /// Segments older than this are deleted.
    pub keep: Option<Duration>,
    /// The oldest segments are deleted while the camera's recordings
    /// take more than this.
    pub max_bytes: Option<u64>,
}

impl Default for RecordSpec {
    fn default() -> Self {
        RecordSpec { folder: None, segment: Duration::from_secs(600), keep: None, max_bytes: None }
    }
}

/// `90s`, `10m`, `2h`, `7d` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration> {
    let (n, unit) = s.find(|c: char| !c.is_ascii_digit()).map_or((s, ""), |i| s.split_at(i));
    let n: u64 = n.parse().with_context(|| format!("{s:?}: expected a number and s, m, h or d"))?;
    let secs = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => bail!("{s:?}: expected a number and s, m, h or d"),
    };
    ensure!(n > 0, "{s:?}: must be more than 0");
    Ok(Duration::from_secs(n.saturating_mul(secs)))
}

/// `500M`, `20G`, `1T` (a bare number is bytes; K, M, G, T are powers of 1024).
pub fn parse_size(s: &str) -> Result<u64> {
    let (n, unit) = s.find(|c: char| !c.is_ascii_digit()).map_or((s, ""), |i| s.split_at(i));
    let n: u64 = n.parse().with_context(|| format!("{s:?}: expected a number and K, M, G or T"))?;
    let shift = match unit.to_ascii_uppercase().trim_end_matches('B') {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => bail!("{s:?}: expected a number and K, M, G or T"),
    };
    ensure!(n > 0, "{s:?}: must be more than 0");
    n.checked_mul(1 << shift).with_context(|| format!("{s:?}: too big"))
}

/// What a recorder is doing, for `/metrics` and the log.
#[derive(Default, Debug)]
pub struct State {
    /// The camera's recordings folder, relative to the media folder.
    pub folder: String,
    inner: Mutex<StateInner>,
    pub frames_written: AtomicU64,
    pub bytes_written: AtomicU64,
    pub segments_finished: AtomicU64,
    /// Frames the recorder could not keep up with, or dropped while it
    /// could not write.
    pub frames_dropped: AtomicU64,
    /// H.264 encoder calls (JPEG sources only).
    pub frames_encoded: AtomicU64,
}

#[derive(Default, Clone, Debug)]
struct StateInner {
    segment: Option<PathBuf>,
    error: Option<String>,
}

impl State {
    /// The file being written, relative to the media folder, if any.
    pub fn segment(&self) -> Option<PathBuf> {
        self.inner.lock().expect("state lock").segment.clone()
    }
    /// Why recording stopped, while it is stopped.
    pub fn error(&self) -> Option<String> {
        self.inner.lock().expect("state lock").error.clone()
    }
    fn set(&self, segment: Option<PathBuf>, error: Option<String>) {
        *self.inner.lock().expect("state lock") = StateInner { segment, error };
    }
}

/// A frame for the recorder.
pub enum Input {
    /// A published JPEG: encoded to H.264 by the recorder.
    Jpeg { jpeg: Bytes, captured: SystemTime },
    /// An H.264 access unit (Annex B) as the camera sent it, `pts` in 90 kHz
    /// units.
    H264 { annexb: Bytes, pts: i64, key: bool, size: (u32, u32), captured: SystemTime },
    /// An H.265 access unit, length-prefixed as in MP4; `key` for any IRAP
    /// (see [`h264::h265_random_access`]), and then with the camera's
    /// decoder configuration record (`hvcC`), which a file starts with.
    H265 { data: Bytes, hvcc: Bytes, pts: i64, key: bool, size: (u32, u32), captured: SystemTime },
}

impl Input {
    /// A compressed picture that others depend on (dropping it breaks
    /// the frames up to the next keyframe).
    fn compressed_key(&self) -> Option<bool> {
        match self {
            Input::Jpeg { .. } => None,
            Input::H264 { key, .. } | Input::H265 { key, .. } => Some(*key),
        }
    }
}

/// Where a camera hands frames to its recorder. Never blocks: a frame that
/// does not fit is dropped (and for H.264, every frame up to the next
/// keyframe, which the dropped ones would be needed to decode).
#[derive(Clone)]
pub struct Sink {
    tx: SyncSender<Input>,
    state: Arc<State>,
    skip_to_key: bool,
}

impl Sink {
    pub fn send(&mut self, input: Input) {
        if let Some(key) = input.compressed_key() {
            if self.skip_to_key && !key {
                self.state.frames_dropped.fetch_add(1, Relaxed);
                return;
            }
            self.skip_to_key = false;
        }
        if let Err(TrySendError::Full(i) | TrySendError::Disconnected(i)) = self.tx.try_send(input) {
            self.state.frames_dropped.fetch_add(1, Relaxed);
            self.skip_to_key = i.compressed_key().is_some();
        }
    }
}

/// A running recorder; finishes its segment when dropped, once the
/// camera's [`Sink`] is gone too.
pub struct Recorder {
    state: Arc<State>,
    thread: Option<JoinHandle<()>>,
}

/// Frames that may wait for the recorder: a few seconds of H.264, so the
/// disk may stall that long without a gap in the recording.
const QUEUE: usize = 120;
/// A gap this long in a camera's frames (it failed, or a session restarted)
/// ends the segment; the next starts with the next keyframe.
const GAP: Duration = Duration::from_secs(5);
/// After a write fails, how long before recording is tried again.
const RETRY: Duration = Duration::from_secs(10);

impl Recorder {
    /// Start recording camera `name` into `media/recordings/name/` (or the
    /// spec's folder). Whole fragments left in unfinished files by an
    /// earlier run are finished first. Returns the recorder and the sink
    /// its camera hands frames to.
    pub fn start(media: &Path, name: &str, spec: RecordSpec, fps: f32) -> Result<(Recorder, Sink)> {
        let folder = spec.folder.clone().unwrap_or_else(|| format!("{FOLDER}/{name}"));
        let dir = media.join(&folder);
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}: the media folder must be writable to record", dir.display()))?;
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let state = Arc::new(State { folder, ..Default::default() });
        let media = media.to_path_buf();
        let mut worker = Worker { media, dir, spec, fps, state: state.clone(), segment: None, encoder: None, last: None, retry_at: None };
        let name = name.to_string();
        let thread = std::thread::Builder::new().name(format!("record-{name}")).spawn(move || {
            worker.recover();
            worker.prune();
            worker.run(rx);
        })?;
        let sink = Sink { tx, state: state.clone(), skip_to_key: false };
        Ok((Recorder { state, thread: Some(thread) }, sink))
    }

    pub fn state(&self) -> &Arc<State> {
        &self.state
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Worker {
    media: PathBuf,
    /// `media/recordings/CAMERA`.
    dir: PathBuf,
    spec: RecordSpec,
    fps: f32,
    state: Arc<State>,
    segment: Option<Segment>,
    encoder: Option<JpegToH264>,
    /// The last frame's pts and when it came.
    last: Option<(u64, Instant)>,
    /// Set after a write failed: nothing is recorded until then.
    retry_at: Option<Instant>,
}

impl Worker {
    fn run(&mut self, rx: Receiver<Input>) {
        loop {
            match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(input) => {
                    if let Err(e) = self.take(input) {
                        self.failed(e);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    if self.segment.is_some() && self.last.is_some_and(|(_, at)| at.elapsed() > GAP) {
                        self.finish();
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        self.finish();
    }

    fn take(&mut self, input: Input) -> Result<()> {
        if let Some(at) = self.retry_at {
            if Instant::now() < at {
                self.state.frames_dropped.fetch_add(1, Relaxed);
                return Ok(());
            }
            self.retry_at = None;
            self.prune();
            self.recover();
        }
        // The picture, and what a segment starting with it would need.
        let (au, pts, size, captured, hvcc) = match input {
            Input::Jpeg { jpeg, captured } => {
                // A keyframe starts each segment.
                let due = self.segment.as_ref().is_none_or(|s| s.elapsed(wall_pts(captured)) >= self.segment_len());
                let encoder = self.encoder.get_or_insert_with(|| JpegToH264::new(self.fps));
                self.state.frames_encoded.fetch_add(1, Relaxed);
                // A frame that does not decode is dropped, not a reason to stop.
                let (size, au) = match encoder.encode(&jpeg, due) {
                    Ok(Some(encoded)) => encoded,
                    Ok(None) => return Ok(()),
                    Err(e) => return Ok(self.drop_frame(&e)),
                };
                (au, wall_pts(captured), size, captured, None)
            }
            Input::H264 { annexb, pts, key, size, captured } => {
                let mut au = AccessUnit::from_annexb(&annexb);
                au.key |= key;
                (au, pts.max(0) as u64, size, captured, None)
            }
            Input::H265 { data, hvcc, pts, key, size, captured } => {
                (AccessUnit { data: data.to_vec(), key, sps: None, pps: None }, pts.max(0) as u64, size, captured, Some(hvcc))
            }
        };
        // Time going back or jumping ends the segment.
        if self.segment.is_some()
            && let Some((last, _)) = self.last
            && (pts < last || pts - last > GAP.as_secs() * TIMESCALE as u64)
        {
            self.finish();
        }
        if self.segment.as_ref().is_some_and(|s| au.key && s.elapsed(pts) >= self.segment_len()) {
            self.finish();
        }
        // A new size or new parameter sets (a camera reopened differently)
        // need a new track: a new file, from this keyframe.
        let new_track = |seg: &Segment| {
            (u32::from(seg.track().width), u32::from(seg.track().height)) != size || changed_parameters(&seg.track().codec, &au)
        };
        if au.key && self.segment.as_ref().is_some_and(new_track) {
            self.finish();
        }
        if self.segment.is_none() {
            if !au.key || size.0 == 0 || size.1 == 0 {
                return Ok(()); // wait for a keyframe, and the camera's picture size
            }
            let track = match track_for(&au, size, hvcc.as_deref()) {
                Ok(track) => track,
                Err(e) => return Ok(self.drop_frame(&e)),
            };
            let path = self.new_path(captured)?;
            self.segment = Some(Segment::create(&path, track)?);
            tracing::info!(file = %path.display(), "recording");
            self.state.set(path.strip_prefix(&self.media).ok().map(Path::to_path_buf), None);
        }
        let seg = self.segment.as_mut().expect("made above");
        let len = au.data.len() as u64;
        seg.push(au.data, pts, au.key)?;
        self.state.frames_written.fetch_add(1, Relaxed);
        self.state.bytes_written.fetch_add(len, Relaxed);
        self.last = Some((pts, Instant::now()));
        Ok(())
    }

    /// A frame the recorder cannot use (it does not decode, or a keyframe
    /// lacks its parameter sets): counted, logged, and recording goes on.
    fn drop_frame(&self, e: &anyhow::Error) {
        if self.state.frames_dropped.fetch_add(1, Relaxed) % 100 == 0 {
            tracing::warn!(dir = %self.dir.display(), "recording dropped a frame: {e:#}");
        }
    }

    fn segment_len(&self) -> u64 {
        (self.spec.segment.as_secs_f64() * TIMESCALE as f64) as u64
    }

    /// `DIR/YYYY-MM-DD/HH-MM-SS.mp4` for a segment starting at `t`, with a
    /// suffix if that second already has one.
    fn new_path(&self, t: SystemTime) -> Result<PathBuf> {
        let t = time::OffsetDateTime::from(t);
        let day = self.dir.join(format!("{:04}-{:02}-{:02}", t.year(), t.month() as u8, t.day()));
        std::fs::create_dir_all(&day).with_context(|| format!("cannot create {}", day.display()))?;
        let stem = format!("{:02}-{:02}-{:02}", t.hour(), t.minute(), t.second());
        let mut path = day.join(format!("{stem}.mp4"));
        let mut n = 1;
        while path.exists() || mp4::rec_path(&path).exists() {
            n += 1;
            path = day.join(format!("{stem}-{n}.mp4"));
        }
        Ok(path)
    }

    fn finish(&mut self) {
        self.last = None;
        let Some(seg) = self.segment.take() else { return };
        match seg.finish() {
            Ok((path, duration)) => {
                self.state.segments_finished.fetch_add(1, Relaxed);
                tracing::info!(file = %path.display(), "recorded {:.1} s", duration as f64 / TIMESCALE as f64);
                self.state.set(None, None);
                self.prune();
            }
            Err(e) => self.failed(e),
        }
    }

    /// A write failed (a full disk, most likely): stop recording, say why,
    /// and try again after [`RETRY`]. The unfinished file stays, finished at
    /// the next start.
    fn failed(&mut self, e: anyhow::Error) {
        if let Some(seg) = self.segment.take() {
            seg.abandon();
        }
        self.last = None;
        let msg = format!("recording stopped: {e:#}");
        tracing::error!(dir = %self.dir.display(), "{msg}; trying again in {RETRY:?}");
        self.state.set(None, Some(msg));
        self.retry_at = Some(Instant::now() + RETRY);
    }

    /// Finish what an earlier run, or a failed write, left unfinished.
    fn recover(&self) {
        for rec in retention::unfinished(&self.dir) {
            match mp4::recover(&rec) {
                Ok((path, duration)) => {
                    tracing::warn!(file = %path.display(), "recovered {:.1} s of an unfinished recording", duration as f64 / TIMESCALE as f64)
                }
                Err(e) => tracing::error!(file = %rec.display(), "cannot recover an unfinished recording: {e:#}"),
            }
        }
    }

    fn prune(&self) {
        retention::prune(&self.dir, self.spec.keep, self.spec.max_bytes, self.segment.as_ref().map(|s| s.path()));
    }
}

/// The track a segment starting with keyframe `au` has.
fn track_for(au: &AccessUnit, size: (u32, u32), hvcc: Option<&[u8]>) -> Result<Track> {
    let codec = match hvcc {
        Some(record) => mp4::Codec::hevc(record)?,
        None => mp4::Codec::Avc {
            sps: au.sps.clone().context("a keyframe without its SPS")?,
            pps: au.pps.clone().context("a keyframe without its PPS")?,
        },
    };
    Ok(Track {
        width: u16::try_from(size.0).context("frame too wide")?,
        height: u16::try_from(size.1).context("frame too tall")?,
        codec,
    })
}

/// Whether `au` brings H.264 parameter sets other than the track's.
fn changed_parameters(track: &mp4::Codec, au: &AccessUnit) -> bool {
    match track {
        mp4::Codec::Avc { sps, pps } => au.sps.as_ref().is_some_and(|s| s != sps) || au.pps.as_ref().is_some_and(|p| p != pps),
        mp4::Codec::Hevc(_) => false,
    }
}

/// A capture time as a pts: microseconds since the epoch in 90 kHz units.
fn wall_pts(t: SystemTime) -> u64 {
    crate::frames::unix_micros(t) * 9 / 100
}

#[cfg(test)]
mod tests {
    use super::*;
    use mp4_atom::Decode;

    /// A recorder at 10 fps into `media/recordings/t`, its thread left out.
    fn worker(media: &Path) -> Worker {
        let dir = media.join("recordings/t");
        std::fs::create_dir_all(&dir).unwrap();
        Worker {
            media: media.to_path_buf(),
            dir,
            spec: RecordSpec::default(),
            fps: 10.0,
            state: Arc::new(State::default()),
            segment: None,
            encoder: None,
            last: None,
            retry_at: None,
        }
    }

    #[test]
    fn a_camera_reopened_at_another_size_starts_a_new_file_and_a_broken_frame_is_only_dropped() {
        let media = tempfile::tempdir().unwrap();
        let mut w = worker(media.path());
        let (dir, state) = (w.dir.clone(), w.state.clone());
        let calls = AtomicU64::new(0);
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        for i in 0..30u32 {
            let (width, height) = if i < 15 { (64, 48) } else { (96, 64) };
            let rgb: Vec<u8> = (0..width * height * 3).map(|p| ((p + i * 3) % 251) as u8).collect();
            let jpeg = crate::encode::rgb_to_jpeg(&rgb, width, height, 80, &calls).unwrap();
            let captured = t0 + Duration::from_millis(100 * i as u64);
            w.take(Input::Jpeg { jpeg, captured }).unwrap();
            if i == 20 {
                w.take(Input::Jpeg { jpeg: Bytes::from_static(b"\xff\xd8 not a picture"), captured }).unwrap();
            }
        }
        w.finish();
        assert_eq!(state.error(), None);
        assert_eq!(state.frames_dropped.load(Relaxed), 1);
        assert_eq!(state.segments_finished.load(Relaxed), 2);
        let mut sizes = Vec::new();
        for day in std::fs::read_dir(&dir).unwrap().flatten() {
            let mut files: Vec<_> = std::fs::read_dir(day.path()).unwrap().flatten().map(|e| e.path()).collect();
            files.sort();
            for f in files {
                let bytes = std::fs::read(&f).unwrap();
                let ftyp = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
                let moov = mp4_atom::Moov::decode(&mut &bytes[ftyp..]).unwrap();
                let tkhd = &moov.trak[0].tkhd;
                sizes.push((tkhd.width.integer(), tkhd.height.integer(), moov.mvhd.duration));
            }
        }
        assert_eq!(sizes, [(64, 48, 1500), (96, 64, 1500)]);
    }
}
