// TLS end to end over 127.0.0.1: a crpc server with crpc.test.Test behind
// a TLS listener and crpc channels with channel credentials. Certificates
// are made at test time (test_pki.h). Every failure must end the call with
// a clear status (UNAVAILABLE with the reason in the message); connecting
// and handshaking are bounded by the call's ctx (failure catalog line 13,
// DESIGN.md). Every test ends with crpc_ctx_live_count() back at its
// starting value.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include "crpc/channel.h"
#include "crpc/credentials.h"
#include "crpc/ctx.h"
#include "crpc/server.h"
#include "rpc/testing/test_service.h"
#include "rpc/tls/test_pki.h"

namespace {

using crpc_tls_test::Pki;

constexpr int64_t kMs = CRPC_MILLISECOND;
std::string M(const char *m) { return std::string("/crpc.test.Test/") + m; }

bool Eventually(const std::function<bool()> &pred, int64_t ms) {
  int64_t end = crpc_now_ns() + ms * kMs;
  while (!pred()) {
    if (crpc_now_ns() > end) return pred();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

// Handler: replies with the caller's verified TLS identity or "<none>".
crpc_code IdentityHandler(crpc_server_call *call, const crpc_ctx *, void *) {
  crpc_message m{};
  crpc_code rc = crpc_server_call_recv(call, &m);
  if (rc != CRPC_OK) return rc;
  free(m.data);
  const char *id = crpc_server_call_peer_identity(call);
  std::string s = id ? id : "<none>";
  return crpc_server_call_send(call, s.data(), s.size());
}

struct Result {
  crpc_code code = CRPC_UNKNOWN;
  std::string message, response;
  int64_t elapsed_ms = 0;
};

Result Unary(crpc_channel *ch, const crpc_ctx *ctx, const std::string &method,
             const std::string &req) {
  Result r;
  crpc_message resp{};
  crpc_status st{};
  int64_t t0 = crpc_now_ns();
  r.code = crpc_unary_call(ch, ctx, method.c_str(), nullptr, req.data(), req.size(), &resp,
                           &st);
  r.elapsed_ms = (crpc_now_ns() - t0) / kMs;
  if (r.code == CRPC_OK) r.response.assign(reinterpret_cast<char *>(resp.data), resp.len);
  free(resp.data);
  r.message = st.message ? st.message : "<null>";
  crpc_status_clear(&st);
  if (r.code != CRPC_OK) {
    printf("  status %s: %s\n", crpc_code_name(r.code), r.message.c_str());
  }
  return r;
}

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(Pki::Get().ok) << "could not make test certificates";
    baseline_ = crpc_ctx_live_count();
  }

  void TearDown() override {
    if (channel_) crpc_channel_free(channel_);
    if (server_) crpc_server_free(server_);
    crpc_test_service_free(svc_);
    if (raw_fd_ >= 0) close(raw_fd_);
    bool settled = Eventually([&] { return crpc_ctx_live_count() == baseline_; }, 3000);
    if (!settled) crpc_ctx_dump(stderr);
    EXPECT_EQ(baseline_, crpc_ctx_live_count()) << "contexts leaked";
  }

  std::string P(const std::string &name) { return Pki::Get().Path(name); }

  // Server credentials from files "<leaf>.pem"/"<leaf>.key".
  crpc_server_credentials *ServerCreds(const std::string &leaf, const char *client_ca = nullptr,
                                       bool require = false) {
    std::string cert = P(leaf + ".pem"), key = P(leaf + ".key"), ca;
    crpc_server_tls_options o{};
    o.cert_chain_file = cert.c_str();
    o.private_key_file = key.c_str();
    if (client_ca) {
      ca = P(std::string(client_ca) + ".pem");
      o.client_ca_file = ca.c_str();
      o.require_client_cert = require;
    }
    crpc_server_credentials *c = nullptr;
    char err[CRPC_CREDENTIALS_ERROR_MAX] = "";
    EXPECT_EQ(CRPC_OK, crpc_server_credentials_new(&o, &c, err)) << err;
    return c;
  }

  // Channel credentials trusting "<ca>.pem", optional client "<leaf>".
  crpc_channel_credentials *ChannelCreds(const std::string &ca, const char *leaf = nullptr,
                                         const char *override_name = nullptr) {
    std::string ca_path = P(ca + ".pem"), cert, key;
    crpc_channel_tls_options o{};
    o.ca_file = ca_path.c_str();
    if (leaf) {
      cert = P(std::string(leaf) + ".pem");
      key = P(std::string(leaf) + ".key");
      o.cert_chain_file = cert.c_str();
      o.private_key_file = key.c_str();
    }
    o.server_name_override = override_name;
    crpc_channel_credentials *c = nullptr;
    char err[CRPC_CREDENTIALS_ERROR_MAX] = "";
    EXPECT_EQ(CRPC_OK, crpc_channel_credentials_new(&o, &c, err)) << err;
    return c;
  }

  // Starts the test service (plus Identity) on 127.0.0.1:0, over TLS if
  // creds is not NULL; the server keeps its own reference, so creds are
  // freed here.
  void StartServer(crpc_server_credentials *creds) {
    svc_ = crpc_test_service_new();
    server_ = crpc_server_new(nullptr);
    ASSERT_EQ(CRPC_OK, crpc_test_service_register(svc_, server_));
    ASSERT_EQ(CRPC_OK, crpc_server_add_method(server_, "/crpc.tls.Test/Identity", CRPC_UNARY,
                                              IdentityHandler, nullptr));
    if (creds) {
      ASSERT_EQ(CRPC_OK, crpc_server_listen_tls(server_, "127.0.0.1:0", creds, &port_));
    } else {
      ASSERT_EQ(CRPC_OK, crpc_server_listen(server_, "127.0.0.1:0", &port_));
    }
    crpc_server_credentials_free(creds);
    ASSERT_EQ(CRPC_OK, crpc_server_start(server_));
  }

  // A channel to host:port_ (or port) with creds (freed here: the channel
  // keeps its own reference).
  void Connect(const std::string &host, crpc_channel_credentials *creds, int port = 0) {
    crpc_channel_options o{};
    o.credentials = creds;
    std::string target = host + ":" + std::to_string(port ? port : port_);
    channel_ = crpc_channel_new(target.c_str(), &o);
    crpc_channel_credentials_free(creds);
    ASSERT_NE(nullptr, channel_);
  }

  Result Call(const std::string &method, const std::string &req, int64_t timeout_ms = 5000) {
    crpc_ctx *ctx = crpc_ctx_with_timeout(crpc_ctx_background(), timeout_ms * kMs);
    Result r = Unary(channel_, ctx, method, req);
    crpc_ctx_release(ctx);
    return r;
  }

  // A TCP listener that never accepts and never reads: the kernel completes
  // the TCP handshake, the TLS handshake never starts on its side.
  int SilentListener() {
    raw_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(0, bind(raw_fd_, reinterpret_cast<sockaddr *>(&a), sizeof a));
    EXPECT_EQ(0, listen(raw_fd_, 16));
    socklen_t len = sizeof a;
    getsockname(raw_fd_, reinterpret_cast<sockaddr *>(&a), &len);
    return ntohs(a.sin_port);
  }

  size_t baseline_ = 0;
  crpc_test_service *svc_ = nullptr;
  crpc_server *server_ = nullptr;
  crpc_channel *channel_ = nullptr;
  int port_ = 0;
  int raw_fd_ = -1;
};

#define EXPECT_CONTAINS(hay, needle) \
  EXPECT_NE(std::string::npos, std::string(hay).find(needle)) << "message: " << (hay)

// ---- good handshakes ---------------------------------------------------------

TEST_F(TlsTest, AllFourShapesOverTls) {
  StartServer(ServerCreds("server"));
  Connect("localhost", ChannelCreds("ca"));
  Result r = Call(M("Echo"), "hello over tls");
  ASSERT_EQ(CRPC_OK, r.code) << r.message;
  EXPECT_EQ("hello over tls", r.response);

  crpc_ctx *ctx = crpc_ctx_with_timeout(crpc_ctx_background(), 10 * CRPC_SECOND);
  // Server streaming: 20 messages of 50 KB (many TLS records each).
  crpc_call *call = nullptr;
  ASSERT_EQ(CRPC_OK, crpc_call_start(channel_, ctx, M("Count").c_str(), nullptr, &call));
  std::string req = "20 50000 0";
  ASSERT_EQ(CRPC_OK, crpc_call_send(call, req.data(), req.size()));
  ASSERT_EQ(CRPC_OK, crpc_call_close_send(call));
  int got = 0;
  for (;;) {
    crpc_message m{};
    ASSERT_EQ(CRPC_OK, crpc_call_recv(call, &m));
    if (m.end) break;
    EXPECT_EQ(50000u, m.len);
    if (m.len > 0) {
      EXPECT_EQ(static_cast<uint8_t>(got & 0xff), m.data[0]);
    }
    free(m.data);
    got++;
  }
  EXPECT_EQ(20, got);
  EXPECT_EQ(CRPC_OK, crpc_call_finish(call, nullptr));
  crpc_call_free(call);

  // Client streaming: 8 messages of 100 KB.
  ASSERT_EQ(CRPC_OK, crpc_call_start(channel_, ctx, M("Collect").c_str(), nullptr, &call));
  std::string big(100000, 'x');
  for (int i = 0; i < 8; i++) ASSERT_EQ(CRPC_OK, crpc_call_send(call, big.data(), big.size()));
  ASSERT_EQ(CRPC_OK, crpc_call_close_send(call));
  crpc_message m{};
  ASSERT_EQ(CRPC_OK, crpc_call_recv(call, &m));
  EXPECT_EQ("8 800000", std::string(reinterpret_cast<char *>(m.data), m.len));
  free(m.data);
  EXPECT_EQ(CRPC_OK, crpc_call_finish(call, nullptr));
  crpc_call_free(call);

  // Bidi: ping-pong, one message of 300 KB.
  ASSERT_EQ(CRPC_OK, crpc_call_start(channel_, ctx, M("Chat").c_str(), nullptr, &call));
  for (int i = 0; i < 5; i++) {
    std::string msg = i == 3 ? std::string(300000, 'y') : "ping " + std::to_string(i);
    ASSERT_EQ(CRPC_OK, crpc_call_send(call, msg.data(), msg.size()));
    crpc_message e{};
    ASSERT_EQ(CRPC_OK, crpc_call_recv(call, &e));
    EXPECT_EQ(msg, std::string(reinterpret_cast<char *>(e.data), e.len));
    free(e.data);
  }
  ASSERT_EQ(CRPC_OK, crpc_call_close_send(call));
  EXPECT_EQ(CRPC_OK, crpc_call_finish(call, nullptr));
  crpc_call_free(call);
  crpc_ctx_release(ctx);

  // Without a client certificate there is no peer identity.
  r = Call("/crpc.tls.Test/Identity", "");
  ASSERT_EQ(CRPC_OK, r.code) << r.message;
  EXPECT_EQ("<none>", r.response);
}

TEST_F(TlsTest, IpLiteralTargetIsCheckedAgainstIpSan) {
  StartServer(ServerCreds("server"));
  Connect("127.0.0.1", ChannelCreds("ca"));
  Result r = Call(M("Echo"), "ip");
  EXPECT_EQ(CRPC_OK, r.code) << r.message;
}

TEST_F(TlsTest, CertificatesAsPemStrings) {
  std::string cert = crpc_tls_test::ReadFile(P("server.pem"));
  std::string key = crpc_tls_test::ReadFile(P("server.key"));
  std::string ca = crpc_tls_test::ReadFile(P("ca.pem"));
  crpc_server_tls_options so{};
  so.cert_chain_pem = cert.c_str();
  so.private_key_pem = key.c_str();
  crpc_server_credentials *sc = nullptr;
  char err[CRPC_CREDENTIALS_ERROR_MAX] = "";
  ASSERT_EQ(CRPC_OK, crpc_server_credentials_new(&so, &sc, err)) << err;
  crpc_channel_tls_options co{};
  co.ca_pem = ca.c_str();
  crpc_channel_credentials *cc = nullptr;
  ASSERT_EQ(CRPC_OK, crpc_channel_credentials_new(&co, &cc, err)) << err;
  StartServer(sc);
  Connect("localhost", cc);
  Result r = Call(M("Echo"), "pem");
  EXPECT_EQ(CRPC_OK, r.code) << r.message;
}

// ---- verification failures -----------------------------------------------------

TEST_F(TlsTest, WrongCaIsUnavailable) {
  StartServer(ServerCreds("server"));
  Connect("localhost", ChannelCreds("other_ca"));
  Result r = Call(M("Echo"), "x");
  EXPECT_EQ(CRPC_UNAVAILABLE, r.code);
  EXPECT_CONTAINS(r.message, "TLS handshake with localhost:");
  EXPECT_CONTAINS(r.message, "certificate verify failed");
}

TEST_F(TlsTest, WrongHostnameIsUnavailable) {
  StartServer(ServerCreds("wrongname"));
  Connect("localhost", ChannelCreds("ca"));
  Result r = Call(M("Echo"), "x");
  EXPECT_EQ(CRPC_UNAVAILABLE, r.code);
  EXPECT_CONTAINS(r.message, "hostname mismatch");
}

TEST_F(TlsTest, ServerNameOverrideFixesWrongHostname) {
  StartServer(ServerCreds("wrongname"));
  Connect("127.0.0.1", ChannelCreds("ca", nullptr, "wrong.crpc.test"));
  Result r = Call(M("Echo"), "override");
  EXPECT_EQ(CRPC_OK, r.code) << r.message;
  EXPECT_EQ("override", r.response);
}

TEST_F(TlsTest, ExpiredCertIsUnavailable) {
  StartServer(ServerCreds("expired"));
  Connect("localhost", ChannelCreds("ca"));
  Result r = Call(M("Echo"), "x");
  EXPECT_EQ(CRPC_UNAVAILABLE, r.code);
  EXPECT_CONTAINS(r.message, "expired");
}

// ---- plaintext and TLS mixed up --------------------------------------------------

TEST_F(TlsTest, PlaintextClientToTlsServerIsUnavailable) {
  StartServer(ServerCreds("server"));
  Connect("localhost", nullptr);
  Result r = Call(M("Echo"), "x");
  EXPECT_EQ(CRPC_UNAVAILABLE, r.code);
  EXPECT_CONTAINS(r.message, "connection");
  EXPECT_LT(r.elapsed_ms, 3000);
}

TEST_F(TlsTest, TlsClientToPlaintextServerIsUnavailable) {
  StartServer(nullptr);
  Connect("localhost", ChannelCreds("ca"));
  Result r = Call(M("Echo"), "x");
  EXPECT_EQ(CRPC_UNAVAILABLE, r.code);
  EXPECT_CONTAINS(r.message, "TLS handshake with localhost:");
  EXPECT_LT(r.elapsed_ms, 3000);
}

// ---- the handshake is bounded by the call's ctx (catalog line 13, DESIGN.md) ----

TEST_F(TlsTest, StalledHandshakeEndsAtDeadline) {
  int port = SilentListener();
  Connect("localhost", ChannelCreds("ca"), port);
  Result r = Call(M("Echo"), "x", 300);
  EXPECT_EQ(CRPC_DEADLINE_EXCEEDED, r.code) << r.message;
  EXPECT_GE(r.elapsed_ms, 290);
  EXPECT_LT(r.elapsed_ms, 300 + 700);
}

TEST_F(TlsTest, StalledHandshakeAbortsOnCancel) {
  int port = SilentListener();
  Connect("localhost", ChannelCreds("ca"), port);
  crpc_ctx *ctx = crpc_ctx_with_cancel(crpc_ctx_background());
  std::thread canceller([ctx] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    crpc_ctx_cancel(ctx, CRPC_CANCELLED, "user gave up");
  });
  Result r = Unary(channel_, ctx, M("Echo"), "x");
  canceller.join();
  crpc_ctx_release(ctx);
  EXPECT_EQ(CRPC_CANCELLED, r.code) << r.message;
  EXPECT_GE(r.elapsed_ms, 190);
  EXPECT_LT(r.elapsed_ms, 200 + 700);
}

