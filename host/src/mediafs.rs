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
//!   fresh unzeroed buffer that goes to the response body as is, but only
//!   what the page cache holds (`RWF_NOWAIT`). Anything else (a cold disk, a
//!   FUSE or network mount) is read on the blocking pool, bounded by the
//!   read timeout, so a stalled read stalls its own response and never the
//!   HTTP thread's other connections.
//! - `descriptor.open-at`: read-only (the folder is), and only files and
//!   folders open. Anything else is refused at once rather than opened: a
//!   FIFO's open would wait for a writer, and a socket or device is not
//!   media. wasmtime-wasi's would open a FIFO and wait, so a component had
//!   to `stat-at` first (an `O_PATH` open, a stat and a close); this open
//!   classifies what it opened with the stat it needs anyway.

use crate::config::DEFAULT_MEDIA_READ_TIMEOUT_S;
use crate::runtime::Ctx;
use anyhow::Context;
use bytes::Bytes;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::filesystem::{Descriptor, Dir, File};
use wasmtime_wasi::p2::bindings::filesystem::types::{DescriptorFlags, ErrorCode, OpenFlags, PathFlags};
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
    /// On a network or FUSE mount: opens, stats and reads may wait, so
    /// they run on the blocking pool.
    remote: bool,
    /// Longest a read may wait for data before its response is aborted.
    read_timeout: Duration,
}

pub const REOPEN_AFTER: Duration = Duration::from_secs(1);

impl MediaDir {
    pub fn open(path: &Path, read_timeout: Duration) -> anyhow::Result<MediaDir> {
        let (dir, remote) = open_dir(path)?;
        let opened = Mutex::new((dir, Instant::now()));
        Ok(MediaDir(Arc::new(Shared { path: path.to_path_buf(), opened, remote, read_timeout })))
    }

    /// The folder's descriptor, reopened first if it is due.
    fn current(&self) -> Dir {
        let mut opened = self.0.opened.lock().unwrap_or_else(|e| e.into_inner());
        if opened.1.elapsed() >= REOPEN_AFTER {
            match open_dir(&self.0.path) {
                // A folder that moved to a remote mount keeps the local
                // setting until restart; it only decides where calls run.
                Ok((dir, _)) => opened.0 = dir,
                // Gone for now: keep serving what was opened last.
                Err(e) => tracing::warn!("{e:#}"),
            }
            opened.1 = Instant::now();
        }
        opened.0.clone()
    }
}

fn open_dir(path: &Path) -> anyhow::Result<(Dir, bool)> {
    // As wasmtime-wasi opens preopens: a path handle, only for *at calls.
    let flags = rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::PATH;
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
        .with_context(|| format!("cannot open media folder {}", path.display()))?;
    // Opens and stats on a local disk take microseconds and run on the HTTP
    // thread; on a mount that can hang, they go to the blocking pool.
    let remote = is_remote(&dir);
    if remote {
        tracing::info!("media folder {} is on a network or FUSE mount: opens and stats run off the HTTP threads", path.display());
    }
    Ok((Dir::new(dir, FsPerms::ReadOnly, OpenMode::READ, !remote), remote))
}

/// Whether `dir` is on a filesystem whose calls can wait on a network or
/// a user-space server (by `statfs`'s magic number).
fn is_remote(dir: &std::fs::File) -> bool {
    const REMOTE: &[i64] = &[
        0x65735546, // FUSE
        0x6969,     // NFS
        0xff534d42, // CIFS
        0xfe534d42, // SMB2
        0x517b,     // SMB
        0x00c36400, // Ceph
        0x01021997, // 9P
        0x5346414f, // AFS
    ];
    // SAFETY: fstatfs writes a statfs into the zeroed one given.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatfs(dir.as_raw_fd(), &mut st) } != 0 {
        return true;
    }
    REMOTE.contains(&(st.f_type as i64))
}

