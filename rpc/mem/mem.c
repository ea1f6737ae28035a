/* rpc/mem/mem.c - size-class blocks with thread-local free lists and a
 * shared depot between them (mem.h). */
#include "rpc/mem/mem.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define CRPC_MEM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CRPC_MEM_ASAN 1
#endif
#endif

#ifdef CRPC_MEM_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* Six classes of block (header included): 64, 128, ..., 2048 bytes. */
#define MIN_SHIFT 6
#define NCLASS 6
#define LARGE 0xffu
#define MAGIC 0x6d656d63u  /* "memc": a live block */
#define CACHED 0x66726565u /* "free": in a cache (a second free aborts) */

/* In front of every block; 16 bytes keep the payload malloc-aligned. */
typedef struct header {
  uint32_t cls; /* 0 .. NCLASS-1, or LARGE */
  uint32_t magic;
  union {
    struct header *next; /* while cached */
    size_t size;         /* while live: the payload size asked for */
  } u;
} header;

_Static_assert(sizeof(header) == 16, "the payload must stay 16-aligned");

typedef struct cache {
  header *head[NCLASS];
  uint32_t count[NCLASS];
  int depth; /* crpc_mem_cache_begin nesting; 0: no cache */
} cache;

static _Thread_local cache tl;

/* Blocks on their way from the threads that free them to the threads that
 * allocate them (mem.h, "the depot"). Cached threads trade in batches of
 * DEPOT_BATCH, others one block at a time; `count` is read without the
 * lock only as a hint. */
typedef struct depot {
  pthread_mutex_t mu;
  header *head[NCLASS];
  _Atomic uint32_t count[NCLASS];
} depot;

static depot g_depot = {.mu = PTHREAD_MUTEX_INITIALIZER};

static size_t class_bytes(unsigned cls) { return (size_t)1 << (MIN_SHIFT + cls); }

static uint32_t class_cap(unsigned cls) {
  return (uint32_t)(CRPC_MEM_CACHE_BYTES / class_bytes(cls));
}

/* Blocks a cached thread moves to or from the depot at once: enough to
 * amortise the lock, few enough that the list walk stays short. */
#define DEPOT_BATCH 16u

static uint32_t depot_cap(unsigned cls) {
  return (uint32_t)(CRPC_MEM_DEPOT_BYTES / class_bytes(cls));
}

static bool depot_on(void) {
#ifdef CRPC_MEM_NO_CACHE
  return false;
#else
  return true;
#endif
}

/* Counts change under the lock only; the atomic is for lock-free hints. */
static void depot_count_add(unsigned cls, int32_t delta) {
  uint32_t c = atomic_load_explicit(&g_depot.count[cls], memory_order_relaxed);
  atomic_store_explicit(&g_depot.count[cls], c + (uint32_t)delta,
                        memory_order_relaxed);
}

/* Moves up to `max` blocks of cls from the depot onto *list; how many. */
static uint32_t depot_take(unsigned cls, header **list, uint32_t max) {
  if (!depot_on() ||
      atomic_load_explicit(&g_depot.count[cls], memory_order_relaxed) == 0) {
    return 0;
  }
  uint32_t n = 0;
  pthread_mutex_lock(&g_depot.mu);
  while (n < max && g_depot.head[cls] != NULL) {
    header *h = g_depot.head[cls];
    g_depot.head[cls] = h->u.next;
    h->u.next = *list;
    *list = h;
    n++;
  }
  depot_count_add(cls, -(int32_t)n);
  pthread_mutex_unlock(&g_depot.mu);
  return n;
}

/* Puts the n blocks of *list (cached, poisoned) into the depot while it
 * has room; returns those it had no room for, still linked. */
static header *depot_put(unsigned cls, header *list, uint32_t n) {
  if (!depot_on()) return list;
  pthread_mutex_lock(&g_depot.mu);
  uint32_t room = depot_cap(cls) -
                  atomic_load_explicit(&g_depot.count[cls], memory_order_relaxed);
  uint32_t put = 0;
  while (list != NULL && put < room && put < n) {
    header *next = list->u.next;
    list->u.next = g_depot.head[cls];
    g_depot.head[cls] = list;
    list = next;
    put++;
  }
  depot_count_add(cls, (int32_t)put);
  pthread_mutex_unlock(&g_depot.mu);
  return list;
}

/* Frees a list of cached blocks to malloc. */
static void release_list(unsigned cls, header *h) {
  while (h != NULL) {
    UNPOISON(h, class_bytes(cls));
    header *next = h->u.next;
    free(h);
    h = next;
  }
}

/* A freed block as the caches and the depot keep it. */
static void mark_cached(header *h, unsigned cls) {
  h->magic = CACHED;
  /* The payload only: LeakSanitizer does not follow pointers held in
   * poisoned memory, and the header's link is what keeps a cached block
   * reachable. */
  POISON(h + 1, class_bytes(cls) - sizeof(header));
}

/* The class whose blocks hold n payload bytes, or LARGE. */
static unsigned class_of(size_t n) {
  if (n > class_bytes(NCLASS - 1) - sizeof(header)) return LARGE;
  size_t total = n + sizeof(header);
  if (total <= class_bytes(0)) return 0;
  unsigned bits = 64u - (unsigned)__builtin_clzll((unsigned long long)(total - 1));
  return bits - MIN_SHIFT;
}

/* An empty class: a cached thread takes a batch from the depot, another
 * one block. */
static void refill(unsigned cls) {
  tl.count[cls] += depot_take(cls, &tl.head[cls], tl.depth > 0 ? DEPOT_BATCH : 1);
}

