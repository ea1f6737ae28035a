// logging, client side: one line per client call with method, target,
// status, duration, and the cause when the caller's ctx ended the call.
#include <mutex>

#include "interceptors/internal/calltab.h"
#include "interceptors/logging.h"
#include "interceptors/tracing.h"
#include "rpc/intercept/icpt_test_util.h"

namespace {

using namespace icpt_test;

struct Lines {
  std::mutex mu;
  std::vector<std::string> v;
  size_t size() {
    std::lock_guard<std::mutex> l(mu);
    return v.size();
  }
  std::string at(size_t i) {
    std::lock_guard<std::mutex> l(mu);
    return v.at(i);
  }
  std::string last() {
    std::lock_guard<std::mutex> l(mu);
    return v.empty() ? "<none>" : v.back();
  }
};

void Sink(void *ud, const char *line) {
  auto *l = static_cast<Lines *>(ud);
  std::lock_guard<std::mutex> g(l->mu);
  l->v.push_back(line);
}

bool Has(const std::string &line, const std::string &part) {
  return line.find(part) != std::string::npos;
}

class ClientLoggingTest : public LeakCheckTest {
 protected:
  void SetUp() override {
    LeakCheckTest::SetUp();
    table_before_ = icpt_calltab_size();
  }
  void TearDown() override {
    EXPECT_EQ(table_before_, icpt_calltab_size()) << "call records left behind";
    LeakCheckTest::TearDown();
  }
  size_t table_before_ = 0;
};

TEST_F(ClientLoggingTest, OkFailedCancelledAndDeadlineCalls) {
  Lines lines;
  crpc_logging_options o{Sink, &lines};
  auto icpt = crpc_logging_client(&o);
  auto shortdl = ShortDeadlineOnRequest();
  Server srv([&](crpc_server *s) { crpc_server_add_interceptor(s, &shortdl); });
  auto ch = NewChannel(srv.target(), {&icpt});
  auto ctx = WithTimeout(5 * kSec);

  EXPECT_EQ(CRPC_OK, Unary(ch.get(), ctx.get(), M("Echo"), "x").code);
  ASSERT_EQ(1u, lines.size());  // written by the finishing thread, at once
  std::string l = lines.at(0);
  EXPECT_EQ(0u, l.find("crpc client call method=/crpc.test.Test/Echo target=" + srv.target() +
                       " status=OK duration_us="))
      << l;
  EXPECT_TRUE(Has(l, " cancel_code=none cancel_origin=none cancel_msg=\"\" msg=\"\"")) << l;

  // The server's error status: no cancel, the status message.
  auto md = NewMd({{"x-status", "5"}, {"x-message", "no \"such\" thing"}});
  EXPECT_EQ(CRPC_NOT_FOUND, Unary(ch.get(), ctx.get(), M("Echo"), "x", md.get()).code);
  ASSERT_EQ(2u, lines.size());
  l = lines.at(1);
  EXPECT_TRUE(Has(l, "status=NOT_FOUND")) << l;
  EXPECT_TRUE(Has(l, "cancel_origin=none")) << l;
  EXPECT_TRUE(Has(l, "msg=\"no 'such' thing\"")) << l;

  // The caller cancels its ctx: CANCELLED, origin local, its message.
  auto c2 = WithCancel();
  std::thread t([&] { Unary(ch.get(), c2.get(), M("Hang"), "x"); });
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  crpc_ctx_cancel(c2.get(), CRPC_CANCELLED, "user said \"stop\"");
  t.join();
  ASSERT_EQ(3u, lines.size());
  l = lines.at(2);
  EXPECT_TRUE(Has(l, "method=/crpc.test.Test/Hang")) << l;
  EXPECT_TRUE(Has(l, "status=CANCELLED")) << l;
  EXPECT_TRUE(Has(l, "cancel_code=CANCELLED cancel_origin=local cancel_msg=\"user said 'stop'\""))
      << l;

  // The caller's deadline.
  auto c3 = WithTimeout(50 * kMs);
  EXPECT_EQ(CRPC_DEADLINE_EXCEEDED, Unary(ch.get(), c3.get(), M("Hang"), "x").code);
  ASSERT_EQ(4u, lines.size());
  l = lines.at(3);
  EXPECT_TRUE(Has(l, "status=DEADLINE_EXCEEDED")) << l;
  EXPECT_TRUE(Has(l, "cancel_code=DEADLINE_EXCEEDED cancel_origin=deadline "
                     "cancel_msg=\"deadline exceeded\" msg=\"deadline exceeded\""))
      << l;
  long long us = atoll(l.substr(l.find("duration_us=") + 12).c_str());
  EXPECT_GE(us, 45000) << l;

  // A deadline the server applied: its status, not the caller's cancel.
  auto shortmd = NewMd({{"x-short", "1"}});
  EXPECT_EQ(CRPC_DEADLINE_EXCEEDED, Unary(ch.get(), ctx.get(), M("Hang"), "x", shortmd.get()).code);
  ASSERT_EQ(5u, lines.size());
  l = lines.at(4);
  EXPECT_TRUE(Has(l, "status=DEADLINE_EXCEEDED")) << l;
  EXPECT_TRUE(Has(l, "cancel_code=none cancel_origin=none")) << l;
}

TEST_F(ClientLoggingTest, StartFailuresStreamsAndTraces) {
  Lines lines;
  crpc_logging_options o{Sink, &lines};
  auto icpt = crpc_logging_client(&o);
  auto trace = crpc_tracing_client();
  Server srv;
  auto ctx = WithTimeout(5 * kSec);

  // Nobody listens: the start fails and that is the call's line.
  {
    auto bad = NewChannel("127.0.0.1:1", {&icpt});
    auto r = Unary(bad.get(), ctx.get(), M("Echo"), "x");
    EXPECT_EQ(CRPC_UNAVAILABLE, r.code);
    ASSERT_EQ(1u, lines.size());
    EXPECT_TRUE(Has(lines.at(0), "target=127.0.0.1:1 status=UNAVAILABLE")) << lines.at(0);
    EXPECT_TRUE(Has(lines.at(0), "cancel_origin=none")) << lines.at(0);
  }

  auto ch = NewChannel(srv.target(), {&icpt, &trace});
  // A server stream read to its end and finished: one line, OK.
  crpc_call *raw = nullptr;
  ASSERT_EQ(CRPC_OK, crpc_call_start(ch.get(), ctx.get(), M("Count").c_str(), nullptr, &raw));
  Call call(raw);
  ASSERT_EQ(CRPC_OK, crpc_call_send(call.get(), "3 10 0", 6));
  ASSERT_EQ(CRPC_OK, crpc_call_close_send(call.get()));
  std::string m;
  bool end = false;
  int got = 0;
  while (Recv(call.get(), &m, &end) == CRPC_OK && !end) got++;
  EXPECT_EQ(3, got);
  EXPECT_EQ(1u, lines.size());  // nothing until finish
  EXPECT_EQ(CRPC_OK, crpc_call_finish(call.get(), nullptr));
  call.reset();
  ASSERT_EQ(2u, lines.size());
  EXPECT_TRUE(Has(lines.at(1), "method=/crpc.test.Test/Count")) << lines.at(1);
  EXPECT_TRUE(Has(lines.at(1), "status=OK")) << lines.at(1);

  // A stream the caller cancels mid-way, then finishes.
  auto c2 = WithCancel(ctx.get());
  ASSERT_EQ(CRPC_OK, crpc_call_start(ch.get(), c2.get(), M("Count").c_str(), nullptr, &raw));
  call.reset(raw);
  ASSERT_EQ(CRPC_OK, crpc_call_send(call.get(), "0 10 1000", 9));
  ASSERT_EQ(CRPC_OK, Recv(call.get(), &m));
  crpc_ctx_cancel(c2.get(), CRPC_CANCELLED, "enough");
  EXPECT_EQ(CRPC_CANCELLED, crpc_call_finish(call.get(), nullptr));
  call.reset();
  ASSERT_EQ(3u, lines.size());
  EXPECT_TRUE(Has(lines.at(2), "status=CANCELLED")) << lines.at(2);
  EXPECT_TRUE(Has(lines.at(2), "cancel_origin=local cancel_msg=\"enough\"")) << lines.at(2);

  // A traced ctx: its ids are on the line.
  Ctx traced(crpc_trace_start(ctx.get(), nullptr, nullptr, false));
  EXPECT_EQ(CRPC_OK, Unary(ch.get(), traced.get(), M("Echo"), "x").code);
  ASSERT_EQ(4u, lines.size());
  EXPECT_TRUE(Has(lines.at(3), std::string(" trace_id=") + crpc_trace_id(traced.get()) +
                                   " span_id=" + crpc_trace_span_id(traced.get())))
      << lines.at(3);
}

TEST_F(ClientLoggingTest, StreamFreedWithoutFinishHasNoLine) {
  Lines lines;
  crpc_logging_options o{Sink, &lines};
  auto icpt = crpc_logging_client(&o);
  Server srv;
  auto ch = NewChannel(srv.target(), {&icpt});
  auto ctx = WithTimeout(5 * kSec);
  for (int i = 0; i < 20; i++) {
    crpc_call *raw = nullptr;
    ASSERT_EQ(CRPC_OK, crpc_call_start(ch.get(), ctx.get(), M("Hang").c_str(), nullptr, &raw));
    crpc_call_free(raw);  // abandoned: no status was ever read
  }
  EXPECT_EQ(0u, lines.size());
  // Their records stay until a call at the same address replaces them
  // (or the shard's cap evicts them): at most one per abandoned call.
  size_t after = icpt_calltab_size();
  EXPECT_LE(after, table_before_ + 20);
  // Calls that finish add nothing, and may take the abandoned addresses.
  for (int i = 0; i < 20; i++) EXPECT_EQ(CRPC_OK, Unary(ch.get(), ctx.get(), M("Echo"), "x").code);
  EXPECT_EQ(20u, lines.size());
  EXPECT_LE(icpt_calltab_size(), after);
  table_before_ = icpt_calltab_size();  // what is left is the abandoned ones
}

TEST_F(ClientLoggingTest, DefaultSinkIsStderr) {
  auto icpt = crpc_logging_client(nullptr);
  Server srv;
  auto ch = NewChannel(srv.target(), {&icpt});
  auto ctx = WithTimeout(5 * kSec);
  testing::internal::CaptureStderr();
  EXPECT_EQ(CRPC_OK, Unary(ch.get(), ctx.get(), M("Echo"), "x").code);
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(Has(err, "crpc client call method=/crpc.test.Test/Echo")) << err;
}

TEST_F(ClientLoggingTest, ConcurrentCallsOneLineEach) {
  Lines lines;
  crpc_logging_options o{Sink, &lines};
  auto icpt = crpc_logging_client(&o);
  Server srv;
  auto ch = NewChannel(srv.target(), {&icpt});
  auto ctx = WithTimeout(20 * kSec);
  std::vector<std::thread> ts;
  for (int k = 0; k < 4; k++) {
    ts.emplace_back([&] {
      for (int i = 0; i < 25; i++) EXPECT_EQ(CRPC_OK, Unary(ch.get(), ctx.get(), M("Echo"), "x").code);
    });
  }
  for (auto &t : ts) t.join();
  EXPECT_EQ(100u, lines.size());
  for (size_t i = 0; i < lines.size(); i++) EXPECT_TRUE(Has(lines.at(i), "status=OK"));
}

}  // namespace
