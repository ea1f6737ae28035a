/*
 * call_wire.c - the loop's side of a client call: submitting the request,
 * the data provider, RST_STREAM on cancel, and turning response frames
 * into messages and a status. Loop thread only.
 */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/channel/channel_internal.h"
#include "rpc/h2/limits.h"
#include "rpc/log/log.h"
#include "rpc/mem/mem.h"
#include "rpc/wire/percent.h"
#include "rpc/wire/status_map.h"
#include "rpc/wire/timeout.h"

static ccall *stream_call(nghttp2_session *session, int32_t stream_id) {
  return nghttp2_session_get_stream_user_data(session, stream_id);
}

void ccall_settle(ccall *call, crpc_code code, const char *msg) {
  pthread_mutex_lock(&call->mu);
  if (!call->ended) {
    call->ended = true;
    call->code = code;
    call->message = strdup(msg ? msg : "");
    crpc_h2_outq_clear(&call->out);
  }
  pthread_mutex_unlock(&call->mu);
  /* After the unlock, so a woken waiter does not block on the mutex; the
   * caller's reference keeps the call. */
  pthread_cond_broadcast(&call->cond);
  if (call->async) ccall_kick(call); /* on_done */
}

/* The status for a stream that ended without one in its trailers: the
 * ctx's cause if it ended first (and DEADLINE_EXCEEDED once the deadline
 * has passed, whatever the reset said), else the HTTP status or the
 * RST_STREAM code. */
static void settle_abnormal(ccall *call, uint32_t error_code,
                            const char *conn_lost) {
  char msg[160];
  const crpc_cause *cause = crpc_ctx_cause(call->ctx);
  if (crpc_now_ns() >= crpc_ctx_deadline(call->ctx) || cause != NULL) {
    pthread_mutex_lock(&call->mu);
    if (!call->ended) call->ended_by_ctx = true;
    pthread_mutex_unlock(&call->mu);
    if (crpc_now_ns() >= crpc_ctx_deadline(call->ctx)) {
      ccall_settle(call, CRPC_DEADLINE_EXCEEDED, "deadline exceeded");
    } else {
      ccall_settle(call, cause->code, cause->message);
    }
  } else if (conn_lost != NULL) {
    snprintf(msg, sizeof(msg), "connection lost: %s", conn_lost);
    ccall_settle(call, CRPC_UNAVAILABLE, msg);
  } else if (call->http_status != 0 && call->http_status != 200) {
    snprintf(msg, sizeof(msg), "HTTP status %d", call->http_status);
    ccall_settle(call, crpc_wire_status_from_http(call->http_status), msg);
  } else {
    snprintf(msg, sizeof(msg), "stream reset by server (HTTP/2 error %u)",
             error_code);
    ccall_settle(call, crpc_wire_status_from_rst_stream(error_code, false),
                 msg);
  }
}

/* The status from the trailers (or trailers-only headers) just received. */
static void settle_from_trailers(ccall *call) {
  crpc_code code;
  char msg[160];
  char *text = NULL;
  if (call->grpc_status != NULL) {
    crpc_wire_grpc_status_parse(call->grpc_status, strlen(call->grpc_status),
                                &code);
    if (call->grpc_message != NULL) {
      text = crpc_wire_percent_decode(call->grpc_message,
                                      strlen(call->grpc_message), NULL);
    }
  } else if (call->http_status != 200) {
    code = crpc_wire_status_from_http(call->http_status);
    snprintf(msg, sizeof(msg), "HTTP status %d without grpc-status",
             call->http_status);
  } else {
    code = CRPC_INTERNAL;
    snprintf(msg, sizeof(msg), "server sent no grpc-status");
  }
  if (code == CRPC_OK) {
    /* A response cut inside a message is not OK. */
    pthread_mutex_lock(&call->mu);
    crpc_code fc = crpc_wire_frame_decoder_finish(&call->in.decoder);
    pthread_mutex_unlock(&call->mu);
    if (fc != CRPC_OK) {
      code = fc;
      free(text);
      text = NULL;
      snprintf(msg, sizeof(msg), "response ended inside a message");
    }
  }
  pthread_mutex_lock(&call->mu);
  if (!call->ended) {
    crpc_metadata_free(call->trailers);
    call->trailers = call->hdr_md;
    call->hdr_md = NULL;
  }
  pthread_mutex_unlock(&call->mu);
  ccall_settle(call, code, text ? text : (call->grpc_status ? "" : msg));
  free(text);
}

