/*
 * server_calls.c - the server's live-call registry (crpc/calls.h).
 *
 * Each server_loop lists its dispatched calls whose stream is open
 * (sl->live, linked through scall.live_next/prev), and only its thread
 * touches the list: scall_dispatch links a call, scall_on_close unlinks
 * it, and every kick checks once whether the ctx has ended. Readers post
 * a calls_req to every loop (rpc/calls) and each loop copies its calls
 * out, taking each call's mutex only to read the fields handler threads
 * also write.
 *
 * Shutdown: crpc_server_shutdown stops the loops once no call struct is
 * left (live_structs 0). A request in flight counts as one (hold_loops),
 * so the loops it was posted to run until they have answered it; once
 * shutdown has drained every call there is nothing to ask and the answer
 * is an empty list, given at once.
 */
#include <stdlib.h>
#include <string.h>

#include "rpc/calls/calls_internal.h"
#include "rpc/server/server_internal.h"

/* ---- what a call looks like (its loop thread) ---------------------------- */

/* Fills info from the call; returns whether its final status is decided
 * (then info->status is it). */
static bool fill_info(scall *call, int64_t now, crpc_call_info *info) {
  memset(info, 0, sizeof(*info));
  info->id = call->live_id;
  info->method = call->path;
  info->peer = call->peer->addr;
  info->started_ns = call->live_since;
  info->age_ns = now - call->live_since;
  info->deadline_left_ns = crpc_ctx_remaining(call->ctx);
  const crpc_cause *cause = crpc_ctx_cause(call->ctx);
  pthread_mutex_lock(&call->mu);
  info->messages_in = call->in.total;
  info->bytes_in = call->in.fed;
  info->messages_out = call->out.pushed;
  info->bytes_out = call->out.taken;
  bool finished = call->finished;
  /* A handler that has returned (or a reactor that finished) has decided
   * even if the loop has not yet turned that into the final status. */
  bool decided = finished || call->handler_done;
  crpc_code final = call->final_code;
  bool half_closed = call->recv_end;
  int64_t event_ns = call->cancel_event_ns;
  int64_t done_ns = call->cancel_ctx_done_ns;
  pthread_mutex_unlock(&call->mu);
  if (cause != NULL) {
    info->done = true;
    info->cause = *cause;
    if (call->live_done_ns == 0) call->live_done_ns = now;
    info->cancel_event_ns = event_ns;
    info->ctx_done_ns = event_ns != 0 ? done_ns : call->live_done_ns;
  }
  bool moved = info->messages_in > 0 || info->messages_out > 0;
  info->state = calls_state(decided, cause != NULL, half_closed, moved);
  if (finished) info->status = final;
  return finished;
}

static void tell(scall *call, crpc_call_event event) {
  crpc_call_info info;
  bool finished = fill_info(call, crpc_now_ns(), &info);
  /* A stream reset before the status went out ends with the cause. */
  if (event == CRPC_CALL_ENDED && !finished && info.done) {
    info.status = info.cause.code;
  }
  call->server->call_observer(event, &info, call->server->call_observer_data);
}

/* ---- the hooks in server_call.c ------------------------------------------ */

void scall_live_link(scall *call) {
  crpc_server *s = call->server;
  server_loop *sl = call->sl;
  call->live_id = atomic_fetch_add_explicit(&s->last_call_id, 1,
                                            memory_order_relaxed) +
                  1;
  call->live_since = crpc_loop_now(sl->loop);
  call->live_prev = NULL;
  call->live_next = sl->live;
  if (sl->live != NULL) sl->live->live_prev = call;
  sl->live = call;
  call->live_linked = true;
  if (s->call_observer != NULL) tell(call, CRPC_CALL_STARTED);
}

static void ctx_done(scall *call) {
  call->live_done_told = true;
  if (call->live_done_ns == 0) {
    call->live_done_ns = crpc_loop_now(call->sl->loop);
  }
  if (call->server->call_observer != NULL) tell(call, CRPC_CALL_CTX_DONE);
}

void scall_live_kick(scall *call) {
  if (call->live_linked && !call->live_done_told &&
      crpc_ctx_is_done(call->ctx)) {
    ctx_done(call);
  }
}

void scall_live_unlink(scall *call) {
  if (!call->live_linked) return;
  if (!call->live_done_told && crpc_ctx_is_done(call->ctx)) ctx_done(call);
  if (call->live_prev != NULL) {
    call->live_prev->live_next = call->live_next;
  } else {
    call->sl->live = call->live_next;
  }
  if (call->live_next != NULL) call->live_next->live_prev = call->live_prev;
  call->live_next = call->live_prev = NULL;
  call->live_linked = false;
  if (call->server->call_observer != NULL) tell(call, CRPC_CALL_ENDED);
}

/* ---- visits (on each loop) ------------------------------------------------ */

static void list_visit(calls_req *req, void *arg) {
  server_loop *sl = arg;
  int64_t now = crpc_now_ns();
  for (scall *call = sl->live; call != NULL; call = call->live_next) {
    crpc_call_info info;
    fill_info(call, now, &info);
    calls_req_add(req, &info);
  }
}

/* Ends the call as a client's RST_STREAM would, but with origin admin:
 * the event is noted first (cancel stats), then the ctx is cancelled on
 * this loop, whose on_cancel kick sends the status. */
