/*
 * Work outside the loop on the loop thread, and the standby thread that
 * runs the loop meanwhile if that work takes long or blocks.
 *
 * Why: a blocking handler handed to another thread costs a wake-up of
 * that thread and a context switch each way, per call (seen as 3 context
 * switches and 7 system calls per unary call, against 1 and 3 for a
 * handler run on the loop). Running it on the loop thread itself saves
 * them, but a blocking handler may block: then the loop's other
 * connections must not wait for it. The standby is the cure, as the Go
 * runtime's sysmon is for a goroutine stuck in a system call: the loop
 * thread goes out without waking anyone; the standby takes the loop over
 * at once when the work says it is about to block
 * (crpc_loop_outside_will_block), when someone needs the loop (a post, a
 * stop, an earlier timer), when the loop's earliest timer falls due, or
 * when a stretch outside has lasted a whole check period
 * (CRPC_LOOP_RESCUE_NS) with nobody asking. Until then the loop is lent
 * (crpc_loop_borrow works, as while it sleeps in epoll), so the work's own
 * response is written by its own thread.
 *
 * The standby checks once per period while stretches happen, and parks
 * after CRPC_LOOP_STANDBY_PARK_PERIODS periods without any: a loop that
 * never goes out (async handlers only) never wakes it.
 *
 * Hand-back: the loop thread, its work done, takes own (the standby holds
 * it only while it processes events), ends the stretch, kicks the eventfd
 * and waits until the standby, back from its wait, has seen the stretch
 * end and left without touching the loop (its fetched events are dropped;
 * level-triggered, they are fetched again).
 */
#include <errno.h>
#include <string.h>
#include <sys/prctl.h>

#include "rpc/loop/loop_internal.h"
#include "rpc/mem/mem.h"

#define CRPC_LOOP_STANDBY_PARK_PERIODS 64

int crpc_loop__standby_init(crpc_loop *loop) {
  pthread_condattr_t attr;
  if (pthread_condattr_init(&attr) != 0) return -ENOMEM;
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  int rc = pthread_cond_init(&loop->sb_cond, &attr);
  pthread_condattr_destroy(&attr);
  if (rc != 0) return -rc;
  pthread_cond_init(&loop->sb_left, NULL);
  pthread_mutex_init(&loop->sb_mu, NULL);
  loop->has_standby = true;
  return 0;
}

void crpc_loop__standby_destroy(crpc_loop *loop) {
  if (!loop->has_standby) return;
  pthread_cond_destroy(&loop->sb_cond);
  pthread_cond_destroy(&loop->sb_left);
  pthread_mutex_destroy(&loop->sb_mu);
}

bool crpc_loop_run_outside(crpc_loop *loop, crpc_loop_fn fn, void *arg) {
  /* Only the thread of crpc_loop_start_thread goes out (not the standby
   * or a borrower doing the loop's work meanwhile), once per iteration. */
  if (!loop->sb_started || crpc_loop__runner != loop ||
      crpc_loop__current != loop || loop->outside_state != OUTSIDE_NONE ||
      atomic_load(&loop->stop)) {
    return false;
  }
  loop->outside_state = OUTSIDE_QUEUED;
  loop->outside_fn = fn;
  loop->outside_arg = arg;
  return true;
}

void *crpc_loop_cancel_outside(crpc_loop *loop) {
  if (crpc_loop__runner != loop || crpc_loop__current != loop ||
      loop->outside_state != OUTSIDE_QUEUED) {
    return NULL;
  }
  loop->outside_state = OUTSIDE_TAKEN_BACK;
  loop->outside_fn = NULL;
  return loop->outside_arg;
}

void crpc_loop__poke(crpc_loop *loop) {
  /* out before out_seq: a stretch that began in between is poked (at
   * worst a rescue it did not need), never one that has not begun. */
  if (!atomic_load(&loop->out)) return;
  unsigned seq = atomic_load(&loop->out_seq);
  if (atomic_exchange(&loop->poked_seq, seq) == seq) return;
  pthread_mutex_lock(&loop->sb_mu);
  loop->sb_urgent_seq = seq;
  pthread_cond_signal(&loop->sb_cond);
  pthread_mutex_unlock(&loop->sb_mu);
}

void crpc_loop_outside_will_block(void) {
  /* Only the runner goes out; poke does nothing unless its loop is out. */
  if (crpc_loop__runner != NULL) crpc_loop__poke(crpc_loop__runner);
}

void crpc_loop__go_outside(crpc_loop *loop) {
  bool queued = loop->outside_state == OUTSIDE_QUEUED;
  loop->outside_state = OUTSIDE_NONE; /* the next iteration may queue */
  if (!queued) return;
  crpc_loop_fn fn = loop->outside_fn;
  void *arg = loop->outside_arg;
  loop->outside_fn = NULL;
  int64_t deadline = crpc_loop__next_deadline(loop);
  if (deadline != INT64_MAX) deadline -= crpc_loop__next_lead(loop);
  atomic_store_explicit(&loop->out_deadline, deadline, memory_order_relaxed);
  /* A borrower that starts an earlier timer wakes the loop (poking the
   * standby): as for a wait that ends at that deadline. */
  loop->sleep_deadline = deadline;
  atomic_store(&loop->out_seq, atomic_load(&loop->out_seq) + 1);
  atomic_store(&loop->out, 1);
  /* Lent, as in a wait: posters wake (and so poke), borrowers borrow. */
  atomic_store(&loop->sleeping, 1);
  crpc_loop *saved = crpc_loop__current;
  crpc_loop__current = NULL;
  pthread_mutex_unlock(&loop->own);
  /* seq_cst store of out above, load of parked here; the standby stores
   * parked, then loads out: one of us sees the other. */
  if (atomic_load(&loop->sb_parked)) {
    pthread_mutex_lock(&loop->sb_mu);
    pthread_cond_signal(&loop->sb_cond);
    pthread_mutex_unlock(&loop->sb_mu);
  }

  fn(loop, arg);

  pthread_mutex_lock(&loop->own);
  atomic_store(&loop->out, 0);
  atomic_store_explicit(&loop->sleeping, 0, memory_order_relaxed);
  if (loop->rescuing) {
    /* The standby is in its wait (we hold own), or about to be: out of
     * it, before this thread waits on epoll too (it could drain the
     * eventfd first and leave the standby blocked in epoll, taking
     * wake-ups meant for this thread). */
    crpc_loop__wake(loop);
    while (loop->rescuing) pthread_cond_wait(&loop->sb_left, &loop->own);
  }
  crpc_loop__current = saved;
}

