/*
 * call.c - the user's side of a client call: start, send, half-close,
 * receive, finish, free, and the unary convenience. Blocking and
 * ctx-aware: every wait is crpc_ctx_wait_cond on the call's own ctx (a
 * child of the user's), so a cancel or deadline wakes it at once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/channel/channel_internal.h"
#include "rpc/log/log.h"
#include "rpc/mem/mem.h"

void crpc_status_clear(crpc_status *status) {
  if (status == NULL) return;
  free(status->message);
  crpc_metadata_free(status->trailers);
  memset(status, 0, sizeof(*status));
}

void ccall_unref(ccall *call) {
  if (atomic_fetch_sub(&call->refs, 1) != 1) return;
  crpc_channel *ch = call->ch;
  crpc_ctx_release(call->ctx);
  if (call->conn != NULL) cconn_release(call->conn); /* in use until now */
  if (call->next_conn != NULL) cconn_release(call->next_conn);
  crpc_h2_inbound_destroy(&call->in);
  crpc_h2_outq_clear(&call->out);
  crpc_mem_free(call->replay); /* a chunk: rpc/h2/stream.c allocates them */
  crpc_wire_headers_destroy(&call->req);
  crpc_metadata_free(call->hdr_md);
  crpc_metadata_free(call->resp_md);
  crpc_metadata_free(call->trailers);
  free(call->grpc_status);
  free(call->grpc_message);
  free(call->message);
  free(call->path);
  pthread_mutex_destroy(&call->mu);
  pthread_cond_destroy(&call->cond);
  free(call);
  pthread_mutex_lock(&ch->mu);
  ch->live_calls--;
  pthread_cond_broadcast(&ch->cond);
  pthread_mutex_unlock(&ch->mu);
}

/* The call ctx's on_cancel: its reference moves to the kick, which sends
 * RST_STREAM(CANCEL). Any thread; never blocks. A blocking call's kick
 * runs on the cancelling thread when the loop sleeps: the RST_STREAM
 * leaves without waiting for the loop thread to wake. Not for an async
 * call (its completion stays on the loop) nor for a deadline: that fires
 * on the process's ctx timer thread, whose other deadlines (and the
 * callbacks after this one, such as a recv waiting on the call) would
 * wait for the write (measured: the client's DEADLINE_EXCEEDED 20-40 us
 * later at p50). */
static void on_ctx_cancel(void *arg, const crpc_cause *cause) {
  ccall *call = arg;
  if (!call->async && cause->origin != CRPC_ORIGIN_DEADLINE &&
      ccall_kick_by_borrowing(call)) {
    return;
  }
  ccall_post_kick_ref(call);
}

static crpc_code build_headers(ccall *call, const char *method,
                               const crpc_metadata *md) {
  crpc_channel *ch = call->ch;
  crpc_wire_headers *h = &call->req;
  /* Literals are not copied (by crpc nor nghttp2); the rest is. */
  crpc_code rc = CRPC_H2_HEADER_STATIC(h, ":method", "POST");
  if (rc == CRPC_OK) {
    rc = CRPC_H2_HEADER_STATIC(h, ":scheme",
                               ch->tls != NULL ? "https" : "http");
  }
  if (rc == CRPC_OK) rc = crpc_h2_headers_add(h, ":path", method);
  if (rc == CRPC_OK) rc = crpc_h2_headers_add(h, ":authority", ch->authority);
  if (rc == CRPC_OK) {
    rc = CRPC_H2_HEADER_STATIC(h, "content-type", "application/grpc");
  }
  if (rc == CRPC_OK) rc = CRPC_H2_HEADER_STATIC(h, "te", "trailers");
  if (rc == CRPC_OK) rc = crpc_h2_headers_add(h, "user-agent", ch->user_agent);
  if (rc == CRPC_OK) {
    rc = CRPC_H2_HEADER_STATIC(h, "grpc-accept-encoding",
                               "identity,gzip,deflate");
  }
  if (rc != CRPC_OK) return CRPC_RESOURCE_EXHAUSTED;
  if (call->send_encoding != CRPC_WIRE_ENCODING_IDENTITY &&
      crpc_h2_headers_add(h, "grpc-encoding",
                          crpc_wire_encoding_name(call->send_encoding)) !=
          CRPC_OK) {
    return CRPC_RESOURCE_EXHAUSTED;
  }
  crpc_wire_error err;
  crpc_code code = crpc_wire_headers_add_metadata(h, md, &err);
  if (code == CRPC_INVALID_ARGUMENT) {
    CRPC_LOG(CRPC_LOG_ERROR, CRPC_LOG_SUB_CALL, "call %s: %s", method,
             err.message);
  }
  return code;
}

