// One test per applicable line of the failure catalog (DESIGN.md). Each
// shows that crpc's ctx makes the failure impossible or loudly visible.
// Line 10 (lost wakeups) lives in ctx_stress_test.cc.
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "rpc/ctx/ctx_test_util.h"

namespace {

using crpc_test::Eventually;
using crpc_test::Ms;
using crpc_test::Now;
using crpc_test::Probe;
using crpc_test::SleepNs;

class CtxCatalog : public crpc_test::CtxTest {};

// Waits below would otherwise last an hour; waking within a second proves the
// cancel woke them, without flaking when a loaded CI box deschedules a thread.
const int64_t kWokeBound = CRPC_SECOND;

bool Readable(int fd) {
  struct pollfd p = {fd, POLLIN, 0};
  return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

// The line of the registry dump that names `site`, or "".
std::string DumpLineFor(const std::string& dump, const std::string& site) {
  size_t at = dump.find(site);
  if (at == std::string::npos) return "";
  size_t begin = dump.rfind('\n', at);
  begin = begin == std::string::npos ? 0 : begin + 1;
  size_t end = dump.find('\n', at);
  return dump.substr(begin, end == std::string::npos ? end : end - begin);
}

// ---- 1. forgotten release ------------------------------------------------
TEST_F(CtxCatalog, Catalog01_ForgottenReleaseIsVisibleInRegistry) {
  const size_t base = crpc_ctx_live_count();
  const int line = __LINE__ + 1;
  crpc_ctx* forgotten = crpc_ctx_with_cancel(crpc_ctx_background());
  ASSERT_NE(nullptr, forgotten);
  EXPECT_EQ(base + 1, crpc_ctx_live_count());

  // The dump names the creation site (this file and line) of the live ctx,
  // one line per live ctx.
  const std::string site =
      std::string("ctx_catalog_test.cc:") + std::to_string(line);
  const bool sites = crpc_test::kRegistrySites;  // not under NDEBUG
  std::string dump = crpc_test::DumpToString();
  if (sites) {
    EXPECT_NE(std::string::npos, dump.find(site)) << dump;
  }
  FILE* devnull = fopen("/dev/null", "w");
  ASSERT_NE(nullptr, devnull);
  if (sites) {
    EXPECT_EQ(crpc_ctx_live_count(), crpc_ctx_dump(devnull));
  }

  // Wrappers pass their own caller's site through the *_at functions.
  crpc_ctx* wrapped =
      crpc_ctx_with_cancel_at(forgotten, "my_wrapper_caller.c", 4242);
  ASSERT_NE(nullptr, wrapped);
  EXPECT_EQ(base + 2, crpc_ctx_live_count());
  // A done-but-unreleased ctx is still listed, with its cause.
  EXPECT_TRUE(crpc_ctx_cancel(wrapped, CRPC_ABORTED, "zebra-cause"));
  dump = crpc_test::DumpToString();
  std::string wline = DumpLineFor(dump, "my_wrapper_caller.c:4242");
  if (sites) {
    EXPECT_NE("", wline) << dump;
    EXPECT_TRUE(wline.find("ABORTED") != std::string::npos ||
                wline.find("zebra-cause") != std::string::npos)
        << "dump line of a cancelled ctx does not show its cause: " << wline;
    EXPECT_EQ(crpc_ctx_live_count(), crpc_ctx_dump(devnull));
  }
  fclose(devnull);

  // Releasing the parent cancels the child, which stays listed (it is still
  // owned and not released) and stays readable, keeping its own cause.
  crpc_ctx* child = crpc_ctx_with_cancel(forgotten);
  crpc_ctx* grandchild = crpc_ctx_with_value(child, &line, nullptr, nullptr);
  ASSERT_NE(nullptr, child);
  ASSERT_NE(nullptr, grandchild);
  EXPECT_EQ(base + 4, crpc_ctx_live_count());
  crpc_ctx_release(forgotten);
  EXPECT_EQ(base + 3, crpc_ctx_live_count());
  EXPECT_TRUE(crpc_ctx_is_done(child));
  EXPECT_TRUE(crpc_ctx_is_done(grandchild));
  const crpc_cause* c = crpc_ctx_cause(grandchild);
  ASSERT_NE(nullptr, c);
  EXPECT_EQ(CRPC_CANCELLED, c->code);
  EXPECT_EQ(CRPC_ORIGIN_LOCAL, c->origin);
  EXPECT_STREQ("context released", c->message);
  EXPECT_EQ(CRPC_ABORTED, crpc_ctx_err(wrapped));  // first cause kept
  dump = crpc_test::DumpToString();
  EXPECT_EQ(std::string::npos, dump.find(site)) << dump;

  crpc_ctx_release(grandchild);
  crpc_ctx_release(wrapped);
  crpc_ctx_release(child);
  EXPECT_EQ(base, crpc_ctx_live_count());
  dump = crpc_test::DumpToString();
  EXPECT_EQ(std::string::npos, dump.find("my_wrapper_caller.c:4242")) << dump;
}

// ---- 2. waiting instead of polling ------------------------------------------
enum class WaitKind { kWait, kSleep, kWaitCond, kWaitFd, kPollCtxFd };

const char* KindName(WaitKind k) {
  switch (k) {
    case WaitKind::kWait: return "crpc_ctx_wait";
    case WaitKind::kSleep: return "crpc_ctx_sleep";
    case WaitKind::kWaitCond: return "crpc_ctx_wait_cond";
    case WaitKind::kWaitFd: return "crpc_ctx_wait_fd";
    case WaitKind::kPollCtxFd: return "poll(crpc_ctx_fd)";
  }
  return "?";
}

// Blocks in `kind` on ctx; returns the code it reported. `idle_fd` is an fd
// that never becomes ready.
crpc_code BlockIn(WaitKind kind, const crpc_ctx* ctx, int idle_fd) {
  switch (kind) {
    case WaitKind::kWait:
      return crpc_ctx_wait(ctx);
    case WaitKind::kSleep:
      return crpc_ctx_sleep(ctx, 3600 * CRPC_SECOND);
    case WaitKind::kWaitCond: {
      pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
      pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
      pthread_mutex_lock(&mu);
      crpc_code rc;
      do {  // nobody signals cond: only the ctx can end this loop
        rc = crpc_ctx_wait_cond(ctx, &cond, &mu);
      } while (rc == CRPC_OK);
      bool still_held = pthread_mutex_trylock(&mu) == EBUSY;
      pthread_mutex_unlock(&mu);
      pthread_mutex_destroy(&mu);
      pthread_cond_destroy(&cond);
      return still_held ? rc : CRPC_UNKNOWN;
    }
    case WaitKind::kWaitFd: {
      short revents = 0;
      return crpc_ctx_wait_fd(ctx, idle_fd, POLLIN, &revents);
    }
    case WaitKind::kPollCtxFd: {
      int fd = crpc_ctx_fd(ctx);
      if (fd < 0) return CRPC_UNKNOWN;
      struct pollfd p = {fd, POLLIN, 0};
      while (poll(&p, 1, -1) < 0 && errno == EINTR) {
      }
      return crpc_ctx_err(ctx);
    }
  }
  return CRPC_UNKNOWN;
}

TEST_F(CtxCatalog, Catalog02_WaitsWakeOnCancelWithoutPolling) {
  int idle[2];
  ASSERT_EQ(0, pipe(idle));

  // The ctx fd: not readable while live, readable (and staying so) once done.
  crpc_ctx* c = crpc_ctx_with_cancel(crpc_ctx_background());
  int fd = crpc_ctx_fd(c);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(fd, crpc_ctx_fd(c));
  EXPECT_FALSE(Readable(fd));
  crpc_ctx_cancel(c, CRPC_UNAVAILABLE, "gone");
  EXPECT_TRUE(Readable(fd));
  EXPECT_TRUE(Readable(fd));

  // Every wait on an already-done ctx returns at once with the cause's code.
  for (WaitKind k : {WaitKind::kWait, WaitKind::kSleep, WaitKind::kWaitCond,
                     WaitKind::kWaitFd, WaitKind::kPollCtxFd}) {
    int64_t t0 = Now();
    EXPECT_EQ(CRPC_UNAVAILABLE, BlockIn(k, c, idle[0])) << KindName(k);
    EXPECT_LT(Now() - t0, kWokeBound) << KindName(k);
  }
  // The ctx wins ties with a ready fd.
  int ready[2];
  ASSERT_EQ(0, pipe(ready));
  ASSERT_EQ(1, write(ready[1], "x", 1));
  short revents = 0;
  EXPECT_EQ(CRPC_UNAVAILABLE, crpc_ctx_wait_fd(c, ready[0], POLLIN, &revents));
  crpc_ctx_release(c);

  // A waiter blocked in another thread wakes promptly on cancel, having used
  // (almost) no CPU while blocked: no busy loop hides behind the API.
  for (WaitKind k : {WaitKind::kWait, WaitKind::kSleep, WaitKind::kWaitCond,
                     WaitKind::kWaitFd, WaitKind::kPollCtxFd}) {
    crpc_ctx* parent = crpc_ctx_with_cancel(crpc_ctx_background());
    crpc_ctx* ctx = crpc_ctx_with_value(parent, &idle, nullptr, nullptr);
    std::atomic<bool> returned{false};
    crpc_code rc = CRPC_OK;
    int64_t woke_at = 0, cpu_ns = 0;
    std::thread waiter([&] {
      struct timespec a, b;
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
      rc = BlockIn(k, ctx, idle[0]);
      woke_at = Now();
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
      cpu_ns = (b.tv_sec - a.tv_sec) * CRPC_SECOND + (b.tv_nsec - a.tv_nsec);
      returned.store(true);
    });
    const int64_t blocked_for = 150 * CRPC_MILLISECOND;
    SleepNs(blocked_for);
    EXPECT_FALSE(returned.load()) << KindName(k) << " returned while live";
    int64_t cancelled_at = Now();
    // Cancel the parent: the wake must travel down the chain too.
    crpc_ctx_cancel_cause(parent, CRPC_RESOURCE_EXHAUSTED,
                          CRPC_ORIGIN_SHUTDOWN, "kind %d", static_cast<int>(k));
    waiter.join();
    EXPECT_EQ(CRPC_RESOURCE_EXHAUSTED, rc) << KindName(k);
    int64_t latency = woke_at - cancelled_at;
    EXPECT_LT(latency, kWokeBound)
        << KindName(k) << " woke " << Ms(latency) << " ms after cancel";
    EXPECT_LT(cpu_ns, blocked_for / 4)
        << KindName(k) << " burned " << Ms(cpu_ns) << " ms CPU while blocked";
    crpc_ctx_release(ctx);
    crpc_ctx_release(parent);
  }
  close(idle[0]);
  close(idle[1]);
  close(ready[0]);
  close(ready[1]);
}

// ---- 3. done signal closed by the wrong party ---------------------------------
// (crpc_ctx_cancel_cause carries a format attribute, which type traits on its
// function pointer type would drop; test the call expression instead.)
template <typename Ctx, typename = void>
struct CanCancelCause : std::false_type {};
template <typename Ctx>
struct CanCancelCause<
    Ctx, std::void_t<decltype(crpc_ctx_cancel_cause(
             std::declval<Ctx>(), CRPC_CANCELLED, CRPC_ORIGIN_LOCAL, "x"))>>
    : std::true_type {};

TEST_F(CtxCatalog, Catalog03_ReadersCannotCancel) {
  using Cancel = decltype(&crpc_ctx_cancel);
  using Release = decltype(&crpc_ctx_release);
  static_assert(!std::is_invocable_v<Cancel, const crpc_ctx*, crpc_code,
                                     const char*>,
                "a reader (const crpc_ctx*) must not be able to cancel");
  static_assert(std::is_invocable_v<Cancel, crpc_ctx*, crpc_code, const char*>,
                "the owner can cancel");
  static_assert(!CanCancelCause<const crpc_ctx*>::value,
                "a reader must not be able to cancel with a cause");
  static_assert(CanCancelCause<crpc_ctx*>::value);
  static_assert(!std::is_invocable_v<Release, const crpc_ctx*>,
                "a reader must not be able to release");
  static_assert(std::is_invocable_v<Release, crpc_ctx*>);
  static_assert(std::is_same_v<decltype(crpc_ctx_background()), const crpc_ctx*>,
                "the background ctx is read-only");
  // Readers can still observe, wait, register callbacks and derive their own.
  static_assert(std::is_invocable_v<decltype(&crpc_ctx_on_cancel),
                                    const crpc_ctx*, crpc_on_cancel*,
                                    crpc_cancel_fn, void*>);
  static_assert(std::is_invocable_r_v<crpc_ctx*, decltype(&crpc_ctx_with_cancel_at),
                                      const crpc_ctx*, const char*, int>);

  crpc_ctx* parent = crpc_ctx_with_cancel(crpc_ctx_background());
  const crpc_ctx* view = parent;  // what a handler receives
  crpc_ctx* a = crpc_ctx_with_cancel(view);
  crpc_ctx* a1 = crpc_ctx_with_cancel(a);
  crpc_ctx* b = crpc_ctx_with_value(view, &view, nullptr, nullptr);
  Probe on_parent, on_b;
  ASSERT_TRUE(on_parent.Register(parent));
  ASSERT_TRUE(on_b.Register(b));
  int pfd = crpc_ctx_fd(parent);
  ASSERT_GE(pfd, 0);

  EXPECT_TRUE(crpc_ctx_cancel(a, CRPC_CANCELLED, "reader's own child"));
  EXPECT_TRUE(crpc_ctx_is_done(a));
  EXPECT_TRUE(crpc_ctx_is_done(a1));
  EXPECT_FALSE(crpc_ctx_is_done(parent));
  EXPECT_FALSE(crpc_ctx_is_done(b));
  EXPECT_FALSE(Readable(pfd));
  crpc_ctx_release(a1);
  crpc_ctx_release(a);
  EXPECT_FALSE(crpc_ctx_is_done(parent));
  EXPECT_FALSE(crpc_ctx_is_done(b));
  crpc_ctx_release(b);  // release of a live child: cancels only b
  EXPECT_EQ(1, on_b.calls.load());
  EXPECT_FALSE(crpc_ctx_is_done(parent));
  EXPECT_EQ(0, on_parent.calls.load());
  EXPECT_EQ(CRPC_OK, crpc_ctx_err(parent));
  EXPECT_EQ(nullptr, crpc_ctx_cause(parent));
  EXPECT_EQ(CRPC_ON_CANCEL_REMOVED, on_parent.RemoveAndSettle());
  crpc_ctx_release(parent);
}

// ---- 4. value derivation loses the cancel chain -------------------------------
TEST_F(CtxCatalog, Catalog04_ValueDerivationKeepsCancelChain) {
  static const int key1 = 0, key2 = 0;
  int v1 = 1, v2 = 2;
  crpc_ctx* p = crpc_ctx_with_cancel(crpc_ctx_background());
  crpc_ctx* val = crpc_ctx_with_value(p, &key1, &v1, nullptr);
  crpc_ctx* mid = crpc_ctx_with_cancel(val);
  crpc_ctx* val2 = crpc_ctx_with_value(mid, &key2, &v2, nullptr);
  EXPECT_TRUE(crpc_ctx_is_descendant(val2, p));
  EXPECT_TRUE(crpc_ctx_is_descendant(val, p));
  Probe probe;
  ASSERT_TRUE(probe.Register(val2));

  EXPECT_TRUE(crpc_ctx_cancel(p, CRPC_ABORTED, "upstream gave up"));
  for (const crpc_ctx* c : {static_cast<const crpc_ctx*>(val),
                            static_cast<const crpc_ctx*>(mid),
                            static_cast<const crpc_ctx*>(val2)}) {
    ASSERT_TRUE(crpc_ctx_is_done(c));
    EXPECT_EQ(CRPC_ABORTED, crpc_ctx_cause(c)->code);
    EXPECT_STREQ("upstream gave up", crpc_ctx_cause(c)->message);
  }
  EXPECT_EQ(1, probe.calls.load());
  EXPECT_EQ(CRPC_ABORTED, probe.code);
  EXPECT_EQ(&v1, crpc_ctx_value(val2, &key1));  // values survive cancel
  crpc_ctx_release(val2);
  crpc_ctx_release(mid);
  crpc_ctx_release(val);
  crpc_ctx_release(p);

  // A value ctx keeps its parent's deadline and dies by it.
  crpc_ctx* d = crpc_ctx_with_timeout(crpc_ctx_background(),
                                      30 * CRPC_MILLISECOND);
  crpc_ctx* dv = crpc_ctx_with_value(d, &key1, &v1, nullptr);
  EXPECT_EQ(crpc_ctx_deadline(d), crpc_ctx_deadline(dv));
  EXPECT_EQ(CRPC_DEADLINE_EXCEEDED, crpc_ctx_wait(dv));
  EXPECT_EQ(CRPC_ORIGIN_DEADLINE, crpc_ctx_cause(dv)->origin);
  crpc_ctx_release(dv);
  crpc_ctx_release(d);

  // The value ctx's owner can end it without touching the parent.
  crpc_ctx* q = crpc_ctx_with_cancel(crpc_ctx_background());
  crpc_ctx* qv = crpc_ctx_with_value(q, &key2, &v2, nullptr);
  EXPECT_TRUE(crpc_ctx_cancel(qv, CRPC_CANCELLED, nullptr));
  EXPECT_FALSE(crpc_ctx_is_done(q));
  crpc_ctx_release(qv);
  crpc_ctx_release(q);
}

// ---- 6. blocking work outside crpc ----------------------------------------
struct PipeAbort {
  int write_fd;
  std::atomic<int> calls{0};
  static void Fn(void* arg, const crpc_cause* cause) {
    auto* self = static_cast<PipeAbort*>(arg);
    if (cause != nullptr && cause->code == CRPC_CANCELLED) {
      close(self->write_fd);  // the blocked read() sees EOF
    }
    self->calls.fetch_add(1);
  }
};

TEST_F(CtxCatalog, Catalog06_OnCancelCallbacksAbortOutsideWork) {
  // A thread blocked in read() on a pipe (standing in for a database call)
  // is unblocked by a cancel callback that closes the write end.
  {
    int p[2];
    ASSERT_EQ(0, pipe(p));
    crpc_ctx* call = crpc_ctx_with_cancel(crpc_ctx_background());
    PipeAbort abort_read{p[1]};
    crpc_on_cancel reg;
    ASSERT_TRUE(crpc_ctx_on_cancel(call, &reg, &PipeAbort::Fn, &abort_read));
    ssize_t n = -2;
    int64_t unblocked_at = 0;
    std::thread blocked([&] {
      char buf[8];
      n = read(p[0], buf, sizeof buf);
      unblocked_at = Now();
    });
    SleepNs(30 * CRPC_MILLISECOND);
    int64_t cancelled_at = Now();
    EXPECT_TRUE(crpc_ctx_cancel(call, CRPC_CANCELLED, "client went away"));
    EXPECT_EQ(1, abort_read.calls.load()) << "callback runs before cancel returns";
    blocked.join();
    EXPECT_EQ(0, n);
    EXPECT_LT(unblocked_at - cancelled_at, kWokeBound);
    EXPECT_EQ(CRPC_ON_CANCEL_RAN, crpc_ctx_remove_on_cancel(&reg));
    crpc_ctx_release(call);
    EXPECT_EQ(1, abort_read.calls.load());
    close(p[0]);
  }

  // Removed before cancel: REMOVED, and the callback never runs.
  {
    crpc_ctx* c = crpc_ctx_with_cancel(crpc_ctx_background());
    Probe probe;
    ASSERT_TRUE(probe.Register(c));
    EXPECT_EQ(CRPC_ON_CANCEL_REMOVED, crpc_ctx_remove_on_cancel(&probe.reg));
    crpc_ctx_cancel(c, CRPC_CANCELLED, nullptr);
    crpc_ctx_release(c);
    EXPECT_EQ(0, probe.calls.load());
    // The storage may be reused for a new registration.
    crpc_ctx* c2 = crpc_ctx_with_cancel(crpc_ctx_background());
    ASSERT_TRUE(probe.Register(c2));
    crpc_ctx_release(c2);
    EXPECT_EQ(1, probe.calls.load());
    EXPECT_STREQ("context released", probe.message);
  }

  // RUNNING, observed from another thread while the callback is blocked.
  {
    crpc_ctx* c = crpc_ctx_with_cancel(crpc_ctx_background());
    std::atomic<bool> entered{false}, go{false};
    Probe probe;
    probe.extra = [&](Probe*, const crpc_cause*) {
      entered.store(true);
      // Bounded so that a remove() that wrongly blocks cannot hang the test.
      Eventually([&] { return go.load(); }, 5 * CRPC_SECOND);
    };
    ASSERT_TRUE(probe.Register(c));
    std::thread canceller([&] { crpc_ctx_cancel(c, CRPC_CANCELLED, nullptr); });
    ASSERT_TRUE(Eventually([&] { return entered.load(); }));
    int64_t t0 = Now();
    crpc_on_cancel_state st = crpc_ctx_remove_on_cancel(&probe.reg);
    int64_t took = Now() - t0;
    EXPECT_EQ(CRPC_ON_CANCEL_RUNNING, st);
    EXPECT_LT(took, CRPC_SECOND) << "remove_on_cancel blocked";
    EXPECT_FALSE(probe.finished.load());
    go.store(true);
    canceller.join();
    EXPECT_EQ(1, probe.calls.load());
    crpc_ctx_release(c);
  }

  // RUNNING when a callback removes its own registration.
  {
    crpc_ctx* c = crpc_ctx_with_cancel(crpc_ctx_background());
    Probe probe;
    int self_state = -1;
    probe.extra = [&](Probe* p, const crpc_cause*) {
      self_state = crpc_ctx_remove_on_cancel(&p->reg);
    };
    ASSERT_TRUE(probe.Register(c));
    crpc_ctx_cancel(c, CRPC_CANCELLED, nullptr);
    EXPECT_EQ(CRPC_ON_CANCEL_RUNNING, self_state);
    EXPECT_EQ(1, probe.calls.load());
    crpc_ctx_release(c);
  }

  // A callback may remove another registration on the same ctx: REMOVED if
  // that one had not run (and then it never does), RAN if it had.
  {
    crpc_ctx* c = crpc_ctx_with_cancel(crpc_ctx_background());
    Probe a, b;
    int b_state = -1;
    a.extra = [&](Probe*, const crpc_cause*) {
      b_state = crpc_ctx_remove_on_cancel(&b.reg);
    };
    ASSERT_TRUE(a.Register(c));
    ASSERT_TRUE(b.Register(c));
    crpc_ctx_cancel(c, CRPC_CANCELLED, nullptr);
    crpc_ctx_release(c);
    EXPECT_EQ(1, a.calls.load());
    EXPECT_TRUE((b_state == CRPC_ON_CANCEL_REMOVED && b.calls.load() == 0) ||
                (b_state == CRPC_ON_CANCEL_RAN && b.calls.load() == 1))
        << "state " << b_state << " calls " << b.calls.load();
  }
}

// ---- 8. nested timeouts override instead of narrowing --------------------------
TEST_F(CtxCatalog, Catalog08_NestedTimeoutsOnlyNarrow) {
  const crpc_ctx* bg = crpc_ctx_background();
  crpc_ctx* p = crpc_ctx_with_timeout(bg, 10 * CRPC_SECOND);
  const int64_t pd = crpc_ctx_deadline(p);
  ASSERT_NE(CRPC_NO_DEADLINE, pd);

  crpc_ctx* longer = crpc_ctx_with_timeout(p, 60 * CRPC_SECOND);
  crpc_ctx* longer_abs = crpc_ctx_with_deadline(p, pd + CRPC_SECOND);
  crpc_ctx* none = crpc_ctx_with_deadline(p, CRPC_NO_DEADLINE);
  EXPECT_EQ(pd, crpc_ctx_deadline(longer));
  EXPECT_EQ(pd, crpc_ctx_deadline(longer_abs));
  EXPECT_EQ(pd, crpc_ctx_deadline(none));
  EXPECT_LE(crpc_ctx_remaining(longer), crpc_ctx_remaining(p) + CRPC_MILLISECOND);

  crpc_ctx* shorter = crpc_ctx_with_deadline(p, pd - 5 * CRPC_SECOND);
  EXPECT_EQ(pd - 5 * CRPC_SECOND, crpc_ctx_deadline(shorter));
  crpc_ctx* shorter_rel = crpc_ctx_with_timeout(p, CRPC_SECOND);
  EXPECT_LT(crpc_ctx_deadline(shorter_rel), pd);
  // Below a narrowed child, a longer timeout still keeps the narrowed one.
  crpc_ctx* grand = crpc_ctx_with_timeout(shorter, 30 * CRPC_SECOND);
  EXPECT_EQ(pd - 5 * CRPC_SECOND, crpc_ctx_deadline(grand));
  // Cancel and value children inherit the deadline as is.
  crpc_ctx* plain = crpc_ctx_with_cancel(shorter);
  EXPECT_EQ(pd - 5 * CRPC_SECOND, crpc_ctx_deadline(plain));

  for (crpc_ctx* c : {plain, grand, shorter_rel, shorter, none, longer_abs,
                      longer, p}) {
    crpc_ctx_release(c);
  }

  // Behaviour, not only the number: the child with a longer timeout dies
  // at the parent's deadline, with DEADLINE_EXCEEDED.
  crpc_ctx* q = crpc_ctx_with_timeout(bg, 40 * CRPC_MILLISECOND);
  crpc_ctx* qlong = crpc_ctx_with_timeout(q, 3600 * CRPC_SECOND);
  int64_t t0 = Now();
  EXPECT_EQ(CRPC_DEADLINE_EXCEEDED, crpc_ctx_wait(qlong));
  EXPECT_LT(Now() - t0, 2 * CRPC_SECOND);
  EXPECT_EQ(CRPC_ORIGIN_DEADLINE, crpc_ctx_cause(qlong)->origin);
  crpc_ctx_release(qlong);
  crpc_ctx_release(q);
}

// ---- 11. cancel happened but nobody knows why -----------------------------------
TEST_F(CtxCatalog, Catalog11_CauseIsKept) {
  crpc_ctx* conn = crpc_ctx_with_cancel(crpc_ctx_background());
  crpc_ctx* call = crpc_ctx_with_cancel(conn);
  Probe probe;
  ASSERT_TRUE(probe.Register(call));
  EXPECT_TRUE(crpc_ctx_cancel_cause(conn, CRPC_UNAVAILABLE,
                                    CRPC_ORIGIN_CONNECTION_LOST,
                                    "conn %d lost: %s", 7, "EOF"));
  crpc_ctx* late = crpc_ctx_with_cancel(call);  // born done, same cause
  for (const crpc_ctx* c : {static_cast<const crpc_ctx*>(conn),
                            static_cast<const crpc_ctx*>(call),
                            static_cast<const crpc_ctx*>(late)}) {
    const crpc_cause* cause = crpc_ctx_cause(c);
    ASSERT_NE(nullptr, cause);
    EXPECT_EQ(CRPC_UNAVAILABLE, cause->code);
    EXPECT_EQ(CRPC_ORIGIN_CONNECTION_LOST, cause->origin);
    EXPECT_STREQ("conn 7 lost: EOF", cause->message);
  }
  EXPECT_EQ(CRPC_UNAVAILABLE, probe.code);
  EXPECT_EQ(CRPC_ORIGIN_CONNECTION_LOST, probe.origin);
  EXPECT_STREQ("conn 7 lost: EOF", probe.message);

  // Later cancels and releases do not overwrite it.
  const crpc_cause* before = crpc_ctx_cause(call);
  EXPECT_FALSE(crpc_ctx_cancel(call, CRPC_INTERNAL, "too late"));
  EXPECT_FALSE(crpc_ctx_cancel_cause(call, CRPC_ABORTED, CRPC_ORIGIN_SHUTDOWN,
                                     "also too late"));
  crpc_ctx_release(conn);
  EXPECT_EQ(before, crpc_ctx_cause(call));
  EXPECT_EQ(CRPC_UNAVAILABLE, crpc_ctx_cause(call)->code);
  EXPECT_EQ(CRPC_ORIGIN_CONNECTION_LOST, crpc_ctx_cause(late)->origin);
  EXPECT_STREQ("conn 7 lost: EOF", crpc_ctx_cause(late)->message);
  crpc_ctx_release(late);
  crpc_ctx_release(call);

  // First cause wins under races: several threads cancel the same ctx at
  // once with distinct causes; exactly one reports success and its cause is
  // what the ctx, its children and its callbacks all see.
  const int kThreads = 4;
  const int kRounds = static_cast<int>(crpc_test::Scaled(300, 100));
  crpc_test::SpinBarrier barrier(kThreads + 1);
  crpc_ctx* target = nullptr;
  std::atomic<int> winners{0};
  int winner_id[kThreads];
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < kRounds; r++) {
        barrier.Wait();
        bool won = crpc_ctx_cancel_cause(
            target, static_cast<crpc_code>(CRPC_CANCELLED + t),
            static_cast<crpc_origin>(CRPC_ORIGIN_LOCAL + t), "thread %d", t);
        winner_id[t] = won ? 1 : 0;
        if (won) winners.fetch_add(1);
        barrier.Wait();
      }
    });
  }
  int bad = 0;
  for (int r = 0; r < kRounds; r++) {
    crpc_ctx* parent = crpc_ctx_with_cancel(crpc_ctx_background());
    target = parent;
    crpc_ctx* child = crpc_ctx_with_cancel(parent);
    Probe p;
    bool registered = p.Register(parent);
    winners.store(0);
    barrier.Wait();  // go
    barrier.Wait();  // all returned
    int w = -1;
    for (int t = 0; t < kThreads; t++) {
      if (winner_id[t]) w = t;
    }
    bool ok = registered && winners.load() == 1 && w >= 0;
    if (ok) {
      char want[32];
      snprintf(want, sizeof want, "thread %d", w);
      const crpc_cause* pc = crpc_ctx_cause(parent);
      const crpc_cause* cc = crpc_ctx_cause(child);
      ok = pc->code == CRPC_CANCELLED + w &&
           pc->origin == CRPC_ORIGIN_LOCAL + w &&
           strcmp(pc->message, want) == 0 && cc->code == pc->code &&
           cc->origin == pc->origin && strcmp(cc->message, want) == 0 &&
           p.calls.load() == 1 && p.code == pc->code &&
           strcmp(p.message, want) == 0;
    }
    if (!ok && bad++ < 5) {
      ADD_FAILURE() << "round " << r << ": registered=" << registered
                    << " winners=" << winners.load() << " cause="
                    << (crpc_ctx_cause(parent) ? crpc_ctx_cause(parent)->message
                                               : "(none)")
                    << " callback calls=" << p.calls.load()
                    << " callback message=" << p.message;
    }
    crpc_ctx_release(child);
    crpc_ctx_release(parent);
  }
  for (auto& t : threads) t.join();
}

}  // namespace