/// Replace the two imports in `linker`, which must already hold
/// wasmtime-wasi's filesystem.
pub fn add_to_linker(linker: &mut Linker<Ctx>) -> wasmtime::Result<()> {
    // Without shadowing, defining them must fail: that proves wasmtime-wasi's
    // are there under these names, and that ours replace them.
    if linker.instance(TYPES)?.func_wrap("[method]descriptor.read-via-stream", read_via_stream).is_ok() {
        wasmtime::bail!("wasmtime-wasi no longer provides {TYPES}; update mediafs::TYPES");
    }
    if linker.instance(TYPES)?.func_wrap_async("[method]descriptor.open-at", open_at).is_ok() {
        wasmtime::bail!("wasmtime-wasi no longer provides {TYPES} open-at; update mediafs");
    }
    if linker.instance(PREOPENS)?.func_wrap("get-directories", get_directories).is_ok() {
        wasmtime::bail!("wasmtime-wasi no longer provides {PREOPENS}; update mediafs::PREOPENS");
    }
    linker.allow_shadowing(true);
    linker.instance(TYPES)?.func_wrap("[method]descriptor.read-via-stream", read_via_stream)?;
    linker.instance(TYPES)?.func_wrap_async("[method]descriptor.open-at", open_at)?;
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

type OpenAt = Result<Resource<Descriptor>, ErrorCode>;

/// `open-at` on the media folder or a folder opened beneath it. Same
/// sandboxing as wasmtime-wasi's (nothing outside the folder, no magic
/// links); writes are refused as there, since the folder is read-only.
fn open_at(
    mut store: wasmtime::StoreContextMut<'_, Ctx>,
    (fd, path_flags, path, oflags, flags): (Resource<Descriptor>, PathFlags, String, OpenFlags, DescriptorFlags),
) -> Box<dyn Future<Output = wasmtime::Result<(OpenAt,)>> + Send + '_> {
    Box::new(async move {
        let ctx = store.data_mut();
        let dir = match ctx.table.get(&fd)? {
            Descriptor::Dir(d) => d.dir.clone(),
            Descriptor::File(_) => return Ok((Err(ErrorCode::NotDirectory),)),
        };
        let sync = DescriptorFlags::FILE_INTEGRITY_SYNC | DescriptorFlags::DATA_INTEGRITY_SYNC | DescriptorFlags::REQUESTED_WRITE_SYNC;
        if flags.intersects(sync) {
            return Ok((Err(ErrorCode::Unsupported),));
        }
        let creating = OpenFlags::CREATE | OpenFlags::EXCLUSIVE | OpenFlags::TRUNCATE;
        if oflags.contains(OpenFlags::DIRECTORY) && oflags.intersects(creating) {
            return Ok((Err(ErrorCode::Invalid),));
        }
        // As in wasmtime-wasi, EXCLUSIVE alone (without CREATE) asks nothing.
        let writes = OpenFlags::CREATE | OpenFlags::TRUNCATE;
        if oflags.intersects(writes) || flags.contains(DescriptorFlags::WRITE) {
            return Ok((Err(ErrorCode::NotPermitted),));
        }
        let remote = ctx.media.as_ref().is_none_or(|m| m.0.remote);
        let follow = path_flags.contains(PathFlags::SYMLINK_FOLLOW);
        let want_dir = oflags.contains(OpenFlags::DIRECTORY);
        let open = move || open_beneath(&dir, &path, follow, want_dir, remote);
        let opened = if remote {
            tokio::task::spawn_blocking(open).await.unwrap_or(Err(ErrorCode::Io))
        } else {
            open()
        };
        let descriptor = match opened {
            Ok(Opened::Dir(d)) => Descriptor::Dir(Dir::new(d, FsPerms::ReadOnly, OpenMode::READ, !remote)),
            Ok(Opened::File(f)) => Descriptor::File(File::new(f, FsPerms::ReadOnly, OpenMode::READ, !remote)),
            Err(e) => return Ok((Err(e),)),
        };
        Ok((Ok(store.data_mut().table.push(descriptor)?),))
    })
}

enum Opened {
    Dir(std::fs::File),
    File(std::fs::File),
}

/// Open `path` beneath `dir` for reading: a folder or a regular file, else
/// `unsupported`. `O_NONBLOCK` makes a FIFO's open return at once (to be
/// refused); on a regular file it changes nothing on a local filesystem,
/// and is cleared on a remote one, where the server might heed it.
fn open_beneath(dir: &std::fs::File, path: &str, follow: bool, want_dir: bool, remote: bool) -> Result<Opened, ErrorCode> {
    use cap_fs_ext::OpenOptionsFollowExt;
    use cap_primitives::fs::OpenOptionsExt;
    let mut opts = cap_primitives::fs::OpenOptions::new();
    opts.read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    opts.follow(if follow { cap_fs_ext::FollowSymlinks::Yes } else { cap_fs_ext::FollowSymlinks::No });
    let file = cap_primitives::fs::open(dir, Path::new(path), &opts)?;
    match rustix::fs::FileType::from_raw_mode(rustix::fs::fstat(&file).map_err(std::io::Error::from)?.st_mode) {
        rustix::fs::FileType::Directory => Ok(Opened::Dir(file)),
        _ if want_dir => Err(ErrorCode::NotDirectory),
        rustix::fs::FileType::RegularFile => {
            if remote {
                rustix::fs::fcntl_setfl(&file, rustix::fs::OFlags::empty()).map_err(std::io::Error::from)?;
            }
            Ok(Opened::File(file))
        }
        _ => Err(ErrorCode::Unsupported),
    }
}

