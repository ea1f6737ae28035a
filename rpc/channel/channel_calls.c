/*
 * channel_calls.c - the channel's live-call registry (crpc/calls.h).
 *
 * Each home's loop lists the calls that live there (home->live, through
 * ccall.live_next/prev) and only that loop's thread touches its list; a
 * call moved to another home by a resend leaves its old list there and
 * joins the new one at its next kick (CCALL_LIVE_MOVING: a reader asking
 * in between misses it, as it would a call not started yet). A call gets its id on
 * the thread that starts it (one atomic add, so crpc_call_id works at
 * once), is listed at its first kick, and leaves once it can do nothing
 * more on the wire: no stream open, and its status settled or its ctx
 * done (a done ctx is never submitted or resent again). Every kick and
 * every stream close re-checks that (ccall_live_update); the ctx's
 * on_cancel always posts one more kick, so a call ended off the loop
 * (a failed resend) still leaves, at the latest when crpc_call_free
 * cancels its ctx. Readers post a calls_req to every started home's loop
 * (rpc/calls).
 */
#include <string.h>

#include "rpc/calls/calls_internal.h"
#include "rpc/channel/channel_internal.h"

/* ---- what a call looks like (loop thread) -------------------------------- */

static void fill_info(ccall *call, int64_t now, crpc_call_info *info) {
  memset(info, 0, sizeof(*info));
  info->id = call->live_id;
  info->client = true;
  info->method = call->path;
  info->peer = call->ch->authority;
  info->started_ns = call->live_since;
  info->age_ns = now - call->live_since;
  info->deadline_left_ns = crpc_ctx_remaining(call->ctx);
  const crpc_cause *cause = crpc_ctx_cause(call->ctx);
  pthread_mutex_lock(&call->mu);
  info->messages_in = call->in.total;
  info->bytes_in = call->in.fed;
  info->messages_out = call->out.pushed;
  info->bytes_out = call->out.taken;
  bool ended = call->ended;
  crpc_code code = call->code;
  bool half_closed = call->send_closed;
  pthread_mutex_unlock(&call->mu);
  if (cause != NULL) {
    info->done = true;
    info->cause = *cause;
    if (call->live_done_ns == 0) call->live_done_ns = now;
    info->cancel_event_ns = call->live_event_ns;
    info->ctx_done_ns = call->live_done_ns;
  }
  bool moved = info->messages_in > 0 || info->messages_out > 0;
  info->state = calls_state(ended, cause != NULL, half_closed, moved);
  if (ended) info->status = code;
}

static void tell(ccall *call, crpc_call_event event) {
  crpc_call_info info;
  fill_info(call, crpc_now_ns(), &info);
  call->ch->call_observer(event, &info, call->ch->call_observer_data);
}

/* ---- the hooks in call.c and call_wire.c ---------------------------------- */

void ccall_live_init(ccall *call) {
  call->live_id = atomic_fetch_add_explicit(&call->ch->last_call_id, 1,
                                            memory_order_relaxed) +
                  1;
  call->live_since = crpc_now_ns();
}

/* Onto its home's list. */
static void link_live(ccall *call) {
  chome *home = ccall_home(call);
  call->live_state = CCALL_LIVE_LISTED;
  call->live_prev = NULL;
  call->live_next = home->live;
  if (home->live != NULL) home->live->live_prev = call;
  home->live = call;
}

/* Off its home's list. */
static void unlink_live(ccall *call) {
  if (call->live_prev != NULL) {
    call->live_prev->live_next = call->live_next;
  } else {
    ccall_home(call)->live = call->live_next;
  }
  if (call->live_next != NULL) call->live_next->live_prev = call->live_prev;
  call->live_next = call->live_prev = NULL;
}

void ccall_live_unlist_for_move(ccall *call) {
  if (call->live_state != CCALL_LIVE_LISTED) return;
  unlink_live(call);
  call->live_state = CCALL_LIVE_MOVING;
}

void ccall_live_update(ccall *call) {
  crpc_channel *ch = call->ch;
  if (call->live_state == CCALL_LIVE_MOVING) {
    link_live(call); /* on its new home: told STARTED already */
  } else if (call->live_state == CCALL_LIVE_NEW) {
    link_live(call);
    ccall_cz_started(call); /* channelz */
    if (ch->call_observer != NULL) tell(call, CRPC_CALL_STARTED);
  }
  if (call->live_state != CCALL_LIVE_LISTED) return;
  bool done = crpc_ctx_is_done(call->ctx);
  if (done && !call->live_done_told) {
    call->live_done_told = true;
    if (call->live_done_ns == 0) call->live_done_ns = crpc_now_ns();
    if (ch->call_observer != NULL) tell(call, CRPC_CALL_CTX_DONE);
  }
  if (call->stream_open) return; /* its close calls us again */
  if (!done) {
    pthread_mutex_lock(&call->mu);
    bool ended = call->ended;
    pthread_mutex_unlock(&call->mu);
    if (!ended) return; /* waiting for a connection, or to be resent */
  }
  unlink_live(call);
  call->live_state = CCALL_LIVE_GONE;
  ccall_cz_ended(call); /* channelz */
  if (ch->call_observer != NULL) tell(call, CRPC_CALL_ENDED);
}

/* ---- visits (on the loop) ------------------------------------------------- */

static void list_visit(calls_req *req, void *arg) {
  chome *home = arg;
  int64_t now = crpc_now_ns();
  for (ccall *call = home->live; call != NULL; call = call->live_next) {
    crpc_call_info info;
    fill_info(call, now, &info);
    calls_req_add(req, &info);
  }
}

/* The call's ctx ends with origin admin; its on_cancel kick resets the
 * stream and settles the status from the cause, as a user's cancel. */
