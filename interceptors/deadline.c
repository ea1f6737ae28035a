/*
 * deadline.c - default deadline and server-side cap (see deadline.h).
 */
#include "interceptors/deadline.h"

/* The timeout a call should have given the time it has left, or
 * CRPC_NO_DEADLINE to leave it alone. */
static int64_t wanted_timeout(const crpc_deadline_options *o,
                              int64_t remaining) {
  int64_t t = CRPC_NO_DEADLINE;
  if (remaining == CRPC_NO_DEADLINE && o->default_timeout_ns > 0) {
    t = o->default_timeout_ns;
  }
  int64_t have = t != CRPC_NO_DEADLINE ? t : remaining;
  if (o->max_timeout_ns > 0 && have > o->max_timeout_ns) {
    t = o->max_timeout_ns;
  }
  return t;
}

static crpc_code server_call(crpc_server_call *call, const crpc_ctx *ctx,
                             const crpc_server_call_info *info,
                             crpc_server_next *next, void *user_data) {
  (void)call;
  (void)info;
  int64_t t = wanted_timeout(user_data, crpc_ctx_remaining(ctx));
  if (t == CRPC_NO_DEADLINE) return crpc_server_next_call(next, ctx);
  crpc_ctx *d = crpc_ctx_with_timeout(ctx, t);
  if (d == NULL) return CRPC_RESOURCE_EXHAUSTED;
  crpc_code code = crpc_server_next_call(next, d);
  crpc_ctx_release(d);
  return code;
}

static crpc_code client_start(const crpc_ctx *ctx, crpc_client_call_info *info,
                              crpc_metadata *md, crpc_client_next *next,
                              void *user_data) {
  int64_t t = wanted_timeout(user_data, crpc_ctx_remaining(ctx));
  if (t != CRPC_NO_DEADLINE) {
    int64_t d = crpc_now_ns() + t;
    if (d < info->deadline_ns) info->deadline_ns = d;
  }
  return crpc_client_next_start(next, ctx, md);
}

crpc_server_interceptor crpc_deadline_server(const crpc_deadline_options *o) {
  crpc_server_interceptor i = {.name = "deadline",
                               .call = server_call,
                               .user_data = (void *)o};
  return i;
}

crpc_client_interceptor crpc_deadline_client(const crpc_deadline_options *o) {
  crpc_client_interceptor i = {.name = "deadline",
                               .start = client_start,
                               .user_data = (void *)o};
  return i;
}
