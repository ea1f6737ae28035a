#!/usr/bin/env bash
# A short smoke of the benchmark pair: benchmark_server in both modes (and
# async with polling loops, crpc_server_options.poll_ns),
# driven by benchmark_client (crpc's async load client) for every call
# shape the harness measures. Checks that each run completes, counts ops
# and sees no error; the numbers themselves belong to bench/side_by_side.sh.
set -euo pipefail
server=$1
client=$2
fails=0
n=0
for cfg in async blocking "async --poll_us=50"; do
  read -r -a args <<<"$cfg"
  mode=$cfg
  # A file per server: the shell truncates it in the child, which may run
  # after the port is first looked for; the last server's port must never
  # be read.
  n=$((n + 1))
  log="$TEST_TMPDIR/srv-$n.out"
  "$server" --port=0 --mode="${args[@]}" --loop_threads=2 >"$log" 2>&1 &
  pid=$!
  port=
  for _ in $(seq 100); do
    port=$(sed -n 's/^listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$log" 2>/dev/null)
    [[ -n "$port" ]] && break
    sleep 0.05
  done
  [[ -n "$port" ]] || { echo "FAIL $mode: server did not start"; cat "$log"; exit 1; }
  for spec in "unary 4 16 0 0" "unary 1 1 1024 1024" "pingpong 2 8 0 0" \
              "server_stream 1 1 0 1024" "server_stream 1 1 0 65536"; do
    read -r rpc ch out req resp <<<"$spec"
    line=$("$client" --target=127.0.0.1:"$port" --rpc="$rpc" --channels="$ch" \
      --outstanding="$out" --req-size="$req" --resp-size="$resp" \
      --warmup=0.1 --duration=0.3 | grep '^RESULT ') || true
    ops=$(sed -n 's/.* window_ops=\([0-9]*\).*/\1/p' <<<"$line")
    errs=$(sed -n 's/.* errors=\([0-9]*\).*/\1/p' <<<"$line")
    if [[ -n "$ops" && "$ops" -gt 0 && "$errs" == 0 ]]; then
      echo "ok   $mode $spec: ops=$ops"
    else
      echo "FAIL $mode $spec: ${line:-no RESULT line}"
      echo "server output so far:"
      cat "$log"
      fails=$((fails + 1))
    fi
  done
  kill -TERM "$pid"
  wait "$pid" || { echo "FAIL $mode: server exited with $?"; fails=$((fails + 1)); }
done
exit $((fails > 0))