crpc_code crpc_call_start(crpc_channel *ch, const crpc_ctx *ctx,
                          const char *method, const crpc_metadata *metadata,
                          crpc_call **out) {
  return crpc_call_start_compressed(ch, ctx, method, metadata, NULL, out);
}

/* Why a start failed with `code`, for the caller's status. The reason is
 * rebuilt here rather than carried up from where it happened: the connect
 * error is the channel's last one (what channel_lb.c recorded for this
 * attempt, unless another thread's attempt failed in between), the rest
 * follow from the arguments. */
static void start_failure_reason(crpc_channel *ch, const crpc_ctx *ctx,
                                 const char *method, const char *encoding,
                                 crpc_code code, char why[CRPC_H2_ERR_MAX]) {
  snprintf(why, CRPC_H2_ERR_MAX, "call could not start (%s)",
           crpc_code_name(code));
  if (ctx != NULL && crpc_ctx_is_done(ctx)) {
    snprintf(why, CRPC_H2_ERR_MAX, "%s", crpc_ctx_cause(ctx)->message);
  } else if (code == CRPC_UNAVAILABLE) {
    pthread_mutex_lock(&ch->mu);
    if (ch->last_error[0] != '\0') memcpy(why, ch->last_error, CRPC_H2_ERR_MAX);
    pthread_mutex_unlock(&ch->mu);
  } else if (code == CRPC_INVALID_ARGUMENT) {
    if (method == NULL || method[0] != '/') {
      snprintf(why, CRPC_H2_ERR_MAX,
               "method \"%.100s\" does not start with '/'",
               method != NULL ? method : "(null)");
    } else if (encoding != NULL &&
               crpc_wire_encoding_parse(encoding, strlen(encoding)) ==
                   CRPC_WIRE_ENCODING_UNKNOWN) {
      snprintf(why, CRPC_H2_ERR_MAX,
               "unknown encoding \"%.60s\" (gzip, deflate or identity)",
               encoding);
    } else {
      snprintf(why, CRPC_H2_ERR_MAX,
               "request metadata holds a reserved or malformed key");
    }
  }
}

/* Fills *status for a start that failed: code, reason, no trailers. */
static void start_failure_status(crpc_channel *ch, const crpc_ctx *ctx,
                                 const char *method, const char *encoding,
                                 crpc_code code, crpc_status *status) {
  char why[CRPC_H2_ERR_MAX];
  start_failure_reason(ch, ctx, method, encoding, code, why);
  status->code = code;
  status->message = strdup(why);
  status->trailers = crpc_metadata_new();
}

crpc_code crpc_call_start_status(crpc_channel *ch, const crpc_ctx *ctx,
                                 const char *method,
                                 const crpc_metadata *metadata,
                                 const char *encoding, crpc_call **out,
                                 crpc_status *status) {
  if (status != NULL) memset(status, 0, sizeof(*status));
  crpc_code code =
      crpc_call_start_compressed(ch, ctx, method, metadata, encoding, out);
  if (code != CRPC_OK && status != NULL) {
    start_failure_status(ch, ctx, method, encoding, code, status);
  }
  return code;
}

