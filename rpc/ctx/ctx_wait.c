/*
 * ctx_wait.c - waiting for a ctx to be done without polling.
 *
 * The race every wait must avoid (failure catalog line 10, DESIGN.md) is
 * "checked: not done; then went to sleep" with the cancel landing in between.
 * Waits on the ctx itself close it by checking `done` and sleeping on
 * ctx->cond under ctx->mu, the same lock cancel holds while setting `done` and
 * reading `waiters`. Waits on a user's condition variable close it with an
 * on_cancel callback that takes the user's mutex before broadcasting.
 */
#include <errno.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "rpc/ctx/ctx_block_hook.h"
#include "rpc/ctx/ctx_internal.h"

static _Thread_local void (*block_hook)(void);

void ctx_set_block_hook(void (*fn)(void)) { block_hook = fn; }

static inline void before_block(void) {
  if (block_hook != NULL) block_hook();
}

int crpc_ctx_fd(const crpc_ctx *view) {
  ctx_check(view, "crpc_ctx_fd");
  crpc_ctx *ctx = (crpc_ctx *)view;
  pthread_mutex_lock(&ctx->mu);
  if (ctx->fd < 0) {
    ctx->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    /* Cancel reads fd under mu, so a ctx that finished before the fd existed
     * must mark it here. */
    if (ctx->fd >= 0 && atomic_load_explicit(&ctx->done, memory_order_relaxed)) {
      uint64_t one = 1;
      ssize_t n = write(ctx->fd, &one, sizeof(one));
      (void)n;
    }
  }
  int fd = ctx->fd;
  pthread_mutex_unlock(&ctx->mu);
  return fd;
}

/* Sleeps until `until` (CLOCK_MONOTONIC ns) or until ctx is done. */
static crpc_code wait_until(crpc_ctx *ctx, int64_t until) {
  if (ctx_is_background(ctx)) {
    /* Never done: a plain sleep (the static cond is on CLOCK_REALTIME). */
    struct timespec ts = {.tv_sec = until / CRPC_SECOND,
                          .tv_nsec = until % CRPC_SECOND};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
    return CRPC_OK;
  }
  before_block();
  pthread_mutex_lock(&ctx->mu);
  ctx->waiters++;
  while (!atomic_load_explicit(&ctx->done, memory_order_relaxed)) {
    if (until == CRPC_NO_DEADLINE) {
      pthread_cond_wait(&ctx->cond, &ctx->mu);
      continue;
    }
    if (crpc_now_ns() >= until) break;
    struct timespec ts = {.tv_sec = until / CRPC_SECOND,
                          .tv_nsec = until % CRPC_SECOND};
    pthread_cond_timedwait(&ctx->cond, &ctx->mu, &ts);
  }
  ctx->waiters--;
  crpc_code code = atomic_load_explicit(&ctx->done, memory_order_relaxed)
                       ? ctx->cause.code
                       : CRPC_OK;
  pthread_mutex_unlock(&ctx->mu);
  return code;
}

crpc_code crpc_ctx_wait(const crpc_ctx *view) {
  ctx_check(view, "crpc_ctx_wait");
  crpc_ctx *ctx = (crpc_ctx *)view;
  crpc_code code;
  do {
    code = wait_until(ctx, CRPC_NO_DEADLINE);
  } while (code == CRPC_OK); /* only the background gets here, forever */
  return code;
}

crpc_code crpc_ctx_sleep(const crpc_ctx *view, int64_t duration_ns) {
  ctx_check(view, "crpc_ctx_sleep");
  crpc_ctx *ctx = (crpc_ctx *)view;
  if (ctx_done_acquire(ctx)) return ctx->cause.code;
  if (duration_ns <= 0) return CRPC_OK;
  int64_t now = crpc_now_ns();
  int64_t until = duration_ns >= CRPC_NO_DEADLINE - now ? CRPC_NO_DEADLINE - 1
                                                        : now + duration_ns;
  return wait_until(ctx, until);
}

typedef struct cond_waker {
  pthread_cond_t *cond;
  pthread_mutex_t *mu;
} cond_waker;

static void wake_cond(void *arg, const crpc_cause *cause) {
  (void)cause;
  cond_waker *w = arg;
  /* Taking the waiter's mutex orders this broadcast after the waiter has
   * entered pthread_cond_wait (it held the mutex from its check onwards). */
  pthread_mutex_lock(w->mu);
  pthread_cond_broadcast(w->cond);
  pthread_mutex_unlock(w->mu);
}

crpc_code crpc_ctx_wait_cond(const crpc_ctx *view, pthread_cond_t *cond,
                             pthread_mutex_t *mu) {
  ctx_check(view, "crpc_ctx_wait_cond");
  crpc_ctx *ctx = (crpc_ctx *)view;
  cond_waker waker = {cond, mu};
  crpc_on_cancel reg;
  if (!crpc_ctx_on_cancel(ctx, &reg, wake_cond, &waker)) {
    return ctx->cause.code;
  }
  before_block();
  pthread_cond_wait(cond, mu);
  if (crpc_ctx_remove_on_cancel(&reg) == CRPC_ON_CANCEL_RUNNING) {
    /* The callback uses `waker` on our stack and needs `mu`: let it finish
     * before this frame goes away. */
    pthread_mutex_unlock(mu);
    pthread_mutex_lock(&ctx->mu);
    ctx_wait_callback_done_locked(ctx, &reg);
    pthread_mutex_unlock(&ctx->mu);
    pthread_mutex_lock(mu);
  }
  return ctx_done_acquire(ctx) ? ctx->cause.code : CRPC_OK;
}

crpc_code crpc_ctx_wait_fd(const crpc_ctx *view, int fd, short events,
                           short *revents) {
  ctx_check(view, "crpc_ctx_wait_fd");
  int ctx_fd = crpc_ctx_fd(view);
  if (ctx_fd < 0) return CRPC_INTERNAL;
  struct pollfd fds[2] = {
      {.fd = fd, .events = events},
      {.fd = ctx_fd, .events = POLLIN},
  };
  before_block();
  for (;;) {
    int n = poll(fds, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return CRPC_INTERNAL;
    if (fds[1].revents != 0) return crpc_ctx_err(view);
    if (revents != NULL) *revents = fds[0].revents;
    return CRPC_OK;
  }
}
