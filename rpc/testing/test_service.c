/* The crpc.test.Test service on crpc's server API (see test_service.h and
 * README.md). Mirrors py_server.py. */
#include "rpc/testing/test_service.h"
#include "rpc/testing/test_service_internal.h"

#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct observation {
  struct observation *next;
  char *tag;
  char *text;
} observation;

struct crpc_test_service {
  pthread_mutex_t mu;
  pthread_cond_t cond;
  observation *obs;
  atomic_int running;
};

/* ---- observations ------------------------------------------------------ */

static void record(crpc_test_service *svc, const char *tag, const char *text) {
  if (tag == NULL || tag[0] == '\0') return;
  observation *o = calloc(1, sizeof *o);
  if (o == NULL) return;
  o->tag = strdup(tag);
  o->text = strdup(text);
  if (o->tag == NULL || o->text == NULL) {
    free(o->tag);
    free(o->text);
    free(o);
    return;
  }
  pthread_mutex_lock(&svc->mu);
  bool dup = false;
  for (observation *p = svc->obs; p != NULL; p = p->next) {
    if (strcmp(p->tag, tag) == 0) dup = true; /* the first record wins */
  }
  if (!dup) {
    o->next = svc->obs;
    svc->obs = o;
    pthread_cond_broadcast(&svc->cond);
  }
  pthread_mutex_unlock(&svc->mu);
  if (dup) {
    free(o->tag);
    free(o->text);
    free(o);
  }
}

static char *find_locked(crpc_test_service *svc, const char *tag) {
  for (observation *p = svc->obs; p != NULL; p = p->next) {
    if (strcmp(p->tag, tag) == 0) return strdup(p->text);
  }
  return NULL;
}

/* Waits for tag's observation while ctx (which carries the time limit) is
 * live. */
static char *wait_report(crpc_test_service *svc, const crpc_ctx *ctx,
                         const char *tag) {
  pthread_mutex_lock(&svc->mu);
  char *text;
  while ((text = find_locked(svc, tag)) == NULL) {
    if (crpc_ctx_wait_cond(ctx, &svc->cond, &svc->mu) != CRPC_OK) break;
  }
  pthread_mutex_unlock(&svc->mu);
  return text;
}

char *crpc_test_service_wait_report(crpc_test_service *svc, const char *tag,
                                    int64_t timeout_ns) {
  crpc_ctx *ctx = crpc_ctx_with_timeout(crpc_ctx_background(), timeout_ns);
  if (ctx == NULL) return NULL;
  char *text = wait_report(svc, ctx, tag);
  crpc_ctx_release(ctx);
  return text;
}

/* ---- per-call bookkeeping ---------------------------------------------- */

static void on_cancel(void *arg, const crpc_cause *cause) {
  (void)cause;
  call_state *cs = arg;
  atomic_store(&cs->cancel_seen, true);
}

bool ts_md_get(const call_state *cs, const char *key,
                   crpc_metadata_entry *e) {
  return crpc_metadata_get(crpc_server_call_request_metadata(cs->call), key,
                           e);
}

long long ts_md_int(const call_state *cs, const char *key, long long dflt) {
  crpc_metadata_entry e;
  if (!ts_md_get(cs, key, &e)) return dflt;
  return strtoll((const char *)e.value, NULL, 10);
}

void ts_begin(call_state *cs, crpc_test_service *svc,
                  crpc_server_call *call, const crpc_ctx *ctx,
                  const char *method) {
  memset(cs, 0, sizeof *cs);
  atomic_fetch_add(&svc->running, 1);
  cs->svc = svc;
  cs->call = call;
  cs->ctx = ctx;
  cs->method = method;
  crpc_metadata_entry e;
  if (ts_md_get(cs, "x-tag", &e)) {
    snprintf(cs->tag, sizeof cs->tag, "%.*s", (int)e.value_len,
             (const char *)e.value);
  }
  int64_t rem = crpc_ctx_remaining(ctx);
  cs->timeout_ms = rem == CRPC_NO_DEADLINE ? -1 : (long long)(rem / 1000000);
  atomic_init(&cs->cancel_seen, false);
  cs->registered = crpc_ctx_on_cancel(ctx, &cs->reg, on_cancel, cs);
  if (!cs->registered) atomic_store(&cs->cancel_seen, true);
}

