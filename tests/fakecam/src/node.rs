//! The device node in the file system: path matching, stat/access answers,
//! the synthetic `/dev` directory entry, and the sysfs `name` file v4l reads
//! to name the camera when listing.

use crate::config::{self, CARD};
use crate::device;
use libc::{DIR, c_char, c_int, dirent64};
use std::ffi::CStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// uvcvideo's character device major.
const VIDEO_MAJOR: u32 = 81;
/// The `video` group on Debian.
const VIDEO_GID: u32 = 44;

pub enum Node {
    Device,
    SysfsName,
}

/// Which fake node `path` names, if any. Matches the absolute path exactly
/// (relative paths and `..` spellings are not recognised).
pub unsafe fn classify(path: *const c_char) -> Option<Node> {
    if path.is_null() {
        return None;
    }
    let p = unsafe { CStr::from_ptr(path) }.to_bytes();
    if p.first() != Some(&b'/') {
        return None;
    }
    let c = config::get();
    if p == c.device.as_slice() {
        Some(Node::Device)
    } else if p == c.sysfs_name.as_slice() {
        Some(Node::SysfsName)
    } else {
        None
    }
}

/// open() of a fake node: the device's fd, or a memfd holding the name.
pub fn open(node: Node, flags: c_int) -> Result<c_int, c_int> {
    match node {
        Node::Device => device::open(flags),
        Node::SysfsName => {
            if !device::plugged() {
                return Err(libc::ENOENT);
            }
            let cloexec = if flags & libc::O_CLOEXEC != 0 { libc::MFD_CLOEXEC } else { 0 };
            let fd = unsafe { libc::memfd_create(c"fakecam-name".as_ptr(), cloexec) };
            if fd < 0 {
                return Err(crate::guard::errno());
            }
            let text = format!("{CARD}\n");
            unsafe {
                libc::write(fd, text.as_ptr().cast(), text.len());
                libc::lseek(fd, 0, libc::SEEK_SET);
            }
            Ok(fd)
        }
    }
}

/// What stat says about the node: a character device, crw-rw---- root:video,
/// major 81, minor = the index. Absent (ENOENT) while unplugged. The sysfs
/// name file is reported as a small regular file.
pub struct Info {
    mode: u32,
    rdev: (u32, u32),
    size: i64,
    ino: u64,
}

pub fn info(node: &Node) -> Result<Info, c_int> {
    if !device::plugged() {
        return Err(libc::ENOENT);
    }
    Ok(info_unchecked(node))
}

/// For fstat on an open fake fd: answers even after an unplug, as fstat of
/// a dead device's fd does.
pub fn info_unchecked(node: &Node) -> Info {
    let index = config::get().index;
    match node {
        Node::Device => {
            Info { mode: libc::S_IFCHR | 0o660, rdev: (VIDEO_MAJOR, index), size: 0, ino: 0xfa_ca00 + index as u64 }
        }
        Node::SysfsName => Info {
            mode: libc::S_IFREG | 0o444,
            rdev: (0, 0),
            size: CARD.len() as i64 + 1,
            ino: 0xfa_cb00 + index as u64,
        },
    }
}

macro_rules! fill_stat {
    ($buf:expr, $info:expr) => {{
        let (buf, info) = ($buf, $info);
        unsafe { std::ptr::write_bytes(buf, 0, 1) };
        let s = unsafe { &mut *buf };
        let t = config::get().loaded;
        s.st_dev = libc::makedev(0, 6);
        s.st_ino = info.ino as _;
        s.st_mode = info.mode as _;
        s.st_nlink = 1;
        s.st_uid = 0;
        s.st_gid = if info.rdev.0 != 0 { VIDEO_GID } else { 0 };
        s.st_rdev = libc::makedev(info.rdev.0, info.rdev.1);
        s.st_size = info.size as _;
        s.st_blksize = 4096;
        s.st_blocks = 0;
        s.st_atime = t.tv_sec;
        s.st_atime_nsec = t.tv_nsec;
        s.st_mtime = t.tv_sec;
        s.st_mtime_nsec = t.tv_nsec;
        s.st_ctime = t.tv_sec;
        s.st_ctime_nsec = t.tv_nsec;
    }};
}

pub unsafe fn fill_stat(buf: *mut libc::stat, info: &Info) {
    fill_stat!(buf, info)
}

pub unsafe fn fill_stat64(buf: *mut libc::stat64, info: &Info) {
    fill_stat!(buf, info)
}

