// Connection lifecycle seen from the channel: reconnect backoff (fail fast
// while backing off, jittered exponential growth), wait-for-ready calls
// bounded by their ctx, and idle connections closed then remade. Real
// servers on unix sockets and loopback TCP.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <dirent.h>
#include <nghttp2/nghttp2.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "crpc/channel.h"
#include "crpc/credentials.h"
#include "crpc/ctx.h"
#include "crpc/server.h"
#include "rpc/channel/backoff.h"
#include "rpc/channel/test_util.h"

namespace crpc_test {
namespace {

// Replies with the caller's address: one per connection.
crpc_code Peer(crpc_server_call *call, const crpc_ctx *) {
  crpc_message m;
  crpc_code c = crpc_server_call_recv(call, &m);
  if (c != CRPC_OK) return c;
  free(m.data);
  const char *peer = crpc_server_call_peer(call);
  return crpc_server_call_send(call, peer, strlen(peer));
}

struct Reply {
  crpc_code code;
  std::string body, message;
};

Reply Call(crpc_channel *ch, const crpc_ctx *ctx) {
  crpc_message resp{};
  crpc_status st{};
  Reply r;
  r.code = crpc_unary_call(ch, ctx, "/test.Svc/Peer", nullptr, "x", 1, &resp,
                           &st);
  if (r.code == CRPC_OK) r.body = Str(resp);
  r.message = st.message ? st.message : "";
  free(resp.data);
  crpc_status_clear(&st);
  return r;
}

Reply Call(crpc_channel *ch, int64_t timeout_ns = 5 * CRPC_SECOND) {
  Ctx ctx(crpc_ctx_with_timeout(crpc_ctx_background(), timeout_ns));
  return Call(ch, ctx);
}

class ReconnectTest : public LeakCheckTest {
 protected:
  void SetUp() override {
    LeakCheckTest::SetUp();
    char tmpl[] = "/tmp/crpc_reconnect_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/s.sock";
    target_ = "unix:" + path_;
  }
  void TearDown() override {
    unlink(path_.c_str());
    rmdir(dir_.c_str());
    LeakCheckTest::TearDown();
  }
  std::unique_ptr<TestServer> StartServer(crpc_server_options *o = nullptr) {
    auto s = std::make_unique<TestServer>(o);
    s->Add("/test.Svc/Peer", CRPC_UNARY, Peer);
    s->Start(target_.c_str());
    return s;
  }
  std::string dir_, path_, target_;
};

// ---- backoff arithmetic -------------------------------------------------

TEST(BackoffTest, GrowsBy1_6UpToTheCapWithinTwentyPercentJitter) {
  crpc_backoff b;
  crpc_backoff_init(&b, 1000, 10000);
  double nominal = 1000;
  for (int i = 0; i < 12; i++) {
    // rand 0 and just under 1 are the extremes of the jitter band.
    crpc_backoff probe = b;
    int64_t lo = crpc_backoff_next(&probe, 0.0);
    int64_t d = crpc_backoff_next(&b, 0.999999);
    EXPECT_EQ(b.nominal_ns, probe.nominal_ns);
    EXPECT_EQ(lo, static_cast<int64_t>(nominal * 0.8)) << "step " << i;
    EXPECT_NEAR(static_cast<double>(d), nominal * 1.2, 2.0) << "step " << i;
    nominal = std::min(nominal * 1.6, 10000.0);
  }
  EXPECT_EQ(b.nominal_ns, 10000);
  crpc_backoff_reset(&b);
  EXPECT_EQ(crpc_backoff_next(&b, 0.5), 1000);  // the middle: no jitter
}

TEST(BackoffTest, JitterSpreadsClientsThatFailTogether) {
  // 200 channels failing at once must not all come back at once.
  uint64_t seed = 42;
  std::set<int64_t> delays;
  int64_t lo = INT64_MAX, hi = 0;
  for (int i = 0; i < 200; i++) {
    crpc_backoff b;
    crpc_backoff_init(&b, CRPC_SECOND, 120 * CRPC_SECOND);
    int64_t d = crpc_backoff_next(&b, crpc_backoff_rand(&seed));
    delays.insert(d);
    lo = std::min(lo, d);
    hi = std::max(hi, d);
  }
  EXPECT_GT(delays.size(), 190u);
  EXPECT_GE(lo, 800 * CRPC_MILLISECOND);
  EXPECT_LE(hi, 1200 * CRPC_MILLISECOND);
  EXPECT_GT(hi - lo, 300 * CRPC_MILLISECOND) << "jitter should use its band";
}

// ---- backoff on a real channel -------------------------------------------

TEST_F(ReconnectTest, FailsFastWhileBackingOffThenReconnects) {
  crpc_channel_options o{};
  o.backoff_initial_ns = 400 * CRPC_MILLISECOND;
  crpc_channel *ch = crpc_channel_new(target_.c_str(), &o);
  ASSERT_NE(ch, nullptr);
  EXPECT_EQ(crpc_channel_get_state(ch), CRPC_CHANNEL_IDLE);

  // Nobody listens: the attempt fails and the channel starts backing off.
  Reply r = Call(ch);
  EXPECT_EQ(r.code, CRPC_UNAVAILABLE);
  EXPECT_NE(r.message.find(path_), std::string::npos) << r.message;
  int64_t failed_at = crpc_now_ns();
  EXPECT_EQ(crpc_channel_get_state(ch), CRPC_CHANNEL_TRANSIENT_FAILURE);

  // The server is back, but within the backoff the channel does not try:
  // the call fails at once with the last error (gRPC's fail-fast).
  auto server = StartServer();
  int64_t t0 = crpc_now_ns();
  r = Call(ch);
  int64_t took = crpc_now_ns() - t0;
  if (crpc_now_ns() - failed_at < 300 * CRPC_MILLISECOND) {
    EXPECT_EQ(r.code, CRPC_UNAVAILABLE) << "tried during the backoff";
    EXPECT_LT(took, 50 * CRPC_MILLISECOND);
  }
  // Past the backoff (400 ms +20% at most) the next call connects.
  usleep(500 * 1000);
  r = Call(ch);
  EXPECT_EQ(r.code, CRPC_OK) << r.message;
  EXPECT_EQ(crpc_channel_get_state(ch), CRPC_CHANNEL_READY);
  crpc_channel_free(ch);
}

// A unix listener recording when each connection arrives, then either
// closing it at once (to a TLS channel a failed attempt: the handshake gets
// EOF) or holding it silent (a handshake that never completes).
class Door {
 public:
  // kGoaway: SETTINGS and GOAWAY(last stream 0) at once, then hold the
  // socket open, never reading: every connection is told to go away but
  // never closed by the server.
  enum Mode { kSlam, kSilent, kGoaway };
  Door(const std::string &path, Mode mode) : mode_(mode) {
    fd_ = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path.c_str());
    if (bind(fd_, reinterpret_cast<sockaddr *>(&a), sizeof(a)) != 0 ||
        listen(fd_, 16) != 0) {
      abort();
    }
    thread_ = std::thread([this] {
      for (;;) {
        int c = accept(fd_, nullptr, nullptr);
        if (c < 0) return;  // shut down
        std::lock_guard<std::mutex> lock(mu_);
        times_.push_back(crpc_now_ns());
        if (mode_ == kSlam) {
          close(c);
          continue;
        }
        if (mode_ == kGoaway) SendGoaway(c);
        held_.push_back(c);
      }
    });
  }
  ~Door() {
    shutdown(fd_, SHUT_RDWR);  // wakes accept
    thread_.join();
    close(fd_);
    for (int c : held_) close(c);
  }
  std::vector<int64_t> times() {
    std::lock_guard<std::mutex> lock(mu_);
    return times_;
  }

