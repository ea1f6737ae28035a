// Limits, each with its gRPC status, and never at the expense of another
// call or connection: SETTINGS_MAX_CONCURRENT_STREAMS, max_metadata_size
// (SETTINGS_MAX_HEADER_LIST_SIZE) both ways and on both sides, message send
// limits (receive limits are in calls_test, stream_test, compression_test),
// and flow-control windows. Peers that ignore the limits are raw nghttp2
// sessions, so each side's own enforcement is tested, not just the other
// side's politeness. Every test that reaches a server handler runs against
// blocking and async handlers (the Limits methods of both styles:
// limits_handlers.h). Every test ends with the ctx leak check.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <tuple>

#include "rpc/e2e/e2e_util.h"
#include "rpc/e2e/limits_handlers.h"

namespace crpc_e2e {
namespace {

using limits::L;
using limits::Limits;

class LimitsBase : public E2ETest {
 protected:
  // The server with crpc.test.Test and crpc.limits.Limits, both served by
  // handlers_ (blocking or async: rpc/e2e/limits_handlers.h).
  void StartLimits(const crpc_server_options *so = nullptr,
                   const crpc_channel_options *co = nullptr) {
    Start(
        so,
        [&](crpc_server *s) {
          limits::AddLimitsMethods(s, &st_, handlers_ == Handlers::kAsync);
        },
        co);
  }

  // A call that sends `req` and half-closes; returns its final status.
  crpc_code Finish(crpc_channel *ch, const std::string &method, const std::string &req,
                   std::string *msg, const crpc_metadata *md = nullptr) {
    Ctx ctx = WithTimeout(10 * kSec);
    crpc_call *raw = nullptr;
    crpc_code rc = crpc_call_start(ch, ctx.get(), method.c_str(), md, &raw);
    if (rc != CRPC_OK) return rc;
    Call call(raw);
    if (!req.empty()) (void)crpc_call_send(call.get(), req.data(), req.size());
    (void)crpc_call_close_send(call.get());
    Status st;
    rc = crpc_call_finish(call.get(), st.get());
    *msg = st.message();
    return rc;
  }

  // Waits for the ctx count to return to `expected` while the channel is
  // still open: a call struct stranded on a live connection (its stream
  // never closed) keeps its ctx alive and shows up here.
  void ExpectNoStrandedCalls(size_t expected) {
    bool ok = Eventually([&] { return crpc_ctx_live_count() == expected; }, 5000);
    if (!ok) crpc_ctx_dump(stderr);
    EXPECT_TRUE(ok) << "call ctxs still alive with the channel open";
  }

  Limits st_;
};

// Every test that reaches a server handler runs against blocking and async
// ones.
class LimitsTest : public BothHandlers<LimitsBase> {};
// The crpc client against a raw nghttp2 server: no crpc handler involved.
using LimitsClientTest = LimitsBase;

// ---- raw nghttp2 peers (they ignore our SETTINGS) ------------------------

using Headers = std::vector<std::pair<std::string, std::string>>;

std::vector<nghttp2_nv> Nv(const Headers &h) {
  std::vector<nghttp2_nv> nv;
  for (const auto &p : h) {
    nv.push_back({(uint8_t *)p.first.data(), (uint8_t *)p.second.data(), p.first.size(),
                  p.second.size(), NGHTTP2_NV_FLAG_NONE});
  }
  return nv;
}

ssize_t BlockingSend(int fd, const uint8_t *data, size_t len) {
  size_t off = 0;
  while (off < len) {
    ssize_t w = send(fd, data + off, len - off, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN) {
      pollfd p{fd, POLLOUT, 0};
      poll(&p, 1, 1000);
      continue;
    }
    if (w <= 0) return NGHTTP2_ERR_CALLBACK_FAILURE;
    off += static_cast<size_t>(w);
  }
  return static_cast<ssize_t>(len);
}

// A client driven by the test thread: sends exactly the headers given.
class RawClient {
 public:
  explicit RawClient(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    EXPECT_EQ(0, connect(fd_, reinterpret_cast<sockaddr *>(&a), sizeof a));
    nghttp2_session_callbacks *cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_send_callback(
        cbs, [](nghttp2_session *, const uint8_t *d, size_t n, int, void *ud) {
          return BlockingSend(static_cast<RawClient *>(ud)->fd_, d, n);
        });
    nghttp2_session_callbacks_set_on_header_callback(
        cbs, [](nghttp2_session *, const nghttp2_frame *f, const uint8_t *n, size_t nl,
                const uint8_t *v, size_t vl, uint8_t, void *ud) {
          static_cast<RawClient *>(ud)->hdrs_[f->hd.stream_id][std::string((const char *)n, nl)] =
              std::string((const char *)v, vl);
          return 0;
        });
    nghttp2_session_callbacks_set_on_stream_close_callback(
        cbs, [](nghttp2_session *, int32_t sid, uint32_t err, void *ud) {
          static_cast<RawClient *>(ud)->closed_[sid] = err;
          return 0;
        });
    nghttp2_session_client_new(&s_, cbs, this);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_submit_settings(s_, NGHTTP2_FLAG_NONE, nullptr, 0);
  }
  ~RawClient() {
    nghttp2_session_del(s_);
    close(fd_);
  }

