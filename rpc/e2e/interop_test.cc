// Interop with a real gRPC implementation (Debian's python3-grpcio), both
// directions: crpc client -> py_server.py, and py_client.py -> crpc server
// (rpc/testing/test_service.c). All four shapes, metadata, status, and a
// client-side cancel and a deadline in each direction.
#include <signal.h>

#include "rpc/e2e/e2e_util.h"
#include "rpc/testing/peer.h"

namespace crpc_e2e {
namespace {

const char kNonAscii[] = "nicht gefunden: \xc3\xbc\xc3\x9f \xe2\x98\x83 \xf0\x9f\x99\x82 100% done\r\n";

// ---- crpc client -> grpcio server -------------------------------------------

class CrpcClientToPyServer : public ::testing::Test {
 protected:
  void SetUp() override {
    baseline_ = crpc_ctx_live_count();
    std::string why;
    if (!crpc_testing::PythonGrpcAvailable(&why)) GTEST_SKIP() << why;
    std::string err;
    ASSERT_TRUE(py_.Start(&err)) << err;
    channel_ = crpc_channel_new(py_.target().c_str(), nullptr);
    ASSERT_NE(nullptr, channel_);
  }
  void TearDown() override {
    crpc_channel_free(channel_);
    py_.Stop();
    bool ok = Eventually([&] { return crpc_ctx_live_count() == baseline_; }, 3000);
    if (!ok) crpc_ctx_dump(stderr);
    EXPECT_EQ(baseline_, crpc_ctx_live_count());
  }

  std::map<std::string, std::string> Report(const std::string &tag) {
    Ctx ctx = WithTimeout(10 * kSec);
    UnaryResult r = Unary(channel_, ctx.get(), M("Report"), tag);
    if (r.code != CRPC_OK) return {{"text", "Report failed: " + r.message}};
    auto m = ParseReport(r.response);
    m["text"] = r.response;
    return m;
  }

  static std::string Tag(const char *what) {
    static int seq = 0;
    return std::string(what) + "-" + std::to_string(getpid()) + "-" + std::to_string(seq++);
  }

