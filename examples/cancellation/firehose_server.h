/*
 * examples/cancellation/firehose_server.h - the demo's server handler, and
 * what it records so the demo can tell whether cancellation worked.
 *
 * The handler streams flat out. Around that it keeps evidence, all on one
 * CLOCK_MONOTONIC clock (crpc_now_ns):
 *   - when its call ctx ended, and the cause (see done_stamp.h);
 *   - when its own send first failed, and with which code;
 *   - start and end times of its recent successful sends, so the demo can
 *     count sends that succeeded after the client gave up.
 */
#ifndef EXAMPLES_CANCELLATION_FIREHOSE_SERVER_H
#define EXAMPLES_CANCELLATION_FIREHOSE_SERVER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "crpc/ctx.h"
#include "crpc/server.h"
#include "examples/cancellation/done_stamp.h"

/* Successful sends remembered, newest last. Far more than can be in flight
 * (the server buffers at most 64 KiB per call plus HTTP/2 windows). */
#define FIREHOSE_TIMELINE 8192

/* How long the handler waits for its ctx to end after a send failed with
 * the ctx still live (which crpc should never do; the demo reports it). */
#define FIREHOSE_GRACE (1 * CRPC_SECOND)

typedef struct send_time {
  int64_t start_ns, end_ns;
} send_time;

/* What one call's handler saw. */
typedef struct firehose_report {
  bool finished;              /* the handler has filled everything below */
  int64_t ctx_done_ns;        /* when its ctx ended; 0 if it did not */
  crpc_cause cause;           /* why (valid if ctx_done_ns != 0) */
  int64_t send_failed_ns;     /* when a send first returned an error */
  crpc_code send_code;        /* what it returned */
  bool live_when_send_failed; /* ... while the ctx was still live */
  uint64_t sends_ok;          /* successful sends in total */
  uint64_t ok_while_done;     /* sends that began with the ctx already done
                                 and still returned OK (must be 0) */
  send_time timeline[FIREHOSE_TIMELINE]; /* ring of the last OK sends */
} firehose_report;

/* Shared by the handler (server thread) and the demo (client thread). */
typedef struct firehose {
  pthread_mutex_t mu;
  pthread_cond_t cond; /* signalled when report.finished is set */
  firehose_report report;
  done_stamp stamp; /* the handler's; lives as long as the server */
} firehose;

/* Registers the Firehose handler on server with `f` as its state. One call
 * at a time (the demo runs its rounds one after another). */
crpc_code firehose_register(crpc_server *server, firehose *f);

/* Counts successful sends that ended after `since_ns` (when the client's
 * ctx ended) and began before the server's ctx ended: legitimately in
 * flight. Sets *complete to false if the ring lost some of them. Call once
 * report.finished is set. */
uint64_t firehose_ok_in_flight(const firehose *f, int64_t since_ns,
                               bool *complete);

/* Counts successful sends that began at or after the server's ctx ended.
 * crpc promises 0. Call once report.finished is set. */
uint64_t firehose_ok_after_done(const firehose *f);

#endif /* EXAMPLES_CANCELLATION_FIREHOSE_SERVER_H */