/* Records the observation and ends the call with `code`. */
crpc_code ts_end(call_state *cs, crpc_code code) {
  const char *end_name = crpc_code_name(code);
  const char *origin = "none";
  const crpc_cause *cause = crpc_ctx_cause(cs->ctx);
  if (cause != NULL) {
    end_name = crpc_code_name(cause->code);
    origin = crpc_origin_name(cause->origin);
  }
  char o[64];
  snprintf(o, sizeof o, "%s", origin);
  for (char *p = o; *p; p++) {
    if (*p == ' ') *p = '_';
  }
  char text[256];
  snprintf(text, sizeof text,
           "method=%s end=%s origin=%s sent=%d recv=%d timeout_ms=%lld late=%d",
           cs->method, end_name, o, cs->sent, cs->recv, cs->timeout_ms,
           cs->late);
  record(cs->svc, cs->tag, text);
  /* RUNNING: the callback is storing cancel_seen right now, into cs on
   * our stack; wait for that store (its last access) before returning. */
  if (cs->registered &&
      crpc_ctx_remove_on_cancel(&cs->reg) == CRPC_ON_CANCEL_RUNNING) {
    while (!atomic_load(&cs->cancel_seen)) sched_yield();
  }
  atomic_fetch_sub(&cs->svc->running, 1);
  return code;
}

void ts_echo_metadata(call_state *cs) {
  if (ts_md_int(cs, "x-echo-md", 0) != 1) return;
  const crpc_metadata *req = crpc_server_call_request_metadata(cs->call);
  crpc_metadata *hdrs = crpc_server_call_response_headers(cs->call);
  crpc_metadata *trls = crpc_server_call_trailers(cs->call);
  size_t n = crpc_metadata_count(req);
  for (size_t i = 0; i < n; i++) {
    crpc_metadata_entry e;
    if (!crpc_metadata_at(req, i, &e)) continue;
    if (strncmp(e.key, "x-md-", 5) != 0) continue;
    char key[256];
    snprintf(key, sizeof key, "x-trl-%s", e.key + 5);
    crpc_metadata_add(hdrs, e.key, e.value, e.value_len);
    crpc_metadata_add(trls, key, e.value, e.value_len);
  }
}

int64_t ts_sleep_ns(const call_state *cs) {
  long long ms = ts_md_int(cs, "x-sleep-ms", 0);
  return ms > 0 ? (int64_t)ms * CRPC_MILLISECOND : 0;
}

crpc_code ts_epilogue(call_state *cs) {
  crpc_code code = (crpc_code)ts_md_int(cs, "x-status", 0);
  if (code == CRPC_OK) return ts_end(cs, CRPC_OK);
  crpc_metadata_entry e;
  if (ts_md_get(cs, "x-message-bin", &e) || ts_md_get(cs, "x-message", &e)) {
    crpc_server_call_error(cs->call, code, "%.*s", (int)e.value_len,
                           (const char *)e.value);
  } else {
    crpc_server_call_error(cs->call, code, "%s", "");
  }
  return ts_end(cs, code);
}

crpc_code ts_send(call_state *cs, const void *data, size_t len, bool async) {
  bool was_cancelled = atomic_load(&cs->cancel_seen);
  crpc_code rc = async ? crpc_server_call_send_async(cs->call, data, len, 0)
                       : crpc_server_call_send(cs->call, data, len);
  if (rc == CRPC_OK) {
    cs->sent++;
    if (was_cancelled) cs->late++;
  }
  return rc;
}

bool ts_parse_count(const crpc_message *m, long long *n, long long *size,
                    long long *interval_us) {
  if (m->end) return false;
  char buf[64];
  snprintf(buf, sizeof buf, "%.*s", (int)m->len, (const char *)m->data);
  return sscanf(buf, "%lld %lld %lld", n, size, interval_us) == 3 && *n >= 0 &&
         *size >= 0 && *size <= (64 << 20);
}

