// Receive-side backpressure of async reactors (crpc/server_async.h,
// crpc_server_call_pause_recv / _resume_recv): while paused, nothing is
// delivered and HTTP/2 flow control holds the client; a resume from any
// thread delivers what waited, in order, then the rest; a paused call
// still gets on_cancel.
#include "rpc/server/async_test_util.h"

namespace crpc_test {
namespace {

constexpr size_t kChunk = 16 * 1024;

// Sends kChunk-byte messages ("<i>:" then filler) from a thread until
// `limit` are sent or a send fails, then half-closes.
struct Sender {
  std::atomic<int> sent{0};
  std::atomic<crpc_code> last{CRPC_OK};
  std::thread t;
  // Declared after the call it sends on, so it joins before the call is
  // freed; every call here has a deadline, so a held send cannot hang it.
  ~Sender() {
    if (t.joinable()) t.join();
  }
  void Run(crpc_call *call, int limit) {
    t = std::thread([this, call, limit] {
      crpc_code rc = CRPC_OK;
      for (int i = 0; i < limit && rc == CRPC_OK; i++) {
        std::string m = std::to_string(i) + ":";
        m.resize(kChunk, 'p');
        rc = crpc_call_send(call, m.data(), m.size());
        if (rc == CRPC_OK) sent++;
      }
      if (rc == CRPC_OK) rc = crpc_call_close_send(call);
      last = rc;
    });
  }
  // True once `sent` stopped moving for 300 ms (the sender is held).
  bool Stalled() {
    return WaitFor(
        [&] {
          int before = sent.load();
          std::this_thread::sleep_for(std::chrono::milliseconds(300));
          return before > 0 && sent.load() == before;
        },
        kWait);
  }
};

TEST_F(AsyncTest, PausedReactorHoldsTheClientAndResumeDeliversEverything) {
  constexpr int kTotal = 40;  // 640 KiB: ten stream windows
  std::atomic<crpc_server_call *> handle{nullptr};
  Reactor r;
  r.start = [&](crpc_server_call *call, const crpc_ctx *) -> void * {
    crpc_server_call_pause_recv(call);
    handle = call;
    return nullptr;
  };
  r.message = [](crpc_server_call *call, const crpc_message *msg, void *) {
    if (msg->end) crpc_server_call_finish(call, CRPC_OK, nullptr);
  };
  crpc_server_options opts{};
  opts.initial_stream_window_size = 64 * 1024;
  TestServer server(&opts);
  ASSERT_EQ(r.Register(server.get(), "/t.S/Collect", CRPC_CLIENT_STREAMING),
            CRPC_OK);
  server.Start();
  Channel ch(server.target());
  Ctx ctx(crpc_ctx_with_timeout(crpc_ctx_background(), kWait));
  CallPtr c;
  ASSERT_EQ(crpc_call_start(ch, ctx, "/t.S/Collect", nullptr, &c.c), CRPC_OK);
  Sender s;
  s.Run(c.c, kTotal);

  ASSERT_TRUE(s.Stalled()) << "the client never stopped sending";
  EXPECT_LT(s.sent.load(), kTotal);
  // Held by the stream window: what the client got out is at most that
  // window plus what its own send buffer takes.
  EXPECT_LE(static_cast<size_t>(s.sent.load()) * kChunk, 64u * 1024 * 8)
      << s.sent.load() << " messages sent while paused";
  EXPECT_EQ(r.Count(Ev::kMessage), 0) << "on_message while paused";

  crpc_server_call_resume_recv(handle.load());  // from this thread
  ASSERT_TRUE(r.WaitCount(Ev::kDone, 1));
  crpc_message m;
  ASSERT_EQ(crpc_call_recv(c.c, &m), CRPC_OK);
  EXPECT_TRUE(m.end);
  EXPECT_EQ(crpc_call_finish(c.c, nullptr), CRPC_OK);
  s.t.join();
  EXPECT_EQ(s.last.load(), CRPC_OK);
  EXPECT_EQ(s.sent.load(), kTotal);
  std::vector<std::string> got;
  for (auto &e : r.EventsOf(0)) {
    if (e.ev == Ev::kMessage) got.push_back(e.data.substr(0, e.data.find(':')));
  }
  ASSERT_EQ(got.size(), static_cast<size_t>(kTotal));
  for (int i = 0; i < kTotal; i++) EXPECT_EQ(got[i], std::to_string(i));
  EXPECT_EQ(r.Count(Ev::kEnd), 1);
  EXPECT_TRUE(r.Lifecycle(0));
}

// A reactor that pauses and resumes around every message (a bidi echo
// holding the client while its echoes drain) loses and reorders nothing.
TEST_F(AsyncTest, PauseAndResumeInsideCallbacksKeepOrder) {
  constexpr int kTotal = 200;
  Reactor r;
  r.message = [](crpc_server_call *call, const crpc_message *msg, void *) {
    if (msg->end) {
      crpc_server_call_finish(call, CRPC_OK, nullptr);
      return;
    }
    crpc_server_call_send_async(call, msg->data, msg->len, 0);
    crpc_server_call_pause_recv(call);
    crpc_server_call_resume_recv(call);  // delivers after this callback
  };
  TestServer server;
  ASSERT_EQ(r.Register(server.get(), "/t.S/Chat", CRPC_BIDI_STREAMING),
            CRPC_OK);
  server.Start();
  Channel ch(server.target());
  Ctx ctx(crpc_ctx_with_timeout(crpc_ctx_background(), kWait));
  CallPtr c;
  ASSERT_EQ(crpc_call_start(ch, ctx, "/t.S/Chat", nullptr, &c.c), CRPC_OK);
  for (int i = 0; i < kTotal; i++) {
    std::string req = std::to_string(i);
    ASSERT_EQ(crpc_call_send(c.c, req.data(), req.size()), CRPC_OK);
  }
  ASSERT_EQ(crpc_call_close_send(c.c), CRPC_OK);
  for (int i = 0; i < kTotal; i++) {
    crpc_message m;
    ASSERT_EQ(crpc_call_recv(c.c, &m), CRPC_OK) << i;
    ASSERT_FALSE(m.end) << i;
    EXPECT_EQ(Str(m), std::to_string(i));
    free(m.data);
  }
  crpc_message m;
  ASSERT_EQ(crpc_call_recv(c.c, &m), CRPC_OK);
  EXPECT_TRUE(m.end);
  EXPECT_EQ(crpc_call_finish(c.c, nullptr), CRPC_OK);
  ASSERT_TRUE(r.WaitCount(Ev::kDone, 1));
  EXPECT_TRUE(r.Lifecycle(0));
}

// Paused for good: the client's cancel still reaches the reactor, its
// held sends fail at once, and the queued messages are freed (the leak
// check and ASan see to that).
TEST_F(AsyncTest, PausedReactorStillGetsOnCancel) {
  Reactor r;
  r.start = [](crpc_server_call *call, const crpc_ctx *) -> void * {
    crpc_server_call_pause_recv(call);
    return nullptr;
  };
  r.cancel = [](crpc_server_call *call, const crpc_cause *cause, void *) {
    crpc_server_call_finish(call, cause->code, nullptr);
  };
  TestServer server;
  ASSERT_EQ(r.Register(server.get(), "/t.S/Stall", CRPC_CLIENT_STREAMING),
            CRPC_OK);
  server.Start();
  Channel ch(server.target());
  Ctx ctx(crpc_ctx_with_timeout(crpc_ctx_background(), kWait));
  CallPtr c;
  ASSERT_EQ(crpc_call_start(ch, ctx, "/t.S/Stall", nullptr, &c.c), CRPC_OK);
  Sender s;
  s.Run(c.c, 1 << 20);
  ASSERT_TRUE(s.Stalled());
  crpc_ctx_cancel(ctx, CRPC_CANCELLED, "gives up");
  ASSERT_TRUE(r.WaitCount(Ev::kDone, 1));
  Event cancel = r.First(Ev::kCancel);
  EXPECT_EQ(cancel.code, CRPC_CANCELLED);
  EXPECT_EQ(cancel.origin, CRPC_ORIGIN_PEER_RESET);
  EXPECT_EQ(r.Count(Ev::kMessage), 0);
  EXPECT_TRUE(r.Lifecycle(0));
  s.t.join();
  EXPECT_EQ(s.last.load(), CRPC_CANCELLED);
}

}  // namespace
}  // namespace crpc_test
