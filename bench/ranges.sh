#!/usr/bin/env bash
# framewire's media route beside nginx (Debian nginx-light), same folder,
# same machine, loopback only:
#   - one 1 GiB download with curl (throughput);
#   - random 64 KiB ranges over 64 keep-alive connections with wrk (req/s).
# Prints the figures and framewire/nginx ratios. Run it through `./dev bench-ranges`.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN="${SECONDS_PER_RUN:-10}"
FRAMEWIRE="${FRAMEWIRE:-target/release/framewire}"
work=$(mktemp -d /tmp/framewire-ranges.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/media" "$work/nginx"
chmod 755 "$work" "$work/media"
size=$((1 << 30))
head -c "$size" /dev/urandom > "$work/media/big.bin"
cat "$work/media/big.bin" > /dev/null   # both servers read from the page cache

fw_port=18431
ng_port=18432
"$FRAMEWIRE" serve --listen "127.0.0.1:$fw_port" --media "$work/media" --camera "cam=test:64x48@1" > "$work/fw.log" 2>&1 &
pids+=($!)

# nginx at its best for this (see shared notes): sendfile on, tcp_nopush off.
cat > "$work/nginx/nginx.conf" <<CONF
worker_processes auto;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush off;
    keepalive_requests 1000000;
    client_body_temp_path $work/nginx;
    proxy_temp_path $work/nginx;
    fastcgi_temp_path $work/nginx;
    uwsgi_temp_path $work/nginx;
    scgi_temp_path $work/nginx;
    server {
        listen 127.0.0.1:$ng_port;
        location /media/ { alias $work/media/; }
    }
}
CONF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g "daemon off;" &
pids+=($!)

for port in $fw_port $ng_port; do
    for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/media/big.bin" -r 0-0 && break; sleep 0.1; done
done

download() { # best of three, bytes/s
    local best=0 s
    for _ in 1 2 3; do
        s=$(curl -s -o /dev/null -w '%{speed_download}' "$1")
        s=${s%.*}
        (( s > best )) && best=$s
    done
    echo "$best"
}
ranges() { # requests/s
    SIZE=$size wrk -t2 -c64 -d"${SECONDS_PER_RUN}s" -s bench/random-range.lua "$1" \
        | awk '/Requests\/sec/ {print int($2)} /Non-2xx/ {print "non-2xx: " $0 > "/dev/stderr"}'
}

fw_dl=$(download "http://127.0.0.1:$fw_port/media/big.bin")
ng_dl=$(download "http://127.0.0.1:$ng_port/media/big.bin")
fw_rps=$(ranges "http://127.0.0.1:$fw_port/media/big.bin")
ng_rps=$(ranges "http://127.0.0.1:$ng_port/media/big.bin")

printf '%-34s %14s %14s %8s\n' "" framewire nginx ratio
printf '%-34s %11.0f MB/s %11.0f MB/s %8.2f\n' "1 GiB download (curl, best of 3)" \
    "$(echo "$fw_dl / 1000000" | bc -l)" "$(echo "$ng_dl / 1000000" | bc -l)" "$(echo "$fw_dl / $ng_dl" | bc -l)"
printf '%-34s %10s r/s %10s r/s %8.2f\n' "random 64 KiB ranges (wrk -c64)" "$fw_rps" "$ng_rps" "$(echo "$fw_rps / $ng_rps" | bc -l)"
