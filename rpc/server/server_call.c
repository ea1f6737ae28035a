/*
 * server_call.c - one server call: request checks and dispatch, the loop's
 * side of sending (headers, data provider, trailers), cancellation.
 * The handler-facing API is in server_api.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/ctx/ctx_owned_deadline.h"
#include "rpc/h2/limits.h"
#include "rpc/log/log.h"
#include "rpc/mem/mem.h"
#include "rpc/server/server_internal.h"
#include "rpc/wire/status_map.h"
#include "rpc/wire/timeout.h"

scall *scall_new(sconn *conn, int32_t stream_id) {
  scall *call = crpc_mem_calloc(1, sizeof(*call));
  if (call == NULL) return NULL;
  atomic_init(&call->refs, 1);
  atomic_init(&call->resume_pending, false);
  call->server = conn->server;
  call->sl = conn->sl;
  call->conn = conn;
  call->stream_id = stream_id;
  pthread_mutex_init(&call->mu, NULL);
  pthread_cond_init(&call->cond, NULL);
  call->req_md = &call->md_storage[0];
  call->resp_md = &call->md_storage[1];
  call->trailers_md = &call->md_storage[2];
  for (int i = 0; i < 3; i++) crpc_wire_metadata_init(&call->md_storage[i]);
  crpc_h2_inbound_init(&call->in, call->server->opts.max_recv_message_size,
                       true);
  call->peer = conn->peer;
  atomic_fetch_add(&call->peer->refs, 1);
  server_count(call->server, &call->server->live_structs, 1);
  return call;
}

char *scall_hdr_dup(scall *call, const uint8_t *value, size_t len) {
  if (len < sizeof(call->hdr_store) - call->hdr_used) {
    char *p = call->hdr_store + call->hdr_used;
    memcpy(p, value, len);
    p[len] = '\0';
    call->hdr_used += len + 1;
    return p;
  }
  return strndup((const char *)value, len);
}

void scall_hdr_free(scall *call, char *copy) {
  /* Space in the store is not reused: a repeated header is rare, and the
   * store then only fills sooner. */
  uintptr_t p = (uintptr_t)copy, store = (uintptr_t)call->hdr_store;
  if (p < store || p >= store + sizeof(call->hdr_store)) free(copy);
}

void scall_ref(scall *call) { atomic_fetch_add(&call->refs, 1); }

void scall_unref(scall *call) {
  if (atomic_fetch_sub(&call->refs, 1) != 1) return;
  crpc_ctx_release(call->ctx);
  crpc_h2_inbound_destroy(&call->in);
  crpc_h2_outq_clear(&call->out);
  for (int i = 0; i < 3; i++) crpc_wire_metadata_destroy(&call->md_storage[i]);
  scall_hdr_free(call, call->path);
  scall_hdr_free(call, call->content_type);
  scall_hdr_free(call, call->http_method);
  scall_hdr_free(call, call->timeout);
  scall_hdr_free(call, call->encoding);
  scall_hdr_free(call, call->accept_encoding);
  free(call->final_msg);
  free(call->handler_msg);
  pthread_mutex_destroy(&call->mu);
  pthread_cond_destroy(&call->cond);
  server_peer_unref(call->peer);
  crpc_server *s = call->server;
  crpc_mem_free(call);
  server_count(s, &s->live_structs, -1);
}

static void kick_fn(crpc_loop *loop, void *arg);

/* A blocking handler has returned: its thread writes the status itself
 * when the loop sleeps (crpc_loop_borrow), instead of waking the loop for
 * it, one hand-off less per call. Only then: a streaming handler's sends
 * stay batched on the loop, and async reactors' callbacks stay on it. */
static bool kick_by_borrowing(scall *call) {
  if (!call->dispatched || server_method_is_async(call->method)) return false;
  /* pool_backlog only once handler_done says the handler has returned:
   * its thread wrote the flag before running it, and a kick from another
   * thread (an admin cancel) may come before the flag is written. */
  return atomic_load_explicit(&call->handler_done, memory_order_acquire) &&
         !call->pool_backlog &&
         crpc_loop_borrow(call->sl->loop, kick_fn, call);
}

