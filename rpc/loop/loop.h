/*
 * rpc/loop/loop.h - the event loop under the HTTP/2 transport (internal).
 *
 * One loop = one epoll fd, run by exactly one thread at a time. It offers
 * three kinds of event source, all living in caller-owned structs (no
 * allocation per registration, libuv style):
 *
 *   crpc_loop_io       readiness of an fd the caller owns (level-triggered)
 *   crpc_loop_timer    a one-shot deadline on CLOCK_MONOTONIC, in ns (the
 *                      clock of crpc_now_ns, so a ctx deadline can be used
 *                      as is)
 *   crpc_loop_closure  a function queued from any thread to run on the loop
 *                      thread; queued at most once until it runs
 *
 * Threads: "loop thread" below means the thread inside crpc_loop_run or
 * crpc_loop_run_once for this loop, or, while no thread is, any one thread
 * (typically the one setting up or tearing down). Only crpc_loop_post*,
 * crpc_loop_stop and crpc_loop_in_loop_thread may be called from any thread;
 * the thread that controls the loop's life calls new, start_thread,
 * stop_and_join and free. Debug builds assert the rule.
 *
 * Lifetime: crpc_loop_new creates; crpc_loop_free destroys, after the run
 * has returned. The loop closes only the fds it created (epoll, eventfd,
 * timerfd); caller fds stay open and caller structs are never touched again
 * once free returns. A watcher or timer struct may be reused or freed as
 * soon as its stop function returns, even inside any callback.
 *
 * Errors: functions that can fail return 0 (or a count) on success and a
 * negative errno value on failure (-ENOMEM, -EBADF, ...). No errno side
 * channel. Callbacks cannot fail.
 *
 * Order within one iteration: wait; posted closures; expired timers; I/O
 * callbacks, with the timers that fall due meanwhile run between two of
 * them (never inside one). Cancellation work (closures posted by
 * on_cancel callbacks, deadline timers) therefore runs before the loop
 * reads or writes more bytes for the calls it ends, and a deadline does
 * not wait for the rest of a long batch.
 */
#ifndef CRPC_LOOP_LOOP_H
#define CRPC_LOOP_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct crpc_loop crpc_loop;

/* ---- the loop ----------------------------------------------------------- */

/* Flags for crpc_loop_new. */
enum {
  /* Keep timer deadlines in a timerfd even if the kernel has
   * epoll_pwait2. Auto-selected where epoll_pwait2 is missing; forcing it
   * exists so tests cover both backends. */
  CRPC_LOOP_FORCE_TIMERFD = 1u << 0,
  /* Give the loop a standby thread (started and joined with the thread of
   * crpc_loop_start_thread), so that crpc_loop_run_outside can lend the
   * loop thread to work that may block. */
  CRPC_LOOP_STANDBY = 1u << 1
};

/* Creates a loop. Any thread. On success stores it in *out (owned by the
 * caller; crpc_loop_free it) and returns 0; else -errno (-EMFILE, -ENOMEM,
 * -EINVAL for unknown flags) and *out is NULL. */
int crpc_loop_new(crpc_loop **out, unsigned flags);

/* Destroys the loop. Not from a loop callback. If a thread started by
 * crpc_loop_start_thread is still running, stops and joins it first. Then
 * runs every closure still queued (and those they post) on the calling
 * thread, which counts as the loop thread meanwhile, and closes the loop's
 * own fds. Active watchers and timers are forgotten, not called. No thread
 * may post to the loop once free has begun. NULL is a no-op. */
void crpc_loop_free(crpc_loop *loop);

/* Runs iterations until crpc_loop_stop. Calling thread becomes the loop
 * thread; its timer slack (50 us by default) bounds how late a deadline
 * can wake it (crpc_loop_start_thread sets 1 us). Returns 0 after a stop,
 * -EBUSY if another thread is running the loop or it is called from a loop
 * callback, or -errno if epoll fails (never for EINTR). */
