// HTTP/2 keepalive: a blackholed peer is detected by PINGs on both sides
// (client calls end UNAVAILABLE, server ctxs are cancelled with origin
// connection lost), a healthy idle connection stays up, a client pinging
// too often gets GOAWAY(ENHANCE_YOUR_CALM, "too_many_pings"), and nothing
// pings by default. Small intervals (50-300 ms) keep each test near 1 s.
#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "crpc/channel.h"
#include "crpc/server.h"
#include "rpc/channel/test_util.h"
#include "rpc/server/raw_client.h"
#include "rpc/testing/tcp_proxy.h"

namespace crpc_test {
namespace {

constexpr int64_t kMs = CRPC_MILLISECOND;
// Scheduling slack for loaded CI boxes and sanitizers.
constexpr int64_t kSlack = 1500 * kMs;

class KeepaliveTest : public LeakCheckTest {};

// What a blocking handler saw when its ctx ended.
struct Seen {
  std::mutex mu;
  std::atomic<bool> started{false}, done{false};
  crpc_code code = CRPC_OK;
  crpc_origin origin = CRPC_ORIGIN_NONE;
  std::string message;
};

// Adds "/ka.S/Block" (waits for its ctx) and "/ka.S/Echo".
void AddMethods(TestServer *server, Seen *seen) {
  server->Add("/ka.S/Block", CRPC_UNARY,
              [seen](crpc_server_call *, const crpc_ctx *ctx) {
                seen->started = true;
                crpc_code c = crpc_ctx_wait(ctx);
                {
                  std::lock_guard<std::mutex> l(seen->mu);
                  const crpc_cause *cause = crpc_ctx_cause(ctx);
                  seen->code = c;
                  seen->origin = cause->origin;
                  seen->message = cause->message;
                }
                seen->done = true;
                return c;
              });
  server->Add("/ka.S/Echo", CRPC_UNARY,
              [](crpc_server_call *call, const crpc_ctx *) {
                crpc_message m;
                crpc_code c = crpc_server_call_recv(call, &m);
                if (c != CRPC_OK || m.end) return c;
                c = crpc_server_call_send(call, m.data, m.len);
                free(m.data);
                return c;
              });
}

struct Result {
  crpc_code code = CRPC_UNKNOWN;
  std::string message;
};

Result Unary(crpc_channel *ch, const char *method, int64_t timeout_ns) {
  Ctx ctx(crpc_ctx_with_timeout(crpc_ctx_background(), timeout_ns));
  crpc_message resp{};
  crpc_status st{};
  Result r;
  r.code = crpc_unary_call(ch, ctx, method, nullptr, "hi", 2, &resp, &st);
  if (r.code == CRPC_OK) free(resp.data);
  r.message = st.message ? st.message : "";
  crpc_status_clear(&st);
  return r;
}

// A peer that goes silent (blackholed both ways, nothing closed): the
// client's PINGs go unanswered, so its call ends UNAVAILABLE within
// keepalive_time + timeout; the server's own keepalive cancels the handler
// ctx with origin connection lost. The next call connects afresh.
TEST_F(KeepaliveTest, BlackholedPeerIsDetectedOnBothSides) {
  crpc_server_options so{};
  so.keepalive_time_ns = 100 * kMs;
  so.keepalive_timeout_ns = 200 * kMs;
  Seen seen;  // outlives the server (whose free joins handlers)
  TestServer server(&so);
  AddMethods(&server, &seen);
  server.Start();
  crpc_testing::TcpProxy proxy(server.port());
  crpc_channel_options co{};
  co.keepalive_time_ns = 100 * kMs;
  co.keepalive_timeout_ns = 200 * kMs;
  crpc_channel *ch = crpc_channel_new(proxy.target().c_str(), &co);

  Result r;
  int64_t frozen_at = 0, ended_at = 0;
  std::thread client([&] {
    r = Unary(ch, "/ka.S/Block", 30 * CRPC_SECOND);
    ended_at = crpc_now_ns();
  });
  ASSERT_TRUE(WaitFor([&] { return seen.started.load(); }, 5 * CRPC_SECOND));
  proxy.Freeze();
  frozen_at = crpc_now_ns();
  client.join();
  EXPECT_EQ(r.code, CRPC_UNAVAILABLE);
  EXPECT_NE(r.message.find("keepalive timed out"), std::string::npos)
      << r.message;
  EXPECT_LT(ended_at - frozen_at, 300 * kMs + kSlack);

  ASSERT_TRUE(WaitFor([&] { return seen.done.load(); }, 300 * kMs + kSlack));
  {
    std::lock_guard<std::mutex> l(seen.mu);
    EXPECT_EQ(seen.code, CRPC_UNAVAILABLE);
    EXPECT_EQ(seen.origin, CRPC_ORIGIN_CONNECTION_LOST);
    EXPECT_NE(seen.message.find("keepalive timed out"), std::string::npos)
        << seen.message;
  }

  // The dead connection is dropped; the next call reconnects (the proxy
  // forwards new connections).
  Result again = Unary(ch, "/ka.S/Echo", 5 * CRPC_SECOND);
  EXPECT_EQ(again.code, CRPC_OK) << again.message;
  EXPECT_EQ(proxy.accepted(), 2);
  crpc_channel_free(ch);
}

// Only the server pings: a frozen client is still found dead by the server.
TEST_F(KeepaliveTest, ServerAloneDetectsADeadClient) {
  crpc_server_options so{};
  so.keepalive_time_ns = 100 * kMs;
  so.keepalive_timeout_ns = 150 * kMs;
  Seen seen;  // outlives the server (whose free joins handlers)
  TestServer server(&so);
  AddMethods(&server, &seen);
  server.Start();
  auto proxy = std::make_unique<crpc_testing::TcpProxy>(server.port());
  crpc_channel *ch = crpc_channel_new(proxy->target().c_str(), nullptr);
  Result r;
  std::thread client([&] { r = Unary(ch, "/ka.S/Block", 30 * CRPC_SECOND); });
  ASSERT_TRUE(WaitFor([&] { return seen.started.load(); }, 5 * CRPC_SECOND));
  proxy->Freeze();
  int64_t frozen_at = crpc_now_ns();
  ASSERT_TRUE(WaitFor([&] { return seen.done.load(); }, 250 * kMs + kSlack));
  EXPECT_LT(crpc_now_ns() - frozen_at, 250 * kMs + kSlack);
  {
    std::lock_guard<std::mutex> l(seen.mu);
    EXPECT_EQ(seen.origin, CRPC_ORIGIN_CONNECTION_LOST);
    EXPECT_NE(seen.message.find("keepalive"), std::string::npos)
        << seen.message;
  }
  // The client has no keepalive (it sent no PING): it learns only when
  // the proxy goes away and closes its sockets.
  EXPECT_EQ(proxy->pings_c2s(), 0);
  proxy.reset();
  client.join();
  EXPECT_EQ(r.code, CRPC_UNAVAILABLE);
  crpc_channel_free(ch);
}

// A healthy idle connection with keepalive on both sides: PINGs go both
// ways and are answered, the connection stays (one accept), calls work.
TEST_F(KeepaliveTest, HealthyIdleConnectionStaysUp) {
  crpc_server_options so{};
  so.keepalive_time_ns = 50 * kMs;
  so.keepalive_timeout_ns = 300 * kMs;
  so.min_ping_interval_ns = 10 * kMs;
  Seen seen;  // outlives the server (whose free joins handlers)
  TestServer server(&so);
  AddMethods(&server, &seen);
  server.Start();
  crpc_testing::TcpProxy proxy(server.port());
  crpc_channel_options co{};
  co.keepalive_time_ns = 50 * kMs;
  co.keepalive_timeout_ns = 300 * kMs;
  co.keepalive_without_calls = 1;
  crpc_channel *ch = crpc_channel_new(proxy.target().c_str(), &co);
  for (int i = 0; i < 4; i++) {
    Result r = Unary(ch, "/ka.S/Echo", 5 * CRPC_SECOND);
    EXPECT_EQ(r.code, CRPC_OK) << r.message;
    usleep(200 * 1000);
  }
  EXPECT_EQ(proxy.accepted(), 1);
  EXPECT_GE(proxy.pings_c2s() + proxy.pings_s2c(), 4);
  EXPECT_GE(proxy.acks_s2c() + proxy.acks_c2s(), 4);
  crpc_channel_free(ch);
}

// By default (keepalive_without_calls 0) the client pings only while a
// call is open; a long call keeps its connection alive.
TEST_F(KeepaliveTest, ClientPingsOnlyWhileCallsAreOpen) {
  crpc_server_options so{};
  so.min_ping_interval_ns = 10 * kMs;  // the client pings every 50 ms
  Seen seen;  // outlives the server (whose free joins handlers)
  TestServer server(&so);
  AddMethods(&server, &seen);
  server.Start();
  crpc_testing::TcpProxy proxy(server.port());
  crpc_channel_options co{};
  co.keepalive_time_ns = 50 * kMs;
  co.keepalive_timeout_ns = 300 * kMs;
  crpc_channel *ch = crpc_channel_new(proxy.target().c_str(), &co);
  EXPECT_EQ(Unary(ch, "/ka.S/Echo", 5 * CRPC_SECOND).code, CRPC_OK);
  usleep(100 * 1000);  // a PING sent during a slow first call lands
  int idle_before = proxy.pings_c2s();
  usleep(300 * 1000);
  EXPECT_EQ(proxy.pings_c2s(), idle_before);  // idle: no pings
  // A call blocked 400 ms (ends DEADLINE_EXCEEDED): pings answered meanwhile.
  Result r = Unary(ch, "/ka.S/Block", 400 * kMs);
  EXPECT_EQ(r.code, CRPC_DEADLINE_EXCEEDED) << r.message;
  EXPECT_GE(proxy.pings_c2s(), 2);
  EXPECT_EQ(proxy.accepted(), 1);
  crpc_channel_free(ch);
}

// A client pinging far more often than the server's min_ping_interval
// (default 5 min) gets GOAWAY(ENHANCE_YOUR_CALM, "too_many_pings"); the
// connection closes at once: the client's call ends UNAVAILABLE naming it,
// the server's handler ctx ends with origin connection lost.
TEST_F(KeepaliveTest, TooManyPingsGetGoawayEnhanceYourCalm) {
  Seen seen;  // outlives the server (whose free joins handlers)
  TestServer server;
  AddMethods(&server, &seen);
  server.Start();
  crpc_channel_options co{};
  co.keepalive_time_ns = 30 * kMs;
  co.keepalive_timeout_ns = 1000 * kMs;
  crpc_channel *ch = crpc_channel_new(server.target().c_str(), &co);
  int64_t t0 = crpc_now_ns();
  Result r = Unary(ch, "/ka.S/Block", 10 * CRPC_SECOND);
  EXPECT_EQ(r.code, CRPC_UNAVAILABLE);
  EXPECT_NE(r.message.find("ENHANCE_YOUR_CALM"), std::string::npos)
      << r.message;
  EXPECT_NE(r.message.find("too_many_pings"), std::string::npos) << r.message;
  EXPECT_LT(crpc_now_ns() - t0, 120 * kMs + kSlack) << r.message;
  ASSERT_TRUE(WaitFor([&] { return seen.done.load(); }, kSlack));
  {
    std::lock_guard<std::mutex> l(seen.mu);
    EXPECT_EQ(seen.origin, CRPC_ORIGIN_CONNECTION_LOST);
    EXPECT_NE(seen.message.find("too many pings"), std::string::npos)
        << seen.message;
  }
  // The next call reconnects and works.
  EXPECT_EQ(Unary(ch, "/ka.S/Echo", 5 * CRPC_SECOND).code, CRPC_OK);
  crpc_channel_free(ch);
}

// The wire view with a raw client: the third strike brings
// GOAWAY(ENHANCE_YOUR_CALM) and the server closes the socket; with
// enforcement off (min_ping_interval < 0) any rate is accepted.
TEST_F(KeepaliveTest, RawPingFloodIsCutOffUnlessEnforcementIsOff) {
  for (bool enforce : {true, false}) {
    crpc_server_options so{};
    so.min_ping_interval_ns = enforce ? 0 : -1;
    Seen seen;  // outlives the server (whose free joins handlers)
    TestServer server(&so);
    AddMethods(&server, &seen);
    server.Start();
    RawClient raw(server.port());
    auto ping = [&] {
      nghttp2_submit_ping(raw.session(), NGHTTP2_FLAG_NONE, nullptr);
      raw.PumpUntil([&] { return raw.goaway() || raw.eof(); }, 20 * kMs);
    };
    for (int i = 0; i < 3; i++) ping();
    // The first PING is free and two strikes are tolerated.
    EXPECT_FALSE(raw.goaway());
    for (int i = 0; i < 7 && !raw.goaway(); i++) ping();
    if (enforce) {
      EXPECT_TRUE(raw.PumpUntil([&] { return raw.goaway(); }, CRPC_SECOND));
      EXPECT_EQ(raw.goaway_code(), (uint32_t)NGHTTP2_ENHANCE_YOUR_CALM);
      EXPECT_TRUE(raw.PumpUntil([&] { return raw.eof(); }, CRPC_SECOND));
    } else {
      raw.PumpUntil([&] { return raw.goaway() || raw.eof(); }, 100 * kMs);
      EXPECT_FALSE(raw.goaway()) << "enforcement off";
      EXPECT_FALSE(raw.eof());
    }
  }
}

// Keepalive is off by default on both sides: not a single PING.
TEST_F(KeepaliveTest, OffByDefaultSendsNoPings) {
  Seen seen;  // outlives the server (whose free joins handlers)
  TestServer server;
  AddMethods(&server, &seen);
  server.Start();
  crpc_testing::TcpProxy proxy(server.port());
  crpc_channel *ch = crpc_channel_new(proxy.target().c_str(), nullptr);
  EXPECT_EQ(Unary(ch, "/ka.S/Echo", 5 * CRPC_SECOND).code, CRPC_OK);
  EXPECT_EQ(Unary(ch, "/ka.S/Block", 300 * kMs).code, CRPC_DEADLINE_EXCEEDED);
  usleep(200 * 1000);
  EXPECT_EQ(Unary(ch, "/ka.S/Echo", 5 * CRPC_SECOND).code, CRPC_OK);
  EXPECT_EQ(proxy.pings_c2s(), 0);
  EXPECT_EQ(proxy.pings_s2c(), 0);
  EXPECT_EQ(proxy.accepted(), 1);
  crpc_channel_free(ch);
}

}  // namespace
}  // namespace crpc_test
