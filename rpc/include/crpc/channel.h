/*
 * crpc/channel.h - calling gRPC servers over HTTP/2.
 *
 * A channel is a connection (made lazily, remade after a drop, closed when
 * idle) to one target, shared by every call on it: calls are HTTP/2 streams
 * multiplexed on that connection (one connection per address with round
 * robin). A channel owns up to options.loop_threads I/O loop threads and
 * puts each new connection on the one with the fewest (so a channel with
 * one connection runs one loop thread; a round robin over N addresses
 * spreads over min(N, loop_threads)); calls are made from any user
 * threads with blocking, ctx-aware functions.
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

/* Load balancing over the addresses a target resolves to. */
typedef enum crpc_lb_policy {
  /* One connection, to the first address (in resolver order) that accepts;
   * on loss the next call resolves again and starts over. gRPC's default. */
  CRPC_LB_PICK_FIRST = 0,
  /* One connection per address; calls rotate over them. An address that
   * fails is skipped (backing off) while others are up. */
  CRPC_LB_ROUND_ROBIN = 1,
  /* As round robin (one connection per address, failed ones skipped), but
   * each call goes to the connection with the fewest calls in progress
   * (ties rotate): a slow backend, whose calls last longer, gets fewer. */
  CRPC_LB_LEAST_REQUEST = 2,
} crpc_lb_policy;

typedef struct crpc_channel_options {
  size_t max_recv_message_size; /* 0: 4 MiB; larger -> RESOURCE_EXHAUSTED */
  size_t max_send_message_size; /* 0: unlimited */
  /* Largest response header list accepted, headers and trailers each
   * (gRPC's GRPC_ARG_MAX_METADATA_SIZE), counted as HTTP/2 does (name +
   * value + 32 per field) and advertised as SETTINGS_MAX_HEADER_LIST_SIZE:
   * larger -> the call ends RESOURCE_EXHAUSTED. Request metadata over the
   * server's advertised limit (or crpc's 64 KiB send cap) is not sent: the
   * call ends RESOURCE_EXHAUSTED. Whatever this allows, one field over
   * 64 KiB (as HPACK-encoded) ends the connection (nghttp2's limit). */
  size_t max_metadata_size;     /* 0: 8 KiB */
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
  /* How calls spread over the target's addresses (see crpc_channel_new). */
  crpc_lb_policy lb_policy; /* 0: CRPC_LB_PICK_FIRST */
  /* Reconnect backoff (gRPC's connection-backoff.md): after a failed
   * connection attempt an address is not tried again for backoff_initial_ns,
   * then 1.6 times longer after each further failure up to backoff_max_ns,
   * each delay jittered by +-20% so clients do not reconnect in lockstep.
   * A connection that worked resets it. A call that finds every address
   * backing off fails at once with UNAVAILABLE (the last connect error),
   * unless wait_for_ready. */
  int64_t backoff_initial_ns; /* 0: 1 s */
  int64_t backoff_max_ns;     /* 0: 120 s */
  /* One attempt (connect + TLS handshake) may take this long, less if the
   * call's ctx ends sooner (then the call gets the ctx's code and no
   * backoff is counted). */
  int64_t min_connect_timeout_ns; /* 0: 20 s */
  /* Nonzero: calls wait (ctx-aware) through failed attempts and backoff
   * until a connection is up or their ctx ends (gRPC's wait-for-ready), so
   * a call made while the server restarts succeeds once it is back. */
  int wait_for_ready;
  /* A connection with no call in use (started and not yet freed) for this
   * long is closed (GOAWAY, then close); the next call reconnects. */
  int64_t idle_timeout_ns; /* 0: 30 min (gRPC's default); < 0: never */
  /* HTTP/2 receive windows (flow control). The stream window
   * (SETTINGS_INITIAL_WINDOW_SIZE) is how much the server may send on one
   * call before the caller reads: 1 .. 2^31-1. The connection window bounds
   * all calls together: 65535 (HTTP/2's initial value, which it cannot go
   * below) .. 2^31-1. Out of range: crpc_channel_new fails. */
  uint32_t initial_stream_window_size;     /* 0: 65535 (HTTP/2 default) */
  uint32_t initial_connection_window_size; /* 0: 16 MiB */
  /* Encoding for the requests of every call started without one
   * (crpc_call_start, crpc_unary_call, generated stubs): "gzip" or
   * "deflate"; NULL or "identity": none. crpc_call_start_compressed still
   * chooses per call. Another name: crpc_channel_new fails. */
  const char *default_compression;
  /* Latency for CPU: while the channel's loop threads see their waits end
   * within this long (a client in step with the channel, a reply or a cancel
   * right after a write), each polls its sockets (without blocking,
   * yielding the CPU between polls) for up to this long before it sleeps,
   * so the next event finds it awake instead of paying a wake-up (tens of
   * microseconds on a VM); a wait longer than this turns polling off
   * until waits are short again, so an idle or sparse loop costs nothing
   * (rpc/loop: crpc_loop_set_poll). Measured in README "Benchmarks":
   * h2load 1x1 p50 and CPU per call with and without. <= 0: off (the
   * default); capped at 1 ms. */
  int64_t poll_ns;
  /* Most I/O loop threads the channel runs (0: one per CPU the process
   * may run on, as servers). A loop thread starts only when a connection
   * needs it (the first goes to the loop with the fewest connections), so
   * this bounds threads; it adds none to a channel with one connection. A
   * connection stays on its loop: its session, its calls' sends and
   * receives, and the async callbacks of its calls run there. 1: every
   * connection on one thread (async callbacks of all calls serialised). */
  int loop_threads;
} crpc_channel_options;

