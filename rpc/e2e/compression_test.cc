// Message compression end to end (grpc-encoding / grpc-accept-encoding and
// the per-message compressed flag): crpc client <-> crpc server, and both
// directions with Python grpcio (rpc/e2e/compression_peer.py).
//
// The crpc server's /comp.Test/Echo is a bidi echo: it compresses its
// responses with the x-compress request header's encoding (if any), replies
// to each request with one byte (1 if the request arrived compressed) then
// the request's bytes, and sends that reply uncompressed if the request
// starts with 'n'.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "rpc/e2e/e2e_util.h"
#include "rpc/testing/peer.h"

namespace crpc_e2e {
namespace {

constexpr const char kEcho[] = "/comp.Test/Echo";

crpc_code EchoHandler(crpc_server_call *call, const crpc_ctx *, void *) {
  crpc_metadata_entry e;
  if (crpc_metadata_get(crpc_server_call_request_metadata(call), "x-compress", &e)) {
    std::string enc(reinterpret_cast<const char *>(e.value), e.value_len);
    crpc_code c = crpc_server_call_set_compression(call, enc.c_str());
    if (c != CRPC_OK) return crpc_server_call_error(call, c, "set_compression");
  }
  for (;;) {
    crpc_message m{};
    crpc_code c = crpc_server_call_recv(call, &m);
    if (c != CRPC_OK || m.end) return c;
    std::string reply(1, m.compressed ? '\1' : '\0');
    reply.append(reinterpret_cast<const char *>(m.data), m.len);
    unsigned flags = m.len > 0 && m.data[0] == 'n' ? CRPC_SEND_NO_COMPRESS : 0;
    free(m.data);
    c = crpc_server_call_send_flags(call, reply.data(), reply.size(), flags);
    if (c != CRPC_OK) return c;
    // After the first send the encoding is fixed.
    if (crpc_server_call_set_compression(call, "gzip") != CRPC_FAILED_PRECONDITION) {
      return crpc_server_call_error(call, CRPC_INTERNAL, "set_compression after send");
    }
  }
}

// The same echo as a reactor on the loop thread (crpc/server_async.h). A
// client that sends faster than it reads is held by pausing its messages
// while the echoes drain.
struct AsyncEcho {
  bool failed = false;
};

void *AsyncEchoStart(crpc_server_call *call, const crpc_ctx *, void *) {
  auto *st = new AsyncEcho;
  crpc_metadata_entry e;
  if (crpc_metadata_get(crpc_server_call_request_metadata(call), "x-compress", &e)) {
    std::string enc(reinterpret_cast<const char *>(e.value), e.value_len);
    crpc_code c = crpc_server_call_set_compression(call, enc.c_str());
    if (c != CRPC_OK) {
      st->failed = true;
      crpc_server_call_finish(call, crpc_server_call_error(call, c, "set_compression"), nullptr);
    }
  }
  return st;
}

void AsyncEchoMessage(crpc_server_call *call, const crpc_message *m, void *state) {
  auto *st = static_cast<AsyncEcho *>(state);
  if (st->failed) return;
  if (m->end) {
    crpc_server_call_finish(call, CRPC_OK, nullptr);
    return;
  }
  std::string reply(1, m->compressed ? '\1' : '\0');
  reply.append(reinterpret_cast<const char *>(m->data), m->len);
  unsigned flags = m->len > 0 && m->data[0] == 'n' ? CRPC_SEND_NO_COMPRESS : 0;
  crpc_code c = crpc_server_call_send_async(call, reply.data(), reply.size(), flags);
  if (c == CRPC_OK && crpc_server_call_set_compression(call, "gzip") != CRPC_FAILED_PRECONDITION) {
    c = crpc_server_call_error(call, CRPC_INTERNAL, "set_compression after send");
  }
  if (c != CRPC_OK) {
    st->failed = true;
    crpc_server_call_finish(call, c, nullptr);
  } else if (!crpc_server_call_can_send(call)) {
    crpc_server_call_pause_recv(call);
  }
}

void AsyncEchoReady(crpc_server_call *call, void *) { crpc_server_call_resume_recv(call); }

void AsyncEchoCancel(crpc_server_call *call, const crpc_cause *cause, void *state) {
  auto *st = static_cast<AsyncEcho *>(state);
  if (st->failed) return;
  st->failed = true;
  crpc_server_call_finish(call, cause->code, nullptr);
}

void AsyncEchoDone(crpc_server_call *, void *state) { delete static_cast<AsyncEcho *>(state); }

struct Received {
  crpc_code code = CRPC_OK;
  std::string data;
  bool compressed = false;
  bool end = false;
};

Received RecvOne(crpc_call *call) {
  Received r;
  crpc_message m{};
  r.code = crpc_call_recv(call, &m);
  if (r.code == CRPC_OK && !m.end) {
    r.data.assign(reinterpret_cast<const char *>(m.data), m.len);
    r.compressed = m.compressed;
    free(m.data);
  }
  r.end = m.end;
  return r;
}

class CompressionFixture : public ::testing::Test {
 protected:
  void SetUp() override { baseline_ = crpc_ctx_live_count(); }
  void TearDown() override {
    crpc_channel_free(channel_);
    if (server_ != nullptr) crpc_server_shutdown(server_, 0);
    crpc_server_free(server_);
    bool ok = Eventually([&] { return crpc_ctx_live_count() == baseline_; }, 3000);
    if (!ok) crpc_ctx_dump(stderr);
    EXPECT_EQ(baseline_, crpc_ctx_live_count());
  }