  size_t baseline_ = 0;
  crpc_testing::PyServer py_;
  crpc_channel *channel_ = nullptr;
};

TEST_F(CrpcClientToPyServer, Unary) {
  Ctx ctx = WithTimeout(10 * kSec);
  UnaryResult r = Unary(channel_, ctx.get(), M("Echo"), "hello grpcio");
  ASSERT_EQ(CRPC_OK, r.code) << r.message;
  EXPECT_EQ("hello grpcio", r.response);
  std::string big(1 << 20, 'b');
  r = Unary(channel_, ctx.get(), M("Echo"), big);
  ASSERT_EQ(CRPC_OK, r.code) << r.message;
  EXPECT_TRUE(r.response == big);
}

TEST_F(CrpcClientToPyServer, ServerStreaming) {
  Ctx ctx = WithTimeout(10 * kSec);
  crpc_call *raw = nullptr;
  ASSERT_EQ(CRPC_OK, crpc_call_start(channel_, ctx.get(), M("Count").c_str(), nullptr, &raw));
  Call call(raw);
  ASSERT_EQ(CRPC_OK, crpc_call_send(call.get(), "20 500 0", 8));
  ASSERT_EQ(CRPC_OK, crpc_call_close_send(call.get()));
  for (int i = 0; i < 20; i++) {
    std::string m;
    ASSERT_EQ(CRPC_OK, Recv(call.get(), &m)) << i;
    EXPECT_EQ(std::string(500, static_cast<char>(i)), m);
  }
  std::string m;
  bool end = false;
  ASSERT_EQ(CRPC_OK, Recv(call.get(), &m, &end));
  EXPECT_TRUE(end);
  EXPECT_EQ(CRPC_OK, crpc_call_finish(call.get(), nullptr));
}

TEST_F(CrpcClientToPyServer, ClientStreaming) {
  Ctx ctx = WithTimeout(10 * kSec);
  crpc_call *raw = nullptr;
  ASSERT_EQ(CRPC_OK, crpc_call_start(channel_, ctx.get(), M("Collect").c_str(), nullptr, &raw));
  Call call(raw);
  for (int i = 1; i <= 10; i++) {
    std::string s(static_cast<size_t>(i), 'c');
    ASSERT_EQ(CRPC_OK, crpc_call_send(call.get(), s.data(), s.size()));
  }
  ASSERT_EQ(CRPC_OK, crpc_call_close_send(call.get()));
  std::string m;
  ASSERT_EQ(CRPC_OK, Recv(call.get(), &m));
  EXPECT_EQ("10 55", m);
  EXPECT_EQ(CRPC_OK, crpc_call_finish(call.get(), nullptr));
}

TEST_F(CrpcClientToPyServer, Bidi) {
  Ctx ctx = WithTimeout(10 * kSec);
  crpc_call *raw = nullptr;
  ASSERT_EQ(CRPC_OK, crpc_call_start(channel_, ctx.get(), M("Chat").c_str(), nullptr, &raw));
  Call call(raw);
  for (int i = 0; i < 10; i++) {
    std::string ping = "ping " + std::to_string(i), pong;
    ASSERT_EQ(CRPC_OK, crpc_call_send(call.get(), ping.data(), ping.size()));
    ASSERT_EQ(CRPC_OK, Recv(call.get(), &pong));
    EXPECT_EQ(ping, pong);
  }
  ASSERT_EQ(CRPC_OK, crpc_call_close_send(call.get()));
  std::string m;
  bool end = false;
  ASSERT_EQ(CRPC_OK, Recv(call.get(), &m, &end));
  EXPECT_TRUE(end);
  EXPECT_EQ(CRPC_OK, crpc_call_finish(call.get(), nullptr));
}

TEST_F(CrpcClientToPyServer, MetadataBothWaysIncludingBinary) {
  const std::string bin("\x00\xff\x01 bin \x80", 9);
  Md md = NewMd({{"x-echo-md", "1"}, {"x-md-ascii", "v1"}, {"x-md-data-bin", bin}});
  Ctx ctx = WithTimeout(10 * kSec);
  crpc_call *raw = nullptr;
  ASSERT_EQ(CRPC_OK, crpc_call_start(channel_, ctx.get(), M("Echo").c_str(), md.get(), &raw));
  Call call(raw);
  ASSERT_EQ(CRPC_OK, crpc_call_send(call.get(), "m", 1));
  ASSERT_EQ(CRPC_OK, crpc_call_close_send(call.get()));
  const crpc_metadata *hdrs = crpc_call_response_headers(call.get());
  ASSERT_NE(nullptr, hdrs);
  EXPECT_EQ("v1", MdGet(hdrs, "x-md-ascii"));
  EXPECT_EQ(bin, MdGet(hdrs, "x-md-data-bin"));
  std::string m;
  ASSERT_EQ(CRPC_OK, Recv(call.get(), &m));
  Status st;
  ASSERT_EQ(CRPC_OK, crpc_call_finish(call.get(), st.get())) << st.message();
  EXPECT_EQ("v1", MdGet(st.s.trailers, "x-trl-ascii"));
  EXPECT_EQ(bin, MdGet(st.s.trailers, "x-trl-data-bin"));
}

TEST_F(CrpcClientToPyServer, ErrorStatusWithNonAsciiMessage) {
  Md md = NewMd({{"x-status", "5"}, {"x-message-bin", kNonAscii}});
  Ctx ctx = WithTimeout(10 * kSec);
  UnaryResult r = Unary(channel_, ctx.get(), M("Echo"), "x", md.get());
  EXPECT_EQ(CRPC_NOT_FOUND, r.code);
  EXPECT_EQ(kNonAscii, r.message);
  r = Unary(channel_, ctx.get(), M("NoSuchMethod"), "x");
  EXPECT_EQ(CRPC_UNIMPLEMENTED, r.code);
}

TEST_F(CrpcClientToPyServer, ServerErrorMidStream) {
  Md md = NewMd({{"x-status", "9"}, {"x-message", "stop"}});
  Ctx ctx = WithTimeout(10 * kSec);
  crpc_call *raw = nullptr;
  ASSERT_EQ(CRPC_OK, crpc_call_start(channel_, ctx.get(), M("Count").c_str(), md.get(), &raw));
  Call call(raw);
  ASSERT_EQ(CRPC_OK, crpc_call_send(call.get(), "2 8 0", 5));
  ASSERT_EQ(CRPC_OK, crpc_call_close_send(call.get()));
  std::string m;
  ASSERT_EQ(CRPC_OK, Recv(call.get(), &m));
  ASSERT_EQ(CRPC_OK, Recv(call.get(), &m));
  EXPECT_EQ(CRPC_FAILED_PRECONDITION, Recv(call.get(), &m));
  Status st;
  EXPECT_EQ(CRPC_FAILED_PRECONDITION, crpc_call_finish(call.get(), st.get()));
  EXPECT_EQ("stop", st.message());
}

TEST_F(CrpcClientToPyServer, ClientCancelMidServerStream_GrpcioServerSeesCancel) {
  std::string tag = Tag("cancel");
  Md md = NewMd({{"x-tag", tag}});
  Ctx ctx = WithCancel();
  crpc_call *raw = nullptr;
  ASSERT_EQ(CRPC_OK, crpc_call_start(channel_, ctx.get(), M("Count").c_str(), md.get(), &raw));
  Call call(raw);
  ASSERT_EQ(CRPC_OK, crpc_call_send(call.get(), "0 64 1000", 9));
  ASSERT_EQ(CRPC_OK, crpc_call_close_send(call.get()));
  std::string m;
  for (int i = 0; i < 3; i++) ASSERT_EQ(CRPC_OK, Recv(call.get(), &m));
  int64_t t0 = crpc_now_ns();
  crpc_ctx_cancel(ctx.get(), CRPC_CANCELLED, "client cancels");
  EXPECT_EQ(CRPC_CANCELLED, Recv(call.get(), &m));
  EXPECT_LT(crpc_now_ns() - t0, 100 * kMs) << "cancel did not return at once";
  auto rep = Report(tag);
  EXPECT_EQ("CANCELLED", rep["end"]) << rep["text"];
  // the connection still works
  Ctx ctx2 = WithTimeout(10 * kSec);
  EXPECT_EQ(CRPC_OK, Unary(channel_, ctx2.get(), M("Echo"), "x").code);
}

TEST_F(CrpcClientToPyServer, ClientCancelUnary_GrpcioServerSeesCancel) {
  std::string tag = Tag("cancel-unary");
  Md md = NewMd({{"x-tag", tag}});
  Ctx ctx = WithCancel();
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    crpc_ctx_cancel(ctx.get(), CRPC_CANCELLED, "bye");
  });
  UnaryResult r = Unary(channel_, ctx.get(), M("Hang"), "x", md.get());
  canceller.join();
  EXPECT_EQ(CRPC_CANCELLED, r.code) << r.message;
  auto rep = Report(tag);
  EXPECT_EQ("CANCELLED", rep["end"]) << rep["text"];
}

