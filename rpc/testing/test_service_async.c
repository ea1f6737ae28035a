/* crpc.test.Test with async handlers (crpc/server_async.h): the methods of
 * test_service.c as reactors on the connection's loop thread, so every
 * end-to-end test can run against both handler styles. Report stays
 * blocking (it waits for another call's observation).
 *
 * Nothing here blocks the loop. What has to wait (x-sleep-ms, Count's
 * interval_us) is handed to a thread of the call's own with the call's
 * ctx, the pattern server_async.h documents: from then on that thread owns
 * the call and the loop's callbacks leave it alone; it ends the call with
 * crpc_server_call_finish and touches nothing afterwards (on_done frees the
 * state on the loop). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/testing/test_service_internal.h"

typedef enum { A_ECHO, A_COUNT, A_COLLECT, A_CHAT, A_HANG } a_kind;

typedef struct astate {
  call_state cs;
  a_kind kind;
  bool started;  /* the request is in (Echo, Count), or the first (Chat) */
  bool finished; /* ended by the loop: ts_end and finish are done */
  bool worker;   /* a thread of the call's own owns it from here */
  long long n, size, interval_us, i; /* Count */
  size_t total;                      /* Collect */
  uint8_t *buf; /* Count's message, Echo's request (for the worker) */
  size_t len;
} astate;

/* Ends the call on the loop thread with `code` (or the ctx's cause). */
static void finish_with(astate *a, crpc_code code) {
  a->finished = true;
  crpc_server_call *call = a->cs.call;
  crpc_server_call_finish(call, ts_end(&a->cs, code), NULL);
}

/* Ends the call after its work: the status x-status asks for. */
static void finish_ok(astate *a) {
  a->finished = true;
  crpc_server_call *call = a->cs.call;
  crpc_server_call_finish(call, ts_epilogue(&a->cs), NULL);
}

/* The worker's end: after finish, a may already be freed on the loop. */
static void *worker_end(astate *a, crpc_code rc) {
  crpc_server_call *call = a->cs.call;
  crpc_code code = rc == CRPC_OK ? ts_epilogue(&a->cs) : ts_end(&a->cs, rc);
  crpc_server_call_finish(call, code, NULL);
  return NULL;
}

/* Hands the rest of the call to a detached thread running fn. */
static void start_worker(astate *a, void *(*fn)(void *)) {
  pthread_attr_t attr;
  pthread_t t;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  a->worker = true; /* before the thread exists: only the loop writes it */
  if (pthread_create(&t, &attr, fn, a) != 0) {
    a->worker = false;
    finish_with(a, CRPC_RESOURCE_EXHAUSTED);
  }
  pthread_attr_destroy(&attr);
}

static crpc_code sleep_first(astate *a) {
  int64_t ns = ts_sleep_ns(&a->cs);
  return ns == 0 ? CRPC_OK : crpc_ctx_sleep(a->cs.ctx, ns);
}

/* ---- Echo, Collect: one reply ------------------------------------------- */

static void *echo_work(void *arg) {
  astate *a = arg;
  crpc_code rc = sleep_first(a);
  if (rc == CRPC_OK) rc = ts_send(&a->cs, a->buf, a->len, true);
  return worker_end(a, rc);
}

static void echo_message(astate *a, const crpc_message *msg) {
  if (a->started) return; /* the half-close after the request */
  if (msg->end) {
    finish_with(a, crpc_server_call_error(a->cs.call, CRPC_INVALID_ARGUMENT,
                                          "no request"));
    return;
  }
  a->started = true;
  a->cs.recv = 1;
  if (ts_sleep_ns(&a->cs) > 0) {
    a->buf = malloc(msg->len > 0 ? msg->len : 1);
    if (a->buf == NULL) {
      finish_with(a, CRPC_RESOURCE_EXHAUSTED);
      return;
    }
    memcpy(a->buf, msg->data, msg->len);
    a->len = msg->len;
    start_worker(a, echo_work);
    return;
  }
  crpc_code rc = ts_send(&a->cs, msg->data, msg->len, true);
  if (rc != CRPC_OK) {
    finish_with(a, rc);
  } else {
    finish_ok(a);
  }
}

