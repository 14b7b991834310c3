//! A tiny RGB canvas with an 8x8 bitmap font, for the test pattern and the
//! "no signal" card.

use font8x8::UnicodeFonts;

pub type Rgb = [u8; 3];

pub struct Canvas {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

impl Canvas {
    pub fn new(width: u32, height: u32) -> Self {
        Canvas { width, height, pixels: vec![0; (width * height * 3) as usize] }
    }

    pub fn fill_rect(&mut self, x: i64, y: i64, w: i64, h: i64, c: Rgb) {
        let (cw, ch) = (self.width as i64, self.height as i64);
        let (x0, y0) = (x.clamp(0, cw) as u32, y.clamp(0, ch) as u32);
        let x1 = (x + w).clamp(0, cw) as u32;
        let y1 = (y + h).clamp(0, ch) as u32;
        if x1 <= x0 {
            return;
        }
        for row in y0..y1 {
            let start = ((row * self.width + x0) * 3) as usize;
            let end = ((row * self.width + x1) * 3) as usize;
            for px in self.pixels[start..end].chunks_exact_mut(3) {
                px.copy_from_slice(&c);
            }
        }
    }

    /// Draw `text` with its top-left corner at (x, y), each font pixel a
    /// `scale`-sized square.
    pub fn text(&mut self, x: i64, y: i64, scale: u32, text: &str, c: Rgb) {
        let s = scale as i64;
        for (i, ch) in text.chars().enumerate() {
            let glyph = font8x8::BASIC_FONTS.get(ch).unwrap_or([0; 8]);
            let gx = x + i as i64 * 8 * s;
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits & (1 << col) != 0 {
                        self.fill_rect(gx + col * s, y + row as i64 * s, s, s, c);
                    }
                }
            }
        }
    }

    /// Width in pixels of `text` at `scale`.
    pub fn text_width(text: &str, scale: u32) -> i64 {
        text.chars().count() as i64 * 8 * scale as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_clipped() {
        let mut c = Canvas::new(10, 10);
        c.fill_rect(-5, -5, 8, 8, [255, 0, 0]);
        c.fill_rect(10, 0, 4, 4, [1, 1, 1]);
        c.fill_rect(8, 9, 40, 40, [2, 2, 2]);
        assert_eq!(&c.pixels[c.pixels.len() - 3..], &[2, 2, 2]);
        assert_eq!(&c.pixels[0..3], &[255, 0, 0]);
        assert_eq!(&c.pixels[(2 * 10 + 3) as usize * 3..][..3], &[0, 0, 0]);
        c.text(0, 0, 1, "#", [0, 255, 0]);
        assert!(c.pixels.chunks(3).any(|p| p == [0, 255, 0]));
    }
}
