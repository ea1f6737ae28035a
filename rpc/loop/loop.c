/*
 * The loop object, its iteration, and I/O watchers. Timers live in timer.c,
 * the cross-thread closure queue in post.c.
 */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "rpc/loop/loop_internal.h"
#include "rpc/mem/mem.h"

_Thread_local crpc_loop *crpc_loop__current;
_Thread_local crpc_loop *crpc_loop__runner;

/* glibc grew the epoll_pwait2 wrapper in 2.35; older headers fall back to
 * the timerfd backend at compile time, older kernels at run time. */
#if defined(__GLIBC__) && \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
#define CRPC_HAVE_EPOLL_PWAIT2 1
#endif

/* ---- creation and teardown ---------------------------------------------- */

static int add_own_fd(crpc_loop *loop, int fd, void *tag) {
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.events = EPOLLIN;
  ev.data.ptr = tag;
  return epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : -errno;
}

static bool kernel_has_pwait2(int epfd) {
#ifdef CRPC_HAVE_EPOLL_PWAIT2
  struct epoll_event ev;
  struct timespec zero = {0, 0};
  /* ENOSYS on kernels < 5.11; seccomp filters may say EPERM instead. */
  return epoll_pwait2(epfd, &ev, 1, &zero, NULL) >= 0;
#else
  (void)epfd;
  return false;
#endif
}

static void close_own_fds(crpc_loop *loop) {
  if (loop->timerfd >= 0) close(loop->timerfd);
  if (loop->wakefd >= 0) close(loop->wakefd);
  if (loop->epfd >= 0) close(loop->epfd);
}

int crpc_loop_new(crpc_loop **out, unsigned flags) {
  *out = NULL;
  if (flags & ~(unsigned)(CRPC_LOOP_FORCE_TIMERFD | CRPC_LOOP_STANDBY)) {
    return -EINVAL;
  }
  void *mem = NULL;
  /* malloc's 16-byte alignment is not enough for the alignas(64) fields. */
  if (posix_memalign(&mem, 64, sizeof(crpc_loop)) != 0) return -ENOMEM;
  memset(mem, 0, sizeof(crpc_loop));
  crpc_loop *loop = mem;
  atomic_init(&loop->post_head, NULL);
  atomic_init(&loop->sleeping, 0);
  atomic_init(&loop->stop, 0);
  atomic_init(&loop->running, 0);
  pthread_mutex_init(&loop->own, NULL);
  loop->epfd = loop->wakefd = loop->timerfd = -1;
  loop->timerfd_armed = INT64_MAX;
  loop->timer_lead_ns = CRPC_LOOP_TIMER_LEAD_NS;

  int rc = 0;
  loop->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (loop->epfd < 0) goto fail_errno;
  loop->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (loop->wakefd < 0) goto fail_errno;
  rc = add_own_fd(loop, loop->wakefd, &loop->wake_tag);
  if (rc < 0) goto fail;
  if ((flags & CRPC_LOOP_FORCE_TIMERFD) || !kernel_has_pwait2(loop->epfd)) {
    loop->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (loop->timerfd < 0) goto fail_errno;
    rc = add_own_fd(loop, loop->timerfd, &loop->timer_tag);
    if (rc < 0) goto fail;
  }
  if (flags & CRPC_LOOP_STANDBY) {
    rc = crpc_loop__standby_init(loop);
    if (rc < 0) goto fail;
  }
  *out = loop;
  return 0;

fail_errno:
  rc = -errno;
fail:
  close_own_fds(loop);
  pthread_mutex_destroy(&loop->own);
  free(loop);
  return rc;
}

