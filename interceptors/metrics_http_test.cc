// metrics_http: GET /metrics over a real socket after real crpc calls;
// 404 / 405 / 400 / 431; garbage, slow and silent clients neither crash it
// nor keep others from being served.
#include "interceptors/metrics_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rpc/intercept/icpt_test_util.h"

namespace {

using namespace icpt_test;

int Connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool SendAll(int fd, const std::string &s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

// Everything until the server closes (or timeout_ms passes: then
// *closed is false).
std::string ReadAll(int fd, int timeout_ms, bool *closed = nullptr) {
  std::string out;
  int64_t end = crpc_now_ns() + timeout_ms * kMs;
  if (closed) *closed = false;
  for (;;) {
    int64_t left = (end - crpc_now_ns()) / kMs;
    if (left <= 0) return out;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) {
      if (closed) *closed = true;
      return out;
    }
    out.append(buf, static_cast<size_t>(n));
  }
}

struct Response {
  int status = 0;
  std::string head, body;
};

// Parses an HTTP/1.1 response and checks Content-Length against the body.
Response Parse(const std::string &raw) {
  Response r;
  size_t he = raw.find("\r\n\r\n");
  if (raw.compare(0, 9, "HTTP/1.1 ") != 0 || he == std::string::npos) return r;
  r.status = atoi(raw.c_str() + 9);
  r.head = raw.substr(0, he + 2);
  r.body = raw.substr(he + 4);
  size_t cl = r.head.find("\r\nContent-Length: ");
  if (cl == std::string::npos || std::stoul(r.head.substr(cl + 18)) != r.body.size()) {
    r.status = -1;  // length and body disagree
  }
  return r;
}

Response Request(int port, const std::string &req, int timeout_ms = 5000) {
  int fd = Connect(port);
  if (fd < 0) return Response{};
  SendAll(fd, req);
  Response r = Parse(ReadAll(fd, timeout_ms));
  close(fd);
  return r;
}

class MetricsHttpTest : public LeakCheckTest {
 protected:
  void SetUp() override {
    LeakCheckTest::SetUp();
    m_ = crpc_metrics_new();
    char err[256];
    h_ = crpc_metrics_http_serve(m_, "127.0.0.1:0", err, sizeof(err));
    ASSERT_NE(nullptr, h_) << err;
    EXPECT_STREQ("", err);
    port_ = crpc_metrics_http_port(h_);
    ASSERT_GT(port_, 0);
  }
  void TearDown() override {
    crpc_metrics_http_stop(h_);
    crpc_metrics_free(m_);
    LeakCheckTest::TearDown();
  }
  crpc_metrics *m_ = nullptr;
  crpc_metrics_http *h_ = nullptr;
  int port_ = 0;
};

TEST_F(MetricsHttpTest, ScrapeAfterRealCallsShowsBothSides) {
  auto si = crpc_metrics_server(m_);
  auto ci = crpc_metrics_client(m_);
  {
    Server srv([&](crpc_server *s) { crpc_server_add_interceptor(s, &si); });
    auto ch = NewChannel(srv.target(), {&ci});
    auto ctx = WithTimeout(5 * kSec);
    for (int i = 0; i < 4; i++) EXPECT_EQ(CRPC_OK, Unary(ch.get(), ctx.get(), M("Echo"), "x").code);
    auto c2 = WithTimeout(30 * kMs);
    EXPECT_EQ(CRPC_DEADLINE_EXCEEDED, Unary(ch.get(), c2.get(), M("Hang"), "x").code);
    ASSERT_TRUE(Eventually(
        [&] {
          // The server ends it on its own timer (grpc-timeout) or on the
          // client's reset, whichever comes first.
          return crpc_metrics_calls(m_, M("Hang").c_str(), CRPC_CANCELLED) +
                     crpc_metrics_calls(m_, M("Hang").c_str(), CRPC_DEADLINE_EXCEEDED) ==
                 1;
        },
        3000));
  }
  Response r = Request(port_, "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n");
  ASSERT_EQ(200, r.status) << r.head;
  EXPECT_NE(std::string::npos, r.head.find("\r\nContent-Type: text/plain; version=0.0.4\r\n"))
      << r.head;
  EXPECT_NE(std::string::npos, r.head.find("\r\nConnection: close\r\n")) << r.head;
  for (const char *want : {
           "crpc_server_calls_total{method=\"/crpc.test.Test/Echo\",code=\"OK\"} 4\n",
           "crpc_client_calls_total{method=\"/crpc.test.Test/Echo\",code=\"OK\"} 4\n",
           "crpc_client_calls_total{method=\"/crpc.test.Test/Hang\",code=\"DEADLINE_EXCEEDED\"} 1\n",
           "crpc_client_cancellations_total{origin=\"deadline\"} 1\n",
           "# TYPE crpc_server_call_duration_seconds histogram\n",
       }) {
    EXPECT_NE(std::string::npos, r.body.find(want)) << want << "\n" << r.body;
  }
  // Every line is a comment or "name{labels} value" / "name value".
  size_t at = 0, samples = 0;
  while (at < r.body.size()) {
    size_t nl = r.body.find('\n', at);
    ASSERT_NE(std::string::npos, nl) << "text must end with a newline";
    std::string line = r.body.substr(at, nl - at);
    at = nl + 1;
    if (line.rfind("# ", 0) == 0) continue;
    size_t sp = line.rfind(' ');
    ASSERT_NE(std::string::npos, sp) << line;
    char *end = nullptr;
    strtod(line.c_str() + sp + 1, &end);
    EXPECT_EQ('\0', *end) << line;
    samples++;
  }
  EXPECT_GT(samples, 20u);

  // HTTP/1.0, a query string, HEAD.
  r = Request(port_, "GET /metrics?x=1 HTTP/1.0\r\n\r\n");
  EXPECT_EQ(200, r.status);
  int fd = Connect(port_);
  SendAll(fd, "HEAD /metrics HTTP/1.1\r\n\r\n");
  std::string raw = ReadAll(fd, 5000);
  close(fd);
  EXPECT_EQ(0u, raw.find("HTTP/1.1 200 OK\r\n")) << raw;
  EXPECT_EQ(raw.size(), raw.find("\r\n\r\n") + 4) << "HEAD has no body";
}

TEST_F(MetricsHttpTest, OtherRequestsGetTheirErrors) {
  EXPECT_EQ(404, Request(port_, "GET / HTTP/1.1\r\n\r\n").status);
  EXPECT_EQ(404, Request(port_, "GET /metricsx HTTP/1.1\r\n\r\n").status);
  EXPECT_EQ(404, Request(port_, "GET /other/metrics HTTP/1.1\r\n\r\n").status);
  Response r = Request(port_, "POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
  EXPECT_EQ(405, r.status);
  EXPECT_NE(std::string::npos, r.head.find("\r\nAllow: GET, HEAD\r\n")) << r.head;
  EXPECT_EQ(400, Request(port_, "GET /metrics\r\n\r\n").status);             // HTTP/0.9
  EXPECT_EQ(400, Request(port_, "GET /metrics HTTP/2.0\r\n\r\n").status);   // not 1.x
  EXPECT_EQ(400, Request(port_, "G(T /metrics HTTP/1.1\r\n\r\n").status);   // not a token
  static const char tls[] = "\x16\x03\x01\x02\x00\x01\r\n\r\n";  // a TLS hello
  EXPECT_EQ(400, Request(port_, std::string(tls, sizeof(tls) - 1)).status);
  static const char nul_req[] = "GET /met\0rics HTTP/1.1\r\n\r\n";
  std::string nul(nul_req, sizeof(nul_req) - 1);
  EXPECT_EQ(400, Request(port_, nul).status);
  // Leading empty lines are skipped; a bare-LF request is understood.
  EXPECT_EQ(200, Request(port_, "\r\nGET /metrics HTTP/1.1\n\n").status);
  // A request head that never ends within the limit.
  std::string huge = "GET /metrics HTTP/1.1\r\nX: " + std::string(20000, 'a') + "\r\n\r\n";
  EXPECT_EQ(431, Request(port_, huge).status);
  // Random bytes, many times: answered or closed, never a crash.
  srand(7);
  for (int i = 0; i < 200; i++) {
    std::string junk(static_cast<size_t>(rand() % 300), '\0');
    for (char &c : junk) c = static_cast<char>(rand());
    junk += (i % 2) ? "\r\n\r\n" : "";
    int fd = Connect(port_);
    ASSERT_GE(fd, 0);
    SendAll(fd, junk);
    if (i % 2) ReadAll(fd, 2000);
    close(fd);
  }
  EXPECT_EQ(200, Request(port_, "GET /metrics HTTP/1.1\r\n\r\n").status);
}

TEST_F(MetricsHttpTest, SlowAndSilentClientsDoNotHoldIt) {
  // Silent and half-sent connections, more than it has slots for.
  std::vector<int> idle;
  for (int i = 0; i < CRPC_METRICS_HTTP_MAX_CONNECTIONS + 4; i++) {
    int fd = Connect(port_);
    ASSERT_GE(fd, 0);
    if (i % 2) SendAll(fd, "GET /metr");
    idle.push_back(fd);
  }
  // A scraper is still served at once: its connection takes the slot of
  // the oldest idle one.
  int64_t t0 = crpc_now_ns();
  Response r = Request(port_, "GET /metrics HTTP/1.1\r\n\r\n");
  EXPECT_EQ(200, r.status);
  EXPECT_LT(crpc_now_ns() - t0, 1000 * kMs);
  // The slow ones are closed by the read timeout (a 1-byte-a-while
  // sender too), without an answer.
  int dribble = Connect(port_);
  ASSERT_GE(dribble, 0);
  bool closed = false;
  std::string got;
  int64_t start = crpc_now_ns();
  for (char c : std::string("GET /metrics HTTP/1.1\r\n")) {
    if (!SendAll(dribble, std::string(1, c))) break;
    got += ReadAll(dribble, 150, &closed);
    if (closed) break;
  }
  if (!closed) got += ReadAll(dribble, CRPC_METRICS_HTTP_READ_TIMEOUT_MS + 2000, &closed);
  EXPECT_TRUE(closed);
  EXPECT_EQ("", got);
  int64_t took_ms = (crpc_now_ns() - start) / kMs;
  EXPECT_GE(took_ms, CRPC_METRICS_HTTP_READ_TIMEOUT_MS - 100);
  EXPECT_LT(took_ms, CRPC_METRICS_HTTP_READ_TIMEOUT_MS + 2000);
  close(dribble);
  for (int fd : idle) {
    bool c = false;
    ReadAll(fd, 3000, &c);
    EXPECT_TRUE(c) << "idle connection still open after the read timeout";
    close(fd);
  }
  // A client that never reads its response does not block others.
  int lazy = Connect(port_);
  int rcv = 1024;
  setsockopt(lazy, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
  SendAll(lazy, "GET /metrics HTTP/1.1\r\n\r\n");
  EXPECT_EQ(200, Request(port_, "GET /metrics HTTP/1.1\r\n\r\n").status);
  close(lazy);
}

TEST(MetricsHttpServe, BadAddressesSayWhy) {
  crpc_metrics *m = crpc_metrics_new();
  char err[256];
  for (const char *bad : {"nocolon", "127.0.0.1:", "127.0.0.1:99999", "127.0.0.1:http",
                          "::1:9090", "[::1", "[::1]9090"}) {
    err[0] = '\0';
    EXPECT_EQ(nullptr, crpc_metrics_http_serve(m, bad, err, sizeof(err))) << bad;
    EXPECT_NE('\0', err[0]) << bad;
  }
  // A port in use: bind's own reason.
  crpc_metrics_http *a = crpc_metrics_http_serve(m, "127.0.0.1:0", err, sizeof(err));
  ASSERT_NE(nullptr, a) << err;
  std::string taken = "127.0.0.1:" + std::to_string(crpc_metrics_http_port(a));
  EXPECT_EQ(nullptr, crpc_metrics_http_serve(m, taken.c_str(), err, sizeof(err)));
  EXPECT_NE(std::string::npos, std::string(err).find("Address already in use")) << err;
  EXPECT_EQ(nullptr, crpc_metrics_http_serve(m, taken.c_str(), nullptr, 0));
  crpc_metrics_http_stop(a);
  // Every interface, and IPv6 loopback where there is one.
  a = crpc_metrics_http_serve(m, ":0", err, sizeof(err));
  ASSERT_NE(nullptr, a) << err;
  EXPECT_EQ(200, Request(crpc_metrics_http_port(a), "GET /metrics HTTP/1.1\r\n\r\n").status);
  crpc_metrics_http_stop(a);
  a = crpc_metrics_http_serve(m, "[::1]:0", err, sizeof(err));
  if (a != nullptr) crpc_metrics_http_stop(a);  // no IPv6 here: fine too
  crpc_metrics_http_stop(nullptr);
  crpc_metrics_free(m);
}

}  // namespace
