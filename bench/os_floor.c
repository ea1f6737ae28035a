/*
 * bench/os_floor.c - what this machine's kernel and scheduler charge the
 * cancel protocol's two timing-bound rows before any RPC stack runs: the
 * floor under the columns of bench/cancel_side_by_side.sh.
 *
 * Usage: os_floor [-iters N] [-warmup M] [-deadline-ms 5]
 *
 * Two threads of one process and one loopback TCP connection (TCP_NODELAY
 * both ways); no HTTP/2, no framing, no allocation per iteration:
 *
 *   idle      the client thread writes a 53-byte request (the size of
 *             crpc's HEADERS + DATA for the call) and blocks reading; the
 *             server thread, asleep in epoll_wait, reads it and writes
 *             1,050 bytes (a 1 KiB message with its framing); the client
 *             reads them, takes t0, writes 13 bytes (an RST_STREAM frame)
 *             and waits on a condition variable; the server thread, back
 *             asleep in epoll_wait, wakes, reads the 13 bytes, takes t1 and
 *             signals. cancel_to_ctxdone_us = t1 - t0: one small write,
 *             the wake-up of a sleeping thread and one read, which every
 *             server that reads its sockets on a thread of its own pays.
 *   deadline  the request carries start (CLOCK_MONOTONIC ns, taken just
 *             before it is written); the server thread sleeps in
 *             epoll_pwait2 (a nanosecond timeout) until start + 5 ms and
 *             takes t1 when it returns. server_ctxdone_minus_deadline_us =
 *             t1 - (start + 5 ms): how late this machine wakes a thread
 *             from a timed sleep (its timer slack set to 1 us, as crpc's
 *             loop threads have it). A stack may beat it at p50 by
 *             waking early and polling the last stretch (crpc's timer
 *             lead, rpc/loop/timer.c); the tails are the machine's.
 *
 * Output: the shared protocol's JSON lines (cancel_samples.h), Impl
 * "os-floor", so the anchors' aggregate.py pools them with the others.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench/cancel_samples.h"

enum { REQUEST_BYTES = 53, RESPONSE_BYTES = 1050, RESET_BYTES = 13 };

static void die_errno(const char *what) {
  fprintf(stderr, "os_floor: %s: %s\n", what, strerror(errno));
  exit(1);
}

static int64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void write_all(int fd, const void *buf, size_t len) {
  const char *p = buf;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) die_errno("write");
    p += n;
    len -= (size_t)n;
  }
}

static void read_all(int fd, void *buf, size_t len) {
  char *p = buf;
  while (len > 0) {
    ssize_t n = read(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) errno = ECONNRESET;
    if (n <= 0) die_errno("read");
    p += n;
    len -= (size_t)n;
  }
}

/* The request: what to do, and the deadline scenario's start. */
typedef struct request {
  char kind; /* 'i' idle, 'd' deadline, 'q' quit */
  int64_t start_ns;
} request;

typedef struct floor_bench {
  int client_fd, server_fd, epfd;
  int64_t deadline_ns;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int64_t t1; /* the server thread's stamp; 0: none yet */
} floor_bench;

static void post_t1(floor_bench *f, int64_t t1) {
  pthread_mutex_lock(&f->mu);
  f->t1 = t1;
  pthread_mutex_unlock(&f->mu);
  pthread_cond_signal(&f->cv); /* after the unlock, as cancel_bench */
}

static int64_t wait_t1(floor_bench *f) {
  pthread_mutex_lock(&f->mu);
  while (f->t1 == 0) pthread_cond_wait(&f->cv, &f->mu);
  int64_t t1 = f->t1;
  f->t1 = 0;
  pthread_mutex_unlock(&f->mu);
  return t1;
}

/* Sleeps in epoll until the server socket is readable (NULL timeout) or
 * the timeout passes; returns the epoll result. */
static int sleep_in_epoll(floor_bench *f, const struct timespec *timeout) {
  struct epoll_event ev;
  for (;;) {
    int n = epoll_pwait2(f->epfd, &ev, 1, timeout, NULL);
    if (n >= 0) return n;
    if (errno != EINTR) die_errno("epoll_pwait2");
  }
}

static void *server_thread(void *arg) {
  floor_bench *f = arg;
  /* As crpc's loop threads: the kernel's default 50 us of slack would be
   * policy, not the machine. */
  (void)prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);
  char buf[RESPONSE_BYTES];
  memset(buf, 'x', sizeof buf);
  for (;;) {
    sleep_in_epoll(f, NULL);
    char wire[REQUEST_BYTES];
    read_all(f->server_fd, wire, sizeof wire);
    request req;
    memcpy(&req, wire, sizeof req);
    if (req.kind == 'q') return NULL;
    if (req.kind == 'i') {
      write_all(f->server_fd, buf, RESPONSE_BYTES);
      sleep_in_epoll(f, NULL);
      read_all(f->server_fd, buf, RESET_BYTES);
      post_t1(f, now_ns());
    } else {
      int64_t left = req.start_ns + f->deadline_ns - now_ns();
      if (left > 0) {
        struct timespec ts = {left / 1000000000, left % 1000000000};
        if (sleep_in_epoll(f, &ts) != 0) {
          fprintf(stderr, "os_floor: data during the deadline sleep\n");
          exit(1);
        }
      }
      post_t1(f, now_ns());
    }
  }
}

