//! `frame.body()` by way of a file. Only the host makes `wasi:io` streams;
//! of the streams a component can get, a file's is the one that can be made
//! to yield chosen bytes. So the JPEG goes into a scratch file in the first
//! preopened directory, whose name is removed at once (the open file stays
//! readable), and the file's read stream is the body.

use crate::wasi::filesystem::preopens;
use crate::wasi::filesystem::types::{Descriptor, DescriptorFlags, OpenFlags, PathFlags};
use crate::wasi::io::streams::InputStream;
use crate::wasi::random::random;

/// A stream over `bytes`, and the file behind it, which must outlive it.
pub fn stream(bytes: &[u8]) -> Result<(Descriptor, InputStream), String> {
    let (dir, path) = preopens::get_directories()
        .into_iter()
        .next()
        .ok_or("no preopened directory")?;
    let name = format!(".virtual-camera-{:016x}.jpg", random::get_random_u64());
    let file = dir
        .open_at(
            PathFlags::empty(),
            &name,
            OpenFlags::CREATE | OpenFlags::EXCLUSIVE,
            DescriptorFlags::READ | DescriptorFlags::WRITE,
        )
        .map_err(|e| format!("cannot create a scratch file in {path}: {e:?}"))?;
    // Nobody needs the name: leave nothing behind (a system that cannot
    // remove an open file's name keeps it).
    let _ = dir.unlink_file_at(&name);
    let mut written = 0;
    while written < bytes.len() {
        let n = file
            .write(&bytes[written..], written as u64)
            .map_err(|e| format!("cannot write a scratch file in {path}: {e:?}"))?;
        written += n as usize;
    }
    let stream = file.read_via_stream(0).map_err(|e| format!("cannot read a scratch file: {e:?}"))?;
    Ok((file, stream))
}
