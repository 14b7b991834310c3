//! The test pattern: a colour gradient, a white bar sweeping across, and
//! the frame number in big blocky digits, so that a viewer sees at a glance
//! that frames move and which one is showing.

use jpeg_encoder::{ColorType, Encoder};

/// Digits 0-9 in a 3x5 font: five rows of three bits, top row first.
const DIGITS: [u16; 10] = [
    0b111_101_101_101_111,
    0b010_110_010_010_111,
    0b111_001_111_100_111,
    0b111_001_111_001_111,
    0b101_101_111_001_001,
    0b111_100_111_001_111,
    0b111_100_111_101_111,
    0b111_001_001_001_001,
    0b111_101_111_101_111,
    0b111_101_111_001_111,
];

/// Side of one font block, in pixels.
const BLOCK: usize = 8;

/// Frame `sequence` of the pattern, JPEG-encoded.
pub fn jpeg(width: u32, height: u32, sequence: u64) -> Vec<u8> {
    let (w, h) = (width as usize, height as usize);
    let mut rgb = vec![0u8; w * h * 3];
    let mut put = |x: usize, y: usize, c: [u8; 3]| {
        if x < w && y < h {
            let i = (y * w + x) * 3;
            rgb[i..i + 3].copy_from_slice(&c);
        }
    };
    for y in 0..h {
        for x in 0..w {
            put(x, y, [(x * 255 / w) as u8, (y * 255 / h) as u8, 96]);
        }
    }
    // The bar moves 8 px a frame.
    let bar = (sequence as usize * 8) % w;
    for y in 0..h {
        for x in bar..bar + 12 {
            put(x, y, [255, 255, 255]);
        }
    }
    // The frame number, black on white, top left.
    let digits = sequence.to_string();
    let (x0, y0) = (BLOCK * 2, BLOCK * 2);
    let box_w = digits.len() * 4 * BLOCK + BLOCK;
    for y in y0 - BLOCK..y0 + 6 * BLOCK {
        for x in x0 - BLOCK..x0 + box_w {
            put(x, y, [255, 255, 255]);
        }
    }
    for (i, d) in digits.bytes().enumerate() {
        let glyph = DIGITS[usize::from(d - b'0')];
        for row in 0..5 {
            for col in 0..3 {
                if glyph & (1 << (14 - row * 3 - col)) == 0 {
                    continue;
                }
                let (bx, by) = (x0 + (i * 4 + col) * BLOCK, y0 + row * BLOCK);
                for y in by..by + BLOCK {
                    for x in bx..bx + BLOCK {
                        put(x, y, [0, 0, 0]);
                    }
                }
            }
        }
    }
    let mut out = Vec::with_capacity(32 * 1024);
    Encoder::new(&mut out, 80)
        .encode(&rgb, width as u16, height as u16, ColorType::Rgb)
        .expect("encoding into memory cannot fail");
    out
}
