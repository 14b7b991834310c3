//! framewire-fakecam: a fake UVC webcam in user space.
//!
//! Loaded with `LD_PRELOAD`, this library overrides a few libc functions so
//! that one device path (default `/dev/video42`) behaves like a V4L2 capture
//! device, well enough for nokhwa 0.10.11 / v4l 0.14.0 to list it, open it,
//! negotiate a format and stream MMAP buffers from it. Everything that is not
//! the fake device goes to the real libc function (`dlsym(RTLD_NEXT)`).
//! No kernel module, no root.
//!
//! # Environment (read once, when the library loads)
//!
//! - `FAKECAM_DEVICE`: the path to fake (default `/dev/video42`); the digits
//!   of its name are the V4L2 index, so nokhwa's index 42 opens it.
//! - `FAKECAM_FRAMES`: folder of `WIDTHxHEIGHT-*.jpg` files. In MJPEG the
//!   camera delivers the files for the current size in sorted name order,
//!   looping, byte for byte (`bytesused` = file length; the rest of the
//!   buffer is zero). Files are read at STREAMON. Unset, or no file for the
//!   size: STREAMON fails with EIO (nothing is generated).
//! - `FAKECAM_CONTROL`: folder; while it contains a file `unplugged`, the
//!   device is gone: open/stat/access fail with ENOENT, it is missing from
//!   `/dev` listings, every ioctl/mmap on an fd opened before fails with
//!   ENODEV (for good, even after the file is removed), poll reports
//!   POLLERR|POLLHUP within ~10 ms. Removing the file "replugs" a camera
//!   with default settings; new opens work.
//! - `FAKECAM_TS_OFFSET_MS` (default 0): buffer timestamps are
//!   CLOCK_MONOTONIC at the frame's capture tick minus this, with flags
//!   TIMESTAMP_MONOTONIC | TSTAMP_SRC_SOE.
//! - `FAKECAM_LOG`: file to append one line per event to (open, s_fmt,
//!   s_parm, reqbufs, streamon, streamoff, frame seq/bytesused/file, unplug).
//!
//! # The camera
//!
//! MJPG (compressed) and YUYV, each 640x480 and 320x240, each at 30 and
//! 15 fps (discrete). Default MJPG 640x480 at 30 fps. Two integer controls,
//! brightness and contrast (0..255, default 128); brightness shifts the YUYV
//! pattern's luma. One input, "Camera 1". YUYV frames are colour bars moving
//! 4 px per frame with the sequence number as 32 black/white blocks in the
//! top 8 rows. Frames are paced by the wall clock from STREAMON (see
//! `device`), never burst.
//!
//! # Overridden functions
//!
//! open, open64, __open_2, __open64_2, openat, openat64, __openat_2,
//! __openat64_2, close, ioctl, syscall (SYS_ioctl only: v4l issues its
//! ioctls that way), mmap, mmap64, poll, __poll_chk, stat, stat64, lstat,
//! lstat64, fstat, fstat64, fstatat, fstatat64, statx, access, faccessat,
//! opendir, readdir, readdir64, rewinddir, closedir.
//!
//! # Limits
//!
//! - Paths match exactly and only when absolute: no relative spellings, no
//!   `..`, no symlinks to the node; `realpath`/`canonicalize` do not see it.
//! - Only the functions above are faked. Calls made inside glibc (e.g.
//!   `fopen`, `realpath`), raw `syscall(SYS_openat/SYS_statx, ...)`,
//!   getdents64, io_uring, and the legacy `__xstat*` entry points of
//!   binaries built against glibc < 2.33 bypass the fake node. xattr calls
//!   fail (GNU `ls -l` prints an ACL error but lists the node).
//! - Readiness is faked for poll()/__poll_chk only. select, ppoll and epoll
//!   on the fake fd see an eventfd that never becomes ready; read()/write()
//!   on it hit the eventfd (V4L2 read I/O is not offered: a blocking read
//!   would hang). poll() with fake and real fds together works: real ones are
//!   polled with ppoll in slices of at most 10 ms (ns precision).
//! - A dup() of the fake fd is a plain eventfd, not the camera. At most 64
//!   fake fds open at once (EMFILE beyond).
//! - An unplug is noticed when some call looks (every open/stat/access/
//!   readdir/ioctl/mmap/poll of the device, and every <= 10 ms in a blocked
//!   poll or DQBUF): an `unplugged` file created and removed between two
//!   looks goes unnoticed and old fds keep working.
//! - MJPEG frames are read at STREAMON (changes apply from the next one); a
//!   file larger than sizeimage (w*h*2) is cut to it.
//! - One device; MMAP streaming only (no USERPTR/DMABUF, multi-planar,
//!   events, crop/selection); format and controls are device-wide and
//!   persist across opens until a replug resets them, as on a real camera.
//! - Settings are read once; only the control file is looked at later.
//!   LD_PRELOAD is inherited by child processes (harmless: they see the same
//!   fake node); static and setuid binaries ignore it.
//!
//! # ABI note
//!
//! C's `open`, `openat`, `ioctl` and `syscall` are variadic, which stable
//! Rust cannot define. They are defined here with fixed extra parameters
//! (open's mode, ioctl's argument, syscall's six arguments). On x86_64 and
//! aarch64 Linux variadic arguments travel in the same registers/stack slots
//! as fixed ones, so this is ABI-compatible; arguments a caller did not pass
//! are read as garbage and only forwarded, never used. Forwarding to libc
//! uses properly variadic calls (see `real`).

