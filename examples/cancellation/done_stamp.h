/*
 * examples/cancellation/done_stamp.h - record the moment a ctx ends.
 *
 * An on_cancel callback runs on whichever thread cancels the ctx (the
 * transport for a peer reset, the timer thread for a deadline) at the very
 * moment it happens, so its timestamp is the most precise answer to "when
 * did this ctx end?". Reading that timestamp safely from another thread
 * needs a little care, which lives here.
 */
#ifndef EXAMPLES_CANCELLATION_DONE_STAMP_H
#define EXAMPLES_CANCELLATION_DONE_STAMP_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "crpc/ctx.h"

/* Keep it somewhere that outlives the watched ctx's cancellation (static
 * or long-lived storage): the callback may still be returning, on its own
 * thread, just after done_stamp_stop has read the stamp. */
typedef struct done_stamp {
  pthread_mutex_t mu;
  pthread_cond_t cond;
  bool done;
  int64_t at_ns;    /* crpc_now_ns() when the ctx ended */
  crpc_cause cause; /* why it ended */
  const crpc_ctx *ctx;
  crpc_on_cancel reg;
  bool registered;
} done_stamp;

/* Starts watching ctx. If it is already done, stamps the current time. */
void done_stamp_start(done_stamp *s, const crpc_ctx *ctx);

/* Stops watching; call before the ctx is released. Returns true with at_ns
 * and cause set if the ctx has ended, false if it is still live. */
bool done_stamp_stop(done_stamp *s);

#endif /* EXAMPLES_CANCELLATION_DONE_STAMP_H */
