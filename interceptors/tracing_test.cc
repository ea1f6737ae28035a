// tracing: W3C traceparent / tracestate through a client, a front server
// and the back server it calls with its handler's ctx; malformed headers
// restart the trace; x-trace-id still works where the options allow it.
#include "interceptors/tracing.h"

#include <map>
#include <mutex>

#include "rpc/intercept/icpt_test_util.h"

namespace {

using namespace icpt_test;

// What a handler saw: its ctx's trace and the request headers.
struct Seen {
  std::string trace_id, span_id, parent_id, state, traceparent_hdr, tracestate_hdr, x_hdr;
  bool sampled = false;
};

std::mutex g_mu;
std::map<std::string, Seen> g_seen;  // by "front" / "back"
crpc_channel *g_back = nullptr;

std::string Or(const char *s) { return s != nullptr ? s : "<none>"; }

void Record(const char *who, crpc_server_call *call, const crpc_ctx *ctx) {
  Seen s;
  s.trace_id = Or(crpc_trace_id(ctx));
  s.span_id = Or(crpc_trace_span_id(ctx));
  s.parent_id = Or(crpc_trace_parent_id(ctx));
  s.state = Or(crpc_trace_state(ctx));
  s.sampled = crpc_trace_sampled(ctx);
  const crpc_metadata *md = crpc_server_call_request_metadata(call);
  s.traceparent_hdr = MdGet(md, "traceparent");
  s.tracestate_hdr = MdGet(md, "tracestate");
  s.x_hdr = MdGet(md, "x-trace-id");
  std::lock_guard<std::mutex> l(g_mu);
  g_seen[who] = s;
}

Seen Get(const char *who) {
  std::lock_guard<std::mutex> l(g_mu);
  return g_seen[who];
}

crpc_code Back(crpc_server_call *call, const crpc_ctx *ctx, void *) {
  Record("back", call, ctx);
  crpc_message m{};
  crpc_server_call_recv(call, &m);
  free(m.data);
  return crpc_server_call_send(call, "b", 1);
}

crpc_code Front(crpc_server_call *call, const crpc_ctx *ctx, void *) {
  Record("front", call, ctx);
  crpc_message m{};
  crpc_server_call_recv(call, &m);
  free(m.data);
  crpc_message resp{};
  crpc_code c = crpc_unary_call(g_back, ctx, "/t.T/Back", nullptr, "x", 1, &resp, nullptr);
  free(resp.data);
  if (c != CRPC_OK) return c;
  return crpc_server_call_send(call, "f", 1);
}

bool IsHex(const std::string &s, size_t n) {
  if (s.size() != n) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return s != std::string(n, '0');
}

// A client -> front -> back topology; both servers run `sopts`, the
// front's downstream channel `copts`.
class TracingTest : public LeakCheckTest {
 protected:
  void Start(const crpc_tracing_options *sopts = nullptr,
             const crpc_tracing_options *copts = nullptr) {
    st_ = crpc_tracing_server_with(sopts);
    ct_ = crpc_tracing_client_with(copts);
    back_.reset(new Server([&](crpc_server *s) {
      crpc_server_add_method(s, "/t.T/Back", CRPC_UNARY, Back, nullptr);
      crpc_server_add_interceptor(s, &st_);
    }));
    back_ch_ = NewChannel(back_->target(), {&ct_});
    g_back = back_ch_.get();
    front_.reset(new Server([&](crpc_server *s) {
      crpc_server_add_method(s, "/t.T/Front", CRPC_UNARY, Front, nullptr);
      crpc_server_add_interceptor(s, &st_);
    }));
    {
      std::lock_guard<std::mutex> l(g_mu);
      g_seen.clear();
    }
  }
  void TearDown() override {
    front_.reset();
    back_ch_.reset();
    g_back = nullptr;
    back_.reset();
    LeakCheckTest::TearDown();
  }
  // One call to Front with these request headers over a plain channel.
  crpc_code CallFront(std::initializer_list<std::pair<std::string, std::string>> md,
                      std::string *x_echo = nullptr) {
    auto ch = NewChannel(front_->target());
    auto ctx = WithTimeout(5 * kSec);
    auto m = NewMd(md);
    crpc_call *raw = nullptr;
    crpc_code rc = crpc_call_start(ch.get(), ctx.get(), "/t.T/Front", m.get(), &raw);
    if (rc != CRPC_OK) return rc;
    Call call(raw);
    crpc_call_send(call.get(), "x", 1);
    crpc_call_close_send(call.get());
    if (x_echo != nullptr) *x_echo = MdGet(crpc_call_response_headers(call.get()), "x-trace-id");
    return crpc_call_finish(call.get(), nullptr);
  }