/* Queues a kick holding the caller's reference: on the connection's
 * list if its input is being read on this thread (it runs before the
 * flush that follows), else as a closure, unless the kick can run at once
 * on a borrowed loop. */
static void kick_with_ref(scall *call) {
  bool on_loop = crpc_loop_in_loop_thread(call->sl->loop);
  if (on_loop && call->conn != NULL && call->conn->h2.reading) {
    if (call->kick_local) {
      scall_unref(call); /* queued already, with its own reference */
      return;
    }
    call->kick_local = true;
    call->local_next = call->conn->local_kicks;
    call->conn->local_kicks = call;
    return;
  }
  if (!on_loop && kick_by_borrowing(call)) return;
  if (!crpc_loop_post_closure(call->sl->loop, &call->kick)) {
    scall_unref(call); /* already queued, with its own reference */
  }
}

void scall_kick(scall *call) {
  scall_ref(call);
  kick_with_ref(call);
}

/* The call ctx's on_cancel: the reference of the registration moves to the
 * kick (or is dropped if one is queued already). Any thread. */
static void on_ctx_cancel(void *arg, const crpc_cause *cause) {
  (void)cause;
  kick_with_ref(arg);
}

void scall_run_local_kicks(sconn *conn, bool post) {
  while (conn->local_kicks != NULL) {
    scall *call = conn->local_kicks;
    conn->local_kicks = call->local_next;
    call->kick_local = false;
    if (!post) {
      kick_fn(NULL, call); /* drops the reference */
    } else if (!crpc_loop_post_closure(call->sl->loop, &call->kick)) {
      scall_unref(call);
    }
  }
}

/* The data provider: drains the send queue; defers while it is empty and
 * the call is not finished; ends with trailers once it is. */
ssize_t scall_read_data(nghttp2_session *session, int32_t stream_id,
                        uint8_t *buf, size_t length, uint32_t *data_flags,
                        nghttp2_data_source *source, void *user_data) {
  (void)session;
  (void)stream_id;
  (void)user_data;
  scall *call = source->ptr;
  pthread_mutex_lock(&call->mu);
  size_t n;
  bool finish;
  bool zero_copy = crpc_h2_conn_zero_copy(&call->conn->h2);
  if (zero_copy) {
    /* The bytes stay queued; scall_send_data takes them by reference
     * right after, within the same nghttp2_session_mem_send. */
    n = call->out.bytes < length ? call->out.bytes : length;
    finish = call->finished && call->out.bytes == n;
    if (n > 0) *data_flags |= NGHTTP2_DATA_FLAG_NO_COPY;
  } else {
    n = crpc_h2_outq_read(&call->out, buf, length);
    finish = call->finished && call->out.bytes == 0;
  }
  crpc_code code = call->final_code;
  bool user_trailers = call->final_user_trailers;
  if (n == 0 && !finish) call->deferred = true;
  bool ready = call->want_ready &&
               call->out.bytes < scall_send_limit_locked(call);
  /* Zero-copy: nothing has left the queue yet; scall_send_data wakes a
   * blocked sender once the bytes are written (a wake-up here found the
   * queue as full as before: a futex round trip per DATA frame). */
  bool room = !zero_copy && n > 0 && scall_take_send_wake_locked(call);
  size_t held = scall_held_locked(call);
  pthread_mutex_unlock(&call->mu);
  scall_charge(call, held); /* written (copied) bytes leave the count */
  /* Woken after the unlock: a sender woken under it would only block on
   * the mutex again (a switch there and back on a busy core). */
  if (room) pthread_cond_broadcast(&call->cond);
  if (ready) scall_kick(call); /* on_send_ready, outside nghttp2 */
  if (n == 0 && !finish) return NGHTTP2_ERR_DEFERRED;
  if (finish) {
    /* final_msg is immutable once finished is set. */
    *data_flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
    scall_submit_trailers(call, code, call->final_msg, user_trailers);
  }
  return (ssize_t)n;
}

