// Server connection lifecycle: the graceful two-phase GOAWAY (seen on the
// wire by a raw nghttp2 client, and end to end through server shutdown),
// max_connection_age (connections cycle under load without a failed call),
// max_connection_age_grace (a call outliving it ends UNAVAILABLE on both
// sides) and max_connection_idle (an idle connection is closed; an open
// call keeps it). Real sockets, a real crpc server and channel; every test
// ends with the ctx count back at its start (LeakCheckTest). Every test
// reaches a handler, so every test runs twice: against blocking handlers
// and against their async twins (lifecycle_handlers.h).
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "crpc/channel.h"
#include "crpc/server.h"
#include "rpc/channel/test_util.h"
#include "rpc/server/lifecycle_handlers.h"
#include "rpc/server/raw_client.h"

namespace crpc_test {
namespace {

constexpr int64_t kMs = CRPC_MILLISECOND;
constexpr int32_t kMaxStreamId = 0x7fffffff;  // the first GOAWAY's last id
// Scheduling slack for loaded CI boxes and sanitizers.
constexpr int64_t kSlack = 2000 * kMs;

// Parametrised over the handler style that serves the test's methods.
class ServerLifecycleTest : public LeakCheckTest,
                            public ::testing::WithParamInterface<Handlers> {
 protected:
  Handlers style() const { return GetParam(); }
};

CRPC_BOTH_HANDLERS(ServerLifecycleTest);

// Records the distinct client addresses (one per connection) calls came on.
struct Peers {
  std::mutex mu;
  std::set<std::string> seen;
  std::string last;
  void Add(crpc_server_call *call) {
    std::lock_guard<std::mutex> l(mu);
    last = crpc_server_call_peer(call);
    seen.insert(last);
  }
  size_t Count() {
    std::lock_guard<std::mutex> l(mu);
    return seen.size();
  }
  std::string Last() {
    std::lock_guard<std::mutex> l(mu);
    return last;
  }
};

struct Result {
  crpc_code code = CRPC_UNKNOWN;
  std::string message;
};

Result Unary(crpc_channel *ch, const char *method, int64_t timeout_ns) {
  Ctx ctx(crpc_ctx_with_timeout(crpc_ctx_background(), timeout_ns));
  crpc_message resp{};
  crpc_status st{};
  Result r;
  r.code = crpc_unary_call(ch, ctx, method, nullptr, "hi", 2, &resp, &st);
  if (r.code == CRPC_OK) {
    if (Str(resp) != "hi") r.code = CRPC_DATA_LOSS;
    free(resp.data);
  }
  r.message = st.message ? st.message : "";
  crpc_status_clear(&st);
  return r;
}

// Runs fn when the scope ends, also when an ASSERT returns early (so no
// std::thread is destroyed joinable and no handler is left waiting).
class Finally {
 public:
  explicit Finally(std::function<void()> fn) : fn_(std::move(fn)) {}
  ~Finally() { fn_(); }

