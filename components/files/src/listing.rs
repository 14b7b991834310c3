//! Directory listings: HTML for browsers, JSON for `Accept: application/json`.

use framewire_core::html::escape;
use framewire_core::media_path::encode_segment;
use framewire_guest::{Headers, NO_CACHE, Reply};
use serde_json::json;
use spin_sdk::http::ResponseOutparam;
use wasi::filesystem::types::{Descriptor, DescriptorType, PathFlags};

struct Entry {
    name: String,
    dir: bool,
    size: u64,
    modified_s: u64,
}

fn entries(dir: &Descriptor) -> Vec<Entry> {
    let Ok(stream) = dir.read_directory() else { return Vec::new() };
    let mut out = Vec::new();
    while let Ok(Some(e)) = stream.read_directory_entry() {
        if e.name.starts_with('.') {
            continue;
        }
        // Follow links the way opening would, so the listing matches what serves.
        let Ok(st) = dir.stat_at(PathFlags::SYMLINK_FOLLOW, &e.name) else { continue };
        let dir = match st.type_ {
            DescriptorType::Directory => true,
            DescriptorType::RegularFile => false,
            _ => continue,
        };
        let modified_s = st.data_modification_timestamp.map_or(0, |t| t.seconds);
        out.push(Entry { name: e.name, dir, size: st.size, modified_s });
    }
    out.sort_by(|a, b| b.dir.cmp(&a.dir).then_with(|| a.name.cmp(&b.name)));
    out
}

fn wants_json(headers: &Headers, query: &str) -> bool {
    query.split('&').any(|kv| kv == "format=json") || headers.get("accept").is_some_and(|a| a.contains("application/json"))
}

pub fn send(headers: &Headers, query: &str, dir: &Descriptor, path: &str, out: ResponseOutparam, head: bool) {
    let list = entries(dir);
    if wants_json(headers, query) {
        let items: Vec<_> = list
            .iter()
            .map(|e| {
                json!({
                    "name": e.name,
                    "type": if e.dir { "dir" } else { "file" },
                    "size": e.size,
                    "modified": e.modified_s,
                    "href": format!("{path}{}{}", encode_segment(&e.name), if e.dir { "/" } else { "" }),
                    "content_type": if e.dir { None } else { Some(framewire_core::mime::content_type(&e.name)) },
                })
            })
            .collect();
        return Reply::json(200, &json!({ "path": path, "entries": items })).header("vary", "accept").send(out, head);
    }
    let mut html = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{0}</title></head><body><h1>{0}</h1><ul>\n",
        escape(path)
    );
    if path != "/media/" {
        html.push_str("<li><a href=\"../\">../</a></li>\n");
    }
    for e in &list {
        let slash = if e.dir { "/" } else { "" };
        html.push_str(&format!(
            "<li><a href=\"{}{slash}\">{}{slash}</a>{}</li>\n",
            encode_segment(&e.name),
            escape(&e.name),
            if e.dir { String::new() } else { format!(" <small>{} bytes</small>", e.size) }
        ));
    }
    if list.is_empty() {
        html.push_str("<li><em>This folder is empty.</em></li>\n");
    }
    html.push_str("</ul></body></html>\n");
    Reply::new(200)
        .header("content-type", "text/html; charset=utf-8")
        .header("cache-control", NO_CACHE)
        .header("vary", "accept")
        .body(html.into_bytes())
        .send(out, head)
}
