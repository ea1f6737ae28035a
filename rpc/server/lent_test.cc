// Blocking handlers on a lent loop thread (server.c server_pool_submit,
// rpc/loop/outside.c): a unary or server-streaming call that is the only
// one its loop made ready runs on the loop's thread. These tests pin what
// that must not change: a handler that blocks (where crpc can see it or
// not) holds up no other call of its loop, a cancel or deadline reaches
// it, a response larger than the windows flows, and shutdown waits for
// it. One loop thread each, so every call shares the lent loop.
#include "rpc/server/async_test_util.h"
#include "rpc/server/raw_client.h"

namespace crpc_test {
namespace {

class LentTest : public LeakCheckTest {
 protected:
  void SetUp() override {
    LeakCheckTest::SetUp();
    so_.loop_threads = 1;
    server_ = std::make_unique<TestServer>(&so_);
  }
  void TearDown() override {
    server_.reset();  // the last calls' structs go with it
    LeakCheckTest::TearDown();
  }
  crpc_server_options so_{};
  std::unique_ptr<TestServer> server_;
};

// Waits for flag, with the sanitizers' slack; false if it never came.
bool WaitFor(const std::atomic<bool> &flag) {
  for (int64_t waited = 0; !flag.load(); waited += kMs) {
    if (waited > kWait) return false;
    usleep(1000);
  }
  return true;
}

// Takes the call's one request message (unused).
crpc_code TakeRequest(crpc_server_call *call) {
  crpc_message m;
  crpc_code c = crpc_server_call_recv(call, &m);
  if (c == CRPC_OK) free(m.data);
  return c;
}

// An echo handler that notes the name of every thread it ran on.
struct ThreadNames {
  std::mutex mu;
  std::set<std::string> names;
  std::function<crpc_code(crpc_server_call *, const crpc_ctx *)> Echo() {
    return [this](crpc_server_call *call, const crpc_ctx *) {
      {
        std::lock_guard<std::mutex> l(mu);
        names.insert(ThreadName());
      }
      return EchoOnce(call);
    };
  }
  std::set<std::string> Get() {
    std::lock_guard<std::mutex> l(mu);
    return names;
  }
};

TEST_F(LentTest, OneCallInFlightRunsOnTheLoopThread) {
  ThreadNames names;
  server_->Add("/t.S/Echo", CRPC_UNARY, names.Echo());
  server_->Start();
  Channel ch(server_->target());
  for (int i = 0; i < 20; i++) {
    Reply r = Unary(ch, "/t.S/Echo", "m" + std::to_string(i));
    ASSERT_EQ(r.code, CRPC_OK) << r.message;
    EXPECT_EQ(r.body, "m" + std::to_string(i));
  }
  std::set<std::string> seen = names.Get();
  EXPECT_EQ(seen.count(kLoopThread), 1u);  // the first call at least
  EXPECT_EQ(seen.count(kStandbyThread), 0u);
}

// blocking_handlers_off_loop: the same lone calls all take a handler
// thread.
TEST_F(LentTest, OffLoopOptionKeepsBlockingHandlersOnHandlerThreads) {
  so_.blocking_handlers_off_loop = true;
  server_ = std::make_unique<TestServer>(&so_);
  ThreadNames names;
  server_->Add("/t.S/Echo", CRPC_UNARY, names.Echo());
  server_->Start();
  Channel ch(server_->target());
  for (int i = 0; i < 10; i++) {
    Reply r = Unary(ch, "/t.S/Echo", "m");
    ASSERT_EQ(r.code, CRPC_OK) << r.message;
  }
  EXPECT_EQ(names.Get(), std::set<std::string>{kHandlerThread});
}

// A handler blocked where crpc cannot see it (a sleep loop): the standby
// takes the loop within a check period or two, and the loop's other calls,
// async ones and blocking ones on the pool, are served meanwhile.
TEST_F(LentTest, AHandlerBlockedOutOfSightHoldsUpNoOtherCall) {
  std::atomic<bool> started{false}, release{false};
  std::atomic<int> sleeper_calls{0};
  std::mutex mu;
  std::string sleeper_thread;
  server_->Add("/t.S/Sleep", CRPC_UNARY,
               [&](crpc_server_call *call, const crpc_ctx *) {
                 if (sleeper_calls++ == 0) {
                   {
                     std::lock_guard<std::mutex> l(mu);
                     sleeper_thread = ThreadName();
                   }
                   started = true;
                   while (!release.load()) usleep(500);
                 }
                 return EchoOnce(call);
               });
  UnaryAsync ping(EchoInline);
  ASSERT_EQ(ping.Register(server_->get(), "/t.S/Ping"), CRPC_OK);
  server_->Start();
  Channel ch(server_->target());
  std::thread sleeper([&] {
    Reply r = Unary(ch, "/t.S/Sleep", "slow");
    EXPECT_EQ(r.code, CRPC_OK) << r.message;
  });
  Finally join([&] {
    release = true;
    sleeper.join();
  });
  ASSERT_TRUE(WaitFor(started));
  for (int i = 0; i < 5; i++) {
    Reply p = Unary(ch, "/t.S/Ping", "p");
    EXPECT_EQ(p.code, CRPC_OK) << p.message;
    Reply b = Unary(ch, "/t.S/Sleep", "quick");  // a second Sleep call
    EXPECT_EQ(b.code, CRPC_OK) << b.message;
    EXPECT_EQ(b.body, "quick");
  }
  EXPECT_FALSE(release.load());
  std::lock_guard<std::mutex> l(mu);
  EXPECT_EQ(sleeper_thread, kLoopThread);
}

// Blocked in crpc waits on the lent thread: the client's cancel and the
// deadline both reach the handler, with their causes.
TEST_F(LentTest, CancelAndDeadlineReachAHandlerWaitingOnItsCtx) {
  std::atomic<bool> started{false};
  std::mutex mu;
  std::vector<std::pair<crpc_code, std::string>> seen;  // code, thread
  server_->Add("/t.S/Wait", CRPC_UNARY,
               [&](crpc_server_call *call, const crpc_ctx *ctx) {
                 crpc_code c = TakeRequest(call);
                 if (c != CRPC_OK) return c;
                 started = true;
                 c = crpc_ctx_wait(ctx);
                 std::lock_guard<std::mutex> l(mu);
                 seen.emplace_back(c, ThreadName());
                 return c;
               });
  server_->Start();
  Channel ch(server_->target());

  Ctx cancel_ctx(crpc_ctx_with_cancel(crpc_ctx_background()));
  std::thread canceller([&] {
    if (WaitFor(started)) crpc_ctx_cancel(cancel_ctx.c, CRPC_CANCELLED, "bye");
  });
  crpc_message resp{};
  crpc_status st{};
  EXPECT_EQ(crpc_unary_call(ch, cancel_ctx.c, "/t.S/Wait", nullptr, "x", 1,
                            &resp, &st),
            CRPC_CANCELLED);
  crpc_status_clear(&st);
  canceller.join();

  // The deadline from a client that never resets: a crpc client's own
  // deadline sends RST_STREAM(CANCEL) at the same moment, and which of the
  // two reaches the handler first is a race (1-2 in 100 under CPU load).
  RawClient raw(server_->port());
  std::string body = Frame("x");
  int32_t id = raw.Request("/t.S/Wait", {{"grpc-timeout", "200m"}}, &body);
  ASSERT_GT(id, 0);
  ASSERT_TRUE(raw.PumpUntil([&] { return raw.stream(id).closed; }, kWait));
  EXPECT_EQ(raw.stream(id).headers["grpc-status"], "4");

  // The handlers have returned once the server says no call is live.
  crpc_server_shutdown(server_->get(), kWait);
  std::lock_guard<std::mutex> l(mu);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].first, CRPC_CANCELLED);
  EXPECT_EQ(seen[1].first, CRPC_DEADLINE_EXCEEDED);
  EXPECT_EQ(seen[0].second, kLoopThread);
  // The second may have come while the first was still out (the client
  // sees its own cancel at once): then the standby read it and it went to
  // the pool.
  EXPECT_TRUE(seen[1].second == kLoopThread ||
              seen[1].second == kHandlerThread)
      << seen[1].second;
}