/* The standby runs the loop for as long as stretch seq lasts. */
static void rescue(crpc_loop *loop, unsigned seq) {
  pthread_mutex_lock(&loop->own);
  if (!atomic_load(&loop->out) || atomic_load(&loop->out_seq) != seq) {
    pthread_mutex_unlock(&loop->own);
    return;
  }
  loop->rescuing = true;
  crpc_loop__current = loop;
  atomic_store_explicit(&loop->sleeping, 0, memory_order_relaxed);
  int n = 0;
  for (;;) {
    /* What came while the loop was out (posts, due timers) first; on
     * later turns what the wait fetched. */
    memcpy(loop->batch, loop->sb_batch, (size_t)n * sizeof loop->batch[0]);
    crpc_loop__process(loop, n, crpc_loop__now());
    int64_t timeout = crpc_loop__block_for(loop, -1);
    /* The handshake with posters, as in an iteration (loop.c). A stop is
     * not ours to act on: the loop thread sees it when it is back. */
    atomic_store(&loop->sleeping, 1);
    if (crpc_loop__has_posted(loop)) timeout = 0;
    n = crpc_loop__wait(loop, loop->sb_batch, timeout);
    /* Back: the loop thread owns the loop again and has set sleeping
     * for itself; leave both alone. */
    if (!atomic_load(&loop->out) || atomic_load(&loop->out_seq) != seq) break;
    atomic_store_explicit(&loop->sleeping, 0, memory_order_relaxed);
    if (n < 0) n = 0; /* EINTR; any other error the loop thread meets too */
  }
  loop->rescuing = false;
  pthread_cond_signal(&loop->sb_left);
  crpc_loop__current = NULL;
  pthread_mutex_unlock(&loop->own);
}

static void *standby_main(void *arg) {
  crpc_loop *loop = arg;
  (void)prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);
  crpc_mem_cache_begin();
  unsigned last_seq = atomic_load(&loop->out_seq);
  bool last_out = false;
  int quiet = 0;
  pthread_mutex_lock(&loop->sb_mu);
  while (!loop->sb_quit) {
    bool out = atomic_load(&loop->out);
    unsigned seq = atomic_load(&loop->out_seq);
    int64_t now = crpc_loop__now();
    int64_t due = atomic_load_explicit(&loop->out_deadline,
                                       memory_order_relaxed);
    if (out && (loop->sb_urgent_seq == seq || (last_out && last_seq == seq) ||
                now >= due)) {
      pthread_mutex_unlock(&loop->sb_mu);
      rescue(loop, seq);
      pthread_mutex_lock(&loop->sb_mu);
      last_seq = seq;
      last_out = false;
      quiet = 0;
      continue;
    }
    quiet = out || seq != last_seq ? 0 : quiet + 1;
    last_seq = seq;
    last_out = out;
    if (quiet >= CRPC_LOOP_STANDBY_PARK_PERIODS) {
      atomic_store(&loop->sb_parked, 1);
      if (!atomic_load(&loop->out) && !loop->sb_quit) {
        pthread_cond_wait(&loop->sb_cond, &loop->sb_mu);
      }
      atomic_store(&loop->sb_parked, 0);
      quiet = 0;
      continue; /* a stretch has begun: it gets a whole period */
    }
    int64_t until = now + CRPC_LOOP_RESCUE_NS;
    if (out && due < until) until = due;
    struct timespec ts = {.tv_sec = until / 1000000000,
                          .tv_nsec = until % 1000000000};
    pthread_cond_timedwait(&loop->sb_cond, &loop->sb_mu, &ts);
  }
  pthread_mutex_unlock(&loop->sb_mu);
  crpc_mem_cache_end();
  return NULL;
}

int crpc_loop__standby_start(crpc_loop *loop) {
  if (!loop->has_standby) return 0;
  loop->sb_quit = false;
  int rc = pthread_create(&loop->sb_thread, NULL, standby_main, loop);
  if (rc != 0) return -rc;
  (void)pthread_setname_np(loop->sb_thread, "crpc-standby");
  loop->sb_started = true;
  return 0;
}

void crpc_loop__standby_join(crpc_loop *loop) {
  if (!loop->sb_started) return;
  pthread_mutex_lock(&loop->sb_mu);
  loop->sb_quit = true;
  pthread_cond_signal(&loop->sb_cond);
  pthread_mutex_unlock(&loop->sb_mu);
  pthread_join(loop->sb_thread, NULL);
  loop->sb_started = false;
}
