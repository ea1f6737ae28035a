/*
 * rpc/server/server_signal.c - serve until SIGINT/SIGTERM (or a stop ctx),
 * then shut down gracefully (crpc_server_serve_until, crpc/server.h).
 *
 * Why a handler and not sigwait/signalfd: by the time a program calls this,
 * crpc's loop, handler and timer threads already exist, each with the
 * signal mask main had when it started them. sigwait only works if every
 * one of them blocks the signals, which the program must have arranged
 * before its first crpc call (the examples used to). A process-wide handler
 * works whichever thread the kernel picks: it writes the signal number into
 * a pipe (write is async-signal-safe) and the waiting thread polls that
 * pipe, next to the stop ctx's fd. The waiting thread also unblocks both
 * signals while it waits, so one the program had blocked (and that may
 * already be pending) is delivered too.
 *
 * The pipe is made once and kept for the life of the process: a handler
 * already running on another thread when the wait ends may still write to
 * it, so closing it could make that write land in an unrelated file that
 * reused the descriptor.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "crpc/server.h"
#include "rpc/log/log.h"
#include "rpc/server/server_internal.h"

static int g_pipe[2] = {-1, -1};
static int g_pipe_errno; /* why the pipe could not be made, 0 if it was */
static pthread_once_t g_pipe_once = PTHREAD_ONCE_INIT;
/* One waiter at a time: the handlers and the pipe are process-wide. */
static atomic_bool g_waiting;

static void make_pipe(void) {
  if (pipe2(g_pipe, O_CLOEXEC | O_NONBLOCK) != 0) g_pipe_errno = errno;
}

static void on_stop_signal(int signo) {
  int saved = errno;
  unsigned char b = (unsigned char)signo;
  /* Non-blocking: with the pipe full (thousands of unread signals) one
   * more changes nothing, the waiter wakes for the first. */
  ssize_t n = write(g_pipe[1], &b, 1);
  (void)n;
  errno = saved;
}

static void drain_pipe(void) {
  unsigned char buf[64];
  while (read(g_pipe[0], buf, sizeof buf) > 0) {
  }
}

/* Blocks until a signal byte arrives on the pipe or `stop` is done.
 * Returns the signal number, 0 for the ctx, -1 if poll failed. */
static int wait_for_stop(const crpc_ctx *stop) {
  struct pollfd fds[2] = {{.fd = g_pipe[0], .events = POLLIN},
                          {.fd = -1, .events = POLLIN}};
  if (stop != NULL) {
    fds[1].fd = crpc_ctx_fd(stop);
    if (fds[1].fd < 0) {
      CRPC_LOG(CRPC_LOG_ERROR, CRPC_LOG_SUB_SERVER,
               "serve_until: no fd for the stop ctx");
      return -1;
    }
  }
  for (;;) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue; /* our own handler ran on this thread */
      CRPC_LOG(CRPC_LOG_ERROR, CRPC_LOG_SUB_SERVER, "serve_until: poll: %s",
               strerror(errno));
      return -1;
    }
    if (fds[0].revents & POLLIN) {
      unsigned char b;
      if (read(g_pipe[0], &b, 1) == 1) return b;
    }
    if (fds[1].revents != 0) return 0;
  }
}

crpc_code crpc_server_serve_until(crpc_server *server, const crpc_ctx *stop,
                                  int64_t grace_ns, int *signo) {
  if (signo != NULL) *signo = 0;
  if (server == NULL || !server->started || server->shut_down) {
    return CRPC_FAILED_PRECONDITION;
  }
  bool expected = false;
  if (!atomic_compare_exchange_strong(&g_waiting, &expected, true)) {
    return CRPC_FAILED_PRECONDITION;
  }
  pthread_once(&g_pipe_once, make_pipe);
  if (g_pipe_errno != 0) {
    CRPC_LOG(CRPC_LOG_ERROR, CRPC_LOG_SUB_SERVER, "serve_until: pipe: %s",
             strerror(g_pipe_errno));
    atomic_store(&g_waiting, false);
    return CRPC_INTERNAL;
  }
  drain_pipe(); /* bytes a late handler wrote after the previous wait */

  struct sigaction sa, old_int, old_term;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  /* Other threads' interrupted system calls restart (user handlers that
   * block in read() need not expect EINTR because of us). */
  sa.sa_flags = SA_RESTART;
  sigset_t both, old_mask;
  sigemptyset(&both);
  sigaddset(&both, SIGINT);
  sigaddset(&both, SIGTERM);
  if (sigaction(SIGINT, &sa, &old_int) != 0) {
    CRPC_LOG(CRPC_LOG_ERROR, CRPC_LOG_SUB_SERVER, "serve_until: sigaction: %s",
             strerror(errno));
    atomic_store(&g_waiting, false);
    return CRPC_INTERNAL;
  }
  if (sigaction(SIGTERM, &sa, &old_term) != 0) {
    CRPC_LOG(CRPC_LOG_ERROR, CRPC_LOG_SUB_SERVER, "serve_until: sigaction: %s",
             strerror(errno));
    sigaction(SIGINT, &old_int, NULL);
    atomic_store(&g_waiting, false);
    return CRPC_INTERNAL;
  }
  pthread_sigmask(SIG_UNBLOCK, &both, &old_mask);

  int got = wait_for_stop(stop);

  /* Restore before the grace period: a second Ctrl-C then gets whatever
   * the program had before (by default it ends the process at once). */
  pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
  sigaction(SIGTERM, &old_term, NULL);
  sigaction(SIGINT, &old_int, NULL);
  atomic_store(&g_waiting, false);
  if (got < 0) return CRPC_INTERNAL;
  if (signo != NULL) *signo = got;
  crpc_server_shutdown(server, grace_ns);
  return CRPC_OK;
}

crpc_code crpc_server_serve_until_signal(crpc_server *server,
                                         int64_t grace_ns) {
  return crpc_server_serve_until(server, NULL, grace_ns, NULL);
}
