//! Command line and config file, merged into one `Config`.
//! Precedence: command line, then `--config` file, then defaults.

use crate::camera::spec::CameraSpec;
use anyhow::{Context, Result, bail, ensure};
use clap::{Args, Parser, Subcommand};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Parser, Debug)]
#[command(name = "framewire", version, about = "Cameras and media to the browser; every HTTP handler a sandboxed wasm component")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve cameras and media over HTTP.
    Serve(Box<ServeArgs>),
    /// List the camera sources this machine offers.
    Cameras,
    /// Swap a route's component in a running framewire, through its admin API.
    Swap(SwapArgs),
    /// Print an argon2id hash of a password read from standard input, for
    /// `[[users]]` in the config.
    HashPassword,
    /// Print a link that opens one path (a camera's stream, a file) without
    /// an account until it expires.
    Share(ShareArgs),
    /// Check a handler component as a swap would (compile, imports, the
    /// HTTP handler export, one instantiation) without a running server.
    Check(CheckArgs),
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The component (.wasm).
    pub file: PathBuf,
    /// The media folder it would see on the files route.
    #[arg(long, value_name = "DIR")]
    pub media: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ShareArgs {
    /// The path to open, e.g. /cameras/front/stream.
    pub path: String,
    /// How long the link works: 90s, 30m, 12h, 7d.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub ttl: std::time::Duration,
    /// The server's URL as viewers reach it [default: from --listen and TLS in the config].
    #[arg(long, value_name = "URL")]
    pub base: Option<String>,
    /// The server's config file (for its address and cache folder, which holds the signing key).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The server's cache folder, if not the default.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<String>,
}

/// `90s`, `30m`, `12h`, `7d`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let (n, unit) = s.trim().split_at(s.trim().find(|c: char| !c.is_ascii_digit()).unwrap_or(s.trim().len()));
    let n: u64 = n.parse().map_err(|_| format!("{s:?}: expected a number and s, m, h or d"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("{s:?}: the unit is s, m, h or d")),
    };
    Ok(std::time::Duration::from_secs(secs))
}