/* Metadata echo and the optional sleep. False if the ctx ended. */
static bool prologue(call_state *cs) {
  ts_echo_metadata(cs);
  int64_t sleep_ns = ts_sleep_ns(cs);
  return sleep_ns == 0 || crpc_ctx_sleep(cs->ctx, sleep_ns) == CRPC_OK;
}

static crpc_code send_msg(call_state *cs, const void *data, size_t len) {
  return ts_send(cs, data, len, false);
}

/* ---- handlers ------------------------------------------------------------ */

static crpc_code echo(crpc_server_call *call, const crpc_ctx *ctx, void *ud) {
  call_state cs;
  ts_begin(&cs, ud, call, ctx, "Echo");
  crpc_message m = {0};
  crpc_code rc = crpc_server_call_recv(call, &m);
  if (rc != CRPC_OK) return ts_end(&cs, rc);
  if (m.end) return ts_end(&cs, crpc_server_call_error(call, CRPC_INVALID_ARGUMENT,
                                                    "no request"));
  cs.recv = 1;
  if (!prologue(&cs)) {
    free(m.data);
    return ts_end(&cs, crpc_ctx_err(ctx));
  }
  rc = send_msg(&cs, m.data, m.len);
  free(m.data);
  if (rc != CRPC_OK) return ts_end(&cs, rc);
  return ts_epilogue(&cs);
}

static crpc_code count(crpc_server_call *call, const crpc_ctx *ctx, void *ud) {
  call_state cs;
  ts_begin(&cs, ud, call, ctx, "Count");
  crpc_message m = {0};
  crpc_code rc = crpc_server_call_recv(call, &m);
  if (rc != CRPC_OK) return ts_end(&cs, rc);
  long long n = 0, size = 0, interval_us = 0;
  bool ok = ts_parse_count(&m, &n, &size, &interval_us);
  if (!m.end) {
    free(m.data);
    cs.recv = 1;
  }
  if (!ok) {
    return ts_end(&cs, crpc_server_call_error(call, CRPC_INVALID_ARGUMENT,
                                              TS_COUNT_USAGE));
  }
  if (!prologue(&cs)) return ts_end(&cs, crpc_ctx_err(ctx));
  uint8_t *buf = malloc(size > 0 ? (size_t)size : 1);
  if (buf == NULL) return ts_end(&cs, CRPC_RESOURCE_EXHAUSTED);
  for (long long i = 0; n == 0 || i < n; i++) {
    memset(buf, (int)(i & 0xff), (size_t)size);
    rc = send_msg(&cs, buf, (size_t)size);
    if (rc != CRPC_OK) break;
    if (interval_us > 0) {
      rc = crpc_ctx_sleep(ctx, interval_us * CRPC_MICROSECOND);
      if (rc != CRPC_OK) break;
    }
  }
  free(buf);
  if (rc != CRPC_OK) return ts_end(&cs, rc);
  return ts_epilogue(&cs);
}

static crpc_code collect(crpc_server_call *call, const crpc_ctx *ctx,
                         void *ud) {
  call_state cs;
  ts_begin(&cs, ud, call, ctx, "Collect");
  if (!prologue(&cs)) return ts_end(&cs, crpc_ctx_err(ctx));
  size_t total = 0;
  for (;;) {
    crpc_message m = {0};
    crpc_code rc = crpc_server_call_recv(call, &m);
    if (rc != CRPC_OK) return ts_end(&cs, rc);
    if (m.end) break;
    cs.recv++;
    total += m.len;
    free(m.data);
  }
  char reply[64];
  int len = snprintf(reply, sizeof reply, "%d %zu", cs.recv, total);
  crpc_code rc = send_msg(&cs, reply, (size_t)len);
  if (rc != CRPC_OK) return ts_end(&cs, rc);
  return ts_epilogue(&cs);
}

