//! Content types by file extension.

/// Types browsers need exactly for media, where guessers disagree.
const MEDIA: &[(&str, &str)] = &[
    ("mp4", "video/mp4"),
    ("m4v", "video/mp4"),
    ("webm", "video/webm"),
    ("mkv", "video/x-matroska"),
    ("mov", "video/quicktime"),
    ("m4a", "audio/mp4"),
    ("mp3", "audio/mpeg"),
    ("ogg", "audio/ogg"),
    ("oga", "audio/ogg"),
    ("ogv", "video/ogg"),
    ("opus", "audio/ogg"),
    ("wav", "audio/wav"),
    ("flac", "audio/flac"),
    ("m3u8", "application/vnd.apple.mpegurl"),
    ("ts", "video/mp2t"),
    ("pdf", "application/pdf"),
    ("txt", "text/plain; charset=utf-8"),
];

/// The Content-Type for a file name; `application/octet-stream` if unknown.
pub fn content_type(name: &str) -> String {
    let Some((_, ext)) = name.rsplit_once('.') else {
        return "application/octet-stream".into();
    };
    let ext = ext.to_ascii_lowercase();
    if let Some((_, t)) = MEDIA.iter().find(|(e, _)| *e == ext) {
        return (*t).into();
    }
    mime_guess::from_ext(&ext).first_raw().unwrap_or("application/octet-stream").into()
}

/// Whether a browser given this type may run script from it on the
/// server's origin (HTML, XHTML, SVG, XML, JavaScript): such files are
/// served with `Content-Security-Policy: sandbox`.
pub fn may_run_script(content_type: &str) -> bool {
    let t = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    t == "text/html" || t.ends_with("/xml") || t.ends_with("+xml") || t.ends_with("javascript") || t.ends_with("ecmascript")
}

#[cfg(test)]
mod tests {
    use super::{content_type, may_run_script};

    #[test]
    fn active_types() {
        for name in ["a.html", "a.HTM", "a.xhtml", "a.svg", "a.xml", "a.js", "a.mjs"] {
            assert!(may_run_script(&content_type(name)), "{name}: {}", content_type(name));
        }
        for name in ["a.mp4", "a.webm", "a.txt", "a.pdf", "a.jpg", "a.css", "a.json", "noext"] {
            assert!(!may_run_script(&content_type(name)), "{name}: {}", content_type(name));
        }
    }

    #[test]
    fn types() {
        assert_eq!(content_type("a.MP4"), "video/mp4");
        assert_eq!(content_type("a.webm"), "video/webm");
        assert_eq!(content_type("a.ts"), "video/mp2t");
        assert_eq!(content_type("x.m3u8"), "application/vnd.apple.mpegurl");
        assert_eq!(content_type("doc.pdf"), "application/pdf");
        assert_eq!(content_type("p.jpg"), "image/jpeg");
        assert_eq!(content_type("p.png"), "image/png");
        assert_eq!(content_type("noext"), "application/octet-stream");
        assert_eq!(content_type("weird.zzzz"), "application/octet-stream");
    }
}
