// Network faults (issue 16, item 3). Backends run in network namespaces of
// their own, each on a veth pair onto a bridge this test makes; faults are
// nftables rules inside a namespace (a partition drops everything, loss
// drops a random 5 %), because this kernel has no netem. Latency comes
// from the delaying TcpProxy (rpc/testing/tcp_proxy.h), which also gives
// a partition where namespaces are not allowed: the ProxyFaultTest cases
// always run, the NetnsFaultTest ones skip with the reason.
//
// What must hold: deadlines fire on time on both sides during a partition
// (no ctx waits on TCP's retransmissions), keepalive finds the dead peer
// within its configured time and ends every call on it (the server's ctxs
// with origin connection lost), the channel reconnects with backoff after
// the heal, and no call is left running on either side.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <functional>
#include <thread>

#include "deploy/scenarios.h"
#include "rpc/testing/tcp_proxy.h"

namespace deploy {
namespace {

constexpr int64_t kKeepaliveMs = 200, kKeepaliveTimeoutMs = 300;
// Timer and scheduling slack allowed on a loaded 2-CPU machine (ASan).
constexpr int64_t kSlackMs = 250;

void Print(const std::string &row) { std::printf("[deploy] %s\n", row.c_str()); }

int64_t Ms(int64_t ns) { return ns / 1000000; }

BackendOptions KeepaliveBackend() {
  BackendOptions b;
  b.keepalive_ms = kKeepaliveMs;
  b.keepalive_timeout_ms = kKeepaliveTimeoutMs;
  b.grace_ms = 200;
  return b;
}

// Backoff counts from the start of a failed attempt (gRPC's algorithm): an
// initial backoff longer than the connect timeout makes the channel wait
// between attempts, where a shorter one would have a call try again at
// once, back to back, until its deadline.
ChannelOptions KeepaliveChannel() {
  ChannelOptions o;
  o.keepalive_ms = kKeepaliveMs;
  o.keepalive_timeout_ms = kKeepaliveTimeoutMs;
  o.connect_timeout_ms = 300;
  o.backoff_initial_ms = 500;
  o.backoff_max_ms = 1000;
  return o;
}

// A call on its own thread, timed from its start. Joined on destruction,
// so a failed ASSERT that returns early does not end the process.
struct Pending {
  std::string tag;
  int64_t start_ns = 0, end_ns = 0;
  std::atomic<bool> done{false};
  CallResult result;
  std::thread thread;
  ~Pending() {
    if (thread.joinable()) thread.join();
  }
};

void StartHang(crpc_channel *ch, Pending *p, const std::string &tag, int64_t deadline_ms) {
  if (p->thread.joinable()) p->thread.join();
  p->tag = tag;
  p->start_ns = NowNs();
  p->end_ns = 0;
  p->done = false;
  p->thread = std::thread([ch, p, deadline_ms] {
    p->result = Unary(ch, "/crpc.test.Test/Hang", "", {{"x-tag", p->tag}}, deadline_ms);
    p->end_ns = NowNs();
    p->done = true;
  });
}

// Polls the backend until `want` handlers run; gives up when `gave_up`
// says so or after wait_ms.
bool WaitRunning(crpc_channel *direct, int want, int64_t wait_ms,
                 const std::function<bool()> &gave_up) {
  for (int64_t end = NowNs() + wait_ms * 1000000; NowNs() < end && !gave_up();) {
    if (Stats(direct).running >= want) return true;
    SleepMs(1);
  }
  return false;
}

// The partition checks, whatever makes the partition. `direct` reaches the
// backend's Stats before the partition; `fresh` makes new direct channels
// after the heal (old ones may sit on connections the server dropped).
struct PartitionCase {
  crpc_channel *client;                  // keepalive on, to the backend
  crpc_channel *direct;                  // for Stats before the partition
  std::function<Channel()> fresh;        // a direct channel after the heal
  std::function<void()> partition, heal;
  const char *label;
  // The partition drops SYNs (nftables), so a connect attempt fails on the
  // channel's connect timeout and the address backs off: calls in the
  // backoff fail fast. (The TcpProxy's partition lets the kernel accept.)
  bool drops_syns = false;
};

void RunPartition(const PartitionCase &c) {
  size_t ctx_before = crpc_ctx_live_count();
  ASSERT_EQ(Unary(c.client, "/crpc.test.Test/Echo", "warm").code, CRPC_OK);
  std::string run = std::to_string(NowNs());
  Pending hang[3], dl[2];
  for (int i = 0; i < 3; i++) StartHang(c.client, &hang[i], "h" + std::to_string(i) + "-" + run, 0);
  ASSERT_TRUE(WaitRunning(c.direct, 3, 10000, [] { return false; }))
      << "the 3 endless calls did not reach the backend";
  // Shorter than keepalive takes to find the dead peer (300 to 500 ms),
  // so these end on their deadlines. They must reach the backend before
  // the cut; on a loaded machine a 250 ms window can pass before the Stats
  // poll sees them, so such an attempt is made again with new calls.
  bool all_running = false;
  for (int attempt = 0; attempt < 5 && !all_running; attempt++) {
    for (int i = 0; i < 2; i++) {
      StartHang(c.client, &dl[i], "d" + std::to_string(i) + "-" + std::to_string(attempt) + "-" + run,
                250);
    }
    all_running = WaitRunning(c.direct, 5, 250, [&] { return dl[0].done || dl[1].done; });
    if (!all_running) {
      for (Pending &p : dl) p.thread.join();
    }
  }
  ASSERT_TRUE(all_running) << "the 2 deadline calls did not reach the backend in 5 attempts";

  int64_t cut_at = NowNs();
  c.partition();
  // A call made now: its connection looks alive, nothing comes back. Its
  // deadline is under keepalive's earliest verdict (a PING sent just as
  // the partition began times out 300 ms later).
  CallResult early = Unary(c.client, "/crpc.test.Test/Echo", "x", {}, 150);
  EXPECT_EQ(early.code, CRPC_DEADLINE_EXCEEDED) << early.message;
  EXPECT_LE(Ms(early.took_ns), 150 + kSlackMs);

  for (Pending &p : dl) {
    p.thread.join();
    EXPECT_EQ(p.result.code, CRPC_DEADLINE_EXCEEDED) << p.result.message;
    EXPECT_LE(Ms(p.end_ns - p.start_ns), 250 + kSlackMs) << "the client's deadline fired late";
  }
  int64_t ka_bound = kKeepaliveMs + kKeepaliveTimeoutMs + kSlackMs;
  int64_t worst_ka = 0;
  for (Pending &p : hang) {
    p.thread.join();
    EXPECT_EQ(p.result.code, CRPC_UNAVAILABLE) << p.result.message;
    EXPECT_NE(p.result.message.find("keepalive"), std::string::npos) << p.result.message;
    worst_ka = std::max(worst_ka, Ms(p.end_ns - cut_at));
  }
  EXPECT_LE(worst_ka, ka_bound) << "client keepalive found the dead peer late";
  // Keepalive has closed the connection: this call connects anew, and the
  // SYNs go nowhere; its ctx bounds the attempt.
  CallResult later = Unary(c.client, "/crpc.test.Test/Echo", "x", {}, 300);
  EXPECT_TRUE(later.code == CRPC_DEADLINE_EXCEEDED || later.code == CRPC_UNAVAILABLE)
      << crpc_code_name(later.code) << ": " << later.message;
  EXPECT_LE(Ms(later.took_ns), 300 + kSlackMs);

  // Calls longer than the connect timeout (300 ms): an attempt that times
  // out puts the address in backoff (500 ms, x1.6, at most 1 s), and calls
  // made meanwhile fail at once instead of waiting on a dead network.
  std::map<std::string, int> during;
  int fast_fails = 0;
  for (int64_t until = NowNs() + 1500 * 1000000LL; NowNs() < until;) {
    CallResult r = Unary(c.client, "/crpc.test.Test/Echo", "x", {}, 1000);
    EXPECT_NE(r.code, CRPC_OK);
    EXPECT_LE(Ms(r.took_ns), 1000 + kSlackMs);
    during[crpc_code_name(r.code)]++;
    if (r.code == CRPC_UNAVAILABLE && Ms(r.took_ns) < 50) fast_fails++;
    SleepMs(20);
  }
  if (c.drops_syns) {
    EXPECT_GT(fast_fails, 0) << "no call failed fast during a backoff";
  }
  int64_t healed_at = NowNs();
  c.heal();
  int64_t back_ms = -1;
  std::map<std::string, int> while_back;
  while (Ms(NowNs() - healed_at) < 5000) {
    CallResult r = Unary(c.client, "/crpc.test.Test/Echo", "back", {}, 500);
    if (r.code == CRPC_OK) {
      back_ms = Ms(NowNs() - healed_at);
      break;
    }
    while_back[crpc_code_name(r.code)]++;
    SleepMs(20);
  }
  EXPECT_GE(back_ms, 0) << "no call got through within 5 s of the heal";
  // At worst the heal lands just after an attempt began: that attempt's
  // connect timeout, then the longest backoff.
  EXPECT_LE(back_ms, 300 + 1000 + kSlackMs) << "reconnecting took longer than the backoff";

  // The server's side, asked after the heal.
  Channel fresh = c.fresh();
  int64_t worst_server_ka = 0, worst_server_dl = 0;
  for (Pending &p : hang) {
    Ending e = FindEnding({fresh.get()}, p.tag);
    ASSERT_TRUE(e.found) << p.tag;
    EXPECT_EQ(e.code + "/" + e.origin, "UNAVAILABLE/connection_lost") << e.raw;
    worst_server_ka = std::max(worst_server_ka, Ms(e.done_ns - cut_at));
  }
  EXPECT_LE(worst_server_ka, ka_bound) << "server keepalive found the dead peer late";
  for (Pending &p : dl) {
    Ending e = FindEnding({fresh.get()}, p.tag);
    ASSERT_TRUE(e.found) << p.tag;
    EXPECT_EQ(e.code + "/" + e.origin, "DEADLINE_EXCEEDED/deadline") << e.raw;
    int64_t late = Ms(e.done_ns - e.start_ns) - e.timeout_ms;
    worst_server_dl = std::max(worst_server_dl, late);
    EXPECT_LE(late, kSlackMs) << "the server's deadline fired late: " << e.raw;
  }
  BackendStats st;
  for (int i = 0; i < 100 && (st = Stats(fresh.get())).running != 0; i++) SleepMs(10);
  EXPECT_EQ(st.running, 0) << "a handler still runs on the backend";
  EXPECT_TRUE(CtxCountBackTo(ctx_before)) << "a ctx still lives in the client (listed above)";
  Print(Row({c.label, "partition: keepalive found it (client / server)",
             std::to_string(worst_ka) + " / " + std::to_string(worst_server_ka) + " ms",
             "250 ms deadline late on the server " + std::to_string(worst_server_dl) + " ms",
             "during it: " + Counts(during) + " (" + std::to_string(fast_fails) +
                 " failed fast in a backoff)",
             "first call through " + std::to_string(back_ms) + " ms after the heal"}));
}

// ---- without namespaces: the TcpProxy makes the faults -------------------------

TEST(ProxyFaultTest, PartitionDeadlinesKeepaliveAndReconnect) {
  StackOptions o;
  o.backends = 1;
  o.backend = KeepaliveBackend();
  Stack s(Via::kChannel, o);
  std::string error;
  ASSERT_TRUE(s.Start(&error)) << error;
  crpc_testing::TcpProxy link(s.backend(0).port());
  Channel ch = NewChannel(link.target(), KeepaliveChannel());
  std::string addr = s.backend(0).address();
  RunPartition({ch.get(), s.direct()[0], [addr] { return NewChannel(addr); },
                [&] { link.Partition(); }, [&] { link.Heal(); }, "tcp-proxy"});
  ch.reset();
  EXPECT_TRUE(s.Stop(&error)) << error;
}

// 50 ms each way: the client's deadline is its own (not 50 ms later), the
// server's runs from the request's arrival; a cancel arrives one hop later.
TEST(ProxyFaultTest, LatencyKeepsDeadlinesOnTime) {
  StackOptions o;
  o.backends = 1;
  o.delay_ms = {50};
  Stack s(Via::kChannel, o);
  std::string error;
  ASSERT_TRUE(s.Start(&error)) << error;
  DeadlineResult d = MeasureDeadline(s, 3, 300);
  EXPECT_EQ(d.client_codes["DEADLINE_EXCEEDED"], 3) << Counts(d.client_codes);
  EXPECT_EQ(d.lost, 0);
  for (int64_t late : d.client_late_ns) EXPECT_LE(Ms(late), kSlackMs);
  for (int64_t late : d.server_late_ns) {
    EXPECT_GE(Ms(late), 40) << "the server's deadline cannot start before the request arrives";
    EXPECT_LE(Ms(late), 50 + kSlackMs);
  }
  CancelResult c = MeasureCancel(s, 3);
  EXPECT_EQ(c.lost, 0);
  Print(Row({"tcp-proxy 50 ms each way", "300 ms deadline late, client / server, p50 / p99 us",
             Us(d.client_late_ns) + " | " + Us(d.server_late_ns),
             "cancel -> backend ctx " + Us(c.late_ns) + " us, " + Counts(c.origins)}));
  EXPECT_TRUE(s.Stop(&error)) << error;
}

// ---- backends in network namespaces ---------------------------------------------

class NetnsFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why = lab_.Create(3);
    if (!why.empty()) {
      GTEST_SKIP() << "network namespaces are not available on this machine (" << why
                   << "); the TcpProxy variants (ProxyFaultTest.*) still ran";
    }
  }
  BackendOptions In(int i) {
    BackendOptions b = KeepaliveBackend();
    b.netns = lab_.ns(i);
    b.host = lab_.ip(i);
    return b;
  }
  NetnsLab lab_;
};