#[derive(Args, Debug)]
pub struct SwapArgs {
    /// Route to swap (e.g. mjpeg, files, page).
    pub route: String,
    /// The new component (.wasm).
    pub file: PathBuf,
    /// The address the running framewire serves: its admin socket is found
    /// by it [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Its admin API, if not the default socket: a socket path or IP:PORT.
    #[arg(long, value_name = "PATH|ADDR")]
    pub admin: Option<String>,
    /// Bearer token of a TCP admin API [default: the token file the server wrote].
    #[arg(long, env = "FRAMEWIRE_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// Where framewire serves unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

#[derive(Args, Debug, Default, Clone)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Folder served under /media/ [default: the sample folder in the repo].
    #[arg(long, value_name = "DIR")]
    pub media: Option<PathBuf>,
    /// A camera, NAME=SOURCE: `test[:WxH[@FPS]]` or `v4l:/dev/videoN[:WxH[@FPS]]`.
    /// Repeat for more cameras [default: test=test:640x480@30].
    #[arg(long = "camera", value_name = "NAME=SOURCE")]
    pub cameras: Vec<String>,
    /// Serve route NAME with a component file instead of the built-in one,
    /// NAME=FILE.wasm (routes: mjpeg, files, page).
    #[arg(long = "route", value_name = "NAME=FILE")]
    pub routes: Vec<String>,
    /// TOML config file (see README).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Admin API (component swaps): a UNIX socket path, IP:PORT (with a
    /// bearer token), or `off` [default: a socket in $XDG_RUNTIME_DIR/framewire].
    #[arg(long, value_name = "PATH|ADDR|off")]
    pub admin: Option<String>,
    /// Token a TCP admin API requires [default: generated into a 0600 file].
    #[arg(long, env = "FRAMEWIRE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// A host name requests may name besides localhost and IP addresses
    /// (others get 421: DNS rebinding); repeatable; `*` allows any.
    #[arg(long = "allow-host", value_name = "NAME")]
    pub allow_hosts: Vec<String>,
    /// An origin (`https://dash.example`) whose pages may read responses
    /// cross-origin; repeatable [default: none, CORS off].
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    pub allow_origins: Vec<String>,
    /// Speak TLS (HTTP/2 and HTTP/1.1) with this certificate chain (PEM);
    /// needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key", conflicts_with = "tls_self_signed")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Speak TLS with a certificate for localhost, 127.0.0.1 and this
    /// machine's name, made once and kept in the cache folder.
    #[arg(long)]
    pub tls_self_signed: bool,
    /// A viewer account, NAME:PASSWORD; repeatable. With any, every request
    /// needs a credential (Basic, the login form's cookie, or a share link).
    #[arg(long = "user", value_name = "NAME:PASSWORD")]
    pub users: Vec<String>,
    /// Serve a non-loopback address without accounts, on purpose.
    #[arg(long)]
    pub no_auth: bool,
    /// Cache of compiled components, or `off` [default: ~/.cache/framewire].
    #[arg(long, value_name = "DIR|off")]
    pub cache_dir: Option<String>,
    /// Most handler instances at once, live streams included; more requests
    /// get 503 [default: 2048].
    #[arg(long, value_name = "N")]
    pub max_instances: Option<u32>,
    /// Longest a handler may compute without calling the host, in ms;
    /// then its request is ended with a 5xx [default: 1000].
    #[arg(long, value_name = "MS")]
    pub cpu_limit_ms: Option<u64>,
    /// Largest request head (request line and headers) in bytes; larger
    /// gets 431 [default: 16384].
    #[arg(long, value_name = "BYTES")]
    pub max_header_bytes: Option<usize>,
    /// Largest request body in bytes; larger gets 413 [default: 1048576].
    #[arg(long, value_name = "BYTES")]
    pub max_body_bytes: Option<u64>,
    /// Threads serving HTTP, each accepting connections and running their
    /// requests' instances [default: one per core].
    #[arg(long, value_name = "N")]
    pub http_threads: Option<usize>,
    /// Close a connection whose client accepts no bytes this long, ending
    /// its stream [default: 30].
    #[arg(long, value_name = "S")]
    pub stall_timeout_s: Option<u64>,
    /// Live streams one client address may hold; more get 429 [default: 32].
    #[arg(long, value_name = "N")]
    pub max_streams_per_client: Option<u32>,
    /// Count loopback clients (local tools, a reverse proxy) against
    /// --max-streams-per-client too.
    #[arg(long)]
    pub limit_loopback: bool,
    /// Live streams at once in all, loopback included; more get 503
    /// [default: 4096].
    #[arg(long, value_name = "N")]
    pub max_streams: Option<u32>,
    /// Write one line per response, when it ends, to FILE (appended) or `-`
    /// (standard output): combined log format, then seconds taken and
    /// frames sent [default: none].
    #[arg(long, value_name = "FILE|-")]
    pub access_log: Option<String>,
    /// On SIGTERM or SIGINT, how long responses in flight may take to
    /// finish before framewire exits anyway [default: 10].
    #[arg(long, value_name = "S")]
    pub shutdown_timeout_s: Option<u64>,
    /// How long a read from the media folder may wait for data (a stalled
    /// network or FUSE mount) before its response is aborted [default: 30].
    #[arg(long, value_name = "S")]
    pub media_read_timeout_s: Option<u64>,
}

/// The config file's shape.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    media: Option<PathBuf>,
    /// `["NAME=SOURCE", ...]`, as on the command line.
    cameras: Option<Vec<String>>,
    /// A socket path, `"127.0.0.1:8079"` or `"off"`.
    admin: Option<String>,
    admin_token: Option<String>,
    allow_hosts: Option<Vec<String>>,
    allow_origins: Option<Vec<String>>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_self_signed: Option<bool>,
    /// `[[users]]` with `name` and `password_hash` (`framewire hash-password`).
    users: Option<Vec<FileUser>>,
    no_auth: Option<bool>,
    /// A folder or `"off"`.
    cache_dir: Option<String>,
    max_instances: Option<u32>,
    cpu_limit_ms: Option<u64>,
    max_header_bytes: Option<usize>,
    max_body_bytes: Option<u64>,
    http_threads: Option<usize>,
    stall_timeout_s: Option<u64>,
    max_streams_per_client: Option<u32>,
    max_streams: Option<u32>,
    limit_loopback: Option<bool>,
    /// A file (relative to this one) or `"-"`.
    access_log: Option<String>,
    shutdown_timeout_s: Option<u64>,
    media_read_timeout_s: Option<u64>,
    #[serde(default)]
    routes: BTreeMap<String, FileRoute>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct FileUser {
    name: String,
    password_hash: String,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileRoute {
    /// A `.wasm` file, or `builtin:NAME`.
    component: Option<String>,
    /// Path prefixes the route serves; needed for new routes.
    paths: Option<Vec<String>>,
    /// Give the component the media folder, read-only, as `/`.
    media: Option<bool>,
}

/// Where a route's component comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ComponentSource {
    Builtin(String),
    File(PathBuf),
}

