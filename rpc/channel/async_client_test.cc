// The async client API (crpc/channel_async.h) against a real crpc server
// on loopback: completions on the loop thread, thousands of calls from one
// thread, ctx cancel and deadline (also while a connection is still being
// made), flow control both ways, and the misuse guards.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>

#include <condition_variable>
#include <mutex>
#include <string>

#include "crpc/channel_async.h"
#include "crpc/credentials.h"
#include "crpc/interceptor.h"
#include "rpc/channel/test_util.h"

using namespace crpc_test;

namespace {

// Records one call's completion; the test thread waits on it.
struct Done {
  std::mutex mu;
  std::condition_variable cv;
  int count = 0;
  crpc_code code = CRPC_UNKNOWN;
  std::string message, reply;
  bool on_test_thread = false;
  pthread_t test_thread = pthread_self();

  void Record(crpc_code c, const crpc_message *resp, const crpc_status *st) {
    std::lock_guard<std::mutex> l(mu);
    count++;
    code = c;
    message = st->message;
    if (resp != nullptr && resp->data != nullptr) reply = Str(*resp);
    on_test_thread = pthread_equal(pthread_self(), test_thread);
    cv.notify_all();
  }
  bool Wait(int n = 1, int ms = 5000) {
    std::unique_lock<std::mutex> l(mu);
    return cv.wait_for(l, std::chrono::milliseconds(ms),
                       [&] { return count >= n; });
  }
};

void UnaryDone(crpc_code code, crpc_message *resp, const crpc_status *st,
               void *ud) {
  static_cast<Done *>(ud)->Record(code, resp, st);
  free(resp->data);
}

class AsyncClientTest : public LeakCheckTest {
 protected:
  void SetUp() override {
    LeakCheckTest::SetUp();
    srv_ = std::make_unique<TestServer>();
    srv_->Add("/t.S/Echo", CRPC_UNARY,
             [](crpc_server_call *c, const crpc_ctx *) { return EchoOnce(c); });
    srv_->Add("/t.S/Hang", CRPC_UNARY,
             [this](crpc_server_call *, const crpc_ctx *ctx) {
               hang_started_ = true;
               crpc_ctx_wait(ctx);
               server_saw_ = crpc_ctx_err(ctx);
               return crpc_ctx_err(ctx);
             });
    srv_->Add("/t.S/Silent", CRPC_UNARY,
             [](crpc_server_call *c, const crpc_ctx *) {
               crpc_message m;
               crpc_code code = crpc_server_call_recv(c, &m);
               free(m.data);
               return code; /* OK without a response message */
             });
    srv_->Add("/t.S/PingPong", CRPC_BIDI_STREAMING,
             [](crpc_server_call *c, const crpc_ctx *) {
               for (;;) {
                 crpc_message m;
                 crpc_code code = crpc_server_call_recv(c, &m);
                 if (code != CRPC_OK || m.end) return code;
                 code = crpc_server_call_send(c, m.data, m.len);
                 free(m.data);
                 if (code != CRPC_OK) return code;
               }
             });
    srv_->Add("/t.S/Big", CRPC_SERVER_STREAMING,
             [](crpc_server_call *c, const crpc_ctx *) {
               crpc_message m;
               crpc_code code = crpc_server_call_recv(c, &m);
               free(m.data);
               std::string big(64 * 1024, 'b');
               for (int i = 0; i < 20 && code == CRPC_OK; i++) {
                 big[0] = static_cast<char>('a' + i);
                 code = crpc_server_call_send(c, big.data(), big.size());
               }
               return code;
             });
    srv_->Add("/t.S/Sum", CRPC_CLIENT_STREAMING,
             [](crpc_server_call *c, const crpc_ctx *) {
               size_t total = 0;
               for (;;) {
                 crpc_message m;
                 crpc_code code = crpc_server_call_recv(c, &m);
                 if (code != CRPC_OK) return code;
                 if (m.end) break;
                 total += m.len;
                 free(m.data);
               }
               std::string s = std::to_string(total);
               return crpc_server_call_send(c, s.data(), s.size());
             });
    srv_->Start();
    ch_ = crpc_channel_new(srv_->target().c_str(), nullptr);
    ASSERT_NE(ch_, nullptr);
  }
  void TearDown() override {
    crpc_channel_free(ch_);
    srv_.reset(); /* its calls' contexts go with it */
    LeakCheckTest::TearDown();
  }

