/*
 * rpc/loop/loop_internal.h - what loop.c, timer.c and post.c share.
 * Not for users of the loop: everything here may change.
 */
#ifndef CRPC_LOOP_LOOP_INTERNAL_H
#define CRPC_LOOP_LOOP_INTERNAL_H

#include <assert.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <time.h>

#include "rpc/loop/loop.h"

/* Events fetched per epoll wait. More ready fds simply wait one iteration,
 * which keeps the per-removal scrub of the batch cheap. */
#define CRPC_LOOP_BATCH 256

struct crpc_loop {
  /* Touched by posting threads. On its own cache line so that posters
   * hammering it do not keep stealing the loop thread's fields below. */
  alignas(64) _Atomic(crpc_loop_closure *) post_head;
  /* 1 while the loop thread may be blocked in epoll (see post.c). */
  atomic_int sleeping;
  atomic_int stop;
  /* 1 while a thread is inside run/run_once; guards against two runners. */
  atomic_int running;
  /* 1 while the loop thread runs work outside the loop (outside.c): the
   * loop is lent, and nobody waits on epoll unless the standby rescues. */
  atomic_int out;
  atomic_uint out_seq;   /* bumped as each stretch outside begins */
  atomic_uint poked_seq; /* the stretch the standby was last asked to
                          * rescue at once (one request per stretch) */
  /* Held by whoever does the loop's work: the running thread, except while
   * it blocks in epoll; meanwhile a borrower (crpc_loop_borrow). Fields
   * below it read or write while holding it. */
  pthread_mutex_t own;
  unsigned borrows;       /* bumped per borrow: a batch fetched meanwhile
                           * is stale (a watcher it names may be gone) */
  int64_t sleep_deadline; /* the timer deadline the wait ends for */

  /* Loop-thread-only from here on. */
  alignas(64) int epfd;
  int wakefd;  /* eventfd written by posters and crpc_loop_stop */
  int timerfd; /* -1 when epoll_pwait2 carries the timeout */
  int64_t timerfd_armed; /* deadline the timerfd is set to, or INT64_MAX */
  int64_t now;           /* crpc_loop_now */

  int64_t timer_lead_ns; /* crpc_loop_set_timer_lead */
  int64_t poll_max_ns;   /* crpc_loop_set_poll */
  int64_t poll_ns;       /* how long the next wait polls first (adaptive) */
  /* crpc_loop_post_closure_after_batch: set while a batch of posted
   * closures runs; the queued closures, first to last. */
  bool in_batch;
  crpc_loop_closure *after_head, *after_tail;

  crpc_loop_timer *timer_root;
  size_t timer_count;
  uint64_t timer_seq; /* start order, to break deadline ties FIFO */
  size_t io_count;

  /* The fetched batch. Entries at [batch_next, batch_n) are not yet
   * dispatched; a watcher leaving epoll scrubs itself from them. */
  struct epoll_event batch[CRPC_LOOP_BATCH];
  int batch_n;
  int batch_next;

  pthread_t thread;
  bool thread_started;
  int thread_result;

  /* Work outside the loop and its standby thread (outside.c). */
  int outside_state;       /* loop thread: OUTSIDE_* this iteration */
  crpc_loop_fn outside_fn; /* queued for after this iteration */
  void *outside_arg;
  bool has_standby;        /* CRPC_LOOP_STANDBY */
  bool rescuing;           /* own: the standby is running the loop */
  pthread_cond_t sb_left;  /* with own: rescuing has become false */
  _Atomic int64_t out_deadline; /* the earliest timer when it went out */
  atomic_int sb_parked;    /* the standby sleeps until a stretch begins */
  pthread_mutex_t sb_mu;   /* the three below */
  pthread_cond_t sb_cond;  /* on CLOCK_MONOTONIC */
  unsigned sb_urgent_seq;  /* rescue this stretch at once */
  bool sb_quit;
  pthread_t sb_thread;
  bool sb_started;
  struct epoll_event sb_batch[CRPC_LOOP_BATCH]; /* the standby's own wait */

  /* Their addresses tag the loop's own fds in epoll_event.data.ptr, which
   * can never equal a caller's crpc_loop_io. */
  char wake_tag;
  char timer_tag;
};

enum { OUTSIDE_NONE, OUTSIDE_QUEUED, OUTSIDE_TAKEN_BACK };

/* The loop the current thread is running, for in_loop_thread and asserts. */
extern _Thread_local crpc_loop *crpc_loop__current;
/* The loop whose crpc_loop_run this thread is in (not a borrower's or the
 * standby's turn at it). */
extern _Thread_local crpc_loop *crpc_loop__runner;

/* Loop-thread-only functions check this in debug builds: the caller runs
 * the loop, or nobody does. */
#define CRPC_LOOP_ASSERT_OWNER(loop)                                     \
  assert(crpc_loop__current == (loop) ||                                 \
         atomic_load_explicit(&(loop)->running, memory_order_relaxed) == 0)

static inline int64_t crpc_loop__now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* timer.c */
int64_t crpc_loop__next_deadline(const crpc_loop *loop); /* INT64_MAX: none */
int64_t crpc_loop__next_lead(const crpc_loop *loop); /* 0 unless precise */
int crpc_loop__run_timers(crpc_loop *loop, int64_t now);

/* loop.c: one iteration in parts, for the standby (outside.c). */
int64_t crpc_loop__block_for(crpc_loop *loop, int64_t timeout_ns);
/* Waits for events into buf (lending the loop while it blocks); caller
 * holds own, and holds it again on return. n, or -errno. */
int crpc_loop__wait(crpc_loop *loop, struct epoll_event *buf,
                    int64_t timeout_ns);
/* Runs what loop->batch[0, n) and the queues hold; returns callbacks run. */
int crpc_loop__process(crpc_loop *loop, int n, int64_t now);

/* outside.c */
int crpc_loop__standby_init(crpc_loop *loop);
void crpc_loop__standby_destroy(crpc_loop *loop);
int crpc_loop__standby_start(crpc_loop *loop);
void crpc_loop__standby_join(crpc_loop *loop);
/* The loop thread, between iterations: runs the work queued by
 * crpc_loop_run_outside. Holds own before and after. */
void crpc_loop__go_outside(crpc_loop *loop);
/* The loop needs a thread while it is out: the standby takes it now. */
void crpc_loop__poke(crpc_loop *loop);

/* post.c */
bool crpc_loop__has_posted(crpc_loop *loop);
int crpc_loop__run_posted(crpc_loop *loop);
/* Ends the batch begun by setting in_batch: runs what was queued for its
 * end (crpc_loop_post_closure_after_batch) and returns how many ran. */
int crpc_loop__end_batch(crpc_loop *loop);
void crpc_loop__wake(crpc_loop *loop);

#endif /* CRPC_LOOP_LOOP_INTERNAL_H */
