/*
 * channel.c - the channel and its connection: lazy connect (bounded by the
 * caller's ctx), reconnect after a drop, teardown.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rpc/channel/channel_internal.h"
#include "rpc/intercept/chain.h"

/* Connection receive window: big, so one stalled stream (whose own window
 * applies the backpressure) never blocks the others. */
#define CONN_WINDOW (16 * 1024 * 1024)

crpc_channel *crpc_channel_new(const char *target,
                               const crpc_channel_options *options) {
  crpc_channel *ch = calloc(1, sizeof(*ch));
  if (ch == NULL) return NULL;
  char err[CRPC_H2_ERR_MAX];
  if (crpc_h2_addr_parse(target, &ch->addr, err) != CRPC_OK) {
    fprintf(stderr, "crpc channel: %s\n", err);
    free(ch);
    return NULL;
  }
  crpc_channel_options o = {0};
  if (options != NULL) o = *options;
  ch->max_recv = o.max_recv_message_size ? o.max_recv_message_size
                                         : CRPC_WIRE_DEFAULT_MAX_RECV_MESSAGE;
  ch->max_send = o.max_send_message_size;
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
                                    : ch->addr.authority);
  if (ch->user_agent == NULL || ch->authority == NULL ||
      crpc_loop_new(&ch->loop, 0) != 0) {
    free(ch->user_agent);
    free(ch->authority);
    free(ch);
    return NULL;
  }
  pthread_mutex_init(&ch->mu, NULL);
  pthread_cond_init(&ch->cond, NULL);
  if (o.credentials != NULL) {
    ch->tls = crpc_tls_channel_creds_ref(o.credentials);
  }
  return ch;
}

void cconn_unref(cconn *conn) {
  if (conn == NULL || atomic_fetch_sub(&conn->refs, 1) != 1) return;
  /* The session is already gone if the socket was attached (deleted on
   * the loop at close); otherwise nobody else ever touched it. */
  if (conn->session != NULL) nghttp2_session_del(conn->session);
  crpc_tls_free(conn->tls);
  if (conn->fd >= 0) close(conn->fd);
  free(conn);
}

void cconn_link_call(cconn *conn, ccall *call) {
  call->cprev = NULL;
  call->cnext = conn->calls;
  if (conn->calls != NULL) conn->calls->cprev = call;
  conn->calls = call;
}

void cconn_unlink_call(cconn *conn, ccall *call) {
  if (call->cprev != NULL) {
    call->cprev->cnext = call->cnext;
  } else {
    conn->calls = call->cnext;
  }
  if (call->cnext != NULL) call->cnext->cprev = call->cprev;
  call->cnext = call->cprev = NULL;
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
  char both[CRPC_H2_ERR_MAX];
  if (conn->goaway_why[0] != '\0') {
    snprintf(both, sizeof(both), "%s after GOAWAY %s", why, conn->goaway_why);
    why = both;
  }
  while (conn->calls != NULL) {
    ccall *call = conn->calls;
    cconn_unlink_call(conn, call);
    nghttp2_session_set_stream_user_data(h2->session, call->stream_id, NULL);
    ccall_on_close(call, NGHTTP2_INTERNAL_ERROR, why);
  }
  crpc_h2_conn_destroy(h2);
  conn->session = NULL;
  if (crpc_loop_post(h2->loop, drop_loop_ref, conn) != 0) {
    /* Cannot queue: leak one small struct rather than risk a use after
     * free by a queued flush. */
    fprintf(stderr, "crpc channel: out of memory closing a connection\n");
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
  int fd = conn->fd;
  conn->fd = -1; /* closed by the pump from now on */
  crpc_tls *tls = conn->tls;
  conn->tls = NULL; /* likewise freed by the pump */
  if (tls != NULL) {
    crpc_h2_conn_start_tls(&conn->h2, conn->ch->loop, fd, conn->session, tls,
                           0, on_conn_close);
  } else {
    crpc_h2_conn_start(&conn->h2, conn->ch->loop, fd, conn->session,
                       on_conn_close);
  }
  start_keepalive(conn); /* no-op if off or already closed */
}

/* A session over a freshly connected socket; not attached yet. */
static cconn *cconn_new(crpc_channel *ch, int fd) {
  cconn *conn = calloc(1, sizeof(*conn));
  nghttp2_option *opt = NULL;
  if (conn == NULL || nghttp2_option_new(&opt) != 0) {
    free(conn);
    return NULL;
  }
  nghttp2_option_set_no_auto_window_update(opt, 1);
  int rc =
      nghttp2_session_client_new2(&conn->session, ccall_callbacks(), conn, opt);
  nghttp2_option_del(opt);
  if (rc != 0) {
    free(conn);
    return NULL;
  }
  nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0}};
  nghttp2_submit_settings(conn->session, NGHTTP2_FLAG_NONE, settings, 1);
  nghttp2_session_set_local_window_size(conn->session, NGHTTP2_FLAG_NONE, 0,
                                        CONN_WINDOW);
  atomic_init(&conn->refs, 1);
  atomic_init(&conn->dead, false);
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