  std::unique_ptr<TestServer> srv_;
  crpc_channel *ch_ = nullptr;
  const crpc_ctx *root_ = crpc_ctx_background();
  std::atomic<crpc_code> server_saw_{CRPC_UNKNOWN};
  std::atomic<bool> hang_started_{false};
};

TEST_F(AsyncClientTest, UnaryCompletesOnTheLoopThread) {
  Done d;
  ASSERT_EQ(crpc_unary_call_async(ch_, root_, "/t.S/Echo", nullptr, "hi", 2,
                                  UnaryDone, &d),
            CRPC_OK);
  ASSERT_TRUE(d.Wait());
  EXPECT_EQ(d.code, CRPC_OK) << d.message;
  EXPECT_EQ(d.reply, "hi");
  EXPECT_FALSE(d.on_test_thread);
  EXPECT_EQ(d.count, 1);
}

TEST_F(AsyncClientTest, TwoThousandCallsInFlightFromOneThread) {
  constexpr int kCalls = 2000;
  struct Tally {
    std::atomic<int> ok{0}, failed{0};
    Done all;
  } t;
  auto done = [](crpc_code code, crpc_message *resp, const crpc_status *st,
                 void *ud) {
    auto *t = static_cast<Tally *>(ud);
    bool good = code == CRPC_OK && resp->len == 3 &&
                memcmp(resp->data, "abc", 3) == 0;
    (good ? t->ok : t->failed)++;
    free(resp->data);
    if (t->ok + t->failed == kCalls) t->all.Record(code, nullptr, st);
  };
  for (int i = 0; i < kCalls; i++) {
    ASSERT_EQ(crpc_unary_call_async(ch_, root_, "/t.S/Echo", nullptr, "abc",
                                    3, done, &t),
              CRPC_OK);
  }
  ASSERT_TRUE(t.all.Wait(1, 30000));
  EXPECT_EQ(t.ok.load(), kCalls);
  EXPECT_EQ(t.failed.load(), 0);
}

TEST_F(AsyncClientTest, DeadlineEndsTheCallOnBothSides) {
  Done d;
  int64_t t0 = crpc_now_ns();
  /* Long enough for the handler to start even under TSan. */
  Ctx ctx(crpc_ctx_with_timeout(root_, 300 * 1000 * 1000));
  ASSERT_EQ(crpc_unary_call_async(ch_, ctx, "/t.S/Hang", nullptr, "", 0,
                                  UnaryDone, &d),
            CRPC_OK);
  ASSERT_TRUE(d.Wait());
  EXPECT_EQ(d.code, CRPC_DEADLINE_EXCEEDED);
  EXPECT_GE(crpc_now_ns() - t0, 300 * 1000 * 1000);
  EXPECT_TRUE(WaitFor([&] { return server_saw_ != CRPC_UNKNOWN; },
                      2000000000LL));
  /* The server's own timer (grpc-timeout, counted from arrival) or the
   * client's RST_STREAM, whichever is first. */
  EXPECT_TRUE(server_saw_ == CRPC_DEADLINE_EXCEEDED ||
              server_saw_ == CRPC_CANCELLED)
      << crpc_code_name(server_saw_);
}

TEST_F(AsyncClientTest, CancelReachesTheServerWithTheCause) {
  Done d;
  Ctx ctx(crpc_ctx_with_cancel(root_));
  ASSERT_EQ(crpc_unary_call_async(ch_, ctx, "/t.S/Hang", nullptr, "", 0,
                                  UnaryDone, &d),
            CRPC_OK);
  /* The server handler is waiting (not a fixed sleep: a loaded machine
   * may take longer to get the call there). */
  ASSERT_TRUE(WaitFor([&] { return hang_started_.load(); }, 5000000000LL));
  crpc_ctx_cancel(ctx, CRPC_CANCELLED, "user gave up");
  ASSERT_TRUE(d.Wait());
  EXPECT_EQ(d.code, CRPC_CANCELLED);
  EXPECT_EQ(d.message, "user gave up");
  EXPECT_TRUE(WaitFor([&] { return server_saw_ != CRPC_UNKNOWN; },
                      2000000000LL));
  EXPECT_EQ(server_saw_.load(), CRPC_CANCELLED);
}

TEST_F(AsyncClientTest, UnaryWithoutResponseIsInternal) {
  Done d;
  ASSERT_EQ(crpc_unary_call_async(ch_, root_, "/t.S/Silent", nullptr, "x", 1,
                                  UnaryDone, &d),
            CRPC_OK);
  ASSERT_TRUE(d.Wait());
  EXPECT_EQ(d.code, CRPC_INTERNAL);
  EXPECT_EQ(d.message, "server sent no response message");
  EXPECT_TRUE(d.reply.empty());
}

TEST_F(AsyncClientTest, UnknownMethodIsUnimplemented) {
  Done d;
  ASSERT_EQ(crpc_unary_call_async(ch_, root_, "/t.S/Nope", nullptr, "", 0,
                                  UnaryDone, &d),
            CRPC_OK);
  ASSERT_TRUE(d.Wait());
  EXPECT_EQ(d.code, CRPC_UNIMPLEMENTED);
}

TEST_F(AsyncClientTest, RefusedSynchronouslyWithoutCallback) {
  Done d;
  EXPECT_EQ(crpc_unary_call_async(ch_, root_, "no-slash", nullptr, "", 0,
                                  UnaryDone, &d),
            CRPC_INVALID_ARGUMENT);
  Ctx done_ctx(crpc_ctx_with_cancel(root_));
  crpc_ctx_cancel(done_ctx, CRPC_CANCELLED, "before");
  EXPECT_EQ(crpc_unary_call_async(ch_, done_ctx, "/t.S/Echo", nullptr, "", 0,
                                  UnaryDone, &d),
            CRPC_CANCELLED);
  usleep(20000);
  EXPECT_EQ(d.count, 0);
}

// A reactor for streams, recording what it saw.
struct Stream {
  crpc_call *call = nullptr;
  int rounds = 0, target = 0;
  std::vector<std::string> got;
  int ready = 0;
  size_t sent = 0, to_send = 0;
  Done done;

