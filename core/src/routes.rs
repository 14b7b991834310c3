//! Path routing: the host's prefix table and the camera handler's own paths.

/// Whether `path` falls under route `pattern`. A pattern ending in `/`
/// covers everything below it; any other pattern covers itself and what
/// lies below it as a path segment (`/stream` covers `/stream` and
/// `/stream/x`, not `/streams`).
pub fn covers(pattern: &str, path: &str) -> bool {
    if pattern.ends_with('/') {
        path.starts_with(pattern) || path == pattern.trim_end_matches('/')
    } else {
        path == pattern || path.strip_prefix(pattern).is_some_and(|r| r.starts_with('/'))
    }
}

/// The most specific of `patterns` that covers `path` (longest wins).
pub fn best_match<'a, I>(patterns: I, path: &str) -> Option<usize>
where
    I: IntoIterator<Item = &'a str>,
{
    patterns
        .into_iter()
        .enumerate()
        .filter(|(_, p)| covers(p, path))
        .max_by_key(|(_, p)| p.len())
        .map(|(i, _)| i)
}

/// What a camera handler is asked for. `None` camera means the default one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CameraRoute<'a> {
    Stream(Option<&'a str>),
    Snapshot(Option<&'a str>),
    State,
}

/// Map a request path to a camera handler route.
pub fn camera_route(path: &str) -> Option<CameraRoute<'_>> {
    match path {
        "/stream" => return Some(CameraRoute::Stream(None)),
        "/snapshot" => return Some(CameraRoute::Snapshot(None)),
        "/api/state" => return Some(CameraRoute::State),
        _ => {}
    }
    let rest = path.strip_prefix("/cameras/")?;
    let (name, what) = rest.split_once('/')?;
    if name.is_empty() {
        return None;
    }
    match what {
        "stream" => Some(CameraRoute::Stream(Some(name))),
        "snapshot" => Some(CameraRoute::Snapshot(Some(name))),
        _ => None,
    }
}

/// mjpg-streamer's URLs, which OctoPrint, Home Assistant and many scripts
/// use: `/?action=stream` and `/?action=snapshot` (its first camera) are
/// `/stream` and `/snapshot`. Returns the path to serve instead.
pub fn mjpg_streamer_alias(path: &str, query: &str) -> Option<&'static str> {
    if path != "/" {
        return None;
    }
    let pairs = crate::query::pairs(query).ok()?;
    match pairs.iter().find(|(k, _)| k == "action")?.1.as_str() {
        "stream" => Some("/stream"),
        "snapshot" => Some("/snapshot"),
        _ => None,
    }
}

/// Camera names are kept simple so they can sit in a URL path unescaped.
pub fn valid_camera_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_rules() {
        assert!(covers("/stream", "/stream"));
        assert!(covers("/stream", "/stream/x"));
        assert!(!covers("/stream", "/streams"));
        assert!(covers("/cameras/", "/cameras/a/stream"));
        assert!(covers("/media/", "/media"));
        assert!(covers("/", "/anything"));
        let table = ["/", "/media/", "/stream"];
        assert_eq!(best_match(table, "/media/a.mp4"), Some(1));
        assert_eq!(best_match(table, "/stream"), Some(2));
        assert_eq!(best_match(table, "/x"), Some(0));
        assert_eq!(best_match(["/stream"], "/x"), None);
    }

    #[test]
    fn camera_paths() {
        assert_eq!(camera_route("/stream"), Some(CameraRoute::Stream(None)));
        assert_eq!(camera_route("/cameras/front/stream"), Some(CameraRoute::Stream(Some("front"))));
        assert_eq!(camera_route("/cameras/front/snapshot"), Some(CameraRoute::Snapshot(Some("front"))));
        assert_eq!(camera_route("/api/state"), Some(CameraRoute::State));
        assert_eq!(camera_route("/cameras//stream"), None);
        assert_eq!(camera_route("/cameras/front"), None);
        assert_eq!(camera_route("/cameras/front/stream/x"), None);
        assert_eq!(camera_route("/other"), None);
    }

    #[test]
    fn mjpg_streamer_urls() {
        assert_eq!(mjpg_streamer_alias("/", "action=stream"), Some("/stream"));
        assert_eq!(mjpg_streamer_alias("/", "action=snapshot&n=1"), Some("/snapshot"));
        assert_eq!(mjpg_streamer_alias("/", "t=1&action=stream"), Some("/stream"));
        assert_eq!(mjpg_streamer_alias("/", ""), None);
        assert_eq!(mjpg_streamer_alias("/", "action=other"), None);
        assert_eq!(mjpg_streamer_alias("/x", "action=stream"), None);
    }

    #[test]
    fn camera_names() {
        assert!(valid_camera_name("front-door_2"));
        assert!(!valid_camera_name(""));
        assert!(!valid_camera_name("a/b"));
        assert!(!valid_camera_name("a b"));
    }
}
