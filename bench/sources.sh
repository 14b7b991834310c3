#!/usr/bin/env bash
# Host CPU per frame for each kind of network source, one viewer watching:
#   - RTSP JPEG 320x240 (passed through),
#   - RTSP H.264 640x480 and 1280x720 (decoded, JPEG-encoded),
#   - HTTP MJPEG relayed from another framewire (passed through),
# beside the built-in test camera at 640x480 (drawn and JPEG-encoded).
# Recording: the test camera recorded (its JPEGs decoded and H.264-encoded
# once per frame, beside the viewer's row: the difference is the cost of
# recording it), and RTSP H.264 recorded with nobody watching (written as
# it came: frames counted are frames recorded).
# Each runs alone in a fresh framewire; its CPU (user + system, from /proc)
# over the window is divided by the frames it captured. The sources' own
# CPU (GStreamer, the upstream framewire) is not counted.
# Run it through `./dev bench-sources`.
set -euo pipefail
cd "$(dirname "$0")/.."
FRAMEWIRE="${FRAMEWIRE:-target/release/framewire}"
SECONDS_PER_RUN="${SECONDS_PER_RUN:-10}"
. bench/lib.sh
bench_setup sources

/usr/bin/python3 tests/support/rtsp_server.py 0 >"$work/rtsp.out" 2>"$work/rtsp.err" &
pids+=($!)
for _ in $(seq 100); do grep -q '^ready' "$work/rtsp.out" && break; sleep 0.1; done
rtsp_port=$(awk '/^ready/ {print $2}' "$work/rtsp.out")
[ -n "$rtsp_port" ] || { cat "$work/rtsp.err" >&2; echo "the RTSP server did not start" >&2; exit 1; }

# The upstream of the relay: a framewire with its test camera.
"$FRAMEWIRE" serve --listen 127.0.0.1:0 --camera up=test:640x480@30 --cache-dir "$work/up" --admin off >"$work/up.out" 2>/dev/null &
pids+=($!)
for _ in $(seq 100); do grep -q 'listening on' "$work/up.out" && break; sleep 0.1; done
up=$(sed -n 's/^framewire listening on http:\/\///p' "$work/up.out")

captured() { # frames_captured of camera `cam`
    curl -sf "http://$1/cameras/cam/snapshot" -o /dev/null
    curl -sf "http://$1/api/state" | python3 -c 'import json,sys; print([c for c in json.load(sys.stdin)["cameras"] if c["name"]=="cam"][0]["frames_captured"])'
}

frames_of() { # addr mode: frames captured, or (mode "unwatched") frames recorded
    if [ "$2" = unwatched ]; then
        curl -sf "http://$1/metrics" | awk '/^framewire_recording_frames_written_total[{]camera="cam"[}]/ {print int($2)}'
    else
        captured "$1"
    fi
}

printf '%-50s %8s %10s %12s\n' "source" "fps" "frames" "µs/frame"
run() { # label spec [unwatched]
    local label=$1 spec=$2 mode=${3:-watched} out="$work/fw.out" pid c0 c1 f0 f1 addr viewer=""
    rm -rf "$work/media" && mkdir -p "$work/media"
    "$FRAMEWIRE" serve --listen 127.0.0.1:0 --camera "cam=$spec" --cache-dir "$work/fw" --admin off --media "$work/media" >"$out" 2>/dev/null &
    pid=$!
    pids+=("$pid")
    for _ in $(seq 100); do grep -q 'listening on' "$out" && break; sleep 0.1; done
    addr=$(sed -n 's/^framewire listening on http:\/\///p' "$out")
    # One viewer (unless unwatched); warm up (connect, first keyframe), then measure.
    if [ "$mode" != unwatched ]; then
        curl -s --max-time $((SECONDS_PER_RUN + 5)) "http://$addr/cameras/cam/stream" -o /dev/null &
        viewer=$!
    fi
    sleep 3
    c0=$(cpu_of "$pid"); f0=$(frames_of "$addr" "$mode")
    sleep "$SECONDS_PER_RUN"
    c1=$(cpu_of "$pid"); f1=$(frames_of "$addr" "$mode")
    kill $viewer "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    local frames=$((f1 - f0))
    (( frames > 0 )) || { echo "$label: no frames" >&2; exit 1; }
    printf '%-50s %8.1f %10d %12.0f\n' "$label" "$(echo "$frames / $SECONDS_PER_RUN" | bc -l)" "$frames" \
        "$(echo "($c1 - $c0) * 1000000 / $frames" | bc -l)"
}

run "test camera 640x480 (drawn, encoded)" "test:640x480@30"
run "test camera 640x480, recorded too (+ H.264)" "test:640x480@30,record"
run "HTTP MJPEG 640x480 relay (passed through)" "http://$up/cameras/up/stream"
run "RTSP JPEG 320x240 (passed through)" "rtsp://127.0.0.1:$rtsp_port/jpeg"
run "RTSP H.264 640x480 (decoded, encoded)" "rtsp://127.0.0.1:$rtsp_port/h264"
run "RTSP H.264 1280x720 (decoded, encoded)" "rtsp://127.0.0.1:$rtsp_port/h264-720"
run "RTSP H.264 640x480 recorded, nobody watching" "rtsp://127.0.0.1:$rtsp_port/h264,record" unwatched
run "RTSP H.264 1280x720 recorded, nobody watching" "rtsp://127.0.0.1:$rtsp_port/h264-720,record" unwatched
