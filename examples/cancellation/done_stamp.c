#include "examples/cancellation/done_stamp.h"

/* The callback: short, and non-blocking apart from a brief lock, as crpc
 * requires of on_cancel callbacks. */
static void stamp(void *arg, const crpc_cause *cause) {
  int64_t now = crpc_now_ns();
  done_stamp *s = arg;
  pthread_mutex_lock(&s->mu);
  s->done = true;
  s->at_ns = now;
  s->cause = *cause;
  pthread_cond_broadcast(&s->cond);
  pthread_mutex_unlock(&s->mu);
}

void done_stamp_start(done_stamp *s, const crpc_ctx *ctx) {
  *s = (done_stamp){.mu = PTHREAD_MUTEX_INITIALIZER,
                    .cond = PTHREAD_COND_INITIALIZER,
                    .ctx = ctx};
  s->registered = crpc_ctx_on_cancel(ctx, &s->reg, stamp, s);
  /* Not registered means born done: crpc does not call fn then. */
  if (!s->registered) stamp(s, crpc_ctx_cause(ctx));
}

static void wait_for_stamp(done_stamp *s) {
  pthread_mutex_lock(&s->mu);
  while (!s->done) pthread_cond_wait(&s->cond, &s->mu);
  pthread_mutex_unlock(&s->mu);
}

bool done_stamp_stop(done_stamp *s) {
  if (!s->registered) return true;
  /* Careful: a ctx can be done while the thread cancelling it has not yet
   * reached our callback, and removing the callback then would skip it
   * (REMOVED: "had not run, and now never will"). So if the ctx is done,
   * first wait for the callback, which is certain to run, then remove it. */
  if (crpc_ctx_is_done(s->ctx)) {
    wait_for_stamp(s);
    crpc_ctx_remove_on_cancel(&s->reg); /* RAN, or RUNNING its last lines */
    return true;
  }
  if (crpc_ctx_remove_on_cancel(&s->reg) == CRPC_ON_CANCEL_REMOVED)
    return false; /* still live when removed: it never ended */
  wait_for_stamp(s); /* it ended between the check and the removal */
  return true;
}
