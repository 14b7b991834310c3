//! The admin API: swap a route's component on demand. Never open without a
//! credential: by default a UNIX socket only its owner may use (mode 0600
//! in a 0700 folder), named after the address framewire serves, so several
//! servers coexist and `framewire swap` finds the right one; on TCP,
//! loopback included, a bearer token, given or generated into a 0600 file
//! beside where the socket would be, and a Host check against DNS
//! rebinding.
//!
//! - `GET /routes`: the routes' components as JSON.
//! - `PUT /routes/{name}` with the component's bytes as the body: swap it
//!   in; 200 with the new state, or 422 with the reason it was refused.

use crate::server::App;
use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Largest component the admin API accepts.
pub const MAX_COMPONENT_BYTES: usize = 64 << 20;

/// Where the admin API listens, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminAt {
    Off,
    /// The UNIX socket named after the listen address in [`admin_dir`].
    DefaultSocket,
    Socket(PathBuf),
    Tcp(SocketAddr),
}

impl AdminAt {
    /// `off`, an `IP:PORT`, or a socket path.
    pub fn parse(s: &str) -> Result<AdminAt> {
        Ok(match s {
            "off" => AdminAt::Off,
            s if s.contains('/') => AdminAt::Socket(PathBuf::from(s)),
            s => AdminAt::Tcp(s.parse().with_context(|| format!("admin {s:?}: expected a socket path, IP:PORT or off"))?),
        })
    }
}

/// Where a running admin API can be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Socket(PathBuf),
    /// With the token it requires.
    Tcp(SocketAddr, String),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Socket(p) => write!(f, "unix:{}", p.display()),
            Endpoint::Tcp(a, _) => write!(f, "http://{a}/routes"),
        }
    }
}

/// The folder for admin sockets and tokens: `$XDG_RUNTIME_DIR/framewire`,
/// else `run/` in the cache folder, else one in the temporary folder.
pub fn admin_dir(cache_dir: Option<&Path>) -> PathBuf {
    if let Some(run) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| Path::new(d).is_dir()) {
        return PathBuf::from(run).join("framewire");
    }
    match crate::config::state_dir(cache_dir) {
        Some(cache) => cache.join("run"),
        None => std::env::temp_dir().join(format!("framewire-{}", rustix::process::getuid().as_raw())),
    }
}

/// `127.0.0.1:8080` → `127.0.0.1-8080`: a file name per served address.
fn file_stem(listen: SocketAddr) -> String {
    listen.to_string().chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '-' }).collect()
}

/// The admin socket of the framewire serving `listen`.
pub fn default_socket(dir: &Path, listen: SocketAddr) -> PathBuf {
    dir.join(format!("admin-{}.sock", file_stem(listen)))
}

/// The token file of the framewire serving `listen` with a TCP admin API.
pub fn token_file(dir: &Path, listen: SocketAddr) -> PathBuf {
    dir.join(format!("admin-{}.token", file_stem(listen)))
}

/// `dir`, made if need be, private to this user.
fn private_dir(dir: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot make the admin folder {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot make {} private", dir.display()))
}

/// A running admin API; its listener and socket file go with it.
pub struct Admin {
    pub endpoint: Endpoint,
    /// Where a generated token was written.
    pub token_file: Option<PathBuf>,
    /// The accept loop, which holds the app: stopped when this goes, so
    /// the app (its cameras, their recordings) can end.
    accepting: tokio::task::AbortHandle,
}

impl Drop for Admin {
    fn drop(&mut self) {
        self.accepting.abort();
        if let Endpoint::Socket(path) = &self.endpoint {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Start the admin API for the framewire serving `listen`.
pub async fn start(app: Arc<App>, at: &AdminAt, token: Option<String>, dir: &Path, listen: SocketAddr) -> Result<Option<Admin>> {
    let socket = match at {
        AdminAt::Off => return Ok(None),
        AdminAt::DefaultSocket => default_socket(dir, listen),
        AdminAt::Socket(p) => p.clone(),
        AdminAt::Tcp(addr) => {
            let (token, token_file) = match token {
                Some(t) => (t, None),
                None => {
                    private_dir(dir)?;
                    let file = token_file(dir, listen);
                    (write_new_token(&file)?, Some(file))
                }
            };
            let listener =
                tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen for admin on {addr}"))?;
            let local = listener.local_addr()?;
            let check = Arc::new(Check { token: Some(token.clone()), host_check: true });
            let accepting = tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else { continue };
                    serve(app.clone(), check.clone(), TokioIo::new(stream));
                }
            })
            .abort_handle();
            return Ok(Some(Admin { endpoint: Endpoint::Tcp(local, token), token_file, accepting }));
        }
    };
    if let Some(parent) = socket.parent() {
        private_dir(parent)?;
    }
    if socket.exists() {
        if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
            bail!("another framewire's admin API answers on {}: is {listen} already served?", socket.display());
        }
        // Left by a framewire that did not stop cleanly.
        std::fs::remove_file(&socket).with_context(|| format!("cannot remove the stale socket {}", socket.display()))?;
    }
    let listener = tokio::net::UnixListener::bind(&socket).with_context(|| format!("cannot listen for admin on {}", socket.display()))?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))?;
    let check = Arc::new(Check { token, host_check: false });
    let accepting = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            serve(app.clone(), check.clone(), TokioIo::new(stream));
        }
    })
    .abort_handle();
    Ok(Some(Admin { endpoint: Endpoint::Socket(socket), token_file: None, accepting }))
}

/// A fresh random token in `file`, readable by this user only.
fn write_new_token(file: &Path) -> Result<String> {
    let token: String = crate::secret::random_bytes::<32>()?.iter().map(|b| format!("{b:02x}")).collect();
    crate::secret::write_file(file, token.as_bytes(), 0o600)?;
    Ok(token)
}