crpc_code ccall_new(crpc_channel *ch, const crpc_ctx *ctx, const char *method,
                    const crpc_metadata *metadata, const char *encoding,
                    int64_t deadline, ccall **out) {
  *out = NULL;
  if (ctx == NULL) {
    crpc_log_fatal(CRPC_LOG_SUB_CALL,
                   "crpc_call_start: ctx is required (NULL given)");
    abort();
  }
  if (method == NULL || method[0] != '/') return CRPC_INVALID_ARGUMENT;
  crpc_wire_encoding enc = ch->default_encoding;
  if (encoding != NULL) enc = crpc_wire_encoding_parse(encoding, strlen(encoding));
  if (enc == CRPC_WIRE_ENCODING_UNKNOWN) return CRPC_INVALID_ARGUMENT;
  if (atomic_load(&ch->refused_encodings) & CRPC_WIRE_ENCODING_BIT(enc)) {
    enc = CRPC_WIRE_ENCODING_IDENTITY; /* the server said it cannot */
  }
  crpc_code code = crpc_ctx_err(ctx);
  if (code != CRPC_OK) return code;
  ccall *call = calloc(1, sizeof(*call));
  if (call == NULL) return CRPC_RESOURCE_EXHAUSTED;
  atomic_init(&call->refs, 1); /* the user's */
  call->ch = ch;
  atomic_init(&call->home, &ch->homes[0]); /* until it has a connection */
  ccall_live_init(call); /* its registry id, from now on */
  call->send_encoding = enc;
  pthread_mutex_init(&call->mu, NULL);
  pthread_cond_init(&call->cond, NULL);
  crpc_wire_headers_init(&call->req);
  crpc_h2_inbound_init(&call->in, ch->max_recv, false);
  ccall_init_kick(call);
  pthread_mutex_lock(&ch->mu);
  ch->live_calls++;
  pthread_mutex_unlock(&ch->mu);
  call->path = strdup(method);
  call->ctx = deadline == CRPC_NO_DEADLINE
                  ? crpc_ctx_with_cancel(ctx)
                  : crpc_ctx_with_deadline(ctx, deadline);
  code = call->path == NULL || call->ctx == NULL
             ? CRPC_RESOURCE_EXHAUSTED
             : build_headers(call, method, metadata);
  if (code != CRPC_OK) {
    if (call->ctx != NULL) {
      crpc_ctx_cancel(call->ctx, CRPC_CANCELLED, "call not started");
    }
    ccall_unref(call);
    return code;
  }
  *out = call;
  return CRPC_OK;
}

void ccall_launch(ccall *call) {
  atomic_fetch_add(&call->refs, 1); /* the registration's */
  if (!crpc_ctx_on_cancel(call->ctx, &call->on_cancel, on_ctx_cancel, call)) {
    /* Done meanwhile: the kick settles it. */
    on_ctx_cancel(call, crpc_ctx_cause(call->ctx));
  }
  ccall_kick(call); /* submit the request */
}

crpc_code ccall_start_core(crpc_channel *ch, const crpc_ctx *ctx,
                           const char *method, const crpc_metadata *metadata,
                           const char *encoding, int64_t deadline,
                           crpc_call **out) {
  ccall *call;
  crpc_code code =
      ccall_new(ch, ctx, method, metadata, encoding, deadline, &call);
  *out = NULL;
  if (code != CRPC_OK) return code;
  call->conn = channel_get_conn(ch, call->ctx, &code);
  if (code != CRPC_OK) {
    crpc_ctx_cancel(call->ctx, CRPC_CANCELLED, "call not started");
    ccall_unref(call);
    return code;
  }
  atomic_store(&call->home, call->conn->home); /* before any kick */
  ccall_launch(call);
  *out = call;
  return CRPC_OK;
}

/* The loop found the request never reached the server (its connection
 * went away first): get another connection, bounded by the call's ctx,
 * and have the loop send it there (gRPC's transparent retry). Called with
 * mu held and returns with it held; the caller then re-checks the call. */
static void resend_locked(ccall *call) {
  call->unsent = false;
  call->resends++;
  pthread_mutex_unlock(&call->mu);
  crpc_code code;
  cconn *conn = channel_get_conn(call->ch, call->ctx, &code);
  if (conn == NULL) {
    char why[CRPC_H2_ERR_MAX];
    crpc_channel *ch = call->ch;
    pthread_mutex_lock(&ch->mu);
    memcpy(why, ch->last_error, sizeof(why));
    pthread_mutex_unlock(&ch->mu);
    ccall_settle(call, code, why); /* a done ctx wins over this anyway */
  } else {
    pthread_mutex_lock(&call->mu);
    call->next_conn = conn;
    pthread_mutex_unlock(&call->mu);
    ccall_kick(call);
  }
  pthread_mutex_lock(&call->mu);
}