 private:
  static void SendGoaway(int fd) {
    nghttp2_session_callbacks *cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session *s;
    nghttp2_session_server_new(&s, cbs, nullptr);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, nullptr, 0);
    nghttp2_submit_goaway(s, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, nullptr,
                          0);
    const uint8_t *out;
    ssize_t n;
    while ((n = nghttp2_session_mem_send(s, &out)) > 0) {
      if (send(fd, out, n, MSG_NOSIGNAL) != n) break;
    }
    nghttp2_session_del(s);
  }

  Mode mode_;
  int fd_;
  std::thread thread_;
  std::mutex mu_;
  std::vector<int64_t> times_;
  std::vector<int> held_;
};

// A TLS channel (system roots) to target with these options.
crpc_channel *TlsChannel(const std::string &target, crpc_channel_options o) {
  crpc_channel_credentials *creds = nullptr;
  char err[CRPC_CREDENTIALS_ERROR_MAX];
  if (crpc_channel_credentials_new(nullptr, &creds, err) != CRPC_OK) {
    ADD_FAILURE() << err;
    return nullptr;
  }
  o.credentials = creds;
  crpc_channel *ch = crpc_channel_new(target.c_str(), &o);
  crpc_channel_credentials_free(creds);
  return ch;
}

TEST_F(ReconnectTest, BackoffGrowsAcrossFailedAttempts) {
  // One wait-for-ready call keeps trying until its deadline; the gaps
  // between attempts follow 50, 80, 128, 205, 328 ms, each +-20%.
  Door door(path_, Door::kSlam);
  crpc_channel_options o{};
  o.backoff_initial_ns = 50 * CRPC_MILLISECOND;
  o.wait_for_ready = 1;
  crpc_channel *ch = TlsChannel(target_, o);
  ASSERT_NE(ch, nullptr);
  int64_t t0 = crpc_now_ns();
  Reply r = Call(ch, 900 * CRPC_MILLISECOND);
  int64_t took = crpc_now_ns() - t0;
  EXPECT_EQ(r.code, CRPC_DEADLINE_EXCEEDED) << r.message;
  // Bounded by the call's ctx: it ends near its deadline, not after.
  EXPECT_GE(took, 900 * CRPC_MILLISECOND);
  EXPECT_LT(took, 1500 * CRPC_MILLISECOND);
  EXPECT_EQ(crpc_channel_get_state(ch), CRPC_CHANNEL_TRANSIENT_FAILURE);
  std::vector<int64_t> t = door.times();
  // Fixed 50 ms retries would make ~18 attempts in 900 ms; growing ones
  // make 5 or 6 (4 to 7 allowing for the jitter and a slow machine).
  ASSERT_GE(t.size(), 4u);
  EXPECT_LE(t.size(), 7u);
  for (size_t i = 1; i < t.size(); i++) {
    EXPECT_GE(t[i] - t[i - 1], 38 * CRPC_MILLISECOND) << "gap " << i;
  }
  int64_t first = t[1] - t[0], last = t[t.size() - 1] - t[t.size() - 2];
  EXPECT_GE(last, 2 * first) << "first gap " << first << " last " << last;
  crpc_channel_free(ch);
}

