// crpc_loop_borrow: another thread doing a sleeping loop's work itself.
// Each test runs the loop on its own thread (crpc_loop_start_thread) and
// borrows it from the test thread.
#include <atomic>
#include <thread>
#include <vector>

#include "rpc/loop/test_util.h"

namespace crpc_loop_test {
namespace {

struct Borrowed {
  std::atomic<bool> ran{false};
  std::atomic<bool> in_loop{false};
  std::thread::id thread;
};

void Note(crpc_loop *loop, void *arg) {
  auto *b = static_cast<Borrowed *>(arg);
  b->in_loop = crpc_loop_in_loop_thread(loop);
  b->thread = std::this_thread::get_id();
  b->ran = true;
}

// The loop thread is in its wait once a posted closure has run and it has
// had time to block again; a borrow is tried until one succeeds.
bool BorrowSoon(crpc_loop *loop, crpc_loop_fn fn, void *arg) {
  return WaitUntil([&] { return crpc_loop_borrow(loop, fn, arg); });
}

TEST(Borrow, RunsOnTheCallingThreadAsTheLoop) {
  LoopPtr loop = NewLoop();
  ASSERT_EQ(0, crpc_loop_start_thread(loop.get()));
  Borrowed b;
  ASSERT_TRUE(BorrowSoon(loop.get(), Note, &b));
  EXPECT_TRUE(b.ran.load());
  EXPECT_TRUE(b.in_loop.load());  // for its duration only
  EXPECT_EQ(b.thread, std::this_thread::get_id());
  EXPECT_FALSE(crpc_loop_in_loop_thread(loop.get()));
  EXPECT_EQ(0, crpc_loop_stop_and_join(loop.get()));
}

TEST(Borrow, RefusedWhileTheLoopWorksOrIsNotRunning) {
  LoopPtr loop = NewLoop();
  Borrowed idle;
  EXPECT_FALSE(crpc_loop_borrow(loop.get(), Note, &idle));  // nobody runs it
  EXPECT_FALSE(idle.ran.load());

  ASSERT_EQ(0, crpc_loop_start_thread(loop.get()));
  std::atomic<bool> inside{false}, release{false};
  struct Busy {
    std::atomic<bool> *inside, *release;
  } busy{&inside, &release};
  ASSERT_EQ(0, crpc_loop_post(
                   loop.get(),
                   [](crpc_loop *, void *arg) {
                     auto *b = static_cast<Busy *>(arg);
                     *b->inside = true;
                     while (!b->release->load()) usleep(100);
                   },
                   &busy));
  ASSERT_TRUE(WaitUntil([&] { return inside.load(); }));
  Borrowed during;
  EXPECT_FALSE(crpc_loop_borrow(loop.get(), Note, &during));
  EXPECT_FALSE(during.ran.load());
  release = true;
  EXPECT_EQ(0, crpc_loop_stop_and_join(loop.get()));
}

// What the borrower posts runs on the loop thread (the post wakes it), and
// a timer it starts fires on time although the loop went to sleep for a
// much later one.
TEST(Borrow, PostsAndEarlierTimersWakeTheLoop) {
  LoopPtr loop = NewLoop();
  crpc_loop_timer late, soon;
  std::atomic<int> late_fired{0}, soon_fired{0};
  std::atomic<bool> posted_ran{false};
  std::thread::id loop_thread, posted_on;
  struct Ctx {
    crpc_loop_timer *late, *soon;
    std::atomic<int> *late_fired, *soon_fired;
    std::atomic<bool> *posted_ran;
    std::thread::id *loop_thread, *posted_on;
    int64_t soon_due;
  } c{&late, &soon, &late_fired, &soon_fired, &posted_ran, &loop_thread, &posted_on, 0};
  auto count = [](crpc_loop *, crpc_loop_timer *, void *arg) {
    ++*static_cast<std::atomic<int> *>(arg);
  };
  crpc_loop_timer_init(&late, loop.get(), count, &late_fired);
  crpc_loop_timer_init(&soon, loop.get(), count, &soon_fired);
  ASSERT_EQ(0, crpc_loop_start_thread(loop.get()));
  // The loop starts the late timer itself and goes to sleep until it.
  ASSERT_EQ(0, crpc_loop_post(
                   loop.get(),
                   [](crpc_loop *, void *arg) {
                     auto *c = static_cast<Ctx *>(arg);
                     *c->loop_thread = std::this_thread::get_id();
                     crpc_loop_timer_start(c->late, NowNs() + 10000 * kMs);
                   },
                   &c));
  auto fn = [](crpc_loop *loop, void *arg) {
    auto *c = static_cast<Ctx *>(arg);
    c->soon_due = NowNs() + 30 * kMs;
    crpc_loop_timer_start(c->soon, c->soon_due);
    EXPECT_EQ(0, crpc_loop_post(
                     loop,
                     [](crpc_loop *, void *arg) {
                       auto *c = static_cast<Ctx *>(arg);
                       *c->posted_on = std::this_thread::get_id();
                       *c->posted_ran = true;
                     },
                     c));
  };
  ASSERT_TRUE(BorrowSoon(loop.get(), fn, &c));
  ASSERT_TRUE(WaitUntil([&] { return posted_ran.load(); }, 2000 * kMs));
  EXPECT_EQ(posted_on, loop_thread);
  ASSERT_TRUE(WaitUntil([&] { return soon_fired.load() == 1; }, 2000 * kMs));
  EXPECT_GE(NowNs(), c.soon_due);
  EXPECT_EQ(late_fired.load(), 0);
  // Timers are the loop thread's to stop.
  ASSERT_EQ(0, crpc_loop_post(
                   loop.get(),
                   [](crpc_loop *, void *arg) {
                     crpc_loop_timer_stop(static_cast<Ctx *>(arg)->late);
                   },
                   &c));
  EXPECT_EQ(0, crpc_loop_stop_and_join(loop.get()));
}

// A borrow is a batch: what fn queues for the batch's end (a connection's
// flush) runs on the borrowing thread before crpc_loop_borrow returns, and
// the loop thread is not woken for it.
TEST(Borrow, WorkQueuedForTheBatchEndRunsBeforeTheBorrowReturns) {
  LoopPtr loop = NewLoop();
  ASSERT_EQ(0, crpc_loop_start_thread(loop.get()));
  struct Ctx {
    crpc_loop_closure end;
    std::atomic<int> ran{0};
    std::thread::id ran_on;
    bool queued = false;
  } c;
  crpc_loop_closure_init(
      &c.end,
      [](crpc_loop *, void *arg) {
        auto *c = static_cast<Ctx *>(arg);
        c->ran_on = std::this_thread::get_id();
        ++c->ran;
      },
      &c);
  auto fn = [](crpc_loop *loop, void *arg) {
    auto *c = static_cast<Ctx *>(arg);
    c->queued = crpc_loop_post_closure_after_batch(loop, &c->end);
    EXPECT_EQ(c->ran.load(), 0);  // at the end, not at once
  };
  ASSERT_TRUE(BorrowSoon(loop.get(), fn, &c));
  EXPECT_TRUE(c.queued);
  EXPECT_EQ(c.ran.load(), 1);
  EXPECT_EQ(c.ran_on, std::this_thread::get_id());
  // Nothing was left for the loop: a second borrow finds it still asleep.
  Borrowed again;
  EXPECT_TRUE(crpc_loop_borrow(loop.get(), Note, &again));
  EXPECT_EQ(c.ran.load(), 1);
  EXPECT_EQ(0, crpc_loop_stop_and_join(loop.get()));
}

// A watcher the borrower stops and reuses while its old fd has already
// woken the loop (the loop thread holds the event and waits for the
// borrower) never sees that event: the loop drops what it fetched during
// the borrow and waits again (a still-ready fd comes back then). Without
// the drop, the stale event would reach the reused watcher, whose own fd
// was never written.
TEST(Borrow, EventsFetchedDuringABorrowAreFetchedAgain) {
  LoopPtr loop = NewLoop();
  Pipe old_pipe, kept_pipe, silent_pipe;
  crpc_loop_io reused, kept;
  std::atomic<int> reused_calls{0}, kept_calls{0};
  auto on_read = [](crpc_loop *, int fd, unsigned, void *arg) {
    char buf[8];
    while (read(fd, buf, sizeof buf) > 0) {
    }
    ++*static_cast<std::atomic<int> *>(arg);
  };
  struct Ctx {
    crpc_loop_io *reused, *kept;
    Pipe *old_pipe, *kept_pipe, *silent_pipe;
    crpc_loop_io_fn on_read;
    std::atomic<int> *reused_calls;
    std::atomic<bool> watching{false};
  } c{&reused, &kept, &old_pipe, &kept_pipe, &silent_pipe, on_read, &reused_calls};
  std::atomic<int> old_calls{0};
  crpc_loop_io_init(&reused, loop.get(), old_pipe.r, on_read, &old_calls);
  crpc_loop_io_init(&kept, loop.get(), kept_pipe.r, on_read, &kept_calls);
  ASSERT_EQ(0, crpc_loop_start_thread(loop.get()));
  ASSERT_EQ(0, crpc_loop_post(
                   loop.get(),
                   [](crpc_loop *, void *arg) {
                     auto *c = static_cast<Ctx *>(arg);
                     EXPECT_EQ(0, crpc_loop_io_set(c->reused, CRPC_LOOP_READABLE));
                     EXPECT_EQ(0, crpc_loop_io_set(c->kept, CRPC_LOOP_READABLE));
                     c->watching = true;
                   },
                   &c));
  ASSERT_TRUE(WaitUntil([&] { return c.watching.load(); }));
  auto fn = [](crpc_loop *loop, void *arg) {
    auto *c = static_cast<Ctx *>(arg);
    c->old_pipe->Fill();
    c->kept_pipe->Fill();
    usleep(20000);  // the loop thread returns from epoll with both events
    crpc_loop_io_stop(c->reused);
    crpc_loop_io_init(c->reused, loop, c->silent_pipe->r, c->on_read, c->reused_calls);
    EXPECT_EQ(0, crpc_loop_io_set(c->reused, CRPC_LOOP_READABLE));
  };
  ASSERT_TRUE(BorrowSoon(loop.get(), fn, &c));
  ASSERT_TRUE(WaitUntil([&] { return kept_calls.load() >= 1; }, 2000 * kMs));
  usleep(20000);
  EXPECT_EQ(reused_calls.load(), 0);  // its fd was never written
  EXPECT_EQ(old_calls.load(), 0);     // stopped before the loop dispatched
  ASSERT_EQ(0, crpc_loop_post(
                   loop.get(),
                   [](crpc_loop *, void *arg) {
                     auto *c = static_cast<Ctx *>(arg);
                     crpc_loop_io_stop(c->kept);
                     crpc_loop_io_stop(c->reused);
                   },
                   &c));
  EXPECT_EQ(0, crpc_loop_stop_and_join(loop.get()));
}

// crpc_loop_input_pending, from a borrow: false while nothing is ready,
// true once a watched fd is readable, and it consumes nothing (the loop's
// callback still reads the bytes after the borrow).
TEST(Borrow, InputPendingSeesAReadyFdWithoutTakingIt) {
  LoopPtr loop = NewLoop();
  Pipe pipe;
  crpc_loop_io io;
  std::atomic<int> reads{0};
  crpc_loop_io_init(&io, loop.get(), pipe.r,
                    [](crpc_loop *, int fd, unsigned, void *arg) {
                      char buf[8];
                      while (read(fd, buf, sizeof buf) > 0) {
                      }
                      ++*static_cast<std::atomic<int> *>(arg);
                    },
                    &reads);
  struct Ctx {
    crpc_loop_io *io;
    Pipe *pipe;
    std::atomic<bool> watching{false};
    bool before = true, after = false;
  } c{&io, &pipe};
  ASSERT_EQ(0, crpc_loop_start_thread(loop.get()));
  ASSERT_EQ(0, crpc_loop_post(
                   loop.get(),
                   [](crpc_loop *, void *arg) {
                     auto *c = static_cast<Ctx *>(arg);
                     EXPECT_EQ(0, crpc_loop_io_set(c->io, CRPC_LOOP_READABLE));
                     c->watching = true;
                   },
                   &c));
  ASSERT_TRUE(WaitUntil([&] { return c.watching.load(); }));
  auto fn = [](crpc_loop *loop, void *arg) {
    auto *c = static_cast<Ctx *>(arg);
    c->before = crpc_loop_input_pending(loop);
    c->pipe->Fill();
    c->after = crpc_loop_input_pending(loop);
  };
  ASSERT_TRUE(BorrowSoon(loop.get(), fn, &c));
  EXPECT_FALSE(c.before);
  EXPECT_TRUE(c.after);
  ASSERT_TRUE(WaitUntil([&] { return reads.load() >= 1; }, 2000 * kMs));
  ASSERT_EQ(0, crpc_loop_post(
                   loop.get(),
                   [](crpc_loop *, void *arg) {
                     crpc_loop_io_stop(static_cast<Ctx *>(arg)->io);
                   },
                   &c));
  EXPECT_EQ(0, crpc_loop_stop_and_join(loop.get()));
}

// Many threads borrowing and posting at once while the loop runs: every
// borrowed run and every post happens exactly once, never two at a time.
TEST(Borrow, ConcurrentBorrowersAndPostersAreSerialised) {
  LoopPtr loop = NewLoop();
  ASSERT_EQ(0, crpc_loop_start_thread(loop.get()));
  struct Shared {
    std::atomic<int> inside{0}, overlaps{0}, borrowed{0}, posted{0};
  } sh;
  auto body = [](crpc_loop *, void *arg) {
    auto *s = static_cast<Shared *>(arg);
    if (s->inside.fetch_add(1) != 0) s->overlaps++;
    s->inside.fetch_sub(1);
  };
  const int kThreads = 4, kEach = 2000 / kScale;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; i++) {
        if (crpc_loop_borrow(loop.get(), body, &sh)) {
          sh.borrowed++;
        } else {
          ASSERT_EQ(0, crpc_loop_post(
                           loop.get(),
                           [](crpc_loop *, void *arg) {
                             auto *s = static_cast<Shared *>(arg);
                             if (s->inside.fetch_add(1) != 0) s->overlaps++;
                             s->inside.fetch_sub(1);
                             s->posted++;
                           },
                           &sh));
        }
        if ((i + t) % 7 == 0) usleep(50);  // let the loop fall asleep
      }
    });
  }
  for (auto &th : threads) th.join();
  ASSERT_TRUE(WaitUntil([&] { return sh.borrowed + sh.posted == kThreads * kEach; }));
  EXPECT_EQ(sh.overlaps.load(), 0);
  EXPECT_GT(sh.borrowed.load(), 0);
  EXPECT_EQ(0, crpc_loop_stop_and_join(loop.get()));
}

}  // namespace
}  // namespace crpc_loop_test
