// Rolling restarts under load (issue 16, item 2): unary and streaming calls
// through nginx, HAProxy and crpc's round-robin channel while each of the 3
// backends is restarted in turn with crpc's graceful shutdown (NOT_SERVING
// first where the proxy checks health, GOAWAY, grace, exit, a new process
// on the same port). No unary call may fail; a stream cut by a restart
// must end UNAVAILABLE and nothing else.
//
// Plus the server-side cause of the one failed call of 63,381 the issue
// reports: a request crossing the server's first GOAWAY on the wire was
// answered UNAVAILABLE "server shutting down" instead of being served.
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <thread>

#include "crpc/server.h"
#include "crpc/server_async.h"
#include "deploy/scenarios.h"
#include "rpc/testing/tcp_proxy.h"
#include "rpc/testing/test_service.h"

namespace deploy {
namespace {

void Print(const std::string &row) { std::printf("[deploy] %s\n", row.c_str()); }

class RollingRestartTest : public ::testing::TestWithParam<Via> {};

TEST_P(RollingRestartTest, NoUnaryCallFailsAndCutStreamsEndUnavailable) {
  Via via = GetParam();
  std::string missing = Proxy::Missing(via);
  if (!missing.empty()) GTEST_SKIP() << missing;
  StackOptions o;
  o.backend.grace_ms = 500;
  // HAProxy checks health every 100 ms (timeout 300 ms): NOT_SERVING for
  // 500 ms takes the backend out of rotation before its listener closes.
  // nginx and the channel do not check health; they rely on GOAWAY and
  // on a refused connect being retried elsewhere.
  o.backend.drain_ms = via == Via::kHaproxy ? 500 : 0;
  o.channel.backoff_initial_ms = 100;
  o.channel.backoff_max_ms = 300;
  Stack s(via, o);
  std::string error;
  ASSERT_TRUE(s.Start(&error)) << error;
  size_t ctx_before = crpc_ctx_live_count();

  // Paced (a 200 us rest between calls per caller): a few thousand calls
  // a second keep every connection busy through each restart without
  // taking the CPUs from the tests running beside this one.
  RestartResult r = MeasureRollingRestart(s, 4, 4, 1, 200);
  ASSERT_TRUE(r.restarted) << r.error;
  EXPECT_EQ(r.load.unary_failed, 0) << Counts(r.load.unary_codes);
  EXPECT_GT(r.load.unary_ok, 100);
  long cut = 0;
  for (const auto &kv : r.load.stream_ends) {
    cut += kv.second;
    EXPECT_EQ(kv.first.rfind("UNAVAILABLE: ", 0), 0u) << "a stream ended " << kv.first;
  }
  // Streams were open on every backend when it restarted.
  EXPECT_GT(cut, 0) << "no stream was cut: did the restarts happen under load?";
  std::string ms;
  for (int64_t t : r.restart_ms) ms += (ms.empty() ? "" : ", ") + std::to_string(t);
  Print(Row({ViaName(via), "rolling restart of 3 (grace 500 ms)",
             "unary OK " + std::to_string(r.load.unary_ok) + ", failed " +
                 std::to_string(r.load.unary_failed),
             "streams opened " + std::to_string(r.load.streams_opened) + ", cut: " +
                 Counts(r.load.stream_ends),
             "restart ms: " + ms}));
  EXPECT_TRUE(s.BackendsIdle(&error)) << error;
  EXPECT_TRUE(CtxCountBackTo(ctx_before)) << "a ctx outlived the load (listed above)";
  EXPECT_TRUE(s.Stop(&error)) << error;
}

INSTANTIATE_TEST_SUITE_P(Proxies, RollingRestartTest,
                         ::testing::Values(Via::kNginx, Via::kHaproxy, Via::kChannel),
                         [](const ::testing::TestParamInfo<Via> &i) {
                           return std::string(i.param == Via::kNginx     ? "nginx"
                                              : i.param == Via::kHaproxy ? "haproxy"
                                                                         : "crpc_rr");
                         });

// The race behind the failed call, made deterministic with latency:
// the connection is idle when shutdown begins, so no call holds the grace;
// a request the client sends just before the first GOAWAY reaches it
// arrives after shutdown began. It is below the final GOAWAY's last stream
// id (the server processes it), so neither a proxy nor a client may resend
// it: the server must serve it, not answer "server shutting down".
TEST(GracefulShutdownTest, RequestCrossingTheFirstGoawayIsServed) {
  crpc_server *server = crpc_server_new(nullptr);
  crpc_test_service *svc = crpc_test_service_new();
  ASSERT_EQ(crpc_test_service_register(svc, server), CRPC_OK);
  int port = 0;
  ASSERT_EQ(crpc_server_listen(server, "127.0.0.1:0", &port), CRPC_OK);
  ASSERT_EQ(crpc_server_start(server), CRPC_OK);
  {
    // 30 ms each way: the GOAWAY takes 30 ms to reach the client, its
    // request 30 more to reach the server.
    crpc_testing::TcpProxy link("127.0.0.1", port, 30 * 1000000);
    Channel ch = NewChannel(link.target());
    ASSERT_EQ(Unary(ch.get(), "/crpc.test.Test/Echo", "warm").code, CRPC_OK);
    std::thread stopper([&] { crpc_server_shutdown(server, 2 * CRPC_SECOND); });
    SleepMs(10);  // shutdown has begun; its GOAWAY is still on the wire
    CallResult r = Unary(ch.get(), "/crpc.test.Test/Echo", "crossing", {}, 3000);
    EXPECT_EQ(r.code, CRPC_OK) << crpc_code_name(r.code) << ": " << r.message;
    stopper.join();
    ch.reset();
  }
  crpc_server_free(server);
  crpc_test_service_free(svc);
}

// The other crossing (the nginx case's one 502 in ~50 CI runs: "recv()
// failed (104: Connection reset by peer) while reading response header"):
// a connection the kernel has completed but the server has not accepted
// yet when shutdown closes its listener. Closing a listening socket resets
// every connection in its queue, so the request nginx had already sent on
// one was lost, and nginx resends no request body it has sent. Shutdown
// must accept what is queued (and drain it like the others) before it
// closes the listener. A loop stalled 300 ms in a handler keeps the
// connection in the queue while shutdown begins; the loop then runs the
// drain before it would have accepted it.
TEST(GracefulShutdownTest, ConnectionQueuedAtTheListenerIsServed) {
  crpc_server_options opts{};
  opts.loop_threads = 1;
  crpc_server *server = crpc_server_new(&opts);
  crpc_test_service *svc = crpc_test_service_new();
  ASSERT_EQ(crpc_test_service_register(svc, server), CRPC_OK);
  static std::atomic<bool> stalling{false};
  stalling = false;
  ASSERT_EQ(crpc_server_add_unary_async(
                server, "/deploy.Stall/Stall",
                [](crpc_server_call *call, const crpc_ctx *, const crpc_message *, void *) {
                  stalling = true;
                  usleep(300 * 1000);  // blocks its loop: what a busy loop does to accepts
                  return crpc_server_call_send_async(call, "", 0, 0);
                },
                nullptr),
            CRPC_OK);
  int port = 0;
  ASSERT_EQ(crpc_server_listen(server, "127.0.0.1:0", &port), CRPC_OK);
  ASSERT_EQ(crpc_server_start(server), CRPC_OK);
  std::string target = "127.0.0.1:" + std::to_string(port);
  Channel stalled = NewChannel(target);
  std::thread stall([&] {
    EXPECT_EQ(Unary(stalled.get(), "/deploy.Stall/Stall", "").code, CRPC_OK);
  });
  int64_t end = NowNs() + 5 * 1000000000LL;
  while (!stalling && NowNs() < end) SleepMs(1);
  ASSERT_TRUE(stalling.load());
  // Connected by the kernel, request sent, not accepted: the loop stalls.
  Channel queued = NewChannel(target);
  CallResult r;
  std::thread call([&] { r = Unary(queued.get(), "/crpc.test.Test/Echo", "queued", {}, 5000); });
  SleepMs(50);
  std::thread stopper([&] { crpc_server_shutdown(server, 2 * CRPC_SECOND); });
  call.join();
  EXPECT_EQ(r.code, CRPC_OK) << crpc_code_name(r.code) << ": " << r.message;
  EXPECT_EQ(r.response, "queued");
  stall.join();
  stopper.join();
  queued.reset();
  stalled.reset();
  crpc_server_free(server);
  crpc_test_service_free(svc);
}

}  // namespace
}  // namespace deploy
