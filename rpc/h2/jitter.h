/*
 * rpc/h2/jitter.h - a tiny random source for spreading timers (internal).
 *
 * Reconnect backoff (the channel) and connection age (the server) both add
 * jitter so that peers started or cut off together do not act together.
 * That needs numbers that differ between processes and connections, not
 * cryptographic ones: splitmix64 over a caller-held state, no locks.
 */
#ifndef CRPC_H2_JITTER_H
#define CRPC_H2_JITTER_H

#include <stdint.h>

/* The next 64 random bits from *state (seed it with anything: a clock, an
 * address). Not thread-safe on one state. */
static inline uint64_t crpc_jitter_next(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

#endif /* CRPC_H2_JITTER_H */
