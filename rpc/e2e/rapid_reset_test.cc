// The other side of "heavy legitimate cancelling never drops the
// connection" (cancel_test): an abusive rapid-reset flood (CVE-2023-44487:
// HEADERS + RST_STREAM as fast as the socket takes them, never reading the
// answers) is still cut off by the server. Driven by a raw nghttp2 client.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rpc/e2e/e2e_util.h"

namespace crpc_e2e {
namespace {

struct RawClient {
  int fd = -1;
  bool goaway = false;
  bool closed = false;  // EOF or error from the server side
  uint32_t goaway_error = 0;
};

ssize_t SendCb(nghttp2_session *, const uint8_t *data, size_t len, int, void *ud) {
  auto *c = static_cast<RawClient *>(ud);
  size_t off = 0;
  while (off < len) {
    ssize_t w = send(c->fd, data + off, len - off, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        pollfd p{c->fd, POLLOUT, 0};
        if (poll(&p, 1, 2000) <= 0) return NGHTTP2_ERR_CALLBACK_FAILURE;
        continue;
      }
      c->closed = true;
      return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    off += static_cast<size_t>(w);
  }
  return static_cast<ssize_t>(len);
}

int FrameRecvCb(nghttp2_session *, const nghttp2_frame *frame, void *ud) {
  auto *c = static_cast<RawClient *>(ud);
  if (frame->hd.type == NGHTTP2_GOAWAY) {
    c->goaway = true;
    c->goaway_error = frame->goaway.error_code;
  }
  return 0;
}

// Reads whatever the server sent (non-blocking) into the session.
void Drain(nghttp2_session *s, RawClient *c) {
  uint8_t buf[16384];
  for (;;) {
    ssize_t n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0) {
      c->closed = true;
      return;
    }
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) c->closed = true;
      return;
    }
    if (nghttp2_session_mem_recv(s, buf, static_cast<size_t>(n)) < 0) {
      c->closed = true;
      return;
    }
  }
}

using RapidResetTest = E2ETest;

TEST_F(RapidResetTest, AbusiveRapidResetFlood_ServerCutsTheConnection) {
  Start();
  RawClient c;
  c.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port_));
  ASSERT_EQ(0, connect(c.fd, reinterpret_cast<sockaddr *>(&a), sizeof a));

  nghttp2_session_callbacks *cbs;
  ASSERT_EQ(0, nghttp2_session_callbacks_new(&cbs));
  nghttp2_session_callbacks_set_send_callback(cbs, SendCb);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, FrameRecvCb);
  nghttp2_session *s;
  ASSERT_EQ(0, nghttp2_session_client_new(&s, cbs, &c));
  nghttp2_session_callbacks_del(cbs);
  nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, nullptr, 0);

  std::string authority = "127.0.0.1:" + std::to_string(port_);
  auto nv = [](const char *k, const std::string &v) {
    return nghttp2_nv{(uint8_t *)k, (uint8_t *)v.data(), strlen(k), v.size(),
                      NGHTTP2_NV_FLAG_NONE};
  };
  const std::string post = "POST", scheme = "http", path = "/crpc.test.Test/Hang",
                    ct = "application/grpc", te = "trailers";
  nghttp2_nv hdrs[] = {nv(":method", post), nv(":scheme", scheme), nv(":authority", authority),
                       nv(":path", path),   nv("content-type", ct), nv("te", te)};

  // Far more resets than any burst allowance, as fast as possible.
  const int max_pairs = 50000;
  int pairs = 0;
  int64_t t0 = crpc_now_ns();
  for (; pairs < max_pairs && !c.closed && !c.goaway; pairs++) {
    int32_t sid = nghttp2_submit_request(s, nullptr, hdrs, 6, nullptr, nullptr);
    if (sid < 0) break;
    if (nghttp2_session_send(s) != 0) break;  // HEADERS on the wire first
    nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, sid, NGHTTP2_CANCEL);
    if (nghttp2_session_send(s) != 0) break;
    if (pairs % 256 == 0) Drain(s, &c);
  }
  // Give the server a bounded moment to react to the last frames.
  int64_t until = crpc_now_ns() + 3 * kSec;
  while (!c.closed && !c.goaway && crpc_now_ns() < until) {
    pollfd p{c.fd, POLLIN, 0};
    if (poll(&p, 1, 100) > 0) Drain(s, &c);
  }
  double secs = static_cast<double>(crpc_now_ns() - t0) / 1e9;
  printf("rapid-reset flood: %d HEADERS+RST_STREAM pairs in %.2f s; server %s (GOAWAY error "
         "%u)\n",
         pairs, secs, c.goaway ? "sent GOAWAY" : (c.closed ? "closed the socket" : "did nothing"),
         c.goaway_error);
  EXPECT_TRUE(c.goaway || c.closed) << "the server tolerated " << pairs << " rapid resets";
  nghttp2_session_del(s);
  close(c.fd);

  // The server itself is fine: other connections work.
  Ctx ctx = WithTimeout(10 * kSec);
  UnaryResult r = Unary(channel_, ctx.get(), M("Echo"), "still serving");
  EXPECT_EQ(CRPC_OK, r.code) << r.message;
  EXPECT_TRUE(Eventually([&] { return crpc_test_service_running(svc_) == 0; }, 10000));
}

}  // namespace
}  // namespace crpc_e2e
