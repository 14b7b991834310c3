//! Comparing secrets (tokens, passwords) without leaking through timing
//! how much of a guess was right: both sides are hashed first, so even
//! their lengths do not show, then compared in constant time.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Whether `given` equals `expected`, in time independent of both.
pub fn equal(given: &str, expected: &str) -> bool {
    Sha256::digest(given.as_bytes()).ct_eq(&Sha256::digest(expected.as_bytes())).into()
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
