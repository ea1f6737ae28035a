// The health service's concurrency, with crpc's own client (the behaviour
// against a real gRPC client is services/testing:admin_test): watchers that
// come, read and cancel while other threads flip statuses; a watcher that
// does not read while thousands of changes happen (it gets the latest, and
// the server keeps no backlog); shutdown while watchers are open. Runs
// under TSan.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "crpc/admin.h"
#include "crpc/channel.h"
#include "crpc/ctx.h"
#include "grpc/health/v1/health.crpc.h"

namespace {

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

struct Watch {
  crpc_ctx *ctx = nullptr;
  crpc_call *call = nullptr;

  crpc_code Start(crpc_channel *ch, const char *service) {
    ctx = crpc_ctx_with_timeout(crpc_ctx_background(), 30 * CRPC_SECOND);
    Grpc__Health__V1__HealthCheckRequest req =
        GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    req.service = const_cast<char *>(service);
    return grpc_health_v1_health_watch_start(ch, ctx, nullptr, &req, &call);
  }
  // Next status; -1 at the end of the stream or on error (*code says).
  int Next(crpc_code *code = nullptr) {
    Grpc__Health__V1__HealthCheckResponse *msg = nullptr;
    crpc_code c = grpc_health_v1_health_watch_recv(call, &msg);
    if (code != nullptr) *code = c;
    if (c != CRPC_OK || msg == nullptr) return -1;
    int st = msg->status;
    protobuf_c_message_free_unpacked(&msg->base, nullptr);
    return st;
  }
  crpc_code Finish() {
    crpc_status status{};
    crpc_code c = crpc_call_finish(call, &status);
    crpc_status_clear(&status);
    return c;
  }
  ~Watch() {
    crpc_call_free(call);
    if (ctx != nullptr) crpc_ctx_release(ctx);
  }
};

class HealthTest : public ::testing::Test {
 protected:
  void Start(size_t send_buffer = 0, uint32_t client_window = 0) {
    baseline_ = crpc_ctx_live_count();
    crpc_server_options opts{};
    opts.loop_threads = 2;
    opts.stream_send_buffer = send_buffer;
    server_ = crpc_server_new(&opts);
    ASSERT_NE(server_, nullptr);
    crpc_code code = CRPC_INTERNAL;
    health_ = crpc_health_service_add(server_, &code);
    ASSERT_EQ(CRPC_OK, code);
    int port = 0;
    ASSERT_EQ(CRPC_OK, crpc_server_listen(server_, "127.0.0.1:0", &port));
    ASSERT_EQ(CRPC_OK, crpc_server_start(server_));
    crpc_channel_options co{};
    co.initial_stream_window_size = client_window;
    ch_ = crpc_channel_new(("127.0.0.1:" + std::to_string(port)).c_str(), &co);
    ASSERT_NE(ch_, nullptr);
  }
  void TearDown() override {
    if (server_ == nullptr) return;
    crpc_channel_free(ch_);
    crpc_server_shutdown(server_, CRPC_SECOND);
    crpc_server_free(server_);
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    while (crpc_ctx_live_count() != baseline_ &&
           std::chrono::steady_clock::now() < end) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (crpc_ctx_live_count() != baseline_) crpc_ctx_dump(stderr);
    EXPECT_EQ(baseline_, crpc_ctx_live_count());
  }

