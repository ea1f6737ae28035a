// I/O watchers and the loop object, single-threaded.
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <vector>

#include "rpc/loop/loop.h"
#include "rpc/loop/test_util.h"

using namespace crpc_loop_test;

namespace {

// A watcher plus what happened to it; `hook` runs inside the callback.
struct Watch {
  crpc_loop_io io;
  int calls = 0;
  unsigned last = 0;
  std::function<void(Watch *)> hook;
};

void OnIo(crpc_loop *, int, unsigned events, void *user_data) {
  Watch *w = static_cast<Watch *>(user_data);
  w->calls++;
  w->last = events;
  if (w->hook) w->hook(w);
}

struct SocketPair {
  int a = -1;
  int b = -1;
  SocketPair() {
    int fds[2];
    EXPECT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds));
    a = fds[0];
    b = fds[1];
  }
  ~SocketPair() {
    if (a >= 0) close(a);
    if (b >= 0) close(b);
  }
};

TEST(IoWatcher, ReadableFiresWhilePipeHasDataLevelTriggered) {
  LoopPtr loop = NewLoop();
  Pipe p;
  Watch w;
  crpc_loop_io_init(&w.io, loop.get(), p.r, OnIo, &w);
  ASSERT_EQ(0, crpc_loop_io_set(&w.io, CRPC_LOOP_READABLE));
  EXPECT_EQ(0, crpc_loop_run_once(loop.get(), 0));
  EXPECT_EQ(0, w.calls);

  p.Fill();
  EXPECT_EQ(1, crpc_loop_run_once(loop.get(), 1000 * kMs));
  EXPECT_EQ(1, w.calls);
  EXPECT_EQ(unsigned{CRPC_LOOP_READABLE}, w.last);
  EXPECT_EQ(1, crpc_loop_run_once(loop.get(), 0)) << "level-triggered";

  char c;
  ASSERT_EQ(1, read(p.r, &c, 1));
  EXPECT_EQ(0, crpc_loop_run_once(loop.get(), 0));
  EXPECT_EQ(2, w.calls);
  crpc_loop_io_stop(&w.io);
}

TEST(IoWatcher, WriteInterestOnlyWhileOutputIsPending) {
  LoopPtr loop = NewLoop();
  SocketPair sp;
  Watch w;
  crpc_loop_io_init(&w.io, loop.get(), sp.a, OnIo, &w);
  ASSERT_EQ(0, crpc_loop_io_set(&w.io, CRPC_LOOP_READABLE));
  EXPECT_EQ(0, crpc_loop_run_once(loop.get(), 0));

  ASSERT_EQ(0,
            crpc_loop_io_set(&w.io, CRPC_LOOP_READABLE | CRPC_LOOP_WRITABLE));
  EXPECT_EQ(unsigned{CRPC_LOOP_READABLE | CRPC_LOOP_WRITABLE},
            crpc_loop_io_events(&w.io));
  EXPECT_EQ(1, crpc_loop_run_once(loop.get(), 1000 * kMs));
  EXPECT_EQ(unsigned{CRPC_LOOP_WRITABLE}, w.last);

  ASSERT_EQ(0, crpc_loop_io_set(&w.io, CRPC_LOOP_READABLE));
  EXPECT_EQ(0, crpc_loop_run_once(loop.get(), 0));
  EXPECT_EQ(1, w.calls);

  ASSERT_EQ(1, write(sp.b, "y", 1));
  EXPECT_EQ(1, crpc_loop_run_once(loop.get(), 1000 * kMs));
  EXPECT_EQ(unsigned{CRPC_LOOP_READABLE}, w.last);
  crpc_loop_io_stop(&w.io);
  EXPECT_EQ(0u, crpc_loop_io_events(&w.io));
}