  // A request with END_STREAM and no body.
  int32_t Request(const Headers &h) {
    auto nv = Nv(h);
    int32_t sid = nghttp2_submit_request(s_, nullptr, nv.data(), nv.size(), nullptr, nullptr);
    nghttp2_session_send(s_);
    return sid;
  }

  // Pumps the session until stream sid has closed.
  bool WaitClosed(int32_t sid, int64_t ms) {
    int64_t end = crpc_now_ns() + ms * kMs;
    while (closed_.count(sid) == 0 && crpc_now_ns() < end) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      uint8_t buf[16384];
      ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n <= 0 || nghttp2_session_mem_recv(s_, buf, static_cast<size_t>(n)) < 0) return false;
      nghttp2_session_send(s_);
    }
    return closed_.count(sid) == 1;
  }

  std::map<std::string, std::string> &headers(int32_t sid) { return hdrs_[sid]; }

 private:
  int fd_ = -1;
  nghttp2_session *s_ = nullptr;
  std::map<int32_t, std::map<std::string, std::string>> hdrs_;
  std::map<int32_t, uint32_t> closed_;
};

// A server on its own thread that answers every request (once the client
// half-closes) by its path: "BigHeaders" puts an n-byte x-big in the
// response headers, "BigTrailers" in the trailers, anything else answers
// small headers + grpc-status 0. No messages.
class RawServer {
 public:
  explicit RawServer(size_t big) : big_(big, 'r') {
    lfd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(0, bind(lfd_, reinterpret_cast<sockaddr *>(&a), sizeof a));
    EXPECT_EQ(0, listen(lfd_, 8));
    socklen_t len = sizeof a;
    getsockname(lfd_, reinterpret_cast<sockaddr *>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { Run(); });
  }
  ~RawServer() {
    stop_ = true;
    thread_.join();
    for (auto &c : conns_) {
      nghttp2_session_del(c->s);
      close(c->fd);
    }
    close(lfd_);
  }
  std::string target() const { return "127.0.0.1:" + std::to_string(port_); }
  int accepted() const { return accepted_.load(); }

 private:
  struct Conn {
    RawServer *srv;
    int fd;
    nghttp2_session *s;
    std::map<int32_t, std::string> paths;
  };

