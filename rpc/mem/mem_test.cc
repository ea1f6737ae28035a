// rpc/mem/mem_test.cc - the per-call allocator: reuse on caching threads,
// none elsewhere, bounds, sizes, blocks crossing threads.
#include "rpc/mem/mem.h"

#include <gtest/gtest.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <set>
#include <cstring>
#include <thread>
#include <vector>

namespace {

// Runs fn on a fresh thread, so each test starts with an empty cache and
// leaves none behind.
template <typename Fn>
void OnThread(Fn fn) {
  std::thread t(fn);
  t.join();
}

// (What it frees goes to the process's depot, not to the thread.)
TEST(Mem, ThreadWithoutCacheKeepsNothing) {
  OnThread([] {
    void* p = crpc_mem_alloc(100);
    ASSERT_NE(p, nullptr);
    crpc_mem_free(p);
    EXPECT_EQ(crpc_mem_cached_blocks(), 0u);
  });
}

TEST(Mem, CachingThreadReusesAFreedBlockOfTheSameClass) {
  OnThread([] {
    crpc_mem_cache_begin();
    void* p = crpc_mem_alloc(100);
    crpc_mem_free(p);
    EXPECT_EQ(crpc_mem_cached_blocks(), 1u);
    // 120 bytes fall in the same class (128-byte blocks, 16 of header).
    void* q = crpc_mem_alloc(112);
    EXPECT_EQ(q, p);
    EXPECT_EQ(crpc_mem_cached_blocks(), 0u);
    // Another class does not take it.
    crpc_mem_free(q);
    void* r = crpc_mem_alloc(500);
    EXPECT_NE(r, p);
    crpc_mem_free(r);
    EXPECT_EQ(crpc_mem_cached_blocks(), 2u);
    crpc_mem_cache_end();
    EXPECT_EQ(crpc_mem_cached_blocks(), 0u);
  });
}

TEST(Mem, BlocksAreAlignedAndHoldWhatWasAsked) {
  OnThread([] {
    crpc_mem_cache_begin();
    for (size_t n : {0u, 1u, 47u, 48u, 49u, 1000u, 2032u, 2033u, 100000u}) {
      auto* p = static_cast<uint8_t*>(crpc_mem_alloc(n));
      ASSERT_NE(p, nullptr) << n;
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 16, 0u) << n;
      memset(p, 0xab, n);  // ASan reports any byte short of n
      crpc_mem_free(p);
    }
    crpc_mem_cache_end();
  });
}

TEST(Mem, LargeBlocksAreNeverCached) {
  OnThread([] {
    crpc_mem_cache_begin();
    crpc_mem_free(crpc_mem_alloc(2033));
    crpc_mem_free(crpc_mem_alloc(1 << 20));
    EXPECT_EQ(crpc_mem_cached_blocks(), 0u);
    crpc_mem_cache_end();
  });
}

// A full cache passes a batch of 16 blocks (half, for 2 KiB blocks) to the
// depot: it holds between half its bound and its bound, and nothing freed
// is lost while the depot has room.
TEST(Mem, CacheStopsAtItsBoundPerClassAndPassesTheRestToTheDepot) {
  OnThread([] {
    crpc_mem_cache_begin();
    // 2048-byte blocks: CRPC_MEM_CACHE_BYTES / 2048 of them are kept.
    const size_t cap = CRPC_MEM_CACHE_BYTES / 2048;
    const size_t depot_before = crpc_mem_depot_blocks(2000);
    ASSERT_LE(depot_before + cap, CRPC_MEM_DEPOT_BYTES / 2048) << "depot room";
    std::vector<void*> blocks;
    for (size_t i = 0; i < cap + 10; i++) blocks.push_back(crpc_mem_alloc(2000));
    for (void* p : blocks) crpc_mem_free(p);
    EXPECT_LE(crpc_mem_cached_blocks(), cap);
    EXPECT_GE(crpc_mem_cached_blocks(), cap / 2);
    EXPECT_EQ(crpc_mem_cached_blocks() + crpc_mem_depot_blocks(2000) - depot_before, cap + 10);
    crpc_mem_cache_end();
  });
}

// The depot holds at most CRPC_MEM_DEPOT_BYTES per class; the rest goes to
// malloc.
TEST(Mem, DepotIsBoundedPerClass) {
  const size_t bound = CRPC_MEM_DEPOT_BYTES / 1024;  // 1024-byte blocks
  OnThread([&] {
    std::vector<void*> blocks;
    for (size_t i = 0; i < 2 * bound; i++) blocks.push_back(crpc_mem_alloc(1000));
    for (void* p : blocks) crpc_mem_free(p);  // no cache here: all to the depot
    EXPECT_EQ(crpc_mem_cached_blocks(), 0u);
    EXPECT_EQ(crpc_mem_depot_blocks(1000), bound);
  });
  // Another class is not affected; sizes over 2048 bytes never get there.
  EXPECT_LT(crpc_mem_depot_blocks(100), CRPC_MEM_DEPOT_BYTES / 128);
  EXPECT_EQ(crpc_mem_depot_blocks(5000), 0u);
}

