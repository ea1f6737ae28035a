// crpc client <-> crpc server over loopback: the four call shapes, metadata
// both ways, status round trips, UNIMPLEMENTED, message size limits, unix
// sockets. Every test ends with the ctx leak check (E2ETest::TearDown).
#include <unistd.h>

#include "rpc/e2e/e2e_util.h"

namespace crpc_e2e {
namespace {

// Every test that reaches a handler runs against blocking and async ones.
class CallsTest : public BothHandlers<E2ETest> {};
using CallsClientTest = E2ETest;  // no handler involved

// Non-ASCII, '%', CR/LF: everything grpc-message must percent-encode.
const char kNonAscii[] = "nicht gefunden: \xc3\xbc\xc3\x9f \xe2\x98\x83 \xf0\x9f\x99\x82 100% done\r\n";

TEST_P(CallsTest, Unary_EchoesRequest) {
  Start();
  Ctx ctx = WithTimeout(10 * kSec);
  UnaryResult r = Unary(channel_, ctx.get(), M("Echo"), "hello crpc");
  ASSERT_EQ(CRPC_OK, r.code) << r.message;
  EXPECT_EQ("hello crpc", r.response);

  r = Unary(channel_, ctx.get(), M("Echo"), "");
  ASSERT_EQ(CRPC_OK, r.code) << r.message;
  EXPECT_EQ("", r.response);

  std::string big(1 << 20, '\0');
  for (size_t i = 0; i < big.size(); i++) big[i] = static_cast<char>(i * 7);
  r = Unary(channel_, ctx.get(), M("Echo"), big);
  ASSERT_EQ(CRPC_OK, r.code) << r.message;
  EXPECT_TRUE(r.response == big) << "1 MiB echo differs";
}

TEST_P(CallsTest, Unary_StepByStepApi) {
  Start();
  Ctx ctx = WithTimeout(10 * kSec);
  crpc_call *raw = nullptr;
  ASSERT_EQ(CRPC_OK, crpc_call_start(channel_, ctx.get(), M("Echo").c_str(), nullptr, &raw));
  Call call(raw);
  ASSERT_EQ(CRPC_OK, crpc_call_send(call.get(), "abc", 3));
  ASSERT_EQ(CRPC_OK, crpc_call_close_send(call.get()));
  ASSERT_EQ(CRPC_OK, crpc_call_close_send(call.get()));  // idempotent
  std::string m;
  bool end = false;
  ASSERT_EQ(CRPC_OK, Recv(call.get(), &m, &end));
  EXPECT_FALSE(end);
  EXPECT_EQ("abc", m);
  ASSERT_EQ(CRPC_OK, Recv(call.get(), &m, &end));
  EXPECT_TRUE(end);
  Status st;
  EXPECT_EQ(CRPC_OK, crpc_call_finish(call.get(), st.get()));
  EXPECT_EQ(CRPC_OK, st.s.code);
}

TEST_P(CallsTest, ServerStreaming_ReceivesEveryMessageInOrder) {
  Start();
  Ctx ctx = WithTimeout(10 * kSec);
  crpc_call *raw = nullptr;
  ASSERT_EQ(CRPC_OK, crpc_call_start(channel_, ctx.get(), M("Count").c_str(), nullptr, &raw));
  Call call(raw);
  ASSERT_EQ(CRPC_OK, crpc_call_send(call.get(), "100 1000 0", 10));
  ASSERT_EQ(CRPC_OK, crpc_call_close_send(call.get()));
  for (int i = 0; i < 100; i++) {
    std::string m;
    bool end = false;
    ASSERT_EQ(CRPC_OK, Recv(call.get(), &m, &end)) << "message " << i;
    ASSERT_FALSE(end) << "ended after " << i;
    ASSERT_EQ(std::string(1000, static_cast<char>(i)), m) << "message " << i;
  }
  std::string m;
  bool end = false;
  ASSERT_EQ(CRPC_OK, Recv(call.get(), &m, &end));
  EXPECT_TRUE(end);
  EXPECT_EQ(CRPC_OK, crpc_call_finish(call.get(), nullptr));
}

TEST_P(CallsTest, ClientStreaming_ServerSeesEveryMessage) {
  Start();
  Ctx ctx = WithTimeout(10 * kSec);
  crpc_call *raw = nullptr;
  ASSERT_EQ(CRPC_OK, crpc_call_start(channel_, ctx.get(), M("Collect").c_str(), nullptr, &raw));
  Call call(raw);
  size_t total = 0;
  for (int i = 0; i < 50; i++) {
    std::string m(static_cast<size_t>(i) * 100, 'x');
    total += m.size();
    ASSERT_EQ(CRPC_OK, crpc_call_send(call.get(), m.data(), m.size())) << i;
  }
  ASSERT_EQ(CRPC_OK, crpc_call_close_send(call.get()));
  std::string m;
  ASSERT_EQ(CRPC_OK, Recv(call.get(), &m));
  EXPECT_EQ("50 " + std::to_string(total), m);
  Status st;
  EXPECT_EQ(CRPC_OK, crpc_call_finish(call.get(), st.get())) << st.message();
}

TEST_P(CallsTest, ClientStreaming_NoMessagesAtAll) {
  Start();
  Ctx ctx = WithTimeout(10 * kSec);
  crpc_call *raw = nullptr;
  ASSERT_EQ(CRPC_OK, crpc_call_start(channel_, ctx.get(), M("Collect").c_str(), nullptr, &raw));
  Call call(raw);
  ASSERT_EQ(CRPC_OK, crpc_call_close_send(call.get()));
  std::string m;
  ASSERT_EQ(CRPC_OK, Recv(call.get(), &m));
  EXPECT_EQ("0 0", m);
  EXPECT_EQ(CRPC_OK, crpc_call_finish(call.get(), nullptr));
}

TEST_P(CallsTest, Bidi_PingPong) {
  Start();
  Ctx ctx = WithTimeout(10 * kSec);
  crpc_call *raw = nullptr;
  ASSERT_EQ(CRPC_OK, crpc_call_start(channel_, ctx.get(), M("Chat").c_str(), nullptr, &raw));
  Call call(raw);
  for (int i = 0; i < 20; i++) {
    std::string ping = "ping " + std::to_string(i);
    ASSERT_EQ(CRPC_OK, crpc_call_send(call.get(), ping.data(), ping.size()));
    std::string pong;
    ASSERT_EQ(CRPC_OK, Recv(call.get(), &pong)) << i;
    EXPECT_EQ(ping, pong);
  }
  ASSERT_EQ(CRPC_OK, crpc_call_close_send(call.get()));
  std::string m;
  bool end = false;
  ASSERT_EQ(CRPC_OK, Recv(call.get(), &m, &end));
  EXPECT_TRUE(end);
  EXPECT_EQ(CRPC_OK, crpc_call_finish(call.get(), nullptr));
}

TEST_P(CallsTest, Bidi_SendAndReceiveOnTwoThreads) {
  Start();
  Ctx ctx = WithTimeout(20 * kSec);
  crpc_call *raw = nullptr;
  ASSERT_EQ(CRPC_OK, crpc_call_start(channel_, ctx.get(), M("Chat").c_str(), nullptr, &raw));
  Call call(raw);
  const int n = 2000 / kSlow;
  std::thread sender([&] {
    for (int i = 0; i < n; i++) {
      std::string s(100, static_cast<char>(i));
      if (crpc_call_send(call.get(), s.data(), s.size()) != CRPC_OK) return;
    }
    crpc_call_close_send(call.get());
  });
  int got = 0;
  for (;;) {
    std::string m;
    bool end = false;
    crpc_code rc = Recv(call.get(), &m, &end);
    if (rc != CRPC_OK || end) {
      EXPECT_EQ(CRPC_OK, rc);
      break;
    }
    EXPECT_EQ(std::string(100, static_cast<char>(got)), m);
    got++;
  }
  sender.join();
  EXPECT_EQ(n, got);
  EXPECT_EQ(CRPC_OK, crpc_call_finish(call.get(), nullptr));
}

TEST_P(CallsTest, ConcurrentCalls_MultiplexOnOneChannel) {
  Start();
  const int threads = 8, per = 200 / kSlow;
  std::atomic<int> ok{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; t++) {
    ts.emplace_back([&, t] {
      Ctx ctx = WithTimeout(20 * kSec);
      for (int i = 0; i < per; i++) {
        std::string req = std::to_string(t) + ":" + std::to_string(i);
        UnaryResult r = Unary(channel_, ctx.get(), M("Echo"), req);
        if (r.code == CRPC_OK && r.response == req) ok++;
      }
    });
  }
  for (auto &t : ts) t.join();
  EXPECT_EQ(threads * per, ok.load());
}

TEST_P(CallsTest, Metadata_BothWaysIncludingBinary) {
  Start();
  const std::string bin("\x00\xff\x01 binary \x80\n", 12);
  Md md = NewMd({{"x-echo-md", "1"},
                 {"x-md-ascii", "v1 with spaces"},
                 {"x-md-data-bin", bin},
                 {"x-md-empty", ""}});
  Ctx ctx = WithTimeout(10 * kSec);
  crpc_call *raw = nullptr;
  ASSERT_EQ(CRPC_OK, crpc_call_start(channel_, ctx.get(), M("Echo").c_str(), md.get(), &raw));
  Call call(raw);
  ASSERT_EQ(CRPC_OK, crpc_call_send(call.get(), "m", 1));
  ASSERT_EQ(CRPC_OK, crpc_call_close_send(call.get()));
  const crpc_metadata *hdrs = crpc_call_response_headers(call.get());
  ASSERT_NE(nullptr, hdrs);
  EXPECT_EQ("v1 with spaces", MdGet(hdrs, "x-md-ascii"));
  EXPECT_EQ(bin, MdGet(hdrs, "x-md-data-bin"));
  EXPECT_EQ("", MdGet(hdrs, "x-md-empty"));
  EXPECT_EQ("<absent>", MdGet(hdrs, "content-type")) << "reserved header leaked to user";
  std::string m;
  ASSERT_EQ(CRPC_OK, Recv(call.get(), &m));
  EXPECT_EQ("m", m);
  Status st;
  ASSERT_EQ(CRPC_OK, crpc_call_finish(call.get(), st.get())) << st.message();
  ASSERT_NE(nullptr, st.s.trailers);
  EXPECT_EQ("v1 with spaces", MdGet(st.s.trailers, "x-trl-ascii"));
  EXPECT_EQ(bin, MdGet(st.s.trailers, "x-trl-data-bin"));
  EXPECT_EQ("<absent>", MdGet(st.s.trailers, "grpc-status")) << "reserved trailer leaked";
}

TEST_P(CallsTest, Metadata_UnaryCallReturnsTrailers) {
  Start();
  Md md = NewMd({{"x-echo-md", "1"}, {"x-md-k", "v"}});
  Ctx ctx = WithTimeout(10 * kSec);
  UnaryResult r = Unary(channel_, ctx.get(), M("Echo"), "x", md.get());
  ASSERT_EQ(CRPC_OK, r.code) << r.message;
  EXPECT_EQ("v", MdGet(r.trailers.get(), "x-trl-k"));
}

TEST_P(CallsTest, ServerSeesRequestMetadataAndUserAgent) {
  struct Seen {
    std::string ua, custom, method, peer;
    void Look(crpc_server_call *call) {
      const crpc_metadata *md = crpc_server_call_request_metadata(call);
      ua = MdGet(md, "user-agent");
      custom = MdGet(md, "x-custom");
      method = crpc_server_call_method(call);
      peer = crpc_server_call_peer(call);
    }
  } seen;
  crpc_channel_options chopts{};
  chopts.user_agent = "e2e-test/1.0";
  Start(
      nullptr,
      [&](crpc_server *s) {
        if (Async()) {
          ASSERT_EQ(CRPC_OK, crpc_server_add_unary_async(
                                 s, "/crpc.e2e.Meta/Look",
                                 [](crpc_server_call *call, const crpc_ctx *,
                                    const crpc_message *, void *ud) {
                                   static_cast<Seen *>(ud)->Look(call);
                                   return crpc_server_call_send_async(call, "ok", 2, 0);
                                 },
                                 &seen));
          return;
        }
        ASSERT_EQ(CRPC_OK, crpc_server_add_method(
                               s, "/crpc.e2e.Meta/Look", CRPC_UNARY,
                               [](crpc_server_call *call, const crpc_ctx *, void *ud) {
                                 crpc_message m{};
                                 crpc_code rc = crpc_server_call_recv(call, &m);
                                 free(m.data);
                                 if (rc != CRPC_OK) return rc;
                                 static_cast<Seen *>(ud)->Look(call);
                                 return crpc_server_call_send(call, "ok", 2);
                               },
                               &seen));
      },
      &chopts);
  Md md = NewMd({{"x-custom", "yes"}});
  Ctx ctx = WithTimeout(10 * kSec);
  UnaryResult r = Unary(channel_, ctx.get(), "/crpc.e2e.Meta/Look", "", md.get());
  ASSERT_EQ(CRPC_OK, r.code) << r.message;
  EXPECT_EQ("yes", seen.custom);
  EXPECT_EQ("/crpc.e2e.Meta/Look", seen.method);
  EXPECT_EQ(0u, seen.ua.rfind("e2e-test/1.0", 0)) << seen.ua;
  EXPECT_NE(std::string::npos, seen.ua.find("crpc/")) << seen.ua;
  EXPECT_EQ(0u, seen.peer.rfind("ipv4:127.0.0.1:", 0)) << seen.peer;
}

TEST_P(CallsTest, ReservedRequestHeader_IsRefused) {
  Start();
  Md md = NewMd({{"grpc-timeout", "1S"}});
  Ctx ctx = WithTimeout(10 * kSec);
  UnaryResult r = Unary(channel_, ctx.get(), M("Echo"), "x", md.get());
  EXPECT_NE(CRPC_OK, r.code) << "a reserved header went out";
  // and the channel still works
  r = Unary(channel_, ctx.get(), M("Echo"), "y");
  EXPECT_EQ(CRPC_OK, r.code) << r.message;
}

TEST_P(CallsTest, ErrorStatus_CodeAndNonAsciiMessageRoundTrip) {
  Start();
  Md md = NewMd({{"x-status", "5"}, {"x-message-bin", kNonAscii}});
  Ctx ctx = WithTimeout(10 * kSec);
  UnaryResult r = Unary(channel_, ctx.get(), M("Echo"), "x", md.get());
  EXPECT_EQ(CRPC_NOT_FOUND, r.code);
  EXPECT_EQ(kNonAscii, r.message);

  Md md2 = NewMd({{"x-status", "16"}, {"x-message", "who are you?"}});
  r = Unary(channel_, ctx.get(), M("Echo"), "x", md2.get());
  EXPECT_EQ(CRPC_UNAUTHENTICATED, r.code);
  EXPECT_EQ("who are you?", r.message);
}

TEST_P(CallsTest, ErrorStatus_EveryCodeSurvivesTheWire) {
  Start();
  Ctx ctx = WithTimeout(10 * kSec);
  for (int code = 1; code <= 16; code++) {
    Md md = NewMd({{"x-status", std::to_string(code)}, {"x-message", "m" + std::to_string(code)}});
    UnaryResult r = Unary(channel_, ctx.get(), M("Echo"), "x", md.get());
    EXPECT_EQ(code, static_cast<int>(r.code));
    EXPECT_EQ("m" + std::to_string(code), r.message);
  }
}

TEST_P(CallsTest, Unimplemented_UnknownMethodAndUnknownService) {
  Start();
  Ctx ctx = WithTimeout(10 * kSec);
  UnaryResult r = Unary(channel_, ctx.get(), M("NoSuchMethod"), "x");
  EXPECT_EQ(CRPC_UNIMPLEMENTED, r.code) << r.message;
  r = Unary(channel_, ctx.get(), "/crpc.test.NoSuchService/Echo", "x");
  EXPECT_EQ(CRPC_UNIMPLEMENTED, r.code) << r.message;
  // Streaming shape too: the error arrives on recv / finish.
  crpc_call *raw = nullptr;
  crpc_code rc = crpc_call_start(channel_, ctx.get(), "/crpc.test.Nope/Chat", nullptr, &raw);
  Call call(raw);
  if (rc == CRPC_OK) {
    std::string m;
    EXPECT_EQ(CRPC_UNIMPLEMENTED, Recv(call.get(), &m));
    EXPECT_EQ(CRPC_UNIMPLEMENTED, crpc_call_finish(call.get(), nullptr));
  } else {
    EXPECT_EQ(CRPC_UNIMPLEMENTED, rc);
  }
  r = Unary(channel_, ctx.get(), M("Echo"), "still fine");
  EXPECT_EQ(CRPC_OK, r.code);
}

TEST_P(CallsTest, ServerMaxReceiveSize_ResourceExhausted) {
  crpc_server_options opts{};
  opts.max_recv_message_size = 1024;
  Start(&opts);
  Ctx ctx = WithTimeout(10 * kSec);
  UnaryResult r = Unary(channel_, ctx.get(), M("Echo"), std::string(1024, 'a'));
  EXPECT_EQ(CRPC_OK, r.code) << "exactly the limit is allowed: " << r.message;
  r = Unary(channel_, ctx.get(), M("Echo"), std::string(1025, 'a'));
  EXPECT_EQ(CRPC_RESOURCE_EXHAUSTED, r.code) << r.message;
  r = Unary(channel_, ctx.get(), M("Echo"), "small");
  EXPECT_EQ(CRPC_OK, r.code) << "channel unusable after the oversized message";
}

TEST_P(CallsTest, ClientMaxReceiveSize_ResourceExhausted) {
  crpc_channel_options chopts{};
  chopts.max_recv_message_size = 1024;
  Start(nullptr, {}, &chopts);
  Ctx ctx = WithTimeout(10 * kSec);
  UnaryResult r = Unary(channel_, ctx.get(), M("Echo"), std::string(2048, 'a'));
  EXPECT_EQ(CRPC_RESOURCE_EXHAUSTED, r.code) << r.message;
  r = Unary(channel_, ctx.get(), M("Echo"), "small");
  EXPECT_EQ(CRPC_OK, r.code);
}

TEST_P(CallsTest, DefaultMaxReceiveSize_Is4MiB) {
  Start();
  Ctx ctx = WithTimeout(20 * kSec);
  UnaryResult r = Unary(channel_, ctx.get(), M("Echo"), std::string(4 << 20, 'a'));
  EXPECT_EQ(CRPC_OK, r.code) << r.message;
  r = Unary(channel_, ctx.get(), M("Echo"), std::string((4 << 20) + 1, 'a'));
  EXPECT_EQ(CRPC_RESOURCE_EXHAUSTED, r.code) << r.message;
}

TEST_P(CallsTest, UnixSocketTarget_AllShapesWork) {
  std::string path = "/tmp/crpc-e2e-" + std::to_string(getpid()) + ".sock";
  unlink(path.c_str());
  Start(nullptr, {}, nullptr, "unix:" + path, "unix:" + path);
  EXPECT_EQ(0, port_);
  Ctx ctx = WithTimeout(10 * kSec);
  UnaryResult r = Unary(channel_, ctx.get(), M("Echo"), "over unix");
  ASSERT_EQ(CRPC_OK, r.code) << r.message;
  EXPECT_EQ("over unix", r.response);

  crpc_call *raw = nullptr;
  ASSERT_EQ(CRPC_OK, crpc_call_start(channel_, ctx.get(), M("Count").c_str(), nullptr, &raw));
  Call call(raw);
  ASSERT_EQ(CRPC_OK, crpc_call_send(call.get(), "3 10 0", 6));
  ASSERT_EQ(CRPC_OK, crpc_call_close_send(call.get()));
  int n = 0;
  for (;;) {
    std::string m;
    bool end = false;
    ASSERT_EQ(CRPC_OK, Recv(call.get(), &m, &end));
    if (end) break;
    n++;
  }
  EXPECT_EQ(3, n);
  EXPECT_EQ(CRPC_OK, crpc_call_finish(call.get(), nullptr));
  call.reset();
  Stop();
  unlink(path.c_str());
}

TEST_F(CallsClientTest, UnreachableTarget_Unavailable) {
  Start();
  // A port nobody listens on: the server's port after it is gone.
  int port = port_;
  Stop();
  crpc_channel *ch = crpc_channel_new(("127.0.0.1:" + std::to_string(port)).c_str(), nullptr);
  ASSERT_NE(nullptr, ch);
  Ctx ctx = WithTimeout(5 * kSec);
  UnaryResult r = Unary(ch, ctx.get(), M("Echo"), "x");
  EXPECT_EQ(CRPC_UNAVAILABLE, r.code) << r.message;
  crpc_channel_free(ch);
}

CRPC_E2E_BOTH_HANDLERS(CallsTest);

}  // namespace
}  // namespace crpc_e2e