// A client that connects to a TLS listener and never handshakes is
// disconnected at the server's handshake timeout; others are unaffected.
TEST_F(TlsTest, ServerDropsClientThatNeverHandshakes) {
  std::string cert = P("server.pem"), key = P("server.key");
  crpc_server_tls_options o{};
  o.cert_chain_file = cert.c_str();
  o.private_key_file = key.c_str();
  o.handshake_timeout_ns = 200 * kMs;
  crpc_server_credentials *sc = nullptr;
  char err[CRPC_CREDENTIALS_ERROR_MAX] = "";
  ASSERT_EQ(CRPC_OK, crpc_server_credentials_new(&o, &sc, err)) << err;
  StartServer(sc);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port_));
  ASSERT_EQ(0, connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a));
  int64_t t0 = crpc_now_ns();
  pollfd p{fd, POLLIN, 0};
  ASSERT_EQ(1, poll(&p, 1, 3000)) << "server kept a silent client";
  char b;
  EXPECT_LE(recv(fd, &b, 1, 0), 0);  // EOF (or reset): disconnected
  int64_t ms = (crpc_now_ns() - t0) / kMs;
  EXPECT_GE(ms, 190);
  EXPECT_LT(ms, 1500);
  close(fd);
  Connect("localhost", ChannelCreds("ca"));
  Result r = Call(M("Echo"), "still serving");
  EXPECT_EQ(CRPC_OK, r.code) << r.message;
}