void crpc_loop_free(crpc_loop *loop) {
  if (loop == NULL) return;
  assert(crpc_loop__current != loop && "crpc_loop_free from a loop callback");
  if (loop->thread_started) (void)crpc_loop_stop_and_join(loop);
  assert(atomic_load(&loop->running) == 0);
  /* A queued closure may own memory (a stream, a malloc'd node) or be the
   * only record of a cancel: running it is the one way not to lose it. */
  crpc_loop *saved = crpc_loop__current;
  crpc_loop__current = loop;
  while (crpc_loop__run_posted(loop) > 0) {
  }
  crpc_loop__current = saved;
  close_own_fds(loop);
  crpc_loop__standby_destroy(loop);
  pthread_mutex_destroy(&loop->own);
  free(loop);
}

/* ---- one iteration ------------------------------------------------------ */

static void drain_fd(int fd) {
  uint64_t count;
  /* Nonblocking; a lost race with another wakeup just leaves it readable. */
  ssize_t r = read(fd, &count, sizeof count);
  (void)r;
}

/* How long the next wait may block: the caller's timeout, cut short by the
 * earliest timer less its lead (a precise one's last stretch is polled).
 * 0 = poll. */
int64_t crpc_loop__block_for(crpc_loop *loop, int64_t timeout_ns) {
  if (timeout_ns == 0) return 0;
  int64_t deadline = crpc_loop__next_deadline(loop);
  if (deadline == INT64_MAX) return timeout_ns;
  int64_t now = crpc_loop__now();
  /* Compared before subtracting: deadline - now overflows for a caller's
   * deadline near INT64_MIN. */
  int64_t until = deadline <= now ? 0 : deadline - now;
  int64_t lead = crpc_loop__next_lead(loop);
  if (until <= lead) return 0;
  until -= lead;
  return timeout_ns < 0 || until < timeout_ns ? until : timeout_ns;
}

int crpc_loop__wait(crpc_loop *loop, struct epoll_event *buf,
                    int64_t timeout_ns) {
  if (timeout_ns != 0 && loop->timerfd >= 0) {
    /* The timerfd wakes us on time (the lead included); epoll_wait's own
     * timeout, rounded up to ms, is never the earlier of the two. */
    int64_t deadline = crpc_loop__next_deadline(loop);
    if (deadline != INT64_MAX) deadline -= crpc_loop__next_lead(loop);
    /* Re-armed only for an earlier deadline: when the earliest timer is
     * stopped (the usual fate of a call's deadline timer) the stale
     * expiry costs one spurious wakeup instead of a syscall per stop. */
    if (deadline != INT64_MAX && deadline < loop->timerfd_armed) {
      struct itimerspec its;
      memset(&its, 0, sizeof its);
      its.it_value.tv_sec = deadline / 1000000000;
      its.it_value.tv_nsec = deadline % 1000000000;
      if (timerfd_settime(loop->timerfd, TFD_TIMER_ABSTIME, &its, NULL) != 0) {
        return -errno;
      }
      loop->timerfd_armed = deadline;
    }
  }

  /* A wait that may block lends the loop (crpc_loop_borrow). */
  bool lend = timeout_ns != 0;
  unsigned borrows = loop->borrows;
  if (lend) {
    loop->sleep_deadline = crpc_loop__next_deadline(loop);
    pthread_mutex_unlock(&loop->own);
  }
  int n;
#ifdef CRPC_HAVE_EPOLL_PWAIT2
  if (loop->timerfd < 0) {
    struct timespec ts;
    ts.tv_sec = timeout_ns / 1000000000;
    ts.tv_nsec = timeout_ns % 1000000000;
    n = epoll_pwait2(loop->epfd, buf, CRPC_LOOP_BATCH,
                     timeout_ns < 0 ? NULL : &ts, NULL);
  } else
#endif
  {
    int ms = -1;
    if (timeout_ns >= 0) {
      /* Round up: waking before a caller's timeout would be a busy loop. */
      int64_t ms64 = (timeout_ns + 999999) / 1000000;
      ms = ms64 > INT_MAX ? INT_MAX : (int)ms64;
    }
    n = epoll_wait(loop->epfd, buf, CRPC_LOOP_BATCH, ms);
  }
  if (n < 0) n = -errno;
  if (lend) {
    pthread_mutex_lock(&loop->own);
    /* Borrowed meanwhile: what the batch names may have been stopped and
     * freed. Level-triggered, so the next wait reports it again. */
    if (loop->borrows != borrows && n > 0) n = 0;
  }
  return n;
}

