//! H.264 for recordings: access units from Annex B (what cameras and
//! OpenH264 give) to MP4's length-prefixed form, and the encoder that turns
//! a camera's JPEGs into H.264 when the camera has no H.264 of its own.

use anyhow::{Context, Result, anyhow, ensure};
use openh264::encoder::{BitRate, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, RateControlMode, UsageType};
use openh264::formats::{RgbSliceU8, YUVBuffer, YUVSource};

const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;
const NAL_AUD: u8 = 9;

/// The NAL units of an Annex B byte stream, start codes removed.
pub fn nal_units(annexb: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = annexb;
    std::iter::from_fn(move || {
        // Skip to just after the next start code (00 00 01).
        let start = rest.windows(3).position(|w| w == [0, 0, 1])? + 3;
        rest = &rest[start..];
        let end = rest.windows(3).position(|w| w == [0, 0, 1]).unwrap_or(rest.len());
        let mut nal = &rest[..end];
        rest = &rest[end..];
        // A four-byte start code leaves its leading zero on this unit.
        while let [head @ .., 0] = nal {
            nal = head;
        }
        Some(nal)
    })
    .filter(|n| !n.is_empty())
}

/// One access unit ready for MP4.
#[derive(Debug, Default)]
pub struct AccessUnit {
    /// Its NAL units, each after a 4-byte big-endian length (AUDs left out).
    pub data: Vec<u8>,
    /// Holds an IDR picture.
    pub key: bool,
    pub sps: Option<Vec<u8>>,
    pub pps: Option<Vec<u8>>,
}

impl AccessUnit {
    pub fn from_annexb(annexb: &[u8]) -> AccessUnit {
        let mut au = AccessUnit { data: Vec::with_capacity(annexb.len() + 16), ..Default::default() };
        for nal in nal_units(annexb) {
            match nal[0] & 0x1f {
                NAL_AUD => continue,
                NAL_SPS => au.sps = Some(nal.to_vec()),
                NAL_PPS => au.pps = Some(nal.to_vec()),
                NAL_IDR => au.key = true,
                _ => {}
            }
            au.data.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            au.data.extend_from_slice(nal);
        }
        au
    }
}

/// Whether an H.265 access unit (length-prefixed) starts a picture a
/// player can begin at: an IRAP (BLA, IDR or CRA). Cameras' encoders often
/// send CRA rather than IDR after the first picture, which a sync sample
/// may be.
pub fn h265_random_access(length_prefixed: &[u8]) -> bool {
    let mut rest = length_prefixed;
    while rest.len() > 4 {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let Some(nal) = rest.get(4..4 + len) else { break };
        if nal.first().is_some_and(|h| (16..=21).contains(&((h >> 1) & 0x3f))) {
            return true;
        }
        rest = &rest[4 + len..];
    }
    false
}

/// JPEG frames in, H.264 access units out (OpenH264, Constrained Baseline:
/// no B-frames, so decode order is presentation order), a keyframe each
/// second so a player seeks to within a second.
pub struct JpegToH264 {
    fps: f32,
    encoder: Option<(Encoder, (usize, usize))>,
    yuv: Option<YUVBuffer>,
}

impl JpegToH264 {
    pub fn new(fps: f32) -> JpegToH264 {
        JpegToH264 { fps, encoder: None, yuv: None }
    }

