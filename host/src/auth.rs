//! Viewer accounts. With any user configured every request needs a
//! credential, but the login page:
//!
//! - HTTP Basic (`http://user:pass@host/stream` in curl, ffmpeg, OpenCV or
//!   VLC), checked against an argon2id hash; a good pair is remembered for a
//!   while (hashed), so a script fetching snapshots does not pay argon2 each
//!   time;
//! - a session cookie from the login form (HttpOnly, SameSite=Strict): what
//!   lets `<img>` streams and `<video>` ranges work in the page;
//! - a share link (`?share=EXPIRY-SIGNATURE`) that opens one path until it
//!   expires (`framewire share`).
//!
//! Cookies and share links are signed (HMAC-SHA-256) with a key kept in the
//! cache folder, so they survive restarts. Failed attempts are limited per
//! client address.

use anyhow::{Context, Result, anyhow, bail};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The session cookie's name.
pub const COOKIE: &str = "framewire_session";
/// How long a login lasts.
pub const SESSION: Duration = Duration::from_secs(7 * 24 * 3600);
/// Failed attempts one address may make per [`FAILURE_WINDOW`]; then 429.
pub const MAX_FAILURES: u32 = 10;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// How long a verified Basic pair is remembered.
const REMEMBER: Duration = Duration::from_secs(600);

/// A configured viewer: a name and an argon2id hash (PHC string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub password_hash: String,
}

impl User {
    /// `NAME:PASSWORD` from the command line, hashed here.
    pub fn parse(s: &str) -> Result<User> {
        let (name, password) = s.split_once(':').context("--user: expected NAME:PASSWORD")?;
        anyhow::ensure!(!name.is_empty() && !password.is_empty(), "--user: a name and a password are needed");
        Ok(User { name: name.to_string(), password_hash: hash_password(password)? })
    }
}

/// An argon2id hash of `password` (PHC string), for `[[users]]` in the config.
pub fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::encode_b64(&crate::secret::random_bytes::<16>()?).map_err(|e| anyhow!("salt: {e}"))?;
    Ok(argon2::Argon2::default().hash_password(password.as_bytes(), &salt).map_err(|e| anyhow!("cannot hash: {e}"))?.to_string())
}

/// Who a request comes from, or why not.
/// On a request that showed an account's credential: the account's name.
#[derive(Clone, Debug)]
pub struct SignedIn(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    User(String),
    /// A share link for this very path.
    Shared,
    /// No credential, or a wrong one.
    Denied,
    /// Too many failed attempts from this address: 429.
    Throttled,
}

pub struct Accounts {
    users: Vec<User>,
    key: [u8; 32],
    /// SHA-256 of `name:password` pairs verified lately.
    verified: Mutex<HashMap<[u8; 32], Instant>>,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
    /// A hash nobody's password matches, verified for unknown names so that
    /// they cost the same argon2 run as known ones.
    decoy: String,
}

type HmacSha256 = Hmac<Sha256>;

impl Accounts {
    /// `key_dir`: where the signing key lives (made the first time).
    pub fn new(users: Vec<User>, key_dir: &Path) -> Result<Accounts> {
        for u in &users {
            PasswordHash::new(&u.password_hash).map_err(|e| anyhow!("user {:?}: not an argon2 password hash: {e}", u.name))?;
        }
        let decoy = hash_password(&hex(&crate::secret::random_bytes::<16>()?))?;
        Ok(Accounts { users, key: signing_key(key_dir)?, verified: Mutex::default(), failures: Mutex::default(), decoy })
    }

    /// Who sent a request with these headers, for `path` (and `query`), from `ip`.
    pub fn check(&self, headers: &hyper::HeaderMap, path: &str, query: &str, ip: IpAddr) -> Access {
        if let Some(token) = share_param(query)
            && self.share_valid(token, path)
        {
            return Access::Shared;
        }
        if let Some(name) = self.session(headers) {
            return Access::User(name);
        }
        let Some((name, password)) = basic(headers) else {
            return Access::Denied;
        };
        if self.throttled(ip) {
            return Access::Throttled;
        }
        if self.verify(&name, &password) {
            Access::User(name)
        } else {
            self.failed(ip);
            Access::Denied
        }
    }

    /// A login attempt from the form: the cookie value to set, or None.
    pub fn login(&self, name: &str, password: &str, ip: IpAddr) -> Result<Option<String>, Access> {
        if self.throttled(ip) {
            return Err(Access::Throttled);
        }
        if !self.verify(name, password) {
            self.failed(ip);
            return Ok(None);
        }
        let expires = unix_now() + SESSION.as_secs();
        let sig = self.sign(&format!("session\0{name}\0{expires}"));
        Ok(Some(format!("{}.{expires}.{sig}", hex(name.as_bytes()))))
    }

