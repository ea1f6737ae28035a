// Target parsing (gRPC naming forms) and resolution of literal targets.
#include "rpc/resolve/resolve.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/un.h>

#include <string>

namespace {

std::string Text(const crpc_resolved_addr &a) {
  char ip[INET6_ADDRSTRLEN] = "";
  if (a.ss.ss_family == AF_INET) {
    auto *in = reinterpret_cast<const sockaddr_in *>(&a.ss);
    inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
    return std::string(ip) + ":" + std::to_string(ntohs(in->sin_port));
  }
  if (a.ss.ss_family == AF_INET6) {
    auto *in6 = reinterpret_cast<const sockaddr_in6 *>(&a.ss);
    inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
    return "[" + std::string(ip) + "]:" + std::to_string(ntohs(in6->sin6_port));
  }
  auto *un = reinterpret_cast<const sockaddr_un *>(&a.ss);
  return std::string("unix:") + un->sun_path;
}

struct Parsed {
  crpc_code code;
  crpc_target t;
  char err[CRPC_RESOLVE_ERR_MAX] = "";
  explicit Parsed(const char *text) { code = crpc_target_parse(text, &t, err); }
  ~Parsed() { crpc_target_destroy(&t); }
};

TEST(TargetParse, DnsForms) {
  for (const char *text : {"example.com:50051", "dns:example.com:50051",
                           "dns:///example.com:50051"}) {
    Parsed p(text);
    ASSERT_EQ(p.code, CRPC_OK) << text << ": " << p.err;
    EXPECT_TRUE(p.t.is_dns);
    EXPECT_STREQ(p.t.host, "example.com");
    EXPECT_STREQ(p.t.port, "50051");
    EXPECT_STREQ(p.t.authority, "example.com:50051");
    EXPECT_STREQ(p.t.tls_name, "example.com");
  }
  Parsed v6("[::1]:80");
  ASSERT_EQ(v6.code, CRPC_OK) << v6.err;
  EXPECT_STREQ(v6.t.host, "::1");
  EXPECT_STREQ(v6.t.authority, "[::1]:80");
}

TEST(TargetParse, DefaultPortIs443OnlyInSchemedForms) {
  Parsed d("dns:///example.com");
  ASSERT_EQ(d.code, CRPC_OK) << d.err;
  EXPECT_STREQ(d.t.port, "443");
  Parsed bare("example.com");
  EXPECT_EQ(bare.code, CRPC_INVALID_ARGUMENT);
  EXPECT_NE(std::string(bare.err).find("host:port"), std::string::npos)
      << bare.err;
}

TEST(TargetParse, Ipv4AndIpv6Lists) {
  Parsed p("ipv4:127.0.0.1:1,10.1.2.3:2,192.168.0.1");
  ASSERT_EQ(p.code, CRPC_OK) << p.err;
  ASSERT_EQ(p.t.n_addrs, 3u);
  EXPECT_EQ(Text(p.t.addrs[0]), "127.0.0.1:1");
  EXPECT_EQ(Text(p.t.addrs[1]), "10.1.2.3:2");
  EXPECT_EQ(Text(p.t.addrs[2]), "192.168.0.1:443");
  EXPECT_STREQ(p.t.authority, "127.0.0.1:1");
  Parsed q("ipv6:[::1]:5,[fe80::2]:6,::3");
  ASSERT_EQ(q.code, CRPC_OK) << q.err;
  ASSERT_EQ(q.t.n_addrs, 3u);
  EXPECT_EQ(Text(q.t.addrs[0]), "[::1]:5");
  EXPECT_EQ(Text(q.t.addrs[1]), "[fe80::2]:6");
  EXPECT_EQ(Text(q.t.addrs[2]), "[::3]:443");
  EXPECT_STREQ(q.t.authority, "[::1]:5");
}

TEST(TargetParse, UnixForms) {
  for (const char *text : {"unix:/tmp/a.sock", "unix:///tmp/a.sock"}) {
    Parsed p(text);
    ASSERT_EQ(p.code, CRPC_OK) << p.err;
    ASSERT_EQ(p.t.n_addrs, 1u);
    EXPECT_EQ(Text(p.t.addrs[0]), "unix:/tmp/a.sock");
    EXPECT_STREQ(p.t.authority, "localhost");
  }
}

TEST(TargetParse, ErrorsSayWhatIsWrong) {
  struct {
    const char *text, *says;
  } cases[] = {
      {"", "empty"},
      {"ipv4:1.2.3:80", "not an IPv4"},
      {"ipv4:1.2.3.4:80,,", "bad host"},
      {"ipv6:[::1", "missing ']'"},
      {"ipv6:[::1]x", "[ipv6]:port"},
      {"ipv4:1.2.3.4:99999", "bad port"},
      {"a:b:c", "[brackets]"},
      {"dns://8.8.8.8/x.com:1", "not supported"},
      {"unix:", "unix socket path"},
      {"host:", "bad port"},
  };
  for (auto &c : cases) {
    Parsed p(c.text);
    EXPECT_EQ(p.code, CRPC_INVALID_ARGUMENT) << c.text;
    EXPECT_NE(std::string(p.err).find(c.says), std::string::npos)
        << c.text << ": " << p.err;
  }
}

TEST(TargetResolve, LiteralsNeedNoLookup) {
  Parsed p("ipv4:127.0.0.1:1,127.0.0.2:2");
  crpc_resolved_addr *addrs;
  size_t n;
  char err[CRPC_RESOLVE_ERR_MAX];
  ASSERT_EQ(crpc_target_resolve(&p.t, crpc_ctx_background(), &addrs, &n, err),
            CRPC_OK);
  ASSERT_EQ(n, 2u);
  EXPECT_EQ(Text(addrs[1]), "127.0.0.2:2");
  free(addrs);
  Parsed ip("127.0.0.1:7");  // a DNS-form target holding a literal
  ASSERT_EQ(crpc_target_resolve(&ip.t, crpc_ctx_background(), &addrs, &n, err),
            CRPC_OK);
  EXPECT_EQ(Text(addrs[0]), "127.0.0.1:7");
  free(addrs);
  EXPECT_EQ(crpc_resolve_inflight(), 0) << "a literal started a lookup thread";
}

TEST(TargetResolve, NameFromHostsFile) {
  Parsed p("localhost:9");
  crpc_resolved_addr *addrs;
  size_t n;
  char err[CRPC_RESOLVE_ERR_MAX];
  ASSERT_EQ(crpc_target_resolve(&p.t, crpc_ctx_background(), &addrs, &n, err),
            CRPC_OK)
      << err;
  ASSERT_GE(n, 1u);
  bool loopback = false;
  for (size_t i = 0; i < n; i++) {
    std::string s = Text(addrs[i]);
    loopback |= s == "127.0.0.1:9" || s == "[::1]:9";
  }
  EXPECT_TRUE(loopback);
  free(addrs);
}

TEST(TargetResolve, DoneCtxReturnsItsCodeWithoutLooking) {
  Parsed p("localhost:9");
  crpc_ctx *ctx = crpc_ctx_with_cancel(crpc_ctx_background());
  crpc_ctx_cancel(ctx, CRPC_CANCELLED, "no");
  crpc_resolved_addr *addrs;
  size_t n;
  char err[CRPC_RESOLVE_ERR_MAX];
  EXPECT_EQ(crpc_target_resolve(&p.t, ctx, &addrs, &n, err), CRPC_CANCELLED);
  EXPECT_EQ(addrs, nullptr);
  crpc_ctx_release(ctx);
}

}  // namespace
