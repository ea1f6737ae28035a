/*
 * crpc/ctx.h - cancellation contexts.
 *
 * A ctx says "this work is still wanted" until it is done, and once done it
 * says why (a cause: gRPC status code, origin, message). Contexts form a tree:
 * a derived ctx is done when its parent is, with the parent's cause, and may
 * carry its own cancel, deadline or value. Every call in crpc takes one.
 *
 * Lifetime rule (the only one): every ctx returned by a crpc_ctx_with_*()
 * function is owned by its caller and is released exactly once with
 * crpc_ctx_release(). Releasing cancels the ctx and all its descendants if
 * they are still live. A descendant stays valid (and keeps its ancestors'
 * memory alive) until its own owner releases it. The background ctx is
 * never released.
 *
 * Owner vs reader: functions that can end a ctx take `crpc_ctx *` (the owner
 * handle). Everything else takes `const crpc_ctx *`, the read-only view that
 * crpc hands to handlers and interceptors, so code that merely receives a ctx
 * cannot cancel it without a cast (failure catalog line 3, DESIGN.md).
 *
 * Threads: every function is safe to call from any thread, concurrently,
 * except that a ctx must not be used after its owner released it.
 *
 * Misuse is loud, never silent: passing NULL (except to crpc_ctx_release) or
 * something that is not a live ctx, or releasing a ctx twice, prints a
 * message naming the function (and the ctx's creation site) and aborts.
 *
 * Time: all times are int64_t nanoseconds on CLOCK_MONOTONIC (crpc_now_ns).
 * A time limit is expressed as a ctx deadline; waits take no timeouts of
 * their own, except crpc_ctx_sleep whose duration is the point.
 *
 * Cost: deriving, cancelling and releasing make no system call on the common
 * path. Deadlines share one timer thread and heap (except a server call's
 * own ctx, whose deadline its connection's loop timer fires); the waitable
 * fd is created only when someone asks for it.
 */
#ifndef CRPC_CTX_H
#define CRPC_CTX_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "crpc/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct crpc_ctx crpc_ctx;

#define CRPC_NANOSECOND ((int64_t)1)
#define CRPC_MICROSECOND ((int64_t)1000)
#define CRPC_MILLISECOND ((int64_t)1000000)
#define CRPC_SECOND ((int64_t)1000000000)

/* Returned by crpc_ctx_deadline/crpc_ctx_remaining for a ctx with none. */
#define CRPC_NO_DEADLINE INT64_MAX

/* Longer cause messages are truncated (never rejected). */
#define CRPC_CAUSE_MESSAGE_MAX 128

/* Why a ctx is done. Immutable once the ctx is done. */
typedef struct crpc_cause {
  crpc_code code;     /* CANCELLED, DEADLINE_EXCEEDED, UNAVAILABLE, ... */
  crpc_origin origin; /* who ended it: local, deadline, peer reset, ... */
  char message[CRPC_CAUSE_MESSAGE_MAX]; /* NUL-terminated, may be empty */
} crpc_cause;

/* ---- time ------------------------------------------------------------- */

/* Current CLOCK_MONOTONIC time in ns. No system call (vDSO). Thread-safe. */
int64_t crpc_now_ns(void);

/* ---- creating and ending contexts -------------------------------------- */

/* The root: never done, no deadline, no values. Static; never release it. */
const crpc_ctx *crpc_ctx_background(void);

/* The crpc_ctx_with_* macros record the caller's file:line for the debug
 * registry; the *_at functions take it explicitly (for wrappers). Each
 * returns a new ctx owned by the caller (release it once), or NULL only if
 * memory is exhausted. If the parent is already done, the child is born done
 * with the parent's cause. */

/* Child cancelled by its owner, its parent, or an ancestor's deadline. */
crpc_ctx *crpc_ctx_with_cancel_at(const crpc_ctx *parent, const char *file,
                                  int line);
#define crpc_ctx_with_cancel(parent) \
  crpc_ctx_with_cancel_at((parent), __FILE__, __LINE__)

/* Child whose deadline is min(parent's deadline, deadline_ns), always: a
 * child can narrow a deadline but never extend it (failure catalog line 8,
 * DESIGN.md). When it passes, the ctx is cancelled with DEADLINE_EXCEEDED /
 * origin deadline, by the shared timer thread (a server call ctx: by its
 * loop's timer), whether or not anyone waits.
 * A deadline already in the past gives a ctx born done. */
crpc_ctx *crpc_ctx_with_deadline_at(const crpc_ctx *parent,
                                    int64_t deadline_ns, const char *file,
                                    int line);
