// Helpers shared by the end-to-end tests: RAII for crpc objects, a fixture
// that runs a crpc server (with the crpc.test.Test service) and a channel to
// it over loopback, the ctx leak check every test ends with, and small
// sync/statistics utilities. (A TCP proxy whose connections a test can cut
// is rpc/testing/tcp_proxy.h.)
#ifndef CRPC_E2E_E2E_UTIL_H
#define CRPC_E2E_E2E_UTIL_H

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "crpc/call.h"
#include "crpc/channel.h"
#include "crpc/ctx.h"
#include "crpc/metadata.h"
#include "crpc/server.h"
#include "crpc/server_async.h"
#include "crpc/status.h"
#include "rpc/testing/handlers.h"
#include "rpc/testing/test_service.h"

namespace crpc_e2e {

// Sanitizers slow everything down (TSan 5-15x); loops scale with this.
#if defined(__SANITIZE_THREAD__)
#define CRPC_E2E_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CRPC_E2E_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define CRPC_E2E_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CRPC_E2E_ASAN 1
#endif
#endif

#if defined(CRPC_E2E_TSAN)
constexpr int kSlow = 10;  // divide iteration counts by this
#elif defined(CRPC_E2E_ASAN)
constexpr int kSlow = 3;
#else
constexpr int kSlow = 1;
#endif

constexpr int64_t kMs = CRPC_MILLISECOND;
constexpr int64_t kSec = CRPC_SECOND;
constexpr const char kTest[] = "/crpc.test.Test/";

inline std::string M(const char *method) { return std::string(kTest) + method; }

// ---- RAII ----------------------------------------------------------------

struct CtxRelease {
  void operator()(crpc_ctx *c) const { crpc_ctx_release(c); }
};
using Ctx = std::unique_ptr<crpc_ctx, CtxRelease>;

inline Ctx WithCancel() { return Ctx(crpc_ctx_with_cancel(crpc_ctx_background())); }
inline Ctx WithTimeout(int64_t ns) {
  return Ctx(crpc_ctx_with_timeout(crpc_ctx_background(), ns));
}

struct MdFree {
  void operator()(crpc_metadata *m) const { crpc_metadata_free(m); }
};
using Md = std::unique_ptr<crpc_metadata, MdFree>;

inline Md NewMd(std::initializer_list<std::pair<std::string, std::string>> kv = {}) {
  Md md(crpc_metadata_new());
  for (const auto &p : kv) {
    EXPECT_EQ(CRPC_OK, crpc_metadata_add(md.get(), p.first.c_str(), p.second.data(),
                                         p.second.size()))
        << p.first;
  }
  return md;
}

inline std::string MdGet(const crpc_metadata *md, const char *key) {
  crpc_metadata_entry e;
  if (md == nullptr || !crpc_metadata_get(md, key, &e)) return "<absent>";
  return std::string(reinterpret_cast<const char *>(e.value), e.value_len);
}

struct CallFree {
  void operator()(crpc_call *c) const { crpc_call_free(c); }
};
using Call = std::unique_ptr<crpc_call, CallFree>;

// A crpc_status that clears itself.
struct Status {
  crpc_status s{};
  ~Status() { crpc_status_clear(&s); }
  crpc_status *get() { return &s; }
  std::string message() const { return s.message ? s.message : "<null>"; }
};

// Receives one message; "" with *code set otherwise. end -> *end = true.
inline crpc_code Recv(crpc_call *call, std::string *out, bool *end = nullptr) {
  crpc_message m{};
  crpc_code rc = crpc_call_recv(call, &m);
  if (end) *end = false;
  out->clear();
  if (rc != CRPC_OK) return rc;
  if (m.end) {
    if (end) *end = true;
    return rc;
  }
  out->assign(reinterpret_cast<const char *>(m.data), m.len);
  free(m.data);
  return rc;
}

struct UnaryResult {
  crpc_code code = CRPC_UNKNOWN;
  std::string response;
  std::string message;
  Md trailers;
};

inline UnaryResult Unary(crpc_channel *ch, const crpc_ctx *ctx, const std::string &method,
                         const std::string &req, const crpc_metadata *md = nullptr) {
  UnaryResult r;
  crpc_message resp{};
  crpc_status st{};
  r.code = crpc_unary_call(ch, ctx, method.c_str(), md, req.data(), req.size(), &resp, &st);
  if (r.code == CRPC_OK && resp.data != nullptr) {
    r.response.assign(reinterpret_cast<const char *>(resp.data), resp.len);
  }
  free(resp.data);
  r.message = st.message ? st.message : "<null>";
  r.trailers = NewMd();
  if (st.trailers) crpc_metadata_append(r.trailers.get(), st.trailers);
  crpc_status_clear(&st);
  return r;
}

// "k=v k=v" -> map.
inline std::map<std::string, std::string> ParseReport(const std::string &text) {
  std::map<std::string, std::string> m;
  size_t i = 0;
  while (i < text.size()) {
    size_t sp = text.find(' ', i);
    if (sp == std::string::npos) sp = text.size();
    std::string kv = text.substr(i, sp - i);
    size_t eq = kv.find('=');
    if (eq != std::string::npos) m[kv.substr(0, eq)] = kv.substr(eq + 1);
    i = sp + 1;
  }
  return m;
}

// ---- sync and statistics ----------------------------------------------------

// A one-shot event with bounded waits.
class Event {
 public:
  void Set() {
    std::lock_guard<std::mutex> l(mu_);
    set_ = true;
    cv_.notify_all();
  }
  bool WaitMs(int64_t ms) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, std::chrono::milliseconds(ms), [&] { return set_; });
  }
  bool IsSet() {
    std::lock_guard<std::mutex> l(mu_);
    return set_;
  }
  void Reset() {
    std::lock_guard<std::mutex> l(mu_);
    set_ = false;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool set_ = false;
};

