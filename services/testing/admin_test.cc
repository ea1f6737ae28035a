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

}  // namespace
