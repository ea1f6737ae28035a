/*
 * server_conn.c - accepted connections: the nghttp2 server session and its
 * callbacks, which turn frames into call events. Loop thread only.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rpc/h2/jitter.h"
#include "rpc/h2/limits.h"
#include "rpc/log/log.h"
#include "rpc/server/server_internal.h"

/* Connection flow-control window: large, so one slow stream (whose own
 * window is what applies backpressure) never starves the others. */
#define CONN_WINDOW (16 * 1024 * 1024)

static scall *stream_call(nghttp2_session *session, int32_t stream_id) {
  return nghttp2_session_get_stream_user_data(session, stream_id);
}

static void link_call(sconn *conn, scall *call) {
  call->cprev = NULL;
  call->cnext = conn->calls;
  if (conn->calls != NULL) conn->calls->cprev = call;
  conn->calls = call;
}

static void unlink_call(sconn *conn, scall *call) {
  if (call->cprev != NULL) {
    call->cprev->cnext = call->cnext;
  } else {
    conn->calls = call->cnext;
  }
  if (call->cnext != NULL) call->cnext->cprev = call->cprev;
  call->cnext = call->cprev = NULL;
  /* max_connection_idle counts from here; a stamp, no timer work. */
  if (conn->calls == NULL) conn->idle_since = crpc_loop_now(conn->h2.loop);
}

/* ---- lifecycle: graceful GOAWAY, max_connection_idle / age / grace ----
 *
 * Two phases, as gRPC servers do: GOAWAY(2^31-1, NO_ERROR) tells the client
 * to open no more streams here, while streams already on the wire are still
 * accepted; a PING goes with it, and its ACK (the client answers in order,
 * so it has sent every stream it will send) or CRPC_SERVER_GOAWAY_PING_WAIT
 * leads to the final GOAWAY(last processed stream). nghttp2 then wants no
 * more reads once the streams are done, and the connection closes after
 * its last bytes are written (rpc/h2/conn.c). One loop timer per
 * connection serves every deadline here; calls only stamp idle_since. */

/* The opaque data of the GOAWAY PING, to tell its ACK from others'. */
static const uint8_t goaway_ping[8] = {'c', 'r', 'p', 'c', 'G', 'O', 'A', 'W'};

static int64_t add_sat(int64_t t, int64_t d) {
  return d >= INT64_MAX - t ? INT64_MAX : t + d;
}

/* Phase two. Loop thread (also inside nghttp2 callbacks); the caller
 * flushes. */
static void send_final_goaway(sconn *conn) {
  conn->goaway = SCONN_FINAL_SENT;
  nghttp2_session *session = conn->h2.session;
  nghttp2_submit_goaway(session, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(session),
                        NGHTTP2_NO_ERROR, NULL, 0);
}

/* Phase one, once per connection. The caller flushes and re-arms the
 * timer. */
static void start_goaway(sconn *conn, int64_t now) {
  if (conn->goaway != SCONN_OPEN || conn->calm_goaway) return;
  nghttp2_session *session = conn->h2.session;
  if (nghttp2_submit_shutdown_notice(session) != 0 ||
      nghttp2_submit_ping(session, NGHTTP2_FLAG_NONE, goaway_ping) != 0) {
    send_final_goaway(conn); /* out of memory: at least stop new calls */
    return;
  }
  conn->goaway = SCONN_NOTICE_SENT;
  conn->notice_at = now;
}

/* Arms the timer for the earliest deadline that still applies. */
static void life_rearm(sconn *conn, int64_t now) {
  const crpc_server_options *o = &conn->server->opts;
  int64_t next = conn->grace_at;
  if (conn->preface_at < next) next = conn->preface_at;
  if (conn->goaway == SCONN_OPEN) {
    if (conn->age_at < next) next = conn->age_at;
    if (o->max_connection_idle_ns > 0) {
      /* With calls open, idleness can begin at the earliest now. */
      int64_t idle = add_sat(conn->calls == NULL ? conn->idle_since : now,
                             o->max_connection_idle_ns);
      if (idle < next) next = idle;
    }
  } else if (conn->goaway == SCONN_NOTICE_SENT) {
    int64_t ping = add_sat(conn->notice_at, CRPC_SERVER_GOAWAY_PING_WAIT);
    if (ping < next) next = ping;
  }
  if (next == INT64_MAX) {
    crpc_loop_timer_stop(&conn->life_timer);
  } else {
    crpc_loop_timer_start(&conn->life_timer, next);
  }
}