  static int OnFrame(nghttp2_session *s, const nghttp2_frame *f, void *ud) {
    auto *c = static_cast<Conn *>(ud);
    if ((f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) ||
        !(f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
      return 0;
    }
    const std::string &path = c->paths[f->hd.stream_id];
    bool big_head = path.find("BigHeaders") != std::string::npos;
    bool big_trl = path.find("BigTrailers") != std::string::npos;
    Headers head = {{":status", "200"}, {"content-type", "application/grpc"}};
    Headers trl = {{"grpc-status", "0"}};
    if (big_head) head.push_back({"x-big", c->srv->big_});
    if (big_trl) trl.push_back({"x-big", c->srv->big_});
    auto hv = Nv(head), tv = Nv(trl);
    nghttp2_submit_headers(s, NGHTTP2_FLAG_NONE, f->hd.stream_id, nullptr, hv.data(), hv.size(),
                           nullptr);
    nghttp2_submit_headers(s, NGHTTP2_FLAG_END_STREAM, f->hd.stream_id, nullptr, tv.data(),
                           tv.size(), nullptr);
    return 0;
  }

  void Run() {
    nghttp2_session_callbacks *cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_send_callback(
        cbs, [](nghttp2_session *, const uint8_t *d, size_t n, int, void *ud) {
          return BlockingSend(static_cast<Conn *>(ud)->fd, d, n);
        });
    nghttp2_session_callbacks_set_on_header_callback(
        cbs, [](nghttp2_session *, const nghttp2_frame *f, const uint8_t *n, size_t nl,
                const uint8_t *v, size_t vl, uint8_t, void *ud) {
          if (nl == 5 && memcmp(n, ":path", 5) == 0) {
            static_cast<Conn *>(ud)->paths[f->hd.stream_id] = std::string((const char *)v, vl);
          }
          return 0;
        });
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, OnFrame);
    while (!stop_) {
      std::vector<pollfd> fds{{lfd_, POLLIN, 0}};
      for (auto &c : conns_) fds.push_back({c->fd, POLLIN, 0});
      if (poll(fds.data(), fds.size(), 50) <= 0) continue;
      if (fds[0].revents & POLLIN) {
        auto c = std::make_unique<Conn>();
        c->srv = this;
        c->fd = accept4(lfd_, nullptr, nullptr, SOCK_CLOEXEC);
        nghttp2_session_server_new(&c->s, cbs, c.get());
        nghttp2_submit_settings(c->s, NGHTTP2_FLAG_NONE, nullptr, 0);
        nghttp2_session_send(c->s);
        conns_.push_back(std::move(c));
        accepted_++;
      }
      for (size_t i = 1; i < fds.size(); i++) {
        if (!fds[i].revents) continue;
        Conn *c = conns_[i - 1].get();
        uint8_t buf[16384];
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n > 0) nghttp2_session_mem_recv(c->s, buf, static_cast<size_t>(n));
        nghttp2_session_send(c->s);
      }
    }
    nghttp2_session_callbacks_del(cbs);
  }

  std::string big_;
  int lfd_ = -1, port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::thread thread_;
  std::vector<std::unique_ptr<Conn>> conns_;
};

// ---- max concurrent streams ----------------------------------------------

TEST_P(LimitsTest, MaxConcurrentStreams_ExcessCallsQueueOnTheClient) {
  crpc_server_options so{};
  so.max_concurrent_streams = 2;
  StartLimits(&so);
  const size_t idle_ctxs = crpc_ctx_live_count();  // the server's own

  // Five at once on a fresh connection (before the client has the
  // server's SETTINGS): all complete, never more than two in handlers.
  std::vector<std::thread> ts;
  std::atomic<int> ok{0};
  for (int i = 0; i < 5; i++) {
    ts.emplace_back([&] {
      Ctx ctx = WithTimeout(20 * kSec);
      UnaryResult r = Unary(channel_, ctx.get(), L("Slow"), "sleep 150");
      EXPECT_EQ(CRPC_OK, r.code) << r.message;
      if (r.code == CRPC_OK) ok++;
    });
  }
  for (auto &t : ts) t.join();
  ts.clear();
  EXPECT_EQ(5, ok.load());
  EXPECT_EQ(5, st_.invocations.load());
  EXPECT_EQ(2, st_.max_running.load()) << "the server ran more than its SETTINGS allow";

  // Two held calls fill the connection; a third, queued in nghttp2, runs
  // out of time without ever reaching the server.
  st_.invocations = 0;
  for (int i = 0; i < 2; i++) {
    ts.emplace_back([&] {
      Ctx ctx = WithTimeout(30 * kSec);
      UnaryResult r = Unary(channel_, ctx.get(), L("Slow"), "hold");
      EXPECT_EQ(CRPC_OK, r.code) << r.message;
    });
  }
  ASSERT_TRUE(Eventually([&] { return st_.running.load() == 2; }, 10000));
  Ctx short_ctx = WithTimeout(300 * kMs);
  int64_t t0 = crpc_now_ns();
  UnaryResult r = Unary(channel_, short_ctx.get(), L("Slow"), "sleep 0");
  int64_t took = crpc_now_ns() - t0;
  EXPECT_EQ(CRPC_DEADLINE_EXCEEDED, r.code) << r.message;
  EXPECT_GE(took, 250 * kMs);
  EXPECT_LT(took, 5 * kSec);
  EXPECT_EQ(2, st_.invocations.load()) << "the queued call reached the server";

  // Another connection has its own two streams.
  crpc_channel *ch2 = crpc_channel_new(target_.c_str(), nullptr);
  ASSERT_NE(nullptr, ch2);
  Ctx ctx2 = WithTimeout(10 * kSec);
  EXPECT_EQ(CRPC_OK, Unary(ch2, ctx2.get(), M("Echo"), "other conn").code);

  st_.release = true;
  for (auto &t : ts) t.join();
  r = Unary(channel_, ctx2.get(), L("Slow"), "sleep 0");
  EXPECT_EQ(CRPC_OK, r.code) << r.message;
  short_ctx.reset();
  ctx2.reset();
  ExpectNoStrandedCalls(idle_ctxs);
  crpc_channel_free(ch2);
}

