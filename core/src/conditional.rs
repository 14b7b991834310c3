//! RFC 9110 conditional requests (§13): validators and the order in which
//! preconditions are evaluated (§13.2.2).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The validators of the selected representation.
#[derive(Debug, Clone)]
pub struct Validators {
    /// A strong entity-tag, quotes included.
    pub etag: String,
    pub last_modified: SystemTime,
    /// Whether Last-Modified is strong: at least a second before the
    /// response's date, so no second write can have shared its timestamp
    /// (RFC 9110 §8.8.2.2). Only a strong date may validate If-Range.
    pub last_modified_is_strong: bool,
}

impl Validators {
    /// Validators for a file, for a response dated `now`: the tag changes
    /// when its identity (any number that changes when another file takes
    /// its place), size or modification time does.
    pub fn for_file(identity: u64, size: u64, modified: SystemTime, now: SystemTime) -> Self {
        let nanos = modified.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
        Validators {
            etag: format!("\"{identity:x}-{size:x}-{nanos:x}\""),
            last_modified: modified,
            last_modified_is_strong: now.duration_since(modified).is_ok_and(|d| d >= Duration::from_secs(1)),
        }
    }

    pub fn last_modified_header(&self) -> String {
        httpdate::fmt_http_date(self.last_modified)
    }
}

/// The conditional headers of a request (values of repeated headers joined
/// with commas).
#[derive(Debug, Clone, Default)]
pub struct Conditions<'a> {
    pub if_match: Option<&'a str>,
    pub if_none_match: Option<&'a str>,
    pub if_modified_since: Option<&'a str>,
    pub if_unmodified_since: Option<&'a str>,
    pub if_range: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Serve it. `honor_range`: false when If-Range did not match.
    Proceed { honor_range: bool },
    /// 304 Not Modified.
    NotModified,
    /// 412 Precondition Failed.
    Failed,
}

/// One entity-tag from a list: (weak, opaque-tag with quotes).
fn tags(list: &str) -> impl Iterator<Item = (bool, &str)> {
    list.split(',').map(str::trim).filter(|t| !t.is_empty()).filter_map(|t| {
        let (weak, tag) = match t.strip_prefix("W/") {
            Some(rest) => (true, rest),
            None => (false, t),
        };
        (tag.len() >= 2 && tag.starts_with('"') && tag.ends_with('"')).then_some((weak, tag))
    })
}

fn strong_match(list: &str, etag: &str) -> bool {
    list.trim() == "*" || tags(list).any(|(weak, t)| !weak && t == etag)
}

fn weak_match(list: &str, etag: &str) -> bool {
    let etag = etag.strip_prefix("W/").unwrap_or(etag);
    list.trim() == "*" || tags(list).any(|(_, t)| t == etag)
}

fn seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs()
}

fn date(s: &str) -> Option<u64> {
    httpdate::parse_http_date(s.trim()).ok().map(seconds)
}

