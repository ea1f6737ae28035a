/*
 * ctx_timer.c - one thread and one min-heap fire every ctx deadline.
 *
 * Why a thread and not a timerfd per ctx: deriving a ctx with a deadline
 * must not cost a system call. Adding to the heap wakes the thread only when
 * the new deadline is earlier than the one it is already sleeping towards;
 * removing never wakes it (it wakes at the old time, finds nothing due and
 * sleeps again). So a steady stream of calls with similar timeouts costs no
 * system calls beyond one wakeup per earliest-deadline change.
 *
 * Deadlines are fired by cancelling the ctx on this thread, so on_cancel
 * callbacks of deadline-ended contexts run here: they must be short.
 *
 * The thread wakes LEAD_NS before the earliest deadline and spins the last
 * stretch: a timed sleep on a VM ends tens of microseconds late (interrupt,
 * idle vCPU exit, scheduler), a spin does not. The spin costs at most
 * LEAD_NS of CPU per deadline that actually fires: a wake-up that finds the
 * earliest deadline released (the usual fate: the call finished first)
 * sleeps again towards the next one.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <stdlib.h>
#include <time.h>

#include "rpc/ctx/ctx_internal.h"
#include "rpc/log/log.h"

static pthread_mutex_t timer_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t timer_cond; /* CLOCK_MONOTONIC; set up with the thread */
static crpc_ctx **heap;           /* min-heap on ->deadline */
static size_t heap_len, heap_cap;
static int64_t sleeping_until = CRPC_NO_DEADLINE; /* what the thread waits for */
static bool thread_started;

#define LEAD_NS (100 * CRPC_MICROSECOND)

static void heap_set(size_t i, crpc_ctx *ctx) {
  heap[i] = ctx;
  ctx->heap_index = (int)i;
}

static void sift_up(size_t i) {
  crpc_ctx *ctx = heap[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (heap[parent]->deadline <= ctx->deadline) break;
    heap_set(i, heap[parent]);
    i = parent;
  }
  heap_set(i, ctx);
}

static void sift_down(size_t i) {
  crpc_ctx *ctx = heap[i];
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= heap_len) break;
    if (child + 1 < heap_len && heap[child + 1]->deadline < heap[child]->deadline) {
      child++;
    }
    if (ctx->deadline <= heap[child]->deadline) break;
    heap_set(i, heap[child]);
    i = child;
  }
  heap_set(i, ctx);
}

static void heap_remove_at(size_t i) {
  heap[i]->heap_index = -1;
  heap_len--;
  if (i == heap_len) return;
  crpc_ctx *moved = heap[heap_len];
  heap_set(i, moved);
  sift_down(i);
  sift_up((size_t)moved->heap_index);
}

static void spin_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

static void *timer_thread(void *unused) {
  (void)unused;
  /* The default 50 us timer slack would make every deadline that late. */
  prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
  pthread_mutex_lock(&timer_mu);
  for (;;) {
    int64_t now = crpc_now_ns();
    while (heap_len > 0 && heap[0]->deadline <= now) {
      crpc_ctx *ctx = heap[0];
      heap_remove_at(0);
      /* The owner's release removes the ctx from the heap under timer_mu
       * before dropping its reference, so the ctx is alive here. */
      ctx_ref(ctx);
      pthread_mutex_unlock(&timer_mu);
      crpc_cause cause = {
          .code = CRPC_DEADLINE_EXCEEDED,
          .origin = CRPC_ORIGIN_DEADLINE,
          .message = "deadline exceeded",
      };
      ctx_cancel_internal(ctx, &cause);
      ctx_unref(ctx);
      pthread_mutex_lock(&timer_mu);
      now = crpc_now_ns();
    }
    sleeping_until = heap_len > 0 ? heap[0]->deadline : CRPC_NO_DEADLINE;
    if (sleeping_until == CRPC_NO_DEADLINE) {
      pthread_cond_wait(&timer_cond, &timer_mu);
    } else if (sleeping_until - now <= LEAD_NS) {
      /* Unlocked: adds and removes go on meanwhile; a ctx released during
       * the spin is simply not in the heap when the loop above looks. */
      int64_t due = sleeping_until;
      pthread_mutex_unlock(&timer_mu);
      while (crpc_now_ns() < due) spin_pause();
      pthread_mutex_lock(&timer_mu);
    } else {
      int64_t wake = sleeping_until - LEAD_NS;
      struct timespec ts = {
          .tv_sec = wake / CRPC_SECOND,
          .tv_nsec = wake % CRPC_SECOND,
      };
      pthread_cond_timedwait(&timer_cond, &timer_mu, &ts);
    }
  }
  return NULL;
}

/* Called with timer_mu held. Failing to start the thread would make
 * deadlines silently never fire, so it is fatal. */
static void start_thread_locked(void) {
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&timer_cond, &attr);
  pthread_condattr_destroy(&attr);
  pthread_t tid;
  int rc = pthread_create(&tid, NULL, timer_thread, NULL);
  if (rc != 0) {
    crpc_log_fatal(CRPC_LOG_SUB_CTX,
                   "cannot start the ctx deadline thread (errno %d)", rc);
    abort();
  }
  pthread_detach(tid);
  thread_started = true;
}

void ctx_timer_add(crpc_ctx *ctx) {
  pthread_mutex_lock(&timer_mu);
  if (!thread_started) start_thread_locked();
  if (heap_len == heap_cap) {
    size_t cap = heap_cap ? heap_cap * 2 : 64;
    crpc_ctx **grown = realloc(heap, cap * sizeof(*heap));
    if (grown == NULL) {
      crpc_log_fatal(CRPC_LOG_SUB_CTX,
                     "out of memory growing the deadline heap");
      abort();
    }
    heap = grown;
    heap_cap = cap;
  }
  heap_set(heap_len, ctx);
  heap_len++;
  sift_up(heap_len - 1);
  bool wake = ctx->deadline < sleeping_until;
  if (wake) sleeping_until = ctx->deadline; /* one wakeup per new minimum */
  pthread_mutex_unlock(&timer_mu);
  if (wake) pthread_cond_signal(&timer_cond);
}

void ctx_timer_remove(crpc_ctx *ctx) {
  pthread_mutex_lock(&timer_mu);
  if (ctx->heap_index >= 0) heap_remove_at((size_t)ctx->heap_index);
  pthread_mutex_unlock(&timer_mu);
}
