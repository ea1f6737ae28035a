// crpc.admin.v1.Admin with crpc's own generated client, under TSan: the
// answers come from other loops while clients cancel and deadlines pass,
// so whoever finishes the call first (the answer or on_cancel) must win
// cleanly. Real gRPC clients: //services/testing:admin_test.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "crpc/admin.h"
#include "crpc/admin/v1/admin.crpc.h"
#include "crpc/calls.h"
#include "crpc/channel.h"
#include "crpc/server.h"

namespace {

constexpr char kHang[] = "/admin.Test/Hang";

// Owns a ctx for a scope.
struct Ctx {
  crpc_ctx *c;
  explicit Ctx(crpc_ctx *ctx) : c(ctx) {}
  ~Ctx() { crpc_ctx_release(c); }
  operator crpc_ctx *() const { return c; }
};

template <typename Pred>
bool WaitFor(Pred pred, int64_t timeout_ns) {
  int64_t until = crpc_now_ns() + timeout_ns;
  while (!pred()) {
    if (crpc_now_ns() > until) return false;
    usleep(1000);
  }
  return true;
}

class CallsServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    baseline_ = crpc_ctx_live_count();
    crpc_server_options opts{};
    opts.loop_threads = 3;
    server_ = crpc_server_new(&opts);
    ASSERT_NE(server_, nullptr);
    ASSERT_EQ(CRPC_OK, crpc_admin_service_add(server_));
    ASSERT_EQ(CRPC_OK, crpc_server_add_method(server_, kHang, CRPC_BIDI_STREAMING,
                                              Hang, this));
    int port = 0;
    ASSERT_EQ(CRPC_OK, crpc_server_listen(server_, "127.0.0.1:0", &port));
    ASSERT_EQ(CRPC_OK, crpc_server_start(server_));
    ch_ = crpc_channel_new(("127.0.0.1:" + std::to_string(port)).c_str(), nullptr);
  }
  void TearDown() override {
    crpc_channel_free(ch_);
    crpc_server_free(server_);
    EXPECT_EQ(baseline_, crpc_ctx_live_count()) << "leaked contexts";
  }

  // Waits for its ctx to end and records why.
  static crpc_code Hang(crpc_server_call *call, const crpc_ctx *ctx, void *ud) {
    CallsServiceTest *t = static_cast<CallsServiceTest *>(ud);
    t->hang_id_ = crpc_server_call_id(call);
    crpc_ctx_wait(ctx);
    t->cause_ = *crpc_ctx_cause(ctx);
    t->hang_done_ = true;
    return crpc_ctx_err(ctx);
  }

  // ListCalls; the response's ids of calls to `method`.
  crpc_code List(const crpc_ctx *ctx, const char *method,
                 std::vector<uint64_t> *ids) {
    Crpc__Admin__V1__ListCallsRequest req = CRPC__ADMIN__V1__LIST_CALLS_REQUEST__INIT;
    Crpc__Admin__V1__ListCallsResponse *resp = nullptr;
    crpc_code c = crpc_admin_v1_admin_list_calls(ch_, ctx, nullptr, &req, &resp,
                                                 nullptr);
    for (size_t i = 0; resp != nullptr && i < resp->n_calls; i++) {
      if (strcmp(resp->calls[i]->method, method) == 0) {
        ids->push_back(resp->calls[i]->id);
      }
    }
    if (resp != nullptr) protobuf_c_message_free_unpacked(&resp->base, nullptr);
    return c;
  }

  crpc_code Cancel(uint64_t id, const char *reason, std::string *message) {
    Ctx ctx(crpc_ctx_with_timeout(crpc_ctx_background(), 5 * CRPC_SECOND));
    Crpc__Admin__V1__CancelCallRequest req =
        CRPC__ADMIN__V1__CANCEL_CALL_REQUEST__INIT;
    req.id = id;
    req.reason = const_cast<char *>(reason);
    Crpc__Admin__V1__CancelCallResponse *resp = nullptr;
    crpc_status st{};
    crpc_code c =
        crpc_admin_v1_admin_cancel_call(ch_, ctx, nullptr, &req, &resp, &st);
    if (message != nullptr) *message = st.message ? st.message : "";
    crpc_status_clear(&st);
    if (resp != nullptr) protobuf_c_message_free_unpacked(&resp->base, nullptr);
    return c;
  }

  size_t baseline_ = 0;
  crpc_server *server_ = nullptr;
  crpc_channel *ch_ = nullptr;
  std::atomic<uint64_t> hang_id_{0};
  std::atomic<bool> hang_done_{false};
  crpc_cause cause_{};
};

