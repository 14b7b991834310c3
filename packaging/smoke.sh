#!/usr/bin/env bash
# Smoke test of a built framewire binary, of this machine's architecture or,
# through an emulator given as RUNNER, another one (`./dev cross` runs the
# aarch64 build under qemu-user). It starts the binary on the test camera
# and the sample media, reads 30 frames of the live stream, a range of a
# sample file, swaps a component into a running route and uses it, records
# a second camera (H.264, encoded on this machine) into the media folder,
# and stops it with SIGTERM. Figures go to standard output.
#   packaging/smoke.sh BIN COMPONENT.wasm [RUNNER...]
# COMPONENT is examples/thumbnail built for wasm32-wasip2.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$1 wasm=$2
shift 2
run=("$@")
work=$(mktemp -d)
trap '[ -z "${pid:-}" ] || kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
fail() { echo "smoke: $*" >&2; [ -f "$work/err" ] && tail -20 "$work/err" >&2; exit 1; }
now() { date +%s.%N; }
since() { printf '%.1f' "$(echo "$(now) - $1" | bc)"; }

# A writable media folder (recordings go there) with the sample files.
mkdir -p "$work/media"
cp media/sample.* "$work/media/"
cat >"$work/framewire.toml" <<EOF
listen = "127.0.0.1:0"
media = "$work/media"
cameras = ["cam=test:320x240@15", "rec=test:160x120@10,record,record-segment=2s"]
[routes.thumbs]
paths = ["/thumbnails"]
component = "builtin:page"
EOF
t0=$(now)
"${run[@]}" "$bin" serve --config "$work/framewire.toml" --cache-dir "$work/cache" \
    --admin "$work/admin.sock" >"$work/out" 2>"$work/err" &
pid=$!
for _ in $(seq 1 3000); do
    grep -q 'listening on' "$work/out" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || fail "framewire exited at start"
    sleep 0.1
done
url=$(sed -n 's/^framewire listening on //p' "$work/out")
[ -n "$url" ] || fail "framewire did not start in 300 s"
curl -sf --max-time 60 "$url/api/state" | grep -q '"cameras"' || fail "no state from $url"
echo "started and answered /api/state in $(since "$t0") s"

# 30 parts of the live stream: each a whole 320x240 JPEG, sequence rising.
t=$(now)
# (curl's own status is left out: the reader hangs up after 30 parts.)
{ curl -sN --max-time 60 "$url/stream" || true; } | timeout 90 python3 -c '
import sys, re
r = sys.stdin.buffer
seqs = []
while len(seqs) < 30:
    line = r.readline()
    if not line:
        sys.exit("stream ended after %d parts" % len(seqs))
    if not line.startswith(b"--"):
        continue
    head = {}
    while True:
        h = r.readline().strip()
        if not h:
            break
        k, _, v = h.decode().partition(":")
        head[k.strip().lower()] = v.strip()
    body = r.read(int(head["content-length"]))
    if not (body.startswith(b"\xff\xd8") and body.endswith(b"\xff\xd9")):
        sys.exit("part %d is not a whole JPEG" % len(seqs))
    m = re.search(rb"\xff\xc0..\x08(..)(..)", body, re.S)
    size = (int.from_bytes(m.group(2), "big"), int.from_bytes(m.group(1), "big"))
    if size != (320, 240):
        sys.exit("part %d is %dx%d" % (len(seqs), *size))
    seqs.append(int(head["x-frame-sequence"]))
if seqs != sorted(set(seqs)):
    sys.exit("sequence not rising: %s" % seqs)
' || fail "live stream"
echo "30 frames of /stream in $(since "$t") s"

# A range of a sample file, byte for byte.
f=media/sample.mp4
code=$(curl -s --max-time 60 -o "$work/range" -w '%{http_code}' -H 'Range: bytes=1000-66535' "$url/media/sample.mp4")
[ "$code" = 206 ] || fail "range: status $code"
cmp -s "$work/range" <(tail -c +1001 "$f" | head -c 65536) || fail "range: wrong bytes"
echo "range 1000-66535 of $f: 206, 65536 bytes, identical"

# Swap the thumbnail component into the running route and use it.
t=$(now)
"${run[@]}" "$bin" swap thumbs "$wasm" --admin "$work/admin.sock" >"$work/swap" 2>&1 || { cat "$work/swap" >&2; fail "swap"; }
echo "swapped $wasm into route thumbs in $(since "$t") s (compiled on this machine)"
sha=$(sha256sum "$wasm" | cut -d' ' -f1)
curl -sf "$url/api/state" | grep -q "$sha" || fail "state does not show the swapped component"
curl -sf --max-time 60 -o "$work/thumb.jpg" "$url/thumbnails/cam.jpg?w=80" || fail "thumbnail request"
python3 -c '
import re, sys
b = open(sys.argv[1], "rb").read()
m = re.search(rb"\xff\xc0..\x08(..)(..)", b, re.S)
size = (int.from_bytes(m.group(2), "big"), int.from_bytes(m.group(1), "big"))
sys.exit(0 if size == (80, 60) else "thumbnail is %dx%d" % size)' "$work/thumb.jpg" || fail "thumbnail size"
echo "thumbnail from the swapped component: 80x60 JPEG"

# The recording camera: its first 2 s segment, an MP4 with its index first.
t=$(now)
seg=
for _ in $(seq 1 600); do
    seg=$(find "$work/media/recordings/rec" -name '*.mp4' 2>/dev/null | sort | head -1)
    [ -n "$seg" ] && break
    sleep 0.1
done
[ -n "$seg" ] || fail "no finished recording within 60 s"
[ "$(head -c 8 "$seg" | tail -c 4)" = ftyp ] || fail "recording: not an MP4"
python3 -c '
import sys
b = open(sys.argv[1], "rb").read()
at, kinds = 0, []
while at + 8 <= len(b):
    kinds.append(b[at + 4:at + 8].decode("latin1"))
    at += int.from_bytes(b[at:at + 4], "big")
sys.exit(0 if kinds == ["ftyp", "moov", "mdat"] else "recording boxes: %s" % kinds)' "$seg" || fail "recording layout"
if command -v ffprobe >/dev/null; then
    got=$(ffprobe -v error -select_streams v:0 -show_entries stream=codec_name,width,height -of csv=p=0 "$seg")
    [ "$got" = "h264,160,120" ] || fail "recording: ffprobe says $got"
fi
echo "recorded $(basename "$seg") ($(stat -c %s "$seg") bytes, H.264 160x120) within $(since "$t") s"

# SIGTERM: a clean stop.
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
[ "$rc" = 0 ] || fail "exit status $rc after SIGTERM"
echo "SIGTERM: exit 0"
grep -a 'WARN' "$work/err" | sed 's/\x1b\[[0-9;]*m//g; s/^/server warned: /' || true
echo "smoke: ok ($(file -b "$bin" | cut -d, -f1-2))"