static unsigned to_epoll(unsigned events) {
  unsigned ev = 0;
  if (events & CRPC_LOOP_READABLE) ev |= EPOLLIN;
  if (events & CRPC_LOOP_WRITABLE) ev |= EPOLLOUT;
  return ev;
}

static unsigned from_epoll(uint32_t ev, unsigned interest) {
  unsigned got = 0;
  if (ev & (EPOLLIN | EPOLLPRI | EPOLLRDHUP)) got |= CRPC_LOOP_READABLE;
  if (ev & EPOLLOUT) got |= CRPC_LOOP_WRITABLE;
  /* With the interest bits too, so code that only looks at READABLE still
   * reads, sees EOF or the error, and closes. */
  if (ev & (EPOLLERR | EPOLLHUP)) got |= CRPC_LOOP_HANGUP | interest;
  return got & (interest | CRPC_LOOP_HANGUP);
}

/* Between two I/O callbacks of a batch: runs the timers that fell due
 * meanwhile. At full load one batch can take longer than the lateness a
 * call's deadline may have (a loop serving many connections, each callback
 * answering a readful of requests); without this, a deadline waits for the
 * end of the batch. One clock read per callback, and only on a loop with
 * timers. */
static int run_due_timers(crpc_loop *loop) {
  if (loop->timer_root == NULL) return 0;
  int64_t now = crpc_loop__now();
  if (loop->timer_root->deadline_ > now) return 0;
  loop->now = now;
  return crpc_loop__run_timers(loop, now);
}

static int dispatch_io(crpc_loop *loop) {
  int ran = 0;
  while (loop->batch_next < loop->batch_n) {
    if (ran > 0) ran += run_due_timers(loop);
    struct epoll_event *ev = &loop->batch[loop->batch_next++];
    crpc_loop_io *io = ev->data.ptr;
    if (io == NULL) continue; /* stopped since the wait, or our own fd */
    /* Filtered by the interest now, not at wait time: a callback earlier in
     * this batch may have turned write interest off. */
    unsigned got = from_epoll(ev->events, io->events_);
    if (got == 0) continue;
    io->fn_(loop, io->fd_, got, io->user_data_);
    ran++;
  }
  return ran;
}

/* Polls epoll (without blocking) for up to budget_ns before the loop would
 * block: n > 0 events, < 0 an error, or 0 with *found true (a post or a
 * stop came; run it now) or false (nothing: block). Yields between polls,
 * so a thread sharing this CPU (a blocking handler) is not kept waiting. */
static int poll_first(crpc_loop *loop, int64_t budget_ns, bool *found) {
  int64_t until = crpc_loop__now() + budget_ns;
  for (;;) {
    int n = epoll_wait(loop->epfd, loop->batch, CRPC_LOOP_BATCH, 0);
    if (n < 0) n = -errno; /* as crpc_loop__wait returns it */
    *found = n != 0 || atomic_load(&loop->stop) || crpc_loop__has_posted(loop);
    if (*found || crpc_loop__now() >= until) return n;
    sched_yield();
  }
}

/* After a wait that blocked for blocked_ns (its poll included): polling
 * grows while waits end within poll_max_ns (so that the next one is caught
 * by polling, not by a wake-up) and stops once one outlasts it, as KVM's
 * halt_poll_ns does for a vCPU: an idle or sparse loop costs no CPU. */
static void adapt_poll(crpc_loop *loop, int64_t blocked_ns) {
  if (blocked_ns > loop->poll_max_ns) {
    loop->poll_ns = 0;
  } else if (loop->poll_ns < loop->poll_max_ns) {
    int64_t grown = loop->poll_ns == 0 ? CRPC_LOOP_POLL_STEP_NS : 2 * loop->poll_ns;
    loop->poll_ns = grown < loop->poll_max_ns ? grown : loop->poll_max_ns;
  }
}

