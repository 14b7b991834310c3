//! A network camera's URL with its credentials taken out: they go to the
//! protocol's authentication, and only `display`, with the password shown
//! as `***`, goes to logs, errors and the state page.

use anyhow::{Context, Result, anyhow, bail};

#[derive(Clone, PartialEq)]
pub struct SourceUrl {
    /// Without credentials.
    pub url: url::Url,
    /// User and password, percent-decoded.
    pub credentials: Option<(String, String)>,
    /// The URL as given, password replaced.
    pub display: String,
}

impl std::fmt::Debug for SourceUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display)
    }
}

impl SourceUrl {
    /// Parse `s`, whose scheme must be one of `schemes`.
    pub fn parse(s: &str, schemes: &[&str]) -> Result<SourceUrl> {
        let mut url = url::Url::parse(s).map_err(|e| anyhow!("bad URL: {e}"))?;
        if !schemes.contains(&url.scheme()) {
            let expected: Vec<String> = schemes.iter().map(|s| format!("{s}://")).collect();
            bail!("unsupported scheme {:?}; expected {}", url.scheme(), expected.join(" or "));
        }
        url.host_str().filter(|h| !h.is_empty()).context("URL without a host")?;
        let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
        let credentials = (!url.username().is_empty() || url.password().is_some())
            .then(|| (decode(url.username()), decode(url.password().unwrap_or(""))));
        let display = redact_url(&url);
        let _ = url.set_username("");
        let _ = url.set_password(None);
        Ok(SourceUrl { url, credentials, display })
    }
}

fn redact_url(url: &url::Url) -> String {
    let mut shown = url.clone();
    if url.password().is_some() {
        let _ = shown.set_password(Some("***"));
    }
    shown.to_string()
}

/// A camera source as written, with a URL's password shown as `***`;
/// anything without one is returned as it is.
pub fn redact(source: &str) -> String {
    let (main, options) = source.split_once(',').map_or((source, None), |(m, o)| (m, Some(o)));
    let main = match url::Url::parse(main) {
        Ok(url) if url.password().is_some() => redact_url(&url),
        _ => main.to_string(),
    };
    match options {
        Some(o) => format!("{main},{o}"),
        None => main,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_out_and_the_password_is_hidden() {
        let u = SourceUrl::parse("rtsp://admin:p%40ss@10.0.0.9:554/s1", &["rtsp"]).unwrap();
        assert_eq!(u.credentials, Some(("admin".into(), "p@ss".into())));
        assert_eq!(u.url.as_str(), "rtsp://10.0.0.9:554/s1");
        assert_eq!((u.display.as_str(), format!("{u:?}")), ("rtsp://admin:***@10.0.0.9:554/s1", u.display.clone()));
        assert!(SourceUrl::parse("http://cam/", &["rtsp"]).unwrap_err().to_string().contains("expected rtsp://"));
        assert_eq!(redact("rtsp://u:pw@cam/x,always-on"), "rtsp://u:***@cam/x,always-on");
        assert_eq!(redact("test:640x480@30,always-on"), "test:640x480@30,always-on");
        assert_eq!(redact("http://cam/x"), "http://cam/x");
    }
}
