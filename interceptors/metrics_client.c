/*
 * metrics_client.c - the client side of the metrics interceptor (see
 * metrics.h): counts and times each client call into the same
 * crpc_metrics as the server side.
 */
#include "interceptors/internal/calltab.h"
#include "interceptors/internal/metrics_internal.h"
#include "interceptors/metrics.h"

/* Records in the call table are keyed by (crpc_metrics address, call):
 * a logging link's key is its options' address, another object. */

static crpc_code client_start(const crpc_ctx *ctx, crpc_client_call_info *info,
                              crpc_metadata *md, crpc_client_next *next,
                              void *user_data) {
  crpc_metrics *m = user_data;
  icpt_call_rec rec = {.start_ns = crpc_now_ns(), .ctx = ctx};
  crpc_code code = crpc_client_next_start(next, ctx, md);
  crpc_call *call = code == CRPC_OK ? crpc_client_next_call(next) : NULL;
  if (call != NULL) {
    icpt_calltab_put(m, call, &rec);
  } else if (code != CRPC_OK) {
    /* No call: this is its end. */
    crpc_cause cause;
    bool by_caller = icpt_caller_cause(ctx, code, &cause);
    icpt_metrics_client_record(m, info->method, code,
                               crpc_now_ns() - rec.start_ns,
                               by_caller ? &cause : NULL);
  }
  return code;
}

static crpc_code client_finish(crpc_call *call, crpc_status *status,
                               crpc_client_next *next, void *user_data) {
  crpc_metrics *m = user_data;
  crpc_code code = crpc_client_next_finish(next, status);
  icpt_call_rec rec;
  if (icpt_calltab_take(m, call, &rec)) {
    crpc_cause cause;
    bool by_caller = icpt_caller_cause(rec.ctx, code, &cause);
    icpt_metrics_client_record(m, crpc_call_method(call), code,
                               crpc_now_ns() - rec.start_ns,
                               by_caller ? &cause : NULL);
  }
  return code;
}

crpc_client_interceptor crpc_metrics_client(crpc_metrics *m) {
  crpc_client_interceptor i = {.name = "metrics",
                               .start = client_start,
                               .finish = client_finish,
                               .user_data = m};
  return i;
}
