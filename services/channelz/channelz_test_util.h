// The fixture of channelz_test.cc: an admin server serving Channelz and a
// channel to it (cz_), an application server (Echo, Count, Hold) and a
// channel to it (ch_), a known workload, and one helper per Channelz
// method over crpc's generated client (responses decoded by protobuf-c).
#ifndef CRPC_SERVICES_CHANNELZ_TEST_UTIL_H
#define CRPC_SERVICES_CHANNELZ_TEST_UTIL_H

#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "crpc/admin.h"
#include "crpc/channel.h"
#include "crpc/credentials.h"
#include "crpc/ctx.h"
#include "crpc/server.h"
#include "crpc/server_info.h"
#include "grpc/channelz/v1/channelz.crpc.h"

namespace channelz_test {

inline constexpr char kEcho[] = "/cz.Test/Echo";   // unary: "fail" -> NOT_FOUND
inline constexpr char kCount[] = "/cz.Test/Count"; // server streaming: N messages
inline constexpr char kHold[] = "/cz.Test/Hold";   // bidi: echoes until the end

using State = Grpc__Channelz__V1__ChannelConnectivityState__State;

inline bool WaitFor(const std::function<bool()> &pred, int64_t timeout_ns) {
  int64_t until = crpc_now_ns() + timeout_ns;
  while (!pred()) {
    if (crpc_now_ns() > until) return false;
    usleep(2000);
  }
  return true;
}

inline crpc_code Echo(crpc_server_call *call, const crpc_ctx *ctx, void *ud) {
  (void)ctx;
  (void)ud;
  crpc_message m{};
  crpc_code c = crpc_server_call_recv(call, &m);
  if (c != CRPC_OK) return c;
  std::string req(reinterpret_cast<char *>(m.data), m.len);
  free(m.data);
  if (req == "fail") return crpc_server_call_error(call, CRPC_NOT_FOUND, "told to");
  return crpc_server_call_send(call, req.data(), req.size());
}

inline crpc_code Count(crpc_server_call *call, const crpc_ctx *ctx, void *ud) {
  (void)ctx;
  (void)ud;
  crpc_message m{};
  crpc_code c = crpc_server_call_recv(call, &m);
  if (c != CRPC_OK) return c;
  int n = atoi(std::string(reinterpret_cast<char *>(m.data), m.len).c_str());
  free(m.data);
  for (int i = 0; i < n && c == CRPC_OK; i++) c = crpc_server_call_send(call, "m", 1);
  return c;
}

inline crpc_code Hold(crpc_server_call *call, const crpc_ctx *ctx, void *ud) {
  (void)ctx;
  (void)ud;
  for (;;) {
    crpc_message m{};
    crpc_code c = crpc_server_call_recv(call, &m);
    if (c != CRPC_OK) return c;
    if (m.end) return CRPC_OK;
    c = crpc_server_call_send(call, m.data, m.len);
    free(m.data);
    if (c != CRPC_OK) return c;
  }
}

// A self-signed certificate for localhost / 127.0.0.1, made once.
struct Cert {
  std::string dir, cert, key;
  bool ok = false;
  static const Cert &Get() {
    static Cert *c = new Cert();
    return *c;
  }

