/*
 * ctx_bench - what a crpc ctx costs, printed as a table.
 *
 *   ./crpc.sh bench            (optimised build, NDEBUG: no debug registry)
 *
 * Single-thread costs are the mean over many iterations; cross-thread
 * latencies are percentiles over individual samples, each measured with one
 * CLOCK_MONOTONIC clock in one process.
 */
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crpc/ctx.h"

static int key;

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static int64_t percentile(int64_t *v, size_t n, double p) {
  qsort(v, n, sizeof(*v), cmp_i64);
  size_t i = (size_t)(p * (double)(n - 1));
  return v[i];
}

static void row_ns(const char *what, double ns) {
  printf("| %-52s | %10.1f ns |            |\n", what, ns);
}

static void row_us(const char *what, int64_t p50, int64_t p99) {
  printf("| %-52s | %10.1f us | %7.1f us |\n", what, (double)p50 / 1e3,
         (double)p99 / 1e3);
}

typedef crpc_ctx *(*derive_fn)(const crpc_ctx *parent);

static crpc_ctx *derive_cancel(const crpc_ctx *p) {
  return crpc_ctx_with_cancel(p);
}
static crpc_ctx *derive_timeout(const crpc_ctx *p) {
  return crpc_ctx_with_timeout(p, 30 * CRPC_SECOND);
}
static crpc_ctx *derive_value(const crpc_ctx *p) {
  return crpc_ctx_with_value(p, &key, &key, NULL);
}

static double time_derive_release(derive_fn fn, bool cancel_first, int n) {
  crpc_ctx *parent = crpc_ctx_with_cancel(crpc_ctx_background());
  int64_t start = crpc_now_ns();
  for (int i = 0; i < n; i++) {
    crpc_ctx *c = fn(parent);
    if (cancel_first) crpc_ctx_cancel(c, CRPC_CANCELLED, "bench");
    crpc_ctx_release(c);
  }
  double per = (double)(crpc_now_ns() - start) / n;
  crpc_ctx_release(parent);
  return per;
}

static double time_tree_cancel(int fanout, int rounds) {
  crpc_ctx **kids = malloc(sizeof(*kids) * (size_t)fanout);
  int64_t total = 0;
  for (int r = 0; r < rounds; r++) {
    crpc_ctx *root = crpc_ctx_with_cancel(crpc_ctx_background());
    for (int i = 0; i < fanout; i++) kids[i] = crpc_ctx_with_cancel(root);
    int64_t start = crpc_now_ns();
    crpc_ctx_cancel(root, CRPC_CANCELLED, "bench");
    total += crpc_now_ns() - start;
    for (int i = 0; i < fanout; i++) crpc_ctx_release(kids[i]);
    crpc_ctx_release(root);
  }
  free(kids);
  return (double)total / rounds / fanout;
}

/* ---- cross-thread: cancel on one thread, waiter on another ---------- */

/* WAIT_PARKED_CALLBACK: a thread is parked in crpc_ctx_wait and the
 * measure is the callback's (the cancel runs callbacks before it wakes
 * parked threads, so a wake-up never delays them). */
typedef enum { WAIT_BLOCKING, WAIT_FD, WAIT_CALLBACK, WAIT_PARKED_CALLBACK } wait_kind;

typedef struct wake_probe {
  crpc_ctx *_Atomic ctx;
  atomic_int_fast64_t woke_at;
  wait_kind kind;
  atomic_bool stop;
} wake_probe;

static void note_time(void *arg, const crpc_cause *cause) {
  (void)cause;
  atomic_store((atomic_int_fast64_t *)arg, crpc_now_ns());
}

static void *waiter_thread(void *arg) {
  wake_probe *p = arg;
  while (!atomic_load(&p->stop)) {
    crpc_ctx *ctx = atomic_exchange(&p->ctx, NULL);
    if (ctx == NULL) {
      sched_yield(); /* hand-off only; the measured wait below blocks */
      continue;
    }
    if (p->kind == WAIT_BLOCKING || p->kind == WAIT_PARKED_CALLBACK) {
      crpc_ctx_wait(ctx);
    } else {
      struct pollfd pfd = {.fd = crpc_ctx_fd(ctx), .events = POLLIN};
      while (poll(&pfd, 1, -1) != 1) {
      }
    }
    atomic_store(&p->woke_at, crpc_now_ns());
  }
  return NULL;
}

