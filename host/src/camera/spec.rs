//! Camera specifications as given on the command line or in the config:
//! `NAME=KIND[:ARGS][,OPTION=VALUE...]`.
//!
//! - `test[:WxH[@FPS]]`: the built-in synthetic test pattern.
//! - `v4l:DEVICE[:WxH[@FPS]]`: a V4L2 webcam, DEVICE being `/dev/videoN` or `N`.
//! - `http://[USER:PASSWORD@]HOST[:PORT]/PATH`: an MJPEG stream over HTTP
//!   (an IP camera, or another framewire's `/cameras/NAME/stream`); the URL
//!   cannot hold a comma, which starts the options. `https://` too, with
//!   `tls-fingerprint=AB:CD:…` to pin a self-signed certificate or
//!   `tls-insecure` to accept any.
//! - `rtsp://[USER:PASSWORD@]HOST[:PORT]/PATH`: an RTSP camera (JPEG passed
//!   through, H.264 decoded while watched, H.265 recorded only).
//!
//! Recording (see [`crate::record`]): `record` records the camera into the
//! media folder; `record-segment=10m` starts a new file that often (default
//! 10 minutes); `record-keep=7d` deletes segments older than that;
//! `record-max=20G` deletes the oldest while the camera's take more;
//! `record-dir=cams/gate` records into that folder of the media folder
//! instead of `recordings/CAMERA`.
//!
//! Options: `always-on` keeps the camera capturing with nobody watching
//! (otherwise it idles: nothing drawn, decoded or encoded). For webcams,
//! `format=mjpeg|yuyv|nv12|gray` picks the device's pixel format (by
//! default MJPEG when it has it, passed through undecoded). For testing
//! failure handling, `fail-after=N` makes the source fail once after N
//! frames (`panic-after=N`: panic, as a buggy driver binding might);
//! `down-ms=MS` keeps it from reopening that long.

use anyhow::{Context, Result, bail, ensure};
use framewire_core::routes::valid_camera_name;

pub const DEFAULT_WIDTH: u32 = 640;
pub const DEFAULT_HEIGHT: u32 = 480;
pub const DEFAULT_FPS: f32 = 30.0;

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Test,
    V4l { index: u32 },
    Http { url: super::http::HttpUrl },
    Rtsp { url: super::source_url::SourceUrl },
}

#[derive(Debug, Clone, PartialEq)]
pub struct CameraSpec {
    pub name: String,
    /// The source as written (after `NAME=`), for display; a URL's
    /// password is shown as `***`.
    pub source: String,
    pub kind: Kind,
    pub width: u32,
    pub height: u32,
    pub fps: f32,
    pub fail_after: Option<u64>,
    pub panic_after: Option<u64>,
    pub down_ms: u64,
    pub always_on: bool,
    /// A webcam's pixel format, upper case (`MJPEG`, `YUYV`, ...), if asked for.
    pub format: Option<String>,
    /// How an `https://` source's certificate is trusted.
    pub tls_trust: super::source_tls::Trust,
    /// Recorded into the media folder, if set.
    pub record: Option<crate::record::RecordSpec>,
}

/// Pixel formats a webcam may be asked for.
pub const FORMATS: [&str; 4] = ["MJPEG", "YUYV", "NV12", "GRAY"];

impl CameraSpec {
    /// Parse `NAME=SOURCE`.
    pub fn parse_named(s: &str) -> Result<Self> {
        let (name, source) = s
            .split_once('=')
            .with_context(|| format!("camera {s:?}: expected NAME=SOURCE, e.g. front=test:640x480@30"))?;
        Self::parse(name, source)
    }

    pub fn parse(name: &str, source: &str) -> Result<Self> {
        ensure!(
            valid_camera_name(name),
            "camera name {name:?}: use 1-64 letters, digits, '-' or '_'"
        );
        let shown = super::source_url::redact(source);
        Self::parse_source(name, source, &shown).with_context(|| format!("camera {name}={shown}"))
    }

