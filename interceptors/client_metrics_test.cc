// metrics, client side: calls by method and code, duration histogram,
// calls their caller's ctx ended by origin; in the same crpc_metrics (and
// the same Prometheus text) as the server side.
#include <mutex>

#include "interceptors/internal/calltab.h"
#include "interceptors/logging.h"
#include "interceptors/metrics.h"
#include "rpc/intercept/icpt_test_util.h"

namespace {

using namespace icpt_test;

std::string Prom(crpc_metrics *m) {
  char *buf = nullptr;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  crpc_metrics_write_prometheus(m, f);
  fclose(f);
  std::string text(buf, len);
  free(buf);
  return text;
}

class ClientMetricsTest : public LeakCheckTest {};

TEST_F(ClientMetricsTest, CountsBothSidesInOneObject) {
  size_t table_before = icpt_calltab_size();
  crpc_metrics *m = crpc_metrics_new();
  auto server_icpt = crpc_metrics_server(m);
  auto client_icpt = crpc_metrics_client(m);
  // Logging on the same channel: two links keep call records side by side.
  int n_lines = 0;
  crpc_logging_options lo{[](void *ud, const char *) { ++*static_cast<int *>(ud); }, &n_lines};
  auto log_icpt = crpc_logging_client(&lo);
  {
    Server srv([&](crpc_server *s) { crpc_server_add_interceptor(s, &server_icpt); });
    auto ch = NewChannel(srv.target(), {&client_icpt, &log_icpt});
    auto ctx = WithTimeout(5 * kSec);
    for (int i = 0; i < 3; i++) EXPECT_EQ(CRPC_OK, Unary(ch.get(), ctx.get(), M("Echo"), "x").code);
    auto md = NewMd({{"x-status", "5"}});
    EXPECT_EQ(CRPC_NOT_FOUND, Unary(ch.get(), ctx.get(), M("Echo"), "x", md.get()).code);
    // Cancelled by the caller.
    auto c2 = WithCancel();
    std::thread t([&] { Unary(ch.get(), c2.get(), M("Hang"), "x"); });
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    crpc_ctx_cancel(c2.get(), CRPC_CANCELLED, "bye");
    t.join();
    // The caller's deadline, twice.
    for (int i = 0; i < 2; i++) {
      auto c3 = WithTimeout(30 * kMs);
      EXPECT_EQ(CRPC_DEADLINE_EXCEEDED, Unary(ch.get(), c3.get(), M("Hang"), "x").code);
    }
    // A start that fails: nobody listens there.
    auto bad = NewChannel("127.0.0.1:1", {&client_icpt});
    EXPECT_EQ(CRPC_UNAVAILABLE, Unary(bad.get(), ctx.get(), M("Echo"), "x").code);
    // The server side counts its calls once their handlers return.
    ASSERT_TRUE(Eventually(
        [&] {
          return crpc_metrics_calls(m, M("Hang").c_str(), CRPC_CANCELLED) +
                     crpc_metrics_calls(m, M("Hang").c_str(), CRPC_DEADLINE_EXCEEDED) ==
                 3;
        },
        3000));
  }
  // Client side: exactly what the callers saw.
  EXPECT_EQ(3u, crpc_metrics_client_calls(m, M("Echo").c_str(), CRPC_OK));
  EXPECT_EQ(1u, crpc_metrics_client_calls(m, M("Echo").c_str(), CRPC_NOT_FOUND));
  EXPECT_EQ(1u, crpc_metrics_client_calls(m, M("Echo").c_str(), CRPC_UNAVAILABLE));
  EXPECT_EQ(1u, crpc_metrics_client_calls(m, M("Hang").c_str(), CRPC_CANCELLED));
  EXPECT_EQ(2u, crpc_metrics_client_calls(m, M("Hang").c_str(), CRPC_DEADLINE_EXCEEDED));
  EXPECT_EQ(0u, crpc_metrics_client_calls(m, "/no/Such", CRPC_OK));
  EXPECT_EQ(1u, crpc_metrics_client_cancellations(m, CRPC_ORIGIN_LOCAL));
  EXPECT_EQ(2u, crpc_metrics_client_cancellations(m, CRPC_ORIGIN_DEADLINE));
  EXPECT_EQ(0u, crpc_metrics_client_cancellations(m, CRPC_ORIGIN_PEER_RESET));
  crpc_metrics_histogram h;
  crpc_metrics_client_latency(m, M("Echo").c_str(), &h);
  EXPECT_EQ(5u, h.count);
  crpc_metrics_client_latency(m, M("Hang").c_str(), &h);
  EXPECT_EQ(3u, h.count);
  EXPECT_GT(h.sum_seconds, 0.08);  // 30 ms + 2 x 30 ms at least
  crpc_metrics_client_latency(m, nullptr, &h);
  EXPECT_EQ(8u, h.count);
  // Server side, unchanged by the client's counting.
  EXPECT_EQ(3u, crpc_metrics_calls(m, M("Echo").c_str(), CRPC_OK));
  EXPECT_EQ(0u, crpc_metrics_client_calls(m, M("Nope").c_str(), CRPC_OK));
  EXPECT_EQ(7, n_lines);  // the logging link saw the same 7 calls
  EXPECT_EQ(table_before, icpt_calltab_size());

  std::string text = Prom(m);
  for (const char *want : {
           "# TYPE crpc_client_calls_total counter\n",
           "crpc_client_calls_total{method=\"/crpc.test.Test/Echo\",code=\"OK\"} 3\n",
           "crpc_client_calls_total{method=\"/crpc.test.Test/Echo\",code=\"UNAVAILABLE\"} 1\n",
           "crpc_client_calls_total{method=\"/crpc.test.Test/Hang\",code=\"DEADLINE_EXCEEDED\"} 2\n",
           "# TYPE crpc_client_call_duration_seconds histogram\n",
           "crpc_client_call_duration_seconds_bucket{method=\"/crpc.test.Test/Echo\",le=\"+Inf\"} 5\n",
           "crpc_client_call_duration_seconds_count{method=\"/crpc.test.Test/Hang\"} 3\n",
           "crpc_client_cancellations_total{origin=\"local\"} 1\n",
           "crpc_client_cancellations_total{origin=\"deadline\"} 2\n",
           "crpc_server_calls_total{method=\"/crpc.test.Test/Echo\",code=\"OK\"} 3\n",
       }) {
    EXPECT_NE(std::string::npos, text.find(want)) << want << "\n" << text;
  }
  crpc_metrics_free(m);
}

TEST_F(ClientMetricsTest, LabelValuesAreEscaped) {
  crpc_metrics *m = crpc_metrics_new();
  auto icpt = crpc_metrics_client(m);
  {
    Server srv;
    auto ch = NewChannel(srv.target(), {&icpt});
    auto ctx = WithTimeout(5 * kSec);
    // An unknown method with a quote and a backslash: UNIMPLEMENTED.
    EXPECT_EQ(CRPC_UNIMPLEMENTED, Unary(ch.get(), ctx.get(), "/x.Y/a\"b\\c", "x").code);
  }
  std::string text = Prom(m);
  EXPECT_NE(std::string::npos,
            text.find("crpc_client_calls_total{method=\"/x.Y/a\\\"b\\\\c\",code=\"UNIMPLEMENTED\"} 1\n"))
      << text;
  crpc_metrics_free(m);
}

TEST_F(ClientMetricsTest, ConcurrentCallsAllCounted) {
  crpc_metrics *m = crpc_metrics_new();
  auto icpt = crpc_metrics_client(m);
  {
    Server srv;
    auto ch = NewChannel(srv.target(), {&icpt});
    auto ctx = WithTimeout(20 * kSec);
    std::vector<std::thread> ts;
    for (int k = 0; k < 4; k++) {
      ts.emplace_back([&] {
        for (int i = 0; i < 25; i++) Unary(ch.get(), ctx.get(), M("Echo"), "x");
      });
    }
    // Read while they run: the text is always whole.
    for (int i = 0; i < 20; i++) EXPECT_NE(std::string::npos, Prom(m).find("crpc_client_cancellations_total"));
    for (auto &t : ts) t.join();
  }
  EXPECT_EQ(100u, crpc_metrics_client_calls(m, M("Echo").c_str(), CRPC_OK));
  crpc_metrics_free(m);
}

}  // namespace
