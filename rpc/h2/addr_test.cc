// Target parsing and listen/connect over loopback and unix sockets.
#include "rpc/h2/addr.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

namespace {

TEST(AddrTest, ParsesHostPortV6AndUnix) {
  crpc_h2_addr a;
  char err[CRPC_H2_ERR_MAX];
  ASSERT_EQ(crpc_h2_addr_parse("127.0.0.1:50051", &a, err), CRPC_OK);
  EXPECT_FALSE(a.is_unix);
  EXPECT_STREQ(a.host, "127.0.0.1");
  EXPECT_STREQ(a.port, "50051");
  ASSERT_EQ(crpc_h2_addr_parse("[::1]:0", &a, err), CRPC_OK);
  EXPECT_STREQ(a.host, "::1");
  EXPECT_STREQ(a.port, "0");
  EXPECT_STREQ(a.authority, "[::1]:0");
  ASSERT_EQ(crpc_h2_addr_parse("unix:/tmp/x.sock", &a, err), CRPC_OK);
  EXPECT_TRUE(a.is_unix);
  EXPECT_STREQ(a.path, "/tmp/x.sock");
}

TEST(AddrTest, RejectsGarbage) {
  crpc_h2_addr a;
  char err[CRPC_H2_ERR_MAX];
  for (const char *bad : {"", "localhost", ":80", "host:", "host:99999",
                          "::1:80", "[::1]80", "host:8a", "unix:"}) {
    EXPECT_EQ(crpc_h2_addr_parse(bad, &a, err), CRPC_INVALID_ARGUMENT) << bad;
  }
}

TEST(AddrTest, ListenAndConnectTcpAndUnix) {
  crpc_h2_addr a;
  char err[CRPC_H2_ERR_MAX];
  ASSERT_EQ(crpc_h2_addr_parse("127.0.0.1:0", &a, err), CRPC_OK);
  int lfd, port;
  ASSERT_EQ(crpc_h2_listen(&a, &lfd, &port, err), CRPC_OK) << err;
  EXPECT_GT(port, 0);
  std::string target = "127.0.0.1:" + std::to_string(port);
  ASSERT_EQ(crpc_h2_addr_parse(target.c_str(), &a, err), CRPC_OK);
  int cfd;
  ASSERT_EQ(crpc_h2_connect(&a, crpc_ctx_background(), &cfd, err), CRPC_OK)
      << err;
  close(cfd);
  close(lfd);

  std::string path = "/tmp/crpc_addr_test_" + std::to_string(getpid());
  ASSERT_EQ(crpc_h2_addr_parse(("unix:" + path).c_str(), &a, err), CRPC_OK);
  ASSERT_EQ(crpc_h2_listen(&a, &lfd, &port, err), CRPC_OK) << err;
  EXPECT_EQ(port, 0);
  ASSERT_EQ(crpc_h2_connect(&a, crpc_ctx_background(), &cfd, err), CRPC_OK);
  close(cfd);
  close(lfd);
  unlink(path.c_str());
}

TEST(AddrTest, ConnectRefusedIsUnavailable) {
  crpc_h2_addr a;
  char err[CRPC_H2_ERR_MAX];
  ASSERT_EQ(crpc_h2_addr_parse("127.0.0.1:1", &a, err), CRPC_OK);
  int fd;
  EXPECT_EQ(crpc_h2_connect(&a, crpc_ctx_background(), &fd, err),
            CRPC_UNAVAILABLE);
}

}  // namespace
