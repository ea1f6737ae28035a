// Async (loop-thread) server methods, crpc/server_async.h, end to end:
// inline unary handlers (status, messages, metadata, a missing request),
// reactors with send backpressure, cancellation while a send is pending,
// a deadline fired by the call's loop while that loop is busy
// (arrival_test.cc: counted from the request's arrival), and work
// offloaded to a thread of the reactor's own that outlives the client.
// async_dispatch_test.cc has the rest. Real sockets; every test ends with
// the ctx count back at its start (LeakCheckTest).
#include "rpc/server/async_test_util.h"

namespace crpc_test {
namespace {


// ---- 1. inline unary -------------------------------------------------------

// The reply, the response headers and the trailers of an inline handler
// reach the client; the handler runs on a loop thread, not a handler
// thread.
TEST_F(AsyncTest, InlineUnaryRepliesWithMetadata) {
  UnaryAsync echo([](crpc_server_call *call, const crpc_ctx *ctx,
                     const crpc_message *req) -> crpc_code {
    if (crpc_ctx_is_done(ctx)) return CRPC_INTERNAL;
    crpc_metadata_add_str(crpc_server_call_response_headers(call), "x-head",
                          "h1");
    crpc_metadata_add_str(crpc_server_call_trailers(call), "x-trail", "t1");
    std::string reply = "echo:" + View(req);
    return crpc_server_call_send_async(call, reply.data(), reply.size(), 0);
  });
  TestServer server;
  ASSERT_EQ(echo.Register(server.get(), "/t.S/Echo"), CRPC_OK);
  server.Start();
  Channel ch(server.target());

  Reply r = Unary(ch, "/t.S/Echo", "hello");
  EXPECT_EQ(r.code, CRPC_OK) << r.message;
  EXPECT_EQ(r.body, "echo:hello");
  EXPECT_EQ(r.trailer, "t1");

  // Step by step, to see the response headers apart from the trailers.
  Ctx ctx(crpc_ctx_with_timeout(crpc_ctx_background(), kWait));
  CallPtr c;
  ASSERT_EQ(crpc_call_start(ch, ctx, "/t.S/Echo", nullptr, &c.c), CRPC_OK);
  ASSERT_EQ(crpc_call_send(c.c, "hi", 2), CRPC_OK);
  ASSERT_EQ(crpc_call_close_send(c.c), CRPC_OK);
  const crpc_metadata *head = crpc_call_response_headers(c.c);
  ASSERT_NE(head, nullptr);
  EXPECT_EQ(Get(head, "x-head"), "h1");
  EXPECT_EQ(Get(head, "x-trail"), "<none>");
  crpc_message m;
  ASSERT_EQ(crpc_call_recv(c.c, &m), CRPC_OK);
  ASSERT_FALSE(m.end);
  EXPECT_EQ(Str(m), "echo:hi");
  free(m.data);
  ASSERT_EQ(crpc_call_recv(c.c, &m), CRPC_OK);
  EXPECT_TRUE(m.end);
  crpc_status st{};
  EXPECT_EQ(crpc_call_finish(c.c, &st), CRPC_OK);
  EXPECT_EQ(Get(st.trailers, "x-trail"), "t1");
  EXPECT_EQ(Get(st.trailers, "x-head"), "<none>");
  crpc_status_clear(&st);

  EXPECT_EQ(echo.calls(), 2);
  EXPECT_EQ(echo.thread_names(), std::set<std::string>{kLoopThread});
}

// An error status set with crpc_server_call_error reaches the client with
// its message and the handler's trailers (a trailers-only response).
TEST_F(AsyncTest, InlineUnaryErrorStatusWithMessage) {
  UnaryAsync fail([](crpc_server_call *call, const crpc_ctx *,
                     const crpc_message *req) -> crpc_code {
    crpc_metadata_add_str(crpc_server_call_trailers(call), "x-trail", "why");
    return crpc_server_call_error(call, CRPC_NOT_FOUND, "no %s here",
                                  View(req).c_str());
  });
  TestServer server;
  ASSERT_EQ(fail.Register(server.get(), "/t.S/Fail"), CRPC_OK);
  server.Start();
  Channel ch(server.target());
  Reply r = Unary(ch, "/t.S/Fail", "thing");
  EXPECT_EQ(r.code, CRPC_NOT_FOUND);
  EXPECT_EQ(r.message, "no thing here");
  EXPECT_EQ(r.trailer, "why");
  EXPECT_TRUE(r.body.empty());
  EXPECT_EQ(fail.calls(), 1);
}

// A unary call whose client half-closes without a message is answered
// INTERNAL; the handler never runs.
TEST_F(AsyncTest, InlineUnaryWithoutRequestIsInternal) {
  UnaryAsync never(
      [](crpc_server_call *call, const crpc_ctx *ctx, const crpc_message *req) {
        return EchoInline(call, ctx, req);
      });
  TestServer server;
  ASSERT_EQ(never.Register(server.get(), "/t.S/Never"), CRPC_OK);
  server.Start();
  Channel ch(server.target());
  Ctx ctx(crpc_ctx_with_timeout(crpc_ctx_background(), kWait));
  CallPtr c;
  ASSERT_EQ(crpc_call_start(ch, ctx, "/t.S/Never", nullptr, &c.c), CRPC_OK);
  ASSERT_EQ(crpc_call_close_send(c.c), CRPC_OK);
  crpc_message m;
  EXPECT_EQ(crpc_call_recv(c.c, &m), CRPC_INTERNAL);
  crpc_status st{};
  EXPECT_EQ(crpc_call_finish(c.c, &st), CRPC_INTERNAL);
  EXPECT_NE(std::string(st.message).find("request"), std::string::npos)
      << st.message;
  crpc_status_clear(&st);
  // The same method still works with a request: the handler was reachable.
  EXPECT_EQ(never.calls(), 0);
  Reply r = Unary(ch, "/t.S/Never", "x");
  EXPECT_EQ(r.code, CRPC_OK);
  EXPECT_EQ(never.calls(), 1);
}

// send_async's refusals: over max_send_message_size (nothing queued, a
// smaller message still goes), and a reserved response header (the call
// then ends INTERNAL whatever the handler returns).
TEST_F(AsyncTest, SendAsyncRefusesOversizedAndReservedHeaders) {
  std::atomic<int> big_rc{-1}, small_rc{-1}, reserved_rc{-1};
  UnaryAsync limited([&](crpc_server_call *call, const crpc_ctx *,
                         const crpc_message *) {
    std::string big(17, 'b'), small(16, 's');
    big_rc = crpc_server_call_send_async(call, big.data(), big.size(), 0);
    small_rc = crpc_server_call_send_async(call, small.data(), small.size(), 0);
    return CRPC_OK;
  });
  UnaryAsync reserved(
      [&](crpc_server_call *call, const crpc_ctx *, const crpc_message *) {
        crpc_metadata_add_str(crpc_server_call_response_headers(call),
                              "content-type", "text/plain");
        reserved_rc = crpc_server_call_send_async(call, "x", 1, 0);
        return CRPC_OK;
      });
  crpc_server_options o{};
  o.max_send_message_size = 16;
  TestServer server(&o);
  ASSERT_EQ(limited.Register(server.get(), "/t.S/Limited"), CRPC_OK);
  ASSERT_EQ(reserved.Register(server.get(), "/t.S/Reserved"), CRPC_OK);
  server.Start();
  Channel ch(server.target());
  Reply r = Unary(ch, "/t.S/Limited", "x");
  EXPECT_EQ(big_rc.load(), CRPC_RESOURCE_EXHAUSTED);
  EXPECT_EQ(small_rc.load(), CRPC_OK);
  EXPECT_EQ(r.code, CRPC_OK) << r.message;
  EXPECT_EQ(r.body, std::string(16, 's'));
  r = Unary(ch, "/t.S/Reserved", "x");
  EXPECT_EQ(reserved_rc.load(), CRPC_INTERNAL);
  EXPECT_EQ(r.code, CRPC_INTERNAL) << r.message;
}

// ---- reactor basics ---------------------------------------------------------

// Bidi echo through a reactor; finish's message wins over
// crpc_server_call_error's, and error's is used when finish gives none.
TEST_F(AsyncTest, ReactorBidiEchoAndFinishMessage) {
  Reactor bidi;
  bidi.message = [](crpc_server_call *call, const crpc_message *msg, void *) {
    if (msg->end) {
      crpc_server_call_finish(call, CRPC_OK, nullptr);
      return;
    }
    std::string reply = "re:" + View(msg);
    crpc_server_call_send_async(call, reply.data(), reply.size(), 0);
  };
  Reactor both, error_only;
  both.message = [](crpc_server_call *call, const crpc_message *msg, void *) {
    if (msg->end) return;
    crpc_server_call_error(call, CRPC_ABORTED, "from error");
    crpc_server_call_finish(call, CRPC_ABORTED, "from finish");
  };
  error_only.message = [](crpc_server_call *call, const crpc_message *msg,
                          void *) {
    if (msg->end) return;
    crpc_server_call_finish(
        call, crpc_server_call_error(call, CRPC_ABORTED, "from error"),
        nullptr);
  };
  TestServer server;
  ASSERT_EQ(bidi.Register(server.get(), "/t.S/Bidi", CRPC_BIDI_STREAMING),
            CRPC_OK);
  ASSERT_EQ(both.Register(server.get(), "/t.S/Both", CRPC_UNARY), CRPC_OK);
  ASSERT_EQ(error_only.Register(server.get(), "/t.S/ErrorOnly", CRPC_UNARY),
            CRPC_OK);
  server.Start();
  Channel ch(server.target());
  {
    Ctx ctx(crpc_ctx_with_timeout(crpc_ctx_background(), kWait));
    CallPtr c;
    ASSERT_EQ(crpc_call_start(ch, ctx, "/t.S/Bidi", nullptr, &c.c), CRPC_OK);
    for (int i = 0; i < 3; i++) {
      std::string req = "m" + std::to_string(i);
      ASSERT_EQ(crpc_call_send(c.c, req.data(), req.size()), CRPC_OK);
      crpc_message m;
      ASSERT_EQ(crpc_call_recv(c.c, &m), CRPC_OK);
      ASSERT_FALSE(m.end);
      EXPECT_EQ(Str(m), "re:" + req);
      free(m.data);
    }
    ASSERT_EQ(crpc_call_close_send(c.c), CRPC_OK);
    crpc_message m;
    ASSERT_EQ(crpc_call_recv(c.c, &m), CRPC_OK);
    EXPECT_TRUE(m.end);
    EXPECT_EQ(crpc_call_finish(c.c, nullptr), CRPC_OK);
  }
  Reply r = Unary(ch, "/t.S/Both", "x");
  EXPECT_EQ(r.code, CRPC_ABORTED);
  EXPECT_EQ(r.message, "from finish");
  r = Unary(ch, "/t.S/ErrorOnly", "x");
  EXPECT_EQ(r.code, CRPC_ABORTED);
  EXPECT_EQ(r.message, "from error");

  ASSERT_TRUE(bidi.WaitCount(Ev::kDone, 1));
  ASSERT_TRUE(both.WaitCount(Ev::kDone, 1));
  ASSERT_TRUE(error_only.WaitCount(Ev::kDone, 1));
  EXPECT_TRUE(bidi.Lifecycle(0));
  EXPECT_TRUE(both.Lifecycle(0));
  EXPECT_TRUE(error_only.Lifecycle(0));
  std::vector<std::string> got;
  for (auto &e : bidi.EventsOf(0)) {
    if (e.ev == Ev::kMessage) got.push_back(e.data);
  }
  EXPECT_EQ(got, (std::vector<std::string>{"m0", "m1", "m2"}));
  EXPECT_EQ(bidi.Count(Ev::kEnd), 1);
  EXPECT_EQ(bidi.Count(Ev::kCancel), 0);
}

// ---- 2. server streaming with backpressure ----------------------------------

// A reactor sends while can_send says so and resumes in on_send_ready;
// the client reads slowly through a small stream window. Every message
// arrives, in order; on_send_ready was needed (the buffer fills within one
// callback, as nothing drains while the reactor runs on the loop).
TEST_F(AsyncTest, ServerStreamingBackpressureResumesOnSendReady) {
  constexpr int kN = 300;
  constexpr size_t kSize = 1000;
  struct St {
    int sent = 0;
    int blocked = 0;  // times can_send said false
  };
  std::atomic<int> blocked_total{0}, send_errors{0}, finished_calls{0};
  Reactor r;
  auto pump = [&](crpc_server_call *call, St *st) {
    while (st->sent < kN) {
      if (!crpc_server_call_can_send(call)) {
        st->blocked++;
        blocked_total++;
        return;  // on_send_ready follows once the buffer drains
      }
      std::string msg(kSize, static_cast<char>('a' + st->sent % 26));
      memcpy(&msg[0], &st->sent, sizeof(st->sent));
      if (crpc_server_call_send_async(call, msg.data(), msg.size(), 0) !=
          CRPC_OK) {
        send_errors++;
      }
      st->sent++;
    }
    finished_calls++;
    crpc_server_call_finish(call, CRPC_OK, nullptr);
  };
  r.start = [](crpc_server_call *, const crpc_ctx *) -> void * {
    return new St;
  };
  r.message = [&](crpc_server_call *call, const crpc_message *msg,
                  void *state) {
    if (!msg->end && View(msg) == "go") pump(call, static_cast<St *>(state));
  };
  r.send_ready = [&](crpc_server_call *call, void *state) {
    pump(call, static_cast<St *>(state));
  };
  r.done = [](crpc_server_call *, void *state) {
    delete static_cast<St *>(state);
  };
  crpc_server_options so{};
  so.stream_send_buffer = 8 * 1024;
  TestServer server(&so);
  ASSERT_EQ(r.Register(server.get(), "/t.S/Stream", CRPC_SERVER_STREAMING),
            CRPC_OK);
  server.Start();
  crpc_channel_options co{};
  co.initial_stream_window_size = 4096;
  Channel ch(server.target(), &co);

  Ctx ctx(crpc_ctx_with_timeout(crpc_ctx_background(), kWait * 3));
  CallPtr c;
  ASSERT_EQ(crpc_call_start(ch, ctx, "/t.S/Stream", nullptr, &c.c), CRPC_OK);
  ASSERT_EQ(crpc_call_send(c.c, "go", 2), CRPC_OK);
  ASSERT_EQ(crpc_call_close_send(c.c), CRPC_OK);
  int got = 0;
  bool in_order = true;
  for (;;) {
    crpc_message m;
    ASSERT_EQ(crpc_call_recv(c.c, &m), CRPC_OK);
    if (m.end) break;
    int idx = -1;
    if (m.len == kSize) memcpy(&idx, m.data, sizeof(idx));
    if (idx != got || m.data[kSize - 1] != 'a' + got % 26) in_order = false;
    free(m.data);
    got++;
    if (got % 25 == 0) usleep(2000);  // a slow reader
  }
  crpc_status st{};
  EXPECT_EQ(crpc_call_finish(c.c, &st), CRPC_OK) << st.message;
  crpc_status_clear(&st);
  EXPECT_EQ(got, kN);
  EXPECT_TRUE(in_order);

  ASSERT_TRUE(r.WaitCount(Ev::kDone, 1));
  EXPECT_GE(r.Count(Ev::kSendReady), 1);
  EXPECT_GE(blocked_total.load(), 1);
  EXPECT_EQ(send_errors.load(), 0);
  EXPECT_EQ(finished_calls.load(), 1);
  EXPECT_EQ(r.Count(Ev::kCancel), 0);
  EXPECT_EQ(r.Count(Ev::kDone), 1);
  EXPECT_TRUE(r.Lifecycle(0));
}

// ---- 3. cancel while a send is pending --------------------------------------

// The reactor has filled its send buffer (the client's 1 KiB stream window
// lets almost nothing out) and waits for on_send_ready. The client
// cancels: on_cancel comes once (CANCELLED, peer reset), sends fail at once
// with CANCELLED from the loop and from another thread, on_send_ready
// never comes after on_cancel, and on_done follows the reactor's finish.
TEST_F(AsyncTest, ClientCancelWhileSendPending) {
  std::atomic<int> blocked{0};
  std::atomic<int> cancel_send_rc{-1};
  std::atomic<bool> cancel_can_send{true};
  std::mutex fin_mu;
  bool finished = false, tearing_down = false;
  crpc_server_call *handle = nullptr;  // valid until on_done
  auto finish_once = [&](crpc_server_call *call) {
    // Caller holds fin_mu.
    if (finished) return;
    finished = true;
    crpc_server_call_finish(call, CRPC_OK, nullptr);
  };
  std::string big(20 * 1024, 'z');
  Reactor r;
  auto fill = [&](crpc_server_call *call) {
    while (crpc_server_call_can_send(call)) {
      crpc_server_call_send_async(call, big.data(), big.size(), 0);
    }
    blocked++;
  };
  r.message = [&](crpc_server_call *call, const crpc_message *msg, void *) {
    if (msg->end) return;
    {
      std::lock_guard<std::mutex> l(fin_mu);
      handle = call;
    }
    fill(call);
  };
  r.send_ready = [&](crpc_server_call *call, void *) { fill(call); };
  r.cancel = [&](crpc_server_call *call, const crpc_cause *, void *) {
    cancel_send_rc = crpc_server_call_send_async(call, "x", 1, 0);
    cancel_can_send = crpc_server_call_can_send(call);
    std::lock_guard<std::mutex> l(fin_mu);
    if (tearing_down) finish_once(call);  // the test failed early
  };
  crpc_server_options so{};
  so.stream_send_buffer = 16 * 1024;
  TestServer server(&so);
  ASSERT_EQ(r.Register(server.get(), "/t.S/Fill", CRPC_SERVER_STREAMING),
            CRPC_OK);
  server.Start();
  // If an ASSERT below fails: finish the call so the server can shut down.
  Finally cleanup([&] {
    std::lock_guard<std::mutex> l(fin_mu);
    tearing_down = true;
    if (handle != nullptr && r.Count(Ev::kCancel) > 0) finish_once(handle);
  });
  crpc_channel_options co{};
  co.initial_stream_window_size = 1024;
  Channel ch(server.target(), &co);

  Ctx ctx(crpc_ctx_with_cancel(crpc_ctx_background()));
  CallPtr c;
  ASSERT_EQ(crpc_call_start(ch, ctx, "/t.S/Fill", nullptr, &c.c), CRPC_OK);
  ASSERT_EQ(crpc_call_send(c.c, "go", 2), CRPC_OK);
  ASSERT_EQ(crpc_call_close_send(c.c), CRPC_OK);
  ASSERT_TRUE(WaitFor([&] { return blocked.load() > 0; }, kWait));

  crpc_ctx_cancel(ctx, CRPC_CANCELLED, "client gives up");
  EXPECT_EQ(crpc_call_finish(c.c, nullptr), CRPC_CANCELLED);

  ASSERT_TRUE(r.WaitCount(Ev::kCancel, 1));
  Event cancel = r.First(Ev::kCancel);
  EXPECT_EQ(cancel.code, CRPC_CANCELLED) << cancel.data;
  EXPECT_EQ(cancel.origin, CRPC_ORIGIN_PEER_RESET) << cancel.data;
  EXPECT_EQ(cancel_send_rc.load(), CRPC_CANCELLED);
  EXPECT_FALSE(cancel_can_send.load());

  // From another thread, before finish: refused at once, nothing queued.
  crpc_server_call *call;
  {
    std::lock_guard<std::mutex> l(fin_mu);
    call = handle;
  }
  ASSERT_NE(call, nullptr);
  int64_t t0 = crpc_now_ns();
  EXPECT_EQ(crpc_server_call_send_async(call, big.data(), big.size(), 0),
            CRPC_CANCELLED);
  EXPECT_LT(crpc_now_ns() - t0, 500 * kMs);
  EXPECT_FALSE(crpc_server_call_can_send(call));
  EXPECT_EQ(crpc_ctx_err(crpc_server_call_ctx(call)), CRPC_CANCELLED);
  usleep(20000);  // room for a wrong on_send_ready to show up
  EXPECT_EQ(r.Count(Ev::kDone), 0);  // not before finish
  {
    std::lock_guard<std::mutex> l(fin_mu);
    finish_once(call);
  }
  ASSERT_TRUE(r.WaitCount(Ev::kDone, 1));
  EXPECT_EQ(r.Count(Ev::kCancel), 1);
  EXPECT_EQ(r.Count(Ev::kDone), 1);
  EXPECT_TRUE(r.Lifecycle(0));  // includes: no on_send_ready after on_cancel
}

// ---- 4. a deadline on a busy loop -------------------------------------------

// One loop thread, kept busy by a stream of inline unary calls from three
// client threads on one connection. A call on another connection carries
// grpc-timeout 50m and a reactor that never finishes by itself: the
// call's loop timer cancels it (DEADLINE_EXCEEDED, origin deadline), not
// before its deadline and less than a second after, and the client gets
// DEADLINE_EXCEEDED. (The raw client has no deadline of its own, so no
// client RST_STREAM races the server's timer.)
TEST_F(AsyncTest, DeadlineFiresOnBusyLoop) {
  UnaryAsync echo(EchoInline);
  std::atomic<int64_t> deadline{0};
  Reactor hang;
  hang.start = [&](crpc_server_call *, const crpc_ctx *ctx) -> void * {
    deadline = crpc_ctx_deadline(ctx);
    return nullptr;
  };
  hang.cancel = [](crpc_server_call *call, const crpc_cause *, void *) {
    crpc_server_call_finish(call, CRPC_OK, nullptr);  // the cause wins
  };
  crpc_server_options so{};
  so.loop_threads = 1;
  TestServer server(&so);
  ASSERT_EQ(echo.Register(server.get(), "/t.S/Echo"), CRPC_OK);
  ASSERT_EQ(hang.Register(server.get(), "/t.S/Hang", CRPC_UNARY), CRPC_OK);
  server.Start();

  Channel busy_ch(server.target());
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, bad{0};
  std::vector<std::thread> busy;
  Finally join([&] {
    stop = true;
    for (auto &t : busy) t.join();
  });
  for (int i = 0; i < 3; i++) {
    busy.emplace_back([&, i] {
      for (int n = 0; !stop.load(); n++) {
        std::string req = std::to_string(i) + ":" + std::to_string(n);
        Reply r = Unary(busy_ch, "/t.S/Echo", req);
        (r.code == CRPC_OK && r.body == req ? ok : bad)++;
      }
    });
  }
  ASSERT_TRUE(WaitFor([&] { return ok.load() >= 30; }, kWait));

  RawClient raw(server.port());
  std::string body = Frame("x");
  int64_t sent = crpc_now_ns();
  int32_t id = raw.Request("/t.S/Hang", {{"grpc-timeout", "50m"}}, &body);
  ASSERT_GT(id, 0);
  ASSERT_TRUE(raw.PumpUntil([&] { return raw.stream(id).closed; }, kWait));
  EXPECT_EQ(raw.stream(id).headers["grpc-status"], "4");

  ASSERT_TRUE(hang.WaitCount(Ev::kDone, 1));
  Event cancel = hang.First(Ev::kCancel);
  EXPECT_EQ(cancel.code, CRPC_DEADLINE_EXCEEDED) << cancel.data;
  EXPECT_EQ(cancel.origin, CRPC_ORIGIN_DEADLINE) << cancel.data;
  ASSERT_NE(deadline.load(), CRPC_NO_DEADLINE);
  EXPECT_GE(deadline.load(), sent + 50 * kMs);  // counted from receipt
  EXPECT_GE(cancel.t, deadline.load());         // never early
  EXPECT_LT(cancel.t - deadline.load(), 1000 * kMs)
      << "deadline fired " << (cancel.t - deadline.load()) / kMs << " ms late";
  EXPECT_TRUE(hang.Lifecycle(0));
  int before = ok.load();
  // The load went on through the deadline call and still does.
  EXPECT_TRUE(WaitFor([&] { return ok.load() > before; }, kWait));
  stop = true;
  for (auto &t : busy) t.join();
  busy.clear();
  EXPECT_EQ(bad.load(), 0);
}

// ---- 5. offload to a thread of the reactor's own ----------------------------

// on_message hands the call to a std::thread. "happy": the thread replies
// after a while and finishes. "wait": it waits until the client has gone
// (its ctx is done and the test has seen on_cancel), then sends (refused
// with the cause's code) and finishes.
class Offload {
 public:
  struct Result {
    crpc_code send_rc = CRPC_UNKNOWN;
    bool can_send = true;
    bool finish_called = false;
  };

