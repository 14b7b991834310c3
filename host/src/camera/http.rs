//! An MJPEG stream over HTTP(S) as a camera: an IP camera's
//! `multipart/x-mixed-replace` URL, or another framewire's
//! `/cameras/NAME/stream` (a relay). Frames are published as received,
//! never decoded or encoded here; whoever publishes them checks each is a
//! whole JPEG. Read with hyper on a small runtime of the source's own
//! (camera threads are plain threads), through the tolerant reader in
//! `framewire_core::mjpeg_source`.
//!
//! Credentials come from the URL's `user:password@`. The first request goes
//! without them; a 401 says which scheme the camera wants, Digest (RFC 7616,
//! by `digest_auth`) or Basic, so a password never crosses the network in
//! clear to a camera that asks for Digest.
//!
//! While nobody watches, the connection is closed: an idle IP camera costs
//! neither bandwidth nor its own CPU, and the first frame after is fresh.

use super::source_tls::{Trust, client_config};
use super::source_url::SourceUrl;
use super::{Image, Opened, Source};
use anyhow::{Context, Result, anyhow, bail, ensure};
use bytes::Bytes;
use framewire_core::mjpeg_source::SourceParser;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// Largest part taken from a source: a 4K JPEG at high quality fits.
pub const MAX_PART: usize = 8 << 20;
/// How long connecting and the response head may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A source sending nothing this long is taken as gone (and reconnected).
const NO_DATA_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a wait for data looks at the stop flag.
const STOP_CHECK: Duration = Duration::from_millis(250);

/// An `http://` or `https://` URL taken apart for connecting.
#[derive(Clone, PartialEq)]
pub struct HttpUrl {
    pub source: SourceUrl,
    pub tls: bool,
    /// The host alone, for TLS's server name.
    pub host: String,
    /// host:port, for connecting and for the Host header.
    pub authority: String,
    pub path: String,
}

impl std::fmt::Debug for HttpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.source.fmt(f)
    }
}

impl HttpUrl {
    pub fn parse(s: &str) -> Result<HttpUrl> {
        let source = SourceUrl::parse(s, &["http", "https"])?;
        let url = &source.url;
        let tls = url.scheme() == "https";
        let host = url.host_str().context("URL without a host")?;
        let port = url.port_or_known_default().unwrap_or(if tls { 443 } else { 80 });
        let authority = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
        let authority = authority.replace("[[", "[").replace("]]", "]");
        let path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        Ok(HttpUrl { source, tls, host, authority, path })
    }
}

/// An open stream: the body, and the parts read from it not yet captured.
struct Stream {
    body: Incoming,
    parser: SourceParser,
    ready: VecDeque<Vec<u8>>,
}

pub struct HttpMjpeg {
    url: HttpUrl,
    tls: Option<tokio_rustls::TlsConnector>,
    runtime: tokio::runtime::Runtime,
    stream: Option<Stream>,
    stop: Arc<AtomicBool>,
}

impl HttpMjpeg {
    pub fn new(url: HttpUrl, trust: &Trust, stop: Arc<AtomicBool>) -> Result<HttpMjpeg> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let tls = url.tls.then(|| client_config(trust).map(tokio_rustls::TlsConnector::from)).transpose()?;
        Ok(HttpMjpeg { url, tls, runtime, stream: None, stop })
    }

    /// Connect and get the stream's head, answering an authentication
    /// challenge once.
    fn connect(&mut self) -> Result<Stream> {
        let (url, tls) = (self.url.clone(), self.tls.clone());
        let tls = tls.as_ref();
        self.runtime.block_on(async move {
            let response = tokio::time::timeout(CONNECT_TIMEOUT, request(&url, tls, None))
                .await
                .map_err(|_| anyhow!("no answer within {CONNECT_TIMEOUT:?}"))??;
            let response = if response.status() == hyper::StatusCode::UNAUTHORIZED {
                let (user, password) = url.source.credentials.as_ref().context("401: the camera wants a user and password in the URL")?;
                let authorization = answer_challenge(&response, &url.path, user, password)?;
                tokio::time::timeout(CONNECT_TIMEOUT, request(&url, tls, Some(authorization)))
                    .await
                    .map_err(|_| anyhow!("no answer within {CONNECT_TIMEOUT:?}"))??
            } else {
                response
            };
            let status = response.status();
            ensure!(status != hyper::StatusCode::UNAUTHORIZED, "401: user or password refused");
            ensure!(status.is_success(), "HTTP {status}");
            let ct = response.headers().get(hyper::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
            let parser = SourceParser::from_content_type(ct, MAX_PART)?;
            Ok(Stream { body: response.into_body(), parser, ready: VecDeque::new() })
        })
    }

    /// The next part's bytes, reading as needed.
    fn next_part(&mut self) -> Result<Vec<u8>> {
        if self.stream.is_none() {
            self.stream = Some(self.connect()?);
        }
        let (stream, stop, runtime) = (self.stream.as_mut().expect("connected above"), &self.stop, &self.runtime);
        let mut last_data = Instant::now();
        loop {
            if let Some(part) = stream.ready.pop_front() {
                return Ok(part);
            }
            if stream.parser.is_done() {
                bail!("the source ended its stream");
            }
            if stop.load(Ordering::Relaxed) {
                bail!("stopping");
            }
            match runtime.block_on(async { tokio::time::timeout(STOP_CHECK, stream.body.frame()).await }) {
                Err(_) if last_data.elapsed() > NO_DATA_TIMEOUT => bail!("no data for {NO_DATA_TIMEOUT:?}"),
                Err(_) => {}
                Ok(None) => bail!("the source closed the connection"),
                Ok(Some(Err(e))) => bail!("reading the stream: {e}"),
                Ok(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        last_data = Instant::now();
                        stream.ready.extend(stream.parser.feed(data)?);
                    }
                }
            }
        }
    }
}

