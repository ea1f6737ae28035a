/*
 * ctx_tour - a request's life with crpc contexts, in one process.
 *
 * A "request" ctx gets a 300 ms deadline. Three workers hang off it:
 *   - one waits in poll() on the ctx fd next to its own socket,
 *   - one is stuck in a blocking read() that knows nothing about crpc, and
 *     is freed by an on_cancel callback (failure catalog line 6 in
 *     DESIGN.md),
 *   - one sleeps in crpc_ctx_sleep for 10 s.
 * Round 1 lets the deadline expire; round 2 cancels by hand after 50 ms.
 * Every worker prints how long after the end it noticed, and why.
 */
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "crpc/ctx.h"

typedef struct worker {
  const char *name;
  const crpc_ctx *ctx; /* read-only view: workers cannot cancel the request */
  int fds[2];          /* a socketpair nobody ever writes to */
  int64_t noticed_at;
  crpc_code code;
} worker;

static void *poll_worker(void *arg) {
  worker *w = arg;
  short revents = 0;
  w->code = crpc_ctx_wait_fd(w->ctx, w->fds[0], POLLIN, &revents);
  w->noticed_at = crpc_now_ns();
  return NULL;
}

static void shut_socket(void *arg, const crpc_cause *cause) {
  (void)cause;
  shutdown(*(int *)arg, SHUT_RDWR); /* makes the blocked read() return 0 */
}

static void *blocking_worker(void *arg) {
  worker *w = arg;
  crpc_on_cancel reg;
  if (crpc_ctx_on_cancel(w->ctx, &reg, shut_socket, &w->fds[0])) {
    char byte;
    ssize_t n = read(w->fds[0], &byte, 1); /* plain blocking read */
    (void)n;
    crpc_ctx_remove_on_cancel(&reg);
  }
  w->noticed_at = crpc_now_ns();
  w->code = crpc_ctx_err(w->ctx);
  return NULL;
}

static void *sleep_worker(void *arg) {
  worker *w = arg;
  w->code = crpc_ctx_sleep(w->ctx, 10 * CRPC_SECOND);
  w->noticed_at = crpc_now_ns();
  return NULL;
}

static void run_round(const char *title, int64_t cancel_after_ns) {
  printf("== %s ==\n", title);
  crpc_ctx *request =
      crpc_ctx_with_timeout(crpc_ctx_background(), 300 * CRPC_MILLISECOND);
  if (request == NULL) exit(1);
  /* A worker ctx derived with a longer timeout keeps the shorter one. */
  crpc_ctx *work = crpc_ctx_with_timeout(request, 5 * CRPC_SECOND);
  printf("request deadline in %" PRId64 " ms; worker asked for 5000 ms, got %"
         PRId64 " ms\n",
         crpc_ctx_remaining(request) / CRPC_MILLISECOND,
         crpc_ctx_remaining(work) / CRPC_MILLISECOND);

  worker workers[3] = {{.name = "poll(ctx fd + socket)"},
                       {.name = "blocking read()"},
                       {.name = "crpc_ctx_sleep(10 s)"}};
  void *(*bodies[3])(void *) = {poll_worker, blocking_worker, sleep_worker};
  pthread_t tids[3];
  for (int i = 0; i < 3; i++) {
    workers[i].ctx = work;
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, workers[i].fds) != 0) exit(1);
    pthread_create(&tids[i], NULL, bodies[i], &workers[i]);
  }

  /* The moment the request ended: the deadline itself, or just before the
   * cancel call. Lags below are measured from there. */
  int64_t ended = crpc_ctx_deadline(request);
  if (cancel_after_ns > 0) {
    crpc_ctx_sleep(crpc_ctx_background(), cancel_after_ns);
    ended = crpc_now_ns();
    crpc_ctx_cancel(request, CRPC_CANCELLED, "user pressed stop");
  }
  crpc_ctx_wait(request);
  const crpc_cause *cause = crpc_ctx_cause(request);
  printf("request ended: %s, origin %s, \"%s\"\n", crpc_code_name(cause->code),
         crpc_origin_name(cause->origin), cause->message);
  for (int i = 0; i < 3; i++) {
    pthread_join(tids[i], NULL);
    printf("  %-24s noticed %s after %" PRId64 " us\n", workers[i].name,
           crpc_code_name(workers[i].code),
           (workers[i].noticed_at - ended) / CRPC_MICROSECOND);
    close(workers[i].fds[0]);
    close(workers[i].fds[1]);
  }
  const crpc_cause *inherited = crpc_ctx_cause(work);
  printf("worker ctx inherited: %s / %s\n", crpc_code_name(inherited->code),
         crpc_origin_name(inherited->origin));

  printf("unreleased contexts before release: %zu\n", crpc_ctx_live_count());
  crpc_ctx_dump(stdout);
  crpc_ctx_release(work);
  crpc_ctx_release(request);
  printf("unreleased contexts after release: %zu\n\n", crpc_ctx_live_count());
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  run_round("round 1: the 300 ms deadline expires", 0);
  run_round("round 2: cancelled by hand after 50 ms", 50 * CRPC_MILLISECOND);
  return crpc_ctx_live_count() == 0 ? 0 : 1;
}
