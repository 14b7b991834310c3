//! The media folder as components see it through `wasi:filesystem`, made
//! cheap per request. Two imports are replaced, same signatures and
//! semantics, so components are unchanged and still run under plain
//! `wasmtime serve`:
//!
//! - `preopens.get-directories`: wasmtime-wasi opens a preopened folder by
//!   path for every store (a path walk, an open and a close per request);
//!   here it is opened once ([`MediaDir`], reopened at most every second)
//!   and each instance gets a handle on the same descriptor, when it asks.
//! - `descriptor.read-via-stream`: wasmtime-wasi's file stream answers a
//!   non-blocking `read` (what `splice` calls) by starting a 64 KiB read on
//!   tokio's blocking pool and returning nothing: every chunk costs a thread
//!   hand-off and a second trip through the guest. A page-cache read takes
//!   microseconds, so this one reads at once, up to [`MAX_READ`], into a
//!   fresh unzeroed buffer that goes to the response body as is.

use crate::runtime::Ctx;
use anyhow::Context;
use bytes::Bytes;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::filesystem::{Descriptor, Dir};
use wasmtime_wasi::p2::bindings::filesystem::types::ErrorCode;
use wasmtime_wasi::{FsPerms, OpenMode};
use wasmtime_wasi_io::streams::{DynInputStream, InputStream, StreamError, StreamResult};

/// The largest read: a few of these queue per response (the body's channel
/// holds four chunks), so this bounds a slow client's buffered bytes.
pub const MAX_READ: usize = 256 * 1024;

/// Must match the wasi:filesystem version wasmtime-wasi registers.
const TYPES: &str = "wasi:filesystem/types@0.2.12";
const PREOPENS: &str = "wasi:filesystem/preopens@0.2.12";

/// A media folder, opened once and shared by every instance, read-only;
/// instances see it as `/`. Reopened by path at most every [`REOPEN_AFTER`],
/// so a folder replaced (renamed over, or deleted and made again) is picked
/// up as soon as that, as nginx's `open_file_cache_valid` does.
#[derive(Clone)]
pub struct MediaDir(Arc<Shared>);

struct Shared {
    path: PathBuf,
    opened: Mutex<(Dir, Instant)>,
}

pub const REOPEN_AFTER: Duration = Duration::from_secs(1);

impl MediaDir {
    pub fn open(path: &Path) -> anyhow::Result<MediaDir> {
        let dir = open_dir(path)?;
        Ok(MediaDir(Arc::new(Shared { path: path.to_path_buf(), opened: Mutex::new((dir, Instant::now())) })))
    }

    /// The folder's descriptor, reopened first if it is due.
    fn current(&self) -> Dir {
        let mut opened = self.0.opened.lock().unwrap_or_else(|e| e.into_inner());
        if opened.1.elapsed() >= REOPEN_AFTER {
            match open_dir(&self.0.path) {
                Ok(dir) => opened.0 = dir,
                // Gone for now: keep serving what was opened last.
                Err(e) => tracing::warn!("{e:#}"),
            }
            opened.1 = Instant::now();
        }
        opened.0.clone()
    }
}

fn open_dir(path: &Path) -> anyhow::Result<Dir> {
    // As wasmtime-wasi opens preopens: a path handle, only for *at calls.
    let flags = rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::PATH;
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
        .with_context(|| format!("cannot open media folder {}", path.display()))?;
    Ok(Dir::new(dir, FsPerms::ReadOnly, OpenMode::READ, true))
}

