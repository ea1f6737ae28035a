// The server against a raw HTTP/2 client that sends exactly the frames a
// test needs: request checks (content-type, method, grpc-timeout,
// grpc-encoding), the server-side deadline, response framing, and the
// rapid-reset policy.
#include "crpc/server.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "rpc/channel/test_util.h"
#include "rpc/server/raw_client.h"
#include "rpc/wire/compress.h"

namespace crpc_test {
namespace {

crpc_code Echo(crpc_server_call *call, const crpc_ctx *) {
  crpc_message m;
  crpc_code c = crpc_server_call_recv(call, &m);
  if (c != CRPC_OK || m.end) return c;
  c = crpc_server_call_send(call, m.data, m.len);
  free(m.data);
  return c;
}

class ServerTest : public LeakCheckTest {
 protected:
  void StartEcho() {
    server_.Add("/test.Svc/Echo", CRPC_UNARY, Echo);
    server_.Start();
  }
  // Calls end (and free their contexts) on the server's threads: shut it
  // down before counting.
  void TearDown() override {
    crpc_server_shutdown(server_.get(), 0);
    LeakCheckTest::TearDown();
  }
  TestServer server_;
};

TEST_F(ServerTest, UnaryResponseIsWellFormed) {
  StartEcho();
  RawClient c(server_.port());
  std::string body = Frame("hi");
  int32_t id = c.Request("/test.Svc/Echo", {}, &body);
  ASSERT_TRUE(c.PumpUntil([&] { return c.stream(id).closed; }));
  auto &s = c.stream(id);
  EXPECT_EQ(s.headers[":status"], "200");
  EXPECT_EQ(s.headers["content-type"], "application/grpc");
  EXPECT_EQ(s.headers["grpc-accept-encoding"], "identity,gzip,deflate");
  EXPECT_EQ(s.headers["grpc-status"], "0");
  EXPECT_EQ(s.data, Frame("hi"));
  EXPECT_EQ(s.error_code, 0u);
}

TEST_F(ServerTest, FinishingBeforeClientHalfClosesResetsWithNoError) {
  StartEcho();
  RawClient c(server_.port());
  std::string body = Frame("hi");
  int32_t id = c.Request("/test.Svc/Echo", {}, &body, /*end=*/false);
  ASSERT_TRUE(c.PumpUntil([&] { return c.stream(id).closed; }));
  EXPECT_EQ(c.stream(id).headers["grpc-status"], "0");
  EXPECT_EQ(c.stream(id).error_code, (uint32_t)NGHTTP2_NO_ERROR);
}

// A blocking unary handler's first response goes out with its status (no
// kick of its own); a second send must still make the first one leave,
// even when it has to wait for room behind it: both messages arrive.
crpc_code SendTwoLarge(crpc_server_call *call, const crpc_ctx *) {
  crpc_message m;
  crpc_code c = crpc_server_call_recv(call, &m);
  if (c != CRPC_OK || m.end) return c;
  free(m.data);
  std::string big(300 * 1024, 'x');  // over 4 x the 64 KiB send buffer
  c = crpc_server_call_send(call, big.data(), big.size());
  if (c == CRPC_OK) c = crpc_server_call_send(call, big.data(), big.size());
  return c;
}

TEST_F(ServerTest, UnaryHandlerSendingTwiceIsNotStuckBehindItsFirstMessage) {
  server_.Add("/test.Svc/Two", CRPC_UNARY, SendTwoLarge);
  server_.Start();
  RawClient c(server_.port());
  std::string body = Frame("go");
  int32_t id = c.Request("/test.Svc/Two", {}, &body);
  ASSERT_TRUE(c.PumpUntil([&] { return c.stream(id).closed; }));
  const std::string big(300 * 1024, 'x');
  EXPECT_EQ(c.stream(id).headers["grpc-status"], "0");
  EXPECT_EQ(c.stream(id).data, Frame(big) + Frame(big));
}

TEST_F(ServerTest, NonGrpcContentTypeGets415) {
  StartEcho();
  RawClient c(server_.port());
  int32_t id = c.Request("/test.Svc/Echo", {{"content-type", "text/html"}});
  ASSERT_TRUE(c.PumpUntil([&] { return c.stream(id).closed; }));
  EXPECT_EQ(c.stream(id).headers[":status"], "415");
  EXPECT_EQ(c.stream(id).headers["grpc-status"], "13");
  // "application/grpc+proto" is gRPC.
  std::string body = Frame("x");
  id = c.Request("/test.Svc/Echo", {{"content-type", "application/grpc+proto"}},
                 &body);
  ASSERT_TRUE(c.PumpUntil([&] { return c.stream(id).closed; }));
  EXPECT_EQ(c.stream(id).headers["grpc-status"], "0");
  id = c.Request("/test.Svc/Echo", {{":method", "GET"}});
  ASSERT_TRUE(c.PumpUntil([&] { return c.stream(id).closed; }));
  EXPECT_EQ(c.stream(id).headers[":status"], "405");
}

TEST_F(ServerTest, UnknownMethodIsTrailersOnlyUnimplemented) {
  StartEcho();
  RawClient c(server_.port());
  int32_t id = c.Request("/test.Svc/Nope");
  ASSERT_TRUE(c.PumpUntil([&] { return c.stream(id).closed; }));
  auto &s = c.stream(id);
  EXPECT_EQ(s.headers[":status"], "200");
  EXPECT_EQ(s.headers["grpc-status"], "12");
  EXPECT_NE(s.headers["grpc-message"].find("/test.Svc/Nope"),
            std::string::npos);
  EXPECT_TRUE(s.data.empty());
}

TEST_F(ServerTest, MalformedTimeoutIsACleanInternalError) {
  StartEcho();
  RawClient c(server_.port());
  for (const char *bad : {"abc", "123456789S", "-1S", "10", "1x", ""}) {
    int32_t id = c.Request("/test.Svc/Echo", {{"grpc-timeout", bad}});
    ASSERT_TRUE(c.PumpUntil([&] { return c.stream(id).closed; })) << bad;
    EXPECT_EQ(c.stream(id).headers["grpc-status"], "13") << bad;
    EXPECT_NE(c.stream(id).headers["grpc-message"].find("grpc-timeout"),
              std::string::npos);
  }
}

TEST_F(ServerTest, GrpcTimeoutExpiresOnTheServer) {
  std::atomic<int> code{-1}, origin{-1};
  std::atomic<int64_t> late{0}, deadline{0};
  server_.Add("/test.Svc/Hang", CRPC_UNARY,
              [&](crpc_server_call *, const crpc_ctx *ctx) {
                deadline = crpc_ctx_deadline(ctx);
                crpc_code c = crpc_ctx_wait(ctx);
                late = crpc_now_ns() - crpc_ctx_deadline(ctx);
                origin = crpc_ctx_cause(ctx)->origin;
                code = c;
                return c;
              });
  server_.Start();
  RawClient c(server_.port());
  for (const char *t : {"50m", "50000u", "50000000n", "1S", "1M", "1H"}) {
    int64_t t0 = crpc_now_ns();
    code = -1;
    int32_t id = c.Request("/test.Svc/Hang", {{"grpc-timeout", t}});
    ASSERT_TRUE(c.PumpUntil([&] { return deadline.load() != 0; }));
    int64_t d = deadline.exchange(0);
    if (t[strlen(t) - 1] == 'S') {
      EXPECT_NEAR(d - t0, CRPC_SECOND, 50 * CRPC_MILLISECOND) << t;
    } else if (t[strlen(t) - 1] == 'M') {
      EXPECT_NEAR(d - t0, 60 * CRPC_SECOND, 50 * CRPC_MILLISECOND) << t;
    } else if (t[strlen(t) - 1] == 'H') {
      EXPECT_NEAR(d - t0, 3600 * CRPC_SECOND, 50 * CRPC_MILLISECOND) << t;
    }
    if (d - t0 > 100 * CRPC_MILLISECOND) {
      c.Reset(id);  // long ones: just checked the deadline
      ASSERT_TRUE(c.PumpUntil([&] { return code.load() >= 0; }));
      continue;
    }
    EXPECT_NEAR(d - t0, 50 * CRPC_MILLISECOND, 20 * CRPC_MILLISECOND) << t;
    ASSERT_TRUE(c.PumpUntil([&] { return c.stream(id).closed; }));
    EXPECT_EQ(c.stream(id).headers["grpc-status"], "4") << t;
    // The status goes out from the loop; the handler may wake just after.
    ASSERT_TRUE(c.PumpUntil([&] { return code.load() >= 0; }));
    EXPECT_EQ(code.load(), CRPC_DEADLINE_EXCEEDED);
    EXPECT_EQ(origin.load(), CRPC_ORIGIN_DEADLINE);
    printf("grpc-timeout %s: handler saw the deadline %lld us late\n", t,
           (long long)late.load() / 1000);
  }
  // A zero timeout has already expired: DEADLINE_EXCEEDED at once.
  int32_t id = c.Request("/test.Svc/Hang", {{"grpc-timeout", "0m"}});
  ASSERT_TRUE(c.PumpUntil([&] { return c.stream(id).closed; }));
  EXPECT_EQ(c.stream(id).headers["grpc-status"], "4");
}

TEST_F(ServerTest, UnknownEncodingIsUnimplemented) {
  StartEcho();
  RawClient c(server_.port());
  int32_t id = c.Request("/test.Svc/Echo", {{"grpc-encoding", "br"}});
  ASSERT_TRUE(c.PumpUntil([&] { return c.stream(id).closed; }));
  EXPECT_EQ(c.stream(id).headers["grpc-status"], "12");
  EXPECT_EQ(c.stream(id).headers["grpc-accept-encoding"],
            "identity,gzip,deflate");
}

TEST_F(ServerTest, GzipRequestIsDecompressed) {
  StartEcho();
  RawClient c(server_.port());
  std::string msg(5000, 'z');
  uint8_t *z;
  size_t zlen;
  ASSERT_EQ(crpc_wire_compress(CRPC_WIRE_ENCODING_GZIP, msg.data(), msg.size(),
                               &z, &zlen, nullptr),
            CRPC_OK);
  std::string body = Frame(std::string((char *)z, zlen), true);
  free(z);
  int32_t id = c.Request("/test.Svc/Echo", {{"grpc-encoding", "gzip"}}, &body);
  ASSERT_TRUE(c.PumpUntil([&] { return c.stream(id).closed; }));
  EXPECT_EQ(c.stream(id).headers["grpc-status"], "0");
  EXPECT_EQ(c.stream(id).data, Frame(msg));
  // The compressed flag without an encoding is a protocol error.
  body = Frame("x", true);
  id = c.Request("/test.Svc/Echo", {}, &body);
  ASSERT_TRUE(c.PumpUntil([&] { return c.stream(id).closed; }));
  EXPECT_EQ(c.stream(id).headers["grpc-status"], "13");
}

// crpc_server_call_set_compression is honoured only if the client's
// grpc-accept-encoding lists the encoding; absent means identity only.
TEST_F(ServerTest, ResponseCompressionFollowsClientAcceptEncoding) {
  server_.Add("/test.Svc/Gzip", CRPC_UNARY,
              [](crpc_server_call *call, const crpc_ctx *) {
                crpc_message m;
                crpc_code c = crpc_server_call_recv(call, &m);
                if (c != CRPC_OK || m.end) return c;
                free(m.data);
                c = crpc_server_call_set_compression(call, "gzip");
                if (c != CRPC_OK) return c;
                std::string big(4000, 'g');
                c = crpc_server_call_send(call, big.data(), big.size());
                if (c != CRPC_OK) return c;
                return crpc_server_call_send_flags(call, "raw", 3,
                                                   CRPC_SEND_NO_COMPRESS);
              });
  server_.Start();
  RawClient c(server_.port());
  std::string body = Frame("x");
  std::string big(4000, 'g');
  struct {
    const char *accept;  // NULL: no header
    bool compressed;
  } cases[] = {{"identity,gzip", true},
               {"deflate , gzip", true},
               {"identity,deflate", false},
               {nullptr, false}};
  for (const auto &tc : cases) {
    std::vector<std::pair<std::string, std::string>> h;
    if (tc.accept != nullptr) h.push_back({"grpc-accept-encoding", tc.accept});
    int32_t id = c.Request("/test.Svc/Gzip", h, &body);
    ASSERT_TRUE(c.PumpUntil([&] { return c.stream(id).closed; }));
    RawClient::Stream &s = c.stream(id);
    const char *what = tc.accept ? tc.accept : "(none)";
    EXPECT_EQ(s.headers["grpc-status"], "0") << what;
    if (!tc.compressed) {
      EXPECT_EQ(s.headers.count("grpc-encoding"), 0u) << what;
      EXPECT_EQ(s.data, Frame(big) + Frame("raw")) << what;
      continue;
    }
    EXPECT_EQ(s.headers["grpc-encoding"], "gzip") << what;
    ASSERT_GT(s.data.size(), 5u);
    EXPECT_EQ(s.data[0], 1) << "compressed flag";
    uint32_t n = (uint8_t)s.data[1] << 24 | (uint8_t)s.data[2] << 16 |
                 (uint8_t)s.data[3] << 8 | (uint8_t)s.data[4];
    ASSERT_EQ(s.data.size(), 5 + n + Frame("raw").size()) << what;
    uint8_t *out;
    size_t out_len;
    ASSERT_EQ(crpc_wire_decompress(CRPC_WIRE_ENCODING_GZIP, s.data.data() + 5,
                                   n, 1 << 20, &out, &out_len, nullptr),
              CRPC_OK);
    EXPECT_EQ(std::string((char *)out, out_len), big);
    free(out);
    EXPECT_EQ(s.data.substr(5 + n), Frame("raw")) << "CRPC_SEND_NO_COMPRESS";
  }
}

TEST_F(ServerTest, ClientResetCancelsHandlerCtxWithErrorCode) {
  std::atomic<int> origin{-1};
  std::string message;
  std::atomic<bool> started{false};
  server_.Add("/test.Svc/Hang", CRPC_UNARY,
              [&](crpc_server_call *, const crpc_ctx *ctx) {
                started = true;
                crpc_code c = crpc_ctx_wait(ctx);
                message = crpc_ctx_cause(ctx)->message;
                origin = crpc_ctx_cause(ctx)->origin;
                return c;
              });
  server_.Start();
  RawClient c(server_.port());
  int32_t id = c.Request("/test.Svc/Hang");
  ASSERT_TRUE(c.PumpUntil([&] { return started.load(); }));
  c.Reset(id, NGHTTP2_INTERNAL_ERROR);
  ASSERT_TRUE(c.PumpUntil([&] { return origin.load() >= 0; }));
  EXPECT_EQ(origin.load(), CRPC_ORIGIN_PEER_RESET);
  EXPECT_EQ(message, "peer reset the stream (HTTP/2 error 2)");
}

// A client blasting HEADERS+RST_STREAM pairs (CVE-2023-44487) is cut off
// with GOAWAY long before it gets anywhere near its 100,000 streams.
TEST_F(ServerTest, RapidResetFloodGetsGoaway) {
  server_.Add("/test.Svc/Hang", CRPC_UNARY,
              [&](crpc_server_call *, const crpc_ctx *ctx) {
                return crpc_ctx_wait(ctx);
              });
  server_.Start();
  RawClient c(server_.port());
  int sent = 0;
  while (sent < 100000 && !c.goaway() && !c.eof()) {
    for (int i = 0; i < 500; i++) {
      int32_t id = c.Request("/test.Svc/Hang");
      if (id < 0) break;
      c.Send();  // else nghttp2 drops the HEADERS instead of resetting
      c.Reset(id);
      sent++;
    }
    c.PumpUntil([&] { return c.goaway(); }, CRPC_MILLISECOND);
  }
  c.PumpUntil([&] { return c.goaway(); }, CRPC_SECOND);
  ASSERT_TRUE(c.goaway());
  // The GOAWAY names the last stream the server took: the burst (10,000)
  // plus what the refill (1,000/s) allowed meanwhile. The client itself
  // notices only between batches, hence `sent` is larger.
  int processed = c.goaway_last_stream() / 2 + 1;
  EXPECT_LT(processed, 20000);
  EXPECT_GE(processed, 10000);
  printf(
      "rapid reset flood: GOAWAY after %d HEADERS+RST pairs processed "
      "(%d sent)\n",
      processed, sent);
}

}  // namespace
}  // namespace crpc_test
