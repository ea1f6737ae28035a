// auth: bearer token / API key checked by a callback ->
// UNAUTHENTICATED / PERMISSION_DENIED; the handler runs only when allowed.
#include "interceptors/auth.h"

#include <atomic>
#include <cstring>

#include "rpc/intercept/icpt_test_util.h"

namespace {

using namespace icpt_test;

std::atomic<int> g_checks{0};

crpc_code Check(void *, const char *method, crpc_auth_kind kind, const char *cred) {
  g_checks++;
  bool known = (kind == CRPC_AUTH_BEARER && strcmp(cred, "good") == 0) ||
               (kind == CRPC_AUTH_API_KEY && strcmp(cred, "key1") == 0);
  if (!known) return CRPC_UNAUTHENTICATED;
  if (strstr(method, "Hang") != nullptr) return CRPC_PERMISSION_DENIED;
  return CRPC_OK;
}

class AuthTest : public LeakCheckTest {};

TEST_F(AuthTest, BearerAndApiKeyCheckedByCallback) {
  crpc_auth_options o{Check, nullptr, nullptr};
  auto icpt = crpc_auth_server(&o);
  Server srv([&](crpc_server *s) { crpc_server_add_interceptor(s, &icpt); });
  auto ch = NewChannel(srv.target());
  auto ctx = WithTimeout(5 * kSec);

  auto r = Unary(ch.get(), ctx.get(), M("Echo"), "x");
  EXPECT_EQ(CRPC_UNAUTHENTICATED, r.code);
  EXPECT_EQ("missing credentials", r.message);
  EXPECT_EQ(0, g_checks.load());

  auto bad = NewMd({{"authorization", "Bearer nope"}});
  EXPECT_EQ(CRPC_UNAUTHENTICATED, Unary(ch.get(), ctx.get(), M("Echo"), "x", bad.get()).code);
  auto basic = NewMd({{"authorization", "Basic abc"}});
  EXPECT_EQ(CRPC_UNAUTHENTICATED, Unary(ch.get(), ctx.get(), M("Echo"), "x", basic.get()).code);

  auto good = NewMd({{"authorization", "Bearer good"}});
  r = Unary(ch.get(), ctx.get(), M("Echo"), "hello", good.get());
  EXPECT_EQ(CRPC_OK, r.code) << r.message;
  EXPECT_EQ("hello", r.response);
  r = Unary(ch.get(), ctx.get(), M("Hang"), "x", good.get());
  EXPECT_EQ(CRPC_PERMISSION_DENIED, r.code);  // and Hang never ran

  auto key = NewMd({{"x-api-key", "key1"}});
  EXPECT_EQ(CRPC_OK, Unary(ch.get(), ctx.get(), M("Echo"), "x", key.get()).code);
  auto badkey = NewMd({{"x-api-key", "key2"}});
  EXPECT_EQ(CRPC_UNAUTHENTICATED, Unary(ch.get(), ctx.get(), M("Echo"), "x", badkey.get()).code);
}

TEST_F(AuthTest, ClientBearerInterceptorAddsToken) {
  crpc_auth_options o{Check, nullptr, "x-key"};
  auto sicpt = crpc_auth_server(&o);
  Server srv([&](crpc_server *s) { crpc_server_add_interceptor(s, &sicpt); });
  auto cicpt = crpc_auth_client_bearer("good");
  auto ch = NewChannel(srv.target(), {&cicpt});
  auto ctx = WithTimeout(5 * kSec);
  auto r = Unary(ch.get(), ctx.get(), M("Echo"), "x");
  EXPECT_EQ(CRPC_OK, r.code) << r.message;
}

}  // namespace
