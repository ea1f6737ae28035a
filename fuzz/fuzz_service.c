/* fuzz/fuzz_service.c - the fuzzed server's methods (fuzz_service.h). */
#include "fuzz/fuzz_service.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "crpc/interceptor.h"
#include "crpc/server_async.h"
#include "interceptors/deadline.h"
#include "interceptors/limits.h"
#include "interceptors/logging.h"
#include "interceptors/metrics.h"
#include "interceptors/tracing.h"

#define BENCH "/grpc.testing.BenchmarkService/"

/* How many responses StreamingFromServer sends before it finishes. The
 * real benchmark streams until the client cancels; a bounded stream keeps
 * every fuzz input's work finite. */
#define SERVER_STREAM_MESSAGES 4

/* UnaryCall: inline on the loop thread. */
static crpc_code unary_call(crpc_server_call *call, const crpc_ctx *ctx,
                            const crpc_message *request, void *user_data) {
  (void)ctx;
  (void)request;
  (void)user_data;
  return crpc_server_call_send_async(call, "", 0, 0);
}

/* The reactors' per-call state: which reactor it is, and whether finish
 * has been called (it must be called exactly once, and a cancel may come
 * after the client's end or the other way round). */
typedef enum reactor_kind { PING_PONG, FROM_CLIENT, FROM_SERVER } reactor_kind;

typedef struct reactor_state {
  reactor_kind kind;
  bool finished;
} reactor_state;

static void finish_once(crpc_server_call *call, reactor_state *st,
                        crpc_code code) {
  if (st->finished) return;
  st->finished = true;
  crpc_server_call_finish(call, code, NULL);
}

static void *on_start(crpc_server_call *call, const crpc_ctx *ctx,
                      void *user_data) {
  (void)ctx;
  reactor_state *st = calloc(1, sizeof *st);
  if (st == NULL) {
    /* No later callback but on_done comes after a finish. */
    crpc_server_call_finish(call, CRPC_RESOURCE_EXHAUSTED, "out of memory");
    return NULL;
  }
  st->kind = (reactor_kind)(uintptr_t)user_data;
  return st;
}

static void on_message(crpc_server_call *call, const crpc_message *msg,
                       void *state) {
  reactor_state *st = state;
  if (st == NULL || st->finished) return;
  if (msg->end) {
    if (st->kind == FROM_CLIENT) {
      crpc_server_call_send_async(call, "", 0, 0);
    }
    finish_once(call, st, CRPC_OK);
    return;
  }
  switch (st->kind) {
    case PING_PONG:
      /* One response per request. A client that floods requests without
       * reading is bounded by flow control and the input's size. */
      if (crpc_server_call_send_async(call, "", 0, 0) != CRPC_OK) {
        finish_once(call, st, CRPC_OK);
      }
      break;
    case FROM_CLIENT:
      break;
    case FROM_SERVER:
      for (int i = 0; i < SERVER_STREAM_MESSAGES; i++) {
        if (crpc_server_call_send_async(call, "", 0, 0) != CRPC_OK) break;
      }
      finish_once(call, st, CRPC_OK);
      break;
  }
}

static void on_cancel(crpc_server_call *call, const crpc_cause *cause,
                      void *state) {
  (void)cause;
  reactor_state *st = state;
  if (st != NULL) finish_once(call, st, CRPC_CANCELLED);
}

static void on_done(crpc_server_call *call, void *state) {
  (void)call;
  free(state);
}

static const crpc_server_reactor reactor = {
    .on_start = on_start,
    .on_message = on_message,
    .on_cancel = on_cancel,
    .on_done = on_done,
};

static crpc_code add_methods(crpc_server *s, crpc_test_service *svc) {
  static const struct {
    const char *path;
    crpc_method_kind kind;
    reactor_kind rk;
  } reactors[] = {
      {BENCH "StreamingCall", CRPC_BIDI_STREAMING, PING_PONG},
      {BENCH "StreamingBothWays", CRPC_BIDI_STREAMING, PING_PONG},
      {BENCH "StreamingFromClient", CRPC_CLIENT_STREAMING, FROM_CLIENT},
      {BENCH "StreamingFromServer", CRPC_SERVER_STREAMING, FROM_SERVER},
  };
  crpc_code rc = crpc_test_service_register(svc, s);
  if (rc == CRPC_OK) {
    rc = crpc_server_add_unary_async(s, BENCH "UnaryCall", unary_call, NULL);
  }
  for (size_t i = 0; rc == CRPC_OK && i < sizeof reactors / sizeof *reactors;
       i++) {
    rc = crpc_server_add_async_method(s, reactors[i].path, reactors[i].kind,
                                      &reactor,
                                      (void *)(uintptr_t)reactors[i].rk);
  }
  return rc;
}

static void drop_line(void *user_data, const char *line) {
  (void)user_data;
  (void)line;
}

static const crpc_logging_options logging_options = {.sink = drop_line};
static const crpc_deadline_options deadline_options = {
    .max_timeout_ns = 60 * CRPC_SECOND};

static crpc_code add_interceptors(fuzz_server *fs) {
  fs->metrics = crpc_metrics_new();
  fs->limits = crpc_limits_new(1000);
  if (fs->metrics == NULL || fs->limits == NULL) {
    return CRPC_RESOURCE_EXHAUSTED;
  }
  const crpc_server_interceptor chain[] = {
      crpc_tracing_server(),
      crpc_logging_server(&logging_options),
      crpc_metrics_server(fs->metrics),
      crpc_limits_server(fs->limits),
      crpc_deadline_server(&deadline_options),
  };
  crpc_code rc = CRPC_OK;
  for (size_t i = 0; rc == CRPC_OK && i < sizeof chain / sizeof *chain; i++) {
    rc = crpc_server_add_interceptor(fs->server, &chain[i]);
  }
  return rc;
}

crpc_code fuzz_server_start(fuzz_server *fs, const char *address, int *port,
                            size_t max_recv) {
  crpc_server_options opts = {
      .max_recv_message_size = max_recv,
      /* Few threads: the fuzz target starts and joins them all each time
       * it replaces its server (server_fuzz.c), as each record_peer run
       * does. */
      .loop_threads = 1,
      .handler_threads = 4,
  };
  fs->svc = crpc_test_service_new();
  fs->server = crpc_server_new(&opts);
  crpc_code rc = CRPC_RESOURCE_EXHAUSTED;
  fs->metrics = NULL;
  fs->limits = NULL;
  if (fs->svc != NULL && fs->server != NULL) {
    rc = add_methods(fs->server, fs->svc);
  }
  if (rc == CRPC_OK) rc = add_interceptors(fs);
  if (rc == CRPC_OK) rc = crpc_server_listen(fs->server, address, port);
  if (rc == CRPC_OK) rc = crpc_server_start(fs->server);
  if (rc != CRPC_OK) fuzz_server_stop(fs);
  return rc;
}

void fuzz_server_stop(fuzz_server *fs) {
  if (fs->server != NULL) {
    crpc_server_shutdown(fs->server, 0);
    crpc_server_free(fs->server);
  }
  crpc_test_service_free(fs->svc);
  crpc_metrics_free(fs->metrics);
  crpc_limits_free(fs->limits);
  fs->server = NULL;
  fs->svc = NULL;
  fs->metrics = NULL;
  fs->limits = NULL;
}