int crpc_loop_run(crpc_loop *loop);

/* Runs one iteration: waits up to timeout_ns (< 0: until some event; 0: do
 * not block) for I/O, a due timer, a post or a stop, then dispatches what is
 * ready. Returns the number of callbacks run (>= 0), or -EBUSY / -errno as
 * crpc_loop_run. Never waits when a closure is queued or a stop is pending. */
int crpc_loop_run_once(crpc_loop *loop, int64_t timeout_ns);

/* Makes crpc_loop_run return after the current iteration, without waiting
 * for I/O. Any thread (one atomic store and one eventfd write). If no thread
 * is running the loop, the next crpc_loop_run returns at once; the request
 * is consumed when crpc_loop_run returns. Queued closures are kept: they run
 * on the next run or in crpc_loop_free, never silently dropped. */
void crpc_loop_stop(crpc_loop *loop);

/* Starts a new thread (named "crpc-loop") that calls crpc_loop_run. Called
 * by the thread that controls the loop's life (not concurrently with
 * stop_and_join or free), never from the loop thread. Returns 0, -EBUSY if
 * a thread is already started and not joined, or -errno from
 * pthread_create. The thread runs with 1 us timer slack so nanosecond
 * deadlines are not rounded to 50 us. */
int crpc_loop_start_thread(crpc_loop *loop);

/* How long before its earliest timer, if that timer is precise
 * (crpc_loop_timer_set_precise), the loop stops sleeping and polls epoll
 * (without blocking) until the timer is due. Waking a sleeping thread
 * from a timer costs tens of microseconds on a VM (interrupt, exit from an
 * idle vCPU, scheduler); polling the last stretch removes most of it from
 * how late a call's deadline fires, for at most lead_ns of CPU per timer
 * that fires (a stopped timer is out of the heap and costs nothing).
 * Default CRPC_LOOP_TIMER_LEAD_NS; 0 = always sleep. Call before the loop
 * runs or from the loop thread. */
#define CRPC_LOOP_TIMER_LEAD_NS 100000
void crpc_loop_set_timer_lead(crpc_loop *loop, int64_t lead_ns);

/* Adaptive polling before the loop blocks, the I/O counterpart of the
 * timer lead: while the loop's waits keep ending within max_ns (a reply,
 * the next request of a client in step with us, a cancel right after a
 * send), it polls epoll (without blocking, yielding the CPU between polls)
 * for up to max_ns before it sleeps, so the next event finds it awake
 * instead of paying a wake-up; the poll window grows from
 * CRPC_LOOP_POLL_STEP_NS by doubling, and falls to 0 (no polling) after
 * any wait longer than max_ns (as KVM's halt_poll_ns does for a vCPU), so
 * an idle or sparse loop costs nothing. A new loop does not poll; <= 0
 * turns it off, above CRPC_LOOP_POLL_MAX_NS is that. Call before the loop
 * runs or from the loop thread. */
#define CRPC_LOOP_POLL_STEP_NS 10000
#define CRPC_LOOP_POLL_MAX_NS 1000000
void crpc_loop_set_poll(crpc_loop *loop, int64_t max_ns);

/* The current poll window (0: the next wait sleeps at once), for tests.
 * Loop thread. */
int64_t crpc_loop_poll_window(const crpc_loop *loop);


/* Stops the loop and waits for the thread from crpc_loop_start_thread.
 * Called by the controlling thread (as start_thread). Returns what
 * crpc_loop_run returned, -ECHILD if no thread was started, -EDEADLK from
 * the loop thread itself. */
int crpc_loop_stop_and_join(crpc_loop *loop);

/* How many loops a server or channel runs by default: one per CPU this
 * process may run on (its affinity mask, as Go's GOMAXPROCS counts), so a
 * process pinned to one CPU gets one loop, not as many as the machine
 * has; at least 1. Any thread. */
int crpc_loop_default_count(void);

