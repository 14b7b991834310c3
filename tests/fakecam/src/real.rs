//! The real libc functions behind the ones this library overrides.
//!
//! Each is looked up once with `dlsym(RTLD_NEXT, name)` (the next object in
//! the search order after this preloaded one: libc) and cached in an atomic.
//! Calling `libc::open` etc. from inside this crate would come back to our own
//! exported symbol, so every forward goes through here. Functions we do not
//! override (eventfd, memfd_create, ppoll, fcntl, munmap, ...) are called
//! through the `libc` crate as usual.
//!
//! Variadic C functions (open, openat, ioctl, syscall) are called through
//! variadic function-pointer types, which stable Rust supports for calls.

use libc::{DIR, c_char, c_int, c_long, c_uint, c_ulong, c_void, dirent64, nfds_t, off_t, pollfd, size_t};
use std::sync::atomic::{AtomicPtr, Ordering};

fn resolve(cache: &AtomicPtr<c_void>, name: &'static [u8]) -> *mut c_void {
    let p = cache.load(Ordering::Acquire);
    if !p.is_null() {
        return p;
    }
    // Two threads may race here; both find the same address. errno is
    // kept: the caller's errno must look untouched (readdir end-of-list).
    let errno = crate::guard::errno();
    let p = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr().cast()) };
    crate::guard::set_errno(errno);
    if p.is_null() {
        // Nothing to forward to: abort loudly rather than misbehave.
        let msg = b"framewire-fakecam: dlsym(RTLD_NEXT) found no real libc function\n";
        unsafe {
            libc::write(2, msg.as_ptr().cast(), msg.len());
            libc::abort();
        }
    }
    cache.store(p, Ordering::Release);
    p
}

macro_rules! real_fns {
    ($( fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty; )*) => {$(
        pub unsafe fn $name($($arg: $ty),*) -> $ret {
            static CACHE: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());
            let p = resolve(&CACHE, concat!(stringify!($name), "\0").as_bytes());
            let f: unsafe extern "C" fn($($ty),*) -> $ret = unsafe { std::mem::transmute(p) };
            unsafe { f($($arg),*) }
        }
    )*};
}

/// Like `real_fns!`, for C functions declared with `...`: `fixed` arguments,
/// then the `extra` ones passed through the variadic part.
macro_rules! real_variadic_fns {
    ($( fn $name:ident($($arg:ident: $ty:ty),*; $($var:ident: $vty:ty),*) -> $ret:ty; )*) => {$(
        pub unsafe fn $name($($arg: $ty,)* $($var: $vty),*) -> $ret {
            static CACHE: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());
            let p = resolve(&CACHE, concat!(stringify!($name), "\0").as_bytes());
            let f: unsafe extern "C" fn($($ty,)* ...) -> $ret = unsafe { std::mem::transmute(p) };
            unsafe { f($($arg,)* $($var),*) }
        }
    )*};
}

real_variadic_fns! {
    fn open(path: *const c_char, flags: c_int; mode: c_uint) -> c_int;
    fn open64(path: *const c_char, flags: c_int; mode: c_uint) -> c_int;
    fn openat(dirfd: c_int, path: *const c_char, flags: c_int; mode: c_uint) -> c_int;
    fn openat64(dirfd: c_int, path: *const c_char, flags: c_int; mode: c_uint) -> c_int;
    fn ioctl(fd: c_int, request: c_ulong; arg: *mut c_void) -> c_int;
    fn syscall(number: c_long; a1: c_long, a2: c_long, a3: c_long, a4: c_long, a5: c_long, a6: c_long) -> c_long;
}

real_fns! {
    fn __open_2(path: *const c_char, flags: c_int) -> c_int;
    fn __open64_2(path: *const c_char, flags: c_int) -> c_int;
    fn __openat_2(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int;
    fn __openat64_2(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int;
    fn close(fd: c_int) -> c_int;
    fn mmap(addr: *mut c_void, len: size_t, prot: c_int, flags: c_int, fd: c_int, off: off_t) -> *mut c_void;
    fn mmap64(addr: *mut c_void, len: size_t, prot: c_int, flags: c_int, fd: c_int, off: off_t) -> *mut c_void;
    fn poll(fds: *mut pollfd, nfds: nfds_t, timeout: c_int) -> c_int;
    fn __poll_chk(fds: *mut pollfd, nfds: nfds_t, timeout: c_int, fdslen: size_t) -> c_int;
    fn stat(path: *const c_char, buf: *mut libc::stat) -> c_int;
    fn stat64(path: *const c_char, buf: *mut libc::stat64) -> c_int;
    fn lstat(path: *const c_char, buf: *mut libc::stat) -> c_int;
    fn lstat64(path: *const c_char, buf: *mut libc::stat64) -> c_int;
    fn fstat(fd: c_int, buf: *mut libc::stat) -> c_int;
    fn fstat64(fd: c_int, buf: *mut libc::stat64) -> c_int;
    fn fstatat(dirfd: c_int, path: *const c_char, buf: *mut libc::stat, flags: c_int) -> c_int;
    fn fstatat64(dirfd: c_int, path: *const c_char, buf: *mut libc::stat64, flags: c_int) -> c_int;
    fn statx(dirfd: c_int, path: *const c_char, flags: c_int, mask: c_uint, buf: *mut libc::statx) -> c_int;
    fn access(path: *const c_char, mode: c_int) -> c_int;
    fn faccessat(dirfd: c_int, path: *const c_char, mode: c_int, flags: c_int) -> c_int;
    fn opendir(path: *const c_char) -> *mut DIR;
    fn readdir(dir: *mut DIR) -> *mut dirent64;
    fn readdir64(dir: *mut DIR) -> *mut dirent64;
    fn rewinddir(dir: *mut DIR) -> ();
    fn closedir(dir: *mut DIR) -> c_int;
}