TEST_F(CallsServiceTest, ListAndCancelRaceClientCancelsAndDeadlines) {
  // A call that hangs until an operator ends it.
  Ctx hold_ctx(crpc_ctx_with_timeout(crpc_ctx_background(), 30 * CRPC_SECOND));
  crpc_call *hold = nullptr;
  ASSERT_EQ(CRPC_OK, crpc_call_start(ch_, hold_ctx, kHang, nullptr, &hold));
  ASSERT_EQ(CRPC_OK, crpc_call_send(hold, "x", 1));
  ASSERT_TRUE(WaitFor([&] { return hang_id_ != 0; }, 5 * CRPC_SECOND));

  // Clients that list, some with deadlines that pass while the loops
  // answer and some cancelled midway, from several threads at once.
  std::atomic<int> listed{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; t++) {
    clients.emplace_back([&, t] {
      for (int i = 0; i < 40; i++) {
        int64_t timeout = (i + t) % 3 == 0 ? 200 * CRPC_MICROSECOND : 5 * CRPC_SECOND;
        Ctx ctx(crpc_ctx_with_timeout(crpc_ctx_background(), timeout));
        std::vector<uint64_t> ids;
        std::thread canceller;
        if ((i + t) % 5 == 1) {
          canceller = std::thread([&] { crpc_ctx_cancel(ctx, CRPC_CANCELLED, "bye"); });
        }
        crpc_code c = List(ctx, kHang, &ids);
        if (canceller.joinable()) canceller.join();
        if (c == CRPC_OK) {
          EXPECT_EQ(std::vector<uint64_t>{hang_id_.load()}, ids);
          listed++;
        } else {
          EXPECT_TRUE(c == CRPC_DEADLINE_EXCEEDED || c == CRPC_CANCELLED)
              << crpc_code_name(c);
        }
        std::string msg;
        EXPECT_EQ(CRPC_NOT_FOUND, Cancel(UINT64_MAX - i, "none", &msg));
      }
    });
  }
  for (auto &c : clients) c.join();
  EXPECT_GT(listed.load(), 0);

  std::string msg;
  EXPECT_EQ(CRPC_NOT_FOUND, Cancel(hang_id_ + 1000, "nobody", &msg));
  EXPECT_EQ("no running call has id " + std::to_string(hang_id_ + 1000), msg);
  EXPECT_EQ(CRPC_OK, Cancel(hang_id_, "operator", &msg));
  crpc_status st{};
  EXPECT_EQ(CRPC_CANCELLED, crpc_call_finish(hold, &st));
  EXPECT_STREQ("cancelled by admin: operator", st.message);
  crpc_status_clear(&st);
  crpc_call_free(hold);
  ASSERT_TRUE(WaitFor([&] { return hang_done_.load(); }, 5 * CRPC_SECOND));
  EXPECT_EQ(CRPC_ORIGIN_ADMIN, cause_.origin);

  // A request that does not parse, and none at all.
  Ctx ctx(crpc_ctx_with_timeout(crpc_ctx_background(), 5 * CRPC_SECOND));
  crpc_message resp{};
  crpc_status bad{};
  EXPECT_EQ(CRPC_INVALID_ARGUMENT,
            crpc_unary_call(ch_, ctx, "/crpc.admin.v1.Admin/CancelCall", nullptr,
                            "\x12\x7f", 2, &resp, &bad));
  crpc_status_clear(&bad);
  crpc_call *none = nullptr;
  ASSERT_EQ(CRPC_OK,
            crpc_call_start(ch_, ctx, "/crpc.admin.v1.Admin/ListCalls", nullptr, &none));
  ASSERT_EQ(CRPC_OK, crpc_call_close_send(none));
  EXPECT_EQ(CRPC_INTERNAL, crpc_call_finish(none, nullptr));
  crpc_call_free(none);
}

}  // namespace