static void life_fn(crpc_loop *loop, crpc_loop_timer *timer, void *arg) {
  (void)loop;
  (void)timer;
  sconn *conn = arg;
  if (conn->h2.closed || conn->h2.close_pending) return;
  const crpc_server_options *o = &conn->server->opts;
  int64_t now = crpc_now_ns();
  if (now >= conn->preface_at) {
    /* handshake_timeout: the TLS handshake, the preface or the client's
     * SETTINGS never came. Nothing to say to such a peer: just close. */
    char why[96];
    snprintf(why, sizeof(why),
             "no HTTP/2 preface and SETTINGS within %lld ms of accept",
             (long long)(o->handshake_timeout_ns / CRPC_MILLISECOND));
    crpc_h2_conn_close(&conn->h2, why);
    return;
  }
  if (now >= conn->grace_at) {
    /* Past max_connection_age_grace: on_conn_close cancels what is left
     * (UNAVAILABLE, origin connection lost). */
    char why[96];
    snprintf(why, sizeof(why), "max connection age grace (%lld ms) expired",
             (long long)(o->max_connection_age_grace_ns / CRPC_MILLISECOND));
    crpc_h2_conn_flush(&conn->h2); /* the last statuses, if it takes them */
    if (!conn->h2.closed) crpc_h2_conn_close(&conn->h2, why);
    return;
  }
  if (conn->goaway == SCONN_OPEN && now >= conn->age_at) {
    start_goaway(conn, now);
    if (o->max_connection_age_grace_ns > 0) {
      conn->grace_at = add_sat(now, o->max_connection_age_grace_ns);
    }
  } else if (conn->goaway == SCONN_OPEN && o->max_connection_idle_ns > 0 &&
             conn->calls == NULL &&
             now >= add_sat(conn->idle_since, o->max_connection_idle_ns)) {
    start_goaway(conn, now);
  } else if (conn->goaway == SCONN_NOTICE_SENT &&
             now >= add_sat(conn->notice_at, CRPC_SERVER_GOAWAY_PING_WAIT)) {
    send_final_goaway(conn); /* no ACK came: stop waiting for one */
  }
  /* Re-armed before the flush: a flush may close the connection, whose
   * close stops the timer before the struct is freed. */
  life_rearm(conn, now);
  crpc_h2_conn_flush(&conn->h2);
}

/* A per-connection spread of +-10% around max_connection_age, so that
 * connections accepted together do not all cycle together (seeded by the
 * clock and the address: no shared state across loop threads). */
static int64_t jittered_age(const sconn *conn, int64_t age) {
  uint64_t seed = (uint64_t)crpc_now_ns() ^ (uint64_t)(uintptr_t)conn;
  uint64_t z = crpc_jitter_next(&seed);
  int64_t spread = age / 10;
  if (spread <= 0) return age;
  return age - spread + (int64_t)(z % (uint64_t)(2 * spread + 1));
}

/* RFC 9113 §5.1.1: a stream the client opens must have an id above every
 * stream it opened before, else connection error PROTOCOL_ERROR. nghttp2
 * (1.52) drops a HEADERS block for an id below the highest without a
 * callback or an answer unless it still remembers that stream: it cannot
 * tell "opens stream 3 after 5" from "trailers for a stream it has
 * forgotten" (//rpc/e2e:protocol_test Nghttp2Probe). Streams it does
 * remember it handles as the RFC says: trailers on an open stream,
 * connection error STREAM_CLOSED after the client's END_STREAM, ignored
 * after our RST_STREAM. So here, at the frame header (before the block is
 * decoded), a HEADERS for an odd id not above the highest seen, on a
 * stream nghttp2 has no state for (or only an idle one, from a PRIORITY
 * frame), is taken as opening a stream again and ends the connection. As
 * with grpc-go and Go's net/http2 server, that includes trailers for a
 * stream closed long ago, which gRPC clients never send. Even ids are
 * nghttp2's (it rejects them itself). Terminating here makes nghttp2 read
 * nothing after this frame. */