// ---- max metadata size ----------------------------------------------------

// The RFC 7540 count, exactly: a list of exactly max_metadata_size is served,
// one byte more is answered RESOURCE_EXHAUSTED (trailers-only) without
// running the handler, and the same connection then serves the next stream.
TEST_P(LimitsTest, MaxMetadata_ServerEnforcesItsLimitOnAPeerThatIgnoresIt) {
  crpc_server_options so{};
  so.max_metadata_size = 4096;
  StartLimits(&so);
  RawClient c(port_);
  std::string path = L("Noop");
  Headers base = {{":method", "POST"},
                  {":scheme", "http"},
                  {":authority", "127.0.0.1:" + std::to_string(port_)},
                  {":path", path},
                  {"content-type", "application/grpc"},
                  {"te", "trailers"}};
  size_t used = 0;
  for (const auto &p : base) used += p.first.size() + p.second.size() + 32;
  auto with_pad = [&](size_t total) {
    Headers h = base;
    h.push_back({"x-pad", std::string(total - used - (5 + 32), 'p')});
    return h;
  };

  int32_t sid = c.Request(with_pad(4096));
  ASSERT_TRUE(c.WaitClosed(sid, 10000));
  EXPECT_EQ("0", c.headers(sid)["grpc-status"]) << c.headers(sid)["grpc-message"];
  EXPECT_EQ(1, st_.invocations.load());

  sid = c.Request(with_pad(4097));
  ASSERT_TRUE(c.WaitClosed(sid, 10000));
  EXPECT_EQ("200", c.headers(sid)[":status"]);
  EXPECT_EQ("8", c.headers(sid)["grpc-status"]) << "RESOURCE_EXHAUSTED expected";
  const std::string &why = c.headers(sid)["grpc-message"];
  EXPECT_NE(std::string::npos, why.find("4097")) << why;
  EXPECT_NE(std::string::npos, why.find("4096")) << why;
  EXPECT_EQ(1, st_.invocations.load()) << "the handler ran for an oversized request";

  // Far over (64 KiB in many fields): same answer, connection fine.
  Headers huge = base;
  for (int i = 0; i < 64; i++) huge.push_back({"x-f" + std::to_string(i), std::string(1000, 'h')});
  sid = c.Request(huge);
  ASSERT_TRUE(c.WaitClosed(sid, 10000));
  EXPECT_EQ("8", c.headers(sid)["grpc-status"]);

  sid = c.Request(base);
  ASSERT_TRUE(c.WaitClosed(sid, 10000));
  EXPECT_EQ("0", c.headers(sid)["grpc-status"]) << "connection unusable after the refusal";
  EXPECT_EQ(2, st_.invocations.load());

  // Other connections never noticed.
  Ctx ctx = WithTimeout(10 * kSec);
  EXPECT_EQ(CRPC_OK, Unary(channel_, ctx.get(), M("Echo"), "fine").code);
}

// A crpc client knows the server's limit from its SETTINGS and does not send
// what would be refused; on a fresh connection (limit not known yet) the
// server's own check answers. RESOURCE_EXHAUSTED either way.
TEST_P(LimitsTest, MaxMetadata_ClientDoesNotSendOverTheServersLimit) {
  StartLimits();  // the server's default: 8 KiB
  Md big = NewMd({{"x-big", std::string(10000, 'm')}});
  std::string msg;
  EXPECT_EQ(CRPC_RESOURCE_EXHAUSTED, Finish(channel_, L("Noop"), "", &msg, big.get())) << msg;
  EXPECT_NE(std::string::npos, msg.find("8192")) << msg;

  // Now the SETTINGS are in: refused before sending, saying so.
  EXPECT_EQ(CRPC_RESOURCE_EXHAUSTED, Finish(channel_, L("Noop"), "", &msg, big.get())) << msg;
  EXPECT_NE(std::string::npos, msg.find("SETTINGS_MAX_HEADER_LIST_SIZE")) << msg;
  EXPECT_NE(std::string::npos, msg.find("8192")) << msg;
  EXPECT_EQ(0, st_.invocations.load());

  Md fits = NewMd({{"x-big", std::string(7000, 'm')}});
  EXPECT_EQ(CRPC_OK, Finish(channel_, L("Noop"), "", &msg, fits.get())) << msg;
  EXPECT_EQ(1, st_.invocations.load());
}

