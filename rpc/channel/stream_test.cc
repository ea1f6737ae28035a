// Streaming calls, crpc client -> crpc server over loopback: server
// streaming with a cancel mid-stream (nothing sent after the reset),
// backpressure from a slow reader, error status mid-stream, client
// streaming, bidi, and message size limits.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "crpc/channel.h"
#include "crpc/server.h"
#include "rpc/channel/test_util.h"

namespace crpc_test {
namespace {

class StreamTest : public LeakCheckTest {};

struct CancelRecord {
  std::atomic<int64_t> at{0};
  std::atomic<bool> returned{false};  // RecordCancel's last touch
};

void RecordCancel(void *arg, const crpc_cause *) {
  auto *rec = static_cast<CancelRecord *>(arg);
  rec->at = crpc_now_ns();
  rec->returned = true;
}

TEST_F(StreamTest, ServerStreamingCancelMidStreamStopsSendsAtOnce) {
  TestServer server;
  struct Round {
    std::atomic<int> ok_after_cancel{0};
    std::atomic<int> next_code{-1};
    std::atomic<int64_t> stopped_at{0};
    std::atomic<int> sent{0};
    std::atomic<bool> done{false};
  };
  Round *round = nullptr;
  std::mutex mu;
  server.Add("/test.Svc/Flood", CRPC_SERVER_STREAMING,
             [&](crpc_server_call *call, const crpc_ctx *ctx) {
               Round *r;
               {
                 std::lock_guard<std::mutex> l(mu);
                 r = round;
               }
               crpc_message m;
               crpc_server_call_recv(call, &m);
               free(m.data);
               CancelRecord rec;
               crpc_on_cancel reg;
               crpc_ctx_on_cancel(ctx, &reg, RecordCancel, &rec);
               char buf[1024];
               memset(buf, 'x', sizeof(buf));
               crpc_code c;
               for (;;) {
                 int64_t start = crpc_now_ns();
                 c = crpc_server_call_send(call, buf, sizeof(buf));
                 if (c != CRPC_OK) break;
                 r->sent++;
                 int64_t cancelled = rec.at.load();
                 if (cancelled != 0 && start > cancelled) r->ok_after_cancel++;
               }
               r->stopped_at = crpc_now_ns();
               r->next_code = c;
               // RUNNING: the loop is inside RecordCancel right now, and
               // `rec` lives on this stack until it has returned.
               if (crpc_ctx_remove_on_cancel(&reg) == CRPC_ON_CANCEL_RUNNING) {
                 while (!rec.returned.load()) std::this_thread::yield();
               }
               r->done = true;
               return c;
             });
  server.Start();
  crpc_channel *ch = crpc_channel_new(server.target().c_str(), nullptr);
  std::vector<int64_t> lat;
  for (int i = 0; i < 50; i++) {
    Round r;
    {
      std::lock_guard<std::mutex> l(mu);
      round = &r;
    }
    crpc_ctx *ctx = crpc_ctx_with_cancel(crpc_ctx_background());
    crpc_call *call;
    ASSERT_EQ(crpc_call_start(ch, ctx, "/test.Svc/Flood", nullptr, &call),
              CRPC_OK);
    ASSERT_EQ(crpc_call_send(call, "go", 2), CRPC_OK);
    ASSERT_EQ(crpc_call_close_send(call), CRPC_OK);
    for (int k = 0; k < 100; k++) {
      crpc_message m;
      ASSERT_EQ(crpc_call_recv(call, &m), CRPC_OK);
      ASSERT_EQ(m.len, 1024u);
      free(m.data);
    }
    int64_t t0 = crpc_now_ns();
    crpc_ctx_cancel(ctx, CRPC_CANCELLED, "enough");
    crpc_message m;
    EXPECT_EQ(crpc_call_recv(call, &m), CRPC_CANCELLED);
    while (!r.done.load()) std::this_thread::yield();
    lat.push_back(r.stopped_at.load() - t0);
    EXPECT_EQ(r.next_code.load(), CRPC_CANCELLED);
    EXPECT_EQ(r.ok_after_cancel.load(), 0);
    crpc_call_free(call);
    crpc_ctx_release(ctx);
  }
  printf(
      "cancel -> streaming handler's send fails, 50 calls: p50 %lld us, "
      "p99 %lld us; sends OK after the reset arrived: 0\n",
      (long long)Percentile(lat, 0.5) / 1000,
      (long long)Percentile(lat, 0.99) / 1000);
  crpc_channel_free(ch);
}

TEST_F(StreamTest, SlowReaderBackpressuresSender) {
  crpc_server_options opts{};
  opts.stream_send_buffer = 16 * 1024;
  TestServer server(&opts);
  std::atomic<int> sent{0};
  const int kTotal = 3000;  // 3 MB: far more than all buffers together
  server.Add("/test.Svc/Flood", CRPC_SERVER_STREAMING,
             [&](crpc_server_call *call, const crpc_ctx *) {
               char buf[1024] = {0};
               for (int i = 0; i < kTotal; i++) {
                 memcpy(buf, &i, sizeof(i));
                 crpc_code c = crpc_server_call_send(call, buf, sizeof(buf));
                 if (c != CRPC_OK) return c;
                 sent++;
               }
               return CRPC_OK;
             });
  server.Start();
  crpc_channel *ch = crpc_channel_new(server.target().c_str(), nullptr);
  crpc_call *call;
  ASSERT_EQ(crpc_call_start(ch, crpc_ctx_background(), "/test.Svc/Flood",
                            nullptr, &call),
            CRPC_OK);
  ASSERT_EQ(crpc_call_close_send(call), CRPC_OK);
  crpc_ctx_sleep(crpc_ctx_background(), 200 * CRPC_MILLISECOND);
  int stalled_at = sent.load();
  // Send buffer (16 KiB) + stream window (64 KiB) + one message: ~80.
  EXPECT_LT(stalled_at, 200) << "sender was not held back";
  EXPECT_GT(stalled_at, 10);
  for (int i = 0; i < kTotal; i++) {
    crpc_message m;
    ASSERT_EQ(crpc_call_recv(call, &m), CRPC_OK);
    ASSERT_FALSE(m.end);
    int got;
    memcpy(&got, m.data, sizeof(got));
    ASSERT_EQ(got, i);
    free(m.data);
  }
  crpc_message m;
  ASSERT_EQ(crpc_call_recv(call, &m), CRPC_OK);
  EXPECT_TRUE(m.end);
  EXPECT_EQ(crpc_call_finish(call, nullptr), CRPC_OK);
  crpc_call_free(call);
  printf("slow reader: sender stalled after %d x 1 KiB messages\n", stalled_at);
  crpc_channel_free(ch);
}

TEST_F(StreamTest, ErrorStatusMidStream) {
  TestServer server;
  server.Add("/test.Svc/Three", CRPC_SERVER_STREAMING,
             [](crpc_server_call *call, const crpc_ctx *) {
               for (int i = 0; i < 3; i++) crpc_server_call_send(call, "m", 1);
               return crpc_server_call_error(call, CRPC_ABORTED, "stop at %d",
                                             3);
             });
  server.Start();
  crpc_channel *ch = crpc_channel_new(server.target().c_str(), nullptr);
  crpc_call *call;
  ASSERT_EQ(crpc_call_start(ch, crpc_ctx_background(), "/test.Svc/Three",
                            nullptr, &call),
            CRPC_OK);
  crpc_call_close_send(call);
  crpc_message m;
  for (int i = 0; i < 3; i++) {
    ASSERT_EQ(crpc_call_recv(call, &m), CRPC_OK);
    EXPECT_EQ(Str(m), "m");
    free(m.data);
  }
  EXPECT_EQ(crpc_call_recv(call, &m), CRPC_ABORTED);
  crpc_status st{};
  EXPECT_EQ(crpc_call_finish(call, &st), CRPC_ABORTED);
  EXPECT_STREQ(st.message, "stop at 3");
  crpc_status_clear(&st);
  crpc_call_free(call);
  crpc_channel_free(ch);
}

TEST_F(StreamTest, ClientStreamingSums) {
  TestServer server;
  server.Add("/test.Svc/Sum", CRPC_CLIENT_STREAMING,
             [](crpc_server_call *call, const crpc_ctx *) {
               long sum = 0;
               for (;;) {
                 crpc_message m;
                 crpc_code c = crpc_server_call_recv(call, &m);
                 if (c != CRPC_OK) return c;
                 if (m.end) break;
                 sum += std::stol(Str(m));
                 free(m.data);
               }
               std::string s = std::to_string(sum);
               return crpc_server_call_send(call, s.data(), s.size());
             });
  server.Start();
  crpc_channel *ch = crpc_channel_new(server.target().c_str(), nullptr);
  crpc_call *call;
  ASSERT_EQ(crpc_call_start(ch, crpc_ctx_background(), "/test.Svc/Sum", nullptr,
                            &call),
            CRPC_OK);
  long want = 0;
  for (int i = 1; i <= 1000; i++) {
    std::string s = std::to_string(i);
    want += i;
    ASSERT_EQ(crpc_call_send(call, s.data(), s.size()), CRPC_OK);
  }
  ASSERT_EQ(crpc_call_close_send(call), CRPC_OK);
  crpc_message m;
  ASSERT_EQ(crpc_call_recv(call, &m), CRPC_OK);
  EXPECT_EQ(Str(m), std::to_string(want));
  free(m.data);
  EXPECT_EQ(crpc_call_finish(call, nullptr), CRPC_OK);
  crpc_call_free(call);
  crpc_channel_free(ch);
}

TEST_F(StreamTest, BidiEchoWithConcurrentSendAndRecv) {
  TestServer server;
  server.Add("/test.Svc/Bidi", CRPC_BIDI_STREAMING,
             [](crpc_server_call *call, const crpc_ctx *) {
               for (;;) {
                 crpc_message m;
                 crpc_code c = crpc_server_call_recv(call, &m);
                 if (c != CRPC_OK) return c;
                 if (m.end) return CRPC_OK;
                 c = crpc_server_call_send(call, m.data, m.len);
                 free(m.data);
                 if (c != CRPC_OK) return c;
               }
             });
  server.Start();
  crpc_channel *ch = crpc_channel_new(server.target().c_str(), nullptr);
  const int kCalls = 4, kMsgs = 500;
  std::vector<std::thread> threads;
  for (int t = 0; t < kCalls; t++) {
    threads.emplace_back([&, t] {
      crpc_call *call;
      ASSERT_EQ(crpc_call_start(ch, crpc_ctx_background(), "/test.Svc/Bidi",
                                nullptr, &call),
                CRPC_OK);
      std::thread sender([&] {
        for (int i = 0; i < kMsgs; i++) {
          std::string s = std::to_string(t) + ":" + std::to_string(i);
          ASSERT_EQ(crpc_call_send(call, s.data(), s.size()), CRPC_OK);
        }
        crpc_call_close_send(call);
      });
      for (int i = 0; i < kMsgs; i++) {
        crpc_message m;
        ASSERT_EQ(crpc_call_recv(call, &m), CRPC_OK);
        EXPECT_EQ(Str(m), std::to_string(t) + ":" + std::to_string(i));
        free(m.data);
      }
      sender.join();
      crpc_message m;
      EXPECT_EQ(crpc_call_recv(call, &m), CRPC_OK);
      EXPECT_TRUE(m.end);
      EXPECT_EQ(crpc_call_finish(call, nullptr), CRPC_OK);
      crpc_call_free(call);
    });
  }
  for (auto &t : threads) t.join();
  crpc_channel_free(ch);
}

TEST_F(StreamTest, BidiCancelWakesBlockedRecvAndServer) {
  TestServer server;
  std::atomic<int> origin{-1};
  server.Add(
      "/test.Svc/Bidi", CRPC_BIDI_STREAMING,
      [&](crpc_server_call *call, const crpc_ctx *ctx) {
        crpc_message m;
        crpc_code c;
        while ((c = crpc_server_call_recv(call, &m)) == CRPC_OK && !m.end) {
          free(m.data);
        }
        origin = crpc_ctx_is_done(ctx) ? crpc_ctx_cause(ctx)->origin : 0;
        return c;
      });
  server.Start();
  crpc_channel *ch = crpc_channel_new(server.target().c_str(), nullptr);
  crpc_ctx *ctx = crpc_ctx_with_cancel(crpc_ctx_background());
  crpc_call *call;
  ASSERT_EQ(crpc_call_start(ch, ctx, "/test.Svc/Bidi", nullptr, &call),
            CRPC_OK);
  ASSERT_EQ(crpc_call_send(call, "a", 1), CRPC_OK);
  std::thread canceller([&] {
    crpc_ctx_sleep(crpc_ctx_background(), 20 * CRPC_MILLISECOND);
    crpc_ctx_cancel(ctx, CRPC_CANCELLED, "stop");
  });
  crpc_message m;
  EXPECT_EQ(crpc_call_recv(call, &m), CRPC_CANCELLED);  // blocked until then
  EXPECT_EQ(crpc_call_send(call, "b", 1), CRPC_CANCELLED);
  canceller.join();
  while (origin.load() < 0) std::this_thread::yield();
  EXPECT_EQ(origin.load(), CRPC_ORIGIN_PEER_RESET);
  crpc_call_free(call);
  crpc_ctx_release(ctx);
  crpc_channel_free(ch);
}

// Messages far larger than the 64 KiB stream window: the window is handed
// back while a message is still incomplete, so they flow both ways.
TEST_F(StreamTest, LargeMessagesBothWays) {
  TestServer server;
  server.Add("/test.Svc/Echo", CRPC_BIDI_STREAMING,
             [](crpc_server_call *call, const crpc_ctx *) {
               for (;;) {
                 crpc_message m;
                 crpc_code c = crpc_server_call_recv(call, &m);
                 if (c != CRPC_OK || m.end) return c;
                 c = crpc_server_call_send(call, m.data, m.len);
                 free(m.data);
                 if (c != CRPC_OK) return c;
               }
             });
  server.Start();
  crpc_channel *ch = crpc_channel_new(server.target().c_str(), nullptr);
  crpc_call *call;
  ASSERT_EQ(crpc_call_start(ch, crpc_ctx_background(), "/test.Svc/Echo",
                            nullptr, &call),
            CRPC_OK);
  for (int i = 0; i < 3; i++) {
    std::string big(3 * 1024 * 1024 + i, static_cast<char>('a' + i));
    ASSERT_EQ(crpc_call_send(call, big.data(), big.size()), CRPC_OK);
    crpc_message m;
    ASSERT_EQ(crpc_call_recv(call, &m), CRPC_OK);
    EXPECT_EQ(m.len, big.size());
    EXPECT_TRUE(Str(m) == big);
    free(m.data);
  }
  crpc_call_close_send(call);
  EXPECT_EQ(crpc_call_finish(call, nullptr), CRPC_OK);
  crpc_call_free(call);
  crpc_channel_free(ch);
}

TEST_F(StreamTest, MessageSizeLimitsBothWays) {
  crpc_server_options opts{};
  opts.max_recv_message_size = 1024;
  TestServer server(&opts);
  std::atomic<int> handler_code{-1};
  server.Add("/test.Svc/Take", CRPC_UNARY,
             [&](crpc_server_call *call, const crpc_ctx *) {
               crpc_message m;
               crpc_code c = crpc_server_call_recv(call, &m);
               handler_code = c;
               if (c == CRPC_OK) {
                 free(m.data);
                 std::string big(4096, 'b');
                 return crpc_server_call_send(call, big.data(), big.size());
               }
               return c;
             });
  server.Start();
  crpc_channel_options copts{};
  copts.max_recv_message_size = 2048;
  crpc_channel *ch = crpc_channel_new(server.target().c_str(), &copts);
  std::string big(2000, 'a');
  crpc_status st{};
  crpc_message resp;
  EXPECT_EQ(crpc_unary_call(ch, crpc_ctx_background(), "/test.Svc/Take",
                            nullptr, big.data(), big.size(), &resp, &st),
            CRPC_RESOURCE_EXHAUSTED);
  crpc_status_clear(&st);
  // The handler's ctx was cancelled with the status; if it had not started
  // yet it never runs, else its recv failed.
  if (handler_code.load() >= 0) {
    EXPECT_EQ(handler_code.load(), CRPC_RESOURCE_EXHAUSTED);
  }
  // The reply (4 KiB) is over the client's 2 KiB limit.
  EXPECT_EQ(crpc_unary_call(ch, crpc_ctx_background(), "/test.Svc/Take",
                            nullptr, "s", 1, &resp, &st),
            CRPC_RESOURCE_EXHAUSTED);
  crpc_status_clear(&st);
  // And the connection is still fine.
  EXPECT_EQ(crpc_unary_call(ch, crpc_ctx_background(), "/test.Svc/Nope",
                            nullptr, "s", 1, &resp, nullptr),
            CRPC_UNIMPLEMENTED);
  crpc_channel_free(ch);
}

crpc_buf *BufOf(const std::string &s) {
  crpc_buf *b = crpc_buf_new(s.size());
  if (b != nullptr) memcpy(crpc_buf_data(b), s.data(), s.size());
  return b;
}

// Echoes its one request twice, then OK.
crpc_code EchoTwice(crpc_server_call *call, const crpc_ctx *) {
  crpc_message m;
  crpc_code c = crpc_server_call_recv(call, &m);
  if (c != CRPC_OK) return c;
  for (int i = 0; i < 2 && c == CRPC_OK; i++) c = crpc_server_call_send(call, m.data, m.len);
  free(m.data);
  return c;
}

// crpc_call_start_request (what generated server-streaming `_start` stubs
// call): headers, request and END_STREAM leave from the caller's thread
// while the channel's loop sleeps; the loop is not woken before the request
// reaches the server.
TEST_F(StreamTest, StartRequestIsWrittenByTheCallerWhileTheLoopSleeps) {
  ChannelLoopWakes wakes;
  TestServer server;
  server.Add("/test.Svc/Twice", CRPC_SERVER_STREAMING,
             [&](crpc_server_call *call, const crpc_ctx *ctx) {
               wakes.AtArrival();
               return EchoTwice(call, ctx);
             });
  server.Start();
  wakes.NoteServerLoops();
  crpc_channel *ch = crpc_channel_new(server.target().c_str(), nullptr);
  ASSERT_NE(ch, nullptr);
  auto stream = [&] {
    crpc_call *call = nullptr;
    ASSERT_EQ(crpc_call_start_request(ch, crpc_ctx_background(), "/test.Svc/Twice", nullptr,
                                      BufOf("hi"), &call),
              CRPC_OK);
    ASSERT_NE(call, nullptr);
    for (int i = 0; i < 2; i++) {
      crpc_message m;
      ASSERT_EQ(crpc_call_recv(call, &m), CRPC_OK);
      EXPECT_EQ(Str(m), "hi");
      free(m.data);
    }
    crpc_message end;
    ASSERT_EQ(crpc_call_recv(call, &end), CRPC_OK);
    EXPECT_TRUE(end.end);
    crpc_status st{};
    EXPECT_EQ(crpc_call_finish(call, &st), CRPC_OK);
    crpc_status_clear(&st);
    crpc_call_free(call);
  };
  stream(); /* connected, SETTINGS exchanged */
  wakes.ExpectQuiet(20, stream);
  crpc_channel_free(ch);
}

// A start that fails consumes the request and leaves no call; a request the
// call refuses (over max_send_message_size) ends the call with that code.
TEST_F(StreamTest, StartRequestFailuresConsumeTheRequestAndEndTheCall) {
  TestServer server;
  server.Add("/test.Svc/Twice", CRPC_SERVER_STREAMING, EchoTwice);
  server.Start();
  crpc_channel_options o{};
  o.max_send_message_size = 4;
  crpc_channel *ch = crpc_channel_new(server.target().c_str(), &o);
  ASSERT_NE(ch, nullptr);
  crpc_call *call = reinterpret_cast<crpc_call *>(&o); /* must be overwritten */
  EXPECT_EQ(crpc_call_start_request(ch, crpc_ctx_background(), "no-slash", nullptr,
                                    BufOf("hi"), &call),
            CRPC_INVALID_ARGUMENT);
  EXPECT_EQ(call, nullptr);

  EXPECT_EQ(crpc_call_start_request(ch, crpc_ctx_background(), "/test.Svc/Twice", nullptr,
                                    BufOf("too long"), &call),
            CRPC_RESOURCE_EXHAUSTED);
  ASSERT_NE(call, nullptr);
  crpc_status st{};
  EXPECT_EQ(crpc_call_finish(call, &st), CRPC_RESOURCE_EXHAUSTED);
  ASSERT_NE(st.message, nullptr);
  EXPECT_NE(std::string(st.message).find("max_send_message_size of 4"), std::string::npos)
      << st.message;
  crpc_status_clear(&st);
  crpc_call_free(call);

  /* The channel still works. */
  ASSERT_EQ(crpc_call_start_request(ch, crpc_ctx_background(), "/test.Svc/Twice", nullptr,
                                    BufOf("ok"), &call),
            CRPC_OK);
  crpc_message m;
  ASSERT_EQ(crpc_call_recv(call, &m), CRPC_OK);
  EXPECT_EQ(Str(m), "ok");
  free(m.data);
  crpc_call_free(call);
  crpc_channel_free(ch);
}

}  // namespace
}  // namespace crpc_test