// ---- mutual TLS ---------------------------------------------------------------

TEST_F(TlsTest, MtlsPeerIdentityIsTheClientSan) {
  StartServer(ServerCreds("server", "ca", true));
  Connect("localhost", ChannelCreds("ca", "client"));
  Result r = Call("/crpc.tls.Test/Identity", "");
  ASSERT_EQ(CRPC_OK, r.code) << r.message;
  EXPECT_EQ("client.crpc.test", r.response);
  r = Call(M("Echo"), "mtls");
  EXPECT_EQ(CRPC_OK, r.code) << r.message;
}

TEST_F(TlsTest, MtlsPeerIdentityFallsBackToCommonName) {
  StartServer(ServerCreds("server", "ca", true));
  Connect("localhost", ChannelCreds("ca", "cnclient"));
  Result r = Call("/crpc.tls.Test/Identity", "");
  ASSERT_EQ(CRPC_OK, r.code) << r.message;
  EXPECT_EQ("cn-only-client", r.response);
}

TEST_F(TlsTest, MtlsMissingClientCertIsUnavailable) {
  StartServer(ServerCreds("server", "ca", true));
  Connect("localhost", ChannelCreds("ca"));
  Result r = Call(M("Echo"), "x");
  EXPECT_EQ(CRPC_UNAVAILABLE, r.code);
  EXPECT_CONTAINS(r.message, "certificate");
  EXPECT_LT(r.elapsed_ms, 3000);
}

