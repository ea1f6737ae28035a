/*
 * rpc/ctx/ctx_owned_deadline.h - a ctx whose deadline its creator fires
 * (internal; for the server, whose loop timers fire call deadlines).
 *
 * crpc_ctx_with_deadline puts the ctx in the process-wide deadline heap,
 * fired by one timer thread: a cross-thread hop, and a thread that competes
 * for the CPU with the loops under load. A server call already lives on a
 * loop with timers of its own, so its ctx only carries the deadline (for
 * crpc_ctx_deadline, and for children: theirs is min(this, own)) while the
 * loop cancels it with DEADLINE_EXCEEDED, origin deadline, when it passes.
 */
#ifndef CRPC_CTX_CTX_OWNED_DEADLINE_H
#define CRPC_CTX_CTX_OWNED_DEADLINE_H

#include <stdint.h>

#include "crpc/ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

/* As crpc_ctx_with_deadline (CRPC_NO_DEADLINE: none), but the ctx is not
 * put in the shared timer heap: the caller must cancel it with
 * crpc_ctx_cancel_cause(ctx, CRPC_DEADLINE_EXCEEDED, CRPC_ORIGIN_DEADLINE,
 * ...) once the deadline passes. A deadline already past ends it at once,
 * as crpc_ctx_with_deadline does. Same ownership and threads. */
crpc_ctx *ctx_with_owned_deadline_at(const crpc_ctx *parent,
                                     int64_t deadline_ns, const char *file,
                                     int line);
#define ctx_with_owned_deadline(parent, deadline_ns) \
  ctx_with_owned_deadline_at((parent), (deadline_ns), __FILE__, __LINE__)

#ifdef __cplusplus
}
#endif

#endif /* CRPC_CTX_CTX_OWNED_DEADLINE_H */
