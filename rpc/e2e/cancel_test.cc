// Cancellation end to end over loopback, crpc client <-> crpc server: every
// row of DESIGN.md's wire-to-context table that involves both ends.
// Latencies are printed (p50/p99); only generous bounds are asserted.
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "rpc/e2e/cancel_probe.h"
#include "rpc/e2e/e2e_util.h"
#include "rpc/testing/peer.h"
#include "rpc/testing/tcp_proxy.h"

namespace crpc_e2e {
namespace {


// Generous bounds (2-core shared machine, sanitizers): correctness, not speed.
constexpr int64_t kPromptMs = 2000;

// The probe outlives the server (fixture members are destroyed after
// TearDown), so a handler still running when an assertion fails early never
// touches freed memory.
// Every test runs against blocking and async handlers: the test service's
// and the probe's.
class CancelTest : public BothHandlers<E2ETest> {
 protected:
  Probe probe;
};

// Starts method with a one-message request, half-closed.
Call StartCall(crpc_channel *ch, const crpc_ctx *ctx, const std::string &method,
               const std::string &req, const crpc_metadata *md = nullptr) {
  crpc_call *raw = nullptr;
  crpc_code rc = crpc_call_start(ch, ctx, method.c_str(), md, &raw);
  EXPECT_EQ(CRPC_OK, rc) << method;
  if (rc != CRPC_OK) return Call();
  EXPECT_EQ(CRPC_OK, crpc_call_send(raw, req.data(), req.size()));
  // A handler starts as soon as its request message is in, so a fast one
  // may end the call before the half-close: close_send then returns the
  // call's final code (channel.h), which the tests check through recv and
  // finish.
  (void)crpc_call_close_send(raw);
  return Call(raw);
}

std::string PeerOf(crpc_channel *ch) {
  Ctx ctx = WithTimeout(10 * kSec);
  UnaryResult r = Unary(ch, ctx.get(), "/crpc.e2e.Probe/Peer", "");
  EXPECT_EQ(CRPC_OK, r.code) << r.message;
  return r.response;
}

// ---- client cancel -----------------------------------------------------------

TEST_P(CancelTest, ClientCancel_ClientGetsCancelledAtOnce_ServerHandlerCtxDoneWithPeerReset) {
  Start(nullptr, [&](crpc_server *s) { AddProbeMethods(s, &probe, handlers_); });
  const int n = 200 / kSlow;
  std::vector<int64_t> to_server, to_client;
  for (int i = 0; i < n; i++) {
    probe.Reset();
    Ctx ctx = WithCancel();
    Call call = StartCall(channel_, ctx.get(), "/crpc.e2e.Probe/Idle", "x");
    ASSERT_TRUE(call);
    ASSERT_TRUE(probe.entered.WaitMs(5000)) << "handler never ran, call " << i;
    int64_t t0 = crpc_now_ns();
    crpc_ctx_cancel(ctx.get(), CRPC_CANCELLED, "test cancels");
    std::string m;
    crpc_code rc = Recv(call.get(), &m);
    int64_t t1 = crpc_now_ns();
    ASSERT_EQ(CRPC_CANCELLED, rc) << "call " << i;
    ASSERT_TRUE(probe.done.WaitMs(kPromptMs)) << "server ctx not done, call " << i;
    ASSERT_NE(0, probe.cancel_ns.load())
        << "on_cancel never ran; remove_on_cancel said " << probe.remove_state.load()
        << "; cause " << crpc_code_name(probe.cause.code) << "/"
        << crpc_origin_name(probe.cause.origin) << " call " << i;
    to_client.push_back(t1 - t0);
    to_server.push_back(probe.cancel_ns.load() - t0);
    {
      std::lock_guard<std::mutex> l(probe.mu);
      ASSERT_EQ(CRPC_CANCELLED, probe.cause.code) << probe.cause.message;
      ASSERT_EQ(CRPC_ORIGIN_PEER_RESET, probe.cause.origin)
          << crpc_origin_name(probe.cause.origin) << ": " << probe.cause.message;
      if (i == 0) printf("server cause: %s / %s / \"%s\"\n", crpc_code_name(probe.cause.code),
                         crpc_origin_name(probe.cause.origin), probe.cause.message);
    }
    Status st;
    EXPECT_EQ(CRPC_CANCELLED, crpc_call_finish(call.get(), st.get()));
  }
  Percentiles s = Summarise(to_server), c = Summarise(to_client);
  printf("client cancel -> server handler ctx done (idle), %zu calls: p50 %.0f us, p99 %.0f us, "
         "max %.0f us\n", s.n, s.p50, s.p99, s.max);
  printf("client cancel -> client recv returns CANCELLED, %zu calls: p50 %.0f us, p99 %.0f us\n",
         c.n, c.p50, c.p99);
  EXPECT_LT(s.p50, 50000.0);
  EXPECT_LT(c.p50, 50000.0);
}

TEST_P(CancelTest, ClientCancel_CallFreeWithoutFinish_ResetsServerCall) {
  Start(nullptr, [&](crpc_server *s) { AddProbeMethods(s, &probe, handlers_); });
  Ctx ctx = WithCancel();
  Call call = StartCall(channel_, ctx.get(), "/crpc.e2e.Probe/Idle", "x");
  ASSERT_TRUE(probe.entered.WaitMs(5000));
  call.reset();  // crpc_call_free on a live call: RST_STREAM
  ASSERT_TRUE(probe.done.WaitMs(kPromptMs)) << "freeing a live call did not reach the server";
  std::lock_guard<std::mutex> l(probe.mu);
  EXPECT_EQ(CRPC_CANCELLED, probe.cause.code);
  EXPECT_EQ(CRPC_ORIGIN_PEER_RESET, probe.cause.origin);
}

TEST_P(CancelTest, ClientCancelBeforeStart_CallNeverLeaves) {
  Start();
  Ctx ctx = WithCancel();
  crpc_ctx_cancel(ctx.get(), CRPC_CANCELLED, "too late");
  crpc_call *raw = nullptr;
  crpc_code rc = crpc_call_start(channel_, ctx.get(), M("Hang").c_str(), nullptr, &raw);
  Call call(raw);
  if (rc == CRPC_OK) {
    std::string m;
    EXPECT_EQ(CRPC_CANCELLED, Recv(call.get(), &m));
  } else {
    EXPECT_EQ(CRPC_CANCELLED, rc);
    EXPECT_EQ(nullptr, raw);
  }
  UnaryResult r = Unary(channel_, ctx.get(), M("Echo"), "x");
  EXPECT_EQ(CRPC_CANCELLED, r.code);
}

TEST_P(CancelTest, ParentCancel_ReachesCallThroughDerivedCtx) {
  Start(nullptr, [&](crpc_server *s) { AddProbeMethods(s, &probe, handlers_); });
  Ctx parent = WithCancel();
  Ctx child(crpc_ctx_with_timeout(parent.get(), 30 * kSec));
  Call call = StartCall(channel_, child.get(), "/crpc.e2e.Probe/Idle", "x");
  ASSERT_TRUE(probe.entered.WaitMs(5000));
  crpc_ctx_cancel(parent.get(), CRPC_CANCELLED, "parent");
  std::string m;
  EXPECT_EQ(CRPC_CANCELLED, Recv(call.get(), &m));
  EXPECT_TRUE(probe.done.WaitMs(kPromptMs));
}

// ---- deadlines ---------------------------------------------------------------

TEST_P(CancelTest, ClientDeadline_DeadlineExceededThoughServerNeverAnswers_ServerCtxExpiresToo) {
  Start(nullptr, [&](crpc_server *s) { AddProbeMethods(s, &probe, handlers_); });
  const int64_t timeout = 200 * kMs;
  int server_deadline = 0, server_reset = 0;
  std::vector<int64_t> lateness;
  const int rounds = 5;
  for (int i = 0; i < rounds; i++) {
    probe.Reset();
    Ctx ctx = WithTimeout(timeout);
    int64_t client_deadline = crpc_ctx_deadline(ctx.get());
    int64_t t0 = crpc_now_ns();
    UnaryResult r = Unary(channel_, ctx.get(), "/crpc.e2e.Probe/Idle", "x");
    int64_t t1 = crpc_now_ns();
    EXPECT_EQ(CRPC_DEADLINE_EXCEEDED, r.code) << r.message;
    EXPECT_GE(t1, client_deadline);
    EXPECT_LT(t1 - t0, timeout + kPromptMs * kMs);
    lateness.push_back(t1 - client_deadline);
    ASSERT_TRUE(probe.done.WaitMs(kPromptMs)) << "server ctx never ended";
    // grpc-timeout carried the deadline: the server's is the client's give
    // or take transit and encoding (rounded up by at most one unit).
    EXPECT_NE(CRPC_NO_DEADLINE, probe.deadline_ns) << "no grpc-timeout reached the server";
    EXPECT_LT(std::llabs(probe.deadline_ns - client_deadline), 50 * kMs)
        << "server deadline off by " << (probe.deadline_ns - client_deadline) / 1000 << " us";
    std::lock_guard<std::mutex> l(probe.mu);
    // The server's own timer and the client's RST_STREAM(CANCEL) race; both
    // are correct outcomes. Which one won is counted.
    if (probe.cause.code == CRPC_DEADLINE_EXCEEDED) {
      EXPECT_EQ(CRPC_ORIGIN_DEADLINE, probe.cause.origin);
      server_deadline++;
    } else {
      EXPECT_EQ(CRPC_CANCELLED, probe.cause.code) << probe.cause.message;
      EXPECT_EQ(CRPC_ORIGIN_PEER_RESET, probe.cause.origin);
      server_reset++;
    }
  }
  Percentiles p = Summarise(lateness);
  printf("client 200 ms deadline: DEADLINE_EXCEEDED late by p50 %.0f us (max %.0f us); server "
         "ctx ended by its own deadline %d/%d times, by the client's reset %d/%d\n",
         p.p50, p.max, server_deadline, rounds, server_reset, rounds);
}

TEST_P(CancelTest, ServerDeadline_FromGrpcTimeout_ExpiresWithoutClientHelp) {
  // nghttp (nghttp2-client) sends grpc-timeout but never resets the stream,
  // so only the server's own timer can end the handler's ctx.
  if (access("/usr/bin/nghttp", X_OK) != 0) GTEST_SKIP() << "nghttp not installed";
  Start(nullptr, [&](crpc_server *s) { AddProbeMethods(s, &probe, handlers_); });
  std::string body_path = std::string(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp") +
                          "/grpc-body-" + std::to_string(getpid());
  FILE *f = fopen(body_path.c_str(), "wb");
  ASSERT_NE(nullptr, f);
  const unsigned char frame[6] = {0, 0, 0, 0, 1, 'x'};
  fwrite(frame, 1, sizeof frame, f);
  fclose(f);
  int64_t t0 = crpc_now_ns();
  crpc_testing::ProcResult r = crpc_testing::RunProcess(
      {"/usr/bin/nghttp", "-v", "-d", body_path, "-H", "content-type: application/grpc", "-H",
       "te: trailers", "-H", "grpc-timeout: 150m",
       "http://127.0.0.1:" + std::to_string(port_) + "/crpc.e2e.Probe/Idle"},
      10000);
  unlink(body_path.c_str());
  ASSERT_TRUE(probe.done.WaitMs(kPromptMs)) << r.output;
  int64_t took = probe.cancel_ns.load() - t0;
  {
    std::lock_guard<std::mutex> l(probe.mu);
    EXPECT_EQ(CRPC_DEADLINE_EXCEEDED, probe.cause.code) << probe.cause.message;
    EXPECT_EQ(CRPC_ORIGIN_DEADLINE, probe.cause.origin) << crpc_origin_name(probe.cause.origin);
  }
  EXPECT_GE(took, 150 * kMs);
  EXPECT_LT(took, 150 * kMs + kPromptMs * kMs);
  EXPECT_FALSE(r.timed_out) << "server never ended the stream:\n" << r.output;
  // The client learns DEADLINE_EXCEEDED (trailers) or sees RST_STREAM(CANCEL).
  bool status4 = r.output.find("grpc-status: 4") != std::string::npos;
  bool rst = r.output.find("RST_STREAM") != std::string::npos;
  EXPECT_TRUE(status4 || rst) << r.output;
  EXPECT_NE(CRPC_NO_DEADLINE, probe.deadline_ns);
  printf("server-side deadline from grpc-timeout 150m: handler ctx done %.0f us after its "
         "deadline; wire: %s\n",
         static_cast<double>(probe.cancel_ns.load() - probe.deadline_ns) / 1e3,
         status4 ? "grpc-status 4" : "RST_STREAM");
}

TEST_P(CancelTest, ClientDeadline_MidServerStream_DeadlineExceededAndServerStops) {
  Start();
  std::string tag = Tag("deadline-stream");
  Md md = NewMd({{"x-tag", tag}});
  Ctx ctx = WithTimeout(200 * kMs);
  Call call = StartCall(channel_, ctx.get(), M("Count"), "0 32 2000", md.get());
  ASSERT_TRUE(call);
  int got = 0;
  crpc_code rc;
  for (;;) {
    std::string m;
    rc = Recv(call.get(), &m);
    if (rc != CRPC_OK) break;
    got++;
  }
  EXPECT_EQ(CRPC_DEADLINE_EXCEEDED, rc);
  EXPECT_GT(got, 0);
  auto rep = Report(tag);
  EXPECT_TRUE(rep["end"] == "DEADLINE_EXCEEDED" || rep["end"] == "CANCELLED") << rep["text"];
  EXPECT_EQ("0", rep["late"]) << rep["text"];
}

TEST_P(CancelTest, GrpcTimeout_NarrowsToTheCallersDeadline) {
  Start();
  std::string tag = Tag("timeout");
  Md md = NewMd({{"x-tag", tag}, {"x-sleep-ms", "1"}});
  Ctx outer = WithTimeout(3 * kSec);
  Ctx inner(crpc_ctx_with_timeout(outer.get(), 60 * kSec));  // cannot extend
  UnaryResult r = Unary(channel_, inner.get(), M("Echo"), "x", md.get());
  ASSERT_EQ(CRPC_OK, r.code) << r.message;
  auto rep = Report(tag);
  long ms = atol(rep["timeout_ms"].c_str());
  EXPECT_GT(ms, 2000) << rep["text"];
  EXPECT_LE(ms, 3000) << rep["text"];
}

// ---- server side errors and sends after cancel ----------------------------

TEST_P(CancelTest, ServerErrorMidStream_ClientRecvGetsIt) {
  Start();
  Md md = NewMd({{"x-status", "9"}, {"x-message", "stop here"}});
  Ctx ctx = WithTimeout(10 * kSec);
  Call call = StartCall(channel_, ctx.get(), M("Count"), "3 16 0", md.get());
  ASSERT_TRUE(call);
  for (int i = 0; i < 3; i++) {
    std::string m;
    ASSERT_EQ(CRPC_OK, Recv(call.get(), &m)) << i;
    EXPECT_EQ(std::string(16, static_cast<char>(i)), m);
  }
  std::string m;
  EXPECT_EQ(CRPC_FAILED_PRECONDITION, Recv(call.get(), &m));
  Status st;
  EXPECT_EQ(CRPC_FAILED_PRECONDITION, crpc_call_finish(call.get(), st.get()));
  EXPECT_EQ("stop here", st.message());
}

TEST_P(CancelTest, ServerErrorMidBidi_ClientRecvAndSendSeeIt) {
  Start();
  Md md = NewMd({{"x-status", "10"}, {"x-message", "aborted"}});
  Ctx ctx = WithTimeout(10 * kSec);
  crpc_call *raw = nullptr;
  ASSERT_EQ(CRPC_OK, crpc_call_start(channel_, ctx.get(), M("Chat").c_str(), md.get(), &raw));
  Call call(raw);
  ASSERT_EQ(CRPC_OK, crpc_call_send(call.get(), "a", 1));
  std::string m;
  ASSERT_EQ(CRPC_OK, Recv(call.get(), &m));
  ASSERT_EQ(CRPC_OK, crpc_call_close_send(call.get()));
  EXPECT_EQ(CRPC_ABORTED, Recv(call.get(), &m));
  Status st;
  EXPECT_EQ(CRPC_ABORTED, crpc_call_finish(call.get(), st.get()));
  EXPECT_EQ("aborted", st.message());
}

TEST_P(CancelTest, ServerKeepsSending_AfterClientCancel_NextSendCancelled_ClientGetsNothingMore) {
  Start(nullptr, [&](crpc_server *s) { AddProbeMethods(s, &probe, handlers_); });
  const int n = 50 / kSlow;
  std::vector<int64_t> to_server;
  int64_t late_total = 0;
  for (int i = 0; i < n; i++) {
    probe.Reset();
    Ctx ctx = WithCancel();
    Call call = StartCall(channel_, ctx.get(), "/crpc.e2e.Probe/Flood", "x");
    ASSERT_TRUE(call);
    for (int k = 0; k < 10; k++) {
      std::string m;
      ASSERT_EQ(CRPC_OK, Recv(call.get(), &m)) << "round " << i << " message " << k;
      ASSERT_EQ(1024u, m.size());
    }
    int64_t t0 = crpc_now_ns();
    crpc_ctx_cancel(ctx.get(), CRPC_CANCELLED, "enough");
    for (int k = 0; k < 3; k++) {  // nothing more arrives, ever
      std::string m;
      ASSERT_EQ(CRPC_CANCELLED, Recv(call.get(), &m)) << "round " << i;
    }
    ASSERT_TRUE(probe.done.WaitMs(kPromptMs)) << "handler kept sending, round " << i;
    if (probe.cancel_ns.load() != 0) to_server.push_back(probe.cancel_ns.load() - t0);
    std::lock_guard<std::mutex> l(probe.mu);
    EXPECT_EQ(CRPC_CANCELLED, probe.last_send) << crpc_code_name(probe.last_send);
    EXPECT_EQ(CRPC_ORIGIN_PEER_RESET, probe.cause.origin);
    EXPECT_EQ(0, probe.late) << "sends returned OK after the server learned of the cancel";
    late_total += probe.late;
  }
  Percentiles s = Summarise(to_server);
  printf("client cancel -> server handler ctx done (busy 1 KiB flood), %zu calls: p50 %.0f us, "
         "p99 %.0f us; sends OK after the server learned of the cancel: %lld\n",
         s.n, s.p50, s.p99, static_cast<long long>(late_total));
}

// channel.h: once the ctx is cancelled, every later function on the call
// returns the cause's code; messages already buffered are not delivered.
// The pause lets the channel's loop thread settle the reset stream first.
TEST_P(CancelTest, ClientCancel_BufferedResponsesDropped_LaterRecvReturnsCancelled) {
  Start(nullptr, [&](crpc_server *s) { AddProbeMethods(s, &probe, handlers_); });
  Ctx ctx = WithCancel();
  Call call = StartCall(channel_, ctx.get(), "/crpc.e2e.Probe/Flood", "x");
  ASSERT_TRUE(call);
  std::string m;
  ASSERT_EQ(CRPC_OK, Recv(call.get(), &m));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // buffers fill up
  crpc_ctx_cancel(ctx.get(), CRPC_CANCELLED, "enough");
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the reset settles
  int delivered = 0;
  crpc_code rc;
  while ((rc = Recv(call.get(), &m)) == CRPC_OK && delivered < 100000) delivered++;
  EXPECT_EQ(CRPC_CANCELLED, rc);
  EXPECT_EQ(0, delivered) << "recv handed out buffered messages after the ctx was cancelled";
  ASSERT_TRUE(probe.done.WaitMs(kPromptMs));
}

// Failure catalog line 11 (DESIGN.md): a send that fails because the client
// reset the stream must find the handler's ctx already done, so the handler
// can ask why.
TEST_P(CancelTest, ServerSendFailsAfterClientCancel_OnlyOnceHandlerCtxIsDoneWithCause) {
  Start(nullptr, [&](crpc_server *s) { AddProbeMethods(s, &probe, handlers_); });
  const int n = 200 / kSlow;
  int not_done = 0;
  std::string example;
  for (int i = 0; i < n; i++) {
    probe.Reset();
    Ctx ctx = WithCancel();
    Call call = StartCall(channel_, ctx.get(), "/crpc.e2e.Probe/Flood", "x");
    ASSERT_TRUE(call);
    std::string m;
    ASSERT_EQ(CRPC_OK, Recv(call.get(), &m));
    crpc_ctx_cancel(ctx.get(), CRPC_CANCELLED, "bye");
    ASSERT_TRUE(probe.done.WaitMs(kPromptMs + 1000));
    std::lock_guard<std::mutex> l(probe.mu);
    if (!probe.done_at_failure) {
      not_done++;
      example = std::string("send returned ") + crpc_code_name(probe.last_send) +
                " while crpc_ctx_is_done(handler ctx) was false; its cause came later: " +
                crpc_code_name(probe.cause.code) + " / " + crpc_origin_name(probe.cause.origin);
    }
  }
  EXPECT_EQ(0, not_done) << not_done << " of " << n << " rounds: " << example;
}

TEST_P(CancelTest, SlowReader_SenderBlocksWithBoundedBuffer_UnblocksOnCancel) {
  probe.msg_size = 16 * 1024;
  crpc_server_options opts{};
  opts.stream_send_buffer = 64 * 1024;
  Start(&opts, [&](crpc_server *s) { AddProbeMethods(s, &probe, handlers_); });
  Ctx ctx = WithCancel();
  Call call = StartCall(channel_, ctx.get(), "/crpc.e2e.Probe/Flood", "x");
  ASSERT_TRUE(call);
  ASSERT_TRUE(probe.entered.WaitMs(5000));
  // The client reads nothing: the handler must stall, not buffer forever.
  int64_t last = -1;
  ASSERT_TRUE(Eventually(
      [&] {
        int64_t now = probe.sent_live.load();
        if (now == last && now > 0) return true;
        last = now;
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        return false;
      },
      10000))
      << "sender never blocked";
  EXPECT_FALSE(probe.done.IsSet());
  int64_t bytes = probe.sent_live.load() * probe.msg_size;
  printf("slow reader: sender blocked after %lld KiB accepted (send buffer 64 KiB + HTTP/2 "
         "windows)\n", static_cast<long long>(bytes / 1024));
  EXPECT_LT(bytes, 32ll << 20) << "outgoing data not bounded";
  int64_t t0 = crpc_now_ns();
  crpc_ctx_cancel(ctx.get(), CRPC_CANCELLED, "reader gives up");
  ASSERT_TRUE(probe.done.WaitMs(kPromptMs)) << "blocked send did not return on cancel";
  printf("blocked send returned %.0f us after the client cancelled\n",
         static_cast<double>(probe.cancel_ns.load() - t0) / 1000.0);
  std::lock_guard<std::mutex> l(probe.mu);
  EXPECT_EQ(CRPC_CANCELLED, probe.last_send);
  EXPECT_EQ(0, probe.late);
}

TEST_P(CancelTest, SlowServerReader_ClientSendBlocksAndUnblocksOnCancel) {
  // Stall never reads: the client's sends must stall (flow control) and
  // return at once when the client ctx is cancelled. (A client-streaming
  // method: a second message on a unary one would fail the call INTERNAL.)
  Start(nullptr, [&](crpc_server *s) { AddProbeMethods(s, &probe, handlers_); });
  Ctx ctx = WithCancel();
  crpc_call *raw = nullptr;
  ASSERT_EQ(CRPC_OK,
            crpc_call_start(channel_, ctx.get(), "/crpc.e2e.Probe/Stall", nullptr, &raw));
  Call call(raw);
  std::atomic<int64_t> sent{0};
  std::atomic<crpc_code> last{CRPC_OK};
  std::thread sender([&] {
    std::string chunk(16 * 1024, 's');
    crpc_code rc;
    while ((rc = crpc_call_send(call.get(), chunk.data(), chunk.size())) == CRPC_OK) sent++;
    last = rc;
  });
  int64_t prev = -1;
  bool stalled = Eventually(
      [&] {
        int64_t now = sent.load();
        if (now == prev && now > 0) return true;
        prev = now;
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        return false;
      },
      10000);
  EXPECT_TRUE(stalled);
  printf("client sender blocked after %lld KiB\n", static_cast<long long>(sent.load() * 16));
  crpc_ctx_cancel(ctx.get(), CRPC_CANCELLED, "give up");
  sender.join();  // must return: a hang here is the bug
  EXPECT_EQ(CRPC_CANCELLED, last.load());
}

// ---- the connection survives resets ---------------------------------------------

TEST_P(CancelTest, StreamReset_LeavesConnectionUsable_NextCallOnSameChannelSucceeds) {
  Start(nullptr, [&](crpc_server *s) { AddProbeMethods(s, &probe, handlers_); });
  std::string peer = PeerOf(channel_);
  // Several concurrent calls; one of them is reset; the others go on.
  Ctx keep = WithTimeout(10 * kSec);
  Call chat;
  {
    crpc_call *raw = nullptr;
    ASSERT_EQ(CRPC_OK, crpc_call_start(channel_, keep.get(), M("Chat").c_str(), nullptr, &raw));
    chat.reset(raw);
  }
  ASSERT_EQ(CRPC_OK, crpc_call_send(chat.get(), "before", 6));
  std::string m;
  ASSERT_EQ(CRPC_OK, Recv(chat.get(), &m));

  Ctx ctx = WithCancel();
  Call count = StartCall(channel_, ctx.get(), M("Count"), "0 64 1000");
  ASSERT_EQ(CRPC_OK, Recv(count.get(), &m));
  crpc_ctx_cancel(ctx.get(), CRPC_CANCELLED, "reset this one");
  EXPECT_EQ(CRPC_CANCELLED, Recv(count.get(), &m));
  count.reset();

  ASSERT_EQ(CRPC_OK, crpc_call_send(chat.get(), "after", 5));
  ASSERT_EQ(CRPC_OK, Recv(chat.get(), &m)) << "the sibling stream was disturbed";
  EXPECT_EQ("after", m);
  crpc_call_close_send(chat.get());
  EXPECT_EQ(CRPC_OK, crpc_call_finish(chat.get(), nullptr));

  UnaryResult r = Unary(channel_, keep.get(), M("Echo"), "next");
  EXPECT_EQ(CRPC_OK, r.code) << r.message;
  EXPECT_EQ(peer, PeerOf(channel_)) << "the channel had to reconnect";
}

TEST_P(CancelTest, ThousandsOfCancelledCalls_OneChannel_ServerNeverDropsConnection) {
  Start(nullptr, [&](crpc_server *s) { AddProbeMethods(s, &probe, handlers_); });
  std::string peer = PeerOf(channel_);
  const int n = 3000 / kSlow;
  int cancelled = 0;
  int64_t t0 = crpc_now_ns();
  for (int i = 0; i < n; i++) {
    Ctx ctx = WithCancel();
    crpc_call *raw = nullptr;
    crpc_code rc = crpc_call_start(channel_, ctx.get(), M("Count").c_str(), nullptr, &raw);
    ASSERT_EQ(CRPC_OK, rc) << "call " << i << ": the connection went away?";
    Call call(raw);
    // One message back proves the stream exists on both ends, so the
    // cancel below is a real RST_STREAM the server has to process.
    ASSERT_EQ(CRPC_OK, crpc_call_send(call.get(), "0 8 10000000", 12));
    ASSERT_EQ(CRPC_OK, crpc_call_close_send(call.get()));
    std::string m;
    ASSERT_EQ(CRPC_OK, Recv(call.get(), &m)) << "call " << i;
    crpc_ctx_cancel(ctx.get(), CRPC_CANCELLED, "churn");
    Status st;
    if (crpc_call_finish(call.get(), st.get()) == CRPC_CANCELLED) cancelled++;
  }
  double secs = static_cast<double>(crpc_now_ns() - t0) / 1e9;
  printf("%d calls started and cancelled on one channel in %.2f s (%.0f resets/s)\n", n, secs,
         n / secs);
  EXPECT_EQ(n, cancelled);
  EXPECT_EQ(peer, PeerOf(channel_)) << "the server dropped the connection (rapid-reset limit?)";
  EXPECT_TRUE(Eventually([&] { return crpc_test_service_running(svc_) == 0; }, 10000))
      << crpc_test_service_running(svc_) << " handlers still running";
}

// ---- connection lost ----------------------------------------------------------

TEST_P(CancelTest, ConnectionCut_InFlightCallsEndUnavailable_ServerCtxsGetConnectionLost) {
  Start();
  crpc_testing::TcpProxy proxy(port_);
  crpc_channel *ch = crpc_channel_new(proxy.target().c_str(), nullptr);
  ASSERT_NE(nullptr, ch);
  {
    Ctx ctx = WithTimeout(20 * kSec);
    std::string t1 = Tag("lost-hang"), t2 = Tag("lost-count"), t3 = Tag("lost-chat");
    Md m1 = NewMd({{"x-tag", t1}}), m2 = NewMd({{"x-tag", t2}}), m3 = NewMd({{"x-tag", t3}});
    Call hang = StartCall(ch, ctx.get(), M("Hang"), "x", m1.get());
    Call count = StartCall(ch, ctx.get(), M("Count"), "0 16 5000", m2.get());
    crpc_call *raw = nullptr;
    ASSERT_EQ(CRPC_OK, crpc_call_start(ch, ctx.get(), M("Chat").c_str(), m3.get(), &raw));
    Call chat(raw);
    ASSERT_EQ(CRPC_OK, crpc_call_send(chat.get(), "hi", 2));
    std::string m;
    ASSERT_EQ(CRPC_OK, Recv(chat.get(), &m));
    ASSERT_EQ(CRPC_OK, Recv(count.get(), &m));
    ASSERT_TRUE(Eventually([&] { return crpc_test_service_running(svc_) == 3; }, 5000));

    int64_t t0 = crpc_now_ns();
    proxy.Cut();
    crpc_code rc1, rc2, rc3;
    rc1 = Recv(hang.get(), &m);
    do rc2 = Recv(count.get(), &m); while (rc2 == CRPC_OK);
    rc3 = Recv(chat.get(), &m);
    int64_t t1n = crpc_now_ns();
    EXPECT_EQ(CRPC_UNAVAILABLE, rc1) << crpc_code_name(rc1);
    EXPECT_EQ(CRPC_UNAVAILABLE, rc2) << crpc_code_name(rc2);
    EXPECT_EQ(CRPC_UNAVAILABLE, rc3) << crpc_code_name(rc3);
    EXPECT_LT(t1n - t0, kPromptMs * kMs);
    for (const std::string &t : {t1, t2, t3}) {
      auto rep = Report(t);
      EXPECT_EQ("UNAVAILABLE", rep["end"]) << rep["text"];
      EXPECT_EQ("connection_lost", rep["origin"]) << rep["text"];
    }
    printf("connection cut -> 3 client calls UNAVAILABLE in %.0f us\n",
           static_cast<double>(t1n - t0) / 1000.0);

    // The next call on the same channel connects again.
    UnaryResult r = Unary(ch, ctx.get(), M("Echo"), "again");
    EXPECT_EQ(CRPC_OK, r.code) << r.message;
    EXPECT_EQ(2, proxy.accepted());
  }
  crpc_channel_free(ch);
}

TEST_P(CancelTest, ServerShutdownWithGrace_InFlightCallsCancelledWithOriginShutdown) {
  Start();
  std::string tag = Tag("shutdown");
  Md md = NewMd({{"x-tag", tag}});
  Ctx ctx = WithTimeout(20 * kSec);
  Call hang = StartCall(channel_, ctx.get(), M("Hang"), "x", md.get());
  ASSERT_TRUE(Eventually([&] { return crpc_test_service_running(svc_) == 1; }, 5000));
  int64_t t0 = crpc_now_ns();
  crpc_server_shutdown(server_, 100 * kMs);
  int64_t took = crpc_now_ns() - t0;
  EXPECT_GE(took, 100 * kMs);
  EXPECT_LT(took, 100 * kMs + kPromptMs * kMs);
  auto rep = Report(tag);
  EXPECT_EQ("UNAVAILABLE", rep["end"]) << rep["text"];
  EXPECT_EQ("shutdown", rep["origin"]) << rep["text"];
  std::string m;
  crpc_code rc = Recv(hang.get(), &m);
  EXPECT_TRUE(rc == CRPC_UNAVAILABLE || rc == CRPC_CANCELLED) << crpc_code_name(rc);
}

CRPC_E2E_BOTH_HANDLERS(CancelTest);

}  // namespace
}  // namespace crpc_e2e