static int on_begin_frame(nghttp2_session *session, const nghttp2_frame_hd *hd,
                          void *user_data) {
  sconn *conn = user_data;
  if (hd->type != NGHTTP2_HEADERS || (hd->stream_id & 1) == 0) return 0;
  if (hd->stream_id > conn->max_client_stream) {
    conn->max_client_stream = hd->stream_id;
    return 0;
  }
  /* find_stream also returns the closed streams nghttp2 keeps. */
  nghttp2_stream *st = nghttp2_session_find_stream(session, hd->stream_id);
  if (st != NULL &&
      nghttp2_stream_get_state(st) != NGHTTP2_STREAM_STATE_IDLE) {
    return 0;
  }
  /* GOAWAY(last processed stream, PROTOCOL_ERROR); the connection closes
   * once it is written, and on_conn_close cancels the calls still open. */
  if (nghttp2_session_terminate_session(session, NGHTTP2_PROTOCOL_ERROR) != 0) {
    return NGHTTP2_ERR_CALLBACK_FAILURE; /* out of memory: just close */
  }
  crpc_h2_conn_want_flush(&conn->h2);
  return 0;
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *f,
                            void *user_data) {
  sconn *conn = user_data;
  if (f->hd.type != NGHTTP2_HEADERS) return 0;
  if (f->headers.cat != NGHTTP2_HCAT_REQUEST) {
    /* Request trailers: a block of their own against max_metadata_size. */
    scall *call = stream_call(session, f->hd.stream_id);
    if (call != NULL) call->hdr_bytes = 0;
    return 0;
  }
  if (conn->h2.tls != NULL && !conn->identity_read) {
    crpc_tls_peer_identity(conn->h2.tls, conn->peer->identity);
    conn->identity_read = true;
  }
  scall *call = scall_new(conn, f->hd.stream_id);
  if (call == NULL) {
    nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, f->hd.stream_id,
                              NGHTTP2_INTERNAL_ERROR);
    return 0;
  }
  nghttp2_session_set_stream_user_data(session, f->hd.stream_id, call);
  link_call(conn, call);
  sconn_cz_stream_started(conn);
  return 0;
}

/* How far past max_metadata_size a header block is still read: up to
 * there the client gets the exact answer (RESOURCE_EXHAUSTED naming both
 * sizes, trailers-only, from scall_dispatch) and keeps its connection.
 * Past it the peer is sending 64 KiB more than the SETTINGS_MAX_HEADER_
 * LIST_SIZE we advertised, which no client does by mistake: the
 * connection ends (GOAWAY ENHANCE_YOUR_CALM) and nothing more of it is
 * read. nghttp2 validates every field it decodes before on_header sees
 * it, and even skipping a block (TEMPORAL_CALLBACK_FAILURE) it must still
 * decode all of it to keep its HPACK table in step: an HPACK bomb (147 KB
 * of one-byte references to one 4 KB table entry, 579 MB of fields once
 * decoded) kept a loop thread busy for seconds per request when read to
 * the end, and for ~10 ms when skipped. Cut off here it costs the
 * validation of ~64 KiB. */
#define HEADER_SLACK (64 * 1024)

/* Counts one received header field (name + value + 32, as HTTP/2 counts;
 * nghttp2 does not enforce what we advertise). Returns on_header's
 * result: NGHTTP2_ERR_CALLBACK_FAILURE once the block is HEADER_SLACK
 * past the limit, after queuing GOAWAY(ENHANCE_YOUR_CALM): nghttp2 stops
 * at once, and the connection is flushed and closed (rpc/h2/conn.c),
 * cancelling its calls (UNAVAILABLE, origin connection lost). */