#define crpc_ctx_with_deadline(parent, deadline_ns) \
  crpc_ctx_with_deadline_at((parent), (deadline_ns), __FILE__, __LINE__)

/* Same as crpc_ctx_with_deadline(parent, crpc_now_ns() + timeout_ns);
 * a timeout <= 0 gives a ctx born done with DEADLINE_EXCEEDED, one too large
 * for the clock (e.g. INT64_MAX) means no deadline of its own. */
crpc_ctx *crpc_ctx_with_timeout_at(const crpc_ctx *parent, int64_t timeout_ns,
                                   const char *file, int line);
#define crpc_ctx_with_timeout(parent, timeout_ns) \
  crpc_ctx_with_timeout_at((parent), (timeout_ns), __FILE__, __LINE__)

/* Child carrying (key -> value), found by crpc_ctx_value on it and its
 * descendants. It stays linked to the parent's cancellation like any other
 * child (failure catalog line 4, DESIGN.md). Keys compare by address (use the
 * address of a static variable). `free_value`, if not NULL, is called with
 * `value` exactly once, when the ctx's memory is freed (after the release of
 * this ctx and of all its descendants), on whichever thread drops the last
 * reference; not at all if this function returns NULL. */
crpc_ctx *crpc_ctx_with_value_at(const crpc_ctx *parent, const void *key,
                                 void *value, void (*free_value)(void *),
                                 const char *file, int line);
#define crpc_ctx_with_value(parent, key, value, free_value)            \
  crpc_ctx_with_value_at((parent), (key), (value), (free_value), __FILE__, \
                         __LINE__)

/* Cancels ctx (origin local) with `code` and `message` (may be NULL).
 * A done ctx never reads as OK: code CRPC_OK is recorded as CANCELLED.
 * The first cause wins: returns true if this call ended the ctx, false if it
 * was already done (its cause is unchanged). Descendants get the same cause.
 * Runs the on_cancel callbacks of ctx and its descendants on the calling
 * thread before returning, and wakes the threads parked in crpc_ctx_wait,
 * crpc_ctx_sleep or on crpc_ctx_fd only after all of them have run (a
 * wake-up costs the canceller a cross-CPU wake; callbacks carry the cancel
 * on and must not wait behind it). Owner only. */
bool crpc_ctx_cancel(crpc_ctx *ctx, crpc_code code, const char *message);

/* Like crpc_ctx_cancel with an explicit origin and a printf-style message;
 * used by the transport (peer reset, connection lost, shutdown). Origin
 * CRPC_ORIGIN_NONE is recorded as local. */
bool crpc_ctx_cancel_cause(crpc_ctx *ctx, crpc_code code, crpc_origin origin,
                           const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Ends the owner's use of ctx: cancels it (CANCELLED, origin local, message
 * "context released") if still live, which cancels its descendants, and
 * drops the owner's reference. Call exactly once per derived ctx; NULL is a
 * no-op. Safe from an on_cancel callback, including one of this ctx. */
void crpc_ctx_release(crpc_ctx *ctx);

/* ---- queries (read-only view) ----------------------------------------- */

/* True once the ctx is done. Lock-free, no system call. */
bool crpc_ctx_is_done(const crpc_ctx *ctx);

/* The cause if done, else NULL. The pointer stays valid while ctx does. */
const crpc_cause *crpc_ctx_cause(const crpc_ctx *ctx);

/* CRPC_OK while live, else the cause's code. Lock-free. */
crpc_code crpc_ctx_err(const crpc_ctx *ctx);

/* Absolute deadline (ns, CLOCK_MONOTONIC) or CRPC_NO_DEADLINE. */
int64_t crpc_ctx_deadline(const crpc_ctx *ctx);

/* Time left before the deadline (0 if passed) or CRPC_NO_DEADLINE. */
int64_t crpc_ctx_remaining(const crpc_ctx *ctx);

/* Value for key on ctx or its nearest ancestor that has one, else NULL.
 * The value is borrowed: valid while ctx is. */
void *crpc_ctx_value(const crpc_ctx *ctx, const void *key);

/* True if ctx is `ancestor` or was derived (at any depth) from it. */
bool crpc_ctx_is_descendant(const crpc_ctx *ctx, const crpc_ctx *ancestor);

/* ---- waiting without polling (catalog line 2, DESIGN.md) ---------------
 * Every wait returns as soon as the ctx is done, with the cause's code; a
 * deadline on the ctx is how a wait gets a time limit. None of them may be
 * called from an on_cancel callback. */

