/*
 * backoff.c - exponential reconnect backoff with jitter.
 */
#include "rpc/channel/backoff.h"

#include "rpc/h2/jitter.h"

void crpc_backoff_init(crpc_backoff *b, int64_t initial_ns, int64_t max_ns) {
  b->initial_ns = initial_ns > 0 ? initial_ns : 1;
  b->max_ns = max_ns >= b->initial_ns ? max_ns : b->initial_ns;
  b->nominal_ns = 0;
}

int64_t crpc_backoff_next(crpc_backoff *b, double rand01) {
  if (b->nominal_ns == 0) {
    b->nominal_ns = b->initial_ns;
  } else {
    double grown = (double)b->nominal_ns * CRPC_BACKOFF_MULTIPLIER;
    b->nominal_ns = grown >= (double)b->max_ns ? b->max_ns : (int64_t)grown;
  }
  double factor = 1.0 + CRPC_BACKOFF_JITTER * (2.0 * rand01 - 1.0);
  int64_t delay = (int64_t)((double)b->nominal_ns * factor);
  return delay > 0 ? delay : 1;
}

void crpc_backoff_reset(crpc_backoff *b) { b->nominal_ns = 0; }

double crpc_backoff_rand(uint64_t *state) {
  uint64_t z = crpc_jitter_next(state);
  return (double)(z >> 11) * (1.0 / 9007199254740992.0); /* 53 bits */
}
