// tracing: a trace id from incoming metadata (or made) is put on the ctx
// and forwarded on downstream calls made with that ctx.
#include "interceptors/tracing.h"

#include <mutex>

#include "rpc/intercept/icpt_test_util.h"

namespace {

using namespace icpt_test;

std::mutex g_mu;
std::string g_seen_front, g_seen_back;
crpc_channel *g_back = nullptr;

crpc_code Back(crpc_server_call *call, const crpc_ctx *ctx, void *) {
  {
    std::lock_guard<std::mutex> l(g_mu);
    const char *id = crpc_trace_id(ctx);
    g_seen_back = id ? id : "<none>";
  }
  crpc_message m{};
  crpc_server_call_recv(call, &m);
  free(m.data);
  return crpc_server_call_send(call, "b", 1);
}

crpc_code Front(crpc_server_call *call, const crpc_ctx *ctx, void *) {
  {
    std::lock_guard<std::mutex> l(g_mu);
    const char *id = crpc_trace_id(ctx);
    g_seen_front = id ? id : "<none>";
  }
  crpc_message m{};
  crpc_server_call_recv(call, &m);
  free(m.data);
  crpc_message resp{};
  crpc_code c = crpc_unary_call(g_back, ctx, "/t.T/Back", nullptr, "x", 1, &resp, nullptr);
  free(resp.data);
  if (c != CRPC_OK) return c;
  return crpc_server_call_send(call, "f", 1);
}

class TracingTest : public LeakCheckTest {};

TEST_F(TracingTest, IdFromMetadataOrMadeIsOnCtxAndForwarded) {
  auto st = crpc_tracing_server();
  auto ct = crpc_tracing_client();
  Server back([&](crpc_server *s) {
    crpc_server_add_method(s, "/t.T/Back", CRPC_UNARY, Back, nullptr);
    crpc_server_add_interceptor(s, &st);
  });
  auto back_ch = NewChannel(back.target(), {&ct});
  g_back = back_ch.get();
  Server front([&](crpc_server *s) {
    crpc_server_add_method(s, "/t.T/Front", CRPC_UNARY, Front, nullptr);
    crpc_server_add_interceptor(s, &st);
  });
  auto ch = NewChannel(front.target());
  auto ctx = WithTimeout(5 * kSec);

  auto md = NewMd({{"x-trace-id", "abc-123"}});
  crpc_call *raw = nullptr;
  ASSERT_EQ(CRPC_OK, crpc_call_start(ch.get(), ctx.get(), "/t.T/Front", md.get(), &raw));
  Call call(raw);
  crpc_call_send(call.get(), "x", 1);
  crpc_call_close_send(call.get());
  EXPECT_EQ("abc-123", MdGet(crpc_call_response_headers(call.get()), "x-trace-id"));
  EXPECT_EQ(CRPC_OK, crpc_call_finish(call.get(), nullptr));
  call.reset();
  {
    std::lock_guard<std::mutex> l(g_mu);
    EXPECT_EQ("abc-123", g_seen_front);
    EXPECT_EQ("abc-123", g_seen_back);
  }

  // No id (or an invalid one): one is made, and still forwarded.
  auto junk = NewMd({{"x-trace-id", "no spaces allowed"}});
  EXPECT_EQ(CRPC_OK, Unary(ch.get(), ctx.get(), "/t.T/Front", "x", junk.get()).code);
  {
    std::lock_guard<std::mutex> l(g_mu);
    EXPECT_EQ(32u, g_seen_front.size()) << g_seen_front;
    EXPECT_EQ(g_seen_front, g_seen_back);
  }
  EXPECT_EQ(nullptr, crpc_trace_id(ctx.get()));
  back_ch.reset();
  g_back = nullptr;
}

}  // namespace
