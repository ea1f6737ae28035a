/*
 * ctx.c - deriving, cancelling and releasing contexts; queries; callbacks.
 *
 * Cancellation walks down the tree: a ctx that becomes done detaches its
 * child list under its own lock (taking a reference on each child), then
 * cancels each child after unlocking. A child released concurrently finds
 * itself no longer linked and leaves the list alone, and the reference keeps
 * its memory valid while the canceller walks past it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rpc/ctx/ctx_internal.h"
#include "rpc/ctx/ctx_owned_deadline.h"
#include "rpc/log/log.h"
#include "rpc/mem/mem.h"

crpc_ctx ctx_background_instance = {
    .magic = CTX_MAGIC,
    .deadline = CRPC_NO_DEADLINE,
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .cond = PTHREAD_COND_INITIALIZER,
    .fd = -1,
    .heap_index = -1,
    .file = "background",
};

static pthread_condattr_t monotonic_condattr;
static pthread_once_t monotonic_condattr_once = PTHREAD_ONCE_INIT;

static void init_monotonic_condattr(void) {
  pthread_condattr_init(&monotonic_condattr);
  pthread_condattr_setclock(&monotonic_condattr, CLOCK_MONOTONIC);
}

int64_t crpc_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * CRPC_SECOND + ts.tv_nsec;
}

const crpc_ctx *crpc_ctx_background(void) { return &ctx_background_instance; }

void ctx_check(const crpc_ctx *ctx, const char *fn) {
  if (ctx == NULL) {
    crpc_log_fatal(CRPC_LOG_SUB_CTX, "%s called with a NULL ctx", fn);
    abort();
  }
  if (ctx->magic != CTX_MAGIC) {
    crpc_log_fatal(CRPC_LOG_SUB_CTX,
                   "%s called with %p, which is not a live ctx%s", fn,
                   (const void *)ctx,
                   ctx->magic == CTX_FREED ? " (already freed)" : "");
    abort();
  }
}

void ctx_ref(crpc_ctx *ctx) {
  atomic_fetch_add_explicit(&ctx->refs, 1, memory_order_relaxed);
}

static void ctx_free(crpc_ctx *ctx) {
  if (ctx->fd >= 0) close(ctx->fd);
  if (ctx->has_value && ctx->free_value != NULL) ctx->free_value(ctx->value);
  pthread_cond_destroy(&ctx->cond);
  pthread_mutex_destroy(&ctx->mu);
  ctx->magic = CTX_FREED;
  crpc_mem_free(ctx);
}

void ctx_unref(crpc_ctx *ctx) {
  /* Iterative so that a long chain freed at once does not recurse. */
  while (ctx != NULL && !ctx_is_background(ctx)) {
    if (atomic_fetch_sub_explicit(&ctx->refs, 1, memory_order_acq_rel) != 1) {
      return;
    }
    crpc_ctx *parent = ctx->parent;
    ctx_free(ctx);
    ctx = parent;
  }
}

static void set_cause(crpc_cause *out, crpc_code code, crpc_origin origin,
                      const char *message) {
  /* A done ctx must never read as OK, nor as cancelled by nobody. */
  out->code = code == CRPC_OK ? CRPC_CANCELLED : code;
  out->origin = origin == CRPC_ORIGIN_NONE ? CRPC_ORIGIN_LOCAL : origin;
  /* Not snprintf("%s"): every call's ctx ends through here, and the
   * format parser cost ~600 instructions a call. */
  size_t n = message != NULL ? strnlen(message, sizeof(out->message) - 1) : 0;
  if (n > 0) memcpy(out->message, message, n);
  out->message[n] = '\0';
}

/* Runs the registered callbacks one at a time. Each is unlinked and marked
 * running under the lock, so crpc_ctx_remove_on_cancel can always tell
 * "will never run" from "ran" from "running now". */