static crpc_code chat(crpc_server_call *call, const crpc_ctx *ctx, void *ud) {
  call_state cs;
  ts_begin(&cs, ud, call, ctx, "Chat");
  if (!prologue(&cs)) return ts_end(&cs, crpc_ctx_err(ctx));
  for (;;) {
    crpc_message m = {0};
    crpc_code rc = crpc_server_call_recv(call, &m);
    if (rc != CRPC_OK) return ts_end(&cs, rc);
    if (m.end) break;
    cs.recv++;
    rc = send_msg(&cs, m.data, m.len);
    free(m.data);
    if (rc != CRPC_OK) return ts_end(&cs, rc);
  }
  return ts_epilogue(&cs);
}

static crpc_code hang(crpc_server_call *call, const crpc_ctx *ctx, void *ud) {
  call_state cs;
  ts_begin(&cs, ud, call, ctx, "Hang");
  crpc_message m = {0};
  crpc_code rc = crpc_server_call_recv(call, &m);
  if (rc != CRPC_OK) return ts_end(&cs, rc);
  if (!m.end) {
    cs.recv = 1;
    free(m.data);
  }
  prologue(&cs);
  return ts_end(&cs, crpc_ctx_wait(ctx));
}

static crpc_code report(crpc_server_call *call, const crpc_ctx *ctx,
                        void *ud) {
  crpc_test_service *svc = ud;
  crpc_message m = {0};
  crpc_code rc = crpc_server_call_recv(call, &m);
  if (rc != CRPC_OK) return rc;
  char tag[128] = "";
  if (!m.end) {
    snprintf(tag, sizeof tag, "%.*s", (int)m.len, (const char *)m.data);
    free(m.data);
  }
  crpc_ctx *limit = crpc_ctx_with_timeout(ctx, 5 * CRPC_SECOND);
  if (limit == NULL) return CRPC_RESOURCE_EXHAUSTED;
  char *text = wait_report(svc, limit, tag);
  crpc_ctx_release(limit);
  if (text == NULL) {
    return crpc_server_call_error(call, CRPC_NOT_FOUND,
                                  "no observation for tag %s", tag);
  }
  rc = crpc_server_call_send(call, text, strlen(text));
  free(text);
  return rc;
}

/* ---- service ------------------------------------------------------------- */

crpc_test_service *crpc_test_service_new(void) {
  crpc_test_service *svc = calloc(1, sizeof *svc);
  if (svc == NULL) return NULL;
  pthread_mutex_init(&svc->mu, NULL);
  pthread_cond_init(&svc->cond, NULL);
  atomic_init(&svc->running, 0);
  return svc;
}

crpc_code ts_add_report(crpc_test_service *svc, crpc_server *server) {
  return crpc_server_add_method(server, "/" CRPC_TEST_SERVICE "/Report",
                                CRPC_UNARY, report, svc);
}

crpc_code crpc_test_service_register(crpc_test_service *svc,
                                     crpc_server *server) {
  static const struct {
    const char *path;
    crpc_method_kind kind;
    crpc_handler_fn fn;
  } methods[] = {
      {"/" CRPC_TEST_SERVICE "/Echo", CRPC_UNARY, echo},
      {"/" CRPC_TEST_SERVICE "/Count", CRPC_SERVER_STREAMING, count},
      {"/" CRPC_TEST_SERVICE "/Collect", CRPC_CLIENT_STREAMING, collect},
      {"/" CRPC_TEST_SERVICE "/Chat", CRPC_BIDI_STREAMING, chat},
      {"/" CRPC_TEST_SERVICE "/Hang", CRPC_UNARY, hang},
  };
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
    crpc_code rc = crpc_server_add_method(server, methods[i].path,
                                          methods[i].kind, methods[i].fn, svc);
    if (rc != CRPC_OK) return rc;
  }
  return ts_add_report(svc, server);
}

int crpc_test_service_running(crpc_test_service *svc) {
  return atomic_load(&svc->running);
}

void crpc_test_service_free(crpc_test_service *svc) {
  if (svc == NULL) return;
  observation *o = svc->obs;
  while (o != NULL) {
    observation *next = o->next;
    free(o->tag);
    free(o->text);
    free(o);
    o = next;
  }
  pthread_cond_destroy(&svc->cond);
  pthread_mutex_destroy(&svc->mu);
  free(svc);
}