type ReadViaStream = Result<Resource<DynInputStream>, ErrorCode>;

fn read_via_stream(
    mut store: wasmtime::StoreContextMut<'_, Ctx>,
    (fd, offset): (Resource<Descriptor>, u64),
) -> wasmtime::Result<(ReadViaStream,)> {
    let ctx = store.data_mut();
    let read_timeout = ctx.media.as_ref().map_or(Duration::from_secs(DEFAULT_MEDIA_READ_TIMEOUT_S), |m| m.0.read_timeout);
    let table = &mut ctx.table;
    let file = match table.get(&fd)? {
        Descriptor::File(f) if f.open_mode.contains(OpenMode::READ) => f.file.clone(),
        Descriptor::File(_) => return Ok((Err(ErrorCode::BadDescriptor),)),
        Descriptor::Dir(_) => return Ok((Err(ErrorCode::IsDirectory),)),
    };
    let stream: DynInputStream = Box::new(FileStream::new(file, offset, read_timeout));
    Ok((Ok(table.push(stream)?),))
}

struct FileStream {
    file: Arc<std::fs::File>,
    position: u64,
    read_timeout: Duration,
    /// Set once the file said it cannot tell whether data is at hand: every
    /// read goes to the pool.
    no_nowait: bool,
    /// A read on the blocking pool, and when it is given up.
    pending: Option<(tokio::sync::oneshot::Receiver<std::io::Result<Vec<u8>>>, Instant)>,
    /// What it gave, when `ready` received it.
    done: Option<std::io::Result<Vec<u8>>>,
}

impl FileStream {
    fn new(file: Arc<std::fs::File>, position: u64, read_timeout: Duration) -> FileStream {
        FileStream { file, position, read_timeout, no_nowait: false, pending: None, done: None }
    }

    /// Hand the read to the blocking pool; `ready` waits for it.
    fn start(&mut self, size: usize) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (file, position) = (self.file.clone(), self.position);
        tokio::task::spawn_blocking(move || {
            let mut buf = Vec::with_capacity(size);
            let r = loop {
                match rustix::io::pread(&*file, rustix::buffer::spare_capacity(&mut buf), position) {
                    Err(rustix::io::Errno::INTR) => continue,
                    r => break r.map(|_| buf).map_err(std::io::Error::from),
                }
            };
            let _ = tx.send(r);
        });
        self.pending = Some((rx, Instant::now() + self.read_timeout));
    }

    fn finish(&mut self, read: std::io::Result<Vec<u8>>) -> StreamResult<Bytes> {
        match read {
            Ok(buf) if buf.is_empty() => Err(StreamError::Closed),
            Ok(buf) => {
                self.position += buf.len() as u64;
                Ok(Bytes::from(buf))
            }
            Err(e) => Err(StreamError::LastOperationFailed(e.into())),
        }
    }

    fn stalled(&self) -> StreamError {
        let s = self.read_timeout.as_secs_f64();
        tracing::warn!("a media read waited {s} s for data: response aborted");
        StreamError::LastOperationFailed(wasmtime::format_err!("media read stalled for {s} s"))
    }
}

/// Media reads done on the calling (HTTP) thread from the page cache, and
/// those handed to the blocking pool, since start (for `/metrics`).
pub static READS_INLINE: AtomicU64 = AtomicU64::new(0);
pub static READS_POOLED: AtomicU64 = AtomicU64::new(0);

/// A pool read that ended without an answer (its task was dropped).
fn lost() -> std::io::Error {
    std::io::Error::other("media read lost")
}

