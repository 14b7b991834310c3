//! Turning a request path under `/media/` into a safe relative path.
//!
//! The path is percent-decoded exactly once; anything that could name a
//! file outside the media root (`..`, absolute paths, backslashes, NUL) is
//! refused here, before the filesystem (itself sandboxed) is asked, and so
//! is any hidden name (`.env`, `.git/config`): a folder's dotfiles are not
//! media.

use percent_encoding::percent_decode_str;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaPath {
    /// Decoded path segments; empty for the root.
    pub segments: Vec<String>,
    /// The request named a directory (`/media/videos/`).
    pub trailing_slash: bool,
}

impl MediaPath {
    /// The path relative to the media root, `/`-separated (`.` for the root).
    pub fn relative(&self) -> String {
        if self.segments.is_empty() { ".".into() } else { self.segments.join("/") }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathError(pub &'static str);

/// Resolve `raw`, the still-encoded path after the `/media/` prefix.
pub fn resolve(raw: &str) -> Result<MediaPath, PathError> {
    let decoded = percent_decode_str(raw).decode_utf8().map_err(|_| PathError("path is not UTF-8"))?;
    if decoded.chars().any(|c| c == '\0' || c == '\\' || c.is_control()) {
        return Err(PathError("path contains a forbidden character"));
    }
    let trailing_slash = decoded.is_empty() || decoded.ends_with('/');
    let body = decoded.strip_suffix('/').unwrap_or(&decoded);
    let mut segments = Vec::new();
    if !body.is_empty() {
        for seg in body.split('/') {
            match seg {
                "" => return Err(PathError("empty path segment")),
                "." | ".." => return Err(PathError("dot segment")),
                s if s.starts_with('.') => return Err(PathError("hidden name")),
                s => segments.push(s.to_string()),
            }
        }
    }
    Ok(MediaPath { segments, trailing_slash })
}

/// Percent-encode one path segment for use in a link.
pub fn encode_segment(s: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_paths() {
        let p = resolve("videos/clip%20one.mp4").unwrap();
        assert_eq!(p.segments, ["videos", "clip one.mp4"]);
        assert!(!p.trailing_slash);
        assert_eq!(p.relative(), "videos/clip one.mp4");
        let root = resolve("").unwrap();
        assert!(root.segments.is_empty() && root.trailing_slash);
        assert_eq!(root.relative(), ".");
        assert!(resolve("videos/").unwrap().trailing_slash);
        assert_eq!(resolve("%252e%252e").unwrap().segments, ["%2e%2e"], "decoded once only");
    }

    #[test]
    fn refuses_escapes() {
        for bad in [
            "..", "../etc/passwd", "a/../../b", "%2e%2e/x", "%2E%2E", "a/%2e%2e/b", ".", "./a", "a\\..\\b", "a%5c..%5cb",
            "/etc/passwd", "%2fetc/passwd", "a//b", "a%00b", "a%0ab", "%ff%fe",
        ] {
            assert!(resolve(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn refuses_hidden_names() {
        for bad in [".env", ".git/config", "a/.git/", "%2eenv", "videos/.hidden.mp4", ".well-known/x"] {
            assert_eq!(resolve(bad), Err(PathError("hidden name")), "{bad:?}");
        }
        assert!(resolve("a.b/c.d").is_ok());
    }

    #[test]
    fn encodes_links() {
        assert_eq!(encode_segment("a b#?.mp4"), "a%20b%23%3F.mp4");
    }
}
