/*
 * call_async.c - async client calls (crpc/channel_async.h): the reactor's
 * events delivered from the call's kick on the loop thread, the helper
 * thread that connects for calls that found no connection up, and the
 * unary convenience on top.
 *
 * Why events ride the kick: every change the loop makes to a call (a
 * message decoded, send room, the status settled) already ends in a kick
 * or can post one for free (a post from the loop thread is a CAS, no
 * system call), and kick_fn then submits whatever the callbacks queued in
 * the same run. One path, and callbacks never run inside nghttp2's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/channel/channel_internal.h"

/* The call whose callbacks this thread is running (loop thread only). */
static _Thread_local ccall *tl_delivering;

void ccall_kick_from_user(ccall *call) {
  if (tl_delivering != call) ccall_kick(call);
}

/* ---- delivery (loop thread) --------------------------------------------*/

static void deliver_done(ccall *call) {
  crpc_status status = {0};
  pthread_mutex_lock(&call->mu);
  crpc_h2_msgq_clear(&call->in.q);
  status.code = call->code;
  status.message = call->message;
  status.trailers = call->trailers;
  pthread_mutex_unlock(&call->mu);
  crpc_metadata *empty = NULL;
  if (status.trailers == NULL) status.trailers = empty = crpc_metadata_new();
  call->done_delivered = true;
  call->reactor.on_done(call, &status, call->reactor_data);
  crpc_metadata_free(empty);
}

void ccall_deliver(ccall *call) {
  if (call->done_delivered) return;
  ccall *outer = tl_delivering;
  tl_delivering = call;
  for (;;) {
    crpc_message msg;
    bool have = false, ready = false, done = false;
    pthread_mutex_lock(&call->mu);
    /* As a blocking recv: once the ctx is done, buffered messages are
     * dropped unless the status had already arrived. The end comes when
     * the loop has settled the cause (after the RST_STREAM left). */
    bool cut = (!call->ended || call->ended_by_ctx) &&
               crpc_ctx_is_done(call->ctx);
    if (!cut && !call->recv_paused) have = crpc_h2_msgq_pop(&call->in.q, &msg);
    /* A paused call's status waits behind the messages it holds. */
    if (!have && call->ended && (cut || call->in.q.count == 0)) {
      done = true;
    } else if (!have && call->want_send_ready &&
               call->out.bytes < CHANNEL_SEND_BUFFER && !cut) {
      call->want_send_ready = false;
      ready = true;
    }
    pthread_mutex_unlock(&call->mu);
    if (have) {
      if (call->reactor.on_message != NULL) {
        call->reactor.on_message(call, &msg, call->reactor_data);
      }
      if (!call->keeps_messages) free(msg.data);
    } else if (ready) {
      if (call->reactor.on_send_ready != NULL) {
        call->reactor.on_send_ready(call, call->reactor_data);
      }
    } else {
      if (done) deliver_done(call);
      break;
    }
  }
  tl_delivering = outer;
}

void crpc_call_pause_recv(crpc_call *call) {
  pthread_mutex_lock(&call->mu);
  call->recv_paused = true;
  pthread_mutex_unlock(&call->mu);
}

void crpc_call_resume_recv(crpc_call *call) {
  pthread_mutex_lock(&call->mu);
  bool was = call->recv_paused;
  call->recv_paused = false;
  pthread_mutex_unlock(&call->mu);
  /* Inside this call's own callback the delivery loop goes on by itself
   * once the callback returns; elsewhere the kick delivers, on the loop. */
  if (was && call->async) ccall_kick_from_user(call);
}

/* ---- the connecting helper -----------------------------------------------*/

