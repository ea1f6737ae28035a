# Shared by the examples' end-to-end tests (sourced by bash).
#
# start_server LOG CMD... starts an example server with a pipe on its stdin
# (fd 9 here), waits for its "listening on host:port" line and sets
# SERVER_PID and SERVER_PORT. The pipe ties the server to this script: if
# the script dies for any reason, fd 9 closes and the server exits (see
# examples/common/stop.h), so a failing or timed-out test leaves no orphan.

set -u

fail() {
  echo "FAIL: $*" >&2
  for f in "${TEST_TMPDIR:-/tmp}"/*.log; do
    [ -f "$f" ] && { echo "--- $f" >&2; cat "$f" >&2; }
  done
  exit 1
}

SERVER_PID=
cleanup() {
  exec 9>&- 2>/dev/null
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -9 "$SERVER_PID" 2>/dev/null
  fi
}
trap cleanup EXIT

start_server() {
  local log=$1
  shift
  local fifo="$TEST_TMPDIR/server_stdin.$$"
  rm -f "$fifo"
  mkfifo "$fifo" || fail "mkfifo"
  "$@" <"$fifo" >"$log" 2>&1 &
  SERVER_PID=$!
  exec 9>"$fifo" # unblocks the server's open(); keeps its stdin open
  rm -f "$fifo"
  local i
  for i in $(seq 100); do
    SERVER_PORT=$(sed -n 's/^listening on .*:\([0-9][0-9]*\)$/\1/p' "$log")
    [ -n "$SERVER_PORT" ] && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || fail "server exited early"
    sleep 0.1
  done
  fail "server did not print its port within 10 s"
}

# stop_server HOW: HOW is "sigterm" or "eof". Waits up to 5 s for a clean
# exit (status 0).
stop_server() {
  if [ "$1" = sigterm ]; then
    kill -TERM "$SERVER_PID"
  else
    exec 9>&-
  fi
  local i
  for i in $(seq 50); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      wait "$SERVER_PID"
      local rc=$?
      SERVER_PID=
      [ "$rc" -eq 0 ] || fail "server exited with status $rc after $1"
      return 0
    fi
    sleep 0.1
  done
  fail "server still running 5 s after $1"
}

# expect_line FILE REGEX: FILE has a line matching REGEX (grep -E).
expect_line() {
  grep -Eq -- "$2" "$1" || fail "$1 has no line matching: $2"
}
