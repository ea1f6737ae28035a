// crpc_loop_run_outside: work lent the loop thread, and the standby that
// runs the loop while that work blocks. Each test runs the loop on its own
// thread (crpc_loop_start_thread, with CRPC_LOOP_STANDBY).
#include <sys/socket.h>

#include <atomic>
#include <thread>

#include "rpc/loop/test_util.h"

namespace crpc_loop_test {
namespace {

// Work that notes where it ran and, if told to, blocks (in a way the loop
// cannot see: a sleep loop, not a crpc wait) until released.
struct Work {
  std::atomic<bool> ran{false}, done{false}, release{false};
  std::atomic<bool> in_loop{true}, borrowed{false};
  bool block = false;
  bool say_will_block = false;
  std::thread::id thread;
};

void Nothing(crpc_loop *, void *) {}

void DoWork(crpc_loop *loop, void *arg) {
  auto *w = static_cast<Work *>(arg);
  w->thread = std::this_thread::get_id();
  w->in_loop = crpc_loop_in_loop_thread(loop);
  // Lent: its own thread can do the loop's work (as a handler writes its
  // response), unless the standby has it already.
  w->borrowed = crpc_loop_borrow(loop, Nothing, nullptr);
  w->ran = true;
  if (w->say_will_block) crpc_loop_outside_will_block();
  while (w->block && !w->release.load()) usleep(200);
  w->done = true;
}

struct Queue {
  Work *work;
  std::atomic<int> accepted{-1};  // 1/0: what run_outside returned
  std::atomic<bool> second{true}; // a second one in the same iteration
  std::thread::id loop_thread;
};

void QueueWork(crpc_loop *loop, void *arg) {
  auto *q = static_cast<Queue *>(arg);
  q->loop_thread = std::this_thread::get_id();
  bool accepted = crpc_loop_run_outside(loop, DoWork, q->work);
  q->second = crpc_loop_run_outside(loop, DoWork, q->work);
  q->accepted = accepted ? 1 : 0;  // last: the test may reuse q after it
}

// Sends w out blocked (until released) and waits until it runs.
void GoOutBlocked(crpc_loop *loop, Work *w, Queue *q) {
  w->block = true;
  q->work = w;
  ASSERT_EQ(0, crpc_loop_post(loop, QueueWork, q));
  ASSERT_TRUE(WaitUntil([&] { return w->ran.load(); }));
}

struct Seen {
  std::atomic<bool> ran{false}, in_loop{false};
  std::thread::id thread;
};

void See(crpc_loop *loop, void *arg) {
  auto *s = static_cast<Seen *>(arg);
  s->thread = std::this_thread::get_id();
  s->in_loop = crpc_loop_in_loop_thread(loop);
  s->ran = true;
}

TEST(Outside, RunsOnTheLoopThreadAfterItsIterationWithTheLoopLent) {
  LoopPtr loop = NewLoop(CRPC_LOOP_STANDBY);
  ASSERT_EQ(0, crpc_loop_start_thread(loop.get()));
  Work w;
  Queue q;
  q.work = &w;
  ASSERT_EQ(0, crpc_loop_post(loop.get(), QueueWork, &q));
  ASSERT_TRUE(WaitUntil([&] { return w.done.load(); }));
  EXPECT_EQ(1, q.accepted.load());
  EXPECT_FALSE(q.second.load());  // one piece of work per iteration
  EXPECT_EQ(q.loop_thread, w.thread);
  EXPECT_FALSE(w.in_loop.load());
  EXPECT_TRUE(w.borrowed.load());
  // And the loop thread has the loop back.
  Seen s;
  ASSERT_EQ(0, crpc_loop_post(loop.get(), See, &s));
  ASSERT_TRUE(WaitUntil([&] { return s.ran.load(); }));
  EXPECT_EQ(q.loop_thread, s.thread);
  EXPECT_EQ(0, crpc_loop_stop_and_join(loop.get()));
}

TEST(Outside, RefusedWithoutAStandbyOrAThread) {
  LoopPtr plain = NewLoop();
  ASSERT_EQ(0, crpc_loop_start_thread(plain.get()));
  Work w;
  Queue q;
  q.work = &w;
  ASSERT_EQ(0, crpc_loop_post(plain.get(), QueueWork, &q));
  ASSERT_TRUE(WaitUntil([&] { return q.accepted.load() >= 0; }));
  EXPECT_EQ(0, q.accepted.load());
  EXPECT_EQ(0, crpc_loop_stop_and_join(plain.get()));
  EXPECT_FALSE(w.ran.load());

  // With a standby but run by crpc_loop_run_once: no standby is running.
  LoopPtr once = NewLoop(CRPC_LOOP_STANDBY);
  Queue q2;
  q2.work = &w;
  ASSERT_EQ(0, crpc_loop_post(once.get(), QueueWork, &q2));
  ASSERT_TRUE(RunUntil(once.get(), [&] { return q2.accepted.load() >= 0; }));
  EXPECT_EQ(0, q2.accepted.load());
  EXPECT_FALSE(crpc_loop_run_outside(once.get(), DoWork, &w));  // no loop
}

struct TakeBack {
  Work *work;
  std::atomic<bool> checked{false};
  void *taken = nullptr;
  bool again = true, second_take = true;
};

void QueueAndTakeBack(crpc_loop *loop, void *arg) {
  auto *t = static_cast<TakeBack *>(arg);
  EXPECT_TRUE(crpc_loop_run_outside(loop, DoWork, t->work));
  t->taken = crpc_loop_cancel_outside(loop);
  t->second_take = crpc_loop_cancel_outside(loop) != nullptr;
  t->again = crpc_loop_run_outside(loop, DoWork, t->work);
  t->checked = true;
}

// Work taken back in its iteration does not run, and no other can be
// queued in that iteration; the next one may queue again.
TEST(Outside, TakenBackWorkDoesNotRun) {
  LoopPtr loop = NewLoop(CRPC_LOOP_STANDBY);
  ASSERT_EQ(0, crpc_loop_start_thread(loop.get()));
  Work w;
  TakeBack t;
  t.work = &w;
  ASSERT_EQ(0, crpc_loop_post(loop.get(), QueueAndTakeBack, &t));
  ASSERT_TRUE(WaitUntil([&] { return t.checked.load(); }));
  EXPECT_EQ(&w, t.taken);
  EXPECT_FALSE(t.second_take);
  EXPECT_FALSE(t.again);
  Seen s;  // a later iteration
  ASSERT_EQ(0, crpc_loop_post(loop.get(), See, &s));
  ASSERT_TRUE(WaitUntil([&] { return s.ran.load(); }));
  EXPECT_FALSE(w.ran.load());
  EXPECT_EQ(nullptr, crpc_loop_cancel_outside(loop.get()));  // not the loop
  Queue q;
  q.work = &w;
  ASSERT_EQ(0, crpc_loop_post(loop.get(), QueueWork, &q));
  ASSERT_TRUE(WaitUntil([&] { return w.done.load(); }));
  EXPECT_EQ(1, q.accepted.load());
  EXPECT_EQ(0, crpc_loop_stop_and_join(loop.get()));
}

// Blocked work (a sleep the loop cannot see) keeps nothing waiting for
// long: a post made meanwhile runs, on the standby, before it ends.
TEST(Outside, APostWhileTheWorkBlocksRunsOnTheStandby) {
  LoopPtr loop = NewLoop(CRPC_LOOP_STANDBY);
  ASSERT_EQ(0, crpc_loop_start_thread(loop.get()));
  Work w;
  Queue q;
  GoOutBlocked(loop.get(), &w, &q);
  Seen s;
  ASSERT_EQ(0, crpc_loop_post(loop.get(), See, &s));
  EXPECT_TRUE(WaitUntil([&] { return s.ran.load(); }));
  EXPECT_FALSE(w.done.load());
  EXPECT_TRUE(s.in_loop.load());
  EXPECT_NE(q.loop_thread, s.thread);
  w.release = true;
  ASSERT_TRUE(WaitUntil([&] { return w.done.load(); }));
  // Back on the loop thread afterwards.
  Seen after;
  ASSERT_EQ(0, crpc_loop_post(loop.get(), See, &after));
  ASSERT_TRUE(WaitUntil([&] { return after.ran.load(); }));
  EXPECT_EQ(q.loop_thread, after.thread);
  EXPECT_EQ(0, crpc_loop_stop_and_join(loop.get()));
}

struct Reader {
  std::atomic<int> reads{0};
};

void OnReadable(crpc_loop *, int fd, unsigned, void *arg) {
  char buf[64];
  if (read(fd, buf, sizeof buf) > 0) static_cast<Reader *>(arg)->reads++;
}

struct Watch {
  crpc_loop_io io;
  int fd;
  Reader *reader;
  std::atomic<bool> set{false};
};

void StartWatch(crpc_loop *loop, void *arg) {
  auto *w = static_cast<Watch *>(arg);
  crpc_loop_io_init(&w->io, loop, w->fd, OnReadable, w->reader);
  EXPECT_EQ(0, crpc_loop_io_set(&w->io, CRPC_LOOP_READABLE));
  w->set = true;
}

void StopWatch(crpc_loop *, void *arg) {
  auto *w = static_cast<Watch *>(arg);
  crpc_loop_io_stop(&w->io);
  w->set = false;
}

// Readiness nobody announces: served after the rescue delay (or at once
// when the work says it will block), while the work still blocks.
void IoServedWhileTheWorkBlocks(bool say_will_block) {
  LoopPtr loop = NewLoop(CRPC_LOOP_STANDBY);
  int sv[2];
  ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv));
  ASSERT_EQ(0, crpc_loop_start_thread(loop.get()));
  Reader r;
  Watch watch;
  watch.fd = sv[0];
  watch.reader = &r;
  ASSERT_EQ(0, crpc_loop_post(loop.get(), StartWatch, &watch));
  ASSERT_TRUE(WaitUntil([&] { return watch.set.load(); }));
  Work w;
  w.say_will_block = say_will_block;
  Queue q;
  GoOutBlocked(loop.get(), &w, &q);
  ASSERT_EQ(1, write(sv[1], "x", 1));
  EXPECT_TRUE(WaitUntil([&] { return r.reads.load() == 1; }));
  EXPECT_FALSE(w.done.load());
  w.release = true;
  ASSERT_TRUE(WaitUntil([&] { return w.done.load(); }));
  ASSERT_EQ(1, write(sv[1], "y", 1));  // and by the loop thread after
  EXPECT_TRUE(WaitUntil([&] { return r.reads.load() == 2; }));
  ASSERT_EQ(0, crpc_loop_post(loop.get(), StopWatch, &watch));
  ASSERT_TRUE(WaitUntil([&] { return !watch.set.load(); }));
  EXPECT_EQ(0, crpc_loop_stop_and_join(loop.get()));
  close(sv[0]);
  close(sv[1]);
}