TEST_F(CrpcClientToPyServer, ClientDeadline_GrpcioServerSeesTimeoutAndExpires) {
  std::string tag = Tag("deadline");
  Md md = NewMd({{"x-tag", tag}});
  Ctx ctx = WithTimeout(300 * kMs);
  int64_t t0 = crpc_now_ns();
  UnaryResult r = Unary(channel_, ctx.get(), M("Hang"), "x", md.get());
  int64_t took = crpc_now_ns() - t0;
  EXPECT_EQ(CRPC_DEADLINE_EXCEEDED, r.code) << r.message;
  EXPECT_GE(took, 290 * kMs);
  EXPECT_LT(took, 2 * kSec);
  auto rep = Report(tag);
  EXPECT_TRUE(rep["end"] == "DEADLINE_EXCEEDED" || rep["end"] == "CANCELLED") << rep["text"];
  long ms = atol(rep["timeout_ms"].c_str());
  EXPECT_GT(ms, 150) << "grpc-timeout not understood by grpcio: " << rep["text"];
  // crpc rounds the remaining time up (never sends a shorter deadline) and
  // grpcio rounds again when it reports: a few ms over 300 is expected.
  EXPECT_LE(ms, 305) << rep["text"];
}

TEST_F(CrpcClientToPyServer, ServerKilled_InFlightCallsEndUnavailable) {
  Ctx ctx = WithTimeout(20 * kSec);
  crpc_call *raw = nullptr;
  ASSERT_EQ(CRPC_OK, crpc_call_start(channel_, ctx.get(), M("Count").c_str(), nullptr, &raw));
  Call count(raw);
  ASSERT_EQ(CRPC_OK, crpc_call_send(count.get(), "0 16 5000", 9));
  ASSERT_EQ(CRPC_OK, crpc_call_close_send(count.get()));
  std::string m;
  ASSERT_EQ(CRPC_OK, Recv(count.get(), &m));
  ASSERT_EQ(CRPC_OK, crpc_call_start(channel_, ctx.get(), M("Hang").c_str(), nullptr, &raw));
  Call hang(raw);
  ASSERT_EQ(CRPC_OK, crpc_call_send(hang.get(), "x", 1));
  kill(py_.pid(), SIGKILL);
  crpc_code rc;
  do rc = Recv(count.get(), &m); while (rc == CRPC_OK);
  EXPECT_EQ(CRPC_UNAVAILABLE, rc) << crpc_code_name(rc);
  EXPECT_EQ(CRPC_UNAVAILABLE, Recv(hang.get(), &m));
  py_.Stop();  // reap
}

