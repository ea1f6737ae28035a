#!/bin/bash
# Runs route_guide_client against route_guide_server and checks what each
# of the four calls printed; stops the server by closing its stdin.
# Usage: route_guide_test.sh SERVER CLIENT
source examples/common/testlib.sh
server=$1
client=$2
log=$TEST_TMPDIR/client.log

start_server "$TEST_TMPDIR/server.log" "$server" --port 0
expect_line "$TEST_TMPDIR/server.log" '^loaded 20 features from '

timeout 20 "$client" --target "127.0.0.1:$SERVER_PORT" >"$log" 2>&1 ||
  fail "client exited with status $?"
cat "$log"
expect_line "$log" '^GetFeature \(40\.7838, -74\.6144\): "Patriots Path, Mendham, NJ 07945, USA"$'
expect_line "$log" '^GetFeature \(0\.0000, 0\.0000\): no feature$'
expect_line "$log" '^  \(41\.2950, -74\.1077\) Bailey Turn Road, Harriman, NY 10926, USA$'
expect_line "$log" '^  6 features$'
expect_line "$log" '^RecordRoute sent 8 points: server counted 8 points, 5 features, [0-9]+ m, 0 s$'
expect_line "$log" '^  got "First message" at \(0\.0000, 1\.0000\)$'
expect_line "$log" '^  got "Third message"'
expect_line "$log" '^  3 notes received$'

stop_server eof
expect_line "$TEST_TMPDIR/server.log" '^stdin closed: shut down$'
# The interceptor chain: a log line per call, metrics printed at exit.
expect_line "$TEST_TMPDIR/server.log" '^crpc call method=/routeguide.RouteGuide/GetFeature peer=ipv4:127.0.0.1:[0-9]+ status=OK '
expect_line "$TEST_TMPDIR/server.log" '^crpc_server_calls_total\{method="/routeguide.RouteGuide/RouteChat",code="OK"\} 1$'
echo PASS
