// The cancel guarantee holds whatever the interceptors do: once the client
// has cancelled, the handler ctx is done and every streaming send returns
// CANCELLED without writing, with send hooks that delay, wrap or swallow
// messages, and recv hooks that swallow them.
#include <time.h>

#include <atomic>

#include "rpc/intercept/icpt_test_util.h"

namespace {

using namespace icpt_test;

struct Obs {
  std::atomic<bool> done{false};
  std::atomic<int> first_fail{-1};
  std::atomic<bool> ctx_done_at_fail{false};
  std::atomic<int> later_not_cancelled{0};
  std::atomic<int> sent{0};
  std::atomic<int> late_writes{0};  // reached the wire side OK after done
  std::atomic<bool> started{false};  // the handler runs
};
Obs *g_obs = nullptr;

// Server streaming: 1 KiB messages flat out until a send fails, then three
// more sends that must fail the same way, at once.
crpc_code Flood(crpc_server_call *call, const crpc_ctx *ctx, void *) {
  g_obs->started = true;
  crpc_message m{};
  crpc_server_call_recv(call, &m);
  free(m.data);
  std::string buf(1024, 'x');
  crpc_code c;
  while ((c = crpc_server_call_send(call, buf.data(), buf.size())) == CRPC_OK) g_obs->sent++;
  g_obs->ctx_done_at_fail = crpc_ctx_is_done(ctx);
  g_obs->first_fail = c;
  for (int i = 0; i < 3; i++) {
    if (crpc_server_call_send(call, buf.data(), buf.size()) != CRPC_CANCELLED) {
      g_obs->later_not_cancelled++;
    }
  }
  g_obs->done = true;
  return c;
}

// Bidi: receives until recv fails.
crpc_code Drain(crpc_server_call *call, const crpc_ctx *ctx, void *) {
  g_obs->started = true;
  crpc_code c;
  for (;;) {
    crpc_message m{};
    c = crpc_server_call_recv(call, &m);
    free(m.data);
    if (c != CRPC_OK || m.end) break;
  }
  g_obs->ctx_done_at_fail = crpc_ctx_is_done(ctx);
  g_obs->first_fail = c;
  if (crpc_server_call_send(call, "x", 1) != CRPC_CANCELLED) g_obs->later_not_cancelled++;
  g_obs->done = true;
  return c;
}

// Next to the wire (registered first): counts writes that went through
// although the call was already done.
crpc_code WireCounter(crpc_server_call *, const crpc_ctx *ctx, const void *data, size_t len,
                      crpc_server_next *next, void *) {
  bool was_done = crpc_ctx_is_done(ctx);
  crpc_code c = crpc_server_next_send(next, data, len);
  if (was_done && c == CRPC_OK) g_obs->late_writes++;
  return c;
}

crpc_code DelaySend(crpc_server_call *, const crpc_ctx *, const void *data, size_t len,
                    crpc_server_next *next, void *) {
  struct timespec ts = {0, 2 * 1000 * 1000};  // not ctx-aware, on purpose
  nanosleep(&ts, nullptr);
  return crpc_server_next_send(next, data, len);
}

crpc_code WrapSend(crpc_server_call *, const crpc_ctx *, const void *data, size_t len,
                   crpc_server_next *next, void *) {
  std::string s = "[" + std::string(static_cast<const char *>(data), len) + "]";
  return crpc_server_next_send(next, s.data(), s.size());
}

crpc_code SwallowSend(crpc_server_call *, const crpc_ctx *, const void *, size_t,
                      crpc_server_next *, void *) {
  return CRPC_OK;  // never passes anything on, always says OK
}

crpc_code SwallowRecv(crpc_server_call *, const crpc_ctx *, crpc_message *msg,
                      crpc_server_next *next, void *) {
  for (;;) {  // drops every message; only the end or an error gets through
    crpc_code c = crpc_server_next_recv(next, msg);
    if (c != CRPC_OK || msg->end) return c;
    free(msg->data);
    msg->data = nullptr;
  }
}

struct Case {
  const char *name;
  crpc_code (*send)(crpc_server_call *, const crpc_ctx *, const void *, size_t,
                    crpc_server_next *, void *);
  crpc_code (*recv)(crpc_server_call *, const crpc_ctx *, crpc_message *, crpc_server_next *,
                    void *);
};

class CancelGuaranteeTest : public LeakCheckTest, public ::testing::WithParamInterface<Case> {};

TEST_P(CancelGuaranteeTest, ClientCancelEndsHandlerAndSendsFailWithoutWriting) {
  const Case &cs = GetParam();
  crpc_server_interceptor wire{};
  wire.name = "wire-counter";
  wire.send = WireCounter;
  crpc_server_interceptor icpt{};
  icpt.name = cs.name;
  icpt.send = cs.send;
  icpt.recv = cs.recv;
  for (int round = 0; round < 3; round++) {
    Obs obs;
    g_obs = &obs;
    Server srv([&](crpc_server *s) {
      crpc_server_add_method(s, "/t.T/Flood", CRPC_SERVER_STREAMING, Flood, nullptr);
      crpc_server_add_method(s, "/t.T/Drain", CRPC_BIDI_STREAMING, Drain, nullptr);
      crpc_server_add_interceptor(s, &wire);
      crpc_server_add_interceptor(s, &icpt);
    });
    auto ch = NewChannel(srv.target());
    auto ctx = WithCancel();
    crpc_call *raw = nullptr;
    const char *method = cs.recv ? "/t.T/Drain" : "/t.T/Flood";
    ASSERT_EQ(CRPC_OK, crpc_call_start(ch.get(), ctx.get(), method, nullptr, &raw));
    Call call(raw);
    if (cs.recv) {
      for (int i = 0; i < 20; i++) ASSERT_EQ(CRPC_OK, crpc_call_send(call.get(), "m", 1));
    } else {
      ASSERT_EQ(CRPC_OK, crpc_call_send(call.get(), "go", 2));
      ASSERT_EQ(CRPC_OK, crpc_call_close_send(call.get()));
      if (cs.send != SwallowSend) {  // the stream really flows
        std::string got;
        ASSERT_EQ(CRPC_OK, Recv(call.get(), &got));
        EXPECT_EQ(cs.send == WrapSend ? 1026u : 1024u, got.size());
      }
    }
    /* A handler whose ctx is done before it is dispatched never runs (a
     * loaded machine can take longer than the pause below to dispatch):
     * cancel once it runs. */
    ASSERT_TRUE(Eventually([&] { return obs.started.load(); }, 5000)) << cs.name;
    std::this_thread::sleep_for(std::chrono::milliseconds(10 + round * 10));
    crpc_ctx_cancel(ctx.get(), CRPC_CANCELLED, "client gave up");
    ASSERT_TRUE(Eventually([&] { return obs.done.load(); }, 5000)) << cs.name;
    EXPECT_EQ(CRPC_CANCELLED, obs.first_fail.load()) << cs.name;
    EXPECT_TRUE(obs.ctx_done_at_fail.load()) << cs.name;
    EXPECT_EQ(0, obs.later_not_cancelled.load()) << cs.name;
    EXPECT_EQ(0, obs.late_writes.load()) << cs.name;
    call.reset();
    g_obs = nullptr;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Interceptors, CancelGuaranteeTest,
    ::testing::Values(Case{"delay", DelaySend, nullptr}, Case{"wrap", WrapSend, nullptr},
                      Case{"swallow", SwallowSend, nullptr},
                      Case{"swallow_recv", nullptr, SwallowRecv}),
    [](const ::testing::TestParamInfo<Case> &i) { return std::string(i.param.name); });

}  // namespace
