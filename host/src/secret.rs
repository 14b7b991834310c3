//! Secrets: comparing them (tokens, signatures) without leaking through
//! timing how much of a guess was right (both sides hashed first, so even
//! their lengths do not show, then compared in constant time), and making
//! them from the kernel's random source, and writing them to files only
//! their owner reads.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Whether `given` equals `expected`, in time independent of both.
pub fn equal(given: &str, expected: &str) -> bool {
    Sha256::digest(given.as_bytes()).ct_eq(&Sha256::digest(expected.as_bytes())).into()
}

/// `N` bytes from the kernel's random source.
pub fn random_bytes<const N: usize>() -> anyhow::Result<[u8; N]> {
    use anyhow::Context;
    use std::io::Read;
    let mut bytes = [0u8; N];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).context("cannot read /dev/urandom")?;
    Ok(bytes)
}

/// Write `bytes` to `path` whole (through a temporary file renamed over
/// it), readable as `mode` says (0o600: this user only) from its first byte.
pub fn write_file(path: &std::path::Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .and_then(|mut f| std::io::Write::write_all(&mut f, bytes))
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn compares() {
        assert!(super::equal("s3cret", "s3cret"));
        assert!(!super::equal("s3cre", "s3cret"));
        assert!(!super::equal("", "s3cret"));
    }
}