static int count_header(nghttp2_session *session, scall *call,
                        size_t namelen, size_t valuelen) {
  call->hdr_bytes += namelen + valuelen + CRPC_H2_HEADER_FIELD_OVERHEAD;
  size_t max = call->server->opts.max_metadata_size;
  if (call->hdr_bytes <= max) return 0;
  if (!call->hdr_over) {
    call->hdr_over = true;
    /* Request trailers of a running call fail it now; an oversized
     * request is answered by scall_dispatch at the end of its block. */
    if (call->dispatched) scall_headers_over(call);
  }
  if (call->hdr_bytes - max <= HEADER_SLACK) return 0;
  static const char debug[] = "header list far over max_metadata_size";
  sconn *conn = call->conn;
  CRPC_LOG(CRPC_LOG_INFO, CRPC_LOG_SUB_SERVER,
           "%s: %s; GOAWAY ENHANCE_YOUR_CALM", conn->peer->addr, debug);
  conn->calm_goaway = true;
  conn->calm_why = debug;
  nghttp2_submit_goaway(session, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(session),
                        NGHTTP2_ENHANCE_YOUR_CALM, (const uint8_t *)debug,
                        sizeof(debug) - 1);
  return NGHTTP2_ERR_CALLBACK_FAILURE;
}

/* The header block of a request (cat REQUEST) or of its trailers. */
static scall *block_call(nghttp2_session *session, const nghttp2_frame *f) {
  if (f->hd.type != NGHTTP2_HEADERS) return NULL;
  return stream_call(session, f->hd.stream_id);
}

static int on_header(nghttp2_session *session, const nghttp2_frame *f,
                     const uint8_t *name, size_t namelen, const uint8_t *value,
                     size_t valuelen, uint8_t flags, void *user_data) {
  (void)flags;
  (void)user_data;
  scall *call = block_call(session, f);
  if (call == NULL) return 0;
  int over = count_header(session, call, namelen, valuelen);
  if (over != 0) return over;
  if (f->headers.cat != NGHTTP2_HCAT_REQUEST) {
    return 0; /* request trailers carry nothing gRPC defines */
  }
  const char *n = (const char *)name;
  char **slot = NULL;
  if (namelen == 5 && memcmp(n, ":path", 5) == 0) {
    slot = &call->path;
  } else if (namelen == 7 && memcmp(n, ":method", 7) == 0) {
    slot = &call->http_method;
  } else if (namelen == 12 && memcmp(n, "content-type", 12) == 0) {
    slot = &call->content_type;
  } else if (namelen == 12 && memcmp(n, "grpc-timeout", 12) == 0) {
    slot = &call->timeout;
  } else if (namelen == 13 && memcmp(n, "grpc-encoding", 13) == 0) {
    slot = &call->encoding;
  } else if (namelen == 20 && memcmp(n, "grpc-accept-encoding", 20) == 0) {
    slot = &call->accept_encoding;
  }
  if (slot != NULL) {
    if (*slot != NULL) scall_hdr_free(call, *slot);
    *slot = scall_hdr_dup(call, value, valuelen);
    return 0;
  }
  /* Over the limit: keep no more (the call is refused anyway). */
  if (call->hdr_over) return 0;
  if (crpc_wire_metadata_add_received(call->req_md, n, namelen,
                                      (const char *)value,
                                      valuelen) == CRPC_WIRE_HEADER_NO_MEMORY) {
    call->bad_header = true;
  }
  return 0;
}

/* A field nghttp2 finds invalid and drops (a name with a character HTTP
 * does not allow; an upper-case name resets the stream instead): it
 * counts against max_metadata_size all the same, or a block of such
 * fields would be validated one by one without limit. */
static int on_invalid_header(nghttp2_session *session, const nghttp2_frame *f,
                             const uint8_t *name, size_t namelen,
                             const uint8_t *value, size_t valuelen,
                             uint8_t flags, void *user_data) {
  (void)name;
  (void)value;
  (void)flags;
  (void)user_data;
  scall *call = block_call(session, f);
  return call == NULL ? 0 : count_header(session, call, namelen, valuelen);
}

/* GOAWAY(ENHANCE_YOUR_CALM, debug data `debug`) for an abusive peer,
 * once; the connection closes as soon as it is written (on_frame_send),
 * its calls cancelled (UNAVAILABLE, origin connection lost, the message
 * saying `why`). */
