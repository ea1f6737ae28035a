// TLS interop with a real gRPC implementation, Debian's python3-grpcio,
// using the same throwaway certificates (test_pki.h), both ways and with
// mutual TLS: grpc.ssl_channel_credentials (with
// grpc.ssl_target_name_override) against a crpc TLS server, and a crpc
// channel against grpc.ssl_server_credentials. Skipped with a message if
// /usr/bin/python3 cannot import grpc.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "crpc/channel.h"
#include "crpc/credentials.h"
#include "crpc/ctx.h"
#include "crpc/server.h"
#include "rpc/testing/peer.h"
#include "rpc/testing/test_service.h"
#include "rpc/tls/test_pki.h"

namespace {

using crpc_tls_test::Pki;

std::string P(const std::string &name) { return Pki::Get().Path(name); }

crpc_code IdentityHandler(crpc_server_call *call, const crpc_ctx *, void *) {
  crpc_message m{};
  crpc_code rc = crpc_server_call_recv(call, &m);
  if (rc != CRPC_OK) return rc;
  free(m.data);
  const char *id = crpc_server_call_peer_identity(call);
  std::string s = id ? id : "<none>";
  return crpc_server_call_send(call, s.data(), s.size());
}

class TlsInteropTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!crpc_testing::PythonGrpcAvailable(&why)) GTEST_SKIP() << why;
    ASSERT_TRUE(Pki::Get().ok);
    baseline_ = crpc_ctx_live_count();
  }
  void TearDown() override {
    if (IsSkipped()) return;
    for (int i = 0; i < 300 && crpc_ctx_live_count() != baseline_; i++) usleep(10000);
    EXPECT_EQ(baseline_, crpc_ctx_live_count());
  }
  size_t baseline_ = 0;
};

// grpcio client (mTLS) -> crpc TLS server requiring client certificates.
TEST_F(TlsInteropTest, GrpcioClientToCrpcServer) {
  crpc_server_tls_options so{};
  std::string cert = P("server.pem"), key = P("server.key"), ca = P("ca.pem");
  so.cert_chain_file = cert.c_str();
  so.private_key_file = key.c_str();
  so.client_ca_file = ca.c_str();
  so.require_client_cert = true;
  crpc_server_credentials *sc = nullptr;
  char err[CRPC_CREDENTIALS_ERROR_MAX] = "";
  ASSERT_EQ(CRPC_OK, crpc_server_credentials_new(&so, &sc, err)) << err;
  crpc_test_service *svc = crpc_test_service_new();
  crpc_server *server = crpc_server_new(nullptr);
  ASSERT_EQ(CRPC_OK, crpc_test_service_register(svc, server));
  ASSERT_EQ(CRPC_OK, crpc_server_add_method(server, "/crpc.tls.Test/Identity", CRPC_UNARY,
                                            IdentityHandler, nullptr));
  int port = 0;
  ASSERT_EQ(CRPC_OK, crpc_server_listen_tls(server, "127.0.0.1:0", sc, &port));
  crpc_server_credentials_free(sc);
  ASSERT_EQ(CRPC_OK, crpc_server_start(server));

  auto r = crpc_testing::RunProcess(
      {crpc_testing::kPython, crpc_testing::Runfile("rpc/tls/py_tls_peer.py"), "client",
       "--target", "127.0.0.1:" + std::to_string(port), "--ca", ca, "--cert",
       P("client.pem"), "--key", P("client.key"), "--override", "localhost"},
      60000);
  EXPECT_EQ(0, r.exit_code) << r.output;
  EXPECT_NE(std::string::npos, r.output.find("IDENTITY client.crpc.test")) << r.output;

  // Without a client certificate the same client is refused.
  auto refused = crpc_testing::RunProcess(
      {crpc_testing::kPython, crpc_testing::Runfile("rpc/tls/py_tls_peer.py"), "client",
       "--target", "127.0.0.1:" + std::to_string(port), "--ca", ca, "--override",
       "localhost"},
      60000);
  EXPECT_NE(0, refused.exit_code) << refused.output;
  EXPECT_NE(std::string::npos, refused.output.find("FAIL unary")) << refused.output;

  crpc_server_free(server);
  crpc_test_service_free(svc);
}

// crpc channel (mTLS) -> grpcio TLS server requiring client certificates.
TEST_F(TlsInteropTest, CrpcClientToGrpcioServer) {
  std::string cmd = std::string("exec ") + crpc_testing::kPython + " '" +
                    crpc_testing::Runfile("rpc/tls/py_tls_peer.py") + "' server --cert '" +
                    P("server.pem") + "' --key '" + P("server.key") + "' --client-ca '" +
                    P("ca.pem") + "'";
  FILE *child = popen(cmd.c_str(), "r");
  ASSERT_NE(nullptr, child);
  int port = 0, pid = 0;
  char line[128] = "";
  bool started = fgets(line, sizeof line, child) != nullptr &&
                 sscanf(line, "PORT %d PID %d", &port, &pid) == 2;
  if (!started) {
    pclose(child);
    FAIL() << "py_tls_peer.py server did not start: " << line;
  }

  auto call = [&](const char *leaf, std::string *reply, std::string *message) {
    crpc_channel_tls_options co{};
    std::string ca = P("ca.pem"), cert, key;
    co.ca_file = ca.c_str();
    if (leaf) {
      cert = P(std::string(leaf) + ".pem");
      key = P(std::string(leaf) + ".key");
      co.cert_chain_file = cert.c_str();
      co.private_key_file = key.c_str();
    }
    crpc_channel_credentials *cc = nullptr;
    char err[CRPC_CREDENTIALS_ERROR_MAX] = "";
    EXPECT_EQ(CRPC_OK, crpc_channel_credentials_new(&co, &cc, err)) << err;
    crpc_channel_options o{};
    o.credentials = cc;
    std::string target = "localhost:" + std::to_string(port);
    crpc_channel *ch = crpc_channel_new(target.c_str(), &o);
    crpc_channel_credentials_free(cc);
    crpc_ctx *ctx = crpc_ctx_with_timeout(crpc_ctx_background(), 10 * CRPC_SECOND);
    crpc_message resp{};
    crpc_status st{};
    crpc_code code = crpc_unary_call(ch, ctx, "/crpc.test.Test/Echo", nullptr, "interop", 7,
                                     &resp, &st);
    if (code == CRPC_OK) reply->assign(reinterpret_cast<char *>(resp.data), resp.len);
    *message = st.message ? st.message : "";
    free(resp.data);
    crpc_status_clear(&st);
    crpc_ctx_release(ctx);
    crpc_channel_free(ch);
    return code;
  };
  std::string reply, message;
  EXPECT_EQ(CRPC_OK, call("client", &reply, &message)) << message;
  EXPECT_EQ("interop", reply);
  reply.clear();
  EXPECT_EQ(CRPC_UNAVAILABLE, call(nullptr, &reply, &message));
  printf("  without a client cert: %s\n", message.c_str());

  kill(pid, SIGTERM);
  pclose(child);
}

}  // namespace
