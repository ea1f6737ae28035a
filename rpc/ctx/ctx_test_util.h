// Shared helpers for the ctx tests: the leak-checking fixture, time helpers,
// a callback probe, a start gate and a watchdog. Tests are written against
// crpc/ctx.h only; nothing here looks inside the implementation.
#ifndef CRPC_CTX_TEST_UTIL_H
#define CRPC_CTX_TEST_UTIL_H

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "crpc/ctx.h"

// ---- sanitizer detection -------------------------------------------------
#if defined(__SANITIZE_THREAD__)
#define CRPC_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CRPC_TEST_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define CRPC_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CRPC_TEST_ASAN 1
#endif
#endif

namespace crpc_test {

#if defined(CRPC_TEST_TSAN)
constexpr bool kTsan = true;
#else
constexpr bool kTsan = false;
#endif
#if defined(CRPC_TEST_ASAN)
constexpr bool kAsan = true;
#else
constexpr bool kAsan = false;
#endif

// The registry records creation sites (and crpc_ctx_dump lists them) only
// in builds without NDEBUG; the live count is always kept.
#ifdef NDEBUG
constexpr bool kRegistrySites = false;
#else
constexpr bool kRegistrySites = true;
#endif

// Iteration count for the normal build, under TSan, and under ASan.
inline long Scaled(long normal, long tsan, long asan = -1) {
  if (kTsan) return tsan;
  if (kAsan) return asan < 0 ? normal : asan;
  return normal;
}

// ---- time ----------------------------------------------------------------
inline int64_t Now() { return crpc_now_ns(); }

// Plain nanosleep, no ctx involved (restarts on EINTR).
inline void SleepNs(int64_t ns) {
  if (ns <= 0) return;
  struct timespec ts = {static_cast<time_t>(ns / CRPC_SECOND),
                        static_cast<long>(ns % CRPC_SECOND)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

// Sleeps until CLOCK_MONOTONIC time `t` (absolute, ns).
inline void SleepUntil(int64_t t) {
  struct timespec ts = {static_cast<time_t>(t / CRPC_SECOND),
                        static_cast<long>(t % CRPC_SECOND)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) ==
         EINTR) {
  }
}

// Test-side polling for "eventually" checks (the library is what must not
// poll; a test may). Returns pred()'s final value.
inline bool Eventually(const std::function<bool()>& pred,
                       int64_t limit_ns = 2 * CRPC_SECOND) {
  int64_t end = Now() + limit_ns;
  while (!pred()) {
    if (Now() > end) return pred();
    SleepNs(200 * CRPC_MICROSECOND);
  }
  return true;
}

inline double Ms(int64_t ns) { return static_cast<double>(ns) / 1e6; }

// ---- registry ------------------------------------------------------------
inline std::string DumpToString() {
  char* buf = nullptr;
  size_t len = 0;
  FILE* f = open_memstream(&buf, &len);
  if (f == nullptr) return "<open_memstream failed>";
  crpc_ctx_dump(f);
  fclose(f);
  std::string s(buf, len);
  free(buf);
  return s;
}

// Every test starts and ends with the same number of live contexts: a
// derived ctx that a test forgets to release fails that test (failure
// catalog line 1, DESIGN.md).
class CtxTest : public ::testing::Test {
 protected:
  void SetUp() override { live_at_start_ = crpc_ctx_live_count(); }
  void TearDown() override {
    size_t now = crpc_ctx_live_count();
    EXPECT_EQ(live_at_start_, now)
        << "contexts leaked by this test; registry dump:\n"
        << DumpToString();
  }
  size_t live_at_start_ = 0;
};

// ---- cancel callback probe -------------------------------------------------
// Records every invocation of a cancel callback. `finished` is the last thing
// the callback writes, so after observing it the probe may be inspected.
struct Probe {
  crpc_on_cancel reg;
  std::atomic<int> calls{0};
  std::atomic<bool> finished{false};
  crpc_code code = CRPC_OK;
  crpc_origin origin = CRPC_ORIGIN_NONE;
  char message[CRPC_CAUSE_MESSAGE_MAX] = {0};
  pthread_t thread{};
  int64_t at_ns = 0;
  std::function<void(Probe*, const crpc_cause*)> extra;  // runs inside fn

  Probe() { memset(&reg, 0, sizeof reg); }

  static void Fn(void* arg, const crpc_cause* cause) {
    Probe* p = static_cast<Probe*>(arg);
    p->at_ns = Now();
    p->thread = pthread_self();
    if (cause != nullptr) {
      p->code = cause->code;
      p->origin = cause->origin;
      snprintf(p->message, sizeof p->message, "%s", cause->message);
    }
    if (p->extra) p->extra(p, cause);
    p->calls.fetch_add(1);
    p->finished.store(true, std::memory_order_release);
  }

  bool Register(const crpc_ctx* ctx) {
    return crpc_ctx_on_cancel(ctx, &reg, &Probe::Fn, this);
  }

  // Removes the registration; if the callback is running elsewhere, waits
  // (bounded) until it has finished so the probe may go out of scope.
  crpc_on_cancel_state RemoveAndSettle() {
    crpc_on_cancel_state st = crpc_ctx_remove_on_cancel(&reg);
    if (st == CRPC_ON_CANCEL_RUNNING) {
      bool ok = Eventually([this] { return finished.load(); },
                           10 * CRPC_SECOND);
      if (!ok) {
        fprintf(stderr, "Probe: callback reported RUNNING never finished\n");
        abort();
      }
    }
    return st;
  }
};

// ---- thread helpers --------------------------------------------------------
// A reusable spin barrier for `n` threads (spinning makes races tight).
class SpinBarrier {
 public:
  explicit SpinBarrier(int n) : n_(n) {}
  void Wait() {
    int gen = gen_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1) + 1 == n_) {
      arrived_.store(0);
      gen_.fetch_add(1, std::memory_order_release);
      return;
    }
    // Pure spinning for a while keeps the threads' exits close together;
    // yield after that so an oversubscribed machine still makes progress.
    int64_t spin_until = 0;
    for (unsigned n = 1; gen_.load(std::memory_order_acquire) == gen; n++) {
      if (n % 256 != 0) continue;
      if (spin_until == 0) spin_until = Now() + 20 * CRPC_MICROSECOND;
      if (Now() > spin_until) sched_yield();
    }
  }

