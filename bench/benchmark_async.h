/*
 * bench/benchmark_async.h - grpc.testing.BenchmarkService on crpc's async
 * (loop-thread) server API, for benchmark_server --mode=async.
 */
#ifndef CRPC_BENCH_BENCHMARK_ASYNC_H
#define CRPC_BENCH_BENCHMARK_ASYNC_H

#include "crpc/server.h"

/* Registers every BenchmarkService method as an async method. Before
 * start. CRPC_OK or what registration returned. */
crpc_code benchmark_register_async(crpc_server *server);

#endif /* CRPC_BENCH_BENCHMARK_ASYNC_H */
