#!/usr/bin/env python3
"""CPU per call of the cancel protocol's idle scenario, for any implementation.

Every implementation of shared/bench/cancel runs the idle scenario first
and prints its JSON line when it ends. This runs each command with
`-iters N -warmup 0`, reads the process's user + system CPU time
(/proc/PID/stat) the moment that line appears, stops the process, and
prints CPU and wall time per idle iteration beside the idle p50 / p99.
Start-up is included (a few ms, under 1 % at N = 10000). Rounds are
interleaved, as the machine's noise is large.

  bench/cancel_cpu.py --rounds 3 --iters 10000 \\
      go=/tmp/cancel/build/cancel_bench_go \\
      crpc-async="bazel-bin/bench/cancel_bench -mode async"
"""
import argparse
import json
import os
import shlex
import subprocess
import time


def run(cmd, iters):
    argv = shlex.split(cmd) + ["-iters", str(iters), "-warmup", "0"]
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    hz = os.sysconf("SC_CLK_TCK")
    try:
        for line in p.stdout:
            if '"Scenario":"idle"' not in line:
                continue
            fields = open("/proc/%d/stat" % p.pid).read().rsplit(")", 1)[1].split()
            cpu = (int(fields[11]) + int(fields[12])) / hz
            wall = time.monotonic() - t0
            d = json.loads(line)
            return cpu / iters * 1e6, wall / iters * 1e6, d["P50"], d["P99"]
        raise SystemExit("%s: no idle result" % cmd)
    finally:
        p.kill()
        p.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iters", type=int, default=10000)
    ap.add_argument("impls", nargs="+", help="NAME=COMMAND")
    a = ap.parse_args()
    impls = [s.split("=", 1) for s in a.impls]
    print("| round | implementation | CPU us / call | wall us / call | CPU / wall | idle p50 / p99 us |")
    print("|---|---|---|---|---|---|")
    for r in range(1, a.rounds + 1):
        for name, cmd in impls:
            cpu, wall, p50, p99 = run(cmd, a.iters)
            print("| %d | %s | %.0f | %.0f | %.2f | %.1f / %.0f |" % (r, name, cpu, wall, cpu / wall, p50, p99),
                  flush=True)


if __name__ == "__main__":
    main()