  Offload() {
    r_.start = [](crpc_server_call *, const crpc_ctx *) -> void * {
      return new std::string;
    };
    r_.message = [this](crpc_server_call *call, const crpc_message *msg,
                        void *state) {
      if (msg->end) return;
      auto *req = static_cast<std::string *>(state);
      *req = View(msg);  // the view dies with the callback: copy
      std::lock_guard<std::mutex> l(mu_);
      workers_.emplace_back(&Offload::Work, this, call, *req);
    };
    r_.done = [this](crpc_server_call *, void *state) {
      {
        std::lock_guard<std::mutex> l(mu_);
        done_after_finish_ += finishes_ > 0;
      }
      delete static_cast<std::string *>(state);
    };
    server_ = std::make_unique<TestServer>();
    EXPECT_EQ(r_.Register(server_->get(), "/t.S/Offload", CRPC_UNARY), CRPC_OK);
    server_->Start();
  }
  ~Offload() {
    Release();
    JoinWorkers();
    server_.reset();
  }

  TestServer &server() { return *server_; }
  Reactor &reactor() { return r_; }
  void Release() { go_ = true; }
  void JoinWorkers() {
    std::vector<std::thread> w;
    {
      std::lock_guard<std::mutex> l(mu_);
      w.swap(workers_);
    }
    for (auto &t : w) t.join();
  }
  Result result() {
    std::lock_guard<std::mutex> l(mu_);
    return result_;
  }
  int done_after_finish() {
    std::lock_guard<std::mutex> l(mu_);
    return done_after_finish_;
  }

