/*
 * crpc/channel.h - calling gRPC servers over HTTP/2.
 *
 * A channel is a connection (made lazily, remade after a drop) to one
 * target, shared by every call on it: calls are HTTP/2 streams multiplexed
 * on that connection. A channel owns one I/O loop thread; calls are made
 * from any user threads with blocking, ctx-aware functions.
 *
 * Every call takes a ctx (required: NULL aborts with a message). The ctx is
 * the call's time limit and its cancel switch:
 *   - ctx cancelled -> RST_STREAM(CANCEL) goes on the wire and every pending
 *     or later function on the call returns at once with the cause's code
 *     (CANCELLED for a cancel, DEADLINE_EXCEEDED for a deadline, even if the
 *     server's reset raced it);
 *   - ctx deadline -> sent as grpc-timeout, so the server's ctx expires too.
 * A reset or failed stream never disturbs the other calls on the channel.
 * If the connection drops, its calls end UNAVAILABLE and the next call
 * connects again. Connecting is bounded by the call's ctx.
 *
 * Lifetime: crpc_channel_new creates; crpc_channel_free destroys once no
 * call on it is still in use (free every crpc_call first). A crpc_call is
 * owned by its caller until crpc_call_free.
 *
 * Threads: a channel may be used by many threads at once. One crpc_call is
 * used by one thread at a time, except that sending and receiving may
 * happen on two different threads concurrently (bidi streaming).
 */
#ifndef CRPC_CHANNEL_H
#define CRPC_CHANNEL_H

#include <stddef.h>
#include <stdint.h>

#include "crpc/call.h"
#include "crpc/ctx.h"
#include "crpc/metadata.h"
#include "crpc/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct crpc_channel crpc_channel;
typedef struct crpc_call crpc_call;

typedef struct crpc_channel_options {
  size_t max_recv_message_size; /* 0: 4 MiB; larger -> RESOURCE_EXHAUSTED */
  size_t max_send_message_size; /* 0: unlimited */
  const char *user_agent;       /* prefix before "crpc/<version>"; NULL: none */
  const char *authority;        /* :authority; NULL: the target's host:port */
  /* TLS (crpc/credentials.h; the channel keeps its own reference); NULL:
   * plaintext h2c. */
  const struct crpc_channel_credentials *credentials;
  /* Keepalive (gRPC's GRPC_ARG_KEEPALIVE_*): after keepalive_time_ns with
   * nothing received on the connection the channel sends a PING; if nothing
   * (its ACK or any other byte) arrives within keepalive_timeout_ns the
   * connection is dead: it closes, every call on it ends UNAVAILABLE with a
   * message saying keepalive timed out, and the next call reconnects.
   * Servers limit how often they accept PINGs (gRPC: 5 min by default): a
   * GOAWAY(ENHANCE_YOUR_CALM, "too_many_pings") doubles this channel's
   * keepalive_time_ns for its next connections, as gRPC clients do. */
  int64_t keepalive_time_ns;    /* 0: off (no PINGs) */
  int64_t keepalive_timeout_ns; /* 0: 20 s */
  /* Nonzero: PINGs also while no call is open (GRPC_ARG_KEEPALIVE_PERMIT_
   * WITHOUT_CALLS); 0: only while calls are in flight (gRPC's default). */
  int keepalive_without_calls;
} crpc_channel_options;

/* A channel to "host:port" (name, IPv4 or [IPv6] literal) or "unix:/path",
 * owned by the caller. Does not connect yet. NULL if the target cannot be
 * parsed (reason on stderr) or memory is exhausted. */
crpc_channel *crpc_channel_new(const char *target,
                               const crpc_channel_options *options);

/* Closes the connection and frees the channel. All calls must have been
 * freed. NULL: no-op. */
void crpc_channel_free(crpc_channel *channel);

/* ---- unary -------------------------------------------------------------- */

/* One request, one response. Blocks until the call ends or ctx is done.
 * `metadata` (may be NULL) is sent as request headers. On CRPC_OK, *response
 * holds the reply (caller frees response->data). `status` (may be NULL)
 * receives code, message and trailers in every case; clear it after.
 * Returns the call's status code. */
crpc_code crpc_unary_call(crpc_channel *channel, const crpc_ctx *ctx,
                          const char *method, const crpc_metadata *metadata,
                          const void *request, size_t request_len,
                          crpc_message *response, crpc_status *status);

/* ---- streaming (and unary, step by step) -------------------------------- */

/* Starts a call to method ("/package.Service/Method"): sends the headers
 * (connecting first if needed). On CRPC_OK, *call is the new call, owned by
 * the caller. Else *call is NULL and the code says why (UNAVAILABLE when
 * the server cannot be reached, the ctx's code if it ended first,
 * INVALID_ARGUMENT for a method not starting with '/' or metadata holding a
 * reserved key). */
crpc_code crpc_call_start(crpc_channel *channel, const crpc_ctx *ctx,
                          const char *method, const crpc_metadata *metadata,
                          crpc_call **call);

/* crpc_call_start whose requests are compressed with `encoding` ("gzip",
 * "deflate"; "identity" or NULL: none; see call.h). Sent uncompressed if
 * this channel's server has said (grpc-accept-encoding) it does not accept
 * it. Same returns, plus INVALID_ARGUMENT for a name crpc does not
 * implement. */
crpc_code crpc_call_start_compressed(crpc_channel *channel,
                                     const crpc_ctx *ctx, const char *method,
                                     const crpc_metadata *metadata,
                                     const char *encoding, crpc_call **call);

/* Sends one request message (copied). Blocks while the call's send buffer
 * is full, ctx-aware. CRPC_OK, or the call's final code if it has ended
 * (the server may have finished early: check crpc_call_finish), or the
 * ctx's cause code; FAILED_PRECONDITION after crpc_call_close_send;
 * RESOURCE_EXHAUSTED if len exceeds max_send_message_size. */
crpc_code crpc_call_send(crpc_call *call, const void *data, size_t len);

/* crpc_call_send with flags (0 or CRPC_SEND_NO_COMPRESS: this message goes
 * uncompressed even if the call compresses). Same returns, plus INTERNAL if
 * compressing fails. */
crpc_code crpc_call_send_flags(crpc_call *call, const void *data, size_t len,
                               unsigned flags);

/* Half-closes: no more requests. Idempotent. CRPC_OK or as send. */
crpc_code crpc_call_close_send(crpc_call *call);

/* Next response message (see crpc_message: `end` when the server has
 * finished; crpc_call_finish then gives the status). Blocks, ctx-aware.
 * CRPC_OK, or the call's error (server status, the ctx's cause code,
 * UNAVAILABLE on a lost connection, RESOURCE_EXHAUSTED for an oversized
 * message). */
crpc_code crpc_call_recv(crpc_call *call, crpc_message *msg);

/* Response headers from the server; blocks until they arrive or the call
 * ends. NULL if the call ended without any (trailers-only response or
 * error). Owned by the call. */
const crpc_metadata *crpc_call_response_headers(crpc_call *call);

/* Waits for the call to end and fills *status (may be NULL). Unread
 * response messages are discarded. Returns the status code. */
crpc_code crpc_call_finish(crpc_call *call, crpc_status *status);

/* Frees the call. If it has not ended, cancels it first (RST_STREAM). NULL:
 * no-op. */
void crpc_call_free(crpc_call *call);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_CHANNEL_H */
