// Timers, on both deadline backends (epoll_pwait2 and timerfd).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <random>
#include <utility>
#include <vector>

#include "rpc/loop/loop.h"
#include "rpc/loop/test_util.h"

using namespace crpc_loop_test;

namespace {

struct Tm {
  crpc_loop_timer t;
  int id = 0;
  int64_t deadline = 0;
  int start_seq = 0;
  int calls = 0;
  int64_t fired_at = 0;
  std::vector<int> *order = nullptr;
  std::function<void(Tm *)> hook;
};

void OnTimer(crpc_loop *, crpc_loop_timer *, void *user_data) {
  Tm *tm = static_cast<Tm *>(user_data);
  tm->fired_at = NowNs();
  tm->calls++;
  if (tm->order != nullptr) tm->order->push_back(tm->id);
  if (tm->hook) tm->hook(tm);
}

class Timer : public ::testing::TestWithParam<unsigned> {
 protected:
  LoopPtr loop_ = NewLoop(GetParam());

  int next_seq_ = 0;

  void Start(Tm *tm, int64_t deadline) {
    tm->deadline = deadline;
    tm->start_seq = next_seq_++;
    crpc_loop_timer_start(&tm->t, deadline);
  }
  void Init(Tm *tm, int id, std::vector<int> *order = nullptr) {
    tm->id = id;
    tm->order = order;
    crpc_loop_timer_init(&tm->t, loop_.get(), OnTimer, tm);
  }
};

TEST_P(Timer, FireInDeadlineOrderTiesInStartOrder) {
  std::vector<int> order;
  Tm tms[6];
  int64_t base = NowNs();
  const int64_t offsets_ms[6] = {6, 2, 4, 2, 4, 1};
  for (int i = 0; i < 6; i++) {
    Init(&tms[i], i, &order);
    Start(&tms[i], base + offsets_ms[i] * kMs);
  }
  ASSERT_TRUE(RunUntil(loop_.get(), [&] { return order.size() == 6; }));
  EXPECT_EQ((std::vector<int>{5, 1, 3, 2, 4, 0}), order);
  EXPECT_EQ(0u, crpc_loop_active_count(loop_.get()));
}

TEST_P(Timer, NeverFiresBeforeItsDeadline) {
  const int n = 200;
  std::vector<Tm> tms(n);
  std::mt19937 rng(42);
  int64_t base = NowNs();
  for (int i = 0; i < n; i++) {
    Init(&tms[i], i);
    Start(&tms[i], base + static_cast<int64_t>(rng() % (20 * kMs)));
  }
  int fired = 0;
  for (Tm &tm : tms) tm.hook = [&](Tm *) { fired++; };
  ASSERT_TRUE(RunUntil(loop_.get(), [&] { return fired == n; }));
  std::vector<int64_t> late;
  for (const Tm &tm : tms) {
    EXPECT_GE(tm.fired_at, tm.deadline) << "timer " << tm.id;
    late.push_back(tm.fired_at - tm.deadline);
  }
  std::sort(late.begin(), late.end());
  printf("[timer lateness, %s] p50 %.1f us, p99 %.1f us\n",
         GetParam() ? "timerfd" : "epoll_pwait2", late[n / 2] / 1e3,
         late[n * 99 / 100] / 1e3);
}

// The lead: the loop stops sleeping lead_ns before its earliest timer and
// polls from there (run_once returns with nothing run) until the timer is
// due; it never runs the timer early. Checked by what run_once returns, not
// by how long it took, so a loaded machine cannot fail it: without a lead
// the first blocking run_once would run the timer.
TEST_P(Timer, LeadWakesEarlyThenPollsUntilDue) {
  crpc_loop_set_timer_lead(loop_.get(), 30 * kMs);
  Tm coarse;
  Init(&coarse, 2);
  Start(&coarse, NowNs() + 10 * kMs);
  EXPECT_EQ(1, crpc_loop_run_once(loop_.get(), -1)) << "a coarse timer has no lead";
  Tm tm;
  Init(&tm, 1);
  crpc_loop_timer_set_precise(&tm.t, true);
  int64_t start = NowNs();
  Start(&tm, start + 60 * kMs);
  EXPECT_EQ(0, crpc_loop_run_once(loop_.get(), -1)) << "slept until the timer";
  EXPECT_EQ(0, tm.calls);
  EXPECT_GE(NowNs() - start, 30 * kMs) << "woke before the lead began";
  int polls = 0;
  while (tm.calls == 0) {
    ASSERT_GE(crpc_loop_run_once(loop_.get(), -1), 0);
    polls++;
  }
  EXPECT_GE(tm.fired_at, tm.deadline);
  EXPECT_GT(polls, 1) << "no polling iterations before the timer";
  // Lead 0: one blocking wait straight to the deadline.
  crpc_loop_set_timer_lead(loop_.get(), 0);
  Start(&tm, NowNs() + 10 * kMs);
  EXPECT_EQ(1, crpc_loop_run_once(loop_.get(), -1));
  EXPECT_GE(tm.fired_at, tm.deadline);
}

TEST_P(Timer, StoppedTimerNeverFires) {
  Tm a, b;
  Init(&a, 1);
  Init(&b, 2);
  Start(&a, NowNs() + 1 * kMs);
  Start(&b, NowNs() + 3 * kMs);
  EXPECT_TRUE(crpc_loop_timer_active(&a.t));
  crpc_loop_timer_stop(&a.t);
  crpc_loop_timer_stop(&a.t);  // idempotent
  EXPECT_FALSE(crpc_loop_timer_active(&a.t));
  ASSERT_TRUE(RunUntil(loop_.get(), [&] { return b.calls == 1; }));
  EXPECT_EQ(0, a.calls);
  EXPECT_FALSE(crpc_loop_timer_active(&b.t));
}

TEST_P(Timer, RestartMovesTheDeadlineBothWays) {
  Tm later, earlier;
  Init(&later, 1);
  Init(&earlier, 2);
  int64_t base = NowNs();
  Start(&later, base + 1 * kMs);
  Start(&later, base + 8 * kMs);
  Start(&earlier, base + 500 * kMs);
  Start(&earlier, base + 2 * kMs);
  ASSERT_TRUE(RunUntil(loop_.get(),
                       [&] { return later.calls + earlier.calls == 2; }));
  EXPECT_GE(later.fired_at, base + 8 * kMs);
  EXPECT_GE(earlier.fired_at, base + 2 * kMs);
  EXPECT_LT(earlier.fired_at, later.fired_at);
}

// The loop has blocked once with only a far deadline (a timerfd is armed
// for it); a nearer timer started afterwards must still wake it on time.
TEST_P(Timer, NearerTimerStartedAfterTheLoopArmedAFarOneWakesOnTime) {
  Tm far, near;
  Init(&far, 1);
  Init(&near, 2);
  Start(&far, NowNs() + 300 * kMs);
  EXPECT_EQ(0, crpc_loop_run_once(loop_.get(), 1 * kMs));
  Start(&near, NowNs() + 3 * kMs);
  ASSERT_TRUE(RunUntil(loop_.get(), [&] { return near.calls == 1; }));
  EXPECT_GE(near.fired_at, near.deadline);
  EXPECT_LT(near.fired_at, near.deadline + 150 * kMs)
      << "woken by the far deadline, not the near one";
  EXPECT_EQ(0, far.calls);
  crpc_loop_timer_stop(&far.t);
}

TEST_P(Timer, FarFutureAndFarPastDeadlinesAreHandled) {
  Tm never, past;
  Init(&never, 1);
  Init(&past, 2);
  Start(&never, INT64_MAX - 1);
  EXPECT_EQ(0, crpc_loop_run_once(loop_.get(), 2 * kMs));
  Start(&past, INT64_MIN);
  EXPECT_EQ(1, crpc_loop_run_once(loop_.get(), 1000 * kMs));
  EXPECT_EQ(1, past.calls);
  EXPECT_EQ(0, never.calls);
  Start(&never, INT64_MAX);  // CRPC_NO_DEADLINE: never fires
  EXPECT_EQ(0, crpc_loop_run_once(loop_.get(), 2 * kMs));
  crpc_loop_timer_stop(&never.t);
  EXPECT_EQ(0u, crpc_loop_active_count(loop_.get()));
}

TEST_P(Timer, ReArmingInOwnCallbackMakesItPeriodic) {
  Tm tm;
  Init(&tm, 1);
  std::vector<int64_t> fires;
  tm.hook = [&](Tm *self) {
    fires.push_back(self->fired_at);
    EXPECT_FALSE(crpc_loop_timer_active(&self->t));
    crpc_loop_timer_stop(&self->t);  // no-op on a fired timer
    if (self->calls < 5) Start(self, self->fired_at + 1 * kMs);
  };
  Start(&tm, NowNs() + 1 * kMs);
  ASSERT_TRUE(RunUntil(loop_.get(), [&] { return tm.calls == 5; }));
  for (size_t i = 1; i < fires.size(); i++) {
    EXPECT_GE(fires[i] - fires[i - 1], 1 * kMs);
  }
  EXPECT_FALSE(crpc_loop_timer_active(&tm.t));
}

TEST_P(Timer, StoppingAnotherTimerDueInTheSameTickPreventsIt) {
  Tm *a = new Tm;
  Tm *b = new Tm;
  Init(a, 1);
  Init(b, 2);
  // Both already due, so both are expired in the same timer phase.
  int64_t past = NowNs() - 1 * kMs;
  Start(a, past);
  Start(b, past);
  Tm *survivor = nullptr;
  auto kill_other = [&](Tm *self) {
    survivor = self;
    Tm *other = self == a ? b : a;
    crpc_loop_timer_stop(&other->t);
    delete other;  // ASan flags any later touch
  };
  a->hook = kill_other;
  b->hook = kill_other;
  EXPECT_EQ(1, crpc_loop_run_once(loop_.get(), 0));
  EXPECT_EQ(0, crpc_loop_run_once(loop_.get(), 0));
  ASSERT_NE(nullptr, survivor);
  EXPECT_EQ(1, survivor->id);
  EXPECT_EQ(1, survivor->calls);
  delete survivor;
  EXPECT_EQ(0u, crpc_loop_active_count(loop_.get()));
}

// Heap shape checked through the API: many due timers, then n random picks
// each stopped or restarted, must fire exactly once each (unless stopped)
// in (deadline, last start) order.
TEST_P(Timer, ThousandsOfTimersWithStopsAndRestartsFireInOrder) {
  const int n = 20000 / kScale;
  std::vector<Tm> tms(n);
  std::vector<int> order;
  std::mt19937 rng(7);
  int64_t base = NowNs() - 1000 * kMs;  // all due: one run fires them all
  for (int i = 0; i < n; i++) {
    Init(&tms[i], i, &order);
    Start(&tms[i], base + static_cast<int64_t>(rng() % 1000));
  }
  std::vector<bool> stopped(n, false);
  for (int i = 0; i < n; i++) {
    int k = static_cast<int>(rng() % n);
    if (rng() % 2 == 0) {
      crpc_loop_timer_stop(&tms[k].t);
      stopped[k] = true;
    } else {
      Start(&tms[k], base + static_cast<int64_t>(rng() % 1000));
      stopped[k] = false;
    }
  }
  std::vector<int> expected;
  for (int i = 0; i < n; i++) {
    if (!stopped[i]) expected.push_back(i);
  }
  std::sort(expected.begin(), expected.end(), [&](int x, int y) {
    if (tms[x].deadline != tms[y].deadline) {
      return tms[x].deadline < tms[y].deadline;
    }
    return tms[x].start_seq < tms[y].start_seq;
  });
  EXPECT_EQ(expected.size(), crpc_loop_active_count(loop_.get()));
  EXPECT_EQ(static_cast<int>(expected.size()),
            crpc_loop_run_once(loop_.get(), 0));
  EXPECT_EQ(expected, order);
  for (int i = 0; i < n; i++) EXPECT_EQ(stopped[i] ? 0 : 1, tms[i].calls);
  EXPECT_EQ(0u, crpc_loop_active_count(loop_.get()));
}

TEST_P(Timer, ThousandsOfFutureTimersAllFireNotEarly) {
  const int n = 5000 / kScale;
  std::vector<Tm> tms(n);
  std::mt19937 rng(3);
  int64_t base = NowNs();
  int fired = 0;
  for (int i = 0; i < n; i++) {
    Init(&tms[i], i);
    tms[i].hook = [&](Tm *) { fired++; };
    Start(&tms[i], base + static_cast<int64_t>(rng() % (30 * kMs)));
  }
  ASSERT_TRUE(RunUntil(loop_.get(), [&] { return fired == n; }));
  for (const Tm &tm : tms) ASSERT_GE(tm.fired_at, tm.deadline);
}

TEST_P(Timer, SelfReArmForNowDoesNotStarveIo) {
  Tm tm;
  Init(&tm, 1);
  tm.hook = [&](Tm *self) { Start(self, NowNs()); };
  Start(&tm, NowNs());
  Pipe p;
  p.Fill();
  int io_calls = 0;
  crpc_loop_io io;
  crpc_loop_io_init(
      &io, loop_.get(), p.r,
      [](crpc_loop *, int, unsigned, void *ud) { ++*static_cast<int *>(ud); },
      &io_calls);
  ASSERT_EQ(0, crpc_loop_io_set(&io, CRPC_LOOP_READABLE));
  for (int i = 0; i < 3; i++) {
    EXPECT_EQ(2, crpc_loop_run_once(loop_.get(), 0)) << "one timer, one io";
  }
  EXPECT_EQ(3, io_calls);
  EXPECT_EQ(3, tm.calls);
  crpc_loop_timer_stop(&tm.t);
  crpc_loop_io_stop(&io);
}

// A batch whose callbacks outlast a timer's deadline: the timer runs
// between two callbacks of the batch, not after the last one (a loop at
// full load must not hold a call's deadline for a whole batch).
TEST_P(Timer, ADueTimerRunsBetweenTheCallbacksOfALongBatch) {
  Tm tm;
  Init(&tm, 1);
  Start(&tm, NowNs() + 2 * kMs);
  struct Reader {
    crpc_loop_io io;
    Tm *tm;
    int calls_seen = -1;  // the timer's calls when this callback ran
  };
  Pipe p1, p2;
  Reader r1{{}, &tm}, r2{{}, &tm};
  auto on_readable = [](crpc_loop *, int fd, unsigned, void *ud) {
    Reader *r = static_cast<Reader *>(ud);
    char c;
    EXPECT_EQ(1, read(fd, &c, 1));
    r->calls_seen = r->tm->calls;
    // The first of the two runs past the deadline.
    while (r->tm->calls == 0 && NowNs() < r->tm->deadline + 3 * kMs) {
    }
  };
  crpc_loop_io_init(&r1.io, loop_.get(), p1.r, on_readable, &r1);
  crpc_loop_io_init(&r2.io, loop_.get(), p2.r, on_readable, &r2);
  ASSERT_EQ(0, crpc_loop_io_set(&r1.io, CRPC_LOOP_READABLE));
  ASSERT_EQ(0, crpc_loop_io_set(&r2.io, CRPC_LOOP_READABLE));
  p1.Fill();
  p2.Fill();
  EXPECT_EQ(3, crpc_loop_run_once(loop_.get(), 0)) << "two io, one timer";
  EXPECT_EQ(1, tm.calls);
  // One callback ran before the deadline, the other after the timer.
  EXPECT_EQ(0, std::min(r1.calls_seen, r2.calls_seen));
  EXPECT_EQ(1, std::max(r1.calls_seen, r2.calls_seen));
  crpc_loop_io_stop(&r1.io);
  crpc_loop_io_stop(&r2.io);
}

TEST_P(Timer, BlockingRunOnceWakesForTheNextDeadline) {
  Tm tm;
  Init(&tm, 1);
  int64_t t0 = NowNs();
  Start(&tm, t0 + 3 * kMs);
  int ran = 0;
  while (ran == 0) ran = crpc_loop_run_once(loop_.get(), -1);
  EXPECT_EQ(1, ran);
  EXPECT_GE(tm.fired_at, t0 + 3 * kMs);
  EXPECT_LT(tm.fired_at, t0 + 500 * kMs);
}

// With a timerfd, stopping the earliest timer leaves the fd armed for it;
// the stale expiry must cost only a spurious iteration, never an early fire.
TEST_P(Timer, StoppingTheEarliestTimerNeverMakesALaterOneEarly) {
  Tm first, second;
  Init(&first, 1);
  Init(&second, 2);
  int64_t t0 = NowNs();
  Start(&first, t0 + 50 * kMs);
  EXPECT_EQ(0, crpc_loop_run_once(loop_.get(), 1 * kMs));  // arms for first
  crpc_loop_timer_stop(&first.t);
  Start(&second, t0 + 80 * kMs);
  ASSERT_TRUE(RunUntil(loop_.get(), [&] { return second.calls == 1; }));
  EXPECT_GE(second.fired_at, t0 + 80 * kMs);
  EXPECT_EQ(0, first.calls);
}

INSTANTIATE_TEST_SUITE_P(Backends, Timer,
                         ::testing::Values(0u,
                                           unsigned{CRPC_LOOP_FORCE_TIMERFD}),
                         [](const ::testing::TestParamInfo<unsigned> &info) {
                           return std::string(info.param ? "Timerfd"
                                                         : "EpollPwait2");
                         });

}  // namespace
