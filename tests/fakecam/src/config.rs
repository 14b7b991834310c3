//! Settings from the environment, read once (at load time from the
//! library's constructor, or on first use if something calls in earlier).
//!
//! Reading them does no file I/O and takes no lock of ours, so it is safe
//! from inside any override (an `open()` may be the first call we see).

use std::ffi::{CStr, CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::OnceLock;

pub struct Config {
    /// The faked node, e.g. `/dev/video42` (bytes, no NUL).
    pub device: Vec<u8>,
    /// Its directory (`/dev`) and file name (`video42`).
    pub dir: Vec<u8>,
    pub name: Vec<u8>,
    /// The number in the name: nokhwa/v4l open index N as `/dev/videoN`.
    pub index: u32,
    /// `/sys/class/video4linux/videoN/name`, which v4l reads for the
    /// camera's name when listing devices.
    pub sysfs_name: Vec<u8>,
    /// FAKECAM_FRAMES: folder of `WxH-*.jpg` files for MJPEG.
    pub frames: Option<PathBuf>,
    /// FAKECAM_CONTROL/unplugged: while it exists the device is gone.
    pub unplugged: Option<CString>,
    /// FAKECAM_TS_OFFSET_MS in nanoseconds, subtracted from timestamps.
    pub ts_offset_ns: i64,
    /// FAKECAM_LOG: file to append one line per event to.
    pub log: Option<PathBuf>,
    /// Wall-clock time the library loaded: the node's stat times.
    pub loaded: libc::timespec,
}

pub const DEFAULT_DEVICE: &str = "/dev/video42";
pub const CARD: &str = "framewire fake camera";

static CONFIG: OnceLock<Config> = OnceLock::new();

pub fn get() -> &'static Config {
    CONFIG.get_or_init(Config::from_env)
}

/// getenv straight from libc: std::env takes std's environment lock, which
/// we must not depend on from inside an override.
fn env(name: &CStr) -> Option<&'static [u8]> {
    let p = unsafe { libc::getenv(name.as_ptr()) };
    if p.is_null() {
        return None;
    }
    let v = unsafe { CStr::from_ptr(p) }.to_bytes();
    (!v.is_empty()).then_some(v)
}

fn path(v: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(v))
}

impl Config {
    fn from_env() -> Config {
        let device = env(c"FAKECAM_DEVICE").unwrap_or(DEFAULT_DEVICE.as_bytes()).to_vec();
        let slash = device.iter().rposition(|&b| b == b'/');
        let (dir, name) = match slash {
            Some(0) => (b"/".to_vec(), device[1..].to_vec()),
            Some(i) => (device[..i].to_vec(), device[i + 1..].to_vec()),
            None => (b".".to_vec(), device.clone()),
        };
        // Like v4l's Node::index: all the digits of the file name.
        let digits: String = name.iter().filter(|b| b.is_ascii_digit()).map(|&b| b as char).collect();
        let index = digits.parse().unwrap_or(0);
        let sysfs_name = format!("/sys/class/video4linux/video{index}/name").into_bytes();
        let unplugged = env(c"FAKECAM_CONTROL").map(|d| {
            let mut p = d.to_vec();
            p.extend_from_slice(b"/unplugged");
            CString::new(p).expect("no NUL inside a C string")
        });
        let ts_offset_ms: i64 =
            env(c"FAKECAM_TS_OFFSET_MS").and_then(|v| std::str::from_utf8(v).ok()?.trim().parse().ok()).unwrap_or(0);
        let mut loaded = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut loaded) };
        Config {
            device,
            dir,
            name,
            index,
            sysfs_name,
            frames: env(c"FAKECAM_FRAMES").map(path),
            unplugged,
            ts_offset_ns: ts_offset_ms.saturating_mul(1_000_000),
            log: env(c"FAKECAM_LOG").map(path),
            loaded,
        }
    }
}
