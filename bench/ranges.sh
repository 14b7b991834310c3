#!/usr/bin/env bash
# framewire's media route beside nginx (Debian nginx-light) and a native
# floor (bench/src/ranges_baseline.rs: plain hyper, framewire's threading and
# data path, no wasm), same folder, same machine, loopback only:
#   - one 1 GiB download with curl (throughput);
#   - random 64 KiB ranges over 64 keep-alive connections with wrk (req/s),
#     a request-only script, with each server's CPU and wrk's own.
# Prints the figures and framewire/nginx ratios. Run it through `./dev bench-ranges`.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN="${SECONDS_PER_RUN:-10}"
# --repeat R: R rounds of the ranges runs, the three servers taking turns in
# each, then each ratio's median and spread (this VM's speed drifts between
# runs, nginx's and the floor's included).
REPEAT=1
while (( $# )); do
    case "$1" in
        --repeat) REPEAT="$2"; shift 2 ;;
        *) echo "usage: bench/ranges.sh [--repeat R]" >&2; exit 2 ;;
    esac
done
(( REPEAT >= 1 )) || { echo "--repeat takes a count of 1 or more" >&2; exit 2; }
FRAMEWIRE="${FRAMEWIRE:-target/release/framewire}"
BASELINE="${BASELINE:-target/release/ranges-baseline}"
. bench/lib.sh
bench_setup ranges

mkdir -p "$work/media" "$work/nginx"
chmod 755 "$work" "$work/media"
size=$((1 << 30))
head -c "$size" /dev/urandom > "$work/media/big.bin"
cat "$work/media/big.bin" > /dev/null   # both servers read from the page cache

fw_port=18431
ng_port=18432
"$FRAMEWIRE" serve --listen "127.0.0.1:$fw_port" --media "$work/media" --camera "cam=test:64x48@1" > "$work/fw.log" 2>&1 &
pids+=($!)

"$BASELINE" --root "$work/media" > "$work/baseline.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q listening "$work/baseline.out" && break; sleep 0.1; done
bl_url=$(awk '/listening/ {print $4}' "$work/baseline.out")

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
check_range() { # one random range must come back as 206 with 64 KiB
    local got
    got=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' -r 1000-66535 "$1")
    [ "$got" = "206 65536" ] || { echo "$1 answered a range with '$got', not '206 65536'" >&2; exit 1; }
}
# ranges URL PID... -> "req/s server-cores wrk-cores"
ranges() {
    local out before after t0 t1
    check_range "$1"
    before=$(cpu_of "${@:2}")
    t0=$(date +%s.%N)
    out=$( { TIMEFORMAT='%U %S'; time SIZE=$size wrk -t2 -c64 -d"${SECONDS_PER_RUN}s" -s bench/random-range.lua "$1"; } 2>&1 )
    t1=$(date +%s.%N)
    after=$(cpu_of "${@:2}")
    if grep -q "Non-2xx" <<<"$out"; then echo "$1: $(grep Non-2xx <<<"$out")" >&2; exit 1; fi
    local rps bytes wrk_cpu
    rps=$(awk '/Requests\/sec/ {print int($2)}' <<<"$out")
    # wrk's total bytes read, to check each answer was the 64 KiB asked for.
    bytes=$(awk '/requests in/ {v=$5; u=substr(v, length(v)-1); n=substr(v, 1, length(v)-2);
        m = (u=="GB") ? 2^30 : (u=="MB") ? 2^20 : (u=="KB") ? 2^10 : 1; printf "%.0f\n", n*m}' <<<"$out")
    local reqs
    reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    local per
    per=$(echo "$bytes / $reqs" | bc)
    if (( per < 65536 || per > 66560 )); then echo "$1: $per bytes per response, not ~64 KiB" >&2; echo "$out" >&2; exit 1; fi
    wrk_cpu=$(tail -1 <<<"$out" | awk '{print $1 + $2}')
    local secs
    secs=$(echo "$t1 - $t0" | bc -l)
    echo "$rps $(echo "($after - $before) / $secs" | bc -l) $(echo "$wrk_cpu / $secs" | bc -l)"
}

fw_pid=${pids[0]}
bl_pid=${pids[1]}
ng_pids=$(pgrep -f "nginx -p $work/nginx" | tr '\n' ' ')
ng_pids="$ng_pids $(for p in $ng_pids; do pgrep -P "$p"; done | tr '\n' ' ')"
ng_pids=$(tr ' ' '\n' <<<"$ng_pids" | sort -u | tr '\n' ' ')

fw_dl=$(download "http://127.0.0.1:$fw_port/media/big.bin")
ng_dl=$(download "http://127.0.0.1:$ng_port/media/big.bin")

per() { echo "$1 * 1000000 / $2" | bc -l; }   # µs per request
ratio() { echo "$1 / $2" | bc -l; }
# median and range of numbers, one per line -> "median (min-max)"
spread() { sort -g | awk '{v[NR]=$1} END {m = (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2;
    printf "%.2f (%.2f-%.2f)", m, v[1], v[NR]}'; }

printf '%-34s %11.0f MB/s %11.0f MB/s %8.2f\n' "1 GiB download (curl, best of 3)" \
    "$(echo "$fw_dl / 1000000" | bc -l)" "$(echo "$ng_dl / 1000000" | bc -l)" "$(ratio "$fw_dl" "$ng_dl")"
echo
echo "random 64 KiB ranges (wrk -t2 -c64, ${SECONDS_PER_RUN} s each, request-only script)"
printf '%-6s %26s %26s %26s %9s %9s\n' round "framewire r/s µs/r wrk-µs" "nginx r/s µs/r wrk-µs" "native r/s µs/r wrk-µs" "fw/nginx" "fw/native"
vs_nginx=() vs_native=()
for round in $(seq "$REPEAT"); do
    read -r fw_rps fw_cpu fw_gen <<<"$(ranges "http://127.0.0.1:$fw_port/media/big.bin" "$fw_pid")"
    # shellcheck disable=SC2086
    read -r ng_rps ng_cpu ng_gen <<<"$(ranges "http://127.0.0.1:$ng_port/media/big.bin" $ng_pids)"
    read -r bl_rps bl_cpu bl_gen <<<"$(ranges "$bl_url/media/big.bin" "$bl_pid")"
    vs_nginx+=("$(ratio "$fw_rps" "$ng_rps")")
    vs_native+=("$(ratio "$fw_rps" "$bl_rps")")
    printf '%-6s %8s %8.1f %8.1f %8s %8.1f %8.1f %8s %8.1f %8.1f %9.2f %9.2f\n' "$round" \
        "$fw_rps" "$(per "$fw_cpu" "$fw_rps")" "$(per "$fw_gen" "$fw_rps")" \
        "$ng_rps" "$(per "$ng_cpu" "$ng_rps")" "$(per "$ng_gen" "$ng_rps")" \
        "$bl_rps" "$(per "$bl_cpu" "$bl_rps")" "$(per "$bl_gen" "$bl_rps")" \
        "${vs_nginx[-1]}" "${vs_native[-1]}"
done
echo "µs/r = the server's CPU per request; wrk-µs = wrk's own CPU per request (it shares the two cores)"
if (( REPEAT > 1 )); then
    echo "framewire/nginx, median (range) over $REPEAT rounds:  $(printf '%s\n' "${vs_nginx[@]}" | spread)"
    echo "framewire/native, median (range) over $REPEAT rounds: $(printf '%s\n' "${vs_native[@]}" | spread)"
fi