static void calm_goaway(nghttp2_session *session, sconn *conn,
                        const char *debug, const char *why) {
  if (conn->calm_goaway) return;
  conn->calm_goaway = true;
  conn->calm_why = why;
  nghttp2_submit_goaway(session, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(session),
                        NGHTTP2_ENHANCE_YOUR_CALM, (const uint8_t *)debug,
                        strlen(debug));
  crpc_h2_conn_want_flush(&conn->h2);
}

/* A client PING (not an ACK): counts a strike if it came sooner than
 * min_ping_interval after the previous one with no HEADERS/DATA sent in
 * between; past the strikes allowed, GOAWAY(ENHANCE_YOUR_CALM,
 * "too_many_pings") and the connection closes once it is written. */
static void on_client_ping(nghttp2_session *session, sconn *conn) {
  int64_t min = conn->server->opts.min_ping_interval_ns;
  if (min < 0 || conn->calm_goaway) return;
  int64_t now = crpc_now_ns();
  if (conn->last_ping_recv != 0 && now - conn->last_ping_recv < min) {
    conn->ping_strikes++;
  }
  conn->last_ping_recv = now;
  if (conn->ping_strikes <= CRPC_SERVER_MAX_PING_STRIKES) return;
  calm_goaway(session, conn, "too_many_pings", "too many pings");
}

/* A client RST_STREAM: past the connection's or its address's reset
 * budget (server_limits.c), GOAWAY(ENHANCE_YOUR_CALM, "too_many_resets")
 * and nothing more is read from this connection: a flood of HEADERS +
 * RST_STREAM costs the server no more than it has to. */
static void on_client_reset(nghttp2_session *session, sconn *conn) {
  if (conn->calm_goaway || !sconn_charge_reset(conn, conn->h2.last_read_ns)) {
    return;
  }
  CRPC_LOG(CRPC_LOG_INFO, CRPC_LOG_SUB_SERVER,
           "%s: too many stream resets; GOAWAY ENHANCE_YOUR_CALM",
           conn->peer->addr);
  /* terminate_session sends the GOAWAY (last processed stream) and reads
   * nothing after this frame, where a plain GOAWAY would let the rest of
   * the flood already read be processed; on_frame_send closes the
   * connection once it is written. */
  conn->calm_goaway = true;
  conn->calm_why = "too many stream resets";
  if (nghttp2_session_terminate_session(session, NGHTTP2_ENHANCE_YOUR_CALM) !=
      0) {
    crpc_h2_conn_close(&conn->h2, "too many stream resets");
  }
  crpc_h2_conn_want_flush(&conn->h2);
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *f,
                         void *user_data) {
  if (crpc_log_trace_on(CRPC_LOG_SUB_H2)) {
    crpc_h2_trace_frame(&((sconn *)user_data)->h2, f, false);
  }
  if (f->hd.type == NGHTTP2_PING && !(f->hd.flags & NGHTTP2_FLAG_ACK)) {
    on_client_ping(session, user_data);
    return 0;
  }
  if (f->hd.type == NGHTTP2_RST_STREAM) on_client_reset(session, user_data);
  if (f->hd.type == NGHTTP2_SETTINGS && !(f->hd.flags & NGHTTP2_FLAG_ACK)) {
    sconn *conn = user_data;
    if (conn->preface_at != INT64_MAX) {
      conn->preface_at = INT64_MAX; /* it got going: handshake_timeout met */
      life_rearm(conn, conn->h2.last_read_ns);
    }
    return 0;
  }
  if (f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) {
    ((sconn *)user_data)->last_active = ((sconn *)user_data)->h2.last_read_ns;
  }
  if (f->hd.type == NGHTTP2_PING) {
    sconn *conn = user_data;
    /* The ACK of the PING sent with the first GOAWAY: every stream the
     * client opened before it saw that GOAWAY has been received by now. */
    if (conn->goaway == SCONN_NOTICE_SENT &&
        memcmp(f->ping.opaque_data, goaway_ping, 8) == 0) {
      send_final_goaway(conn);
      crpc_h2_conn_want_flush(&conn->h2);
    }
    return 0;
  }
  scall *call = stream_call(session, f->hd.stream_id);
  if (call == NULL) return 0;
  if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
    scall_dispatch(call);
  }
  if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
      (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
    scall_on_end_stream(call);
  }
  return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags,
                         int32_t stream_id, const uint8_t *data, size_t len,
                         void *user_data) {
  (void)flags;
  (void)user_data;
  /* The connection window is always given back at once; the stream window
   * only as the handler takes messages (see stream.h). */
  nghttp2_session_consume_connection(session, len);
  scall *call = stream_call(session, stream_id);
  if (call == NULL) return 0;
  size_t seen = call->in.total; /* channelz: messages decoded */
  scall_on_data(call, data, len);
  sconn_cz_received(user_data, call, seen);
  return 0;
}

