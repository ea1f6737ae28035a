/*
 * server_api.c - the functions a handler calls on its crpc_server_call.
 * All run on the handler's thread; they meet the loop under the call mutex
 * and every wait is ctx-aware, so a cancel wakes them at once.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/server/server_internal.h"

/* Returned by dead_code_locked for a call the loop has ended (stream reset,
 * or failed on a bad request message) whose ctx cancel has not landed yet:
 * the loop marks the call under mu first, so that not one more message is
 * queued, then cancels outside mu. */
#define RESET_PENDING ((crpc_code)-1)

/* Why the call can no longer send or receive, or CRPC_OK. Caller holds
 * mu. */
static crpc_code dead_code_locked(scall *call) {
  crpc_code c = crpc_ctx_err(call->ctx);
  if (c != CRPC_OK) return c;
  /* While the handler runs, `finished` is only set by fail_call, which
   * cancels the ctx right after, like a reset. */
  if (call->reset || call->finished) return RESET_PENDING;
  return CRPC_OK;
}

crpc_code scall_recv_core(scall *call, crpc_message *msg) {
  msg->data = NULL;
  msg->len = 0;
  msg->end = false;
  msg->compressed = false;
  crpc_code code;
  bool kick = false;
  pthread_mutex_lock(&call->mu);
  for (;;) {
    code = dead_code_locked(call);
    if (code != CRPC_OK) break;
    if (crpc_h2_msgq_pop(&call->in.q, msg)) {
      kick = crpc_h2_inbound_return_due(
          &call->in, call->server->opts.initial_stream_window_size);
      break;
    }
    if (call->recv_err != CRPC_OK) {
      code = call->recv_err;
      break;
    }
    if (call->recv_end) {
      msg->end = true;
      break;
    }
    call->recv_waiters++;
    crpc_ctx_wait_cond(call->ctx, &call->cond, &call->mu);
    call->recv_waiters--;
  }
  pthread_mutex_unlock(&call->mu);
  /* Report the reset only once the ctx says so too: callers may rely on
   * "the call failed with the cause" meaning "the ctx is done". The loop
   * is cancelling it right now, so this wait is short. */
  if (code == RESET_PENDING) code = crpc_ctx_wait(call->ctx);
  if (kick) scall_kick(call);
  return code;
}

crpc_code crpc_server_call_send(crpc_server_call *call, const void *data,
                                size_t len) {
  return crpc_server_call_send_flags(call, data, len, 0);
}

crpc_code crpc_server_call_set_compression(crpc_server_call *call,
                                           const char *encoding) {
  crpc_wire_encoding e = CRPC_WIRE_ENCODING_IDENTITY;
  if (encoding != NULL) e = crpc_wire_encoding_parse(encoding, strlen(encoding));
  if (e == CRPC_WIRE_ENCODING_UNKNOWN) return CRPC_INVALID_ARGUMENT;
  if (call->resp_checked) return CRPC_FAILED_PRECONDITION; /* sent already */
  const char *acc = call->accept_encoding; /* immutable once dispatched */
  crpc_wire_encoding_set ok =
      crpc_wire_accept_encoding_parse(acc ? acc : "", acc ? strlen(acc) : 0);
  call->send_encoding =
      ok & CRPC_WIRE_ENCODING_BIT(e) ? e : CRPC_WIRE_ENCODING_IDENTITY;
  return CRPC_OK;
}

crpc_code scall_send_core(scall *call, const void *data, size_t len,
                          unsigned flags) {
  crpc_h2_chunk *chunk;
  crpc_code fcode = scall_frame_response(call, data, len, flags, &chunk);
  return fcode != CRPC_OK ? fcode : scall_send_chunk(call, chunk);
}

size_t scall_send_limit_locked(const scall *call) {
  size_t limit = call->server->opts.stream_send_buffer;
  size_t four = call->last_msg_bytes * 4;
  if (four <= limit || limit > SIZE_MAX / 4) return limit;
  return four < limit * 4 ? four : limit * 4;
}

/* A blocking handler's response of a unary-response method: its first
 * message need not wake the loop. The handler returns next (or sends again,
 * which kicks), and that kick writes message and status together, on the
 * handler's own thread when the loop sleeps (kick_by_borrowing): one write
 * and no loop wake-up per call instead of two of each. The client sees
 * nothing sooner either way: a unary response completes with its status. */