    fn parse_source(name: &str, source: &str, shown: &str) -> Result<Self> {
        let mut parts = source.split(',');
        let main = parts.next().unwrap_or("");
        let (kind_str, args) = main.split_once(':').unwrap_or((main, ""));
        let mut spec = CameraSpec {
            name: name.to_string(),
            source: shown.to_string(),
            kind: Kind::Test,
            width: DEFAULT_WIDTH,
            height: DEFAULT_HEIGHT,
            fps: DEFAULT_FPS,
            fail_after: None,
            panic_after: None,
            down_ms: 2_000,
            always_on: false,
            format: None,
            tls_trust: super::source_tls::Trust::System,
            record: None,
        };
        let mode = match kind_str {
            "test" => args,
            "http" | "https" => {
                spec.kind = Kind::Http { url: super::http::HttpUrl::parse(main)? };
                ""
            }
            "rtsp" => {
                spec.kind = Kind::Rtsp { url: super::source_url::SourceUrl::parse(main, &["rtsp"])? };
                ""
            }
            "v4l" => {
                let (dev, mode) = args.split_once(':').unwrap_or((args, ""));
                let index = dev
                    .strip_prefix("/dev/video")
                    .unwrap_or(dev)
                    .parse::<u32>()
                    .map_err(|_| anyhow::anyhow!("device {dev:?}: expected /dev/videoN or N"))?;
                spec.kind = Kind::V4l { index };
                mode
            }
            "" => bail!("empty source; expected test[:WxH@FPS], v4l:/dev/videoN, http://HOST/PATH or rtsp://HOST/PATH"),
            other => bail!("unknown camera kind {other:?}; expected test, v4l, http, https or rtsp"),
        };
        if !mode.is_empty() {
            let (size, fps) = mode.split_once('@').map_or((mode, None), |(s, f)| (s, Some(f)));
            if !size.is_empty() {
                let (w, h) = size
                    .split_once('x')
                    .with_context(|| format!("size {size:?}: expected WIDTHxHEIGHT"))?;
                spec.width = w.parse().with_context(|| format!("bad width {w:?}"))?;
                spec.height = h.parse().with_context(|| format!("bad height {h:?}"))?;
            }
            if let Some(f) = fps {
                spec.fps = f.parse().with_context(|| format!("bad frame rate {f:?}"))?;
            }
        }
        for opt in parts {
            if opt == "always-on" {
                spec.always_on = true;
                continue;
            }
            if opt == "record" {
                spec.record.get_or_insert_default();
                continue;
            }
            if opt == "tls-insecure" {
                spec.tls_trust = super::source_tls::Trust::Insecure;
                continue;
            }
            let (k, v) = opt.split_once('=').with_context(|| format!("option {opt:?}: expected always-on or KEY=VALUE"))?;
            match k {
                "fail-after" => spec.fail_after = Some(v.parse().with_context(|| format!("bad fail-after {v:?}"))?),
                "panic-after" => spec.panic_after = Some(v.parse().with_context(|| format!("bad panic-after {v:?}"))?),
                "down-ms" => spec.down_ms = v.parse().with_context(|| format!("bad down-ms {v:?}"))?,
                "tls-fingerprint" => spec.tls_trust = super::source_tls::Trust::pinned(v)?,
                "record-segment" => spec.record.get_or_insert_default().segment = crate::record::parse_duration(v)?,
                "record-dir" => {
                    // As a URL path under /media/ would name it: served, so no dot or hidden names.
                    let path = framewire_core::media_path::resolve(v).map_err(|e| anyhow::anyhow!("record-dir {v:?}: {}", e.0))?;
                    ensure!(!path.segments.is_empty(), "record-dir {v:?}: name a folder under the media folder");
                    spec.record.get_or_insert_default().folder = Some(path.relative());
                }
                "record-keep" => spec.record.get_or_insert_default().keep = Some(crate::record::parse_duration(v)?),
                "record-max" => spec.record.get_or_insert_default().max_bytes = Some(crate::record::parse_size(v)?),
                "format" => {
                    let f = v.to_ascii_uppercase();
                    ensure!(FORMATS.contains(&f.as_str()), "format {v:?}: expected one of {}", FORMATS.join(", ").to_lowercase());
                    spec.format = Some(f);
                }
                _ => bail!(
                    "unknown option {k:?}; known: always-on, record, record-segment, record-keep, record-max, record-dir, format, \
                     fail-after, panic-after, down-ms, tls-fingerprint, tls-insecure"
                ),
            }
        }
        ensure!(
            (16..=4096).contains(&spec.width) && (16..=4096).contains(&spec.height),
            "size {}x{} out of range (16..4096 each way)",
            spec.width,
            spec.height
        );
        ensure!(
            spec.fps.is_finite() && (0.1..=120.0).contains(&spec.fps),
            "frame rate {} out of range (0.1..120)",
            spec.fps
        );
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sources() {
        let s = CameraSpec::parse_named("front=test:1280x720@15").unwrap();
        assert_eq!((s.kind, s.width, s.height, s.fps), (Kind::Test, 1280, 720, 15.0));
        let s = CameraSpec::parse("t", "test").unwrap();
        assert_eq!((s.width, s.height, s.fps), (640, 480, 30.0));
        let s = CameraSpec::parse("t", "test:@5,fail-after=10,down-ms=300").unwrap();
        assert_eq!((s.fps, s.fail_after, s.down_ms, s.always_on), (5.0, Some(10), 300, false));
        assert!(CameraSpec::parse("t", "test:640x480@30,always-on").unwrap().always_on);
        let s = CameraSpec::parse("w", "v4l:0:320x240@15,format=yuyv").unwrap();
        assert_eq!(s.format.as_deref(), Some("YUYV"));
        let s = CameraSpec::parse("w", "v4l:/dev/video2:320x240").unwrap();
        assert_eq!((s.kind, s.width), (Kind::V4l { index: 2 }, 320));
        assert_eq!(CameraSpec::parse("w", "v4l:0").unwrap().kind, Kind::V4l { index: 0 });
        let s = CameraSpec::parse("ip", "http://admin:secret@10.0.0.5/mjpg/video.mjpg,always-on").unwrap();
        assert!(matches!(&s.kind, Kind::Http { url } if url.path == "/mjpg/video.mjpg" && url.authority == "10.0.0.5:80"));
        assert_eq!(s.source, "http://admin:***@10.0.0.5/mjpg/video.mjpg,always-on");
        assert!(s.always_on);
        let s = CameraSpec::parse("r", "test,record-segment=90s,record-keep=7d,record-max=20G").unwrap();
        let r = s.record.unwrap();
        assert_eq!((r.segment.as_secs(), r.keep.unwrap().as_secs(), r.max_bytes), (90, 7 * 86_400, Some(20 << 30)));
        assert_eq!(CameraSpec::parse("r", "test,record").unwrap().record.unwrap().segment.as_secs(), 600);
        assert_eq!(CameraSpec::parse("r", "test").unwrap().record, None);
        let r = CameraSpec::parse("r", "test,record-dir=cams/gate/").unwrap().record.unwrap();
        assert_eq!(r.folder.as_deref(), Some("cams/gate"));
    }

    #[test]
    fn rejects_bad_specs_with_reasons() {
        for (bad, why) in [
            ("nameless", "NAME=SOURCE"),
            ("a b=test", "camera name"),
            ("x=ftp://cam", "unknown camera kind"),
            ("x=test:640x", "bad height"),
            ("x=test:0x480", "out of range"),
            ("x=test:@0", "out of range"),
            ("x=test:@fast", "bad frame rate"),
            ("x=v4l:/dev/sda", "expected /dev/videoN"),
            ("x=test,colour=red", "unknown option"),
            ("x=v4l:0,format=h264", "expected one of mjpeg, yuyv"),
            ("x=https://cam/,tls-fingerprint=AB:CD", "32 hex bytes"),
            ("x=http://", "bad URL"),
            ("x=test,record-segment=0", "more than 0"),
            ("x=test,record-keep=3w", "s, m, h or d"),
            ("x=test,record-max=lots", "K, M, G or T"),
            ("x=test,record-dir=../etc", "dot segment"),
            ("x=test,record-dir=.hidden", "hidden name"),
            ("x=test,record-dir=/", "name a folder"),
        ] {
            let err = format!("{:#}", CameraSpec::parse_named(bad).unwrap_err());
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
