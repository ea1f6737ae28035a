// Lingering close (rpc/h2/conn.h): when a server connection ends gracefully
// its peer reads every last byte (trailers, GOAWAY) and then a FIN, never a
// RST, even though it sent bytes the server has not read; the lingering
// socket closes at the peer's EOF or after CRPC_H2_LINGER_NS, and at once
// when the server is freed (no fd outlives crpc_server_free).
//
// The unread bytes are HTTP/2 frames of an unknown type (which a peer must
// ignore, RFC 9113 4.1). To make "not read yet" certain rather than a race
// with the server's loop, the test raises SO_RCVLOWAT on the server's end
// of the connection (same process) above their size: epoll then does not
// report them, exactly as if they had arrived just after the server's last
// read. A plain close() with them queued answers with a RST. Real sockets,
// a real crpc server, a raw client.
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "crpc/server.h"
#include "rpc/channel/test_util.h"
#include "rpc/h2/conn.h"
#include "rpc/server/raw_client.h"

namespace crpc_test {
namespace {

constexpr int64_t kMs = CRPC_MILLISECOND;
constexpr int32_t kMaxStreamId = 0x7fffffff;  // the first GOAWAY's last id
// Scheduling slack for loaded CI boxes and sanitizers.
constexpr int64_t kSlack = 2000 * kMs;

class LingerTest : public LeakCheckTest {};

// GOAWAY(last, NO_ERROR) with no debug data, byte for byte as nghttp2
// sends it: a 9-byte header (length 8, type 7, stream 0), last, the code.
std::string GoawayFrame(int32_t last) {
  std::string f("\0\0\x08\x07\0\0\0\0\0", 9);
  uint32_t be = htonl(static_cast<uint32_t>(last));
  f.append(reinterpret_cast<const char *>(&be), 4);
  f.append(4, '\0');  // NO_ERROR
  return f;
}

// Reads fd into *in until EOF (returns 0), an error (its errno) or the time
// is up (ETIMEDOUT).
int ReadToEnd(int fd, std::string *in, int64_t timeout_ns) {
  int64_t until = crpc_now_ns() + timeout_ns;
  for (;;) {
    int64_t left = until - crpc_now_ns();
    if (left <= 0) return ETIMEDOUT;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left / kMs) + 1) <= 0) continue;
    char buf[65536];
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n == 0) return 0;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    in->append(buf, static_cast<size_t>(n));
  }
}

// count frames of an unknown type (0xbb) on stream 0, zero payloads.
std::string JunkFrames(size_t payload_len, int count) {
  std::string one(9 + payload_len, '\0');
  one[0] = static_cast<char>(payload_len >> 16);
  one[1] = static_cast<char>(payload_len >> 8);
  one[2] = static_cast<char>(payload_len);
  one[3] = static_cast<char>(0xbb);
  std::string out;
  for (int i = 0; i < count; i++) out += one;
  return out;
}

// The server's end of the client socket fd: the socket in this process
// whose local address is fd's peer and whose peer is fd's local address.
int ServerEndOf(int fd) {
  sockaddr_in mine{}, theirs{};
  socklen_t len = sizeof(mine);
  if (getsockname(fd, reinterpret_cast<sockaddr *>(&mine), &len) != 0) {
    return -1;
  }
  len = sizeof(theirs);
  if (getpeername(fd, reinterpret_cast<sockaddr *>(&theirs), &len) != 0) {
    return -1;
  }
  for (int cand = 0; cand < 1024; cand++) {
    sockaddr_in l{}, p{};
    socklen_t ll = sizeof(l), pl = sizeof(p);
    if (cand == fd ||
        getsockname(cand, reinterpret_cast<sockaddr *>(&l), &ll) != 0 ||
        getpeername(cand, reinterpret_cast<sockaddr *>(&p), &pl) != 0 ||
        l.sin_family != AF_INET || p.sin_family != AF_INET) {
      continue;
    }
    if (l.sin_port == theirs.sin_port && p.sin_port == mine.sin_port &&
        l.sin_addr.s_addr == theirs.sin_addr.s_addr &&
        p.sin_addr.s_addr == mine.sin_addr.s_addr) {
      return cand;
    }
  }
  return -1;
}

