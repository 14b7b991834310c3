//! An RTSP camera, through `retina` (pure Rust; RTP interleaved on the RTSP
//! TCP connection, Basic or Digest as the camera asks). The first video
//! stream the camera describes is used:
//!
//! - JPEG (RFC 2435): retina rebuilds whole JPEGs, which are published as
//!   they are, nothing decoded or encoded.
//! - H.264: decoded (OpenH264, behind [`Decoder`]) and JPEG-encoded once per
//!   frame, and only while someone watches: an idle camera is hung up on.
//! - H.265: there is no decoder here, so it can only be recorded (as it
//!   came); the live view shows a card saying so, once a second.
//!
//! A recording camera's H.264 or H.265 goes to the recorder as it arrives,
//! watched or not, never decoded for it.
//!
//! Like every source, a failure ends the session and the capture thread
//! reopens it with a backoff, showing "no signal" meanwhile.

use super::source_url::SourceUrl;
use super::{Image, Opened, Source};
use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use futures::StreamExt;
use retina::client::{PlayOptions, Session, SessionOptions, SetupOptions, Transport};
use retina::codec::{CodecItem, FrameFormat};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// How long connecting, describing and starting to play may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// A camera sending no video this long is taken as gone.
const NO_DATA_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for the camera's stale sessions to end before reconnecting.
const STALE_WAIT: Duration = Duration::from_secs(10);
/// How often a wait for a frame looks at the stop flag.
const STOP_CHECK: Duration = Duration::from_millis(250);

/// Turns a camera's compressed pictures into RGB. OpenH264 here; another
/// codec or a hardware decoder would be another implementation.
pub trait Decoder {
    /// Feed one access unit (Annex B); the picture's size when one is
    /// complete, its pixels then in [`Decoder::rgb`].
    fn decode(&mut self, access_unit: &[u8]) -> Result<Option<(u32, u32)>>;
    /// The last picture, packed RGB8.
    fn rgb(&self) -> &[u8];
}

struct OpenH264 {
    decoder: openh264::decoder::Decoder,
    rgb: Vec<u8>,
}

impl OpenH264 {
    fn new() -> Result<OpenH264> {
        Ok(OpenH264 { decoder: openh264::decoder::Decoder::new().context("cannot start the H.264 decoder")?, rgb: Vec::new() })
    }
}

impl Decoder for OpenH264 {
    fn decode(&mut self, access_unit: &[u8]) -> Result<Option<(u32, u32)>> {
        use openh264::formats::YUVSource;
        let Some(yuv) = self.decoder.decode(access_unit).map_err(|e| anyhow!("H.264: {e}"))? else { return Ok(None) };
        let (w, h) = yuv.dimensions();
        self.rgb.resize(w * h * 3, 0);
        yuv.write_rgb8(&mut self.rgb);
        Ok(Some((w as u32, h as u32)))
    }

    fn rgb(&self) -> &[u8] {
        &self.rgb
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    Jpeg,
    H264,
    H265,
}

/// How often an H.265 camera's live view shows its card.
const CARD_EVERY: Duration = Duration::from_secs(1);

struct Playing {
    demuxed: retina::client::Demuxed,
    codec: Codec,
    /// The video stream's index in the session.
    stream: usize,
}

impl Playing {
    /// The video stream's parameters, once the camera has sent them.
    fn video(&self) -> Option<&retina::codec::VideoParameters> {
        match self.demuxed.streams()[self.stream].parameters() {
            Some(retina::codec::ParametersRef::Video(v)) => Some(v),
            _ => None,
        }
    }
}

pub struct Rtsp {
    url: SourceUrl,
    runtime: tokio::runtime::Runtime,
    playing: Option<Playing>,
    decoder: Option<Box<dyn Decoder>>,
    /// A frame read while opening, captured next.
    pending: Option<Bytes>,
    stop: Arc<AtomicBool>,
    /// The camera records: H.264 goes here as it arrives, never decoded
    /// for it.
    record: Option<crate::record::Sink>,
    /// This camera's sessions, live and stale (see [`Rtsp::connect`]).
    group: Arc<retina::client::SessionGroup>,
    /// An H.265 camera's live view: a card (RGB8), and when it was last shown.
    card: Option<Vec<u8>>,
    card_shown: Option<Instant>,
}

impl Rtsp {
    pub fn new(url: SourceUrl, stop: Arc<AtomicBool>) -> Result<Rtsp> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let group = Arc::new(retina::client::SessionGroup::default().named(url.display.clone()));
        Ok(Rtsp { url, runtime, playing: None, decoder: None, pending: None, stop, record: None, group, card: None, card_shown: None })
    }