// The server does not send response metadata over the client's advertised
// limit: the call ends RESOURCE_EXHAUSTED, whichever block was too big.
TEST_P(LimitsTest, MaxMetadata_ServerDoesNotSendOverTheClientsLimit) {
  crpc_channel_options co{};
  co.max_metadata_size = 4096;
  StartLimits(nullptr, &co);
  std::string msg;
  for (const char *where : {"headers", "trailers", "trailers-only"}) {
    std::string req = std::string(where) + " 5000";
    EXPECT_EQ(CRPC_RESOURCE_EXHAUSTED, Finish(channel_, L("BigMd"), req, &msg)) << where;
    EXPECT_NE(std::string::npos, msg.find("4096")) << where << ": " << msg;
    EXPECT_NE(std::string::npos, msg.find("SETTINGS_MAX_HEADER_LIST_SIZE")) << msg;
    // Under the limit the same call is fine, on the same connection.
    req = std::string(where) + " 3000";
    EXPECT_EQ(CRPC_OK, Finish(channel_, L("BigMd"), req, &msg)) << where << ": " << msg;
  }
}

// Peers that allow 1 MiB still never get more than 64 KiB from crpc (what
// nghttp2 can send, and the most an nghttp2 receiver takes in one field):
// RESOURCE_EXHAUSTED naming the cap, in both directions; 60 KiB is fine.
TEST_P(LimitsTest, MaxMetadata_SendCapOf64KiBWhateverThePeerAllows) {
  crpc_server_options so{};
  so.max_metadata_size = 1 << 20;
  crpc_channel_options co{};
  co.max_metadata_size = 1 << 20;
  StartLimits(&so, &co);
  std::string msg;
  EXPECT_EQ(CRPC_OK, Finish(channel_, L("Noop"), "", &msg)) << msg;  // SETTINGS in
  Md many = NewMd();
  for (int i = 0; i < 70; i++) {
    crpc_metadata_add(many.get(), ("x-f" + std::to_string(i)).c_str(), std::string(1000, 'm').data(),
                      1000);
  }
  EXPECT_EQ(CRPC_RESOURCE_EXHAUSTED, Finish(channel_, L("Noop"), "", &msg, many.get())) << msg;
  EXPECT_NE(std::string::npos, msg.find("send cap")) << msg;
  Md one = NewMd({{"x-big", std::string(60000, 'm')}});
  EXPECT_EQ(CRPC_OK, Finish(channel_, L("Noop"), "", &msg, one.get())) << msg;
  EXPECT_EQ(CRPC_RESOURCE_EXHAUSTED, Finish(channel_, L("BigMd"), "headers 70000", &msg)) << msg;
  EXPECT_NE(std::string::npos, msg.find("send cap")) << msg;
  EXPECT_EQ(CRPC_OK, Finish(channel_, L("BigMd"), "headers 60000", &msg)) << msg;
  EXPECT_EQ(CRPC_OK, Finish(channel_, L("BigMd"), "trailers 60000", &msg)) << msg;
}

// A server that ignores the client's SETTINGS: the channel enforces its
// own limit on headers and trailers, and its connection stays usable.
TEST_F(LimitsClientTest, MaxMetadata_ChannelEnforcesItsLimitOnAPeerThatIgnoresIt) {
  RawServer raw(6000);
  crpc_channel_options co{};
  co.max_metadata_size = 4096;
  crpc_channel *ch = crpc_channel_new(raw.target().c_str(), &co);
  ASSERT_NE(nullptr, ch);
  std::string msg;
  EXPECT_EQ(CRPC_OK, Finish(ch, "/raw.R/Small", "x", &msg)) << msg;
  EXPECT_EQ(CRPC_RESOURCE_EXHAUSTED, Finish(ch, "/raw.R/BigHeaders", "x", &msg)) << msg;
  EXPECT_NE(std::string::npos, msg.find("response headers")) << msg;
  EXPECT_NE(std::string::npos, msg.find("4096")) << msg;
  EXPECT_EQ(CRPC_RESOURCE_EXHAUSTED, Finish(ch, "/raw.R/BigTrailers", "x", &msg)) << msg;
  EXPECT_NE(std::string::npos, msg.find("response trailers")) << msg;
  EXPECT_EQ(CRPC_OK, Finish(ch, "/raw.R/Small", "x", &msg)) << msg;
  EXPECT_EQ(1, raw.accepted()) << "the connection did not survive";
  crpc_channel_free(ch);
}

