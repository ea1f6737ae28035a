/*
 * rpc/calls/calls.c - the part of the live-call registry (crpc/calls.h)
 * that servers and channels share: requests that visit every loop, the
 * snapshot's packing, state names and the table.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/calls/calls_internal.h"
#include "rpc/log/log.h"

/* ---- requests ------------------------------------------------------------ */

calls_req *calls_req_new(calls_op op, calls_visit_fn visit, int n_loops,
                         uint64_t id, const char *reason) {
  calls_req *req = calloc(1, sizeof(*req) + (size_t)n_loops * sizeof(calls_visit));
  if (req == NULL) return NULL;
  atomic_init(&req->refs, 1);
  req->op = op;
  req->visit = visit;
  req->id = id;
  if (op == CALLS_CANCEL) {
    snprintf(req->message, sizeof(req->message), "%s%s",
             CRPC_CALL_CANCEL_PREFIX, reason != NULL ? reason : "");
  }
  req->code = op == CALLS_CANCEL ? CRPC_NOT_FOUND : CRPC_OK;
  req->n_visits = n_loops;
  req->pending = n_loops;
  pthread_mutex_init(&req->mu, NULL);
  pthread_cond_init(&req->cond, NULL);
  return req;
}

void calls_req_unref(calls_req *req) {
  if (req == NULL || atomic_fetch_sub(&req->refs, 1) != 1) return;
  free(req->entries);
  free(req->pool);
  pthread_mutex_destroy(&req->mu);
  pthread_cond_destroy(&req->cond);
  free(req);
}

static int by_id(const void *a, const void *b) {
  uint64_t x = ((const calls_entry *)a)->info.id;
  uint64_t y = ((const calls_entry *)b)->info.id;
  return x < y ? -1 : x > y;
}

/* Packs the entries into one block the caller frees: the infos, sorted by
 * id, then the strings they point at. Caller holds mu (or is the only
 * one left using req). */
static crpc_code pack_locked(calls_req *req, crpc_call_info **calls,
                             size_t *count) {
  *calls = NULL;
  *count = 0;
  if (req->code != CRPC_OK) return req->code;
  if (req->n == 0) return CRPC_OK;
  size_t head = req->n * sizeof(crpc_call_info);
  crpc_call_info *out = malloc(head + req->pool_len);
  if (out == NULL) return CRPC_RESOURCE_EXHAUSTED;
  char *strs = (char *)out + head;
  memcpy(strs, req->pool, req->pool_len);
  qsort(req->entries, req->n, sizeof(calls_entry), by_id);
  for (size_t i = 0; i < req->n; i++) {
    out[i] = req->entries[i].info;
    out[i].method = strs + req->entries[i].method_off;
    out[i].peer = strs + req->entries[i].peer_off;
  }
  *calls = out;
  *count = req->n;
  return CRPC_OK;
}

/* The last loop has answered: wake the asker or run the callback, then
 * let the side release its loops. Not with mu held. */
static void complete(calls_req *req) {
  if (req->list_done != NULL) {
    crpc_call_info *calls;
    size_t count;
    pthread_mutex_lock(&req->mu);
    crpc_code code = pack_locked(req, &calls, &count);
    pthread_mutex_unlock(&req->mu);
    req->list_done(code, calls, count, req->user_data);
  } else if (req->cancel_done != NULL) {
    pthread_mutex_lock(&req->mu);
    crpc_code code = req->code;
    pthread_mutex_unlock(&req->mu);
    req->cancel_done(code, req->user_data);
  }
  if (req->release != NULL) req->release(req->owner);
}

static void answered(calls_req *req) {
  pthread_mutex_lock(&req->mu);
  bool last = --req->pending == 0;
  if (last) pthread_cond_broadcast(&req->cond);
  pthread_mutex_unlock(&req->mu);
  if (last) complete(req);
}

