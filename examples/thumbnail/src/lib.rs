//! Camera thumbnails: `GET /thumbnails/{camera}.jpg?w=160` answers the
//! camera's newest frame scaled to `w` pixels wide (16 to the frame's own
//! width; default 160), decoded, scaled and re-encoded inside this
//! component. Each answer carries an ETag naming the frame and width, so a
//! page polling a grid of thumbnails gets `304 Not Modified`, with nothing
//! decoded, until the camera has a newer frame.
//!
//! A template: copy this folder and `wit/` beside it, change the handler.

mod scale;

use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

// framewire:camera's guest bindings. The `with` lines reuse the wasi:io and
// wasi:http types spin-sdk already has, so a frame's `input-stream` is the
// same type spin-sdk's streams are.
wit_bindgen::generate!({
    path: "../../wit",
    world: "framewire:camera/camera-guest",
    with: {
        "wasi:io/error@0.2.0": ::wasi::io::error,
        "wasi:io/streams@0.2.0": ::wasi::io::streams,
        "wasi:io/poll@0.2.0": ::wasi::io::poll,
        "wasi:clocks/monotonic-clock@0.2.0": ::wasi::clocks::monotonic_clock,
        "wasi:http/types@0.2.0": ::spin_sdk::wit::wasi::http0_2_0::types,
    },
});

use framewire::camera::frames;

const DEFAULT_WIDTH: u32 = 160;
const MIN_WIDTH: u32 = 16;
const QUALITY: u8 = 80;

#[http_component]
fn handle(req: Request) -> Response {
    if !matches!(req.method(), spin_sdk::http::Method::Get | spin_sdk::http::Method::Head) {
        return text(405, "only GET and HEAD\n");
    }
    let (path, query) = req.path_and_query().unwrap_or("/").split_once('?').unwrap_or((req.path(), ""));
    // The route's prefix is framewire's config; only the last segment matters.
    let Some(camera) = path.rsplit('/').next().and_then(|s| s.strip_suffix(".jpg")).filter(|s| !s.is_empty()) else {
        return text(404, "ask for /…/CAMERA.jpg?w=WIDTH\n");
    };
    let width = match requested_width(query) {
        Ok(w) => w,
        Err(e) => return text(400, &format!("{e}\n")),
    };
    let frame = match frames::latest(camera) {
        Ok(f) => f,
        Err(frames::Error::UnknownCamera(_)) => return text(404, &format!("no camera named {camera}\n")),
        Err(frames::Error::NoFrame) => return text(503, "no frame yet\n"),
    };
    let info = frame.info();
    let width = width.min(info.width);
    let etag = format!("\"{camera}-{}-{width}\"", info.sequence);
    if req.header("if-none-match").and_then(|v| v.as_str()).is_some_and(|v| v.split(',').any(|t| t.trim() == etag)) {
        return Response::builder().status(304).header("etag", etag).header("cache-control", "no-cache").build();
    }
    let jpeg = match read_frame(&frame, info.size).and_then(|bytes| thumbnail(&bytes, width)) {
        Ok(j) => j,
        Err(e) => return text(500, &format!("thumbnail of {camera}: {e}\n")),
    };
    Response::builder()
        .status(200)
        .header("content-type", "image/jpeg")
        .header("etag", etag)
        .header("cache-control", "no-cache")
        .header("x-frame-sequence", info.sequence.to_string())
        .body(jpeg)
        .build()
}

/// `w` from the query string, checked.
fn requested_width(query: &str) -> Result<u32, String> {
    let Some(w) = query.split('&').find_map(|kv| kv.strip_prefix("w=")) else { return Ok(DEFAULT_WIDTH) };
    match w.parse::<u32>() {
        Ok(w) if w >= MIN_WIDTH => Ok(w),
        _ => Err(format!("w={w}: expected a width of at least {MIN_WIDTH} pixels")),
    }
}

/// The frame's JPEG, read from the host into this component's memory
/// (it has to be here to be decoded).
fn read_frame(frame: &frames::Frame, size: u32) -> Result<Vec<u8>, String> {
    let stream = frame.body();
    let mut bytes = Vec::with_capacity(size as usize);
    while bytes.len() < size as usize {
        match stream.blocking_read(size as u64 - bytes.len() as u64) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(::wasi::io::streams::StreamError::Closed) => break,
            Err(e) => return Err(format!("reading the frame: {e}")),
        }
    }
    Ok(bytes)
}

/// Decode, scale to `width` (keeping the aspect ratio) and encode.
fn thumbnail(jpeg: &[u8], width: u32) -> Result<Vec<u8>, String> {
    let options = zune_jpeg::zune_core::options::DecoderOptions::default()
        .jpeg_set_out_colorspace(zune_jpeg::zune_core::colorspace::ColorSpace::RGB);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(jpeg, options);
    let rgb = decoder.decode().map_err(|e| format!("decoding: {e:?}"))?;
    let (w, h) = decoder.dimensions().ok_or("decoding: no dimensions")?;
    let image = scale::Rgb { width: w as u32, height: h as u32, pixels: &rgb };
    let small = scale::down(&image, width);
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, QUALITY)
        .encode(&small.pixels, small.width as u16, small.height as u16, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| format!("encoding: {e}"))?;
    Ok(out)
}

fn text(status: u16, body: &str) -> Response {
    Response::builder().status(status).header("content-type", "text/plain; charset=utf-8").body(body.to_string()).build()
}
