//! What a request must show before any component sees it: a host name this
//! server answers to (against DNS rebinding) when there are no accounts,
//! and a credential when there are; and the login page that gives one.

use crate::auth::{Access, Accounts, COOKIE, SESSION};
use crate::reply::{host_of, html, json_response, redirect};
use http_body_util::{BodyExt, Limited};
use hyper::header::HeaderValue;
use std::net::SocketAddr;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

type Request = hyper::Request<hyper::body::Incoming>;
type Response = hyper::Response<HyperOutgoingBody>;

/// Largest login form accepted.
const MAX_FORM_BYTES: usize = 8 * 1024;

/// What a server asks of requests.
pub struct Gate<'a> {
    pub accounts: Option<&'a Accounts>,
    /// Host names answered besides localhost and IP literals.
    pub allow_hosts: &'a [String],
    /// Session cookies are then Secure.
    pub tls: bool,
}

impl Gate<'_> {
    /// The request if it may go on to its component, else the answer to it.
    pub async fn admit(&self, mut req: Request, peer: SocketAddr) -> Result<Request, Response> {
        let Some(accounts) = self.accounts else {
            // With accounts the credential protects us; without, only names we
            // answer to get through.
            let host = host_of(&req).unwrap_or("");
            if !framewire_core::authority::allowed(host, self.allow_hosts) {
                let name = framewire_core::authority::host_name(host);
                return Err(json_response(421, &format!("this server does not answer to {name:?}; start it with --allow-host {name} to allow it")));
            }
            return Ok(req);
        };
        match req.uri().path() {
            "/login" => return Err(login(accounts, req, peer, self.tls).await),
            "/logout" => return Err(redirect("/login", Some(session_cookie("", 0, self.tls)))),
            _ => {}
        }
        let query = req.uri().query().unwrap_or("");
        match accounts.check(req.headers(), req.uri().path(), query, peer.ip()) {
            Access::User(name) => {
                req.extensions_mut().insert(crate::auth::SignedIn(name));
                Ok(req)
            }
            Access::Shared => Ok(req),
            Access::Throttled => Err(too_many_failures()),
            Access::Denied => Err(unauthorized(&req)),
        }
    }
}

/// A browser opening a page goes to the login form; anything else gets 401
/// with a Basic challenge (curl, ffmpeg and VLC then send the URL's
/// credentials).
fn unauthorized(req: &Request) -> Response {
    let html = req.headers().get(hyper::header::ACCEPT).and_then(|a| a.to_str().ok()).is_some_and(|a| a.contains("text/html"));
    if html && req.method() == hyper::Method::GET {
        let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
        return redirect(&format!("/login?next={}", framewire_core::media_path::encode_segment(target)), None);
    }
    let mut resp = json_response(401, "sign in: HTTP Basic (http://user:password@host/...), the login page at /login, or a share link");
    resp.headers_mut().insert(hyper::header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"framewire\", charset=\"UTF-8\""));
    resp
}

fn too_many_failures() -> Response {
    let mut resp = json_response(429, "too many failed sign-ins from this address; wait a minute");
    resp.headers_mut().insert(hyper::header::RETRY_AFTER, HeaderValue::from_static("60"));
    resp
}

async fn login(accounts: &Accounts, req: Request, peer: SocketAddr, tls: bool) -> Response {
    if req.method() != hyper::Method::POST {
        let next = framewire_core::query::pairs(req.uri().query().unwrap_or(""))
            .unwrap_or_default()
            .into_iter()
            .find(|(k, _)| k == "next")
            .map_or_else(|| "/".to_string(), |(_, v)| v);
        return html(200, crate::auth::login_page(&next, None));
    }
    let Ok(body) = Limited::new(req.into_body(), MAX_FORM_BYTES).collect().await else {
        return html(413, crate::auth::login_page("/", Some("The form was too large.")));
    };
    let (name, password, next) = crate::auth::login_form(&body.to_bytes());
    match accounts.login(&name, &password, peer.ip()) {
        Ok(Some(cookie)) => redirect(crate::auth::safe_next(&next), Some(session_cookie(&cookie, SESSION.as_secs(), tls))),
        Ok(None) => html(401, crate::auth::login_page(&next, Some("Wrong name or password."))),
        Err(_) => too_many_failures(),
    }
}

/// The session cookie: HttpOnly (no script reads it), SameSite=Strict (no
/// other site's page sends it), Secure over TLS.
fn session_cookie(value: &str, max_age: u64, tls: bool) -> String {
    let secure = if tls { "; Secure" } else { "" };
    format!("{COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}")
}