/* Marks a call whose request never reached the server for a resend by the
 * user's thread (see ccall.unsent). False if it may not be resent (ended,
 * ctx done, resent too often): then it ends like any failed call. */
static bool mark_unsent(ccall *call) {
  pthread_mutex_lock(&call->mu);
  bool ok = !call->ended && call->resends < CCALL_MAX_RESENDS &&
            !crpc_ctx_is_done(call->ctx) &&
            (!call->body_taken || !call->replay_off);
  if (ok) {
    call->unsent = true;
    if (call->replay != NULL) {
      /* What went to nghttp2 goes first again, then what was queued. */
      call->replay->off = 0;
      call->replay->refs = 1; /* the queue's, from now on */
      crpc_h2_outq_push_front(&call->out, call->replay);
      call->replay = NULL;
      call->replay_cap = 0;
    }
    pthread_cond_broadcast(&call->cond);
  }
  pthread_mutex_unlock(&call->mu);
  /* No user thread waits on an async call to resend it. */
  if (ok && call->async) ccall_async_connect(call);
  return ok;
}

/* Keeps n request bytes just handed to nghttp2 for a resend. Call mutex
 * held. */
static void keep_for_replay(ccall *call, const uint8_t *buf, size_t n) {
  if (call->replay_off) return;
  size_t len = call->replay != NULL ? call->replay->len : 0;
  if (len + n > CCALL_REPLAY_MAX) {
    call->replay_off = true;
  } else if (len + n > call->replay_cap) {
    size_t cap = call->replay_cap ? call->replay_cap * 2 : 1024;
    while (cap < len + n) cap *= 2;
    crpc_h2_chunk *c = crpc_mem_realloc(call->replay, sizeof(*c) + cap);
    if (c == NULL) {
      call->replay_off = true;
    } else {
      if (call->replay == NULL) c->len = c->off = 0;
      c->bytes = c->data; /* moved by realloc */
      c->buf = NULL;
      call->replay = c;
      call->replay_cap = cap;
    }
  }
  if (call->replay_off) {
    crpc_mem_free(call->replay);
    call->replay = NULL;
    call->replay_cap = 0;
    return;
  }
  memcpy(call->replay->data + call->replay->len, buf, n);
  call->replay->len += n;
}

/* The server answered: it has the request, so it is never sent again. */
static void drop_replay(ccall *call) {
  pthread_mutex_lock(&call->mu);
  call->replay_off = true;
  crpc_mem_free(call->replay);
  call->replay = NULL;
  call->replay_cap = 0;
  pthread_mutex_unlock(&call->mu);
}

void ccall_on_close(ccall *call, uint32_t error_code, const char *conn_lost) {
  call->stream_open = false;
  /* Never left: its HEADERS were still queued when the stream or the
   * connection ended, or the server refused the stream (REFUSED_STREAM,
   * also what nghttp2 reports for a stream above a GOAWAY's last id: not
   * processed). mark_unsent then also needs every body byte sent so far
   * still kept for the replay. */
  bool never_left = !call->headers_sent ||
                    error_code == NGHTTP2_REFUSED_STREAM;
  if (!never_left || !mark_unsent(call)) {
    settle_abnormal(call, error_code, conn_lost); /* no-op if settled */
  }
  ccall_live_update(call); /* unlisted unless it is to be resent */
  ccall_unref(call);
}

/* ---- sending -------------------------------------------------------------*/

static ssize_t read_data(nghttp2_session *session, int32_t stream_id,
                         uint8_t *buf, size_t length, uint32_t *data_flags,
                         nghttp2_data_source *source, void *user_data) {
  (void)session;
  (void)stream_id;
  (void)user_data;
  ccall *call = source->ptr;
  pthread_mutex_lock(&call->mu);
  size_t n = crpc_h2_outq_read(&call->out, buf, length);
  bool eof = call->send_closed && call->out.bytes == 0;
  if (n > 0) {
    call->body_taken = true;
    keep_for_replay(call, buf, n);
  }
  if (n == 0 && !eof) call->deferred = true;
  bool ready = call->want_send_ready && call->out.bytes < CHANNEL_SEND_BUFFER;
  bool room = n > 0 && call->send_waiters > 0;
  pthread_mutex_unlock(&call->mu);
  /* Woken after the unlock, so the sender does not block on the mutex. */
  if (room) pthread_cond_broadcast(&call->cond);
  if (ready) ccall_kick(call); /* on_send_ready */
  if (n == 0 && !eof) return NGHTTP2_ERR_DEFERRED;
  if (eof) *data_flags |= NGHTTP2_DATA_FLAG_EOF;
  return (ssize_t)n;
}

