//! framewire's media handler: files from a read-only folder the host
//! preopens as `/`, with byte ranges, conditional requests and listings.
//!
//! File bytes come from `wasi:filesystem` read streams spliced into the
//! response body: they never enter this component's memory, so any file
//! size streams in bounded memory.

mod listing;

use framewire_core::conditional::{self, Conditions, Outcome, Validators};
use framewire_core::range::{self, ByteRange, Ranges};
use framewire_core::{byteranges, media_path, mime};
use framewire_guest::{Body, Headers, Reply, get_or_head};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;
use std::time::{Duration, UNIX_EPOCH};
use wasi::filesystem::types::{Descriptor, DescriptorFlags, DescriptorStat, DescriptorType, OpenFlags, PathFlags};

/// Requests for this prefix are ours; the rest of the path names the file.
const PREFIX: &str = "/media";

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    let Some((target, out)) = get_or_head(&req, out) else { return };
    let (path, head) = (target.path.as_str(), target.head);
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return Reply::error(404, "not found").send(out, head);
    };
    if rest.is_empty() {
        return redirect(out, &format!("{PREFIX}/"), head);
    }
    let Some(rest) = rest.strip_prefix('/') else {
        return Reply::error(404, "not found").send(out, head);
    };
    let Ok(media) = media_path::resolve(rest) else {
        return Reply::error(404, "not found").send(out, head);
    };
    let Some(root) = root() else {
        return Reply::error(500, "no media folder is mounted").send(out, head);
    };
    let file = if media.segments.is_empty() {
        root
    } else {
        // framewire opens only files and folders: a FIFO, socket or device
        // fails here at once. (Plain `wasmtime serve` would open a FIFO and
        // wait for a writer, holding this request, not the server.)
        match root.open_at(PathFlags::SYMLINK_FOLLOW, &media.relative(), OpenFlags::empty(), DescriptorFlags::READ) {
            Ok(f) => f,
            Err(_) => return Reply::error(404, "not found").send(out, head),
        }
    };
    let Ok(stat) = file.stat() else {
        return Reply::error(404, "not found").send(out, head);
    };
    let headers = Headers::of(&req);
    match stat.type_ {
        DescriptorType::Directory if !media.trailing_slash => redirect(out, &format!("{path}/"), head),
        DescriptorType::Directory => listing::send(&headers, &target.query, &file, path, out, head),
        DescriptorType::RegularFile if !media.trailing_slash => {
            let name = media.segments.last().map_or("", String::as_str);
            serve_file(&headers, &file, &stat, name, out, head)
        }
        _ => Reply::error(404, "not found").send(out, head),
    }
}

/// The media folder: the host preopens it as `/` (wasmtime serve: `--dir DIR::/`).
fn root() -> Option<Descriptor> {
    let mut dirs = wasi::filesystem::preopens::get_directories();
    let i = dirs.iter().position(|(_, name)| name == "/" || name == ".").unwrap_or(0);
    (!dirs.is_empty()).then(|| dirs.swap_remove(i).0)
}

fn redirect(out: ResponseOutparam, to: &str, head: bool) {
    Reply::new(301).header("location", to).header("content-type", "text/plain").body(format!("{to}\n").into_bytes()).send(out, head)
}

fn time(t: &Option<wasi::clocks::wall_clock::Datetime>) -> std::time::SystemTime {
    stamp(t).map_or(UNIX_EPOCH, |(s, ns)| UNIX_EPOCH + Duration::new(s, ns))
}

/// The status-change time stands for the file's identity: a file renamed or
/// copied over this one, even with the same size and modification time, has
/// its own, and it comes with the stat already taken (an inode hash would
/// cost another host call and stat per request).
fn validators(stat: &DescriptorStat) -> Validators {
    let changed = time(&stat.status_change_timestamp).duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() as u64;
    let now = time(&Some(wasi::clocks::wall_clock::now()));
    Validators::for_file(changed, stat.size, time(&stat.data_modification_timestamp), now)
}

