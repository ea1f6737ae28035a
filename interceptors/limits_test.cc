// limits: per-server max concurrent calls -> RESOURCE_EXHAUSTED.
#include "interceptors/limits.h"

#include "rpc/intercept/icpt_test_util.h"

namespace {

using namespace icpt_test;

class LimitsTest : public LeakCheckTest {};

TEST_F(LimitsTest, CallsOverTheCapAreRefusedAndSlotsComeBack) {
  crpc_limits *l = crpc_limits_new(2);
  auto icpt = crpc_limits_server(l);
  {
    Server srv([&](crpc_server *s) { crpc_server_add_interceptor(s, &icpt); });
    auto ch = NewChannel(srv.target());
    auto hang = WithCancel();
    std::vector<std::thread> ts;
    for (int i = 0; i < 2; i++) {
      ts.emplace_back([&] { Unary(ch.get(), hang.get(), M("Hang"), "x"); });
    }
    ASSERT_TRUE(Eventually([&] { return crpc_limits_in_flight(l) == 2; }, 5000));
    auto ctx = WithTimeout(5 * kSec);
    auto r = Unary(ch.get(), ctx.get(), M("Echo"), "x");
    EXPECT_EQ(CRPC_RESOURCE_EXHAUSTED, r.code);
    EXPECT_EQ("too many concurrent calls (max 2)", r.message);
    EXPECT_EQ(1u, crpc_limits_rejected(l));
    crpc_ctx_cancel(hang.get(), CRPC_CANCELLED, "done");
    for (auto &t : ts) t.join();
    ASSERT_TRUE(Eventually([&] { return crpc_limits_in_flight(l) == 0; }, 5000));
    EXPECT_EQ(CRPC_OK, Unary(ch.get(), ctx.get(), M("Echo"), "x").code);
  }
  crpc_limits_free(l);
}

}  // namespace
