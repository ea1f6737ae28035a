#!/bin/bash
# Runs the demo twice and checks its verdict and the lines behind it.
# Usage: cancellation_test.sh DEMO
set -u
demo=$1
for run in 1 2; do
  log=$TEST_TMPDIR/demo$run.log
  timeout 30 "$demo" >"$log" 2>&1
  rc=$?
  cat "$log"
  fail() { echo "FAIL (run $run): $*" >&2; exit 1; }
  [ "$rc" -eq 0 ] || fail "demo exited with status $rc"
  grep -q '^Verdict: PASS' "$log" || fail "no PASS verdict"
  grep -q '^  client  final status  *CANCELLED ' "$log" || fail "round 1 status"
  grep -q '^  client  final status  *DEADLINE_EXCEEDED ' "$log" ||
    fail "round 2 status"
  [ "$(grep -c '^  server  sends OK  .* 0 after the server knew$' "$log")" -eq 2 ] ||
    fail "a send succeeded after the server knew"
  grep -q '^contexts left unreleased at exit: 0$' "$log" || fail "leaked ctx"
  grep -q '!!' "$log" && fail "a check failed"
done
echo PASS