// Polls pred every ms until true or timeout; returns pred's last value.
inline bool Eventually(const std::function<bool()> &pred, int64_t timeout_ms) {
  int64_t end = crpc_now_ns() + timeout_ms * kMs;
  for (;;) {
    if (pred()) return true;
    if (crpc_now_ns() > end) return pred();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

struct Percentiles {
  double p50 = 0, p99 = 0, max = 0;
  size_t n = 0;
};

inline Percentiles Summarise(std::vector<int64_t> ns) {
  Percentiles p;
  p.n = ns.size();
  if (ns.empty()) return p;
  std::sort(ns.begin(), ns.end());
  auto at = [&](double q) {
    size_t i = static_cast<size_t>(q * static_cast<double>(ns.size() - 1) + 0.5);
    return static_cast<double>(ns[i]) / 1000.0;
  };
  p.p50 = at(0.50);
  p.p99 = at(0.99);
  p.max = static_cast<double>(ns.back()) / 1000.0;
  return p;
}

// ---- the fixture --------------------------------------------------------------

// Which handlers serve crpc.test.Test (rpc/testing/handlers.h).
using crpc_testing::Handlers;

// Starts a crpc server with crpc.test.Test (plus whatever the test adds) on
// 127.0.0.1:0 and a channel to it. TearDown frees everything and checks that
// crpc_ctx_live_count() is back where it was before the test began.
class E2ETest : public ::testing::Test {
 protected:
  void SetUp() override { baseline_ = crpc_ctx_live_count(); }

  void TearDown() override {
    Stop();
    bool settled = Eventually([&] { return crpc_ctx_live_count() == baseline_; }, 3000);
    if (!settled) crpc_ctx_dump(stderr);
    EXPECT_EQ(baseline_, crpc_ctx_live_count()) << "contexts leaked (dump above)";
  }

  // Starts the server (listening on `address`) and a channel to `target`
  // (empty: the server's TCP address).
  void Start(const crpc_server_options *opts = nullptr,
             const std::function<void(crpc_server *)> &extra = {},
             const crpc_channel_options *chopts = nullptr,
             const std::string &address = "127.0.0.1:0", std::string target = "") {
    svc_ = crpc_test_service_new();
    ASSERT_NE(nullptr, svc_);
    server_ = crpc_server_new(opts);
    ASSERT_NE(nullptr, server_);
    ASSERT_EQ(CRPC_OK, handlers_ == Handlers::kAsync
                           ? crpc_test_service_register_async(svc_, server_)
                           : crpc_test_service_register(svc_, server_));
    if (extra) extra(server_);
    ASSERT_EQ(CRPC_OK, crpc_server_listen(server_, address.c_str(), &port_)) << address;
    ASSERT_EQ(CRPC_OK, crpc_server_start(server_));
    if (target.empty()) target = "127.0.0.1:" + std::to_string(port_);
    target_ = target;
    channel_ = crpc_channel_new(target.c_str(), chopts);
    ASSERT_NE(nullptr, channel_) << target;
  }

  void Stop() {
    if (channel_) crpc_channel_free(channel_);
    channel_ = nullptr;
    if (server_) {
      crpc_server_shutdown(server_, 0);
      crpc_server_free(server_);
    }
    server_ = nullptr;
    crpc_test_service_free(svc_);
    svc_ = nullptr;
  }

  std::map<std::string, std::string> Report(const std::string &tag) {
    char *text = crpc_test_service_wait_report(svc_, tag.c_str(), 5 * kSec);
    if (text == nullptr) return {{"error", "no report for " + tag}};
    auto m = ParseReport(text);
    m["text"] = text;
    free(text);
    return m;
  }

  std::string Tag(const char *what) {
    return std::string(what) + "-" + std::to_string(tag_seq_++);
  }

  size_t baseline_ = 0;
  Handlers handlers_ = Handlers::kBlocking;
  crpc_test_service *svc_ = nullptr;
  crpc_server *server_ = nullptr;
  crpc_channel *channel_ = nullptr;
  int port_ = 0;
  std::string target_;
  int tag_seq_ = 0;
};

// A fixture whose tests run once per handler style (instantiate with
// CRPC_E2E_BOTH_HANDLERS): the test service, and the test's own methods
// where it has both kinds, are served by handlers_.
template <class Base>
class BothHandlers : public Base, public ::testing::WithParamInterface<Handlers> {
 protected:
  void SetUp() override {
    Base::SetUp();
    this->handlers_ = this->GetParam();
  }
  bool Async() const { return this->handlers_ == Handlers::kAsync; }
};

#define CRPC_E2E_BOTH_HANDLERS(Fixture) CRPC_BOTH_HANDLERS(Fixture)

}  // namespace crpc_e2e

#endif  // CRPC_E2E_E2E_UTIL_H
