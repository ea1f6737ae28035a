/*
 * ctx_internal.h - the ctx object and the pieces shared by ctx*.c.
 *
 * Locking: each ctx has one mutex `mu`. No code path holds two ctx mutexes
 * at once, nor a ctx mutex together with the timer or registry lock, so
 * there is no lock order to get wrong. User callbacks run with no crpc lock
 * held.
 */
#ifndef CRPC_CTX_INTERNAL_H
#define CRPC_CTX_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "crpc/ctx.h"

#define CTX_MAGIC 0x63747821u    /* "ctx!" */
#define CTX_FREED 0x64656164u    /* "dead": set just before free */

/* crpc_on_cancel.state_ */
enum { REG_PENDING = 1, REG_FIRED = 2, REG_REMOVED = 3 };

struct crpc_ctx {
  uint32_t magic;
  atomic_int done;   /* 0 live, 1 done; set (release) after cause is written */
  atomic_int refs;   /* owner + each child + transient holders (timer, cancel) */
  atomic_bool released;

  /* Immutable after creation. parent is a counted reference (except when it
   * is the background, which is static). */
  crpc_ctx *parent;
  int64_t deadline;   /* effective: min(parent's, own) */
  bool has_timer;     /* own deadline earlier than parent's: in the timer heap */
  bool has_value;
  const void *key;
  void *value;
  void (*free_value)(void *);

  pthread_mutex_t mu;
  pthread_cond_t cond; /* done-waiters and callback-finish waiters */
  /* --- protected by mu --- */
  int waiters;         /* threads blocked on cond until `done` */
  int cb_waiters;      /* threads blocked on cond until running_cb returns */
  crpc_cause cause;    /* valid once done; immutable after */
  crpc_ctx *first_child;
  crpc_on_cancel *cb_head, *cb_tail;
  crpc_on_cancel *running_cb; /* callback executing right now, if any */
  int fd;                     /* lazy eventfd, -1 until asked for */

  /* --- touched only by the cancel that set `done` --- */
  struct crpc_ctx *wake_next; /* its list of ctxs to wake once callbacks ran */

  /* --- protected by the parent's mu --- */
  crpc_ctx *next_sibling, *prev_sibling;
  bool linked; /* in the parent's child list */

  /* --- protected by the timer lock --- */
  int heap_index; /* -1 when not in the deadline heap */

  /* --- registry (debug builds); protected by the registry lock --- */
  const char *file;
  int line;
  int64_t created_ns;
  crpc_ctx *reg_next, *reg_prev;
};

/* Ends ctx with *cause if still live; returns true if this call did it.
 * Cancels descendants with the same cause and runs every callback of the
 * subtree, then wakes the threads blocked on any of them, all on the
 * calling thread. Caller holds a reference. */
bool ctx_cancel_internal(crpc_ctx *ctx, const crpc_cause *cause);

/* Reference counting; the last unref frees the ctx and unrefs its parent. */
void ctx_ref(crpc_ctx *ctx);
void ctx_unref(crpc_ctx *ctx);

/* Aborts with a message naming `fn` if ctx is NULL or not a live ctx. */
void ctx_check(const crpc_ctx *ctx, const char *fn);

/* Waits (mu held) until `reg` is no longer the running callback. */
void ctx_wait_callback_done_locked(crpc_ctx *ctx, const crpc_on_cancel *reg);

/* The shared deadline heap (ctx_timer.c). add: ctx->has_timer is set and
 * the caller holds a reference; remove is idempotent. */
void ctx_timer_add(crpc_ctx *ctx);
void ctx_timer_remove(crpc_ctx *ctx);

/* The debug registry (ctx_registry.c). */
void ctx_registry_add(crpc_ctx *ctx);
void ctx_registry_remove(crpc_ctx *ctx);

/* The static background ctx (ctx.c). */
extern crpc_ctx ctx_background_instance;

static inline bool ctx_is_background(const crpc_ctx *ctx) {
  return ctx == &ctx_background_instance;
}

static inline bool ctx_done_acquire(const crpc_ctx *ctx) {
  return atomic_load_explicit(&((crpc_ctx *)ctx)->done, memory_order_acquire);
}

#endif /* CRPC_CTX_INTERNAL_H */