static int on_frame_send(nghttp2_session *session, const nghttp2_frame *f,
                         void *user_data) {
  sconn *conn = user_data;
  if (crpc_log_trace_on(CRPC_LOG_SUB_H2)) {
    crpc_h2_trace_frame(&conn->h2, f, true);
  }
  if (f->hd.type == NGHTTP2_GOAWAY &&
      f->goaway.error_code == NGHTTP2_ENHANCE_YOUR_CALM && conn->calm_goaway) {
    /* Closed once the GOAWAY is written (the flush stops pulling). */
    char why[96];
    snprintf(why, sizeof(why), "%s (GOAWAY ENHANCE_YOUR_CALM)",
             conn->calm_why != NULL ? conn->calm_why : "abuse");
    crpc_h2_conn_close(&conn->h2, why);
    return 0;
  }
  if (f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) {
    /* Pings are judged "without data": sending restarts the clock. */
    conn->last_ping_recv = 0;
    conn->ping_strikes = 0;
    /* max_connections: in use (per frame: the loop's clock) */
    conn->last_active = crpc_loop_now(conn->h2.loop);
  }
  if ((f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) ||
      !(f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
    return 0;
  }
  scall *call = stream_call(session, f->hd.stream_id);
  if (call != NULL) call->end_stream_sent = true;
  if (call != NULL) sconn_cz_end_sent(call, f);
  /* Done before the client half-closed: tell it to stop sending with
   * NO_ERROR (CANCEL would read as an error to proxies). */
  if (nghttp2_session_get_stream_remote_close(session, f->hd.stream_id) == 0) {
    nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, f->hd.stream_id,
                              NGHTTP2_NO_ERROR);
  }
  return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id,
                           uint32_t error_code, void *user_data) {
  sconn *conn = user_data;
  scall *call = stream_call(session, stream_id);
  if (call == NULL) return 0;
  nghttp2_session_set_stream_user_data(session, stream_id, NULL);
  unlink_call(conn, call);
  sconn_cz_stream_ended(conn, call);
  scall_on_close(call, error_code, NULL);
  return 0;
}

/* Counted under the server mutex for crpc_server_shutdown, which waits
 * for connections to end gracefully. */
static size_t count_conn(crpc_server *s, int delta) {
  pthread_mutex_lock(&s->mu);
  s->live_conns += (size_t)delta;
  size_t live = s->live_conns;
  if (live == 0) pthread_cond_broadcast(&s->idle_cond);
  pthread_mutex_unlock(&s->mu);
  return live;
}

static void unlink_conn(sconn *conn) {
  if (conn->prev != NULL) {
    conn->prev->next = conn->next;
  } else {
    conn->sl->conns = conn->next;
  }
  if (conn->next != NULL) conn->next->prev = conn->prev;
  count_conn(conn->server, -1);
}

void server_peer_unref(server_peer *p) {
  if (atomic_fetch_sub(&p->refs, 1) == 1) free(p);
}

static void free_conn_fn(crpc_loop *loop, void *arg) {
  (void)loop;
  sconn *conn = arg;
  crpc_h2_conn_destroy(&conn->h2);
  server_peer_unref(conn->peer);
  free(conn);
}

/* The connection is gone: every call still on it is cancelled. nghttp2
 * does not call on_stream_close when a session is deleted, hence our own
 * list. */
