"""A local RTSP server for framewire's tests: GStreamer's (python3-gi and
gir1.2-gst-rtsp-server-1.0), on 127.0.0.1 only, serving live test patterns
as /jpeg (RFC 2435 JPEG, 320x240), /h264 (Constrained Baseline, 640x480, a
keyframe every second), /h264-720 (the same at 1280x720) and /h265 (Main,
640x480, x265 from gstreamer1.0-plugins-bad). Prints
"ready PORT" once listening. With USER:PASSWORD every stream needs that
user, by Digest (an unauthenticated or wrong request gets a 401).

    /usr/bin/python3 rtsp_server.py [PORT [USER:PASSWORD]]   # PORT 0: any free port
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
gi.require_version("GstRtsp", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

Gst.init(None)
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(sys.argv[1] if len(sys.argv) > 1 else "0")
raw = "videotestsrc is-live=true pattern=ball ! video/x-raw,format=I420,width={w},height={h},framerate=15/1"
streams = {
    "/jpeg": raw.format(w=320, h=240) + " ! jpegenc ! rtpjpegpay name=pay0 pt=26",
    "/h264": raw.format(w=640, h=480)
    + " ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15"
    + " ! video/x-h264,profile=constrained-baseline ! rtph264pay name=pay0 pt=96 config-interval=1",
}
streams["/h264-720"] = streams["/h264"].replace("width=640,height=480", "width=1280,height=720")
streams["/h265"] = (
    raw.format(w=640, h=480)
    + " ! x265enc tune=zerolatency speed-preset=ultrafast key-int-max=15"
    + " ! video/x-h265,profile=main ! rtph265pay name=pay0 pt=96 config-interval=1"
)
user = sys.argv[2].split(":", 1) if len(sys.argv) > 2 else None
if user:
    auth = GstRtspServer.RTSPAuth()
    auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
    token = GstRtspServer.RTSPToken.new()
    token.set_string("media.factory.role", "user")
    auth.add_digest(user[0], user[1], token)
    server.set_auth(auth)
mounts = server.get_mount_points()
for path, launch in streams.items():
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch("( " + launch + " )")
    factory.set_shared(True)
    if user:
        permissions = GstRtspServer.RTSPPermissions.new()
        permissions.add_permission_for_role("user", "media.factory.access", True)
        permissions.add_permission_for_role("user", "media.factory.construct", True)
        factory.set_permissions(permissions)
    mounts.add_factory(path, factory)
server.attach(None)
print("ready", server.get_bound_port(), flush=True)
GLib.MainLoop().run()