static void visit_fn(crpc_loop *loop, void *arg) {
  (void)loop;
  calls_visit *v = arg;
  calls_req *req = v->req;
  req->visit(req, v->arg);
  answered(req);
  calls_req_unref(req); /* the closure's */
}

void calls_req_post(calls_req *req, crpc_loop *(*loop_of)(void *arg),
                    calls_release_fn release, void *owner) {
  req->release = release;
  req->owner = owner;
  if (req->n_visits == 0) {
    complete(req);
    return;
  }
  for (int i = 0; i < req->n_visits; i++) {
    req->visits[i].req = req;
    atomic_fetch_add(&req->refs, 1);
    if (crpc_loop_post(loop_of(req->visits[i].arg), visit_fn,
                       &req->visits[i]) != 0) {
      pthread_mutex_lock(&req->mu);
      if (req->op == CALLS_LIST) req->code = CRPC_RESOURCE_EXHAUSTED;
      pthread_mutex_unlock(&req->mu);
      answered(req);
      calls_req_unref(req);
    }
  }
}

crpc_code calls_req_wait(calls_req *req, const crpc_ctx *ctx) {
  crpc_code code = CRPC_OK;
  pthread_mutex_lock(&req->mu);
  while (req->pending > 0 && code == CRPC_OK) {
    code = crpc_ctx_wait_cond(ctx, &req->cond, &req->mu);
  }
  if (req->pending == 0) code = CRPC_OK; /* answered as the ctx ended */
  pthread_mutex_unlock(&req->mu);
  return code;
}

crpc_code calls_req_take(calls_req *req, crpc_call_info **calls,
                         size_t *count) {
  pthread_mutex_lock(&req->mu);
  crpc_code code = req->code;
  if (calls != NULL) code = pack_locked(req, calls, count);
  pthread_mutex_unlock(&req->mu);
  return code;
}

/* Appends s with its NUL to the pool; its offset, or SIZE_MAX if out of
 * memory. Caller holds mu. */
static size_t pool_add_locked(calls_req *req, const char *s) {
  size_t n = strlen(s) + 1;
  if (req->pool_len + n > req->pool_cap) {
    size_t cap = req->pool_cap ? req->pool_cap * 2 : 1024;
    while (cap < req->pool_len + n) cap *= 2;
    char *p = realloc(req->pool, cap);
    if (p == NULL) return SIZE_MAX;
    req->pool = p;
    req->pool_cap = cap;
  }
  size_t off = req->pool_len;
  memcpy(req->pool + off, s, n);
  req->pool_len += n;
  return off;
}

void calls_req_add(calls_req *req, const crpc_call_info *info) {
  pthread_mutex_lock(&req->mu);
  if (req->n == req->cap) {
    size_t cap = req->cap ? req->cap * 2 : 16;
    calls_entry *e = realloc(req->entries, cap * sizeof(*e));
    if (e != NULL) {
      req->entries = e;
      req->cap = cap;
    }
  }
  size_t m = req->n < req->cap
                 ? pool_add_locked(req, info->method ? info->method : "")
                 : SIZE_MAX;
  size_t p = m != SIZE_MAX ? pool_add_locked(req, info->peer ? info->peer : "")
                           : SIZE_MAX;
  if (p == SIZE_MAX) {
    req->code = CRPC_RESOURCE_EXHAUSTED;
  } else {
    req->entries[req->n++] = (calls_entry){*info, m, p};
  }
  pthread_mutex_unlock(&req->mu);
}

void calls_req_set_code(calls_req *req, crpc_code code) {
  pthread_mutex_lock(&req->mu);
  req->code = code;
  pthread_mutex_unlock(&req->mu);
}

void calls_require_ctx(const crpc_ctx *ctx, const char *fn) {
  if (ctx != NULL) return;
  crpc_log_fatal(CRPC_LOG_SUB_CALL,
                 "%s: ctx is required (NULL given): it bounds the wait for "
                 "the loops",
                 fn);
  abort();
}

