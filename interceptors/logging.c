/*
 * logging.c - one structured line per server call (see logging.h).
 */
#include "interceptors/logging.h"

#include <stdio.h>
#include <string.h>

/* "peer reset" -> "peer_reset": values without spaces. */
static void underscore(char *s) {
  for (; *s; s++) {
    if (*s == ' ') *s = '_';
  }
}

static crpc_code server_call(crpc_server_call *call, const crpc_ctx *ctx,
                             const crpc_server_call_info *info,
                             crpc_server_next *next, void *user_data) {
  (void)call;
  const crpc_logging_options *o = user_data;
  crpc_code code = crpc_server_next_call(next, ctx);
  int64_t dur = crpc_now_ns() - info->start_ns;
  const crpc_cause *cause = crpc_ctx_cause(ctx);
  crpc_code status = cause != NULL ? cause->code : code;
  char origin[32] = "none";
  char msg[CRPC_CAUSE_MESSAGE_MAX] = "";
  if (cause != NULL) {
    snprintf(origin, sizeof(origin), "%s", crpc_origin_name(cause->origin));
    underscore(origin);
    /* Quotes in the message would break the format: make them '. */
    snprintf(msg, sizeof(msg), "%s", cause->message);
    for (char *p = msg; *p; p++) {
      if (*p == '"') *p = '\'';
    }
  }
  char line[512];
  snprintf(line, sizeof(line),
           "crpc call method=%s peer=%s status=%s duration_us=%lld "
           "cancel_code=%s cancel_origin=%s cancel_msg=\"%s\"",
           info->method, info->peer, crpc_code_name(status),
           (long long)(dur / 1000),
           cause != NULL ? crpc_code_name(cause->code) : "none", origin, msg);
  if (o != NULL && o->sink != NULL) {
    o->sink(o->sink_data, line);
  } else {
    fprintf(stderr, "%s\n", line);
  }
  return code;
}

crpc_server_interceptor crpc_logging_server(const crpc_logging_options *o) {
  crpc_server_interceptor i = {.name = "logging",
                               .call = server_call,
                               .user_data = (void *)o};
  return i;
}
