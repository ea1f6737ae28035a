#!/bin/bash
# Runs async_client against async_server and checks both sides: the inline
# Echo, the flow-controlled Count, a Work call that completes and one the
# client cancels midway (CANCELLED on the client, the worker stopping early
# on the server), and a Shout whose server had to pause receiving. Stops the
# server by closing its stdin.
# Usage: async_test.sh SERVER CLIENT
source examples/common/testlib.sh
server=$1
client=$2
log=$TEST_TMPDIR/client.log
slog=$TEST_TMPDIR/server.log

start_server "$slog" "$server" --port 0

timeout 20 "$client" --target "127.0.0.1:$SERVER_PORT" >"$log" 2>&1 ||
  fail "client exited with status $?"
cat "$log"
expect_line "$log" '^Echo: "hello from the loop thread"$'
expect_line "$log" '^Count: received 2000 ticks, 2048000 payload bytes, in order: OK$'
expect_line "$log" '^Work: 5 of 5 steps done: OK$'
# Every reply arrived, each its request's text in capitals 400 times.
expect_line "$log" '^Shout: sent 1000 requests, received 1000 replies, 4000000 text bytes, in order: OK$'
expect_line "$log" '^Work \(cancelled\): 3 of 50 steps done, cancelling$'
expect_line "$log" '^  recv returned CANCELLED '
expect_line "$log" '^  final status CANCELLED: "client has seen enough"$'
expect_line "$log" '^  ctx cause: CANCELLED, origin local: "client has seen enough"$'

# The server waits for every call (and worker) before it exits, so once it
# has stopped its log is complete.
stop_server eof
cat "$slog"
expect_line "$slog" '^stdin closed: shut down$'
# The loop had to stop and resume: the stream was paced by the send buffer.
expect_line "$slog" '^Count: sent 2000 ticks, resumed [1-9][0-9]* times by on_send_ready$'
expect_line "$slog" '^Work: worker finished all 5 steps$'
# The Shout server must pause, by sizes rather than timing. The client reads
# nothing until it has sent all 1000 requests (20 KB, inside the server's
# receive window, so no send waits for the server). Until it reads, at most
# its 64 KiB stream window of replies (16 of 4000 bytes) leaves the server,
# so 16 more fill the server's 64 KiB send buffer (stream_send_buffer):
# answering 33 requests before the client reads means a pause. Requests the
# server has not answered by then are all sent already and reach it
# together, answered one after another with nothing written in between:
# 17 of those fill the buffer as well.
expect_line "$slog" '^Shout: answered 1000 requests, paused receiving [1-9][0-9]* times$'
# The client's cancel reached the worker through the ctx as a peer reset,
# long before the shutdown would have cancelled it (that would read
# UNAVAILABLE (shutdown)), and the worker stopped short of its 50 steps.
# (Whether on_cancel also printed is a race the worker usually wins: it is
# told only while the call is unfinished.)
line=$(grep -E '^Work: worker stopped early after [0-9]+ of 50 steps: CANCELLED \(peer reset: ' "$slog") ||
  fail "no line saying the cancelled worker stopped early"
steps=$(echo "$line" | sed -E 's/.* after ([0-9]+) of 50 .*/\1/')
[ "$steps" -ge 3 ] && [ "$steps" -le 4 ] ||
  fail "worker stopped after $steps steps, expected 3 (or 4 if it raced)"
echo PASS