impl ComponentSource {
    fn parse(s: &str, base: &Path) -> Self {
        match s.strip_prefix("builtin:") {
            Some(name) => ComponentSource::Builtin(name.to_string()),
            None => ComponentSource::File(base.join(s)),
        }
    }
}

impl std::fmt::Display for ComponentSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ComponentSource::Builtin(n) => write!(f, "builtin:{n}"),
            ComponentSource::File(p) => write!(f, "{}", p.display()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RouteConfig {
    pub name: String,
    pub paths: Vec<String>,
    pub component: ComponentSource,
    /// The component sees the media folder (read-only) as `/`.
    pub media: bool,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Folder for routes with `media`; None if there is none.
    pub media: Option<PathBuf>,
    pub cameras: Vec<CameraSpec>,
    pub routes: Vec<RouteConfig>,
    /// Where the admin API listens.
    pub admin: crate::admin::AdminAt,
    pub admin_token: Option<String>,
    /// Host names requests may name besides localhost and IP literals.
    pub allow_hosts: Vec<String>,
    /// Origins answered to cross-origin.
    pub allow_origins: Vec<String>,
    /// The listener speaks TLS only, when set.
    pub tls: Option<crate::tls::TlsSource>,
    /// Viewer accounts; none: no credential asked.
    pub users: Vec<crate::auth::User>,
    /// A non-loopback address without accounts, on purpose.
    pub no_auth: bool,
    pub runtime: crate::runtime::Options,
    pub http: crate::server::HttpLimits,
    /// Threads serving HTTP (see [`crate::Server`]).
    pub http_threads: usize,
    /// Where the access log goes (`-`: standard output), if anywhere.
    pub access_log: Option<String>,
    /// How long responses in flight may take to finish at shutdown.
    pub shutdown_timeout: std::time::Duration,
    /// How long a media read may wait for data (see [`crate::mediafs`]).
    pub media_read_timeout: std::time::Duration,
}

/// A server reachable from other machines needs accounts, or `no_auth`
/// saying it is open on purpose.
pub fn check_exposure(addr: SocketAddr, users: &[crate::auth::User], no_auth: bool) -> Result<()> {
    if !addr.ip().is_loopback() && users.is_empty() && !no_auth {
        bail!(
            "{addr} is reachable from other machines, and no account is configured: every camera and the \
             media folder would be open to them. Add --user NAME:PASSWORD (or [[users]] in the config), or \
             pass --no-auth to serve it open on purpose"
        );
    }
    Ok(())
}

/// Default for `--shutdown-timeout-s`.
pub const DEFAULT_SHUTDOWN_TIMEOUT_S: u64 = 10;
pub const DEFAULT_MEDIA_READ_TIMEOUT_S: u64 = 30;

/// The routes every framewire serves unless told otherwise.
pub fn default_routes() -> Vec<RouteConfig> {
    vec![
        RouteConfig {
            name: "mjpeg".into(),
            paths: ["/stream", "/snapshot", "/cameras/", "/api/state"].map(String::from).to_vec(),
            component: ComponentSource::Builtin("mjpeg".into()),
            media: false,
        },
        RouteConfig {
            name: "files".into(),
            paths: vec!["/media/".into()],
            component: ComponentSource::Builtin("files".into()),
            media: true,
        },
        RouteConfig {
            name: "page".into(),
            // Everything no other route covers: the page, its files, a 404 page.
            paths: vec!["/".into()],
            component: ComponentSource::Builtin("page".into()),
            media: false,
        },
    ]
}

/// `$XDG_CACHE_HOME/framewire`, else `~/.cache/framewire`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("framewire"))
}

