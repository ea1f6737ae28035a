/*
 * bench/cancel_load.h - a unary method on cancel_bench's own server, so
 * h2load can load the very server whose cancels and deadlines are being
 * measured (bench/deadline_full_load.sh). The shared protocol's anchors
 * keep their servers to themselves; this is a crpc-only condition.
 */
#ifndef CRPC_BENCH_CANCEL_LOAD_H
#define CRPC_BENCH_CANCEL_LOAD_H

#include <stdint.h>

#include "crpc/server.h"

/* The path h2load's load calls use (the harness's BenchmarkService). */
#define CANCEL_LOAD_METHOD "/grpc.testing.BenchmarkService/UnaryCall"

/* Registers CANCEL_LOAD_METHOD on s: an inline unary handler (on the loop
 * thread, as an async server's) that answers every request with an empty
 * message and counts it. Before crpc_server_start. Exits the process on
 * failure. */
void cancel_load_register(crpc_server *s);

/* Waits until at least n load calls have been answered (0: returns at
 * once); exits the process after 10 s without them: a run meant to be
 * under load must not quietly measure an idle server. Then starts the
 * count and clock that cancel_load_report reads. */
void cancel_load_wait(long n);

/* Prints (stderr) the load calls answered since cancel_load_wait and
 * their rate, if any were. */
void cancel_load_report(void);

#endif /* CRPC_BENCH_CANCEL_LOAD_H */
