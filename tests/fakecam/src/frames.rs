//! What the camera "sees": JPEG files from FAKECAM_FRAMES for MJPEG, a
//! synthesized moving test pattern for YUYV.

use crate::v4l2::{PIX_FMT_MJPEG, PIX_FMT_YUYV};

pub enum Source {
    /// `WxH-*.jpg` files for the current size, sorted by name, delivered in
    /// turn (looping) byte for byte. Read once at STREAMON.
    Jpeg(Vec<(String, Vec<u8>)>),
    Yuyv {
        width: usize,
        height: usize,
    },
}

impl Source {
    /// The frames for a stream in `fourcc` at `width`x`height`. MJPEG without
    /// any matching file is an error: the caller fails STREAMON with EIO
    /// rather than invent JPEGs the test did not choose.
    pub fn load(fourcc: u32, width: u32, height: u32) -> Result<Source, String> {
        if fourcc == PIX_FMT_YUYV {
            return Ok(Source::Yuyv { width: width as usize, height: height as usize });
        }
        debug_assert_eq!(fourcc, PIX_FMT_MJPEG);
        let Some(dir) = crate::config::get().frames.as_ref() else {
            return Err("FAKECAM_FRAMES is not set".into());
        };
        let prefix = format!("{width}x{height}-");
        let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.starts_with(&prefix) && n.ends_with(".jpg"))
            .collect();
        names.sort();
        let mut files = Vec::with_capacity(names.len());
        for name in names {
            let bytes = std::fs::read(dir.join(&name)).map_err(|e| format!("cannot read {name}: {e}"))?;
            files.push((name, bytes));
        }
        if files.is_empty() {
            return Err(format!("no {prefix}*.jpg in {}", dir.display()));
        }
        Ok(Source::Jpeg(files))
    }

    /// Writes frame number `delivered` (0, 1, 2... for this stream) into
    /// `dst`; returns bytesused and, for JPEGs, the file's name.
    /// `sequence` is drawn into YUYV frames; `brightness` (0..=255, 128
    /// neutral) shifts their luma.
    pub fn fill(&self, dst: &mut [u8], delivered: u64, sequence: u32, brightness: i32) -> (usize, Option<&str>) {
        match self {
            Source::Jpeg(files) => {
                let (name, bytes) = &files[(delivered % files.len() as u64) as usize];
                // A file bigger than the buffer (sizeimage) is cut, as a
                // camera's oversized frame would be.
                let n = bytes.len().min(dst.len());
                dst[..n].copy_from_slice(&bytes[..n]);
                (n, Some(name))
            }
            Source::Yuyv { width, height } => {
                yuyv_pattern(dst, *width, *height, sequence, brightness);
                (width * height * 2, None)
            }
        }
    }
}

/// Y, U, V of eight colour bars (BT.601, limited range): white, yellow,
/// cyan, green, magenta, red, blue, black.
const BARS: [[u8; 3]; 8] = [
    [235, 128, 128],
    [210, 16, 146],
    [170, 166, 16],
    [145, 54, 34],
    [106, 202, 222],
    [81, 90, 240],
    [41, 240, 110],
    [16, 128, 128],
];

/// Colour bars that move 4 pixels right per frame, so consecutive frames
/// differ; the top 8 rows hold `sequence` as 32 black/white blocks (most
/// significant bit on the left), so a test can read the frame number back.
fn yuyv_pattern(dst: &mut [u8], width: usize, height: usize, sequence: u32, brightness: i32) {
    let row_bytes = width * 2;
    if width < 2 || dst.len() < row_bytes * height {
        return;
    }
    let shift = (sequence as usize * 4) % width;
    let bar_width = (width / BARS.len()).max(1);
    let luma = |y: u8| (y as i32 + brightness - 128).clamp(16, 235) as u8;
    // Bars depend on x only: build one row, then copy it down.
    let mut bars = vec![0u8; row_bytes];
    for pair in 0..width / 2 {
        let x = pair * 2;
        let [y, u, v] = BARS[((x + width - shift) % width / bar_width).min(BARS.len() - 1)];
        bars[pair * 4..pair * 4 + 4].copy_from_slice(&[luma(y), u, luma(y), v]);
    }
    let block = (width / 32).max(2) & !1;
    let mut code = vec![0u8; row_bytes];
    for pair in 0..width / 2 {
        let bit = (pair * 2) / block;
        let on = bit < 32 && sequence >> (31 - bit) & 1 == 1;
        let y = if on { 235 } else { 16 };
        code[pair * 4..pair * 4 + 4].copy_from_slice(&[y, 128, y, 128]);
    }
    for (row, out) in dst[..row_bytes * height].chunks_exact_mut(row_bytes).enumerate() {
        out.copy_from_slice(if row < 8 { &code } else { &bars });
    }
}