 private:
  void Work(crpc_server_call *call, std::string req) {
    const crpc_ctx *ctx = crpc_server_call_ctx(call);
    Result res;
    if (req == "happy") {
      crpc_ctx_sleep(ctx, 20 * kMs);
      std::string reply = "done:" + req;
      res.send_rc =
          crpc_server_call_send_async(call, reply.data(), reply.size(), 0);
    } else {
      crpc_ctx_wait(ctx);  // the client has gone
      while (!go_.load()) usleep(1000);
      res.send_rc = crpc_server_call_send_async(call, "late", 4, 0);
      res.can_send = crpc_server_call_can_send(call);
    }
    res.finish_called = true;
    {
      std::lock_guard<std::mutex> l(mu_);
      result_ = res;
      finishes_++;
    }
    crpc_server_call_finish(call, CRPC_OK, nullptr);  // call is off-limits now
  }

  Reactor r_;
  std::mutex mu_;
  std::vector<std::thread> workers_;
  std::atomic<bool> go_{false};
  Result result_;
  int finishes_ = 0, done_after_finish_ = 0;
  std::unique_ptr<TestServer> server_;
};

TEST_F(AsyncTest, OffloadReplyFromAnotherThread) {
  Offload off;
  Channel ch(off.server().target());
  Reply r = Unary(ch, "/t.S/Offload", "happy");
  EXPECT_EQ(r.code, CRPC_OK) << r.message;
  EXPECT_EQ(r.body, "done:happy");
  ASSERT_TRUE(off.reactor().WaitCount(Ev::kDone, 1));
  off.JoinWorkers();
  EXPECT_EQ(off.result().send_rc, CRPC_OK);
  EXPECT_EQ(off.done_after_finish(), 1);
  EXPECT_EQ(off.reactor().Count(Ev::kCancel), 0);
  EXPECT_TRUE(off.reactor().Lifecycle(0));
}

TEST_F(AsyncTest, OffloadFinishesAfterClientCancelled) {
  Offload off;
  Channel ch(off.server().target());
  size_t base = crpc_ctx_live_count();
  {
    Ctx ctx(crpc_ctx_with_cancel(crpc_ctx_background()));
    CallPtr c;
    ASSERT_EQ(crpc_call_start(ch, ctx, "/t.S/Offload", nullptr, &c.c), CRPC_OK);
    ASSERT_EQ(crpc_call_send(c.c, "wait", 4), CRPC_OK);
    ASSERT_EQ(crpc_call_close_send(c.c), CRPC_OK);
    ASSERT_TRUE(off.reactor().WaitCount(Ev::kMessage, 1));
    crpc_ctx_cancel(ctx, CRPC_CANCELLED, "client leaves");
    EXPECT_EQ(crpc_call_finish(c.c, nullptr), CRPC_CANCELLED);
  }
  ASSERT_TRUE(off.reactor().WaitCount(Ev::kCancel, 1));
  Event cancel = off.reactor().First(Ev::kCancel);
  EXPECT_EQ(cancel.code, CRPC_CANCELLED) << cancel.data;
  EXPECT_EQ(cancel.origin, CRPC_ORIGIN_PEER_RESET) << cancel.data;
  EXPECT_EQ(off.reactor().Count(Ev::kDone), 0);  // the reactor owes finish
  off.Release();
  ASSERT_TRUE(off.reactor().WaitCount(Ev::kDone, 1));
  off.JoinWorkers();
  Offload::Result res = off.result();
  EXPECT_TRUE(res.finish_called);
  EXPECT_EQ(res.send_rc, CRPC_CANCELLED);
  EXPECT_FALSE(res.can_send);
  EXPECT_EQ(off.done_after_finish(), 1);
  EXPECT_TRUE(off.reactor().Lifecycle(0));
  // The server call's ctx goes with the call, the client's with its call.
  EXPECT_TRUE(WaitFor([&] { return crpc_ctx_live_count() == base; }, kWait))
      << crpc_ctx_live_count() << " live, " << base << " at the start";
}

// The client vanishes without a RST_STREAM (its connection closes): the
// cause is UNAVAILABLE / connection lost, and the late send says so.
TEST_F(AsyncTest, OffloadFinishesAfterConnectionLost) {
  Offload off;
  size_t base = crpc_ctx_live_count();
  {
    RawClient raw(off.server().port());
    std::string body = Frame("wait");
    ASSERT_GT(raw.Request("/t.S/Offload", {}, &body), 0);
    ASSERT_TRUE(raw.PumpUntil(
        [&] { return off.reactor().Count(Ev::kMessage) > 0; }, kWait));
  }  // closes the socket
  ASSERT_TRUE(off.reactor().WaitCount(Ev::kCancel, 1));
  Event cancel = off.reactor().First(Ev::kCancel);
  EXPECT_EQ(cancel.code, CRPC_UNAVAILABLE) << cancel.data;
  EXPECT_EQ(cancel.origin, CRPC_ORIGIN_CONNECTION_LOST) << cancel.data;
  off.Release();
  ASSERT_TRUE(off.reactor().WaitCount(Ev::kDone, 1));
  off.JoinWorkers();
  Offload::Result res = off.result();
  EXPECT_EQ(res.send_rc, CRPC_UNAVAILABLE);
  EXPECT_FALSE(res.can_send);
  EXPECT_EQ(off.done_after_finish(), 1);
  EXPECT_TRUE(off.reactor().Lifecycle(0));
  EXPECT_TRUE(WaitFor([&] { return crpc_ctx_live_count() == base; }, kWait))
      << crpc_ctx_live_count() << " live, " << base << " at the start";
}

// ---- 6. on_start with the ctx already done ----------------------------------

// grpc-timeout 0n: the call ctx is born done at dispatch. on_start still
// runs (with the call and its ctx), then on_cancel (DEADLINE_EXCEEDED)
// and on_done, both with the state on_start returned; no on_message. An
// inline unary handler is not called at all. Both answer
// DEADLINE_EXCEEDED.
TEST_F(AsyncTest, OnStartRunsWhenCtxDoneAtDispatch) {
  struct St {
    int magic = 0x5eed;
    bool done_at_start = false;
  };
  std::atomic<int> bad_args{0}, bad_state{0}, done_at_start{0};
  Reactor late;
  late.start = [&](crpc_server_call *call, const crpc_ctx *ctx) -> void * {
    if (call == nullptr || ctx == nullptr ||
        crpc_server_call_ctx(call) != ctx) {
      bad_args++;
      return nullptr;
    }
    auto *st = new St;
    st->done_at_start = crpc_ctx_is_done(ctx);
    done_at_start += st->done_at_start;
    return st;
  };
  late.cancel = [&](crpc_server_call *call, const crpc_cause *, void *state) {
    if (state == nullptr || static_cast<St *>(state)->magic != 0x5eed) {
      bad_state++;
    }
    crpc_server_call_finish(call, CRPC_OK, nullptr);
  };
  late.done = [&](crpc_server_call *, void *state) {
    if (state == nullptr || static_cast<St *>(state)->magic != 0x5eed) {
      bad_state++;
    }
    delete static_cast<St *>(state);
  };
  UnaryAsync never(EchoInline);
  TestServer server;
  ASSERT_EQ(late.Register(server.get(), "/t.S/Late", CRPC_UNARY), CRPC_OK);
  ASSERT_EQ(never.Register(server.get(), "/t.S/Never"), CRPC_OK);
  server.Start();

  RawClient raw(server.port());
  std::string body = Frame("x");
  int32_t a = raw.Request("/t.S/Late", {{"grpc-timeout", "0n"}}, &body);
  ASSERT_TRUE(raw.PumpUntil([&] { return raw.stream(a).closed; }, kWait));
  EXPECT_EQ(raw.stream(a).headers["grpc-status"], "4");
  EXPECT_TRUE(raw.stream(a).data.empty());
  ASSERT_TRUE(late.WaitCount(Ev::kDone, 1));
  EXPECT_EQ(done_at_start.load(), 1);

  // Also with no request body at all (END_STREAM on HEADERS), and 1n.
  int32_t b = raw.Request("/t.S/Late", {{"grpc-timeout", "1n"}});
  ASSERT_TRUE(raw.PumpUntil([&] { return raw.stream(b).closed; }, kWait));
  EXPECT_EQ(raw.stream(b).headers["grpc-status"], "4");
  ASSERT_TRUE(late.WaitCount(Ev::kDone, 2));

  int32_t u = raw.Request("/t.S/Never", {{"grpc-timeout", "0n"}}, &body);
  ASSERT_TRUE(raw.PumpUntil([&] { return raw.stream(u).closed; }, kWait));
  EXPECT_EQ(raw.stream(u).headers["grpc-status"], "4");
  EXPECT_EQ(never.calls(), 0);

  EXPECT_EQ(bad_args.load(), 0);
  EXPECT_EQ(bad_state.load(), 0);
  for (int i = 0; i < 2; i++) {
    EXPECT_TRUE(late.Lifecycle(i));
    std::vector<Event> ev;
    for (auto &e : late.EventsOf(i)) {
      // 1n may (in theory) still be live at dispatch for a moment; then
      // the END_STREAM can be delivered before the deadline fires.
      if (i == 1 && e.ev == Ev::kEnd) continue;
      ev.push_back(e);
    }
    ASSERT_EQ(ev.size(), 3u) << "call " << i;
    EXPECT_EQ(ev[0].ev, Ev::kStart);
    EXPECT_EQ(ev[1].ev, Ev::kCancel);
    EXPECT_EQ(ev[1].code, CRPC_DEADLINE_EXCEEDED) << ev[1].data;
    EXPECT_EQ(ev[1].origin, CRPC_ORIGIN_DEADLINE) << ev[1].data;
    EXPECT_EQ(ev[2].ev, Ev::kDone);
  }
}

}  // namespace
}  // namespace crpc_test