#![allow(clippy::missing_safety_doc)]

#[cfg(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))]
compile_error!("framewire-fakecam supports Linux on x86_64 and aarch64 only (struct layouts, variadic ABI)");

mod config;
mod device;
mod frames;
mod guard;
mod log;
mod node;
mod real;
mod v4l2;

use guard::Guard;
use libc::{DIR, c_char, c_int, c_long, c_uint, c_ulong, c_void, dirent64, nfds_t, off_t, pollfd, size_t};
use node::Node;

/// Runs when the library loads: read the settings now, outside any
/// override, so later overrides never allocate to initialise them.
extern "C" fn init() {
    let _g = Guard::enter();
    config::get();
}

#[used]
#[unsafe(link_section = ".init_array")]
static INIT: extern "C" fn() = init;

// ---- open ----

/// The fake answer for an open of `path`, or None to forward. Only
/// absolute paths match, so openat's dirfd does not matter.
unsafe fn fake_open(path: *const c_char, flags: c_int) -> Option<c_int> {
    if guard::inside() {
        return None;
    }
    let mut g = Guard::enter();
    let node = unsafe { node::classify(path) }?;
    Some(match node::open(node, flags) {
        Ok(fd) => fd,
        Err(e) => g.fail(e, -1),
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn open(path: *const c_char, flags: c_int, mode: c_uint) -> c_int {
    unsafe { fake_open(path, flags).unwrap_or_else(|| real::open(path, flags, mode)) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn open64(path: *const c_char, flags: c_int, mode: c_uint) -> c_int {
    unsafe { fake_open(path, flags).unwrap_or_else(|| real::open64(path, flags, mode)) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn __open_2(path: *const c_char, flags: c_int) -> c_int {
    unsafe { fake_open(path, flags).unwrap_or_else(|| real::__open_2(path, flags)) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn __open64_2(path: *const c_char, flags: c_int) -> c_int {
    unsafe { fake_open(path, flags).unwrap_or_else(|| real::__open64_2(path, flags)) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn openat(dirfd: c_int, path: *const c_char, flags: c_int, mode: c_uint) -> c_int {
    unsafe { fake_open(path, flags).unwrap_or_else(|| real::openat(dirfd, path, flags, mode)) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn openat64(dirfd: c_int, path: *const c_char, flags: c_int, mode: c_uint) -> c_int {
    unsafe { fake_open(path, flags).unwrap_or_else(|| real::openat64(dirfd, path, flags, mode)) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn __openat_2(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
    unsafe { fake_open(path, flags).unwrap_or_else(|| real::__openat_2(dirfd, path, flags)) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn __openat64_2(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
    unsafe { fake_open(path, flags).unwrap_or_else(|| real::__openat64_2(dirfd, path, flags)) }
}

// ---- close, ioctl, syscall, mmap ----

#[unsafe(no_mangle)]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    if device::is_fake_fd(fd) {
        // Forget it before the number can be reused by another open.
        let _g = Guard::enter();
        device::close(fd);
    }
    unsafe { real::close(fd) }
}

unsafe fn fake_ioctl(fd: c_int, request: c_ulong, arg: *mut c_void) -> c_int {
    let mut g = Guard::enter();
    match unsafe { device::ioctl(fd, request, arg) } {
        Ok(()) => 0,
        Err(e) => g.fail(e, -1),
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn ioctl(fd: c_int, request: c_ulong, arg: *mut c_void) -> c_int {
    if device::is_fake_fd(fd) {
        return unsafe { fake_ioctl(fd, request, arg) };
    }
    unsafe { real::ioctl(fd, request, arg) }
}

/// Every syscall() in the process passes here (Rust std's futex calls, for
/// one), so the check is one compare and an atomic load.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn syscall(
    number: c_long,
    a1: c_long,
    a2: c_long,
    a3: c_long,
    a4: c_long,
    a5: c_long,
    a6: c_long,
) -> c_long {
    if number == libc::SYS_ioctl && device::is_fake_fd(a1 as c_int) {
        return unsafe { fake_ioctl(a1 as c_int, a2 as c_ulong, a3 as *mut c_void) } as c_long;
    }
    unsafe { real::syscall(number, a1, a2, a3, a4, a5, a6) }
}

unsafe fn fake_mmap(addr: *mut c_void, len: size_t, prot: c_int, flags: c_int, fd: c_int, off: off_t) -> *mut c_void {
    let mut g = Guard::enter();
    match unsafe { device::mmap(addr, len, prot, flags, fd, off) } {
        Ok(p) => p,
        Err(e) => g.fail(e, libc::MAP_FAILED),
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn mmap(
    addr: *mut c_void,
    len: size_t,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: off_t,
) -> *mut c_void {
    if device::is_fake_fd(fd) {
        return unsafe { fake_mmap(addr, len, prot, flags, fd, off) };
    }
    unsafe { real::mmap(addr, len, prot, flags, fd, off) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn mmap64(
    addr: *mut c_void,
    len: size_t,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: off_t,
) -> *mut c_void {
    if device::is_fake_fd(fd) {
        return unsafe { fake_mmap(addr, len, prot, flags, fd, off) };
    }
    unsafe { real::mmap64(addr, len, prot, flags, fd, off) }
}

// ---- poll ----

unsafe fn has_fake(fds: *mut pollfd, nfds: nfds_t) -> bool {
    if fds.is_null() || nfds == 0 || !device::any_fake_fd() || guard::inside() {
        return false;
    }
    let fds = unsafe { std::slice::from_raw_parts(fds, nfds as usize) };
    fds.iter().any(|p| device::is_fake_fd(p.fd))
}

unsafe fn fake_poll(fds: *mut pollfd, nfds: nfds_t, timeout: c_int) -> c_int {
    let mut g = Guard::enter();
    let fds = unsafe { std::slice::from_raw_parts_mut(fds, nfds as usize) };
    match unsafe { device::poll(fds, timeout) } {
        Ok(n) => n,
        Err(e) => g.fail(e, -1),
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn poll(fds: *mut pollfd, nfds: nfds_t, timeout: c_int) -> c_int {
    unsafe {
        if has_fake(fds, nfds) {
            return fake_poll(fds, nfds, timeout);
        }
        real::poll(fds, nfds, timeout)
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn __poll_chk(fds: *mut pollfd, nfds: nfds_t, timeout: c_int, fdslen: size_t) -> c_int {
    unsafe {
        // Only take it over when the buffer check libc would do passes.
        if (nfds as usize).saturating_mul(size_of::<pollfd>()) <= fdslen && has_fake(fds, nfds) {
            return fake_poll(fds, nfds, timeout);
        }
        real::__poll_chk(fds, nfds, timeout, fdslen)
    }
}

// ---- stat, access ----

/// Stat answer for a path (or, with AT_EMPTY_PATH / fstat, a fake fd):
/// None to forward, else the guard (errno on return) and the answer.
unsafe fn fake_stat(dirfd: c_int, path: *const c_char, flags: c_int) -> Option<(Guard, Result<node::Info, c_int>)> {
    if guard::inside() {
        return None;
    }
    let empty = !path.is_null() && unsafe { *path } == 0;
    if empty && flags & libc::AT_EMPTY_PATH != 0 && device::is_fake_fd(dirfd) {
        return Some((Guard::enter(), Ok(node::info_unchecked(&Node::Device))));
    }
    let g = Guard::enter();
    let node = unsafe { node::classify(path) }?;
    Some((g, node::info(&node)))
}

/// Runs a stat-like override: fill `buf` via `fill` if the path is fake.
macro_rules! stat_override {
    ($dirfd:expr, $path:expr, $flags:expr, $buf:expr, $fill:path, $real:expr) => {
        unsafe {
            match fake_stat($dirfd, $path, $flags) {
                None => $real,
                Some((mut g, Err(e))) => g.fail(e, -1),
                Some((mut g, Ok(_))) if $buf.is_null() => g.fail(libc::EFAULT, -1),
                Some((_g, Ok(info))) => {
                    $fill($buf, &info);
                    0
                }
            }
        }
    };
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn stat(path: *const c_char, buf: *mut libc::stat) -> c_int {
    stat_override!(libc::AT_FDCWD, path, 0, buf, node::fill_stat, real::stat(path, buf))
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn stat64(path: *const c_char, buf: *mut libc::stat64) -> c_int {
    stat_override!(libc::AT_FDCWD, path, 0, buf, node::fill_stat64, real::stat64(path, buf))
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn lstat(path: *const c_char, buf: *mut libc::stat) -> c_int {
    stat_override!(libc::AT_FDCWD, path, 0, buf, node::fill_stat, real::lstat(path, buf))
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn lstat64(path: *const c_char, buf: *mut libc::stat64) -> c_int {
    stat_override!(libc::AT_FDCWD, path, 0, buf, node::fill_stat64, real::lstat64(path, buf))
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn fstat(fd: c_int, buf: *mut libc::stat) -> c_int {
    stat_override!(fd, c"".as_ptr(), libc::AT_EMPTY_PATH, buf, node::fill_stat, real::fstat(fd, buf))
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn fstat64(fd: c_int, buf: *mut libc::stat64) -> c_int {
    stat_override!(fd, c"".as_ptr(), libc::AT_EMPTY_PATH, buf, node::fill_stat64, real::fstat64(fd, buf))
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn fstatat(dirfd: c_int, path: *const c_char, buf: *mut libc::stat, flags: c_int) -> c_int {
    stat_override!(dirfd, path, flags, buf, node::fill_stat, real::fstatat(dirfd, path, buf, flags))
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn fstatat64(dirfd: c_int, path: *const c_char, buf: *mut libc::stat64, flags: c_int) -> c_int {
    stat_override!(dirfd, path, flags, buf, node::fill_stat64, real::fstatat64(dirfd, path, buf, flags))
}

/// Rust std's `fs::metadata` uses this (found with dlsym, so preloading
/// reaches it).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn statx(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mask: c_uint,
    buf: *mut libc::statx,
) -> c_int {
    stat_override!(dirfd, path, flags, buf, node::fill_statx, real::statx(dirfd, path, flags, mask, buf))
}

unsafe fn fake_access(path: *const c_char, mode: c_int) -> Option<c_int> {
    if guard::inside() {
        return None;
    }
    let mut g = Guard::enter();
    let node = unsafe { node::classify(path) }?;
    Some(match node::info(&node) {
        Err(e) => g.fail(e, -1),
        // crw-rw----: readable and writable, not executable.
        Ok(_) if mode & libc::X_OK != 0 => g.fail(libc::EACCES, -1),
        Ok(_) => 0,
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn access(path: *const c_char, mode: c_int) -> c_int {
    unsafe { fake_access(path, mode).unwrap_or_else(|| real::access(path, mode)) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn faccessat(dirfd: c_int, path: *const c_char, mode: c_int, flags: c_int) -> c_int {
    unsafe { fake_access(path, mode).unwrap_or_else(|| real::faccessat(dirfd, path, mode, flags)) }
}

// ---- directory listing ----

#[unsafe(no_mangle)]
pub unsafe extern "C" fn opendir(path: *const c_char) -> *mut DIR {
    let dir = unsafe { real::opendir(path) };
    if !dir.is_null() && !guard::inside() {
        let _g = Guard::enter();
        if unsafe { node::is_device_dir(path) } {
            node::watch_dir(dir);
        }
    }
    dir
}

unsafe fn readdir_common(dir: *mut DIR, real: *mut dirent64) -> *mut dirent64 {
    // Only atomics before the guard: it restores errno, which readdir's
    // callers read to tell the end of the listing from an error.
    if guard::inside() || !node::watching_any() {
        return real;
    }
    let _g = Guard::enter();
    if !node::watching(dir) {
        return real;
    }
    unsafe { node::after_readdir(dir, real) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn readdir64(dir: *mut DIR) -> *mut dirent64 {
    unsafe {
        let e = real::readdir64(dir);
        readdir_common(dir, e)
    }
}

/// `struct dirent` and `struct dirent64` are the same on 64-bit glibc.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn readdir(dir: *mut DIR) -> *mut dirent64 {
    unsafe {
        let e = real::readdir(dir);
        readdir_common(dir, e)
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn rewinddir(dir: *mut DIR) {
    if !guard::inside() {
        let _g = Guard::enter();
        node::rewind_dir(dir);
    }
    unsafe { real::rewinddir(dir) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn closedir(dir: *mut DIR) -> c_int {
    if !guard::inside() {
        let _g = Guard::enter();
        node::unwatch_dir(dir);
    }
    unsafe { real::closedir(dir) }
}
