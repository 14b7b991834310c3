//! Query strings: percent-decoded pairs, and the typed queries handlers take.

use percent_encoding::percent_decode_str;

/// A query that cannot be accepted; the message is meant for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError(pub String);

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Split `a=1&b=x%20y` into decoded pairs (`+` is a space, as in forms).
/// Invalid UTF-8 after decoding is an error.
pub fn pairs(query: &str) -> Result<Vec<(String, String)>, QueryError> {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        percent_decode_str(&s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| QueryError(format!("query is not valid UTF-8 after decoding: {s:?}")))
    };
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

/// Highest frame rate a client may ask for.
pub const MAX_FPS: f32 = 240.0;
/// Lowest frame rate a client may ask for (one frame a minute).
pub const MIN_FPS: f32 = 1.0 / 60.0;

/// A frame-rate cap within [`MIN_FPS`, `MAX_FPS`], or why not.
pub fn check_fps(fps: f32) -> Result<(), String> {
    if !fps.is_finite() || !(MIN_FPS..=MAX_FPS).contains(&fps) {
        return Err(format!("fps must be between {MIN_FPS:.4} and {MAX_FPS}, got {fps}"));
    }
    Ok(())
}

/// Options of a stream request.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StreamQuery {
    /// Cap on frames per second delivered to this client.
    pub fps: Option<f32>,
    /// Run the per-frame loop in the component instead of handing the
    /// stream to the host (`relay=0`): the way a component that shapes each
    /// part itself streams, kept to compare and test.
    pub in_guest: bool,
}

/// Parse a stream request's query. Unknown parameters are ignored, as
/// cache-busting parameters (`?t=123`) are common in pages; a known one
/// with a bad value is an error.
pub fn stream_query(query: &str) -> Result<StreamQuery, QueryError> {
    let mut out = StreamQuery::default();
    for (k, v) in pairs(query)? {
        if k == "fps" {
            let fps: f32 = v
                .trim()
                .parse()
                .map_err(|_| QueryError(format!("fps must be a number, got {v:?}")))?;
            check_fps(fps).map_err(QueryError)?;
            out.fps = Some(fps);
        } else if k == "relay" {
            out.in_guest = match v.as_str() {
                "0" => true,
                "1" => false,
                _ => return Err(QueryError(format!("relay must be 0 or 1, got {v:?}"))),
            };
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_pairs() {
        assert_eq!(
            pairs("a=1&b=x%20y&c&d=e+f&&").unwrap(),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y".into()),
                ("c".into(), "".into()),
                ("d".into(), "e f".into())
            ]
        );
        assert!(pairs("a=%ff%fe").is_err());
    }

    #[test]
    fn fps_values() {
        assert_eq!(stream_query("").unwrap().fps, None);
        assert_eq!(stream_query("fps=5").unwrap().fps, Some(5.0));
        assert_eq!(stream_query("t=99&fps=0.5").unwrap().fps, Some(0.5));
        for bad in ["fps=", "fps=0", "fps=-3", "fps=abc", "fps=NaN", "fps=inf", "fps=1000"] {
            assert!(stream_query(bad).is_err(), "{bad} must be rejected");
        }
    }

    #[test]
    fn relay_values() {
        assert!(!stream_query("").unwrap().in_guest);
        assert!(stream_query("relay=0").unwrap().in_guest);
        assert!(!stream_query("fps=2&relay=1").unwrap().in_guest);
        assert!(stream_query("relay=no").is_err());
    }
}