static void cross_thread_wake(wait_kind kind, int n, int64_t *p50,
                              int64_t *p99) {
  int64_t *lat = malloc(sizeof(*lat) * (size_t)n);
  wake_probe probe = {.kind = kind};
  pthread_t tid;
  if (kind != WAIT_CALLBACK) pthread_create(&tid, NULL, waiter_thread, &probe);
  for (int i = 0; i < n; i++) {
    crpc_ctx *ctx = crpc_ctx_with_cancel(crpc_ctx_background());
    crpc_on_cancel reg;
    atomic_int_fast64_t cb_at = 0;
    atomic_store(&probe.woke_at, 0);
    if (kind == WAIT_CALLBACK) {
      crpc_ctx_on_cancel(ctx, &reg, note_time, &probe.woke_at);
    } else {
      if (kind == WAIT_PARKED_CALLBACK) crpc_ctx_on_cancel(ctx, &reg, note_time, &cb_at);
      atomic_store(&probe.ctx, ctx);
      while (atomic_load(&probe.ctx) != NULL) {
      }
      /* Give the waiter time to block; we measure the wakeup, not a race. */
      struct timespec ts = {0, 200 * 1000};
      nanosleep(&ts, NULL);
    }
    int64_t start = crpc_now_ns();
    crpc_ctx_cancel(ctx, CRPC_CANCELLED, "bench");
    while (atomic_load(&probe.woke_at) == 0) {
    }
    lat[i] = (kind == WAIT_PARKED_CALLBACK ? atomic_load(&cb_at) : atomic_load(&probe.woke_at)) -
             start;
    crpc_ctx_release(ctx);
  }
  atomic_store(&probe.stop, true);
  if (kind != WAIT_CALLBACK) pthread_join(tid, NULL);
  *p50 = percentile(lat, (size_t)n, 0.50);
  *p99 = percentile(lat, (size_t)n, 0.99);
  free(lat);
}

static void deadline_lateness(int n, int64_t timeout, int64_t *p50,
                              int64_t *p99) {
  int64_t *lat = malloc(sizeof(*lat) * (size_t)n);
  for (int i = 0; i < n; i++) {
    atomic_int_fast64_t fired = 0;
    crpc_ctx *ctx = crpc_ctx_with_timeout(crpc_ctx_background(), timeout);
    crpc_on_cancel reg;
    crpc_ctx_on_cancel(ctx, &reg, note_time, &fired);
    crpc_ctx_wait(ctx);
    while (atomic_load(&fired) == 0) {
    }
    lat[i] = atomic_load(&fired) - crpc_ctx_deadline(ctx);
    crpc_ctx_release(ctx);
  }
  *p50 = percentile(lat, (size_t)n, 0.50);
  *p99 = percentile(lat, (size_t)n, 0.99);
  free(lat);
}

int main(int argc, char **argv) {
  int scale = argc > 1 ? atoi(argv[1]) : 1;
  if (scale < 1) scale = 1;
  const int n = 1000000 * scale;
  printf("crpc ctx costs (%d iterations per single-thread row)\n\n", n);
  printf("| %-52s | %13s | %10s |\n", "operation", "mean / p50", "p99");
  printf("|%s|%s|%s|\n", "------------------------------------------------------",
         "---------------", "------------");
  row_ns("derive with cancel + release",
         time_derive_release(derive_cancel, false, n));
  row_ns("derive with cancel + cancel + release",
         time_derive_release(derive_cancel, true, n));
  row_ns("derive with timeout (30 s) + release",
         time_derive_release(derive_timeout, false, n));
  row_ns("derive with value + release",
         time_derive_release(derive_value, false, n));
  row_ns("cancel propagation per child (fan-out 1000)",
         time_tree_cancel(1000, 200 * scale));
  int64_t p50, p99;
  cross_thread_wake(WAIT_CALLBACK, 10000 * scale, &p50, &p99);
  row_us("cancel -> on_cancel callback ran (same thread)", p50, p99);
  cross_thread_wake(WAIT_PARKED_CALLBACK, 2000 * scale, &p50, &p99);
  row_us("same, with a thread parked in crpc_ctx_wait", p50, p99);
  cross_thread_wake(WAIT_BLOCKING, 2000 * scale, &p50, &p99);
  row_us("cancel -> thread in crpc_ctx_wait woke", p50, p99);
  cross_thread_wake(WAIT_FD, 2000 * scale, &p50, &p99);
  row_us("cancel -> thread in poll(crpc_ctx_fd) woke", p50, p99);
  deadline_lateness(500 * scale, 2 * CRPC_MILLISECOND, &p50, &p99);
  row_us("2 ms deadline fired late by", p50, p99);
  printf("\nlive contexts at exit: %zu\n", crpc_ctx_live_count());
  return crpc_ctx_live_count() == 0 ? 0 : 1;
}
