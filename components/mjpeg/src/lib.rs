//! framewire's camera handler: live MJPEG streams, snapshots and the state
//! document, as a `wasi:http/incoming-handler` component.
//!
//! Frames come from the host through `framewire:camera/frames`; their bytes
//! are spliced from the host's shared buffer into the response body and
//! never enter this component's memory.

use framewire_camera::{frames, host, status_name};
use framewire_core::{mjpeg, query, routes::CameraRoute};
use serde_json::json;
use framewire_guest::{NO_CACHE, Reply, Target, get_or_head};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

/// How long one `next` call waits before checking that the client is still
/// there; also the longest a stream goes without a frame before it notices.
const FRAME_WAIT_MS: u32 = 1_000;

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    let Some((Target { path, query, head }, out)) = get_or_head(&req, out) else { return };
    let path = path.as_str();
    let Some(route) = framewire_core::routes::camera_route(path) else {
        return Reply::error(404, &format!("no such path: {path}")).send(out, head);
    };
    match route {
        CameraRoute::State => Reply::json(200, &state()).send(out, head),
        CameraRoute::Snapshot(cam) => match resolve(cam).and_then(|c| latest(&c)) {
            Ok(frame) => snapshot(frame, out, head),
            Err(reply) => reply.send(out, head),
        },
        CameraRoute::Stream(cam) => {
            let opts = match query::stream_query(&query) {
                Ok(o) => o,
                Err(e) => return Reply::error(400, &e.0).send(out, head),
            };
            match resolve(cam).and_then(|c| subscribe(&c)) {
                Ok(sub) => stream(sub, opts, out, head),
                Err(reply) => reply.send(out, head),
            }
        }
    }
}

/// The named camera, or the first one for the default routes.
fn resolve(name: Option<&str>) -> Result<String, Reply> {
    match name {
        Some(n) => Ok(n.to_string()),
        None => frames::list_cameras()
            .into_iter()
            .next()
            .map(|c| c.name)
            .ok_or_else(|| Reply::error(404, "no cameras are configured")),
    }
}

fn frames_error(e: frames::Error) -> Reply {
    match e {
        frames::Error::UnknownCamera(name) => {
            let known: Vec<String> = frames::list_cameras().into_iter().map(|c| c.name).collect();
            Reply::json(404, &json!({"error": format!("unknown camera: {name}"), "cameras": known}))
        }
        frames::Error::NoFrame => {
            Reply::error(503, "camera has no frame yet").header("retry-after", "1")
        }
    }
}

/// The newest frame, fresh: the host wakes an idle camera and waits for
/// its next frame (a failed camera shows its "no signal" card).
fn latest(cam: &str) -> Result<frames::Frame, Reply> {
    frames::latest(cam).map_err(frames_error)
}

fn subscribe(cam: &str) -> Result<frames::Subscription, Reply> {
    frames::subscribe(cam).map_err(frames_error)
}

fn snapshot(frame: frames::Frame, out: ResponseOutparam, head: bool) {
    let info = frame.info();
    let Ok(mut body) = Reply::new(200)
        .header("content-type", "image/jpeg")
        .header("content-length", &info.size.to_string())
        .header("cache-control", NO_CACHE)
        .header("x-timestamp", &mjpeg::format_timestamp(info.captured_at_us))
        .header("x-frame-sequence", &info.sequence.to_string())
        .start_held(out)
    else {
        return;
    };
    if head {
        return body.end_head();
    }
    if let Err(e) = body.splice_all(&frame.body(), info.size as u64) {
        e.report("snapshot");
        return;
    }
    body.finish();
}

fn stream(sub: frames::Subscription, opts: query::StreamQuery, out: ResponseOutparam, head: bool) {
    let reply = Reply::new(200)
        .header("content-type", &mjpeg::content_type())
        .header("cache-control", NO_CACHE)
        .header("pragma", "no-cache")
        .header("expires", "0")
        // Tell buffering proxies (nginx) to pass parts through at once.
        .header("x-accel-buffering", "no");
    if !head && !opts.in_guest {
        // The host sends the frames from here on, and this instance ends.
        let Ok(body) = reply.start_unwritten(out) else { return };
        let options = frames::RelayOptions { boundary: mjpeg::BOUNDARY.to_string(), max_fps: opts.fps };
        if let Err(e) = frames::relay(sub, body, &options) {
            eprintln!("relay refused: {e}");
        }
        return;
    }
    let Ok(mut body) = reply.start(out) else { return };
    if head {
        return body.finish();
    }
    let interval_ns = opts.fps.map(|fps| (1e9 / fps as f64) as u64);
    let mut next_due = wasi::clocks::monotonic_clock::now();
    let mut last = 0;
    let result = (|| -> Result<(), framewire_guest::Error> {
        body.write_all(mjpeg::preamble().as_bytes())?;
        loop {
            if let Some(interval) = interval_ns {
                body.sleep_until(next_due)?;
                next_due = next_due.max(wasi::clocks::monotonic_clock::now().saturating_sub(interval)) + interval;
            }
            let Some(mut frame) = sub.next(last, FRAME_WAIT_MS) else {
                body.check_open()?;
                continue;
            };
            // The last frame may still be on its way to a slow client: once
            // it has left, send the newest frame, not this one.
            if body.wait_flushed()?
                && let Some(newer) = sub.next(frame.info().sequence, 0)
            {
                frame = newer;
            }
            let info = frame.info();
            last = info.sequence;
            body.write_all(mjpeg::part_header(info.size as usize, info.captured_at_us, info.sequence).as_bytes())?;
            body.splice_all(&frame.body(), info.size as u64)?;
            body.write_all(mjpeg::part_trailer().as_bytes())?;
            body.flush()?;
        }
    })();
    if let Err(e) = result {
        e.report("stream ended");
    }
}

fn state() -> serde_json::Value {
    let cameras: Vec<_> = frames::list_cameras()
        .into_iter()
        .map(|c| {
            let details = frames::details(&c.name).ok();
            let recording = details.as_ref().and_then(|d| d.recording.as_ref()).map(|r| {
                json!({
                    "folder": r.folder,
                    "file": r.file,
                    "error": r.error,
                    "segments": r.segments,
                    "frames_written": r.frames_written,
                    "bytes_written": r.bytes_written,
                    "frames_dropped": r.frames_dropped,
                })
            });
            json!({
                "name": c.name,
                "spec": c.spec,
                "width": c.width,
                "height": c.height,
                "target_fps": c.target_fps,
                "fps": (c.measured_fps * 10.0).round() / 10.0,
                "status": status_name(c.status),
                "error": c.last_error,
                "clients": c.clients,
                "format": c.format,
                "frames_captured": c.frames_captured,
                "frames_encoded": c.frames_encoded,
                "frames_passed_through": c.frames_passed_through,
                "frames_dropped": c.frames_dropped,
                "bitrate": details.as_ref().map(|d| d.source.bitrate),
                "reconnects": details.as_ref().map(|d| d.source.reconnects),
                "recording": recording,
            })
        })
        .collect();
    let components: Vec<_> = host::components()
        .into_iter()
        .map(|c| {
            json!({
                "route": c.route,
                "source": c.source,
                "sha256": c.sha256,
                "loaded_at_ms": c.loaded_at_ms,
                "previous_sha256": c.previous_sha256,
                "last_error": c.last_error,
            })
        })
        .collect();
    json!({
        "version": host::version(),
        "uptime_ms": host::uptime_ms(),
        "cameras": cameras,
        "components": components,
    })
}
