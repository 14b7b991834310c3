//! V4L2 webcams through nokhwa. Of the modes a camera offers, MJPEG is
//! preferred and its JPEGs are passed through (checked, not re-encoded);
//! other formats are decoded to RGB and encoded once. The size and rate
//! are the closest the camera has to those asked for.

use super::spec::CameraSpec;
use super::{Image, Opened, Source};
use anyhow::{Context, Result};
use nokhwa::pixel_format::RgbFormat;
use nokhwa::FormatDecoder;
use nokhwa::utils::{ApiBackend, CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType};
use std::time::{SystemTime, UNIX_EPOCH};

pub struct V4l {
    index: u32,
    width: u32,
    height: u32,
    fps: u32,
    /// The pixel format asked for, if any (see the spec's `format=`).
    format: Option<FrameFormat>,
    camera: Option<nokhwa::Camera>,
    rgb: Vec<u8>,
}

impl V4l {
    pub fn new(spec: &CameraSpec, index: u32) -> Self {
        V4l {
            index,
            width: spec.width,
            height: spec.height,
            fps: spec.fps.round().max(1.0) as u32,
            format: spec.format.as_deref().map(|f| match f {
                "MJPEG" => FrameFormat::MJPEG,
                "YUYV" => FrameFormat::YUYV,
                "NV12" => FrameFormat::NV12,
                _ => FrameFormat::GRAY,
            }),
            camera: None,
            rgb: Vec::new(),
        }
    }

    fn device(&self) -> String {
        format!("/dev/video{}", self.index)
    }
}

/// Open a camera without asking for a mode yet (nokhwa sets the first one).
fn open_camera(index: u32) -> Result<nokhwa::Camera> {
    let dev = format!("/dev/video{index}");
    // nokhwa panics deep inside on some missing devices; check first for a clear error.
    std::fs::metadata(&dev).with_context(|| format!("cannot open camera {dev}"))?;
    let any = RequestedFormat::new::<RgbFormat>(RequestedFormatType::None);
    nokhwa::Camera::with_backend(CameraIndex::Index(index), any, ApiBackend::Video4Linux)
        .with_context(|| format!("cannot open camera {dev}"))
}

/// The mode to ask for: the pixel format asked for, or else MJPEG if the
/// camera has it (passed through, no decoding), then the size nearest to
/// `(w, h)`, then the rate nearest to `fps` at that size. (nokhwa's own
/// `Closest` fails when the size asked for is not one the camera has.)
fn closest(modes: &[CameraFormat], format: Option<FrameFormat>, (w, h): (u32, u32), fps: u32) -> Option<CameraFormat> {
    let decodable = |m: &&CameraFormat| <RgbFormat as FormatDecoder>::FORMATS.contains(&m.format());
    let of = |f: FrameFormat| -> Vec<&CameraFormat> { modes.iter().filter(|m| m.format() == f).collect() };
    let pool = match format {
        Some(f) => of(f),
        None if !of(FrameFormat::MJPEG).is_empty() => of(FrameFormat::MJPEG),
        None => modes.iter().filter(decodable).collect(),
    };
    let dist = |m: &CameraFormat| {
        let (dw, dh) = (m.width() as i64 - w as i64, m.height() as i64 - h as i64);
        dw * dw + dh * dh
    };
    let size = pool.iter().min_by_key(|m| dist(m))?.resolution();
    pool.into_iter()
        .filter(|m| m.resolution() == size)
        .min_by_key(|m| (m.frame_rate() as i64 - fps as i64).abs())
        .copied()
}

impl Source for V4l {
    fn open(&mut self) -> Result<Opened> {
        let dev = self.device();
        let mut cam = open_camera(self.index)?;
        let modes = cam.compatible_camera_formats().with_context(|| format!("cannot list the modes of {dev}"))?;
        let mode = closest(&modes, self.format, (self.width, self.height), self.fps).with_context(|| {
            let offered = describe_modes(&modes).join("\n");
            match self.format {
                Some(f) => format!("{dev} does not offer {f}; it offers:\n{offered}"),
                None => format!("{dev} offers no mode framewire can use:\n{offered}"),
            }
        })?;
        cam.set_camera_requset(RequestedFormat::new::<RgbFormat>(RequestedFormatType::Exact(mode)))
            .with_context(|| format!("cannot set {dev} to {mode}"))?;
        cam.open_stream().with_context(|| format!("cannot start streaming from {dev}"))?;
        let mode = cam.camera_format();
        let how = if mode.format() == FrameFormat::MJPEG { "passed through" } else { "JPEG-encoded here" };
        let mut format = format!("{} {}x{}@{}, {how}", mode.format(), mode.width(), mode.height(), mode.frame_rate());
        if (mode.width(), mode.height(), mode.frame_rate()) != (self.width, self.height, self.fps) {
            format += &format!(" (closest to the {}x{}@{} asked for)", self.width, self.height, self.fps);
        }
        self.camera = Some(cam);
        Ok(Opened { size: (mode.width(), mode.height()), format })
    }

