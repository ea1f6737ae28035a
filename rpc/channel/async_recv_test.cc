// Receive-side backpressure of async client calls (crpc/channel_async.h,
// crpc_call_pause_recv / _resume_recv) against a real crpc server: while
// paused nothing is delivered and HTTP/2 flow control holds the server;
// the status waits behind the messages held; a resume from any thread
// delivers everything in order; the ctx still ends a paused call.
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include "crpc/channel_async.h"
#include "rpc/channel/test_util.h"

using namespace crpc_test;

namespace {

constexpr int64_t kWait = 10 * CRPC_SECOND;
constexpr size_t kChunk = 16 * 1024;

// A streaming reactor that pauses itself at its first message and records
// everything on the loop thread; the test thread waits on it.
struct Recorder {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> got;  // each message's text up to ':'
  bool done = false;
  crpc_code code = CRPC_UNKNOWN;

  static void OnMessage(crpc_call *call, const crpc_message *msg, void *ud) {
    auto *r = static_cast<Recorder *>(ud);
    std::string s = Str(*msg);
    std::lock_guard<std::mutex> l(r->mu);
    if (r->got.empty()) crpc_call_pause_recv(call);
    r->got.push_back(s.substr(0, s.find(':')));
    r->cv.notify_all();
  }
  static void OnDone(crpc_call *, const crpc_status *st, void *ud) {
    auto *r = static_cast<Recorder *>(ud);
    std::lock_guard<std::mutex> l(r->mu);
    r->done = true;
    r->code = st->code;
    r->cv.notify_all();
  }
  size_t Count() {
    std::lock_guard<std::mutex> l(mu);
    return got.size();
  }
  bool Done() {
    std::lock_guard<std::mutex> l(mu);
    return done;
  }
  bool WaitDone() {
    std::unique_lock<std::mutex> l(mu);
    return cv.wait_for(l, std::chrono::nanoseconds(kWait), [&] { return done; });
  }
};

const crpc_call_reactor kRecorder = {Recorder::OnMessage, nullptr, Recorder::OnDone};

// Starts an async server-streaming call whose request is empty.
crpc_call *StartStream(crpc_channel *ch, const crpc_ctx *ctx, const char *method,
                       Recorder *r) {
  crpc_call *call = nullptr;
  EXPECT_EQ(CRPC_OK,
            crpc_call_start_async(ch, ctx, method, nullptr, nullptr, &kRecorder, r, &call));
  if (call == nullptr) return nullptr;
  EXPECT_EQ(CRPC_OK, crpc_call_send_async(call, "", 0, 0));
  EXPECT_EQ(CRPC_OK, crpc_call_close_send(call));
  return call;
}

class AsyncRecvTest : public LeakCheckTest {
 protected:
  void SetUp() override {
    LeakCheckTest::SetUp();
    srv_ = std::make_unique<TestServer>();
    // kChunk-byte messages "<i>:..." flat out, `total` of them (0: until
    // a send fails); counts what it got out.
    auto flood = [this](crpc_server_call *c, int total) {
      crpc_message m;
      crpc_code code = crpc_server_call_recv(c, &m);
      free(m.data);
      for (int i = 0; code == CRPC_OK && (total == 0 || i < total); i++) {
        std::string msg = std::to_string(i) + ":";
        msg.resize(kChunk, 'f');
        code = crpc_server_call_send(c, msg.data(), msg.size());
        if (code == CRPC_OK) sent_++;
      }
      returned_ = true;
      return code;
    };
    srv_->Add("/t.S/Forty", CRPC_SERVER_STREAMING,
              [flood](crpc_server_call *c, const crpc_ctx *) { return flood(c, 40); });
    srv_->Add("/t.S/Endless", CRPC_SERVER_STREAMING,
              [flood](crpc_server_call *c, const crpc_ctx *) { return flood(c, 0); });
    srv_->Add("/t.S/Three", CRPC_SERVER_STREAMING, [this](crpc_server_call *c, const crpc_ctx *) {
      crpc_message m;
      crpc_code code = crpc_server_call_recv(c, &m);
      free(m.data);
      for (int i = 0; code == CRPC_OK && i < 3; i++) {
        std::string msg = std::to_string(i) + ":";
        code = crpc_server_call_send(c, msg.data(), msg.size());
      }
      returned_ = true;
      return code;
    });
    srv_->Start();
    crpc_channel_options opts{};
    opts.initial_stream_window_size = 64 * 1024;
    ch_ = crpc_channel_new(srv_->target().c_str(), &opts);
    ASSERT_NE(ch_, nullptr);
  }
  void TearDown() override {
    crpc_channel_free(ch_);
    srv_.reset();
    LeakCheckTest::TearDown();
  }
  // True once the server's sent count stopped moving for 300 ms.
  bool ServerStalled() {
    return WaitFor(
        [&] {
          int before = sent_.load();
          std::this_thread::sleep_for(std::chrono::milliseconds(300));
          return before > 0 && sent_.load() == before;
        },
        kWait);
  }