static void send_request(floor_bench *f, char kind, int64_t start_ns) {
  char wire[REQUEST_BYTES] = {0};
  request req = {.kind = kind, .start_ns = start_ns};
  memcpy(wire, &req, sizeof req);
  write_all(f->client_fd, wire, sizeof wire);
}

static void run_idle(floor_bench *f, int warmup, int iters) {
  samples lat = {0};
  char buf[RESPONSE_BYTES];
  static const char reset[RESET_BYTES];
  for (int i = 0; i < warmup + iters; i++) {
    send_request(f, 'i', 0);
    read_all(f->client_fd, buf, RESPONSE_BYTES);
    int64_t t0 = now_ns();
    write_all(f->client_fd, reset, RESET_BYTES);
    int64_t t1 = wait_t1(f);
    if (i >= warmup) samples_push(&lat, (double)(t1 - t0) / 1e3);
  }
  samples_emit("os-floor", "idle", "cancel_to_ctxdone_us", &lat);
}

static void run_deadline(floor_bench *f, int warmup, int iters) {
  samples late = {0};
  for (int i = 0; i < warmup + iters; i++) {
    int64_t start = now_ns();
    send_request(f, 'd', start);
    int64_t t1 = wait_t1(f);
    if (i >= warmup) {
      samples_push(&late, (double)(t1 - (start + f->deadline_ns)) / 1e3);
    }
  }
  samples_emit("os-floor", "deadline", "server_ctxdone_minus_deadline_us",
               &late);
}

/* One loopback connection; both ends TCP_NODELAY, as every gRPC stack. */
static void connect_pair(floor_bench *f) {
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (lfd < 0) die_errno("socket");
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t alen = sizeof a;
  if (bind(lfd, (struct sockaddr *)&a, sizeof a) != 0) die_errno("bind");
  if (listen(lfd, 1) != 0) die_errno("listen");
  if (getsockname(lfd, (struct sockaddr *)&a, &alen) != 0) die_errno("getsockname");
  f->client_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (f->client_fd < 0) die_errno("socket");
  if (connect(f->client_fd, (struct sockaddr *)&a, sizeof a) != 0) die_errno("connect");
  f->server_fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
  if (f->server_fd < 0) die_errno("accept");
  close(lfd);
  int one = 1;
  if (setsockopt(f->client_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0 ||
      setsockopt(f->server_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) {
    die_errno("TCP_NODELAY");
  }
  f->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (f->epfd < 0) die_errno("epoll_create1");
  struct epoll_event ev = {.events = EPOLLIN};
  if (epoll_ctl(f->epfd, EPOLL_CTL_ADD, f->server_fd, &ev) != 0) die_errno("epoll_ctl");
}

static int flag_value(int argc, char **argv, int *i, const char *name, int min) {
  const char *a = argv[*i];
  a += a[1] == '-' ? 2 : 1;
  size_t len = strlen(name);
  if (strncmp(a, name, len) != 0 || (a[len] != '\0' && a[len] != '=')) return -1;
  const char *val = a[len] == '=' ? a + len + 1 : (*i + 1 < argc ? argv[++*i] : "");
  char *end;
  long v = strtol(val, &end, 10);
  if (*val == '\0' || *end != '\0' || v < min || v > 100000000) {
    fprintf(stderr, "os_floor: bad value for -%s\n", name);
    exit(2);
  }
  return (int)v;
}

int main(int argc, char **argv) {
  int iters = 1000, warmup = 100, deadline_ms = 5;
  for (int i = 1; i < argc; i++) {
    int v;
    if (argv[i][0] != '-') goto usage;
    if ((v = flag_value(argc, argv, &i, "iters", 1)) >= 0) {
      iters = v;
    } else if ((v = flag_value(argc, argv, &i, "warmup", 0)) >= 0) {
      warmup = v;
    } else if ((v = flag_value(argc, argv, &i, "deadline-ms", 1)) >= 0) {
      deadline_ms = v;
    } else {
      goto usage;
    }
  }
  floor_bench f = {.deadline_ns = (int64_t)deadline_ms * 1000000,
                   .mu = PTHREAD_MUTEX_INITIALIZER,
                   .cv = PTHREAD_COND_INITIALIZER};
  connect_pair(&f);
  pthread_t server;
  if (pthread_create(&server, NULL, server_thread, &f) != 0) {
    fprintf(stderr, "os_floor: pthread_create failed\n");
    return 1;
  }
  run_idle(&f, warmup, iters);
  run_deadline(&f, warmup, iters);
  send_request(&f, 'q', 0);
  pthread_join(server, NULL);
  close(f.client_fd);
  close(f.server_fd);
  close(f.epfd);
  return 0;
usage:
  fprintf(stderr, "usage: os_floor [-iters N] [-warmup M] [-deadline-ms 5]\n");
  return 2;
}
