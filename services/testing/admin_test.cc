// crpc's admin services against a real gRPC client: Debian's python3-grpcio
// running services/testing/admin_client.py, whose stubs come from Debian's
// grpc-proto files. The crpc server here serves the admin services (one
// switch, crpc_server_add_admin_services), a generated service whose
// .proto imports two more files (for reflection), and a raw control
// service the Python cases use to change health statuses and to start the
// shutdown. Every test ends with the ctx count back at its start.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "crpc/admin.h"
#include "crpc/calls.h"
#include "crpc/channel.h"
#include "crpc/ctx.h"
#include "crpc/server.h"
#include "rpc/testing/peer.h"
#include "services/testing/protos/reflect_svc.crpc.h"

namespace {

using crpc_testing::kPython;
using crpc_testing::ProcResult;
using crpc_testing::RunProcess;
using crpc_testing::Runfile;

constexpr int64_t kGraceNs = 5 * CRPC_SECOND;

// The control service's state: the health handle and the shutdown signal.
struct Control {
  crpc_health *health = nullptr;
  std::mutex mu;
  std::condition_variable cv;
  bool shutdown_asked = false;
};

crpc_code RecvString(crpc_server_call *call, std::string *out) {
  crpc_message m{};
  crpc_code c = crpc_server_call_recv(call, &m);
  if (c != CRPC_OK) return c;
  if (m.end) return crpc_server_call_error(call, CRPC_INVALID_ARGUMENT, "empty");
  out->assign(reinterpret_cast<const char *>(m.data), m.len);
  free(m.data);
  return CRPC_OK;
}

// "name=SERVING|NOT_SERVING|CLEAR" -> crpc_health_*.
crpc_code SetHandler(crpc_server_call *call, const crpc_ctx *, void *ud) {
  Control *ctl = static_cast<Control *>(ud);
  std::string req;
  crpc_code c = RecvString(call, &req);
  if (c != CRPC_OK) return c;
  size_t eq = req.find('=');
  if (eq == std::string::npos) {
    return crpc_server_call_error(call, CRPC_INVALID_ARGUMENT, "want name=status");
  }
  std::string name = req.substr(0, eq), what = req.substr(eq + 1);
  if (what == "CLEAR") {
    c = crpc_health_clear_status(ctl->health, name.c_str());
  } else {
    c = crpc_health_set_status(ctl->health, name.c_str(),
                               what == "SERVING" ? CRPC_HEALTH_SERVING
                                                 : CRPC_HEALTH_NOT_SERVING);
  }
  if (c != CRPC_OK) return crpc_server_call_error(call, c, "set %s", req.c_str());
  return crpc_server_call_send(call, "", 0);
}

crpc_code ShutdownHandler(crpc_server_call *call, const crpc_ctx *, void *ud) {
  Control *ctl = static_cast<Control *>(ud);
  std::string ignored;
  crpc_message m{};
  crpc_code c = crpc_server_call_recv(call, &m);
  free(m.data);
  if (c != CRPC_OK) return c;
  {
    std::lock_guard<std::mutex> lock(ctl->mu);
    ctl->shutdown_asked = true;
  }
  ctl->cv.notify_all();
  return crpc_server_call_send(call, "", 0);
}

// A call an operator has to end: echoes one message, then waits for its
// ctx and records why it ended.
struct Stuck {
  std::mutex mu;
  std::condition_variable cv;
  bool running = false, ended = false;
  crpc_cause cause{};
};

crpc_code StuckHandler(crpc_server_call *call, const crpc_ctx *ctx, void *ud) {
  Stuck *st = static_cast<Stuck *>(ud);
  crpc_message m{};
  if (crpc_server_call_recv(call, &m) == CRPC_OK && !m.end) {
    crpc_server_call_send(call, m.data, m.len);
    free(m.data);
  }
  {
    std::lock_guard<std::mutex> lock(st->mu);
    st->running = true;
  }
  st->cv.notify_all();
  crpc_ctx_wait(ctx);
  {
    std::lock_guard<std::mutex> lock(st->mu);
    st->cause = *crpc_ctx_cause(ctx);
    st->ended = true;
  }
  st->cv.notify_all();
  return crpc_ctx_err(ctx);
}

// The generated test service: its handlers are never called (reflection
// only looks at what is registered).
crpc_code Lookup(crpc_server_call *call, const crpc_ctx *,
                 const Crpc__Reflecttest__LookupRequest *, void *) {
  return crpc_server_call_error(call, CRPC_UNIMPLEMENTED, "not in this test");
}

class AdminTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!crpc_testing::PythonGrpcAvailable(&why)) GTEST_SKIP() << why;
    baseline_ = crpc_ctx_live_count();
    crpc_server_options opts{};
    opts.loop_threads = 2;
    server_ = crpc_server_new(&opts);
    ASSERT_NE(server_, nullptr);
    ASSERT_EQ(CRPC_OK, crpc_server_add_admin_services(server_, &ctl_.health));
    ASSERT_NE(ctl_.health, nullptr);
    ASSERT_EQ(CRPC_OK, crpc_server_add_method(server_, "/crpc.test.AdminControl/Set",
                                              CRPC_UNARY, SetHandler, &ctl_));
    ASSERT_EQ(CRPC_OK,
              crpc_server_add_method(server_, "/crpc.test.AdminControl/Shutdown",
                                     CRPC_UNARY, ShutdownHandler, &ctl_));
    ASSERT_EQ(CRPC_OK,
              crpc_server_add_method(server_, "/crpc.test.AdminControl/Stuck",
                                     CRPC_BIDI_STREAMING, StuckHandler, &stuck_));
    handlers_.lookup = Lookup;
    ASSERT_EQ(CRPC_OK,
              crpc_reflecttest_directory_register_handlers(server_, &handlers_));
    int port = 0;
    ASSERT_EQ(CRPC_OK, crpc_server_listen(server_, "127.0.0.1:0", &port));
    ASSERT_EQ(CRPC_OK, crpc_server_start(server_));
    target_ = "127.0.0.1:" + std::to_string(port);
  }

  void TearDown() override {
    if (server_ == nullptr) return;
    crpc_server_shutdown(server_, kGraceNs);
    crpc_server_free(server_);
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    while (crpc_ctx_live_count() != baseline_ &&
           std::chrono::steady_clock::now() < end) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (crpc_ctx_live_count() != baseline_) crpc_ctx_dump(stderr);
    EXPECT_EQ(baseline_, crpc_ctx_live_count());
  }

  ProcResult RunCase(const std::string &name) {
    return RunProcess({kPython, "-u", Runfile("services/testing/admin_client.py"),
                       "--target", target_, "--case", name},
                      60000);
  }

  void ExpectPass(const std::string &name) {
    ProcResult r = RunCase(name);
    EXPECT_EQ(0, r.exit_code) << r.output;
    EXPECT_NE(std::string::npos, r.output.find("PASS " + name)) << r.output;
  }

  size_t baseline_ = 0;
  crpc_server *server_ = nullptr;
  Control ctl_;
  Stuck stuck_;
  crpc_reflecttest_directory_handlers handlers_{};
  std::string target_;
};

