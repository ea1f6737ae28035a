/*
 * fuzz/fuzz_service.h - the crpc server the server fuzz target runs, and
 * that record_peer serves while the corpus is recorded, so recorded calls
 * reach methods that exist:
 *   - crpc.test.Test (rpc/testing/test_service.h): blocking handlers of
 *     all four shapes, driven by request metadata (x-echo-md, x-status,
 *     x-sleep-ms, ...), what py_client.py calls;
 *   - grpc.testing.BenchmarkService's paths, what the gRPC C++ bench
 *     client calls, on async handlers (an inline unary and reactors), so
 *     the loop-thread dispatch is fuzzed too. They answer with empty
 *     messages (a valid SimpleResponse), whatever the request holds.
 */
#ifndef CRPC_FUZZ_FUZZ_SERVICE_H
#define CRPC_FUZZ_FUZZ_SERVICE_H

#include <stddef.h>

#include "crpc/server.h"
#include "rpc/testing/test_service.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct crpc_metrics crpc_metrics;
typedef struct crpc_limits crpc_limits;

typedef struct fuzz_server {
  crpc_server *server;
  crpc_test_service *svc;
  /* The interceptors' state: the chain is tracing, logging (to nowhere),
   * metrics, limits (1,000 calls), deadline (capped at 60 s), none of
   * which changes what a call returns, so the peer's bytes (traceparent,
   * x-trace-id, metadata, method names, grpc-timeout) reach them too. */
  crpc_metrics *metrics;
  crpc_limits *limits;
} fuzz_server;

/* Creates, fills and starts a server on `address` ("unix:/path",
 * "127.0.0.1:0") with one loop thread and a small handler pool;
 * max_recv (0: crpc's default) bounds request messages, compressed or
 * not. *port (may be NULL) gets the TCP port. CRPC_OK, or the failing
 * step's code with everything undone. */
crpc_code fuzz_server_start(fuzz_server *fs, const char *address, int *port,
                            size_t max_recv);

/* Shuts the server down with no grace (every call still open is cancelled
 * and its handler waited for), then frees it and the service. Every loop
 * and handler thread has ended when this returns. */
void fuzz_server_stop(fuzz_server *fs);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_FUZZ_FUZZ_SERVICE_H */
