/*
 * server_icpt.c - where the server meets its interceptor chain: the
 * handler-facing recv/send (straight to the core when no chain has such a
 * hook), the chain around the handler, and the rule that a ctx a link
 * derives and passes on ends the whole call when it ends.
 */
#include <sched.h>
#include <stdatomic.h>

#include "rpc/intercept/chain.h"
#include "rpc/server/server_internal.h"

static const crpc_ctx *handler_ctx(crpc_server_call *call) {
  return call->hctx != NULL ? call->hctx : call->ctx;
}

static crpc_code term_send(crpc_server_call *call, const void *data,
                           size_t len) {
  return scall_send_core(call, data, len, call->icpt_send_flags);
}

static void term_fail(crpc_server_call *call, const char *msg) {
  crpc_server_call_error(call, CRPC_INTERNAL, "%s", msg);
}

/* A ctx derived by a link (a tighter deadline, a value) ended: end the call
 * with its cause, so that the status goes out and sends fail at once. */
typedef struct inner_watch {
  scall *call;
  atomic_bool done;
} inner_watch;

static void on_inner_cancel(void *arg, const crpc_cause *cause) {
  inner_watch *w = arg;
  scall *call = w->call;
  /* The call ctx itself ending cancels the inner one: nothing to do. */
  if (!crpc_ctx_is_done(call->ctx)) {
    crpc_ctx_cancel_cause(call->ctx, cause->code, cause->origin, "%s",
                          cause->message);
  }
  atomic_store(&w->done, true);
}

static crpc_code term_call(crpc_server_call *call, const crpc_ctx *ctx) {
  inner_watch w = {.call = call};
  crpc_on_cancel reg;
  bool registered = false;
  call->hctx = ctx;
  if (ctx != call->ctx) {
    registered = crpc_ctx_on_cancel(ctx, &reg, on_inner_cancel, &w);
    if (!registered) on_inner_cancel(&w, crpc_ctx_cause(ctx));
  }
  crpc_code code = call->method->fn(call, ctx, call->method->user_data);
  crpc_on_cancel_state st =
      registered ? crpc_ctx_remove_on_cancel(&reg) : CRPC_ON_CANCEL_RAN;
  if (st == CRPC_ON_CANCEL_RUNNING) {
    while (!atomic_load(&w.done)) sched_yield(); /* a few instructions */
  } else if (st == CRPC_ON_CANCEL_REMOVED && crpc_ctx_is_done(ctx)) {
    /* The handler woke on the inner ctx before its callbacks ran: end the
     * call now, so the outer links already see the cause. */
    on_inner_cancel(&w, crpc_ctx_cause(ctx));
  }
  call->hctx = NULL; /* the link releases it once we return */
  return code;
}

static const icpt_server_ops kOps = {
    .call = term_call,
    .recv = scall_recv_core,
    .send = term_send,
    .fail = term_fail,
    .handler_ctx = handler_ctx,
};

crpc_code scall_run_chain(scall *call) {
  crpc_server_call_info info = {.method = call->path,
                                .peer = call->peer->addr,
                                .kind = call->method->kind,
                                .start_ns = crpc_now_ns()};
  return icpt_server_run(call->server->icpt, &kOps, call, call->ctx, &info);
}

crpc_code crpc_server_call_recv(crpc_server_call *call, crpc_message *msg) {
  const icpt_server_chain *c = call->server->icpt;
  if (c == NULL || !c->any_recv) return scall_recv_core(call, msg);
  return icpt_server_recv(c, &kOps, call, call->ctx, msg);
}

crpc_code crpc_server_call_send_flags(crpc_server_call *call, const void *data,
                                      size_t len, unsigned flags) {
  const icpt_server_chain *c = call->server->icpt;
  crpc_code code;
  if (c == NULL || !c->any_send) {
    code = scall_send_core(call, data, len, flags);
  } else {
    call->icpt_send_flags = flags;
    code = icpt_server_send(c, &kOps, call, call->ctx, data, len);
  }
  if (code != CRPC_OK) scall_note_send(call, code);
  return code;
}

crpc_code crpc_server_call_send_buf(crpc_server_call *call, crpc_buf *buf,
                                    unsigned flags) {
  const icpt_server_chain *c = call->server->icpt;
  if (c != NULL && c->any_send) {
    /* The links see (and may replace) a plain view of the bytes. */
    crpc_code code = crpc_server_call_send_flags(call, crpc_buf_data(buf),
                                                 crpc_buf_len(buf), flags);
    crpc_buf_unref(buf);
    return code;
  }
  crpc_h2_chunk *chunk;
  crpc_code code = scall_frame_buf(call, buf, flags, &chunk);
  if (code == CRPC_OK) code = scall_send_chunk(call, chunk);
  if (code != CRPC_OK) scall_note_send(call, code);
  return code;
}

crpc_code crpc_server_add_interceptor(crpc_server *server,
                                      const crpc_server_interceptor *icpt) {
  if (server == NULL || icpt == NULL) return CRPC_INVALID_ARGUMENT;
  if (server->started) return CRPC_FAILED_PRECONDITION;
  return icpt_server_chain_add(&server->icpt, icpt);
}
