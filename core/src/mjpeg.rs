//! `multipart/x-mixed-replace` framing for MJPEG streams, and a strict
//! incremental parser for it (used by tests and the load generator).

use std::fmt::Write as _;

/// Boundary between parts. Long and unlikely to appear in a JPEG header.
pub const BOUNDARY: &str = "framewire-mjpeg-boundary";

/// The response's Content-Type.
pub fn content_type() -> String {
    format!("multipart/x-mixed-replace; boundary={BOUNDARY}")
}

/// Bytes that open the body: the first delimiter.
pub fn preamble() -> String {
    preamble_for(BOUNDARY)
}

/// [`preamble`] for another boundary.
pub fn preamble_for(boundary: &str) -> String {
    format!("--{boundary}\r\n")
}

/// Whether `b` may be a multipart boundary: 1 to 70 characters of RFC
/// 2046's set, not ending in a space. Narrower than the RFC (no spaces at
/// all), so that it needs no quoting in a Content-Type.
pub fn check_boundary(b: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "'()+_,-./:=?".contains(c);
    if b.is_empty() || b.len() > 70 || !b.chars().all(allowed) {
        return Err(format!("a boundary is 1 to 70 letters, digits and '()+_,-./:=? ; got {b:?}"));
    }
    Ok(())
}

/// Headers of one part, up to and including the blank line.
pub fn part_header(len: usize, captured_at_us: u64, sequence: u64) -> String {
    let mut s = String::with_capacity(128);
    let _ = write!(
        s,
        "Content-Type: image/jpeg\r\nContent-Length: {len}\r\nX-Timestamp: {}\r\nX-Frame-Sequence: {sequence}\r\n\r\n",
        format_timestamp(captured_at_us)
    );
    s
}

/// What follows a part's body: its CRLF and the *next* delimiter, so a
/// browser knows the part is complete and renders it at once rather than
/// waiting for the next frame.
pub fn part_trailer() -> String {
    part_trailer_for(BOUNDARY)
}

/// [`part_trailer`] for another boundary.
pub fn part_trailer_for(boundary: &str) -> String {
    format!("\r\n--{boundary}\r\n")
}

/// What ends a stream cleanly after a [`part_trailer_for`], which has
/// already opened the next part: that part, empty, then the close
/// delimiter. A reader sees a complete multipart body rather than a cut one.
pub fn closing_for(boundary: &str) -> String {
    format!("Content-Length: 0\r\n\r\n\r\n--{boundary}--\r\n")
}

/// Unix time in seconds with microseconds, as ustreamer writes X-Timestamp.
pub fn format_timestamp(us: u64) -> String {
    format!("{}.{:06}", us / 1_000_000, us % 1_000_000)
}

/// Inverse of [`format_timestamp`].
pub fn parse_timestamp(s: &str) -> Option<u64> {
    let (secs, frac) = s.split_once('.')?;
    if frac.len() != 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(secs.parse::<u64>().ok()? * 1_000_000 + frac.parse::<u64>().ok()?)
}

/// One part of a multipart stream.
#[derive(Debug, Clone)]
pub struct Part {
    /// Header names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The body (empty when the parser skips bodies).
    pub body: Vec<u8>,
    /// The body's length.
    pub len: usize,
}

impl Part {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A framing error: the stream is not the multipart it claims to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FramingError(pub String);

impl std::fmt::Display for FramingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "multipart framing error: {}", self.0)
    }
}

impl std::error::Error for FramingError {}

#[derive(Debug)]
enum State {
    Preamble,
    Headers,
    Body { headers: Vec<(String, String)>, len: usize, seen: usize },
    Delimiter,
    Done,
}

/// Strict incremental parser: every part must carry a Content-Length, be
/// followed by CRLF and a delimiter, and have well-formed headers. Feed it
/// bytes as they arrive; it yields complete parts.
#[derive(Debug)]
pub struct Parser {
    delimiter: Vec<u8>,
    buf: Vec<u8>,
    state: State,
    max_headers: usize,
    skip_bodies: bool,
}

impl Parser {
    pub fn new(boundary: &str) -> Self {
        Parser {
            delimiter: format!("--{boundary}").into_bytes(),
            buf: Vec::new(),
            state: State::Preamble,
            max_headers: 8 * 1024,
            skip_bodies: false,
        }
    }

    /// Check framing and headers but count body bytes instead of keeping
    /// them: for load generators reading many streams at once.
    pub fn skip_bodies(mut self) -> Self {
        self.skip_bodies = true;
        self
    }

