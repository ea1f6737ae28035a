// The client against a scripted raw HTTP/2 server: what the request looks
// like on the wire (te, user-agent, grpc-timeout, content-type) and how
// odd answers map to a status (HTTP errors, resets, missing grpc-status).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "crpc/channel.h"
#include "rpc/channel/raw_server.h"
#include "rpc/channel/test_util.h"

namespace crpc_test {
namespace {

// A response with a body, as a proxy's error page comes (HTML).
void HeadersWithBody(nghttp2_session *s, int32_t id,
                     std::vector<std::pair<std::string, std::string>> h,
                     const std::string *body) {
  std::vector<nghttp2_nv> nv;
  for (auto &e : h) {
    nv.push_back({(uint8_t *)e.first.data(), (uint8_t *)e.second.data(),
                  e.first.size(), e.second.size(), NGHTTP2_NV_FLAG_NONE});
  }
  nghttp2_data_provider prd;
  prd.source.ptr = const_cast<std::string *>(body);
  prd.read_callback = [](nghttp2_session *, int32_t, uint8_t *buf, size_t len,
                         uint32_t *flags, nghttp2_data_source *src,
                         void *) -> ssize_t {
    auto *b = static_cast<const std::string *>(src->ptr);
    size_t n = std::min(len, b->size());  // small: one frame
    memcpy(buf, b->data(), n);
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
  };
  nghttp2_submit_response(s, id, nv.data(), nv.size(), &prd);
}

class ClientWireTest : public LeakCheckTest {};

crpc_code Call(const std::string &target, const crpc_ctx *ctx,
               crpc_status *st) {
  crpc_channel *ch = crpc_channel_new(target.c_str(), nullptr);
  crpc_message resp;
  crpc_code c = crpc_unary_call(ch, ctx, "/x.Y/Z", nullptr, "q", 1, &resp, st);
  if (c == CRPC_OK) free(resp.data);
  crpc_channel_free(ch);
  return c;
}

TEST_F(ClientWireTest, RequestHeadersOnTheWire) {
  RawServer srv([](nghttp2_session *s, int32_t id) {
    Headers(s, id,
            {{":status", "200"},
             {"content-type", "application/grpc"},
             {"grpc-status", "5"},
             {"grpc-message", "x%20y"}});
  });
  Ctx ctx(crpc_ctx_with_timeout(crpc_ctx_background(), 7 * CRPC_SECOND));
  crpc_status st{};
  EXPECT_EQ(Call(srv.target(), ctx, &st), CRPC_NOT_FOUND);
  EXPECT_STREQ(st.message, "x y");  // percent-decoded
  crpc_status_clear(&st);
  auto h = srv.headers();
  EXPECT_EQ(h[":method"], "POST");
  EXPECT_EQ(h[":path"], "/x.Y/Z");
  EXPECT_EQ(h[":scheme"], "http");
  EXPECT_EQ(h[":authority"], srv.target());
  EXPECT_EQ(h["content-type"], "application/grpc");
  EXPECT_EQ(h["te"], "trailers");
  EXPECT_EQ(h["user-agent"], "crpc/0.1");
  // The remaining time, at most 8 digits and a unit, a bit under 7 s.
  const std::string &t = h["grpc-timeout"];
  ASSERT_GE(t.size(), 2u);
  ASSERT_LE(t.size(), 9u);
  int64_t ns = std::stoll(t.substr(0, t.size() - 1));
  char unit = t.back();
  int64_t mult = unit == 'n'   ? 1
                 : unit == 'u' ? 1000
                 : unit == 'm' ? 1000000
                 : unit == 'S' ? CRPC_SECOND
                               : 0;
  ASSERT_NE(mult, 0) << t;
  EXPECT_GT(ns * mult, 6 * CRPC_SECOND);
  EXPECT_LE(ns * mult, 7 * CRPC_SECOND);
  // No deadline, no header.
  EXPECT_EQ(Call(srv.target(), crpc_ctx_background(), nullptr), CRPC_NOT_FOUND);
  EXPECT_EQ(srv.headers().count("grpc-timeout"), 0u);
}

TEST_F(ClientWireTest, HttpStatusWithoutGrpcStatusMapsPerSpec) {
  for (auto [http, want] : std::vector<std::pair<const char *, crpc_code>>{
           {"503", CRPC_UNAVAILABLE},
           {"404", CRPC_UNIMPLEMENTED},
           {"401", CRPC_UNAUTHENTICATED},
           {"403", CRPC_PERMISSION_DENIED},
           {"429", CRPC_UNAVAILABLE},
           {"400", CRPC_INTERNAL},
           {"500", CRPC_UNKNOWN}}) {
    std::string code = http;
    RawServer srv([code](nghttp2_session *s, int32_t id) {
      Headers(s, id, {{":status", code}, {"content-type", "text/plain"}});
    });
    crpc_status st{};
    EXPECT_EQ(Call(srv.target(), crpc_ctx_background(), &st), want) << http;
    EXPECT_NE(std::string(st.message).find(http), std::string::npos);
    crpc_status_clear(&st);
  }
}

// nginx answering 502 with its HTML error page (seen in a rolling restart
// behind grpc_pass): the status comes from the HTTP status, and the body is
// not read as gRPC messages ('<' is no compressed flag).
TEST_F(ClientWireTest, NonGrpcErrorBodyIsIgnoredAndHttpStatusMaps) {
  static const std::string page =
      "<html><head><title>502 Bad Gateway</title></head></html>";
  RawServer srv([](nghttp2_session *s, int32_t id) {
    HeadersWithBody(s, id, {{":status", "502"}, {"content-type", "text/html"}},
                    &page);
  });
  crpc_status st{};
  EXPECT_EQ(Call(srv.target(), crpc_ctx_background(), &st), CRPC_UNAVAILABLE);
  EXPECT_NE(std::string(st.message).find("502"), std::string::npos) << st.message;
  crpc_status_clear(&st);
}

TEST_F(ClientWireTest, ResetsAndMissingStatusMapCleanly) {
  for (auto [rst, want] : std::vector<std::pair<uint32_t, crpc_code>>{
           {NGHTTP2_REFUSED_STREAM, CRPC_UNAVAILABLE},
           {NGHTTP2_CANCEL, CRPC_CANCELLED},
           {NGHTTP2_ENHANCE_YOUR_CALM, CRPC_RESOURCE_EXHAUSTED},
           {NGHTTP2_NO_ERROR, CRPC_INTERNAL},
           {NGHTTP2_PROTOCOL_ERROR, CRPC_INTERNAL}}) {
    uint32_t code = rst;
    RawServer srv([code](nghttp2_session *s, int32_t id) {
      nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, id, code);
    });
    EXPECT_EQ(Call(srv.target(), crpc_ctx_background(), nullptr), want) << rst;
  }
  RawServer srv([](nghttp2_session *s, int32_t id) {
    Headers(s, id, {{":status", "200"}, {"content-type", "application/grpc"}});
  });
  crpc_status st{};
  EXPECT_EQ(Call(srv.target(), crpc_ctx_background(), &st), CRPC_INTERNAL);
  crpc_status_clear(&st);
}

// REFUSED_STREAM means the server did not process the stream: the client
// sends the request again, body included, on a new stream (gRPC's
// transparent retry), and the call gets the real answer.
TEST_F(ClientWireTest, RefusedStreamIsSentAgainWithItsBody) {
  std::atomic<int> requests{0};
  RawServer srv([&](nghttp2_session *s, int32_t id) {
    if (requests++ == 0) {
      nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, id,
                                NGHTTP2_REFUSED_STREAM);
      return;
    }
    Headers(s, id, {{":status", "200"},
                    {"content-type", "application/grpc"},
                    {"grpc-status", "5"},
                    {"grpc-message", "second try"}});
  });
  crpc_status st{};
  EXPECT_EQ(Call(srv.target(), crpc_ctx_background(), &st), CRPC_NOT_FOUND)
      << st.message;
  EXPECT_STREQ(st.message, "second try");
  crpc_status_clear(&st);
  EXPECT_EQ(requests.load(), 2);
  // The retry carried the whole request: one framed message, "q".
  EXPECT_EQ(srv.body(), std::string("\0\0\0\0\x01q", 6));
}

// A server that resets with CANCEL just as the client's deadline passes:
// the client still reports DEADLINE_EXCEEDED.
TEST_F(ClientWireTest, DeadlineWinsOverServerCancel) {
  RawServer srv([](nghttp2_session *s, int32_t id) {
    crpc_ctx_sleep(crpc_ctx_background(), 30 * CRPC_MILLISECOND);
    nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
  });
  Ctx ctx(crpc_ctx_with_timeout(crpc_ctx_background(), 30 * CRPC_MILLISECOND));
  EXPECT_EQ(Call(srv.target(), ctx, nullptr), CRPC_DEADLINE_EXCEEDED);
}

TEST_F(ClientWireTest, ServerThatNeverAnswersHitsTheDeadline) {
  RawServer srv([](nghttp2_session *, int32_t) {});
  Ctx ctx(crpc_ctx_with_timeout(crpc_ctx_background(), 50 * CRPC_MILLISECOND));
  int64_t t0 = crpc_now_ns();
  EXPECT_EQ(Call(srv.target(), ctx, nullptr), CRPC_DEADLINE_EXCEEDED);
  EXPECT_LT(crpc_now_ns() - t0, CRPC_SECOND);
}

}  // namespace
}  // namespace crpc_test
