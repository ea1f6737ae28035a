/*
 * server_async.c - async (reactor) methods: registration, delivering
 * events on the loop thread, and the non-blocking send and finish.
 *
 * An async call shares everything with a blocking one (the stream state,
 * the send queue and data provider, the status decision in the kick); what
 * differs is who consumes events: instead of a handler thread waiting on
 * the call's condition variable, the loop thread calls the reactor. The
 * reactor's reference (taken at start) is dropped after on_done, which the
 * kick delivers once finish has been called.
 */
#include <stdlib.h>
#include <string.h>

#include "rpc/server/server_internal.h"

/* Send-side checks shared by every send, blocking or not: size, the
 * response headers' reserved keys (checked once, with the first
 * message). */
static crpc_code send_checks(scall *call, size_t len) {
  size_t max = call->server->opts.max_send_message_size;
  if (max != 0 && len > max) return CRPC_RESOURCE_EXHAUSTED;
  if (!call->resp_checked) {
    call->resp_checked = true;
    if (scall_md_has_reserved(call->resp_md)) {
      pthread_mutex_lock(&call->mu);
      call->md_error = true;
      pthread_mutex_unlock(&call->mu);
      return CRPC_INTERNAL;
    }
  }
  return call->md_error ? CRPC_INTERNAL : CRPC_OK;
}

static crpc_wire_encoding send_encoding(const scall *call, unsigned flags) {
  return flags & CRPC_SEND_NO_COMPRESS ? CRPC_WIRE_ENCODING_IDENTITY
                                       : call->send_encoding;
}

crpc_code scall_frame_response(scall *call, const void *data, size_t len,
                               unsigned flags, crpc_h2_chunk **out) {
  *out = NULL;
  crpc_code code = send_checks(call, len);
  if (code != CRPC_OK) return code;
  *out = crpc_h2_chunk_frame_encoded(send_encoding(call, flags), data, len,
                                     &code);
  return *out != NULL ? CRPC_OK : code;
}

crpc_code scall_frame_buf(scall *call, crpc_buf *buf, unsigned flags,
                          crpc_h2_chunk **out) {
  *out = NULL;
  crpc_code code = send_checks(call, crpc_buf_len(buf));
  if (code != CRPC_OK) {
    crpc_buf_unref(buf);
    return code;
  }
  *out = crpc_h2_chunk_from_buf(send_encoding(call, flags), buf, &code);
  return *out != NULL ? CRPC_OK : code;
}


/* ---- registration ------------------------------------------------------ */

crpc_code crpc_server_add_async_method(crpc_server *server, const char *path,
                                       crpc_method_kind kind,
                                       const crpc_server_reactor *reactor,
                                       void *user_data) {
  if (reactor == NULL || reactor->on_start == NULL) {
    return CRPC_INVALID_ARGUMENT;
  }
  server_method m = {.kind = kind, .reactor = *reactor,
                     .user_data = user_data};
  return server_add_method_entry(server, path, &m);
}

crpc_code crpc_server_add_unary_async(crpc_server *server, const char *path,
                                      crpc_unary_async_fn fn,
                                      void *user_data) {
  if (fn == NULL) return CRPC_INVALID_ARGUMENT;
  server_method m = {.kind = CRPC_UNARY, .unary_fn = fn,
                     .user_data = user_data};
  return server_add_method_entry(server, path, &m);
}

/* ---- the loop's side --------------------------------------------------- */

void scall_async_start(scall *call) {
  scall_ref(call); /* the reactor's, dropped after on_done */
  server_count(call->server, &call->server->live_calls, 1);
  const server_method *m = call->method;
  /* Always, even with the ctx already done (deadline passed, reset): the
   * reactor's state must exist for on_cancel and on_done, which follow
   * from the kick the ctx registration posted. A unary handler instead
   * waits for its request. */
  if (m->reactor.on_start != NULL) {
    call->rstate = m->reactor.on_start(call, call->ctx, m->user_data);
  }
}

