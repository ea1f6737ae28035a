/*
 * fuzz/client_calls.h - the calls the client fuzz target makes, shared
 * with record_peer's client mode, so the server bytes recorded for a
 * selector answer exactly the calls the target makes for it.
 *
 * The selector (the first byte of a client fuzz input):
 *   bits 0-1  shape of the first call (HTTP/2 stream 1), fuzz_call_shape
 *   bits 2-3  shape of the second call (stream 3)
 *   bit  4    the second call is made
 *   bit  5    requests are gzip-compressed (the channel's
 *             default_compression), so the request headers say so
 *   bit  6    the fuzz target only: how the input ends (client_fuzz.c
 *             frees its channel after the input instead of keeping it);
 *             the calls and record_peer ignore it
 * Other bits are ignored.
 */
#ifndef CRPC_FUZZ_CLIENT_CALLS_H
#define CRPC_FUZZ_CLIENT_CALLS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crpc/channel_async.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum fuzz_call_shape {
  /* crpc_unary_call_async: one request, exactly one response expected. */
  FUZZ_CALL_UNARY = 0,
  /* One request, half-close, then responses until the status. */
  FUZZ_CALL_SERVER_STREAM = 1,
  /* Two requests, half-close, then the response and status. */
  FUZZ_CALL_CLIENT_STREAM = 2,
  /* One request with the send side open; half-closes when the first
   * response arrives (a ping-pong), so a real server ends the call. */
  FUZZ_CALL_BIDI = 3
} fuzz_call_shape;

#define FUZZ_CALLS_MAX 2
#define FUZZ_SEL_SECOND_CALL 0x10u
#define FUZZ_SEL_GZIP 0x20u
#define FUZZ_SEL_FREE_CHANNEL 0x40u

/* A call's method and request message; record_peer sets them for the
 * server it records, the fuzz target uses crpc.test.Test's. */
typedef struct fuzz_call_spec {
  const char *method;
  const void *request;
  size_t request_len;
} fuzz_call_spec;

typedef struct fuzz_calls fuzz_calls;

/* One call's state, handed to its callbacks. */
typedef struct fuzz_call {
  fuzz_calls *fc;
  fuzz_call_shape shape;
  crpc_call *call; /* NULL for unary (crpc frees those itself) */
  bool half_closed;
  crpc_code code; /* the final status, once done */
  size_t messages;
} fuzz_call;

struct fuzz_calls {
  pthread_mutex_t mu;
  pthread_cond_t cond;
  int n;       /* calls started */
  int pending; /* started and not yet done */
  int done_fd; /* -1, or an eventfd that gets 1 when pending reaches 0 */
  fuzz_call calls[FUZZ_CALLS_MAX];
};

/* The channel compression the selector asks for ("gzip" or NULL). */
const char *fuzz_calls_compression(uint8_t selector);

/* Starts the calls the selector asks for on ch, all under ctx (which must
 * stay valid until fuzz_calls_destroy). specs (NULL: crpc.test.Test's
 * method and a small request for each shape) is indexed by call. Returns
 * the number started; a call that could not start counts as done with the
 * code it got. */
int fuzz_calls_start(fuzz_calls *fc, crpc_channel *ch, const crpc_ctx *ctx,
                     uint8_t selector, const fuzz_call_spec *specs);

/* fuzz_calls_start, and done_fd (an eventfd, or -1) gets 1 added once
 * every call has ended, so a caller can poll() for that together with
 * other fds. */
int fuzz_calls_start_notify(fuzz_calls *fc, crpc_channel *ch,
                            const crpc_ctx *ctx, uint8_t selector,
                            const fuzz_call_spec *specs, int done_fd);

/* Waits until every started call has ended (on_done), at most timeout_ms.
 * True if they all did. */
bool fuzz_calls_wait(fuzz_calls *fc, int timeout_ms);

/* Frees the call handles and the sync objects. Only after
 * fuzz_calls_wait returned true (no callback may still come). */
void fuzz_calls_destroy(fuzz_calls *fc);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_FUZZ_CLIENT_CALLS_H */