static int iterate(crpc_loop *loop, int64_t timeout_ns) {
  timeout_ns = crpc_loop__block_for(loop, timeout_ns);
  int n = 0;
  bool found = false, adapt = false;
  int64_t poll_start = 0;
  if (timeout_ns != 0 && loop->poll_ns > 0) {
    poll_start = crpc_loop__now();
    int64_t budget = loop->poll_ns;
    if (timeout_ns > 0 && timeout_ns < budget) budget = timeout_ns;
    n = poll_first(loop, budget, &found);
    if (!found && timeout_ns > 0) {
      timeout_ns -= crpc_loop__now() - poll_start;
      if (timeout_ns < 0) timeout_ns = 0;
    }
  }
  if (!found) {
    /* seq_cst store then loads: pairs with the push-then-load in post.c so
     * that either the poster sees sleeping == 1 and writes the eventfd, or
     * we see its closure here and do not block. */
    bool blocks = timeout_ns != 0;
    if (blocks) {
      if (poll_start == 0 && loop->poll_max_ns > 0) poll_start = crpc_loop__now();
      atomic_store(&loop->sleeping, 1);
      if (atomic_load(&loop->stop) || crpc_loop__has_posted(loop)) timeout_ns = 0;
    }
    n = crpc_loop__wait(loop, loop->batch, timeout_ns);
    atomic_store_explicit(&loop->sleeping, 0, memory_order_relaxed);
    adapt = blocks && loop->poll_max_ns > 0;
  }
  if (n == -EINTR) n = 0;
  if (n < 0) return n;
  int64_t now = crpc_loop__now();
  if (adapt) adapt_poll(loop, now - poll_start);
  return crpc_loop__process(loop, n, now);
}

int crpc_loop__process(crpc_loop *loop, int n, int64_t now) {
  loop->now = now;
  loop->batch_n = n;
  loop->batch_next = 0;
  for (int i = 0; i < n; i++) {
    void *tag = loop->batch[i].data.ptr;
    if (tag == &loop->wake_tag) {
      /* Before the queue is taken (run_posted), never after: a post landing
       * in between must leave the eventfd set. */
      drain_fd(loop->wakefd);
      loop->batch[i].data.ptr = NULL;
    } else if (tag == &loop->timer_tag) {
      drain_fd(loop->timerfd);
      loop->timerfd_armed = INT64_MAX; /* one-shot: it is disarmed now */
      loop->batch[i].data.ptr = NULL;
    }
  }

  int ran = crpc_loop__run_posted(loop);
  if (loop->timer_root != NULL) {
    /* Fresh if posted closures ran: they may have run for a while. */
    if (ran > 0) loop->now = crpc_loop__now();
    ran += crpc_loop__run_timers(loop, loop->now);
  }
  ran += dispatch_io(loop);
  loop->batch_n = loop->batch_next = 0;
  return ran;
}

static int enter(crpc_loop *loop, crpc_loop **saved) {
  int expected = 0;
  if (!atomic_compare_exchange_strong(&loop->running, &expected, 1)) {
    return -EBUSY;
  }
  *saved = crpc_loop__current;
  crpc_loop__current = loop;
  pthread_mutex_lock(&loop->own); /* a borrower may still be finishing */
  return 0;
}

static void leave(crpc_loop *loop, crpc_loop *saved) {
  pthread_mutex_unlock(&loop->own);
  crpc_loop__current = saved;
  atomic_store(&loop->running, 0);
}