/* The ctx's code if it has ended, else CRPC_OK. A blocking call whose
 * status has not settled takes the ctx's cause as its status here, as the
 * caller is about to report the ctx's code: a status arriving later (the
 * server's OK crossing our RST_STREAM) must not make crpc_call_finish
 * contradict a recv that already said CANCELLED or DEADLINE_EXCEEDED. (An
 * async call's one status is on_done's, settled by the loop.) Caller
 * holds mu. */
static crpc_code ctx_err_settling_locked(ccall *call) {
  crpc_code code = crpc_ctx_err(call->ctx);
  if (code != CRPC_OK && !call->ended && !call->async) {
    const crpc_cause *cause = crpc_ctx_cause(call->ctx);
    call->ended = call->ended_by_ctx = true;
    call->code = code;
    call->message = strdup(cause != NULL ? cause->message : "");
    crpc_h2_outq_clear(&call->out);
  }
  return code;
}

/* Code a call that can no longer send reports, or CRPC_OK. Caller holds
 * mu. */
static crpc_code send_blocked_locked(ccall *call) {
  if (call->ended) return call->code;
  return ctx_err_settling_locked(call);
}

crpc_code crpc_call_send(crpc_call *call, const void *data, size_t len) {
  return crpc_call_send_flags(call, data, len, 0);
}

crpc_code ccall_send_core(ccall *call, const void *data, size_t len,
                          unsigned flags) {
  if (call->async) return CRPC_FAILED_PRECONDITION; /* would block a loop */
  crpc_code code = ccall_send_queue(call, data, len, flags, true);
  if (code == CRPC_OK) ccall_kick(call);
  return code;
}

static crpc_wire_encoding send_encoding(const ccall *call, unsigned flags) {
  return flags & CRPC_SEND_NO_COMPRESS ? CRPC_WIRE_ENCODING_IDENTITY
                                       : call->send_encoding;
}

static bool over_max_send(const ccall *call, size_t len) {
  return call->ch->max_send != 0 && len > call->ch->max_send;
}

/* Queues a framed message (taking it), waiting for room if `wait`. */
static crpc_code queue_chunk(ccall *call, crpc_h2_chunk *chunk, bool wait);

crpc_code ccall_send_queue(ccall *call, const void *data, size_t len,
                           unsigned flags, bool wait) {
  if (over_max_send(call, len)) return CRPC_RESOURCE_EXHAUSTED;
  crpc_code zcode;
  crpc_h2_chunk *chunk = crpc_h2_chunk_frame_encoded(
      send_encoding(call, flags), data, len, &zcode);
  return chunk == NULL ? zcode : queue_chunk(call, chunk, wait);
}

crpc_code ccall_send_buf_queue(ccall *call, crpc_buf *buf, unsigned flags,
                               bool wait) {
  if (over_max_send(call, crpc_buf_len(buf))) {
    crpc_buf_unref(buf);
    return CRPC_RESOURCE_EXHAUSTED;
  }
  crpc_code zcode;
  crpc_h2_chunk *chunk =
      crpc_h2_chunk_from_buf(send_encoding(call, flags), buf, &zcode);
  return chunk == NULL ? zcode : queue_chunk(call, chunk, wait);
}

static crpc_code queue_chunk(ccall *call, crpc_h2_chunk *chunk, bool wait) {
  crpc_code code;
  pthread_mutex_lock(&call->mu);
  for (;;) {
    code = send_blocked_locked(call);
    if (code != CRPC_OK) break;
    if (call->send_closed) {
      code = CRPC_FAILED_PRECONDITION;
      break;
    }
    /* Below the limit any message goes in (the next is queued while the
     * loop writes this one); without waiting, the caller bounds it. */
    if (!wait || call->out.bytes < CHANNEL_SEND_BUFFER) {
      crpc_h2_outq_push(&call->out, chunk);
      chunk = NULL;
      break;
    }
    if (call->unsent) {
      resend_locked(call);
      continue;
    }
    call->send_waiters++;
    crpc_ctx_wait_cond(call->ctx, &call->cond, &call->mu);
    call->send_waiters--;
  }
  pthread_mutex_unlock(&call->mu);
  crpc_h2_chunk_unref(chunk);
  return code;
}

