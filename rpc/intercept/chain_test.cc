// The interceptor chain API: order, metadata, messages both ways, final
// status, short-circuit, the ctx rule (failure catalog line 9, DESIGN.md),
// client and server.
#include <atomic>
#include <mutex>

#include "rpc/intercept/icpt_test_util.h"

namespace {

using namespace icpt_test;

// ---- a recording interceptor --------------------------------------------

struct Trace {
  std::mutex mu;
  std::vector<std::string> ev;
  void Add(const std::string &s) {
    std::lock_guard<std::mutex> l(mu);
    ev.push_back(s);
  }
  std::string Join() {
    std::lock_guard<std::mutex> l(mu);
    std::string out;
    for (auto &e : ev) out += (out.empty() ? "" : " ") + e;
    return out;
  }
};

struct Rec {
  std::string name;
  Trace *trace;
};

crpc_code RecCall(crpc_server_call *, const crpc_ctx *ctx, const crpc_server_call_info *,
                  crpc_server_next *next, void *ud) {
  auto *r = static_cast<Rec *>(ud);
  r->trace->Add(r->name + ">");
  crpc_code c = crpc_server_next_call(next, ctx);
  r->trace->Add("<" + r->name);
  return c;
}

crpc_server_interceptor RecIcpt(Rec *r) {
  crpc_server_interceptor i{};
  i.name = r->name.c_str();
  i.call = RecCall;
  i.user_data = r;
  return i;
}

Trace *g_handler_trace = nullptr;
std::atomic<int> g_handler_runs{0};

crpc_code TracedEcho(crpc_server_call *call, const crpc_ctx *, void *) {
  g_handler_runs++;
  if (g_handler_trace) g_handler_trace->Add("handler");
  crpc_message m{};
  crpc_code c = crpc_server_call_recv(call, &m);
  if (c != CRPC_OK) return c;
  c = crpc_server_call_send(call, m.data, m.len);
  free(m.data);
  return c;
}

void AddTracedEcho(crpc_server *s) {
  ASSERT_EQ(CRPC_OK, crpc_server_add_method(s, "/t.T/Echo", CRPC_UNARY, TracedEcho, nullptr));
}

class ChainTest : public LeakCheckTest {
 protected:
  void SetUp() override {
    LeakCheckTest::SetUp();
    g_handler_runs = 0;
    g_handler_trace = nullptr;
  }
};

// ---- server ----------------------------------------------------------------

TEST_F(ChainTest, ServerChainRunsOutermostFirst) {
  Trace t;
  g_handler_trace = &t;
  Rec a{"a", &t}, b{"b", &t};
  auto ia = RecIcpt(&a), ib = RecIcpt(&b);
  {
    Server srv([&](crpc_server *s) {
      AddTracedEcho(s);
      ASSERT_EQ(CRPC_OK, crpc_server_add_interceptor(s, &ia));
      ASSERT_EQ(CRPC_OK, crpc_server_add_interceptor(s, &ib));
    });
    EXPECT_EQ(CRPC_FAILED_PRECONDITION, crpc_server_add_interceptor(srv.get(), &ia));
    auto ch = NewChannel(srv.target());
    auto ctx = WithTimeout(5 * kSec);
    auto r = Unary(ch.get(), ctx.get(), "/t.T/Echo", "hi");
    EXPECT_EQ(CRPC_OK, r.code) << r.message;
    EXPECT_EQ("hi", r.response);
  }
  EXPECT_EQ("a> b> handler <b <a", t.Join());
}

crpc_code MdCall(crpc_server_call *call, const crpc_ctx *ctx, const crpc_server_call_info *info,
                 crpc_server_next *next, void *) {
  std::string user = MdGet(crpc_server_call_request_metadata(call), "x-user");
  crpc_metadata_add_str(crpc_server_call_response_headers(call), "x-seen-user", user.c_str());
  crpc_metadata_add_str(crpc_server_call_trailers(call), "x-method", info->method);
  crpc_code c = crpc_server_next_call(next, ctx);
  if (c == CRPC_NOT_FOUND) {  // the final status is the link's to change
    return crpc_server_call_error(call, CRPC_ABORTED, "remapped by interceptor");
  }
  return c;
}

TEST_F(ChainTest, ServerSeesAndChangesMetadataAndStatus) {
  crpc_server_interceptor i{};
  i.name = "md";
  i.call = MdCall;
  Server srv([&](crpc_server *s) { ASSERT_EQ(CRPC_OK, crpc_server_add_interceptor(s, &i)); });
  auto ch = NewChannel(srv.target());
  auto ctx = WithTimeout(5 * kSec);
  auto md = NewMd({{"x-user", "ann"}});
  crpc_call *raw = nullptr;
  ASSERT_EQ(CRPC_OK, crpc_call_start(ch.get(), ctx.get(), M("Echo").c_str(), md.get(), &raw));
  Call call(raw);
  ASSERT_EQ(CRPC_OK, crpc_call_send(call.get(), "x", 1));
  ASSERT_EQ(CRPC_OK, crpc_call_close_send(call.get()));
  EXPECT_EQ("ann", MdGet(crpc_call_response_headers(call.get()), "x-seen-user"));
  crpc_status st{};
  EXPECT_EQ(CRPC_OK, crpc_call_finish(call.get(), &st));
  EXPECT_EQ(M("Echo"), MdGet(st.trailers, "x-method"));
  crpc_status_clear(&st);

  auto md2 = NewMd({{"x-status", "5"}});
  auto r = Unary(ch.get(), ctx.get(), M("Echo"), "x", md2.get());
  EXPECT_EQ(CRPC_ABORTED, r.code);
  EXPECT_EQ("remapped by interceptor", r.message);
}

crpc_code DenyCall(crpc_server_call *call, const crpc_ctx *, const crpc_server_call_info *,
                   crpc_server_next *, void *) {
  return crpc_server_call_error(call, CRPC_PERMISSION_DENIED, "short-circuited");
}

TEST_F(ChainTest, ServerShortCircuitSkipsHandler) {
  Trace t;
  Rec inner{"inner", &t};
  auto ii = RecIcpt(&inner);
  crpc_server_interceptor deny{};
  deny.name = "deny";
  deny.call = DenyCall;
  Server srv([&](crpc_server *s) {
    AddTracedEcho(s);
    crpc_server_add_interceptor(s, &deny);
    crpc_server_add_interceptor(s, &ii);
  });
  auto ch = NewChannel(srv.target());
  auto ctx = WithTimeout(5 * kSec);
  auto r = Unary(ch.get(), ctx.get(), "/t.T/Echo", "x");
  EXPECT_EQ(CRPC_PERMISSION_DENIED, r.code);
  EXPECT_EQ("short-circuited", r.message);
  EXPECT_EQ(0, g_handler_runs.load());
  EXPECT_EQ("", t.Join());
}

// Message hooks: recv prefixes "in:", drops "drop"; send prefixes "out:".
crpc_code PrefixRecv(crpc_server_call *, const crpc_ctx *, crpc_message *msg,
                     crpc_server_next *next, void *) {
  for (;;) {
    crpc_code c = crpc_server_next_recv(next, msg);
    if (c != CRPC_OK || msg->end) return c;
    if (msg->len == 4 && memcmp(msg->data, "drop", 4) == 0) {
      free(msg->data);
      continue;  // swallowed: receive the next one
    }
    uint8_t *d = static_cast<uint8_t *>(malloc(msg->len + 3));
    memcpy(d, "in:", 3);
    memcpy(d + 3, msg->data, msg->len);
    free(msg->data);
    msg->data = d;
    msg->len += 3;
    return c;
  }
}

crpc_code PrefixSend(crpc_server_call *, const crpc_ctx *, const void *data, size_t len,
                     crpc_server_next *next, void *) {
  std::string s = "out:" + std::string(static_cast<const char *>(data), len);
  return crpc_server_next_send(next, s.data(), s.size());
}

TEST_F(ChainTest, ServerMessagesBothDirectionsBidiAndClientStreaming) {
  crpc_server_interceptor i{};
  i.name = "prefix";
  i.recv = PrefixRecv;
  i.send = PrefixSend;
  Server srv([&](crpc_server *s) { crpc_server_add_interceptor(s, &i); });
  auto ch = NewChannel(srv.target());
  auto ctx = WithTimeout(5 * kSec);
  crpc_call *raw = nullptr;
  ASSERT_EQ(CRPC_OK, crpc_call_start(ch.get(), ctx.get(), M("Chat").c_str(), nullptr, &raw));
  Call call(raw);
  std::string got;
  for (const char *m : {"a", "drop", "b"}) {
    ASSERT_EQ(CRPC_OK, crpc_call_send(call.get(), m, strlen(m)));
  }
  ASSERT_EQ(CRPC_OK, crpc_call_close_send(call.get()));
  ASSERT_EQ(CRPC_OK, Recv(call.get(), &got));
  EXPECT_EQ("out:in:a", got);
  ASSERT_EQ(CRPC_OK, Recv(call.get(), &got));
  EXPECT_EQ("out:in:b", got);
  bool end = false;
  ASSERT_EQ(CRPC_OK, Recv(call.get(), &got, &end));
  EXPECT_TRUE(end);
  EXPECT_EQ(CRPC_OK, crpc_call_finish(call.get(), nullptr));

  // Client streaming: Collect counts what the handler received.
  ASSERT_EQ(CRPC_OK, crpc_call_start(ch.get(), ctx.get(), M("Collect").c_str(), nullptr, &raw));
  Call c2(raw);
  for (const char *m : {"drop", "xy", "drop"}) crpc_call_send(c2.get(), m, strlen(m));
  crpc_call_close_send(c2.get());
  ASSERT_EQ(CRPC_OK, Recv(c2.get(), &got));
  EXPECT_EQ("out:1 5", got);  // one message, "in:xy"
  EXPECT_EQ(CRPC_OK, crpc_call_finish(c2.get(), nullptr));
}

// ---- failure catalog line 9 (DESIGN.md) --------------------------------------

crpc_code RogueBackground(crpc_server_call *, const crpc_ctx *, const crpc_server_call_info *,
                          crpc_server_next *next, void *) {
  return crpc_server_next_call(next, crpc_ctx_background());
}

crpc_code RogueFresh(crpc_server_call *, const crpc_ctx *, const crpc_server_call_info *,
                     crpc_server_next *next, void *) {
  crpc_ctx *fresh = crpc_ctx_with_cancel(crpc_ctx_background());
  crpc_code c = crpc_server_next_call(next, fresh);
  crpc_ctx_release(fresh);
  return c;
}

TEST_F(ChainTest, Catalog9_InterceptorReplacingCallCtxFailsInternal) {
  for (auto fn : {RogueBackground, RogueFresh}) {
    g_handler_runs = 0;
    Trace t;
    Rec inner{"inner", &t};
    auto ii = RecIcpt(&inner);
    crpc_server_interceptor rogue{};
    rogue.name = "rogue-ctx-swapper";
    rogue.call = fn;
    Server srv([&](crpc_server *s) {
      AddTracedEcho(s);
      crpc_server_add_interceptor(s, &rogue);
      crpc_server_add_interceptor(s, &ii);
    });
    auto ch = NewChannel(srv.target());
    auto ctx = WithTimeout(5 * kSec);
    testing::internal::CaptureStderr();
    auto r = Unary(ch.get(), ctx.get(), "/t.T/Echo", "x");
    std::string log = testing::internal::GetCapturedStderr();
    EXPECT_EQ(CRPC_INTERNAL, r.code);
    EXPECT_NE(std::string::npos, r.message.find("rogue-ctx-swapper")) << r.message;
    EXPECT_NE(std::string::npos, log.find("interceptor \"rogue-ctx-swapper\"")) << log;
    EXPECT_NE(std::string::npos, log.find("/t.T/Echo")) << log;
    EXPECT_EQ(0, g_handler_runs.load());
    EXPECT_EQ("", t.Join());  // the links after it never ran either
  }
}

static int g_key;
std::atomic<bool> g_saw_value{false};

crpc_code ValueCall(crpc_server_call *, const crpc_ctx *ctx, const crpc_server_call_info *,
                    crpc_server_next *next, void *) {
  crpc_ctx *v = crpc_ctx_with_value(ctx, &g_key, (void *)"v1", nullptr);
  crpc_code c = crpc_server_next_call(next, v);
  crpc_ctx_release(v);
  return c;
}

crpc_code ReadValue(crpc_server_call *call, const crpc_ctx *ctx, void *) {
  const char *v = static_cast<const char *>(crpc_ctx_value(ctx, &g_key));
  g_saw_value = v != nullptr && strcmp(v, "v1") == 0;
  crpc_message m{};
  crpc_server_call_recv(call, &m);
  free(m.data);
  return crpc_server_call_send(call, "ok", 2);
}

crpc_code ShortDeadline(crpc_server_call *, const crpc_ctx *ctx, const crpc_server_call_info *,
                        crpc_server_next *next, void *) {
  crpc_ctx *d = crpc_ctx_with_timeout(ctx, 50 * kMs);
  crpc_code c = crpc_server_next_call(next, d);
  crpc_ctx_release(d);
  return c;
}

TEST_F(ChainTest, DescendantCtxIsAcceptedAndItsEndEndsTheCall) {
  crpc_server_interceptor val{};
  val.name = "value";
  val.call = ValueCall;
  crpc_server_interceptor dl{};
  dl.name = "deadline";
  dl.call = ShortDeadline;
  Server srv([&](crpc_server *s) {
    crpc_server_add_method(s, "/t.T/Value", CRPC_UNARY, ReadValue, nullptr);
    crpc_server_add_interceptor(s, &val);
    crpc_server_add_interceptor(s, &dl);
  });
  auto ch = NewChannel(srv.target());
  auto ctx = WithTimeout(10 * kSec);
  auto r = Unary(ch.get(), ctx.get(), "/t.T/Value", "x");
  EXPECT_EQ(CRPC_OK, r.code) << r.message;
  EXPECT_TRUE(g_saw_value.load());
  // Hang waits on its ctx: the link's 50 ms deadline ends the whole call.
  int64_t t0 = crpc_now_ns();
  r = Unary(ch.get(), ctx.get(), M("Hang"), "x");
  EXPECT_EQ(CRPC_DEADLINE_EXCEEDED, r.code) << r.message;
  EXPECT_LT(crpc_now_ns() - t0, 3 * kSec);
}

// ---- client ----------------------------------------------------------------

struct CRec {
  std::string name;
  Trace *trace;
  // crpc_client_next_call before and after next_start, and finish's call.
  crpc_call *before = nullptr, *after = nullptr, *finished = nullptr;
};

crpc_code CStart(const crpc_ctx *ctx, crpc_client_call_info *info, crpc_metadata *md,
                 crpc_client_next *next, void *ud) {
  auto *r = static_cast<CRec *>(ud);
  r->trace->Add(r->name + ">");
  crpc_metadata_add_str(md, ("x-md-" + r->name).c_str(), info->method);
  r->before = crpc_client_next_call(next);
  crpc_code c = crpc_client_next_start(next, ctx, md);
  r->after = crpc_client_next_call(next);
  r->trace->Add("<" + r->name);
  return c;
}

crpc_code CSend(crpc_call *, const void *data, size_t len, crpc_client_next *next, void *ud) {
  auto *r = static_cast<CRec *>(ud);
  std::string s = r->name + ":" + std::string(static_cast<const char *>(data), len);
  return crpc_client_next_send(next, s.data(), s.size());
}

crpc_code CRecv(crpc_call *, crpc_message *msg, crpc_client_next *next, void *ud) {
  auto *r = static_cast<CRec *>(ud);
  crpc_code c = crpc_client_next_recv(next, msg);
  if (c == CRPC_OK && !msg->end) {
    std::string s = std::string(reinterpret_cast<char *>(msg->data), msg->len) + "|" + r->name;
    free(msg->data);
    msg->data = static_cast<uint8_t *>(malloc(s.size()));
    memcpy(msg->data, s.data(), s.size());
    msg->len = s.size();
  }
  return c;
}

crpc_code CFinish(crpc_call *call, crpc_status *st, crpc_client_next *next, void *ud) {
  auto *r = static_cast<CRec *>(ud);
  crpc_code c = crpc_client_next_finish(next, st);
  r->finished = call;
  r->trace->Add("fin-" + r->name + "(" + crpc_call_method(call) + ")");
  if (c == CRPC_NOT_FOUND) {
    free(st->message);
    st->message = strdup("client remapped");
    return CRPC_FAILED_PRECONDITION;
  }
  return c;
}

crpc_client_interceptor CIcpt(CRec *r) {
  crpc_client_interceptor i{};
  i.name = r->name.c_str();
  i.start = CStart;
  i.send = CSend;
  i.recv = CRecv;
  i.finish = CFinish;
  i.user_data = r;
  return i;
}

TEST_F(ChainTest, ClientChainOrderMetadataMessagesStatus) {
  Server srv;
  Trace t;
  CRec a{"a", &t}, b{"b", &t};
  auto ia = CIcpt(&a), ib = CIcpt(&b);
  auto ch = NewChannel(srv.target(), {&ia, &ib});
  auto ctx = WithTimeout(5 * kSec);
  auto md = NewMd({{"x-echo-md", "1"}});
  auto r = Unary(ch.get(), ctx.get(), M("Echo"), "m", md.get());
  EXPECT_EQ(CRPC_OK, r.code) << r.message;
  // a (outermost) wraps first on the way out and last on the way in.
  EXPECT_EQ("b:a:m|b|a", r.response);
  EXPECT_EQ(M("Echo"), MdGet(r.trailers.get(), "x-trl-a"));
  EXPECT_EQ(M("Echo"), MdGet(r.trailers.get(), "x-trl-b"));
  EXPECT_EQ("a> b> <b <a fin-b(" + M("Echo") + ") fin-a(" + M("Echo") + ")", t.Join());
  // crpc_client_next_call: nothing before next_start, then the call that
  // finish later gets, the same for every link.
  EXPECT_EQ(nullptr, a.before);
  EXPECT_EQ(nullptr, b.before);
  EXPECT_NE(nullptr, a.after);
  EXPECT_EQ(a.after, a.finished);
  EXPECT_EQ(a.after, b.after);
  auto md2 = NewMd({{"x-status", "5"}});
  r = Unary(ch.get(), ctx.get(), M("Echo"), "m", md2.get());
  EXPECT_EQ(CRPC_FAILED_PRECONDITION, r.code);
  EXPECT_EQ("client remapped", r.message);
  auto cfg = CIcpt(&a);
  EXPECT_EQ(CRPC_FAILED_PRECONDITION, crpc_channel_add_interceptor(ch.get(), &cfg));
}

crpc_code CDeny(const crpc_ctx *, crpc_client_call_info *, crpc_metadata *, crpc_client_next *,
                void *) {
  return CRPC_UNAUTHENTICATED;
}
crpc_code CRogue(const crpc_ctx *, crpc_client_call_info *info, crpc_metadata *md,
                 crpc_client_next *next, void *) {
  (void)info;
  return crpc_client_next_start(next, crpc_ctx_background(), md);
}
crpc_code CDeadline(const crpc_ctx *ctx, crpc_client_call_info *info, crpc_metadata *md,
                    crpc_client_next *next, void *) {
  // Long enough for a brand-new channel to connect and the request to
  // reach the server (which the test checks) on a loaded sanitizer run: 50 ms
  // once ran out first there.
  info->deadline_ns = crpc_now_ns() + 100 * kSlow * kMs;
  return crpc_client_next_start(next, ctx, md);
}

TEST_F(ChainTest, ClientShortCircuitRogueCtxAndDeadline) {
  std::atomic<int> calls{0};
  crpc_server_interceptor count{};
  count.name = "count";
  count.user_data = &calls;
  count.call = [](crpc_server_call *, const crpc_ctx *ctx, const crpc_server_call_info *,
                  crpc_server_next *next, void *ud) {
    ++*static_cast<std::atomic<int> *>(ud);
    return crpc_server_next_call(next, ctx);
  };
  Server srv([&](crpc_server *s) { crpc_server_add_interceptor(s, &count); });
  auto ctx = WithTimeout(5 * kSec);

  crpc_client_interceptor deny{};
  deny.name = "deny";
  deny.start = CDeny;
  auto ch = NewChannel(srv.target(), {&deny});
  EXPECT_EQ(CRPC_UNAUTHENTICATED, Unary(ch.get(), ctx.get(), M("Echo"), "x").code);

  crpc_client_interceptor rogue{};
  rogue.name = "client-rogue";
  rogue.start = CRogue;
  auto ch2 = NewChannel(srv.target(), {&rogue});
  testing::internal::CaptureStderr();
  EXPECT_EQ(CRPC_INTERNAL, Unary(ch2.get(), ctx.get(), M("Echo"), "x").code);
  std::string log = testing::internal::GetCapturedStderr();
  EXPECT_NE(std::string::npos, log.find("\"client-rogue\"")) << log;
  EXPECT_EQ(0, calls.load());

  crpc_client_interceptor dl{};
  dl.name = "deadline";
  dl.start = CDeadline;
  auto ch3 = NewChannel(srv.target(), {&dl});
  int64_t t0 = crpc_now_ns();
  EXPECT_EQ(CRPC_DEADLINE_EXCEEDED, Unary(ch3.get(), ctx.get(), M("Hang"), "x").code);
  EXPECT_LT(crpc_now_ns() - t0, 3 * kSec);
  EXPECT_EQ(1, calls.load());
}

}  // namespace