TEST_F(AdminTest, HealthCheck_WholeServerServing_SetStatusSeen) {
  ExpectPass("health_check");
}

TEST_F(AdminTest, HealthUnknownService_CheckNotFound_WatchServiceUnknownThenStatus) {
  ExpectPass("health_unknown");
}

TEST_F(AdminTest, HealthWatch_SeesEveryChange_LatestAfterManyFlips) {
  ExpectPass("health_watch");
}

TEST_F(AdminTest, HealthShutdown_WatchersSeeNotServingThenEnd_GraceNotHeld) {
  ProcResult r;
  std::thread client([&] { r = RunCase("health_shutdown"); });
  {
    std::unique_lock<std::mutex> lock(ctl_.mu);
    ASSERT_TRUE(ctl_.cv.wait_for(lock, std::chrono::seconds(60),
                                 [&] { return ctl_.shutdown_asked; }))
        << "the client never asked for the shutdown";
  }
  auto start = std::chrono::steady_clock::now();
  crpc_server_shutdown(server_, kGraceNs);
  auto took = std::chrono::steady_clock::now() - start;
  client.join();
  EXPECT_EQ(0, r.exit_code) << r.output;
  EXPECT_NE(std::string::npos, r.output.find("PASS health_shutdown")) << r.output;
  // Watch streams end at shutdown start, so they do not hold the grace.
  EXPECT_LT(took, std::chrono::seconds(4));
  // After shutdown: every known service NOT_SERVING, sets ignored.
  EXPECT_EQ(CRPC_HEALTH_NOT_SERVING, crpc_health_get_status(ctl_.health, ""));
  EXPECT_EQ(CRPC_HEALTH_NOT_SERVING,
            crpc_health_get_status(ctl_.health, "test.Drain"));
  EXPECT_EQ(CRPC_FAILED_PRECONDITION,
            crpc_health_set_status(ctl_.health, "", CRPC_HEALTH_SERVING));
}

