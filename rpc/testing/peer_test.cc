// The Python peers against each other, so they are known-good before crpc is
// on either end; and the harness's promises: bounded waits, no orphans.
#include "rpc/testing/peer.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <time.h>

#include <cerrno>

namespace crpc_testing {
namespace {

int64_t NowMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

class PeerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!PythonGrpcAvailable(&why)) GTEST_SKIP() << why;
  }
};

TEST_F(PeerTest, PyClientAgainstPyServer_EveryCasePasses) {
  PyServer server;
  std::string err;
  ASSERT_TRUE(server.Start(&err)) << err;
  ASSERT_GT(server.port(), 0);
  ProcResult r = RunPyClient(server.target(), {"all"});
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(0, r.exit_code) << r.output;
  EXPECT_EQ(std::string::npos, ("\n" + r.output).find("\nFAIL ")) << r.output;
  EXPECT_NE(std::string::npos, r.output.find("PASS deadline_stream")) << r.output;
  printf("%s", r.output.c_str());
}

TEST_F(PeerTest, PyServerStop_ExitsOnStdinEofAndIsReaped) {
  PyServer server;
  std::string err;
  ASSERT_TRUE(server.Start(&err)) << err;
  pid_t pid = server.pid();
  int64_t t0 = NowMs();
  int status = server.Stop();
  EXPECT_LT(NowMs() - t0, 3000) << "server ignored stdin EOF";
  EXPECT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_EQ(-1, kill(pid, 0));  // reaped: the pid no longer exists
  EXPECT_EQ(ESRCH, errno);
  EXPECT_EQ(-1, server.Stop());  // idempotent
}

TEST_F(PeerTest, RunProcess_KillsAndReapsAChildThatOverrunsItsLimit) {
  int64_t t0 = NowMs();
  ProcResult r = RunProcess({"/bin/sleep", "30"}, 300);
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(-1, r.exit_code);
  EXPECT_LT(NowMs() - t0, 3000);
}

TEST_F(PeerTest, PyClient_FailsAgainstAClosedPort) {
  ProcResult r = RunProcess({kPython, Runfile("rpc/testing/py_client.py"),
                             "--target", "127.0.0.1:1", "--connect_timeout",
                             "0.5", "--case", "unary"},
                            30000);
  EXPECT_FALSE(r.timed_out);
  EXPECT_NE(0, r.exit_code) << r.output;
}

}  // namespace
}  // namespace crpc_testing