/* False (and the call settled RESOURCE_EXHAUSTED) if the request headers
 * are more than the server accepts: nghttp2 would send them anyway and
 * leave the server to refuse them, or fail a block over 64 KiB with a
 * misleading REFUSED_STREAM. Until the server's SETTINGS arrive its limit
 * is unknown and the server's own check answers instead. */
static bool request_fits(ccall *call) {
  size_t size = crpc_wire_headers_list_size(&call->req);
  size_t limit = crpc_h2_peer_header_limit(call->conn->h2.session);
  if (size <= limit) return true;
  char msg[200];
  snprintf(msg, sizeof(msg),
           "request headers (with metadata) are %zu bytes, over the %zu the "
           "server accepts (%s); not sent",
           size, limit,
           limit == CRPC_H2_MAX_SEND_HEADER_LIST
               ? "crpc's send cap"
               : "its SETTINGS_MAX_HEADER_LIST_SIZE");
  ccall_settle(call, CRPC_RESOURCE_EXHAUSTED, msg);
  return false;
}

/* Submits the request HEADERS (data follows from the send queue). */
static void submit(ccall *call) {
  call->submitted = true;
  size_t base = call->req.count; /* grpc-timeout is per attempt */
  int64_t remaining = crpc_ctx_remaining(call->ctx);
  if (remaining != CRPC_NO_DEADLINE) {
    char t[CRPC_WIRE_TIMEOUT_BUF];
    crpc_wire_timeout_encode(remaining, t);
    crpc_h2_headers_add(&call->req, "grpc-timeout", t);
  }
  if (!request_fits(call)) {
    crpc_wire_headers_destroy(&call->req);
    return;
  }
  nghttp2_nv nv_buf[CRPC_H2_NV_STACK];
  nghttp2_nv *nv = crpc_h2_nv_from(&call->req, nv_buf, CRPC_H2_NV_STACK);
  nghttp2_data_provider prd = {.source.ptr = call, .read_callback = read_data};
  int32_t id = nv == NULL
                   ? -1
                   : nghttp2_submit_request(call->conn->h2.session, NULL, nv,
                                            call->req.count, &prd, call);
  crpc_h2_nv_free(nv, nv_buf); /* nghttp2 copied the fields it had to */
  crpc_wire_headers_truncate(&call->req, base);
  if (id == NGHTTP2_ERR_START_STREAM_NOT_ALLOWED && mark_unsent(call)) {
    return; /* a GOAWAY arrived first: resent elsewhere */
  }
  if (id < 0) {
    ccall_settle(call, CRPC_UNAVAILABLE, "cannot start a stream");
    return;
  }
  call->stream_id = id;
  call->stream_open = true;
  atomic_fetch_add(&call->refs, 1); /* the stream's */
  cconn_link_call(call->conn, call);
}

void ccall_post_kick_ref(ccall *call) {
  if (!crpc_loop_post_closure(ccall_home(call)->loop, &call->kick)) {
    ccall_unref(call); /* already queued, with its own reference */
  }
}

/* Posts the kick to the call's home loop, with a reference of its own. */
static void post_kick(ccall *call) {
  atomic_fetch_add(&call->refs, 1);
  ccall_post_kick_ref(call);
}

/* Moves a call marked unsent to the connection its user's thread got for
 * it, as a fresh attempt. If that connection lives on another home, the
 * call moves there: this loop lets go of it (its registry listing
 * included), publishes the new home, and forwards the kick; true then,
 * and the caller must not touch the call again. */