 private:
  std::function<void()> fn_;
};

void JoinIf(std::thread *t) {
  if (t->joinable()) t->join();
}

// The bytes of GOAWAY(last, NO_ERROR) without debug data, as sent.
std::string GoawayFrame(int32_t last) {
  const uint8_t f[17] = {0, 0, 8, 7, 0, 0, 0, 0, 0,  // length 8, GOAWAY, sid 0
                         static_cast<uint8_t>(last >> 24),
                         static_cast<uint8_t>(last >> 16),
                         static_cast<uint8_t>(last >> 8),
                         static_cast<uint8_t>(last), 0, 0, 0, 0};
  return std::string(reinterpret_cast<const char *>(f), sizeof(f));
}

// True once fd's unread bytes hold the first GOAWAY (2^31-1) and a PING
// (not an ACK); nothing is consumed.
bool UnreadNoticeAndPing(int fd) {
  char buf[4096];
  ssize_t n = recv(fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
  if (n <= 0) return false;
  std::string b(buf, static_cast<size_t>(n));
  static const char ping[] = {0, 0, 8, 6, 0, 0, 0, 0, 0};  // PING header
  return b.find(GoawayFrame(kMaxStreamId)) != std::string::npos &&
         b.find(std::string(ping, sizeof(ping))) != std::string::npos;
}

// Reads fd, appending to *out, until `want` is in *out (true; "" never
// matches), EOF (true only if want is "") or the time is up (false).
bool ReadFor(int fd, std::string *out, const std::string &want,
             int64_t timeout_ns) {
  int64_t until = crpc_now_ns() + timeout_ns;
  for (;;) {
    if (!want.empty() && out->find(want) != std::string::npos) return true;
    int64_t left = until - crpc_now_ns();
    if (left <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left / kMs) + 1) <= 0) continue;
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) return want.empty();
    out->append(buf, static_cast<size_t>(n));
  }
}

bool ReadToEof(int fd, std::string *out, int64_t timeout_ns) {
  return ReadFor(fd, out, "", timeout_ns);
}

// The server's first GOAWAY says 2^31-1, so a stream the client sent before
// it read that GOAWAY (here: sent after the server queued it) is served;
// only the PING's ACK brings the final GOAWAY, naming that stream. With a
// one-shot GOAWAY(last processed) that stream would be refused.
TEST_P(ServerLifecycleTest, TwoPhaseGoawayServesStreamSentInBetween) {
  std::atomic<bool> started{false}, release{false};
  TwinServer server(style());
  server.Hold("/life.S/Hold", &started, &release);
  server.Echo("/life.S/Echo");
  server.Start();
  RawClient raw(server.port());
  std::string a = Frame("a"), b = Frame("b");
  int32_t s1 = raw.Request("/life.S/Hold", {}, &a);
  ASSERT_GT(s1, 0);
  ASSERT_TRUE(raw.PumpUntil([&] { return started.load(); }));

  int64_t shutdown_took = -1;
  std::thread stopper([&] {
    int64_t t0 = crpc_now_ns();
    crpc_server_shutdown(server.get(), 10 * CRPC_SECOND);
    shutdown_took = crpc_now_ns() - t0;
  });
  Finally cleanup([&] {
    release = true;
    JoinIf(&stopper);
  });
  // The first GOAWAY and its PING are on our socket, not read yet: a new
  // stream sent now crossed them on the wire.
  ASSERT_TRUE(WaitFor([&] { return UnreadNoticeAndPing(raw.fd()); },
                      kSlack));
  int32_t s3 = raw.Request("/life.S/Echo", {}, &b);
  ASSERT_GT(s3, s1);
  ASSERT_TRUE(raw.Send());

  ASSERT_TRUE(raw.PumpUntil([&] { return raw.goaway(); }));
  EXPECT_EQ(raw.goaway_last_stream(), kMaxStreamId);
  EXPECT_EQ(raw.goaway_code(), (uint32_t)NGHTTP2_NO_ERROR);
  // Our session ACKed the PING while reading; the final GOAWAY follows.
  ASSERT_TRUE(raw.PumpUntil(
      [&] { return raw.goaway_last_stream() != kMaxStreamId; }, kSlack));
  EXPECT_EQ(raw.goaway_last_stream(), s3);
  EXPECT_EQ(raw.goaway_code(), (uint32_t)NGHTTP2_NO_ERROR);
  ASSERT_TRUE(raw.PumpUntil([&] { return raw.stream(s3).closed; }));
  EXPECT_EQ(raw.stream(s3).error_code, (uint32_t)NGHTTP2_NO_ERROR);
  EXPECT_EQ(raw.stream(s3).headers["grpc-status"], "0");
  EXPECT_EQ(raw.stream(s3).data, b);

  // The held call runs on through the GOAWAYs and ends normally; with no
  // stream left the server closes the connection.
  EXPECT_FALSE(raw.stream(s1).closed);
  release = true;
  ASSERT_TRUE(raw.PumpUntil([&] { return raw.stream(s1).closed; }));
  EXPECT_EQ(raw.stream(s1).headers["grpc-status"], "0");
  EXPECT_EQ(raw.stream(s1).data, a);
  EXPECT_TRUE(raw.PumpUntil([&] { return raw.eof(); }, kSlack));
  stopper.join();
  EXPECT_LT(shutdown_took, 5 * CRPC_SECOND);  // did not sit out the grace
}

