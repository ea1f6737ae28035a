// Helpers shared by the loop tests.
#ifndef CRPC_LOOP_TEST_UTIL_H
#define CRPC_LOOP_TEST_UTIL_H

#include <fcntl.h>
#include <gtest/gtest.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <functional>
#include <memory>

#include "rpc/loop/loop.h"

namespace crpc_loop_test {

// TSan slows everything ~10x; stress loops scale down with this.
#if defined(__SANITIZE_THREAD__)
constexpr int kScale = 10;
#else
constexpr int kScale = 1;
#endif

constexpr int64_t kMs = 1000000;

inline int64_t NowNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

struct LoopFree {
  void operator()(crpc_loop *loop) const { crpc_loop_free(loop); }
};
using LoopPtr = std::unique_ptr<crpc_loop, LoopFree>;

inline LoopPtr NewLoop(unsigned flags = 0) {
  crpc_loop *loop = nullptr;
  EXPECT_EQ(0, crpc_loop_new(&loop, flags));
  return LoopPtr(loop);
}

// Runs iterations until pred() holds; false (instead of a hung test) if it
// does not within timeout_ns.
inline bool RunUntil(crpc_loop *loop, const std::function<bool()> &pred,
                     int64_t timeout_ns = 5000 * kMs) {
  int64_t end = NowNs() + timeout_ns;
  while (!pred()) {
    int64_t left = end - NowNs();
    if (left <= 0) return false;
    EXPECT_LE(0, crpc_loop_run_once(loop, left));
  }
  return true;
}

// Watchdog for conditions another thread makes true.
inline bool WaitUntil(const std::function<bool()> &pred,
                      int64_t timeout_ns = 10000 * kMs) {
  int64_t end = NowNs() + timeout_ns;
  while (!pred()) {
    if (NowNs() > end) return false;
    usleep(500);
  }
  return true;
}

struct Pipe {
  int r = -1;
  int w = -1;
  Pipe() {
    int fds[2];
    EXPECT_EQ(0, pipe2(fds, O_NONBLOCK | O_CLOEXEC));
    r = fds[0];
    w = fds[1];
  }
  ~Pipe() {
    if (r >= 0) close(r);
    if (w >= 0) close(w);
  }
  void Fill() { ASSERT_EQ(1, write(w, "x", 1)); }
  Pipe(const Pipe &) = delete;
  Pipe &operator=(const Pipe &) = delete;
};

}  // namespace crpc_loop_test

#endif  // CRPC_LOOP_TEST_UTIL_H