bool scall_take_send_wake_locked(scall *call) {
  /* A blocked sender is woken once a quarter of the limit is left: it then
   * queues about three quarters (three 64 KiB messages under the
   * four-message limit) per wake-up while the loop writes the rest; and
   * once per wait, not once per DATA frame written before it runs. */
  if (call->send_waiters == 0 || call->send_woken) return false;
  if (call->out.bytes > scall_send_limit_locked(call) / 4) return false;
  call->send_woken = true;
  return true;
}

int scall_send_data(scall *call, const uint8_t *framehd, size_t length) {
  pthread_mutex_lock(&call->mu);
  int rc = crpc_h2_conn_send_data(&call->conn->h2, framehd, &call->out,
                                  length);
  size_t limit = scall_send_limit_locked(call);
  bool ready = call->want_ready && call->out.bytes < limit;
  bool wake = scall_take_send_wake_locked(call);
  size_t held = scall_held_locked(call);
  pthread_mutex_unlock(&call->mu);
  scall_charge(call, held); /* bytes on their way out leave the count */
  if (wake) pthread_cond_broadcast(&call->cond); /* after the unlock */
  if (ready) scall_kick(call);
  return rc;
}

/* Decides the final status if the handler returned or the ctx ended.
 * Caller holds mu. Returns true if it did now. */
static bool decide_final_locked(scall *call) {
  if (call->finished) return false;
  const crpc_cause *cause = crpc_ctx_cause(call->ctx);
  if (call->handler_done && !call->ctx_done_at_return && call->md_error) {
    call->final_code = CRPC_INTERNAL;
    call->final_msg = strdup("handler set a reserved metadata key");
  } else if (call->handler_done && !call->ctx_done_at_return) {
    call->final_code = call->handler_code;
    call->final_msg = call->handler_msg;
    call->handler_msg = NULL;
    call->final_user_trailers = true;
  } else if (cause != NULL) {
    call->final_code = cause->code;
    call->final_msg = strdup(cause->message);
    scall_drop_queue_locked(call, true);
  } else {
    return false;
  }
  call->finished = true;
  pthread_cond_broadcast(&call->cond);
  return true;
}

/* Everything the loop does for a call: give back flow-control window,
 * decide the status, submit headers / resume data / trailers. */
static void kick_fn(crpc_loop *loop, void *arg) {
  (void)loop;
  scall *call = arg;
  scall_live_kick(call); /* the registry notes a ctx just done */
  if (call->dispatched && server_method_is_async(call->method)) {
    scall_async_events(call);
    if (atomic_load_explicit(&call->resume_pending, memory_order_relaxed) &&
        atomic_exchange_explicit(&call->resume_pending, false,
                                 memory_order_acquire)) {
      scall_async_deliver(call); /* crpc_server_call_resume_recv */
    }
  } else if (call->dispatched) {
    scall_submit_when_ready(call); /* the ctx may have ended */
    scall_slot_update(call);       /* its handler may have returned */
  }
  if (call->conn == NULL || call->conn->h2.closed || !call->dispatched) {
    scall_unref(call);
    return;
  }
  pthread_mutex_lock(&call->mu);
  size_t consume = crpc_h2_inbound_take_consumable(&call->in);
  decide_final_locked(call);
  bool finished = call->finished;
  bool has_data = call->out.bytes > 0;
  bool was_deferred = call->deferred;
  if (has_data || finished) call->deferred = false;
  size_t held = scall_held_locked(call);
  pthread_mutex_unlock(&call->mu);

  nghttp2_session *session = scall_session(call);
  if (consume > 0) {
    nghttp2_session_consume_stream(session, call->stream_id, consume);
  }
  /* What a handler sent (it kicks after queuing) or a reactor sent from
   * on_send_ready / on_cancel, above. */
  if (scall_charge(call, held) && !finished) {
    scall_fail_over_budget(call); /* kicks again to send the status */
    scall_unref(call);
    return;
  }
  if (!call->headers_submitted && finished && !has_data) {
    scall_submit_trailers_only(call, 200, call->final_code, call->final_msg,
                         call->final_user_trailers ? call->resp_md : NULL,
                         call->final_user_trailers ? call->trailers_md : NULL);
  } else if (!call->headers_submitted && (has_data || finished)) {
    scall_submit_headers(call);
  } else if (was_deferred && (has_data || finished)) {
    nghttp2_session_resume_data(session, call->stream_id);
  }
  crpc_h2_conn_want_flush(&call->conn->h2);
  scall_unref(call);
}

