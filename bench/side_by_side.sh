#!/usr/bin/env bash
# bench/side_by_side.sh - crpc's BenchmarkService server, async and blocking
# modes, beside gRPC C++ 1.51 (its completion-queue server, the harness's
# anchor, and its synchronous API, bench/grpcpp_sync_server.cc, the
# counterpart of crpc's blocking handlers) and a raw nghttp2 ceiling, in one
# interleaved run of the team's harness (shared/bench: h2load and the gRPC
# C++ load client; servers pinned to CPU 0, load generators to CPU 1).
# Prints the harness's table with ratios against gRPC C++ (the first
# server), and keeps the raw data and the exact binaries it measured.
# Then (CLIENTS=both, the default) the grpc_* tests run again, against the
# same servers, with crpc's own async load client (bench:benchmark_client)
# in place of the gRPC C++ one, which saturates near 45k calls/s: a second
# table, its ratios again from its own interleaved run. CLIENTS=grpcpp or
# CLIENTS=crpc runs one table only. POLL_US (default 50) adds the async
# server with crpc_server_options.poll_ns at that many microseconds as
# "crpc-async-poll" (latency bought with CPU; POLL_US=0 leaves it out).
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
  //bench:benchmark_server //bench:benchmark_client >&2
bin_dir=$("$ROOT/crpc.sh" bazel info --config=opt bazel-bin 2>/dev/null)
mkdir -p "$OUT"
# The binary measured is kept beside its results: a rebuild later cannot
# change what a table was measured on.
cp "$bin_dir/bench/benchmark_server" "$bin_dir/bench/benchmark_client" "$OUT/"
chmod u+w "$OUT/benchmark_server" "$OUT/benchmark_client"
# shellcheck source=bench/bench_lib.sh
source "$ROOT/bench/bench_lib.sh"
bench_stop_bazel "$ROOT"
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "commit: $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet || echo ' (+ uncommitted changes)')"
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "command: $0 $*"
} | tee "$OUT/env.txt"

# gRPC C++'s synchronous API (bench/grpcpp_sync_server.cc), the like-for-
# like counterpart of crpc's blocking handlers, built against the harness's
# generated code.
make -s -C "$HARNESS/grpcpp" -j2 >&2
g="$HARNESS/grpcpp/gen"
g++ -O2 -g -std=c++17 -I"$g" $(pkg-config --cflags grpc++ protobuf) \
  "$ROOT/bench/grpcpp_sync_server.cc" "$g/grpc/testing/messages.pb.o" \
  "$g/grpc/testing/benchmark_service.pb.o" \
  "$g/grpc/testing/benchmark_service.grpc.pb.o" \
  -o "$OUT/grpcpp_sync_server" $(pkg-config --libs grpc++ protobuf) -lpthread

server="$OUT/benchmark_server"
servers=(
  -s "grpcpp=$HARNESS/grpcpp/bench_server --port={port}"
  -s "crpc-async=$server --mode=async --port={port}"
  -s "crpc-blocking=$server --mode=blocking --port={port}"
  -s "grpcpp-sync=$OUT/grpcpp_sync_server --port={port}"
)
POLL_US=${POLL_US:-50}
if [[ "$POLL_US" != 0 ]]; then
  servers+=(-s "crpc-async-poll=$server --mode=async --poll_us=$POLL_US --port={port}")
fi
CLIENTS=${CLIENTS:-both}
if [[ "$CLIENTS" != crpc ]]; then
  echo "== load: h2load and the gRPC C++ client =="
  "$HARNESS/run.sh" "${servers[@]}" --out "$OUT/harness" "$@" |
    tee "$OUT/table.txt"
fi
if [[ "$CLIENTS" != grpcpp ]]; then
  echo "== load: crpc's async client (bench:benchmark_client) =="
  "$HARNESS/run.sh" "${servers[@]}" --client "$OUT/benchmark_client" \
    --tests grpc_unary_lat,grpc_unary_0B,grpc_unary_1KiB,grpc_pingpong_0B,grpc_sstream_1KiB,grpc_sstream_64KiB \
    --out "$OUT/harness-crpc-client" "$@" | tee "$OUT/table-crpc-client.txt"
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/env.txt"
echo "raw data and the measured binaries: $OUT"