TEST_F(NetnsFaultTest, PartitionDeadlinesKeepaliveAndReconnect) {
  StackOptions o;
  o.backends = 1;
  o.per_backend = {In(0)};
  Stack s(Via::kChannel, o);
  std::string error;
  ASSERT_TRUE(s.Start(&error)) << error;
  Channel ch = NewChannel(s.backend(0).address(), KeepaliveChannel());
  std::string addr = s.backend(0).address();
  RunPartition({ch.get(), s.direct()[0], [addr] { return NewChannel(addr); },
                [&] {
                  std::string e;
                  ASSERT_TRUE(lab_.Partition(0, &e)) << e;
                },
                [&] {
                  std::string e;
                  ASSERT_TRUE(lab_.Heal(0, &e)) << e;
                },
                "netns + nft", true});
  ch.reset();
  EXPECT_TRUE(s.Stop(&error)) << error;
}

// 5 % of packets dropped each way: calls still end OK or at their
// deadline, never later, and with no other code.
TEST_F(NetnsFaultTest, RandomLossCallsEndOkOrOnTime) {
  StackOptions o;
  o.backends = 1;
  o.per_backend = {In(1)};
  Stack s(Via::kChannel, o);
  std::string error;
  ASSERT_TRUE(s.Start(&error)) << error;
  Channel ch = NewChannel(s.backend(0).address(), KeepaliveChannel());
  ASSERT_EQ(Unary(ch.get(), "/crpc.test.Test/Echo", "warm").code, CRPC_OK);
  ASSERT_TRUE(lab_.Loss(1, 5, &error)) << error;
  std::map<std::string, int> codes;
  std::vector<int64_t> ns;
  std::mutex mu;
  std::vector<std::thread> ts;
  // Four callers: a lost segment costs its call a 200 ms retransmission
  // timeout, which they wait out side by side.
  for (int t = 0; t < 4; t++) {
    ts.emplace_back([&] {
      for (int i = 0; i < 30; i++) {
        CallResult r = Unary(ch.get(), "/crpc.test.Test/Echo", std::string(2000, 'l'), {}, 1000);
        EXPECT_TRUE(r.code == CRPC_OK || r.code == CRPC_DEADLINE_EXCEEDED)
            << crpc_code_name(r.code) << ": " << r.message;
        EXPECT_LE(Ms(r.took_ns), 1000 + kSlackMs);
        std::lock_guard<std::mutex> l(mu);
        codes[crpc_code_name(r.code)]++;
        ns.push_back(r.took_ns);
      }
    });
  }
  for (auto &t : ts) t.join();
  DeadlineResult d = MeasureDeadline(s, 3, 300);
  for (int64_t late : d.client_late_ns) EXPECT_LE(Ms(late), kSlackMs);
  ASSERT_TRUE(lab_.Heal(1, &error)) << error;
  EXPECT_GT(codes["OK"], 80) << Counts(codes);
  Print(Row({"netns + nft", "5 % loss each way: 120 Echo calls (2 KB, 1 s deadline)",
             Counts(codes), "p50 / p99 us " + Us(ns),
             "300 ms deadline late (client) " + Us(d.client_late_ns) + " us"}));
  EXPECT_TRUE(s.BackendsIdle(&error)) << error;
  ch.reset();
  EXPECT_TRUE(s.Stop(&error)) << error;
}