static void run_callbacks(crpc_ctx *ctx) {
  pthread_mutex_lock(&ctx->mu);
  for (;;) {
    crpc_on_cancel *reg = ctx->cb_head;
    if (reg == NULL) break;
    ctx->cb_head = reg->next_;
    if (ctx->cb_head != NULL) {
      ctx->cb_head->prev_ = NULL;
    } else {
      ctx->cb_tail = NULL;
    }
    reg->state_ = REG_FIRED;
    ctx->running_cb = reg;
    crpc_cancel_fn fn = reg->fn_;
    void *arg = reg->arg_;
    pthread_mutex_unlock(&ctx->mu);
    /* From here on `reg` belongs to its owner again; only ctx is touched. */
    fn(arg, &ctx->cause);
    pthread_mutex_lock(&ctx->mu);
    ctx->running_cb = NULL;
    /* Only those waiting for this callback to return: threads waiting for
     * `done` are woken once every callback of the cancel has run. */
    if (ctx->cb_waiters > 0) pthread_cond_broadcast(&ctx->cond);
  }
  pthread_mutex_unlock(&ctx->mu);
}

/* Marks ctx and its subtree done and runs their callbacks; what must wake
 * blocked threads (cond waiters, the eventfd) is pushed on *wakes, with a
 * reference, for the caller to do once every callback of the subtree has
 * run. Callbacks are short by contract and are how a cancel travels on (a
 * downstream call's reset, a post to a loop); the futex wake of a thread
 * parked on another vCPU costs the canceller 9-12 us on a VM, which would
 * otherwise stand in front of every one of them. */
static bool cancel_subtree(crpc_ctx *ctx, const crpc_cause *cause, crpc_ctx **wakes) {
  pthread_mutex_lock(&ctx->mu);
  if (atomic_load_explicit(&ctx->done, memory_order_relaxed)) {
    pthread_mutex_unlock(&ctx->mu);
    return false;
  }
  ctx->cause = *cause;
  atomic_store_explicit(&ctx->done, 1, memory_order_release);
  /* A waiter that comes later sees `done` under mu and never sleeps, and
   * the fd, once made, is written by whoever makes it after `done`. */
  bool wake = ctx->waiters > 0 || ctx->fd >= 0;
  crpc_ctx *children = ctx->first_child;
  ctx->first_child = NULL;
  for (crpc_ctx *c = children; c != NULL; c = c->next_sibling) {
    ctx_ref(c);
    c->linked = false;
  }
  pthread_mutex_unlock(&ctx->mu);

  if (wake) {
    ctx_ref(ctx);
    ctx->wake_next = *wakes;
    *wakes = ctx;
  }
  if (ctx->has_timer) ctx_timer_remove(ctx);

  crpc_ctx *c = children;
  while (c != NULL) {
    /* Read the link before cancelling: the child's owner may release it
     * meanwhile, but it was unlinked under our lock and our reference keeps
     * the memory. */
    crpc_ctx *next = c->next_sibling;
    cancel_subtree(c, cause, wakes);
    ctx_unref(c);
    c = next;
  }
  run_callbacks(ctx);
  return true;
}

bool ctx_cancel_internal(crpc_ctx *ctx, const crpc_cause *cause) {
  crpc_ctx *wakes = NULL;
  bool ended = cancel_subtree(ctx, cause, &wakes);
  while (wakes != NULL) {
    crpc_ctx *w = wakes;
    wakes = w->wake_next;
    pthread_cond_broadcast(&w->cond);
    /* Under mu: the fd may have been made since the marking (its maker
     * wrote it then; one more write is harmless). */
    pthread_mutex_lock(&w->mu);
    int fd = w->fd;
    pthread_mutex_unlock(&w->mu);
    if (fd >= 0) {
      /* The fd only needs to become readable; a failed write means the
       * counter is already nonzero, which is just as readable. */
      uint64_t one = 1;
      ssize_t n = write(fd, &one, sizeof(one));
      (void)n;
    }
    ctx_unref(w);
  }
  return ended;
}