 private:
  const int n_;
  std::atomic<int> arrived_{0};
  std::atomic<int> gen_{0};
};

// Aborts the process with a message if Kick() is not called for `stall_ns`:
// a lost wakeup or a deadlock fails loudly instead of hanging the suite.
class Watchdog {
 public:
  Watchdog(std::string what, int64_t stall_ns,
           std::function<std::string()> describe = nullptr)
      : what_(std::move(what)),
        stall_ns_(stall_ns),
        describe_(std::move(describe)),
        last_(Now()),
        thread_([this] { Run(); }) {}
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void Kick() { last_.store(Now(), std::memory_order_relaxed); }

 private:
  void Run() {
    std::unique_lock<std::mutex> lk(mu_);
    while (!stop_) {
      cv_.wait_for(lk, std::chrono::milliseconds(100));
      if (stop_) break;
      int64_t idle = Now() - last_.load(std::memory_order_relaxed);
      if (idle > stall_ns_) {
        fprintf(stderr, "\nWATCHDOG: %s: no progress for %.1f s. %s\n",
                what_.c_str(), static_cast<double>(idle) / 1e9,
                describe_ ? describe_().c_str() : "");
        fflush(stderr);
        abort();
      }
    }
  }
  std::string what_;
  int64_t stall_ns_;
  std::function<std::string()> describe_;
  std::atomic<int64_t> last_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

// Rounds of a lockstep race test: at most `max_rounds`, and no new round
// once `budget_ns` has passed (after `min_rounds`), so a busy machine makes
// the test shorter rather than slower. The deciding thread calls Decide(r)
// before round r's start barrier; every thread ends after round r when
// Last(r) is true (read after round r's end barrier).
class RoundBudget {
 public:
  RoundBudget(long max_rounds, long min_rounds, int64_t budget_ns)
      : min_rounds_(min_rounds),
        end_(Now() + budget_ns),
        last_(max_rounds - 1) {}
  void Decide(long r) {
    if (r + 1 >= min_rounds_ && Now() > end_ && r < last_.load()) {
      last_.store(r);
    }
  }
  bool Last(long r) const { return r >= last_.load(); }

 private:
  long min_rounds_;
  int64_t end_;
  std::atomic<long> last_;
};

// Collects failures seen on worker threads so the test thread asserts them.
class Failures {
 public:
  void Add(const std::string& msg) {
    std::lock_guard<std::mutex> lk(mu_);
    if (count_++ < 10) text_ += msg + "\n";
  }
  int count() {
    std::lock_guard<std::mutex> lk(mu_);
    return count_;
  }
  std::string text() {
    std::lock_guard<std::mutex> lk(mu_);
    return text_;
  }

 private:
  std::mutex mu_;
  int count_ = 0;
  std::string text_;
};

}  // namespace crpc_test

#endif  // CRPC_CTX_TEST_UTIL_H