/* Connectivity, as gRPC's: IDLE (no connection, none being made), CONNECTING,
 * READY (a connection is up), TRANSIENT_FAILURE (the last attempts failed
 * and every address is backing off). With round robin: READY if any address
 * is, else CONNECTING if any is, else TRANSIENT_FAILURE if any failed. */
typedef enum crpc_channel_state {
  CRPC_CHANNEL_IDLE = 0,
  CRPC_CHANNEL_CONNECTING,
  CRPC_CHANNEL_READY,
  CRPC_CHANNEL_TRANSIENT_FAILURE,
} crpc_channel_state;

/* The channel's state now (a snapshot; it may change at once). Thread-safe;
 * never blocks on I/O. */
crpc_channel_state crpc_channel_get_state(crpc_channel *channel);

/* "IDLE", "CONNECTING", "READY", "TRANSIENT_FAILURE"; static storage. */
const char *crpc_channel_state_name(crpc_channel_state state);

/* A channel to `target`, owned by the caller. Does not connect yet. NULL if
 * the target cannot be parsed or an option is out of range (reason in the
 * log, crpc/log.h; crpc_channel_new_err returns it), or memory is
 * exhausted.
 * Targets use gRPC's naming syntax:
 *   "host:port", "dns:///host:port"   a DNS name or IP literal ("[::1]:50051")
 *   "ipv4:10.0.0.1:50051,10.0.0.2:50051"   a fixed list of addresses
 *   "ipv6:[::1]:50051,[::2]:50051"
 *   "unix:/path", "unix:///path"
 * (a missing port in the dns:/ipv4:/ipv6: forms is 443). Names are resolved
 * when connecting, on a helper thread, bounded by the call's ctx: a stuck
 * DNS server never holds a call past its deadline or cancel. */
crpc_channel *crpc_channel_new(const char *target,
                               const crpc_channel_options *options);

/* Size of crpc_channel_new_err's error buffer (longer reasons are cut). */
#define CRPC_CHANNEL_ERROR_MAX 256

/* crpc_channel_new that tells the caller why it failed instead of logging
 * it: on NULL, `error` (if not NULL) holds the reason (a target that
 * does not parse, e.g. "\"[::1\": missing ']'", an out-of-range window,
 * an unknown default_compression, "out of memory"); on success "".
 * crpc_channel_new is this plus a log line (crpc/log.h, tag "channel"). */
crpc_channel *crpc_channel_new_err(const char *target,
                                   const crpc_channel_options *options,
                                   char error[CRPC_CHANNEL_ERROR_MAX]);

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

/* crpc_call_start_compressed (encoding NULL: the channel's
 * default_compression) that also says why a start failed, the way
 * crpc_unary_call's status does: on an error *status (if not NULL) holds
 * the code and a message (for UNAVAILABLE the connect error, e.g.
 * "connect 127.0.0.1:1: Connection refused"; the ctx's cause message if
 * the ctx ended first; what was wrong for INVALID_ARGUMENT) and empty
 * trailers; release it with crpc_status_clear. On CRPC_OK *status is
 * zeroed (the call's final status comes from crpc_call_finish). Same
 * returns as crpc_call_start_compressed. */
crpc_code crpc_call_start_status(crpc_channel *channel, const crpc_ctx *ctx,
                                 const char *method,
                                 const crpc_metadata *metadata,
                                 const char *encoding, crpc_call **call,
                                 crpc_status *status);

/* Starts a call whose client sends exactly one message (a unary or a
 * server-streaming method) and sends it: crpc_call_start,
 * crpc_call_send_buf(request) and crpc_call_close_send as one step, so the
 * headers, the message and END_STREAM leave together, in one write, from
 * the calling thread when the channel's loop sleeps (no wake-up of the
 * loop's thread; the loop writes them when it is busy or input waits).
 * Consumes one reference to `request` whatever it returns (crpc/call.h).
 * Returns what crpc_call_start returns, with *call NULL; once the call
 * exists, *call is set (the caller owns it: crpc_call_free) and the code is
 * CRPC_OK or what the send or close_send returned, in which case the call
 * has been ended with that code (RESOURCE_EXHAUSTED over
 * max_send_message_size, INTERNAL if compressing failed, the ctx's code
 * if it ended first): crpc_call_finish reports it. Generated
 * server-streaming `_start` stubs use it. Any thread; it blocks as
 * crpc_call_start does (while connecting, bounded by ctx). */
crpc_code crpc_call_start_request(crpc_channel *channel, const crpc_ctx *ctx,
                                  const char *method, const crpc_metadata *metadata,
                                  crpc_buf *request, crpc_call **call);

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

/* crpc_call_send_flags for a message in a crpc_buf (crpc/call.h): sent
 * from the buffer itself, no copy (unless the call compresses, or the
 * channel has send interceptors, which see a copy). Consumes one reference
 * to buf whatever it returns. Same returns as crpc_call_send_flags. */
crpc_code crpc_call_send_buf(crpc_call *call, crpc_buf *buf, unsigned flags);

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
