/*
 * conn.c - moving bytes between an nghttp2 session and a socket.
 */
#include "rpc/h2/conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* How much output is pulled from the session before writing: big enough
 * for a few full DATA frames, small enough to bound memory per connection. */
#define OUT_HIGH_WATER (64 * 1024)
#define READ_CHUNK (64 * 1024)

static void finish_close(crpc_h2_conn *conn) {
  if (conn->closed) return;
  conn->closed = true;
  crpc_loop_io_stop(&conn->io);
  if (conn->fd >= 0) {
    close(conn->fd);
    conn->fd = -1;
  }
  conn->on_close(conn, conn->close_why);
}

void crpc_h2_conn_close(crpc_h2_conn *conn, const char *why) {
  if (conn->closed || conn->close_pending) return;
  conn->close_pending = true;
  snprintf(conn->close_why, sizeof(conn->close_why), "%s", why);
  if (!conn->in_io) finish_close(conn);
}

/* Appends to the output buffer; false if out of memory. */
static bool out_append(crpc_h2_conn *conn, const uint8_t *p, size_t n) {
  if (conn->out_len + n > conn->out_cap) {
    size_t cap = conn->out_cap ? conn->out_cap : 16 * 1024;
    while (cap < conn->out_len + n) cap *= 2;
    uint8_t *q = realloc(conn->out, cap);
    if (q == NULL) return false;
    conn->out = q;
    conn->out_cap = cap;
  }
  memcpy(conn->out + conn->out_len, p, n);
  conn->out_len += n;
  return true;
}

/* The flush proper; returns false if the connection must close. */
static bool flush_inner(crpc_h2_conn *conn) {
  for (;;) {
    while (conn->out_off < conn->out_len) {
      /* send(MSG_NOSIGNAL), not write: a peer that closed must be an
       * error return, never a SIGPIPE that kills the process. */
      ssize_t n = send(conn->fd, conn->out + conn->out_off,
                       conn->out_len - conn->out_off, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        crpc_loop_io_set(&conn->io, CRPC_LOOP_READABLE | CRPC_LOOP_WRITABLE);
        return true;
      }
      if (n < 0) {
        snprintf(conn->close_why, sizeof(conn->close_why), "write: %s",
                 strerror(errno));
        return false;
      }
      conn->out_off += (size_t)n;
    }
    conn->out_off = conn->out_len = 0;
    while (conn->out_len < OUT_HIGH_WATER) {
      const uint8_t *p;
      ssize_t n = nghttp2_session_mem_send(conn->session, &p);
      if (n < 0) {
        snprintf(conn->close_why, sizeof(conn->close_why), "nghttp2: %s",
                 nghttp2_strerror((int)n));
        return false;
      }
      if (n == 0) break;
      if (!out_append(conn, p, (size_t)n)) {
        snprintf(conn->close_why, sizeof(conn->close_why), "out of memory");
        return false;
      }
    }
    if (conn->out_len == 0) break;
  }
  crpc_loop_io_set(&conn->io, CRPC_LOOP_READABLE);
  if (!nghttp2_session_want_read(conn->session) &&
      !nghttp2_session_want_write(conn->session)) {
    snprintf(conn->close_why, sizeof(conn->close_why),
             "HTTP/2 session finished");
    return false;
  }
  return true;
}

void crpc_h2_conn_flush(crpc_h2_conn *conn) {
  if (conn->closed || conn->close_pending || conn->in_io) return;
  conn->in_io = true;
  bool ok = flush_inner(conn);
  conn->in_io = false;
  if (!ok) conn->close_pending = true;
  if (conn->close_pending) finish_close(conn);
}

static void flush_closure_fn(crpc_loop *loop, void *arg) {
  (void)loop;
  crpc_h2_conn_flush(arg);
}

void crpc_h2_conn_want_flush(crpc_h2_conn *conn) {
  if (conn->closed) return;
  crpc_loop_post_closure(conn->loop, &conn->flush_closure);
}

static void on_io(crpc_loop *loop, int fd, unsigned events, void *arg) {
  (void)loop;
  crpc_h2_conn *conn = arg;
  if (conn->closed) return;
  if (events & (CRPC_LOOP_READABLE | CRPC_LOOP_HANGUP)) {
    uint8_t buf[READ_CHUNK];
    conn->in_io = true;
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n > 0) {
      ssize_t used = nghttp2_session_mem_recv(conn->session, buf, (size_t)n);
      if (used < 0) {
        /* A protocol error: nghttp2 has queued GOAWAY; try to send it. */
        snprintf(conn->close_why, sizeof(conn->close_why), "nghttp2: %s",
                 nghttp2_strerror((int)used));
        conn->in_io = false;
        crpc_h2_conn_flush(conn);
        crpc_h2_conn_close(conn, conn->close_why);
        return;
      }
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
      char why[96];
      snprintf(why, sizeof(why), "%s",
               n == 0 ? "connection closed by peer" : strerror(errno));
      conn->in_io = false;
      crpc_h2_conn_close(conn, why);
      return;
    }
    conn->in_io = false;
    if (conn->close_pending) {
      finish_close(conn);
      return;
    }
  }
  /* Whatever was read may have produced output (SETTINGS ack, WINDOW_UPDATE,
   * responses submitted from callbacks); write interest means room again. */
  crpc_h2_conn_flush(conn);
}

void crpc_h2_conn_start(crpc_h2_conn *conn, crpc_loop *loop, int fd,
                        nghttp2_session *session,
                        crpc_h2_conn_close_fn on_close) {
  memset(conn, 0, sizeof(*conn));
  conn->loop = loop;
  conn->fd = fd;
  conn->session = session;
  conn->on_close = on_close;
  crpc_loop_closure_init(&conn->flush_closure, flush_closure_fn, conn);
  crpc_loop_io_init(&conn->io, loop, fd, on_io, conn);
  if (crpc_loop_io_set(&conn->io, CRPC_LOOP_READABLE) != 0) {
    crpc_h2_conn_close(conn, "cannot watch socket");
    return;
  }
  crpc_h2_conn_flush(conn);
}

void crpc_h2_conn_destroy(crpc_h2_conn *conn) {
  if (conn->session != NULL) {
    nghttp2_session_del(conn->session);
    conn->session = NULL;
  }
  free(conn->out);
  conn->out = NULL;
  conn->out_len = conn->out_off = conn->out_cap = 0;
}
