// Async server methods, part two: on_start for a call whose ctx is done
// at dispatch, loop_threads under concurrent async and blocking load (the
// TSan cross-loop test), blocking unary handlers that take a handler
// thread only once their request is there, async and blocking methods side
// by side, and edges: finishing in on_start, oversized requests, requests
// beyond the stream window, shutdown cancelling a running reactor, a
// blocking call whose deadline passes before its request, a blocking pool
// that must still grow, and a send from another thread racing a dropped
// connection.
#include "rpc/server/async_test_util.h"

namespace crpc_test {
namespace {

// ---- 7. loop_threads --------------------------------------------------------

// Four loops, eight connections (one per channel), each with 50 inline
// unary and 50 blocking unary calls running concurrently. All succeed;
// the inline handlers ran on the four loops (connections are handed out
// in turn): on their threads, or on a loop's standby while its thread ran
// a blocking handler; the blocking ones on handler threads or lent loop
// threads, never on a standby.
TEST_F(AsyncTest, LoopThreadsServeConnectionsConcurrently) {
  constexpr int kChannels = 8, kCalls = 50;
  UnaryAsync async_echo(EchoInline);
  std::mutex mu;
  std::set<std::string> block_names;
  std::set<std::thread::id> block_tids;
  crpc_server_options so{};
  so.loop_threads = 4;
  TestServer server(&so);
  ASSERT_EQ(async_echo.Register(server.get(), "/t.S/Async"), CRPC_OK);
  server.Add("/t.S/Block", CRPC_UNARY,
             [&](crpc_server_call *call, const crpc_ctx *) {
               {
                 std::lock_guard<std::mutex> l(mu);
                 block_names.insert(ThreadName());
                 block_tids.insert(std::this_thread::get_id());
               }
               return EchoOnce(call);
             });
  server.Start();

  std::vector<std::unique_ptr<Channel>> chans;
  for (int i = 0; i < kChannels; i++) {
    chans.push_back(std::make_unique<Channel>(server.target()));
  }
  std::atomic<int> ok{0}, bad{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kChannels; i++) {
    for (const char *method : {"/t.S/Async", "/t.S/Block"}) {
      threads.emplace_back([&, i, method] {
        for (int n = 0; n < kCalls; n++) {
          std::string req =
              std::string(method) + std::to_string(i) + "." + std::to_string(n);
          Reply r = Unary(*chans[i], method, req);
          (r.code == CRPC_OK && r.body == req ? ok : bad)++;
        }
      });
    }
  }
  for (auto &t : threads) t.join();
  EXPECT_EQ(ok.load(), kChannels * kCalls * 2);
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(async_echo.calls(), kChannels * kCalls);
  EXPECT_EQ(async_echo.peers().size(), static_cast<size_t>(kChannels));
  EXPECT_GE(async_echo.threads().size(), 4u);
  EXPECT_LE(async_echo.threads().size(), 8u);
  for (const std::string &name : async_echo.thread_names()) {
    EXPECT_TRUE(name == kLoopThread || name == kStandbyThread) << name;
  }
  std::lock_guard<std::mutex> l(mu);
  for (const std::string &name : block_names) {
    EXPECT_TRUE(name == kHandlerThread || name == kLoopThread) << name;
  }
}

// ---- 8. blocking unary handlers start once their request is there ---------

// One handler thread. Three blocking unary calls send only their headers:
// none takes the thread (a complete call still gets served), and the
// handler starts only once a request arrives. The two whose clients
// cancel before sending end CANCELLED and never run the handler
// (scall_run_handler skips a handler whose ctx is already done).
TEST_F(AsyncTest, BlockingUnaryWaitsForRequestWithoutAThread) {
  std::atomic<int> started{0};
  std::mutex mu;
  std::set<std::string> names;
  std::set<std::string> requests;
  crpc_server_options so{};
  so.handler_threads = 1;
  TestServer server(&so);
  server.Add("/t.S/Block", CRPC_UNARY,
             [&](crpc_server_call *call, const crpc_ctx *) {
               started++;
               crpc_message m;
               crpc_code c = crpc_server_call_recv(call, &m);
               if (c != CRPC_OK || m.end) return c;
               {
                 std::lock_guard<std::mutex> l(mu);
                 names.insert(ThreadName());
                 requests.insert(Str(m));
               }
               c = crpc_server_call_send(call, m.data, m.len);
               free(m.data);
               return c;
             });
  UnaryAsync ping(EchoInline);
  ASSERT_EQ(ping.Register(server.get(), "/t.S/Ping"), CRPC_OK);
  server.Start();
  Channel ch(server.target());

  Ctx ctx1(crpc_ctx_with_timeout(crpc_ctx_background(), kWait * 3));
  Ctx ctx2(crpc_ctx_with_cancel(crpc_ctx_background()));
  Ctx ctx3(crpc_ctx_with_cancel(crpc_ctx_background()));
  CallPtr c1, c2, c3;
  ASSERT_EQ(crpc_call_start(ch, ctx1, "/t.S/Block", nullptr, &c1.c), CRPC_OK);
  ASSERT_EQ(crpc_call_start(ch, ctx2, "/t.S/Block", nullptr, &c2.c), CRPC_OK);
  ASSERT_EQ(crpc_call_start(ch, ctx3, "/t.S/Block", nullptr, &c3.c), CRPC_OK);
  // A later stream on the same connection: once it is answered, the
  // server has processed the three HEADERS frames sent before it.
  Reply p = Unary(ch, "/t.S/Ping", "p");
  ASSERT_EQ(p.code, CRPC_OK) << p.message;
  usleep(50000);
  EXPECT_EQ(started.load(), 0) << "a handler started without its request";

  // The only handler thread is free: a complete call is served.
  Reply full = Unary(ch, "/t.S/Block", "full");
  EXPECT_EQ(full.code, CRPC_OK) << full.message;
  EXPECT_EQ(full.body, "full");
  EXPECT_EQ(started.load(), 1);

  // Now the first call's request: its handler runs and replies.
  ASSERT_EQ(crpc_call_send(c1.c, "one", 3), CRPC_OK);
  ASSERT_EQ(crpc_call_close_send(c1.c), CRPC_OK);
  crpc_message m;
  ASSERT_EQ(crpc_call_recv(c1.c, &m), CRPC_OK);
  ASSERT_FALSE(m.end);
  EXPECT_EQ(Str(m), "one");
  free(m.data);
  EXPECT_EQ(crpc_call_finish(c1.c, nullptr), CRPC_OK);
  EXPECT_EQ(started.load(), 2);

  // The other two are cancelled before their request arrives.
  crpc_ctx_cancel(ctx2, CRPC_CANCELLED, "client gives up");
  EXPECT_EQ(crpc_call_finish(c2.c, nullptr), CRPC_CANCELLED);
  crpc_ctx_cancel(ctx3, CRPC_CANCELLED, "client gives up");
  EXPECT_EQ(crpc_call_finish(c3.c, nullptr), CRPC_CANCELLED);
  // Shutdown waits until every call has left the handler pool.
  crpc_server_shutdown(server.get(), 5 * CRPC_SECOND);
  EXPECT_EQ(started.load(), 2) << "a cancelled call ran its handler";
  std::lock_guard<std::mutex> l(mu);
  for (const std::string &name : names) {
    EXPECT_TRUE(name == kHandlerThread || name == kLoopThread) << name;
  }
  EXPECT_EQ(requests, (std::set<std::string>{"full", "one"}));
}

// ---- 9. async and blocking methods side by side -----------------------------

TEST_F(AsyncTest, AsyncAndBlockingMethodsOnOneService) {
  UnaryAsync async_echo(EchoInline);
  UnaryAsync spare(EchoInline);
  Reactor reactor;
  reactor.message = [](crpc_server_call *call, const crpc_message *msg,
                       void *) {
    if (msg->end) return;
    std::string reply = "reactor:" + View(msg);
    crpc_server_call_send_async(call, reply.data(), reply.size(), 0);
    crpc_server_call_finish(call, CRPC_OK, nullptr);
  };
  std::atomic<int> block_calls{0};
  TestServer server;
  crpc_server *s = server.get();
  ASSERT_EQ(async_echo.Register(s, "/t.S/Async"), CRPC_OK);
  server.Add("/t.S/Block", CRPC_UNARY,
             [&](crpc_server_call *call, const crpc_ctx *) {
               block_calls++;
               return EchoOnce(call);
             });
  ASSERT_EQ(reactor.Register(s, "/t.S/Reactor", CRPC_UNARY), CRPC_OK);

  // One path, one method, whichever the kind.
  Handler h = [](crpc_server_call *call, const crpc_ctx *) {
    return EchoOnce(call);
  };
  EXPECT_EQ(crpc_server_add_method(s, "/t.S/Async", CRPC_UNARY, Trampoline, &h),
            CRPC_ALREADY_EXISTS);
  EXPECT_EQ(spare.Register(s, "/t.S/Block"), CRPC_ALREADY_EXISTS);
  EXPECT_EQ(spare.Register(s, "/t.S/Reactor"), CRPC_ALREADY_EXISTS);
  EXPECT_EQ(reactor.Register(s, "/t.S/Async", CRPC_BIDI_STREAMING),
            CRPC_ALREADY_EXISTS);
  // Bad registrations.
  EXPECT_EQ(crpc_server_add_unary_async(s, "/t.S/Null", nullptr, nullptr),
            CRPC_INVALID_ARGUMENT);
  crpc_server_reactor empty;
  memset(&empty, 0, sizeof(empty));
  EXPECT_EQ(crpc_server_add_async_method(s, "/t.S/NoStart", CRPC_UNARY, &empty,
                                         nullptr),
            CRPC_INVALID_ARGUMENT);
  EXPECT_EQ(crpc_server_add_async_method(s, "/t.S/NoReactor", CRPC_UNARY,
                                         nullptr, nullptr),
            CRPC_INVALID_ARGUMENT);
  EXPECT_EQ(spare.Register(s, "no-slash"), CRPC_INVALID_ARGUMENT);
  EXPECT_EQ(spare.Register(s, "/t.S/"), CRPC_INVALID_ARGUMENT);
  server.Start();
  EXPECT_NE(spare.Register(s, "/t.S/Late"), CRPC_OK);  // after start

  Channel ch(server.target());
  Reply r = Unary(ch, "/t.S/Async", "a");
  EXPECT_EQ(r.code, CRPC_OK) << r.message;
  EXPECT_EQ(r.body, "a");
  r = Unary(ch, "/t.S/Block", "b");
  EXPECT_EQ(r.code, CRPC_OK) << r.message;
  EXPECT_EQ(r.body, "b");
  r = Unary(ch, "/t.S/Reactor", "c");
  EXPECT_EQ(r.code, CRPC_OK) << r.message;
  EXPECT_EQ(r.body, "reactor:c");
  for (const char *path : {"/t.S/Null", "/t.S/NoStart", "/t.S/Late"}) {
    r = Unary(ch, path, "x");
    EXPECT_EQ(r.code, CRPC_UNIMPLEMENTED) << path;
  }
  EXPECT_EQ(async_echo.calls(), 1);
  EXPECT_EQ(block_calls.load(), 1);
  EXPECT_EQ(spare.calls(), 0);
  ASSERT_TRUE(reactor.WaitCount(Ev::kDone, 1));
  EXPECT_TRUE(reactor.Lifecycle(0));
}

// ---- more edges -------------------------------------------------------------

// A reactor may finish in on_start: the client gets that status, and the
// request is never delivered to it.
TEST_F(AsyncTest, ReactorFinishingInOnStart) {
  Reactor deny;
  deny.start = [](crpc_server_call *call, const crpc_ctx *) -> void * {
    crpc_server_call_finish(call, CRPC_PERMISSION_DENIED, "go away");
    return nullptr;
  };
  TestServer server;
  ASSERT_EQ(deny.Register(server.get(), "/t.S/Deny", CRPC_UNARY), CRPC_OK);
  server.Start();
  Channel ch(server.target());
  for (int i = 0; i < 3; i++) {
    Reply r = Unary(ch, "/t.S/Deny", "x");
    EXPECT_EQ(r.code, CRPC_PERMISSION_DENIED);
    EXPECT_EQ(r.message, "go away");
  }
  ASSERT_TRUE(deny.WaitCount(Ev::kDone, 3));
  for (int i = 0; i < 3; i++) {
    EXPECT_TRUE(deny.Lifecycle(i));
    EXPECT_EQ(deny.EventsOf(i).size(), 2u);  // start, done
  }
}

// A request message over max_recv_message_size: a reactor gets on_cancel
// (RESOURCE_EXHAUSTED) and no message, an inline handler is not called;
// the client gets RESOURCE_EXHAUSTED from both.
TEST_F(AsyncTest, OversizedRequestCancelsAsyncCalls) {
  Reactor r;
  r.cancel = [](crpc_server_call *call, const crpc_cause *, void *) {
    crpc_server_call_finish(call, CRPC_OK, nullptr);
  };
  UnaryAsync inline_echo(EchoInline);
  crpc_server_options so{};
  so.max_recv_message_size = 1024;
  TestServer server(&so);
  ASSERT_EQ(r.Register(server.get(), "/t.S/Reactor", CRPC_BIDI_STREAMING),
            CRPC_OK);
  ASSERT_EQ(inline_echo.Register(server.get(), "/t.S/Inline"), CRPC_OK);
  server.Start();
  Channel ch(server.target());
  std::string big(2048, 'q');
  Reply a = Unary(ch, "/t.S/Reactor", big);
  EXPECT_EQ(a.code, CRPC_RESOURCE_EXHAUSTED) << a.message;
  Reply b = Unary(ch, "/t.S/Inline", big);
  EXPECT_EQ(b.code, CRPC_RESOURCE_EXHAUSTED) << b.message;
  EXPECT_EQ(inline_echo.calls(), 0);
  ASSERT_TRUE(r.WaitCount(Ev::kDone, 1));
  EXPECT_TRUE(r.Lifecycle(0));
  EXPECT_EQ(r.Count(Ev::kMessage), 0);
  Event cancel = r.First(Ev::kCancel);
  EXPECT_EQ(cancel.code, CRPC_RESOURCE_EXHAUSTED) << cancel.data;
}

// Requests larger than the server's stream window (64 KiB by default)
// reach every kind of handler whole.
TEST_F(AsyncTest, RequestsLargerThanTheStreamWindow) {
  UnaryAsync inline_echo(EchoInline);
  Reactor r;
  r.message = [](crpc_server_call *call, const crpc_message *msg, void *) {
    if (msg->end) return;
    crpc_server_call_send_async(call, msg->data, msg->len, 0);
    crpc_server_call_finish(call, CRPC_OK, nullptr);
  };
  TestServer server;
  ASSERT_EQ(inline_echo.Register(server.get(), "/t.S/Inline"), CRPC_OK);
  ASSERT_EQ(r.Register(server.get(), "/t.S/Reactor", CRPC_UNARY), CRPC_OK);
  server.Add(
      "/t.S/Block", CRPC_UNARY,
      [](crpc_server_call *call, const crpc_ctx *) { return EchoOnce(call); });
  server.Start();
  Channel ch(server.target());
  std::string big(300 * 1024, '\0');
  for (size_t i = 0; i < big.size(); i++) big[i] = static_cast<char>(i * 7);
  for (const char *m : {"/t.S/Inline", "/t.S/Reactor", "/t.S/Block"}) {
    Reply rep = Unary(ch, m, big);
    EXPECT_EQ(rep.code, CRPC_OK) << m << ": " << rep.message;
    EXPECT_TRUE(rep.body == big) << m << ": " << rep.body.size() << " bytes";
  }
  ASSERT_TRUE(r.WaitCount(Ev::kDone, 1));
  EXPECT_TRUE(r.Lifecycle(0));
}

// Past the shutdown grace a reactor still running gets on_cancel
// (UNAVAILABLE, origin shutdown); shutdown waits for its finish and
// on_done; the client gets UNAVAILABLE.
TEST_F(AsyncTest, ShutdownCancelsRunningReactor) {
  Reactor r;
  r.cancel = [](crpc_server_call *call, const crpc_cause *, void *) {
    crpc_server_call_finish(call, CRPC_OK, nullptr);
  };
  TestServer server;
  ASSERT_EQ(r.Register(server.get(), "/t.S/Run", CRPC_BIDI_STREAMING), CRPC_OK);
  server.Start();
  Channel ch(server.target());
  Ctx ctx(crpc_ctx_with_timeout(crpc_ctx_background(), kWait));
  CallPtr c;
  ASSERT_EQ(crpc_call_start(ch, ctx, "/t.S/Run", nullptr, &c.c), CRPC_OK);
  ASSERT_EQ(crpc_call_send(c.c, "m", 1), CRPC_OK);
  ASSERT_TRUE(r.WaitCount(Ev::kMessage, 1));
  crpc_server_shutdown(server.get(), 50 * kMs);
  EXPECT_EQ(r.Count(Ev::kDone), 1);  // shutdown waited for it
  Event cancel = r.First(Ev::kCancel);
  EXPECT_EQ(cancel.code, CRPC_UNAVAILABLE) << cancel.data;
  EXPECT_EQ(cancel.origin, CRPC_ORIGIN_SHUTDOWN) << cancel.data;
  EXPECT_TRUE(r.Lifecycle(0));
  EXPECT_EQ(crpc_call_finish(c.c, nullptr), CRPC_UNAVAILABLE);
}

// A blocking unary call whose grpc-timeout passes before its request
// arrives ends DEADLINE_EXCEEDED without its handler ever running.
TEST_F(AsyncTest, BlockingUnaryDeadlineBeforeRequest) {
  std::atomic<int> started{0};
  TestServer server;
  server.Add("/t.S/Block", CRPC_UNARY,
             [&](crpc_server_call *call, const crpc_ctx *) {
               started++;
               return EchoOnce(call);
             });
  server.Start();
  RawClient raw(server.port());
  std::string none;
  int32_t id = raw.Request("/t.S/Block", {{"grpc-timeout", "50m"}}, &none,
                           /*end=*/false);  // HEADERS only
  ASSERT_GT(id, 0);
  ASSERT_TRUE(raw.PumpUntil([&] { return raw.stream(id).closed; }, kWait));
  EXPECT_EQ(raw.stream(id).headers["grpc-status"], "4");
  // Shutdown returns once every call has left the handler pool.
  crpc_server_shutdown(server.get(), 0);
  EXPECT_EQ(started.load(), 0);
}

// Blocking handlers that wait for one another: the pool, which grows only
// when queued calls make no progress, still grows to run them all.
TEST_F(AsyncTest, BlockingPoolGrowsWhenHandlersWaitForEachOther) {
  constexpr int kN = 4;
  std::atomic<int> arrived{0};
  TestServer server;
  server.Add("/t.S/Meet", CRPC_UNARY,
             [&](crpc_server_call *call, const crpc_ctx *ctx) {
               arrived++;
               while (arrived.load() < kN) {
                 crpc_code c = crpc_ctx_sleep(ctx, kMs);
                 if (c != CRPC_OK) return c;
               }
               return EchoOnce(call);
             });
  server.Start();
  Channel ch(server.target());
  std::atomic<int> ok{0};
  std::vector<std::thread> t;
  for (int i = 0; i < kN; i++) {
    t.emplace_back([&, i] {
      std::string req = "meet" + std::to_string(i);
      Reply r = Unary(ch, "/t.S/Meet", req);
      if (r.code == CRPC_OK && r.body == req) ok++;
    });
  }
  for (auto &th : t) th.join();
  EXPECT_EQ(ok.load(), kN);
  EXPECT_EQ(arrived.load(), kN);
}

// A reactor's own thread keeps sending while the client's connection
// drops. Each send_async that fails must fail with the cause's code
// (UNAVAILABLE: connection lost), with the ctx done by then, as
// crpc_server_call_send does (server_api.c waits for the ctx when it finds
// the call reset). The window it probes: scall_on_close marks the call
// reset under its mutex, then cancels the ctx outside it; a sender on
// another thread in between must wait for the cancel, not guess CANCELLED.
TEST_F(AsyncTest, SendAsyncFromThreadReturnsCauseWhenConnectionDrops) {
  constexpr int kTrials = 1000;
  struct Res {
    crpc_code rc;        // the failed send
    bool done;           // ctx done when it returned
    crpc_code eventual;  // the ctx's cause, once done
  };
  std::mutex mu;
  std::vector<Res> results;
  std::vector<std::thread> workers;
  Reactor r;
  r.message = [&](crpc_server_call *call, const crpc_message *msg, void *) {
    if (msg->end) return;
    std::lock_guard<std::mutex> l(mu);
    workers.emplace_back([&, call] {
      const crpc_ctx *ctx = crpc_server_call_ctx(call);
      std::string m(1024, 's');
      Res res{CRPC_OK, false, CRPC_OK};
      for (;;) {
        if (!crpc_server_call_can_send(call) && !crpc_ctx_is_done(ctx)) {
          continue;  // (never full: the buffer is huge) the call is ending
        }
        res.rc = crpc_server_call_send_async(call, m.data(), m.size(), 0);
        if (res.rc != CRPC_OK) {
          res.done = crpc_ctx_is_done(ctx);
          break;
        }
      }
      res.eventual = crpc_ctx_wait(ctx);
      {
        std::lock_guard<std::mutex> l2(mu);
        results.push_back(res);
      }
      crpc_server_call_finish(call, CRPC_OK, nullptr);
    });
  };
  crpc_server_options so{};
  so.stream_send_buffer = 256 * 1024 * 1024;  // can_send stays true
  TestServer server(&so);
  ASSERT_EQ(r.Register(server.get(), "/t.S/Spin", CRPC_SERVER_STREAMING),
            CRPC_OK);
  server.Start();
  Finally join([&] {
    crpc_server_shutdown(server.get(), 0);  // ends any call left
    std::lock_guard<std::mutex> l(mu);
    for (auto &t : workers) t.join();
    workers.clear();
  });
  for (int i = 0; i < kTrials; i++) {
    {
      RawClient raw(server.port());
      std::string body = Frame("go");
      int32_t id = raw.Request("/t.S/Spin", {}, &body);
      ASSERT_TRUE(
          raw.PumpUntil([&] { return !raw.stream(id).data.empty(); }, kWait));
    }  // the socket closes while the worker sends
    ASSERT_TRUE(r.WaitCount(Ev::kDone, i + 1));
    std::vector<std::thread> finished;
    {
      std::lock_guard<std::mutex> l(mu);
      finished.swap(workers);
    }
    for (auto &t : finished) t.join();
  }
  std::lock_guard<std::mutex> l(mu);
  ASSERT_EQ(results.size(), static_cast<size_t>(kTrials));
  int wrong_code = 0, not_done = 0;
  for (auto &x : results) {
    EXPECT_EQ(x.eventual, CRPC_UNAVAILABLE);
    wrong_code += x.rc != x.eventual;
    not_done += !x.done;
  }
  EXPECT_EQ(wrong_code, 0) << "sends that failed with another code than "
                              "the cause's (CANCELLED for UNAVAILABLE)";
  EXPECT_EQ(not_done, 0) << "sends that failed while the ctx was not done";
}

}  // namespace
}  // namespace crpc_test
