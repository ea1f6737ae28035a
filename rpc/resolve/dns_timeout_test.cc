// A DNS server that never answers must not hold a call past its ctx, and
// round robin follows a name whose address changes.
//
// Real getaddrinfo against a real (silent) DNS server: main() moves the test
// into a private mount namespace and bind-mounts a resolv.conf naming
// 127.0.0.1, where the fixture binds UDP port 53 and never replies (glibc
// would wait a second per try), and an /etc/hosts the tests rewrite. Needs
// root (CAP_SYS_ADMIN for the mounts, port 53); without it the tests skip
// and say why.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>

#include "crpc/channel.h"
#include "crpc/ctx.h"
#include "crpc/server.h"
#include "rpc/resolve/resolve.h"

namespace {

std::string g_skip;  // why the namespace could not be set up; "" if it was

void SetUpSilentResolver() {
  char path[] = "/tmp/crpc_resolv_XXXXXX";
  int fd = mkstemp(path);
  const char conf[] = "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n";
  if (fd < 0 || write(fd, conf, sizeof(conf) - 1) != sizeof(conf) - 1) {
    g_skip = "cannot write a resolv.conf";
    return;
  }
  close(fd);
  // Before any thread exists: unshare(CLONE_NEWNS) fails in a threaded
  // process.
  if (unshare(CLONE_NEWNS) != 0) {
    g_skip = std::string("unshare(CLONE_NEWNS): ") + strerror(errno);
  } else if (mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    g_skip = std::string("making / private: ") + strerror(errno);
  } else if (mount(path, "/etc/resolv.conf", nullptr, MS_BIND, nullptr) != 0) {
    g_skip = std::string("bind-mounting resolv.conf: ") + strerror(errno);
  }
  unlink(path);  // the bind mount keeps the file alive
  // An /etc/hosts of our own too, rewritten by tests (glibc reads it on
  // every lookup), so a name can move from one address to another.
  char hosts[] = "/tmp/crpc_hosts_XXXXXX";
  fd = mkstemp(hosts);
  if (fd >= 0) close(fd);
  if (g_skip.empty() &&
      (fd < 0 || mount(hosts, "/etc/hosts", nullptr, MS_BIND, nullptr) != 0)) {
    g_skip = std::string("bind-mounting /etc/hosts: ") + strerror(errno);
  }
  unlink(hosts);
}

void WriteHosts(const std::string &extra) {
  FILE *f = fopen("/etc/hosts", "w");  // same inode: the bind mount stays
  ASSERT_NE(f, nullptr);
  fprintf(f, "127.0.0.1 localhost\n%s", extra.c_str());
  fclose(f);
}

class DnsTimeoutTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!g_skip.empty()) GTEST_SKIP() << g_skip;
    dns_ = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(53);
    if (bind(dns_, reinterpret_cast<sockaddr *>(&a), sizeof(a)) != 0) {
      GTEST_SKIP() << "cannot bind 127.0.0.1:53: " << strerror(errno);
    }
    ctx_start_ = crpc_ctx_live_count();
  }
  void TearDown() override {
    if (dns_ >= 0) close(dns_);  // later queries are refused: fast failure
    // Abandoned lookups end on their own (glibc's 1 s timeout) and free
    // themselves; LeakSanitizer checks the freeing at exit.
    int64_t until = crpc_now_ns() + 10 * CRPC_SECOND;
    while (crpc_resolve_inflight() > 0 && crpc_now_ns() < until) {
      usleep(10 * 1000);
    }
    EXPECT_EQ(crpc_resolve_inflight(), 0) << "a lookup thread never ended";
    EXPECT_EQ(crpc_ctx_live_count(), ctx_start_) << "leaked contexts";
  }
  int dns_ = -1;
  size_t ctx_start_ = 0;
};

TEST_F(DnsTimeoutTest, ResolveEndsAtTheDeadline) {
  crpc_target t;
  char err[CRPC_RESOLVE_ERR_MAX];
  ASSERT_EQ(crpc_target_parse("silent.crpc.test:443", &t, err), CRPC_OK);
  int64_t t0 = crpc_now_ns();  // before the deadline is set from the clock
  crpc_ctx *ctx =
      crpc_ctx_with_timeout(crpc_ctx_background(), 150 * CRPC_MILLISECOND);
  crpc_resolved_addr *addrs;
  size_t n;
  EXPECT_EQ(crpc_target_resolve(&t, ctx, &addrs, &n, err),
            CRPC_DEADLINE_EXCEEDED);
  int64_t took = crpc_now_ns() - t0;
  EXPECT_GE(took, 150 * CRPC_MILLISECOND);
  EXPECT_LT(took, 600 * CRPC_MILLISECOND);
  EXPECT_NE(std::string(err).find("silent.crpc.test"), std::string::npos)
      << err;
  // The lookup itself is still waiting on the silent server.
  EXPECT_GE(crpc_resolve_inflight(), 1);
  crpc_ctx_release(ctx);
  crpc_target_destroy(&t);
}

TEST_F(DnsTimeoutTest, ResolveEndsAtOnceOnCancel) {
  crpc_target t;
  char err[CRPC_RESOLVE_ERR_MAX];
  ASSERT_EQ(crpc_target_parse("dns:///silent.crpc.test", &t, err), CRPC_OK);
  crpc_ctx *ctx = crpc_ctx_with_cancel(crpc_ctx_background());
  int64_t cancelled_at = 0;
  std::thread canceller([&] {
    usleep(100 * 1000);
    cancelled_at = crpc_now_ns();
    crpc_ctx_cancel(ctx, CRPC_CANCELLED, "user");
  });
  crpc_resolved_addr *addrs;
  size_t n;
  EXPECT_EQ(crpc_target_resolve(&t, ctx, &addrs, &n, err), CRPC_CANCELLED);
  int64_t returned = crpc_now_ns();
  canceller.join();
  EXPECT_LT(returned - cancelled_at, 100 * CRPC_MILLISECOND);
  crpc_ctx_release(ctx);
  crpc_target_destroy(&t);
}