/* The inline unary form: one request in, the handler's status out. */
static void run_unary(scall *call, const crpc_message *msg) {
  call->unary_ran = true;
  crpc_code code;
  if (msg->end) {
    code = crpc_server_call_error(call, CRPC_INTERNAL,
                                  "unary call ended without a request");
  } else {
    code = call->method->unary_fn(call, call->ctx, msg,
                                  call->method->user_data);
  }
  crpc_server_call_finish(call, code, NULL);
}

void scall_async_deliver(scall *call) {
  const server_method *m = call->method;
  size_t consume;
  for (;;) {
    crpc_message msg = {0};
    pthread_mutex_lock(&call->mu);
    bool got = false;
    if (!call->reactor_finished && !call->finished && !call->reset &&
        call->recv_err == CRPC_OK && !call->end_told && !call->recv_paused) {
      got = crpc_h2_msgq_pop(&call->in.q, &msg);
      if (!got && call->recv_end) {
        msg.end = true;
        call->end_told = got = true;
      }
    }
    if (!got) {
      /* Messages taken: give their window back (as a blocking recv
       * would), counted under the lock that found none left. */
      consume = crpc_h2_inbound_take_consumable(&call->in);
      pthread_mutex_unlock(&call->mu);
      break;
    }
    pthread_mutex_unlock(&call->mu);
    if (crpc_ctx_is_done(call->ctx)) { /* on_cancel is on its way */
      free(msg.data);
      pthread_mutex_lock(&call->mu);
      consume = crpc_h2_inbound_take_consumable(&call->in);
      pthread_mutex_unlock(&call->mu);
      break;
    }
    if (m->unary_fn != NULL) {
      if (!call->unary_ran) run_unary(call, &msg);
    } else if (m->reactor.on_message != NULL) {
      m->reactor.on_message(call, &msg, call->rstate);
    }
    free(msg.data);
  }
  if (consume > 0 && call->conn != NULL) {
    nghttp2_session_consume_stream(call->conn->h2.session, call->stream_id,
                                   consume);
  }
}

void scall_async_events(scall *call) {
  if (call->done_told) return;
  const crpc_server_reactor *r = &call->method->reactor;
  /* The ctx before reactor_finished: finish sets the flag and only then
   * ends the ctx ("call finished"), so a done ctx seen before an unset flag
   * is a real cause, never the reactor's own finish. */
  bool ctx_done = crpc_ctx_is_done(call->ctx);
  pthread_mutex_lock(&call->mu);
  bool finished = call->reactor_finished;
  bool ready = !finished && call->want_ready &&
               call->out.bytes < scall_send_limit_locked(call);
  if (ready) call->want_ready = false;
  pthread_mutex_unlock(&call->mu);
  if (!finished && !call->cancel_told && ctx_done) {
    call->cancel_told = true;
    if (call->method->unary_fn != NULL) {
      /* Nothing of the user's runs any more: end with the cause. */
      crpc_server_call_finish(call, crpc_ctx_err(call->ctx), NULL);
    } else if (r->on_cancel != NULL) {
      r->on_cancel(call, crpc_ctx_cause(call->ctx), call->rstate);
    }
    return; /* finish (now or later) kicks again for on_done */
  }
  if (ready && !call->cancel_told && r->on_send_ready != NULL) {
    r->on_send_ready(call, call->rstate);
  }
  if (!finished) return;
  call->done_told = true;
  if (r->on_done != NULL) r->on_done(call, call->rstate);
  server_count(call->server, &call->server->live_calls, -1);
  scall_unref(call); /* the reactor's; the kick still holds one */
}

/* ---- the reactor's calls (any thread) ---------------------------------- */