static crpc_code collect_reply(astate *a) {
  char reply[64];
  int len = snprintf(reply, sizeof reply, "%d %zu", a->cs.recv, a->total);
  return ts_send(&a->cs, reply, (size_t)len, true);
}

static void *collect_work(void *arg) {
  astate *a = arg;
  crpc_code rc = sleep_first(a);
  if (rc == CRPC_OK) rc = collect_reply(a);
  return worker_end(a, rc);
}

static void collect_message(astate *a, const crpc_message *msg) {
  if (!msg->end) {
    a->cs.recv++;
    a->total += msg->len;
    return;
  }
  if (ts_sleep_ns(&a->cs) > 0) {
    start_worker(a, collect_work);
    return;
  }
  crpc_code rc = collect_reply(a);
  if (rc != CRPC_OK) {
    finish_with(a, rc);
  } else {
    finish_ok(a);
  }
}

/* ---- Count: a stream, paced by flow control or by interval_us ---------- */

static crpc_code count_send_next(astate *a) {
  memset(a->buf, (int)(a->i & 0xff), (size_t)a->size);
  crpc_code rc = ts_send(&a->cs, a->buf, (size_t)a->size, true);
  if (rc == CRPC_OK) a->i++;
  return rc;
}

/* On the loop: sends while the buffer takes more; on_send_ready resumes. */
static void count_pump(astate *a) {
  while (a->n == 0 || a->i < a->n) {
    if (!crpc_server_call_can_send(a->cs.call)) return;
    crpc_code rc = count_send_next(a);
    if (rc != CRPC_OK) {
      finish_with(a, rc);
      return;
    }
  }
  finish_ok(a);
}

/* On the worker: one message per interval_us; while the send buffer is
 * full it looks again every millisecond (any wait ends with the ctx). */
static void *count_work(void *arg) {
  astate *a = arg;
  crpc_code rc = sleep_first(a);
  while (rc == CRPC_OK && (a->n == 0 || a->i < a->n)) {
    if (!crpc_server_call_can_send(a->cs.call)) {
      rc = crpc_ctx_sleep(a->cs.ctx, CRPC_MILLISECOND);
      continue;
    }
    rc = count_send_next(a);
    if (rc == CRPC_OK && a->interval_us > 0) {
      rc = crpc_ctx_sleep(a->cs.ctx, a->interval_us * CRPC_MICROSECOND);
    }
  }
  return worker_end(a, rc);
}

static void count_message(astate *a, const crpc_message *msg) {
  if (a->started) return;
  a->started = true;
  bool ok = ts_parse_count(msg, &a->n, &a->size, &a->interval_us);
  if (!msg->end) a->cs.recv = 1;
  if (!ok) {
    finish_with(a, crpc_server_call_error(a->cs.call, CRPC_INVALID_ARGUMENT,
                                          TS_COUNT_USAGE));
    return;
  }
  a->buf = malloc(a->size > 0 ? (size_t)a->size : 1);
  if (a->buf == NULL) {
    finish_with(a, CRPC_RESOURCE_EXHAUSTED);
    return;
  }
  if (ts_sleep_ns(&a->cs) > 0 || a->interval_us > 0) {
    start_worker(a, count_work);
  } else {
    count_pump(a);
  }
}

/* ---- Chat, Hang ------------------------------------------------------------ */

static void chat_message(astate *a, const crpc_message *msg) {
  if (msg->end) {
    finish_ok(a);
    return;
  }
  a->cs.recv++;
  crpc_code rc = ts_send(&a->cs, msg->data, msg->len, true);
  if (rc != CRPC_OK) {
    finish_with(a, rc);
  } else if (!crpc_server_call_can_send(a->cs.call)) {
    /* A client that sends faster than it reads: hold its messages (flow
     * control holds the client) until the echoes drain. */
    crpc_server_call_pause_recv(a->cs.call);
  }
}