fn serve_file(request: &Headers, file: &Descriptor, stat: &DescriptorStat, name: &str, out: ResponseOutparam, head: bool) {
    let v = validators(stat);
    let size = stat.size;
    let ctype = mime::content_type(name);
    let headers = |r: Reply| {
        let r = r
            .header("etag", &v.etag)
            .header("last-modified", &v.last_modified_header())
            .header("accept-ranges", "bytes")
            .header("cache-control", "no-cache")
            .header("x-content-type-options", "nosniff");
        // An HTML or SVG file from the folder must not run script as framewire.
        if mime::may_run_script(&ctype) { r.header("content-security-policy", "sandbox") } else { r }
    };
    let (im, inm, ims, ius, ir) = (
        request.get("if-match"),
        request.get("if-none-match"),
        request.get("if-modified-since"),
        request.get("if-unmodified-since"),
        request.get("if-range"),
    );
    let conds = Conditions {
        if_match: im.as_deref(),
        if_none_match: inm.as_deref(),
        if_modified_since: ims.as_deref(),
        if_unmodified_since: ius.as_deref(),
        if_range: ir.as_deref(),
    };
    let honor_range = match conditional::evaluate(&conds, &v, true) {
        Outcome::NotModified => return headers(Reply::new(304)).start(out).map_or((), Body::finish),
        Outcome::Failed => return headers(Reply::error(412, "precondition failed")).send(out, head),
        Outcome::Proceed { honor_range } => honor_range,
    };
    // HEAD is answered as without Range (RFC 9110 §14.2).
    let ranges = match request.get("range") {
        Some(r) if honor_range && !head => range::evaluate(&r, size),
        _ => Ranges::Full,
    };
    let (reply, plan) = match ranges {
        Ranges::Unsatisfiable => {
            let r = headers(Reply::error(416, "range not satisfiable")).header("content-range", &format!("bytes */{size}"));
            return r.send(out, head);
        }
        Ranges::Full => {
            let r = Reply::new(200).header("content-type", &ctype).header("content-length", &size.to_string());
            let whole = (size > 0).then(|| ByteRange { start: 0, end: size - 1 });
            (r, Plan::Single(whole))
        }
        Ranges::Partial(rs) if rs.len() == 1 => {
            let r = Reply::new(206)
                .header("content-type", &ctype)
                .header("content-range", &rs[0].content_range(size))
                .header("content-length", &rs[0].len().to_string());
            (r, Plan::Single(Some(rs[0])))
        }
        Ranges::Partial(rs) => {
            let layout = byteranges::Layout::new(&rs, size, &ctype, &byteranges::boundary_for(&v.etag));
            let r = Reply::new(206)
                .header("content-type", &layout.content_type())
                .header("content-length", &layout.content_length().to_string());
            (r, Plan::Multi(layout))
        }
    };
    let Ok(mut body) = headers(reply).start_held(out) else { return };
    if head {
        return body.end_head();
    }
    let sent = match &plan {
        Plan::Single(None) => Ok(()),
        Plan::Single(Some(r)) => send_range(&mut body, file, *r, Some(stat)),
        Plan::Multi(layout) => (|| {
            let last = layout.parts.len() - 1;
            for (i, part) in layout.parts.iter().enumerate() {
                body.write_all(part.head.as_bytes())?;
                send_range(&mut body, file, part.range, (i == last).then_some(stat))?;
            }
            body.write_all(layout.closing.as_bytes())
        })(),
    };
    match sent {
        Ok(()) => body.finish(),
        // Leaving the body unfinished makes the host abort the response:
        // the client sees a truncated transfer, never a complete wrong one.
        Err(e) => e.report(name),
    }
}

enum Plan {
    Single(Option<ByteRange>),
    Multi(byteranges::Layout),
}

fn failed(what: &str) -> framewire_guest::Error {
    framewire_guest::Error::Failed(what.to_string())
}

/// Splice `r` from the file into the body. With `check`, the response cannot
/// complete until the file is seen unchanged since `check` was taken, so a
/// file rewritten while it is served never completes a response with mixed
/// bytes under the old ETag. A range that fits in the body's buffer with its
/// head is checked before the head leaves (a change turns it into a 500); a
/// longer one holds back its last byte until the check, and is cut off.
fn send_range(body: &mut Body, file: &Descriptor, r: ByteRange, check: Option<&DescriptorStat>) -> Result<(), framewire_guest::Error> {
    let stream = file.read_via_stream(r.start).map_err(|e| failed(&format!("cannot read: {e:?}")))?;
    let Some(before) = check else {
        return body.splice_all(&stream, r.len());
    };
    let held = if body.head_held() { body.splice_held(&stream, r.len())? } else { 0 };
    if held == r.len() {
        return unchanged(file, before);
    }
    body.splice_all(&stream, r.len() - held - 1)?;
    let last = stream.blocking_read(1).map_err(|_| failed("file shrank while being served"))?;
    unchanged(file, before)?;
    if last.len() != 1 {
        return Err(failed("file shrank while being served"));
    }
    body.write_all(&last)
}

fn unchanged(file: &Descriptor, before: &DescriptorStat) -> Result<(), framewire_guest::Error> {
    let now = file.stat().map_err(|_| failed("file vanished while being served"))?;
    if now.size != before.size
        || stamp(&now.data_modification_timestamp) != stamp(&before.data_modification_timestamp)
        || stamp(&now.status_change_timestamp) != stamp(&before.status_change_timestamp)
    {
        return Err(failed("file changed while being served; response aborted"));
    }
    Ok(())
}

fn stamp(t: &Option<wasi::clocks::wall_clock::Datetime>) -> Option<(u64, u32)> {
    t.as_ref().map(|t| (t.seconds, t.nanoseconds))
}
