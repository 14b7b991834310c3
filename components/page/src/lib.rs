//! framewire's web page: one card per camera with its live view, and the
//! media library with a player. Everything it needs (HTML, CSS, JS, icon)
//! is served from here, so the page works on an offline edge box.
//!
//! The camera cards are rendered from `framewire:camera/frames`; the script
//! then keeps them current from `/api/state` and loads the library from the
//! media route's JSON listing.

mod assets;

use framewire_camera::{frames, host, status_name};
use framewire_core::html::escape;
use framewire_guest::{Headers, NO_CACHE, Reply, Target, get_or_head};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
fn handle(req: IncomingRequest, out: ResponseOutparam) {
    let Some((Target { path, head, .. }, out)) = get_or_head(&req, out) else { return };
    let path = path.as_str();
    if path == "/" || path == "/index.html" {
        return html(200, page()).send(out, head);
    }
    match assets::find(path) {
        Some(asset) => asset.send(Headers::of(&req).get("if-none-match").as_deref(), out, head),
        None => html(404, not_found(path)).send(out, head),
    }
}

fn html(status: u16, body: String) -> Reply {
    Reply::new(status)
        .header("content-type", "text/html; charset=utf-8")
        .header("cache-control", NO_CACHE)
        .header("x-content-type-options", "nosniff")
        .body(body.into_bytes())
}

fn page() -> String {
    let cameras = frames::list_cameras();
    let cards: String = if cameras.is_empty() {
        "<p class=\"notice\">No cameras are configured. Start framewire with <code>--camera NAME=SPEC</code>.</p>".into()
    } else {
        cameras.iter().map(card).collect()
    };
    assets::INDEX
        .replace("{{version}}", &escape(&host::version()))
        .replace("{{cameras}}", &cards)
}

/// A camera's card as first rendered; the script starts its stream and
/// updates its figures.
fn card(c: &frames::CameraInfo) -> String {
    let name = escape(&c.name);
    let status = status_name(c.status);
    format!(
        r#"<article class="camera" data-camera="{name}" data-status="{status}">
  <header><h3>{name}</h3><span class="rec" hidden>REC</span><span class="status">{status}</span></header>
  <div class="view">
    <img alt="Live view of camera {name}" width="{w}" height="{h}">
    <p class="message" hidden></p>
  </div>
  <footer>
    <span class="figures"><span class="fps">–</span> fps · <span class="viewers">–</span> watching</span>
    <span class="actions">
      <button type="button" class="pause">Pause</button>
      <a class="button snapshot" href="/cameras/{name}/snapshot" download="{name}.jpg">Snapshot</a>
      <a class="button recordings" href="/media/" hidden>Recordings</a>
    </span>
  </footer>
</article>
"#,
        w = c.width,
        h = c.height,
    )
}

fn not_found(path: &str) -> String {
    assets::NOT_FOUND.replace("{{path}}", &escape(path))
}