TEST_F(TlsTest, MtlsClientCertFromAnotherCaIsUnavailable) {
  StartServer(ServerCreds("server", "ca", true));
  Connect("localhost", ChannelCreds("ca", "stranger"));
  Result r = Call(M("Echo"), "x");
  EXPECT_EQ(CRPC_UNAVAILABLE, r.code);
  EXPECT_CONTAINS(r.message, "unknown ca");
  EXPECT_LT(r.elapsed_ms, 3000);
}

TEST_F(TlsTest, OptionalClientCertAllowsClientsWithout) {
  StartServer(ServerCreds("server", "ca", false));
  Connect("localhost", ChannelCreds("ca"));
  Result r = Call("/crpc.tls.Test/Identity", "");
  ASSERT_EQ(CRPC_OK, r.code) << r.message;
  EXPECT_EQ("<none>", r.response);
}

// ---- ALPN h2 is required both ways ----------------------------------------------

// A raw OpenSSL client offering only http/1.1 is refused by the server.
TEST_F(TlsTest, ServerRefusesClientWithoutH2) {
  StartServer(ServerCreds("server"));
  SSL_CTX *sctx = SSL_CTX_new(TLS_client_method());
  ASSERT_EQ(1, SSL_CTX_load_verify_locations(sctx, P("ca.pem").c_str(), nullptr));
  static const unsigned char kHttp11[] = "\x08http/1.1";
  SSL_CTX_set_alpn_protos(sctx, kHttp11, sizeof(kHttp11) - 1);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port_));
  ASSERT_EQ(0, connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a));
  SSL *ssl = SSL_new(sctx);
  SSL_set_fd(ssl, fd);
  int rc = SSL_connect(ssl);
  if (rc == 1) {  // a server may only find out after the client's Finished
    char b[16];
    rc = SSL_read(ssl, b, sizeof b);
  }
  EXPECT_LE(rc, 0) << "server accepted a client without ALPN h2";
  SSL_free(ssl);
  SSL_CTX_free(sctx);
  ERR_clear_error();
  close(fd);
}