static void on_conn_close(crpc_h2_conn *h2, const char *why) {
  sconn *conn = (sconn *)h2;
  crpc_loop_timer_stop(&conn->life_timer);
  scall_run_local_kicks(conn, true); /* the kicks still deliver on_done */
  while (conn->calls != NULL) {
    scall *call = conn->calls;
    unlink_call(conn, call);
    nghttp2_session_set_stream_user_data(h2->session, call->stream_id, NULL);
    sconn_cz_stream_ended(conn, call);
    scall_on_close(call, NGHTTP2_INTERNAL_ERROR, why);
  }
  sconn_cz_close(conn);
  conn->peer->conn = NULL; /* calls that outlive it give slots to none */
  unlink_conn(conn);
  /* Freed by a closure posted now, so a flush closure queued earlier still
   * finds the struct. */
  if (crpc_loop_post(conn->h2.loop, free_conn_fn, conn) != 0) {
    free_conn_fn(NULL, conn); /* out of memory; nothing can be queued */
  }
}

static int on_send_data(nghttp2_session *session, nghttp2_frame *frame,
                        const uint8_t *framehd, size_t length,
                        nghttp2_data_source *source, void *user_data) {
  (void)session;
  (void)user_data;
  (void)frame; /* crpc never pads DATA frames */
  return scall_send_data(source->ptr, framehd, length);
}

static void after_read(crpc_h2_conn *h2) {
  scall_run_local_kicks((sconn *)h2, false);
  sconn_pump_waiting((sconn *)h2); /* calls that came in this read */
}

