// A DNS server that never answers must not hold a call past its ctx.
//
// Real getaddrinfo against a real (silent) DNS server: main() moves the test
// into a private mount namespace and bind-mounts a resolv.conf naming
// 127.0.0.1, where the fixture binds UDP port 53 and never replies. glibc
// would wait a second per try. Needs root (CAP_SYS_ADMIN for the mount,
// port 53); without it the tests skip and say why.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>

#include "crpc/channel.h"
#include "crpc/ctx.h"
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