bool crpc_loop_borrow(crpc_loop *loop, crpc_loop_fn fn, void *arg) {
  if (crpc_loop__current == loop) {
    fn(loop, arg);
    return true;
  }
  /* Only a loop blocked in its wait is lent: a busy one would make the
   * borrower wait, and it flushes its own work anyway. */
  if (!atomic_load(&loop->sleeping) || atomic_load(&loop->stop)) return false;
  if (pthread_mutex_trylock(&loop->own) != 0) return false;
  if (!atomic_load(&loop->sleeping) || !atomic_load(&loop->running)) {
    pthread_mutex_unlock(&loop->own);
    return false;
  }
  loop->borrows++;
  crpc_loop *saved = crpc_loop__current;
  crpc_loop__current = loop;
  loop->now = crpc_loop__now(); /* the loop's stamp is from before it slept */
  /* fn is a batch of its own: what it queues for the batch's end (a
   * connection's flush) runs before the loop is handed back, instead of
   * waking the loop for it. */
  loop->in_batch = true;
  fn(loop, arg);
  crpc_loop__end_batch(loop);
  crpc_loop__current = saved;
  /* Posts made by fn woke the loop already (it is "sleeping"); a timer
   * due before the one its wait ends for needs a wake-up too. */
  bool wake = crpc_loop__next_deadline(loop) < loop->sleep_deadline;
  pthread_mutex_unlock(&loop->own);
  if (wake) crpc_loop__wake(loop);
  return true;
}

bool crpc_loop_input_pending(crpc_loop *loop) {
  CRPC_LOOP_ASSERT_OWNER(loop);
  struct epoll_event ev;
  int n;
  do {
    n = epoll_wait(loop->epfd, &ev, 1, 0);
  } while (n < 0 && errno == EINTR);
  return n != 0;
}

int crpc_loop_run_once(crpc_loop *loop, int64_t timeout_ns) {
  crpc_loop *saved;
  int rc = enter(loop, &saved);
  if (rc < 0) return rc;
  rc = iterate(loop, timeout_ns);
  leave(loop, saved);
  return rc;
}

int crpc_loop_run(crpc_loop *loop) {
  crpc_loop *saved;
  int rc = enter(loop, &saved);
  if (rc < 0) return rc;
  /* The thread keeps what it frees for the calls it will serve next. */
  crpc_mem_cache_begin();
  crpc_loop *outer = crpc_loop__runner;
  crpc_loop__runner = loop;
  while (!atomic_load(&loop->stop)) {
    rc = iterate(loop, -1);
    /* Queued work goes out even if a stop came meanwhile: it is a call. */
    if (loop->outside_state != OUTSIDE_NONE) crpc_loop__go_outside(loop);
    if (rc < 0) break;
    rc = 0;
  }
  crpc_loop__runner = outer;
  atomic_store(&loop->stop, 0);
  crpc_mem_cache_end();
  leave(loop, saved);
  return rc;
}

void crpc_loop_stop(crpc_loop *loop) {
  atomic_store(&loop->stop, 1);
  /* Unconditional (unlike posts): stops are rare, and this way no
   * sleeping-flag handshake is needed to make them prompt. */
  crpc_loop__wake(loop);
}

void crpc_loop_set_poll(crpc_loop *loop, int64_t max_ns) {
  loop->poll_max_ns = max_ns <= 0                   ? 0
                      : max_ns > CRPC_LOOP_POLL_MAX_NS ? CRPC_LOOP_POLL_MAX_NS
                                                     : max_ns;
  if (loop->poll_ns > loop->poll_max_ns) loop->poll_ns = loop->poll_max_ns;
}

int64_t crpc_loop_poll_window(const crpc_loop *loop) {
  CRPC_LOOP_ASSERT_OWNER(loop);
  return loop->poll_ns;
}

void crpc_loop_set_timer_lead(crpc_loop *loop, int64_t lead_ns) {
  loop->timer_lead_ns = lead_ns > 0 ? lead_ns : 0;
}

bool crpc_loop_in_loop_thread(const crpc_loop *loop) {
  return crpc_loop__current == loop;
}

int64_t crpc_loop_now(const crpc_loop *loop) {
  CRPC_LOOP_ASSERT_OWNER(loop);
  return loop->now;
}

