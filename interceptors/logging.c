/*
 * logging.c - one structured line per server call and per client call
 * (see logging.h).
 */
#include "interceptors/logging.h"

#include <stdio.h>
#include <string.h>

#include "interceptors/internal/calltab.h"
#include "interceptors/tracing.h"

#define LINE_MAX_LEN 1024

/* "peer reset" -> "peer_reset": values without spaces. */
static void underscore(char *s) {
  for (; *s; s++) {
    if (*s == ' ') *s = '_';
  }
}

/* Quotes in a message would break the format: make them '. */
static void unquote(char *s) {
  for (; *s; s++) {
    if (*s == '"') *s = '\'';
  }
}

typedef struct cancel_fields {
  const char *code;
  char origin[32];
  char msg[CRPC_CAUSE_MESSAGE_MAX];
} cancel_fields;

static void cancel_fields_of(const crpc_cause *cause, cancel_fields *f) {
  f->code = "none";
  snprintf(f->origin, sizeof(f->origin), "none");
  f->msg[0] = '\0';
  if (cause == NULL) return;
  f->code = crpc_code_name(cause->code);
  snprintf(f->origin, sizeof(f->origin), "%s", crpc_origin_name(cause->origin));
  underscore(f->origin);
  snprintf(f->msg, sizeof(f->msg), "%s", cause->message);
  unquote(f->msg);
}

/* " trace_id=... span_id=..." if ctx carries a trace, else "". */
static void trace_fields(const crpc_ctx *ctx, char *out, size_t cap) {
  const char *id = crpc_trace_id(ctx);
  out[0] = '\0';
  if (id != NULL) {
    snprintf(out, cap, " trace_id=%s span_id=%s", id, crpc_trace_span_id(ctx));
  }
}

static void emit(const crpc_logging_options *o, const char *line) {
  if (o != NULL && o->sink != NULL) {
    o->sink(o->sink_data, line);
  } else {
    fprintf(stderr, "%s\n", line);
  }
}

/* ---- server ----------------------------------------------------------------
 */

static crpc_code server_call(crpc_server_call *call, const crpc_ctx *ctx,
                             const crpc_server_call_info *info,
                             crpc_server_next *next, void *user_data) {
  (void)call;
  const crpc_logging_options *o = user_data;
  crpc_code code = crpc_server_next_call(next, ctx);
  int64_t dur = crpc_now_ns() - info->start_ns;
  const crpc_cause *cause = crpc_ctx_cause(ctx);
  crpc_code status = cause != NULL ? cause->code : code;
  cancel_fields f;
  cancel_fields_of(cause, &f);
  char trace[128];
  trace_fields(ctx, trace, sizeof(trace));
  char line[LINE_MAX_LEN];
  snprintf(line, sizeof(line),
           "crpc call method=%s peer=%s status=%s duration_us=%lld "
           "cancel_code=%s cancel_origin=%s cancel_msg=\"%s\"%s",
           info->method, info->peer, crpc_code_name(status),
           (long long)(dur / 1000), f.code, f.origin, f.msg, trace);
  emit(o, line);
  return code;
}

crpc_server_interceptor crpc_logging_server(const crpc_logging_options *o) {
  crpc_server_interceptor i = {
      .name = "logging", .call = server_call, .user_data = (void *)o};
  return i;
}

/* ---- client ----------------------------------------------------------------
 */

/* Records in the call table are keyed by (this address, user_data):
 * several logging links never share one. */
static const char client_kind = 0;

static const void *owner_of(const void *user_data) {
  /* opts may be NULL; the key must still differ from other kinds'. */
  return user_data != NULL ? user_data : (const void *)&client_kind;
}

static void client_line(const crpc_logging_options *o, const char *method,
                        const char *target, crpc_code code,
                        const char *status_msg, int64_t dur_ns,
                        const crpc_ctx *ctx) {
  cancel_fields f;
  crpc_cause cause;
  cancel_fields_of(icpt_caller_cause(ctx, code, &cause) ? &cause : NULL, &f);
  char msg[256];
  snprintf(msg, sizeof(msg), "%s", status_msg != NULL ? status_msg : "");
  unquote(msg);
  for (char *p = msg; *p; p++) {
    if (*p == '\n' || *p == '\r') *p = ' ';
  }
  char trace[128];
  trace_fields(ctx, trace, sizeof(trace));
  char line[LINE_MAX_LEN];
  snprintf(line, sizeof(line),
           "crpc client call method=%s target=%s status=%s duration_us=%lld "
           "cancel_code=%s cancel_origin=%s cancel_msg=\"%s\" msg=\"%s\"%s",
           method, target, crpc_code_name(code), (long long)(dur_ns / 1000),
           f.code, f.origin, f.msg, msg, trace);
  emit(o, line);
}

static crpc_code client_start(const crpc_ctx *ctx, crpc_client_call_info *info,
                              crpc_metadata *md, crpc_client_next *next,
                              void *user_data) {
  icpt_call_rec rec = {.start_ns = crpc_now_ns(), .ctx = ctx};
  snprintf(rec.target, sizeof(rec.target), "%s",
           info->target != NULL ? info->target : "");
  crpc_code code = crpc_client_next_start(next, ctx, md);
  crpc_call *call = code == CRPC_OK ? crpc_client_next_call(next) : NULL;
  if (call != NULL) {
    icpt_calltab_put(owner_of(user_data), call, &rec);
  } else if (code != CRPC_OK) {
    /* No call: this is its end. */
    client_line(user_data, info->method, rec.target, code, NULL,
                crpc_now_ns() - rec.start_ns, ctx);
  }
  return code;
}

static crpc_code client_finish(crpc_call *call, crpc_status *status,
                               crpc_client_next *next, void *user_data) {
  crpc_code code = crpc_client_next_finish(next, status);
  icpt_call_rec rec;
  if (icpt_calltab_take(owner_of(user_data), call, &rec)) {
    client_line(user_data, crpc_call_method(call), rec.target, code,
                status->message, crpc_now_ns() - rec.start_ns, rec.ctx);
  }
  /* A call whose start this link did not see (a record evicted) is not
   * logged: neither its duration nor its ctx is known. */
  return code;
}

crpc_client_interceptor crpc_logging_client(const crpc_logging_options *o) {
  crpc_client_interceptor i = {.name = "logging",
                               .start = client_start,
                               .finish = client_finish,
                               .user_data = (void *)o};
  return i;
}