TEST(IoWatcher, InterestDroppedEarlierInTheBatchFiltersThePendingEvent) {
  LoopPtr loop = NewLoop();
  SocketPair s1, s2;
  Watch w1, w2;
  crpc_loop_io_init(&w1.io, loop.get(), s1.a, OnIo, &w1);
  crpc_loop_io_init(&w2.io, loop.get(), s2.a, OnIo, &w2);
  // Whichever runs first turns the other's write interest off; both sockets
  // are writable, so the other's event is already in the fetched batch.
  w1.hook = [&](Watch *) { crpc_loop_io_set(&w2.io, CRPC_LOOP_READABLE); };
  w2.hook = [&](Watch *) { crpc_loop_io_set(&w1.io, CRPC_LOOP_READABLE); };
  ASSERT_EQ(0, crpc_loop_io_set(&w1.io, CRPC_LOOP_WRITABLE));
  ASSERT_EQ(0, crpc_loop_io_set(&w2.io, CRPC_LOOP_WRITABLE));
  EXPECT_EQ(1, crpc_loop_run_once(loop.get(), 1000 * kMs));
  EXPECT_EQ(1, w1.calls + w2.calls);
  crpc_loop_io_stop(&w1.io);
  crpc_loop_io_stop(&w2.io);
}

TEST(IoWatcher, StopAndFreeInsideOwnCallback) {
  LoopPtr loop = NewLoop();
  Pipe p;
  p.Fill();  // stays readable: a live watcher would fire every iteration
  int calls = 0;
  struct Owned {
    crpc_loop_io io;
    int *calls;
  };
  Owned *o = static_cast<Owned *>(malloc(sizeof(Owned)));
  o->calls = &calls;
  crpc_loop_io_init(
      &o->io, loop.get(), p.r,
      [](crpc_loop *, int, unsigned, void *ud) {
        Owned *self = static_cast<Owned *>(ud);
        (*self->calls)++;
        crpc_loop_io_stop(&self->io);
        free(self);  // ASan flags any later touch by the loop
      },
      o);
  ASSERT_EQ(0, crpc_loop_io_set(&o->io, CRPC_LOOP_READABLE));
  EXPECT_EQ(1, crpc_loop_run_once(loop.get(), 1000 * kMs));
  EXPECT_EQ(0, crpc_loop_run_once(loop.get(), 0));
  EXPECT_EQ(0, crpc_loop_run_once(loop.get(), 0));
  EXPECT_EQ(1, calls);
  EXPECT_EQ(0u, crpc_loop_active_count(loop.get()));
}

TEST(IoWatcher, StopAndFreeAnotherWatcherWhoseEventIsPending) {
  LoopPtr loop = NewLoop();
  Pipe p1, p2;
  p1.Fill();
  p2.Fill();
  Watch *w1 = new Watch;
  Watch *w2 = new Watch;
  Watch *survivor = nullptr;
  // The first to run stops and deletes the other; the other's event is in
  // the same epoll batch and must be dropped, not dispatched to freed memory.
  auto kill_other = [&](Watch *self) {
    if (survivor != nullptr) return;
    survivor = self;
    Watch *other = self == w1 ? w2 : w1;
    crpc_loop_io_stop(&other->io);
    delete other;
  };
  w1->hook = kill_other;
  w2->hook = kill_other;
  crpc_loop_io_init(&w1->io, loop.get(), p1.r, OnIo, w1);
  crpc_loop_io_init(&w2->io, loop.get(), p2.r, OnIo, w2);
  ASSERT_EQ(0, crpc_loop_io_set(&w1->io, CRPC_LOOP_READABLE));
  ASSERT_EQ(0, crpc_loop_io_set(&w2->io, CRPC_LOOP_READABLE));
  EXPECT_EQ(1, crpc_loop_run_once(loop.get(), 1000 * kMs));
  ASSERT_NE(nullptr, survivor);
  EXPECT_EQ(1, survivor->calls);
  EXPECT_EQ(1, crpc_loop_run_once(loop.get(), 0));  // the survivor again
  EXPECT_EQ(2, survivor->calls);
  crpc_loop_io_stop(&survivor->io);
  delete survivor;
  EXPECT_EQ(0u, crpc_loop_active_count(loop.get()));
}

