//! Small edits to wasm binaries.

/// `bytes` with a custom section appended. Valid for core modules and
/// components alike; it changes the binary's hash, not its behaviour.
pub fn with_custom_section(bytes: &[u8], name: &str, payload: &[u8]) -> Vec<u8> {
    let mut section = leb128(name.len() as u64);
    section.extend_from_slice(name.as_bytes());
    section.extend_from_slice(payload);
    let mut out = bytes.to_vec();
    out.push(0);
    out.extend(leb128(section.len() as u64));
    out.extend(section);
    out
}

fn leb128(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn appends_a_section() {
        let out = super::with_custom_section(b"\0asm\x01\0\0\0", "n", &[7; 200]);
        assert_eq!(&out[8..12], &[0, 202, 1, 1], "id, LEB128 size 202, name length");
        assert_eq!(out.len(), 8 + 3 + 202);
    }
}
