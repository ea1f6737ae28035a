/*
 * rpc/channel/backoff.h - reconnect backoff (internal; pure arithmetic).
 *
 * gRPC's connection-backoff.md: the first retry waits `initial`, each next
 * one 1.6 times longer up to `max`, and every delay is spread uniformly over
 * +-20% of its nominal value so that clients cut off together do not come
 * back together. No clock, no randomness source of its own: the caller
 * passes a uniform random number, so the sequence is testable.
 */
#ifndef CRPC_CHANNEL_BACKOFF_H
#define CRPC_CHANNEL_BACKOFF_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CRPC_BACKOFF_MULTIPLIER 1.6
#define CRPC_BACKOFF_JITTER 0.2

typedef struct crpc_backoff {
  int64_t initial_ns, max_ns; /* configuration, > 0 */
  int64_t nominal_ns;         /* the last delay before jitter; 0: none yet */
} crpc_backoff;

/* A backoff starting at initial_ns, capped at max_ns (max < initial is
 * raised to initial). */
void crpc_backoff_init(crpc_backoff *b, int64_t initial_ns, int64_t max_ns);

/* One more failed attempt: returns how long to wait before the next one,
 * nominal * (1 + JITTER * (2 * rand01 - 1)), rand01 uniform in [0, 1). */
int64_t crpc_backoff_next(crpc_backoff *b, double rand01);

/* A connection worked: the next failure waits `initial` again. */
void crpc_backoff_reset(crpc_backoff *b);

/* A uniform number in [0, 1) from *state (rpc/h2/jitter.h; seed it with
 * anything). Not thread-safe on one state. */
double crpc_backoff_rand(uint64_t *state);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_CHANNEL_BACKOFF_H */
