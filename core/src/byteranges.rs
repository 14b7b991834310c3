//! Layout of a `multipart/byteranges` body (RFC 9110 §14.6).

use crate::range::ByteRange;

/// One part: the text before its bytes, and the bytes to send.
#[derive(Debug, Clone)]
pub struct PartLayout {
    pub head: String,
    pub range: ByteRange,
}

#[derive(Debug, Clone)]
pub struct Layout {
    pub boundary: String,
    pub parts: Vec<PartLayout>,
    pub closing: String,
}

impl Layout {
    pub fn new(ranges: &[ByteRange], size: u64, content_type: &str, boundary: &str) -> Self {
        let parts = ranges
            .iter()
            .enumerate()
            .map(|(i, r)| PartLayout {
                head: format!(
                    "{}--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: {}\r\n\r\n",
                    if i == 0 { "" } else { "\r\n" },
                    r.content_range(size)
                ),
                range: *r,
            })
            .collect();
        Layout { boundary: boundary.to_string(), parts, closing: format!("\r\n--{boundary}--\r\n") }
    }

    pub fn content_type(&self) -> String {
        format!("multipart/byteranges; boundary={}", self.boundary)
    }

    /// Exact length of the whole body.
    pub fn content_length(&self) -> u64 {
        self.parts.iter().map(|p| p.head.len() as u64 + p.range.len()).sum::<u64>() + self.closing.len() as u64
    }
}

/// A boundary unlikely to occur in the file, derived from its validator.
pub fn boundary_for(etag: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    etag.hash(&mut h);
    format!("framewire-{:016x}", h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_matches_rendering() {
        let data: Vec<u8> = (0..100u8).collect();
        let ranges = [ByteRange { start: 0, end: 9 }, ByteRange { start: 50, end: 59 }];
        let l = Layout::new(&ranges, 100, "video/mp4", "B");
        let mut body = Vec::new();
        for p in &l.parts {
            body.extend(p.head.bytes());
            body.extend(&data[p.range.start as usize..=p.range.end as usize]);
        }
        body.extend(l.closing.bytes());
        assert_eq!(body.len() as u64, l.content_length());
        let text = String::from_utf8_lossy(&body);
        assert!(text.starts_with("--B\r\nContent-Type: video/mp4\r\nContent-Range: bytes 0-9/100\r\n\r\n"));
        assert!(text.contains("\r\n--B\r\nContent-Type: video/mp4\r\nContent-Range: bytes 50-59/100\r\n\r\n"));
        assert!(text.ends_with("\r\n--B--\r\n"));
        assert_eq!(l.content_type(), "multipart/byteranges; boundary=B");
        assert_ne!(boundary_for("\"a\""), boundary_for("\"b\""));
    }
}
