#!/usr/bin/env bash
# rst_reader_trace.sh - where a cancel's RST_STREAM is read, relative to
# where it was written: same thread, same CPU, or the other CPU after a
# wake-up. For the idle rows of bench/cancel_side_by_side.sh, whose one-
# process protocol lets a runtime with its own scheduler (grpc-go) read the
# reset on the CPU that wrote it, while a server with its own loop thread
# (crpc, gRPC C++, as any server in its own process) must be woken.
#
# Traces the system calls of one bench process for SECONDS with perf
# (syscalls:sys_exit_{write,sendmsg,read,recvmsg} and sched:sched_waking):
# every write of exactly 13 bytes (an RST_STREAM frame; a WINDOW_UPDATE has
# the same size and is counted too; frames written together with others
# are not seen) is paired with the next read of 13 bytes in the process,
# and the pair is classed by thread, CPU and whether the reading thread had
# to be woken in between (else it was running: polling, or just back from
# the write), with the time from write to read.
#
# Usage: bench/rst_reader_trace.sh SECONDS COMMAND...   (as root)
#   bench/rst_reader_trace.sh 1 /tmp/cancel/build/cancel_bench_go -iters 100000 -warmup 0
#   bench/rst_reader_trace.sh 1 bazel-bin/bench/cancel_bench -mode async -scenarios idle -iters 100000 -warmup 0
# The idle scenario runs first in every implementation, so the first
# seconds of a long run are idle iterations only.
set -euo pipefail
[[ $# -ge 2 ]] || { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2; }
secs=$1
shift
data=$(mktemp /tmp/rst_trace.XXXXXX)
trap 'rm -f "$data" "$data.txt"' EXIT
"$@" >/dev/null 2>&1 &
pid=$!
sleep 0.3 # past start-up and the first warm-up iterations
perf record -q -o "$data" -p "$pid" \
  -e syscalls:sys_enter_write,syscalls:sys_enter_sendmsg \
  -e syscalls:sys_exit_write,syscalls:sys_exit_sendmsg \
  -e syscalls:sys_exit_read,syscalls:sys_exit_recvmsg,sched:sched_waking \
  -- sleep "$secs" 2>/dev/null
kill "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
perf script -i "$data" -F tid,cpu,time,event,trace 2>/dev/null >"$data.txt"
python3 - "$data.txt" "$*" <<'EOF'
import re, sys, collections
path, cmd = sys.argv[1], sys.argv[2]
ev = []
pat = re.compile(r"\s*(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+):\s*(.*)")
for line in open(path):
    m = pat.match(line)
    if m:
        ev.append((int(m.group(1)), int(m.group(2)), float(m.group(3)) * 1e6,
                   m.group(4), m.group(5)))
def ret13(e):
    return e[4].strip().endswith("0xd")
classes = collections.Counter()
lat = collections.defaultdict(list)
pending = None
entered = {}  # thread -> (time, wakings since) of its write in progress
woken = set()
for e in ev:
    tid, cpu, ts, name, rest = e
    if name in ("syscalls:sys_enter_write", "syscalls:sys_enter_sendmsg"):
        entered[tid] = set()
    elif name.startswith("syscalls:sys_exit_write") or name.startswith("syscalls:sys_exit_sendmsg"):
        since = entered.pop(tid, set())
        if ret13(e):
            pending = (tid, cpu, ts)
            woken = since  # a wake-up the write itself caused counts
    elif name == "sched:sched_waking":
        m = re.search(r"pid=(\d+)", rest)
        if m:
            for w in entered.values():
                w.add(int(m.group(1)))
            if pending:
                woken.add(int(m.group(1)))
    elif pending and (name.startswith("syscalls:sys_exit_read") or
                      name.startswith("syscalls:sys_exit_recvmsg")) and ret13(e):
        wtid, wcpu, wts = pending
        k = ("same thread" if tid == wtid else "other thread") + ", " + (
            "same CPU" if cpu == wcpu else "other CPU") + (
            ", woken" if tid in woken else ", running")
        classes[k] += 1
        lat[k].append(ts - wts)
        pending = None
total = sum(classes.values())
print("command: %s" % cmd)
print("13-byte writes paired with the next 13-byte read: %d" % total)
for k, n in classes.most_common():
    v = sorted(lat[k])
    print("  %-36s %6d (%3.0f%%)  write -> read p50 %.0f us" % (k, n, 100.0 * n / total, v[len(v) // 2]))
EOF