static bool adopt_next_conn(ccall *call) {
  pthread_mutex_lock(&call->mu);
  cconn *next = call->next_conn;
  call->next_conn = NULL;
  pthread_mutex_unlock(&call->mu);
  if (next == NULL) return false;
  if (call->conn != NULL) cconn_release(call->conn);
  call->conn = next;
  call->stream_id = 0;
  call->submitted = call->rst_sent = call->deferred = false;
  call->headers_sent = call->body_taken = false;
  pthread_mutex_lock(&call->mu);
  call->replay_off = false; /* mark_unsent moved the bytes to the queue */
  pthread_mutex_unlock(&call->mu);
  if (next->home == ccall_home(call)) return false;
  ccall_live_unlist_for_move(call);
  /* Last: from here on the new home's loop may run the call. */
  atomic_store(&call->home, next->home);
  post_kick(call);
  return true;
}

static void kick_fn(crpc_loop *loop, void *arg) {
  ccall *call = arg;
  /* A kick posted before the call moved to another home (or borrowed on
   * the old one) goes on to the new home, whose loop alone runs it. */
  if (ccall_home(call)->loop != loop) {
    post_kick(call);
    ccall_unref(call);
    return;
  }
  if (adopt_next_conn(call)) {
    ccall_unref(call);
    return;
  }
  if (call->async) ccall_deliver(call);
  cconn *conn = call->conn;
  if (conn == NULL) {
    /* An async call the helper thread is still connecting for: only its
     * ctx can end it meanwhile. */
    if (crpc_ctx_is_done(call->ctx) && !call->submitted) {
      call->submitted = true;
      settle_abnormal(call, NGHTTP2_CANCEL, NULL);
    }
    ccall_live_update(call);
    ccall_unref(call);
    return;
  }
  if (!call->submitted) {
    if (!crpc_ctx_is_done(call->ctx) && !atomic_load(&conn->dead)) {
      cconn_attach(conn);
    }
    if (crpc_ctx_is_done(call->ctx)) {
      call->submitted = true;
      settle_abnormal(call, NGHTTP2_CANCEL, NULL);
    } else if (conn->h2.closed || atomic_load(&conn->dead)) {
      call->submitted = true;
      /* Handed a connection that went away (GOAWAY, idle, lost) before the
       * request could go: send it on another, else say why it closed (a
       * TLS alert, say). */
      if (!mark_unsent(call)) {
        settle_abnormal(call, NGHTTP2_REFUSED_STREAM,
                        conn->h2.close_why[0] ? conn->h2.close_why
                                              : "connection closed");
      }
    } else {
      submit(call);
    }
  }
  if (call->stream_open && !conn->h2.closed) {
    nghttp2_session *session = conn->h2.session;
    if (crpc_ctx_is_done(call->ctx)) {
      if (!call->rst_sent) {
        /* The cancel on the wire; on_stream_close settles the status.
         * Written now rather than in a coalesced flush: cancel latency is
         * the point, and we are not inside an nghttp2 callback. */
        call->rst_sent = true;
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, call->stream_id,
                                  NGHTTP2_CANCEL);
        if (!call->headers_sent) {
          /* Its HEADERS still waits in nghttp2 for a stream slot (the
           * server's MAX_CONCURRENT_STREAMS). The RST_STREAM above makes
           * nghttp2 drop it unsent, but nghttp2 closes the stream only
           * when that queue moves, which a server that keeps its limit
           * (0, or every slot busy) never lets happen: the call would
           * wait for on_stream_close as long as the connection lives.
           * Nothing left, so it ends here, with its ctx's cause. */
          nghttp2_session_set_stream_user_data(session, call->stream_id, NULL);
          cconn_unlink_call(conn, call);
          ccall_on_close(call, NGHTTP2_CANCEL, NULL);
        }
        crpc_h2_conn_flush(&conn->h2);
        ccall_live_update(call);
        ccall_unref(call);
        return;
      }
    } else {
      pthread_mutex_lock(&call->mu);
      size_t consume = crpc_h2_inbound_take_consumable(&call->in);
      bool resume =
          call->deferred && (call->out.bytes > 0 || call->send_closed);
      if (resume) call->deferred = false;
      pthread_mutex_unlock(&call->mu);
      if (consume > 0) {
        nghttp2_session_consume_stream(session, call->stream_id, consume);
      }
      if (resume) nghttp2_session_resume_data(session, call->stream_id);
    }
    crpc_h2_conn_want_flush(&conn->h2);
  }
  ccall_live_update(call); /* listed at the first kick, until it is over */
  ccall_unref(call);
}

