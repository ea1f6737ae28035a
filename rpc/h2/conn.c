/*
 * conn.c - moving bytes between an nghttp2 session and a socket.
 */
#include "rpc/h2/conn.h"
#include "crpc/ctx.h"
#include "rpc/log/log.h"
#include "rpc/mem/mem.h"
#include "rpc/tls/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* How much output is pulled from the session before writing: big enough
 * for a few full DATA frames, small enough to bound memory per connection. */
#define OUT_HIGH_WATER (64 * 1024)
#define READ_CHUNK (64 * 1024)
/* Reads per readiness while each fills the whole chunk (more is likely
 * waiting): a stream of large messages costs one epoll_wait per few
 * chunks instead of one per chunk, and the cap keeps one busy peer from
 * holding the loop thread (level-triggered: the rest comes next turn). */
#define READ_BURST 4
/* Reads per readiness while lingering: a peer that keeps sending must not
 * keep the loop thread to itself (the watcher is level-triggered, so what
 * is left is read on the next iteration). */
#define LINGER_READS 4

/* "server fd 7 (127.0.0.1:40312)": who a trace line is about. Only
 * computed while tracing (getpeername is a system call). */
static void describe(const crpc_h2_conn *conn, char *buf, size_t cap) {
  const char *side = conn->session != NULL &&
                             nghttp2_session_check_server_session(
                                 conn->session)
                         ? "server"
                         : "client";
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  char peer[INET6_ADDRSTRLEN + 8] = "?";
  if (conn->fd >= 0 &&
      getpeername(conn->fd, (struct sockaddr *)&ss, &len) == 0) {
    char host[INET6_ADDRSTRLEN] = "";
    if (ss.ss_family == AF_INET) {
      const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
      inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
      snprintf(peer, sizeof(peer), "%s:%u", host, ntohs(in->sin_port));
    } else if (ss.ss_family == AF_INET6) {
      const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
      inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
      snprintf(peer, sizeof(peer), "[%s]:%u", host, ntohs(in6->sin6_port));
    } else if (ss.ss_family == AF_UNIX) {
      snprintf(peer, sizeof(peer), "unix");
    }
  }
  snprintf(buf, cap, "%s fd %d (%s)", side, conn->fd, peer);
}

void crpc_h2_trace_frame(const crpc_h2_conn *conn, const nghttp2_frame *f,
                         bool sent) {
  if (f->hd.type != NGHTTP2_GOAWAY && f->hd.type != NGHTTP2_RST_STREAM) {
    return;
  }
  char who[96];
  describe(conn, who, sizeof(who));
  const char *dir = sent ? "sent" : "received";
  if (f->hd.type == NGHTTP2_RST_STREAM) {
    CRPC_TRACE(CRPC_LOG_SUB_H2, "%s: RST_STREAM %s on stream %d (%s)", who,
               dir, f->hd.stream_id,
               nghttp2_http2_strerror(f->rst_stream.error_code));
    return;
  }
  CRPC_TRACE(CRPC_LOG_SUB_H2,
             "%s: GOAWAY %s (last stream %d, %s, debug \"%.*s\")", who, dir,
             f->goaway.last_stream_id,
             nghttp2_http2_strerror(f->goaway.error_code),
             (int)(f->goaway.opaque_data_len > 64 ? 64
                                                  : f->goaway.opaque_data_len),
             f->goaway.opaque_data != NULL ? (const char *)f->goaway.opaque_data
                                           : "");
}

static void finish_close(crpc_h2_conn *conn) {
  if (conn->closed) return;
  conn->closed = true;
  if (crpc_log_trace_on(CRPC_LOG_SUB_H2)) {
    char who[96];
    describe(conn, who, sizeof(who)); /* before the fd goes */
    CRPC_TRACE(CRPC_LOG_SUB_H2, "%s: connection closed: %s", who,
               conn->close_why);
  }
  crpc_loop_io_stop(&conn->io);
  crpc_loop_timer_stop(&conn->handshake_timer);
  crpc_loop_timer_stop(&conn->ka_timer);
  crpc_loop_timer_stop(&conn->linger_timer);
  crpc_tls_free(conn->tls); /* close_notify first, if healthy */
  conn->tls = NULL;
  if (conn->fd >= 0) {
    close(conn->fd);
    conn->fd = -1;
  }
  conn->on_close(conn, conn->close_why);
}

