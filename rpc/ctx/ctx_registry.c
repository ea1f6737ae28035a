/*
 * ctx_registry.c - which derived contexts are still unreleased, and where
 * they were made (failure catalog lines 1 and 14, DESIGN.md).
 *
 * The count is a single atomic and always on. The list of live contexts with
 * their creation sites costs a global lock per derive/release, so it exists
 * only in builds without NDEBUG (tests and debug builds).
 */
#include <inttypes.h>

#include "rpc/ctx/ctx_internal.h"

static atomic_size_t live_count;

#ifndef NDEBUG
static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static crpc_ctx *registry_head;
#endif

void ctx_registry_add(crpc_ctx *ctx) {
  atomic_fetch_add_explicit(&live_count, 1, memory_order_relaxed);
#ifndef NDEBUG
  ctx->created_ns = crpc_now_ns();
  pthread_mutex_lock(&registry_mu);
  ctx->reg_prev = NULL;
  ctx->reg_next = registry_head;
  if (registry_head != NULL) registry_head->reg_prev = ctx;
  registry_head = ctx;
  pthread_mutex_unlock(&registry_mu);
#else
  (void)ctx;
#endif
}

void ctx_registry_remove(crpc_ctx *ctx) {
  atomic_fetch_sub_explicit(&live_count, 1, memory_order_relaxed);
#ifndef NDEBUG
  pthread_mutex_lock(&registry_mu);
  if (ctx->reg_prev != NULL) {
    ctx->reg_prev->reg_next = ctx->reg_next;
  } else {
    registry_head = ctx->reg_next;
  }
  if (ctx->reg_next != NULL) ctx->reg_next->reg_prev = ctx->reg_prev;
  pthread_mutex_unlock(&registry_mu);
#else
  (void)ctx;
#endif
}

size_t crpc_ctx_live_count(void) {
  return atomic_load_explicit(&live_count, memory_order_relaxed);
}

size_t crpc_ctx_dump(FILE *out) {
#ifndef NDEBUG
  size_t lines = 0;
  int64_t now = crpc_now_ns();
  pthread_mutex_lock(&registry_mu);
  for (crpc_ctx *c = registry_head; c != NULL; c = c->reg_next) {
    /* Reading cause under the registry lock alone is safe: it is written
     * once before `done` is published, and the ctx cannot be freed while
     * it is still registered. */
    bool done = ctx_done_acquire(c);
    int64_t age_us = (now - c->created_ns) / CRPC_MICROSECOND;
    fprintf(out, "ctx %p created at %s:%d age %" PRId64 ".%03" PRId64 " ms %s",
            (void *)c, c->file, c->line, age_us / 1000, age_us % 1000,
            done ? "done" : "live");
    if (done) {
      fprintf(out, " (%s, %s: %s)", crpc_code_name(c->cause.code),
              crpc_origin_name(c->cause.origin), c->cause.message);
    }
    if (c->deadline != CRPC_NO_DEADLINE) {
      /* Subtract only when it cannot overflow (deadlines may be INT64_MIN). */
      if (c->deadline >= now) {
        fprintf(out, " deadline in %" PRId64 " us",
                (c->deadline - now) / CRPC_MICROSECOND);
      } else {
        fprintf(out, " deadline passed");
      }
    }
    fputc('\n', out);
    lines++;
  }
  pthread_mutex_unlock(&registry_mu);
  return lines;
#else
  fprintf(out, "%zu live ctx (sites are recorded only in builds without "
               "NDEBUG)\n", crpc_ctx_live_count());
  return 1;
#endif
}