/* What a derivation adds to its parent; zero-initialised means nothing. */
typedef struct derivation {
  int64_t deadline;
  bool owned_deadline; /* the creator fires it: not in the timer heap */
  bool has_value;
  const void *key;
  void *value;
  void (*free_value)(void *);
} derivation;

static crpc_ctx *derive(const crpc_ctx *parent_view, const derivation *d,
                        const char *file, int line, const char *fn) {
  ctx_check(parent_view, fn);
  crpc_ctx *parent = (crpc_ctx *)parent_view;
  crpc_ctx *ctx = crpc_mem_calloc(1, sizeof(*ctx));
  if (ctx == NULL) return NULL;
  pthread_once(&monotonic_condattr_once, init_monotonic_condattr);
  ctx->magic = CTX_MAGIC;
  atomic_init(&ctx->refs, 1);
  pthread_mutex_init(&ctx->mu, NULL);
  pthread_cond_init(&ctx->cond, &monotonic_condattr);
  ctx->fd = -1;
  ctx->heap_index = -1;
  ctx->file = file;
  ctx->line = line;
  ctx->parent = parent;
  ctx->has_value = d->has_value;
  ctx->key = d->key;
  ctx->value = d->value;
  ctx->free_value = d->free_value;
  ctx->deadline = parent->deadline;
  if (d->deadline < ctx->deadline) {
    ctx->deadline = d->deadline;
    ctx->has_timer = true;
  }

  if (!ctx_is_background(parent)) {
    ctx_ref(parent);
    pthread_mutex_lock(&parent->mu);
    if (atomic_load_explicit(&parent->done, memory_order_relaxed)) {
      ctx->cause = parent->cause;
      atomic_store_explicit(&ctx->done, 1, memory_order_release);
    } else {
      ctx->next_sibling = parent->first_child;
      if (parent->first_child != NULL) parent->first_child->prev_sibling = ctx;
      parent->first_child = ctx;
      ctx->linked = true;
    }
    pthread_mutex_unlock(&parent->mu);
  }
  ctx_registry_add(ctx);

  bool timed = ctx->has_timer;
  if (d->owned_deadline) ctx->has_timer = false;
  if (timed && !atomic_load_explicit(&ctx->done, memory_order_relaxed)) {
    if (ctx->deadline <= crpc_now_ns()) {
      crpc_cause cause;
      set_cause(&cause, CRPC_DEADLINE_EXCEEDED, CRPC_ORIGIN_DEADLINE,
                "deadline exceeded");
      ctx_cancel_internal(ctx, &cause);
    } else if (ctx->has_timer) {
      ctx_timer_add(ctx);
    }
  }
  return ctx;
}

crpc_ctx *ctx_with_owned_deadline_at(const crpc_ctx *parent,
                                     int64_t deadline_ns, const char *file,
                                     int line) {
  derivation d = {.deadline = deadline_ns, .owned_deadline = true};
  return derive(parent, &d, file, line, "ctx_with_owned_deadline");
}

crpc_ctx *crpc_ctx_with_cancel_at(const crpc_ctx *parent, const char *file,
                                  int line) {
  derivation d = {.deadline = CRPC_NO_DEADLINE};
  return derive(parent, &d, file, line, "crpc_ctx_with_cancel");
}

crpc_ctx *crpc_ctx_with_deadline_at(const crpc_ctx *parent,
                                    int64_t deadline_ns, const char *file,
                                    int line) {
  derivation d = {.deadline = deadline_ns};
  return derive(parent, &d, file, line, "crpc_ctx_with_deadline");
}

crpc_ctx *crpc_ctx_with_timeout_at(const crpc_ctx *parent, int64_t timeout_ns,
                                   const char *file, int line) {
  int64_t now = crpc_now_ns();
  int64_t deadline;
  if (timeout_ns <= 0) {
    deadline = now; /* already passed: born done */
  } else if (timeout_ns >= CRPC_NO_DEADLINE - now) {
    deadline = CRPC_NO_DEADLINE; /* beyond the clock's range: none at all */
  } else {
    deadline = now + timeout_ns;
  }
  derivation d = {.deadline = deadline};
  return derive(parent, &d, file, line, "crpc_ctx_with_timeout");
}