    /// A share token for `path`, valid for `ttl`.
    pub fn share_token(&self, path: &str, ttl: Duration) -> String {
        share_token_with(&self.key, path, ttl)
    }

    fn share_valid(&self, token: &str, path: &str) -> bool {
        let Some((expires, sig)) = token.split_once('-') else { return false };
        let Ok(t) = expires.parse::<u64>() else { return false };
        t > unix_now() && crate::secret::equal(sig, &self.sign(&format!("share\0{path}\0{t}")))
    }

    fn session(&self, headers: &hyper::HeaderMap) -> Option<String> {
        let value = cookie(headers, COOKIE)?;
        let mut parts = value.splitn(3, '.');
        let (name, expires, sig) = (parts.next()?, parts.next()?, parts.next()?);
        let name = String::from_utf8(unhex(name)?).ok()?;
        let t = expires.parse::<u64>().ok()?;
        (t > unix_now()
            && self.users.iter().any(|u| u.name == name)
            && crate::secret::equal(sig, &self.sign(&format!("session\0{name}\0{t}"))))
        .then_some(name)
    }

    fn verify(&self, name: &str, password: &str) -> bool {
        let pair: [u8; 32] = Sha256::digest(format!("{name}:{password}").as_bytes()).into();
        if self.verified.lock().unwrap().get(&pair).is_some_and(|t| t.elapsed() < REMEMBER) {
            return true;
        }
        let hash = self.users.iter().find(|u| u.name == name).map(|u| u.password_hash.as_str());
        let ok = match PasswordHash::new(hash.unwrap_or(&self.decoy)) {
            Ok(h) => argon2::Argon2::default().verify_password(password.as_bytes(), &h).is_ok() && hash.is_some(),
            Err(_) => false,
        };
        if ok {
            let mut verified = self.verified.lock().unwrap();
            verified.retain(|_, t| t.elapsed() < REMEMBER);
            verified.insert(pair, Instant::now());
        }
        ok
    }

    fn throttled(&self, ip: IpAddr) -> bool {
        self.failures.lock().unwrap().get(&ip).is_some_and(|(n, since)| *n >= MAX_FAILURES && since.elapsed() < FAILURE_WINDOW)
    }

    fn failed(&self, ip: IpAddr) {
        let mut failures = self.failures.lock().unwrap();
        failures.retain(|_, (_, since)| since.elapsed() < FAILURE_WINDOW);
        failures.entry(ip).or_insert((0, Instant::now())).0 += 1;
    }

    fn sign(&self, message: &str) -> String {
        sign_with(&self.key, message)
    }
}

