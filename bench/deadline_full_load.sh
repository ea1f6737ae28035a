#!/usr/bin/env bash
# deadline_full_load.sh - how late a 5 ms deadline fires on a crpc server
# that h2load keeps at full unary load (issue 12's "server deadline late
# under load"), for async and blocking handlers.
#
# bench/cancel_side_by_side.sh --under-load loads a separate server at a
# fixed rate, because the anchors' servers cannot be reached from outside.
# Here the load goes to the very server whose deadlines are measured:
# cancel_bench's server also answers /grpc.testing.BenchmarkService/UnaryCall
# (bench/cancel_load.h), so h2load -c CLIENTS -m STREAMS (no rate limit:
# as many calls as the server answers) runs against it for the whole
# deadline scenario, which starts once the load has had LOAD_WAIT calls
# answered. Rounds alternate the modes so the machine's noise hits both.
# Prints, per mode, the medians over rounds of each round's p50 / p99 of
# server_ctxdone_minus_deadline_us and its split (the request's trip;
# the server timer's own lateness), and the load each round carried.
#
# As bench/side_by_side.sh measures throughput, the server is pinned to
# CPU 0 (so it runs one loop, the default for a process allowed one CPU)
# and the load to CPU 1: h2load and cancel_bench's own client threads
# (-client-cpu 1), as if they were another machine; --no-pin lets all of
# them float over every CPU, which on a 2-CPU machine puts two busy loops,
# h2load and the client on two CPUs.
#
# Usage: bench/deadline_full_load.sh [--rounds 3] [--iters 1000]
#          [--warmup 100] [--clients 4] [--streams 16] [--no-pin]
#          [--out DIR]
# Needs h2load (apt-get install nghttp2-client) and python3.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${SHARED:-$(cd "$REPO/.." && pwd)/shared}
ROUNDS=3 ITERS=1000 WARMUP=100 CLIENTS=4 STREAMS=16 LOAD_WAIT=2000 PIN=1
OUT=/tmp/deadline-full-load-$(date -u +%Y%m%dT%H%M%SZ)
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --iters) ITERS=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --streams) STREAMS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --no-pin) PIN=0; shift ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
  esac
done
command -v h2load >/dev/null || { echo "needs h2load: apt-get install nghttp2-client" >&2; exit 1; }

mkdir -p "$OUT/bin"
(cd "$REPO" && ./crpc.sh bazel build --config=opt //bench:cancel_bench >&2)
bin_dir=$(cd "$REPO" && ./crpc.sh bazel info --config=opt bazel-bin 2>/dev/null)
cp -f "$bin_dir/bench/cancel_bench" "$OUT/bin/"
# shellcheck source=bench/bench_lib.sh
source "$(dirname "$0")/bench_lib.sh"
bench_stop_bazel "$REPO"
body=$OUT/unary-1024.bin
python3 "$SHARED/bench/h2/make_body.py" 1024 "$body"
{
  echo "command: $0 --rounds $ROUNDS --iters $ITERS --warmup $WARMUP --clients $CLIENTS --streams $STREAMS$([[ $PIN == 1 ]] || echo ' --no-pin')"
  echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), commit $(git -C "$REPO" rev-parse --short HEAD)$(git -C "$REPO" diff --quiet || echo ' (+ uncommitted changes)')"
  echo "kernel: $(uname -r), cpus: $(nproc), loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/env.txt" >&2

H2LOAD_PID=""
trap '[[ -n "$H2LOAD_PID" ]] && kill "$H2LOAD_PID" 2>/dev/null; true' EXIT
server_cpus=() load_cpus=() client_cpu=()
if [[ $PIN == 1 ]]; then
  [[ $(nproc) -ge 2 ]] || { echo "pinning needs 2 CPUs (or --no-pin)" >&2; exit 1; }
  server_cpus=(taskset -c 0) load_cpus=(taskset -c 1) client_cpu=(-client-cpu 1)
fi

for r in $(seq 1 "$ROUNDS"); do
  d=$OUT/run-$r
  mkdir -p "$d"
  for mode in blocking async; do
    echo "== round $r/$ROUNDS: $mode" >&2
    "${server_cpus[@]}" "$OUT/bin/cancel_bench" -mode "$mode" \
      "${client_cpu[@]}" -scenarios deadline \
      -iters "$ITERS" -warmup "$WARMUP" -load-wait "$LOAD_WAIT" \
      >"$d/crpc-$mode.jsonl" 2>"$d/crpc-$mode.err" &
    bench_pid=$!
    # h2load gives up on a refused connection: start it once we listen.
    port=$(cancel_bench_port "$d/crpc-$mode.err" "$bench_pid") || {
      echo "cancel_bench -mode $mode never listened: $d/crpc-$mode.err" >&2
      exit 1
    }
    "${load_cpus[@]}" h2load -c"$CLIENTS" -m"$STREAMS" -t1 -D 3600 -d "$body" \
      -H 'content-type: application/grpc' -H 'te: trailers' \
      "http://127.0.0.1:$port/grpc.testing.BenchmarkService/UnaryCall" \
      >"$d/h2load-$mode.log" 2>&1 &
    H2LOAD_PID=$!
    rc=0
    wait "$bench_pid" || rc=$?
    kill "$H2LOAD_PID" 2>/dev/null || true
    wait "$H2LOAD_PID" 2>/dev/null || true
    H2LOAD_PID=""
    [[ $rc == 0 ]] || { echo "cancel_bench -mode $mode failed ($rc): $d/crpc-$mode.err" >&2; exit 1; }
  done
done
echo "loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/env.txt"

python3 - "$OUT" "$ROUNDS" <<'EOF' | tee "$OUT/table.md"
import json, re, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
metrics = [("server_ctxdone_minus_deadline_us", "server ctx done - (start + 5 ms)"),
           ("server_deadline_minus_deadline_us", "  of which the request's trip"),
           ("server_ctxdone_minus_server_deadline_us", "  of which the server timer")]
rows = {}
load = {}
for mode in ("blocking", "async"):
    for r in range(1, rounds + 1):
        base = "%s/run-%d/crpc-%s" % (out, r, mode)
        for line in open(base + ".jsonl"):
            d = json.loads(line)
            rows.setdefault((mode, d["Metric"]), []).append((d["P50"], d["P99"], d["Max"]))
        m = re.search(r"\((\d+)/s\)", open(base + ".err").read())
        load.setdefault(mode, []).append(int(m.group(1)) if m else 0)
print("| 5 ms deadline at full unary load, us | crpc blocking p50 / p99 (max) | crpc async p50 / p99 (max) |")
print("|---|---|---|")
for key, label in metrics:
    cells = []
    for mode in ("blocking", "async"):
        v = rows.get((mode, key), [])
        if not v:
            cells.append("-")
            continue
        med = lambda i: statistics.median(x[i] for x in v)
        cells.append("%.0f / %.0f (%.0f)" % (med(0), med(1), max(x[2] for x in v)))
    print("| %s | %s |" % (label, " | ".join(cells)))
print("| load answered by that server, calls/s per round | %s | %s |" % tuple(
    " / ".join("{:,}".format(x) for x in load[m]) for m in ("blocking", "async")))
print()
print("Medians over %d rounds of each round's p50 and p99; max over all rounds." % rounds)
EOF
echo "raw data: $OUT" >&2