crpc_code crpc_call_close_send(crpc_call *call) {
  pthread_mutex_lock(&call->mu);
  crpc_code code = send_blocked_locked(call);
  bool was = call->send_closed;
  call->send_closed = true;
  pthread_mutex_unlock(&call->mu);
  if (code == CRPC_OK && !was) ccall_kick_from_user(call);
  return code == CRPC_OK || was ? CRPC_OK : code;
}

crpc_code ccall_recv_core(ccall *call, crpc_message *msg) {
  msg->data = NULL;
  msg->len = 0;
  msg->end = false;
  msg->compressed = false;
  if (call->async) return CRPC_FAILED_PRECONDITION; /* on_message has them */
  crpc_code code = CRPC_OK;
  bool kick = false;
  pthread_mutex_lock(&call->mu);
  for (;;) {
    /* A cancel wins over buffered messages, unless the status had
     * already arrived. */
    if ((!call->ended || call->ended_by_ctx) &&
        (code = ctx_err_settling_locked(call)) != CRPC_OK) {
      break;
    }
    if (crpc_h2_msgq_pop(&call->in.q, msg)) {
      kick = !call->ended &&
             crpc_h2_inbound_return_due(&call->in, call->ch->stream_window);
      break;
    }
    if (call->ended) {
      code = call->code;
      msg->end = code == CRPC_OK;
      break;
    }
    if (call->unsent) {
      resend_locked(call);
      continue;
    }
    call->recv_waiters++;
    crpc_ctx_wait_cond(call->ctx, &call->cond, &call->mu);
    call->recv_waiters--;
  }
  pthread_mutex_unlock(&call->mu);
  if (kick) ccall_kick(call); /* give the window back */
  return code;
}

const crpc_metadata *crpc_call_response_headers(crpc_call *call) {
  const crpc_metadata *md = NULL;
  pthread_mutex_lock(&call->mu);
  /* An async call never waits here (a callback may be asking). */
  while (!call->async && !call->got_headers && !call->ended) {
    if (call->unsent && crpc_ctx_err(call->ctx) == CRPC_OK) {
      resend_locked(call);
      continue;
    }
    call->hdr_waiters++;
    crpc_code code = crpc_ctx_wait_cond(call->ctx, &call->cond, &call->mu);
    call->hdr_waiters--;
    if (code != CRPC_OK) break;
  }
  if (call->got_headers) md = call->resp_md;
  pthread_mutex_unlock(&call->mu);
  return md;
}

crpc_code ccall_finish_core(ccall *call, crpc_status *status) {
  crpc_code code;
  const char *msg = "";
  const crpc_metadata *trailers = NULL;
  if (call->async) {
    if (status != NULL) memset(status, 0, sizeof(*status));
    return CRPC_FAILED_PRECONDITION; /* on_done has the status */
  }
  pthread_mutex_lock(&call->mu);
  for (;;) {
    if (call->ended) {
      code = call->code;
      msg = call->message;
      trailers = call->trailers;
      break;
    }
    code = ctx_err_settling_locked(call);
    if (code != CRPC_OK) {
      msg = call->message;
      break;
    }
    if (call->unsent) {
      resend_locked(call);
      continue;
    }
    crpc_ctx_wait_cond(call->ctx, &call->cond, &call->mu);
  }
  crpc_h2_msgq_clear(&call->in.q);
  if (status != NULL) {
    status->code = code;
    status->message = strdup(msg ? msg : "");
    status->trailers = crpc_metadata_new();
    if (status->trailers != NULL) {
      crpc_metadata_append(status->trailers, trailers);
    }
  }
  pthread_mutex_unlock(&call->mu);
  return code;
}

void crpc_call_free(crpc_call *call) {
  if (call == NULL) return;
  /* Ends the call ctx; its on_cancel kicks the loop, which resets the
   * stream if it is still open. A finished call's stream is closed. */
  crpc_ctx_cancel(call->ctx, CRPC_CANCELLED, "call freed");
  ccall_unref(call);
}

