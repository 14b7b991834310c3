//! A FUSE filesystem whose files fail on purpose, mounted by the test
//! process itself (the `fuser` crate: mount(2) as root, `fusermount3`
//! otherwise). One flat folder of read-only files, each with a fault:
//! none, `EIO` from an offset on, or reads that are never answered until
//! [`FaultFs::release`] (a NAS that stopped responding). Files are opened
//! with `direct_io`, so every read reaches this server and no page cache
//! hides a fault.

use fuser::{
    Config, Errno, FileAttr, FileHandle, FileType, FopenFlags, Generation, INodeNo, LockOwner, OpenFlags,
    ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry, ReplyOpen, Request,
};
use std::ffi::OsStr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Reads at or past this offset fail with `EIO`.
    EioFrom(u64),
    /// Reads are held unanswered.
    Stall,
}

pub struct File {
    pub name: String,
    pub data: Vec<u8>,
    pub fault: Fault,
}

/// The mounted filesystem; unmounted when dropped.
pub struct FaultFs {
    held: Arc<Mutex<Vec<ReplyData>>>,
    session: Option<fuser::BackgroundSession>,
}

impl FaultFs {
    pub fn mount(at: &Path, files: Vec<File>) -> std::io::Result<FaultFs> {
        let held = Arc::new(Mutex::new(Vec::new()));
        let fs = Server { files, held: held.clone() };
        let mut config = Config::default();
        config.mount_options = vec![fuser::MountOption::RO, fuser::MountOption::FSName("framewire-faultfs".into())];
        // Several threads, so one held read never blocks the others' lookups.
        config.n_threads = Some(4);
        let session = fuser::spawn_mount(fs, at, &config)?;
        Ok(FaultFs { held, session: Some(session) })
    }

    /// Reads held so far.
    pub fn held(&self) -> usize {
        self.held.lock().unwrap().len()
    }

    /// Answer every held read with `EIO`, so that nothing stays blocked.
    pub fn release(&self) {
        for reply in self.held.lock().unwrap().drain(..) {
            reply.error(Errno::EIO);
        }
    }
}

impl Drop for FaultFs {
    fn drop(&mut self) {
        self.release();
        if let Some(s) = self.session.take() {
            let _ = s.umount_and_join();
        }
    }
}

struct Server {
    files: Vec<File>,
    held: Arc<Mutex<Vec<ReplyData>>>,
}

const TTL: Duration = Duration::from_secs(60);

impl Server {
    /// Inode 1 is the folder; file `i` is inode `i + 2`.
    fn file(&self, ino: INodeNo) -> Option<&File> {
        ino.0.checked_sub(2).and_then(|i| self.files.get(i as usize))
    }

    fn attr(&self, ino: INodeNo) -> Option<FileAttr> {
        let (kind, perm, size) = match ino {
            INodeNo::ROOT => (FileType::Directory, 0o555, 0),
            _ => (FileType::RegularFile, 0o444, self.file(ino)?.data.len() as u64),
        };
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        Some(FileAttr {
            ino,
            size,
            blocks: size.div_ceil(512),
            atime: t,
            mtime: t,
            ctime: t,
            crtime: t,
            kind,
            perm,
            nlink: 1,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }
}

impl fuser::Filesystem for Server {
    fn lookup(&self, _: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let found = (parent == INodeNo::ROOT)
            .then(|| self.files.iter().position(|f| OsStr::new(&f.name) == name))
            .flatten();
        match found.and_then(|i| self.attr(INodeNo(i as u64 + 2))) {
            Some(attr) => reply.entry(&TTL, &attr, Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _: &Request, ino: INodeNo, _: Option<FileHandle>, reply: ReplyAttr) {
        match self.attr(ino) {
            Some(attr) => reply.attr(&TTL, &attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _: &Request, ino: INodeNo, _: OpenFlags, reply: ReplyOpen) {
        match self.file(ino) {
            Some(_) => reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO),
            None => reply.error(Errno::EISDIR),
        }
    }

    fn read(
        &self,
        _: &Request,
        ino: INodeNo,
        _: FileHandle,
        offset: u64,
        size: u32,
        _: OpenFlags,
        _: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let Some(f) = self.file(ino) else { return reply.error(Errno::EISDIR) };
        match f.fault {
            Fault::Stall => self.held.lock().unwrap().push(reply),
            Fault::EioFrom(at) if offset + size as u64 > at => reply.error(Errno::EIO),
            _ => {
                let start = (offset as usize).min(f.data.len());
                let end = (start + size as usize).min(f.data.len());
                reply.data(&f.data[start..end]);
            }
        }
    }

    fn readdir(&self, _: &Request, ino: INodeNo, _: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        if ino != INodeNo::ROOT {
            return reply.error(Errno::ENOTDIR);
        }
        let entries = [(INodeNo::ROOT, FileType::Directory, ".".to_string()), (INodeNo::ROOT, FileType::Directory, "..".to_string())]
            .into_iter()
            .chain(self.files.iter().enumerate().map(|(i, f)| (INodeNo(i as u64 + 2), FileType::RegularFile, f.name.clone())));
        for (i, (ino, kind, name)) in entries.enumerate().skip(offset as usize) {
            if reply.add(ino, i as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }
}