/// The signing key in `dir`, made (0600) the first time.
fn signing_key(dir: &Path) -> Result<[u8; 32]> {
    let file = dir.join("signing.key");
    if let Ok(bytes) = std::fs::read(&file)
        && let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice())
    {
        return Ok(key);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot make {}", dir.display()))?;
    let key = crate::secret::random_bytes::<32>()?;
    crate::secret::write_file(&file, &key, 0o600)?;
    Ok(key)
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// `Authorization: Basic` name and password.
fn basic(headers: &hyper::HeaderMap) -> Option<(String, String)> {
    let value = headers.get(hyper::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok()?;
    let (name, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    Some((name.to_string(), password.to_string()))
}

/// A cookie's value from the Cookie headers.
fn cookie<'a>(headers: &'a hyper::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(hyper::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(name)?.strip_prefix('='))
}

/// The `share` parameter of a query, if any.
fn share_param(query: &str) -> Option<&str> {
    query.split('&').find_map(|p| p.strip_prefix("share="))
}

/// Where to go after logging in: a path on this server only.
pub fn safe_next(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') { next } else { "/" }
}

/// The login page, going to `next` after, with `error` shown if any.
pub fn login_page(next: &str, error: Option<&str>) -> String {
    let error = error.map_or(String::new(), |e| format!("<p class=\"error\">{}</p>", framewire_core::html::escape(e)));
    include_str!("login.html").replace("{{error}}", &error).replace("{{next}}", &framewire_core::html::escape(safe_next(next)))
}

/// The form's fields: name, password, next.
pub fn login_form(body: &[u8]) -> (String, String, String) {
    let (mut name, mut password, mut next) = (String::new(), String::new(), String::from("/"));
    for (k, v) in framewire_core::query::pairs(&String::from_utf8_lossy(body)).unwrap_or_default() {
        match k.as_str() {
            "name" => name = v,
            "password" => password = v,
            "next" => next = v,
            _ => {}
        }
    }
    (name, password, next)
}

/// Where a server keeps its signing key: its cache folder.
pub fn key_dir(config: &crate::config::Config) -> std::path::PathBuf {
    crate::config::state_dir(config.runtime.cache_dir.as_deref()).unwrap_or_else(std::env::temp_dir)
}

/// `framewire share PATH`: a link to `path` on the server at `base`,
/// signed with that server's key.
pub fn share_link_for(config: &crate::config::Config, base: &str, path: &str, ttl: Duration) -> Result<String> {
    if !path.starts_with('/') || path.contains('?') {
        bail!("share: {path:?} is not a path on the server (e.g. /cameras/front/stream)");
    }
    let key = signing_key(&key_dir(config))?;
    Ok(format!("{base}{path}?share={}", share_token_with(&key, path, ttl)))
}

fn share_token_with(key: &[u8; 32], path: &str, ttl: Duration) -> String {
    let expires = unix_now() + ttl.as_secs();
    format!("{expires}-{}", sign_with(key, &format!("share\0{path}\0{expires}")))
}

fn sign_with(key: &[u8; 32], message: &str) -> String {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key size");
    mac.update(message.as_bytes());
    hex(&mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts() -> (Accounts, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let users = vec![User::parse("ann:correct horse").unwrap()];
        (Accounts::new(users, dir.path()).unwrap(), dir)
    }

    fn headers(pairs: &[(&str, String)]) -> hyper::HeaderMap {
        pairs.iter().map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap())).collect()
    }

    fn basic_header(user: &str, pass: &str) -> String {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}")))
    }

    #[test]
    fn basic_cookie_and_share() {
        let (a, dir) = accounts();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let check = |h: &hyper::HeaderMap, path: &str, q: &str| a.check(h, path, q, ip);
        assert_eq!(check(&headers(&[]), "/", ""), Access::Denied);
        assert_eq!(check(&headers(&[("authorization", basic_header("ann", "correct horse"))]), "/", ""), Access::User("ann".into()));
        assert_eq!(check(&headers(&[("authorization", basic_header("ann", "wrong"))]), "/", ""), Access::Denied);
        assert_eq!(check(&headers(&[("authorization", basic_header("bob", "correct horse"))]), "/", ""), Access::Denied);

        let cookie = a.login("ann", "correct horse", ip).unwrap().unwrap();
        let with = headers(&[("cookie", format!("other=1; {COOKIE}={cookie}"))]);
        assert_eq!(check(&with, "/stream", ""), Access::User("ann".into()));
        let forged = cookie.replace("ann", "bob").replace(&hex(b"ann"), &hex(b"bob"));
        assert_eq!(check(&headers(&[("cookie", format!("{COOKIE}={forged}"))]), "/", ""), Access::Denied);
        assert!(a.login("ann", "nope", ip).unwrap().is_none());

        let token = a.share_token("/cameras/front/snapshot", Duration::from_secs(60));
        assert_eq!(check(&headers(&[]), "/cameras/front/snapshot", &format!("share={token}")), Access::Shared);
        assert_eq!(check(&headers(&[]), "/cameras/back/snapshot", &format!("share={token}")), Access::Denied, "one path only");
        let expired = a.share_token("/x", Duration::ZERO);
        assert_eq!(check(&headers(&[]), "/x", &format!("share={expired}")), Access::Denied, "expired");

        // The key is kept: a restart accepts the same cookie.
        let again = Accounts::new(vec![User::parse("ann:correct horse").unwrap()], dir.path()).unwrap();
        assert_eq!(again.check(&with, "/", "", ip), Access::User("ann".into()));
    }

    #[test]
    fn failures_are_limited_per_address() {
        let (a, _dir) = accounts();
        let (bad, other): (IpAddr, IpAddr) = ("10.0.0.2".parse().unwrap(), "10.0.0.3".parse().unwrap());
        let wrong = headers(&[("authorization", basic_header("ann", "guess"))]);
        for _ in 0..MAX_FAILURES {
            assert_eq!(a.check(&wrong, "/", "", bad), Access::Denied);
        }
        let right = headers(&[("authorization", basic_header("ann", "correct horse"))]);
        assert_eq!(a.check(&right, "/", "", bad), Access::Throttled, "even the right password waits");
        assert_eq!(a.check(&right, "/", "", other), Access::User("ann".into()), "other addresses are not held up");
    }

    #[test]
    fn next_stays_on_this_server() {
        assert_eq!(safe_next("/cameras/a/stream"), "/cameras/a/stream");
        for bad in ["//evil.example/", "https://evil.example/", "/\\evil", ""] {
            assert_eq!(safe_next(bad), "/", "{bad}");
        }
    }
}