/// One `preadv2` with `RWF_NOWAIT` into `buf`'s spare capacity: data the
/// page cache holds, or `EAGAIN` (or `EOPNOTSUPP` where the filesystem cannot
/// tell) without waiting.
fn read_nowait(file: &std::fs::File, buf: &mut Vec<u8>, position: u64) -> std::io::Result<usize> {
    let spare = buf.spare_capacity_mut();
    let iov = libc::iovec { iov_base: spare.as_mut_ptr().cast(), iov_len: spare.len() };
    loop {
        // SAFETY: the iovec covers `buf`'s spare capacity, which the kernel
        // writes and nothing else touches during the call; `set_len` covers
        // only the bytes it wrote.
        let n = unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, position as libc::off_t, libc::RWF_NOWAIT) };
        if n >= 0 {
            unsafe { buf.set_len(n as usize) };
            return Ok(n as usize);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

impl InputStream for FileStream {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        if let Some(read) = self.done.take() {
            return self.finish(read);
        }
        if let Some((rx, deadline)) = &mut self.pending {
            return match rx.try_recv() {
                Ok(read) => {
                    self.pending = None;
                    self.finish(read)
                }
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) if Instant::now() < *deadline => Ok(Bytes::new()),
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) => Err(self.stalled()),
                Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {
                    self.pending = None;
                    self.finish(Err(lost()))
                }
            };
        }
        if size == 0 {
            return Ok(Bytes::new());
        }
        let size = size.min(MAX_READ);
        if !self.no_nowait {
            let mut buf = Vec::with_capacity(size);
            match read_nowait(&self.file, &mut buf, self.position) {
                Ok(_) => {
                    READS_INLINE.fetch_add(1, Ordering::Relaxed);
                    return self.finish(Ok(buf));
                }
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {}
                Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => self.no_nowait = true,
                Err(e) => return Err(StreamError::LastOperationFailed(e.into())),
            }
        }
        READS_POOLED.fetch_add(1, Ordering::Relaxed);
        self.start(size);
        Ok(Bytes::new())
    }
}

#[wasmtime_wasi_io::async_trait]
impl wasmtime_wasi_io::poll::Pollable for FileStream {
    // Ready when a read has data at hand or has failed: nothing pending, or
    // the pool's read is back, or its time is up.
    async fn ready(&mut self) {
        let Some((rx, deadline)) = &mut self.pending else { return };
        let deadline = *deadline;
        match tokio::time::timeout_at(deadline.into(), rx).await {
            Ok(read) => {
                self.pending = None;
                self.done = Some(read.unwrap_or_else(|_| Err(lost())));
            }
            // `read` now finds the deadline passed.
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(data: &[u8], position: u64) -> FileStream {
        let mut f = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut f, data).unwrap();
        FileStream::new(Arc::new(f), position, Duration::from_secs(5))
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
    fn opens_files_and_folders_beneath_and_refuses_the_rest_at_once() {
        let (root, elsewhere) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let p = root.path();
        std::fs::create_dir(p.join("sub")).unwrap();
        std::fs::write(p.join("sub/a.mp4"), b"x").unwrap();
        let secret = elsewhere.path().join("secret");
        std::fs::write(&secret, b"secret").unwrap();
        std::os::unix::fs::symlink("sub/a.mp4", p.join("link")).unwrap();
        std::os::unix::fs::symlink(&secret, p.join("escape")).unwrap();
        rustix::fs::mknodat(rustix::fs::CWD, p.join("fifo"), rustix::fs::FileType::Fifo, rustix::fs::Mode::from(0o644), 0).unwrap();
        let dir = std::fs::File::open(p).unwrap();
        let open = |path: &str, follow, want_dir| open_beneath(&dir, path, follow, want_dir, false);
        assert!(matches!(open("sub", true, true), Ok(Opened::Dir(_))));
        assert!(matches!(open("sub/a.mp4", true, false), Ok(Opened::File(_))));
        assert!(matches!(open("link", true, false), Ok(Opened::File(_))));
        assert!(matches!(open("link", false, false), Err(ErrorCode::Loop)));
        assert!(matches!(open("sub/a.mp4", true, true), Err(ErrorCode::NotDirectory)));
        // Would wait for a writer if opened blocking: this returns at once.
        assert!(matches!(open("fifo", true, false), Err(ErrorCode::Unsupported)));
        for outside in ["../x", "sub/../../x", "/etc/passwd", "escape"] {
            assert!(open(outside, true, false).is_err(), "{outside} opened");
        }
        assert!(matches!(open("missing", true, false), Err(ErrorCode::NoEntry)));
        // The regular file reads normally (no O_NONBLOCK left to matter).
        let Ok(Opened::File(f)) = open_beneath(&dir, "sub/a.mp4", true, false, true) else { panic!() };
        assert!(!rustix::fs::fcntl_getfl(&f).unwrap().contains(rustix::fs::OFlags::NONBLOCK));
    }

    #[test]
    fn a_start_past_the_end_is_closed_at_once() {
        assert!(matches!(stream(b"abc", 3).read(10), Err(StreamError::Closed)));
        assert!(matches!(stream(b"abc", 99).read(10), Err(StreamError::Closed)));
    }
}
