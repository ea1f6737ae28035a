/*
 * channel.c - the channel's lifetime and its connections' (session set-up,
 * attach to the loop, close, teardown). Which connection a call gets, and
 * making it, is channel_lb.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rpc/channel/channel_internal.h"
#include "rpc/h2/limits.h"
#include "rpc/intercept/chain.h"
#include "rpc/log/log.h"

/* Connection receive window: big, so one stalled stream (whose own window
 * applies the backpressure) never blocks the others. */
#define CONN_WINDOW (16 * 1024 * 1024)

/* The old entry point: same result, the reason goes to the log (it went
 * to stderr before crpc_channel_new_err existed). */
crpc_channel *crpc_channel_new(const char *target,
                               const crpc_channel_options *options) {
  char error[CRPC_CHANNEL_ERROR_MAX];
  crpc_channel *ch = crpc_channel_new_err(target, options, error);
  if (ch == NULL) {
    CRPC_LOG(CRPC_LOG_ERROR, CRPC_LOG_SUB_CHANNEL, "%s", error);
  }
  return ch;
}

static crpc_channel *new_failed(char *error, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Writes the reason to error (if not NULL); returns NULL for the caller. */
static crpc_channel *new_failed(char *error, const char *fmt, ...) {
  if (error != NULL) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error, CRPC_CHANNEL_ERROR_MAX, fmt, ap);
    va_end(ap);
  }
  return NULL;
}

crpc_channel *crpc_channel_new_err(const char *target,
                                   const crpc_channel_options *options,
                                   char error[CRPC_CHANNEL_ERROR_MAX]) {
  if (error != NULL) error[0] = '\0';
  const char *bad = options == NULL ? NULL
                                    : crpc_h2_windows_check(
                                          options->initial_stream_window_size,
                                          options->initial_connection_window_size);
  if (bad != NULL) return new_failed(error, "%s", bad);
  crpc_channel *ch = calloc(1, sizeof(*ch));
  if (ch == NULL) return new_failed(error, "out of memory");
  char err[CRPC_RESOLVE_ERR_MAX];
  if (crpc_target_parse(target, &ch->target, err) != CRPC_OK) {
    free(ch);
    return new_failed(error, "%s", err);
  }
  crpc_channel_options o = {0};
  if (options != NULL) o = *options;
  ch->lb = o.lb_policy == CRPC_LB_ROUND_ROBIN ||
                   o.lb_policy == CRPC_LB_LEAST_REQUEST
               ? o.lb_policy
               : CRPC_LB_PICK_FIRST;
  ch->backoff_initial =
      o.backoff_initial_ns > 0 ? o.backoff_initial_ns : CRPC_SECOND;
  ch->backoff_max =
      o.backoff_max_ns > 0 ? o.backoff_max_ns : 120 * CRPC_SECOND;
  ch->connect_timeout = o.min_connect_timeout_ns > 0 ? o.min_connect_timeout_ns
                                                     : 20 * CRPC_SECOND;
  ch->idle_timeout = o.idle_timeout_ns > 0   ? o.idle_timeout_ns
                     : o.idle_timeout_ns < 0 ? 0
                                             : 30 * 60 * CRPC_SECOND;
  ch->wait_for_ready = o.wait_for_ready != 0;
  ch->default_encoding = CRPC_WIRE_ENCODING_IDENTITY;
  if (o.default_compression != NULL) {
    ch->default_encoding = crpc_wire_encoding_parse(
        o.default_compression, strlen(o.default_compression));
    if (ch->default_encoding == CRPC_WIRE_ENCODING_UNKNOWN) {
      crpc_target_destroy(&ch->target);
      free(ch);
      return new_failed(error,
                        "unknown default_compression \"%.100s\" (gzip, "
                        "deflate or identity)",
                        o.default_compression);
    }
  }
  /* Jitter must differ between processes (and channels) started together. */
  ch->rng = (uint64_t)crpc_now_ns() ^ ((uint64_t)getpid() << 32) ^
            (uint64_t)(uintptr_t)ch;
  ch->max_recv = o.max_recv_message_size ? o.max_recv_message_size
                                         : CRPC_WIRE_DEFAULT_MAX_RECV_MESSAGE;
  ch->max_send = o.max_send_message_size;
  ch->max_metadata = o.max_metadata_size ? o.max_metadata_size
                                         : CRPC_H2_DEFAULT_MAX_METADATA;
  ch->stream_window = o.initial_stream_window_size;
  ch->conn_window = o.initial_connection_window_size
                        ? o.initial_connection_window_size
                        : CONN_WINDOW;
  atomic_init(&ch->ka_time,
              o.keepalive_time_ns > 0 ? o.keepalive_time_ns : 0);
  ch->ka_timeout = o.keepalive_timeout_ns > 0 ? o.keepalive_timeout_ns
                                              : 20 * CRPC_SECOND;
  ch->ka_without_calls = o.keepalive_without_calls != 0;
  if (o.user_agent != NULL && *o.user_agent != '\0') {
    if (asprintf(&ch->user_agent, "%s %s", o.user_agent, CRPC_VERSION_STRING) <
        0) {
      ch->user_agent = NULL;
    }
  } else {
    ch->user_agent = strdup(CRPC_VERSION_STRING);
  }
  const char *override =
      o.credentials ? crpc_tls_channel_creds_override(o.credentials) : NULL;
  ch->authority = strdup(o.authority  ? o.authority
                         : override ? override
                                    : ch->target.authority);
  ch->n_homes = o.loop_threads > 0 ? o.loop_threads : crpc_loop_default_count();
  ch->poll_ns = o.poll_ns;
  ch->homes = calloc((size_t)ch->n_homes, sizeof(*ch->homes));
  int loop_rc = ch->user_agent == NULL || ch->authority == NULL || ch->homes == NULL
                    ? -ENOMEM
                    : crpc_loop_new(&ch->homes[0].loop, 0);
  if (loop_rc != 0) {
    crpc_target_destroy(&ch->target);
    free(ch->homes);
    free(ch->user_agent);
    free(ch->authority);
    free(ch);
    return new_failed(error, "cannot set up the channel: %s",
                      strerror(-loop_rc));
  }
  crpc_loop_set_poll(ch->homes[0].loop, ch->poll_ns);
  pthread_mutex_init(&ch->mu, NULL);
  pthread_cond_init(&ch->cond, NULL);
  pthread_cond_init(&ch->aq_cond, NULL);
  if (o.credentials != NULL) {
    ch->tls = crpc_tls_channel_creds_ref(o.credentials);
  }
  channel_cz_new(ch, target);
  return ch;
}