static void *connector_main(void *arg) {
  crpc_channel *ch = arg;
  pthread_mutex_lock(&ch->mu);
  for (;;) {
    ccall *call = ch->aq_head;
    if (call == NULL) {
      if (ch->aq_stop) break;
      pthread_cond_wait(&ch->aq_cond, &ch->mu);
      continue;
    }
    ch->aq_head = call->aq_next;
    if (ch->aq_head == NULL) ch->aq_tail = NULL;
    call->aq_next = NULL;
    pthread_mutex_unlock(&ch->mu);
    /* Bounded by the call's ctx: a cancel or deadline ends the wait, and
     * its kick settles the call meanwhile. */
    crpc_code code = crpc_ctx_err(call->ctx);
    cconn *conn = code != CRPC_OK ? NULL : channel_get_conn(ch, call->ctx, &code);
    if (conn == NULL && crpc_ctx_is_done(call->ctx)) {
      /* Settled here with the cause, not left to the cancel kick: a call
       * waiting for a transparent retry still holds its old, dead
       * connection and counts as submitted, and the kick settles only
       * calls that have no connection or were never submitted (client_fuzz
       * found such a call never reaching on_done). */
      const crpc_cause *cause = crpc_ctx_cause(call->ctx);
      pthread_mutex_lock(&call->mu);
      if (!call->ended) call->ended_by_ctx = true;
      pthread_mutex_unlock(&call->mu);
      ccall_settle(call, cause->code, cause->message);
    } else if (conn == NULL) {
      char why[CRPC_H2_ERR_MAX];
      pthread_mutex_lock(&ch->mu);
      memcpy(why, ch->last_error, sizeof(why));
      pthread_mutex_unlock(&ch->mu);
      ccall_settle(call, code, why);
    } else {
      pthread_mutex_lock(&call->mu);
      call->unsent = false;
      if (call->next_conn != NULL) cconn_release(call->next_conn);
      call->next_conn = conn;
      pthread_mutex_unlock(&call->mu);
      ccall_kick(call);
    }
    ccall_unref(call); /* the queue's */
    pthread_mutex_lock(&ch->mu);
  }
  pthread_mutex_unlock(&ch->mu);
  return NULL;
}

void ccall_async_connect(ccall *call) {
  crpc_channel *ch = call->ch;
  pthread_mutex_lock(&call->mu);
  if (call->unsent) call->resends++;
  pthread_mutex_unlock(&call->mu);
  atomic_fetch_add(&call->refs, 1); /* the queue's */
  pthread_mutex_lock(&ch->mu);
  if (!ch->aq_started) {
    if (pthread_create(&ch->aq_thread, NULL, connector_main, ch) != 0) {
      pthread_mutex_unlock(&ch->mu);
      ccall_settle(call, CRPC_UNAVAILABLE, "cannot start a connecting thread");
      ccall_unref(call);
      return;
    }
    ch->aq_started = true;
  }
  if (ch->aq_tail != NULL) {
    ch->aq_tail->aq_next = call;
  } else {
    ch->aq_head = call;
  }
  ch->aq_tail = call;
  pthread_cond_signal(&ch->aq_cond);
  pthread_mutex_unlock(&ch->mu);
}

void channel_stop_async(crpc_channel *ch) {
  pthread_mutex_lock(&ch->mu);
  bool started = ch->aq_started;
  ch->aq_stop = true;
  pthread_cond_signal(&ch->aq_cond);
  pthread_mutex_unlock(&ch->mu);
  if (started) pthread_join(ch->aq_thread, NULL);
}

/* ---- the public functions ------------------------------------------------*/

static const crpc_call_reactor kUnaryReactor;

/* Starts an async call; `first` (if any) is queued and the sending side
 * closed if `half_close`, before anything can happen to the call, so a
 * caller that frees the call in on_done never races it. *out is set
 * before the loop can see the call. */
static crpc_code start_async(crpc_channel *ch, const crpc_ctx *ctx,
                             const char *method, const crpc_metadata *metadata,
                             const char *encoding,
                             const crpc_call_reactor *reactor, void *user_data,
                             const void *first, size_t first_len,
                             bool half_close, crpc_call **out) {
  *out = NULL;
  if (reactor == NULL || reactor->on_done == NULL) {
    return CRPC_INVALID_ARGUMENT;
  }
  if (ch->icpt != NULL) return CRPC_FAILED_PRECONDITION;
  ccall *call;
  crpc_code code = ccall_new(ch, ctx, method, metadata, encoding,
                             CRPC_NO_DEADLINE, &call);
  if (code != CRPC_OK) return code;
  call->async = true;
  call->reactor = *reactor;
  call->reactor_data = user_data;
  call->keeps_messages = reactor == &kUnaryReactor;
  if (first != NULL) {
    code = ccall_send_queue(call, first, first_len, 0, false);
    if (code != CRPC_OK) {
      crpc_ctx_cancel(call->ctx, CRPC_CANCELLED, "call not started");
      ccall_unref(call);
      return code;
    }
  }
  call->send_closed = half_close;
  *out = call;
  /* Held until launched: the call may run to its end (and be freed in
   * on_done) on the loop before this thread gets there. */
  atomic_fetch_add(&call->refs, 1);
  call->conn = channel_try_conn(ch);
  if (call->conn != NULL) {
    atomic_store(&call->home, call->conn->home); /* before any kick */
  } else {
    ccall_async_connect(call);
  }
  ccall_launch(call);
  ccall_unref(call);
  return CRPC_OK;
}