// Round robin over 3 backends, one partitioned for 1.5 s: calls on it end
// UNAVAILABLE (keepalive) or at their deadline, the others keep serving,
// and after the heal the channel reconnects and the backend gets calls again.
TEST_F(NetnsFaultTest, RoundRobinRidesOutAPartitionedBackend) {
  StackOptions o;
  o.per_backend = {In(0), In(1), In(2)};
  o.channel = KeepaliveChannel();
  Stack s(Via::kChannel, o);
  std::string error;
  ASSERT_TRUE(s.Start(&error)) << error;
  std::mutex mu;
  std::map<std::string, int> codes, after_heal;
  std::atomic<bool> stop{false}, healed{false};
  std::atomic<int64_t> worst_ms{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 3; t++) {
    ts.emplace_back([&] {
      while (!stop) {
        CallResult r = Unary(s.client(), "/crpc.test.Test/Echo", "rr", {}, 1000);
        int64_t ms = Ms(r.took_ns);
        if (ms > worst_ms) worst_ms = ms;
        std::lock_guard<std::mutex> l(mu);
        codes[crpc_code_name(r.code)]++;
        if (healed && r.code == CRPC_OK) after_heal[r.Trailer("x-backend")]++;
        if (r.code != CRPC_OK) SleepMs(10);
      }
    });
  }
  SleepMs(300);
  ASSERT_TRUE(lab_.Partition(2, &error)) << error;
  SleepMs(1500);
  ASSERT_TRUE(lab_.Heal(2, &error)) << error;
  healed = true;
  SleepMs(2000);  // backoff (at most 1 s) and a reconnect
  stop = true;
  for (auto &t : ts) t.join();
  for (const auto &kv : codes) {
    EXPECT_TRUE(kv.first == "OK" || kv.first == "UNAVAILABLE" || kv.first == "DEADLINE_EXCEEDED")
        << kv.first;
  }
  EXPECT_LE(worst_ms.load(), 1000 + kSlackMs);
  EXPECT_GT(after_heal["b3"], 0) << "b3 got no call after the heal: " << Counts(after_heal);
  Print(Row({"netns + nft, crpc-rr", "b3 partitioned 1.5 s under load", Counts(codes),
             "after the heal: " + Counts(after_heal),
             "slowest call " + std::to_string(worst_ms.load()) + " ms"}));
  EXPECT_TRUE(s.BackendsIdle(&error)) << error;
  EXPECT_TRUE(s.Stop(&error)) << error;
}

}  // namespace
}  // namespace deploy
