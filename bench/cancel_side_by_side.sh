#!/usr/bin/env bash
# cancel_side_by_side.sh - crpc's cancel_bench beside the grpc-go, gRPC C++
# and grpcio anchors of the team's shared/bench/cancel, in one run, one table.
#
# Every implementation runs the same protocol (shared/bench/cancel/RESULTS.md:
# scenarios idle, busy, busy-reads256, deadline; one process each, server and
# client over loopback TCP, one monotonic clock). Rounds are interleaved
# (go, cpp, py, crpc-blocking, crpc-async, then again) so the shared
# machine's noise hits all alike. Each round writes
# OUT/run-N/<impl>.jsonl (stderr in <impl>.err); the anchors' own
# aggregate.py turns all rounds into OUT/summary.md (per implementation,
# medians over rounds of each round's p50/p90/p99/max), and this script
# prints ONE table from it: rows = measures, columns = implementations.
# Its last row is crpc's own promise, measured by cancel_bench only: sends
# begun after the server saw the cancel that still returned OK (must be 0).
# Its last column, os-floor (//bench:os_floor), is no RPC stack: the idle
# and deadline measures with two bare threads and a loopback socket, what
# this machine's kernel and scheduler cost before any stack's own work.
#
# --under-load adds a second load condition. The anchors' servers live
# inside their own processes on random ports, so nothing can load "the
# server under test" from outside. Instead a separate unary gRPC server
# (crpc's //bench:benchmark_server in its default mode, grpc.testing.
# BenchmarkService; or any such server via --load-server, e.g. the shared
# bench's grpcpp/bench_server) serves h2load on another loopback port for
# the whole run: --load-clients connections, each sending --load-rps /
# --load-clients UnaryCall requests per second (1 KiB request, 1 KiB
# response, h2load --rps, one stream at a time per connection). Nothing is
# pinned, as in the anchors' runs: benches, load server and h2load all float
# over the same CPUs. The achieved req/s and the load server's CPU share are
# measured and printed with the table.
#
# --cpus LIST runs every implementation under taskset -c LIST (--cpus 0: one
# CPU for client and server alike). It answers what the two-CPU rows cannot:
# how each stack compares once the cross-CPU wake-up is out of the cancel's
# path for every implementation, not only for those whose one-process
# runtime reads the reset on the CPU that wrote it (grpc-go: README,
# "Cancellation").
#
# Usage: bench/cancel_side_by_side.sh [options]
#   --rounds R          rounds (default 3)
#   --iters N           measured iterations per scenario (default 1000)
#   --warmup M          warm-up iterations per scenario (default 100)
#   --impls LIST        default go,cpp,py,crpc-blocking,crpc-async,
#                       crpc-async-poll,floor (crpc-async-poll: async with
#                       -poll-us 50, a polling server loop; the client does
#                       not poll. floor: os_floor, above)
#   --anchors DIR       built copy of shared/bench/cancel (default
#                       /tmp/cancel; copied and built if missing)
#   --out DIR           results (default ANCHORS/results/side-by-side-<UTC>)
#   --crpc-bin PATH     use this cancel_bench instead of building it
#   --under-load        the second load condition described above
#   --cpus LIST         pin every implementation to these CPUs (taskset -c)
#   --load-rps N        total UnaryCall req/s (default 4000)
#   --load-clients C    h2load connections (default 4)
#   --load-server CMD   load server command, {port} replaced (default: crpc's
#                       benchmark_server, built with Bazel)
#
# Small smoke run: bench/cancel_side_by_side.sh --rounds 1 --iters 300 --warmup 50
# The anchors' RESULTS.md used --rounds 3 --iters 1000 --warmup 100 (~4 min
# here with crpc's two modes added).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/bench_lib.sh
source "$REPO/bench/bench_lib.sh"
SHARED=${SHARED:-$(cd "$REPO/.." && pwd)/shared}
CMDLINE="$0 $*"

