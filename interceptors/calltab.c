/*
 * calltab.c - per-call records of the client interceptors (see
 * internal/calltab.h): 16 shards, each a hash of chains plus a list in
 * insertion order for evicting the oldest.
 */
#include "interceptors/internal/calltab.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SHARDS 16
#define BUCKETS 256
#define CALLTAB_SHARD_MAX 4096

typedef struct node {
  const void *owner;
  const crpc_call *call;
  icpt_call_rec rec;
  struct node *hnext;         /* bucket chain */
  struct node *older, *newer; /* insertion order */
} node;

typedef struct shard {
  pthread_mutex_t mu;
  node *buckets[BUCKETS];
  node *oldest, *newest;
  size_t count;
} shard;

static shard g_shards[SHARDS];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void init_shards(void) {
  for (int i = 0; i < SHARDS; i++) pthread_mutex_init(&g_shards[i].mu, NULL);
}

static uint64_t hash(const void *owner, const crpc_call *call) {
  uint64_t x = (uint64_t)(uintptr_t)call ^ ((uint64_t)(uintptr_t)owner << 7);
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return x;
}

static shard *shard_of(uint64_t h) { return &g_shards[h % SHARDS]; }

/* Caller holds s->mu. Unlinks n from its bucket and the order list. */
static void unlink_node(shard *s, node *n, size_t bucket) {
  node **pp = &s->buckets[bucket];
  while (*pp != n) pp = &(*pp)->hnext;
  *pp = n->hnext;
  if (n->older != NULL) n->older->newer = n->newer;
  if (n->newer != NULL) n->newer->older = n->older;
  if (s->oldest == n) s->oldest = n->newer;
  if (s->newest == n) s->newest = n->older;
  s->count--;
}

static size_t bucket_of(uint64_t h) { return (size_t)((h / SHARDS) % BUCKETS); }

/* Caller holds s->mu. */
static node *find(shard *s, size_t b, const void *owner,
                  const crpc_call *call) {
  for (node *n = s->buckets[b]; n != NULL; n = n->hnext) {
    if (n->owner == owner && n->call == call) return n;
  }
  return NULL;
}

void icpt_calltab_put(const void *owner, const crpc_call *call,
                      const icpt_call_rec *rec) {
  pthread_once(&g_once, init_shards);
  node *fresh = malloc(sizeof(*fresh));
  if (fresh != NULL) {
    fresh->owner = owner;
    fresh->call = call;
    fresh->rec = *rec;
  }
  uint64_t h = hash(owner, call);
  shard *s = shard_of(h);
  size_t b = bucket_of(h);
  node *gone[2] = {NULL, NULL};
  pthread_mutex_lock(&s->mu);
  node *stale = find(s, b, owner, call); /* a freed call's address reused */
  if (stale != NULL) {
    unlink_node(s, stale, b);
    gone[0] = stale;
  }
  if (fresh == NULL) {
    /* Out of memory: at least no stale record may answer for this call
     * (its ctx is long gone). */
    pthread_mutex_unlock(&s->mu);
    free(gone[0]);
    return;
  }
  if (s->count >= CALLTAB_SHARD_MAX) {
    node *old = s->oldest;
    unlink_node(s, old, bucket_of(hash(old->owner, old->call)));
    gone[1] = old;
  }
  fresh->hnext = s->buckets[b];
  s->buckets[b] = fresh;
  fresh->older = s->newest;
  fresh->newer = NULL;
  if (s->newest != NULL) s->newest->newer = fresh;
  s->newest = fresh;
  if (s->oldest == NULL) s->oldest = fresh;
  s->count++;
  pthread_mutex_unlock(&s->mu);
  free(gone[0]);
  free(gone[1]);
}

bool icpt_calltab_take(const void *owner, const crpc_call *call,
                       icpt_call_rec *out) {
  pthread_once(&g_once, init_shards);
  uint64_t h = hash(owner, call);
  shard *s = shard_of(h);
  size_t b = bucket_of(h);
  pthread_mutex_lock(&s->mu);
  node *n = find(s, b, owner, call);
  if (n != NULL) unlink_node(s, n, b);
  pthread_mutex_unlock(&s->mu);
  if (n == NULL) return false;
  *out = n->rec;
  free(n);
  return true;
}

size_t icpt_calltab_size(void) {
  pthread_once(&g_once, init_shards);
  size_t total = 0;
  for (int i = 0; i < SHARDS; i++) {
    pthread_mutex_lock(&g_shards[i].mu);
    total += g_shards[i].count;
    pthread_mutex_unlock(&g_shards[i].mu);
  }
  return total;
}