  void StartServer(size_t server_max_recv = 0, size_t client_max_recv = 0) {
    crpc_server_options so{};
    so.max_recv_message_size = server_max_recv;
    server_ = crpc_server_new(&so);
    ASSERT_NE(nullptr, server_);
    static const crpc_server_reactor kAsyncEcho = {AsyncEchoStart, AsyncEchoMessage, AsyncEchoReady,
                                                   AsyncEchoCancel, AsyncEchoDone};
    ASSERT_EQ(CRPC_OK, handlers_ == Handlers::kAsync
                           ? crpc_server_add_async_method(server_, kEcho, CRPC_BIDI_STREAMING,
                                                          &kAsyncEcho, nullptr)
                           : crpc_server_add_method(server_, kEcho, CRPC_BIDI_STREAMING,
                                                    EchoHandler, nullptr));
    ASSERT_EQ(CRPC_OK, crpc_server_listen(server_, "127.0.0.1:0", &port_));
    ASSERT_EQ(CRPC_OK, crpc_server_start(server_));
    crpc_channel_options co{};
    co.max_recv_message_size = client_max_recv;
    channel_ = crpc_channel_new(("127.0.0.1:" + std::to_string(port_)).c_str(), &co);
    ASSERT_NE(nullptr, channel_);
  }

  // Starts an Echo call: requests in `encoding` (NULL: none), responses in
  // `response_encoding` (NULL: none).
  Call Start(const crpc_ctx *ctx, const char *encoding, const char *response_encoding = nullptr) {
    Md md = NewMd();
    if (response_encoding != nullptr) md = NewMd({{"x-compress", response_encoding}});
    crpc_call *raw = nullptr;
    EXPECT_EQ(CRPC_OK,
              crpc_call_start_compressed(channel_, ctx, kEcho, md.get(), encoding, &raw));
    return Call(raw);
  }