ROUNDS=3 ITERS=1000 WARMUP=100
IMPLS=go,cpp,py,crpc-blocking,crpc-async,crpc-async-poll,floor
ANCHORS=/tmp/cancel OUT="" CRPC_BIN=""
UNDER_LOAD=0 LOAD_RPS=4000 LOAD_CLIENTS=4 LOAD_SERVER="" CPUS=""

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-2}"; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --iters) ITERS=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --impls) IMPLS=$2; shift 2 ;;
    --anchors) ANCHORS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --crpc-bin) CRPC_BIN=$2; shift 2 ;;
    --under-load) UNDER_LOAD=1; shift ;;
    --cpus) CPUS=$2; shift 2 ;;
    --load-rps) LOAD_RPS=$2; shift 2 ;;
    --load-clients) LOAD_CLIENTS=$2; shift 2 ;;
    --load-server) LOAD_SERVER=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "unknown option: $1" >&2; usage ;;
  esac
done
for n in "$ROUNDS" "$ITERS" "$WARMUP" "$LOAD_RPS" "$LOAD_CLIENTS"; do
  [[ "$n" =~ ^[0-9]+$ ]] || { echo "not a number: $n" >&2; exit 2; }
done
IFS=, read -r -a IMPL_LIST <<<"$IMPLS"
has_impl() { [[ ",$IMPLS," == *",$1,"* ]]; }
log() { echo "== $*" >&2; }