/// Where framewire keeps what it must find again after a restart (the
/// signing key, a self-signed certificate, admin files outside
/// `$XDG_RUNTIME_DIR`): the cache folder, the default one when compiled
/// components are not cached (`--cache-dir off`).
pub fn state_dir(cache_dir: Option<&Path>) -> Option<PathBuf> {
    cache_dir.map(Path::to_path_buf).or_else(default_cache_dir)
}

pub fn default_media() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../media"))
}

impl Config {
    pub fn from_args(args: &ServeArgs) -> Result<Config> {
        let (file, base) = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config {}", path.display()))?;
                let file: FileConfig =
                    toml::from_str(&text).with_context(|| format!("invalid config {}", path.display()))?;
                (file, path.parent().map(Path::to_path_buf).unwrap_or_default())
            }
            None => (FileConfig::default(), PathBuf::new()),
        };

        let camera_strs = if !args.cameras.is_empty() {
            args.cameras.clone()
        } else {
            file.cameras.unwrap_or_else(|| vec!["test=test:640x480@30".into()])
        };
        let mut cameras = Vec::new();
        for c in &camera_strs {
            let spec = CameraSpec::parse_named(c)?;
            ensure!(!cameras.iter().any(|o: &CameraSpec| o.name == spec.name), "camera {:?} is configured twice", spec.name);
            cameras.push(spec);
        }

        let mut routes = default_routes();
        for (name, r) in file.routes {
            let existing = routes.iter().position(|x| x.name == name);
            let route = match existing {
                Some(i) => &mut routes[i],
                None => {
                    let Some(paths) = &r.paths else {
                        bail!("route {name:?} in config: a new route needs `paths`")
                    };
                    let Some(component) = &r.component else {
                        bail!("route {name:?} in config: a new route needs `component`")
                    };
                    routes.push(RouteConfig {
                        name: name.clone(),
                        paths: paths.clone(),
                        component: ComponentSource::parse(component, &base),
                        media: r.media.unwrap_or(false),
                    });
                    continue;
                }
            };
            if let Some(c) = &r.component {
                route.component = ComponentSource::parse(c, &base);
            }
            if let Some(p) = r.paths {
                route.paths = p;
            }
            if let Some(m) = r.media {
                route.media = m;
            }
        }
        for r in &args.routes {
            let (name, file) = r.split_once('=').with_context(|| format!("--route {r:?}: expected NAME=FILE"))?;
            let Some(route) = routes.iter_mut().find(|x| x.name == name) else {
                let known: Vec<_> = routes.iter().map(|x| x.name.as_str()).collect();
                bail!("--route {r:?}: no route named {name:?} (routes: {})", known.join(", "));
            };
            route.component = ComponentSource::parse(file, Path::new(""));
        }
        for r in &routes {
            ensure!(!r.paths.is_empty(), "route {:?} has no paths", r.name);
            for p in &r.paths {
                ensure!(p.starts_with('/'), "route {:?}: path {p:?} must start with '/'", r.name);
            }
        }

        let media = match args.media.clone().or(file.media.map(|m| base.join(m))) {
            Some(m) => {
                ensure!(m.is_dir(), "media folder {} is not a directory", m.display());
                Some(m)
            }
            // The sample folder exists in a checkout; elsewhere serve no media.
            None => Some(default_media()).filter(|m| m.is_dir()),
        };
        let admin = match args.admin.clone().or(file.admin) {
            Some(a) => crate::admin::AdminAt::parse(&a)?,
            None => crate::admin::AdminAt::DefaultSocket,
        };
        let mut allow_hosts = args.allow_hosts.clone();
        allow_hosts.extend(file.allow_hosts.unwrap_or_default());
        let mut allow_origins = args.allow_origins.clone();
        allow_origins.extend(file.allow_origins.unwrap_or_default());
        let tls = match (
            args.tls_cert.clone().or(file.tls_cert.map(|c| base.join(c))),
            args.tls_key.clone().or(file.tls_key.map(|k| base.join(k))),
            args.tls_self_signed || file.tls_self_signed.unwrap_or(false),
        ) {
            (None, None, false) => None,
            (None, None, true) => Some(crate::tls::TlsSource::SelfSigned),
            (Some(cert), Some(key), false) => Some(crate::tls::TlsSource::Files { cert, key }),
            (Some(_), Some(_), true) => bail!("tls-self-signed and tls-cert: choose one"),
            _ => bail!("tls-cert and tls-key go together"),
        };
        let mut users = Vec::new();
        for u in &args.users {
            users.push(crate::auth::User::parse(u)?);
        }
        for u in file.users.unwrap_or_default() {
            users.push(crate::auth::User { name: u.name, password_hash: u.password_hash });
        }
        for (i, u) in users.iter().enumerate() {
            ensure!(!users[..i].iter().any(|o| o.name == u.name), "user {:?} is configured twice", u.name);
        }
        let no_auth = args.no_auth || file.no_auth.unwrap_or(false);
        let listen = args.listen.or(file.listen).unwrap_or_else(|| DEFAULT_LISTEN.parse().unwrap());
        check_exposure(listen, &users, no_auth)?;
        for o in &allow_origins {
            ensure!(o.starts_with("http://") || o.starts_with("https://"), "allow-origin {o:?}: expected an origin such as https://dash.example");
        }
        Ok(Config {
            listen,
            users,
            no_auth,
            media,
            cameras,
            routes,
            admin,
            admin_token: args.admin_token.clone().or(file.admin_token),
            allow_hosts,
            allow_origins,
            tls,
            runtime: crate::runtime::Options {
                max_instances: match args.max_instances.or(file.max_instances) {
                    Some(0) => bail!("max-instances must be at least 1"),
                    Some(n) => n,
                    None => crate::runtime::MAX_INSTANCES,
                },
                cache_dir: match args.cache_dir.clone().or(file.cache_dir).as_deref() {
                    Some("off") => None,
                    Some(d) => Some(PathBuf::from(d)),
                    None => default_cache_dir(),
                },
                cpu_limit: match args.cpu_limit_ms.or(file.cpu_limit_ms) {
                    Some(0) => bail!("cpu-limit-ms must be at least 1"),
                    Some(ms) => std::time::Duration::from_millis(ms),
                    None => crate::runtime::CPU_LIMIT,
                },
            },
            http: {
                let defaults = crate::server::HttpLimits::default();
                let max_header_bytes = args.max_header_bytes.or(file.max_header_bytes).unwrap_or(defaults.max_header_bytes);
                // hyper needs room for at least a request line and a Host header.
                ensure!(max_header_bytes >= 1024, "max-header-bytes must be at least 1024, got {max_header_bytes}");
                crate::server::HttpLimits {
                    max_header_bytes,
                    max_body_bytes: args.max_body_bytes.or(file.max_body_bytes).unwrap_or(defaults.max_body_bytes),
                    stall_timeout: match args.stall_timeout_s.or(file.stall_timeout_s) {
                        Some(0) => bail!("stall-timeout-s must be at least 1"),
                        Some(s) => std::time::Duration::from_secs(s),
                        None => defaults.stall_timeout,
                    },
                    max_streams_per_client: match args.max_streams_per_client.or(file.max_streams_per_client) {
                        Some(0) => bail!("max-streams-per-client must be at least 1"),
                        Some(n) => n,
                        None => defaults.max_streams_per_client,
                    },
                    limit_loopback: args.limit_loopback || file.limit_loopback.unwrap_or(false),
                    max_streams: match args.max_streams.or(file.max_streams) {
                        Some(0) => bail!("max-streams must be at least 1"),
                        Some(n) => n,
                        None => defaults.max_streams,
                    },
                }
            },
            http_threads: match args.http_threads.or(file.http_threads) {
                Some(0) => bail!("http-threads must be at least 1"),
                Some(n) => n,
                None => std::thread::available_parallelism().map_or(1, |n| n.get()),
            },
            access_log: match (&args.access_log, file.access_log) {
                (Some(a), _) => Some(a.clone()),
                (None, Some(f)) if f != "-" => Some(base.join(f).display().to_string()),
                (None, f) => f,
            },
            shutdown_timeout: std::time::Duration::from_secs(
                args.shutdown_timeout_s.or(file.shutdown_timeout_s).unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT_S),
            ),
            media_read_timeout: match args.media_read_timeout_s.or(file.media_read_timeout_s) {
                Some(0) => bail!("media-read-timeout-s must be at least 1"),
                s => std::time::Duration::from_secs(s.unwrap_or(DEFAULT_MEDIA_READ_TIMEOUT_S)),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn defaults() {
        let c = Config::from_args(&ServeArgs::default()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.admin, crate::admin::AdminAt::DefaultSocket);
        assert_eq!(c.cameras.len(), 1);
        assert_eq!(c.cameras[0].name, "test");
        assert_eq!(c.routes[0].component, ComponentSource::Builtin("mjpeg".into()));
        assert!(c.media.unwrap().join("sample.webm").is_file(), "the sample folder is the default");
    }

    #[test]
    fn file_then_flags() {
        let f = write(
            "listen = \"127.0.0.1:9000\"\ncameras = [\"a=test:320x240@10\", \"b=test\"]\n\
             [routes.mjpeg]\ncomponent = \"m.wasm\"\n[routes.extra]\npaths = [\"/x\"]\ncomponent = \"x.wasm\"\n",
        );
        let args = ServeArgs { config: Some(f.path().to_path_buf()), ..Default::default() };
        let c = Config::from_args(&args).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert!(c.http_threads >= 1, "one per core by default");
        assert_eq!(c.cameras.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(c.routes[0].component, ComponentSource::File(f.path().parent().unwrap().join("m.wasm")));
        let extra = c.routes.iter().find(|r| r.name == "extra").unwrap();
        assert_eq!(extra.paths, ["/x"]);
        assert!(!extra.media);

        let args = ServeArgs { cameras: vec!["z=test".into()], config: Some(f.path().to_path_buf()), ..Default::default() };
        assert_eq!(Config::from_args(&args).unwrap().cameras[0].name, "z");
        assert_eq!((c.access_log, c.shutdown_timeout.as_secs()), (None, DEFAULT_SHUTDOWN_TIMEOUT_S));
    }

    #[test]
    fn access_log_and_shutdown_timeout() {
        let f = write("access_log = \"logs/access.log\"\nshutdown_timeout_s = 3\n");
        let args = ServeArgs { config: Some(f.path().to_path_buf()), ..Default::default() };
        let c = Config::from_args(&args).unwrap();
        let next_to_config = f.path().parent().unwrap().join("logs/access.log").display().to_string();
        assert_eq!((c.access_log, c.shutdown_timeout.as_secs()), (Some(next_to_config), 3));
        let args = ServeArgs { access_log: Some("-".into()), shutdown_timeout_s: Some(0), config: Some(f.path().to_path_buf()), ..Default::default() };
        let c = Config::from_args(&args).unwrap();
        assert_eq!((c.access_log.as_deref(), c.shutdown_timeout.as_secs()), (Some("-"), 0));
    }

    #[test]
    fn bad_configs_say_why() {
        for (text, why) in [
            ("listen = 5", "invalid config"),
            ("colour = \"red\"", "unknown field"),
            ("cameras = [\"a=test\", \"a=test\"]", "configured twice"),
            ("[routes.new]\ncomponent = \"x.wasm\"", "needs `paths`"),
            ("[routes.mjpeg]\npaths = [\"nope\"]", "must start with '/'"),
            ("media = \"/nonexistent/media\"", "not a directory"),
            ("admin = \"nowhere\"", "expected a socket path, IP:PORT or off"),
            ("http_threads = 0", "http-threads must be at least 1"),
            ("media_read_timeout_s = 0", "media-read-timeout-s must be at least 1"),
        ] {
            let f = write(text);
            let args = ServeArgs { config: Some(f.path().to_path_buf()), ..Default::default() };
            let err = format!("{:#}", Config::from_args(&args).unwrap_err());
            assert!(err.contains(why), "{text}: {err}");
        }
        let args = ServeArgs { routes: vec!["nope=x.wasm".into()], ..Default::default() };
        assert!(format!("{:#}", Config::from_args(&args).unwrap_err()).contains("no route named"));
        let args = ServeArgs { config: Some("/nonexistent/framewire.toml".into()), ..Default::default() };
        assert!(format!("{:#}", Config::from_args(&args).unwrap_err()).contains("cannot read config"));
    }
}
