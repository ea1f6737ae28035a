// deadline: a default for calls that carry none, and a server-side cap.
#include "interceptors/deadline.h"

#include <atomic>

#include "rpc/intercept/icpt_test_util.h"

namespace {

using namespace icpt_test;

std::atomic<int64_t> g_remaining{-2};

crpc_code Remaining(crpc_server_call *call, const crpc_ctx *ctx, void *) {
  int64_t r = crpc_ctx_remaining(ctx);
  g_remaining = r == CRPC_NO_DEADLINE ? -1 : r;
  crpc_message m{};
  crpc_server_call_recv(call, &m);
  free(m.data);
  return crpc_server_call_send(call, "ok", 2);
}

class DeadlineTest : public LeakCheckTest {};

TEST_F(DeadlineTest, ServerDefaultForCallsWithoutDeadline) {
  crpc_deadline_options o{};
  o.default_timeout_ns = 80 * kMs;
  auto icpt = crpc_deadline_server(&o);
  Server srv([&](crpc_server *s) {
    crpc_server_add_method(s, "/t.T/Rem", CRPC_UNARY, Remaining, nullptr);
    crpc_server_add_interceptor(s, &icpt);
  });
  auto ch = NewChannel(srv.target());
  auto ctx = WithCancel();
  int64_t t0 = crpc_now_ns();
  auto r = Unary(ch.get(), ctx.get(), M("Hang"), "x");
  EXPECT_EQ(CRPC_DEADLINE_EXCEEDED, r.code) << r.message;
  EXPECT_GE(crpc_now_ns() - t0, 70 * kMs);
  EXPECT_LT(crpc_now_ns() - t0, 5 * kSec);
  EXPECT_EQ(CRPC_OK, Unary(ch.get(), ctx.get(), "/t.T/Rem", "x").code);
  EXPECT_GT(g_remaining.load(), 0);
  EXPECT_LE(g_remaining.load(), 80 * kMs);
  // A call with its own (longer) deadline keeps it: no cap set.
  auto ctx2 = WithTimeout(10 * kSec);
  EXPECT_EQ(CRPC_OK, Unary(ch.get(), ctx2.get(), "/t.T/Rem", "x").code);
  EXPECT_GT(g_remaining.load(), 5 * kSec);
}

TEST_F(DeadlineTest, ServerCapShortensLongDeadlines) {
  crpc_deadline_options o{};
  o.max_timeout_ns = 100 * kMs;
  auto icpt = crpc_deadline_server(&o);
  Server srv([&](crpc_server *s) {
    crpc_server_add_method(s, "/t.T/Rem", CRPC_UNARY, Remaining, nullptr);
    crpc_server_add_interceptor(s, &icpt);
  });
  auto ch = NewChannel(srv.target());
  auto ctx = WithTimeout(10 * kSec);
  EXPECT_EQ(CRPC_OK, Unary(ch.get(), ctx.get(), "/t.T/Rem", "x").code);
  EXPECT_LE(g_remaining.load(), 100 * kMs);
  auto shorter = WithTimeout(50 * kMs * kSlow);
  EXPECT_EQ(CRPC_OK, Unary(ch.get(), shorter.get(), "/t.T/Rem", "x").code);
  EXPECT_LE(g_remaining.load(), 50 * kMs * kSlow);  // a shorter one is kept
  int64_t t0 = crpc_now_ns();
  auto r = Unary(ch.get(), ctx.get(), M("Hang"), "x");
  EXPECT_EQ(CRPC_DEADLINE_EXCEEDED, r.code) << r.message;
  EXPECT_LT(crpc_now_ns() - t0, 5 * kSec);
}

TEST_F(DeadlineTest, ClientDefaultSentAsGrpcTimeout) {
  Server srv([&](crpc_server *s) {
    crpc_server_add_method(s, "/t.T/Rem", CRPC_UNARY, Remaining, nullptr);
  });
  crpc_deadline_options o{};
  o.default_timeout_ns = 2 * kSec;
  o.max_timeout_ns = 3 * kSec;
  auto icpt = crpc_deadline_client(&o);
  auto ch = NewChannel(srv.target(), {&icpt});
  auto ctx = WithCancel();
  EXPECT_EQ(CRPC_OK, Unary(ch.get(), ctx.get(), "/t.T/Rem", "x").code);
  EXPECT_GT(g_remaining.load(), 1 * kSec);
  EXPECT_LE(g_remaining.load(), 2 * kSec);
  auto longer = WithTimeout(60 * kSec);
  EXPECT_EQ(CRPC_OK, Unary(ch.get(), longer.get(), "/t.T/Rem", "x").code);
  EXPECT_LE(g_remaining.load(), 3 * kSec);  // capped
}

}  // namespace