/* A call's one request was refused locally (over max_send_message_size,
 * compression failed): end the call with that code rather than wait, until
 * the deadline, for a reply to a request the server never got. A no-op if
 * the call or its ctx had already ended (then that is the status). */
static void end_unsent_request(crpc_call *call, crpc_code code, size_t request_len) {
  const crpc_channel *ch = call->ch;
  if (code == CRPC_RESOURCE_EXHAUSTED && ch->max_send != 0 && request_len > ch->max_send) {
    crpc_ctx_cancel_cause(call->ctx, code, CRPC_ORIGIN_LOCAL,
                          "request is %zu bytes, over this channel's "
                          "max_send_message_size of %zu",
                          request_len, ch->max_send);
  } else {
    crpc_ctx_cancel_cause(call->ctx, code, CRPC_ORIGIN_LOCAL, "request not sent (%s)",
                          crpc_code_name(code));
  }
}

/* Starts a call and sends its one request (`buf` if not NULL, consumed
 * either way; else a copy of data/len), then half-closes, as one step:
 * the kicks are held (ccall_hold_kicks) so the request goes out once,
 * whole. *call is NULL if the start failed; a request refused after it
 * ends the call (end_unsent_request). */
static crpc_code start_one_request(crpc_channel *ch, const crpc_ctx *ctx, const char *method,
                                   const crpc_metadata *metadata, crpc_buf *buf,
                                   const void *data, size_t len, crpc_call **call) {
  ccall_kick_hold hold;
  ccall_hold_kicks(&hold);
  crpc_code code = crpc_call_start(ch, ctx, method, metadata, call);
  if (code != CRPC_OK) {
    ccall_release_kicks(&hold);
    if (buf != NULL) crpc_buf_unref(buf);
    return code;
  }
  code = buf != NULL ? crpc_call_send_buf(*call, buf, 0) : crpc_call_send(*call, data, len);
  if (code == CRPC_OK) code = crpc_call_close_send(*call);
  ccall_release_kicks(&hold);
  if (code != CRPC_OK) end_unsent_request(*call, code, len);
  return code;
}

crpc_code crpc_call_start_request(crpc_channel *ch, const crpc_ctx *ctx, const char *method,
                                  const crpc_metadata *metadata, crpc_buf *request,
                                  crpc_call **call) {
  return start_one_request(ch, ctx, method, metadata, request, NULL, crpc_buf_len(request),
                           call);
}

crpc_code crpc_unary_call(crpc_channel *ch, const crpc_ctx *ctx,
                          const char *method, const crpc_metadata *metadata,
                          const void *request, size_t request_len,
                          crpc_message *response, crpc_status *status) {
  crpc_call *call;
  if (response != NULL) memset(response, 0, sizeof(*response));
  crpc_code code =
      start_one_request(ch, ctx, method, metadata, NULL, request, request_len, &call);
  if (call == NULL) {
    if (status != NULL) {
      start_failure_status(ch, ctx, method, NULL, code, status);
    }
    return code;
  }
  crpc_message reply = {0};
  if (code == CRPC_OK) code = crpc_call_recv(call, &reply);
  const char *protocol_error = NULL;
  if (code == CRPC_OK && reply.end) {
    protocol_error = "server sent no response message";
  } else if (code == CRPC_OK) {
    crpc_message extra;
    if (crpc_call_recv(call, &extra) == CRPC_OK && !extra.end) {
      free(extra.data);
      protocol_error = "server sent more than one response message";
    }
  }
  crpc_code final = crpc_call_finish(call, status);
  if (final == CRPC_OK && protocol_error != NULL) {
    /* The status said OK but the stream broke the unary contract. */
    if (status != NULL) {
      status->code = CRPC_INTERNAL;
      free(status->message);
      status->message = strdup(protocol_error);
    }
    final = CRPC_INTERNAL;
  }
  if (final == CRPC_OK && response != NULL) {
    *response = reply;
  } else {
    free(reply.data);
  }
  crpc_call_free(call);
  return final;
}
