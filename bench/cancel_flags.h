/*
 * bench/cancel_flags.h - cancel_bench's command line: the flags (as Go's
 * flag package takes them, like the anchors': -name value, -name=value,
 * and the same with two dashes) and what they set.
 */
#ifndef CRPC_BENCH_CANCEL_FLAGS_H
#define CRPC_BENCH_CANCEL_FLAGS_H

#include <stdbool.h>

#include "crpc/channel.h"

/* What the scenarios share: the channel, the call counter, the counts. */
typedef struct bench {
  crpc_channel *ch;
  long iter; /* id of the current call */
  int iters, warmup, reads, reads_long, deadline_ms;
  int late_us; /* -late-us: report deadline iterations this late; 0: none */
} bench;

typedef struct options {
  bench b;
  bool async;
  const char *scenarios;
  int poll_us;        /* server poll_ns, in us; 0: off (the default) */
  int client_poll_us; /* channel poll_ns, in us; 0: off (the default) */
  int port;           /* the server's port; 0: any free one */
  int load_wait;      /* load calls to see answered before measuring */
  int client_cpu;     /* -client-cpu: the client side's CPU; -1: any */
} options;

/* Fills *o (defaults already in it) from argv; prints the usage and exits
 * with status 2 on an unknown flag or a bad value. */
void cancel_flags_parse(int argc, char **argv, options *o);

/* Which of the (up to) four scenarios o->scenarios (a comma list) asks for,
 * in the order idle, busy, busy-readsN (named long_name), deadline; exits
 * with status 2 on an unknown name. */
void cancel_flags_scenarios(const options *o, const char *long_name,
                            bool want[4]);

#endif /* CRPC_BENCH_CANCEL_FLAGS_H */