static bool may_defer_kick(const scall *call) {
  /* last_msg_bytes: only this thread writes it (under mu), so reading it
   * here needs no lock; 0 until a message has been queued. */
  return call->last_msg_bytes == 0 && !server_method_is_async(call->method) &&
         (call->method->kind == CRPC_UNARY ||
          call->method->kind == CRPC_CLIENT_STREAMING);
}

crpc_code scall_send_chunk(scall *call, crpc_h2_chunk *chunk) {
  crpc_code code;
  bool defer = may_defer_kick(call);
  if (call->kick_deferred) { /* a second message: the first goes now */
    call->kick_deferred = false;
    scall_kick(call);
  }
  pthread_mutex_lock(&call->mu);
  for (;;) {
    code = dead_code_locked(call);
    if (code != CRPC_OK) break;
    /* Below the limit a message of any size goes in (as with async
     * sends), so the next one is queued while the loop writes this one:
     * at most limit + one message per call. */
    if (call->out.bytes < scall_send_limit_locked(call)) {
      call->last_msg_bytes = chunk->len - chunk->off;
      crpc_h2_outq_push(&call->out, chunk);
      chunk = NULL;
      break;
    }
    call->send_waiters++;
    call->send_woken = false;
    crpc_ctx_wait_cond(call->ctx, &call->cond, &call->mu);
    call->send_waiters--;
  }
  pthread_mutex_unlock(&call->mu);
  crpc_h2_chunk_unref(chunk);
  if (code == RESET_PENDING) code = crpc_ctx_wait(call->ctx);
  if (code == CRPC_OK && defer) {
    call->kick_deferred = true;
  } else if (code == CRPC_OK) {
    scall_kick(call); /* coalesced with pending kicks */
  }
  return code;
}

crpc_code crpc_server_call_error(crpc_server_call *call, crpc_code code,
                                 const char *fmt, ...) {
  char *msg = NULL;
  va_list ap;
  va_start(ap, fmt);
  if (vasprintf(&msg, fmt, ap) < 0) msg = NULL;
  va_end(ap);
  pthread_mutex_lock(&call->mu);
  free(call->handler_msg);
  call->handler_msg = msg;
  pthread_mutex_unlock(&call->mu);
  return code;
}

const crpc_metadata *crpc_server_call_request_metadata(
    const crpc_server_call *call) {
  return call->req_md;
}

crpc_metadata *crpc_server_call_response_headers(crpc_server_call *call) {
  return call->resp_md;
}

crpc_metadata *crpc_server_call_trailers(crpc_server_call *call) {
  return call->trailers_md;
}

const char *crpc_server_call_method(const crpc_server_call *call) {
  return call->path;
}

const char *crpc_server_call_peer(const crpc_server_call *call) {
  return call->peer->addr;
}

/* ---- cancel-path accounting --------------------------------------------- */

void scall_drop_queue_locked(scall *call, bool keep_started) {
  crpc_h2_outq_tally(&call->out, keep_started, &call->dropped_messages,
                     &call->dropped_bytes);
  if (keep_started) {
    crpc_h2_outq_drop_unstarted(&call->out);
  } else {
    crpc_h2_outq_clear(&call->out);
  }
}

void scall_note_cancel_locked(scall *call, int64_t event_ns) {
  /* A ctx done already (locally, or by an earlier event) is not this
   * event's doing. */
  if (call->cancel_event_ns != 0 || crpc_ctx_is_done(call->ctx)) return;
  call->cancel_event_ns = event_ns;
  call->cancel_ctx_done_ns = crpc_now_ns();
}

void scall_note_send(scall *call, crpc_code code) {
  /* Only failures that mean "the call is over": not a message too large
   * or a misuse, after which the handler may go on. */
  if (code != CRPC_CANCELLED && code != CRPC_DEADLINE_EXCEEDED &&
      code != CRPC_UNAVAILABLE) {
    return;
  }
  int64_t now = crpc_now_ns();
  pthread_mutex_lock(&call->mu);
  if (call->cancel_send_failed_ns == 0) call->cancel_send_failed_ns = now;
  pthread_mutex_unlock(&call->mu);
}

void crpc_server_call_cancel_stats(crpc_server_call *call,
                                   crpc_server_cancel_stats *out) {
  pthread_mutex_lock(&call->mu);
  out->event_ns = call->cancel_event_ns;
  out->ctx_done_ns = call->cancel_event_ns ? call->cancel_ctx_done_ns : 0;
  out->send_failed_ns = call->cancel_send_failed_ns;
  out->dropped_messages = call->dropped_messages;
  out->dropped_bytes = call->dropped_bytes;
  pthread_mutex_unlock(&call->mu);
}