// ---- grpcio client -> crpc server ----------------------------------------------

// Every case against blocking and against async handlers.
class PyClientToCrpcServer : public BothHandlers<E2ETest> {
 protected:
  void SetUp() override {
    BothHandlers<E2ETest>::SetUp();
    std::string why;
    if (!crpc_testing::PythonGrpcAvailable(&why)) GTEST_SKIP() << why;
    Start();
  }
  void Run(const std::vector<std::string> &cases) {
    crpc_testing::ProcResult r = crpc_testing::RunPyClient(target_, cases, 60000);
    printf("%s", r.output.c_str());
    EXPECT_FALSE(r.timed_out) << r.output;
    EXPECT_EQ(0, r.exit_code) << r.output;
    for (const std::string &c : cases) {
      EXPECT_NE(std::string::npos, r.output.find("PASS " + c + ":")) << r.output;
    }
    output_ = r.output;
  }
  std::string output_;
};

TEST_P(PyClientToCrpcServer, FourShapes) {
  Run({"unary", "server_stream", "client_stream", "bidi"});
}

TEST_P(PyClientToCrpcServer, MetadataStatusAndUnimplemented) {
  Run({"metadata", "error", "stream_error", "unimplemented"});
}

TEST_P(PyClientToCrpcServer, ClientCancel_CrpcHandlerCtxDoneWithPeerReset) {
  Run({"cancel", "cancel_unary"});
  EXPECT_NE(std::string::npos, output_.find("PASS cancel: server saw CANCELLED origin=peer_reset"))
      << output_;
  EXPECT_NE(std::string::npos,
            output_.find("PASS cancel_unary: server saw CANCELLED origin=peer_reset"))
      << output_;
}

TEST_P(PyClientToCrpcServer, ClientDeadline_CrpcServerCtxGetsGrpcTimeout) {
  Run({"deadline", "deadline_stream"});
}

CRPC_E2E_BOTH_HANDLERS(PyClientToCrpcServer);

}  // namespace
}  // namespace crpc_e2e