/// Replace the two imports in `linker`, which must already hold
/// wasmtime-wasi's filesystem.
pub fn add_to_linker(linker: &mut Linker<Ctx>) -> wasmtime::Result<()> {
    // Without shadowing, defining them must fail: that proves wasmtime-wasi's
    // are there under these names, and that ours replace them.
    if linker.instance(TYPES)?.func_wrap("[method]descriptor.read-via-stream", read_via_stream).is_ok() {
        wasmtime::bail!("wasmtime-wasi no longer provides {TYPES}; update mediafs::TYPES");
    }
    if linker.instance(PREOPENS)?.func_wrap("get-directories", get_directories).is_ok() {
        wasmtime::bail!("wasmtime-wasi no longer provides {PREOPENS}; update mediafs::PREOPENS");
    }
    linker.allow_shadowing(true);
    linker.instance(TYPES)?.func_wrap("[method]descriptor.read-via-stream", read_via_stream)?;
    linker.instance(PREOPENS)?.func_wrap("get-directories", get_directories)?;
    linker.allow_shadowing(false);
    Ok(())
}

fn get_directories(mut store: wasmtime::StoreContextMut<'_, Ctx>, (): ()) -> wasmtime::Result<(Vec<(Resource<Descriptor>, String)>,)> {
    let ctx = store.data_mut();
    let Some(media) = &ctx.media else { return Ok((Vec::new(),)) };
    let dir = media.current();
    Ok((vec![(ctx.table.push(Descriptor::Dir(dir))?, "/".to_string())],))
}

type ReadViaStream = Result<Resource<DynInputStream>, ErrorCode>;

fn read_via_stream(
    mut store: wasmtime::StoreContextMut<'_, Ctx>,
    (fd, offset): (Resource<Descriptor>, u64),
) -> wasmtime::Result<(ReadViaStream,)> {
    let table = &mut store.data_mut().table;
    let file = match table.get(&fd)? {
        Descriptor::File(f) if f.open_mode.contains(OpenMode::READ) => f.file.clone(),
        Descriptor::File(_) => return Ok((Err(ErrorCode::BadDescriptor),)),
        Descriptor::Dir(_) => return Ok((Err(ErrorCode::IsDirectory),)),
    };
    let stream: DynInputStream = Box::new(FileStream { file, position: offset });
    Ok((Ok(table.push(stream)?),))
}

struct FileStream {
    file: Arc<std::fs::File>,
    position: u64,
}

impl InputStream for FileStream {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        if size == 0 {
            return Ok(Bytes::new());
        }
        let mut buf = Vec::with_capacity(size.min(MAX_READ));
        loop {
            match rustix::io::pread(&*self.file, rustix::buffer::spare_capacity(&mut buf), self.position) {
                Ok(0) => return Err(StreamError::Closed),
                Ok(n) => {
                    self.position += n as u64;
                    return Ok(Bytes::from(buf));
                }
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(StreamError::LastOperationFailed(std::io::Error::from(e).into())),
            }
        }
    }
}

#[wasmtime_wasi_io::async_trait]
impl wasmtime_wasi_io::poll::Pollable for FileStream {
    // Always ready: a read does not wait, it reads.
    async fn ready(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(data: &[u8], position: u64) -> FileStream {
        let mut f = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut f, data).unwrap();
        FileStream { file: Arc::new(f), position }
    }

    #[test]
    fn reads_from_its_offset_in_chunks_up_to_the_limit_then_closes() {
        let data: Vec<u8> = (0..MAX_READ + 1000).map(|i| (i % 251) as u8).collect();
        let mut s = stream(&data, 10);
        assert!(s.read(0).unwrap().is_empty());
        let a = s.read(usize::MAX).unwrap();
        assert_eq!(&a[..], &data[10..10 + MAX_READ]);
        let b = s.read(7).unwrap();
        assert_eq!(&b[..], &data[10 + MAX_READ..17 + MAX_READ]);
        let c = s.read(usize::MAX).unwrap();
        assert_eq!(&c[..], &data[17 + MAX_READ..]);
        assert!(matches!(s.read(1), Err(StreamError::Closed)));
    }

    #[test]
    fn a_start_past_the_end_is_closed_at_once() {
        assert!(matches!(stream(b"abc", 3).read(10), Err(StreamError::Closed)));
        assert!(matches!(stream(b"abc", 99).read(10), Err(StreamError::Closed)));
    }
}
