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
  /* Shutdown has drained this loop already (or the loop is being freed):
   * the connection is refused, as a closed listener would. */
  if (atomic_load(&h->sl->server->draining)) {
    close(h->fd);
  } else {
    sconn_start(h->sl, h->fd, (struct sockaddr *)&h->ss, h->len, h->l);
  }
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
  if (crpc_loop_post(sl->loop, handoff_fn, h) != 0) {
    close(fd);
    free(h);
  }
}

void server_on_accept(crpc_loop *loop, int fd, unsigned events, void *arg) {
  (void)loop;
  (void)events;
  server_listener *l = arg;
  for (int i = 0; i < 64; i++) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int cfd =
        accept4(fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (cfd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
          errno == ENOMEM) {
        /* Out of fds or memory: the listener stays readable, so a
         * level-triggered watcher would spin. Pause accepting briefly. */
        CRPC_LOG(CRPC_LOG_WARNING, CRPC_LOG_SUB_SERVER,
                 "accept: %s; pausing 100 ms", strerror(errno));
        crpc_loop_io_set(&l->io, 0);
        crpc_loop_timer_start(&l->backoff,
                              crpc_now_ns() + 100 * CRPC_MILLISECOND);
      } else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
        CRPC_LOG(CRPC_LOG_ERROR, CRPC_LOG_SUB_SERVER, "accept: %s",
                 strerror(errno));
      }
      return;
    }
    if (ss.ss_family != AF_UNIX) {
      int one = 1;
      setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    dispatch_conn(l, cfd, &ss, len);
  }
}

void server_on_accept_backoff(crpc_loop *loop, crpc_loop_timer *timer,
                              void *arg) {
  (void)loop;
  (void)timer;
  server_listener *l = arg;
  if (l->fd >= 0) crpc_loop_io_set(&l->io, CRPC_LOOP_READABLE);
}
