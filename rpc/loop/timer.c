/*
 * Timers: a binary min-heap threaded through the caller's timer structs
 * (parent/left/right pointers), ordered by (deadline, start order).
 *
 * Why pointers and not an array of timer pointers: starting a timer then
 * never allocates, so it cannot fail. A call's deadline timer that silently
 * failed to arm would be exactly the kind of cancel that never arrives.
 *
 * Node k (1-based, breadth-first) sits at the path spelt by the bits of k
 * below its top bit, read from the top: 0 = left, 1 = right. So the last
 * node, and the free slot after it, are found in O(log n) from the count.
 */
#include <stdint.h>

#include "rpc/loop/loop_internal.h"

static bool before(const crpc_loop_timer *a, const crpc_loop_timer *b) {
  if (a->deadline_ != b->deadline_) return a->deadline_ < b->deadline_;
  return a->seq_ < b->seq_;
}

static int top_bit(size_t k) {
  return (int)(sizeof(unsigned long long) * 8 - 1) -
         __builtin_clzll((unsigned long long)k);
}

/* Node at position k, or the parent of position k if that slot is empty
 * and `parent_of_slot` is set. k >= 1 (>= 2 for parent_of_slot). */
static crpc_loop_timer *walk(crpc_loop_timer *root, size_t k,
                             bool parent_of_slot) {
  crpc_loop_timer *t = root;
  int stop_at = parent_of_slot ? 1 : 0;
  for (int b = top_bit(k) - 1; b >= stop_at; b--) {
    t = ((k >> b) & 1) ? t->right_ : t->left_;
  }
  return t;
}

static void replace_in_parent(crpc_loop *loop, crpc_loop_timer *old,
                              crpc_loop_timer *new_child) {
  crpc_loop_timer *p = new_child->parent_;
  if (p == NULL) {
    loop->timer_root = new_child;
  } else if (p->left_ == old) {
    p->left_ = new_child;
  } else {
    p->right_ = new_child;
  }
}

/* Exchanges child c with its parent p (c moves up one level). */
static void swap_with_parent(crpc_loop *loop, crpc_loop_timer *p,
                             crpc_loop_timer *c) {
  crpc_loop_timer *cl = c->left_;
  crpc_loop_timer *cr = c->right_;
  if (p->left_ == c) {
    c->left_ = p;
    c->right_ = p->right_;
    if (c->right_ != NULL) c->right_->parent_ = c;
  } else {
    c->right_ = p;
    c->left_ = p->left_;
    if (c->left_ != NULL) c->left_->parent_ = c;
  }
  p->left_ = cl;
  p->right_ = cr;
  if (cl != NULL) cl->parent_ = p;
  if (cr != NULL) cr->parent_ = p;
  c->parent_ = p->parent_;
  p->parent_ = c;
  replace_in_parent(loop, p, c);
}

static void sift_up(crpc_loop *loop, crpc_loop_timer *t) {
  while (t->parent_ != NULL && before(t, t->parent_)) {
    swap_with_parent(loop, t->parent_, t);
  }
}

static void sift_down(crpc_loop *loop, crpc_loop_timer *t) {
  for (;;) {
    crpc_loop_timer *min = t;
    if (t->left_ != NULL && before(t->left_, min)) min = t->left_;
    if (t->right_ != NULL && before(t->right_, min)) min = t->right_;
    if (min == t) return;
    swap_with_parent(loop, t, min);
  }
}

static void heap_insert(crpc_loop *loop, crpc_loop_timer *t) {
  t->parent_ = t->left_ = t->right_ = NULL;
  size_t k = ++loop->timer_count;
  if (k == 1) {
    loop->timer_root = t;
    return;
  }
  crpc_loop_timer *p = walk(loop->timer_root, k, true);
  if (k & 1) {
    p->right_ = t;
  } else {
    p->left_ = t;
  }
  t->parent_ = p;
  sift_up(loop, t);
}

static void heap_remove(crpc_loop *loop, crpc_loop_timer *t) {
  size_t k = loop->timer_count--;
  crpc_loop_timer *last = walk(loop->timer_root, k, false);
  if (last->parent_ == NULL) { /* t was the only node */
    loop->timer_root = NULL;
    return;
  }
  if (last->parent_->left_ == last) {
    last->parent_->left_ = NULL;
  } else {
    last->parent_->right_ = NULL;
  }
  if (last == t) return;
  /* Detached first, so if t was last's parent, t's child slot is already
   * empty and last does not end up as its own child. */
  last->parent_ = t->parent_;
  last->left_ = t->left_;
  last->right_ = t->right_;
  if (last->left_ != NULL) last->left_->parent_ = last;
  if (last->right_ != NULL) last->right_->parent_ = last;
  replace_in_parent(loop, t, last);
  sift_down(loop, last);
  sift_up(loop, last);
}

/* ---- API ----------------------------------------------------------------- */

void crpc_loop_timer_init(crpc_loop_timer *timer, crpc_loop *loop,
                          crpc_loop_timer_fn fn, void *user_data) {
  CRPC_LOOP_ASSERT_OWNER(loop);
  timer->parent_ = timer->left_ = timer->right_ = NULL;
  timer->loop_ = loop;
  timer->fn_ = fn;
  timer->user_data_ = user_data;
  timer->deadline_ = 0;
  timer->seq_ = 0;
  timer->active_ = false;
  timer->precise_ = false;
}

void crpc_loop_timer_set_precise(crpc_loop_timer *timer, bool precise) {
  timer->precise_ = precise;
}

void crpc_loop_timer_start(crpc_loop_timer *timer, int64_t deadline_ns) {
  crpc_loop *loop = timer->loop_;
  CRPC_LOOP_ASSERT_OWNER(loop);
  if (timer->active_) heap_remove(loop, timer);
  timer->deadline_ = deadline_ns;
  timer->seq_ = loop->timer_seq++;
  timer->active_ = true;
  heap_insert(loop, timer);
}

void crpc_loop_timer_stop(crpc_loop_timer *timer) {
  if (!timer->active_) return;
  CRPC_LOOP_ASSERT_OWNER(timer->loop_);
  heap_remove(timer->loop_, timer);
  timer->active_ = false;
}

bool crpc_loop_timer_active(const crpc_loop_timer *timer) {
  return timer->active_;
}

int64_t crpc_loop__next_deadline(const crpc_loop *loop) {
  return loop->timer_root == NULL ? INT64_MAX : loop->timer_root->deadline_;
}

int64_t crpc_loop__next_lead(const crpc_loop *loop) {
  return loop->timer_root != NULL && loop->timer_root->precise_
             ? loop->timer_lead_ns
             : 0;
}

int crpc_loop__run_timers(crpc_loop *loop, int64_t now) {
  /* Timers started from here on (by these callbacks) wait for the next
   * iteration, so a callback re-arming itself for "now" cannot keep the
   * loop in this phase forever. */
  uint64_t first_new = loop->timer_seq;
  int ran = 0;
  for (;;) {
    crpc_loop_timer *t = loop->timer_root;
    if (t == NULL || t->deadline_ > now || t->seq_ >= first_new) break;
    heap_remove(loop, t);
    t->active_ = false;
    /* One at a time from the heap (no batch collected up front), so a
     * callback that stops another due timer really prevents it. */
    t->fn_(loop, t, t->user_data_);
    ran++;
  }
  return ran;
}