pub unsafe fn fill_statx(buf: *mut libc::statx, info: &Info) {
    unsafe { std::ptr::write_bytes(buf, 0, 1) };
    let s = unsafe { &mut *buf };
    let t = config::get().loaded;
    let mut ts: libc::statx_timestamp = unsafe { std::mem::zeroed() };
    ts.tv_sec = t.tv_sec;
    ts.tv_nsec = t.tv_nsec as u32;
    s.stx_mask = libc::STATX_BASIC_STATS;
    s.stx_blksize = 4096;
    s.stx_nlink = 1;
    s.stx_uid = 0;
    s.stx_gid = if info.rdev.0 != 0 { VIDEO_GID } else { 0 };
    s.stx_mode = info.mode as u16;
    s.stx_ino = info.ino;
    s.stx_size = info.size as u64;
    s.stx_atime = ts;
    s.stx_ctime = ts;
    s.stx_mtime = ts;
    s.stx_rdev_major = info.rdev.0;
    s.stx_rdev_minor = info.rdev.1;
    s.stx_dev_major = 0;
    s.stx_dev_minor = 6;
}

// ---- the synthetic directory entry ----
//
// opendir() of the device's folder is remembered; readdir() on that stream
// passes the real entries through and, once they run out, returns one more
// made-up entry for the device (if plugged and not already listed for real).

struct DirStream {
    dir: usize,
    done: bool,
    entry: Box<dirent64>,
}

static DIRS: Mutex<Vec<DirStream>> = Mutex::new(Vec::new());
static DIR_COUNT: AtomicUsize = AtomicUsize::new(0);

fn dirs() -> std::sync::MutexGuard<'static, Vec<DirStream>> {
    DIRS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Is `path` the folder holding the device (trailing slashes ignored)?
pub unsafe fn is_device_dir(path: *const c_char) -> bool {
    if path.is_null() {
        return false;
    }
    let mut p = unsafe { CStr::from_ptr(path) }.to_bytes();
    while p.len() > 1 && p.ends_with(b"/") {
        p = &p[..p.len() - 1];
    }
    p == config::get().dir.as_slice()
}

pub fn watch_dir(dir: *mut DIR) {
    dirs().push(DirStream { dir: dir as usize, done: false, entry: Box::new(unsafe { std::mem::zeroed() }) });
    DIR_COUNT.fetch_add(1, Ordering::AcqRel);
}

pub fn unwatch_dir(dir: *mut DIR) {
    if DIR_COUNT.load(Ordering::Acquire) == 0 {
        return;
    }
    let mut d = dirs();
    if let Some(i) = d.iter().position(|s| s.dir == dir as usize) {
        d.swap_remove(i);
        DIR_COUNT.fetch_sub(1, Ordering::AcqRel);
    }
}

pub fn rewind_dir(dir: *mut DIR) {
    if DIR_COUNT.load(Ordering::Acquire) == 0 {
        return;
    }
    if let Some(s) = dirs().iter_mut().find(|s| s.dir == dir as usize) {
        s.done = false;
    }
}

pub fn watching_any() -> bool {
    DIR_COUNT.load(Ordering::Acquire) != 0
}

pub fn watching(dir: *mut DIR) -> bool {
    dirs().iter().any(|s| s.dir == dir as usize)
}

/// After the real readdir: `real` is its result. Returns what the caller
/// should get. The synthetic entry lives in the stream's record until the
/// next readdir/closedir, like libc's own buffer.
pub unsafe fn after_readdir(dir: *mut DIR, real: *mut dirent64) -> *mut dirent64 {
    let name = &config::get().name;
    if !real.is_null() {
        // The node really exists: do not list it twice.
        let real_name = unsafe { CStr::from_ptr((*real).d_name.as_ptr()) }.to_bytes();
        if real_name == name.as_slice()
            && let Some(s) = dirs().iter_mut().find(|s| s.dir == dir as usize)
        {
            s.done = true;
        }
        return real;
    }
    let plugged = device::plugged();
    let mut d = dirs();
    let Some(s) = d.iter_mut().find(|s| s.dir == dir as usize) else {
        return real;
    };
    if s.done || !plugged {
        s.done = true;
        return real;
    }
    s.done = true;
    let e = &mut *s.entry;
    *e = unsafe { std::mem::zeroed() };
    e.d_ino = info_unchecked(&Node::Device).ino;
    e.d_off = i64::MAX;
    e.d_reclen = std::mem::size_of::<dirent64>() as u16;
    e.d_type = libc::DT_CHR;
    for (dst, &src) in e.d_name.iter_mut().zip(name.iter().take(255)) {
        *dst = src as c_char;
    }
    e as *mut dirent64
}