void crpc_h2_conn_close(crpc_h2_conn *conn, const char *why) {
  if (conn->closed) return;
  if (conn->lingering) {
    /* The owner wants it gone now (server shutdown): stop waiting for the
     * peer. The session did end gracefully, so its reason stays. */
    finish_close(conn);
    return;
  }
  if (conn->close_pending) return;
  conn->close_pending = true;
  /* Truncating copy that tolerates why == conn->close_why (a protocol error
   * writes its reason there first). */
  size_t n = strnlen(why, sizeof(conn->close_why) - 1);
  memmove(conn->close_why, why, n);
  conn->close_why[n] = '\0';
  if (!conn->in_io) finish_close(conn);
}

ssize_t crpc_h2_data_length(nghttp2_session *session, uint8_t frame_type,
                            int32_t stream_id, int32_t session_window,
                            int32_t stream_window, uint32_t remote_max_frame,
                            void *user_data) {
  (void)session;
  (void)frame_type;
  (void)stream_id;
  (void)user_data;
  int64_t n = session_window < stream_window ? session_window : stream_window;
  if (n > (int64_t)remote_max_frame) n = remote_max_frame;
  return n > 0 ? (ssize_t)n : 1;
}

bool crpc_h2_conn_zero_copy(const crpc_h2_conn *conn) {
  return conn->tls == NULL;
}

static bool take_slice(void *arg, crpc_h2_chunk *chunk, const uint8_t *p,
                       size_t n) {
  return crpc_h2_outbuf_ref(arg, chunk, p, n);
}

int crpc_h2_conn_send_data(crpc_h2_conn *conn, const uint8_t *framehd,
                           crpc_h2_outq *q, size_t length) {
  bool ok = crpc_h2_outbuf_copy(&conn->out, framehd, 9);
  crpc_h2_cz_chunks(conn, q, length); /* channelz: messages completed */
  ok = crpc_h2_outq_take(q, length, take_slice, &conn->out) && ok;
  return ok ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
}

/* The flush proper; returns false if the connection must close. */
static bool flush_inner(crpc_h2_conn *conn) {
  for (;;) {
    while (conn->out.bytes > 0) {
      /* send(MSG_NOSIGNAL), not write: a peer that closed must be an
       * error return, never a SIGPIPE that kills the process. */
      if (conn->tls != NULL) {
        size_t done = 0;
        const uint8_t *p;
        size_t n;
        crpc_h2_outbuf_flat(&conn->out, &p, &n);
        char err[CRPC_TLS_ERR_MAX];
        crpc_tls_status st = crpc_tls_write(conn->tls, p, n, &done, err);
        if (st == CRPC_TLS_WANT_READ || st == CRPC_TLS_WANT_WRITE) {
          /* Retried with the same bytes on the next readiness. */
          crpc_loop_io_set(&conn->io, st == CRPC_TLS_WANT_WRITE
                                          ? CRPC_LOOP_READABLE |
                                                CRPC_LOOP_WRITABLE
                                          : CRPC_LOOP_READABLE);
          return true;
        }
        if (st != CRPC_TLS_OK) {
          snprintf(conn->close_why, sizeof(conn->close_why), "%.*s",
                   (int)sizeof(conn->close_why) - 1, err);
          return false;
        }
        crpc_h2_outbuf_consume_flat(&conn->out, done);
        continue;
      }
      int rc = crpc_h2_outbuf_send(&conn->out, conn->fd);
      if (rc == -EAGAIN) {
        crpc_loop_io_set(&conn->io, CRPC_LOOP_READABLE | CRPC_LOOP_WRITABLE);
        return true;
      }
      if (rc < 0) {
        snprintf(conn->close_why, sizeof(conn->close_why), "write: %s",
                 strerror(-rc));
        return false;
      }
    }
    /* A close requested from a callback (e.g. after a GOAWAY went out):
     * what was pulled has been written; pull nothing more. */
    if (conn->close_pending) return false;
    while (conn->out.bytes < OUT_HIGH_WATER) {
      const uint8_t *p;
      ssize_t n = nghttp2_session_mem_send(conn->session, &p);
      if (n < 0) {
        snprintf(conn->close_why, sizeof(conn->close_why), "nghttp2: %s",
                 nghttp2_strerror((int)n));
        return false;
      }
      if (n == 0) break;
      crpc_h2_cz_scan(conn, p, (size_t)n); /* channelz: messages sent */
      if (!crpc_h2_outbuf_copy(&conn->out, p, (size_t)n)) {
        snprintf(conn->close_why, sizeof(conn->close_why), "out of memory");
        return false;
      }
    }
    if (conn->out.bytes == 0) break;
  }
  crpc_loop_io_set(&conn->io, conn->tls_read_wants_write
                                  ? CRPC_LOOP_READABLE | CRPC_LOOP_WRITABLE
                                  : CRPC_LOOP_READABLE);
  if (!nghttp2_session_want_read(conn->session) &&
      !nghttp2_session_want_write(conn->session)) {
    snprintf(conn->close_why, sizeof(conn->close_why),
             "HTTP/2 session finished");
    /* Everything is written: a graceful end, unless a callback asked for a
     * close of its own meanwhile. */
    conn->session_done = !conn->close_pending;
    return false;
  }
  return true;
}