  static void OnMessage(crpc_call *call, const crpc_message *m, void *ud) {
    auto *s = static_cast<Stream *>(ud);
    s->got.push_back(Str(*m));
    if (s->target > 0) { /* ping-pong: answer each reply */
      if (++s->rounds < s->target) {
        std::string next = "ping" + std::to_string(s->rounds);
        EXPECT_EQ(crpc_call_send_async(call, next.data(), next.size(), 0),
                  CRPC_OK);
      } else {
        EXPECT_EQ(crpc_call_close_send(call), CRPC_OK);
      }
    }
  }
  static void OnReady(crpc_call *call, void *ud) {
    auto *s = static_cast<Stream *>(ud);
    s->ready++;
    s->Pump(call);
  }
  static void OnDone(crpc_call *, const crpc_status *st, void *ud) {
    static_cast<Stream *>(ud)->done.Record(st->code, nullptr, st);
  }
  // Client streaming: send 16 KiB messages while the buffer has room.
  void Pump(crpc_call *c) {
    std::string chunk(16 * 1024, 'x');
    while (sent < to_send && crpc_call_can_send(c)) {
      ASSERT_EQ(crpc_call_send_async(c, chunk.data(), chunk.size(), 0),
                CRPC_OK);
      sent += chunk.size();
    }
    if (sent >= to_send) crpc_call_close_send(c);
  }
};

const crpc_call_reactor kStreamReactor = {
    .on_message = Stream::OnMessage,
    .on_send_ready = Stream::OnReady,
    .on_done = Stream::OnDone,
};

TEST_F(AsyncClientTest, PingPongDrivenFromCallbacks) {
  Stream s;
  s.target = 200;
  ASSERT_EQ(crpc_call_start_async(ch_, root_, "/t.S/PingPong", nullptr,
                                  nullptr, &kStreamReactor, &s, &s.call),
            CRPC_OK);
  /* The first send races only with callbacks that need its reply. */
  ASSERT_EQ(crpc_call_send_async(s.call, "ping0", 5, 0), CRPC_OK);
  ASSERT_TRUE(s.done.Wait());
  EXPECT_EQ(s.done.code, CRPC_OK) << s.done.message;
  ASSERT_EQ(s.got.size(), 200u);
  EXPECT_EQ(s.got[0], "ping0");
  EXPECT_EQ(s.got[199], "ping199");
  crpc_call_free(s.call);
}

TEST_F(AsyncClientTest, LargeServerStreamArrivesWhole) {
  Stream s;
  ASSERT_EQ(crpc_call_start_async(ch_, root_, "/t.S/Big", nullptr, nullptr,
                                  &kStreamReactor, &s, &s.call),
            CRPC_OK);
  ASSERT_EQ(crpc_call_send_async(s.call, "go", 2, 0), CRPC_OK);
  ASSERT_EQ(crpc_call_close_send(s.call), CRPC_OK);
  ASSERT_TRUE(s.done.Wait());
  EXPECT_EQ(s.done.code, CRPC_OK) << s.done.message;
  ASSERT_EQ(s.got.size(), 20u);
  for (int i = 0; i < 20; i++) {
    EXPECT_EQ(s.got[i].size(), 64u * 1024);
    EXPECT_EQ(s.got[i][0], 'a' + i);
  }
  crpc_call_free(s.call);
}

TEST_F(AsyncClientTest, SendReadyPacesAClientStream) {
  Stream s;
  s.to_send = 2 * 1024 * 1024; /* 32x the send buffer */
  ASSERT_EQ(crpc_call_start_async(ch_, root_, "/t.S/Sum", nullptr, nullptr,
                                  &kStreamReactor, &s, &s.call),
            CRPC_OK);
  /* Pumping from this thread races on_send_ready on the loop: guard it
   * the way a user would, by starting the pump only here and letting
   * the loop continue it. */
  std::string chunk(16 * 1024, 'x');
  while (crpc_call_can_send(s.call)) {
    ASSERT_EQ(crpc_call_send_async(s.call, chunk.data(), chunk.size(), 0),
              CRPC_OK);
    s.sent += chunk.size();
  }
  ASSERT_TRUE(s.done.Wait(1, 20000));
  EXPECT_EQ(s.done.code, CRPC_OK) << s.done.message;
  EXPECT_GT(s.ready, 1);
  ASSERT_EQ(s.got.size(), 1u);
  EXPECT_EQ(s.got[0], std::to_string(s.sent));
  EXPECT_GE(s.sent, s.to_send);
  crpc_call_free(s.call);
}

TEST_F(AsyncClientTest, FreeBeforeDoneCancelsAndDoneStillComes) {
  Stream s;
  ASSERT_EQ(crpc_call_start_async(ch_, root_, "/t.S/Hang", nullptr, nullptr,
                                  &kStreamReactor, &s, &s.call),
            CRPC_OK);
  ASSERT_EQ(crpc_call_send_async(s.call, "", 0, 0), CRPC_OK);
  ASSERT_TRUE(WaitFor([&] { return hang_started_.load(); }, 5000000000LL));
  crpc_call_free(s.call);
  ASSERT_TRUE(s.done.Wait());
  EXPECT_EQ(s.done.code, CRPC_CANCELLED);
  EXPECT_EQ(s.done.message, "call freed");
  EXPECT_TRUE(WaitFor([&] { return server_saw_ != CRPC_UNKNOWN; },
                      2000000000LL));
  EXPECT_EQ(server_saw_.load(), CRPC_CANCELLED);
}

TEST_F(AsyncClientTest, BlockingFunctionsRefuseAnAsyncCall) {
  Stream s;
  ASSERT_EQ(crpc_call_start_async(ch_, root_, "/t.S/PingPong", nullptr,
                                  nullptr, &kStreamReactor, &s, &s.call),
            CRPC_OK);
  crpc_message m;
  EXPECT_EQ(crpc_call_recv(s.call, &m), CRPC_FAILED_PRECONDITION);
  EXPECT_EQ(crpc_call_send(s.call, "x", 1), CRPC_FAILED_PRECONDITION);
  crpc_status st = {};
  EXPECT_EQ(crpc_call_finish(s.call, &st), CRPC_FAILED_PRECONDITION);
  crpc_status_clear(&st);
  crpc_call_close_send(s.call);
  ASSERT_TRUE(s.done.Wait());
  EXPECT_EQ(s.done.code, CRPC_OK);
  crpc_call_free(s.call);
}

TEST_F(AsyncClientTest, ChannelWithInterceptorsRefusesAsyncCalls) {
  crpc_channel *ch = crpc_channel_new(srv_->target().c_str(), nullptr);
  crpc_client_interceptor icpt = {};
  icpt.name = "noop";
  ASSERT_EQ(crpc_channel_add_interceptor(ch, &icpt), CRPC_OK);
  Done d;
  EXPECT_EQ(crpc_unary_call_async(ch, root_, "/t.S/Echo", nullptr, "", 0,
                                  UnaryDone, &d),
            CRPC_FAILED_PRECONDITION);
  crpc_channel_free(ch);
}

// No server: the helper thread's connect fails and done says why.
TEST_F(AsyncClientTest, UnreachableServerEndsUnavailableWithReason) {
  TestServer gone;
  gone.Start();
  std::string target = gone.target();
  crpc_server_shutdown(gone.get(), 0);
  crpc_channel *ch = crpc_channel_new(target.c_str(), nullptr);
  Done d;
  ASSERT_EQ(crpc_unary_call_async(ch, root_, "/t.S/Echo", nullptr, "", 0,
                                  UnaryDone, &d),
            CRPC_OK);
  ASSERT_TRUE(d.Wait());
  EXPECT_EQ(d.code, CRPC_UNAVAILABLE);
  EXPECT_FALSE(d.message.empty());
  crpc_channel_free(ch);
}

// A TLS channel to a listener that never answers the handshake: the first
// call holds the connecting thread; a second call queued behind it still
// ends at its own deadline (the loop settles it, not the helper).
TEST_F(AsyncClientTest, DeadlineFiresWhileTheConnectionIsStillBeingMade) {
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(lfd, reinterpret_cast<sockaddr *>(&a), sizeof(a)), 0);
  ASSERT_EQ(listen(lfd, 16), 0);
  socklen_t len = sizeof(a);
  getsockname(lfd, reinterpret_cast<sockaddr *>(&a), &len);
  std::string target = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  crpc_channel_credentials *creds = nullptr;
  ASSERT_EQ(crpc_channel_credentials_new(nullptr, &creds, nullptr), CRPC_OK);
  crpc_channel_options o = {};
  o.credentials = creds;
  crpc_channel *ch = crpc_channel_new(target.c_str(), &o);
  crpc_channel_credentials_free(creds);
  Ctx long_ctx(crpc_ctx_with_cancel(root_));
  Ctx short_ctx(crpc_ctx_with_timeout(root_, 50 * 1000 * 1000));
  Done first, second;
  ASSERT_EQ(crpc_unary_call_async(ch, long_ctx, "/t.S/Echo", nullptr, "", 0,
                                  UnaryDone, &first),
            CRPC_OK);
  int64_t t0 = crpc_now_ns();
  ASSERT_EQ(crpc_unary_call_async(ch, short_ctx, "/t.S/Echo", nullptr, "", 0,
                                  UnaryDone, &second),
            CRPC_OK);
  ASSERT_TRUE(second.Wait());
  int64_t took = crpc_now_ns() - t0;
  EXPECT_EQ(second.code, CRPC_DEADLINE_EXCEEDED);
  EXPECT_LT(took, 2000LL * 1000 * 1000);
  EXPECT_EQ(first.count, 0); /* still connecting */
  crpc_ctx_cancel(long_ctx, CRPC_CANCELLED, "test over");
  ASSERT_TRUE(first.Wait());
  EXPECT_EQ(first.code, CRPC_CANCELLED);
  crpc_channel_free(ch);
  close(lfd);
}

}  // namespace
