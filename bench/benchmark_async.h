/*
 * bench/benchmark_async.h - grpc.testing.BenchmarkService on crpc's async
 * (loop-thread) server API, for benchmark_server --mode=async.
 */
#ifndef CRPC_BENCH_BENCHMARK_ASYNC_H
#define CRPC_BENCH_BENCHMARK_ASYNC_H

#include "crpc/server.h"
#include "grpc/testing/benchmark_service.crpc.h"

/* Registers every BenchmarkService method as an async method. Before
 * start. CRPC_OK or what registration returned. */
crpc_code benchmark_register_async(crpc_server *server);

/* The packed response `req` asks for, serialised straight into the buffer
 * it is sent from (crpc_buf: no copy on send). Both modes' streaming
 * handlers pack once per call and send the buffer again and again (by
 * reference). The caller owns the one reference; NULL with *code set if
 * the size is out of range or memory ran out. Any thread. */
crpc_buf *benchmark_pack_reply(const Grpc__Testing__SimpleRequest *req,
                               crpc_code *code);

#endif /* CRPC_BENCH_BENCHMARK_ASYNC_H */