static void linger_timeout_fn(crpc_loop *loop, crpc_loop_timer *timer,
                              void *arg) {
  (void)loop;
  (void)timer;
  finish_close(arg); /* the peer had its chance; a RST now loses nothing */
}

/* The session is done and every byte of it written: half-close and read
 * until the peer's EOF (or the bound), so that bytes it sent meanwhile
 * never meet a closed socket, whose RST could destroy our last bytes
 * (trailers, GOAWAY) before the peer's application has read them. on_close
 * waits for the end: the owner's struct, which this lives in, stays. */
static void start_linger(crpc_h2_conn *conn) {
  conn->lingering = true;
  crpc_loop_timer_stop(&conn->handshake_timer);
  crpc_loop_timer_stop(&conn->ka_timer);
  crpc_tls_free(conn->tls); /* close_notify, best effort, before our FIN */
  conn->tls = NULL;
  if (shutdown(conn->fd, SHUT_WR) != 0 ||
      crpc_loop_io_set(&conn->io, CRPC_LOOP_READABLE) != 0) {
    finish_close(conn); /* the peer is gone already: nothing to wait for */
    return;
  }
  crpc_loop_timer_start(&conn->linger_timer, crpc_now_ns() + CRPC_H2_LINGER_NS);
}

/* While lingering: drops what the peer sends; its EOF or an error ends it. */
static void linger_read(crpc_h2_conn *conn) {
  uint8_t buf[16 * 1024];
  for (int i = 0; i < LINGER_READS; i++) {
    ssize_t n = read(conn->fd, buf, sizeof(buf));
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    finish_close(conn);
    return;
  }
}

void crpc_h2_conn_flush(crpc_h2_conn *conn) {
  if (conn->closed || conn->close_pending || conn->in_io) return;
  if (conn->tls_handshaking) return; /* nothing goes out before it is done */
  conn->in_io = true;
  bool ok = flush_inner(conn);
  conn->in_io = false;
  if (!ok) conn->close_pending = true;
  if (!conn->close_pending) return;
  if (conn->session_done && conn->linger) {
    start_linger(conn);
  } else {
    finish_close(conn);
  }
}

static void flush_closure_fn(crpc_loop *loop, void *arg) {
  (void)loop;
  crpc_h2_conn_flush(arg);
}

void crpc_h2_conn_want_flush(crpc_h2_conn *conn) {
  /* Inside on_io (the read's callbacks, after_read), the flush that ends it
   * covers this: a posted one would cost the loop an extra epoll_wait and
   * an empty flush per request. */
  if (conn->closed || conn->flush_soon) return;
  if (conn->flush_in_batch) {
    crpc_loop_post_closure_after_batch(conn->loop, &conn->flush_closure);
  } else {
    crpc_loop_post_closure(conn->loop, &conn->flush_closure);
  }
}

/* read() that also keeps the kernel's receive timestamp (CLOCK_REALTIME)
 * of the bytes in last_arrival_real (left zero if there is none). */
