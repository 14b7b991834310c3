//! FAKECAM_LOG: one line per event, `<monotonic ms> <event> key=value...`,
//! appended with a single write() so lines from threads never interleave.
//! Only called from shim code (inside the guard), so opening the file through
//! std does not recurse into the fake device.

use std::fmt::Arguments;
use std::fs::File;
use std::io::Write;
use std::sync::OnceLock;

static LOG: OnceLock<Option<File>> = OnceLock::new();

pub fn event(args: Arguments<'_>) {
    let file = LOG.get_or_init(|| {
        let path = crate::config::get().log.as_ref()?;
        std::fs::OpenOptions::new().create(true).append(true).open(path).ok()
    });
    let Some(mut file) = file.as_ref() else {
        return;
    };
    let ms = crate::device::now_ns() as f64 / 1e6;
    let line = format!("{ms:.3} {args}\n");
    let _ = file.write_all(line.as_bytes());
}

/// `log!("streamon fd={fd}")`: formats only when FAKECAM_LOG is set.
macro_rules! log {
    ($($t:tt)*) => {
        if crate::config::get().log.is_some() {
            crate::log::event(format_args!($($t)*));
        }
    };
}
pub(crate) use log;