  size_t baseline_ = 0;
  crpc_server *server_ = nullptr;
  crpc_health *health_ = nullptr;
  crpc_channel *ch_ = nullptr;
};

TEST_F(HealthTest, WatchersComeAndGoWhileStatusesFlip) {
  ASSERT_NO_FATAL_FAILURE(Start());
  const char *names[] = {"", "a", "b", "c"};
  for (const char *n : names) {
    ASSERT_EQ(CRPC_OK, crpc_health_set_status(health_, n, CRPC_HEALTH_SERVING));
  }
  std::atomic<bool> stop{false};
  std::vector<std::thread> setters;
  for (int t = 0; t < 2; t++) {
    setters.emplace_back([&, t] {
      for (int i = 0; !stop.load(); i++) {
        const char *n = names[(i + t) % 4];
        crpc_health_set_status(health_, n,
                               i % 2 ? CRPC_HEALTH_SERVING : CRPC_HEALTH_NOT_SERVING);
        if (i % 7 == 0) crpc_health_clear_status(health_, "c");
        std::this_thread::sleep_for(std::chrono::microseconds(50));
      }
    });
  }
  std::atomic<int> bad{0};
  std::vector<std::thread> watchers;
  for (int t = 0; t < 4; t++) {
    watchers.emplace_back([&, t] {
      for (int i = 0; i < 40 / kSlow; i++) {
        Watch w;
        if (w.Start(ch_, names[(i + t) % 4]) != CRPC_OK) {
          bad++;
          continue;
        }
        // Read a few statuses (each a valid one), then cancel by freeing.
        for (int k = 0; k < 1 + i % 3; k++) {
          int st = w.Next();
          if (st < CRPC_HEALTH_SERVING || st > CRPC_HEALTH_SERVICE_UNKNOWN) bad++;
        }
      }
    });
  }
  for (auto &w : watchers) w.join();
  stop = true;
  for (auto &s : setters) s.join();
  EXPECT_EQ(0, bad.load());
}

TEST_F(HealthTest, SlowWatcherGetsTheLatestStatusAndNoBacklog) {
  // A 64-byte send buffer and a 1 KiB client window: about 150 statuses
  // (7 bytes each) fit between the two before the server must hold back.
  ASSERT_NO_FATAL_FAILURE(Start(/*send_buffer=*/64, /*client_window=*/1024));
  Watch w;
  ASSERT_EQ(CRPC_OK, w.Start(ch_, ""));
  ASSERT_EQ(CRPC_HEALTH_SERVING, w.Next());
  // Thousands of changes while the client reads nothing, then the name is
  // cleared (SERVICE_UNKNOWN, a status no flip produces: the end marker).
  const int flips = 20000 / kSlow;
  for (int i = 0; i < flips; i++) {
    crpc_health_set_status(health_, "",
                           i % 2 ? CRPC_HEALTH_SERVING : CRPC_HEALTH_NOT_SERVING);
  }
  ASSERT_EQ(CRPC_OK, crpc_health_clear_status(health_, ""));
  int n = 0;
  for (;;) {
    int st = w.Next();
    ASSERT_NE(-1, st) << "stream ended after " << n << " messages";
    n++;
    if (st == CRPC_HEALTH_SERVICE_UNKNOWN) break;
    ASSERT_TRUE(st == CRPC_HEALTH_SERVING || st == CRPC_HEALTH_NOT_SERVING) << st;
  }
  EXPECT_LT(n, 1000) << "the server queued a backlog of " << n << " statuses";
}

TEST_F(HealthTest, ShutdownEndsOpenWatchesWithNotServingThenUnavailable) {
  ASSERT_NO_FATAL_FAILURE(Start());
  std::vector<Watch> ws(6);
  for (size_t i = 0; i < ws.size(); i++) {
    ASSERT_EQ(CRPC_OK, ws[i].Start(ch_, ""));
    ASSERT_EQ(CRPC_HEALTH_SERVING, ws[i].Next());
  }
  auto start = std::chrono::steady_clock::now();
  crpc_server_shutdown(server_, 10 * CRPC_SECOND);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  for (auto &w : ws) {
    EXPECT_EQ(CRPC_HEALTH_NOT_SERVING, w.Next());
    crpc_code code = CRPC_OK;
    EXPECT_EQ(-1, w.Next(&code));
    EXPECT_EQ(CRPC_UNAVAILABLE, w.Finish());
  }
}

TEST_F(HealthTest, DrainTurnsEverythingNotServingAndKeepsWatchesOpen) {
  ASSERT_NO_FATAL_FAILURE(Start());
  ASSERT_EQ(CRPC_OK, crpc_health_set_status(health_, "svc", CRPC_HEALTH_SERVING));
  Watch w;
  ASSERT_EQ(CRPC_OK, w.Start(ch_, "svc"));
  ASSERT_EQ(CRPC_HEALTH_SERVING, w.Next());
  crpc_health_drain(health_);
  EXPECT_EQ(CRPC_HEALTH_NOT_SERVING, w.Next());
  EXPECT_EQ(CRPC_HEALTH_NOT_SERVING, crpc_health_get_status(health_, ""));
  EXPECT_EQ(CRPC_FAILED_PRECONDITION,
            crpc_health_set_status(health_, "svc", CRPC_HEALTH_SERVING));
  // Unary Check through crpc's client agrees.
  crpc_ctx *ctx = crpc_ctx_with_timeout(crpc_ctx_background(), 5 * CRPC_SECOND);
  Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  req.service = const_cast<char *>("svc");
  Grpc__Health__V1__HealthCheckResponse *resp = nullptr;
  crpc_status status{};
  EXPECT_EQ(CRPC_OK, grpc_health_v1_health_check(ch_, ctx, nullptr, &req, &resp, &status));
  ASSERT_NE(resp, nullptr);
  EXPECT_EQ(CRPC_HEALTH_NOT_SERVING, static_cast<int>(resp->status));
  protobuf_c_message_free_unpacked(&resp->base, nullptr);
  crpc_status_clear(&status);
  req.service = const_cast<char *>("nope");
  EXPECT_EQ(CRPC_NOT_FOUND, grpc_health_v1_health_check(ch_, ctx, nullptr, &req, &resp, &status));
  crpc_status_clear(&status);
  crpc_ctx_release(ctx);
}

}  // namespace