static void cancel_visit(calls_req *req, void *arg) {
  server_loop *sl = arg;
  for (scall *call = sl->live; call != NULL; call = call->live_next) {
    if (call->live_id != req->id) continue;
    pthread_mutex_lock(&call->mu);
    scall_note_cancel_locked(call, crpc_now_ns());
    pthread_mutex_unlock(&call->mu);
    bool ended = crpc_ctx_cancel_cause(call->ctx, CRPC_CANCELLED,
                                       CRPC_ORIGIN_ADMIN, "%s", req->message);
    calls_req_set_code(req, ended ? CRPC_OK : CRPC_FAILED_PRECONDITION);
    return;
  }
}

static crpc_loop *loop_of(void *arg) { return ((server_loop *)arg)->loop; }

static void release_loops(void *owner) {
  crpc_server *s = owner;
  server_count(s, &s->live_structs, -1);
}

/* Keeps the loops running until the request is answered (see the top);
 * false if there is nothing to ask: not started, or shutdown has ended
 * every call. Taken under mu, where shutdown tests live_structs before it
 * stops the loops, so it cannot slip in after that test. */
static bool hold_loops(crpc_server *s) {
  if (!s->started) return false;
  pthread_mutex_lock(&s->mu);
  bool run = !atomic_load(&s->draining) || atomic_load(&s->live_structs) > 0;
  if (run) atomic_fetch_add(&s->live_structs, 1);
  pthread_mutex_unlock(&s->mu);
  return run;
}

static bool on_a_loop(const crpc_server *s) {
  for (int i = 0; i < s->n_loops; i++) {
    if (crpc_loop_in_loop_thread(s->loops[i].loop)) return true;
  }
  return false;
}

/* A request to every loop (or to none when there is nothing to ask),
 * posted; the caller still holds its reference. NULL if out of memory. */
static calls_req *ask(crpc_server *s, calls_op op, uint64_t id,
                      const char *reason, crpc_calls_fn list_done,
                      crpc_call_cancel_fn cancel_done, void *user_data) {
  bool run = hold_loops(s);
  calls_req *req = calls_req_new(op, op == CALLS_LIST ? list_visit : cancel_visit,
                                 run ? s->n_loops : 0, id, reason);
  if (req == NULL) {
    if (run) release_loops(s);
    return NULL;
  }
  req->list_done = list_done;
  req->cancel_done = cancel_done;
  req->user_data = user_data;
  for (int i = 0; run && i < s->n_loops; i++) req->visits[i].arg = &s->loops[i];
  calls_req_post(req, loop_of, run ? release_loops : NULL, s);
  return req;
}

/* The blocking form of ask: the answer, or why there is none. */
static crpc_code ask_and_wait(crpc_server *s, const crpc_ctx *ctx, calls_op op,
                              uint64_t id, const char *reason,
                              crpc_call_info **calls, size_t *count) {
  if (on_a_loop(s)) return CRPC_FAILED_PRECONDITION;
  calls_req *req = ask(s, op, id, reason, NULL, NULL, NULL);
  if (req == NULL) return CRPC_RESOURCE_EXHAUSTED;
  crpc_code code = calls_req_wait(req, ctx);
  if (code == CRPC_OK) code = calls_req_take(req, calls, count);
  calls_req_unref(req);
  return code;
}

/* ---- public --------------------------------------------------------------- */

crpc_code crpc_server_calls(crpc_server *server, const crpc_ctx *ctx,
                            crpc_call_info **calls, size_t *count) {
  calls_require_ctx(ctx, "crpc_server_calls");
  *calls = NULL;
  *count = 0;
  return ask_and_wait(server, ctx, CALLS_LIST, 0, NULL, calls, count);
}

crpc_code crpc_server_calls_async(crpc_server *server, crpc_calls_fn done,
                                  void *user_data) {
  calls_req *req = ask(server, CALLS_LIST, 0, NULL, done, NULL, user_data);
  if (req == NULL) {
    done(CRPC_RESOURCE_EXHAUSTED, NULL, 0, user_data);
    return CRPC_OK;
  }
  calls_req_unref(req);
  return CRPC_OK;
}

crpc_code crpc_server_calls_dump(crpc_server *server, const crpc_ctx *ctx,
                                 FILE *out) {
  crpc_call_info *calls;
  size_t count;
  crpc_code code = crpc_server_calls(server, ctx, &calls, &count);
  if (code == CRPC_OK) crpc_calls_write(out, calls, count);
  crpc_calls_free(calls);
  return code;
}

crpc_code crpc_server_cancel_call(crpc_server *server, const crpc_ctx *ctx,
                                  uint64_t id, const char *reason) {
  calls_require_ctx(ctx, "crpc_server_cancel_call");
  return ask_and_wait(server, ctx, CALLS_CANCEL, id, reason, NULL, NULL);
}

/* Stands in for a NULL done. */
static void ignore_cancel(crpc_code code, void *user_data) {
  (void)code;
  (void)user_data;
}

crpc_code crpc_server_cancel_call_async(crpc_server *server, uint64_t id,
                                        const char *reason,
                                        crpc_call_cancel_fn done,
                                        void *user_data) {
  if (done == NULL) done = ignore_cancel;
  calls_req *req = ask(server, CALLS_CANCEL, id, reason, NULL, done, user_data);
  if (req == NULL) {
    done(CRPC_RESOURCE_EXHAUSTED, user_data);
    return CRPC_OK;
  }
  calls_req_unref(req);
  return CRPC_OK;
}

uint64_t crpc_server_call_id(const crpc_server_call *call) {
  return call->live_id;
}

crpc_code crpc_server_set_call_observer(crpc_server *server,
                                        crpc_call_observer_fn fn,
                                        void *user_data) {
  if (server->started) return CRPC_FAILED_PRECONDITION;
  server->call_observer = fn;
  server->call_observer_data = user_data;
  return CRPC_OK;
}