static ssize_t read_stamped(crpc_h2_conn *conn, uint8_t *buf, size_t cap) {
  struct iovec iov = {.iov_base = buf, .iov_len = cap};
  union {
    char buf[CMSG_SPACE(sizeof(struct timespec))];
    struct cmsghdr align;
  } ctl;
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
                       .msg_control = ctl.buf,
                       .msg_controllen = sizeof(ctl.buf)};
  ssize_t n = recvmsg(conn->fd, &msg, 0);
  if (n <= 0) return n;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL;
       c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_TIMESTAMPNS) {
      continue;
    }
    memcpy(&conn->last_arrival_real, CMSG_DATA(c),
           sizeof(conn->last_arrival_real));
  }
  return n;
}

int64_t crpc_h2_conn_arrival_ns(const crpc_h2_conn *conn) {
  const struct timespec *at = &conn->last_arrival_real;
  if (at->tv_sec == 0 && at->tv_nsec == 0) return conn->last_read_ns;
  /* "That long before now", on CLOCK_MONOTONIC. */
  struct timespec real;
  clock_gettime(CLOCK_REALTIME, &real);
  int64_t now = crpc_now_ns();
  int64_t ago = (int64_t)(real.tv_sec - at->tv_sec) * CRPC_SECOND +
                (real.tv_nsec - at->tv_nsec);
  /* A wall clock stepped meanwhile must not move a deadline: outside
   * [0, 1 s] the stamp is ignored. */
  if (ago < 0 || ago >= CRPC_SECOND) return conn->last_read_ns;
  int64_t arrival = now - ago;
  return arrival < conn->last_read_ns ? arrival : conn->last_read_ns;
}

/* One read from the socket (through TLS if any): > 0 bytes, 0 nothing for
 * now, -1 the connection is over (why set). */
static ssize_t conn_read(crpc_h2_conn *conn, uint8_t *buf, size_t cap,
                         char *why, size_t why_len) {
  conn->last_arrival_real = (struct timespec){0, 0};
  if (conn->tls != NULL) {
    size_t n = 0;
    char err[CRPC_TLS_ERR_MAX];
    crpc_tls_status st = crpc_tls_read(conn->tls, buf, cap, &n, err);
    conn->tls_read_wants_write = st == CRPC_TLS_WANT_WRITE;
    if (st == CRPC_TLS_OK) return (ssize_t)n;
    if (st == CRPC_TLS_WANT_READ || st == CRPC_TLS_WANT_WRITE) return 0;
    snprintf(why, why_len, "%.*s", (int)why_len - 1, err);
    return -1;
  }
  ssize_t n;
  if (conn->rx_timestamps) {
    n = read_stamped(conn, buf, cap);
  } else {
    n = read(conn->fd, buf, cap);
  }
  if (n > 0) return n;
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
  snprintf(why, why_len, "%s",
           n == 0 ? "connection closed by peer" : strerror(errno));
  return -1;
}

/* Server side: one step of the TLS handshake. True once it has completed
 * (HTTP/2 may start); false while it waits or after it failed. */
static bool tls_handshake_step(crpc_h2_conn *conn) {
  char err[CRPC_TLS_ERR_MAX];
  crpc_tls_status st = crpc_tls_handshake(conn->tls, err);
  if (st == CRPC_TLS_WANT_READ || st == CRPC_TLS_WANT_WRITE) {
    crpc_loop_io_set(&conn->io, st == CRPC_TLS_WANT_WRITE
                                    ? CRPC_LOOP_READABLE | CRPC_LOOP_WRITABLE
                                    : CRPC_LOOP_READABLE);
    return false;
  }
  if (st != CRPC_TLS_OK) {
    crpc_h2_conn_close(conn, err);
    return false;
  }
  conn->tls_handshaking = false;
  crpc_loop_timer_stop(&conn->handshake_timer);
  crpc_loop_io_set(&conn->io, CRPC_LOOP_READABLE);
  return true;
}

static void handshake_timeout_fn(crpc_loop *loop, crpc_loop_timer *timer,
                                 void *arg) {
  (void)loop;
  (void)timer;
  crpc_h2_conn *conn = arg;
  if (conn->tls_handshaking) {
    crpc_h2_conn_close(conn, "TLS handshake timed out");
  }
}

