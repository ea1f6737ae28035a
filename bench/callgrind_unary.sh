#!/usr/bin/env bash
# bench/callgrind_unary.sh - user-space instructions per unary call on the
# server, counted by valgrind's callgrind: a figure this VM's timing noise
# (+-20 % between runs) cannot move, for A/B-ing hot-path changes.
#
#   bench/callgrind_unary.sh                     # crpc async and blocking
#   bench/callgrind_unary.sh SERVER_BIN...       # other benchmark_server builds
#   CEILING=/tmp/crpc-harness/h2/h2_min_server bench/callgrind_unary.sh
#
# Each server runs under callgrind; h2load (-c4 -m16, 0-byte requests, the
# harness's h2_unary_0B) sends N calls to warm it up, the counters are
# zeroed, N more calls are sent, and the instructions counted are divided
# by N. Kernel time (syscalls, TCP) is not in the figure: pair it with
# bench/side_by_side.sh for CPU per call. N=5000 by default (about 20 s per
# server). SHAPE="-c1 -m1" counts the 1x1 latency shape instead, where no
# loop iteration carries more than one call. Needs valgrind and
# nghttp2-client (apt-get).
# Prints one table row per server and mode; profiles stay in $OUT.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-5000}
SHAPE=${SHAPE:--c4 -m16}
OUT=${OUT:-$ROOT/bench/results/callgrind-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
for tool in valgrind callgrind_control callgrind_annotate h2load; do
  command -v "$tool" >/dev/null || {
    echo "callgrind_unary.sh: needs $tool (apt-get install valgrind nghttp2-client)" >&2
    exit 1
  }
done

servers=("$@")
if [[ ${#servers[@]} -eq 0 ]]; then
  "$ROOT/crpc.sh" bazel build --config=opt //bench:benchmark_server >&2
  bin_dir=$("$ROOT/crpc.sh" bazel info --config=opt bazel-bin 2>/dev/null)
  cp -f "$bin_dir/bench/benchmark_server" "$OUT/benchmark_server"
  chmod u+w "$OUT/benchmark_server"
  servers=("$OUT/benchmark_server")
fi

# A gRPC message of 0 bytes: flag 0, length 0.
body="$OUT/unary-0.bin"
printf '\0\0\0\0\0' >"$body"

wait_port() {
  for _ in $(seq 150); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.2
  done
  return 1
}

load() { # port calls
  local log="$OUT/h2load.log"
  # shellcheck disable=SC2086 # SHAPE is two flags
  h2load $SHAPE -t1 -n"$2" -d "$body" -H "content-type: application/grpc" \
    -H "te: trailers" "http://127.0.0.1:$1/grpc.testing.BenchmarkService/UnaryCall" >"$log" 2>&1
  grep -q "$2 succeeded" "$log" || {
    echo "callgrind_unary.sh: h2load did not complete $2 calls:" >&2
    tail -5 "$log" >&2
    return 1
  }
}

measure() { # label argv...
  local label=$1
  shift
  local port=$((40000 + RANDOM % 20000))
  local prof="$OUT/callgrind.$label"
  valgrind --tool=callgrind --compress-strings=no --compress-pos=no --callgrind-out-file="$prof" "${@//\{port\}/$port}" \
    >"$OUT/$label.log" 2>&1 &
  local pid=$!
  wait_port "$port" || { echo "$label: server did not listen" >&2; kill -9 $pid; return 1; }
  load "$port" "$N"
  callgrind_control -z "$pid" >/dev/null 2>&1
  load "$port" "$N"
  callgrind_control -d "$pid" >/dev/null 2>&1
  sleep 0.5
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  local dump
  dump=$(ls -t "$prof"* | head -1)
  local total
  total=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  printf '| %s | %d | %s |\n' "$label" $((total / N)) "$dump"
}

echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet || echo ' (+ uncommitted changes)'), N=$N, h2load $SHAPE"
echo
echo "| server | user-space instructions per call | profile |"
echo "|---|---|---|"
i=0
for s in "${servers[@]}"; do
  i=$((i + 1))
  for mode in async blocking; do
    measure "s$i-$mode" "$s" "--mode=$mode" "--port={port}"
  done
done
if [[ -n "${CEILING:-}" ]]; then
  measure "nghttp2-ceiling" "$CEILING" "{port}"
fi