TEST(Outside, IoIsServedAfterTheRescueDelayWhileTheWorkBlocks) {
  IoServedWhileTheWorkBlocks(false);
}

TEST(Outside, IoIsServedWhenTheWorkSaysItWillBlock) {
  IoServedWhileTheWorkBlocks(true);
}

struct Timed {
  crpc_loop_timer timer;
  std::atomic<int64_t> fired_at{0};
};

void OnTimer(crpc_loop *, crpc_loop_timer *, void *arg) {
  static_cast<Timed *>(arg)->fired_at = NowNs();
}

struct StartTimerThenWork {
  Timed *timed;
  int64_t deadline;
  Queue *queue;
};

void StartTimerAndQueue(crpc_loop *loop, void *arg) {
  auto *st = static_cast<StartTimerThenWork *>(arg);
  crpc_loop_timer_init(&st->timed->timer, loop, OnTimer, st->timed);
  crpc_loop_timer_start(&st->timed->timer, st->deadline);
  QueueWork(loop, st->queue);
}

// A timer that falls due while the work blocks fires on time (the standby
// takes the loop at the deadline), not when the work ends.
TEST(Outside, ATimerDueWhileTheWorkBlocksFires) {
  LoopPtr loop = NewLoop(CRPC_LOOP_STANDBY);
  ASSERT_EQ(0, crpc_loop_start_thread(loop.get()));
  Work w;
  w.block = true;
  Queue q;
  q.work = &w;
  Timed t;
  StartTimerThenWork st{&t, NowNs() + 20 * kMs, &q};
  ASSERT_EQ(0, crpc_loop_post(loop.get(), StartTimerAndQueue, &st));
  EXPECT_TRUE(WaitUntil([&] { return t.fired_at.load() != 0; }));
  EXPECT_FALSE(w.done.load());
  EXPECT_GE(t.fired_at.load(), st.deadline);
  w.release = true;
  ASSERT_TRUE(WaitUntil([&] { return w.done.load(); }));
  EXPECT_EQ(0, crpc_loop_stop_and_join(loop.get()));
}

