# bench/bench_lib.sh - sourced by the bench scripts.
#
# cancel_bench_port: for the scripts that start cancel_bench as a server for
# a load generator (deadline_full_load.sh and its smoke test). cancel_bench
# picks a free port itself and prints it on its first stderr line once it
# listens, so nobody guesses a port another process may take first, and
# nobody polls the socket.

# cancel_bench_port ERRFILE PID: prints the port cancel_bench (running as
# PID, stderr to ERRFILE) listens on, once it says so; fails if it exits
# first or says nothing within 10 s.
cancel_bench_port() {
  local err=$1 pid=$2 port
  for _ in $(seq 200); do
    port=$(sed -n 's/^crpc cancel_bench .* port=\([0-9][0-9]*\)$/\1/p' "$err" 2>/dev/null)
    if [[ -n $port ]]; then
      echo "$port"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

# bench_stop_bazel REPO: stops the Bazel server the build left running, so
# its JVM does not share the CPUs with what is measured (a traced 0.5 ms
# cancel tail, 2026-12-04: its "G1 Service" GC thread held the server's CPU
# while the server's loop thread waited, runnable). A later bazel command
# starts it again.
bench_stop_bazel() {
  (cd "$1" && ./crpc.sh bazel shutdown >/dev/null 2>&1) || true
}