 private:
  Cert() {
    const char *tmp = getenv("TEST_TMPDIR");
    dir = std::string(tmp ? tmp : "/tmp") + "/crpc-channelz-cert";
    cert = dir + "/cert.pem";
    key = dir + "/key.pem";
    std::string cmd = "rm -rf '" + dir + "' && mkdir -p '" + dir +
                      "' && openssl req -x509 -newkey ec -pkeyopt "
                      "ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost "
                      "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout '" +
                      key + "' -out '" + cert + "' >/dev/null 2>&1";
    ok = system(cmd.c_str()) == 0;
  }
};

// The DER bytes of a PEM certificate file (via the openssl CLI).
inline std::string Der(const std::string &pem) {
  std::string out = pem + ".der";
  std::string cmd = "openssl x509 -in '" + pem + "' -outform DER -out '" + out + "'";
  if (system(cmd.c_str()) != 0) return "";
  std::ifstream f(out, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline int Port(const Grpc__Channelz__V1__Address *a) {
  if (a == nullptr ||
      a->address_case != GRPC__CHANNELZ__V1__ADDRESS__ADDRESS_TCPIP_ADDRESS) {
    return -1;
  }
  return a->tcpip_address->port;
}

inline bool IsLoopback(const Grpc__Channelz__V1__Address *a) {
  if (Port(a) < 0 || a->tcpip_address->ip_address.len != 4) return false;
  const uint8_t *b = a->tcpip_address->ip_address.data;
  return b[0] == 127 && b[1] == 0 && b[2] == 0 && b[3] == 1;
}

// A response of the generated client, freed with its scope.
template <typename T>
struct Resp {
  T *p = nullptr;
  crpc_code code = CRPC_INTERNAL;
  std::string message;
  Resp() = default;
  Resp(const Resp &) = delete;
  Resp &operator=(const Resp &) = delete;
  ~Resp() { Reset(); }
  void Reset() {
    if (p != nullptr) protobuf_c_message_free_unpacked(&p->base, nullptr);
    p = nullptr;
    code = CRPC_INTERNAL;
    message.clear();
  }
  T *operator->() const { return p; }
};

class ChannelzTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { (void)Cert::Get(); }  // fork before threads

  void SetUp() override {
    baseline_ = crpc_ctx_live_count();
    admin_ = crpc_server_new(nullptr);
    ASSERT_NE(nullptr, admin_);
    crpc_code code = CRPC_INTERNAL;
    admin_id_ = crpc_channelz_service_add(admin_, &code);
    ASSERT_EQ(CRPC_OK, code);
    ASSERT_GT(admin_id_, 0);
    EXPECT_EQ(admin_id_, crpc_server_channelz_id(admin_));
    int port = 0;
    ASSERT_EQ(CRPC_OK, crpc_server_listen(admin_, "127.0.0.1:0", &port));
    ASSERT_EQ(CRPC_OK, crpc_server_start(admin_));
    cz_ = crpc_channel_new(("127.0.0.1:" + std::to_string(port)).c_str(), nullptr);
    ASSERT_NE(nullptr, cz_);
  }

  void TearDown() override {
    for (crpc_channel *c : extra_) crpc_channel_free(c);
    crpc_channel_free(ch_);
    crpc_server_free(app_);
    crpc_channel_free(cz_);
    crpc_server_free(admin_);
    EXPECT_TRUE(WaitFor([&] { return crpc_ctx_live_count() == baseline_; },
                        3 * CRPC_SECOND))
        << "leaked contexts";
  }

  // The application server (Echo, Count, Hold) and a channel to it.
  void StartApp(const crpc_server_options *so = nullptr, bool tls = false,
                const crpc_channel_options *co = nullptr) {
    app_ = crpc_server_new(so);
    ASSERT_NE(nullptr, app_);
    ASSERT_EQ(CRPC_OK, crpc_server_add_method(app_, kEcho, CRPC_UNARY, Echo, nullptr));
    ASSERT_EQ(CRPC_OK,
              crpc_server_add_method(app_, kCount, CRPC_SERVER_STREAMING, Count, nullptr));
    ASSERT_EQ(CRPC_OK, crpc_server_add_method(app_, kHold, CRPC_BIDI_STREAMING, Hold, nullptr));
    crpc_channel_options opts{};
    if (co != nullptr) opts = *co;
    crpc_channel_credentials *cc = nullptr;
    if (tls) {
      const Cert &cert = Cert::Get();
      ASSERT_TRUE(cert.ok);
      crpc_server_tls_options st{};
      st.cert_chain_file = cert.cert.c_str();
      st.private_key_file = cert.key.c_str();
      crpc_server_credentials *sc = nullptr;
      ASSERT_EQ(CRPC_OK, crpc_server_credentials_new(&st, &sc, nullptr));
      ASSERT_EQ(CRPC_OK, crpc_server_listen_tls(app_, "127.0.0.1:0", sc, &app_port_));
      crpc_server_credentials_free(sc);
      crpc_channel_tls_options ct{};
      ct.ca_file = cert.cert.c_str();
      ASSERT_EQ(CRPC_OK, crpc_channel_credentials_new(&ct, &cc, nullptr));
      opts.credentials = cc;
    } else {
      ASSERT_EQ(CRPC_OK, crpc_server_listen(app_, "127.0.0.1:0", &app_port_));
    }
    ASSERT_EQ(CRPC_OK, crpc_server_start(app_));
    target_ = "127.0.0.1:" + std::to_string(app_port_);
    ch_ = crpc_channel_new(target_.c_str(), &opts);
    crpc_channel_credentials_free(cc);
    ASSERT_NE(nullptr, ch_);
  }

  crpc_code Unary(crpc_channel *ch, const std::string &req, std::string *resp = nullptr) {
    crpc_ctx *ctx = crpc_ctx_with_timeout(crpc_ctx_background(), 10 * CRPC_SECOND);
    crpc_message m{};
    crpc_status st{};
    crpc_code c = crpc_unary_call(ch, ctx, kEcho, nullptr, req.data(), req.size(), &m, &st);
    if (c == CRPC_OK && resp != nullptr) {
      resp->assign(reinterpret_cast<char *>(m.data), m.len);
    }
    free(m.data);
    crpc_status_clear(&st);
    crpc_ctx_release(ctx);
    return c;
  }

  // A Count call reading every message; returns how many came.
  int Stream(int n) {
    crpc_ctx *ctx = crpc_ctx_with_timeout(crpc_ctx_background(), 10 * CRPC_SECOND);
    crpc_call *call = nullptr;
    int got = 0;
    if (crpc_call_start(ch_, ctx, kCount, nullptr, &call) == CRPC_OK) {
      std::string req = std::to_string(n);
      crpc_call_send(call, req.data(), req.size());
      crpc_call_close_send(call);
      for (;;) {
        crpc_message m{};
        if (crpc_call_recv(call, &m) != CRPC_OK || m.end) break;
        free(m.data);
        got++;
      }
      EXPECT_EQ(CRPC_OK, crpc_call_finish(call, nullptr));
    }
    crpc_call_free(call);
    crpc_ctx_release(ctx);
    return got;
  }

  // 3 OK unary calls, 1 failed, 1 server stream of 5: 5 calls, 4 OK.
  void Workload() {
    std::string r;
    for (int i = 0; i < 3; i++) {
      ASSERT_EQ(CRPC_OK, Unary(ch_, "hi", &r));
      ASSERT_EQ("hi", r);
    }
    ASSERT_EQ(CRPC_NOT_FOUND, Unary(ch_, "fail"));
    ASSERT_EQ(5, Stream(5));
  }

  // ---- Channelz over the admin channel ----------------------------------

  template <typename T, typename Req, typename F>
  void Ask(F fn, const Req &req, Resp<T> *out) {
    crpc_ctx *ctx = crpc_ctx_with_timeout(crpc_ctx_background(), 10 * CRPC_SECOND);
    crpc_status st{};
    out->code = fn(cz_, ctx, nullptr, &req, &out->p, &st);
    if (st.message != nullptr) out->message = st.message;
    crpc_status_clear(&st);
    crpc_ctx_release(ctx);
  }

  void GetServer(int64_t id, Resp<Grpc__Channelz__V1__GetServerResponse> *r) {
    Grpc__Channelz__V1__GetServerRequest req = GRPC__CHANNELZ__V1__GET_SERVER_REQUEST__INIT;
    req.server_id = id;
    Ask(grpc_channelz_v1_channelz_get_server, req, r);
  }
  void GetServers(int64_t start, int64_t max, Resp<Grpc__Channelz__V1__GetServersResponse> *r) {
    Grpc__Channelz__V1__GetServersRequest req = GRPC__CHANNELZ__V1__GET_SERVERS_REQUEST__INIT;
    req.start_server_id = start;
    req.max_results = max;
    Ask(grpc_channelz_v1_channelz_get_servers, req, r);
  }
  void GetServerSockets(int64_t id, int64_t start, int64_t max,
                        Resp<Grpc__Channelz__V1__GetServerSocketsResponse> *r) {
    Grpc__Channelz__V1__GetServerSocketsRequest req =
        GRPC__CHANNELZ__V1__GET_SERVER_SOCKETS_REQUEST__INIT;
    req.server_id = id;
    req.start_socket_id = start;
    req.max_results = max;
    Ask(grpc_channelz_v1_channelz_get_server_sockets, req, r);
  }
  void GetTopChannels(int64_t start, int64_t max,
                      Resp<Grpc__Channelz__V1__GetTopChannelsResponse> *r) {
    Grpc__Channelz__V1__GetTopChannelsRequest req =
        GRPC__CHANNELZ__V1__GET_TOP_CHANNELS_REQUEST__INIT;
    req.start_channel_id = start;
    req.max_results = max;
    Ask(grpc_channelz_v1_channelz_get_top_channels, req, r);
  }
  void GetChannel(int64_t id, Resp<Grpc__Channelz__V1__GetChannelResponse> *r) {
    Grpc__Channelz__V1__GetChannelRequest req = GRPC__CHANNELZ__V1__GET_CHANNEL_REQUEST__INIT;
    req.channel_id = id;
    Ask(grpc_channelz_v1_channelz_get_channel, req, r);
  }
  void GetSubchannel(int64_t id, Resp<Grpc__Channelz__V1__GetSubchannelResponse> *r) {
    Grpc__Channelz__V1__GetSubchannelRequest req =
        GRPC__CHANNELZ__V1__GET_SUBCHANNEL_REQUEST__INIT;
    req.subchannel_id = id;
    Ask(grpc_channelz_v1_channelz_get_subchannel, req, r);
  }
  void GetSocket(int64_t id, Resp<Grpc__Channelz__V1__GetSocketResponse> *r) {
    Grpc__Channelz__V1__GetSocketRequest req = GRPC__CHANNELZ__V1__GET_SOCKET_REQUEST__INIT;
    req.socket_id = id;
    Ask(grpc_channelz_v1_channelz_get_socket, req, r);
  }

  // The app server's only connection (waits for it to be listed).
  int64_t ServerSocketId() {
    int64_t id = 0;
    WaitFor(
        [&] {
          Resp<Grpc__Channelz__V1__GetServerSocketsResponse> r;
          GetServerSockets(crpc_server_channelz_id(app_), 0, 0, &r);
          if (r.code != CRPC_OK || r->n_socket_ref != 1) return false;
          id = r->socket_ref[0]->socket_id;
          return true;
        },
        5 * CRPC_SECOND);
    return id;
  }

  // ch_'s only subchannel and that subchannel's only socket.
  void ClientIds(int64_t *sub, int64_t *sock) {
    Resp<Grpc__Channelz__V1__GetChannelResponse> c;
    GetChannel(crpc_channel_channelz_id(ch_), &c);
    ASSERT_EQ(CRPC_OK, c.code) << c.message;
    ASSERT_EQ(1u, c->channel->n_subchannel_ref);
    *sub = c->channel->subchannel_ref[0]->subchannel_id;
    Resp<Grpc__Channelz__V1__GetSubchannelResponse> s;
    GetSubchannel(*sub, &s);
    ASSERT_EQ(CRPC_OK, s.code) << s.message;
    ASSERT_EQ(1u, s->subchannel->n_socket_ref);
    *sock = s->subchannel->socket_ref[0]->socket_id;
  }

  size_t baseline_ = 0;
  crpc_server *admin_ = nullptr, *app_ = nullptr;
  crpc_channel *cz_ = nullptr, *ch_ = nullptr;
  std::vector<crpc_channel *> extra_;
  int64_t admin_id_ = 0;
  int app_port_ = 0;
  std::string target_;
};

}  // namespace channelz_test

#endif  // CRPC_SERVICES_CHANNELZ_TEST_UTIL_H
