// The fixture of the hostile-peer tests: a crpc server with the test
// service and the attack targets (hostile_util.h), and Attack(), which
// runs one attack while a well-behaved client calls Echo on a connection
// of its own, and checks the four promises of issue 17: the server is
// alive afterwards, the good client was served throughout with bounded
// latency, the heap peak stayed under the attack's bound, and the file
// descriptors went back to where they were.
#ifndef CRPC_E2E_HOSTILE_FIXTURE_H
#define CRPC_E2E_HOSTILE_FIXTURE_H

#include "rpc/e2e/e2e_util.h"
#include "rpc/e2e/hostile_attacks.h"

namespace crpc_e2e {

using crpc_hostile::Outcome;

// Generous: CI is a noisy 2-core VM running sanitizers; the README's
// numbers come from bench:hostile_bench, not from here. A starved good
// client waits seconds (its calls' deadline is 5 s); under ASan with
// another test on the second core one call took 554 ms (fresh-clone run,
// RapidResetAcrossReconnects), so the sanitizers get the 1 s bound.
#if defined(CRPC_E2E_TSAN) || defined(CRPC_E2E_ASAN)
constexpr double kGoodLatencyMs = 1000;
#else
constexpr double kGoodLatencyMs = 500;
#endif

constexpr long long kMiB = 1024 * 1024;

class HostileTest : public E2ETest {
 protected:
  void StartHostile(const crpc_server_options *opts = nullptr) {
    Start(opts, [&](crpc_server *s) { ASSERT_TRUE(crpc_hostile::AddHostileMethods(s, &counters_)); });
    Ctx ctx = WithTimeout(10 * kSec);
    ASSERT_EQ(CRPC_OK, Unary(channel_, ctx.get(), M("Echo"), "up").code);
  }

  // Runs attack() with a good client and a heap sampler around it.
  Outcome Attack(const std::function<Outcome()> &attack, long long heap_bound) {
    int fds_before = crpc_hostile::CountFds();
    Outcome o;
    {
      crpc_hostile::GoodClient good(target_, M("Echo"));
      EXPECT_TRUE(good.Warm());
      crpc_hostile::PeakSampler heap(
          [] { return static_cast<long long>(crpc_hostile::HeapBytes()); });
      good.Start();
      o = attack();
      // A little more of the good client after the attack's last bytes.
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
      crpc_hostile::GoodStats g = good.Stop();
      long long peak = heap.Stop();
      printf("attack: %s in %.0f ms; good client %d ok, %d failed, p50 %.2f ms, max %.2f ms; "
             "heap peak +%.1f MiB\n",
             o.Summary().c_str(), o.elapsed_ms, g.ok, g.failed, g.p50_ms, g.max_ms,
             static_cast<double>(peak) / kMiB);
      EXPECT_EQ(0, g.failed) << g.first_failure;
      EXPECT_GT(g.ok, 0) << "the good client made no call during the attack";
      EXPECT_LT(g.max_ms, kGoodLatencyMs) << "the good client waited too long";
      EXPECT_LT(peak, heap_bound) << "heap grew by " << peak / kMiB << " MiB";
    }
    // The attacker's sockets are closed: the server lets go of its side.
    EXPECT_TRUE(Eventually([&] { return crpc_hostile::CountFds() <= fds_before; }, 5000))
        << crpc_hostile::CountFds() << " fds open, " << fds_before << " before";
    Ctx ctx = WithTimeout(10 * kSec);
    UnaryResult r = Unary(channel_, ctx.get(), M("Echo"), "still serving");
    EXPECT_EQ(CRPC_OK, r.code) << r.message;
    return o;
  }

  crpc_hostile::Counters counters_;
};

}  // namespace crpc_e2e

#endif  // CRPC_E2E_HOSTILE_FIXTURE_H
