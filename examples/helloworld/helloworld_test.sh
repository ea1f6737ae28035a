#!/bin/bash
# Starts greeter_server on a free port, greets it twice, stops it with
# SIGTERM and checks every step.
# Usage: helloworld_test.sh SERVER CLIENT
source examples/common/testlib.sh
server=$1
client=$2

start_server "$TEST_TMPDIR/server.log" "$server" --port 0
target="127.0.0.1:$SERVER_PORT"

timeout 10 "$client" --target "$target" >"$TEST_TMPDIR/client1.log" 2>&1 ||
  fail "client exited with status $?"
expect_line "$TEST_TMPDIR/client1.log" '^Greeting: Hello world$'

timeout 10 "$client" --target "$target" --name "crpc user" \
  >"$TEST_TMPDIR/client2.log" 2>&1 || fail "client exited with status $?"
expect_line "$TEST_TMPDIR/client2.log" '^Greeting: Hello crpc user$'

stop_server sigterm
expect_line "$TEST_TMPDIR/server.log" '^SIGTERM: shut down$'

# Nothing listens there any more: the client must fail, not hang.
if timeout 10 "$client" --target "$target" >"$TEST_TMPDIR/client3.log" 2>&1; then
  fail "client succeeded against a stopped server"
fi
expect_line "$TEST_TMPDIR/client3.log" 'SayHello failed: UNAVAILABLE'
echo PASS