size_t crpc_loop_active_count(const crpc_loop *loop) {
  CRPC_LOOP_ASSERT_OWNER(loop);
  return loop->io_count + loop->timer_count;
}

/* ---- a thread of its own ------------------------------------------------ */

static void *loop_thread_main(void *arg) {
  crpc_loop *loop = arg;
  /* The default 50 us slack would make epoll_pwait2 deadlines that late. */
  (void)prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);
  loop->thread_result = crpc_loop_run(loop);
  return NULL;
}

int crpc_loop_start_thread(crpc_loop *loop) {
  if (loop->thread_started) return -EBUSY;
  /* The standby first: the loop thread reads sb_started. */
  int rc = crpc_loop__standby_start(loop);
  if (rc < 0) return rc;
  rc = pthread_create(&loop->thread, NULL, loop_thread_main, loop);
  if (rc != 0) {
    crpc_loop__standby_join(loop);
    return -rc;
  }
  (void)pthread_setname_np(loop->thread, "crpc-loop");
  loop->thread_started = true;
  return 0;
}

int crpc_loop_stop_and_join(crpc_loop *loop) {
  /* Checked first: the loop thread must not read thread_started, which
   * belongs to the controlling thread. */
  if (crpc_loop__current == loop) return -EDEADLK;
  if (!loop->thread_started) return -ECHILD;
  crpc_loop_stop(loop);
  int rc = pthread_join(loop->thread, NULL);
  if (rc != 0) return -rc;
  loop->thread_started = false;
  /* After the loop thread: it may have been out, the standby running the
   * loop for it, until its last iteration. */
  crpc_loop__standby_join(loop);
  return loop->thread_result;
}

/* ---- I/O watchers -------------------------------------------------------- */

void crpc_loop_io_init(crpc_loop_io *io, crpc_loop *loop, int fd,
                       crpc_loop_io_fn fn, void *user_data) {
  CRPC_LOOP_ASSERT_OWNER(loop);
  io->loop_ = loop;
  io->fn_ = fn;
  io->user_data_ = user_data;
  io->fd_ = fd;
  io->events_ = 0;
}

int crpc_loop_io_set(crpc_loop_io *io, unsigned events) {
  crpc_loop *loop = io->loop_;
  CRPC_LOOP_ASSERT_OWNER(loop);
  if (events & ~(unsigned)(CRPC_LOOP_READABLE | CRPC_LOOP_WRITABLE)) {
    return -EINVAL;
  }
  if (events == io->events_) return 0;
  if (events == 0) {
    crpc_loop_io_stop(io);
    return 0;
  }
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.events = to_epoll(events);
  ev.data.ptr = io;
  int op = io->events_ == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
  if (epoll_ctl(loop->epfd, op, io->fd_, &ev) != 0) return -errno;
  if (io->events_ == 0) loop->io_count++;
  io->events_ = events;
  return 0;
}

void crpc_loop_io_stop(crpc_loop_io *io) {
  if (io->events_ == 0) return;
  crpc_loop *loop = io->loop_;
  CRPC_LOOP_ASSERT_OWNER(loop);
  struct epoll_event dummy;
  memset(&dummy, 0, sizeof dummy);
  int rc = epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd_, &dummy);
  /* Failing means the fd was closed first; if a dup of it is still open the
   * registration lives on with a pointer to io: a use-after-free later. */
  assert(rc == 0 && "crpc_loop_io_stop after close(fd)?");
  (void)rc;
  io->events_ = 0;
  loop->io_count--;
  /* epoll reports an fd at most once per wait, so one match is all. */
  for (int i = loop->batch_next; i < loop->batch_n; i++) {
    if (loop->batch[i].data.ptr == io) {
      loop->batch[i].data.ptr = NULL;
      break;
    }
  }
}

unsigned crpc_loop_io_events(const crpc_loop_io *io) { return io->events_; }

int crpc_loop_default_count(void) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) {
    return CPU_COUNT(&set);
  }
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  return cpus > 0 ? (int)cpus : 1;
}
