//! The admin API: swap a route's component on demand. It listens on
//! loopback by default; bound elsewhere it requires a bearer token.
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
use std::sync::Arc;
use tokio::net::TcpListener;

/// Largest component the admin API accepts.
pub const MAX_COMPONENT_BYTES: usize = 64 << 20;

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

/// Bind the admin API. A non-loopback address needs a token.
pub async fn start(app: Arc<App>, addr: SocketAddr, token: Option<String>) -> Result<SocketAddr> {
    if !addr.ip().is_loopback() && token.is_none() {
        bail!("the admin API on {addr} is reachable from other machines: set --admin-token");
    }
    let listener = TcpListener::bind(addr).await.with_context(|| format!("cannot listen for admin on {addr}"))?;
    let local = listener.local_addr()?;
    let token = Arc::new(token);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let (app, token) = (app.clone(), token.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let (app, token) = (app.clone(), token.clone());
                    async move { Ok::<_, std::convert::Infallible>(handle(app, token.as_deref(), req).await) }
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    Ok(local)
}

async fn handle(app: Arc<App>, token: Option<&str>, req: hyper::Request<Incoming>) -> Response {
    if let Some(t) = token {
        let given = req.headers().get("authorization").and_then(|v| v.to_str().ok());
        if given != Some(&format!("Bearer {t}")) {
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

/// `framewire swap ROUTE FILE`: send a component to a running framewire.
pub async fn swap_command(admin: SocketAddr, token: Option<&str>, route: &str, file: &std::path::Path) -> Result<String> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let stream = tokio::net::TcpStream::connect(admin)
        .await
        .with_context(|| format!("cannot reach the admin API at {admin}: is framewire running?"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut req = hyper::Request::put(format!("/routes/{route}")).header("host", admin.to_string());
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
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