TEST_F(ReconnectTest, WaitForReadyCallSucceedsWhenTheServerComesBack) {
  crpc_channel_options o{};
  o.backoff_initial_ns = 20 * CRPC_MILLISECOND;
  o.backoff_max_ns = 100 * CRPC_MILLISECOND;
  o.wait_for_ready = 1;
  crpc_channel *ch = crpc_channel_new(target_.c_str(), &o);
  std::unique_ptr<TestServer> server;
  std::thread later([&] {
    usleep(300 * 1000);
    server = StartServer();
  });
  int64_t t0 = crpc_now_ns();
  Reply r = Call(ch, 5 * CRPC_SECOND);
  int64_t took = crpc_now_ns() - t0;
  later.join();
  EXPECT_EQ(r.code, CRPC_OK) << r.message;
  EXPECT_GE(took, 250 * CRPC_MILLISECOND);
  EXPECT_LT(took, 2 * CRPC_SECOND) << "retries should be ~100 ms apart";
  crpc_channel_free(ch);
}

TEST_F(ReconnectTest, WaitForReadyEndsAtOnceOnCancel) {
  crpc_channel_options o{};
  o.backoff_initial_ns = 10 * CRPC_SECOND;  // long: only the cancel ends it
  o.wait_for_ready = 1;
  crpc_channel *ch = crpc_channel_new(target_.c_str(), &o);
  Ctx ctx(crpc_ctx_with_cancel(crpc_ctx_background()));
  std::atomic<int64_t> cancelled_at{0};
  std::thread canceller([&] {
    usleep(200 * 1000);
    cancelled_at = crpc_now_ns();
    crpc_ctx_cancel(ctx, CRPC_CANCELLED, "user gave up");
  });
  Reply r = Call(ch, ctx);
  int64_t returned = crpc_now_ns();
  canceller.join();
  EXPECT_EQ(r.code, CRPC_CANCELLED) << r.message;
  EXPECT_LT(returned - cancelled_at.load(), 100 * CRPC_MILLISECOND);
  crpc_channel_free(ch);
}