    /// Parser for the boundary named in a Content-Type header value.
    pub fn from_content_type(ct: &str) -> Result<Self, FramingError> {
        let (mime, params) = ct.split_once(';').unwrap_or((ct, ""));
        if !mime.trim().eq_ignore_ascii_case("multipart/x-mixed-replace") {
            return Err(FramingError(format!("not multipart/x-mixed-replace: {ct}")));
        }
        let boundary = params
            .split(';')
            .filter_map(|p| p.trim().split_once('='))
            .find(|(k, _)| k.eq_ignore_ascii_case("boundary"))
            .map(|(_, v)| v.trim_matches('"'))
            .ok_or_else(|| FramingError(format!("no boundary in {ct}")))?;
        Ok(Parser::new(boundary))
    }

    /// True once the closing delimiter has been seen.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Bytes buffered but not yet part of a complete part.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Add bytes; returns the parts completed by them.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<Vec<Part>, FramingError> {
        let mut parts = Vec::new();
        if self.skip_bodies && self.buf.is_empty() {
            // Skip body bytes straight from the input, without buffering.
            if let State::Body { len, seen, .. } = &mut self.state {
                let n = (*len - *seen).min(data.len());
                *seen += n;
                data = &data[n..];
                self.finish_skipped_body(&mut parts);
            }
        }
        self.buf.extend_from_slice(data);
        let mut pos = 0;
        loop {
            let rest = &self.buf[pos..];
            match &mut self.state {
                State::Preamble => {
                    let mut expect = self.delimiter.clone();
                    expect.extend_from_slice(b"\r\n");
                    let n = rest.len().min(expect.len());
                    if rest[..n] != expect[..n] {
                        return Err(FramingError("body does not start with the delimiter".into()));
                    }
                    if n < expect.len() {
                        break;
                    }
                    pos += n;
                    self.state = State::Headers;
                }
                State::Headers => {
                    let Some(end) = find(rest, b"\r\n\r\n") else {
                        if rest.len() > self.max_headers {
                            return Err(FramingError("part headers too long".into()));
                        }
                        break;
                    };
                    let text = std::str::from_utf8(&rest[..end])
                        .map_err(|_| FramingError("part headers are not UTF-8".into()))?;
                    let mut headers = Vec::new();
                    for line in text.split("\r\n") {
                        let (n, v) = line
                            .split_once(':')
                            .ok_or_else(|| FramingError(format!("bad header line {line:?}")))?;
                        if n.is_empty() || n.contains(' ') {
                            return Err(FramingError(format!("bad header name {n:?}")));
                        }
                        headers.push((n.to_ascii_lowercase(), v.trim().to_string()));
                    }
                    let len = headers
                        .iter()
                        .find(|(n, _)| n == "content-length")
                        .ok_or_else(|| FramingError("part without Content-Length".into()))?
                        .1
                        .parse::<usize>()
                        .map_err(|_| FramingError("bad Content-Length".into()))?;
                    pos += end + 4;
                    self.state = State::Body { headers, len, seen: 0 };
                }
                State::Body { len, seen, .. } if self.skip_bodies => {
                    let n = (*len - *seen).min(rest.len());
                    *seen += n;
                    pos += n;
                    if !self.finish_skipped_body(&mut parts) {
                        break;
                    }
                }
                State::Body { len, .. } => {
                    if rest.len() < *len {
                        break;
                    }
                    let len = *len;
                    let body = rest[..len].to_vec();
                    pos += len;
                    let State::Body { headers, .. } = std::mem::replace(&mut self.state, State::Delimiter) else {
                        unreachable!()
                    };
                    parts.push(Part { headers, body, len });
                }
                State::Delimiter => {
                    let need = 2 + self.delimiter.len() + 2;
                    if rest.len() < need {
                        break;
                    }
                    if &rest[..2] != b"\r\n" || rest[2..2 + self.delimiter.len()] != self.delimiter[..] {
                        return Err(FramingError("part body not followed by CRLF and delimiter".into()));
                    }
                    match &rest[2 + self.delimiter.len()..need] {
                        b"\r\n" => self.state = State::Headers,
                        b"--" => self.state = State::Done,
                        other => return Err(FramingError(format!("bad bytes after delimiter: {other:?}"))),
                    }
                    pos += need;
                }
                State::Done => {
                    pos = self.buf.len();
                    break;
                }
            }
        }
        self.buf.drain(..pos);
        Ok(parts)
    }

    /// In skip mode: emit the part if its body has been fully seen.
    fn finish_skipped_body(&mut self, parts: &mut Vec<Part>) -> bool {
        match &self.state {
            State::Body { len, seen, .. } if seen == len => {
                let State::Body { headers, len, .. } = std::mem::replace(&mut self.state, State::Delimiter) else {
                    unreachable!()
                };
                parts.push(Part { headers, body: Vec::new(), len });
                true
            }
            _ => false,
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_are_checked() {
        assert!(check_boundary(BOUNDARY).is_ok());
        assert!(check_boundary("a'()+_,-./:=?Z9").is_ok());
        assert!(check_boundary(&"b".repeat(70)).is_ok());
        for bad in ["", "has space", "semi;colon", "quote\"", "crlf\r\n", "é"] {
            assert!(check_boundary(bad).is_err(), "{bad:?}");
        }
        assert!(check_boundary(&"b".repeat(71)).is_err());
    }

    fn stream(frames: &[&[u8]]) -> Vec<u8> {
        let mut out = preamble().into_bytes();
        for (i, f) in frames.iter().enumerate() {
            out.extend(part_header(f.len(), 1_700_000_000_000_000 + i as u64, i as u64).bytes());
            out.extend_from_slice(f);
            out.extend(part_trailer().bytes());
        }
        out
    }

    #[test]
    fn round_trip_in_every_split() {
        let data = stream(&[b"\xff\xd8one\xff\xd9", b"", b"--framewire-mjpeg-boundary inside"]);
        for split in 0..data.len() {
            let mut p = Parser::from_content_type(&content_type()).unwrap();
            let mut parts = p.feed(&data[..split]).unwrap();
            parts.extend(p.feed(&data[split..]).unwrap());
            assert_eq!(parts.len(), 3, "split at {split}");
            assert_eq!(parts[0].body, b"\xff\xd8one\xff\xd9");
            assert_eq!(parts[1].body, b"");
            assert_eq!(parts[2].body, b"--framewire-mjpeg-boundary inside");
            assert_eq!(parts[2].header("content-type"), Some("image/jpeg"));
            assert_eq!(parts[2].header("x-frame-sequence"), Some("2"));
            assert_eq!(parse_timestamp(parts[1].header("x-timestamp").unwrap()), Some(1_700_000_000_000_001));
        }
    }

    #[test]
    fn skipping_bodies_keeps_lengths_and_checks_framing() {
        let data = stream(&[b"0123456789", b"", b"abc"]);
        for split in 0..data.len() {
            let mut p = Parser::new(BOUNDARY).skip_bodies();
            let mut parts = p.feed(&data[..split]).unwrap();
            parts.extend(p.feed(&data[split..]).unwrap());
            assert_eq!(parts.iter().map(|p| p.len).collect::<Vec<_>>(), [10, 0, 3], "split at {split}");
            assert!(parts.iter().all(|p| p.body.is_empty()));
        }
        let mut bad = stream(&[b"0123456789"]);
        bad.insert(bad.len() - 5, b'x');
        assert!(Parser::new(BOUNDARY).skip_bodies().feed(&bad).is_err());
    }

    #[test]
    fn body_is_ready_before_the_next_frame() {
        // The delimiter after a frame completes it: no later bytes needed.
        let data = stream(&[b"abc"]);
        let mut p = Parser::new(BOUNDARY);
        assert_eq!(p.feed(&data).unwrap().len(), 1);
        assert_eq!(p.buffered(), 0);
    }

    #[test]
    fn rejects_bad_framing() {
        let mut p = Parser::new(BOUNDARY);
        assert!(p.feed(b"--wrong-boundary\r\n").is_err());

        let mut p = Parser::new(BOUNDARY);
        let mut d = preamble().into_bytes();
        d.extend(b"Content-Type: image/jpeg\r\n\r\nabc");
        assert!(p.feed(&d).is_err(), "missing Content-Length");

        let mut p = Parser::new(BOUNDARY);
        let mut d = preamble().into_bytes();
        d.extend(b"Content-Length: 2\r\n\r\nabc\r\n");
        d.extend(preamble().bytes());
        assert!(p.feed(&d).is_err(), "length shorter than the body");
    }

    #[test]
    fn closing_after_a_trailer_is_an_empty_part_and_the_end() {
        let mut d = preamble().into_bytes();
        d.extend(part_header(1, 0, 1).bytes());
        d.extend(b"x");
        d.extend(part_trailer().bytes());
        d.extend(closing_for(BOUNDARY).bytes());
        let mut p = Parser::new(BOUNDARY);
        let parts = p.feed(&d).unwrap();
        assert_eq!(parts.iter().map(|p| p.len).collect::<Vec<_>>(), [1, 0]);
        assert!(p.is_done());
    }

    #[test]
    fn closing_delimiter_ends_stream() {
        let mut d = preamble().into_bytes();
        d.extend(b"Content-Length: 1\r\n\r\nx\r\n--");
        d.extend(BOUNDARY.bytes());
        d.extend(b"--");
        let mut p = Parser::new(BOUNDARY);
        assert_eq!(p.feed(&d).unwrap().len(), 1);
        assert!(p.is_done());
    }

    #[test]
    fn timestamps() {
        assert_eq!(format_timestamp(1_597_077_293_000_042), "1597077293.000042");
        assert_eq!(parse_timestamp("1597077293.000042"), Some(1_597_077_293_000_042));
        assert_eq!(parse_timestamp("1597077293.42"), None);
        assert!(Parser::from_content_type("image/jpeg").is_err());
    }
}
