// crpc_server_serve_until / _until_signal (server_signal.c): a signal or
// the stop ctx ends the wait, in-flight calls get their grace, and the
// process's signal dispositions and mask are as before afterwards.
#include <signal.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "crpc/server.h"
#include "rpc/channel/test_util.h"

namespace crpc_test {
namespace {

crpc_code Echo(crpc_server_call *call, const crpc_ctx *) {
  return EchoOnce(call);
}

bool HandlerInstalled(int sig) {
  struct sigaction cur;
  return sigaction(sig, nullptr, &cur) == 0 && cur.sa_handler != SIG_DFL &&
         cur.sa_handler != SIG_IGN;
}

// Sends `sig` to the process once serve_until has its handler in place (a
// signal before that would end the test binary).
std::thread SignalWhenWaiting(int sig) {
  return std::thread([sig] {
    while (!HandlerInstalled(sig)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    kill(getpid(), sig);
  });
}

crpc_code CallEcho(const std::string &target, int64_t timeout_ns) {
  crpc_channel *ch = crpc_channel_new(target.c_str(), nullptr);
  crpc_ctx *ctx = crpc_ctx_with_timeout(crpc_ctx_background(), timeout_ns);
  crpc_message resp = {};
  crpc_code c = crpc_unary_call(ch, ctx, "/test.Svc/Echo", nullptr, "hi", 2,
                                &resp, nullptr);
  free(resp.data);
  crpc_ctx_release(ctx);
  crpc_channel_free(ch);
  return c;
}

class ServeUntilTest : public LeakCheckTest {
 protected:
  void SetUp() override {
    LeakCheckTest::SetUp();
    server_.Add("/test.Svc/Echo", CRPC_UNARY, Echo);
    server_.Start();
  }
  void TearDown() override {
    crpc_server_shutdown(server_.get(), 0);
    LeakCheckTest::TearDown();
  }
  TestServer server_;
};

TEST_F(ServeUntilTest, SigtermEndsTheWaitShutsDownAndRestoresTheDefault) {
  ASSERT_EQ(CallEcho(server_.target(), 5 * CRPC_SECOND), CRPC_OK);
  std::thread killer = SignalWhenWaiting(SIGTERM);
  int signo = -1;
  EXPECT_EQ(crpc_server_serve_until(server_.get(), nullptr, CRPC_SECOND,
                                    &signo),
            CRPC_OK);
  killer.join();
  EXPECT_EQ(signo, SIGTERM);
  EXPECT_FALSE(HandlerInstalled(SIGTERM));
  EXPECT_FALSE(HandlerInstalled(SIGINT));
  // Shut down: nothing listens any more.
  EXPECT_EQ(CallEcho(server_.target(), 2 * CRPC_SECOND), CRPC_UNAVAILABLE);
}

TEST_F(ServeUntilTest, SignalPendingWhileBlockedCountsAndTheMaskIsRestored) {
  sigset_t intr, before, after;
  sigemptyset(&intr);
  sigaddset(&intr, SIGINT);
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &intr, &before), 0);
  raise(SIGINT);  // pending on this thread: nobody can take it yet
  EXPECT_EQ(crpc_server_serve_until_signal(server_.get(), CRPC_SECOND),
            CRPC_OK);
  ASSERT_EQ(pthread_sigmask(SIG_SETMASK, &before, &after), 0);
  EXPECT_TRUE(sigismember(&after, SIGINT)) << "the caller's mask is back";
  sigset_t pending;
  sigpending(&pending);
  EXPECT_FALSE(sigismember(&pending, SIGINT)) << "the signal was consumed";
}

TEST_F(ServeUntilTest, StopCtxEndsTheWaitWithSignoZero) {
  crpc_ctx *stop = crpc_ctx_with_cancel(crpc_ctx_background());
  std::thread stopper([stop] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    crpc_ctx_cancel(stop, CRPC_CANCELLED, "admin said stop");
  });
  int signo = -1;
  EXPECT_EQ(crpc_server_serve_until(server_.get(), stop, CRPC_SECOND, &signo),
            CRPC_OK);
  stopper.join();
  EXPECT_EQ(signo, 0);
  crpc_ctx_release(stop);
  EXPECT_EQ(CallEcho(server_.target(), 2 * CRPC_SECOND), CRPC_UNAVAILABLE);
}

using ServeUntilGraceTest = LeakCheckTest;

TEST_F(ServeUntilGraceTest, InFlightCallFinishesWithinTheGrace) {
  std::atomic<bool> in_handler{false};
  TestServer server;
  server.Add("/test.Svc/Slow", CRPC_UNARY,
             [&](crpc_server_call *call, const crpc_ctx *ctx) {
               crpc_message m;
               crpc_code c = crpc_server_call_recv(call, &m);
               if (c != CRPC_OK || m.end) return c;
               free(m.data);
               in_handler = true;
               c = crpc_ctx_sleep(ctx, 200 * CRPC_MILLISECOND);
               return c != CRPC_OK ? c : crpc_server_call_send(call, "ok", 2);
             });
  server.Start();
  crpc_code client_code = CRPC_UNKNOWN;
  std::thread client([&] {
    crpc_channel *ch = crpc_channel_new(server.target().c_str(), nullptr);
    crpc_ctx *ctx = crpc_ctx_with_timeout(crpc_ctx_background(),
                                          10 * CRPC_SECOND);
    crpc_message resp = {};
    client_code = crpc_unary_call(ch, ctx, "/test.Svc/Slow", nullptr, "x", 1,
                                  &resp, nullptr);
    free(resp.data);
    crpc_ctx_release(ctx);
    crpc_channel_free(ch);
  });
  while (!in_handler) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::thread killer = SignalWhenWaiting(SIGTERM);
  EXPECT_EQ(crpc_server_serve_until_signal(server.get(), 10 * CRPC_SECOND),
            CRPC_OK);
  killer.join();
  client.join();
  EXPECT_EQ(client_code, CRPC_OK) << crpc_code_name(client_code);
}

TEST(ServeUntil, RefusesAServerThatIsNotStarted) {
  crpc_server *s = crpc_server_new(nullptr);
  int signo = -1;
  EXPECT_EQ(crpc_server_serve_until(s, nullptr, 0, &signo),
            CRPC_FAILED_PRECONDITION);
  EXPECT_EQ(signo, 0);
  EXPECT_FALSE(HandlerInstalled(SIGTERM));
  crpc_server_free(s);
}

TEST_F(ServeUntilTest, SecondWaiterIsRefusedWhileOneWaits) {
  TestServer other;
  other.Add("/test.Svc/Echo", CRPC_UNARY, Echo);
  other.Start();
  crpc_ctx *stop = crpc_ctx_with_cancel(crpc_ctx_background());
  std::thread first([&] {
    EXPECT_EQ(crpc_server_serve_until(server_.get(), stop, 0, nullptr),
              CRPC_OK);
  });
  while (!HandlerInstalled(SIGTERM)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(crpc_server_serve_until(other.get(), stop, 0, nullptr),
            CRPC_FAILED_PRECONDITION);
  crpc_ctx_cancel(stop, CRPC_CANCELLED, "done");
  first.join();
  crpc_ctx_release(stop);
  crpc_server_shutdown(other.get(), 0);
}

}  // namespace
}  // namespace crpc_test
