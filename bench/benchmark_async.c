/*
 * benchmark_async.c - grpc.testing.BenchmarkService as async methods
 * (crpc/server_async.h): every handler runs on the loop thread of its
 * connection, with no thread hop. benchmark_server --mode=async uses it.
 *
 * Responses are packed into the crpc_buf they are sent from (no copy on
 * send), once per call: a streaming call queues its one buffer again and
 * again, as a service pushing the same bytes to many streams would. So
 * what is measured is the transport, not copies.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/benchmark_async.h"
#include "crpc/server_async.h"
#include "grpc/testing/benchmark_service.pb-c.h"

typedef Grpc__Testing__SimpleRequest SimpleRequest;
typedef Grpc__Testing__SimpleResponse SimpleResponse;

#define MAX_RESPONSE (4 * 1024 * 1024)

crpc_buf *benchmark_pack_reply(const SimpleRequest *req, crpc_code *code) {
  int32_t size = req->response_size;
  if (size < 0 || size > MAX_RESPONSE) {
    *code = CRPC_INVALID_ARGUMENT;
    return NULL;
  }
  /* The payload is `size` zero bytes; a 0-byte one needs no buffer. */
  uint8_t *body = size > 0 ? calloc(1, (size_t)size) : NULL;
  crpc_buf *buf = NULL;
  if (size == 0 || body != NULL) {
    SimpleResponse resp = GRPC__TESTING__SIMPLE_RESPONSE__INIT;
    Grpc__Testing__Payload payload = GRPC__TESTING__PAYLOAD__INIT;
    payload.body.data = body;
    payload.body.len = (size_t)size;
    resp.payload = &payload;
    buf = crpc_buf_new(grpc__testing__simple_response__get_packed_size(&resp));
    if (buf != NULL) {
      grpc__testing__simple_response__pack(&resp, crpc_buf_data(buf));
    }
  }
  free(body);
  if (buf == NULL) *code = CRPC_RESOURCE_EXHAUSTED;
  return buf;
}

static SimpleRequest *unpack_request(const crpc_message *msg) {
  return grpc__testing__simple_request__unpack(NULL, msg->len, msg->data);
}

/* Replies to one request message; CRPC_OK or why not. */
static crpc_code reply_once(crpc_server_call *call, const crpc_message *msg) {
  SimpleRequest *req = unpack_request(msg);
  if (req == NULL) {
    return crpc_server_call_error(call, CRPC_INVALID_ARGUMENT,
                                  "cannot parse SimpleRequest");
  }
  crpc_code code = CRPC_OK;
  crpc_buf *out = benchmark_pack_reply(req, &code);
  grpc__testing__simple_request__free_unpacked(req, NULL);
  if (out == NULL) return code;
  return crpc_server_call_send_async_buf(call, out, 0);
}

/* ---- UnaryCall: inline ---------------------------------------------------*/

static crpc_code unary_call(crpc_server_call *call, const crpc_ctx *ctx,
                            const crpc_message *request, void *user_data) {
  (void)ctx;
  (void)user_data;
  return reply_once(call, request);
}

/* ---- StreamingCall / StreamingBothWays: one reply per request -------------*/

static void *echo_start(crpc_server_call *call, const crpc_ctx *ctx,
                        void *user_data) {
  (void)call;
  (void)ctx;
  (void)user_data;
  return NULL;
}

static void echo_message(crpc_server_call *call, const crpc_message *msg,
                         void *state) {
  (void)state;
  if (msg->end) {
    crpc_server_call_finish(call, CRPC_OK, NULL);
    return;
  }
  crpc_code code = reply_once(call, msg);
  if (code != CRPC_OK) crpc_server_call_finish(call, code, NULL);
}

/* Every reactor here ends a cancelled call with the cause. */
static void finish_on_cancel(crpc_server_call *call, const crpc_cause *cause,
                             void *state) {
  (void)state;
  crpc_server_call_finish(call, cause->code, NULL);
}

static const crpc_server_reactor echo_reactor = {
    .on_start = echo_start,
    .on_message = echo_message,
    .on_cancel = finish_on_cancel,
};

/* ---- StreamingFromServer: write until the client cancels -----------------*/

typedef struct pump {
  crpc_buf *packed; /* one response, packed once, sent without copies */
} pump;

