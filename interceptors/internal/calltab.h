/*
 * interceptors/internal/calltab.h - what a client interceptor remembers
 * of a call between its start hook and its finish hook (the start time,
 * the ctx it was started with, the target), for crpc_logging_client and
 * crpc_metrics_client. Not installed; not part of the API.
 *
 * A client start hook does not get the crpc_call it creates, and the
 * finish hook gets only the call, so records are kept here, keyed by
 * (owner, call): icpt_calltab_put right after the start succeeded,
 * icpt_calltab_take in finish. A call freed without crpc_call_finish
 * leaves its record behind; the next call allocated at the same address
 * replaces it, and each shard keeps at most CALLTAB_SHARD_MAX records
 * (the oldest goes first), so abandoned records cannot pile up.
 *
 * Threads: any, concurrently (16 shards, a mutex each, held for a few
 * pointer operations).
 */
#ifndef CRPC_INTERCEPTORS_INTERNAL_CALLTAB_H
#define CRPC_INTERCEPTORS_INTERNAL_CALLTAB_H

#include <stdbool.h>
#include <stdint.h>

#include "crpc/interceptor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ICPT_CALLTAB_TARGET_MAX 128

typedef struct icpt_call_rec {
  int64_t start_ns;
  /* The ctx the start hook got: an ancestor of the call's own ctx, so
   * alive (memory) until the call is freed; read in finish only. */
  const crpc_ctx *ctx;
  char target[ICPT_CALLTAB_TARGET_MAX]; /* cut if longer */
} icpt_call_rec;

/* Remembers rec for (owner, call), replacing a stale one. Out of memory:
 * nothing is remembered (finish then finds nothing). */
void icpt_calltab_put(const void *owner, const crpc_call *call,
                      const icpt_call_rec *rec);

/* Moves the record of (owner, call) into *out and forgets it; false if
 * there is none. */
bool icpt_calltab_take(const void *owner, const crpc_call *call,
                       icpt_call_rec *out);

/* True, with the cause in *out, if the end of `ctx` (the ctx a call was
 * started with) is what ended the call with `code`: ctx done with that
 * code; or, for DEADLINE_EXCEEDED, ctx's deadline passed although its
 * timer has not fired yet (the call's own ctx, which has the same
 * deadline, or the server's timer from grpc-timeout ended it first). */
static inline bool icpt_caller_cause(const crpc_ctx *ctx, crpc_code code,
                                     crpc_cause *out) {
  if (code == CRPC_OK) return false;
  const crpc_cause *c = crpc_ctx_cause(ctx);
  if (c != NULL) {
    if (c->code != code) return false;
    *out = *c;
    return true;
  }
  if (code != CRPC_DEADLINE_EXCEEDED || crpc_ctx_remaining(ctx) != 0) {
    return false;
  }
  crpc_cause d = {.code = CRPC_DEADLINE_EXCEEDED,
                  .origin = CRPC_ORIGIN_DEADLINE,
                  .message = "deadline exceeded"};
  *out = d;
  return true;
}

/* Records held now, over all shards (for tests). */
size_t icpt_calltab_size(void);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_INTERCEPTORS_INTERNAL_CALLTAB_H */