/* ---- request checks and dispatch -------------------------------------- */

/* An async call's reactor hears of its ctx ending in the same loop
 * iteration, not one kick later: cancel latency is what crpc promises.
 * Safe inside nghttp2 callbacks, as whatever the reactor does in
 * on_cancel (send, finish) only queues and kicks. Loop thread. */
static void tell_reactor_now(scall *call) {
  if (call->dispatched && server_method_is_async(call->method)) {
    scall_async_events(call);
  }
}

/* The grpc-timeout expired: the call ctx ends DEADLINE_EXCEEDED, and its
 * on_cancel kick sends that status. Loop thread. */
static void deadline_fn(crpc_loop *loop, crpc_loop_timer *timer, void *arg) {
  (void)loop;
  (void)timer;
  scall *call = arg;
  pthread_mutex_lock(&call->mu);
  /* From when it was due: a late timer is part of the path. */
  scall_note_cancel_locked(call, crpc_ctx_deadline(call->ctx));
  pthread_mutex_unlock(&call->mu);
  crpc_ctx_cancel_cause(call->ctx, CRPC_DEADLINE_EXCEEDED,
                        CRPC_ORIGIN_DEADLINE, "deadline exceeded");
  tell_reactor_now(call);
}

/* An error answer before any handler ran; the call stays a "rejected"
 * stream until it closes. */
static void reject(scall *call, int http_status, crpc_code code,
                   const char *msg) {
  call->rejected = true;
  scall_submit_trailers_only(call, http_status, code, msg, NULL, NULL);
}

static bool grpc_content_type(const char *ct) {
  if (ct == NULL || strncmp(ct, "application/grpc", 16) != 0) return false;
  return ct[16] == '\0' || ct[16] == '+' || ct[16] == ';';
}