TEST_F(DnsTimeoutTest, CallToAnUnresolvableNameEndsAtItsDeadline) {
  crpc_channel *ch = crpc_channel_new("silent.crpc.test:50051", nullptr);
  ASSERT_NE(ch, nullptr);
  crpc_ctx *ctx =
      crpc_ctx_with_timeout(crpc_ctx_background(), 200 * CRPC_MILLISECOND);
  crpc_message resp{};
  crpc_status st{};
  int64_t t0 = crpc_now_ns();
  EXPECT_EQ(crpc_unary_call(ch, ctx, "/a.B/C", nullptr, "x", 1, &resp, &st),
            CRPC_DEADLINE_EXCEEDED)
      << st.message;
  int64_t took = crpc_now_ns() - t0;
  EXPECT_LT(took, 700 * CRPC_MILLISECOND);
  crpc_status_clear(&st);
  crpc_ctx_release(ctx);
  // Freeing the channel does not wait for the abandoned lookup either.
  t0 = crpc_now_ns();
  crpc_channel_free(ch);
  EXPECT_LT(crpc_now_ns() - t0, 300 * CRPC_MILLISECOND);
}

// A server that answers with the address it was reached on.
crpc_code Where(crpc_server_call *call, const crpc_ctx *, void *ud) {
  crpc_message m;
  crpc_code c = crpc_server_call_recv(call, &m);
  if (c != CRPC_OK) return c;
  free(m.data);
  const char *name = static_cast<const char *>(ud);
  return crpc_server_call_send(call, name, strlen(name));
}

crpc_server *ServeOn(const char *addr, const char *name, int *port) {
  crpc_server *s = crpc_server_new(nullptr);
  crpc_server_add_method(s, "/t.S/Where", CRPC_UNARY, Where,
                         const_cast<char *>(name));
  std::string where = std::string(addr) + ":" + std::to_string(*port);
  if (crpc_server_listen(s, where.c_str(), port) != CRPC_OK ||
      crpc_server_start(s) != CRPC_OK) {
    crpc_server_free(s);
    return nullptr;
  }
  return s;
}

std::string Ask(crpc_channel *ch) {
  crpc_ctx *ctx = crpc_ctx_with_timeout(crpc_ctx_background(), 5 * CRPC_SECOND);
  crpc_message resp{};
  crpc_status st{};
  crpc_code c =
      crpc_unary_call(ch, ctx, "/t.S/Where", nullptr, "?", 1, &resp, &st);
  std::string out = c == CRPC_OK
                        ? std::string(reinterpret_cast<char *>(resp.data), resp.len)
                        : std::string("error: ") + st.message;
  free(resp.data);
  crpc_status_clear(&st);
  crpc_ctx_release(ctx);
  return out;
}

// Round robin over a name resolves it again once every address it had has
// failed: the service moved (old address down, name now elsewhere) and
// calls follow it without a new channel.
TEST_F(DnsTimeoutTest, RoundRobinFollowsANameThatMoves) {
  int port = 0;
  crpc_server *a = ServeOn("127.0.0.2", "a", &port);
  ASSERT_NE(a, nullptr);
  crpc_server *b = ServeOn("127.0.0.3", "b", &port);  // the same port
  ASSERT_NE(b, nullptr);
  WriteHosts("127.0.0.2 svc.crpc.test\n");
  crpc_channel_options o{};
  o.lb_policy = CRPC_LB_ROUND_ROBIN;
  o.backoff_initial_ns = 20 * CRPC_MILLISECOND;
  o.wait_for_ready = 1;
  std::string target = "dns:///svc.crpc.test:" + std::to_string(port);
  crpc_channel *ch = crpc_channel_new(target.c_str(), &o);
  for (int i = 0; i < 3; i++) EXPECT_EQ(Ask(ch), "a");
  WriteHosts("127.0.0.3 svc.crpc.test\n");
  crpc_server_free(a);  // the old address goes away
  for (int i = 0; i < 3; i++) EXPECT_EQ(Ask(ch), "b") << "call " << i;
  crpc_channel_free(ch);
  crpc_server_free(b);
  WriteHosts("");
}

TEST_F(DnsTimeoutTest, HostsFileNamesStillResolve) {
  // The namespace changes only DNS: /etc/hosts answers, through a lookup
  // thread, well within the deadline.
  crpc_target t;
  char err[CRPC_RESOLVE_ERR_MAX];
  ASSERT_EQ(crpc_target_parse("localhost:1", &t, err), CRPC_OK);
  crpc_ctx *ctx = crpc_ctx_with_timeout(crpc_ctx_background(), CRPC_SECOND);
  crpc_resolved_addr *addrs = nullptr;
  size_t n = 0;
  EXPECT_EQ(crpc_target_resolve(&t, ctx, &addrs, &n, err), CRPC_OK) << err;
  EXPECT_GE(n, 1u);
  free(addrs);
  crpc_ctx_release(ctx);
  crpc_target_destroy(&t);
}

}  // namespace

int main(int argc, char **argv) {
  SetUpSilentResolver();
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