static void on_io(crpc_loop *loop, int fd, unsigned events, void *arg) {
  (void)loop;
  (void)fd;
  crpc_h2_conn *conn = arg;
  if (conn->closed) return;
  if (conn->lingering) {
    linger_read(conn);
    return;
  }
  if (conn->tls_handshaking && !tls_handshake_step(conn)) return;
  /* TLS reads on any readiness: a read may have waited for writability,
   * and decrypted bytes may be buffered in the session. */
  if (conn->tls != NULL ||
      (events & (CRPC_LOOP_READABLE | CRPC_LOOP_HANGUP))) {
    uint8_t buf[READ_CHUNK];
    char why[96];
    conn->in_io = true;
    conn->reading = true;
    conn->flush_soon = true;
    ssize_t n;
    int reads = 0;
    do {
      n = conn_read(conn, buf, sizeof(buf), why, sizeof(why));
      if (n <= 0) break;
      /* keepalive: the peer is alive; a stamp, the loop's clock will do */
      conn->last_read_ns = crpc_loop_now(conn->loop);
      ssize_t used = nghttp2_session_mem_recv(conn->session, buf, (size_t)n);
      if (used < 0) {
        /* A protocol error: nghttp2 has queued GOAWAY; try to send it. */
        snprintf(conn->close_why, sizeof(conn->close_why), "nghttp2: %s",
                 nghttp2_strerror((int)used));
        conn->in_io = false;
        conn->reading = false;
        conn->flush_soon = false;
        conn->linger = false; /* an error is no graceful end */
        crpc_h2_conn_flush(conn);
        crpc_h2_conn_close(conn, conn->close_why);
        return;
      }
    } while (!conn->close_pending &&
             (conn->tls != NULL ? crpc_tls_pending(conn->tls)
                                : n == (ssize_t)sizeof(buf) &&
                                      ++reads < READ_BURST));
    conn->in_io = false;
    conn->reading = false;
    if (conn->ka_ping_sent != 0 && conn->last_read_ns >= conn->ka_ping_sent) {
      /* The PING is answered: the next one is due keepalive_time from now
       * (one timer restart per PING, none per read otherwise). */
      conn->ka_ping_sent = 0;
      crpc_loop_timer_start(&conn->ka_timer,
                            conn->last_read_ns + conn->ka_time);
    }
    if (n < 0) {
      conn->flush_soon = false;
      crpc_h2_conn_close(conn, why);
      return;
    }
    if (conn->close_pending) {
      conn->flush_soon = false;
      finish_close(conn);
      return;
    }
  }
  conn->flush_soon = true;
  if (conn->after_read != NULL) conn->after_read(conn);
  conn->flush_soon = false;
  /* Whatever was read may have produced output (SETTINGS ack, WINDOW_UPDATE,
   * responses submitted from callbacks); write interest means room again. */
  crpc_h2_conn_flush(conn);
}

static void start(crpc_h2_conn *conn, crpc_loop *loop, int fd,
                  nghttp2_session *session, struct crpc_tls *tls,
                  int64_t handshake_deadline_ns,
                  crpc_h2_conn_close_fn on_close) {
  memset(conn, 0, sizeof(*conn));
  conn->loop = loop;
  conn->fd = fd;
  conn->session = session;
  conn->on_close = on_close;
  conn->tls = tls;
  conn->tls_handshaking = tls != NULL && handshake_deadline_ns != 0;
  crpc_h2_cz_init(&conn->cz, session);
  /* Lingering needs an owner that closes every connection not yet closed
   * before its loop is freed (which forgets watchers and timers): the
   * server does (its connection list); the channel opts in after start,
   * with its attached list. Off by default, so no other owner leaks. */
  conn->linger = nghttp2_session_check_server_session(session) != 0;
  crpc_loop_timer_init(&conn->linger_timer, loop, linger_timeout_fn, conn);
  crpc_loop_timer_init(&conn->handshake_timer, loop, handshake_timeout_fn,
                       conn);
  if (conn->tls_handshaking) {
    crpc_loop_timer_start(&conn->handshake_timer, handshake_deadline_ns);
  }
  crpc_loop_timer_init(&conn->ka_timer, loop, NULL, conn);
  conn->last_read_ns = crpc_now_ns();
  crpc_loop_closure_init(&conn->flush_closure, flush_closure_fn, conn);
  crpc_loop_io_init(&conn->io, loop, fd, on_io, conn);
  if (crpc_log_trace_on(CRPC_LOG_SUB_H2)) {
    char who[96];
    describe(conn, who, sizeof(who));
    CRPC_TRACE(CRPC_LOG_SUB_H2, "%s: connection open%s", who,
               tls != NULL ? " (TLS)" : "");
  }
  if (crpc_loop_io_set(&conn->io, CRPC_LOOP_READABLE) != 0) {
    crpc_h2_conn_close(conn, "cannot watch socket");
    return;
  }
  crpc_h2_conn_flush(conn);
}

