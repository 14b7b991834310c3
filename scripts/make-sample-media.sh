#!/usr/bin/env bash
# Regenerates the sample media folder (media/) from ffmpeg's test sources.
# Needs ffmpeg (Debian package ffmpeg) and python3. The outputs are committed.
set -euo pipefail
cd "$(dirname "$0")/../media"
common=(-hide_banner -loglevel error -y -f lavfi -i "testsrc2=duration=8:size=320x240:rate=25" -f lavfi -i "sine=frequency=440:duration=8")
# H.264 + AAC, moov atom first (faststart) so playback and seeking start at once.
ffmpeg "${common[@]}" -c:v libx264 -profile:v baseline -pix_fmt yuv420p -b:v 120k -g 25 \
    -c:a aac -b:a 32k -movflags +faststart sample.mp4
# VP9 + Opus, keyframe every second so seeks land quickly.
ffmpeg "${common[@]}" -c:v libvpx-vp9 -b:v 120k -g 25 -deadline realtime -cpu-used 8 \
    -c:a libopus -b:a 32k sample.webm
# A one-page PDF holding a test-pattern JPEG.
ffmpeg -hide_banner -loglevel error -y -f lavfi -i "testsrc=size=595x842:rate=1" -frames:v 1 -q:v 4 /tmp/framewire-page.jpg
python3 - /tmp/framewire-page.jpg sample.pdf <<'PY'
import sys
jpg = open(sys.argv[1], "rb").read()
w, h = 595, 842
content = b"q %d 0 0 %d 0 0 cm /Im0 Do Q" % (w, h)
objs = [
    b"<< /Type /Catalog /Pages 2 0 R >>",
    b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
    b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Resources << /XObject << /Im0 4 0 R >> >> /Contents 5 0 R >>" % (w, h),
    b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceRGB /BitsPerComponent 8 /Filter /DCTDecode /Length %d >>\nstream\n" % (w, h, len(jpg)) + jpg + b"\nendstream",
    b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
]
out = bytearray(b"%PDF-1.4\n")
offsets = []
for i, o in enumerate(objs, 1):
    offsets.append(len(out))
    out += b"%d 0 obj\n" % i + o + b"\nendobj\n"
xref = len(out)
out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
open(sys.argv[2], "wb").write(out)
PY
ls -l sample.*
