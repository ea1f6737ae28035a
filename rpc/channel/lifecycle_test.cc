// Server shutdown with a grace period, thousands of legitimate cancels on
// one connection, and a multi-threaded random-cancel torture run that must
// leave no context behind.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "crpc/calls.h"
#include "crpc/channel.h"
#include "crpc/server.h"
#include "rpc/channel/test_util.h"

namespace crpc_test {
namespace {

class LifecycleTest : public LeakCheckTest {};

crpc_code Echo(crpc_server_call *call, const crpc_ctx *) {
  crpc_message m;
  crpc_code c = crpc_server_call_recv(call, &m);
  if (c != CRPC_OK || m.end) return c;
  c = crpc_server_call_send(call, m.data, m.len);
  free(m.data);
  return c;
}

TEST_F(LifecycleTest, ShutdownGraceLetsInFlightCallsFinish) {
  TestServer server;
  std::atomic<bool> started{false};
  server.Add("/test.Svc/Slow", CRPC_UNARY,
             [&](crpc_server_call *call, const crpc_ctx *ctx) {
               started = true;
               crpc_code c = crpc_ctx_sleep(ctx, 100 * CRPC_MILLISECOND);
               if (c != CRPC_OK) return c;
               return Echo(call, ctx);
             });
  server.Start();
  crpc_channel *ch = crpc_channel_new(server.target().c_str(), nullptr);
  std::atomic<int> result{-1};
  std::thread client([&] {
    crpc_message resp;
    result = crpc_unary_call(ch, crpc_ctx_background(), "/test.Svc/Slow",
                             nullptr, "x", 1, &resp, nullptr);
    if (result == CRPC_OK) free(resp.data);
  });
  while (!started.load()) std::this_thread::yield();
  int64_t t0 = crpc_now_ns();
  crpc_server_shutdown(server.get(), 5 * CRPC_SECOND);
  int64_t took = crpc_now_ns() - t0;
  client.join();
  EXPECT_EQ(result.load(), CRPC_OK);
  EXPECT_LT(took, 2 * CRPC_SECOND);  // returned when the call was done
  // After shutdown nobody listens: a new call fails UNAVAILABLE.
  crpc_message resp;
  EXPECT_EQ(crpc_unary_call(ch, crpc_ctx_background(), "/test.Svc/Slow",
                            nullptr, "x", 1, &resp, nullptr),
            CRPC_UNAVAILABLE);
  crpc_channel_free(ch);
}

TEST_F(LifecycleTest, ShutdownPastGraceCancelsWithOriginShutdown) {
  TestServer server;
  std::atomic<bool> started{false};
  std::atomic<int> origin{-1}, code{-1};
  server.Add("/test.Svc/Hang", CRPC_UNARY,
             [&](crpc_server_call *, const crpc_ctx *ctx) {
               started = true;
               crpc_code c = crpc_ctx_wait(ctx);
               origin = crpc_ctx_cause(ctx)->origin;
               code = c;
               return c;
             });
  server.Start();
  crpc_channel *ch = crpc_channel_new(server.target().c_str(), nullptr);
  std::atomic<int> result{-1};
  std::thread client([&] {
    crpc_message resp;
    result = crpc_unary_call(ch, crpc_ctx_background(), "/test.Svc/Hang",
                             nullptr, "x", 1, &resp, nullptr);
  });
  while (!started.load()) std::this_thread::yield();
  int64_t t0 = crpc_now_ns();
  crpc_server_shutdown(server.get(), 50 * CRPC_MILLISECOND);
  int64_t took = crpc_now_ns() - t0;
  client.join();
  EXPECT_GE(took, 50 * CRPC_MILLISECOND);
  EXPECT_LT(took, CRPC_SECOND);
  EXPECT_EQ(code.load(), CRPC_UNAVAILABLE);
  EXPECT_EQ(origin.load(), CRPC_ORIGIN_SHUTDOWN);
  EXPECT_EQ(result.load(), CRPC_UNAVAILABLE);
  crpc_channel_free(ch);
}

// Calls arriving together each get a handler thread even when every
// handler blocks: the pool grows with the queue.
TEST_F(LifecycleTest, BlockingHandlersArrivingTogetherAllRun) {
  TestServer server;
  std::atomic<int> running{0};
  server.Add("/test.Svc/Hang", CRPC_BIDI_STREAMING,
             [&](crpc_server_call *, const crpc_ctx *ctx) {
               running++;
               return crpc_ctx_wait(ctx);
             });
  server.Start();
  crpc_channel *ch = crpc_channel_new(server.target().c_str(), nullptr);
  crpc_ctx *ctx = crpc_ctx_with_cancel(crpc_ctx_background());
  const int kCalls = 8;
  crpc_call *calls[kCalls];
  for (auto &c : calls) {
    ASSERT_EQ(crpc_call_start(ch, ctx, "/test.Svc/Hang", nullptr, &c), CRPC_OK);
  }
  int64_t until = crpc_now_ns() + 2 * CRPC_SECOND;
  while (running.load() < kCalls && crpc_now_ns() < until) {
    std::this_thread::yield();
  }
  EXPECT_EQ(running.load(), kCalls);
  crpc_ctx_cancel(ctx, CRPC_CANCELLED, "done");
  for (auto &c : calls) crpc_call_free(c);
  crpc_ctx_release(ctx);
  crpc_channel_free(ch);
}

// A call waiting for a stream slot (server's MAX_CONCURRENT_STREAMS) is
// cancelled before its HEADERS ever leave, and nothing is left behind.
TEST_F(LifecycleTest, CancelWhileWaitingForAStreamSlot) {
  crpc_server_options opts{};
  opts.max_concurrent_streams = 1;
  TestServer server(&opts);
  std::atomic<int> started{0};
  server.Add("/test.Svc/Hang", CRPC_UNARY,
             [&](crpc_server_call *, const crpc_ctx *ctx) {
               started++;
               return crpc_ctx_wait(ctx);
             });
  server.Add("/test.Svc/Echo", CRPC_UNARY, Echo);
  server.Start();
  crpc_channel *ch = crpc_channel_new(server.target().c_str(), nullptr);
  // Let the client see the server's SETTINGS first.
  crpc_message resp;
  ASSERT_EQ(crpc_unary_call(ch, crpc_ctx_background(), "/test.Svc/Echo",
                            nullptr, "w", 1, &resp, nullptr),
            CRPC_OK);
  free(resp.data);
  crpc_ctx *ctx1 = crpc_ctx_with_cancel(crpc_ctx_background());
  crpc_ctx *ctx2 = crpc_ctx_with_cancel(crpc_ctx_background());
  crpc_call *first, *second;
  // A unary handler runs once its request is there: send it whole.
  ASSERT_EQ(crpc_call_start(ch, ctx1, "/test.Svc/Hang", nullptr, &first),
            CRPC_OK);
  ASSERT_EQ(crpc_call_send(first, "x", 1), CRPC_OK);
  ASSERT_EQ(crpc_call_close_send(first), CRPC_OK);
  while (started.load() < 1) std::this_thread::yield();
  ASSERT_EQ(crpc_call_start(ch, ctx2, "/test.Svc/Hang", nullptr, &second),
            CRPC_OK);
  crpc_ctx_sleep(crpc_ctx_background(), 20 * CRPC_MILLISECOND);
  EXPECT_EQ(started.load(), 1);  // the second is held back
  crpc_ctx_cancel(ctx2, CRPC_CANCELLED, "not waiting");
  EXPECT_EQ(crpc_call_finish(second, nullptr), CRPC_CANCELLED);
  crpc_call_free(second);
  // It ends now, not when the first call frees the slot (found by the
  // client fuzz target with a server advertising 0 streams): only the
  // first call is left on the channel.
  auto live = [&] {
    crpc_call_info *calls = nullptr;
    size_t n = 0;
    EXPECT_EQ(crpc_channel_calls(ch, crpc_ctx_background(), &calls, &n),
              CRPC_OK);
    crpc_calls_free(calls);
    return n;
  };
  int64_t until = crpc_now_ns() + CRPC_SECOND;
  while (live() != 1 && crpc_now_ns() < until) {
    crpc_ctx_sleep(crpc_ctx_background(), CRPC_MILLISECOND);
  }
  EXPECT_EQ(live(), 1u);
  crpc_ctx_cancel(ctx1, CRPC_CANCELLED, "done");
  EXPECT_EQ(crpc_call_finish(first, nullptr), CRPC_CANCELLED);
  crpc_call_free(first);
  EXPECT_EQ(started.load(), 1);  // the cancelled one never reached it
  ASSERT_EQ(crpc_unary_call(ch, crpc_ctx_background(), "/test.Svc/Echo",
                            nullptr, "w", 1, &resp, nullptr),
            CRPC_OK);
  free(resp.data);
  crpc_ctx_release(ctx1);
  crpc_ctx_release(ctx2);
  crpc_channel_free(ch);  // hangs if a call struct was leaked
}

// Thousands of cancelled calls on one long-lived connection are normal
// use, not an attack: the rapid-reset limit must not fire.
TEST_F(LifecycleTest, ThousandsOfCancelsKeepTheConnection) {
  TestServer server;
  std::atomic<int> started{0}, peer_resets{0};
  std::mutex mu;
  std::set<std::string> peers;
  server.Add("/test.Svc/Hang", CRPC_UNARY,
             [&](crpc_server_call *call, const crpc_ctx *ctx) {
               {
                 std::lock_guard<std::mutex> l(mu);
                 peers.insert(crpc_server_call_peer(call));
               }
               started++;
               crpc_code c = crpc_ctx_wait(ctx);
               if (crpc_ctx_cause(ctx)->origin == CRPC_ORIGIN_PEER_RESET) {
                 peer_resets++;
               }
               return c;
             });
  server.Add("/test.Svc/Echo", CRPC_UNARY, Echo);
  server.Start();
  crpc_channel *ch = crpc_channel_new(server.target().c_str(), nullptr);
  const int kCalls = 5000;
  int64_t t0 = crpc_now_ns();
  for (int i = 0; i < kCalls; i++) {
    crpc_ctx *ctx = crpc_ctx_with_cancel(crpc_ctx_background());
    crpc_call *call;
    ASSERT_EQ(crpc_call_start(ch, ctx, "/test.Svc/Hang", nullptr, &call),
              CRPC_OK);
    ASSERT_EQ(crpc_call_send(call, "x", 1), CRPC_OK);
    while (started.load() <= i) std::this_thread::yield();
    crpc_ctx_cancel(ctx, CRPC_CANCELLED, "next");
    ASSERT_EQ(crpc_call_finish(call, nullptr), CRPC_CANCELLED);
    crpc_call_free(call);
    crpc_ctx_release(ctx);
  }
  double secs = (crpc_now_ns() - t0) / 1e9;
  crpc_message resp;
  ASSERT_EQ(crpc_unary_call(ch, crpc_ctx_background(), "/test.Svc/Echo",
                            nullptr, "y", 1, &resp, nullptr),
            CRPC_OK);
  free(resp.data);
  crpc_server_shutdown(server.get(), CRPC_SECOND);
  EXPECT_EQ(peer_resets.load(), kCalls);
  EXPECT_EQ(peers.size(), 1u) << "the connection was torn down";
  printf("%d cancelled calls on one connection in %.2f s (%.0f resets/s)\n",
         kCalls, secs, kCalls / secs);
  crpc_channel_free(ch);
}

// Many threads, random shapes of ending (finish, cancel at a random time,
// short deadlines, server errors): everything ends, nothing leaks.
TEST_F(LifecycleTest, RandomCancelTorture) {
  TestServer server;
  server.Add("/test.Svc/Echo", CRPC_UNARY, Echo);
  server.Add("/test.Svc/Stream", CRPC_BIDI_STREAMING,
             [](crpc_server_call *call, const crpc_ctx *ctx) {
               for (;;) {
                 crpc_message m;
                 crpc_code c = crpc_server_call_recv(call, &m);
                 if (c != CRPC_OK) return c;
                 if (m.end) return CRPC_OK;
                 int n = m.len > 0 ? m.data[0] % 8 : 1;
                 free(m.data);
                 for (int i = 0; i < n; i++) {
                   c = crpc_server_call_send(call, "0123456789", 10);
                   if (c != CRPC_OK) return c;
                 }
                 if (n == 7) {
                   return crpc_server_call_error(call, CRPC_ABORTED, "seven");
                 }
                 if (n == 6) crpc_ctx_sleep(ctx, 100 * CRPC_MICROSECOND);
               }
             });
  server.Start();
  crpc_channel *ch = crpc_channel_new(server.target().c_str(), nullptr);
  const int kThreads = 6, kCalls = 150;
  std::vector<std::thread> threads;
  std::atomic<int> ok{0}, cancelled{0}, aborted{0}, other{0};
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int i = 0; i < kCalls; i++) {
        int64_t timeout = (rng() % 4 == 0) ? (rng() % 2000) * CRPC_MICROSECOND
                                           : 10 * CRPC_SECOND;
        crpc_ctx *ctx = crpc_ctx_with_timeout(crpc_ctx_background(), timeout);
        crpc_call *call;
        crpc_code sc =
            crpc_call_start(ch, ctx, "/test.Svc/Stream", nullptr, &call);
        if (sc != CRPC_OK) {
          crpc_ctx_release(ctx);
          // Only a deadline that passed already may stop a start.
          (sc == CRPC_DEADLINE_EXCEEDED ? cancelled : other)++;
          continue;
        }
        std::thread canceller;
        if (rng() % 3 == 0) {
          int64_t after = (rng() % 500) * CRPC_MICROSECOND;
          canceller = std::thread([ctx, after] {
            crpc_ctx_sleep(crpc_ctx_background(), after);
            crpc_ctx_cancel(ctx, CRPC_CANCELLED, "random");
          });
        }
        int msgs = rng() % 5;
        crpc_code c = CRPC_OK;
        for (int k = 0; k < msgs && c == CRPC_OK; k++) {
          uint8_t b = static_cast<uint8_t>(rng());
          c = crpc_call_send(call, &b, 1);
        }
        if (c == CRPC_OK) crpc_call_close_send(call);
        for (;;) {
          crpc_message m;
          if (crpc_call_recv(call, &m) != CRPC_OK || m.end) break;
          free(m.data);
        }
        c = crpc_call_finish(call, nullptr);
        if (c == CRPC_OK) {
          ok++;
        } else if (c == CRPC_CANCELLED || c == CRPC_DEADLINE_EXCEEDED) {
          cancelled++;
        } else if (c == CRPC_ABORTED) {
          aborted++;
        } else {
          other++;
          fprintf(stderr, "unexpected status %s\n", crpc_code_name(c));
        }
        // Both orders: the call freed before or after its ctx is released.
        bool free_first = rng() % 2;
        if (free_first) crpc_call_free(call);
        if (canceller.joinable()) canceller.join();
        crpc_ctx_release(ctx);
        if (!free_first) crpc_call_free(call);
      }
    });
  }
  for (auto &t : threads) t.join();
  printf("torture: %d ok, %d cancelled/deadline, %d aborted, %d other\n",
         ok.load(), cancelled.load(), aborted.load(), other.load());
  EXPECT_EQ(ok + cancelled + aborted, kThreads * kCalls);
  EXPECT_EQ(other.load(), 0);
  crpc_message resp;
  EXPECT_EQ(crpc_unary_call(ch, crpc_ctx_background(), "/test.Svc/Echo",
                            nullptr, "z", 1, &resp, nullptr),
            CRPC_OK);
  free(resp.data);
  crpc_channel_free(ch);
  crpc_server_shutdown(server.get(), 0);
}

}  // namespace
}  // namespace crpc_test
