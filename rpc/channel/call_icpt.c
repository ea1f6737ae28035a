/*
 * call_icpt.c - the public client call functions: straight to the cores in
 * call.c when the channel has no interceptor (one pointer test), else
 * through the chain (rpc/intercept).
 */
#include <stdio.h>
#include <stdlib.h>

#include "crpc/interceptor.h"
#include "rpc/channel/channel_internal.h"
#include "rpc/intercept/chain.h"
#include "rpc/log/log.h"

typedef struct start_env {
  crpc_channel *ch;
  const char *encoding;
} start_env;

static crpc_code term_start(void *env, const crpc_ctx *ctx,
                            const crpc_client_call_info *info,
                            const crpc_metadata *md, crpc_call **out) {
  start_env *e = env;
  return ccall_start_core(e->ch, ctx, info->method, md, e->encoding,
                          info->deadline_ns, out);
}

static crpc_code term_send(crpc_call *call, const void *data, size_t len) {
  return ccall_send_core(call, data, len, 0);
}

static const icpt_client_ops kOps = {
    .start = term_start,
    .send = term_send,
    .recv = ccall_recv_core,
    .finish = ccall_finish_core,
    .free_call = crpc_call_free,
};

crpc_code crpc_call_start_compressed(crpc_channel *ch, const crpc_ctx *ctx,
                                     const char *method,
                                     const crpc_metadata *metadata,
                                     const char *encoding, crpc_call **out) {
  const icpt_client_chain *c = ch->icpt;
  if (c == NULL) {
    return ccall_start_core(ch, ctx, method, metadata, encoding,
                            CRPC_NO_DEADLINE, out);
  }
  *out = NULL;
  if (ctx == NULL) {
    crpc_log_fatal(CRPC_LOG_SUB_CALL,
                   "crpc_call_start: ctx is required (NULL given)");
    abort();
  }
  if (method == NULL || method[0] != '/') return CRPC_INVALID_ARGUMENT;
  start_env env = {.ch = ch, .encoding = encoding};
  crpc_client_call_info info = {.method = method,
                                .target = ch->authority,
                                .deadline_ns = CRPC_NO_DEADLINE};
  return icpt_client_start(c, &kOps, &env, ctx, &info, metadata, out);
}

crpc_code crpc_call_send_flags(crpc_call *call, const void *data, size_t len,
                               unsigned flags) {
  const icpt_client_chain *c = call->ch->icpt;
  /* Flags (compression opt-out) go straight to the core; the links see
   * the plain bytes either way. */
  if (c == NULL || !c->any_send || flags != 0) {
    return ccall_send_core(call, data, len, flags);
  }
  return icpt_client_send(c, &kOps, call, data, len);
}

crpc_code crpc_call_send_buf(crpc_call *call, crpc_buf *buf, unsigned flags) {
  const icpt_client_chain *c = call->ch->icpt;
  if (c != NULL && c->any_send && flags == 0) {
    /* The links see (and may replace) a plain view of the bytes. */
    crpc_code code = icpt_client_send(c, &kOps, call, crpc_buf_data(buf),
                                      crpc_buf_len(buf));
    crpc_buf_unref(buf);
    return code;
  }
  if (call->async) { /* would block a loop */
    crpc_buf_unref(buf);
    return CRPC_FAILED_PRECONDITION;
  }
  crpc_code code = ccall_send_buf_queue(call, buf, flags, true);
  if (code == CRPC_OK) ccall_kick(call);
  return code;
}

crpc_code crpc_call_recv(crpc_call *call, crpc_message *msg) {
  const icpt_client_chain *c = call->ch->icpt;
  if (c == NULL || !c->any_recv) return ccall_recv_core(call, msg);
  return icpt_client_recv(c, &kOps, call, msg);
}

crpc_code crpc_call_finish(crpc_call *call, crpc_status *status) {
  const icpt_client_chain *c = call->ch->icpt;
  if (c == NULL || !c->any_finish) return ccall_finish_core(call, status);
  return icpt_client_finish(c, &kOps, call, status);
}

crpc_code crpc_channel_add_interceptor(crpc_channel *ch,
                                       const crpc_client_interceptor *icpt) {
  if (ch == NULL || icpt == NULL) return CRPC_INVALID_ARGUMENT;
  pthread_mutex_lock(&ch->mu);
  bool used = ch->homes[0].started || ch->live_calls > 0;
  pthread_mutex_unlock(&ch->mu);
  if (used) return CRPC_FAILED_PRECONDITION;
  return icpt_client_chain_add(&ch->icpt, icpt);
}

const char *crpc_call_method(const crpc_call *call) { return call->path; }
