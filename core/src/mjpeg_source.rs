//! Reading `multipart/x-mixed-replace` as IP cameras and other servers
//! send it, which is looser than what framewire writes (see [`crate::mjpeg`]
//! for that, and its strict parser):
//!
//! - parts with or without `Content-Length` (without: the body runs to the
//!   next boundary), with no headers at all, or with malformed header lines
//!   (ignored);
//! - a boundary given with or without the leading `--`, quoted or not, and
//!   delimiter lines with or without the `--`, ending in CRLF or LF;
//! - garbage before the first boundary or between parts (skipped).
//!
//! What it refuses is what would let a source take unbounded memory: a part
//! (or a run of bytes without a boundary) larger than the limit, and header
//! blocks over 16 KiB. Bodies are not checked here: whoever publishes them
//! checks they are whole JPEGs.

use crate::mjpeg::FramingError;

/// Longest header block of a part.
const MAX_HEADERS: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Looking for a delimiter line.
    Seek,
    /// After a delimiter line: headers, or a body straight away.
    Headers,
    /// A body of known length.
    Sized(usize),
    /// A body that runs to the next delimiter.
    Unsized,
    /// The closing delimiter was seen.
    Done,
}

/// Incremental: feed bytes as they arrive, get the bodies they complete.
#[derive(Debug)]
pub struct SourceParser {
    /// The boundary without leading dashes.
    marker: Vec<u8>,
    buf: Vec<u8>,
    state: State,
    max_part: usize,
    /// Where an unsized body's search for the next delimiter resumes.
    scan_from: usize,
    /// Bytes skipped looking for a delimiter since the last one.
    skipped: usize,
}

impl SourceParser {
    /// For the boundary as a server names it (`--` and quotes allowed);
    /// parts over `max_part` bytes are an error.
    pub fn new(boundary: &str, max_part: usize) -> Result<Self, FramingError> {
        let b = boundary.trim().trim_matches('"').trim_start_matches('-');
        if b.is_empty() || b.len() > 200 || b.bytes().any(|c| c.is_ascii_control()) {
            return Err(FramingError(format!("unusable boundary {boundary:?}")));
        }
        Ok(SourceParser { marker: b.as_bytes().to_vec(), buf: Vec::new(), state: State::Seek, max_part, scan_from: 0, skipped: 0 })
    }

