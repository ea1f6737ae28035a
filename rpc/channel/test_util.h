// Helpers for transport tests: a crpc server on loopback with handlers as
// lambdas, a killable TCP proxy (to cut a connection abruptly), and a
// fixture that fails a test which leaks contexts.
#ifndef CRPC_CHANNEL_TEST_UTIL_H
#define CRPC_CHANNEL_TEST_UTIL_H

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
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

// Forwards one loopback port to another; Kill() closes every socket at
// once, which both ends see as a lost connection.
class Proxy {
 public:
  explicit Proxy(int backend_port) : backend_(backend_port) {
    lfd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(lfd_, reinterpret_cast<sockaddr *>(&a), sizeof(a));
    listen(lfd_, 16);
    socklen_t len = sizeof(a);
    getsockname(lfd_, reinterpret_cast<sockaddr *>(&a), &len);
    port_ = ntohs(a.sin_port);
    if (pipe(wake_) != 0) abort();  // the proxy cannot be stopped without it
    thread_ = std::thread([this] { Run(); });
  }
  ~Proxy() {
    Kill();
    thread_.join();
    close(lfd_);
    close(wake_[0]);
    close(wake_[1]);
  }
  void Kill() {
    // The byte is the only way to wake Run(); without it the join hangs.
    if (!killed_.exchange(true) && write(wake_[1], "x", 1) != 1) abort();
  }
  std::string target() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  void Run() {
    std::vector<int> fds;  // pairs: client, backend
    char buf[65536];
    for (;;) {
      std::vector<pollfd> p;
      p.push_back({wake_[0], POLLIN, 0});
      p.push_back({lfd_, POLLIN, 0});
      for (int fd : fds) p.push_back({fd, POLLIN, 0});
      if (poll(p.data(), p.size(), -1) < 0) continue;
      if (p[0].revents) break;
      if (p[1].revents) {
        int c = accept(lfd_, nullptr, nullptr);
        int b = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(backend_);
        connect(b, reinterpret_cast<sockaddr *>(&a), sizeof(a));
        fds.push_back(c);
        fds.push_back(b);
      }
      for (size_t i = 2; i < p.size(); i++) {
        if (!p[i].revents) continue;
        size_t k = i - 2;
        int from = fds[k], to = fds[k ^ 1];
        ssize_t n = read(from, buf, sizeof(buf));
        if (n <= 0) {
          shutdown(to, SHUT_WR);
          continue;
        }
        for (ssize_t off = 0; off < n;) {
          ssize_t w = send(to, buf + off, n - off, MSG_NOSIGNAL);
          if (w <= 0) break;
          off += w;
        }
      }
    }
    for (int fd : fds) {
      // RST rather than FIN: an abrupt loss.
      linger l{1, 0};
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
      close(fd);
    }
  }
  int backend_, lfd_, port_;
  int wake_[2];
  std::atomic<bool> killed_{false};
  std::thread thread_;
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
