// crpc_loop_set_poll: the loop polls before it sleeps while its waits are
// short, and stops (costing no CPU) once they are long.
#include <pthread.h>

#include <atomic>
#include <thread>

#include "rpc/loop/test_util.h"

namespace crpc_loop_test {
namespace {

struct Drain {
  crpc_loop_io io;
  int got = 0;
};

void OnReadable(crpc_loop *, int fd, unsigned, void *arg) {
  char buf[64];
  ssize_t n = read(fd, buf, sizeof(buf));
  if (n > 0) static_cast<Drain *>(arg)->got += static_cast<int>(n);
}

// A loop (polling up to poll_ns) watching a pipe, run from this thread.
struct PipeLoop {
  LoopPtr loop = NewLoop();
  Pipe p;
  Drain d;
  explicit PipeLoop(int64_t poll_ns) {
    if (poll_ns != 0) crpc_loop_set_poll(loop.get(), poll_ns);
    crpc_loop_io_init(&d.io, loop.get(), p.r, OnReadable, &d);
    crpc_loop_io_set(&d.io, CRPC_LOOP_READABLE);
  }
  ~PipeLoop() { crpc_loop_io_stop(&d.io); }
};

// Runs the loop from this thread while another writes a byte every
// gap_ns; returns the largest poll window seen between iterations.
int64_t RunWithWrites(crpc_loop *loop, Pipe *p, Drain *d, int writes,
                      int64_t gap_ns) {
  std::thread writer([&] {
    for (int i = 0; i < writes; i++) {
      usleep(static_cast<useconds_t>(gap_ns / 1000));
      EXPECT_EQ(1, write(p->w, "x", 1));
    }
  });
  int64_t widest = 0;
  int want = d->got + writes;
  int64_t end = NowNs() + 10000 * kMs;
  while (d->got < want && NowNs() < end) {
    EXPECT_LE(0, crpc_loop_run_once(loop, 1000 * kMs));
    widest = std::max(widest, crpc_loop_poll_window(loop));
  }
  writer.join();
  EXPECT_EQ(want, d->got);
  return widest;
}

TEST(Poll, OffByDefault) {
  PipeLoop l(0);
  EXPECT_EQ(0, RunWithWrites(l.loop.get(), &l.p, &l.d, 20, 1 * kMs));
}

TEST(Poll, GrowsWhileWaitsAreShortAndStopsAfterALongOne) {
  PipeLoop l(1 * kMs);
  // Bytes 200 us apart: each wait ends within the 1 ms limit, so the
  // window doubles from 10 us until it spans a gap (320 us). A writer
  // descheduled for over 1 ms (a loaded machine: it happened in a full
  // suite run) makes one wait long and rightly resets the window, so up
  // to 5 bursts get the chance to show the growth.
  int64_t widest = 0;
  for (int burst = 0; burst < 5 && widest < kMs / 10; burst++) {
    widest = RunWithWrites(l.loop.get(), &l.p, &l.d, 40, kMs / 5);
  }
  EXPECT_GE(widest, kMs / 10);
  EXPECT_LE(widest, 1 * kMs);
  // Nothing for 60 ms: longer than the limit, polling stops.
  EXPECT_EQ(0, crpc_loop_run_once(l.loop.get(), 60 * kMs));
  EXPECT_EQ(0, crpc_loop_poll_window(l.loop.get()));
}

TEST(Poll, CappedAtOneMillisecond) {
  PipeLoop l(5000 * kMs);
  // 1.5 ms gaps: uncapped, the window would double to 2.56 ms to span
  // them; capped, such waits are too long and it never passes 1 ms.
  EXPECT_LE(RunWithWrites(l.loop.get(), &l.p, &l.d, 20, 3 * kMs / 2), 1 * kMs);
}

// The point of the adaptation: a loop that has gone quiet sleeps. Its
// thread's CPU time over 300 ms of silence, after a burst that opened the
// window to its 1 ms cap, stays near one window.
TEST(Poll, AQuietLoopSleeps) {
  LoopPtr loop = NewLoop();
  crpc_loop_set_poll(loop.get(), 1 * kMs);
  ASSERT_EQ(0, crpc_loop_start_thread(loop.get()));
  std::atomic<int> ran{0};
  std::atomic<int64_t> window{0};
  std::atomic<pthread_t> thread{};
  struct Probe {
    std::atomic<int> *ran;
    std::atomic<int64_t> *window;
    std::atomic<pthread_t> *thread;
  } probe{&ran, &window, &thread};
  auto note = [](crpc_loop *l, void *arg) {
    auto *pr = static_cast<Probe *>(arg);
    *pr->window = crpc_loop_poll_window(l);
    *pr->thread = pthread_self();
    (*pr->ran)++;
  };
  // Posts 200 us apart (as a client in step with the loop would).
  int64_t widest = 0;
  for (int i = 0; i < 200; i++) {
    int before = ran.load();
    ASSERT_EQ(0, crpc_loop_post(loop.get(), note, &probe));
    ASSERT_TRUE(WaitUntil([&] { return ran.load() > before; }));
    widest = std::max(widest, window.load());
    usleep(200);
  }
  EXPECT_GT(widest, 0) << "never polled";
  clockid_t cpu;
  ASSERT_EQ(0, pthread_getcpuclockid(thread.load(), &cpu));
  struct timespec a, b;
  ASSERT_EQ(0, clock_gettime(cpu, &a));
  usleep(300 * 1000);
  ASSERT_EQ(0, clock_gettime(cpu, &b));
  int64_t used = (b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
  EXPECT_LT(used, 20 * kMs) << "the quiet loop kept polling";
  EXPECT_EQ(0, crpc_loop_stop_and_join(loop.get()));
}

}  // namespace
}  // namespace crpc_loop_test