// A TLS server that does not negotiate ALPN is refused by the client.
TEST_F(TlsTest, ClientRefusesServerWithoutH2) {
  // The raw server below writes through OpenSSL's plain socket BIO (write,
  // not send with MSG_NOSIGNAL) to a client that hangs up on it.
  signal(SIGPIPE, SIG_IGN);
  int port = SilentListener();
  std::thread server([this] {
    SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate_chain_file(sctx, P("server.pem").c_str());
    SSL_CTX_use_PrivateKey_file(sctx, P("server.key").c_str(), SSL_FILETYPE_PEM);
    int c = accept(raw_fd_, nullptr, nullptr);
    timeval tv{5, 0};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    SSL *ssl = SSL_new(sctx);
    SSL_set_fd(ssl, c);
    if (SSL_accept(ssl) == 1) {
      char b[64];
      while (SSL_read(ssl, b, sizeof b) > 0) {
      }
    }
    SSL_free(ssl);
    SSL_CTX_free(sctx);
    ERR_clear_error();
    close(c);
  });
  Connect("localhost", ChannelCreds("ca"), port);
  Result r = Call(M("Echo"), "x");
  channel_ = (crpc_channel_free(channel_), nullptr);  // closes the socket
  server.join();
  EXPECT_EQ(CRPC_UNAVAILABLE, r.code);
  EXPECT_CONTAINS(r.message, "ALPN");
}

