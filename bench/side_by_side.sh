#!/usr/bin/env bash
# bench/side_by_side.sh - crpc's BenchmarkService server, async and blocking
# modes, beside gRPC C++ 1.51 and a raw nghttp2 ceiling server, in one
# interleaved run of the team's harness (shared/bench: h2load and the gRPC
# C++ load client; servers pinned to CPU 0, load generators to CPU 1).
# Prints the harness's table with ratios against gRPC C++ (the first
# server), and keeps the raw data and the exact server binary it measured.
#
#   bench/side_by_side.sh                  # 5 repetitions (about 15 min)
#   bench/side_by_side.sh --reps 3         # any bench.py flag passes through
#   bench/side_by_side.sh --quick          # 1 x 2 s smoke test
#
# Needs (apt-get, as root): libgrpc++-dev protobuf-compiler-grpc grpc-proto
# nghttp2-client libnghttp2-dev pkg-config g++ make python3. The harness
# builds in place, so it is copied to $HARNESS (default /tmp/crpc-harness)
# from $SHARED_BENCH (default ../shared/bench beside this checkout).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED_BENCH=${SHARED_BENCH:-$ROOT/../shared/bench}
HARNESS=${HARNESS:-/tmp/crpc-harness}
OUT=${OUT:-$ROOT/bench/results/side-by-side-$(date -u +%Y%m%dT%H%M%SZ)}

if [[ ! -x "$HARNESS/run.sh" ]]; then
  [[ -d "$SHARED_BENCH" ]] || {
    echo "side_by_side.sh: no harness at $SHARED_BENCH (set SHARED_BENCH)" >&2
    exit 1
  }
  mkdir -p "$HARNESS"
  cp -r "$SHARED_BENCH/." "$HARNESS/"
fi

"$ROOT/crpc.sh" bazel build --config=opt --color=no --curses=no \
  //bench:benchmark_server >&2
bin_dir=$("$ROOT/crpc.sh" bazel info --config=opt bazel-bin 2>/dev/null)
mkdir -p "$OUT"
# The binary measured is kept beside its results: a rebuild later cannot
# change what a table was measured on.
cp "$bin_dir/bench/benchmark_server" "$OUT/benchmark_server"
chmod u+w "$OUT/benchmark_server"
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "commit: $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet || echo ' (+ uncommitted changes)')"
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "command: $0 $*"
} | tee "$OUT/env.txt"

server="$OUT/benchmark_server"
"$HARNESS/run.sh" \
  -s "grpcpp=$HARNESS/grpcpp/bench_server --port={port}" \
  -s "crpc-async=$server --mode=async --port={port}" \
  -s "crpc-blocking=$server --mode=blocking --port={port}" \
  --out "$OUT/harness" "$@" | tee "$OUT/table.txt"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/env.txt"
echo "raw data and the measured binary: $OUT"