crpc_ctx *crpc_ctx_with_value_at(const crpc_ctx *parent, const void *key,
                                 void *value, void (*free_value)(void *),
                                 const char *file, int line) {
  derivation d = {
      .deadline = CRPC_NO_DEADLINE,
      .has_value = true,
      .key = key,
      .value = value,
      .free_value = free_value,
  };
  return derive(parent, &d, file, line, "crpc_ctx_with_value");
}

/* An owner's cancel may run a callback that releases this very ctx (the
 * owner handing release to the callback); our own reference keeps the
 * memory valid until cancel_internal is done with it. */
static bool cancel_holding_ref(crpc_ctx *ctx, const crpc_cause *cause) {
  ctx_ref(ctx);
  bool ended = ctx_cancel_internal(ctx, cause);
  ctx_unref(ctx);
  return ended;
}

bool crpc_ctx_cancel(crpc_ctx *ctx, crpc_code code, const char *message) {
  ctx_check(ctx, "crpc_ctx_cancel");
  if (ctx_is_background(ctx)) return false;
  crpc_cause cause;
  set_cause(&cause, code, CRPC_ORIGIN_LOCAL, message);
  return cancel_holding_ref(ctx, &cause);
}

bool crpc_ctx_cancel_cause(crpc_ctx *ctx, crpc_code code, crpc_origin origin,
                           const char *fmt, ...) {
  ctx_check(ctx, "crpc_ctx_cancel_cause");
  if (ctx_is_background(ctx)) return false;
  crpc_cause cause;
  set_cause(&cause, code, origin, NULL);
  if (fmt != NULL) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cause.message, sizeof(cause.message), fmt, ap);
    va_end(ap);
  }
  return cancel_holding_ref(ctx, &cause);
}

void crpc_ctx_release(crpc_ctx *ctx) {
  if (ctx == NULL) return;
  ctx_check(ctx, "crpc_ctx_release");
  if (ctx_is_background(ctx)) return;
  if (atomic_exchange(&ctx->released, true)) {
    crpc_log_fatal(CRPC_LOG_SUB_CTX,
                   "crpc_ctx_release: ctx created at %s:%d released twice",
                   ctx->file != NULL ? ctx->file : "?", ctx->line);
    abort();
  }
  crpc_cause cause;
  set_cause(&cause, CRPC_CANCELLED, CRPC_ORIGIN_LOCAL, "context released");
  ctx_cancel_internal(ctx, &cause);
  /* A deadline armed after a racing parent cancel is still in the heap. */
  if (ctx->has_timer) ctx_timer_remove(ctx);
  crpc_ctx *parent = ctx->parent;
  if (!ctx_is_background(parent)) {
    pthread_mutex_lock(&parent->mu);
    if (ctx->linked) {
      if (ctx->prev_sibling != NULL) {
        ctx->prev_sibling->next_sibling = ctx->next_sibling;
      } else {
        parent->first_child = ctx->next_sibling;
      }
      if (ctx->next_sibling != NULL) {
        ctx->next_sibling->prev_sibling = ctx->prev_sibling;
      }
      ctx->linked = false;
    }
    pthread_mutex_unlock(&parent->mu);
  }
  ctx_registry_remove(ctx);
  ctx_unref(ctx);
}

bool crpc_ctx_is_done(const crpc_ctx *ctx) {
  ctx_check(ctx, "crpc_ctx_is_done");
  return ctx_done_acquire(ctx);
}

const crpc_cause *crpc_ctx_cause(const crpc_ctx *ctx) {
  ctx_check(ctx, "crpc_ctx_cause");
  return ctx_done_acquire(ctx) ? &ctx->cause : NULL;
}

crpc_code crpc_ctx_err(const crpc_ctx *ctx) {
  ctx_check(ctx, "crpc_ctx_err");
  return ctx_done_acquire(ctx) ? ctx->cause.code : CRPC_OK;
}