TEST_F(ReconnectTest, CallerDeadlineDuringAnAttemptCountsNoStrike) {
  // A call whose own deadline cuts its connect short must not push the
  // channel into backoff: the server was not shown to be down.
  Door door(path_, Door::kSilent);  // the TLS handshake never completes
  crpc_channel_options o{};
  o.backoff_initial_ns = 10 * CRPC_SECOND;
  crpc_channel *ch = TlsChannel(target_, o);
  ASSERT_NE(ch, nullptr);
  Reply r = Call(ch, 100 * CRPC_MILLISECOND);
  EXPECT_EQ(r.code, CRPC_DEADLINE_EXCEEDED) << r.message;
  EXPECT_NE(crpc_channel_get_state(ch), CRPC_CHANNEL_TRANSIENT_FAILURE);
  // The next call tries again at once instead of failing fast.
  r = Call(ch, 100 * CRPC_MILLISECOND);
  EXPECT_EQ(r.code, CRPC_DEADLINE_EXCEEDED) << r.message;
  EXPECT_EQ(door.times().size(), 2u);
  crpc_channel_free(ch);
}

TEST_F(ReconnectTest, ConnectTimeoutIsAFailedAttempt) {
  // min_connect_timeout ends an attempt the caller would have waited on:
  // that one counts (UNAVAILABLE, backing off), unlike the caller's own.
  Door door(path_, Door::kSilent);
  crpc_channel_options o{};
  o.min_connect_timeout_ns = 100 * CRPC_MILLISECOND;
  o.backoff_initial_ns = 10 * CRPC_SECOND;
  crpc_channel *ch = TlsChannel(target_, o);
  ASSERT_NE(ch, nullptr);
  Reply r = Call(ch, 5 * CRPC_SECOND);
  EXPECT_EQ(r.code, CRPC_UNAVAILABLE) << r.message;
  EXPECT_NE(r.message.find("took longer than 100 ms"), std::string::npos)
      << r.message;
  EXPECT_EQ(crpc_channel_get_state(ch), CRPC_CHANNEL_TRANSIENT_FAILURE);
  int64_t t0 = crpc_now_ns();
  r = Call(ch, 5 * CRPC_SECOND);  // fails fast: backing off
  EXPECT_EQ(r.code, CRPC_UNAVAILABLE) << r.message;
  EXPECT_LT(crpc_now_ns() - t0, 50 * CRPC_MILLISECOND);
  EXPECT_EQ(door.times().size(), 1u);
  crpc_channel_free(ch);
}