void cconn_unref(cconn *conn) {
  if (conn == NULL || atomic_fetch_sub(&conn->refs, 1) != 1) return;
  /* The session is already gone if the socket was attached (deleted on
   * the loop at close); otherwise nobody else ever touched it. */
  if (conn->session != NULL) nghttp2_session_del(conn->session);
  crpc_tls_free(conn->tls);
  if (conn->fd >= 0) close(conn->fd);
  cconn_cz_drop(conn);
  atomic_fetch_sub(&conn->home->n_conns, 1);
  free(conn);
}

void cconn_link_call(cconn *conn, ccall *call) {
  call->cprev = NULL;
  call->cnext = conn->calls;
  if (conn->calls != NULL) conn->calls->cprev = call;
  conn->calls = call;
  cconn_cz_stream_started(conn, call);
}

void cconn_unlink_call(cconn *conn, ccall *call) {
  if (call->cprev != NULL) {
    call->cprev->cnext = call->cnext;
  } else {
    conn->calls = call->cnext;
  }
  if (call->cnext != NULL) call->cnext->cprev = call->cprev;
  call->cnext = call->cprev = NULL;
  cconn_cz_stream_ended(conn, call);
}

static void drop_loop_ref(crpc_loop *loop, void *arg) {
  (void)loop;
  cconn_unref(arg);
}

/* The connection is gone: every call on it ends UNAVAILABLE; the next call
 * makes a new one. */