    /// For a response's Content-Type (`multipart/x-mixed-replace;
    /// boundary=...`; `multipart/mixed` is accepted too).
    pub fn from_content_type(ct: &str, max_part: usize) -> Result<Self, FramingError> {
        let (mime, params) = ct.split_once(';').unwrap_or((ct, ""));
        let mime = mime.trim().to_ascii_lowercase();
        if mime != "multipart/x-mixed-replace" && mime != "multipart/mixed" {
            return Err(FramingError(format!("not an MJPEG stream: Content-Type {ct:?}")));
        }
        let boundary = params
            .split(';')
            .filter_map(|p| p.trim().split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
            .map(|(_, v)| v)
            .ok_or_else(|| FramingError(format!("no boundary in Content-Type {ct:?}")))?;
        SourceParser::new(boundary, max_part)
    }

    /// True once the closing delimiter has come: the source ended its stream.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Add bytes; returns the part bodies they complete, in order.
    pub fn feed(&mut self, data: &[u8]) -> Result<Vec<Vec<u8>>, FramingError> {
        let mut bodies = Vec::new();
        if self.state == State::Done {
            return Ok(bodies);
        }
        self.buf.extend_from_slice(data);
        let mut pos = 0;
        loop {
            let rest = &self.buf[pos..];
            match self.state {
                State::Done => {
                    pos = self.buf.len();
                    break;
                }
                State::Seek => {
                    let Some(at) = find(rest, &self.marker) else {
                        // Keep what could be the start of a marker.
                        // Limits are checked on what is certain whatever
                        // comes next, so that the answer does not depend on
                        // how the bytes were cut into reads.
                        let skip = rest.len().saturating_sub(self.marker.len());
                        if (self.skipped + rest.len() + 1).saturating_sub(self.marker.len()) > self.max_part {
                            return Err(FramingError(format!("no boundary within {} bytes", self.max_part)));
                        }
                        self.skipped += skip;
                        pos += skip;
                        break;
                    };
                    if self.skipped + at > self.max_part {
                        return Err(FramingError(format!("no boundary within {} bytes", self.max_part)));
                    }
                    let after = &rest[at + self.marker.len()..];
                    if after.starts_with(b"--") {
                        self.state = State::Done;
                        continue;
                    }
                    let eol = after.iter().position(|&c| c == b'\n');
                    if eol.unwrap_or(after.len()) > MAX_HEADERS {
                        return Err(FramingError("delimiter line too long".into()));
                    }
                    let Some(eol) = eol else {
                        pos += at;
                        break;
                    };
                    pos += at + self.marker.len() + eol + 1;
                    self.skipped = 0;
                    self.state = State::Headers;
                }
                State::Headers => {
                    if rest.starts_with(&[0xff, 0xd8]) {
                        self.state = State::Unsized;
                        self.scan_from = pos;
                        continue;
                    }
                    if rest.len() < 2 {
                        break;
                    }
                    let blank = blank_line(rest);
                    if blank.map_or(rest.len().saturating_sub(1), |(end, _)| end) > MAX_HEADERS {
                        return Err(FramingError("part headers too long".into()));
                    }
                    let Some((end, next)) = blank else { break };
                    let length = content_length(&rest[..end]);
                    pos += next;
                    match length {
                        Some(n) if n > self.max_part => {
                            return Err(FramingError(format!("part of {n} bytes is over the limit of {}", self.max_part)));
                        }
                        Some(n) => self.state = State::Sized(n),
                        None => {
                            self.state = State::Unsized;
                            self.scan_from = pos;
                        }
                    }
                }
                State::Sized(n) => {
                    if rest.len() < n {
                        break;
                    }
                    bodies.push(rest[..n].to_vec());
                    pos += n;
                    self.state = State::Seek;
                }
                State::Unsized => {
                    let from = self.scan_from.max(pos);
                    let Some(at) = find(&self.buf[from..], &self.marker).map(|i| from + i) else {
                        // The body ends at most four bytes (CRLF and
                        // dashes) before the next marker, wherever it is.
                        let least = (self.buf.len() + 1).saturating_sub(self.marker.len() + 4);
                        if least.saturating_sub(pos) > self.max_part {
                            return Err(FramingError(format!("part over the limit of {} bytes", self.max_part)));
                        }
                        self.scan_from = self.buf.len().saturating_sub(self.marker.len()).max(pos);
                        break;
                    };
                    // The body ends before the delimiter's dashes and the
                    // line break in front of them.
                    let mut end = at;
                    while end > pos && end > at.saturating_sub(2) && self.buf[end - 1] == b'-' {
                        end -= 1;
                    }
                    let delimiter = end;
                    if end > pos && self.buf[end - 1] == b'\n' {
                        end -= 1;
                        if end > pos && self.buf[end - 1] == b'\r' {
                            end -= 1;
                        }
                    }
                    if end - pos > self.max_part {
                        return Err(FramingError(format!("part over the limit of {} bytes", self.max_part)));
                    }
                    bodies.push(self.buf[pos..end].to_vec());
                    pos = delimiter;
                    self.state = State::Seek;
                }
            }
        }
        // Shift the unread bytes to the front, keeping offsets consistent.
        self.buf.drain(..pos);
        self.scan_from = self.scan_from.saturating_sub(pos);
        Ok(bodies)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Where the header block ends, and where the body starts: the first empty
/// line (CRLF or LF).
fn blank_line(rest: &[u8]) -> Option<(usize, usize)> {
    if rest.starts_with(b"\r\n") {
        return Some((0, 2));
    }
    if rest.starts_with(b"\n") {
        return Some((0, 1));
    }
    let crlf = find(rest, b"\r\n\r\n").map(|i| (i, i + 4));
    let lf = find(rest, b"\n\n").map(|i| (i, i + 2));
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

fn content_length(headers: &[u8]) -> Option<usize> {
    String::from_utf8_lossy(headers).lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim().eq_ignore_ascii_case("content-length").then(|| value.trim().parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(n: u8, len: usize) -> Vec<u8> {
        let mut v = vec![0xff, 0xd8];
        v.extend((0..len).map(|i| (i as u8).wrapping_mul(n) | 1));
        v.extend([0xff, 0xd9]);
        v
    }

    fn all_at_once(p: &mut SourceParser, data: &[u8]) -> Vec<Vec<u8>> {
        p.feed(data).unwrap()
    }

    /// Fed whole, fed byte by byte and fed in every two-way split: the same.
    fn parses_to(boundary: &str, data: &[u8], want: &[Vec<u8>]) {
        let got = all_at_once(&mut SourceParser::new(boundary, 1 << 20).unwrap(), data);
        assert_eq!(got, want, "whole");
        let mut p = SourceParser::new(boundary, 1 << 20).unwrap();
        let mut got = Vec::new();
        for b in data {
            got.extend(p.feed(std::slice::from_ref(b)).unwrap());
        }
        assert_eq!(got, want, "byte by byte");
        for cut in 0..=data.len() {
            let mut p = SourceParser::new(boundary, 1 << 20).unwrap();
            let mut got = p.feed(&data[..cut]).unwrap();
            got.extend(p.feed(&data[cut..]).unwrap());
            assert_eq!(got, want, "cut at {cut}");
        }
    }

    #[test]
    fn parts_with_content_length() {
        let (a, b) = (jpeg(3, 40), jpeg(5, 30));
        let mut s = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: 44\r\n\r\n".to_vec();
        s.extend(&a);
        s.extend(b"\r\n--frame\r\nContent-Length: 34\r\n\r\n");
        s.extend(&b);
        s.extend(b"\r\n--frame\r\n");
        parses_to("frame", &s, &[a, b]);
    }

    #[test]
    fn parts_without_content_length_run_to_the_next_boundary() {
        let (a, b) = (jpeg(7, 50), jpeg(9, 20));
        let mut s = b"garbage first\r\n--myboundary\r\nContent-Type: image/jpeg\r\n\r\n".to_vec();
        s.extend(&a);
        s.extend(b"\r\n--myboundary\r\nContent-Type: image/jpeg\r\n\r\n");
        s.extend(&b);
        s.extend(b"\r\n--myboundary\r\n");
        parses_to("\"--myboundary\"", &s, &[a, b]);
    }

    #[test]
    fn odd_framing_lf_only_no_dashes_no_headers() {
        let (a, b) = (jpeg(11, 10), jpeg(13, 10));
        // LF line ends, a delimiter without dashes, a part with no headers.
        let mut s = b"--ipcam\nContent-Type: image/jpeg\n\n".to_vec();
        s.extend(&a);
        s.extend(b"\nipcam\n");
        s.extend(&b);
        s.extend(b"\n--ipcam\n");
        parses_to("ipcam", &s, &[a, b]);
    }

    #[test]
    fn bad_header_lines_are_ignored_and_the_closing_delimiter_ends() {
        let a = jpeg(17, 12);
        let mut s = b"--b\r\nnot a header\r\nContent-Length: 16\r\n\r\n".to_vec();
        s.extend(&a);
        s.extend(b"\r\n--b--\r\n--b\r\nContent-Length: 16\r\n\r\n");
        s.extend(&a);
        let mut p = SourceParser::new("b", 1 << 20).unwrap();
        assert_eq!(p.feed(&s).unwrap(), vec![a]);
        assert!(p.is_done());
    }

    #[test]
    fn limits_bound_memory() {
        let mut p = SourceParser::new("b", 100).unwrap();
        assert!(p.feed(b"--b\r\nContent-Length: 101\r\n\r\n").is_err());
        let mut p = SourceParser::new("b", 100).unwrap();
        p.feed(b"--b\r\n\r\n").unwrap();
        assert!(p.feed(&[0u8; 106]).is_err(), "unsized part over the limit");
        let mut p = SourceParser::new("b", 100).unwrap();
        assert!(p.feed(&[b'x'; 101]).is_err(), "no boundary at all");
        let mut p = SourceParser::new("b", 1 << 20).unwrap();
        assert!(p.feed(b"--b\r\n").unwrap().is_empty());
        assert!(p.feed(&[b'h'; MAX_HEADERS + 2]).is_err(), "endless headers");
    }

    #[test]
    fn content_types() {
        assert!(SourceParser::from_content_type("multipart/x-mixed-replace; boundary=--abc", 10).is_ok());
        assert!(SourceParser::from_content_type("Multipart/X-Mixed-Replace;boundary=\"abc\"", 10).is_ok());
        assert!(SourceParser::from_content_type("image/jpeg", 10).is_err());
        assert!(SourceParser::from_content_type("multipart/x-mixed-replace", 10).is_err());
        assert!(SourceParser::new("--", 10).is_err());
    }
}