  std::unique_ptr<TestServer> srv_;
  crpc_channel *ch_ = nullptr;
  std::atomic<int> sent_{0};
  std::atomic<bool> returned_{false};
};

TEST_F(AsyncRecvTest, PausedCallHoldsTheServerAndResumeDeliversEverything) {
  Recorder r;
  Ctx ctx(crpc_ctx_with_timeout(crpc_ctx_background(), kWait));
  crpc_call *call = StartStream(ch_, ctx, "/t.S/Forty", &r);
  ASSERT_NE(call, nullptr);
  ASSERT_TRUE(ServerStalled()) << "the server never stopped sending";
  EXPECT_LT(sent_.load(), 40);
  EXPECT_EQ(r.Count(), 1u) << "on_message while paused";
  EXPECT_FALSE(r.Done());
  crpc_call_resume_recv(call);  // from the test thread
  ASSERT_TRUE(r.WaitDone());
  EXPECT_EQ(r.code, CRPC_OK);
  ASSERT_EQ(r.got.size(), 40u);
  for (int i = 0; i < 40; i++) EXPECT_EQ(r.got[i], std::to_string(i));
  crpc_call_free(call);
}

// The server has finished (its status is in) while the client holds its
// messages: on_done waits for them, and none is lost.
TEST_F(AsyncRecvTest, StatusWaitsBehindTheMessagesHeld) {
  Recorder r;
  Ctx ctx(crpc_ctx_with_timeout(crpc_ctx_background(), kWait));
  crpc_call *call = StartStream(ch_, ctx, "/t.S/Three", &r);
  ASSERT_NE(call, nullptr);
  ASSERT_TRUE(WaitFor([&] { return returned_.load() && r.Count() == 1; }, kWait));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the status arrives
  EXPECT_FALSE(r.Done()) << "on_done overtook messages held";
  EXPECT_EQ(r.Count(), 1u);
  crpc_call_resume_recv(call);
  ASSERT_TRUE(r.WaitDone());
  EXPECT_EQ(r.code, CRPC_OK);
  EXPECT_EQ(r.got, (std::vector<std::string>{"0", "1", "2"}));
  crpc_call_free(call);
}

// Paused for good: the ctx still ends the call (the held messages are
// dropped, as a cancel always drops them) and the server's blocked send
// returns.
TEST_F(AsyncRecvTest, CancelEndsAPausedCall) {
  Recorder r;
  Ctx ctx(crpc_ctx_with_timeout(crpc_ctx_background(), kWait));
  crpc_call *call = StartStream(ch_, ctx, "/t.S/Endless", &r);
  ASSERT_NE(call, nullptr);
  ASSERT_TRUE(ServerStalled());
  crpc_ctx_cancel(ctx, CRPC_CANCELLED, "gives up");
  ASSERT_TRUE(r.WaitDone());
  EXPECT_EQ(r.code, CRPC_CANCELLED);
  EXPECT_EQ(r.Count(), 1u);
  EXPECT_TRUE(WaitFor([&] { return returned_.load(); }, kWait)) << "the server's send never returned";
  crpc_call_free(call);
}

}  // namespace