static void on_conn_close(crpc_h2_conn *h2, const char *why) {
  cconn *conn = (cconn *)h2;
  atomic_store(&conn->dead, true);
  crpc_channel *ch = conn->ch;
  if (conn->lprev != NULL) {
    conn->lprev->lnext = conn->lnext;
  } else if (conn->home->attached == conn) {
    conn->home->attached = conn->lnext;
  }
  if (conn->lnext != NULL) conn->lnext->lprev = conn->lprev;
  conn->lnext = conn->lprev = NULL;
  char both[CRPC_H2_ERR_MAX];
  if (conn->goaway_why[0] != '\0') {
    snprintf(both, sizeof(both), "%s after GOAWAY %s", why, conn->goaway_why);
    why = both;
  }
  CRPC_TRACE(CRPC_LOG_SUB_CHANNEL, "connection to %s closed: %s",
             ch->authority, why);
  crpc_loop_timer_stop(&conn->idle_timer);
  while (conn->calls != NULL) {
    ccall *call = conn->calls;
    cconn_unlink_call(conn, call);
    nghttp2_session_set_stream_user_data(h2->session, call->stream_id, NULL);
    ccall_on_close(call, NGHTTP2_INTERNAL_ERROR, why);
  }
  cconn_cz_close(conn);
  crpc_h2_conn_destroy(h2);
  conn->session = NULL;
  if (crpc_loop_post(h2->loop, drop_loop_ref, conn) != 0) {
    /* Cannot queue: leak one small struct rather than risk a use after
     * free by a queued flush. */
    CRPC_LOG(CRPC_LOG_ERROR, CRPC_LOG_SUB_CHANNEL,
             "out of memory closing a connection");
  }
}

/* Keepalive pings only while a call is open, unless asked otherwise. */
static bool cconn_has_calls(crpc_h2_conn *h2) {
  return ((cconn *)h2)->calls != NULL;
}

static void start_keepalive(cconn *conn) {
  crpc_channel *ch = conn->ch;
  crpc_h2_conn_keepalive(&conn->h2, atomic_load(&ch->ka_time), ch->ka_timeout,
                         ch->ka_without_calls ? NULL : cconn_has_calls);
}

void cconn_attach(cconn *conn) {
  if (conn->attached) return;
  conn->attached = true;
  atomic_fetch_add(&conn->refs, 1); /* the loop's */
  chome *home = conn->home;
  conn->lnext = home->attached;
  if (home->attached != NULL) home->attached->lprev = conn;
  home->attached = conn;
  int fd = conn->fd;
  conn->fd = -1; /* closed by the pump from now on */
  crpc_tls *tls = conn->tls;
  conn->tls = NULL; /* likewise freed by the pump */
  if (tls != NULL) {
    crpc_h2_conn_start_tls(&conn->h2, home->loop, fd, conn->session, tls, 0,
                           on_conn_close);
  } else {
    crpc_h2_conn_start(&conn->h2, home->loop, fd, conn->session,
                       on_conn_close);
  }
  /* A graceful end lingers (rpc/h2/conn.h); safe because freeing the
   * channel closes every attached connection (close_all_fn). */
  conn->h2.linger = true;
  cconn_cz_open(conn); /* channelz: its socket */
  start_keepalive(conn); /* no-op if off or already closed */
  cconn_start_idle_timer(conn);
}

cconn *cconn_new(crpc_channel *ch, int fd) {
  cconn *conn = calloc(1, sizeof(*conn));
  nghttp2_option *opt = NULL;
  if (conn == NULL || nghttp2_option_new(&opt) != 0) {
    free(conn);
    return NULL;
  }
  conn->home = channel_pick_home(ch);
  if (conn->home == NULL) {
    nghttp2_option_del(opt);
    free(conn);
    return NULL;
  }
  nghttp2_option_set_no_auto_window_update(opt, 1);
  /* One stream until the server's SETTINGS arrive (nghttp2 assumes 100): a
   * burst sent before we know its MAX_CONCURRENT_STREAMS would otherwise be
   * partly refused (REFUSED_STREAM, UNAVAILABLE without retry). Costs the
   * rest of a fresh connection's first burst one round trip. */
  nghttp2_option_set_peer_max_concurrent_streams(opt, 1);
  int rc = nghttp2_session_client_new3(&conn->session, ccall_callbacks(),
                                       conn, opt, crpc_h2_mem());
  nghttp2_option_del(opt);
  if (rc != 0) {
    atomic_fetch_sub(&conn->home->n_conns, 1);
    free(conn);
    return NULL;
  }
  /* Our limits as the server must see them: the header list size we
   * enforce on responses (call_wire.c) and, if set, the stream window. */
  uint32_t max_hdr = ch->max_metadata > UINT32_MAX ? UINT32_MAX
                                                   : (uint32_t)ch->max_metadata;
  nghttp2_settings_entry settings[3] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, max_hdr},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, ch->stream_window},
  };
  nghttp2_submit_settings(conn->session, NGHTTP2_FLAG_NONE, settings,
                          ch->stream_window != 0 ? 3 : 2);
  nghttp2_session_set_local_window_size(conn->session, NGHTTP2_FLAG_NONE, 0,
                                        (int32_t)ch->conn_window);
  atomic_init(&conn->refs, 1);
  atomic_init(&conn->dead, false);
  atomic_init(&conn->in_use, 0);
  atomic_init(&conn->last_used_ns, crpc_now_ns());
  conn->ch = ch;
  conn->fd = fd;
  return conn;
}