// What a loop thread frees once its cache is full reaches a sending thread
// without a cache through the depot, instead of going back to malloc (whose
// trimming would make the sender fault the memory in again).
TEST(Mem, DepotHandsWhatALoopFreesToASenderWithoutCache) {
  const size_t cap = CRPC_MEM_CACHE_BYTES / 2048;  // 1100 bytes: 2 KiB class
  std::vector<void*> sent;
  OnThread([&] {  // the sender
    for (size_t i = 0; i < 2 * cap; i++) sent.push_back(crpc_mem_alloc(1100));
  });
  const size_t before = crpc_mem_depot_blocks(1100);
  ASSERT_LE(before + cap, CRPC_MEM_DEPOT_BYTES / 2048) << "depot room";
  OnThread([&] {  // the loop: caches what it frees
    crpc_mem_cache_begin();
    for (void* p : sent) crpc_mem_free(p);
    EXPECT_LE(crpc_mem_cached_blocks(), cap);
    crpc_mem_cache_end();
  });
  const size_t passed = crpc_mem_depot_blocks(1100) - before;
  EXPECT_GE(passed, cap / 2);
  std::set<void*> freed(sent.begin(), sent.end());
  OnThread([&] {  // the sender again: served from the depot first
    void* p = crpc_mem_alloc(1100);
    EXPECT_EQ(crpc_mem_depot_blocks(1100), before + passed - 1);
    EXPECT_EQ(freed.count(p), 1u) << "not one of the loop's blocks (LIFO)";
    crpc_mem_free(p);  // back to the depot
    EXPECT_EQ(crpc_mem_depot_blocks(1100), before + passed);
  });
}

TEST(Mem, CallocZeroesEvenAReusedBlock) {
  OnThread([] {
    crpc_mem_cache_begin();
    auto* p = static_cast<uint8_t*>(crpc_mem_alloc(200));
    memset(p, 0xff, 200);
    crpc_mem_free(p);
    auto* q = static_cast<uint8_t*>(crpc_mem_calloc(20, 10));
    ASSERT_EQ(q, p);
    for (int i = 0; i < 200; i++) ASSERT_EQ(q[i], 0) << i;
    crpc_mem_free(q);
    EXPECT_EQ(crpc_mem_calloc(SIZE_MAX / 2, 3), nullptr);  // overflow
    crpc_mem_cache_end();
  });
}

TEST(Mem, ReallocKeepsContentsAcrossClasses) {
  OnThread([] {
    crpc_mem_cache_begin();
    auto* p = static_cast<uint8_t*>(crpc_mem_realloc(nullptr, 10));
    for (int i = 0; i < 10; i++) p[i] = static_cast<uint8_t>(i);
    // Within its class: the same block.
    EXPECT_EQ(crpc_mem_realloc(p, 40), p);
    // Up through every class and past the largest, then back down.
    for (size_t n : {100u, 3000u, 50000u, 20u}) {
      p = static_cast<uint8_t*>(crpc_mem_realloc(p, n));
      ASSERT_NE(p, nullptr);
      for (int i = 0; i < 10; i++) ASSERT_EQ(p[i], i) << n;
    }
    crpc_mem_free(p);
    crpc_mem_cache_end();
  });
}

TEST(Mem, NestedBeginsKeepTheCacheUntilTheLastEnd) {
  OnThread([] {
    crpc_mem_cache_begin();
    crpc_mem_cache_begin();
    crpc_mem_free(crpc_mem_alloc(64));
    crpc_mem_cache_end();
    EXPECT_EQ(crpc_mem_cached_blocks(), 1u);
    crpc_mem_cache_end();
    EXPECT_EQ(crpc_mem_cached_blocks(), 0u);
    crpc_mem_cache_end();  // unmatched: ignored
  });
}

// A block allocated by one caching thread and freed by another goes to the
// freeing thread's cache, up to its bound; the rest to the depot or malloc.
TEST(Mem, BlocksMoveBetweenThreads) {
  std::vector<void*> made(1000);
  OnThread([&] {
    crpc_mem_cache_begin();
    for (auto& p : made) {
      p = crpc_mem_alloc(300);
      memset(p, 1, 300);
    }
    crpc_mem_cache_end();
  });
  OnThread([&] {
    crpc_mem_cache_begin();
    for (void* p : made) crpc_mem_free(p);
    EXPECT_LE(crpc_mem_cached_blocks(), CRPC_MEM_CACHE_BYTES / 512);
    EXPECT_GE(crpc_mem_cached_blocks(), CRPC_MEM_CACHE_BYTES / 512 / 2);
    void* again = crpc_mem_alloc(300);
    EXPECT_NE(again, nullptr);
    crpc_mem_free(again);
    crpc_mem_cache_end();
  });
}

// Blocks cached by a thread that is still running are reachable, not
// leaks: LeakSanitizer must find them through the free list's links (it
// does not look into poisoned memory, so only the payload is poisoned).
TEST(Mem, CachedBlocksOfALiveThreadAreNotLeaks) {
#if !defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "LeakSanitizer only";
#else
  std::mutex mu;
  std::condition_variable cv;
  bool cached = false, done = false;
  std::thread t([&] {
    crpc_mem_cache_begin();
    for (int i = 0; i < 50; i++) crpc_mem_free(crpc_mem_alloc(100));
    {
      // Freed in the scope: nothing but the free list points at them.
      std::vector<void*> many;
      for (int i = 0; i < 50; i++) many.push_back(crpc_mem_alloc(700));
      for (void* p : many) crpc_mem_free(p);
    }
    std::unique_lock<std::mutex> l(mu);
    cached = true;
    cv.notify_all();
    cv.wait(l, [&] { return done; });
    l.unlock();
    crpc_mem_cache_end();
  });
  {
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return cached; });
  }
  EXPECT_EQ(__lsan_do_recoverable_leak_check(), 0);
  {
    std::lock_guard<std::mutex> l(mu);
    done = true;
  }
  cv.notify_all();
  t.join();
#endif
}

TEST(Mem, FreeingABlockTwiceAborts) {
#if defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "death tests fork; not under TSan";
#else
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(OnThread([] {
                 crpc_mem_cache_begin();
                 void* p = crpc_mem_alloc(64);
                 crpc_mem_free(p);
                 crpc_mem_free(p);
               }),
               "already free|use-after-poison");
#endif
}

}  // namespace
