/* rpc/mem/mem.c - size-class blocks with thread-local free lists (mem.h). */
#include "rpc/mem/mem.h"

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

static size_t class_bytes(unsigned cls) { return (size_t)1 << (MIN_SHIFT + cls); }

static uint32_t class_cap(unsigned cls) {
  return (uint32_t)(CRPC_MEM_CACHE_BYTES / class_bytes(cls));
}

/* The class whose blocks hold n payload bytes, or LARGE. */
static unsigned class_of(size_t n) {
  if (n > class_bytes(NCLASS - 1) - sizeof(header)) return LARGE;
  size_t total = n + sizeof(header);
  if (total <= class_bytes(0)) return 0;
  unsigned bits = 64u - (unsigned)__builtin_clzll((unsigned long long)(total - 1));
  return bits - MIN_SHIFT;
}

void *crpc_mem_alloc(size_t n) {
  unsigned cls = class_of(n);
  header *h;
  if (cls != LARGE && (h = tl.head[cls]) != NULL) {
    tl.head[cls] = h->u.next;
    tl.count[cls]--;
    h->magic = MAGIC;
  } else {
    if (cls == LARGE && n > SIZE_MAX - sizeof(header)) return NULL;
    /* A class block is malloc'd at its full class size so that whichever
     * thread frees it can cache it. */
    h = malloc(cls == LARGE ? sizeof(header) + n : class_bytes(cls));
    if (h == NULL) return NULL;
    h->cls = cls;
    h->magic = MAGIC;
  }
  h->u.size = n;
  UNPOISON(h + 1, n);
  return h + 1;
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
  if (cls == LARGE || tl.depth == 0 || tl.count[cls] >= class_cap(cls)) {
    h->magic = 0; /* a second free of this block aborts in header_of */
    free(h);
    return;
  }
  h->magic = CACHED;
  h->u.next = tl.head[cls];
  tl.head[cls] = h;
  tl.count[cls]++;
  /* The payload only: LeakSanitizer does not follow pointers held in
   * poisoned memory, and the header's link is what keeps a cached block
   * reachable while its thread lives. */
  POISON(h + 1, class_bytes(cls) - sizeof(header));
}

void crpc_mem_cache_begin(void) {
#ifndef CRPC_MEM_NO_CACHE
  tl.depth++;
#endif
}

void crpc_mem_cache_end(void) {
  if (tl.depth == 0 || --tl.depth > 0) return;
  for (unsigned cls = 0; cls < NCLASS; cls++) {
    header *h = tl.head[cls];
    while (h != NULL) {
      UNPOISON(h, class_bytes(cls));
      header *next = h->u.next;
      free(h);
      h = next;
    }
    tl.head[cls] = NULL;
    tl.count[cls] = 0;
  }
}

size_t crpc_mem_cached_blocks(void) {
  size_t n = 0;
  for (unsigned cls = 0; cls < NCLASS; cls++) n += tl.count[cls];
  return n;
}