/* Queues a framed message without waiting; takes chunk. */
static crpc_code send_async_chunk(scall *call, crpc_h2_chunk *chunk) {
  crpc_code code = CRPC_OK;
  pthread_mutex_lock(&call->mu);
  if (call->reactor_finished) {
    code = CRPC_FAILED_PRECONDITION;
  } else if (call->reset || call->finished) {
    /* The loop has ended the call and is cancelling the ctx right now. */
    code = CRPC_CANCELLED;
  } else {
    call->last_msg_bytes = chunk->len - chunk->off;
    crpc_h2_outq_push(&call->out, chunk);
    chunk = NULL;
  }
  pthread_mutex_unlock(&call->mu);
  crpc_h2_chunk_unref(chunk);
  if (code == CRPC_CANCELLED && !crpc_loop_in_loop_thread(call->sl->loop)) {
    /* Off the loop, the loop may be between marking the stream gone and
     * cancelling the ctx: wait for that (it is immediate) so the caller
     * gets the cause's code, as the blocking send does. */
    code = crpc_ctx_wait(call->ctx);
  } else if (code == CRPC_CANCELLED && crpc_ctx_is_done(call->ctx)) {
    code = crpc_ctx_err(call->ctx);
  }
  if (code == CRPC_OK) {
    scall_kick(call);
  } else {
    scall_note_send(call, code);
  }
  return code;
}

crpc_code crpc_server_call_send_async(crpc_server_call *call,
                                      const void *data, size_t len,
                                      unsigned flags) {
  crpc_code code = crpc_ctx_err(call->ctx);
  if (code != CRPC_OK) {
    scall_note_send(call, code);
    return code;
  }
  crpc_h2_chunk *chunk;
  code = scall_frame_response(call, data, len, flags, &chunk);
  return code != CRPC_OK ? code : send_async_chunk(call, chunk);
}

crpc_code crpc_server_call_send_async_buf(crpc_server_call *call,
                                          crpc_buf *buf, unsigned flags) {
  crpc_code code = crpc_ctx_err(call->ctx);
  if (code != CRPC_OK) {
    scall_note_send(call, code);
    crpc_buf_unref(buf);
    return code;
  }
  crpc_h2_chunk *chunk;
  code = scall_frame_buf(call, buf, flags, &chunk);
  return code != CRPC_OK ? code : send_async_chunk(call, chunk);
}

bool crpc_server_call_can_send(crpc_server_call *call) {
  pthread_mutex_lock(&call->mu);
  bool alive = !call->reset && !call->finished && !call->reactor_finished;
  bool room = call->out.bytes < scall_send_limit_locked(call);
  if (alive && !room) call->want_ready = true;
  pthread_mutex_unlock(&call->mu);
  return alive && room && !crpc_ctx_is_done(call->ctx);
}

void crpc_server_call_finish(crpc_server_call *call, crpc_code code,
                             const char *message) {
  if (message != NULL) {
    (void)crpc_server_call_error(call, code, "%s", message);
  }
  /* From another thread, the loop may deliver on_done and drop the
   * reactor's reference (and the stream's) as soon as reactor_finished is
   * set below, e.g. in a kick already queued by a peer reset; this
   * reference keeps the call alive until we are done with it. */
  scall_ref(call);
  pthread_mutex_lock(&call->mu);
  bool twice = call->reactor_finished;
  call->reactor_finished = true;
  pthread_mutex_unlock(&call->mu);
  if (!twice) {
    /* Ends the ctx; its on_cancel kicks the loop, which sends the status
     * and delivers on_done. If the ctx was done already, kick ourselves. */
    scall_handler_returned(call, code);
    scall_kick(call);
  }
  scall_unref(call);
}

void crpc_server_call_pause_recv(crpc_server_call *call) {
  pthread_mutex_lock(&call->mu);
  call->recv_paused = true;
  pthread_mutex_unlock(&call->mu);
}

void crpc_server_call_resume_recv(crpc_server_call *call) {
  pthread_mutex_lock(&call->mu);
  bool was = call->recv_paused;
  call->recv_paused = false;
  pthread_mutex_unlock(&call->mu);
  if (!was) return;
  /* Delivery happens on the loop, in the kick: never inside the caller's
   * own callback (on_send_ready resuming), and never on another thread. */
  atomic_store_explicit(&call->resume_pending, true, memory_order_release);
  scall_kick(call);
}

const crpc_ctx *crpc_server_call_ctx(const crpc_server_call *call) {
  return call->ctx;
}