// Sends junk the server will not read before it closes (see the top).
void SendUnreadJunk(int client_fd) {
  int server_fd = ServerEndOf(client_fd);
  ASSERT_GE(server_fd, 0);
  int lowat = 1 << 20;
  ASSERT_EQ(setsockopt(server_fd, SOL_SOCKET, SO_RCVLOWAT, &lowat,
                       sizeof(lowat)),
            0);
  std::string junk = JunkFrames(16384, 4);
  ASSERT_LT(junk.size(), static_cast<size_t>(lowat));
  ASSERT_EQ(send(client_fd, junk.data(), junk.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(junk.size()));
}

// The last stream finishes after the final GOAWAY, with unread bytes from
// the client at the server: the response and trailers, then a FIN. (Before
// lingering, the close() right after the trailers answered with a RST,
// which on a real network can destroy the trailers still in flight.) Bytes
// the client sends after the FIN are read and dropped, and its own FIN
// ends the linger.
TEST_F(LingerTest, LastResponseThenFinDespiteUnreadInput) {
  crpc_server_options so{};
  so.max_connection_age_ns = 100 * kMs;  // the GOAWAYs start mid-call
  TestServer server(&so);
  std::atomic<bool> started{false}, release{false};
  server.Add("/linger.S/Hold", CRPC_UNARY,
             [&](crpc_server_call *call, const crpc_ctx *ctx) {
               started = true;
               while (!release.load()) {
                 crpc_code c = crpc_ctx_sleep(ctx, kMs);
                 if (c != CRPC_OK) return c;
               }
               return EchoOnce(call);
             });
  server.Start();
  const int fds_serving = CountFds();
  RawClient raw(server.port());
  std::string body = Frame(std::string(1000, 'x'));
  int32_t s1 = raw.Request("/linger.S/Hold", {}, &body);
  ASSERT_GT(s1, 0);
  ASSERT_TRUE(raw.PumpUntil([&] { return started.load(); }));
  // Our session ACKs the first GOAWAY's PING; the final one names s1.
  ASSERT_TRUE(raw.PumpUntil(
      [&] { return raw.goaway() && raw.goaway_last_stream() == s1; },
      kSlack));

  // From here our session neither reads nor writes: what arrives is fed
  // to it by hand below.
  SendUnreadJunk(raw.fd());
  release = true;
  std::string in;
  int end = ReadToEnd(raw.fd(), &in, kSlack);
  EXPECT_EQ(end, 0) << "the connection ended with " << strerror(end)
                    << ", not a FIN";
  ASSERT_GE(nghttp2_session_mem_recv(raw.session(),
                                     reinterpret_cast<const uint8_t *>(
                                         in.data()),
                                     in.size()),
            0);
  EXPECT_TRUE(raw.stream(s1).closed);
  EXPECT_EQ(raw.stream(s1).headers["grpc-status"], "0");
  EXPECT_EQ(raw.stream(s1).data, body);

  // More bytes, then our FIN: the server reads them off, sees EOF and
  // closes its socket well before the linger bound.
  std::string more = JunkFrames(1000, 8);
  EXPECT_EQ(send(raw.fd(), more.data(), more.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(more.size()));
  int64_t fin_at = crpc_now_ns();
  ASSERT_EQ(shutdown(raw.fd(), SHUT_WR), 0);
  ASSERT_TRUE(
      WaitFor([&] { return CountFds() == fds_serving + 1; }, kSlack));
  EXPECT_LT(crpc_now_ns() - fin_at, CRPC_H2_LINGER_NS / 2);
  in.clear();
  EXPECT_EQ(ReadToEnd(raw.fd(), &in, kSlack), 0) << "reset after our FIN";
}

// An idle connection: the PING of the first GOAWAY goes unanswered (our
// session no longer reads), so the final GOAWAY comes from the server's
// timer, with unread bytes from us at the server: both GOAWAYs, then a FIN.
TEST_F(LingerTest, IdleGoawaysThenFinDespiteUnreadInput) {
  crpc_server_options so{};
  so.max_connection_idle_ns = 100 * kMs;
  TestServer server(&so);
  server.Add("/linger.S/Echo", CRPC_UNARY,
             [](crpc_server_call *call, const crpc_ctx *) {
               return EchoOnce(call);
             });
  server.Start();
  RawClient raw(server.port());
  std::string a = Frame("a");
  int32_t s1 = raw.Request("/linger.S/Echo", {}, &a);
  ASSERT_TRUE(raw.PumpUntil([&] { return raw.stream(s1).closed; }));
  EXPECT_EQ(raw.stream(s1).headers["grpc-status"], "0");

  SendUnreadJunk(raw.fd());
  std::string in;
  int end = ReadToEnd(raw.fd(), &in, CRPC_SECOND + kSlack);
  EXPECT_EQ(end, 0) << "the connection ended with " << strerror(end)
                    << ", not a FIN";
  EXPECT_NE(in.find(GoawayFrame(kMaxStreamId)), std::string::npos);
  EXPECT_NE(in.find(GoawayFrame(s1)), std::string::npos)
      << "no final GOAWAY(" << s1 << ") before the close";
}

// crpc_server_shutdown with a grace: the held call finishes inside it, and
// the rest of the grace lets the connection end gracefully, so the client
// reads the response, both GOAWAYs and a FIN despite unread bytes at the
// server. (Cutting every connection as soon as the handlers were done
// answered with a RST.)
TEST_F(LingerTest, ShutdownWithGraceEndsWithFinDespiteUnreadInput) {
  TestServer server;
  std::atomic<bool> started{false}, release{false};
  server.Add("/linger.S/Hold", CRPC_UNARY,
             [&](crpc_server_call *call, const crpc_ctx *ctx) {
               started = true;
               while (!release.load()) {
                 crpc_code c = crpc_ctx_sleep(ctx, kMs);
                 if (c != CRPC_OK) return c;
               }
               return EchoOnce(call);
             });
  server.Start();
  RawClient raw(server.port());
  std::string body = Frame(std::string(1000, 'y'));
  int32_t s1 = raw.Request("/linger.S/Hold", {}, &body);
  ASSERT_GT(s1, 0);
  ASSERT_TRUE(raw.PumpUntil([&] { return started.load(); }));
  std::thread stopper(
      [&] { crpc_server_shutdown(server.get(), 10 * CRPC_SECOND); });
  ASSERT_TRUE(raw.PumpUntil(
      [&] { return raw.goaway() && raw.goaway_last_stream() == s1; },
      kSlack));
  SendUnreadJunk(raw.fd());
  int server_end = ServerEndOf(raw.fd());
  int64_t released_at = crpc_now_ns();
  release = true;
  std::string in;
  int end = ReadToEnd(raw.fd(), &in, kSlack);
  int64_t fin_at = crpc_now_ns();
  // The server's socket lingers (we neither read further nor close):
  // shutdown does not cut it short while grace is left, it ends at the
  // linger bound.
  ASSERT_TRUE(WaitFor(
      [&] { return fcntl(server_end, F_GETFD) < 0 && errno == EBADF; },
      CRPC_H2_LINGER_NS + kSlack));
  EXPECT_GE(crpc_now_ns() - fin_at, CRPC_H2_LINGER_NS / 2)
      << "the lingering connection was cut when the handlers were done";
  stopper.join();
  EXPECT_LT(crpc_now_ns() - released_at, CRPC_H2_LINGER_NS + kSlack);
  EXPECT_EQ(end, 0) << "the connection ended with " << strerror(end)
                    << ", not a FIN";
  ASSERT_GE(nghttp2_session_mem_recv(raw.session(),
                                     reinterpret_cast<const uint8_t *>(
                                         in.data()),
                                     in.size()),
            0);
  EXPECT_EQ(raw.stream(s1).headers["grpc-status"], "0");
  EXPECT_EQ(raw.stream(s1).data, body);
}

// Where the lingering socket goes: closed CRPC_H2_LINGER_NS after the FIN
// if the peer stays silent, at once when the peer closes too, and at once
// by crpc_server_free (which does not sit out the linger); afterwards the
// process has exactly the fds it started with.
TEST_F(LingerTest, LingerEndsAtBoundAtPeerEofAndAtServerFree) {
  const int fds_at_start = CountFds();
  ASSERT_GT(fds_at_start, 0);
  crpc_server_options so{};
  so.max_connection_idle_ns = 50 * kMs;
  auto server = std::make_unique<TestServer>(&so);
  server->Add("/linger.S/Echo", CRPC_UNARY,
              [](crpc_server_call *call, const crpc_ctx *) {
                return EchoOnce(call);
              });
  server->Start();
  const int fds_serving = CountFds();  // listener and loop

  // Serves one call on a new connection, then reads to the server's FIN
  // (the idle GOAWAYs end it). The client's socket stays open.
  auto served_until_fin = [&](RawClient *raw) {
    std::string a = Frame("a");
    int32_t s = raw->Request("/linger.S/Echo", {}, &a);
    ASSERT_TRUE(raw->PumpUntil([&] { return raw->stream(s).closed; }));
    std::string in;
    ASSERT_EQ(ReadToEnd(raw->fd(), &in, CRPC_SECOND + kSlack), 0);
  };

  {  // A silent peer: the server's socket lingers for the bound, no more.
    RawClient raw(server->port());
    ASSERT_NO_FATAL_FAILURE(served_until_fin(&raw));
    int64_t fin_at = crpc_now_ns();
    EXPECT_EQ(CountFds(), fds_serving + 2);  // ours and the server's
    ASSERT_TRUE(WaitFor([&] { return CountFds() == fds_serving + 1; },
                        CRPC_H2_LINGER_NS + kSlack));
    int64_t lingered = crpc_now_ns() - fin_at;
    // The FIN went out as the linger began; allow for our reading late.
    EXPECT_GE(lingered, CRPC_H2_LINGER_NS / 2);
  }
  {  // A peer that closes on the FIN: the linger ends at its EOF.
    RawClient raw(server->port());
    ASSERT_NO_FATAL_FAILURE(served_until_fin(&raw));
    int64_t fin_at = crpc_now_ns();
    ASSERT_EQ(shutdown(raw.fd(), SHUT_WR), 0);
    ASSERT_TRUE(
        WaitFor([&] { return CountFds() == fds_serving + 1; }, kSlack));
    EXPECT_LT(crpc_now_ns() - fin_at, CRPC_H2_LINGER_NS / 2);
  }
  EXPECT_EQ(CountFds(), fds_serving);
  {  // Still lingering when the server is freed: closed by the free.
    RawClient raw(server->port());
    ASSERT_NO_FATAL_FAILURE(served_until_fin(&raw));
    EXPECT_EQ(CountFds(), fds_serving + 2);
    int64_t t0 = crpc_now_ns();
    server.reset();
    EXPECT_LT(crpc_now_ns() - t0, CRPC_H2_LINGER_NS / 2)
        << "crpc_server_free waited for a lingering socket";
    EXPECT_EQ(CountFds(), fds_at_start + 1);  // only ours is left
  }
  EXPECT_EQ(CountFds(), fds_at_start);
}

}  // namespace
}  // namespace crpc_test