/* True iff the calling thread is inside crpc_loop_run/run_once (or the
 * closure drain of crpc_loop_free) for this loop. Any thread; no syscall.
 * False while nobody runs the loop: then post, and it runs on the next run. */
bool crpc_loop_in_loop_thread(const crpc_loop *loop);

/* The loop's clock: crpc_now_ns's clock (CLOCK_MONOTONIC, ns) as read
 * when the loop last woke, and again before it ran its timers if posted
 * closures ran first or I/O callbacks ran before due timers. One read
 * per iteration serves every stamp taken during it (activity, the last
 * read, statistics), as libuv's uv_now does; a callback that runs long
 * makes later stamps of its iteration early by that long, so arm timers
 * and measure intervals with crpc_now_ns. Loop thread; outside a run,
 * the time the last iteration woke (0 before the first). */
int64_t crpc_loop_now(const crpc_loop *loop);

/* Number of I/O watchers with interest and of active timers. Loop thread.
 * For leak checks at teardown (should be 0). */
size_t crpc_loop_active_count(const crpc_loop *loop);

/* ---- I/O watchers --------------------------------------------------------
 * Level-triggered: a callback fires on every iteration while the fd is ready
 * and the interest includes it, so turn write interest on only while there
 * is pending output. One watcher per fd per loop. */

enum {
  CRPC_LOOP_READABLE = 1u << 0,
  CRPC_LOOP_WRITABLE = 1u << 1,
  /* EOF or error on the fd (EPOLLHUP/EPOLLERR). Reported whatever the
   * interest, together with the interest bits, so a read or write finds
   * out which. Never part of an interest. */
  CRPC_LOOP_HANGUP = 1u << 2
};

typedef void (*crpc_loop_io_fn)(crpc_loop *loop, int fd, unsigned events,
                                void *user_data);

/* Caller-owned storage for one watcher. Fields are private. */
typedef struct crpc_loop_io {
  crpc_loop *loop_;
  crpc_loop_io_fn fn_;
  void *user_data_;
  int fd_;
  unsigned events_;
} crpc_loop_io;

/* Binds io to (loop, fd, fn, user_data) with no interest. No syscall, no
 * failure. Loop thread. io must not have interest (new or stopped). */
void crpc_loop_io_init(crpc_loop_io *io, crpc_loop *loop, int fd,
                       crpc_loop_io_fn fn, void *user_data);

/* Sets the interest to `events` (READABLE | WRITABLE; 0 = none). Loop
 * thread. At most one epoll_ctl, none if unchanged. Takes effect at once:
 * an event already fetched but not yet dispatched is filtered by the new
 * interest. Returns 0, -EINVAL for bits other than READABLE|WRITABLE, or
 * -errno from epoll_ctl (-EEXIST: the fd already has a watcher; -EPERM: fd
 * cannot be polled, e.g. a regular file; -EBADF); on error the interest is
 * unchanged. */
int crpc_loop_io_set(crpc_loop_io *io, unsigned events);

/* Removes all interest. Loop thread, also from any callback (this watcher's
 * or another's). After it returns fn is never called for io again, and io
 * may be freed or re-initialised; call it before closing the fd. Idempotent.
 */
void crpc_loop_io_stop(crpc_loop_io *io);

/* Current interest. Loop thread. */
unsigned crpc_loop_io_events(const crpc_loop_io *io);

/* ---- timers --------------------------------------------------------------
 * One-shot. A callback never runs before its deadline (CLOCK_MONOTONIC ns);
 * timers due in the same iteration run in (deadline, start order) order.
 * A min-heap in the timer structs themselves: start and stop are O(log n)
 * and never allocate or fail. */

typedef struct crpc_loop_timer crpc_loop_timer;
typedef void (*crpc_loop_timer_fn)(crpc_loop *loop, crpc_loop_timer *timer,
                                   void *user_data);

