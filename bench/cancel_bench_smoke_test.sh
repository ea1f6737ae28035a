#!/usr/bin/env bash
# A short smoke of cancel_bench (the numbers belong to
# bench/cancel_side_by_side.sh and bench/deadline_full_load.sh): each mode
# runs every scenario a few times and prints the shared protocol's JSON
# lines (cancel_bench exits non-zero on a leaked ctx or an empty scenario),
# and the load path: cancel_bench's own server answers load calls (here
# from crpc's benchmark_client) while it measures deadlines; and os_floor,
# the table's floor column.
set -euo pipefail
bench=$1
client=$2
# shellcheck source=bench/bench_lib.sh
source "$3"
floor=$4
fails=0

# os_floor: both lines, every iteration measured, and no wake-up before the
# deadline (a negative Min would be a broken clock or a broken sleep).
out=$("$floor" -iters 30 -warmup 3 2>"$TEST_TMPDIR/floor.err") || {
  echo "FAIL os_floor: exit status $?"; cat "$TEST_TMPDIR/floor.err"; fails=$((fails + 1)); }
for want in '"Impl":"os-floor","Scenario":"idle","Metric":"cancel_to_ctxdone_us","N":30,' \
            '"Impl":"os-floor","Scenario":"deadline","Metric":"server_ctxdone_minus_deadline_us","N":30,'; do
  grep -q "$want" <<<"$out" || { echo "FAIL os_floor: no line with $want"; fails=$((fails + 1)); }
done
if grep '"Scenario":"deadline"' <<<"$out" | grep -q '"Min":-'; then
  echo "FAIL os_floor: a timed sleep ended before its deadline"; fails=$((fails + 1))
fi
if "$floor" -iters 0 >/dev/null 2>&1; then
  echo "FAIL os_floor: -iters 0 accepted"; fails=$((fails + 1))
fi
echo "ok   os_floor"

for mode in async blocking; do
  out=$("$bench" -mode "$mode" -iters 20 -warmup 2 2>"$TEST_TMPDIR/$mode.err") || {
    echo "FAIL $mode: exit status $?"; cat "$TEST_TMPDIR/$mode.err"; fails=$((fails + 1)); continue; }
  n=$(grep -c '^{"Impl":"crpc-'"$mode"'"' <<<"$out" || true)
  for want in '"Scenario":"idle","Metric":"cancel_to_ctxdone_us"' \
              '"Scenario":"busy","Metric":"sends_ok_after_ctxdone"' \
              '"Scenario":"busy-reads256","Metric":"cancel_to_send_error_us"' \
              '"Scenario":"deadline","Metric":"server_ctxdone_minus_deadline_us"'; do
    grep -q "$want" <<<"$out" || { echo "FAIL $mode: no line with $want"; fails=$((fails + 1)); }
  done
  # crpc's promise, in every run: no send begun after the cancel was seen
  # returned OK.
  if grep '"Metric":"sends_ok_after_ctxdone"' <<<"$out" | grep -qv '"Max":0.000'; then
    echo "FAIL $mode: a send after the cancel returned OK"; fails=$((fails + 1))
  fi
  echo "ok   $mode: $n JSON lines"
done

# The load path (as bench/deadline_full_load.sh runs it): the port
# cancel_bench prints, -load-wait, and the load report.
"$bench" -mode async -scenarios deadline -iters 20 -warmup 2 \
  -load-wait 100 >"$TEST_TMPDIR/load.jsonl" 2>"$TEST_TMPDIR/load.err" &
pid=$!
port=$(cancel_bench_port "$TEST_TMPDIR/load.err" "$pid") || {
  echo "FAIL load: cancel_bench never listened"; cat "$TEST_TMPDIR/load.err"; exit 1; }
"$client" --target=127.0.0.1:"$port" --rpc=unary --channels=1 --outstanding=4 \
  --req-size=0 --resp-size=0 --warmup=0.1 --duration=4 >"$TEST_TMPDIR/client.out" 2>&1 &
cpid=$!
rc=0
wait "$pid" || rc=$?
kill "$cpid" 2>/dev/null || true
wait "$cpid" 2>/dev/null || true
if [[ $rc != 0 ]]; then
  echo "FAIL load: cancel_bench exit status $rc"; cat "$TEST_TMPDIR/load.err"; fails=$((fails + 1))
elif ! grep -q '^load: [1-9][0-9]* /grpc.testing.BenchmarkService/UnaryCall calls answered' "$TEST_TMPDIR/load.err"; then
  echo "FAIL load: no load report"; cat "$TEST_TMPDIR/load.err"; fails=$((fails + 1))
elif ! grep -q '"Metric":"server_ctxdone_minus_deadline_us","N":20' "$TEST_TMPDIR/load.jsonl"; then
  echo "FAIL load: no deadline line"; cat "$TEST_TMPDIR/load.jsonl"; fails=$((fails + 1))
else
  echo "ok   load: $(grep '^load:' "$TEST_TMPDIR/load.err")"
fi
exit $((fails > 0))