    fn connect(&mut self) -> Result<Playing> {
        let (url, group) = (self.url.clone(), self.group.clone());
        self.runtime.block_on(async move {
            // Some cameras keep a session playing after its connection is
            // gone and refuse a new one meanwhile: let retina tear the old
            // ones down (or wait for them to expire) first, for a while.
            let stale = group.stale_sessions();
            if stale.num_sessions > 0 {
                tracing::debug!(camera = %url.display, "waiting for {} stale RTSP session(s) to end", stale.num_sessions);
                let _ = tokio::time::timeout(STALE_WAIT, group.await_stale_sessions(&stale)).await;
            }
            tokio::time::timeout(OPEN_TIMEOUT, start(&url, group)).await.map_err(|_| anyhow!("no answer within {OPEN_TIMEOUT:?}"))?
        })
    }

    /// The next video access unit's bytes.
    fn next_frame(&mut self) -> Result<Bytes> {
        if let Some(f) = self.pending.take() {
            return Ok(f);
        }
        if self.playing.is_none() {
            self.playing = Some(self.connect()?);
        }
        let (playing, runtime, stop) = (self.playing.as_mut().expect("connected above"), &self.runtime, &self.stop);
        let record = self.record.as_mut().filter(|_| playing.codec != Codec::Jpeg);
        let started = Instant::now();
        loop {
            if stop.load(Ordering::Relaxed) {
                bail!("stopping");
            }
            match runtime.block_on(async { tokio::time::timeout(STOP_CHECK, playing.demuxed.next()).await }) {
                Err(_) if started.elapsed() > NO_DATA_TIMEOUT => bail!("no video for {NO_DATA_TIMEOUT:?}"),
                Err(_) => {}
                Ok(None) => bail!("the camera ended the session"),
                Ok(Some(Err(e))) => bail!("RTSP: {e}"),
                Ok(Some(Ok(CodecItem::VideoFrame(f)))) => {
                    let (pts, key) = (f.timestamp().elapsed(), f.is_random_access_point());
                    let data = Bytes::from(f.into_data());
                    if let Some(sink) = record {
                        let params = playing.video();
                        let size = params.map_or((0, 0), |v| v.pixel_dimensions());
                        let captured = SystemTime::now();
                        sink.send(match playing.codec {
                            Codec::H265 => {
                                // retina flags IDR only; a CRA starts a segment as well.
                                let key = key || crate::record::h264::h265_random_access(&data);
                                // Only a keyframe can start a file, the one place it is needed.
                                let hvcc = match params {
                                    Some(v) if key => Bytes::copy_from_slice(v.extra_data()),
                                    _ => Bytes::new(),
                                };
                                crate::record::Input::H265 { data: data.clone(), hvcc, pts, key, size, captured }
                            }
                            _ => crate::record::Input::H264 { annexb: data.clone(), pts, key, size, captured },
                        });
                    }
                    return Ok(data);
                }
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// End the session. retina sends TEARDOWN from a task on this runtime
    /// (it runs while the source next waits on the runtime), so the session
    /// must be dropped inside it.
    fn hang_up(&mut self) {
        let _inside = self.runtime.enter();
        self.playing = None;
        self.pending = None;
    }

    fn codec(&self) -> Codec {
        self.playing.as_ref().map_or(Codec::Jpeg, |p| p.codec)
    }

    /// The size of the picture in `frame`, for an H.264 camera (None until
    /// the decoder has one: after a keyframe).
    fn decode(&mut self, frame: &[u8]) -> Result<Option<(u32, u32)>> {
        if self.decoder.is_none() {
            self.decoder = Some(Box::new(OpenH264::new()?));
        }
        self.decoder.as_mut().expect("made above").decode(frame)
    }
}

/// DESCRIBE, SETUP the first video stream we can show, PLAY.
async fn start(url: &SourceUrl, group: Arc<retina::client::SessionGroup>) -> Result<Playing> {
    let creds = url.credentials.as_ref().map(|(username, password)| retina::client::Credentials {
        username: username.clone(),
        password: password.clone(),
    });
    let options = SessionOptions::default()
        .creds(creds)
        .session_group(group)
        .user_agent(concat!("framewire/", env!("CARGO_PKG_VERSION")).to_string());
    let mut session = Session::describe(url.url.clone(), options).await.map_err(|e| anyhow!("DESCRIBE: {e}"))?;
    let found = session.streams().iter().enumerate().find_map(|(i, s)| {
        let codec = match (s.media(), s.encoding_name()) {
            ("video", "jpeg") => Codec::Jpeg,
            ("video", "h264") => Codec::H264,
            ("video", "h265") => Codec::H265,
            _ => return None,
        };
        Some((i, codec))
    });
    let Some((i, codec)) = found else {
        let offered: Vec<String> = session.streams().iter().map(|s| format!("{}/{}", s.media(), s.encoding_name())).collect();
        bail!("no JPEG, H.264 or H.265 video among the camera's streams ({})", offered.join(", "));
    };
    // H.265 only goes to MP4: length-prefixed, with its hvcC. The others
    // in Annex B, as the decoder wants them (the recorder converts).
    let format = if codec == Codec::H265 { FrameFormat::MP4 } else { FrameFormat::SIMPLE };
    let setup = SetupOptions::default().transport(Transport::Tcp(Default::default())).frame_format(format);
    session.setup(i, setup).await.map_err(|e| anyhow!("SETUP: {e}"))?;
    let playing = session.play(PlayOptions::default()).await.map_err(|e| anyhow!("PLAY: {e}"))?;
    let demuxed = playing.demuxed().map_err(|e| anyhow!("{e}"))?;
    Ok(Playing { demuxed, codec, stream: i })
}

impl Source for Rtsp {
    fn open(&mut self) -> Result<Opened> {
        self.hang_up();
        self.decoder = None;
        self.playing = Some(self.connect()?);
        // The first whole picture gives the size.
        let deadline = Instant::now() + NO_DATA_TIMEOUT;
        loop {
            let frame = self.next_frame()?;
            let size = match self.codec() {
                Codec::Jpeg => framewire_core::jpeg::check_in_buffer(&frame).ok().map(|i| (i.width.into(), i.height.into())),
                Codec::H264 => self.decode(&frame).ok().flatten(),
                Codec::H265 => self.playing.as_ref().and_then(Playing::video).map(|v| v.pixel_dimensions()),
            };
            if let Some(size) = size {
                let (codec, how) = match self.codec() {
                    Codec::Jpeg => ("JPEG", "passed through"),
                    Codec::H264 => ("H.264", "decoded and JPEG-encoded here while watched"),
                    Codec::H265 => ("H.265", "no live view (no H.265 decoder here): recorded as it came, if recording"),
                };
                if self.codec() == Codec::H265 {
                    self.card = Some(super::card(size.0, size.1, "H.265", "recorded only: no live view"));
                    self.card_shown = None;
                }
                if self.codec() == Codec::Jpeg {
                    self.pending = Some(frame);
                }
                return Ok(Opened { size, format: format!("{codec} {}x{} from {}, {how}", size.0, size.1, self.url.display) });
            }
            if Instant::now() > deadline {
                bail!("no whole picture from the camera within {NO_DATA_TIMEOUT:?}");
            }
        }
    }

    fn capture(&mut self) -> Result<Image<'_>> {
        loop {
            let frame = self.next_frame().inspect_err(|_| self.hang_up())?;
            let captured = SystemTime::now();
            match self.codec() {
                Codec::Jpeg => return Ok(Image::Jpeg { jpeg: frame, captured }),
                Codec::H264 => {
                    // A picture that does not decode (lost packets, or before
                    // the first keyframe after a reconnect) is skipped.
                    if let Ok(Some(_)) = self.decode(&frame) {
                        let pixels = self.decoder.as_ref().expect("decoded above").rgb();
                        return Ok(Image::Rgb { pixels, captured });
                    }
                }
                Codec::H265 => {
                    if self.card_shown.is_none_or(|t| t.elapsed() >= CARD_EVERY) {
                        self.card_shown = Some(Instant::now());
                        let pixels = self.card.as_deref().context("no card for an H.265 camera")?;
                        return Ok(Image::Rgb { pixels, captured });
                    }
                }
            }
        }
    }

    /// Nobody watches: hang up (the next capture reconnects), unless the
    /// camera records its H.264 or H.265: then frames go on to the
    /// recorder, undecoded.
    fn discard(&mut self) -> Result<bool> {
        if self.records_itself() {
            self.next_frame().inspect_err(|_| self.hang_up())?;
            return Ok(true);
        }
        self.hang_up();
        Ok(false)
    }

    fn record_into(&mut self, sink: crate::record::Sink) {
        self.record = Some(sink);
    }

    fn records_itself(&self) -> bool {
        self.record.is_some() && self.codec() != Codec::Jpeg
    }

    fn close(&mut self) {
        self.hang_up();
    }
}

impl Drop for Rtsp {
    fn drop(&mut self) {
        self.hang_up();
    }
}