void crpc_h2_conn_start(crpc_h2_conn *conn, crpc_loop *loop, int fd,
                        nghttp2_session *session,
                        crpc_h2_conn_close_fn on_close) {
  start(conn, loop, fd, session, NULL, 0, on_close);
}

void crpc_h2_conn_start_tls(crpc_h2_conn *conn, crpc_loop *loop, int fd,
                            nghttp2_session *session, struct crpc_tls *tls,
                            int64_t handshake_deadline_ns,
                            crpc_h2_conn_close_fn on_close) {
  start(conn, loop, fd, session, tls, handshake_deadline_ns, on_close);
}

/* The keepalive timer: due at last_read + time (send a PING) or at
 * ping_sent + timeout (no answer: the peer is dead). */
static void keepalive_fn(crpc_loop *loop, crpc_loop_timer *timer, void *arg) {
  (void)loop;
  (void)timer;
  crpc_h2_conn *conn = arg;
  if (conn->closed || conn->close_pending) return;
  int64_t now = crpc_now_ns();
  if (conn->ka_ping_sent != 0) {
    if (conn->last_read_ns < conn->ka_ping_sent) {
      char why[96];
      snprintf(why, sizeof(why),
               "keepalive timed out (no PING ACK within %lld ms)",
               (long long)(conn->ka_timeout / CRPC_MILLISECOND));
      crpc_h2_conn_close(conn, why);
      return;
    }
    conn->ka_ping_sent = 0; /* answered */
  }
  int64_t due = conn->last_read_ns + conn->ka_time;
  if (now < due || conn->tls_handshaking ||
      (conn->ka_active != NULL && !conn->ka_active(conn))) {
    crpc_loop_timer_start(&conn->ka_timer,
                          now < due ? due : now + conn->ka_time);
    return;
  }
  if (nghttp2_submit_ping(conn->session, NGHTTP2_FLAG_NONE, NULL) != 0) {
    crpc_loop_timer_start(&conn->ka_timer, now + conn->ka_time);
    return;
  }
  conn->ka_ping_sent = now;
  conn->cz.pings_sent++;
  crpc_loop_timer_start(&conn->ka_timer, now + conn->ka_timeout);
  crpc_h2_conn_flush(conn); /* may close: the timer is stopped then */
}

void crpc_h2_conn_keepalive(crpc_h2_conn *conn, int64_t time_ns,
                            int64_t timeout_ns,
                            bool (*active)(crpc_h2_conn *conn)) {
  if (time_ns <= 0 || conn->closed || conn->close_pending) return;
  conn->ka_time = time_ns;
  conn->ka_timeout = timeout_ns > 0 ? timeout_ns : 20 * CRPC_SECOND;
  conn->ka_active = active;
  conn->ka_ping_sent = 0;
  crpc_loop_timer_init(&conn->ka_timer, conn->loop, keepalive_fn, conn);
  crpc_loop_timer_start(&conn->ka_timer, conn->last_read_ns + time_ns);
}

void crpc_h2_conn_destroy(crpc_h2_conn *conn) {
  if (conn->session != NULL) {
    nghttp2_session_del(conn->session);
    conn->session = NULL;
  }
  crpc_h2_outbuf_clear(&conn->out);
}

/* ---- nghttp2's allocations -------------------------------------------- */

static void *mem_malloc(size_t size, void *user) {
  (void)user;
  return crpc_mem_alloc(size);
}

static void mem_free(void *ptr, void *user) {
  (void)user;
  crpc_mem_free(ptr);
}

static void *mem_calloc(size_t n, size_t size, void *user) {
  (void)user;
  return crpc_mem_calloc(n, size);
}

static void *mem_realloc(void *ptr, size_t size, void *user) {
  (void)user;
  return crpc_mem_realloc(ptr, size);
}

nghttp2_mem *crpc_h2_mem(void) {
  static nghttp2_mem mem = {NULL, mem_malloc, mem_free, mem_calloc,
                            mem_realloc};
  return &mem;
}