/* Caller-owned storage for one timer. Fields are private. */
struct crpc_loop_timer {
  crpc_loop_timer *parent_;
  crpc_loop_timer *left_;
  crpc_loop_timer *right_;
  crpc_loop *loop_;
  crpc_loop_timer_fn fn_;
  void *user_data_;
  int64_t deadline_;
  uint64_t seq_;
  bool active_;
  bool precise_;
};

/* Binds timer to (loop, fn, user_data), inactive. Loop thread. timer must
 * not be active. */
void crpc_loop_timer_init(crpc_loop_timer *timer, crpc_loop *loop,
                          crpc_loop_timer_fn fn, void *user_data);

/* Arms timer for absolute deadline_ns, replacing any earlier deadline
 * (restart); INT64_MAX (CRPC_NO_DEADLINE) means never. Loop thread, also
 * from callbacks (re-arming from its own callback makes a periodic timer).
 * A past deadline fires at the next timer phase; a timer (re)started by a
 * timer callback never runs in the same phase, so one that re-arms itself
 * for "now" cannot starve I/O. */
void crpc_loop_timer_start(crpc_loop_timer *timer, int64_t deadline_ns);

/* Disarms timer. Loop thread, also from any timer's callback (including a
 * timer due in the same iteration: it will not run). Then the struct may be
 * freed. Idempotent. */
void crpc_loop_timer_stop(crpc_loop_timer *timer);

/* Marks a timer precise: the loop polls the last lead_ns before it fires
 * (crpc_loop_set_timer_lead) rather than trust a wake-up. For deadlines a
 * peer waits on (a call's grpc-timeout); housekeeping timers (keepalive,
 * idle, pool checks) stay coarse and cost no polling. Loop thread, while
 * the timer is stopped or before it is started; init makes it coarse. */
void crpc_loop_timer_set_precise(crpc_loop_timer *timer, bool precise);

/* True between start and stop or firing (false inside its own callback
 * unless re-armed there). Loop thread. */
bool crpc_loop_timer_active(const crpc_loop_timer *timer);

/* ---- closures: cross-thread wakeups ------------------------------------
 * A closure is queued from any thread (ctx on_cancel callbacks, the ctx
 * timer thread, user threads, the loop itself) and runs once on the loop
 * thread, in posting order per posting thread. Lock-free (one CAS); the
 * eventfd is written only when the queue was empty and the loop may be
 * asleep, so a burst of posts costs one wakeup. A queued closure always
 * runs: on the loop thread, or in crpc_loop_free. */

typedef void (*crpc_loop_fn)(crpc_loop *loop, void *arg);

/* Caller-owned closure, embeddable in per-stream state. Fields are private.
 */
typedef struct crpc_loop_closure {
  struct crpc_loop_closure *next_;
  crpc_loop_fn fn_;
  void *arg_;
  int state_; /* accessed atomically */
  int heap_;  /* allocated by crpc_loop_post, freed before fn runs */
} crpc_loop_closure;

/* Sets fn and arg. Any thread, but only while c is not queued. */
void crpc_loop_closure_init(crpc_loop_closure *c, crpc_loop_fn fn,
                            void *arg);

/* Queues c unless it is already queued: "make sure fn runs (again) after
 * this point", so N posts before it runs cost one run (e.g. "flush this
 * stream"). Any thread. c is marked not-queued just before fn is called,
 * so a post during fn queues it again. Returns true if this call queued it,
 * false if it was already queued (nothing to do: it will run). Never fails.
 * c must stay valid until fn has started and no thread can post it again.
 */
bool crpc_loop_post_closure(crpc_loop *loop, crpc_loop_closure *c);

/* As crpc_loop_post_closure, except when called on the loop thread from a
 * posted closure, or from a crpc_loop_borrow fn: then c runs at the end of
 * the batch being run (or of the borrow), instead of after the next
 * epoll_wait. Meant for work that coalesces what a batch produced (a
 * connection's flush after the kicks of several calls) and should not
 * wait a loop turn. Closures queued this way
 * while the end-of-batch ones run are posted normally, so nothing can keep
 * the loop from polling. */