/* The innermost ccall_hold_kicks scope of this thread, if any. */
static _Thread_local ccall_kick_hold *tl_hold;

void ccall_kick(ccall *call) {
  ccall_kick_hold *h = tl_hold;
  if (h != NULL && !call->async && (h->call == NULL || h->call == call)) {
    if (h->call == NULL) {
      atomic_fetch_add(&call->refs, 1); /* the held kick's */
      h->call = call;
    }
    return;
  }
  post_kick(call);
}

void ccall_hold_kicks(ccall_kick_hold *h) {
  h->call = NULL;
  h->outer = tl_hold;
  tl_hold = h;
}

/* A held kick on the borrowed loop, and the request's write right after
 * it unless input is waiting: a client reads what is waiting (a GOAWAY)
 * before it writes new requests (rpc/h2/conn.h, flush_in_batch), so then
 * the kick's flush stays posted and the loop reads first, as it does for
 * any posted kick. */
static void release_fn(crpc_loop *loop, void *arg) {
  ccall *call = arg;
  cconn *conn = call->conn;
  bool now = conn != NULL && !conn->h2.flush_soon &&
             !crpc_loop_input_pending(loop);
  if (now) {
    atomic_fetch_add(&conn->refs, 1); /* the kick may let the call go of it */
    conn->h2.flush_soon = true;      /* want_flush: no post, we flush */
  }
  kick_fn(loop, call); /* drops the held reference */
  if (now) {
    conn->h2.flush_soon = false;
    crpc_h2_conn_flush(&conn->h2);
    cconn_unref(conn);
  }
}

void ccall_release_kicks(ccall_kick_hold *h) {
  assert(tl_hold == h && "kick holds end innermost first");
  tl_hold = h->outer;
  ccall *call = h->call;
  if (call == NULL) return;
  crpc_loop *loop = ccall_home(call)->loop;
  if (crpc_loop_in_loop_thread(loop) ||
      !crpc_loop_borrow(loop, release_fn, call)) {
    ccall_post_kick_ref(call);
  }
}

bool ccall_kick_by_borrowing(ccall *call) {
  crpc_loop *loop = ccall_home(call)->loop;
  return !crpc_loop_in_loop_thread(loop) &&
         crpc_loop_borrow(loop, kick_fn, call);
}

void ccall_init_kick(ccall *call) {
  crpc_loop_closure_init(&call->kick, kick_fn, call);
}

/* ---- receiving -----------------------------------------------------------*/

