// Unary calls, crpc client -> crpc server over loopback: status, metadata,
// UNIMPLEMENTED, deadlines both ways, client cancel (with latency),
// connection loss, and a reset leaving the connection usable.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "crpc/channel.h"
#include "crpc/server.h"
#include "rpc/channel/test_util.h"
#include "rpc/testing/tcp_proxy.h"

namespace crpc_test {
namespace {

crpc_code Echo(crpc_server_call *call, const crpc_ctx *) {
  crpc_message m;
  crpc_code c = crpc_server_call_recv(call, &m);
  if (c != CRPC_OK) return c;
  if (m.end)
    return crpc_server_call_error(call, CRPC_INVALID_ARGUMENT, "no request");
  c = crpc_server_call_send(call, m.data, m.len);
  free(m.data);
  return c;
}

class UnaryTest : public LeakCheckTest {};

TEST_F(UnaryTest, EchoOk) {
  TestServer server;
  server.Add("/test.Svc/Echo", CRPC_UNARY, Echo);
  server.Start();
  crpc_channel *ch = crpc_channel_new(server.target().c_str(), nullptr);
  ASSERT_NE(ch, nullptr);
  for (int i = 0; i < 20; i++) {
    std::string req = "hello " + std::to_string(i);
    crpc_message resp;
    crpc_status st{};
    ASSERT_EQ(crpc_unary_call(ch, crpc_ctx_background(), "/test.Svc/Echo",
                              nullptr, req.data(), req.size(), &resp, &st),
              CRPC_OK)
        << st.message;
    EXPECT_EQ(Str(resp), req);
    EXPECT_STREQ(st.message, "");
    free(resp.data);
    crpc_status_clear(&st);
  }
  // An empty message is a message too.
  crpc_message resp;
  ASSERT_EQ(crpc_unary_call(ch, crpc_ctx_background(), "/test.Svc/Echo",
                            nullptr, nullptr, 0, &resp, nullptr),
            CRPC_OK);
  EXPECT_EQ(resp.len, 0u);
  EXPECT_NE(resp.data, nullptr);
  free(resp.data);
  crpc_channel_free(ch);
}

// crpc_unary_call builds its request with three API calls (start, send,
// close_send); it leaves in one write from the caller's thread when the
// channel's loop sleeps: the loop thread is not woken before the request
// reaches the server (a posted request would wake it to write it).
TEST_F(UnaryTest, RequestIsWrittenByTheCallerWhileTheLoopSleeps) {
  ChannelLoopWakes wakes;
  TestServer server;
  server.Add("/test.Svc/Echo", CRPC_UNARY,
             [&](crpc_server_call *call, const crpc_ctx *ctx) {
               wakes.AtArrival();
               return Echo(call, ctx);
             });
  server.Start();
  wakes.NoteServerLoops();
  crpc_channel *ch = crpc_channel_new(server.target().c_str(), nullptr);
  ASSERT_NE(ch, nullptr);
  auto call = [&] {
    crpc_message resp;
    ASSERT_EQ(crpc_unary_call(ch, crpc_ctx_background(), "/test.Svc/Echo",
                              nullptr, "x", 1, &resp, nullptr),
              CRPC_OK);
    EXPECT_EQ(Str(resp), "x");
    free(resp.data);
  };
  call(); /* connected, SETTINGS exchanged */
  wakes.ExpectQuiet(20, call);
  crpc_channel_free(ch);
}

TEST_F(UnaryTest, UnixSocket) {
  std::string path = "/tmp/crpc_unary_test_" + std::to_string(getpid());
  std::string addr = "unix:" + path;
  std::string peer;
  TestServer server;
  server.Add("/test.Svc/Echo", CRPC_UNARY,
             [&](crpc_server_call *call, const crpc_ctx *ctx) {
               peer = crpc_server_call_peer(call);
               return Echo(call, ctx);
             });
  server.Start(addr.c_str());
  EXPECT_EQ(server.port(), 0);
  crpc_channel *ch = crpc_channel_new(addr.c_str(), nullptr);
  crpc_message resp;
  ASSERT_EQ(crpc_unary_call(ch, crpc_ctx_background(), "/test.Svc/Echo",
                            nullptr, "u", 1, &resp, nullptr),
            CRPC_OK);
  EXPECT_EQ(Str(resp), "u");
  free(resp.data);
  EXPECT_EQ(peer, addr);
  crpc_channel_free(ch);
}

TEST_F(UnaryTest, Ipv6LoopbackAndPeerText) {
  std::string peer;
  TestServer server;
  server.Add("/test.Svc/Echo", CRPC_UNARY,
             [&](crpc_server_call *call, const crpc_ctx *ctx) {
               peer = crpc_server_call_peer(call);
               return Echo(call, ctx);
             });
  int port = 0;
  if (crpc_server_listen(server.get(), "[::1]:0", &port) != CRPC_OK) {
    GTEST_SKIP() << "no IPv6 loopback here";
  }
  ASSERT_EQ(crpc_server_start(server.get()), CRPC_OK);
  std::string target = "[::1]:" + std::to_string(port);
  crpc_channel *ch = crpc_channel_new(target.c_str(), nullptr);
  crpc_message resp;
  ASSERT_EQ(crpc_unary_call(ch, crpc_ctx_background(), "/test.Svc/Echo",
                            nullptr, "6", 1, &resp, nullptr),
            CRPC_OK);
  free(resp.data);
  EXPECT_EQ(peer.rfind("ipv6:[::1]:", 0), 0u) << peer;
  crpc_channel_free(ch);
}

TEST_F(UnaryTest, ErrorStatusWithMessageAndTrailers) {
  TestServer server;
  server.Add("/test.Svc/Fail", CRPC_UNARY,
             [](crpc_server_call *call, const crpc_ctx *) {
               crpc_message m;
               crpc_server_call_recv(call, &m);
               free(m.data);
               crpc_metadata_add_str(crpc_server_call_trailers(call), "x-why",
                                     "because");
               return crpc_server_call_error(
                   call, CRPC_NOT_FOUND,
                   "no such thing: 100%% \xc3\xa9t\xc3\xa9\n");
             });
  server.Start();
  crpc_channel *ch = crpc_channel_new(server.target().c_str(), nullptr);
  crpc_message resp;
  crpc_status st{};
  EXPECT_EQ(crpc_unary_call(ch, crpc_ctx_background(), "/test.Svc/Fail",
                            nullptr, "x", 1, &resp, &st),
            CRPC_NOT_FOUND);
  EXPECT_EQ(st.code, CRPC_NOT_FOUND);
  EXPECT_STREQ(st.message, "no such thing: 100% \xc3\xa9t\xc3\xa9\n");
  crpc_metadata_entry e;
  ASSERT_TRUE(crpc_metadata_get(st.trailers, "x-why", &e));
  EXPECT_STREQ(reinterpret_cast<const char *>(e.value), "because");
  EXPECT_EQ(resp.data, nullptr);
  crpc_status_clear(&st);
  crpc_channel_free(ch);
}

TEST_F(UnaryTest, MetadataBothWaysIncludingBinary) {
  TestServer server;
  server.Add(
      "/test.Svc/Md", CRPC_UNARY, [](crpc_server_call *call, const crpc_ctx *) {
        const crpc_metadata *req = crpc_server_call_request_metadata(call);
        crpc_metadata_entry e;
        if (!crpc_metadata_get(req, "x-text", &e)) {
          return crpc_server_call_error(call, CRPC_INTERNAL, "no x-text");
        }
        crpc_metadata_add(crpc_server_call_response_headers(call), "x-echo",
                          e.value, e.value_len);
        if (!crpc_metadata_get(req, "x-data-bin", &e)) {
          return crpc_server_call_error(call, CRPC_INTERNAL, "no bin");
        }
        crpc_metadata_add(crpc_server_call_trailers(call), "x-echo-bin",
                          e.value, e.value_len);
        if (!crpc_metadata_get(req, "user-agent", &e) ||
            strstr(reinterpret_cast<const char *>(e.value), "crpc/0.1") ==
                nullptr) {
          return crpc_server_call_error(call, CRPC_INTERNAL, "no ua");
        }
        if (strncmp(crpc_server_call_peer(call), "ipv4:127.0.0.1:", 15)) {
          return crpc_server_call_error(call, CRPC_INTERNAL, "peer %s",
                                        crpc_server_call_peer(call));
        }
        return Echo(call, nullptr);
      });
  server.Start();
  crpc_channel *ch = crpc_channel_new(server.target().c_str(), nullptr);
  crpc_metadata *md = crpc_metadata_new();
  crpc_metadata_add_str(md, "x-text", "hello world");
  const uint8_t bin[] = {0, 1, 2, 0xff, 0xfe, 0};
  crpc_metadata_add(md, "x-data-bin", bin, sizeof(bin));
  crpc_call *call;
  ASSERT_EQ(
      crpc_call_start(ch, crpc_ctx_background(), "/test.Svc/Md", md, &call),
      CRPC_OK);
  ASSERT_EQ(crpc_call_send(call, "abc", 3), CRPC_OK);
  ASSERT_EQ(crpc_call_close_send(call), CRPC_OK);
  const crpc_metadata *hdrs = crpc_call_response_headers(call);
  ASSERT_NE(hdrs, nullptr);
  crpc_metadata_entry e;
  ASSERT_TRUE(crpc_metadata_get(hdrs, "x-echo", &e));
  EXPECT_STREQ(reinterpret_cast<const char *>(e.value), "hello world");
  crpc_message m;
  ASSERT_EQ(crpc_call_recv(call, &m), CRPC_OK);
  EXPECT_EQ(Str(m), "abc");
  free(m.data);
  ASSERT_EQ(crpc_call_recv(call, &m), CRPC_OK);
  EXPECT_TRUE(m.end);
  crpc_status st{};
  ASSERT_EQ(crpc_call_finish(call, &st), CRPC_OK) << st.message;
  ASSERT_TRUE(crpc_metadata_get(st.trailers, "x-echo-bin", &e));
  ASSERT_EQ(e.value_len, sizeof(bin));
  EXPECT_EQ(memcmp(e.value, bin, sizeof(bin)), 0);
  crpc_status_clear(&st);
  crpc_call_free(call);

  // Reserved headers cannot be forged by the caller.
  crpc_metadata_add_str(md, "content-type", "text/plain");
  EXPECT_EQ(
      crpc_call_start(ch, crpc_ctx_background(), "/test.Svc/Md", md, &call),
      CRPC_INVALID_ARGUMENT);
  EXPECT_EQ(call, nullptr);
  crpc_metadata_free(md);
  crpc_channel_free(ch);
}

TEST_F(UnaryTest, ReservedKeysFromAHandlerFailTheCall) {
  TestServer server;
  std::atomic<int> send_code{-1};
  server.Add("/test.Svc/BadHeader", CRPC_UNARY,
             [&](crpc_server_call *call, const crpc_ctx *) {
               crpc_metadata_add_str(crpc_server_call_response_headers(call),
                                     "grpc-status", "0");
               send_code = crpc_server_call_send(call, "x", 1);
               return CRPC_OK;
             });
  server.Add("/test.Svc/BadTrailer", CRPC_UNARY,
             [&](crpc_server_call *call, const crpc_ctx *) {
               crpc_metadata_add_str(crpc_server_call_trailers(call),
                                     "content-type", "text/plain");
               return crpc_server_call_send(call, "x", 1);
             });
  server.Start();
  crpc_channel *ch = crpc_channel_new(server.target().c_str(), nullptr);
  for (const char *m : {"/test.Svc/BadHeader", "/test.Svc/BadTrailer"}) {
    crpc_status st{};
    crpc_message resp;
    EXPECT_EQ(crpc_unary_call(ch, crpc_ctx_background(), m, nullptr, "q", 1,
                              &resp, &st),
              CRPC_INTERNAL)
        << m;
    EXPECT_NE(strstr(st.message, "reserved"), nullptr) << st.message;
    crpc_status_clear(&st);
  }
  EXPECT_EQ(send_code.load(), CRPC_INTERNAL);
  crpc_channel_free(ch);
}

TEST_F(UnaryTest, UnknownMethodIsUnimplemented) {
  TestServer server;
  server.Add("/test.Svc/Echo", CRPC_UNARY, Echo);
  server.Start();
  crpc_channel *ch = crpc_channel_new(server.target().c_str(), nullptr);
  for (const char *m : {"/test.Svc/Nope", "/other.Svc/Echo"}) {
    crpc_status st{};
    crpc_message resp;
    EXPECT_EQ(crpc_unary_call(ch, crpc_ctx_background(), m, nullptr, "x", 1,
                              &resp, &st),
              CRPC_UNIMPLEMENTED);
    EXPECT_NE(strstr(st.message, m), nullptr) << st.message;
    crpc_status_clear(&st);
  }
  crpc_channel_free(ch);
}

TEST_F(UnaryTest, DeadlineBothWays) {
  TestServer server;
  std::atomic<int> server_code{-1}, server_origin{-1};
  std::atomic<int64_t> server_deadline{0};
  server.Add("/test.Svc/Hang", CRPC_UNARY,
             [&](crpc_server_call *, const crpc_ctx *ctx) {
               server_deadline = crpc_ctx_deadline(ctx);
               crpc_code c = crpc_ctx_wait(ctx);
               // The origin first: the test waits for the code.
               server_origin = crpc_ctx_cause(ctx)->origin;
               server_code = c;
               return c;
             });
  server.Start();
  crpc_channel *ch = crpc_channel_new(server.target().c_str(), nullptr);
  int64_t t0 = crpc_now_ns();
  {
    Ctx ctx(
        crpc_ctx_with_timeout(crpc_ctx_background(), 100 * CRPC_MILLISECOND));
    crpc_status st{};
    crpc_message resp;
    EXPECT_EQ(
        crpc_unary_call(ch, ctx, "/test.Svc/Hang", nullptr, "x", 1, &resp, &st),
        CRPC_DEADLINE_EXCEEDED);
    int64_t took = crpc_now_ns() - t0;
    EXPECT_GE(took, 100 * CRPC_MILLISECOND);
    EXPECT_LT(took, 2 * CRPC_SECOND);
    crpc_status_clear(&st);
  }
  // The server got the deadline through grpc-timeout and expired too.
  for (int i = 0; i < 200 && server_code.load() < 0; i++) {
    crpc_ctx_sleep(crpc_ctx_background(), 5 * CRPC_MILLISECOND);
  }
  // Its deadline is the client's plus the transit time, so the client's
  // RST_STREAM(CANCEL) usually gets there first; either way it ended.
  // (server_test drives the expiry itself with a raw HTTP/2 client.)
  if (server_origin.load() == CRPC_ORIGIN_DEADLINE) {
    EXPECT_EQ(server_code.load(), CRPC_DEADLINE_EXCEEDED);
  } else {
    EXPECT_EQ(server_origin.load(), CRPC_ORIGIN_PEER_RESET);
    EXPECT_EQ(server_code.load(), CRPC_CANCELLED);
  }
  EXPECT_LE(server_deadline.load(), t0 + 150 * CRPC_MILLISECOND);
  EXPECT_GT(server_deadline.load(), t0);
  crpc_channel_free(ch);
}

TEST_F(UnaryTest, ClientCancelReachesHandlerAsPeerReset) {
  TestServer server;
  std::mutex mu;
  std::atomic<int> started{0};
  std::atomic<int64_t> done_at{0};
  std::atomic<int> origin{-1}, code{-1};
  server.Add("/test.Svc/Hang", CRPC_UNARY,
             [&](crpc_server_call *, const crpc_ctx *ctx) {
               started++;
               crpc_code c = crpc_ctx_wait(ctx);
               done_at = crpc_now_ns();
               origin = crpc_ctx_cause(ctx)->origin;
               code = c;
               return c;
             });
  server.Start();
  crpc_channel *ch = crpc_channel_new(server.target().c_str(), nullptr);
  std::vector<int64_t> lat;
  const int kRounds = 200;
  for (int i = 0; i < kRounds; i++) {
    crpc_ctx *ctx = crpc_ctx_with_cancel(crpc_ctx_background());
    crpc_call *call;
    int before = started.load();
    code = -1;
    ASSERT_EQ(crpc_call_start(ch, ctx, "/test.Svc/Hang", nullptr, &call),
              CRPC_OK);
    ASSERT_EQ(crpc_call_send(call, "x", 1), CRPC_OK);
    while (started.load() == before) std::this_thread::yield();
    int64_t t0 = crpc_now_ns();
    crpc_ctx_cancel(ctx, CRPC_CANCELLED, "user gave up");
    crpc_message m;
    EXPECT_EQ(crpc_call_recv(call, &m), CRPC_CANCELLED);
    EXPECT_LT(crpc_now_ns() - t0, 50 * CRPC_MILLISECOND);
    while (code.load() < 0) std::this_thread::yield();
    lat.push_back(done_at.load() - t0);
    EXPECT_EQ(code.load(), CRPC_CANCELLED);
    EXPECT_EQ(origin.load(), CRPC_ORIGIN_PEER_RESET);
    crpc_status st{};
    EXPECT_EQ(crpc_call_finish(call, &st), CRPC_CANCELLED);
    EXPECT_STREQ(st.message, "user gave up");
    crpc_status_clear(&st);
    crpc_call_free(call);
    crpc_ctx_release(ctx);
  }
  printf(
      "cancel -> handler ctx done, idle handler, %d calls: p50 %lld us, "
      "p99 %lld us\n",
      kRounds, (long long)Percentile(lat, 0.5) / 1000,
      (long long)Percentile(lat, 0.99) / 1000);
  crpc_channel_free(ch);
}

// A cancel crossing the server's OK: the server has answered and the
// client's ctx ends while the answer is on its way. Either outcome is
// right, but only one: once recv has reported the ctx's code, finish
// reports it too (it used to say OK when the trailers landed between the
// two, and crpc_unary_call then returned OK with no response at all).
TEST_F(UnaryTest, CancelCrossingTheServersOkIsReportedOnce) {
  TestServer server;
  std::atomic<int> answered{0};
  server.Add("/test.Svc/Echo", CRPC_UNARY,
             [&](crpc_server_call *call, const crpc_ctx *ctx) {
               crpc_code c = Echo(call, ctx);
               answered++;
               return c;
             });
  server.Start();
  crpc_channel *ch = crpc_channel_new(server.target().c_str(), nullptr);
  int ok = 0, cancelled = 0;
  for (int i = 0; i < 400; i++) {
    crpc_ctx *ctx = crpc_ctx_with_cancel(crpc_ctx_background());
    int before = answered.load();
    // Cancels as the handler returns, spinning a little longer each round
    // so that some cancels land before the trailers and some after.
    std::thread canceller([&, before, i] {
      while (answered.load() == before) std::this_thread::yield();
      for (volatile int spin = 0; spin < (i % 40) * 200; spin = spin + 1) {
      }
      crpc_ctx_cancel(ctx, CRPC_CANCELLED, "gave up");
    });
    crpc_call *call;
    ASSERT_EQ(crpc_call_start(ch, ctx, "/test.Svc/Echo", nullptr, &call),
              CRPC_OK);
    // The handler answers on the request message alone, so the cancel may
    // already have come when the request is half-closed.
    crpc_message m{};
    crpc_code rc = crpc_call_send(call, "x", 1);
    if (rc == CRPC_OK) rc = crpc_call_close_send(call);
    if (rc == CRPC_OK) rc = crpc_call_recv(call, &m);
    free(m.data);
    canceller.join();
    crpc_status st{};
    crpc_code fc = crpc_call_finish(call, &st);
    if (rc == CRPC_OK) {
      EXPECT_EQ(m.len, 1u);
      EXPECT_TRUE(fc == CRPC_OK || fc == CRPC_CANCELLED) << crpc_code_name(fc);
    } else {
      EXPECT_EQ(rc, CRPC_CANCELLED);
      EXPECT_EQ(fc, CRPC_CANCELLED) << "round " << i;
      EXPECT_STREQ(st.message, "gave up");
    }
    (fc == CRPC_OK ? ok : cancelled)++;
    crpc_status_clear(&st);
    crpc_call_free(call);
    crpc_ctx_release(ctx);
  }
  crpc_channel_free(ch);
  // Both sides of the race happened; else it tested nothing.
  EXPECT_GT(ok, 0);
  EXPECT_GT(cancelled, 0);
}

// Polling loops on both sides (poll_ns): calls in step with each other
// are what it is for; answers and cancels arrive as before.
TEST_F(UnaryTest, PollingLoopsServeAndCancel) {
  crpc_server_options so{};
  so.poll_ns = 50 * CRPC_MICROSECOND;
  so.loop_threads = 1;
  TestServer server(&so);
  server.Add("/test.Svc/Echo", CRPC_UNARY, Echo);
  std::atomic<int> hang_code{-1};
  server.Add("/test.Svc/Hang", CRPC_UNARY,
             [&](crpc_server_call *, const crpc_ctx *ctx) {
               crpc_code c = crpc_ctx_wait(ctx);
               hang_code = c;
               return c;
             });
  server.Start();
  crpc_channel_options co{};
  co.poll_ns = 50 * CRPC_MICROSECOND;
  crpc_channel *ch = crpc_channel_new(server.target().c_str(), &co);
  ASSERT_NE(ch, nullptr);
  for (int i = 0; i < 300; i++) {
    std::string req = std::to_string(i);
    crpc_message resp;
    ASSERT_EQ(crpc_unary_call(ch, crpc_ctx_background(), "/test.Svc/Echo",
                              nullptr, req.data(), req.size(), &resp, nullptr),
              CRPC_OK);
    EXPECT_EQ(Str(resp), req);
    free(resp.data);
  }
  crpc_ctx *ctx = crpc_ctx_with_cancel(crpc_ctx_background());
  crpc_call *call;
  ASSERT_EQ(crpc_call_start(ch, ctx, "/test.Svc/Hang", nullptr, &call), CRPC_OK);
  ASSERT_EQ(crpc_call_send(call, "x", 1), CRPC_OK);
  ASSERT_EQ(crpc_call_close_send(call), CRPC_OK);
  usleep(20 * 1000);
  crpc_ctx_cancel(ctx, CRPC_CANCELLED, "enough");
  EXPECT_EQ(crpc_call_finish(call, nullptr), CRPC_CANCELLED);
  EXPECT_TRUE(WaitFor([&] { return hang_code.load() == CRPC_CANCELLED; },
                      5 * CRPC_SECOND));
  crpc_call_free(call);
  crpc_ctx_release(ctx);
  crpc_channel_free(ch);
}

TEST_F(UnaryTest, BlockedHandlerDoesNotStallOtherCalls) {
  TestServer server;
  std::atomic<bool> started{false};
  std::atomic<int> origin{-1};
  server.Add("/test.Svc/Hang", CRPC_UNARY,
             [&](crpc_server_call *, const crpc_ctx *ctx) {
               started = true;
               crpc_code c = crpc_ctx_wait(ctx);
               origin = crpc_ctx_cause(ctx)->origin;
               return c;
             });
  server.Add("/test.Svc/Echo", CRPC_UNARY, Echo);
  server.Start();
  crpc_channel *ch = crpc_channel_new(server.target().c_str(), nullptr);
  crpc_call *hang;
  ASSERT_EQ(crpc_call_start(ch, crpc_ctx_background(), "/test.Svc/Hang",
                            nullptr, &hang),
            CRPC_OK);
  ASSERT_EQ(crpc_call_send(hang, "x", 1), CRPC_OK);
  while (!started.load()) std::this_thread::yield();
  for (int i = 0; i < 20; i++) {
    crpc_message resp;
    ASSERT_EQ(crpc_unary_call(ch, crpc_ctx_background(), "/test.Svc/Echo",
                              nullptr, "e", 1, &resp, nullptr),
              CRPC_OK);
    free(resp.data);
  }
  // Freeing an unfinished call cancels it on the wire.
  crpc_call_free(hang);
  while (origin.load() < 0) std::this_thread::yield();
  EXPECT_EQ(origin.load(), CRPC_ORIGIN_PEER_RESET);
  crpc_channel_free(ch);
}

TEST_F(UnaryTest, ResetStreamLeavesConnectionUsable) {
  TestServer server;
  std::mutex mu;
  std::vector<std::string> peers;
  server.Add("/test.Svc/Hang", CRPC_UNARY,
             [&](crpc_server_call *call, const crpc_ctx *ctx) {
               {
                 std::lock_guard<std::mutex> l(mu);
                 peers.push_back(crpc_server_call_peer(call));
               }
               return crpc_ctx_wait(ctx);
             });
  server.Add("/test.Svc/Echo", CRPC_UNARY,
             [&](crpc_server_call *call, const crpc_ctx *) {
               {
                 std::lock_guard<std::mutex> l(mu);
                 peers.push_back(crpc_server_call_peer(call));
               }
               return Echo(call, nullptr);
             });
  server.Start();
  crpc_channel *ch = crpc_channel_new(server.target().c_str(), nullptr);
  {
    Ctx ctx(
        crpc_ctx_with_timeout(crpc_ctx_background(), 20 * CRPC_MILLISECOND));
    crpc_message resp;
    EXPECT_EQ(crpc_unary_call(ch, ctx, "/test.Svc/Hang", nullptr, "x", 1, &resp,
                              nullptr),
              CRPC_DEADLINE_EXCEEDED);
  }
  crpc_message resp;
  EXPECT_EQ(crpc_unary_call(ch, crpc_ctx_background(), "/test.Svc/Echo",
                            nullptr, "y", 1, &resp, nullptr),
            CRPC_OK);
  free(resp.data);
  std::lock_guard<std::mutex> l(mu);
  ASSERT_EQ(peers.size(), 2u);
  EXPECT_EQ(peers[0], peers[1]) << "same connection";
  crpc_channel_free(ch);
}

TEST_F(UnaryTest, ConnectionLossEndsCallsBothSidesThenReconnects) {
  TestServer server;
  std::atomic<int> started{0}, origin{-1}, code{-1};
  server.Add("/test.Svc/Hang", CRPC_UNARY,
             [&](crpc_server_call *, const crpc_ctx *ctx) {
               started++;
               crpc_code c = crpc_ctx_wait(ctx);
               origin = crpc_ctx_cause(ctx)->origin;
               code = c;
               return c;
             });
  server.Add("/test.Svc/Echo", CRPC_UNARY, Echo);
  server.Start();
  auto proxy = std::make_unique<crpc_testing::TcpProxy>(server.port());
  crpc_channel *ch = crpc_channel_new(proxy->target().c_str(), nullptr);
  crpc_call *call;
  ASSERT_EQ(crpc_call_start(ch, crpc_ctx_background(), "/test.Svc/Hang",
                            nullptr, &call),
            CRPC_OK);
  ASSERT_EQ(crpc_call_send(call, "x", 1), CRPC_OK);
  while (started.load() == 0) std::this_thread::yield();
  proxy->Cut();
  crpc_status st{};
  EXPECT_EQ(crpc_call_finish(call, &st), CRPC_UNAVAILABLE);
  crpc_status_clear(&st);
  crpc_call_free(call);
  while (code.load() < 0) std::this_thread::yield();
  EXPECT_EQ(code.load(), CRPC_UNAVAILABLE);
  EXPECT_EQ(origin.load(), CRPC_ORIGIN_CONNECTION_LOST);
  proxy.reset();
  // The next call connects again (the proxy is gone: the server directly
  // via a new channel target is not possible, so re-create the proxy on
  // the same channel is not either; use a fresh proxy and a new channel
  // for reconnect-after-drop in the channel test).
  crpc_channel_free(ch);
}

TEST_F(UnaryTest, ReconnectsAfterServerRestart) {
  int port;
  {
    TestServer server;
    server.Add("/test.Svc/Echo", CRPC_UNARY, Echo);
    server.Start();
    port = server.port();
    // The failed attempt below makes the channel back off (gRPC's
    // connection backoff); 50 ms (+-20%) keeps the test short.
    crpc_channel_options o{};
    o.backoff_initial_ns = 50 * CRPC_MILLISECOND;
    crpc_channel *ch = crpc_channel_new(server.target().c_str(), &o);
    crpc_message resp;
    ASSERT_EQ(crpc_unary_call(ch, crpc_ctx_background(), "/test.Svc/Echo",
                              nullptr, "a", 1, &resp, nullptr),
              CRPC_OK);
    free(resp.data);
    crpc_server_shutdown(server.get(), 0);
    // The drop is seen; a call now fails UNAVAILABLE (nobody listens).
    crpc_status st{};
    Ctx ctx(crpc_ctx_with_timeout(crpc_ctx_background(), CRPC_SECOND));
    crpc_code c =
        crpc_unary_call(ch, ctx, "/test.Svc/Echo", nullptr, "a", 1, &resp, &st);
    EXPECT_EQ(c, CRPC_UNAVAILABLE) << st.message;
    EXPECT_NE(strstr(st.message, "refused"), nullptr) << st.message;
    crpc_status_clear(&st);
    // A new server on the same port: once the backoff has passed, the
    // same channel reconnects.
    TestServer again;
    again.Add("/test.Svc/Echo", CRPC_UNARY, Echo);
    std::string addr = "127.0.0.1:" + std::to_string(port);
    again.Start(addr.c_str());
    usleep(100 * 1000);
    ASSERT_EQ(crpc_unary_call(ch, crpc_ctx_background(), "/test.Svc/Echo",
                              nullptr, "b", 1, &resp, &st),
              CRPC_OK)
        << st.message;
    crpc_status_clear(&st);
    free(resp.data);
    crpc_channel_free(ch);
  }
}

}  // namespace
}  // namespace crpc_test