  size_t baseline_ = 0;
  Handlers handlers_ = Handlers::kBlocking;
  crpc_server *server_ = nullptr;
  crpc_channel *channel_ = nullptr;
  int port_ = 0;
};

// Tests against crpc's server run with blocking and with async handlers;
// those against grpcio's server have no crpc handler.
class CompressionTest : public BothHandlers<CompressionFixture> {};
using CompressionToPythonTest = CompressionFixture;

TEST_P(CompressionTest, ClientCompressesEachMessageUnlessOptedOut) {
  StartServer();
  for (const char *enc : {"gzip", "deflate"}) {
    Ctx ctx = WithTimeout(10 * kSec);
    Call call = Start(ctx.get(), enc);
    ASSERT_NE(nullptr, call);
    std::string big(200000, 'a');
    ASSERT_EQ(CRPC_OK, crpc_call_send(call.get(), big.data(), big.size()));
    Received r = RecvOne(call.get());
    ASSERT_EQ(CRPC_OK, r.code);
    EXPECT_EQ('\1', r.data[0]) << enc << ": the server saw the compressed flag";
    EXPECT_TRUE(r.data.substr(1) == big);
    EXPECT_FALSE(r.compressed) << "the server's responses are not compressed";
    ASSERT_EQ(CRPC_OK, crpc_call_send_flags(call.get(), "plain", 5, CRPC_SEND_NO_COMPRESS));
    r = RecvOne(call.get());
    ASSERT_EQ(CRPC_OK, r.code);
    EXPECT_EQ(std::string("\0plain", 6), r.data);
    // An empty message compresses too.
    ASSERT_EQ(CRPC_OK, crpc_call_send(call.get(), "", 0));
    r = RecvOne(call.get());
    ASSERT_EQ(CRPC_OK, r.code);
    EXPECT_EQ(std::string("\1", 1), r.data);
    ASSERT_EQ(CRPC_OK, crpc_call_close_send(call.get()));
    EXPECT_TRUE(RecvOne(call.get()).end);
    EXPECT_EQ(CRPC_OK, crpc_call_finish(call.get(), nullptr));
  }
}

TEST_P(CompressionTest, UncompressedCallsStayUncompressed) {
  StartServer();
  Ctx ctx = WithTimeout(10 * kSec);
  for (const char *enc : {static_cast<const char *>(nullptr), "identity"}) {
    Call call = Start(ctx.get(), enc);
    ASSERT_EQ(CRPC_OK, crpc_call_send(call.get(), "hello", 5));
    Received r = RecvOne(call.get());
    ASSERT_EQ(CRPC_OK, r.code);
    EXPECT_EQ(std::string("\0hello", 6), r.data);
    EXPECT_FALSE(r.compressed);
    ASSERT_EQ(CRPC_OK, crpc_call_close_send(call.get()));
    EXPECT_EQ(CRPC_OK, crpc_call_finish(call.get(), nullptr));
  }
  // The unary convenience is uncompressed both ways and still works.
  UnaryResult u = Unary(channel_, ctx.get(), kEcho, "u");
  EXPECT_EQ(CRPC_OK, u.code) << u.message;
  EXPECT_EQ(std::string("\0u", 2), u.response);
}

// A channel-wide default reaches calls that do not choose, unary included
// (what generated stubs use); a call can still opt out.
TEST_P(CompressionTest, ChannelDefaultCompressesCallsThatDoNotChoose) {
  StartServer();
  crpc_channel_options co{};
  co.default_compression = "gzip";
  crpc_channel *ch =
      crpc_channel_new(("127.0.0.1:" + std::to_string(port_)).c_str(), &co);
  ASSERT_NE(nullptr, ch);
  Ctx ctx = WithTimeout(10 * kSec);
  UnaryResult u = Unary(ch, ctx.get(), kEcho, "u");
  EXPECT_EQ(CRPC_OK, u.code) << u.message;
  EXPECT_EQ(std::string("\1u", 2), u.response) << "sent compressed";
  crpc_call *raw = nullptr;
  ASSERT_EQ(CRPC_OK, crpc_call_start_compressed(ch, ctx.get(), kEcho, nullptr,
                                                "identity", &raw));
  ASSERT_EQ(CRPC_OK, crpc_call_send(raw, "p", 1));
  Received r = RecvOne(raw);
  EXPECT_EQ(std::string("\0p", 2), r.data) << "identity chosen per call";
  crpc_call_free(raw);
  crpc_channel_free(ch);
  co.default_compression = "br";
  EXPECT_EQ(nullptr, crpc_channel_new("127.0.0.1:1", &co));
}

TEST_P(CompressionTest, UnknownEncodingIsRefusedAtStart) {
  StartServer();
  Ctx ctx = WithTimeout(10 * kSec);
  crpc_call *raw = nullptr;
  EXPECT_EQ(CRPC_INVALID_ARGUMENT,
            crpc_call_start_compressed(channel_, ctx.get(), kEcho, nullptr, "br", &raw));
  EXPECT_EQ(nullptr, raw);
  // Server side: the handler gets INVALID_ARGUMENT and fails the call,
  // possibly before the client's message has gone: then the send and the
  // half-close already return the call's status.
  Call call = Start(ctx.get(), nullptr, "snappy");
  crpc_code sent = crpc_call_send(call.get(), "x", 1);
  EXPECT_TRUE(sent == CRPC_OK || sent == CRPC_INVALID_ARGUMENT) << sent;
  crpc_code closed = crpc_call_close_send(call.get());
  EXPECT_TRUE(closed == CRPC_OK || closed == CRPC_INVALID_ARGUMENT) << closed;
  EXPECT_EQ(CRPC_INVALID_ARGUMENT, crpc_call_finish(call.get(), nullptr));
}

TEST_P(CompressionTest, ServerCompressesEachResponseUnlessOptedOut) {
  StartServer();
  for (const char *enc : {"gzip", "deflate"}) {
    Ctx ctx = WithTimeout(10 * kSec);
    Call call = Start(ctx.get(), nullptr, enc);
    std::string big(300000, 'b');
    ASSERT_EQ(CRPC_OK, crpc_call_send(call.get(), big.data(), big.size()));
    Received r = RecvOne(call.get());
    ASSERT_EQ(CRPC_OK, r.code);
    EXPECT_TRUE(r.compressed) << enc;
    EXPECT_EQ('\0', r.data[0]);
    EXPECT_TRUE(r.data.substr(1) == big);
    ASSERT_EQ(CRPC_OK, crpc_call_send(call.get(), "no thanks", 9));
    r = RecvOne(call.get());
    ASSERT_EQ(CRPC_OK, r.code);
    EXPECT_FALSE(r.compressed) << "CRPC_SEND_NO_COMPRESS";
    EXPECT_EQ(std::string("\0no thanks", 10), r.data);
    ASSERT_EQ(CRPC_OK, crpc_call_send(call.get(), "again", 5));
    r = RecvOne(call.get());
    EXPECT_TRUE(r.compressed);
    ASSERT_EQ(CRPC_OK, crpc_call_close_send(call.get()));
    EXPECT_TRUE(RecvOne(call.get()).end);
    EXPECT_EQ(CRPC_OK, crpc_call_finish(call.get(), nullptr));
  }
}

TEST_P(CompressionTest, BothWaysAtOnce) {
  StartServer();
  Ctx ctx = WithTimeout(10 * kSec);
  Call call = Start(ctx.get(), "deflate", "gzip");
  for (int i = 0; i < 50; i++) {
    std::string m(static_cast<size_t>(i) * 1000, static_cast<char>('A' + i % 26));
    ASSERT_EQ(CRPC_OK, crpc_call_send(call.get(), m.data(), m.size()));
    Received r = RecvOne(call.get());
    ASSERT_EQ(CRPC_OK, r.code) << i;
    EXPECT_TRUE(r.compressed);
    EXPECT_EQ('\1', r.data[0]);
    EXPECT_TRUE(r.data.substr(1) == m) << i;
  }
  ASSERT_EQ(CRPC_OK, crpc_call_close_send(call.get()));
  EXPECT_EQ(CRPC_OK, crpc_call_finish(call.get(), nullptr));
}

// The receive limit applies after decompression: a small compressed message
// that inflates past it is RESOURCE_EXHAUSTED, on either side.
TEST_P(CompressionTest, DecompressedSizeOverTheLimitIsResourceExhausted) {
  StartServer(/*server_max_recv=*/10000, /*client_max_recv=*/10000);
  Ctx ctx = WithTimeout(10 * kSec);
  std::string bomb(1 << 20, '\0');  // ~1 KiB once gzipped
  {
    Call call = Start(ctx.get(), "gzip");
    (void)crpc_call_send(call.get(), bomb.data(), bomb.size());
    (void)crpc_call_close_send(call.get());
    Status st;
    EXPECT_EQ(CRPC_RESOURCE_EXHAUSTED, crpc_call_finish(call.get(), st.get())) << st.message();
  }
  {
    // Under both limits once inflated: fine.
    Call call = Start(ctx.get(), "gzip");
    std::string ok(9000, '\0');
    ASSERT_EQ(CRPC_OK, crpc_call_send(call.get(), ok.data(), ok.size()));
    Received r = RecvOne(call.get());
    EXPECT_EQ(CRPC_OK, r.code);
    EXPECT_EQ(9001u, r.data.size());
    (void)crpc_call_close_send(call.get());
    EXPECT_EQ(CRPC_OK, crpc_call_finish(call.get(), nullptr));
  }
  {
    // The reply (1 + 10000 bytes) exceeds the client's 10000-byte limit
    // only after decompression; the request (10000) fits the server's.
    Call call = Start(ctx.get(), "gzip", "gzip");
    std::string m(10000, '\0');
    ASSERT_EQ(CRPC_OK, crpc_call_send(call.get(), m.data(), m.size()));
    Received r = RecvOne(call.get());
    EXPECT_EQ(CRPC_RESOURCE_EXHAUSTED, r.code);
    EXPECT_EQ(CRPC_RESOURCE_EXHAUSTED, crpc_call_finish(call.get(), nullptr));
  }
}

// ---- Python grpcio --------------------------------------------------------

// compression_peer.py server as a child: PORT line on stdout; stdin EOF
// stops it.
class PyCompressionServer {
 public:
  bool Start(bool identity_only, std::string *error) {
    std::string script = crpc_testing::Runfile("rpc/e2e/compression_peer.py");
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0) return false;
    if (pipe2(out, O_CLOEXEC) != 0) {
      close(in[0]);
      close(in[1]);
      return false;
    }
    std::vector<std::string> args = {crpc_testing::kPython, script, "server"};
    if (identity_only) args.push_back("--identity_only");
    std::vector<char *> argv;
    for (auto &a : args) argv.push_back(&a[0]);
    argv.push_back(nullptr);
    pid_t parent = getpid();
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);
      dup2(in[0], 0);
      dup2(out[1], 1);
      dup2(out[1], 2);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(in[0]);
    close(out[1]);
    stdin_fd_ = in[1];
    int fd = out[0];
    std::string buf;
    int64_t end = crpc_now_ns() + 20 * kSec;
    while (crpc_now_ns() < end) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      char c[256];
      ssize_t n = read(fd, c, sizeof c);
      if (n <= 0) break;
      buf.append(c, static_cast<size_t>(n));
      size_t at = buf.find("PORT ");
      if (at != std::string::npos && buf.find('\n', at) != std::string::npos) {
        port_ = atoi(buf.c_str() + at + 5);
        close(fd);
        return true;
      }
    }
    close(fd);
    *error = "compression_peer.py server did not start: " + buf;
    Stop();
    return false;
  }
  void Stop() {
    if (stdin_fd_ >= 0) close(stdin_fd_);
    stdin_fd_ = -1;
    if (pid_ <= 0) return;
    for (int i = 0; i < 50; i++) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  ~PyCompressionServer() { Stop(); }
  std::string target() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  pid_t pid_ = -1;
  int stdin_fd_ = -1;
  int port_ = 0;
};

