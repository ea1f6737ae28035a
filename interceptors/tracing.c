/*
 * tracing.c - the trace on the ctx, the server and client interceptors
 * (see tracing.h; the header rules are in traceparent.c).
 */
#include "interceptors/tracing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "interceptors/internal/trace_internal.h"

static const char trace_key = 0; /* ctx value key: its address */

/* What a traced ctx carries. Immutable once on the ctx. */
typedef struct trace_val {
  char trace_id[CRPC_TRACE_ID_MAX + 1];
  char span_id[17];
  char parent_id[17]; /* "" when none */
  uint8_t flags;      /* only CRPC_TRACE_FLAG_SAMPLED is kept */
  bool w3c;           /* trace_id is a W3C trace id */
  char *tracestate;   /* NULL when none */
} trace_val;

static void trace_val_free(void *p) {
  trace_val *t = p;
  if (t == NULL) return;
  free(t->tracestate);
  free(t);
}

static const trace_val *get(const crpc_ctx *ctx) {
  return ctx != NULL ? crpc_ctx_value(ctx, &trace_key) : NULL;
}

const char *crpc_trace_id(const crpc_ctx *ctx) {
  const trace_val *t = get(ctx);
  return t != NULL ? t->trace_id : NULL;
}

const char *crpc_trace_span_id(const crpc_ctx *ctx) {
  const trace_val *t = get(ctx);
  return t != NULL ? t->span_id : NULL;
}

const char *crpc_trace_parent_id(const crpc_ctx *ctx) {
  const trace_val *t = get(ctx);
  return t != NULL && t->parent_id[0] != '\0' ? t->parent_id : NULL;
}

bool crpc_trace_sampled(const crpc_ctx *ctx) {
  const trace_val *t = get(ctx);
  return t != NULL && (t->flags & CRPC_TRACE_FLAG_SAMPLED) != 0;
}

const char *crpc_trace_state(const crpc_ctx *ctx) {
  const trace_val *t = get(ctx);
  return t != NULL ? t->tracestate : NULL;
}

/* Only for a W3C trace (t->w3c: a 32-digit trace id). */
static void format_traceparent(const trace_val *t,
                               char out[CRPC_TRACEPARENT_LEN + 1]) {
  /* Always version 00: a later version received is sent on downgraded,
   * with only the flags this version defines. */
  memcpy(out, "00-", 3);
  memcpy(out + 3, t->trace_id, 32);
  out[35] = '-';
  memcpy(out + 36, t->span_id, 16);
  out[52] = '-';
  out[53] = '0';
  out[54] = (t->flags & CRPC_TRACE_FLAG_SAMPLED) != 0 ? '1' : '0';
  out[55] = '\0';
}

bool crpc_trace_traceparent(const crpc_ctx *ctx,
                            char out[CRPC_TRACEPARENT_LEN + 1]) {
  const trace_val *t = get(ctx);
  out[0] = '\0';
  if (t == NULL || !t->w3c) return false;
  format_traceparent(t, out);
  return true;
}

/* A new trace_val: continuing tp (may be NULL: a new trace with
 * new_flags, unless x_id gives the id) with a new span id. */
static trace_val *make_val(const crpc_traceparent *tp, const char *x_id,
                           size_t x_len, uint8_t new_flags, char *tracestate) {
  trace_val *t = calloc(1, sizeof(*t));
  if (t == NULL) {
    free(tracestate);
    return NULL;
  }
  if (tp != NULL) {
    memcpy(t->trace_id, tp->trace_id, sizeof(tp->trace_id));
    memcpy(t->parent_id, tp->parent_id, sizeof(tp->parent_id));
    t->flags = tp->flags & CRPC_TRACE_FLAG_SAMPLED;
    t->w3c = true;
    t->tracestate = tracestate;
  } else {
    free(tracestate); /* a restarted trace drops it */
    if (x_id != NULL) {
      memcpy(t->trace_id, x_id, x_len);
      t->trace_id[x_len] = '\0';
      /* crpc's own x-trace-ids are W3C trace ids: they travel as such. */
      t->w3c = x_len == 32 && icpt_trace_is_w3c_id(x_id, x_len);
    } else {
      icpt_trace_random_hex(t->trace_id, 16);
      t->w3c = true;
    }
    t->flags = new_flags & CRPC_TRACE_FLAG_SAMPLED;
  }
  icpt_trace_random_hex(t->span_id, 8);
  return t;
}

crpc_ctx *crpc_trace_start(const crpc_ctx *parent, const char *traceparent,
                           const char *tracestate, bool sampled) {
  crpc_traceparent tp;
  bool ok = traceparent != NULL &&
            crpc_traceparent_parse(traceparent, strlen(traceparent), &tp);
  char *ts = ok && tracestate != NULL
                 ? icpt_tracestate_norm(tracestate, strlen(tracestate))
                 : NULL;
  trace_val *t = make_val(ok ? &tp : NULL, NULL, 0,
                          sampled ? CRPC_TRACE_FLAG_SAMPLED : 0, ts);
  if (t == NULL) return NULL;
  crpc_ctx *c = crpc_ctx_with_value(parent, &trace_key, t, trace_val_free);
  if (c == NULL) trace_val_free(t);
  return c;
}

/* ---- server ----------------------------------------------------------------
 */

