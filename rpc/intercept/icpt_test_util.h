// Helpers for interceptor tests (rpc/intercept, interceptors/): a server
// with the crpc.test.Test service plus custom methods and interceptors on
// 127.0.0.1:0, channels to it, RAII, and the ctx leak check every test
// ends with.
#ifndef CRPC_INTERCEPT_ICPT_TEST_UTIL_H
#define CRPC_INTERCEPT_ICPT_TEST_UTIL_H

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "crpc/channel.h"
#include "crpc/ctx.h"
#include "crpc/interceptor.h"
#include "crpc/metadata.h"
#include "crpc/server.h"
#include "rpc/testing/test_service.h"

namespace icpt_test {

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr int kSlow = 5;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
constexpr int kSlow = 5;
#else
constexpr int kSlow = 1;
#endif
#else
constexpr int kSlow = 1;
#endif

constexpr int64_t kMs = CRPC_MILLISECOND;
constexpr int64_t kSec = CRPC_SECOND;

inline std::string M(const char *method) {
  return std::string("/crpc.test.Test/") + method;
}

struct CtxRelease {
  void operator()(crpc_ctx *c) const { crpc_ctx_release(c); }
};
using Ctx = std::unique_ptr<crpc_ctx, CtxRelease>;
inline Ctx WithCancel(const crpc_ctx *p = crpc_ctx_background()) {
  return Ctx(crpc_ctx_with_cancel(p));
}
inline Ctx WithTimeout(int64_t ns) {
  return Ctx(crpc_ctx_with_timeout(crpc_ctx_background(), ns));
}

struct MdFree {
  void operator()(crpc_metadata *m) const { crpc_metadata_free(m); }
};
using Md = std::unique_ptr<crpc_metadata, MdFree>;
inline Md NewMd(std::initializer_list<std::pair<std::string, std::string>> kv = {}) {
  Md md(crpc_metadata_new());
  for (const auto &p : kv) crpc_metadata_add_str(md.get(), p.first.c_str(), p.second.c_str());
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

struct UnaryResult {
  crpc_code code = CRPC_UNKNOWN;
  std::string response, message;
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

inline crpc_code Recv(crpc_call *call, std::string *out, bool *end = nullptr) {
  crpc_message m{};
  crpc_code rc = crpc_call_recv(call, &m);
  if (end) *end = m.end;
  out->clear();
  if (rc == CRPC_OK && !m.end) out->assign(reinterpret_cast<const char *>(m.data), m.len);
  free(m.data);
  return rc;
}

inline bool Eventually(const std::function<bool()> &pred, int64_t timeout_ms) {
  int64_t end = crpc_now_ns() + timeout_ms * kMs;
  for (;;) {
    if (pred()) return true;
    if (crpc_now_ns() > end) return pred();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

// A server on 127.0.0.1:0 with the test service, extra methods and
// interceptors added by `setup` before start.
class Server {
 public:
  explicit Server(const std::function<void(crpc_server *)> &setup = {},
                  const crpc_server_options *opts = nullptr) {
    svc_ = crpc_test_service_new();
    server_ = crpc_server_new(opts);
    EXPECT_EQ(CRPC_OK, crpc_test_service_register(svc_, server_));
    if (setup) setup(server_);
    EXPECT_EQ(CRPC_OK, crpc_server_listen(server_, "127.0.0.1:0", &port_));
    EXPECT_EQ(CRPC_OK, crpc_server_start(server_));
  }
  ~Server() {
    crpc_server_shutdown(server_, 0);
    crpc_server_free(server_);
    crpc_test_service_free(svc_);
  }
  std::string target() const { return "127.0.0.1:" + std::to_string(port_); }
  crpc_server *get() { return server_; }
  crpc_test_service *svc() { return svc_; }

 private:
  crpc_test_service *svc_ = nullptr;
  crpc_server *server_ = nullptr;
  int port_ = 0;
};

struct ChannelFree {
  void operator()(crpc_channel *c) const { crpc_channel_free(c); }
};
using Channel = std::unique_ptr<crpc_channel, ChannelFree>;
inline Channel NewChannel(const std::string &target,
                          std::initializer_list<const crpc_client_interceptor *> icpts = {}) {
  Channel ch(crpc_channel_new(target.c_str(), nullptr));
  for (const crpc_client_interceptor *i : icpts) {
    EXPECT_EQ(CRPC_OK, crpc_channel_add_interceptor(ch.get(), i));
  }
  return ch;
}

// Server-side deadline of 30 ms for calls carrying "x-short: 1" (a client
// deadline would race its own RST_STREAM against the server's timer).
inline crpc_server_interceptor ShortDeadlineOnRequest() {
  crpc_server_interceptor i{};
  i.name = "short-deadline";
  i.call = [](crpc_server_call *call, const crpc_ctx *ctx, const crpc_server_call_info *,
              crpc_server_next *next, void *) {
    crpc_metadata_entry e;
    if (!crpc_metadata_get(crpc_server_call_request_metadata(call), "x-short", &e)) {
      return crpc_server_next_call(next, ctx);
    }
    crpc_ctx *d = crpc_ctx_with_timeout(ctx, 30 * CRPC_MILLISECOND);
    crpc_code c = crpc_server_next_call(next, d);
    crpc_ctx_release(d);
    return c;
  };
  return i;
}

// Every test checks that crpc_ctx_live_count() returns to its start value.
class LeakCheckTest : public ::testing::Test {
 protected:
  void SetUp() override { baseline_ = crpc_ctx_live_count(); }
  void TearDown() override {
    bool settled = Eventually([&] { return crpc_ctx_live_count() == baseline_; }, 3000);
    if (!settled) crpc_ctx_dump(stderr);
    EXPECT_EQ(baseline_, crpc_ctx_live_count()) << "contexts leaked (dump above)";
  }
  size_t baseline_ = 0;
};

}  // namespace icpt_test

#endif  // CRPC_INTERCEPT_ICPT_TEST_UTIL_H