// grpcio client -> crpc server: gzip and deflate requests are seen as
// compressed; crpc's gzip/deflate responses decode in grpcio.
TEST_P(CompressionTest, PythonClientToCrpcServer) {
  std::string why;
  if (!crpc_testing::PythonGrpcAvailable(&why)) GTEST_SKIP() << why;
  StartServer();
  crpc_testing::ProcResult r = crpc_testing::RunProcess(
      {crpc_testing::kPython, crpc_testing::Runfile("rpc/e2e/compression_peer.py"), "client",
       "--target", "127.0.0.1:" + std::to_string(port_)},
      60000);
  EXPECT_EQ(0, r.exit_code) << r.output;
  EXPECT_EQ(std::string::npos, r.output.find("FAIL")) << r.output;
}

// crpc client -> grpcio server: a gzip request and a gzip response (the
// server compresses when the request starts with "gz").
TEST_F(CompressionToPythonTest, CrpcClientToPythonServer) {
  std::string why;
  if (!crpc_testing::PythonGrpcAvailable(&why)) GTEST_SKIP() << why;
  PyCompressionServer py;
  ASSERT_TRUE(py.Start(false, &why)) << why;
  channel_ = crpc_channel_new(py.target().c_str(), nullptr);
  ASSERT_NE(nullptr, channel_);
  Ctx ctx = WithTimeout(20 * kSec);
  for (const char *enc : {"gzip", "deflate", static_cast<const char *>(nullptr)}) {
    for (bool gz_reply : {false, true}) {
      std::string body = (gz_reply ? "gz" : "id") + std::string(100000, 'q');
      Call call = Start(ctx.get(), enc);
      ASSERT_EQ(CRPC_OK, crpc_call_send(call.get(), body.data(), body.size()));
      ASSERT_EQ(CRPC_OK, crpc_call_close_send(call.get()));
      Received r = RecvOne(call.get());
      ASSERT_EQ(CRPC_OK, r.code) << (enc ? enc : "identity");
      EXPECT_TRUE(r.data == body);
      EXPECT_EQ(gz_reply, r.compressed) << (enc ? enc : "identity");
      Status st;
      EXPECT_EQ(CRPC_OK, crpc_call_finish(call.get(), st.get())) << st.message();
    }
  }
}