// A client that never answers the GOAWAY's PING still gets the final
// GOAWAY, after the bounded wait (1 s), and its open call runs on.
TEST_P(ServerLifecycleTest, FinalGoawayFollowsWithoutPingAck) {
  std::atomic<bool> started{false}, release{false};
  TwinServer server(style());
  server.Hold("/life.S/Hold", &started, &release);
  server.Start();
  RawClient raw(server.port());
  std::string a = Frame("a");
  int32_t s1 = raw.Request("/life.S/Hold", {}, &a);
  ASSERT_TRUE(raw.PumpUntil([&] { return started.load(); }));
  std::thread stopper(
      [&] { crpc_server_shutdown(server.get(), 10 * CRPC_SECOND); });
  Finally cleanup([&] {
    release = true;
    JoinIf(&stopper);
  });
  // From here on bytes are read off the socket and never reach our
  // session, so it sends no PING ACK.
  std::string in;
  ASSERT_TRUE(ReadFor(raw.fd(), &in, GoawayFrame(kMaxStreamId), kSlack));
  int64_t notice_at = crpc_now_ns();
  ASSERT_TRUE(ReadFor(raw.fd(), &in, GoawayFrame(s1), kSlack + CRPC_SECOND));
  int64_t waited = crpc_now_ns() - notice_at;
  EXPECT_GE(waited, 900 * kMs);
  EXPECT_LT(waited, CRPC_SECOND + kSlack);
  // The open call is still served after the final GOAWAY.
  release = true;
  in.clear();
  ASSERT_TRUE(ReadToEof(raw.fd(), &in, kSlack));
  EXPECT_NE(in.find(a), std::string::npos) << "no response before the close";
}

