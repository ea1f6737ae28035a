// crpc's Channelz against a real gRPC client: Debian's python3-grpcio runs
// services/channelz/channelz_client.py, whose stubs come from Debian's
// grpc-proto channelz.proto. This process runs an admin server (Channelz),
// an application server and a channel that makes a known workload (3 OK
// unary calls, 1 failed, 1 server stream of 5 messages); the Python client
// checks the counters, ports, states, NOT_FOUND and paging.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "crpc/admin.h"
#include "crpc/channel.h"
#include "crpc/ctx.h"
#include "crpc/server.h"
#include "rpc/testing/peer.h"

namespace {

using crpc_testing::kPython;
using crpc_testing::ProcResult;
using crpc_testing::RunProcess;
using crpc_testing::Runfile;

crpc_code Echo(crpc_server_call *call, const crpc_ctx *, void *) {
  crpc_message m{};
  crpc_code c = crpc_server_call_recv(call, &m);
  if (c != CRPC_OK) return c;
  std::string req(reinterpret_cast<char *>(m.data), m.len);
  free(m.data);
  if (req == "fail") return crpc_server_call_error(call, CRPC_NOT_FOUND, "told to");
  return crpc_server_call_send(call, req.data(), req.size());
}

crpc_code Count(crpc_server_call *call, const crpc_ctx *, void *) {
  crpc_message m{};
  crpc_code c = crpc_server_call_recv(call, &m);
  if (c != CRPC_OK) return c;
  int n = atoi(std::string(reinterpret_cast<char *>(m.data), m.len).c_str());
  free(m.data);
  for (int i = 0; i < n && c == CRPC_OK; i++) c = crpc_server_call_send(call, "m", 1);
  return c;
}

TEST(ChannelzInterop, PythonGrpcClientReadsTheCounters) {
  std::string why;
  if (!crpc_testing::PythonGrpcAvailable(&why)) GTEST_SKIP() << why;
  size_t baseline = crpc_ctx_live_count();

  crpc_server *admin = crpc_server_new(nullptr);
  ASSERT_NE(nullptr, admin);
  ASSERT_EQ(CRPC_OK, crpc_server_add_admin_services(admin, nullptr));
  int admin_port = 0;
  ASSERT_EQ(CRPC_OK, crpc_server_listen(admin, "127.0.0.1:0", &admin_port));
  ASSERT_EQ(CRPC_OK, crpc_server_start(admin));

  crpc_server *app = crpc_server_new(nullptr);
  ASSERT_NE(nullptr, app);
  ASSERT_EQ(CRPC_OK, crpc_server_add_method(app, "/cz.Test/Echo", CRPC_UNARY, Echo, nullptr));
  ASSERT_EQ(CRPC_OK, crpc_server_add_method(app, "/cz.Test/Count", CRPC_SERVER_STREAMING,
                                            Count, nullptr));
  int app_port = 0;
  ASSERT_EQ(CRPC_OK, crpc_server_listen(app, "127.0.0.1:0", &app_port));
  ASSERT_EQ(CRPC_OK, crpc_server_start(app));
  std::string target = "127.0.0.1:" + std::to_string(app_port);
  crpc_channel *ch = crpc_channel_new(target.c_str(), nullptr);
  ASSERT_NE(nullptr, ch);

  crpc_ctx *ctx = crpc_ctx_with_timeout(crpc_ctx_background(), 10 * CRPC_SECOND);
  for (const char *req : {"a", "b", "c", "fail"}) {
    crpc_message m{};
    crpc_code c = crpc_unary_call(ch, ctx, "/cz.Test/Echo", nullptr, req, strlen(req), &m,
                                  nullptr);
    free(m.data);
    EXPECT_EQ(strcmp(req, "fail") == 0 ? CRPC_NOT_FOUND : CRPC_OK, c);
  }
  crpc_call *call = nullptr;
  ASSERT_EQ(CRPC_OK, crpc_call_start(ch, ctx, "/cz.Test/Count", nullptr, &call));
  ASSERT_EQ(CRPC_OK, crpc_call_send(call, "5", 1));
  ASSERT_EQ(CRPC_OK, crpc_call_close_send(call));
  int got = 0;
  for (;;) {
    crpc_message m{};
    if (crpc_call_recv(call, &m) != CRPC_OK || m.end) break;
    free(m.data);
    got++;
  }
  EXPECT_EQ(5, got);
  EXPECT_EQ(CRPC_OK, crpc_call_finish(call, nullptr));
  crpc_call_free(call);
  crpc_ctx_release(ctx);
  usleep(100 * 1000); // the loops account for the last stream's end

  ProcResult r = RunProcess(
      {kPython, "-u", Runfile("services/channelz/channelz_client.py"), "--target",
       "127.0.0.1:" + std::to_string(admin_port), "--server-id",
       std::to_string(crpc_server_channelz_id(app)), "--channel-id",
       std::to_string(crpc_channel_channelz_id(ch)), "--app-port", std::to_string(app_port)},
      60000);
  EXPECT_EQ(0, r.exit_code) << r.output;
  EXPECT_FALSE(r.timed_out);
  EXPECT_NE(std::string::npos, r.output.find("PASS paging")) << r.output;

  crpc_channel_free(ch);
  crpc_server_free(app);
  crpc_server_free(admin);
  EXPECT_EQ(baseline, crpc_ctx_live_count());
}

}  // namespace
