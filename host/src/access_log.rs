//! `--access-log PATH|-`: one line per response when it ends (a live
//! stream when its viewer leaves), in the combined log format that log
//! tools read, followed by the duration in seconds and the frames a relayed
//! stream sent (`-` for other responses):
//!
//! `127.0.0.1 - alice [01/Dec/2026:06:50:00 +0000] "GET /stream HTTP/1.1" 200 1234567 "-" "curl/8.1" 12.034 360`

use anyhow::{Context, Result};
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

pub struct AccessLog {
    // One write per line (LineWriter), so lines from threads never interleave.
    out: Mutex<std::io::LineWriter<Box<dyn Write + Send>>>,
}

impl AccessLog {
    /// `-` is standard output; anything else a file appended to (created if need be).
    pub fn open(target: &str) -> Result<AccessLog> {
        let out: Box<dyn Write + Send> = if target == "-" {
            Box::new(std::io::stdout())
        } else {
            let path = Path::new(target);
            Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("cannot open the access log {}", path.display()))?,
            )
        };
        Ok(AccessLog { out: Mutex::new(std::io::LineWriter::new(out)) })
    }

    pub fn write(&self, entry: &Entry) {
        let line = entry.to_string();
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = out.write_all(line.as_bytes()) {
            tracing::warn!("cannot write the access log: {e}");
        }
    }
}

/// One finished response.
pub struct Entry<'a> {
    pub peer: IpAddr,
    pub user: Option<&'a str>,
    /// When the request arrived.
    pub at: SystemTime,
    pub method: &'a str,
    pub target: &'a str,
    /// Written as hyper names it: `HTTP/1.1`, `HTTP/2.0`.
    pub version: hyper::Version,
    pub status: u16,
    pub bytes: u64,
    pub referer: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub duration: Duration,
    /// Parts sent, for a relayed live stream.
    pub frames: Option<u64>,
}

impl std::fmt::Display for Entry<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = time::OffsetDateTime::from(self.at);
        let at = at
            .format(time::macros::format_description!(
                "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
            ))
            .map_err(|_| std::fmt::Error)?;
        let bytes = if self.bytes == 0 { "-".to_string() } else { self.bytes.to_string() };
        let frames = self.frames.map_or("-".to_string(), |n| n.to_string());
        writeln!(
            f,
            "{} - {} [{at}] \"{} {} {:?}\" {} {bytes} \"{}\" \"{}\" {:.3} {frames}",
            self.peer,
            Escaped(self.user.unwrap_or("-")),
            Escaped(self.method),
            Escaped(self.target),
            self.version,
            self.status,
            Escaped(self.referer.unwrap_or("-")),
            Escaped(self.user_agent.unwrap_or("-")),
            self.duration.as_secs_f64(),
        )
    }
}

/// A client's text, written so that it cannot end a field or a line, or
/// forge one: quotes, backslashes, controls and non-ASCII as `\xHH`.
struct Escaped<'a>(&'a str);

impl std::fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0.bytes() {
            match b {
                b'"' | b'\\' => write!(f, "\\x{b:02X}")?,
                0x20..=0x7e => f.write_str(std::str::from_utf8(&[b]).expect("ASCII"))?,
                _ => write!(f, "\\x{b:02X}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(ua: &'a str, frames: Option<u64>) -> Entry<'a> {
        Entry {
            peer: "127.0.0.1".parse().unwrap(),
            user: Some("alice"),
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_107_800),
            method: "GET",
            target: "/stream?fps=5",
            version: hyper::Version::HTTP_11,
            status: 200,
            bytes: 1234,
            referer: None,
            user_agent: Some(ua),
            duration: Duration::from_millis(12_034),
            frames,
        }
    }

    #[test]
    fn combined_format_with_duration_and_frames() {
        assert_eq!(
            entry("curl/8.1", Some(360)).to_string(),
            "127.0.0.1 - alice [01/Dec/2026:06:50:00 +0000] \"GET /stream?fps=5 HTTP/1.1\" 200 1234 \"-\" \"curl/8.1\" 12.034 360\n"
        );
        let mut e = entry("x", None);
        e.bytes = 0;
        assert!(e.to_string().ends_with(" 200 - \"-\" \"x\" 12.034 -\n"), "{e}");
    }

    #[test]
    fn client_text_cannot_break_the_line() {
        let line = entry("a\"b\\c\nd\u{e9}", None).to_string();
        assert!(line.contains("\"a\\x22b\\x5Cc\\x0Ad\\xC3\\xA9\""), "{line}");
        assert_eq!(line.matches('\n').count(), 1);
    }
}