// Graceful shutdown on a unix socket: an in-flight server stream finishes
// OK within the grace, while a second server already listening on the same
// path gets the channel's next call on a new connection.
TEST_P(ServerLifecycleTest, ShutdownMovesNextCallToNewServer) {
  std::string path = "/tmp/crpc-life-" + std::to_string(getpid()) + ".sock";
  std::string target = "unix:" + path;
  unlink(path.c_str());
  std::atomic<bool> go{false};
  std::atomic<int> echo1{0}, echo2{0};
  TwinServer s2(style());
  s2.Echo("/life.S/Echo", [&](crpc_server_call *) { echo2++; });
  TwinServer s1(style());
  s1.Echo("/life.S/Echo", [&](crpc_server_call *) { echo1++; });
  s1.Stream("/life.S/Stream", &go);
  s1.Start(target.c_str());
  crpc_channel *ch = crpc_channel_new(target.c_str(), nullptr);
  ASSERT_NE(ch, nullptr);
  Ctx ctx(crpc_ctx_with_timeout(crpc_ctx_background(), 20 * CRPC_SECOND));
  crpc_call *call = nullptr;
  std::thread stopper;
  Finally cleanup([&] {
    go = true;
    if (call != nullptr) crpc_call_free(call);
    JoinIf(&stopper);
    crpc_channel_free(ch);
  });
  ASSERT_EQ(Unary(ch, "/life.S/Echo", 5 * CRPC_SECOND).code, CRPC_OK);
  EXPECT_EQ(echo1.load(), 1);

  ASSERT_EQ(crpc_call_start(ch, ctx, "/life.S/Stream", nullptr, &call),
            CRPC_OK);
  ASSERT_EQ(crpc_call_send(call, "x", 1), CRPC_OK);
  ASSERT_EQ(crpc_call_close_send(call), CRPC_OK);
  crpc_message m{};
  ASSERT_EQ(crpc_call_recv(call, &m), CRPC_OK);
  EXPECT_EQ(Str(m), "first");
  free(m.data);

  int64_t shutdown_took = -1;
  stopper = std::thread([&] {
    int64_t t0 = crpc_now_ns();
    crpc_server_shutdown(s1.get(), 10 * CRPC_SECOND);
    shutdown_took = crpc_now_ns() - t0;
  });
  // The drain unlinks the path and queues the GOAWAY; the new server takes
  // the path over.
  ASSERT_TRUE(WaitFor([&] { return access(path.c_str(), F_OK) != 0; },
                      kSlack));
  s2.Start(target.c_str());
  // "second" is written after the GOAWAY, so once the channel has read it
  // the channel has seen the GOAWAY too.
  go = true;
  ASSERT_EQ(crpc_call_recv(call, &m), CRPC_OK);
  EXPECT_EQ(Str(m), "second");
  free(m.data);

  Result r = Unary(ch, "/life.S/Echo", 5 * CRPC_SECOND);
  EXPECT_EQ(r.code, CRPC_OK) << r.message;
  EXPECT_EQ(echo2.load(), 1) << "the next call went to the new server";
  EXPECT_EQ(echo1.load(), 1);

  // The old call is unaffected: it ends normally on the old connection.
  ASSERT_EQ(crpc_call_recv(call, &m), CRPC_OK);
  EXPECT_TRUE(m.end);
  crpc_status st{};
  EXPECT_EQ(crpc_call_finish(call, &st), CRPC_OK) << st.message;
  crpc_status_clear(&st);
  crpc_call_free(call);
  call = nullptr;
  stopper.join();
  EXPECT_LT(shutdown_took, 5 * CRPC_SECOND);  // ended with the call
}

// max_connection_age 200 ms under steady load from four threads: every
// call succeeds while the channel moves from connection to connection.
TEST_P(ServerLifecycleTest, MaxConnectionAgeCyclesWithoutFailedCalls) {
  crpc_server_options so{};
  so.max_connection_age_ns = 200 * kMs;
  Peers peers;
  std::atomic<int> served{0};
  TwinServer server(style(), &so);
  server.Echo("/life.S/Echo", [&](crpc_server_call *call) {
    served++;
    peers.Add(call);
  });
  server.Start();
  crpc_channel *ch = crpc_channel_new(server.target().c_str(), nullptr);
  std::atomic<int> ok{0}, failed{0};
  std::mutex mu;
  std::string first_failure;
  int64_t until = crpc_now_ns() + 1500 * kMs;
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; i++) {
    threads.emplace_back([&] {
      while (crpc_now_ns() < until) {
        Result r = Unary(ch, "/life.S/Echo", 5 * CRPC_SECOND);
        if (r.code == CRPC_OK) {
          ok++;
          continue;
        }
        std::lock_guard<std::mutex> l(mu);
        if (failed++ == 0) {
          first_failure = std::string(crpc_code_name(r.code)) + ": " +
                          r.message;
        }
      }
    });
  }
  for (auto &t : threads) t.join();
  EXPECT_EQ(failed.load(), 0) << "first failure: " << first_failure;
  // Every call the server took succeeded: a failure above never reached
  // it (the client lost it on its side of the GOAWAY).
  EXPECT_EQ(served.load(), ok.load());
  EXPECT_GT(ok.load(), 100);
  // ~7 ages fit in 1.5 s; at least 3 distinct connections, generously.
  EXPECT_GE(peers.Count(), 3u);
  crpc_channel_free(ch);
}