async fn request(
    url: &HttpUrl,
    tls: Option<&tokio_rustls::TlsConnector>,
    authorization: Option<String>,
) -> Result<hyper::Response<Incoming>> {
    let tcp = tokio::net::TcpStream::connect(&url.authority).await.with_context(|| format!("cannot connect to {}", url.authority))?;
    let _ = tcp.set_nodelay(true);
    match tls {
        None => send(tcp, url, authorization).await,
        Some(connector) => {
            let name = rustls::pki_types::ServerName::try_from(url.host.clone()).with_context(|| format!("bad TLS server name {:?}", url.host))?;
            let tls = connector.connect(name, tcp).await.context("TLS handshake")?;
            send(tls, url, authorization).await
        }
    }
}

async fn send<IO>(io: IO, url: &HttpUrl, authorization: Option<String>) -> Result<hyper::Response<Incoming>>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io)).await?;
    // The connection is driven while the source reads (its runtime only
    // runs then); it ends with the response body.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = hyper::Request::get(&url.path)
        .header(hyper::header::HOST, &url.authority)
        .header(hyper::header::USER_AGENT, concat!("framewire/", env!("CARGO_PKG_VERSION")))
        .header(hyper::header::ACCEPT, "multipart/x-mixed-replace, */*");
    if let Some(a) = authorization {
        req = req.header(hyper::header::AUTHORIZATION, a);
    }
    Ok(sender.send_request(req.body(Empty::<Bytes>::new())?).await?)
}

/// The Authorization header answering a 401's challenge: Digest if offered,
/// else Basic.
fn answer_challenge(response: &hyper::Response<Incoming>, path: &str, user: &str, password: &str) -> Result<String> {
    let challenges: Vec<&str> =
        response.headers().get_all(hyper::header::WWW_AUTHENTICATE).iter().filter_map(|v| v.to_str().ok()).collect();
    if let Some(digest) = challenges.iter().find(|c| c.trim_start().to_ascii_lowercase().starts_with("digest")) {
        let mut prompt = digest_auth::parse(digest).map_err(|e| anyhow!("cannot read the Digest challenge: {e}"))?;
        let context = digest_auth::AuthContext::new(user, password, path);
        let answer = prompt.respond(&context).map_err(|e| anyhow!("cannot answer the Digest challenge: {e}"))?;
        return Ok(answer.to_header_string());
    }
    if challenges.iter().any(|c| c.trim_start().to_ascii_lowercase().starts_with("basic")) {
        use base64::Engine;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        return Ok(format!("Basic {token}"));
    }
    bail!("401 with no Basic or Digest challenge ({challenges:?})")
}

impl Source for HttpMjpeg {
    fn open(&mut self) -> Result<Opened> {
        self.stream = None;
        let stream = self.connect()?;
        self.stream = Some(stream);
        // The first whole frame gives the size; it is captured next.
        let deadline = Instant::now() + NO_DATA_TIMEOUT;
        loop {
            let part = self.next_part()?;
            match framewire_core::jpeg::check_in_buffer(&part) {
                Ok(info) => {
                    self.stream.as_mut().expect("open").ready.push_front(part);
                    let size = (info.width.into(), info.height.into());
                    return Ok(Opened { size, format: format!("MJPEG {}x{} from {}, passed through", size.0, size.1, self.url.source.display) });
                }
                Err(_) if Instant::now() < deadline => continue,
                Err(e) => bail!("no whole JPEG from the source within {NO_DATA_TIMEOUT:?}: {e}"),
            }
        }
    }

    fn capture(&mut self) -> Result<Image<'_>> {
        let part = self.next_part().inspect_err(|_| self.stream = None)?;
        Ok(Image::Jpeg { jpeg: Bytes::from(part), captured: SystemTime::now() })
    }

    /// Nobody watches: hang up; the next capture reconnects.
    fn discard(&mut self) -> Result<bool> {
        self.stream = None;
        Ok(false)
    }

    fn close(&mut self) {
        self.stream = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_passwords_out_of_sight() {
        let u = HttpUrl::parse("http://admin:p%40ss@192.168.1.9:8081/video.cgi?res=hi").unwrap();
        assert_eq!((u.authority.as_str(), u.path.as_str()), ("192.168.1.9:8081", "/video.cgi?res=hi"));
        assert_eq!(u.source.credentials, Some(("admin".into(), "p@ss".into())));
        assert_eq!(u.source.display, "http://admin:***@192.168.1.9:8081/video.cgi?res=hi");
        assert_eq!(format!("{u:?}"), u.source.display);
        let u = HttpUrl::parse("http://cam.local/").unwrap();
        assert_eq!((u.authority.as_str(), u.source.credentials), ("cam.local:80", None));
        let u = HttpUrl::parse("http://[::1]:9000/s").unwrap();
        assert_eq!(u.authority, "[::1]:9000");
        let u = HttpUrl::parse("https://cam.local/s").unwrap();
        assert_eq!((u.tls, u.host.as_str(), u.authority.as_str()), (true, "cam.local", "cam.local:443"));
        assert_eq!(HttpUrl::parse("http://[::1]:9000/s").unwrap().host, "::1");
        assert!(HttpUrl::parse("ftp://cam/").is_err());
        assert!(HttpUrl::parse("http://").is_err());
    }
}