cconn *channel_get_conn(crpc_channel *ch, const crpc_ctx *ctx,
                        crpc_code *code) {
  pthread_mutex_lock(&ch->mu);
  if (!ch->loop_started) {
    if (crpc_loop_start_thread(ch->loop) != 0) {
      pthread_mutex_unlock(&ch->mu);
      *code = CRPC_UNAVAILABLE;
      return NULL;
    }
    ch->loop_started = true;
  }
  for (;;) {
    cconn *conn = ch->conn;
    if (conn != NULL && !atomic_load(&conn->dead)) {
      atomic_fetch_add(&conn->refs, 1);
      pthread_mutex_unlock(&ch->mu);
      return conn;
    }
    if (conn != NULL) {
      ch->conn = NULL;
      cconn_unref(conn);
    }
    if (!ch->connecting) break;
    *code = crpc_ctx_wait_cond(ctx, &ch->cond, &ch->mu);
    if (*code != CRPC_OK) {
      pthread_mutex_unlock(&ch->mu);
      return NULL;
    }
  }
  ch->connecting = true;
  pthread_mutex_unlock(&ch->mu);

  char err[CRPC_H2_ERR_MAX] = "out of memory";
  int fd = -1;
  *code = crpc_h2_connect(&ch->addr, ctx, &fd, err);
  crpc_tls *tls = NULL;
  if (*code == CRPC_OK && ch->tls != NULL) {
    /* The handshake, like the connect, is bounded by the caller's ctx
     * (catalog line 13). The name checked is the host, or the override. */
    const char *host = ch->addr.is_unix ? "localhost" : ch->addr.host;
    *code = crpc_tls_client_connect(ch->tls, fd, host, ch->addr.authority,
                                    ctx, &tls, err);
    if (*code != CRPC_OK) close(fd);
  }
  cconn *conn = *code == CRPC_OK ? cconn_new(ch, fd) : NULL;
  if (*code == CRPC_OK && conn == NULL) {
    crpc_tls_free(tls);
    close(fd);
    *code = CRPC_RESOURCE_EXHAUSTED;
  }
  if (conn != NULL) conn->tls = tls;
  pthread_mutex_lock(&ch->mu);
  ch->connecting = false;
  if (*code != CRPC_OK) memcpy(ch->last_error, err, sizeof(err));
  pthread_cond_broadcast(&ch->cond);
  if (conn != NULL) {
    ch->conn = conn;
    atomic_fetch_add(&conn->refs, 2); /* the caller's, attach closure's */
    if (crpc_loop_post(ch->loop, attach_fn, conn) != 0) cconn_unref(conn);
  }
  pthread_mutex_unlock(&ch->mu);
  return conn;
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
  pthread_mutex_lock(&ch->mu);
  cconn *conn = ch->conn;
  ch->conn = NULL;
  pthread_mutex_unlock(&ch->mu);
  if (ch->loop_started) {
    if (conn != NULL) crpc_loop_post(ch->loop, close_conn_fn, conn);
    /* Call structs die on the loop (their kicks, their streams closing);
     * wait for them so no late ctx callback posts to a freed loop. */
    pthread_mutex_lock(&ch->mu);
    while (ch->live_calls > 0) pthread_cond_wait(&ch->cond, &ch->mu);
    pthread_mutex_unlock(&ch->mu);
    crpc_loop_stop_and_join(ch->loop);
  } else {
    cconn_unref(conn);
  }
  crpc_loop_free(ch->loop);
  pthread_mutex_destroy(&ch->mu);
  pthread_cond_destroy(&ch->cond);
  icpt_client_chain_free(ch->icpt);
  crpc_channel_credentials_free(ch->tls);
  free(ch->user_agent);
  free(ch->authority);
  free(ch);
}