// A call that outlives max_connection_age + grace ends: the server closes
// the connection, the handler's ctx is cancelled (UNAVAILABLE, origin
// connection lost, naming the grace) and the client sees UNAVAILABLE.
// Meanwhile a new call made after the age GOAWAY goes to a new connection.
TEST_P(ServerLifecycleTest, MaxConnectionAgeGraceEndsLongCall) {
  crpc_server_options so{};
  so.max_connection_age_ns = 200 * kMs;
  so.max_connection_age_grace_ns = 600 * kMs;
  struct Seen {
    std::mutex mu;
    std::atomic<bool> started{false}, done{false};
    crpc_code code = CRPC_OK;
    crpc_origin origin = CRPC_ORIGIN_NONE;
    std::string message, peer;
  } seen;
  Peers peers;
  TwinServer server(style(), &so);
  server.Hang(
      "/life.S/Hang",
      [&](crpc_server_call *call) {
        {
          std::lock_guard<std::mutex> l(seen.mu);
          seen.peer = crpc_server_call_peer(call);
        }
        seen.started = true;
      },
      [&](crpc_code c, const crpc_cause *cause) {  // the ctx's cause
        std::lock_guard<std::mutex> l(seen.mu);
        seen.code = c;
        seen.origin = cause->origin;
        seen.message = cause->message;
        seen.done = true;
      });
  server.Echo("/life.S/Echo",
              [&](crpc_server_call *call) { peers.Add(call); });
  server.Start();
  crpc_channel *ch = crpc_channel_new(server.target().c_str(), nullptr);
  Result hang;
  int64_t t0 = crpc_now_ns(), took = -1;
  std::thread client([&] {
    hang = Unary(ch, "/life.S/Hang", 30 * CRPC_SECOND);
    took = crpc_now_ns() - t0;
  });
  Finally cleanup([&] {
    JoinIf(&client);
    crpc_channel_free(ch);
  });
  ASSERT_TRUE(WaitFor([&] { return seen.started.load(); }, kSlack));
  // Past the age (at most 220 ms with jitter), well before age + grace.
  usleep(400 * 1000);
  Result r = Unary(ch, "/life.S/Echo", 5 * CRPC_SECOND);
  EXPECT_EQ(r.code, CRPC_OK) << r.message;
  {
    std::lock_guard<std::mutex> l(seen.mu);
    EXPECT_NE(peers.Last(), seen.peer) << "new call on the aged connection";
  }
  client.join();
  EXPECT_EQ(hang.code, CRPC_UNAVAILABLE) << hang.message;
  // gRPC servers close without a word past the grace; the client reports
  // the lost connection ("connection lost: connection closed by peer").
  EXPECT_NE(hang.message.find("connection"), std::string::npos)
      << hang.message;
  // The connection was accepted after t0: age >= 180 ms, then the grace.
  EXPECT_GE(took, 700 * kMs);
  EXPECT_LT(took, 220 * kMs + 600 * kMs + kSlack);
  // The client may see the close before the handler thread wakes.
  ASSERT_TRUE(WaitFor([&] { return seen.done.load(); }, kSlack));
  std::lock_guard<std::mutex> l(seen.mu);
  EXPECT_EQ(seen.code, CRPC_UNAVAILABLE);
  EXPECT_EQ(seen.origin, CRPC_ORIGIN_CONNECTION_LOST);
  EXPECT_NE(seen.message.find("max connection age grace"), std::string::npos)
      << seen.message;
}