static nghttp2_session_callbacks *g_cbs;
static void init_callbacks(void) {
  nghttp2_session_callbacks *cbs;
  if (nghttp2_session_callbacks_new(&cbs) != 0) abort();
  nghttp2_session_callbacks_set_on_begin_frame_callback(cbs, on_begin_frame);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs,
                                                          on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
  nghttp2_session_callbacks_set_on_invalid_header_callback(cbs,
                                                           on_invalid_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
  nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
  nghttp2_session_callbacks_set_send_data_callback(cbs, on_send_data);
  nghttp2_session_callbacks_set_data_source_read_length_callback(
      cbs, crpc_h2_data_length);
  g_cbs = cbs;
}

void sconn_start(server_loop *sl, int fd, const struct sockaddr *sa,
                 socklen_t salen, const server_listener *l) {
  crpc_server *s = sl->server;
  sconn *conn = calloc(1, sizeof(*conn));
  nghttp2_option *opt = NULL;
  nghttp2_session *session = NULL;
  if (conn == NULL) goto fail;
  conn->peer = calloc(1, sizeof(*conn->peer));
  if (conn->peer == NULL || nghttp2_option_new(&opt) != 0) goto fail;
  atomic_init(&conn->peer->refs, 1);
  nghttp2_option_set_no_auto_window_update(opt, 1);
  /* nghttp2's own reset budget (per session; GOAWAY INTERNAL_ERROR) is
   * only a backstop, set well above crpc's (server_limits.c), which
   * answers ENHANCE_YOUR_CALM and also counts across reconnects. */
  nghttp2_option_set_stream_reset_rate_limit(opt,
                                             4 * CRPC_SERVER_RESET_BURST,
                                             4 * CRPC_SERVER_RESET_RATE);
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, init_callbacks);
  if (nghttp2_session_server_new3(&session, g_cbs, conn, opt, crpc_h2_mem()) != 0) goto fail;
  nghttp2_option_del(opt);
  opt = NULL;
  /* The request header list limit we enforce (on_header) and, if set, the
   * stream window; the connection window needs a WINDOW_UPDATE instead. */
  size_t max_hdr = s->opts.max_metadata_size;
  uint32_t stream_window = s->opts.initial_stream_window_size;
  nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, s->opts.max_concurrent_streams},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
       max_hdr > UINT32_MAX ? UINT32_MAX : (uint32_t)max_hdr},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, stream_window},
  };
  nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, settings,
                          stream_window != 0 ? 3 : 2);
  uint32_t conn_window = s->opts.initial_connection_window_size;
  nghttp2_session_set_local_window_size(
      session, NGHTTP2_FLAG_NONE, 0,
      conn_window != 0 ? (int32_t)conn_window : CONN_WINDOW);
  conn->server = s;
  conn->sl = sl;
  /* Initialised before the connection starts: a start that fails at once
   * calls on_conn_close, which stops the timer. */
  int64_t now = crpc_now_ns();
  crpc_loop_timer_init(&conn->life_timer, sl->loop, life_fn, conn);
  conn->goaway = SCONN_OPEN;
  conn->idle_since = now;
  conn->grace_at = INT64_MAX;
  conn->age_at = s->opts.max_connection_age_ns > 0
                     ? add_sat(now, jittered_age(conn,
                                                 s->opts.max_connection_age_ns))
                     : INT64_MAX;
  sconn_limits_init(conn, sa, now);
  conn->peer->conn = conn;
  crpc_h2_format_peer(sa, salen, conn->peer->addr);
  if (l->unix_path[0] != '\0' && strcmp(conn->peer->addr, "unix:") == 0) {
    snprintf(conn->peer->addr, sizeof(conn->peer->addr), "unix:%s",
             l->unix_path);
  }
  conn->next = sl->conns;
  if (sl->conns != NULL) sl->conns->prev = conn;
  sl->conns = conn;
  size_t live = count_conn(s, 1);
  if (l->creds != NULL) {
    crpc_tls *tls = crpc_tls_server_new(l->creds, fd);
    if (tls == NULL) {
      /* Not started: undo what start would own, then fail. */
      sl->conns = conn->next;
      if (conn->next != NULL) conn->next->prev = NULL;
      count_conn(s, -1);
      nghttp2_session_del(session);
      goto fail;
    }
    crpc_h2_conn_start_tls(
        &conn->h2, sl->loop, fd, session, tls,
        crpc_now_ns() + crpc_tls_server_creds_handshake_timeout(l->creds),
        on_conn_close);
  } else {
    crpc_h2_conn_start(&conn->h2, sl->loop, fd, session, on_conn_close);
    /* Receive timestamps: a call's deadline counts from when its request
     * reached this host (crpc_h2_conn_arrival_ns). A TCP socket has them
     * from its listener; a unix one asks itself. TLS reads go through
     * OpenSSL, which cannot hand the stamps on. */
    int stamp = 1;
    conn->h2.rx_timestamps =
        l->rx_timestamps &&
        (l->unix_path[0] == '\0' ||
         setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &stamp, sizeof(stamp)) == 0);
  }
  conn->h2.after_read = after_read; /* start zeroed it */
  conn->h2.flush_in_batch = true;
  sconn_cz_open(conn);
  /* A no-op if start has already closed it (freed by a posted closure). */
  crpc_h2_conn_keepalive(&conn->h2, s->opts.keepalive_time_ns,
                         s->opts.keepalive_timeout_ns, NULL);
  if (!conn->h2.closed && !conn->h2.close_pending) {
    /* Accepted from the listener's queue as shutdown began: drained too. */
    if (atomic_load(&s->draining)) {
      start_goaway(conn, now);
      crpc_h2_conn_want_flush(&conn->h2);
    }
    life_rearm(conn, now);
  }
  if (!conn->h2.closed) server_conns_reap(sl, conn, live); /* max_conns */
  return;
fail:
  if (opt != NULL) nghttp2_option_del(opt);
  if (conn != NULL) free(conn->peer);
  free(conn);
  close(fd);
}

void server_conns_drain(server_loop *sl) {
  int64_t now = crpc_now_ns();
  for (sconn *c = sl->conns; c != NULL; c = c->next) {
    if (c->h2.closed || c->h2.close_pending) continue;
    start_goaway(c, now); /* no-op if one is under way */
    life_rearm(c, now);
    crpc_h2_conn_want_flush(&c->h2);
  }
}

void server_conns_close_all(server_loop *sl) {
  while (sl->conns != NULL) {
    sconn *c = sl->conns;
    crpc_h2_conn_flush(
        &c->h2); /* the last statuses, if the socket takes them */
    if (sl->conns == c) crpc_h2_conn_close(&c->h2, "server shut down");
  }
}
