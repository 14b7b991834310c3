//! V4L2 webcams through nokhwa. MJPEG is requested where the camera offers
//! it and those JPEGs are passed through untouched; other formats are
//! decoded to RGB and encoded once.

use super::spec::CameraSpec;
use super::{Image, Opened, Source};
use anyhow::{Context, Result};
use nokhwa::pixel_format::RgbFormat;
use nokhwa::utils::{ApiBackend, CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType, Resolution};
use std::time::SystemTime;

pub struct V4l {
    index: u32,
    width: u32,
    height: u32,
    fps: u32,
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
            camera: None,
            rgb: Vec::new(),
        }
    }

    fn device(&self) -> String {
        format!("/dev/video{}", self.index)
    }
}

impl Source for V4l {
    fn open(&mut self) -> Result<Opened> {
        let dev = self.device();
        // nokhwa panics deep inside on some missing devices; check first for a clear error.
        std::fs::metadata(&dev).with_context(|| format!("cannot open camera {dev}"))?;
        let wanted = CameraFormat::new(Resolution::new(self.width, self.height), FrameFormat::MJPEG, self.fps);
        let requested = RequestedFormat::new::<RgbFormat>(RequestedFormatType::Closest(wanted));
        let mut cam = nokhwa::Camera::with_backend(CameraIndex::Index(self.index), requested, ApiBackend::Video4Linux)
            .with_context(|| format!("cannot open camera {dev}"))?;
        cam.open_stream().with_context(|| format!("cannot start streaming from {dev}"))?;
        let format = cam.camera_format();
        let res = format.resolution();
        let how = if format.format() == FrameFormat::MJPEG { "passed through" } else { "JPEG-encoded here" };
        self.camera = Some(cam);
        Ok(Opened {
            size: (res.width(), res.height()),
            format: format!("{} {}x{}@{}, {how}", format.format(), res.width(), res.height(), format.frame_rate()),
        })
    }

    fn capture(&mut self) -> Result<Image<'_>> {
        let dev = self.device();
        let cam = self.camera.as_mut().context("camera not open")?;
        let buf = cam.frame().with_context(|| format!("capture from {dev} failed"))?;
        let captured = SystemTime::now();
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

/// Video devices nokhwa can see, one line each.
pub fn list() -> Result<Vec<String>> {
    let cams = nokhwa::query(ApiBackend::Video4Linux).context("cannot list V4L2 devices")?;
    Ok(cams
        .iter()
        .map(|c| format!("v4l:{}  {} ({})", c.index(), c.human_name(), c.description()))
        .collect())
}