static void *pump_start(crpc_server_call *call, const crpc_ctx *ctx,
                        void *user_data) {
  (void)call;
  (void)ctx;
  (void)user_data;
  return calloc(1, sizeof(pump));
}

/* Sends while the buffer has room; on_send_ready resumes. */
static void pump_run(crpc_server_call *call, void *state) {
  pump *p = state;
  while (crpc_server_call_can_send(call)) {
    crpc_code code =
        crpc_server_call_send_async_buf(call, crpc_buf_ref(p->packed), 0);
    if (code != CRPC_OK) return; /* the ctx is done: on_cancel finishes */
  }
}

static void pump_message(crpc_server_call *call, const crpc_message *msg,
                         void *state) {
  pump *p = state;
  if (msg->end || p == NULL || p->packed != NULL) return;
  SimpleRequest *req = unpack_request(msg);
  crpc_code code = CRPC_INVALID_ARGUMENT;
  if (req != NULL) {
    p->packed = benchmark_pack_reply(req, &code);
    grpc__testing__simple_request__free_unpacked(req, NULL);
  }
  if (p->packed == NULL) {
    crpc_server_call_finish(call, code, "bad StreamingFromServer request");
    return;
  }
  pump_run(call, p);
}

static void pump_done(crpc_server_call *call, void *state) {
  (void)call;
  pump *p = state;
  if (p != NULL) crpc_buf_unref(p->packed);
  free(p);
}

static const crpc_server_reactor pump_reactor = {
    .on_start = pump_start,
    .on_message = pump_message,
    .on_send_ready = pump_run,
    .on_cancel = finish_on_cancel,
    .on_done = pump_done,
};

/* ---- StreamingFromClient: read all, reply to the last --------------------*/

typedef struct last_request {
  uint8_t *data;
  size_t len;
  bool any;
} last_request;

static void *collect_start(crpc_server_call *call, const crpc_ctx *ctx,
                           void *user_data) {
  (void)call;
  (void)ctx;
  (void)user_data;
  return calloc(1, sizeof(last_request));
}

static void collect_message(crpc_server_call *call, const crpc_message *msg,
                            void *state) {
  last_request *last = state;
  if (last == NULL) {
    crpc_server_call_finish(call, CRPC_RESOURCE_EXHAUSTED, NULL);
    return;
  }
  if (!msg->end) {
    uint8_t *copy = malloc(msg->len ? msg->len : 1);
    if (copy == NULL) {
      crpc_server_call_finish(call, CRPC_RESOURCE_EXHAUSTED, NULL);
      return;
    }
    memcpy(copy, msg->data, msg->len);
    free(last->data);
    last->data = copy;
    last->len = msg->len;
    last->any = true;
    return;
  }
  if (!last->any) {
    crpc_server_call_finish(call, CRPC_INVALID_ARGUMENT, "no request");
    return;
  }
  crpc_message req = {.data = last->data, .len = last->len};
  crpc_server_call_finish(call, reply_once(call, &req), NULL);
}

static void collect_done(crpc_server_call *call, void *state) {
  (void)call;
  last_request *last = state;
  if (last != NULL) free(last->data);
  free(last);
}

static const crpc_server_reactor collect_reactor = {
    .on_start = collect_start,
    .on_message = collect_message,
    .on_cancel = finish_on_cancel,
    .on_done = collect_done,
};

crpc_code benchmark_register_async(crpc_server *server) {
  static const char svc[] = "/grpc.testing.BenchmarkService/";
  char path[96];
  crpc_code code = crpc_server_add_unary_async(
      server, "/grpc.testing.BenchmarkService/UnaryCall", unary_call, NULL);
  struct {
    const char *method;
    crpc_method_kind kind;
    const crpc_server_reactor *reactor;
  } streams[] = {
      {"StreamingCall", CRPC_BIDI_STREAMING, &echo_reactor},
      {"StreamingBothWays", CRPC_BIDI_STREAMING, &echo_reactor},
      {"StreamingFromServer", CRPC_SERVER_STREAMING, &pump_reactor},
      {"StreamingFromClient", CRPC_CLIENT_STREAMING, &collect_reactor},
  };
  for (size_t i = 0; code == CRPC_OK && i < sizeof(streams) / sizeof(*streams);
       i++) {
    snprintf(path, sizeof(path), "%s%s", svc, streams[i].method);
    code = crpc_server_add_async_method(server, path, streams[i].kind,
                                        streams[i].reactor, NULL);
  }
  return code;
}
