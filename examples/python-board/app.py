"""A camera board in Python: framewire's cameras as an HTML table or JSON,
and each camera's newest frame as a JPEG, from a sandboxed component.

Built with componentize-py against framewire's WIT (see README.md here).
The route it serves is set in framewire's config, e.g. `/board`.
"""

import json
from html import escape
from urllib.parse import parse_qs

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import frames, host
from wit_world.imports.streams import StreamError_Closed
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    Method_Get,
    Method_Head,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)

# blocking-write-and-flush takes at most 4096 bytes per call.
CHUNK = 4096


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        method = request.method()
        if not isinstance(method, (Method_Get, Method_Head)):
            return send(response_out, 405, "text/plain", b"only GET and HEAD\n", head=False, extra=[("allow", b"GET, HEAD")])
        head = isinstance(method, Method_Head)
        path, _, query = (request.path_with_query() or "/").partition("?")
        # The route's prefix (e.g. /board) is the config's business: only
        # the last segment matters here. NAME.jpg is a camera's frame.
        last = path.rsplit("/", 1)[-1]
        if last.endswith(".jpg"):
            return snapshot(last[: -len(".jpg")], response_out, head)
        wants_json = parse_qs(query).get("format") == ["json"]
        cameras = [camera_dict(c) for c in frames.list_cameras()]
        if wants_json:
            body = json.dumps({"host": host.version(), "uptime_ms": host.uptime_ms(), "cameras": cameras}).encode()
            return send(response_out, 200, "application/json", body, head)
        return send(response_out, 200, "text/html; charset=utf-8", board_html(cameras).encode(), head)


def camera_dict(c: frames.CameraInfo) -> dict:
    return {
        "name": c.name,
        "status": c.status.name.lower().replace("_", "-"),
        "format": c.format,
        "width": c.width,
        "height": c.height,
        "target_fps": round(c.target_fps, 2),
        "measured_fps": round(c.measured_fps, 2),
        "clients": c.clients,
        "last_error": c.last_error,
    }


def board_html(cameras: list) -> str:
    rows = "".join(
        "<tr><td><img src='{n}.jpg' width=160 alt=''></td><td>{n}</td><td>{s}</td><td>{f}</td>"
        "<td>{m} / {t}</td><td>{c}</td></tr>".format(
            n=escape(c["name"]), s=escape(c["status"]), f=escape(c["format"]),
            m=c["measured_fps"], t=c["target_fps"], c=c["clients"],
        )
        for c in cameras
    )
    return (
        "<!doctype html><meta charset=utf-8><meta http-equiv=refresh content=5>"
        "<title>framewire board</title><h1>Cameras</h1>"
        "<table><tr><th></th><th>name</th><th>status</th><th>format</th><th>fps</th><th>viewers</th></tr>"
        f"{rows}</table><p>Served by a Python component.</p>"
    )


def snapshot(name: str, response_out: ResponseOutparam, head: bool) -> None:
    try:
        frame = frames.latest(name)
    except Err as e:
        if isinstance(e.value, frames.Error_UnknownCamera):
            return send(response_out, 404, "text/plain", f"no camera named {name}\n".encode(), head)
        return send(response_out, 503, "text/plain", b"no frame yet\n", head, extra=[("retry-after", b"1")])
    with frame:
        info = frame.info()
        data = read_all(frame.body(), info.size)
    send(response_out, 200, "image/jpeg", data, head,
         extra=[("x-frame-sequence", str(info.sequence).encode()), ("cache-control", b"no-store")])


def read_all(stream, size: int) -> bytes:
    parts = []
    with stream:
        while size > 0:
            try:
                chunk = stream.blocking_read(min(size, 65536))
            except Err as e:
                if isinstance(e.value, StreamError_Closed):
                    break
                raise
            parts.append(chunk)
            size -= len(chunk)
    return b"".join(parts)


def send(response_out, status, content_type, body: bytes, head: bool, extra=()) -> None:
    headers = Fields.from_list([("content-type", content_type.encode()), ("content-length", str(len(body)).encode()), *extra])
    response = OutgoingResponse(headers)
    response.set_status_code(status)
    outgoing = response.body()
    ResponseOutparam.set(response_out, Ok(response))
    if head:
        # The head carries GET's Content-Length: drop the body unwritten
        # (finishing it short would be an error).
        with outgoing:
            return
    with outgoing.write() as out:
        for i in range(0, len(body), CHUNK):
            out.blocking_write_and_flush(body[i : i + CHUNK])
    OutgoingBody.finish(outgoing, None)