TEST_F(ReconnectTest, FreeingTheChannelClosesConnectionsNoSlotHolds) {
  // Each connection gets a GOAWAY and is replaced, but the server never
  // closes it: only the channel's teardown can, or its fd and state leak.
  int fds_before = CountFds();
  {
    Door door(path_, Door::kGoaway);
    crpc_channel *ch = crpc_channel_new(target_.c_str(), nullptr);
    // Every call finds its connection going away (refused, or resent and
    // refused again); each next one opens another.
    for (int i = 0; i < 3; i++) {
      Reply r = Call(ch, 5 * CRPC_SECOND);
      EXPECT_EQ(r.code, CRPC_UNAVAILABLE) << r.message;
    }
    size_t accepted = door.times().size();
    EXPECT_GE(accepted, 3u);
    crpc_channel_free(ch);
    // The door still holds its ends; the channel's ends must be gone.
    EXPECT_EQ(CountFds(), fds_before + 1 /* listener */ +
                             static_cast<int>(accepted));
  }
  EXPECT_EQ(CountFds(), fds_before);
}

// ---- idle connections ----------------------------------------------------

TEST_F(ReconnectTest, IdleConnectionClosesAndTheNextCallReconnects) {
  TestServer server;
  server.Add("/test.Svc/Peer", CRPC_UNARY, Peer);
  server.Start();
  crpc_channel_options o{};
  o.idle_timeout_ns = 200 * CRPC_MILLISECOND;
  crpc_channel *ch = crpc_channel_new(server.target().c_str(), &o);
  // Calls in quick succession share one connection...
  Reply a = Call(ch), b = Call(ch);
  ASSERT_EQ(a.code, CRPC_OK) << a.message;
  ASSERT_EQ(b.code, CRPC_OK) << b.message;
  EXPECT_EQ(a.body, b.body);
  EXPECT_EQ(crpc_channel_get_state(ch), CRPC_CHANNEL_READY);
  // ...then, idle past the timeout, the channel closes it.
  int64_t deadline = crpc_now_ns() + 3 * CRPC_SECOND;
  while (crpc_channel_get_state(ch) == CRPC_CHANNEL_READY &&
         crpc_now_ns() < deadline) {
    usleep(10 * 1000);
  }
  EXPECT_EQ(crpc_channel_get_state(ch), CRPC_CHANNEL_IDLE);
  Reply c = Call(ch);
  ASSERT_EQ(c.code, CRPC_OK) << c.message;
  EXPECT_NE(c.body, a.body) << "expected a new connection (new client port)";
  crpc_channel_free(ch);
}

TEST_F(ReconnectTest, ACallInUseKeepsTheConnectionOpenPastTheIdleTime) {
  TestServer server;
  server.Add("/test.Svc/Peer", CRPC_UNARY, Peer);
  server.Add("/test.Svc/Wait", CRPC_SERVER_STREAMING,
             [](crpc_server_call *call, const crpc_ctx *ctx) {
               crpc_message m;
               crpc_code c = crpc_server_call_recv(call, &m);
               if (c != CRPC_OK) return c;
               free(m.data);
               // Holds the stream open until the client cancels.
               return crpc_ctx_wait(ctx);
             });
  server.Start();
  crpc_channel_options o{};
  o.idle_timeout_ns = 100 * CRPC_MILLISECOND;
  crpc_channel *ch = crpc_channel_new(server.target().c_str(), &o);
  Ctx ctx(crpc_ctx_with_cancel(crpc_ctx_background()));
  crpc_call *call;
  ASSERT_EQ(crpc_call_start(ch, ctx, "/test.Svc/Wait", nullptr, &call),
            CRPC_OK);
  ASSERT_EQ(crpc_call_send(call, "x", 1), CRPC_OK);
  ASSERT_EQ(crpc_call_close_send(call), CRPC_OK);
  Reply first = Call(ch);
  usleep(400 * 1000);  // four idle periods with a call open
  Reply second = Call(ch);
  EXPECT_EQ(second.code, CRPC_OK) << second.message;
  EXPECT_EQ(first.body, second.body) << "the connection was closed in use";
  crpc_ctx_cancel(ctx, CRPC_CANCELLED, "done");
  crpc_call_free(call);
  crpc_channel_free(ch);
}

}  // namespace
}  // namespace crpc_test
