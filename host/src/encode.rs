//! JPEG encoding: the one place a raw frame becomes the bytes clients get.

use anyhow::{Context, Result};
use bytes::Bytes;
use jpeg_encoder::{ColorType, Encoder};
use std::sync::atomic::{AtomicU64, Ordering};

/// Default JPEG quality; a good trade of size and clarity for live video.
pub const QUALITY: u8 = 80;

/// Encode packed RGB8 pixels as a baseline 4:2:0 JPEG, counting the call
/// in `calls` (a camera's `frames_encoded`: what proves a frame is encoded
/// once, not once per viewer).
pub fn rgb_to_jpeg(rgb: &[u8], width: u32, height: u32, quality: u8, calls: &AtomicU64) -> Result<Bytes> {
    calls.fetch_add(1, Ordering::Relaxed);
    let w = u16::try_from(width).context("frame too wide for JPEG")?;
    let h = u16::try_from(height).context("frame too tall for JPEG")?;
    anyhow::ensure!(rgb.len() == width as usize * height as usize * 3, "RGB buffer size does not match {width}x{height}");
    let mut out = Vec::with_capacity(rgb.len() / 8);
    Encoder::new(&mut out, quality)
        .encode(rgb, w, h, ColorType::Rgb)
        .context("JPEG encoding failed")?;
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    #[test]
    fn encodes_a_jpeg() {
        let rgb = vec![128u8; 16 * 8 * 3];
        let calls = std::sync::atomic::AtomicU64::new(0);
        let j = super::rgb_to_jpeg(&rgb, 16, 8, 80, &calls).unwrap();
        assert_eq!(&j[..2], &[0xff, 0xd8]);
        assert_eq!(&j[j.len() - 2..], &[0xff, 0xd9]);
        assert!(super::rgb_to_jpeg(&rgb, 16, 9, 80, &calls).is_err());
        assert_eq!(calls.into_inner(), 2);
    }
}