crpc_code crpc_call_start_async(crpc_channel *ch, const crpc_ctx *ctx,
                                const char *method,
                                const crpc_metadata *metadata,
                                const char *encoding,
                                const crpc_call_reactor *reactor,
                                void *user_data, crpc_call **out) {
  return start_async(ch, ctx, method, metadata, encoding, reactor, user_data,
                     NULL, 0, false, out);
}

crpc_code crpc_call_send_async(crpc_call *call, const void *data, size_t len,
                               unsigned flags) {
  if (!call->async) return CRPC_FAILED_PRECONDITION;
  crpc_code code = ccall_send_queue(call, data, len, flags, false);
  if (code == CRPC_OK) ccall_kick_from_user(call);
  return code;
}

crpc_code crpc_call_send_async_buf(crpc_call *call, crpc_buf *buf,
                                   unsigned flags) {
  if (!call->async) {
    crpc_buf_unref(buf);
    return CRPC_FAILED_PRECONDITION;
  }
  crpc_code code = ccall_send_buf_queue(call, buf, flags, false);
  if (code == CRPC_OK) ccall_kick_from_user(call);
  return code;
}

bool crpc_call_can_send(crpc_call *call) {
  pthread_mutex_lock(&call->mu);
  bool ok = call->out.bytes < CHANNEL_SEND_BUFFER;
  if (!ok) call->want_send_ready = true;
  pthread_mutex_unlock(&call->mu);
  return ok;
}

/* ---- unary on top ----------------------------------------------------------*/

typedef struct unary_async {
  crpc_unary_done_fn done;
  void *user_data;
  crpc_message reply;
  int replies;
} unary_async;

static void unary_on_message(crpc_call *call, const crpc_message *msg,
                             void *arg) {
  (void)call;
  unary_async *u = arg;
  /* keeps_messages: the buffer is ours (the view is const only for
   * public reactors), so the reply is taken, not copied. */
  if (u->replies++ > 0) {
    free(msg->data); /* judged in on_done */
    return;
  }
  u->reply = *msg;
}

static void unary_on_done(crpc_call *call, const crpc_status *status,
                          void *arg) {
  unary_async *u = arg;
  crpc_status st = *status;
  if (st.code == CRPC_OK && u->replies != 1) {
    /* The status said OK but the stream broke the unary contract. */
    st.code = CRPC_INTERNAL;
    st.message = u->replies == 0
                     ? "server sent no response message"
                     : "server sent more than one response message";
  }
  if (st.code != CRPC_OK) {
    free(u->reply.data);
    memset(&u->reply, 0, sizeof(u->reply));
  }
  u->done(st.code, &u->reply, &st, u->user_data);
  free(u);
  crpc_call_free(call);
}

static const crpc_call_reactor kUnaryReactor = {
    .on_message = unary_on_message,
    .on_done = unary_on_done,
};

crpc_code crpc_unary_call_async(crpc_channel *ch, const crpc_ctx *ctx,
                                const char *method,
                                const crpc_metadata *metadata,
                                const void *request, size_t request_len,
                                crpc_unary_done_fn done, void *user_data) {
  if (done == NULL) return CRPC_INVALID_ARGUMENT;
  unary_async *u = calloc(1, sizeof(*u));
  if (u == NULL) return CRPC_RESOURCE_EXHAUSTED;
  u->done = done;
  u->user_data = user_data;
  crpc_call *call;
  crpc_code code =
      start_async(ch, ctx, method, metadata, NULL, &kUnaryReactor, u,
                  request != NULL ? request : "", request_len, true, &call);
  if (code != CRPC_OK) free(u);
  return code;
}