# ---- anchors: Debian packages, a writable copy, built in place -----------
need_pkgs=()
has_impl go && need_pkgs+=(golang-go golang-google-grpc-dev)
has_impl cpp && need_pkgs+=(libgrpc++-dev protobuf-compiler-grpc)
has_impl py && need_pkgs+=(python3-grpcio)
[[ $UNDER_LOAD == 1 ]] && need_pkgs+=(nghttp2-client)
missing=()
for p in "${need_pkgs[@]}"; do
  [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" == "install ok installed" ]] ||
    missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
if [[ ! -d "$ANCHORS" ]]; then
  log "copying $SHARED/bench/cancel to $ANCHORS (the anchors build in place)"
  cp -r "$SHARED/bench/cancel" "$ANCHORS" && chmod -R u+w "$ANCHORS"
fi
if { has_impl go && [[ ! -x $ANCHORS/build/cancel_bench_go ]]; } ||
   { has_impl cpp && [[ ! -x $ANCHORS/build/cancel_bench_cpp ]]; }; then
  log "building the anchors ($ANCHORS/build.sh)"
  "$ANCHORS/build.sh" >&2
fi

# ---- output directory; crpc binaries copied in, so the run is reproducible
# even if bazel-bin changes under us (other builds in the workspace) --------
stamp=$(date -u +%Y%m%dT%H%M%SZ)
if [[ -z "$OUT" ]]; then
  OUT=$ANCHORS/results/side-by-side-$stamp
  [[ $UNDER_LOAD == 1 ]] && OUT+=-under-load
  [[ -n $CPUS ]] && OUT+=-cpus-${CPUS//,/_}
fi
mkdir -p "$OUT/bin"
need_crpc=0
has_impl crpc-blocking && need_crpc=1
has_impl crpc-async && need_crpc=1
has_impl crpc-async-poll && need_crpc=1
targets=()
[[ $need_crpc == 1 && -z "$CRPC_BIN" ]] && targets+=(//bench:cancel_bench)
has_impl floor && targets+=(//bench:os_floor)
[[ $UNDER_LOAD == 1 && -z "$LOAD_SERVER" ]] && targets+=(//bench:benchmark_server)
if [[ ${#targets[@]} -gt 0 ]]; then
  log "building ${targets[*]} (bazel --config=opt; waits if another bazel command holds the lock)"
  (cd "$REPO" && ./crpc.sh bazel build --config=opt "${targets[@]}" >&2)
  bin_dir=$(cd "$REPO" && ./crpc.sh bazel info --config=opt bazel-bin 2>/dev/null)
  for t in "${targets[@]}"; do cp -f "$bin_dir/bench/${t#//bench:}" "$OUT/bin/"; done
  bench_stop_bazel "$REPO"
fi
if [[ -n "$CRPC_BIN" ]]; then cp -f "$CRPC_BIN" "$OUT/bin/cancel_bench"; fi
CRPC=$OUT/bin/cancel_bench

# ---- the second load condition -------------------------------------------
LOAD_FLAG="" LOAD_LOOP_PID="" LOAD_SRV_PID="" LOAD_DESC="none"
cleanup() {
  if [[ -n "$LOAD_FLAG" ]]; then rm -f "$LOAD_FLAG"; fi
  if [[ -n "$LOAD_LOOP_PID" ]]; then wait "$LOAD_LOOP_PID" 2>/dev/null || true; fi
  if [[ -n "$LOAD_SRV_PID" ]]; then kill "$LOAD_SRV_PID" 2>/dev/null || true; wait "$LOAD_SRV_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT
proc_cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

start_load() {
  mkdir -p "$OUT/load"
  local port url body
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  local cmd=${LOAD_SERVER:-"$OUT/bin/benchmark_server --port={port}"}
  cmd=${cmd//\{port\}/$port}
  log "load server: $cmd"
  # shellcheck disable=SC2086  # the command is a string by design
  $cmd >"$OUT/load/server.log" 2>&1 &
  LOAD_SRV_PID=$!
  url=http://127.0.0.1:$port/grpc.testing.BenchmarkService/UnaryCall
  body=$OUT/load/unary-1024.bin
  python3 "$SHARED/bench/h2/make_body.py" 1024 "$body"
  local hdrs=(-H 'content-type: application/grpc' -H 'te: trailers')
  local ok=0
  for _ in $(seq 50); do  # up to ~5 s for the server to listen and answer
    if nghttp -v -d "$body" "${hdrs[@]}" "$url" 2>/dev/null | grep -q 'grpc-status: 0'; then ok=1; break; fi
    sleep 0.1
  done
  [[ $ok == 1 ]] || { echo "load server did not answer a UnaryCall with grpc-status 0 (see $OUT/load/server.log)" >&2; exit 1; }
  LOAD_FLAG=$OUT/load/running
  touch "$LOAD_FLAG"
  local per_client=$(( (LOAD_RPS + LOAD_CLIENTS - 1) / LOAD_CLIENTS ))
  LOAD_CMD="h2load -c$LOAD_CLIENTS -m1 -t1 --rps=$per_client -D 5 -d $body -H 'content-type: application/grpc' -H 'te: trailers' $url"
  # 5 s chunks, so each prints its own achieved rate and stopping takes <= 5 s.
  ( while [[ -e "$LOAD_FLAG" ]]; do
      h2load -c"$LOAD_CLIENTS" -m1 -t1 --rps="$per_client" -D 5 -d "$body" "${hdrs[@]}" "$url" \
        >>"$OUT/load/h2load.log" 2>&1 || { echo "h2load failed" >>"$OUT/load/h2load.log"; sleep 1; }
    done ) &
  LOAD_LOOP_PID=$!
  LOAD_T0=$(date +%s.%N) LOAD_CPU0=$(proc_cpu_ticks "$LOAD_SRV_PID")
  sleep 2  # let the load settle before the first bench starts
}

stop_load() {
  local t1 cpu1
  t1=$(date +%s.%N) cpu1=$(proc_cpu_ticks "$LOAD_SRV_PID")
  rm -f "$LOAD_FLAG"
  wait "$LOAD_LOOP_PID" || true
  LOAD_LOOP_PID=""
  kill "$LOAD_SRV_PID"; wait "$LOAD_SRV_PID" 2>/dev/null || true
  LOAD_SRV_PID=""
  LOAD_DESC=$(python3 - "$OUT/load/h2load.log" "$LOAD_T0" "$t1" "$LOAD_CPU0" "$cpu1" "$(getconf CLK_TCK)" <<'EOF'
import re, sys
log, t0, t1, c0, c1, hz = sys.argv[1], *map(float, sys.argv[2:])
text = open(log).read()
secs = sum(float(x) for x in re.findall(r"finished in ([\d.]+)s,", text))
ok = sum(int(x) for x in re.findall(r"(\d+) succeeded,", text))
bad = sum(int(a) + int(b) for a, b in re.findall(r"(\d+) failed, (\d+) errored", text))
rate = ok / secs if secs else 0
cpu = (c1 - c0) / hz / (t1 - t0) * 100
print("achieved %.0f req/s over %.0f s of h2load (%d failed/errored), "
      "load server CPU %.0f%% of one core" % (rate, secs, bad, cpu))
EOF
)
}

# ---- the rounds ----------------------------------------------------------
{
  echo "command: $CMDLINE"
  echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "commit: $(git -C "$REPO" rev-parse --short HEAD)$(git -C "$REPO" diff --quiet || echo ' (+ uncommitted changes)')"
  echo "kernel: $(uname -r), cpus: $(nproc)"
  echo "loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/env.txt"
if [[ $UNDER_LOAD == 1 ]]; then
  start_load
  echo "load: $LOAD_CMD" >>"$OUT/env.txt"
fi
PIN=()
if [[ -n $CPUS ]]; then
  PIN=(taskset -c "$CPUS")
  echo "every implementation pinned: taskset -c $CPUS" >>"$OUT/env.txt"
fi

run_impl() {  # impl outdir
  local impl=$1 d=$2 args=(-iters "$ITERS" -warmup "$WARMUP")
  case "$impl" in
    go) "${PIN[@]}" "$ANCHORS/build/cancel_bench_go" "${args[@]}" ;;
    cpp) "${PIN[@]}" "$ANCHORS/build/cancel_bench_cpp" "${args[@]}" ;;
    py) "${PIN[@]}" /usr/bin/python3 "$ANCHORS/py/cancel_bench.py" "${args[@]}" ;;
    crpc-blocking) "${PIN[@]}" "$CRPC" -mode blocking "${args[@]}" ;;
    crpc-async) "${PIN[@]}" "$CRPC" -mode async "${args[@]}" ;;
    crpc-async-poll) "${PIN[@]}" "$CRPC" -mode async -poll-us 50 "${args[@]}" ;;
    floor) "${PIN[@]}" "$OUT/bin/os_floor" "${args[@]}" ;;
    *) echo "unknown implementation $impl" >&2; return 2 ;;
  esac >"$d/$impl.jsonl" 2>"$d/$impl.err"
}

failures=()
for r in $(seq 1 "$ROUNDS"); do
  d=$OUT/run-$r
  mkdir -p "$d"
  for impl in "${IMPL_LIST[@]}"; do
    log "round $r/$ROUNDS: $impl"
    rc=0
    run_impl "$impl" "$d" || rc=$?
    if [[ $rc != 0 ]]; then
      failures+=("round $r $impl: exit status $rc, see $d/$impl.err")
    fi
  done
  echo "loadavg after round $r: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/env.txt"
done
[[ $UNDER_LOAD == 1 ]] && stop_load && echo "load: $LOAD_DESC" >>"$OUT/env.txt"
echo "loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/env.txt"

# ---- aggregate with the anchors' aggregate.py, then one table -----------
python3 "$ANCHORS/aggregate.py" "$OUT"/run-* >"$OUT/summary.md"
python3 - "$OUT/summary.md" "$ROUNDS" "$ITERS" "$WARMUP" >"$OUT/table.md" <<'EOF'
import re, sys
path, rounds, iters, warmup = sys.argv[1], *sys.argv[2:]
# aggregate.py: "### <Impl>" then rows
# | scenario | metric | runs x N | **p50** | p90 | **p99** | max | per run | per run |
stats, impl = {}, None
for line in open(path):
    m = re.match(r"### (\S+)", line)
    if m:
        impl = m.group(1)
        continue
    cells = [c.strip().strip("*") for c in line.strip().strip("|").split("|")]
    if impl and len(cells) == 9 and cells[0] not in ("scenario", "---"):
        stats.setdefault(impl, {})[(cells[0], cells[1])] = dict(
            runs=cells[2], p50=cells[3], p99=cells[5], max=cells[6])

def column_order(name):
    order = ("grpc-go", "grpc-cpp", "grpcio", "crpc-blocking", "crpc-async", "crpc-async-poll", "os-floor")
    if name in order:
        return order.index(name)
    for i, prefix in enumerate(order):
        if name.startswith(prefix):
            return i
    return 9
impls = sorted(stats, key=column_order)

def seen_metric(metric):
    # the anchors name "the server saw the cancel" after their mechanism
    return metric.startswith("cancel_to_") and not re.search("send|write|generator", metric)

def pick(impl, scenario, want, stat):
    for (scn, metric), v in stats[impl].items():
        if scn == scenario and want(metric):
            return v[stat]
    return "-"

long_scn = next((s for i in impls for (s, _) in stats[i] if s.startswith("busy-reads")), "busy-reads256")
rows = [
    ("idle: cancel -> server sees it, us", "idle", seen_metric),
    ("busy: cancel -> server sees it, us", "busy", seen_metric),
    ("busy: sends OK after t0", "busy", lambda m: m == "sends_ok_after_t0"),
    ("%s: cancel -> server sees it, us" % long_scn, long_scn, seen_metric),
    ("%s: sends OK after t0" % long_scn, long_scn, lambda m: m == "sends_ok_after_t0"),
    ("deadline: server sees it - (start + 5 ms), us", "deadline", lambda m: m.startswith("server_")),
    ("deadline: client error - (start + 5 ms), us", "deadline", lambda m: m.startswith("client_")),
]
print("| measure | " + " | ".join(impls) + " |")
print("|---|" + "---|" * len(impls))
for label, scn, want in rows:
    stat_list = ("p50",) if label.startswith("deadline: client") else ("p50", "p99")
    for stat in stat_list:
        print("| %s, %s | %s |" % (label, stat, " | ".join(pick(i, scn, want, stat) for i in impls)))
# crpc only: its promise that nothing is sent once the server knows
print("| busy, %s: sends begun after the server saw the cancel that returned OK, max | %s |" % (
    long_scn, " | ".join(
        "/".join(pick(i, s, lambda m: m == "sends_ok_after_ctxdone", "max") for s in ("busy", long_scn))
        if any(m == "sends_ok_after_ctxdone" for (_, m) in stats[i]) else "n/a" for i in impls)))
runs = {v["runs"] for i in impls for v in stats[i].values() if not v["runs"].endswith("x 1")}
print()
if "os-floor" in impls:
    print("os-floor: no RPC stack; two threads and a loopback socket "
          "(bench/os_floor.c), the machine's own cost of the idle and deadline rows.")
print("Medians over rounds of each round's statistic (aggregate.py); "
      "rounds x measured iterations: %s; warm-up %s per scenario." % (", ".join(sorted(runs)), warmup))
EOF

echo
echo "Cancel latency side by side (shared/bench/cancel protocol)"
sed 's/^/  /' "$OUT/env.txt"
echo
cat "$OUT/table.md"
if [[ ${#failures[@]} -gt 0 ]]; then
  echo
  echo "Not measured / failed:"
  printf '  %s\n' "${failures[@]}"
fi
if grep -q WARNING "$OUT"/run-*/*.err 2>/dev/null; then
  echo
  echo "Warnings from the benches:"
  grep -H WARNING "$OUT"/run-*/*.err | sed "s|^$OUT/|  |"
fi
echo
echo "Raw data: $OUT/run-*/<impl>.jsonl (stderr in .err); per implementation: $OUT/summary.md;"
echo "this table: $OUT/table.md; binaries run: $OUT/bin/; environment: $OUT/env.txt"