void scall_dispatch(scall *call) {
  crpc_server *s = call->server;
  char msg[200];
  if (call->http_method == NULL || strcmp(call->http_method, "POST") != 0) {
    reject(call, 405, CRPC_INTERNAL, "gRPC requires method POST");
    return;
  }
  if (!grpc_content_type(call->content_type)) {
    /* Not a gRPC request: an HTTP error a plain HTTP client understands,
     * with grpc-status for gRPC clients, as the protocol spec says. */
    snprintf(msg, sizeof(msg), "invalid gRPC request content-type \"%s\"",
             call->content_type ? call->content_type : "");
    reject(call, 415, CRPC_INTERNAL, msg);
    return;
  }
  if (call->hdr_bytes > s->opts.max_metadata_size) {
    /* Checked before the path: the call is refused whatever it names. */
    snprintf(msg, sizeof(msg),
             "request metadata is %zu bytes, over this server's "
             "max_metadata_size of %zu",
             call->hdr_bytes, s->opts.max_metadata_size);
    reject(call, 200, CRPC_RESOURCE_EXHAUSTED, msg);
    return;
  }
  if (call->bad_header) {
    reject(call, 200, CRPC_RESOURCE_EXHAUSTED, "server out of memory");
    return;
  }
  call->method = call->path ? server_find_method(s, call->path) : NULL;
  if (call->method == NULL) {
    snprintf(msg, sizeof(msg), "unknown method %.150s",
             call->path ? call->path : "(no :path)");
    reject(call, 200, CRPC_UNIMPLEMENTED, msg);
    return;
  }
  int64_t deadline = CRPC_NO_DEADLINE;
  if (call->timeout != NULL) {
    int64_t ns;
    const char *why;
    if (crpc_wire_timeout_decode(call->timeout, strlen(call->timeout), &ns,
                                 &why) != CRPC_OK) {
      snprintf(msg, sizeof(msg), "malformed grpc-timeout \"%.20s\": %s",
               call->timeout, why);
      reject(call, 200, CRPC_INTERNAL, msg);
      return;
    }
    /* From the request's arrival, not now: the client measured the
     * timeout when it sent it. */
    int64_t now = crpc_h2_conn_arrival_ns(&call->conn->h2);
    deadline = ns >= CRPC_NO_DEADLINE - now ? CRPC_NO_DEADLINE : now + ns;
  }
  if (call->encoding != NULL) {
    call->in.encoding =
        crpc_wire_encoding_parse(call->encoding, strlen(call->encoding));
    if (call->in.encoding == CRPC_WIRE_ENCODING_UNKNOWN) {
      snprintf(msg, sizeof(msg), "unsupported grpc-encoding \"%.50s\"",
               call->encoding);
      reject(call, 200, CRPC_UNIMPLEMENTED, msg);
      return;
    }
  }
  if (call->method->kind == CRPC_UNARY ||
      call->method->kind == CRPC_SERVER_STREAMING) {
    /* One request message, as gRPC servers insist (grpc-go and grpc-java
     * answer INTERNAL too): a second, found as it is decoded (before it is
     * decompressed), fails the call INTERNAL through fail_call, whichever
     * handler style runs it. One that comes after the status is decided
     * changes nothing: the call has ended. */
    call->in.max_messages = 1;
    call->in.too_many =
        call->method->kind == CRPC_UNARY
            ? "more than one request message for a unary call"
            : "more than one request message for a server-streaming call";
  }
  /* The ctx carries the deadline (handlers and downstream calls read it)
   * but this loop's timer fires it, not the process-wide ctx timer thread:
   * no cross-thread hop, and it is as late as the loop, never later. */
  call->ctx = ctx_with_owned_deadline(s->root, deadline);
  if (call->ctx == NULL) {
    reject(call, 200, CRPC_RESOURCE_EXHAUSTED, "server out of memory");
    return;
  }
  call->dispatched = true;
  crpc_loop_closure_init(&call->kick, kick_fn, call);
  crpc_loop_timer_init(&call->deadline_timer, call->sl->loop, deadline_fn, call);
  crpc_loop_timer_set_precise(&call->deadline_timer, true);
  if (deadline != CRPC_NO_DEADLINE) {
    crpc_loop_timer_start(&call->deadline_timer, deadline);
  }
  scall_live_link(call); /* listed until its stream closes */
  scall_ref(call); /* the registration's */
  if (!crpc_ctx_on_cancel(call->ctx, &call->on_cancel, on_ctx_cancel, call)) {
    /* Born done (zero timeout, server shutting down): the kick answers. */
    on_ctx_cancel(call, crpc_ctx_cause(call->ctx));
  }
  bool one_request = call->method->kind == CRPC_UNARY ||
                     call->method->kind == CRPC_SERVER_STREAMING;
  /* request_timeout, for both handler styles; END_STREAM in this HEADERS
   * frame (or the message) ends the wait right after. */
  if (one_request) {
    int64_t read_at = call->conn->h2.last_read_ns;
    scall_request_wait(call, read_at != 0 ? read_at : crpc_now_ns());
  }
  if (server_method_is_async(call->method)) {
    scall_async_start(call);
    /* what on_start sent */
    if (scall_recharge(call)) scall_fail_over_budget(call);
    return;
  }
  scall_ref(call); /* the handler's */
  atomic_fetch_add(&s->live_calls, 1);
  if (one_request) {
    /* Its handler starts with a recv that would only wait: a stalled
     * request costs memory, never a thread. */
    call->awaiting_request = true;
    return; /* END_STREAM in this HEADERS frame submits it */
  }
  scall_pool_enter(call);
}

