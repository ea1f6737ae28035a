/*
 * chain_example.c - the standard interceptors as one server chain, plus
 * the client side, in one process over loopback:
 *
 *   server: tracing -> logging -> metrics -> limits -> auth -> deadline
 *   client: logging -> metrics -> tracing -> auth (bearer token) ->
 *           deadline (default 2 s)
 *
 * It makes one good call (in a W3C trace the client starts), one without
 * a token and one the client cancels, then prints the metrics of both
 * sides in the Prometheus text format. Exit status 0 if every call ended
 * as expected.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crpc/channel.h"
#include "crpc/interceptor.h"
#include "crpc/server.h"
#include "interceptors/auth.h"
#include "interceptors/deadline.h"
#include "interceptors/limits.h"
#include "interceptors/logging.h"
#include "interceptors/metrics.h"
#include "interceptors/tracing.h"

static crpc_code echo(crpc_server_call *call, const crpc_ctx *ctx, void *ud) {
  (void)ud;
  crpc_message m;
  crpc_code c = crpc_server_call_recv(call, &m);
  if (c != CRPC_OK) return c;
  const char *parent = crpc_trace_parent_id(ctx);
  printf("handler: trace id %s, span %s, parent %s, %lld ms left\n",
         crpc_trace_id(ctx), crpc_trace_span_id(ctx),
         parent != NULL ? parent : "(none)",
         (long long)(crpc_ctx_remaining(ctx) / CRPC_MILLISECOND));
  if (m.len == 4 && memcmp(m.data, "wait", 4) == 0) {
    free(m.data);
    return crpc_ctx_wait(ctx); /* until the client gives up */
  }
  c = crpc_server_call_send(call, m.data, m.len);
  free(m.data);
  return c;
}

static crpc_code check_token(void *ud, const char *method, crpc_auth_kind kind,
                             const char *credential) {
  (void)ud;
  (void)method;
  (void)kind;
  return strcmp(credential, "s3cret") == 0 ? CRPC_OK : CRPC_UNAUTHENTICATED;
}

typedef struct canceller {
  crpc_ctx *ctx;
} canceller;

static void *cancel_soon(void *arg) {
  canceller *c = arg;
  struct timespec ts = {0, 50 * 1000 * 1000};
  nanosleep(&ts, NULL);
  crpc_ctx_cancel(c->ctx, CRPC_CANCELLED, "user pressed ^C");
  return NULL;
}

static crpc_code call(crpc_channel *ch, const crpc_ctx *ctx, const char *req) {
  crpc_message resp = {0};
  crpc_status st = {0};
  crpc_code c = crpc_unary_call(ch, ctx, "/demo.Echo/Echo", NULL, req,
                                strlen(req), &resp, &st);
  printf("client: %s -> %s \"%s\"\n", req, crpc_code_name(c), st.message);
  free(resp.data);
  crpc_status_clear(&st);
  return c;
}

int main(void) {
  crpc_metrics *metrics = crpc_metrics_new();
  crpc_limits *limits = crpc_limits_new(100);
  crpc_auth_options auth = {.check = check_token};
  crpc_deadline_options server_dl = {.max_timeout_ns = 10 * CRPC_SECOND};
  crpc_server_interceptor chain[] = {
      crpc_tracing_server(),       crpc_logging_server(NULL),
      crpc_metrics_server(metrics), crpc_limits_server(limits),
      crpc_auth_server(&auth),     crpc_deadline_server(&server_dl),
  };
  crpc_server *server = crpc_server_new(NULL);
  crpc_server_add_method(server, "/demo.Echo/Echo", CRPC_UNARY, echo, NULL);
  for (size_t i = 0; i < sizeof(chain) / sizeof(chain[0]); i++) {
    crpc_server_add_interceptor(server, &chain[i]);
  }
  int port = 0;
  if (crpc_server_listen(server, "127.0.0.1:0", &port) != CRPC_OK ||
      crpc_server_start(server) != CRPC_OK) {
    return 1;
  }
  char target[64];
  snprintf(target, sizeof(target), "127.0.0.1:%d", port);

  crpc_deadline_options client_dl = {.default_timeout_ns = 2 * CRPC_SECOND};
  crpc_client_interceptor good[] = {
      crpc_logging_client(NULL),         crpc_metrics_client(metrics),
      crpc_tracing_client(),             crpc_auth_client_bearer("s3cret"),
      crpc_deadline_client(&client_dl)};
  crpc_channel *ch = crpc_channel_new(target, NULL);
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
    crpc_channel_add_interceptor(ch, &good[i]);
  }
  crpc_channel *anon = crpc_channel_new(target, NULL);

  int bad = 0;
  crpc_ctx *ctx = crpc_ctx_with_cancel(crpc_ctx_background());
  crpc_ctx *traced = crpc_trace_start(ctx, NULL, NULL, true);
  char tp[CRPC_TRACEPARENT_LEN + 1];
  crpc_trace_traceparent(traced, tp);
  printf("client: traceparent %s\n", tp);
  bad += call(ch, traced, "hello") != CRPC_OK;
  crpc_ctx_release(traced);
  bad += call(anon, ctx, "hello") != CRPC_UNAUTHENTICATED;
  canceller cc = {ctx};
  pthread_t t;
  pthread_create(&t, NULL, cancel_soon, &cc);
  bad += call(ch, ctx, "wait") != CRPC_CANCELLED;
  pthread_join(t, NULL);
  crpc_ctx_release(ctx);

  crpc_channel_free(anon);
  crpc_channel_free(ch);
  crpc_server_free(server);
  crpc_metrics_write_prometheus(metrics, stdout);
  crpc_metrics_free(metrics);
  crpc_limits_free(limits);
  printf("%s\n", bad == 0 ? "all calls ended as expected" : "UNEXPECTED");
  return bad == 0 ? 0 : 1;
}
