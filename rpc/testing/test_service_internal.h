/*
 * rpc/testing/test_service_internal.h - what the two implementations of
 * crpc.test.Test share: test_service.c (blocking handlers, the
 * observations, Report) and test_service_async.c (the same methods as
 * reactors on the loop thread). Not an API: test support only.
 */
#ifndef CRPC_TESTING_TEST_SERVICE_INTERNAL_H
#define CRPC_TESTING_TEST_SERVICE_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "crpc/server.h"
#include "crpc/server_async.h"
#include "rpc/testing/test_service.h"

#define TS_COUNT_USAGE "Count wants 'n size interval_us'"

/* One call's bookkeeping, from ts_begin to ts_end. */
typedef struct call_state {
  crpc_test_service *svc;
  crpc_server_call *call;
  const crpc_ctx *ctx;
  const char *method;
  char tag[128];
  int sent, recv, late;
  long long timeout_ms;
  crpc_on_cancel reg;
  atomic_bool cancel_seen; /* set by the on_cancel callback */
  bool registered;
} call_state;

/* Starts the bookkeeping: x-tag, the deadline left, an on_cancel
 * registration on ctx (cancel_seen, for `late`). */
void ts_begin(call_state *cs, crpc_test_service *svc, crpc_server_call *call,
              const crpc_ctx *ctx, const char *method);

/* Records the observation (README.md) and returns `code`: the end is the
 * ctx's cause if it has one, else `code`. cs is not used afterwards. */
crpc_code ts_end(call_state *cs, crpc_code code);

/* Request metadata: the entry / an integer value (dflt if absent). */
bool ts_md_get(const call_state *cs, const char *key, crpc_metadata_entry *e);
long long ts_md_int(const call_state *cs, const char *key, long long dflt);

/* x-echo-md: 1 -> x-md-* back as headers and x-trl-* trailers. Call before
 * the first send. */
void ts_echo_metadata(call_state *cs);

/* x-sleep-ms in ns (0: none). */
int64_t ts_sleep_ns(const call_state *cs);

/* One send (blocking, or crpc_server_call_send_async if async), counted in
 * sent and, if the ctx was cancelled before it began and it still
 * returned OK, in late. */
crpc_code ts_send(call_state *cs, const void *data, size_t len, bool async);

/* The status the call ends with (x-status, x-message(-bin), else OK), set
 * on the call; then ts_end. Returns the code. */
crpc_code ts_epilogue(call_state *cs);

/* Count's request "n size interval_us"; false if it is not one. */
bool ts_parse_count(const crpc_message *m, long long *n, long long *size,
                    long long *interval_us);

/* Registers Report (blocking: it waits for an observation). */
crpc_code ts_add_report(crpc_test_service *svc, crpc_server *server);

#endif /* CRPC_TESTING_TEST_SERVICE_INTERNAL_H */