/* Each header block (response headers, trailers) is measured on its own. */
static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *f,
                            void *user_data) {
  (void)user_data;
  ccall *call = stream_call(session, f->hd.stream_id);
  if (call != NULL) call->hdr_bytes = 0;
  return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *f,
                     const uint8_t *name, size_t namelen, const uint8_t *value,
                     size_t valuelen, uint8_t flags, void *user_data) {
  (void)flags;
  (void)user_data;
  if (f->hd.type != NGHTTP2_HEADERS) return 0;
  ccall *call = stream_call(session, f->hd.stream_id);
  if (call == NULL) return 0;
  /* max_metadata_size, counted as HTTP/2 does (nghttp2 does not enforce
   * what we advertise). Once over, nothing more is kept: on_frame_recv
   * fails the call. */
  call->hdr_bytes += namelen + valuelen + CRPC_H2_HEADER_FIELD_OVERHEAD;
  if (call->hdr_bytes > call->ch->max_metadata) return 0;
  const char *n = (const char *)name;
  const char *v = (const char *)value;
  if (namelen == 7 && memcmp(n, ":status", 7) == 0) {
    call->http_status = atoi(v);
  } else if (namelen == 11 && memcmp(n, "grpc-status", 11) == 0) {
    free(call->grpc_status);
    call->grpc_status = strndup(v, valuelen);
  } else if (namelen == 12 && memcmp(n, "grpc-message", 12) == 0) {
    free(call->grpc_message);
    call->grpc_message = strndup(v, valuelen);
  } else if (namelen == 13 && memcmp(n, "grpc-encoding", 13) == 0) {
    call->in.encoding = crpc_wire_encoding_parse(v, valuelen);
  } else if (namelen == 20 && memcmp(n, "grpc-accept-encoding", 20) == 0) {
    crpc_wire_encoding_set ok = crpc_wire_accept_encoding_parse(v, valuelen);
    atomic_store(&call->ch->refused_encodings, CRPC_WIRE_ENCODINGS_ALL & ~ok);
  } else {
    if (call->hdr_md == NULL) call->hdr_md = crpc_metadata_new();
    if (call->hdr_md != NULL) {
      crpc_wire_metadata_add_received(call->hdr_md, n, namelen, v, valuelen);
    }
  }
  return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *f,
                         void *user_data) {
  cconn *conn = user_data;
  if (crpc_log_trace_on(CRPC_LOG_SUB_H2)) {
    crpc_h2_trace_frame(&conn->h2, f, false);
  }
  if (f->hd.type == NGHTTP2_GOAWAY) {
    /* No new calls here; streams above last_stream_id are refused by
     * nghttp2 (UNAVAILABLE) and the rest finish normally. */
    atomic_store(&conn->dead, true);
    if (f->goaway.error_code != NGHTTP2_NO_ERROR) {
      const char *name = f->goaway.error_code == NGHTTP2_ENHANCE_YOUR_CALM
                             ? "ENHANCE_YOUR_CALM"
                             : "error";
      int dn = (int)(f->goaway.opaque_data_len < 40 ? f->goaway.opaque_data_len
                                                    : 40);
      snprintf(conn->goaway_why, sizeof(conn->goaway_why), "%s %u%s%.*s%s",
               name, f->goaway.error_code, dn ? " (" : "", dn,
               dn ? (const char *)f->goaway.opaque_data : "", dn ? ")" : "");
    }
    if (f->goaway.error_code == NGHTTP2_ENHANCE_YOUR_CALM &&
        f->goaway.opaque_data_len == 14 &&
        memcmp(f->goaway.opaque_data, "too_many_pings", 14) == 0) {
      /* As gRPC clients: ping half as often on the next connections. */
      crpc_channel *ch = conn->ch;
      int64_t t = atomic_load(&ch->ka_time);
      if (t > 0 && t < INT64_MAX / 2) atomic_store(&ch->ka_time, t * 2);
    }
    return 0;
  }
  ccall *call = stream_call(session, f->hd.stream_id);
  if (call == NULL) return 0;
  bool end = f->hd.flags & NGHTTP2_FLAG_END_STREAM;
  if (f->hd.type == NGHTTP2_HEADERS &&
      call->hdr_bytes > call->ch->max_metadata) {
    /* Over our limit: the call fails (the half-kept block is dropped) and,
     * if the stream is still open, it is cancelled so the server stops. */
    char msg[160];
    snprintf(msg, sizeof(msg),
             "response %s are %zu bytes, over this channel's "
             "max_metadata_size of %zu",
             f->headers.cat == NGHTTP2_HCAT_HEADERS ? "trailers" : "headers",
             call->hdr_bytes, call->ch->max_metadata);
    crpc_metadata_free(call->hdr_md);
    call->hdr_md = NULL;
    ccall_settle(call, CRPC_RESOURCE_EXHAUSTED, msg);
    if (!end && !call->rst_sent) {
      call->rst_sent = true;
      nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, f->hd.stream_id,
                                NGHTTP2_CANCEL);
    }
    return 0;
  }
  if (f->hd.type == NGHTTP2_HEADERS && !call->replay_off) {
    drop_replay(call); /* replay_off: L-read is safe, only the loop sets it */
  }
  if (f->hd.type == NGHTTP2_HEADERS) {
    if (f->headers.cat == NGHTTP2_HCAT_RESPONSE && !end) {
      pthread_mutex_lock(&call->mu);
      call->got_headers = true;
      call->resp_md = call->hdr_md ? call->hdr_md : crpc_metadata_new();
      call->hdr_md = NULL;
      /* Only crpc_call_response_headers waits for them: a recv woken
       * here would find no message yet (it comes in the same read). */
      bool wake = call->hdr_waiters > 0;
      pthread_mutex_unlock(&call->mu);
      if (wake) pthread_cond_broadcast(&call->cond);
    } else if (end) {
      settle_from_trailers(call); /* trailers, or Trailers-Only */
    }
  } else if (f->hd.type == NGHTTP2_DATA && end) {
    settle_from_trailers(call); /* no trailers: missing grpc-status */
  }
  return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags,
                         int32_t stream_id, const uint8_t *data, size_t len,
                         void *user_data) {
  (void)flags;
  (void)user_data;
  nghttp2_session_consume_connection(session, len);
  ccall *call = stream_call(session, stream_id);
  if (call == NULL) {
    nghttp2_session_consume_stream(session, stream_id, len);
    return 0;
  }
  crpc_wire_error err;
  /* A response that is not HTTP 200 (a proxy's 502 page) carries no gRPC
   * messages: its body is dropped and its status comes from the HTTP
   * status when the stream ends, as the gRPC spec maps it. */
  bool drop = call->http_status != 200;
  pthread_mutex_lock(&call->mu);
  crpc_code code = call->ended || drop
                       ? CRPC_OK
                       : crpc_h2_inbound_feed(&call->in, data, len, &err);
  if (call->ended || drop) call->in.held += len;
  size_t consume = crpc_h2_inbound_take_consumable(&call->in);
  bool arrived = call->in.q.count > 0;
  bool wake = arrived && call->recv_waiters > 0;
  pthread_mutex_unlock(&call->mu);
  if (wake) pthread_cond_broadcast(&call->cond); /* after the unlock */
  if (arrived && call->async) ccall_kick(call); /* on_message */
  if (consume > 0) nghttp2_session_consume_stream(session, stream_id, consume);
  if (code != CRPC_OK) {
    /* A response we cannot take (too large, corrupt): the call fails
     * with that status and the stream is cancelled. */
    ccall_settle(call, code, err.message);
    if (!call->rst_sent) {
      call->rst_sent = true;
      nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, stream_id,
                                NGHTTP2_CANCEL);
    }
  }
  return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id,
                           uint32_t error_code, void *user_data) {
  cconn *conn = user_data;
  ccall *call = stream_call(session, stream_id);
  if (call == NULL) return 0;
  nghttp2_session_set_stream_user_data(session, stream_id, NULL);
  cconn_unlink_call(conn, call);
  ccall_on_close(call, error_code, NULL);
  return 0;
}