int64_t crpc_ctx_deadline(const crpc_ctx *ctx) {
  ctx_check(ctx, "crpc_ctx_deadline");
  return ctx->deadline;
}

int64_t crpc_ctx_remaining(const crpc_ctx *ctx) {
  ctx_check(ctx, "crpc_ctx_remaining");
  if (ctx->deadline == CRPC_NO_DEADLINE) return CRPC_NO_DEADLINE;
  int64_t now = crpc_now_ns();
  /* Compare before subtracting: a deadline near INT64_MIN would overflow. */
  return ctx->deadline > now ? ctx->deadline - now : 0;
}

void *crpc_ctx_value(const crpc_ctx *ctx, const void *key) {
  ctx_check(ctx, "crpc_ctx_value");
  for (; ctx != NULL; ctx = ctx->parent) {
    if (ctx->has_value && ctx->key == key) return ctx->value;
  }
  return NULL;
}

bool crpc_ctx_is_descendant(const crpc_ctx *ctx, const crpc_ctx *ancestor) {
  ctx_check(ctx, "crpc_ctx_is_descendant");
  ctx_check(ancestor, "crpc_ctx_is_descendant");
  for (; ctx != NULL; ctx = ctx->parent) {
    if (ctx == ancestor) return true;
  }
  /* Every chain ends at the background. */
  return ctx_is_background(ancestor);
}

bool crpc_ctx_on_cancel(const crpc_ctx *view, crpc_on_cancel *reg,
                        crpc_cancel_fn fn, void *arg) {
  ctx_check(view, "crpc_ctx_on_cancel");
  crpc_ctx *ctx = (crpc_ctx *)view;
  pthread_mutex_lock(&ctx->mu);
  if (atomic_load_explicit(&ctx->done, memory_order_relaxed)) {
    pthread_mutex_unlock(&ctx->mu);
    return false;
  }
  reg->ctx_ = ctx;
  reg->fn_ = fn;
  reg->arg_ = arg;
  reg->state_ = REG_PENDING;
  reg->next_ = NULL;
  reg->prev_ = ctx->cb_tail;
  if (ctx->cb_tail != NULL) {
    ctx->cb_tail->next_ = reg;
  } else {
    ctx->cb_head = reg;
  }
  ctx->cb_tail = reg;
  pthread_mutex_unlock(&ctx->mu);
  return true;
}

crpc_on_cancel_state crpc_ctx_remove_on_cancel(crpc_on_cancel *reg) {
  crpc_ctx *ctx = reg->ctx_;
  ctx_check(ctx, "crpc_ctx_remove_on_cancel");
  crpc_on_cancel_state result;
  pthread_mutex_lock(&ctx->mu);
  if (reg->state_ == REG_PENDING) {
    if (reg->prev_ != NULL) {
      reg->prev_->next_ = reg->next_;
    } else {
      ctx->cb_head = reg->next_;
    }
    if (reg->next_ != NULL) {
      reg->next_->prev_ = reg->prev_;
    } else {
      ctx->cb_tail = reg->prev_;
    }
    reg->state_ = REG_REMOVED;
    result = CRPC_ON_CANCEL_REMOVED;
  } else if (reg->state_ == REG_FIRED && ctx->running_cb == reg) {
    result = CRPC_ON_CANCEL_RUNNING;
  } else if (reg->state_ == REG_FIRED) {
    result = CRPC_ON_CANCEL_RAN;
  } else {
    result = CRPC_ON_CANCEL_REMOVED; /* removed twice: still never runs */
  }
  pthread_mutex_unlock(&ctx->mu);
  return result;
}

void ctx_wait_callback_done_locked(crpc_ctx *ctx, const crpc_on_cancel *reg) {
  ctx->cb_waiters++;
  while (ctx->running_cb == reg) pthread_cond_wait(&ctx->cond, &ctx->mu);
  ctx->cb_waiters--;
}