crpc_call_state calls_state(bool decided, bool ctx_done, bool half_closed,
                            bool moved) {
  if (decided) return CRPC_CALL_FINISHING;
  if (ctx_done) return CRPC_CALL_CANCELLING;
  if (half_closed) return CRPC_CALL_HALF_CLOSED;
  return moved ? CRPC_CALL_STREAMING : CRPC_CALL_HEADERS;
}

/* ---- public: names, freeing, the table ------------------------------------ */

const char *crpc_call_state_name(crpc_call_state state) {
  static const char *const names[] = {"headers", "streaming", "half-closed",
                                      "cancelling", "finishing"};
  unsigned i = (unsigned)state;
  return i < sizeof(names) / sizeof(names[0]) ? names[i] : "invalid";
}

void crpc_calls_free(crpc_call_info *calls) { free(calls); }

/* "850us", "12.3ms", "4.20s", "315s", "2.5h"; "-" for no deadline. */
static const char *fmt_dur(char buf[16], int64_t ns) {
  if (ns == CRPC_NO_DEADLINE) return "-";
  double v = (double)ns;
  if (ns < CRPC_MILLISECOND) {
    snprintf(buf, 16, "%.0fus", v / 1e3);
  } else if (ns < CRPC_SECOND) {
    snprintf(buf, 16, "%.1fms", v / 1e6);
  } else if (ns < 100 * CRPC_SECOND) {
    snprintf(buf, 16, "%.2fs", v / 1e9);
  } else if (ns < 3600 * CRPC_SECOND) {
    snprintf(buf, 16, "%.0fs", v / 1e9);
  } else {
    snprintf(buf, 16, "%.1fh", v / 3.6e12);
  }
  return buf;
}

/* "512", "12.5k", "3.1M", "2.0G": counts that fit a column. */
static const char *fmt_num(char buf[16], uint64_t n) {
  double v = (double)n;
  if (n < 10000) {
    snprintf(buf, 16, "%llu", (unsigned long long)n);
  } else if (n < 10000000) {
    snprintf(buf, 16, "%.1fk", v / 1e3);
  } else if (n < 10000000000ull) {
    snprintf(buf, 16, "%.1fM", v / 1e6);
  } else {
    snprintf(buf, 16, "%.1fG", v / 1e9);
  }
  return buf;
}

void crpc_calls_write(FILE *out, const crpc_call_info *calls, size_t count) {
  fprintf(out, "%6s %-6s %-11s %8s %8s %13s %15s  %s\n", "ID", "SIDE",
          "STATE", "AGE", "DEADLINE", "MSGS IN/OUT", "BYTES IN/OUT",
          "METHOD  PEER  [CAUSE]");
  if (count == 0) fprintf(out, "(no calls)\n");
  for (size_t i = 0; i < count; i++) {
    const crpc_call_info *c = &calls[i];
    char age[16], left[16], mi[16], mo[16], bi[16], bo[16], msgs[40], bytes[40];
    snprintf(msgs, sizeof(msgs), "%s/%s", fmt_num(mi, c->messages_in),
             fmt_num(mo, c->messages_out));
    snprintf(bytes, sizeof(bytes), "%s/%s", fmt_num(bi, c->bytes_in),
             fmt_num(bo, c->bytes_out));
    fprintf(out, "%6llu %-6s %-11s %8s %8s %13s %15s  %s  %s",
            (unsigned long long)c->id, c->client ? "client" : "server",
            crpc_call_state_name(c->state), fmt_dur(age, c->age_ns),
            fmt_dur(left, c->deadline_left_ns), msgs, bytes,
            c->method ? c->method : "", c->peer ? c->peer : "");
    if (c->done) {
      fprintf(out, "  [%s, %s: %s]", crpc_code_name(c->cause.code),
              crpc_origin_name(c->cause.origin), c->cause.message);
    }
    fputc('\n', out);
  }
}