TEST(IoWatcher, StructReusedForAnotherFdGetsNoStaleEvent) {
  LoopPtr loop = NewLoop();
  Pipe p1, p2, quiet;
  p1.Fill();
  p2.Fill();
  Watch w1, w2;
  // Whoever runs first moves the other's struct to a pipe with no data:
  // the stale "readable" fetched for the old fd must not reach it.
  auto move_other = [&](Watch *self) {
    Watch *other = self == &w1 ? &w2 : &w1;
    if (other->hook == nullptr) return;
    crpc_loop_io_stop(&other->io);
    other->hook = nullptr;
    crpc_loop_io_init(&other->io, loop.get(), quiet.r, OnIo, other);
    ASSERT_EQ(0, crpc_loop_io_set(&other->io, CRPC_LOOP_READABLE));
  };
  w1.hook = move_other;
  w2.hook = move_other;
  crpc_loop_io_init(&w1.io, loop.get(), p1.r, OnIo, &w1);
  crpc_loop_io_init(&w2.io, loop.get(), p2.r, OnIo, &w2);
  ASSERT_EQ(0, crpc_loop_io_set(&w1.io, CRPC_LOOP_READABLE));
  ASSERT_EQ(0, crpc_loop_io_set(&w2.io, CRPC_LOOP_READABLE));
  EXPECT_EQ(1, crpc_loop_run_once(loop.get(), 1000 * kMs));
  EXPECT_EQ(1, w1.calls + w2.calls);
  crpc_loop_io_stop(&w1.io);
  crpc_loop_io_stop(&w2.io);
}

TEST(IoWatcher, HangupIsReportedWithTheInterestBits) {
  LoopPtr loop = NewLoop();
  SocketPair sp;
  Watch w;
  crpc_loop_io_init(&w.io, loop.get(), sp.a, OnIo, &w);
  ASSERT_EQ(0, crpc_loop_io_set(&w.io, CRPC_LOOP_READABLE));
  close(sp.b);
  sp.b = -1;
  EXPECT_EQ(1, crpc_loop_run_once(loop.get(), 1000 * kMs));
  EXPECT_EQ(unsigned{CRPC_LOOP_READABLE | CRPC_LOOP_HANGUP}, w.last);
  char c;
  EXPECT_EQ(0, read(sp.a, &c, 1)) << "EOF is what the reader finds";
  crpc_loop_io_stop(&w.io);
}

TEST(IoWatcher, SecondWatcherOnTheSameFdIsRejected) {
  LoopPtr loop = NewLoop();
  Pipe p;
  Watch w1, w2;
  crpc_loop_io_init(&w1.io, loop.get(), p.r, OnIo, &w1);
  crpc_loop_io_init(&w2.io, loop.get(), p.r, OnIo, &w2);
  ASSERT_EQ(0, crpc_loop_io_set(&w1.io, CRPC_LOOP_READABLE));
  EXPECT_EQ(-EEXIST, crpc_loop_io_set(&w2.io, CRPC_LOOP_READABLE));
  EXPECT_EQ(0u, crpc_loop_io_events(&w2.io));
  EXPECT_EQ(1u, crpc_loop_active_count(loop.get()));
  crpc_loop_io_stop(&w2.io);  // no interest: a no-op
  crpc_loop_io_stop(&w1.io);
}

TEST(IoWatcher, UnpollableFdAndUnknownBitsAreRejected) {
  LoopPtr loop = NewLoop();
  char path[] = "/tmp/crpc_loop_io_test_XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  unlink(path);
  Watch w;
  crpc_loop_io_init(&w.io, loop.get(), fd, OnIo, &w);
  EXPECT_EQ(-EPERM, crpc_loop_io_set(&w.io, CRPC_LOOP_READABLE));
  EXPECT_EQ(-EINVAL, crpc_loop_io_set(&w.io, CRPC_LOOP_HANGUP));
  EXPECT_EQ(0u, crpc_loop_active_count(loop.get()));
  close(fd);
}

