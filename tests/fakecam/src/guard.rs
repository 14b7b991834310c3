//! Re-entrancy guard and errno handling.
//!
//! While this library handles a call for the fake device it uses Rust std
//! itself (reading frame files, the log, memfds), and std calls `open64`,
//! `statx`, `opendir`, `close`... which land in our own overrides. A
//! thread-local flag marks "inside the shim": overrides seen with it set go
//! straight to libc. The flag needs no allocation and no lock, so it is safe
//! from any context.
//!
//! The guard also owns errno: it saves errno on entry and writes it back on
//! exit, so internal calls that fail (e.g. `access()` on the absent
//! `unplugged` file) never leak ENOENT to a caller that checks errno after a
//! success (readdir's end-of-directory does exactly that). An error to report
//! is put into the guard with [`Guard::fail`].

use libc::c_int;
use std::cell::Cell;

thread_local! {
    static INSIDE: Cell<bool> = const { Cell::new(false) };
}

/// True while this thread is already running shim code.
pub fn inside() -> bool {
    INSIDE.get()
}

pub struct Guard {
    was_inside: bool,
    errno: c_int,
}

impl Guard {
    pub fn enter() -> Guard {
        let errno = errno();
        Guard { was_inside: INSIDE.replace(true), errno }
    }

    /// Leave with errno = `e`; returns `ret` for `return g.fail(...)`.
    pub fn fail<T>(&mut self, e: c_int, ret: T) -> T {
        self.errno = e;
        ret
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        INSIDE.set(self.was_inside);
        set_errno(self.errno);
    }
}

pub fn errno() -> c_int {
    unsafe { *libc::__errno_location() }
}

pub fn set_errno(e: c_int) {
    unsafe { *libc::__errno_location() = e };
}
