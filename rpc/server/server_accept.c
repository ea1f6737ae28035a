/*
 * server_accept.c - accepting connections and handing each to a loop.
 * Loop thread of the listener (loops[0]), and of the receiving loop.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rpc/log/log.h"
#include "rpc/server/server_internal.h"

/* An accepted connection on its way to another loop. */
typedef struct handoff {
  server_loop *sl;
  const server_listener *l;
  int fd;
  socklen_t len;
  struct sockaddr_storage ss;
} handoff;

static void handoff_fn(crpc_loop *loop, void *arg) {
  (void)loop;
  handoff *h = arg;
  crpc_server *s = h->sl->server;
  /* Started even while draining (it begins with its GOAWAY: a request
   * already sent on it is served); only once shutdown closes connections
   * (or the loop is being freed) is it closed unserved. */
  if (atomic_load(&s->conns_closing)) {
    close(h->fd);
  } else {
    sconn_start(h->sl, h->fd, (struct sockaddr *)&h->ss, h->len, h->l);
  }
  atomic_fetch_sub(&s->handoffs, 1);
  free(h);
}

/* Gives the connection to the next loop in turn. Accept-and-hand-off
 * rather than one SO_REUSEPORT listener per loop: it works the same for
 * unix sockets and TLS, needs one listening fd per address, and spreads a
 * handful of long-lived connections evenly (the kernel's reuseport hash
 * can put 3 of 4 on one loop); it costs one post per connection, not per
 * call. */
static void dispatch_conn(const server_listener *l, int fd,
                          const struct sockaddr_storage *ss, socklen_t len) {
  crpc_server *s = l->server;
  server_loop *sl = &s->loops[s->next_loop++ % (unsigned)s->n_loops];
  if (sl == &s->loops[0]) {
    sconn_start(sl, fd, (const struct sockaddr *)ss, len, l);
    return;
  }
  handoff *h = malloc(sizeof(*h));
  if (h == NULL) {
    close(fd);
    return;
  }
  *h = (handoff){.sl = sl, .l = l, .fd = fd, .len = len, .ss = *ss};
  atomic_fetch_add(&s->handoffs, 1);
  if (crpc_loop_post(sl->loop, handoff_fn, h) != 0) {
    atomic_fetch_sub(&s->handoffs, 1);
    close(fd);
    free(h);
  }
}

/* Accepts up to max connections; false once the queue is empty (or
 * accepting failed). */
static bool accept_some(server_listener *l, int fd, int max) {
  for (int i = 0; i < max; i++) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int cfd =
        accept4(fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (cfd < 0) {
      int err = errno;
      if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        /* Out of fds or memory: the listener stays readable, so a
         * level-triggered watcher would spin. Pause accepting briefly. */
        CRPC_LOG(CRPC_LOG_WARNING, CRPC_LOG_SUB_SERVER,
                 "accept: %s; pausing 100 ms", strerror(err));
        crpc_loop_io_set(&l->io, 0);
        crpc_loop_timer_start(&l->backoff,
                              crpc_now_ns() + 100 * CRPC_MILLISECOND);
      } else if (err != EAGAIN && err != EINTR && err != ECONNABORTED) {
        CRPC_LOG(CRPC_LOG_ERROR, CRPC_LOG_SUB_SERVER, "accept: %s",
                 strerror(err));
      }
      return err == EINTR || err == ECONNABORTED;
    }
    if (ss.ss_family != AF_UNIX) {
      int one = 1;
      setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    dispatch_conn(l, cfd, &ss, len);
  }
  return true;
}

void server_on_accept(crpc_loop *loop, int fd, unsigned events, void *arg) {
  (void)loop;
  (void)events;
  accept_some(arg, fd, 64); /* the rest on the next turn: fair to I/O */
}

void server_accept_queued(server_listener *l) {
  /* Bounded: a flood of connects must not hold shutdown here. */
  for (int i = 0; i < 64 && accept_some(l, l->fd, 64); i++) {
  }
}

void server_on_accept_backoff(crpc_loop *loop, crpc_loop_timer *timer,
                              void *arg) {
  (void)loop;
  (void)timer;
  server_listener *l = arg;
  if (l->fd >= 0) crpc_loop_io_set(&l->io, CRPC_LOOP_READABLE);
}