/* A request HEADERS nghttp2 refused to send because the block is too
 * large (over its 64 KiB max_send_header_block_length; request_fits keeps
 * us under it, so this is a safety net). nghttp2 then closes the stream
 * with REFUSED_STREAM, which would read as "reset by server" (UNAVAILABLE),
 * so the real reason is settled first. Other refusals (after GOAWAY, a
 * HEADERS we cancelled while it was queued) keep their usual path through
 * on_stream_close. */
static int on_frame_not_send(nghttp2_session *session, const nghttp2_frame *f,
                             int lib_error, void *user_data) {
  (void)user_data;
  if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST ||
      lib_error != NGHTTP2_ERR_FRAME_SIZE_ERROR) {
    return 0;
  }
  ccall *call = stream_call(session, f->hd.stream_id);
  if (call == NULL || crpc_ctx_is_done(call->ctx)) return 0;
  char msg[160];
  snprintf(msg, sizeof(msg), "request headers not sent: %s",
           nghttp2_strerror(lib_error));
  ccall_settle(call, CRPC_INTERNAL, msg);
  return 0;
}

/* The request HEADERS left: from now on the server may have seen it. */
static int on_frame_send(nghttp2_session *session, const nghttp2_frame *f,
                         void *user_data) {
  if (crpc_log_trace_on(CRPC_LOG_SUB_H2)) {
    crpc_h2_trace_frame(&((cconn *)user_data)->h2, f, true);
  }
  if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) {
    return 0;
  }
  ccall *call = stream_call(session, f->hd.stream_id);
  if (call != NULL) call->headers_sent = true;
  return 0;
}

static nghttp2_session_callbacks *g_cbs;

static void init_callbacks(void) {
  nghttp2_session_callbacks *cbs;
  if (nghttp2_session_callbacks_new(&cbs) != 0) abort();
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs,
                                                          on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
  nghttp2_session_callbacks_set_on_frame_not_send_callback(cbs,
                                                           on_frame_not_send);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
  nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
  nghttp2_session_callbacks_set_data_source_read_length_callback(
      cbs, crpc_h2_data_length);
  g_cbs = cbs;
}

nghttp2_session_callbacks *ccall_callbacks(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, init_callbacks);
  return g_cbs;
}