static void cancel_visit(calls_req *req, void *arg) {
  chome *home = arg;
  for (ccall *call = home->live; call != NULL; call = call->live_next) {
    if (call->live_id != req->id) continue;
    int64_t now = crpc_now_ns();
    bool ended = crpc_ctx_cancel_cause(call->ctx, CRPC_CANCELLED,
                                       CRPC_ORIGIN_ADMIN, "%s", req->message);
    if (ended) call->live_event_ns = call->live_done_ns = now;
    calls_req_set_code(req, ended ? CRPC_OK : CRPC_FAILED_PRECONDITION);
    return;
  }
}

static crpc_loop *loop_of(void *arg) { return ((chome *)arg)->loop; }

/* A request to every started home's loop (none while none has started: no
 * call has been listed yet), posted; the caller still holds its reference.
 * NULL if out of memory. A home that starts meanwhile has no listed call
 * that started before this. */
static calls_req *ask(crpc_channel *ch, calls_op op, uint64_t id,
                      const char *reason, crpc_calls_fn list_done,
                      crpc_call_cancel_fn cancel_done, void *user_data) {
  pthread_mutex_lock(&ch->mu);
  int n = 0;
  for (int i = 0; i < ch->n_homes; i++) n += ch->homes[i].started;
  pthread_mutex_unlock(&ch->mu);
  calls_req *req = calls_req_new(op, op == CALLS_LIST ? list_visit : cancel_visit,
                                 n, id, reason);
  if (req == NULL) return NULL;
  req->list_done = list_done;
  req->cancel_done = cancel_done;
  req->user_data = user_data;
  /* Homes start in order of need, never stop before the channel goes:
   * the first n are the started ones. */
  for (int i = 0; i < n; i++) req->visits[i].arg = &ch->homes[i];
  calls_req_post(req, loop_of, NULL, NULL);
  return req;
}

/* Whether the calling thread runs one of the channel's loops. */
static bool on_a_home_loop(crpc_channel *ch) {
  bool on = false;
  pthread_mutex_lock(&ch->mu);
  for (int i = 0; i < ch->n_homes && ch->homes[i].started; i++) {
    on |= crpc_loop_in_loop_thread(ch->homes[i].loop);
  }
  pthread_mutex_unlock(&ch->mu);
  return on;
}

static crpc_code ask_and_wait(crpc_channel *ch, const crpc_ctx *ctx,
                              calls_op op, uint64_t id, const char *reason,
                              crpc_call_info **calls, size_t *count) {
  if (on_a_home_loop(ch)) return CRPC_FAILED_PRECONDITION;
  calls_req *req = ask(ch, op, id, reason, NULL, NULL, NULL);
  if (req == NULL) return CRPC_RESOURCE_EXHAUSTED;
  crpc_code code = calls_req_wait(req, ctx);
  if (code == CRPC_OK) code = calls_req_take(req, calls, count);
  calls_req_unref(req);
  return code;
}

/* ---- public --------------------------------------------------------------- */

crpc_code crpc_channel_calls(crpc_channel *channel, const crpc_ctx *ctx,
                             crpc_call_info **calls, size_t *count) {
  calls_require_ctx(ctx, "crpc_channel_calls");
  *calls = NULL;
  *count = 0;
  return ask_and_wait(channel, ctx, CALLS_LIST, 0, NULL, calls, count);
}

crpc_code crpc_channel_calls_async(crpc_channel *channel, crpc_calls_fn done,
                                   void *user_data) {
  calls_req *req = ask(channel, CALLS_LIST, 0, NULL, done, NULL, user_data);
  if (req == NULL) {
    done(CRPC_RESOURCE_EXHAUSTED, NULL, 0, user_data);
    return CRPC_OK;
  }
  calls_req_unref(req);
  return CRPC_OK;
}

crpc_code crpc_channel_calls_dump(crpc_channel *channel, const crpc_ctx *ctx,
                                  FILE *out) {
  crpc_call_info *calls;
  size_t count;
  crpc_code code = crpc_channel_calls(channel, ctx, &calls, &count);
  if (code == CRPC_OK) crpc_calls_write(out, calls, count);
  crpc_calls_free(calls);
  return code;
}

crpc_code crpc_channel_cancel_call(crpc_channel *channel, const crpc_ctx *ctx,
                                   uint64_t id, const char *reason) {
  calls_require_ctx(ctx, "crpc_channel_cancel_call");
  return ask_and_wait(channel, ctx, CALLS_CANCEL, id, reason, NULL, NULL);
}

static void ignore_cancel(crpc_code code, void *user_data) {
  (void)code;
  (void)user_data;
}

crpc_code crpc_channel_cancel_call_async(crpc_channel *channel, uint64_t id,
                                         const char *reason,
                                         crpc_call_cancel_fn done,
                                         void *user_data) {
  if (done == NULL) done = ignore_cancel;
  calls_req *req =
      ask(channel, CALLS_CANCEL, id, reason, NULL, done, user_data);
  if (req == NULL) {
    done(CRPC_RESOURCE_EXHAUSTED, user_data);
    return CRPC_OK;
  }
  calls_req_unref(req);
  return CRPC_OK;
}

uint64_t crpc_call_id(const crpc_call *call) { return call->live_id; }

crpc_code crpc_channel_set_call_observer(crpc_channel *channel,
                                         crpc_call_observer_fn fn,
                                         void *user_data) {
  pthread_mutex_lock(&channel->mu);
  bool started = channel->homes[0].started;
  if (!started) {
    channel->call_observer = fn;
    channel->call_observer_data = user_data;
  }
  pthread_mutex_unlock(&channel->mu);
  return started ? CRPC_FAILED_PRECONDITION : CRPC_OK;
}