// A server that accepts only identity: before the channel has heard its
// grpc-accept-encoding, a gzip call fails UNIMPLEMENTED (grpcio's rejection
// does not list what it accepts). Once a response has said "identity",
// gzip calls on the channel go uncompressed and succeed.
TEST_F(CompressionToPythonTest, ClientFallsBackToWhatTheServerAccepts) {
  std::string why;
  if (!crpc_testing::PythonGrpcAvailable(&why)) GTEST_SKIP() << why;
  PyCompressionServer py;
  ASSERT_TRUE(py.Start(true, &why)) << why;
  channel_ = crpc_channel_new(py.target().c_str(), nullptr);
  ASSERT_NE(nullptr, channel_);
  Ctx ctx = WithTimeout(20 * kSec);
  std::string body = "id" + std::string(1000, 'q');
  {
    Call call = Start(ctx.get(), "gzip");
    (void)crpc_call_send(call.get(), body.data(), body.size());
    (void)crpc_call_close_send(call.get());
    Status st;
    EXPECT_EQ(CRPC_UNIMPLEMENTED, crpc_call_finish(call.get(), st.get())) << st.message();
  }
  for (int i = 0; i < 3; i++) {
    Call call = Start(ctx.get(), i == 0 ? nullptr : "gzip");
    ASSERT_EQ(CRPC_OK, crpc_call_send(call.get(), body.data(), body.size()));
    ASSERT_EQ(CRPC_OK, crpc_call_close_send(call.get()));
    Received r = RecvOne(call.get());
    ASSERT_EQ(CRPC_OK, r.code);
    EXPECT_TRUE(r.data == body);
    Status st;
    EXPECT_EQ(CRPC_OK, crpc_call_finish(call.get(), st.get())) << st.message();
  }
}

CRPC_E2E_BOTH_HANDLERS(CompressionTest);

}  // namespace
}  // namespace crpc_e2e
