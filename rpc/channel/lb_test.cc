// Targets with several addresses: gRPC's naming forms, pick first (the
// default) and round robin, with real servers on loopback.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <map>
#include <mutex>
#include <string>

#include "crpc/channel.h"
#include "crpc/ctx.h"
#include "crpc/server.h"
#include "rpc/channel/test_util.h"

namespace crpc_test {
namespace {

// A server that counts the calls it answers.
class CountingServer {
 public:
  CountingServer() {
    server_.Add("/test.Svc/Who", CRPC_UNARY,
                [this](crpc_server_call *call, const crpc_ctx *) {
                  crpc_message m;
                  crpc_code c = crpc_server_call_recv(call, &m);
                  if (c != CRPC_OK) return c;
                  free(m.data);
                  calls_++;
                  return crpc_server_call_send(call, "ok", 2);
                });
    server_.Start();
  }
  int port() const { return server_.port(); }
  int calls() const { return calls_.load(); }
  void Shutdown() { crpc_server_shutdown(server_.get(), 0); }

 private:
  TestServer server_;
  std::atomic<int> calls_{0};
};

// A loopback port nobody listens on (bound, then closed).
int DeadPort() {
  TestServer s;
  s.Start();
  return s.port();
}

crpc_code Call(crpc_channel *ch, std::string *why = nullptr) {
  Ctx ctx(crpc_ctx_with_timeout(crpc_ctx_background(), 5 * CRPC_SECOND));
  crpc_message resp{};
  crpc_status st{};
  crpc_code c = crpc_unary_call(ch, ctx, "/test.Svc/Who", nullptr, "x", 1,
                                &resp, &st);
  if (why != nullptr) *why = st.message ? st.message : "";
  free(resp.data);
  crpc_status_clear(&st);
  return c;
}

std::string Ipv4List(std::initializer_list<int> ports) {
  std::string t = "ipv4:";
  for (int p : ports) {
    if (t.size() > 5) t += ",";
    t += "127.0.0.1:" + std::to_string(p);
  }
  return t;
}

class LbTest : public LeakCheckTest {};

TEST_F(LbTest, GrpcTargetFormsReachTheServer) {
  CountingServer s;
  std::string port = std::to_string(s.port());
  for (std::string target :
       {"127.0.0.1:" + port, "dns:///127.0.0.1:" + port, "dns:localhost:" + port,
        "localhost:" + port, "ipv4:127.0.0.1:" + port}) {
    crpc_channel *ch = crpc_channel_new(target.c_str(), nullptr);
    ASSERT_NE(ch, nullptr) << target;
    std::string why;
    EXPECT_EQ(Call(ch, &why), CRPC_OK) << target << ": " << why;
    crpc_channel_free(ch);
  }
  EXPECT_EQ(s.calls(), 5);
}

TEST_F(LbTest, BadTargetsAreRefusedAtCreation) {
  for (const char *t : {"", "nohostport", "ipv4:1.2.3:80", "ipv4:10.0.0.1:99999",
                        "ipv6:[::1", "dns://8.8.8.8/example.com:443",
                        "a:b:c", "unix:"}) {
    EXPECT_EQ(crpc_channel_new(t, nullptr), nullptr) << t;
  }
}

TEST_F(LbTest, PickFirstUsesTheFirstAddressThatAccepts) {
  CountingServer a, b;
  crpc_channel *ch =
      crpc_channel_new(Ipv4List({DeadPort(), a.port(), b.port()}).c_str(),
                       nullptr);
  for (int i = 0; i < 10; i++) ASSERT_EQ(Call(ch), CRPC_OK);
  EXPECT_EQ(a.calls(), 10);  // the dead one skipped, the third never used
  EXPECT_EQ(b.calls(), 0);
  crpc_channel_free(ch);
}

TEST_F(LbTest, PickFirstMovesOnWhenItsServerGoesAway) {
  auto a = std::make_unique<CountingServer>();
  CountingServer b;
  crpc_channel *ch =
      crpc_channel_new(Ipv4List({a->port(), b.port()}).c_str(), nullptr);
  ASSERT_EQ(Call(ch), CRPC_OK);
  a->Shutdown();  // GOAWAY, then closed: the next call starts over
  std::string why;
  // The reconnect tries a (refused) then b, within the same call.
  EXPECT_EQ(Call(ch, &why), CRPC_OK) << why;
  EXPECT_EQ(a->calls(), 1);
  EXPECT_EQ(b.calls(), 1);
  crpc_channel_free(ch);
}

TEST_F(LbTest, RoundRobinSpreadsCallsEvenly) {
  CountingServer a, b, c;
  crpc_channel_options o{};
  o.lb_policy = CRPC_LB_ROUND_ROBIN;
  crpc_channel *ch = crpc_channel_new(
      Ipv4List({a.port(), b.port(), c.port()}).c_str(), &o);
  for (int i = 0; i < 30; i++) ASSERT_EQ(Call(ch), CRPC_OK);
  EXPECT_EQ(a.calls(), 10);
  EXPECT_EQ(b.calls(), 10);
  EXPECT_EQ(c.calls(), 10);
  EXPECT_EQ(crpc_channel_get_state(ch), CRPC_CHANNEL_READY);
  crpc_channel_free(ch);
}

TEST_F(LbTest, RoundRobinSkipsADeadAddressWithoutFailingCalls) {
  auto a = std::make_unique<CountingServer>();
  CountingServer b;
  crpc_channel_options o{};
  o.lb_policy = CRPC_LB_ROUND_ROBIN;
  crpc_channel *ch = crpc_channel_new(
      Ipv4List({a->port(), DeadPort(), b.port()}).c_str(), &o);
  for (int i = 0; i < 10; i++) ASSERT_EQ(Call(ch), CRPC_OK);
  EXPECT_EQ(a->calls() + b.calls(), 10);
  EXPECT_GE(a->calls(), 4);
  EXPECT_GE(b.calls(), 4);
  // One of the two live servers goes away: every call still succeeds.
  a->Shutdown();
  int before = b.calls();
  for (int i = 0; i < 10; i++) {
    std::string why;
    ASSERT_EQ(Call(ch, &why), CRPC_OK) << "call " << i << ": " << why;
  }
  EXPECT_EQ(b.calls() - before, 10);
  crpc_channel_free(ch);
}

TEST_F(LbTest, RoundRobinWithEveryAddressDownFailsWithTheReason) {
  crpc_channel_options o{};
  o.lb_policy = CRPC_LB_ROUND_ROBIN;
  crpc_channel *ch =
      crpc_channel_new(Ipv4List({DeadPort(), DeadPort()}).c_str(), &o);
  std::string why;
  EXPECT_EQ(Call(ch, &why), CRPC_UNAVAILABLE);
  EXPECT_NE(why.find("refused"), std::string::npos) << why;
  EXPECT_EQ(crpc_channel_get_state(ch), CRPC_CHANNEL_TRANSIENT_FAILURE);
  crpc_channel_free(ch);
}

}  // namespace
}  // namespace crpc_test
