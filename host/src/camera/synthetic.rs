//! The built-in test camera: a moving pattern with a frame counter and the
//! wall-clock time, paced at its frame rate. Runs on any machine.

use super::draw::Canvas;
use super::spec::CameraSpec;
use super::{Image, Opened, Source};
use anyhow::{Result, bail};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const BARS: [[u8; 3]; 7] = [
    [192, 192, 192],
    [192, 192, 0],
    [0, 192, 192],
    [0, 192, 0],
    [192, 0, 192],
    [192, 0, 0],
    [0, 0, 192],
];

pub struct Synthetic {
    name: String,
    canvas: Canvas,
    interval: Duration,
    next_tick: Option<Instant>,
    frame: u64,
    fail_after: Option<u64>,
    panic_after: Option<u64>,
    down: Duration,
    down_until: Option<Instant>,
}

impl Synthetic {
    pub fn new(spec: &CameraSpec) -> Self {
        Synthetic {
            name: spec.name.clone(),
            canvas: Canvas::new(spec.width, spec.height),
            interval: Duration::from_secs_f64(1.0 / spec.fps as f64),
            next_tick: None,
            frame: 0,
            fail_after: spec.fail_after,
            panic_after: spec.panic_after,
            down: Duration::from_millis(spec.down_ms),
            down_until: None,
        }
    }

    fn draw(&mut self, now: SystemTime) {
        let (w, h) = (self.canvas.width as i64, self.canvas.height as i64);
        let n = self.frame as i64;
        // Colour bars scrolling sideways.
        let bar_w = (w / BARS.len() as i64).max(1);
        let shift = (n * 4) % w;
        for x in (-w..w).step_by(bar_w as usize) {
            let i = (((x + w) / bar_w) as usize) % BARS.len();
            self.canvas.fill_rect(x + shift, 0, bar_w, h, BARS[i]);
        }
        // A square bouncing around, so motion shows even on a still frame.
        let size = (h / 6).max(4);
        let span_x = (w - size).max(1);
        let span_y = (h - size).max(1);
        let bounce = |t: i64, span: i64| {
            let p = t % (2 * span);
            if p < span { p } else { 2 * span - p }
        };
        self.canvas.fill_rect(bounce(n * 5, span_x), bounce(n * 3, span_y), size, size, [255, 255, 255]);
        // Counter and clock on a dark band.
        let scale = (self.canvas.width / 320).max(1);
        let line = 10 * scale as i64;
        self.canvas.fill_rect(0, 0, w, 2 * line + 8, [16, 16, 16]);
        let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs() % 86_400;
        let clock = format!(
            "{:02}:{:02}:{:02}.{:03} UTC",
            secs / 3600,
            (secs / 60) % 60,
            secs % 60,
            since.subsec_millis()
        );
        self.canvas.text(4, 4, scale, &format!("framewire {}", self.name), [255, 255, 255]);
        self.canvas.text(4, 4 + line, scale, &format!("#{:06} {clock}", self.frame), [255, 255, 0]);
        self.draw_time_code(since.as_millis() as u64);
    }

    /// The capture time as [`TIME_CODE_BITS`] squares along the bottom-left
    /// edge, white for 1 and black for 0, most significant first: the low 32
    /// bits of milliseconds since the Unix epoch. A page reading pixels can
    /// then tell how old the frame it shows is (the browser tests do).
    fn draw_time_code(&mut self, ms: u64) {
        let cell = time_code_cell(self.canvas.width) as i64;
        let y = self.canvas.height as i64 - cell;
        for bit in 0..TIME_CODE_BITS {
            let on = (ms >> (TIME_CODE_BITS - 1 - bit)) & 1 == 1;
            let colour = if on { [255, 255, 255] } else { [0, 0, 0] };
            self.canvas.fill_rect(bit as i64 * cell, y, cell, cell, colour);
        }
    }
}

/// Squares in the time code.
pub const TIME_CODE_BITS: u32 = 32;

/// Side of a time-code square for a frame `width` wide: a 40th of the
/// width, 4 to 16 pixels, a multiple of 4 (JPEG blocks keep it crisp).
pub fn time_code_cell(width: u32) -> u32 {
    (width / 40).clamp(4, 16) & !3
}

impl Source for Synthetic {
    fn open(&mut self) -> Result<Opened> {
        if let Some(until) = self.down_until {
            if Instant::now() < until {
                bail!("synthetic camera is down (down-ms)");
            }
            self.down_until = None;
        }
        self.next_tick = None;
        let (w, h) = (self.canvas.width, self.canvas.height);
        let fps = 1.0 / self.interval.as_secs_f64();
        Ok(Opened { size: (w, h), format: format!("test pattern {w}x{h}@{fps:.4}, JPEG-encoded here").replace(".0000", "") })
    }

    fn capture(&mut self) -> Result<Image<'_>> {
        if self.fail_after == Some(self.frame) {
            self.fail_after = None;
            self.down_until = Some(Instant::now() + self.down);
            bail!("synthetic failure after {} frames (fail-after)", self.frame);
        }
        if self.panic_after == Some(self.frame) {
            self.panic_after = None;
            self.down_until = Some(Instant::now() + self.down);
            panic!("synthetic panic after {} frames (panic-after)", self.frame);
        }
        let now = Instant::now();
        let tick = self.next_tick.unwrap_or(now);
        if tick > now {
            std::thread::sleep(tick - now);
        }
        // Never burst to catch up: a late frame moves the schedule.
        self.next_tick = Some((tick + self.interval).max(Instant::now()));
        let captured = SystemTime::now();
        self.draw(captured);
        self.frame += 1;
        Ok(Image::Rgb { pixels: &self.canvas.pixels, captured })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_differ_and_fail_on_request() {
        let spec = CameraSpec::parse("t", "test:64x48@120,fail-after=3,down-ms=50").unwrap();
        let mut cam = Synthetic::new(&spec);
        cam.open().unwrap();
        let grab = |c: &mut Synthetic| match c.capture() {
            Ok(Image::Rgb { pixels, .. }) => Ok(pixels.to_vec()),
            Ok(_) => unreachable!(),
            Err(e) => Err(e),
        };
        let a = grab(&mut cam).unwrap();
        let b = grab(&mut cam).unwrap();
        assert_eq!(a.len(), 64 * 48 * 3);
        assert_ne!(a, b, "consecutive frames differ");
        grab(&mut cam).unwrap();
        assert!(grab(&mut cam).is_err(), "fails after 3 frames");
        assert!(cam.open().is_err(), "stays down");
        std::thread::sleep(Duration::from_millis(60));
        cam.open().unwrap();
        for _ in 0..5 {
            grab(&mut cam).expect("fails once only");
        }
    }
}
