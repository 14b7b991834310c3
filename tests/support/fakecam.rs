//! The fake UVC camera for webcam tests: `tests/fakecam`, a library that,
//! preloaded, makes `/dev/video42` answer V4L2 calls. A preload takes
//! effect only when a process starts, so [`run`] runs a test's body in a
//! child process of the test binary with the library loaded, and framewire
//! in that child captures from the fake device through nokhwa as from a
//! real one.

use anyhow::{Context, Result};
use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The built library (see `tests/build.rs`).
pub const LIBRARY: &str = env!("FRAMEWIRE_FAKECAM_SO");
/// The device it fakes; `v4l:42` in a camera spec.
pub const DEVICE: &str = "/dev/video42";

/// Set in the child: the test body runs there.
const CHILD: &str = "FRAMEWIRE_FAKECAM_CHILD";
/// Longest a child may take.
const CHILD_LIMIT: Duration = Duration::from_secs(120);

/// A frame file the device sends, by what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A whole JPEG with Huffman tables.
    Whole,
    /// A whole JPEG without DHT segments, as many UVC cameras send.
    NoTables,
    /// Cut short: no EOI.
    Truncated,
    /// Three bytes.
    Tiny,
}

/// The fake camera as the test body sees it.
pub struct FakeCam {
    pub frames: PathBuf,
    control: PathBuf,
}

impl FakeCam {
    /// Make the device vanish, as when its USB cable is pulled.
    pub fn unplug(&self) {
        std::fs::write(self.control.join("unplugged"), b"").unwrap();
    }

    /// Bring it back.
    pub fn replug(&self) {
        std::fs::remove_file(self.control.join("unplugged")).unwrap();
    }

    /// What framewire may serve for each frame file of a size: the file's
    /// bytes, with the standard Huffman tables inserted where it had none.
    pub fn servable(&self, size: &str) -> HashMap<Vec<u8>, Kind> {
        self.files(size)
            .into_iter()
            .filter_map(|(kind, bytes)| match kind {
                Kind::Whole => Some((bytes, kind)),
                Kind::NoTables => Some((framewire_core::jpeg::with_huffman_tables(&bytes).unwrap(), kind)),
                _ => None,
            })
            .collect()
    }

    /// The frame files for `size` (`640x480`), in the order the device sends them.
    pub fn files(&self, size: &str) -> Vec<(Kind, Vec<u8>)> {
        let mut names: Vec<_> = std::fs::read_dir(&self.frames)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with(&format!("{size}-")))
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|n| {
                let kind = match n.rsplit('-').next().unwrap() {
                    "whole.jpg" => Kind::Whole,
                    "notables.jpg" => Kind::NoTables,
                    "truncated.jpg" => Kind::Truncated,
                    _ => Kind::Tiny,
                };
                (kind, std::fs::read(self.frames.join(&n)).unwrap())
            })
            .collect()
    }
}

/// Run `body` with the fake camera. In the test process this re-runs the
/// test `name` (its full path, e.g. `mjpeg_passthrough`) in a child with
/// the library preloaded and `env` set, and fails if the child fails; in
/// the child it runs `body` on a tokio runtime.
pub fn run<F, Fut>(name: &str, env: &[(&str, &str)], body: F)
where
    F: FnOnce(FakeCam) -> Fut,
    Fut: Future<Output = ()>,
{
    if std::env::var_os(CHILD).is_some() {
        let cam = FakeCam {
            frames: std::env::var_os("FAKECAM_FRAMES").unwrap().into(),
            control: std::env::var_os("FAKECAM_CONTROL").unwrap().into(),
        };
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        return rt.block_on(body(cam));
    }
    let frames = tempfile::tempdir().unwrap();
    let control = tempfile::tempdir().unwrap();
    write_frames(frames.path()).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap());
    child
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env("LD_PRELOAD", LIBRARY)
        .env("FAKECAM_DEVICE", DEVICE)
        .env("FAKECAM_FRAMES", frames.path())
        .env("FAKECAM_CONTROL", control.path());
    for (k, v) in env {
        child.env(k, v);
    }
    let out = run_with_limit(child, CHILD_LIMIT).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("--- child with the fake camera ---\n{stdout}{stderr}");
    assert!(out.status.success(), "the test failed with the fake camera (see its output above)");
    assert!(stdout.contains("1 passed"), "the child ran no test named {name}");
}

fn run_with_limit(mut cmd: Command, limit: Duration) -> Result<std::process::Output> {
    use std::process::Stdio;
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().context("cannot start the child")?;
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => Ok(out?),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            anyhow::bail!("the child did not finish within {limit:?}")
        }
    }
}

/// The device's frames: at 640x480 four whole JPEGs (two without Huffman
/// tables), one cut short and one of three bytes; at 320x240 two whole.
fn write_frames(dir: &Path) -> Result<()> {
    let plan: [(&str, u32, u32, Kind); 8] = [
        ("640x480-0", 640, 480, Kind::Whole),
        ("640x480-1", 640, 480, Kind::NoTables),
        ("640x480-2", 640, 480, Kind::Truncated),
        ("640x480-3", 640, 480, Kind::Whole),
        ("640x480-4", 640, 480, Kind::Tiny),
        ("640x480-5", 640, 480, Kind::NoTables),
        ("320x240-0", 320, 240, Kind::Whole),
        ("320x240-1", 320, 240, Kind::Whole),
    ];
    for (i, (stem, w, h, kind)) in plan.into_iter().enumerate() {
        let jpeg = picture(i as u8, w, h)?;
        let bytes = match kind {
            Kind::Whole => jpeg,
            Kind::NoTables => without_huffman_tables(&jpeg),
            Kind::Truncated => jpeg[..jpeg.len() - 400].to_vec(),
            Kind::Tiny => vec![0xFF, 0xD8, 0xFF],
        };
        let suffix = format!("{kind:?}").to_lowercase();
        std::fs::write(dir.join(format!("{stem}-{suffix}.jpg")), bytes)?;
    }
    Ok(())
}

/// A picture unlike the others: a gradient tinted by `n`.
fn picture(n: u8, w: u32, h: u32) -> Result<Vec<u8>> {
    let mut rgb = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            rgb.extend_from_slice(&[(x * 255 / w) as u8, (y * 255 / h) as u8, n.wrapping_mul(37)]);
        }
    }
    let calls = std::sync::atomic::AtomicU64::new(0);
    Ok(framewire::encode::rgb_to_jpeg(&rgb, w, h, 80, &calls)?.to_vec())
}

/// `jpeg` with its DHT segments taken out (segments walked by length up
/// to the first SOS).
fn without_huffman_tables(jpeg: &[u8]) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    let mut pos = 2;
    while jpeg[pos + 1] != 0xDA {
        let len = u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]) as usize;
        if jpeg[pos + 1] != 0xC4 {
            out.extend_from_slice(&jpeg[pos..pos + 2 + len]);
        }
        pos += 2 + len;
    }
    out.extend_from_slice(&jpeg[pos..]);
    out
}
