// Calls through real L7 proxies (issue 16, items 1 and 4): nginx with
// grpc_pass and HAProxy with h2 backends, each in front of 3 crpc backends
// (deploy/backend processes), and crpc's own round-robin channel over the
// same 3 as the baseline. Every component is started here; a missing
// proxy program skips that proxy's tests with the reason.
//
// Latencies are printed as table rows ("[deploy] | ..."), never asserted:
// deploy/proxy_bench.sh prints the full-size table.
#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <memory>

#include "deploy/scenarios.h"
#include "rpc/testing/peer.h"

namespace deploy {
namespace {

// One stack per proxy, shared by the tests of this binary (starting 3
// backends and a proxy for each test would cost more than the tests).
std::map<Via, std::unique_ptr<Stack>> &Stacks() {
  static auto *stacks = new std::map<Via, std::unique_ptr<Stack>>();
  return *stacks;
}

class StacksEnv : public ::testing::Environment {
 public:
  void TearDown() override {
    for (auto &kv : Stacks()) {
      std::string error;
      if (kv.second != nullptr && !kv.second->Stop(&error)) ADD_FAILURE() << error;
    }
    Stacks().clear();
  }
};
const auto *const kEnv = ::testing::AddGlobalTestEnvironment(new StacksEnv);

void Print(const std::string &row) { std::printf("[deploy] %s\n", row.c_str()); }

class ProxyTest : public ::testing::TestWithParam<Via> {
 protected:
  void SetUp() override {
    std::string missing = Proxy::Missing(GetParam());
    if (!missing.empty()) GTEST_SKIP() << missing;
    auto &slot = Stacks()[GetParam()];
    if (slot == nullptr) {
      auto s = std::make_unique<Stack>(GetParam());
      std::string error;
      ASSERT_TRUE(s->Start(&error)) << error;
      slot = std::move(s);
    }
    stack_ = slot.get();
  }
  const char *name() const { return ViaName(GetParam()); }
  Stack *stack_ = nullptr;
};

TEST_P(ProxyTest, FourCallShapesPassThrough) {
  crpc_channel *ch = stack_->client();
  CallResult u = Stream(ch, "/crpc.test.Test/Echo", {"hello"});
  EXPECT_EQ(u.code, CRPC_OK) << u.message;
  EXPECT_EQ(u.response, "hello");

  CallResult ss = Stream(ch, "/crpc.test.Test/Count", {"5 100 0"});
  EXPECT_EQ(ss.code, CRPC_OK) << ss.message;
  ASSERT_EQ(ss.messages, 5);
  for (int i = 0; i < 5; i++) EXPECT_EQ(ss.response[static_cast<size_t>(i * 100)], char(i));

  CallResult cs = Stream(ch, "/crpc.test.Test/Collect", {"a", "bb", "ccc"});
  EXPECT_EQ(cs.code, CRPC_OK) << cs.message;
  EXPECT_EQ(cs.response, "3 6");

  CallResult bidi = Stream(ch, "/crpc.test.Test/Chat", {"x", "yy", "zzz"});
  EXPECT_EQ(bidi.code, CRPC_OK) << bidi.message;
  EXPECT_EQ(bidi.messages, 3);
  EXPECT_EQ(bidi.response, "xyyzzz");
}

TEST_P(ProxyTest, MetadataBothWaysIncludingBinary) {
  std::string blob("\x00\x01\xfe\xff", 4);
  CallResult r = Stream(stack_->client(), "/crpc.test.Test/Echo", {"m"},
                        {{"x-echo-md", "1"}, {"x-md-text", "v1"}, {"x-md-blob-bin", blob}});
  ASSERT_EQ(r.code, CRPC_OK) << r.message;
  EXPECT_EQ(r.Header("x-md-text"), "v1");
  EXPECT_EQ(r.Header("x-md-blob-bin"), blob);
  EXPECT_EQ(r.Trailer("x-trl-text"), "v1");
  EXPECT_EQ(r.Trailer("x-trl-blob-bin"), blob);
  EXPECT_FALSE(r.Header("x-backend").empty());
}

TEST_P(ProxyTest, StatusMessageAndDetailsPassThrough) {
  std::string details("\x08\x05\x12\x03why\x00\xff", 9);  // opaque bytes
  CallResult r = Stream(stack_->client(), "/crpc.test.Test/Echo", {"e"},
                        {{"x-status", "5"},
                         {"x-message-bin", "no such thing \xc3\xa9"},
                         {"x-details-bin", details}});
  EXPECT_EQ(r.code, CRPC_NOT_FOUND);
  EXPECT_EQ(r.message, "no such thing \xc3\xa9");
  EXPECT_EQ(r.Trailer("grpc-status-details-bin"), details);
  // An error in the middle of a stream, after messages.
  CallResult s = Stream(stack_->client(), "/crpc.test.Test/Count", {"2 10 0"},
                        {{"x-status", "9"}, {"x-message", "stopped"}});
  EXPECT_EQ(s.code, CRPC_FAILED_PRECONDITION);
  EXPECT_EQ(s.messages, 2);
  EXPECT_EQ(s.message, "stopped");
}

TEST_P(ProxyTest, CompressedMessagesPassThrough) {
  ChannelOptions o;
  o.compression = "gzip";
  Channel gz = GetParam() == Via::kChannel
                   ? NewChannel(ListTarget({stack_->backend(0).address()}), o)
                   : NewChannel(stack_->proxy()->target(), o);
  std::string big(20000, 'a');
  CallResult r = Stream(gz.get(), "/crpc.test.Test/Echo", {big}, {{"x-compress", "gzip"}});
  ASSERT_EQ(r.code, CRPC_OK) << r.message;
  EXPECT_EQ(r.response, big);  // the request arrived gzip'd and was inflated
  EXPECT_TRUE(r.compressed) << "the response came back uncompressed";
}

TEST_P(ProxyTest, UnknownMethodIsUnimplemented) {
  CallResult a = Unary(stack_->client(), "/crpc.test.Test/NoSuchMethod", "x");
  EXPECT_EQ(a.code, CRPC_UNIMPLEMENTED) << a.message;
  CallResult b = Unary(stack_->client(), "/no.such.Service/Method", "x");
  EXPECT_EQ(b.code, CRPC_UNIMPLEMENTED) << b.message;
}

TEST_P(ProxyTest, GrpcioClientThroughTheProxy) {
  if (GetParam() == Via::kChannel) GTEST_SKIP() << "grpcio has no crpc round-robin channel";
  std::string why;
  if (!crpc_testing::PythonGrpcAvailable(&why)) GTEST_SKIP() << why;
  crpc_testing::ProcResult r = crpc_testing::RunPyClient(
      stack_->proxy()->target(), {"unary", "server_stream", "client_stream", "bidi", "metadata",
                                  "error", "stream_error", "unimplemented"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

// The client cancels; the backend handler's ctx ends. How late, and with
// what origin (a proxy may reset the stream or close the connection), is
// printed, not asserted.
TEST_P(ProxyTest, ClientCancelEndsTheBackendHandlerCtx) {
  CancelResult r = MeasureCancel(*stack_, 5);
  EXPECT_EQ(r.lost, 0) << "cancels that never ended a backend handler's ctx";
  Print(Row({name(), "cancel -> backend ctx done, p50 / p99 us", Us(r.late_ns), Counts(r.origins)}));
  std::string error;
  EXPECT_TRUE(stack_->BackendsIdle(&error)) << error;
}

// The client's deadline travels as grpc-timeout through the proxy and the
// backend's ctx expires on it.
TEST_P(ProxyTest, ClientDeadlineReachesTheBackend) {
  DeadlineResult r = MeasureDeadline(*stack_, 5, 200);
  EXPECT_EQ(r.lost, 0);
  EXPECT_EQ(r.client_codes["DEADLINE_EXCEEDED"], 5) << Counts(r.client_codes);
  for (int64_t ms : r.timeout_seen_ms) {
    EXPECT_GT(ms, 0) << "no grpc-timeout reached the backend";
    EXPECT_LE(ms, 200);
  }
  Print(Row({name(), "200 ms deadline: client late / backend late, p50 / p99 us",
             Us(r.client_late_ns) + " | " + Us(r.server_late_ns), Counts(r.origins)}));
}

// The same with the client's link frozen once the call is running, so its
// reset never arrives: the backend ends the call on grpc-timeout alone.
TEST_P(ProxyTest, BackendEnforcesTheDeadlineWithoutTheClient) {
  if (GetParam() == Via::kChannel) GTEST_SKIP() << "no proxy to put the frozen link before";
  crpc_testing::TcpProxy link(stack_->proxy()->port());
  Channel ch = NewChannel(link.target());
  std::string tag = "frozen-" + std::to_string(NowNs());
  int64_t t0 = NowNs();
  std::thread caller([&] {
    CallResult r = Unary(ch.get(), "/crpc.test.Test/Hang", "", {{"x-tag", tag}}, 300);
    EXPECT_EQ(r.code, CRPC_DEADLINE_EXCEEDED) << r.message;
  });
  // Freeze once a backend runs the handler (its Stats count it).
  bool running = false;
  for (int i = 0; i < 200 && !running; i++) {
    for (crpc_channel *b : stack_->direct()) running |= Stats(b).running > 0;
    if (!running) SleepMs(5);
  }
  link.Freeze();
  caller.join();
  ASSERT_TRUE(running) << "the Hang call never reached a backend";
  Ending e = FindEnding(stack_->direct(), tag);
  ASSERT_TRUE(e.found);
  EXPECT_EQ(e.code, "DEADLINE_EXCEEDED") << e.raw;
  EXPECT_EQ(e.origin, "deadline") << e.raw;
  Print(Row({name(), "frozen client, 300 ms deadline: backend ctx done after",
             std::to_string((e.done_ns - t0) / 1000) + " us", e.code + "/" + e.origin}));
  ch.reset();
}

// Round robin spreads calls evenly (within 15 %) over the 3 backends.
TEST_P(ProxyTest, LoadSpreadsEvenlyOverThreeBackends) {
  SpreadResult r = MeasureSpread(*stack_, 300, 3);
  EXPECT_EQ(r.failed, 0);
  ASSERT_EQ(r.per_backend.size(), 3u) << Counts(r.per_backend);
  for (const auto &kv : r.per_backend) {
    EXPECT_GE(kv.second, 85) << kv.first << ": " << Counts(r.per_backend);
    EXPECT_LE(kv.second, 115) << kv.first << ": " << Counts(r.per_backend);
  }
  Print(Row({name(), "300 calls, 3 threads: calls per backend", Counts(r.per_backend),
             "p50 / p99 us " + Us(r.ns)}));
}

// One backend slowed (20 ms each way through a delaying TcpProxy), 6
// callers. Round robin still gives it a third of the calls, and every
// caller stuck on it waits; balancing on calls in progress (nginx
// least_conn, HAProxy leastconn, crpc CRPC_LB_LEAST_REQUEST) sends it
// fewer. The split and the latencies are printed; asserted is only that
// least requests gives the slow one less than each fast one.
TEST_P(ProxyTest, SlowBackendGetsFewerCallsWithLeastRequests) {
  Via via = GetParam();
  for (bool least : {false, true}) {
    StackOptions o;
    o.delay_ms = {0, 0, 20};
    if (least) {
      o.balance = via == Via::kNginx ? "least_conn;" : "leastconn";
      o.channel.lb = CRPC_LB_LEAST_REQUEST;
    }
    Stack s(via, o);
    std::string error;
    ASSERT_TRUE(s.Start(&error)) << error;
    int64_t t0 = NowNs();
    SpreadResult r = MeasureSpread(s, 150, 6);
    int64_t rate = 150 * 1000000000LL / (NowNs() - t0);
    EXPECT_EQ(r.failed, 0);
    if (least) {
      EXPECT_LT(r.per_backend["b3"], r.per_backend["b1"]) << Counts(r.per_backend);
      EXPECT_LT(r.per_backend["b3"], r.per_backend["b2"]) << Counts(r.per_backend);
    }
    Print(Row({name(), least ? "b3 +20 ms, least requests" : "b3 +20 ms, round robin",
               Counts(r.per_backend), "p50 / p99 us " + Us(r.ns),
               std::to_string(rate) + " calls/s"}));
    EXPECT_TRUE(s.Stop(&error)) << error;
  }
}

INSTANTIATE_TEST_SUITE_P(Proxies, ProxyTest,
                         ::testing::Values(Via::kNginx, Via::kHaproxy, Via::kChannel),
                         [](const ::testing::TestParamInfo<Via> &i) {
                           return std::string(i.param == Via::kNginx     ? "nginx"
                                              : i.param == Via::kHaproxy ? "haproxy"
                                                                         : "crpc_rr");
                         });

// README.md shows the two configs these tests run: the templates, verbatim
// (so the documentation cannot drift from what was tested).
TEST(DeployDocs, ReadmeShowsTheConfigsTheTestsRun) {
  std::string readme = ReadRunfile("README.md");
  ASSERT_FALSE(readme.empty());
  for (const char *tmpl : {"deploy/nginx.conf.tmpl", "deploy/haproxy.cfg.tmpl"}) {
    std::string text = ReadRunfile(tmpl);
    ASSERT_FALSE(text.empty()) << tmpl;
    EXPECT_NE(readme.find(text), std::string::npos)
        << "README.md's copy of " << tmpl << " differs from the file: paste the file again";
  }
}

}  // namespace
}  // namespace deploy