static void push_cached(header *h, unsigned cls) {
  h->u.next = tl.head[cls];
  tl.head[cls] = h;
  tl.count[cls]++;
}

/* The slow paths below are out of line so that crpc_mem_alloc and
 * crpc_mem_free stay leaf functions with tail calls, which save no
 * registers (callgrind: the inline version cost 0.7 % more instructions
 * per unary call). */

/* Frees on a thread without a cache: to the depot if it has room, else to
 * malloc. */
__attribute__((noinline)) static void free_uncached(header *h, unsigned cls) {
  release_list(cls, depot_put(cls, h, 1));
}

/* A full cache: a batch goes to the depot (what does not fit goes to
 * malloc), so a thread that only frees (a loop writing what another thread
 * queued) hands its blocks to the one that only allocates, instead of to
 * malloc, whose trimming then costs that thread a page fault per 4 KiB it
 * allocates again. Then caches h. */
__attribute__((noinline)) static void spill_and_push(header *h, unsigned cls) {
  header *batch = tl.head[cls], *last = batch;
  for (uint32_t i = 1; i < DEPOT_BATCH; i++) last = last->u.next;
  tl.head[cls] = last->u.next;
  last->u.next = NULL;
  tl.count[cls] -= DEPOT_BATCH;
  release_list(cls, depot_put(cls, batch, DEPOT_BATCH));
  push_cached(h, cls);
}

static void *hand_out(header *h, size_t n) {
  h->u.size = n;
  UNPOISON(h + 1, n);
  return h + 1;
}

/* An empty class (the depot first, then malloc), or a large block. */
__attribute__((noinline)) static void *alloc_slow(size_t n, unsigned cls) {
  if (cls != LARGE) {
    refill(cls);
    header *h = tl.head[cls];
    if (h != NULL) {
      tl.head[cls] = h->u.next;
      tl.count[cls]--;
      h->magic = MAGIC;
      return hand_out(h, n);
    }
  } else if (n > SIZE_MAX - sizeof(header)) {
    return NULL;
  }
  /* A class block is malloc'd at its full class size so that whichever
   * thread frees it can cache it. */
  header *h = malloc(cls == LARGE ? sizeof(header) + n : class_bytes(cls));
  if (h == NULL) return NULL;
  h->cls = cls;
  h->magic = MAGIC;
  return hand_out(h, n);
}

void *crpc_mem_alloc(size_t n) {
  unsigned cls = class_of(n);
  header *h;
  if (cls == LARGE || (h = tl.head[cls]) == NULL) return alloc_slow(n, cls);
  tl.head[cls] = h->u.next;
  tl.count[cls]--;
  h->magic = MAGIC;
  return hand_out(h, n);
}

void *crpc_mem_calloc(size_t count, size_t size) {
  if (size != 0 && count > SIZE_MAX / size) return NULL;
  void *p = crpc_mem_alloc(count * size);
  if (p != NULL) memset(p, 0, count * size);
  return p;
}

static header *header_of(void *p) {
  header *h = (header *)p - 1;
  if (h->magic != MAGIC) {
    fprintf(stderr, "crpc_mem: %p is %s\n", p,
            h->magic == CACHED ? "already free" : "not a crpc_mem block");
    abort();
  }
  return h;
}

void *crpc_mem_realloc(void *p, size_t n) {
  if (p == NULL) return crpc_mem_alloc(n);
  header *h = header_of(p);
  size_t old = h->u.size;
  if (h->cls != LARGE && class_of(n) == h->cls) {
    if (n > old) UNPOISON((char *)p + old, n - old);
    if (n < old) POISON((char *)p + n, old - n);
    h->u.size = n;
    return p;
  }
  void *q = crpc_mem_alloc(n);
  if (q == NULL) return NULL;
  memcpy(q, p, old < n ? old : n);
  crpc_mem_free(p);
  return q;
}

void crpc_mem_free(void *p) {
  if (p == NULL) return;
  header *h = header_of(p);
  unsigned cls = h->cls;
  if (cls == LARGE) {
    h->magic = 0; /* a second free of this block aborts in header_of */
    free(h);
    return;
  }
  mark_cached(h, cls);
  if (tl.depth == 0) {
    h->u.next = NULL;
    free_uncached(h, cls);
    return;
  }
  if (tl.count[cls] >= class_cap(cls)) {
    spill_and_push(h, cls);
    return;
  }
  push_cached(h, cls);
}

void crpc_mem_cache_begin(void) {
#ifndef CRPC_MEM_NO_CACHE
  tl.depth++;
#endif
}

void crpc_mem_cache_end(void) {
  if (tl.depth == 0 || --tl.depth > 0) return;
  for (unsigned cls = 0; cls < NCLASS; cls++) {
    release_list(cls, tl.head[cls]);
    tl.head[cls] = NULL;
    tl.count[cls] = 0;
  }
}

size_t crpc_mem_cached_blocks(void) {
  size_t n = 0;
  for (unsigned cls = 0; cls < NCLASS; cls++) n += tl.count[cls];
  return n;
}

size_t crpc_mem_depot_blocks(size_t n) {
  unsigned cls = class_of(n);
  return cls == LARGE ? 0 : g_depot.count[cls];
}

void crpc_mem_depot_release(void) {
  for (unsigned cls = 0; cls < NCLASS; cls++) {
    pthread_mutex_lock(&g_depot.mu);
    header *h = g_depot.head[cls];
    g_depot.head[cls] = NULL;
    g_depot.count[cls] = 0;
    pthread_mutex_unlock(&g_depot.mu);
    release_list(cls, h);
  }
}
