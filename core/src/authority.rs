//! The Host a request names, checked against DNS rebinding: a page on
//! `evil.example` that points its name at 127.0.0.1 reaches a local server
//! as same-origin, but its requests still say `Host: evil.example`. A name
//! is only accepted when the operator gave it; `localhost` and IP literals
//! (which no DNS answer can rebind) always are.

/// The host part of a Host header value: port and IPv6 brackets removed,
/// lower-cased, trailing dot dropped.
pub fn host_name(host: &str) -> String {
    let host = host.trim();
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or("", |(h, _)| h),
        None => host.rsplit_once(':').map_or(host, |(h, port)| if port.bytes().all(|b| b.is_ascii_digit()) { h } else { host }),
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// `localhost` (or a name under it) or an IP address.
pub fn is_local_or_literal(host: &str) -> bool {
    let name = host_name(host);
    name == "localhost" || name.ends_with(".localhost") || name.parse::<std::net::IpAddr>().is_ok()
}

/// Whether a request naming `host` may be served: a local name or literal,
/// or one of `allowed` (`*` allows any).
pub fn allowed(host: &str, allowed: &[String]) -> bool {
    if is_local_or_literal(host) {
        return true;
    }
    let name = host_name(host);
    !name.is_empty() && allowed.iter().any(|a| a == "*" || host_name(a) == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_literals() {
        assert_eq!(host_name("Example.COM:8080"), "example.com");
        assert_eq!(host_name("[::1]:8080"), "::1");
        assert_eq!(host_name("cam.local."), "cam.local");
        for ok in ["localhost", "localhost:8080", "LOCALHOST.", "app.localhost:1", "127.0.0.1:8080", "10.1.2.3", "[::1]:80", "[fe80::1]"] {
            assert!(is_local_or_literal(ok), "{ok}");
        }
        for bad in ["evil.example", "evil.example:8080", "127.0.0.1.nip.io", "localhost.evil.example", "", "[::1"] {
            assert!(!is_local_or_literal(bad), "{bad}");
        }
    }

    #[test]
    fn allow_list() {
        let list = vec!["cam.example".to_string()];
        assert!(allowed("cam.example:8443", &list));
        assert!(allowed("CAM.example.", &list));
        assert!(!allowed("evil.example", &list));
        assert!(allowed("127.0.0.1:8080", &[]));
        assert!(allowed("anything.example", &["*".to_string()]));
        assert!(!allowed("", &["*".to_string()]), "a request must name a host");
    }
}