TEST_F(AdminTest, HealthApi_BadStatusRejected_RegisteringTwiceFails) {
  EXPECT_EQ(CRPC_INVALID_ARGUMENT,
            crpc_health_set_status(ctl_.health, "x", CRPC_HEALTH_SERVICE_UNKNOWN));
  EXPECT_EQ(CRPC_HEALTH_SERVICE_UNKNOWN, crpc_health_get_status(ctl_.health, "x"));
  EXPECT_EQ(CRPC_NOT_FOUND, crpc_health_clear_status(ctl_.health, "x"));
  EXPECT_EQ(CRPC_HEALTH_SERVING, crpc_health_get_status(ctl_.health, nullptr));
  // After start nothing more can be registered.
  crpc_code code = CRPC_OK;
  EXPECT_EQ(nullptr, crpc_health_service_add(server_, &code));
  EXPECT_NE(CRPC_OK, code);
}

TEST_F(AdminTest, ReflectionV1_ListSymbolsTransitiveImportsUnknownIsNotFound) {
  ExpectPass("reflection_v1");
}

TEST_F(AdminTest, ReflectionV1alpha_ListSymbolsTransitiveImportsUnknownIsNotFound) {
  ExpectPass("reflection_v1alpha");
}

TEST_F(AdminTest, ReflectionV1_FileContainingExtensionAndExtensionNumbers) {
  ExpectPass("reflection_extensions_v1");
}

TEST_F(AdminTest, ReflectionV1alpha_FileContainingExtensionAndExtensionNumbers) {
  ExpectPass("reflection_extensions_v1alpha");
}

TEST_F(AdminTest, ReflectionUnparsableRequestEndsTheStreamInvalidArgument) {
  ExpectPass("reflection_bad_request");
}

// The operator's tool from README (Operating crpc) against this server.
TEST_F(AdminTest, AdminCli_HealthListDescribe) {
  std::string cli = Runfile("services/admin_cli.py");
  ProcResult r = RunProcess({kPython, cli, target_, "health"}, 60000);
  EXPECT_EQ(0, r.exit_code) << r.output;
  EXPECT_EQ("SERVING\n", r.output);
  r = RunProcess({kPython, cli, target_, "health", "no.such.Service"}, 60000);
  EXPECT_EQ(1, r.exit_code) << r.output;
  EXPECT_NE(std::string::npos, r.output.find("NOT_FOUND")) << r.output;
  r = RunProcess({kPython, cli, target_, "list"}, 60000);
  EXPECT_EQ(0, r.exit_code) << r.output;
  for (const char *svc : {"crpc.reflecttest.Directory\n", "grpc.health.v1.Health\n",
                          "grpc.reflection.v1.ServerReflection\n"}) {
    EXPECT_NE(std::string::npos, r.output.find(svc)) << r.output;
  }
  r = RunProcess({kPython, cli, target_, "describe", "crpc.reflecttest.Directory"},
                 60000);
  EXPECT_EQ(0, r.exit_code) << r.output;
  EXPECT_NE(std::string::npos,
            r.output.find("rpc Follow(crpc.reflecttest.LookupRequest) returns "
                          "(stream crpc.reflecttest.LookupReply)"))
      << r.output;
}

