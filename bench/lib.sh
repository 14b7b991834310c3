# Shared by the benchmark scripts (sourced, from the repository's root):
# a scratch folder, the processes started, both gone on exit; and the CPU
# a set of processes has used.
#   bench_setup NAME     sets $work (/tmp/framewire-NAME.XXXXXX) and pids=()

bench_setup() {
    work=$(mktemp -d "/tmp/framewire-$1.XXXXXX")
    pids=()
    trap bench_cleanup EXIT
}

bench_cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}

# CPU seconds (user + system) used so far by these processes.
cpu_of() {
    local total=0 pid
    for pid in "$@"; do
        # Fields 14 and 15 of /proc/PID/stat, after the ")" ending the name.
        total=$(awk -v t="$total" '{ sub(/.*\) /, ""); print t + $12 + $13 }' "/proc/$pid/stat")
    done
    echo "scale=3; $total / $(getconf CLK_TCK)" | bc
}