  crpc_server_interceptor st_{};
  crpc_client_interceptor ct_{};
  std::unique_ptr<Server> back_, front_;
  Channel back_ch_;
};

const char kTrace[] = "4bf92f3577b34da6a3ce929d0e0e4736";
const char kParent[] = "00f067aa0ba902b7";

TEST_F(TracingTest, TraceparentChainsClientFrontBack) {
  Start();
  // The client starts a trace on its ctx; its channel has the client
  // interceptor, so the call carries it.
  auto ct = crpc_tracing_client();
  auto ch = NewChannel(front_->target(), {&ct});
  auto base = WithTimeout(5 * kSec);
  Ctx traced(crpc_trace_start(base.get(), nullptr, nullptr, true));
  ASSERT_NE(nullptr, traced);
  std::string trace = Or(crpc_trace_id(traced.get()));
  std::string client_span = Or(crpc_trace_span_id(traced.get()));
  ASSERT_TRUE(IsHex(trace, 32)) << trace;
  ASSERT_TRUE(IsHex(client_span, 16)) << client_span;
  EXPECT_EQ(nullptr, crpc_trace_parent_id(traced.get()));  // a new trace
  EXPECT_TRUE(crpc_trace_sampled(traced.get()));
  char tp[CRPC_TRACEPARENT_LEN + 1];
  ASSERT_TRUE(crpc_trace_traceparent(traced.get(), tp));
  EXPECT_EQ("00-" + trace + "-" + client_span + "-01", std::string(tp));

  ASSERT_EQ(CRPC_OK, Unary(ch.get(), traced.get(), "/t.T/Front", "x").code);
  Seen f = Get("front"), b = Get("back");
  // One trace id all the way; each hop's parent is the previous hop's span.
  EXPECT_EQ(std::string(tp), f.traceparent_hdr);
  EXPECT_EQ(trace, f.trace_id);
  EXPECT_EQ(client_span, f.parent_id);
  EXPECT_TRUE(IsHex(f.span_id, 16)) << f.span_id;
  EXPECT_NE(client_span, f.span_id);
  EXPECT_TRUE(f.sampled);
  EXPECT_EQ("00-" + trace + "-" + f.span_id + "-01", b.traceparent_hdr);
  EXPECT_EQ(trace, b.trace_id);
  EXPECT_EQ(f.span_id, b.parent_id);
  EXPECT_TRUE(IsHex(b.span_id, 16));
  EXPECT_NE(f.span_id, b.span_id);
  // Default emit is traceparent only; no tracestate was there to pass.
  EXPECT_EQ("<absent>", b.x_hdr);
  EXPECT_EQ("<absent>", b.tracestate_hdr);
  EXPECT_EQ(nullptr, crpc_trace_id(base.get()));
}

TEST_F(TracingTest, IncomingTraceparentAndTracestatePassThrough) {
  Start();
  std::string tp = std::string("00-") + kTrace + "-" + kParent + "-00";
  std::string ts = "rojo=00f067aa0ba902b7, congo=t61rcWkgMzE";
  ASSERT_EQ(CRPC_OK, CallFront({{"traceparent", tp}, {"tracestate", ts}}));
  Seen f = Get("front"), b = Get("back");
  EXPECT_EQ(kTrace, f.trace_id);
  EXPECT_EQ(kParent, f.parent_id);
  EXPECT_FALSE(f.sampled);
  EXPECT_EQ(ts, f.state);  // byte for byte
  EXPECT_EQ(std::string("00-") + kTrace + "-" + f.span_id + "-00", b.traceparent_hdr);
  EXPECT_EQ(ts, b.tracestate_hdr);
  EXPECT_EQ(ts, b.state);
  EXPECT_EQ(f.span_id, b.parent_id);

  // Two tracestate headers are one list (RFC 7230); other flag bits are
  // not passed on (only "sampled" is defined).
  tp = std::string("00-") + kTrace + "-" + kParent + "-ff";
  auto ch = NewChannel(front_->target());
  auto ctx = WithTimeout(5 * kSec);
  auto md = NewMd({{"traceparent", tp}, {"tracestate", "a=1"}, {"tracestate", "b=2"}});
  ASSERT_EQ(CRPC_OK, Unary(ch.get(), ctx.get(), "/t.T/Front", "x", md.get()).code);
  f = Get("front");
  b = Get("back");
  EXPECT_TRUE(f.sampled);
  EXPECT_EQ("a=1,b=2", f.state);
  EXPECT_EQ(std::string("00-") + kTrace + "-" + f.span_id + "-01", b.traceparent_hdr);
  EXPECT_EQ("a=1,b=2", b.tracestate_hdr);

  // A later version: its version-00 fields are used, sent on as 00.
  tp = std::string("cc-") + kTrace + "-" + kParent + "-01-what-the-future-holds";
  ASSERT_EQ(CRPC_OK, CallFront({{"traceparent", tp}}));
  f = Get("front");
  EXPECT_EQ(kTrace, f.trace_id);
  EXPECT_EQ(kParent, f.parent_id);
  EXPECT_EQ(std::string("00-") + kTrace + "-" + f.span_id + "-01", Get("back").traceparent_hdr);
}

TEST_F(TracingTest, MalformedTraceparentStartsANewTrace) {
  Start();
  std::string t = kTrace, p = kParent;
  const std::vector<std::string> bad = {
      "",                                                  // empty
      "00-" + t + "-" + p,                                 // no flags
      "00-" + t + "-" + p + "-01-extra",                   // extra after 00
      "00-" + t + "-" + p + "-1",                          // short flags
      "ff-" + t + "-" + p + "-01",                         // version ff
      "0-" + t + "-" + p + "-01",                          // 1-digit version
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-" + p + "-01",  // uppercase
      "00-" + std::string(32, '0') + "-" + p + "-01",      // zero trace id
      "00-" + t + "-" + std::string(16, '0') + "-01",      // zero parent id
      "00-" + t + "-" + p + "-0g",                         // bad flags
      "00_" + t + "_" + p + "_01",                         // separators
      "00-" + t.substr(1) + "x-" + p + "-01",              // non-hex
      "cc-" + t + "-" + p + "-01.",                        // later version, junk
  };
  for (const std::string &v : bad) {
    SCOPED_TRACE("traceparent \"" + v + "\"");
    ASSERT_EQ(CRPC_OK, CallFront({{"traceparent", v}, {"tracestate", "congo=t61rcWkgMzE"}}));
    Seen f = Get("front"), b = Get("back");
    EXPECT_TRUE(IsHex(f.trace_id, 32)) << f.trace_id;
    EXPECT_NE(t, f.trace_id);
    EXPECT_EQ("<none>", f.parent_id);  // nothing to continue
    EXPECT_FALSE(f.sampled);           // a trace started here: 00
    EXPECT_EQ("<none>", f.state);      // dropped with the traceparent
    EXPECT_EQ("00-" + f.trace_id + "-" + f.span_id + "-00", b.traceparent_hdr);
    EXPECT_EQ("<absent>", b.tracestate_hdr);
    EXPECT_EQ(f.trace_id, b.trace_id);
  }
  // Two traceparent headers: neither is believed.
  std::string good = "00-" + t + "-" + p + "-01";
  ASSERT_EQ(CRPC_OK, CallFront({{"traceparent", good}, {"traceparent", good}}));
  EXPECT_NE(t, Get("front").trace_id);
  // No header at all: a new trace each call.
  ASSERT_EQ(CRPC_OK, CallFront({}));
  std::string first = Get("front").trace_id;
  ASSERT_EQ(CRPC_OK, CallFront({}));
  EXPECT_TRUE(IsHex(first, 32));
  EXPECT_NE(first, Get("front").trace_id);
}

TEST_F(TracingTest, XTraceIdAcceptedByDefaultAndForwarded) {
  Start();
  std::string echo;
  ASSERT_EQ(CRPC_OK, CallFront({{"x-trace-id", "abc-123"}}, &echo));
  EXPECT_EQ("<absent>", echo);  // emit: traceparent only
  Seen f = Get("front"), b = Get("back");
  EXPECT_EQ("abc-123", f.trace_id);
  EXPECT_EQ("<none>", f.parent_id);
  // "abc-123" is no W3C trace id: it travels as x-trace-id instead.
  EXPECT_EQ("abc-123", b.trace_id);
  EXPECT_EQ("abc-123", b.x_hdr);
  EXPECT_EQ("<absent>", b.traceparent_hdr);

  // A 32-hex x-trace-id (what crpc made before) travels as traceparent.
  ASSERT_EQ(CRPC_OK, CallFront({{"x-trace-id", kTrace}}));
  f = Get("front");
  b = Get("back");
  EXPECT_EQ(kTrace, b.trace_id);
  EXPECT_EQ(std::string("00-") + kTrace + "-" + f.span_id + "-00", b.traceparent_hdr);
  EXPECT_EQ("<absent>", b.x_hdr);

  // Both headers: traceparent wins.
  std::string tp = std::string("00-") + kTrace + "-" + kParent + "-01";
  ASSERT_EQ(CRPC_OK, CallFront({{"x-trace-id", "abc-123"}, {"traceparent", tp}}));
  EXPECT_EQ(kTrace, Get("front").trace_id);
  // An invalid x-trace-id: a new trace.
  ASSERT_EQ(CRPC_OK, CallFront({{"x-trace-id", "no spaces allowed"}}));
  EXPECT_TRUE(IsHex(Get("front").trace_id, 32));
}

TEST_F(TracingTest, XTraceIdOnlyModeIsTheOldBehaviour) {
  crpc_tracing_options x{};
  x.accept = CRPC_TRACE_FORMAT_X_TRACE_ID;
  x.emit = CRPC_TRACE_FORMAT_X_TRACE_ID;
  Start(&x, &x);
  std::string echo;
  ASSERT_EQ(CRPC_OK, CallFront({{"x-trace-id", "abc-123"}}, &echo));
  EXPECT_EQ("abc-123", echo);
  EXPECT_EQ("abc-123", Get("back").trace_id);
  EXPECT_EQ("abc-123", Get("back").x_hdr);
  // traceparent is not read in this mode...
  std::string tp = std::string("00-") + kTrace + "-" + kParent + "-01";
  ASSERT_EQ(CRPC_OK, CallFront({{"traceparent", tp}}, &echo));
  EXPECT_NE(kTrace, Get("front").trace_id);
  EXPECT_EQ(Get("front").trace_id, echo);  // a made id, echoed
  // ...nor sent.
  EXPECT_EQ("<absent>", Get("back").traceparent_hdr);
  EXPECT_EQ(echo, Get("back").x_hdr);
}

TEST_F(TracingTest, W3COnlyIgnoresXTraceIdAndBothCanBeSent) {
  crpc_tracing_options w{};
  w.accept = CRPC_TRACE_FORMAT_W3C;
  w.sample_new = true;
  crpc_tracing_options both{};
  both.emit = CRPC_TRACE_FORMAT_W3C | CRPC_TRACE_FORMAT_X_TRACE_ID;
  Start(&w, &both);
  std::string echo;
  ASSERT_EQ(CRPC_OK, CallFront({{"x-trace-id", "abc-123"}}, &echo));
  Seen f = Get("front"), b = Get("back");
  EXPECT_TRUE(IsHex(f.trace_id, 32)) << f.trace_id;
  EXPECT_TRUE(f.sampled);  // sample_new
  EXPECT_EQ("<absent>", echo);
  EXPECT_EQ("00-" + f.trace_id + "-" + f.span_id + "-01", b.traceparent_hdr);
  EXPECT_EQ(f.trace_id, b.x_hdr);
}

TEST_F(TracingTest, CtxWithoutTraceLeavesTheCallersHeaders) {
  Start();
  auto ct = crpc_tracing_client();
  auto ch = NewChannel(front_->target(), {&ct});
  auto ctx = WithTimeout(5 * kSec);
  std::string tp = std::string("00-") + kTrace + "-" + kParent + "-01";
  auto md = NewMd({{"traceparent", tp}});
  ASSERT_EQ(CRPC_OK, Unary(ch.get(), ctx.get(), "/t.T/Front", "x", md.get()).code);
  EXPECT_EQ(tp, Get("front").traceparent_hdr);
  EXPECT_EQ(kParent, Get("front").parent_id);
}

TEST_F(TracingTest, TraceStartContinuesAnIncomingTraceparent) {
  std::string tp = std::string("00-") + kTrace + "-" + kParent + "-01";
  Ctx c(crpc_trace_start(crpc_ctx_background(), tp.c_str(), "congo=t61rcWkgMzE", false));
  ASSERT_NE(nullptr, c);
  EXPECT_EQ(kTrace, Or(crpc_trace_id(c.get())));
  EXPECT_EQ(kParent, Or(crpc_trace_parent_id(c.get())));
  EXPECT_TRUE(crpc_trace_sampled(c.get()));  // the received flag wins
  EXPECT_EQ("congo=t61rcWkgMzE", Or(crpc_trace_state(c.get())));
  EXPECT_TRUE(IsHex(Or(crpc_trace_span_id(c.get())), 16));
  // A child ctx sees its ancestor's trace.
  Ctx child(crpc_ctx_with_cancel(c.get()));
  EXPECT_EQ(kTrace, Or(crpc_trace_id(child.get())));

  Ctx fresh(crpc_trace_start(crpc_ctx_background(), "garbage", "congo=x", false));
  EXPECT_TRUE(IsHex(Or(crpc_trace_id(fresh.get())), 32));
  EXPECT_EQ(nullptr, crpc_trace_parent_id(fresh.get()));
  EXPECT_EQ(nullptr, crpc_trace_state(fresh.get()));
  EXPECT_FALSE(crpc_trace_sampled(fresh.get()));

  char out[CRPC_TRACEPARENT_LEN + 1];
  EXPECT_FALSE(crpc_trace_traceparent(crpc_ctx_background(), out));
  EXPECT_STREQ("", out);
  EXPECT_EQ(nullptr, crpc_trace_id(crpc_ctx_background()));
  EXPECT_EQ(nullptr, crpc_trace_span_id(crpc_ctx_background()));
  EXPECT_FALSE(crpc_trace_sampled(crpc_ctx_background()));
}

}  // namespace
