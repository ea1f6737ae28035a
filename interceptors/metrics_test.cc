// metrics: counters by method and status, latency histogram, cancellations
// by origin, cancel propagation histogram; in-process and Prometheus text.
#include "interceptors/metrics.h"

#include <cstdint>

#include "crpc/calls.h"

#include "rpc/intercept/icpt_test_util.h"

namespace {

using namespace icpt_test;

class MetricsTest : public LeakCheckTest {};

// Whether the server lists a Hang call (crpc/calls.h).
bool HangRunning(crpc_server *server) {
  auto ctx = WithTimeout(kSec);
  crpc_call_info *calls = nullptr;
  size_t n = 0;
  if (crpc_server_calls(server, ctx.get(), &calls, &n) != CRPC_OK) return false;
  bool found = false;
  for (size_t i = 0; i < n; i++) found |= M("Hang") == calls[i].method;
  crpc_calls_free(calls);
  return found;
}

TEST_F(MetricsTest, CountsLatencyCancellationsAndPrometheusText) {
  crpc_metrics *m = crpc_metrics_new();
  auto icpt = crpc_metrics_server(m);
  auto shortdl = ShortDeadlineOnRequest();
  {
    Server srv([&](crpc_server *s) {
      crpc_server_add_interceptor(s, &icpt);
      crpc_server_add_interceptor(s, &shortdl);
    });
    auto ch = NewChannel(srv.target());
    auto ctx = WithTimeout(5 * kSec);
    for (int i = 0; i < 3; i++) EXPECT_EQ(CRPC_OK, Unary(ch.get(), ctx.get(), M("Echo"), "x").code);
    auto md = NewMd({{"x-status", "5"}});
    EXPECT_EQ(CRPC_NOT_FOUND, Unary(ch.get(), ctx.get(), M("Echo"), "x", md.get()).code);
    auto c2 = WithCancel();
    std::thread t([&] { Unary(ch.get(), c2.get(), M("Hang"), "x"); });
    // 30 ms from when the server has the call (not from the thread's
    // start, which a loaded machine may delay by as much).
    ASSERT_TRUE(Eventually([&] { return HangRunning(srv.get()); }, 3000));
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    crpc_ctx_cancel(c2.get(), CRPC_CANCELLED, "bye");
    t.join();
    auto shortmd = NewMd({{"x-short", "1"}});
    EXPECT_EQ(CRPC_DEADLINE_EXCEEDED,
              Unary(ch.get(), ctx.get(), M("Hang"), "x", shortmd.get()).code);
    ASSERT_TRUE(Eventually(
        [&] {
          return crpc_metrics_calls(m, M("Hang").c_str(), CRPC_CANCELLED) == 1 &&
                 crpc_metrics_calls(m, M("Hang").c_str(), CRPC_DEADLINE_EXCEEDED) == 1;
        },
        3000)) << crpc_metrics_calls(m, M("Hang").c_str(), CRPC_CANCELLED) << " cancelled, "
               << crpc_metrics_calls(m, M("Hang").c_str(), CRPC_DEADLINE_EXCEEDED) << " deadline";
  }
  EXPECT_EQ(3u, crpc_metrics_calls(m, M("Echo").c_str(), CRPC_OK));
  EXPECT_EQ(1u, crpc_metrics_calls(m, M("Echo").c_str(), CRPC_NOT_FOUND));
  EXPECT_EQ(0u, crpc_metrics_calls(m, "/no/Such", CRPC_OK));
  EXPECT_EQ(1u, crpc_metrics_cancellations(m, CRPC_ORIGIN_PEER_RESET));
  EXPECT_EQ(1u, crpc_metrics_cancellations(m, CRPC_ORIGIN_DEADLINE));
  crpc_metrics_histogram h;
  crpc_metrics_latency(m, M("Echo").c_str(), &h);
  EXPECT_EQ(4u, h.count);
  crpc_metrics_latency(m, nullptr, &h);
  EXPECT_EQ(6u, h.count);
  EXPECT_GT(h.sum_seconds, 0.04);  // the two Hangs lasted 30 + 30 ms
  crpc_metrics_cancel_latency(m, &h);
  EXPECT_EQ(2u, h.count);
  EXPECT_LT(h.sum_seconds, 2.0);
  printf("cancel propagation (ctx cancelled -> handler returned): mean %.1f us\n",
         h.sum_seconds / 2 * 1e6);

  char *buf = nullptr;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  crpc_metrics_write_prometheus(m, f);
  fclose(f);
  std::string text(buf, len);
  free(buf);
  EXPECT_NE(std::string::npos,
            text.find("crpc_server_calls_total{method=\"/crpc.test.Test/Echo\",code=\"OK\"} 3\n"))
      << text;
  EXPECT_NE(std::string::npos, text.find("# TYPE crpc_server_call_duration_seconds histogram"));
  EXPECT_NE(std::string::npos,
            text.find("crpc_server_call_duration_seconds_bucket{method=\"/crpc.test.Test/Echo\","
                      "le=\"+Inf\"} 4\n"))
      << text;
  EXPECT_NE(std::string::npos,
            text.find("crpc_server_cancellations_total{origin=\"peer_reset\"} 1\n"))
      << text;
  EXPECT_NE(std::string::npos,
            text.find("crpc_server_cancel_propagation_seconds_count 2\n"))
      << text;
  crpc_metrics_free(m);
}

// True once the server's only call has, twice 50 ms apart with nothing
// written in between, at least `wire` bytes (one message, prefix
// included) queued beyond what went to HTTP/2: whatever is left of the
// message being written, then at least one whole message. (Not two: a
// handler blocked in its send is woken only once its queue is down to a
// quarter of the limit, so with the window full it may stay blocked with
// one whole message queued.) Gives up after 5 s.
bool CountStalledWithQueue(crpc_server *srv, uint64_t wire) {
  uint64_t last_out = UINT64_MAX;
  for (int i = 0; i < 100; i++) {
    auto ctx = WithTimeout(kSec);
    crpc_call_info *calls = nullptr;
    size_t n = 0;
    if (crpc_server_calls(srv, ctx.get(), &calls, &n) != CRPC_OK) return false;
    bool stalled = false;
    if (n == 1) {
      uint64_t queued = calls[0].messages_out * wire - calls[0].bytes_out;
      stalled = queued >= wire && calls[0].bytes_out == last_out;
      last_out = calls[0].bytes_out;
    }
    crpc_calls_free(calls);
    if (stalled) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// Cancel-path accounting (crpc_server_call_cancel_stats): a stream whose
// client stops reading and then cancels has a send that fails and queued
// responses that are dropped; a grpc-timeout deadline ends a Hang. Each
// lands in its histogram, and in the Prometheus text.
TEST_F(MetricsTest, CancelPathAccounting) {
  crpc_metrics *m = crpc_metrics_new();
  auto icpt = crpc_metrics_server(m);
  {
    Server srv([&](crpc_server *s) { crpc_server_add_interceptor(s, &icpt); });
    auto ch = NewChannel(srv.target());
    auto c1 = WithCancel();
    crpc_call *raw = nullptr;
    ASSERT_EQ(CRPC_OK, crpc_call_start(ch.get(), c1.get(), M("Count").c_str(), nullptr, &raw));
    ASSERT_EQ(CRPC_OK, crpc_call_send(raw, "0 16384 0", 9));  // until cancelled
    ASSERT_EQ(CRPC_OK, crpc_call_close_send(raw));
    // Not reading: the windows fill, then the server's send queue. Wait
    // until the live-call registry shows the stream stalled with at least
    // one whole message queued and unwritten (a fixed sleep lost that race
    // once on a loaded CI machine: the cancel found 21 bytes left).
    ASSERT_TRUE(CountStalledWithQueue(srv.get(), 16384 + 5));
    crpc_ctx_cancel(c1.get(), CRPC_CANCELLED, "client gives up");
    crpc_call_free(raw);
    // Long enough for the call to reach the server and its handler first,
    // even under TSan on a loaded machine (a call whose deadline passes
    // before dispatch never runs an interceptor: one CI-like run with
    // both CPUs busy lost 300 ms that way).
    auto c2 = WithTimeout(1000 * kMs);
    EXPECT_EQ(CRPC_DEADLINE_EXCEEDED, Unary(ch.get(), c2.get(), M("Hang"), "x").code);
    ASSERT_TRUE(Eventually(
        [&] {
          return crpc_metrics_calls(m, M("Count").c_str(), CRPC_CANCELLED) == 1 &&
                 crpc_metrics_calls(m, M("Hang").c_str(), CRPC_DEADLINE_EXCEEDED) == 1;
        },
        3000))
        << crpc_metrics_calls(m, M("Count").c_str(), CRPC_CANCELLED) << " Count cancelled, "
        << crpc_metrics_calls(m, M("Hang").c_str(), CRPC_DEADLINE_EXCEEDED) << " Hang deadline";
  }
  crpc_metrics_histogram h;
  crpc_metrics_cancel_ctx_done(m, &h);
  EXPECT_EQ(2u, h.count);  // the reset and the deadline
  EXPECT_LT(h.sum_seconds, 1.0);
  crpc_metrics_cancel_send_failed(m, &h);
  EXPECT_EQ(1u, h.count);  // only Count was sending
  uint64_t msgs = 0, bytes = 0;
  crpc_metrics_cancel_dropped(m, &msgs, &bytes);
  EXPECT_GE(msgs, 1u);
  EXPECT_GE(bytes, 16384u);  // at least one whole queued message

  char *buf = nullptr;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  crpc_metrics_write_prometheus(m, f);
  fclose(f);
  std::string text(buf, len);
  free(buf);
  EXPECT_NE(std::string::npos, text.find("crpc_server_cancel_ctx_done_seconds_count 2\n")) << text;
  EXPECT_NE(std::string::npos, text.find("crpc_server_cancel_send_failed_seconds_count 1\n"))
      << text;
  EXPECT_NE(std::string::npos,
            text.find("crpc_server_cancel_dropped_messages_total " + std::to_string(msgs) + "\n"))
      << text;
  crpc_metrics_free(m);
}

}  // namespace