    /// Encode one JPEG; `key` asks for an IDR picture (a segment starts).
    /// Returns the size and the access unit, or None if the encoder skipped
    /// the frame.
    pub fn encode(&mut self, jpeg: &[u8], key: bool) -> Result<Option<((u32, u32), AccessUnit)>> {
        let mut decoder = zune_jpeg::JpegDecoder::new(jpeg);
        let rgb = decoder.decode().map_err(|e| anyhow!("JPEG: {e:?}"))?;
        let (w, h) = decoder.dimensions().context("JPEG without a size")?;
        ensure!(rgb.len() == w * h * 3, "JPEG is not RGB");
        // 4:2:0 needs even sizes: an odd last row or column is left out.
        let (ew, eh) = (w & !1, h & !1);
        ensure!(ew >= 16 && eh >= 16, "frame {w}x{h} too small to record");
        let rgb = if (ew, eh) == (w, h) { rgb } else { rgb.chunks(w * 3).take(eh).flat_map(|row| &row[..ew * 3]).copied().collect() };
        if self.encoder.as_ref().is_none_or(|(_, size)| *size != (ew, eh)) {
            // Around 0.1 bit a pixel: 640x480 at 30 fps is ~0.9 Mbit/s.
            let bps = (ew * eh) as f32 * self.fps * 0.1;
            let config = EncoderConfig::new()
                .bitrate(BitRate::from_bps(bps as u32))
                .max_frame_rate(FrameRate::from_hz(self.fps))
                .usage_type(UsageType::CameraVideoRealTime)
                .rate_control_mode(RateControlMode::Bufferbased)
                .skip_frames(false)
                .intra_frame_period(IntraFramePeriod::from_num_frames(self.fps.ceil() as u32));
            let encoder = Encoder::with_api_config(openh264::OpenH264API::from_source(), config)
                .map_err(|e| anyhow!("cannot start the H.264 encoder: {e}"))?;
            self.encoder = Some((encoder, (ew, eh)));
        }
        let (encoder, _) = self.encoder.as_mut().expect("made above");
        let yuv = self.yuv.get_or_insert_with(|| YUVBuffer::new(ew, eh));
        if yuv.dimensions() != (ew, eh) {
            *yuv = YUVBuffer::new(ew, eh);
        }
        yuv.read_rgb8(RgbSliceU8::new(&rgb, (ew, eh)));
        if key {
            encoder.force_intra_frame();
        }
        let stream = encoder.encode(&*yuv).map_err(|e| anyhow!("H.264 encoding: {e}"))?;
        if matches!(stream.frame_type(), FrameType::Skip | FrameType::Invalid) {
            return Ok(None);
        }
        let au = AccessUnit::from_annexb(&stream.to_vec());
        Ok((!au.data.is_empty()).then_some(((ew as u32, eh as u32), au)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_annexb_with_both_start_codes() {
        let s = [0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x09, 0xf0, 0, 0, 1, 0x65, 9, 9, 0];
        let units: Vec<&[u8]> = nal_units(&s).collect();
        assert_eq!(units, [&[0x67, 1, 2][..], &[0x68, 3], &[0x09, 0xf0], &[0x65, 9, 9]]);
        let au = AccessUnit::from_annexb(&s);
        assert!(au.key);
        assert_eq!(au.sps.as_deref(), Some(&[0x67, 1, 2][..]));
        assert_eq!(au.pps.as_deref(), Some(&[0x68, 3][..]));
        assert_eq!(au.data, [0, 0, 0, 3, 0x67, 1, 2, 0, 0, 0, 2, 0x68, 3, 0, 0, 0, 3, 0x65, 9, 9]);
    }

    #[test]
    fn h265_random_access_points_are_bla_idr_or_cra() {
        let au = |types: &[u8]| -> Vec<u8> { types.iter().flat_map(|t| [0, 0, 0, 2, t << 1, 1]).collect() };
        assert!(h265_random_access(&au(&[32, 33, 34, 19])), "IDR");
        assert!(h265_random_access(&au(&[21])), "CRA");
        assert!(!h265_random_access(&au(&[1])), "trailing picture");
        assert!(!h265_random_access(&[0, 0, 0, 9, 42]), "cut short");
    }

    #[test]
    fn encodes_jpegs_with_keyframes_when_asked() {
        let calls = std::sync::atomic::AtomicU64::new(0);
        let rgb: Vec<u8> = (0..64 * 48 * 3).map(|i| (i % 251) as u8).collect();
        let jpeg = crate::encode::rgb_to_jpeg(&rgb, 64, 48, 80, &calls).unwrap();
        let mut e = JpegToH264::new(10.0);
        let ((w, h), first) = e.encode(&jpeg, true).unwrap().unwrap();
        assert_eq!((w, h), (64, 48));
        assert!(first.key && first.sps.is_some() && first.pps.is_some());
        let (_, second) = e.encode(&jpeg, false).unwrap().unwrap();
        assert!(!second.key);
        let (_, third) = e.encode(&jpeg, true).unwrap().unwrap();
        assert!(third.key);
        assert!(e.encode(b"not a jpeg", false).is_err());
    }
}