void scall_submit_when_ready(scall *call) {
  if (!call->awaiting_request) return;
  pthread_mutex_lock(&call->mu);
  bool ready = call->in.q.count > 0 || call->recv_end ||
               call->recv_err != CRPC_OK || call->reset;
  pthread_mutex_unlock(&call->mu);
  if (!ready && !crpc_ctx_is_done(call->ctx)) return;
  call->awaiting_request = false;
  scall_pool_enter(call); /* no thread if the ctx is done already */
}

/* Fails a running call from the loop (bad message): status now, ctx
 * cancelled so the handler stops. Not with mu held. */
static void fail_call(scall *call, crpc_code code, const char *msg) {
  scall_request_done(call); /* the request will not come now */
  pthread_mutex_lock(&call->mu);
  call->recv_err = code;
  if (!call->finished) {
    call->finished = true;
    call->final_code = code;
    call->final_msg = strdup(msg);
    scall_drop_queue_locked(call, true);
  }
  pthread_cond_broadcast(&call->cond);
  pthread_mutex_unlock(&call->mu);
  crpc_ctx_cancel_cause(call->ctx, code, CRPC_ORIGIN_LOCAL, "%s", msg);
  scall_submit_when_ready(call);
  scall_kick(call);
}

void scall_fail(scall *call, crpc_code code, const char *msg) {
  fail_call(call, code, msg);
}

void scall_on_data(scall *call, const uint8_t *data, size_t len) {
  nghttp2_session *session = scall_session(call);
  if (!call->dispatched) {
    nghttp2_session_consume_stream(session, call->stream_id, len);
    return;
  }
  crpc_wire_error err;
  pthread_mutex_lock(&call->mu);
  if (call->in.q.count == 0) call->in_queued = 0;
  crpc_h2_msg *last = call->in.q.tail; /* what feed adds comes after */
  crpc_code code = call->recv_err != CRPC_OK
                       ? CRPC_OK
                       : crpc_h2_inbound_feed(&call->in, data, len, &err);
  if (call->recv_err != CRPC_OK) call->in.held += len;
  for (crpc_h2_msg *m = last != NULL ? last->next : call->in.q.head;
       m != NULL; m = m->next) {
    call->in_queued += m->len;
  }
  bool got_request = call->in.total > 0;
  size_t held = scall_held_locked(call);
  bool finished = call->finished;
  size_t consume = crpc_h2_inbound_take_consumable(&call->in);
  bool wake = call->in.q.count > 0 && call->recv_waiters > 0;
  pthread_mutex_unlock(&call->mu);
  if (wake) pthread_cond_broadcast(&call->cond); /* after the unlock */
  if (consume > 0) {
    nghttp2_session_consume_stream(session, call->stream_id, consume);
  }
  if (got_request) scall_request_done(call);
  if (code != CRPC_OK) {
    fail_call(call, code, err.message);
    return;
  }
  if (server_method_is_async(call->method)) {
    scall_async_deliver(call);
    /* After the reactor's on_message: what it sent is counted before the
     * next stream's runs (a burst of requests on one connection read in
     * one go would otherwise queue all their replies first). */
    if (scall_recharge(call)) scall_fail_over_budget(call);
  } else if (scall_charge(call, held) && !finished) {
    scall_fail_over_budget(call);
  } else {
    scall_submit_when_ready(call);
  }
}

void scall_on_end_stream(scall *call) {
  if (!call->dispatched) return;
  pthread_mutex_lock(&call->mu);
  call->recv_end = true;
  crpc_code code = crpc_wire_frame_decoder_finish(&call->in.decoder);
  bool failed = code != CRPC_OK && call->recv_err == CRPC_OK;
  pthread_cond_broadcast(&call->cond);
  pthread_mutex_unlock(&call->mu);
  scall_request_done(call); /* the request is complete (or never comes) */
  if (failed) {
    fail_call(call, code,
              crpc_wire_frame_decoder_error(&call->in.decoder)->message);
  } else if (server_method_is_async(call->method)) {
    scall_async_deliver(call);
    /* as in scall_on_data */
    if (scall_recharge(call)) scall_fail_over_budget(call);
  } else {
    scall_submit_when_ready(call);
  }
}