/// Evaluate preconditions in RFC 9110 §13.2.2 order. `get_or_head` says
/// whether the method is GET or HEAD (other methods get 412, not 304).
pub fn evaluate(c: &Conditions, v: &Validators, get_or_head: bool) -> Outcome {
    let modified = seconds(v.last_modified);
    if let Some(im) = c.if_match {
        if !strong_match(im, &v.etag) {
            return Outcome::Failed;
        }
    } else if let Some(d) = c.if_unmodified_since.and_then(date)
        && modified > d
    {
        return Outcome::Failed;
    }
    if let Some(inm) = c.if_none_match {
        if weak_match(inm, &v.etag) {
            return if get_or_head { Outcome::NotModified } else { Outcome::Failed };
        }
    } else if get_or_head
        && let Some(d) = c.if_modified_since.and_then(date)
        && modified <= d
    {
        return Outcome::NotModified;
    }
    let honor_range = match c.if_range.map(str::trim) {
        None => true,
        Some(ir) if ir.starts_with('"') || ir.starts_with("W/") => ir == v.etag,
        Some(ir) => v.last_modified_is_strong && date(ir) == Some(modified),
    };
    Outcome::Proceed { honor_range }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v() -> Validators {
        let modified = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        Validators::for_file(0, 0, modified, modified + Duration::from_secs(1)).with_etag("\"abc\"")
    }

    impl Validators {
        fn with_etag(mut self, etag: &str) -> Self {
            self.etag = etag.into();
            self
        }
    }
    const LM: &str = "Tue, 14 Nov 2023 22:13:20 GMT";
    const BEFORE: &str = "Tue, 14 Nov 2023 22:13:19 GMT";
    const AFTER: &str = "Tue, 14 Nov 2023 22:13:21 GMT";

    fn eval(c: Conditions) -> Outcome {
        evaluate(&c, &v(), true)
    }
    const GO: Outcome = Outcome::Proceed { honor_range: true };

    #[test]
    fn last_modified_formats() {
        assert_eq!(v().last_modified_header(), LM);
    }

    #[test]
    fn if_none_match_and_if_modified_since() {
        assert_eq!(eval(Conditions { if_none_match: Some("\"abc\""), ..Default::default() }), Outcome::NotModified);
        assert_eq!(eval(Conditions { if_none_match: Some("W/\"abc\""), ..Default::default() }), Outcome::NotModified, "weak comparison");
        assert_eq!(eval(Conditions { if_none_match: Some("\"x\", \"abc\""), ..Default::default() }), Outcome::NotModified);
        assert_eq!(eval(Conditions { if_none_match: Some("*"), ..Default::default() }), Outcome::NotModified);
        assert_eq!(eval(Conditions { if_none_match: Some("\"x\""), ..Default::default() }), GO);
        assert_eq!(evaluate(&Conditions { if_none_match: Some("\"abc\""), ..Default::default() }, &v(), false), Outcome::Failed);
        assert_eq!(eval(Conditions { if_modified_since: Some(LM), ..Default::default() }), Outcome::NotModified);
        assert_eq!(eval(Conditions { if_modified_since: Some(AFTER), ..Default::default() }), Outcome::NotModified);
        assert_eq!(eval(Conditions { if_modified_since: Some(BEFORE), ..Default::default() }), GO);
        assert_eq!(eval(Conditions { if_modified_since: Some("garbage"), ..Default::default() }), GO);
        // If-None-Match wins over If-Modified-Since.
        assert_eq!(eval(Conditions { if_none_match: Some("\"x\""), if_modified_since: Some(AFTER), ..Default::default() }), GO);
    }

    #[test]
    fn if_match_and_if_unmodified_since() {
        assert_eq!(eval(Conditions { if_match: Some("\"abc\""), ..Default::default() }), GO);
        assert_eq!(eval(Conditions { if_match: Some("*"), ..Default::default() }), GO);
        assert_eq!(eval(Conditions { if_match: Some("W/\"abc\""), ..Default::default() }), Outcome::Failed, "strong comparison");
        assert_eq!(eval(Conditions { if_match: Some("\"x\""), ..Default::default() }), Outcome::Failed);
        assert_eq!(eval(Conditions { if_unmodified_since: Some(BEFORE), ..Default::default() }), Outcome::Failed);
        assert_eq!(eval(Conditions { if_unmodified_since: Some(LM), ..Default::default() }), GO);
        assert_eq!(eval(Conditions { if_unmodified_since: Some("nonsense"), ..Default::default() }), GO);
        // If-Match wins over If-Unmodified-Since.
        assert_eq!(eval(Conditions { if_match: Some("\"abc\""), if_unmodified_since: Some(BEFORE), ..Default::default() }), GO);
    }

    #[test]
    fn if_range() {
        let no = Outcome::Proceed { honor_range: false };
        assert_eq!(eval(Conditions { if_range: Some("\"abc\""), ..Default::default() }), GO);
        assert_eq!(eval(Conditions { if_range: Some("\"old\""), ..Default::default() }), no);
        assert_eq!(eval(Conditions { if_range: Some("W/\"abc\""), ..Default::default() }), no, "weak tags never match");
        assert_eq!(eval(Conditions { if_range: Some(LM), ..Default::default() }), GO);
        assert_eq!(eval(Conditions { if_range: Some(AFTER), ..Default::default() }), no, "dates must match exactly");
        assert_eq!(eval(Conditions { if_range: Some("junk"), ..Default::default() }), no);
        // A file modified within the second before the response: its date is weak.
        let fresh = Validators::for_file(0, 0, v().last_modified, v().last_modified + Duration::from_millis(999));
        assert!(!fresh.last_modified_is_strong);
        let c = Conditions { if_range: Some(LM), ..Default::default() };
        assert_eq!(evaluate(&c, &fresh, true), no, "a weak date never validates If-Range");
    }

    #[test]
    fn file_tags_change_with_identity_size_and_time() {
        let t = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        let f = |id, size, t| Validators::for_file(id, size, t, t);
        let a = f(7, 100, t);
        assert!(a.etag.starts_with('"') && a.etag.ends_with('"'));
        assert_ne!(a.etag, f(8, 100, t).etag);
        assert_ne!(a.etag, f(7, 101, t).etag);
        assert_ne!(a.etag, f(7, 100, t + Duration::from_nanos(1)).etag);
    }
}
