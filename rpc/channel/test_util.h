// Helpers for transport tests: a crpc server on loopback with handlers as
// lambdas, and a fixture that fails a test which leaks contexts. (A TCP
// proxy that cuts or freezes connections is rpc/testing/tcp_proxy.h.)
#ifndef CRPC_CHANNEL_TEST_UTIL_H
#define CRPC_CHANNEL_TEST_UTIL_H

#include <dirent.h>
#include <gtest/gtest.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "crpc/channel.h"
#include "crpc/ctx.h"
#include "crpc/server.h"

namespace crpc_test {

using Handler = std::function<crpc_code(crpc_server_call *, const crpc_ctx *)>;

inline crpc_code Trampoline(crpc_server_call *call, const crpc_ctx *ctx,
                            void *ud) {
  return (*static_cast<Handler *>(ud))(call, ctx);
}

class TestServer {
 public:
  explicit TestServer(const crpc_server_options *opts = nullptr)
      : server_(crpc_server_new(opts)) {}
  ~TestServer() { crpc_server_free(server_); }

  void Add(const char *path, crpc_method_kind kind, Handler h) {
    handlers_.push_back(std::make_unique<Handler>(std::move(h)));
    ASSERT_EQ(crpc_server_add_method(server_, path, kind, Trampoline,
                                     handlers_.back().get()),
              CRPC_OK);
  }
  void Start(const char *addr = "127.0.0.1:0") {
    ASSERT_EQ(crpc_server_listen(server_, addr, &port_), CRPC_OK);
    ASSERT_EQ(crpc_server_start(server_), CRPC_OK);
  }
  std::string target() const { return "127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  crpc_server *get() { return server_; }

 private:
  crpc_server *server_;
  int port_ = 0;
  std::vector<std::unique_ptr<Handler>> handlers_;
};

// Every test starts and ends with the same number of live contexts.
class LeakCheckTest : public ::testing::Test {
 protected:
  void SetUp() override { ctx_start_ = crpc_ctx_live_count(); }
  void TearDown() override {
    EXPECT_EQ(crpc_ctx_live_count(), ctx_start_) << "leaked contexts";
    if (crpc_ctx_live_count() != ctx_start_) crpc_ctx_dump(stderr);
  }
  size_t ctx_start_ = 0;
};

// Owns a ctx for the scope of a test step.
struct Ctx {
  crpc_ctx *c;
  explicit Ctx(crpc_ctx *ctx) : c(ctx) {}
  ~Ctx() { crpc_ctx_release(c); }
  operator crpc_ctx *() const { return c; }
};

// A handler body: one request in, the same bytes back.
inline crpc_code EchoOnce(crpc_server_call *call) {
  crpc_message m;
  crpc_code c = crpc_server_call_recv(call, &m);
  if (c != CRPC_OK || m.end) return c;
  c = crpc_server_call_send(call, m.data, m.len);
  free(m.data);
  return c;
}

// Polls pred every millisecond until it holds (true) or timeout_ns passes.
inline bool WaitFor(const std::function<bool()> &pred, int64_t timeout_ns) {
  int64_t until = crpc_now_ns() + timeout_ns;
  while (!pred()) {
    if (crpc_now_ns() > until) return false;
    usleep(1000);
  }
  return true;
}

// Open fds of this process (-1 if /proc is unreadable): a leak check.
inline int CountFds() {
  DIR *d = opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  int n = 0;
  while (readdir(d) != nullptr) n++;
  closedir(d);
  return n;
}

// Voluntary context switches (times it blocked, so was woken after) of
// each of this process's threads named `name`, by thread id.
inline std::map<int, long> ThreadSwitches(const char *name) {
  std::map<int, long> out;
  DIR *d = opendir("/proc/self/task");
  if (d == nullptr) return out;
  while (struct dirent *e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::string dir = std::string("/proc/self/task/") + e->d_name;
    char comm[32] = {0};
    FILE *f = fopen((dir + "/comm").c_str(), "r");
    if (f == nullptr) continue;
    bool match = fgets(comm, sizeof comm, f) != nullptr &&
                 std::string(comm) == std::string(name) + "\n";
    fclose(f);
    if (!match || (f = fopen((dir + "/status").c_str(), "r")) == nullptr) {
      continue;
    }
    char line[128];
    while (fgets(line, sizeof line, f) != nullptr) {
      long v;
      if (sscanf(line, "voluntary_ctxt_switches: %ld", &v) == 1) {
        out[atoi(e->d_name)] = v;
      }
    }
    fclose(f);
  }
  closedir(d);
  return out;
}

// Whether a request leaves from the caller's thread, without a wake-up of
// the channel's loop: counts the voluntary context switches of the
// channel's loop threads (the "crpc-loop" threads not there at
// NoteServerLoops()) between arming and the request's arrival, which the
// server's handler reports with AtArrival(). Thread-safe.
class ChannelLoopWakes {
 public:
  // Once the server has started, before the channel is made.
  void NoteServerLoops() {
    std::lock_guard<std::mutex> l(mu_);
    servers_ = ThreadSwitches("crpc-loop");
  }
  // From the server's handler: records the wake-ups since the last arming.
  void AtArrival() {
    std::lock_guard<std::mutex> l(mu_);
    if (before_.empty()) return; /* not armed: the warm-up call */
    long sum = 0;
    std::map<int, long> now = ThreadSwitches("crpc-loop");
    for (const auto &t : before_) sum += now[t.first] - t.second;
    woken_.push_back(sum);
  }
  // Runs `call` (one RPC, already connected once) n times, each after the
  // loop has had time to go back to its wait, and expects the loop not to
  // have been woken before the request arrived in 3 of 4 of them (with
  // every request posted to the loop: none).
  void ExpectQuiet(int n, const std::function<void()> &call) {
    for (int i = 0; i < n; i++) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      {
        std::lock_guard<std::mutex> l(mu_);
        before_ = ThreadSwitches("crpc-loop");
        for (const auto &t : servers_) before_.erase(t.first);
        ASSERT_FALSE(before_.empty()) << "no loop thread of the channel's";
      }
      call();
    }
    std::lock_guard<std::mutex> l(mu_);
    ASSERT_EQ(woken_.size(), static_cast<size_t>(n));
    int quiet = 0;
    for (long w : woken_) quiet += w == 0;
    EXPECT_GE(quiet, n * 3 / 4) << "the channel's loop was woken before the request arrived in "
                                << n - quiet << " of " << n << " calls";
  }

 private:
  std::mutex mu_;
  std::map<int, long> servers_, before_;
  std::vector<long> woken_;
};

inline std::string Str(const crpc_message &m) {
  return std::string(reinterpret_cast<const char *>(m.data), m.len);
}

inline int64_t Percentile(std::vector<int64_t> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * (v.size() - 1));
  return v[i];
}

}  // namespace crpc_test

#endif  // CRPC_CHANNEL_TEST_UTIL_H
