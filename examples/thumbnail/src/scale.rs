//! Downscaling by area averaging: each output pixel is the mean of the
//! source pixels it covers, so fine detail turns into grey rather than into
//! the jagged aliasing nearest-neighbour picking gives.

pub struct Rgb<'a> {
    pub width: u32,
    pub height: u32,
    pub pixels: &'a [u8],
}

pub struct Owned {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

/// `image` scaled to `width` (at most its own), the height in proportion.
pub fn down(image: &Rgb, width: u32) -> Owned {
    let width = width.clamp(1, image.width);
    let height = ((image.height as u64 * width as u64 + image.width as u64 / 2) / image.width as u64).max(1) as u32;
    let mut pixels = Vec::with_capacity((width * height * 3) as usize);
    for y in 0..height {
        let (y0, y1) = span(y, height, image.height);
        for x in 0..width {
            let (x0, x1) = span(x, width, image.width);
            let mut sum = [0u32; 3];
            for sy in y0..y1 {
                let row = &image.pixels[(sy * image.width * 3) as usize..];
                for sx in x0..x1 {
                    let p = &row[(sx * 3) as usize..(sx * 3 + 3) as usize];
                    sum[0] += p[0] as u32;
                    sum[1] += p[1] as u32;
                    sum[2] += p[2] as u32;
                }
            }
            let n = (y1 - y0) * (x1 - x0);
            pixels.extend(sum.iter().map(|s| ((s + n / 2) / n) as u8));
        }
    }
    Owned { width, height, pixels }
}

/// Source pixels `[start, end)` that output pixel `i` of `out` covers.
fn span(i: u32, out: u32, src: u32) -> (u32, u32) {
    let start = (i as u64 * src as u64 / out as u64) as u32;
    let end = (((i + 1) as u64 * src as u64).div_ceil(out as u64) as u32).max(start + 1);
    (start, end.min(src))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halving_averages_each_two_by_two_block() {
        // 4x2 image: a black 2x2 block beside a white one.
        let mut px = Vec::new();
        for _ in 0..2 {
            px.extend([0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255]);
        }
        let out = down(&Rgb { width: 4, height: 2, pixels: &px }, 2);
        assert_eq!((out.width, out.height), (2, 1));
        assert_eq!(out.pixels, vec![0, 0, 0, 255, 255, 255]);
    }

    #[test]
    fn keeps_the_aspect_ratio_and_never_upscales() {
        let px = vec![128u8; 640 * 480 * 3];
        let img = Rgb { width: 640, height: 480, pixels: &px };
        let out = down(&img, 160);
        assert_eq!((out.width, out.height), (160, 120));
        assert!(out.pixels.iter().all(|&p| p == 128));
        assert_eq!(down(&img, 5000).width, 640);
    }
}
