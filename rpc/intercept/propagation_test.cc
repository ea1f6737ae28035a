// Propagation through three hops on loopback: client -> A -> B -> C, three
// crpc servers in this process, each with an interceptor that passes a
// derived ctx on; B's and C's callers use their own handler ctx. Cancelling
// the client of A stops the handler in C (the latency is printed), and a
// deadline set at A's client arrives at C as a shorter grpc-timeout.
#include <algorithm>
#include <atomic>
#include <cstdio>

#include "rpc/intercept/icpt_test_util.h"

namespace {

using namespace icpt_test;

struct Hop {
  std::string name;
  crpc_channel *next = nullptr;  // NULL for C
  std::string next_method;
  std::atomic<int64_t> remaining{-2};  // ctx remaining at handler start
  std::atomic<int64_t> done_ns{0};     // when the handler ctx became done
  std::atomic<int> cause_code{-1};
  std::atomic<int> cause_origin{-1};
  std::atomic<bool> started{false};
};

void OnDone(void *arg, const crpc_cause *cause) {
  auto *h = static_cast<Hop *>(arg);
  // done_ns last: the test reads the cause once it sees done_ns.
  h->cause_code = cause->code;
  h->cause_origin = cause->origin;
  h->done_ns = crpc_now_ns();
}

crpc_code HopHandler(crpc_server_call *call, const crpc_ctx *ctx, void *ud) {
  auto *h = static_cast<Hop *>(ud);
  int64_t rem = crpc_ctx_remaining(ctx);
  h->remaining = rem == CRPC_NO_DEADLINE ? -1 : rem;
  crpc_on_cancel reg;
  bool registered = crpc_ctx_on_cancel(ctx, &reg, OnDone, h);
  crpc_message m{};
  crpc_server_call_recv(call, &m);
  crpc_code c;
  h->started = true;
  if (h->next == nullptr) {
    c = crpc_ctx_wait(ctx);  // C: hangs until its ctx is done
  } else {
    crpc_message resp{};
    c = crpc_unary_call(h->next, ctx, h->next_method.c_str(), nullptr, m.data, m.len, &resp,
                        nullptr);
    free(resp.data);
  }
  free(m.data);
  crpc_on_cancel_state st =
      registered ? crpc_ctx_remove_on_cancel(&reg) : CRPC_ON_CANCEL_REMOVED;
  if (st == CRPC_ON_CANCEL_RUNNING) {
    Eventually([&] { return h->done_ns.load() != 0; }, 1000);
  } else if (st == CRPC_ON_CANCEL_REMOVED && crpc_ctx_is_done(ctx)) {
    // Waiters wake before callbacks run: we may have removed it first.
    OnDone(h, crpc_ctx_cause(ctx));
  }
  return c;
}

static int g_hop_key;
crpc_code DeriveValue(crpc_server_call *, const crpc_ctx *ctx, const crpc_server_call_info *,
                      crpc_server_next *next, void *) {
  crpc_ctx *v = crpc_ctx_with_value(ctx, &g_hop_key, nullptr, nullptr);
  crpc_code c = crpc_server_next_call(next, v);
  crpc_ctx_release(v);
  return c;
}

class PropagationTest : public LeakCheckTest {
 protected:
  void Build() {
    crpc_server_interceptor icpt{};
    icpt.name = "derive-value";
    icpt.call = DeriveValue;
    c_.name = "C";
    srv_c_.reset(new Server([&](crpc_server *s) {
      crpc_server_add_method(s, "/p.C/Work", CRPC_UNARY, HopHandler, &c_);
      if (!getenv("NO_ICPT")) crpc_server_add_interceptor(s, &icpt);
    }));
    ch_c_ = NewChannel(srv_c_->target());
    b_.name = "B";
    b_.next = ch_c_.get();
    b_.next_method = "/p.C/Work";
    srv_b_.reset(new Server([&](crpc_server *s) {
      crpc_server_add_method(s, "/p.B/Work", CRPC_UNARY, HopHandler, &b_);
      if (!getenv("NO_ICPT")) crpc_server_add_interceptor(s, &icpt);
    }));
    ch_b_ = NewChannel(srv_b_->target());
    a_.name = "A";
    a_.next = ch_b_.get();
    a_.next_method = "/p.B/Work";
    srv_a_.reset(new Server([&](crpc_server *s) {
      crpc_server_add_method(s, "/p.A/Work", CRPC_UNARY, HopHandler, &a_);
      if (!getenv("NO_ICPT")) crpc_server_add_interceptor(s, &icpt);
    }));
    ch_a_ = NewChannel(srv_a_->target());
  }
  void Reset() {
    for (Hop *h : {&a_, &b_, &c_}) {
      h->remaining = -2;
      h->done_ns = 0;
      h->cause_code = -1;
      h->cause_origin = -1;
      h->started = false;
    }
  }
  void TearDown() override {
    ch_a_.reset();
    srv_a_.reset();
    ch_b_.reset();
    srv_b_.reset();
    ch_c_.reset();
    srv_c_.reset();
    LeakCheckTest::TearDown();
  }
  Hop a_, b_, c_;
  std::unique_ptr<Server> srv_a_, srv_b_, srv_c_;
  Channel ch_a_, ch_b_, ch_c_;
};

TEST_F(PropagationTest, CancelAtClientOfAStopsHandlerInC) {
  Build();
  const int rounds = 40 / kSlow;
  std::vector<int64_t> lat;
  for (int i = 0; i < rounds; i++) {
    Reset();
    auto ctx = WithCancel();
    std::atomic<int> code{-1};
    std::thread t([&] { code = Unary(ch_a_.get(), ctx.get(), "/p.A/Work", "req").code; });
    ASSERT_TRUE(Eventually([&] { return c_.started.load(); }, 5000));
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    int64_t t0 = crpc_now_ns();
    crpc_ctx_cancel(ctx.get(), CRPC_CANCELLED, "client of A cancelled");
    ASSERT_TRUE(Eventually([&] { return c_.done_ns.load() != 0; }, 5000))
        << "A done " << a_.done_ns.load() << " B done " << b_.done_ns.load();
    lat.push_back(c_.done_ns.load() - t0);
    t.join();
    EXPECT_EQ(CRPC_CANCELLED, code.load());
    EXPECT_EQ(CRPC_CANCELLED, c_.cause_code.load());
    EXPECT_EQ(CRPC_ORIGIN_PEER_RESET, c_.cause_origin.load());
    EXPECT_EQ(-1, c_.remaining.load());  // no deadline anywhere
  }
  std::sort(lat.begin(), lat.end());
  auto us = [&](double q) {
    return lat[static_cast<size_t>(q * static_cast<double>(lat.size() - 1) + 0.5)] / 1000.0;
  };
  printf("3-hop cancel propagation (client of A cancel -> C handler ctx done), %zu rounds: "
         "p50 %.1f us, p99 %.1f us, max %.1f us\n",
         lat.size(), us(0.5), us(0.99), lat.back() / 1000.0);
  RecordProperty("cancel_3hop_p50_us", std::to_string(us(0.5)));
  EXPECT_LT(us(0.5), 200000.0);
}

TEST_F(PropagationTest, DeadlineAtClientOfAArrivesShorterAtC) {
  Build();
  const int64_t timeout = 400 * kMs * kSlow;
  auto ctx = WithTimeout(timeout);
  int64_t t0 = crpc_now_ns();
  auto r = Unary(ch_a_.get(), ctx.get(), "/p.A/Work", "req");
  int64_t took = crpc_now_ns() - t0;
  EXPECT_EQ(CRPC_DEADLINE_EXCEEDED, r.code) << r.message;
  int64_t ra = a_.remaining, rb = b_.remaining, rc = c_.remaining;
  printf("remaining deadline at handler start: A %.3f ms, B %.3f ms, C %.3f ms (client %.0f ms)\n",
         ra / 1e6, rb / 1e6, rc / 1e6, timeout / 1e6);
  EXPECT_GT(ra, 0);
  EXPECT_LE(ra, timeout);
  EXPECT_GT(rb, 0);
  EXPECT_LE(rb, ra);
  EXPECT_GT(rc, 0);
  EXPECT_LE(rc, rb);
  EXPECT_LT(rc, timeout);
  ASSERT_TRUE(Eventually([&] { return c_.done_ns.load() != 0; }, 5000));
  // C's own timer, or B's reset when B's (equal, not rounded up) deadline
  // fired first: both are the deadline reaching C.
  int code = c_.cause_code, origin = c_.cause_origin;
  EXPECT_TRUE((code == CRPC_DEADLINE_EXCEEDED && origin == CRPC_ORIGIN_DEADLINE) ||
              (code == CRPC_CANCELLED && origin == CRPC_ORIGIN_PEER_RESET))
      << code << " " << origin;
  EXPECT_GE(took, timeout - 5 * kMs);
  EXPECT_LT(took, timeout + 2 * kSec);
}

}  // namespace