TEST(Loop, FreeNeverClosesCallerFds) {
  Pipe p;
  Watch w;
  {
    LoopPtr loop = NewLoop();
    crpc_loop_io_init(&w.io, loop.get(), p.r, OnIo, &w);
    ASSERT_EQ(0, crpc_loop_io_set(&w.io, CRPC_LOOP_READABLE));
    // Freed with the watcher still registered: forgotten, not called.
  }
  EXPECT_NE(-1, fcntl(p.r, F_GETFD));
  EXPECT_NE(-1, fcntl(p.w, F_GETFD));
  EXPECT_EQ(0, w.calls);
}

TEST(Loop, UnknownFlagsAreRejected) {
  crpc_loop *loop = reinterpret_cast<crpc_loop *>(&loop);
  EXPECT_EQ(-EINVAL, crpc_loop_new(&loop, 1u << 7));
  EXPECT_EQ(nullptr, loop);
  crpc_loop_free(nullptr);
}

TEST(Loop, RunOnceWaitsForItsTimeoutWhenIdle) {
  LoopPtr loop = NewLoop();
  int64_t t0 = NowNs();
  EXPECT_EQ(0, crpc_loop_run_once(loop.get(), 5 * kMs));
  int64_t took = NowNs() - t0;
  EXPECT_GE(took, 5 * kMs);
  EXPECT_LT(took, 1000 * kMs);
}

TEST(Loop, InLoopThreadOnlyInsideTheRun) {
  LoopPtr loop = NewLoop();
  EXPECT_FALSE(crpc_loop_in_loop_thread(loop.get()));
  bool inside = false;
  crpc_loop_closure c;
  crpc_loop_closure_init(
      &c, [](crpc_loop *l, void *arg) {
        *static_cast<bool *>(arg) = crpc_loop_in_loop_thread(l);
      },
      &inside);
  crpc_loop_post_closure(loop.get(), &c);
  EXPECT_EQ(1, crpc_loop_run_once(loop.get(), 0));
  EXPECT_TRUE(inside);
  EXPECT_FALSE(crpc_loop_in_loop_thread(loop.get()));
}

TEST(Loop, RunningTheLoopFromItsOwnCallbackIsRejected) {
  LoopPtr loop = NewLoop();
  int rc = 0;
  crpc_loop_closure c;
  crpc_loop_closure_init(
      &c, [](crpc_loop *l, void *arg) {
        *static_cast<int *>(arg) = crpc_loop_run_once(l, 0);
      },
      &rc);
  crpc_loop_post_closure(loop.get(), &c);
  EXPECT_EQ(1, crpc_loop_run_once(loop.get(), 0));
  EXPECT_EQ(-EBUSY, rc);
}

TEST(Loop, StopBeforeRunMakesRunReturnAtOnceAndIsConsumed) {
  LoopPtr loop = NewLoop();
  crpc_loop_stop(loop.get());
  int64_t t0 = NowNs();
  EXPECT_EQ(0, crpc_loop_run(loop.get()));
  EXPECT_LT(NowNs() - t0, 1000 * kMs);
  // Consumed: a stop from a callback is what ends this run.
  crpc_loop_closure c;
  crpc_loop_closure_init(
      &c, [](crpc_loop *l, void *) { crpc_loop_stop(l); }, nullptr);
  crpc_loop_post_closure(loop.get(), &c);
  EXPECT_EQ(0, crpc_loop_run(loop.get()));
}

TEST(Loop, StopAndJoinWithoutThreadIsAnError) {
  LoopPtr loop = NewLoop();
  EXPECT_EQ(-ECHILD, crpc_loop_stop_and_join(loop.get()));
}

}  // namespace
