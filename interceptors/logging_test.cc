// logging: one structured line per call with method, peer, status,
// duration and the cancel cause and origin.
#include "interceptors/logging.h"

#include <mutex>

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
};

void Sink(void *ud, const char *line) {
  auto *l = static_cast<Lines *>(ud);
  std::lock_guard<std::mutex> g(l->mu);
  l->v.push_back(line);
}

class LoggingTest : public LeakCheckTest {};

TEST_F(LoggingTest, OneLinePerCallWithStatusDurationAndCancelCause) {
  Lines lines;
  crpc_logging_options o{Sink, &lines};
  auto icpt = crpc_logging_server(&o);
  auto shortdl = ShortDeadlineOnRequest();
  Server srv([&](crpc_server *s) {
    crpc_server_add_interceptor(s, &icpt);
    crpc_server_add_interceptor(s, &shortdl);
  });
  auto ch = NewChannel(srv.target());
  auto ctx = WithTimeout(5 * kSec);
  EXPECT_EQ(CRPC_OK, Unary(ch.get(), ctx.get(), M("Echo"), "x").code);
  ASSERT_TRUE(Eventually([&] { return lines.size() == 1; }, 2000));
  std::string l0 = lines.at(0);
  EXPECT_NE(std::string::npos, l0.find("method=/crpc.test.Test/Echo")) << l0;
  EXPECT_NE(std::string::npos, l0.find("peer=ipv4:127.0.0.1:")) << l0;
  EXPECT_NE(std::string::npos, l0.find("status=OK")) << l0;
  EXPECT_NE(std::string::npos, l0.find("duration_us=")) << l0;
  EXPECT_NE(std::string::npos, l0.find("cancel_origin=none")) << l0;

  auto md = NewMd({{"x-status", "5"}});
  EXPECT_EQ(CRPC_NOT_FOUND, Unary(ch.get(), ctx.get(), M("Echo"), "x", md.get()).code);
  ASSERT_TRUE(Eventually([&] { return lines.size() == 2; }, 2000));
  EXPECT_NE(std::string::npos, lines.at(1).find("status=NOT_FOUND")) << lines.at(1);

  // Cancelled by the client: the cause and its origin are in the line.
  auto c2 = WithCancel();
  std::thread t([&] { Unary(ch.get(), c2.get(), M("Hang"), "x"); });
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  crpc_ctx_cancel(c2.get(), CRPC_CANCELLED, "bye");
  t.join();
  ASSERT_TRUE(Eventually([&] { return lines.size() == 3; }, 2000));
  std::string l2 = lines.at(2);
  EXPECT_NE(std::string::npos, l2.find("method=/crpc.test.Test/Hang")) << l2;
  EXPECT_NE(std::string::npos, l2.find("status=CANCELLED")) << l2;
  EXPECT_NE(std::string::npos, l2.find("cancel_code=CANCELLED")) << l2;
  EXPECT_NE(std::string::npos, l2.find("cancel_origin=peer_reset")) << l2;
  EXPECT_NE(std::string::npos, l2.find("cancel_msg=\"peer reset the stream")) << l2;

  // A deadline (server-side, see ShortDeadlineOnRequest).
  auto shortmd = NewMd({{"x-short", "1"}});
  EXPECT_EQ(CRPC_DEADLINE_EXCEEDED, Unary(ch.get(), ctx.get(), M("Hang"), "x", shortmd.get()).code);
  ASSERT_TRUE(Eventually([&] { return lines.size() == 4; }, 2000));
  std::string l3 = lines.at(3);
  EXPECT_NE(std::string::npos, l3.find("status=DEADLINE_EXCEEDED")) << l3;
  EXPECT_NE(std::string::npos, l3.find("cancel_origin=deadline")) << l3;
}

TEST_F(LoggingTest, DefaultSinkIsStderr) {
  auto icpt = crpc_logging_server(nullptr);
  Server srv([&](crpc_server *s) { crpc_server_add_interceptor(s, &icpt); });
  auto ch = NewChannel(srv.target());
  auto ctx = WithTimeout(5 * kSec);
  testing::internal::CaptureStderr();
  EXPECT_EQ(CRPC_OK, Unary(ch.get(), ctx.get(), M("Echo"), "x").code);
  Eventually([] { return false; }, 50);  // the line follows the response
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(std::string::npos, err.find("crpc call method=/crpc.test.Test/Echo")) << err;
}

}  // namespace