// ---- credentials -----------------------------------------------------------------

TEST_F(TlsTest, BadCredentialsAreInvalidArgument) {
  char err[CRPC_CREDENTIALS_ERROR_MAX] = "";
  crpc_server_credentials *sc = nullptr;
  crpc_server_tls_options so{};
  EXPECT_EQ(CRPC_INVALID_ARGUMENT, crpc_server_credentials_new(&so, &sc, err));
  EXPECT_EQ(nullptr, sc);
  std::string missing = P("no-such.pem"), key = P("server.key"), other = P("client.pem");
  so.cert_chain_file = missing.c_str();
  so.private_key_file = key.c_str();
  EXPECT_EQ(CRPC_INVALID_ARGUMENT, crpc_server_credentials_new(&so, &sc, err));
  EXPECT_CONTAINS(err, "no-such.pem");
  so.cert_chain_file = other.c_str();  // key of another certificate
  EXPECT_EQ(CRPC_INVALID_ARGUMENT, crpc_server_credentials_new(&so, &sc, err));
  EXPECT_CONTAINS(err, "mismatch");
  crpc_channel_credentials *cc = nullptr;
  crpc_channel_tls_options co{};
  co.ca_pem = "not a pem";
  EXPECT_EQ(CRPC_INVALID_ARGUMENT, crpc_channel_credentials_new(&co, &cc, err));
  EXPECT_EQ(nullptr, cc);
  // System roots, no client certificate: fine.
  EXPECT_EQ(CRPC_OK, crpc_channel_credentials_new(nullptr, &cc, err)) << err;
  crpc_channel_credentials_free(cc);
  crpc_server_credentials_free(nullptr);
  crpc_channel_credentials_free(nullptr);
  crpc_server *s = crpc_server_new(nullptr);
  EXPECT_EQ(CRPC_INVALID_ARGUMENT, crpc_server_listen_tls(s, "127.0.0.1:0", nullptr, nullptr));
  crpc_server_free(s);
}

}  // namespace