// An idle connection (raw client, after one call) gets the two-phase
// GOAWAY no sooner than max_connection_idle and is then closed.
TEST_P(ServerLifecycleTest, MaxConnectionIdleClosesIdleConnection) {
  crpc_server_options so{};
  so.max_connection_idle_ns = 200 * kMs;
  TwinServer server(style(), &so);
  server.Echo("/life.S/Echo");
  server.Start();
  RawClient raw(server.port());
  std::string a = Frame("a");
  int32_t s1 = raw.Request("/life.S/Echo", {}, &a);
  ASSERT_TRUE(raw.PumpUntil([&] { return raw.stream(s1).closed; }));
  EXPECT_EQ(raw.stream(s1).headers["grpc-status"], "0");
  int64_t idle_from = crpc_now_ns();
  ASSERT_TRUE(raw.PumpUntil([&] { return raw.goaway(); }, kSlack));
  int64_t idle_for = crpc_now_ns() - idle_from;
  EXPECT_EQ(raw.goaway_last_stream(), kMaxStreamId);
  // The server stamped idleness before we read the response: a little
  // early from here at most.
  EXPECT_GE(idle_for, 150 * kMs);
  // Our session, with no stream left after a GOAWAY, ignores further
  // frames: read the final GOAWAY and the close off the socket ourselves.
  std::string rest;
  ASSERT_TRUE(ReadToEof(raw.fd(), &rest, kSlack));
  EXPECT_NE(rest.find(GoawayFrame(s1)), std::string::npos)
      << "no final GOAWAY(" << s1 << ", NO_ERROR) before the close";
}

// Through a channel: an open (silent) call keeps its connection however
// long it lasts; once no call is open for max_connection_idle the server
// closes it and the next call succeeds on a new connection.
TEST_P(ServerLifecycleTest, MaxConnectionIdleSparesOpenCallsAndReconnects) {
  crpc_server_options so{};
  so.max_connection_idle_ns = 200 * kMs;
  Peers peers;
  TwinServer server(style(), &so);
  server.Chat("/life.S/Chat",
              [&](crpc_server_call *call) { peers.Add(call); });
  server.Echo("/life.S/Echo",
              [&](crpc_server_call *call) { peers.Add(call); });
  server.Start();
  crpc_channel *ch = crpc_channel_new(server.target().c_str(), nullptr);
  Ctx ctx(crpc_ctx_with_timeout(crpc_ctx_background(), 20 * CRPC_SECOND));
  crpc_call *call = nullptr;
  Finally cleanup([&] {
    if (call != nullptr) crpc_call_free(call);
    crpc_channel_free(ch);
  });
  ASSERT_EQ(crpc_call_start(ch, ctx, "/life.S/Chat", nullptr, &call),
            CRPC_OK);
  crpc_message m{};
  ASSERT_EQ(crpc_call_send(call, "1", 1), CRPC_OK);
  ASSERT_EQ(crpc_call_recv(call, &m), CRPC_OK);
  free(m.data);
  std::string chat_peer = peers.Last();
  usleep(600 * 1000);  // 3x the idle limit, with the call open but silent
  ASSERT_EQ(crpc_call_send(call, "2", 1), CRPC_OK);
  ASSERT_EQ(crpc_call_recv(call, &m), CRPC_OK);
  EXPECT_EQ(Str(m), "2");
  free(m.data);
  Result r = Unary(ch, "/life.S/Echo", 5 * CRPC_SECOND);
  EXPECT_EQ(r.code, CRPC_OK) << r.message;
  EXPECT_EQ(peers.Last(), chat_peer) << "an open call must keep it";
  ASSERT_EQ(crpc_call_close_send(call), CRPC_OK);
  crpc_status st{};
  EXPECT_EQ(crpc_call_finish(call, &st), CRPC_OK) << st.message;
  crpc_status_clear(&st);
  crpc_call_free(call);
  call = nullptr;

  usleep(600 * 1000);  // idle limit + the GOAWAY's PING round trip
  r = Unary(ch, "/life.S/Echo", 5 * CRPC_SECOND);
  EXPECT_EQ(r.code, CRPC_OK) << r.message;
  EXPECT_NE(peers.Last(), chat_peer) << "the idle connection was kept";
  EXPECT_EQ(peers.Count(), 2u);
}

}  // namespace
}  // namespace crpc_test