void scall_on_close(scall *call, uint32_t error_code, const char *conn_lost) {
  sconn *conn = call->conn;
  call->conn = NULL; /* kicks from now on find nothing to do */
  /* The ctx is done by now (status sent, or cancelled just below). */
  if (call->dispatched) crpc_loop_timer_stop(&call->deadline_timer);
  if (call->dispatched && !call->end_stream_sent) {
    /* The stream ended before our status went out: the client reset it
     * (or the connection died). Mark it first, under mu, so a send racing
     * with us writes nothing; then cancel outside mu. */
    pthread_mutex_lock(&call->mu);
    call->reset = true;
    scall_drop_queue_locked(call, false);
    /* When the RST_STREAM reached this host (the kernel's stamp: the
     * loop's own wake-up then counts in event -> ctx done, as it should);
     * a lost connection is noticed now. */
    int64_t event = conn_lost == NULL && conn != NULL && conn->h2.last_read_ns
                        ? crpc_h2_conn_arrival_ns(&conn->h2)
                        : crpc_now_ns();
    scall_note_cancel_locked(call, event);
    pthread_cond_broadcast(&call->cond);
    pthread_mutex_unlock(&call->mu);
    if (conn_lost != NULL) {
      crpc_ctx_cancel_cause(call->ctx, CRPC_UNAVAILABLE,
                            CRPC_ORIGIN_CONNECTION_LOST,
                            "connection to %s lost: %s", call->peer->addr,
                            conn_lost);
    } else {
      crpc_ctx_cancel_cause(call->ctx, CRPC_CANCELLED, CRPC_ORIGIN_PEER_RESET,
                            "peer reset the stream (HTTP/2 error %u)",
                            error_code);
    }
    tell_reactor_now(call);
  }
  /* Out of the request and slot lists, its bytes uncharged; a call that
   * waited for a slot is finished here, with no thread. */
  if (conn != NULL) scall_limits_on_close(call, conn);
  scall_live_unlink(call);
  scall_unref(call);
}

bool scall_md_has_reserved(const crpc_metadata *md) {
  crpc_metadata_entry e;
  for (size_t i = 0; crpc_metadata_at(md, i, &e); i++) {
    if (crpc_metadata_key_is_reserved(e.key)) return true;
  }
  return false;
}

void scall_run_handler(scall *call) {
  crpc_code code;
  if (crpc_ctx_is_done(call->ctx)) {
    code = crpc_ctx_err(call->ctx); /* gone before a thread was free */
  } else {
    code = call->server->icpt != NULL
               ? scall_run_chain(call)
               : call->method->fn(call, call->ctx, call->method->user_data);
  }
  scall_handler_returned(call, code);
  /* A ctx that was done before the handler returned kicked the loop back
   * then; this kick tells the loop the handler is done, so the call's
   * handler slot (max_handlers_per_connection) is given back. */
  if (call->ctx_done_at_return) scall_kick(call);
  scall_unref(call);
}

void scall_handler_returned(scall *call, crpc_code code) {
  bool md_error = scall_md_has_reserved(call->trailers_md) ||
                  (!call->resp_checked && scall_md_has_reserved(call->resp_md));
  pthread_mutex_lock(&call->mu);
  call->md_error |= md_error;
  atomic_store_explicit(&call->handler_done, true, memory_order_release);
  call->handler_code = code;
  call->ctx_done_at_return = crpc_ctx_is_done(call->ctx);
  pthread_mutex_unlock(&call->mu);
  /* Ends the ctx ("the handler has returned"); its on_cancel kicks the loop
   * to send the status. */
  crpc_ctx_cancel(call->ctx, CRPC_CANCELLED, "call finished");
}