// A stop does not abandon work that is out: stop_and_join returns once it
// has ended, and the loop thread's last iteration ran it to completion.
TEST(Outside, StopAndJoinWaitsForTheWork) {
  LoopPtr loop = NewLoop(CRPC_LOOP_STANDBY);
  ASSERT_EQ(0, crpc_loop_start_thread(loop.get()));
  Work w;
  Queue q;
  GoOutBlocked(loop.get(), &w, &q);
  std::atomic<bool> joined{false};
  std::thread stopper([&] {
    EXPECT_EQ(0, crpc_loop_stop_and_join(loop.get()));
    joined = true;
  });
  usleep(20000);
  EXPECT_FALSE(joined.load());
  w.release = true;
  stopper.join();
  EXPECT_TRUE(w.done.load());
}

// Many short pieces of work and posts from another thread at once: every
// post runs exactly once, whichever thread has the loop (TSan checks the
// hand-overs).
TEST(Outside, PostsDuringManyStretchesAllRun) {
  LoopPtr loop = NewLoop(CRPC_LOOP_STANDBY);
  ASSERT_EQ(0, crpc_loop_start_thread(loop.get()));
  const int kRounds = 2000 / kScale;
  std::atomic<int> posted_ran{0};
  std::thread poster([&] {
    for (int i = 0; i < kRounds; i++) {
      ASSERT_EQ(0, crpc_loop_post(
                       loop.get(),
                       [](crpc_loop *, void *arg) {
                         (*static_cast<std::atomic<int> *>(arg))++;
                       },
                       &posted_ran));
      if (i % 64 == 0) usleep(100);
    }
  });
  for (int i = 0; i < kRounds / 4; i++) {
    Work w;
    w.block = i % 16 == 0;  // some outlast a rescue, most do not
    // Refused while the standby still has the loop from the last stretch
    // (it leaves once it is back from its wait): queued again.
    for (;;) {
      Queue q;
      q.work = &w;
      ASSERT_EQ(0, crpc_loop_post(loop.get(), QueueWork, &q));
      ASSERT_TRUE(WaitUntil([&] { return q.accepted.load() >= 0; }));
      if (q.accepted.load() == 1) break;
    }
    ASSERT_TRUE(WaitUntil([&] { return w.ran.load(); }));
    if (w.block) usleep(1500);
    w.release = true;
    ASSERT_TRUE(WaitUntil([&] { return w.done.load(); }));
  }
  poster.join();
  EXPECT_TRUE(WaitUntil([&] { return posted_ran.load() == kRounds; }));
  EXPECT_EQ(0, crpc_loop_stop_and_join(loop.get()));
}

}  // namespace
}  // namespace crpc_loop_test