/* A file descriptor that becomes readable (and stays readable: do not read
 * it) once ctx is done; for poll/epoll loops. Created on first call (one
 * eventfd), owned by the ctx and closed when its memory is freed. Returns -1
 * if no fd could be created (e.g. EMFILE). */
int crpc_ctx_fd(const crpc_ctx *ctx);

/* Blocks until ctx is done; returns the cause's code (never CRPC_OK). */
crpc_code crpc_ctx_wait(const crpc_ctx *ctx);

/* Sleeps `duration_ns`. Returns CRPC_OK if the full time passed, else the
 * cause's code as soon as ctx is done (immediately if already done). */
crpc_code crpc_ctx_sleep(const crpc_ctx *ctx, int64_t duration_ns);

/* pthread_cond_wait that also wakes when ctx is done. Call with `mu` held,
 * in the usual predicate loop; returns with `mu` held. Returns CRPC_OK on a
 * wakeup of `cond` (maybe spurious: re-check your predicate) or the cause's
 * code if ctx is done. The cancelling thread locks `mu` to wake the waiter,
 * so never cancel ctx (or an ancestor) while holding `mu`. */
crpc_code crpc_ctx_wait_cond(const crpc_ctx *ctx, pthread_cond_t *cond,
                             pthread_mutex_t *mu);

/* Waits for `events` (POLLIN, POLLOUT, ...) on fd or for ctx to be done.
 * Returns CRPC_OK with *revents set when fd is ready, the cause's code if
 * ctx is done first (ctx wins ties), or CRPC_INTERNAL if poll fails or no
 * ctx fd can be created. */
crpc_code crpc_ctx_wait_fd(const crpc_ctx *ctx, int fd, short events,
                           short *revents);

/* ---- cancel callbacks (catalog line 6, DESIGN.md) ---------------------
 * Let code that blocks outside crpc (a query, a child process, a socket)
 * abort when the ctx ends. The registration lives in caller storage; no
 * allocation. A callback runs at most once, on the thread that cancels the
 * ctx (the canceller, the timer thread for deadlines, or a transport
 * thread). It must be short and must not block or wait on a ctx; it may
 * query contexts, cancel or release other contexts, derive new ones and
 * remove other registrations. */

typedef void (*crpc_cancel_fn)(void *arg, const crpc_cause *cause);

/* Caller-owned storage for one registration. Fields are private. */
typedef struct crpc_on_cancel {
  struct crpc_on_cancel *next_;
  struct crpc_on_cancel *prev_;
  crpc_ctx *ctx_;
  crpc_cancel_fn fn_;
  void *arg_;
  int state_;
} crpc_on_cancel;

typedef enum crpc_on_cancel_state {
  CRPC_ON_CANCEL_REMOVED = 0, /* had not run, and now never will (also
                                 possible on a done ctx whose cancel, on
                                 another thread, had not reached it yet) */
  CRPC_ON_CANCEL_RAN = 1,     /* already ran to completion */
  CRPC_ON_CANCEL_RUNNING = 2  /* running now on another thread (or is the
                                 caller); `reg` may be reused, but whatever
                                 `arg` points to is still in use until fn
                                 returns */
} crpc_on_cancel_state;

/* Registers fn(arg, cause) to run once when ctx is done. Returns true if
 * registered; false if ctx is already done, in which case fn is NOT called
 * (the caller acts on crpc_ctx_cause itself) and `reg` is untouched. */
bool crpc_ctx_on_cancel(const crpc_ctx *ctx, crpc_on_cancel *reg,
                        crpc_cancel_fn fn, void *arg);

/* Removes a registration made by crpc_ctx_on_cancel (which returned true)
 * and reports whether its callback ran. Never blocks. Call it once per
 * registration, before the ctx is released (a registration left in place
 * may still be running on another thread when release returns); `reg` may
 * then be reused, and `arg` freed unless the answer is RUNNING, in which
 * case fn is still using it and the caller must learn from fn itself when
 * it has returned. */
crpc_on_cancel_state crpc_ctx_remove_on_cancel(crpc_on_cancel *reg);

/* ---- debug registry (catalog lines 1 and 14, DESIGN.md) ----------------
 * Every derived ctx not yet released, with its creation site and age. The
 * count is always maintained; sites and the dump need a build without
 * NDEBUG (the default for tests). */

/* Number of derived contexts created and not yet released, process-wide. */
size_t crpc_ctx_live_count(void);

/* Writes one line per unreleased ctx: site, age, state, cause. Returns the
 * number of lines written. Thread-safe; takes a global lock. */
size_t crpc_ctx_dump(FILE *out);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_CTX_H */