static void attach_fn(crpc_loop *loop, void *arg) {
  (void)loop;
  cconn *conn = arg;
  cconn_attach(conn);
  cconn_unref(conn); /* the closure's */
}

void cconn_post_attach(cconn *conn) {
  atomic_fetch_add(&conn->refs, 1); /* the closure's */
  if (crpc_loop_post(conn->home->loop, attach_fn, conn) != 0) cconn_unref(conn);
}

/* Channel teardown: every connection still on this home's loop, including
 * ones no slot holds any more (replaced after a GOAWAY, lingering), ends
 * now. */
static void close_all_fn(crpc_loop *loop, void *arg) {
  (void)loop;
  chome *home = arg;
  for (cconn *c = home->attached, *next; c != NULL; c = next) {
    next = c->lnext;
    crpc_h2_conn_close(&c->h2, "channel closed");
  }
}

static void close_conn_fn(crpc_loop *loop, void *arg) {
  (void)loop;
  cconn *conn = arg;
  cconn_attach(conn); /* in case its attach closure has not run yet */
  crpc_h2_conn_close(&conn->h2, "channel closed");
  cconn_unref(conn); /* the channel's */
}

void crpc_channel_free(crpc_channel *ch) {
  if (ch == NULL) return;
  /* Every call is freed, so the ctx of any still queued for a connection
   * is done: the helper drains them at once and stops. */
  channel_stop_async(ch);
  pthread_mutex_lock(&ch->mu);
  cslot *slots = ch->slots;
  size_t n_slots = ch->n_slots;
  ch->slots = NULL;
  ch->n_slots = 0;
  pthread_mutex_unlock(&ch->mu);
  for (size_t i = 0; i < n_slots; i++) {
    cconn *conn = slots[i].conn;
    free(slots[i].addrs);
    crpc_cz_unregister(slots[i].cz);
    if (conn == NULL) continue;
    /* The channel's reference goes to the closure (or straight away). A
     * connection's home started when the connection was made. */
    if (crpc_loop_post(conn->home->loop, close_conn_fn, conn) != 0) {
      cconn_unref(conn);
    }
  }
  free(slots);
  /* No thread starts a home any more: every call is freed, and the
   * connecting helper has stopped. */
  for (int i = 0; i < ch->n_homes; i++) {
    if (ch->homes[i].started &&
        crpc_loop_post(ch->homes[i].loop, close_all_fn, &ch->homes[i]) != 0) {
      CRPC_LOG(CRPC_LOG_ERROR, CRPC_LOG_SUB_CHANNEL,
               "out of memory closing connections");
    }
  }
  /* Call structs die on their loops (their kicks, their streams closing);
   * wait for them so no late ctx callback posts to a freed loop. (With no
   * loop started, homes[0]'s queued kicks run in crpc_loop_free.) */
  if (ch->homes[0].started) {
    pthread_mutex_lock(&ch->mu);
    while (ch->live_calls > 0) pthread_cond_wait(&ch->cond, &ch->mu);
    pthread_mutex_unlock(&ch->mu);
  }
  for (int i = 0; i < ch->n_homes; i++) {
    if (ch->homes[i].started) crpc_loop_stop_and_join(ch->homes[i].loop);
  }
  for (int i = 0; i < ch->n_homes; i++) crpc_loop_free(ch->homes[i].loop);
  free(ch->homes);
  channel_cz_free(ch); /* no loop left to count */
  pthread_mutex_destroy(&ch->mu);
  pthread_cond_destroy(&ch->cond);
  pthread_cond_destroy(&ch->aq_cond);
  icpt_client_chain_free(ch->icpt);
  crpc_channel_credentials_free(ch->tls);
  free(ch->user_agent);
  free(ch->authority);
  crpc_target_destroy(&ch->target);
  free(ch);
}