// ---- message sizes: the send limits (receive limits: calls_test) ----------

TEST_P(LimitsTest, MaxSendMessage_BothSidesResourceExhaustedConnectionFine) {
  crpc_server_options so{};
  so.max_send_message_size = 1000;
  crpc_channel_options co{};
  co.max_send_message_size = 2000;
  StartLimits(&so, &co);
  Ctx ctx = WithTimeout(10 * kSec);
  // Server side: a 1001-byte reply is refused to the handler.
  EXPECT_EQ(CRPC_OK, Unary(channel_, ctx.get(), M("Echo"), std::string(1000, 'a')).code);
  UnaryResult r = Unary(channel_, ctx.get(), M("Echo"), std::string(1001, 'a'));
  EXPECT_EQ(CRPC_RESOURCE_EXHAUSTED, r.code) << r.message;
  // Client side: refused at once, as a unary call and on a stream.
  int64_t t0 = crpc_now_ns();
  r = Unary(channel_, ctx.get(), M("Echo"), std::string(2001, 'a'));
  EXPECT_EQ(CRPC_RESOURCE_EXHAUSTED, r.code) << r.message;
  EXPECT_NE(std::string::npos, r.message.find("max_send_message_size")) << r.message;
  EXPECT_LT(crpc_now_ns() - t0, 5 * kSec) << "the unary call waited for its deadline";
  crpc_call *raw = nullptr;
  ASSERT_EQ(CRPC_OK, crpc_call_start(channel_, ctx.get(), M("Chat").c_str(), nullptr, &raw));
  Call call(raw);
  std::string big(2001, 'c'), m;
  EXPECT_EQ(CRPC_RESOURCE_EXHAUSTED, crpc_call_send(call.get(), big.data(), big.size()));
  ASSERT_EQ(CRPC_OK, crpc_call_send(call.get(), "small", 5)) << "stream unusable after refusal";
  ASSERT_EQ(CRPC_OK, Recv(call.get(), &m));
  EXPECT_EQ("small", m);
  ASSERT_EQ(CRPC_OK, crpc_call_close_send(call.get()));
  EXPECT_EQ(CRPC_OK, crpc_call_finish(call.get(), nullptr));
  // The connection carries on, and another one never noticed.
  EXPECT_EQ(CRPC_OK, Unary(channel_, ctx.get(), M("Echo"), "after").code);
  crpc_channel *ch2 = crpc_channel_new(target_.c_str(), nullptr);
  EXPECT_EQ(CRPC_OK, Unary(ch2, ctx.get(), M("Echo"), std::string(1000, 'z')).code);
  crpc_channel_free(ch2);
}