    fn capture(&mut self) -> Result<Image<'_>> {
        let dev = self.device();
        let cam = self.camera.as_mut().context("camera not open")?;
        let buf = cam.frame().with_context(|| format!("capture from {dev} failed"))?;
        // The driver's timestamp of the frame, where it gives one.
        let captured = buf.capture_timestamp().map_or_else(SystemTime::now, |t| UNIX_EPOCH + t);
        if buf.source_frame_format() == FrameFormat::MJPEG {
            return Ok(Image::Jpeg { jpeg: buf.buffer_bytes(), captured });
        }
        let img = buf.decode_image::<RgbFormat>().with_context(|| format!("cannot decode frame from {dev}"))?;
        self.rgb = img.into_raw();
        Ok(Image::Rgb { pixels: &self.rgb, captured })
    }

    fn discard(&mut self) -> Result<bool> {
        let dev = self.device();
        let cam = self.camera.as_mut().context("camera not open")?;
        cam.frame_raw().with_context(|| format!("capture from {dev} failed"))?;
        Ok(true)
    }

    fn close(&mut self) {
        if let Some(mut cam) = self.camera.take() {
            let _ = cam.stop_stream();
        }
    }
}

/// Video devices nokhwa can see, each with its modes, a few lines each.
pub fn list() -> Result<Vec<String>> {
    let cams = nokhwa::query(ApiBackend::Video4Linux).context("cannot list V4L2 devices")?;
    let mut out = Vec::new();
    for c in cams {
        out.push(format!("v4l:{}  {} ({})", c.index(), c.human_name(), c.description()));
        let modes = c
            .index()
            .as_index()
            .map_err(anyhow::Error::from)
            .and_then(open_camera)
            .and_then(|mut cam| Ok(cam.compatible_camera_formats()?));
        match modes {
            Ok(modes) => out.extend(describe_modes(&modes)),
            Err(e) => out.push(format!("    (cannot list its modes: {e:#})")),
        }
    }
    Ok(out)
}

/// One line per format: its sizes, largest first, each with its rates.
fn describe_modes(modes: &[CameraFormat]) -> Vec<String> {
    let mut formats: Vec<FrameFormat> = modes.iter().map(|m| m.format()).collect();
    formats.sort();
    formats.dedup();
    formats
        .into_iter()
        .map(|f| {
            let mut sizes: Vec<(u32, u32)> = modes.iter().filter(|m| m.format() == f).map(|m| (m.width(), m.height())).collect();
            sizes.sort_by_key(|&(w, h)| std::cmp::Reverse(w as u64 * h as u64));
            sizes.dedup();
            let sizes: Vec<String> = sizes
                .into_iter()
                .map(|(w, h)| {
                    let mut rates: Vec<u32> = modes
                        .iter()
                        .filter(|m| m.format() == f && (m.width(), m.height()) == (w, h))
                        .map(|m| m.frame_rate())
                        .collect();
                    rates.sort_by_key(|&r| std::cmp::Reverse(r));
                    rates.dedup();
                    let rates: Vec<String> = rates.iter().map(u32::to_string).collect();
                    format!("{w}x{h}@{}", rates.join(","))
                })
                .collect();
            format!("    {:<6} {}", f.to_string(), sizes.join("  "))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nokhwa::utils::Resolution;

    fn mode(f: FrameFormat, w: u32, h: u32, fps: u32) -> CameraFormat {
        CameraFormat::new(Resolution::new(w, h), f, fps)
    }

    #[test]
    fn picks_mjpeg_then_the_nearest_size_then_rate() {
        use FrameFormat::{MJPEG, YUYV};
        let modes = [
            mode(YUYV, 1024, 768, 30),
            mode(MJPEG, 640, 480, 30),
            mode(MJPEG, 640, 480, 15),
            mode(MJPEG, 320, 240, 30),
            mode(YUYV, 640, 480, 30),
        ];
        assert_eq!(closest(&modes, None, (1024, 768), 30), Some(mode(MJPEG, 640, 480, 30)), "MJPEG over an exact YUYV size");
        assert_eq!(closest(&modes, None, (640, 480), 10), Some(mode(MJPEG, 640, 480, 15)));
        assert_eq!(closest(&modes, None, (300, 200), 60), Some(mode(MJPEG, 320, 240, 30)));
        assert_eq!(closest(&modes, Some(YUYV), (1024, 700), 25), Some(mode(YUYV, 1024, 768, 30)));
        assert_eq!(closest(&modes, Some(FrameFormat::NV12), (640, 480), 30), None);
        let yuyv = [mode(YUYV, 640, 480, 30), mode(YUYV, 320, 240, 15)];
        assert_eq!(closest(&yuyv, None, (1024, 768), 30), Some(mode(YUYV, 640, 480, 30)));
        assert_eq!(closest(&[], None, (640, 480), 30), None);
        assert_eq!(
            describe_modes(&modes),
            ["    MJPEG  640x480@30,15  320x240@30", "    YUYV   1024x768@30  640x480@30"]
        );
    }
}