static const crpc_tracing_options kDefaults = {
    .accept = CRPC_TRACE_FORMAT_W3C | CRPC_TRACE_FORMAT_X_TRACE_ID,
    .emit = CRPC_TRACE_FORMAT_W3C,
    .sample_new = false};

static unsigned accept_of(const crpc_tracing_options *o) {
  return o != NULL && o->accept != 0 ? o->accept : kDefaults.accept;
}

static unsigned emit_of(const crpc_tracing_options *o) {
  return o != NULL && o->emit != 0 ? o->emit : kDefaults.emit;
}

static bool valid_x_id(const uint8_t *v, size_t n) {
  if (n == 0 || n > CRPC_TRACE_ID_MAX) return false;
  for (size_t i = 0; i < n; i++) {
    char c = (char)v[i];
    bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
              (c >= 'A' && c <= 'Z') || c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

/* The trace of an incoming request, by the rules in tracing.h. */
static trace_val *from_request(const crpc_metadata *md,
                               const crpc_tracing_options *o) {
  unsigned accept = accept_of(o);
  crpc_metadata_entry e;
  if ((accept & CRPC_TRACE_FORMAT_W3C) != 0) {
    crpc_traceparent tp;
    /* Two traceparent headers: which one? Neither (a restart). */
    if (crpc_metadata_get_all(md, CRPC_TRACEPARENT_HEADER, &e, 1) == 1 &&
        crpc_traceparent_parse((const char *)e.value, e.value_len, &tp)) {
      return make_val(&tp, NULL, 0, 0, icpt_tracestate_from_md(md));
    }
  }
  uint8_t new_flags = o != NULL && o->sample_new ? CRPC_TRACE_FLAG_SAMPLED : 0;
  if ((accept & CRPC_TRACE_FORMAT_X_TRACE_ID) != 0 &&
      crpc_metadata_get(md, CRPC_TRACE_HEADER, &e) &&
      valid_x_id(e.value, e.value_len)) {
    return make_val(NULL, (const char *)e.value, e.value_len, new_flags, NULL);
  }
  return make_val(NULL, NULL, 0, new_flags, NULL);
}

static crpc_code server_call(crpc_server_call *call, const crpc_ctx *ctx,
                             const crpc_server_call_info *info,
                             crpc_server_next *next, void *user_data) {
  (void)info;
  const crpc_tracing_options *o = user_data;
  trace_val *t = from_request(crpc_server_call_request_metadata(call), o);
  if (t == NULL) return crpc_server_next_call(next, ctx); /* untraced */
  if ((emit_of(o) & CRPC_TRACE_FORMAT_X_TRACE_ID) != 0) {
    crpc_metadata_add_str(crpc_server_call_response_headers(call),
                          CRPC_TRACE_HEADER, t->trace_id);
  }
  crpc_ctx *traced = crpc_ctx_with_value(ctx, &trace_key, t, trace_val_free);
  if (traced == NULL) {
    trace_val_free(t);
    return crpc_server_next_call(next, ctx);
  }
  crpc_code code = crpc_server_next_call(next, traced);
  crpc_ctx_release(traced);
  return code;
}

/* ---- client ----------------------------------------------------------------
 */

static crpc_code client_start(const crpc_ctx *ctx, crpc_client_call_info *info,
                              crpc_metadata *md, crpc_client_next *next,
                              void *user_data) {
  (void)info;
  const trace_val *t = get(ctx);
  if (t == NULL) return crpc_client_next_start(next, ctx, md);
  unsigned emit = emit_of(user_data);
  bool w3c = (emit & CRPC_TRACE_FORMAT_W3C) != 0 && t->w3c;
  /* A trace that cannot travel as traceparent goes as x-trace-id. */
  bool x = (emit & CRPC_TRACE_FORMAT_X_TRACE_ID) != 0 || !t->w3c;
  crpc_code rc = CRPC_OK;
  if (w3c) {
    char tp[CRPC_TRACEPARENT_LEN + 1];
    format_traceparent(t, tp);
    crpc_metadata_remove(md, CRPC_TRACEPARENT_HEADER);
    crpc_metadata_remove(md, CRPC_TRACESTATE_HEADER);
    rc = crpc_metadata_add_str(md, CRPC_TRACEPARENT_HEADER, tp);
    if (rc == CRPC_OK && t->tracestate != NULL) {
      rc = crpc_metadata_add_str(md, CRPC_TRACESTATE_HEADER, t->tracestate);
    }
  }
  if (rc == CRPC_OK && x) {
    crpc_metadata_remove(md, CRPC_TRACE_HEADER);
    rc = crpc_metadata_add_str(md, CRPC_TRACE_HEADER, t->trace_id);
  }
  if (rc != CRPC_OK) return rc;
  return crpc_client_next_start(next, ctx, md);
}

crpc_server_interceptor crpc_tracing_server_with(
    const crpc_tracing_options *opts) {
  crpc_server_interceptor i = {
      .name = "tracing", .call = server_call, .user_data = (void *)opts};
  return i;
}

crpc_server_interceptor crpc_tracing_server(void) {
  return crpc_tracing_server_with(NULL);
}

crpc_client_interceptor crpc_tracing_client_with(
    const crpc_tracing_options *opts) {
  crpc_client_interceptor i = {
      .name = "tracing", .start = client_start, .user_data = (void *)opts};
  return i;
}

crpc_client_interceptor crpc_tracing_client(void) {
  return crpc_tracing_client_with(NULL);
}