// An oversized message in the middle of a stream fails that stream only:
// a call running beside it on the same connection is not disturbed.
TEST_P(LimitsTest, MaxRecvMessage_MidStreamFailsOnlyThatCall) {
  crpc_server_options so{};
  so.max_recv_message_size = 4096;
  crpc_channel_options co{};
  co.max_recv_message_size = 4096;
  StartLimits(&so, &co);
  Ctx ctx = WithTimeout(20 * kSec);
  crpc_call *raw = nullptr;
  ASSERT_EQ(CRPC_OK, crpc_call_start(channel_, ctx.get(), M("Chat").c_str(), nullptr, &raw));
  Call beside(raw);
  std::string m;
  for (int dir = 0; dir < 2; dir++) {
    // dir 0: client -> server too big (Chat); 1: server -> client (Count).
    ASSERT_EQ(CRPC_OK, crpc_call_start(channel_, ctx.get(), M(dir ? "Count" : "Chat").c_str(),
                                       nullptr, &raw));
    Call victim(raw);
    if (dir == 0) {
      ASSERT_EQ(CRPC_OK, crpc_call_send(victim.get(), "ok", 2));
      ASSERT_EQ(CRPC_OK, Recv(victim.get(), &m));
      std::string big(4097, 'v');
      (void)crpc_call_send(victim.get(), big.data(), big.size());
    } else {
      ASSERT_EQ(CRPC_OK, crpc_call_send(victim.get(), "3 4097 0", 8));
      // The too-big reply can end the call before this half-close (an
      // async Count answers on the loop at once): close_send then returns
      // the call's final code (channel.h), the RESOURCE_EXHAUSTED below.
      crpc_code closed = crpc_call_close_send(victim.get());
      ASSERT_TRUE(closed == CRPC_OK || closed == CRPC_RESOURCE_EXHAUSTED) << closed;
    }
    Status st;
    EXPECT_EQ(CRPC_RESOURCE_EXHAUSTED, crpc_call_finish(victim.get(), st.get())) << st.message();
    ASSERT_EQ(CRPC_OK, crpc_call_send(beside.get(), "still", 5)) << dir;
    ASSERT_EQ(CRPC_OK, Recv(beside.get(), &m)) << dir;
    EXPECT_EQ("still", m);
  }
  ASSERT_EQ(CRPC_OK, crpc_call_close_send(beside.get()));
  EXPECT_EQ(CRPC_OK, crpc_call_finish(beside.get(), nullptr));
}

// ---- flow-control windows ---------------------------------------------------

// Option validation only: no server runs, no handler is involved.
TEST(LimitsOptions, OutOfRangeWindowsAreRejected) {
  const size_t ctxs = crpc_ctx_live_count();
  struct W {
    uint32_t stream, conn;
    bool ok;
  } cases[] = {{0, 0, true},           {1, 65535, true},         {0x7fffffff, 0x7fffffff, true},
               {0x80000000u, 0, false}, {0, 65534, false},        {0, 1, false},
               {0, 0x80000000u, false}, {0xffffffffu, 0, false}};
  for (const W &w : cases) {
    crpc_server_options so{};
    so.initial_stream_window_size = w.stream;
    so.initial_connection_window_size = w.conn;
    crpc_server *s = crpc_server_new(&so);
    EXPECT_EQ(w.ok, s != nullptr) << w.stream << " " << w.conn;
    crpc_server_free(s);
    crpc_channel_options co{};
    co.initial_stream_window_size = w.stream;
    co.initial_connection_window_size = w.conn;
    crpc_channel *ch = crpc_channel_new("127.0.0.1:1", &co);
    EXPECT_EQ(w.ok, ch != nullptr) << w.stream << " " << w.conn;
    crpc_channel_free(ch);
  }
  EXPECT_EQ(ctxs, crpc_ctx_live_count());
}

// Waits until *v has not changed for 300 ms (a stalled stream); its value.
size_t Settled(const std::function<size_t()> &v) {
  size_t last = v();
  int64_t since = crpc_now_ns(), end = since + 20 * kSec;
  while (crpc_now_ns() < end && crpc_now_ns() - since < 300 * kMs) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    size_t now = v();
    if (now != last) since = crpc_now_ns();
    last = now;
  }
  return last;
}

// (window size, handler style): Flood and Stall, the stalled calls, and the
// transfers beside them (Count, Echo, Collect) are served by either style.
class WindowTest : public LimitsBase,
                   public ::testing::WithParamInterface<std::tuple<uint32_t, Handlers>> {
 protected:
  void SetUp() override {
    LimitsBase::SetUp();
    handlers_ = std::get<1>(GetParam());
  }
};