// crpc.admin.v1.Admin through the operator's tool, which knows the service
// only from reflection: a stream held open by a client is listed, and
// CancelCall ends it with the admin cause on both ends.
TEST_F(AdminTest, AdminCli_CallsListsAStuckStreamAndCancelEndsIt) {
  std::string cli = Runfile("services/admin_cli.py");
  ProcResult r = RunProcess({kPython, cli, target_, "list"}, 60000);
  EXPECT_NE(std::string::npos, r.output.find("crpc.admin.v1.Admin\n")) << r.output;
  r = RunProcess({kPython, cli, target_, "describe", "crpc.admin.v1.Admin"}, 60000);
  EXPECT_NE(std::string::npos,
            r.output.find("rpc CancelCall(crpc.admin.v1.CancelCallRequest) "
                          "returns (crpc.admin.v1.CancelCallResponse)"))
      << r.output;

  crpc_channel *ch = crpc_channel_new(target_.c_str(), nullptr);
  ASSERT_NE(ch, nullptr);
  crpc_ctx *ctx = crpc_ctx_with_timeout(crpc_ctx_background(), 60 * CRPC_SECOND);
  crpc_call *call = nullptr;
  ASSERT_EQ(CRPC_OK, crpc_call_start(ch, ctx, "/crpc.test.AdminControl/Stuck",
                                     nullptr, &call));
  ASSERT_EQ(CRPC_OK, crpc_call_send(call, "hold", 4));
  {
    std::unique_lock<std::mutex> lock(stuck_.mu);
    ASSERT_TRUE(stuck_.cv.wait_for(lock, std::chrono::seconds(10),
                                   [&] { return stuck_.running; }));
  }

  // calls: one line per running call; the stuck one has id, state and
  // counters (one message each way).
  r = RunProcess({kPython, cli, target_, "calls"}, 60000);
  EXPECT_EQ(0, r.exit_code) << r.output;
  std::string id;
  size_t at = r.output.find("/crpc.test.AdminControl/Stuck");
  ASSERT_NE(std::string::npos, at) << r.output;
  size_t line = r.output.rfind('\n', at) + 1;
  std::string row = r.output.substr(line, r.output.find('\n', at) - line);
  id = row.substr(row.find_first_not_of(' '));
  id = id.substr(0, id.find(' '));
  EXPECT_NE(std::string::npos, row.find(" streaming ")) << row;
  EXPECT_NE(std::string::npos, row.find(" 1/1 ")) << row;
  EXPECT_NE(std::string::npos, row.find("ipv4:127.0.0.1:")) << row;
  // ListCalls itself is running while it answers, so it is listed too.
  EXPECT_NE(std::string::npos, r.output.find("/crpc.admin.v1.Admin/ListCalls"))
      << r.output;

  r = RunProcess({kPython, cli, target_, "cancel", id, "stuck in a test"}, 60000);
  EXPECT_EQ(0, r.exit_code) << r.output;
  EXPECT_EQ("cancelled call " + id + "\n", r.output);
  {
    std::unique_lock<std::mutex> lock(stuck_.mu);
    ASSERT_TRUE(stuck_.cv.wait_for(lock, std::chrono::seconds(10),
                                   [&] { return stuck_.ended; }));
    EXPECT_EQ(CRPC_CANCELLED, stuck_.cause.code);
    EXPECT_EQ(CRPC_ORIGIN_ADMIN, stuck_.cause.origin);
    EXPECT_STREQ("cancelled by admin: stuck in a test", stuck_.cause.message);
  }
  crpc_status status{};
  EXPECT_EQ(CRPC_CANCELLED, crpc_call_finish(call, &status));
  EXPECT_STREQ("cancelled by admin: stuck in a test", status.message);
  crpc_status_clear(&status);
  crpc_call_free(call);
  crpc_ctx_release(ctx);
  crpc_channel_free(ch);

  // An id no running call has: NOT_FOUND, exit 1.
  r = RunProcess({kPython, cli, target_, "cancel", "999999", "nothing"}, 60000);
  EXPECT_EQ(1, r.exit_code) << r.output;
  EXPECT_NE(std::string::npos, r.output.find("NOT_FOUND")) << r.output;
}

}  // namespace