/// What a request to the admin API must show.
struct Check {
    token: Option<String>,
    /// Refuse a Host that is a name other than localhost: a page that
    /// rebinds its own name to 127.0.0.1 must not reach us.
    host_check: bool,
}

fn serve<I>(app: Arc<App>, check: Arc<Check>, io: I)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let service = service_fn(move |req| {
            let (app, check) = (app.clone(), check.clone());
            async move { Ok::<_, std::convert::Infallible>(handle(app, &check, req).await) }
        });
        let _ = http1::Builder::new().serve_connection(io, service).await;
    });
}

type Response = hyper::Response<Full<Bytes>>;

fn reply(status: u16, body: serde_json::Value) -> Response {
    hyper::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(format!("{body}\n"))))
        .expect("static parts are valid")
}

fn info_json(i: &crate::guest::ComponentInfo) -> serde_json::Value {
    serde_json::to_value(i).expect("plain records serialize")
}

async fn handle(app: Arc<App>, check: &Check, req: hyper::Request<Incoming>) -> Response {
    if check.host_check && !framewire_core::authority::is_local_or_literal(crate::reply::host_of(&req).unwrap_or("")) {
        return reply(421, json!({"error": "the admin API answers to localhost or an IP address only"}));
    }
    if let Some(t) = &check.token {
        let given = req.headers().get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|g| crate::secret::equal(g, t)) {
            return reply(401, json!({"error": "missing or wrong bearer token"}));
        }
    }
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    match (method.as_str(), path.strip_prefix("/routes")) {
        ("GET", Some("" | "/")) => reply(200, json!(app.routes.infos().iter().map(info_json).collect::<Vec<_>>())),
        ("PUT", Some(rest)) if rest.len() > 1 => {
            let route = rest[1..].to_string();
            let bytes = match Limited::new(req.into_body(), MAX_COMPONENT_BYTES).collect().await {
                Ok(b) => b.to_bytes().to_vec(),
                Err(e) => return reply(413, json!({"error": format!("component body refused: {e}")})),
            };
            match app.swap(&route, bytes, "admin".into()).await {
                Ok(info) => reply(200, info_json(&info)),
                Err(e) => {
                    let status = if app.routes.get(&route).is_none() { 404 } else { 422 };
                    reply(status, json!({"error": format!("{e:#}")}))
                }
            }
        }
        _ => reply(404, json!({"error": "use GET /routes or PUT /routes/{name}"})),
    }
}

/// Where `framewire swap` finds the framewire serving `listen`: `admin` if
/// given (a socket path or IP:PORT), else that server's default socket. A
/// TCP endpoint takes `token`, else the token file the server wrote.
pub fn find(listen: SocketAddr, admin: Option<&str>, token: Option<String>, dir: &Path) -> Result<Endpoint> {
    match admin.map(AdminAt::parse).transpose()? {
        None | Some(AdminAt::DefaultSocket) => Ok(Endpoint::Socket(default_socket(dir, listen))),
        Some(AdminAt::Socket(p)) => Ok(Endpoint::Socket(p)),
        Some(AdminAt::Off) => bail!("--admin off: nothing to talk to"),
        Some(AdminAt::Tcp(addr)) => {
            let token = match token {
                Some(t) => t,
                None => {
                    let file = token_file(dir, listen);
                    std::fs::read_to_string(&file)
                        .with_context(|| format!("no --token given and no token file {} for {listen}", file.display()))?
                        .trim()
                        .to_string()
                }
            };
            Ok(Endpoint::Tcp(addr, token))
        }
    }
}

/// `framewire swap ROUTE FILE`: send a component to a running framewire.
pub async fn swap_command(admin: &Endpoint, route: &str, file: &Path) -> Result<String> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let reach = |e: std::io::Error| anyhow::anyhow!("cannot reach the admin API at {admin}: is framewire running? ({e})");
    let mut req = hyper::Request::put(format!("/routes/{route}"));
    let mut sender = match admin {
        Endpoint::Socket(path) => {
            req = req.header("host", "localhost");
            let stream = tokio::net::UnixStream::connect(path).await.map_err(reach)?;
            handshake(stream).await?
        }
        Endpoint::Tcp(addr, token) => {
            req = req.header("host", addr.to_string()).header("authorization", format!("Bearer {token}"));
            let stream = tokio::net::TcpStream::connect(addr).await.map_err(reach)?;
            handshake(stream).await?
        }
    };
    let resp = sender.send_request(req.body(Full::new(Bytes::from(bytes)))?).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    let text = String::from_utf8_lossy(&body).trim().to_string();
    if !status.is_success() {
        let reason = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(String::from))
            .unwrap_or(text);
        bail!("swap refused ({status}): {reason}");
    }
    Ok(text)
}

async fn handshake<S>(stream: S) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_where_the_admin_api_goes() {
        assert_eq!(AdminAt::parse("off").unwrap(), AdminAt::Off);
        assert_eq!(AdminAt::parse("127.0.0.1:8079").unwrap(), AdminAt::Tcp("127.0.0.1:8079".parse().unwrap()));
        assert_eq!(AdminAt::parse("/run/fw.sock").unwrap(), AdminAt::Socket("/run/fw.sock".into()));
        assert!(format!("{:#}", AdminAt::parse("nowhere").unwrap_err()).contains("expected a socket path, IP:PORT or off"));
        let dir = Path::new("/run/user/1000/framewire");
        assert_eq!(default_socket(dir, "127.0.0.1:8080".parse().unwrap()), dir.join("admin-127.0.0.1-8080.sock"));
        assert_eq!(token_file(dir, "[::1]:80".parse().unwrap()), dir.join("admin----1--80.token"));
    }
}
