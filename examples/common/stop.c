#include "examples/common/stop.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* One watcher per process (one server per example). */
static pthread_t watcher;
static int watching;

static int stdin_is_pipe(void) {
  struct stat st;
  return fstat(STDIN_FILENO, &st) == 0 && S_ISFIFO(st.st_mode);
}

/* Drains whatever the parent writes; only EOF (or an error) ends the ctx.
 * Waits on the ctx too, so example_stdin_stop_end can stop it. */
static void *watch_stdin(void *arg) {
  crpc_ctx *stop = arg;
  char buf[256];
  short revents = 0;
  while (crpc_ctx_wait_fd(stop, STDIN_FILENO, POLLIN, &revents) == CRPC_OK) {
    ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
      crpc_ctx_cancel(stop, CRPC_CANCELLED, "stdin closed");
      break;
    }
  }
  return NULL;
}

crpc_ctx *example_stdin_stop_start(void) {
  crpc_ctx *stop = crpc_ctx_with_cancel(crpc_ctx_background());
  if (stop == NULL || !stdin_is_pipe()) return stop;
  int err = pthread_create(&watcher, NULL, watch_stdin, stop);
  if (err != 0) {
    fprintf(stderr, "pthread_create: %s\n", strerror(err));
    crpc_ctx_release(stop);
    return NULL;
  }
  watching = 1;
  return stop;
}

void example_stdin_stop_end(crpc_ctx *stop) {
  if (stop == NULL) return;
  crpc_ctx_cancel(stop, CRPC_CANCELLED, "server stopped");
  if (watching) pthread_join(watcher, NULL);
  watching = 0;
  crpc_ctx_release(stop);
}

const char *example_stop_reason(int signo) {
  switch (signo) {
    case 0:
      return "stdin closed";
    case SIGINT:
      return "SIGINT";
    case SIGTERM:
      return "SIGTERM";
    default:
      return "signal";
  }
}

crpc_code example_serve(crpc_server *server, int64_t grace_ns) {
  crpc_ctx *stop = example_stdin_stop_start();
  int signo = 0;
  crpc_code code =
      stop != NULL ? crpc_server_serve_until(server, stop, grace_ns, &signo)
                   : CRPC_RESOURCE_EXHAUSTED;
  printf("%s: shut down\n", code == CRPC_OK ? example_stop_reason(signo)
                                             : crpc_code_name(code));
  example_stdin_stop_end(stop);
  return code;
}