/* ---- the reactor ------------------------------------------------------------ */

static void *on_start(crpc_server_call *call, const crpc_ctx *ctx,
                      crpc_test_service *svc, a_kind kind,
                      const char *method) {
  astate *a = calloc(1, sizeof *a);
  if (a == NULL) return NULL; /* on_message etc. then end the call */
  a->kind = kind;
  ts_begin(&a->cs, svc, call, ctx, method);
  ts_echo_metadata(&a->cs); /* headers go with the first send */
  return a;
}

#define START_FN(name, kind, method)                                     \
  static void *name(crpc_server_call *call, const crpc_ctx *ctx,        \
                    void *user_data) {                                   \
    return on_start(call, ctx, user_data, kind, method);                 \
  }
START_FN(start_echo, A_ECHO, "Echo")
START_FN(start_count, A_COUNT, "Count")
START_FN(start_collect, A_COLLECT, "Collect")
START_FN(start_chat, A_CHAT, "Chat")
START_FN(start_hang, A_HANG, "Hang")

/* A state that could not be allocated: end the call, once. */
static bool no_state(crpc_server_call *call, astate *a) {
  if (a != NULL) return false;
  crpc_server_call_finish(call, CRPC_RESOURCE_EXHAUSTED, "out of memory");
  return true;
}

static void on_message(crpc_server_call *call, const crpc_message *msg,
                       void *state) {
  astate *a = state;
  if (no_state(call, a) || a->finished || a->worker) return;
  switch (a->kind) {
    case A_ECHO: echo_message(a, msg); break;
    case A_COUNT: count_message(a, msg); break;
    case A_COLLECT: collect_message(a, msg); break;
    case A_CHAT: chat_message(a, msg); break;
    case A_HANG:
      if (!msg->end) a->cs.recv = 1;
      break; /* waits for on_cancel */
  }
}

static void on_send_ready(crpc_server_call *call, void *state) {
  astate *a = state;
  if (a == NULL || a->finished || a->worker) return;
  if (a->kind == A_COUNT) count_pump(a);
  if (a->kind == A_CHAT) crpc_server_call_resume_recv(call);
}

static void on_cancel(crpc_server_call *call, const crpc_cause *cause,
                      void *state) {
  astate *a = state;
  if (a == NULL) {
    crpc_server_call_finish(call, cause->code, NULL);
    return;
  }
  /* A worker sees the ctx done in its own wait or send and ends the call. */
  if (a->finished || a->worker) return;
  finish_with(a, cause->code);
}

static void on_done(crpc_server_call *call, void *state) {
  (void)call;
  astate *a = state;
  if (a == NULL) return;
  free(a->buf);
  free(a);
}

crpc_code crpc_test_service_register_async(crpc_test_service *svc,
                                           crpc_server *server) {
  static const struct {
    const char *path;
    crpc_method_kind kind;
    crpc_server_reactor reactor;
  } methods[] = {
#define REACTOR(start) \
  {start, on_message, on_send_ready, on_cancel, on_done}
      {"/" CRPC_TEST_SERVICE "/Echo", CRPC_UNARY, REACTOR(start_echo)},
      {"/" CRPC_TEST_SERVICE "/Count", CRPC_SERVER_STREAMING,
       REACTOR(start_count)},
      {"/" CRPC_TEST_SERVICE "/Collect", CRPC_CLIENT_STREAMING,
       REACTOR(start_collect)},
      {"/" CRPC_TEST_SERVICE "/Chat", CRPC_BIDI_STREAMING,
       REACTOR(start_chat)},
      {"/" CRPC_TEST_SERVICE "/Hang", CRPC_UNARY, REACTOR(start_hang)},
#undef REACTOR
  };
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
    crpc_code rc = crpc_server_add_async_method(
        server, methods[i].path, methods[i].kind, &methods[i].reactor, svc);
    if (rc != CRPC_OK) return rc;
  }
  return ts_add_report(svc, server);
}