// Both directions, with the stream window set on both ends and the
// connection window at its HTTP/2 minimum: one call whose reader has
// stalled holds at most its own window (plus the send buffers) while a
// multi-megabyte transfer runs beside it on the same connection.
TEST_P(WindowTest, StalledCallDoesNotBlockAnotherOnTheSameConnection) {
  const uint32_t window = std::get<0>(GetParam());
  crpc_server_options so{};
  so.initial_stream_window_size = window;
  so.initial_connection_window_size = 65535;
  crpc_channel_options co{};
  co.initial_stream_window_size = window;
  co.initial_connection_window_size = 65535;
  StartLimits(&so, &co);
  // Window + a 64 KiB send buffer + a message or two in flight.
  const size_t bound = window + 64 * 1024 + 64 * 1024;
  Ctx ctx = WithTimeout(60 * kSec);

  // server -> client: Flood is never read.
  crpc_call *raw = nullptr;
  ASSERT_EQ(CRPC_OK, crpc_call_start(channel_, ctx.get(), L("Flood").c_str(), nullptr, &raw));
  Call flood(raw);
  ASSERT_EQ(CRPC_OK, crpc_call_close_send(flood.get()));
  size_t stalled = Settled([&] { return st_.flood_bytes.load(); });
  EXPECT_LE(stalled, bound);
  if (window > 1024 * 1024) {
    EXPECT_GT(stalled, 1024u * 1024) << "the larger window was not used";
  }

  ASSERT_EQ(CRPC_OK, crpc_call_start(channel_, ctx.get(), M("Count").c_str(), nullptr, &raw));
  Call count(raw);
  ASSERT_EQ(CRPC_OK, crpc_call_send(count.get(), "200 16384 0", 11));  // 3.2 MiB
  ASSERT_EQ(CRPC_OK, crpc_call_close_send(count.get()));
  for (int i = 0; i < 200; i++) {
    std::string m;
    ASSERT_EQ(CRPC_OK, Recv(count.get(), &m)) << i;
    ASSERT_EQ(std::string(16384, static_cast<char>(i)), m) << i;
  }
  EXPECT_EQ(CRPC_OK, crpc_call_finish(count.get(), nullptr));
  // One message larger than the window, too.
  EXPECT_EQ(CRPC_OK, Unary(channel_, ctx.get(), M("Echo"), std::string(3 << 20, 'e')).code);
  EXPECT_LE(st_.flood_bytes.load(), bound) << "the stalled stream moved";

  // client -> server: Stall never reads.
  Ctx stall_ctx = WithCancel();
  ASSERT_EQ(CRPC_OK, crpc_call_start(channel_, stall_ctx.get(), L("Stall").c_str(), nullptr, &raw));
  Call stall(raw);
  std::atomic<size_t> pushed{0};
  std::thread sender([&] {
    std::string m(16384, 's');
    while (crpc_call_send(stall.get(), m.data(), m.size()) == CRPC_OK) pushed += m.size();
  });
  stalled = Settled([&] { return pushed.load(); });
  EXPECT_LE(stalled, bound);
  if (window > 1024 * 1024) {
    EXPECT_GT(stalled, 1024u * 1024) << "the larger window was not used";
  }

  ASSERT_EQ(CRPC_OK, crpc_call_start(channel_, ctx.get(), M("Collect").c_str(), nullptr, &raw));
  Call collect(raw);
  std::string chunk(64 * 1024, 'k');
  for (int i = 0; i < 64; i++) {
    ASSERT_EQ(CRPC_OK, crpc_call_send(collect.get(), chunk.data(), chunk.size())) << i;
  }
  ASSERT_EQ(CRPC_OK, crpc_call_close_send(collect.get()));
  std::string reply;
  ASSERT_EQ(CRPC_OK, Recv(collect.get(), &reply));
  EXPECT_EQ("64 4194304", reply);
  EXPECT_EQ(CRPC_OK, crpc_call_finish(collect.get(), nullptr));
  EXPECT_LE(pushed.load(), bound) << "the stalled stream moved";

  // Another connection with default windows is unaffected meanwhile.
  crpc_channel *ch2 = crpc_channel_new(target_.c_str(), nullptr);
  EXPECT_EQ(CRPC_OK, Unary(ch2, ctx.get(), M("Echo"), std::string(1 << 20, 'o')).code);
  crpc_channel_free(ch2);

  crpc_ctx_cancel(stall_ctx.get(), CRPC_CANCELLED, "test done");
  sender.join();  // its blocked send returned
  stall.reset();
  flood.reset();
  EXPECT_TRUE(Eventually([&] { return st_.stall_running.load() == 0; }, 10000));
}

CRPC_E2E_BOTH_HANDLERS(LimitsTest);

INSTANTIATE_TEST_SUITE_P(
    Windows, WindowTest,
    ::testing::Combine(::testing::Values(16384u, 65536u, 4u << 20),
                       ::testing::Values(Handlers::kBlocking, Handlers::kAsync)),
    [](const ::testing::TestParamInfo<std::tuple<uint32_t, Handlers>> &i) {
      return std::to_string(std::get<0>(i.param) / 1024) + "KiB_" +
             (std::get<1>(i.param) == Handlers::kAsync ? "Async" : "Blocking");
    });

}  // namespace
}  // namespace crpc_e2e