bool crpc_loop_post_closure_after_batch(crpc_loop *loop, crpc_loop_closure *c);

/* Convenience for callers without a closure to embed: mallocs one, queues
 * fn(loop, arg), frees it before fn runs. Any thread. Never coalesces.
 * Returns 0 or -ENOMEM (nothing queued). */
int crpc_loop_post(crpc_loop *loop, crpc_loop_fn fn, void *arg);

/* Runs fn(loop, arg) now, on the calling thread, as the loop's own work,
 * if the loop is blocked in its wait, and returns true; returns false
 * without running it if the loop is busy, stopping or not running (post
 * it instead). On the loop thread itself fn simply runs. Any thread.
 *
 * Why: a hand-off to a sleeping loop costs an eventfd write and a
 * wake-up of the loop thread before the work starts; a thread that has
 * just finished a call (or cancels one) can do the loop's part itself.
 * While fn runs, crpc_loop_in_loop_thread(loop) is true on the calling
 * thread and the loop thread cannot leave its wait (it drops the events
 * it fetched meanwhile and waits again; level-triggered, they come back);
 * fn runs as a batch: what it queues with
 * crpc_loop_post_closure_after_batch runs on the calling thread before
 * this returns; its other posts wake the loop as usual, and so does a
 * timer it starts that is due before the loop's wait ends. fn must do
 * only what the loop's callbacks may do (no blocking), and should not run
 * user callbacks that are promised the loop thread. */
bool crpc_loop_borrow(crpc_loop *loop, crpc_loop_fn fn, void *arg);

/* Whether any of the loop's fds (its watchers', its own eventfd) is ready
 * now: one epoll_wait with a zero timeout, nothing consumed (level-
 * triggered). For a borrower that must let the loop read what is waiting
 * before it writes (a client writing a new request behind a GOAWAY). A
 * failed epoll_wait counts as ready. Loop thread or a crpc_loop_borrow fn.
 */
bool crpc_loop_input_pending(crpc_loop *loop);

/* ---- work outside the loop, on its thread ------------------------------
 * For work that may block (a blocking handler) but usually does not: run
 * on the loop thread it costs no wake-up and no context switch, where a
 * hand-off to another thread costs one of each, each way. */

/* Queues fn(loop, arg) to run on the loop thread right after the current
 * iteration, outside the loop: the loop is lent meanwhile (others may
 * crpc_loop_borrow it, and crpc_loop_in_loop_thread is false on this
 * thread), and the loop's standby thread runs it as soon as anything needs
 * it (a post, a stop, a due timer, crpc_loop_outside_will_block) or once
 * the work has been out for CRPC_LOOP_RESCUE_NS to 2x that with nobody
 * asking, until fn returns. fn may block. Loop thread, from a callback.
 * Returns false, queueing nothing (do it another way), unless the loop
 * was made with CRPC_LOOP_STANDBY and runs on the thread of
 * crpc_loop_start_thread, that thread is the caller (not the standby or a
 * borrower), no work was queued yet this iteration and no stop is
 * pending. Queued work always runs, even if the loop is stopped
 * meanwhile. */
#define CRPC_LOOP_RESCUE_NS 1000000
bool crpc_loop_run_outside(crpc_loop *loop, crpc_loop_fn fn, void *arg);

/* Takes back the work crpc_loop_run_outside queued in this iteration (it
 * will not run) and returns its arg; NULL if there is none, or the
 * caller is not the thread that queued it. No more work can be queued in
 * this iteration after. For a caller that finds it has more work than
 * the loop thread should take on (a second call in the same read). */
void *crpc_loop_cancel_outside(crpc_loop *loop);

/* Work running outside its loop (crpc_loop_run_outside) calls this just
 * before it blocks: the standby takes the loop at once instead of after
 * CRPC_LOOP_RESCUE_NS. No-op on any other thread. Any thread; a syscall
 * at most once per stretch outside. */
void crpc_loop_outside_will_block(void);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_LOOP_LOOP_H */