// A server-streaming response far larger than the connection's and the
// stream's windows: the handler's sends wait for WINDOW_UPDATEs, which the
// standby reads while the lent thread waits.
TEST_F(LentTest, AStreamLargerThanTheWindowsFlows) {
  constexpr int kMessages = 64;
  constexpr size_t kSize = 64 * 1024;
  std::mutex mu;
  std::string thread;
  server_->Add("/t.S/Stream", CRPC_SERVER_STREAMING,
               [&](crpc_server_call *call, const crpc_ctx *) {
                 {
                   std::lock_guard<std::mutex> l(mu);
                   thread = ThreadName();
                 }
                 crpc_code c = TakeRequest(call);
                 if (c != CRPC_OK) return c;
                 std::string body(kSize, 'z');
                 for (int i = 0; i < kMessages && c == CRPC_OK; i++) {
                   body[0] = static_cast<char>('a' + i % 26);
                   c = crpc_server_call_send(call, body.data(), body.size());
                 }
                 return c;
               });
  server_->Start();
  Channel ch(server_->target());
  Ctx ctx(crpc_ctx_with_timeout(crpc_ctx_background(), kWait * 3));
  CallPtr call;
  ASSERT_EQ(crpc_call_start(ch, ctx.c, "/t.S/Stream", nullptr, &call.c),
            CRPC_OK);
  ASSERT_EQ(crpc_call_send(call.c, "go", 2), CRPC_OK);
  ASSERT_EQ(crpc_call_close_send(call.c), CRPC_OK);
  int got = 0;
  for (;;) {
    crpc_message m;
    ASSERT_EQ(crpc_call_recv(call.c, &m), CRPC_OK);
    if (m.end) break;
    EXPECT_EQ(m.len, kSize);
    if (m.len == kSize) {
      EXPECT_EQ(m.data[0], static_cast<uint8_t>('a' + got % 26));
    }
    free(m.data);
    got++;
  }
  EXPECT_EQ(crpc_call_finish(call.c, nullptr), CRPC_OK);
  EXPECT_EQ(got, kMessages);
  std::lock_guard<std::mutex> l(mu);
  EXPECT_EQ(thread, kLoopThread);
}

// Shutdown with a lent handler that only stops when its ctx ends: the
// grace runs out, the ctx is cancelled (UNAVAILABLE, shutdown), the
// handler returns on the loop thread and shutdown returns after it.
TEST_F(LentTest, ShutdownCancelsAndWaitsForALentHandler) {
  std::atomic<bool> started{false}, returned{false};
  std::atomic<crpc_code> code{CRPC_OK};
  server_->Add("/t.S/Hold", CRPC_UNARY,
               [&](crpc_server_call *call, const crpc_ctx *ctx) {
                 crpc_code c = TakeRequest(call);
                 if (c != CRPC_OK) return c;
                 started = true;
                 code = crpc_ctx_wait(ctx);
                 returned = true;
                 return code.load();
               });
  server_->Start();
  Channel ch(server_->target());
  std::thread client([&] {
    Reply r = Unary(ch, "/t.S/Hold", "x");
    EXPECT_NE(r.code, CRPC_OK);
  });
  ASSERT_TRUE(WaitFor(started));
  crpc_server_shutdown(server_->get(), 50 * kMs);
  EXPECT_TRUE(returned.load());
  EXPECT_EQ(code.load(), CRPC_UNAVAILABLE);
  client.join();
}

}  // namespace
}  // namespace crpc_test
