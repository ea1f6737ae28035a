/*
 * Cross-thread closures: a lock-free LIFO of caller-owned nodes (a Treiber
 * stack) that the loop thread takes whole with one exchange and reverses
 * into posting order.
 *
 * Why a stack and not a FIFO queue: push is one CAS and the consumer takes
 * everything at once, so there is no half-linked state for the loop thread
 * to wait out (as in the Vyukov queue) and no ABA problem (nodes are never
 * popped one by one).
 *
 * Wakeups. A poster writes the eventfd only if its push found the stack
 * empty (the poster that made it non-empty is responsible for everything
 * stacked on top until the loop takes it) and the loop thread may be
 * asleep. The loop thread stores sleeping = 1 and then looks at the stack
 * before it blocks; a poster pushes and then looks at sleeping. Both are
 * seq_cst, so at least one of them sees the other: either the loop does
 * not block, or the poster wakes it. Nothing is lost; a race only costs a
 * spurious wakeup. Under load the loop never sleeps, and posts make no
 * system call at all.
 *
 * State word of a caller-owned node: IDLE or QUEUED. The CAS IDLE->QUEUED
 * is what makes crpc_loop_post_closure coalesce, and it also guarantees a
 * node is never linked twice. The fields live in a header shared with C++,
 * hence GCC __atomic builtins on plain ints instead of _Atomic members.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "rpc/loop/loop_internal.h"

enum { CLOSURE_IDLE = 0, CLOSURE_QUEUED = 1 };

void crpc_loop__wake(crpc_loop *loop) {
  /* Out of the loop (outside.c): nobody waits on the eventfd, so the
   * standby is asked to. Before the write, never after: once the write
   * lands the loop may run what was posted, stop and be freed (a channel
   * freed right after its last call), so it is the last access. */
  if (loop->has_standby) crpc_loop__poke(loop);
  uint64_t one = 1;
  /* EAGAIN means the counter is already huge, i.e. the loop is woken. */
  ssize_t r = write(loop->wakefd, &one, sizeof one);
  (void)r;
}

static void push(crpc_loop *loop, crpc_loop_closure *c) {
  crpc_loop_closure *old =
      atomic_load_explicit(&loop->post_head, memory_order_relaxed);
  do {
    c->next_ = old;
  } while (!atomic_compare_exchange_weak(&loop->post_head, &old, c));
  if (old == NULL && atomic_load(&loop->sleeping)) crpc_loop__wake(loop);
}

void crpc_loop_closure_init(crpc_loop_closure *c, crpc_loop_fn fn,
                            void *arg) {
  c->next_ = NULL;
  c->fn_ = fn;
  c->arg_ = arg;
  __atomic_store_n(&c->state_, CLOSURE_IDLE, __ATOMIC_RELAXED);
  c->heap_ = 0;
}

bool crpc_loop_post_closure(crpc_loop *loop, crpc_loop_closure *c) {
  int expected = CLOSURE_IDLE;
  /* acquire: pairs with the release in run_posted, so our write of next_
   * in push() comes after the loop thread's last read of it. */
  if (!__atomic_compare_exchange_n(&c->state_, &expected, CLOSURE_QUEUED,
                                   false, __ATOMIC_ACQUIRE,
                                   __ATOMIC_RELAXED)) {
    return false;
  }
  push(loop, c);
  return true;
}

bool crpc_loop_post_closure_after_batch(crpc_loop *loop,
                                        crpc_loop_closure *c) {
  if (!loop->in_batch || crpc_loop__current != loop) {
    return crpc_loop_post_closure(loop, c);
  }
  int expected = CLOSURE_IDLE;
  if (!__atomic_compare_exchange_n(&c->state_, &expected, CLOSURE_QUEUED,
                                   false, __ATOMIC_ACQUIRE,
                                   __ATOMIC_RELAXED)) {
    return false;
  }
  c->next_ = NULL;
  if (loop->after_tail != NULL) {
    loop->after_tail->next_ = c;
  } else {
    loop->after_head = c;
  }
  loop->after_tail = c;
  return true;
}

/* Runs a closure taken off one of the queues. */
static void run_one(crpc_loop *loop, crpc_loop_closure *c) {
  crpc_loop_fn fn = c->fn_;
  void *arg = c->arg_;
  if (c->heap_) {
    free(c);
  } else {
    /* Cleared before fn runs, so a post made while fn runs (more data
     * for the stream it flushes) queues it again and is not lost. After
     * this store the node belongs to its owner (and other posters). */
    __atomic_store_n(&c->state_, CLOSURE_IDLE, __ATOMIC_RELEASE);
  }
  fn(loop, arg);
}

int crpc_loop_post(crpc_loop *loop, crpc_loop_fn fn, void *arg) {
  crpc_loop_closure *c = malloc(sizeof *c);
  if (c == NULL) return -ENOMEM;
  c->fn_ = fn;
  c->arg_ = arg;
  c->heap_ = 1;
  __atomic_store_n(&c->state_, CLOSURE_QUEUED, __ATOMIC_RELAXED);
  push(loop, c);
  return 0;
}

bool crpc_loop__has_posted(crpc_loop *loop) {
  return atomic_load(&loop->post_head) != NULL;
}

int crpc_loop__run_posted(crpc_loop *loop) {
  /* Cheap check first: most iterations find nothing, and a plain load does
   * not take the cache line away from posters the way an exchange does. */
  if (atomic_load_explicit(&loop->post_head, memory_order_relaxed) == NULL) {
    return 0;
  }
  crpc_loop_closure *c =
      atomic_exchange_explicit(&loop->post_head, NULL, memory_order_acquire);
  crpc_loop_closure *fifo = NULL;
  while (c != NULL) {
    crpc_loop_closure *next = c->next_;
    c->next_ = fifo;
    fifo = c;
    c = next;
  }
  /* Only this batch: what the closures post runs next iteration, after the
   * I/O and timers that are already waiting; what they queue "after the
   * batch" runs right after it, once. */
  int ran = 0;
  loop->in_batch = true;
  while (fifo != NULL) {
    crpc_loop_closure *next = fifo->next_;
    run_one(loop, fifo);
    ran++;
    fifo = next;
  }
  return ran + crpc_loop__end_batch(loop);
}

int crpc_loop__end_batch(crpc_loop *loop) {
  loop->in_batch = false;
  crpc_loop_closure *after = loop->after_head;
  loop->after_head = loop->after_tail = NULL;
  int ran = 0;
  while (after != NULL) {
    crpc_loop_closure *next = after->next_;
    run_one(loop, after);
    ran++;
    after = next;
  }
  return ran;
}
