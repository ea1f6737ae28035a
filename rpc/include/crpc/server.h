/*
 * crpc/server.h - serving gRPC over HTTP/2 (h2c; TLS: crpc/credentials.h).
 *
 * A server owns its listeners, its I/O loop threads (options.loop_threads,
 * each with a standby thread) and a pool of handler threads. A blocking
 * handler (this header) may block (ideally in ctx-aware waits) without
 * delaying any other call. It runs on a handler thread, or, when it is the
 * only call its loop read in one go and its method is unary or
 * server-streaming, on the loop's own thread, lent to it so that no
 * thread hand-off is paid: the loop's standby thread then runs the loop
 * the moment the handler blocks in a crpc wait (crpc_server_call_recv, a
 * full send window, crpc_ctx_wait/_cond/_fd/_sleep) or something needs the
 * loop, and 1-2 ms into any other blocking (a sleep, a lock, a plain
 * read), so the longest any other call of that loop waits for a lent
 * handler is about 2 ms (options.blocking_handlers_off_loop turns lending
 * off). A unary or server-streaming handler gets its
 * thread only once its request message is in, and one connection never
 * holds more than max_handlers_per_connection of them (the options below
 * bound what any one client can cost). Async handlers
 * (crpc/server_async.h) run on the loop itself, with no thread hop.
 *
 * Every call has a ctx, derived from the server's root ctx, handed to the
 * handler read-only. It is done, with a cause, when:
 *   - the client resets the stream (CANCELLED, origin peer reset, message
 *     naming the HTTP/2 error code),
 *   - the grpc-timeout the client sent expires (DEADLINE_EXCEEDED, origin
 *     deadline),
 *   - the connection is lost (UNAVAILABLE, origin connection lost),
 *   - the server shuts down past its grace period (UNAVAILABLE, shutdown),
 *   - the handler has returned (the call is over).
 * Once the ctx is done, crpc_server_call_send returns the cause's code at
 * once and writes nothing; queued outgoing bytes are dropped.
 *
 * Lifetime: crpc_server_new creates; crpc_server_free destroys after
 * crpc_server_shutdown (or calls it with no grace). A crpc_server_call is
 * owned by crpc and valid only inside its handler invocation.
 *
 * Threads: set-up functions (add_method, listen, start) are called by one
 * thread before start. Shutdown and free by one thread, not a handler.
 * Functions on a crpc_server_call are called only by its handler's thread.
 */
#ifndef CRPC_SERVER_H
#define CRPC_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "crpc/call.h"
#include "crpc/ctx.h"
#include "crpc/metadata.h"
#include "crpc/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct crpc_server crpc_server;
typedef struct crpc_server_call crpc_server_call;

/* A handler: receives and sends with the functions below and returns the
 * call's status (CRPC_OK or an error; use crpc_server_call_error to attach a
 * message). Returning ends the call: crpc sends the trailers (or resets the
 * stream if the client is already gone) and the call ctx becomes done. */
typedef crpc_code (*crpc_handler_fn)(crpc_server_call *call,
                                     const crpc_ctx *ctx, void *user_data);

typedef struct crpc_server_options {
  size_t max_recv_message_size; /* 0: 4 MiB; larger -> RESOURCE_EXHAUSTED */
  /* Largest response message a handler may send (larger ->
   * RESOURCE_EXHAUSTED, nothing queued). 0: 4 MiB; SIZE_MAX: unlimited.
   * gRPC C++ and Go leave sending unlimited by default; crpc bounds it as
   * it bounds receiving, because (1) every gRPC client refuses a reply
   * over its own default receive limit of 4 MiB anyway, so the default
   * loses nothing a default client could take, and (2) a call whose
   * client stops reading holds up to its send limit (stream_send_buffer,
   * below) plus one message:
   * with no limit, a peer that asks for huge replies behind a zero window
   * pins them all (4 streams asking 2 x 256 MiB held 3.2 GB, issue 17).
   * Raise it for clients that raised their receive limit. */
  size_t max_send_message_size;
  /* Largest request header list accepted (gRPC's GRPC_ARG_MAX_METADATA_SIZE),
   * counted as HTTP/2 does (name + value + 32 per field) and advertised as
   * SETTINGS_MAX_HEADER_LIST_SIZE: larger -> RESOURCE_EXHAUSTED and the
   * handler never runs. Response headers or trailers over the client's
   * advertised limit (or crpc's 64 KiB send cap) are not sent: the call
   * ends RESOURCE_EXHAUSTED instead. Whatever this allows, one field over
   * 64 KiB (as HPACK-encoded) ends the connection (nghttp2's limit). */
  size_t max_metadata_size;     /* 0: 8 KiB */
  int handler_threads;          /* 0: 64; max calls running handlers at once
                                   on handler threads (more wait for a free
                                   one); lent loop threads come on top */
  /* I/O loop threads (0: one per CPU the process may run on, from its
   * affinity mask). Each accepted connection is
   * handed to the next loop in turn and stays there: its nghttp2 session,
   * its calls' deadline timers and async handlers (crpc/server_async.h)
   * all run on that loop's thread. */
  int loop_threads;
  uint32_t max_concurrent_streams; /* 0: 1000 (HTTP/2 SETTINGS) */
  /* 0: 64 KiB. A send blocks (can_send says false) while a call has this
   * much queued; below it one more message of any size is taken, so a
   * call holds at most this plus one message (HTTP/2 flow control does
   * the rest). Messages larger than a quarter of it raise the call's
   * limit to four of them, at most 4 x this: one 64 KiB message per
   * write cost more in per-write overhead than the copy itself. */
  size_t stream_send_buffer;
  /* Keepalive (gRPC's GRPC_ARG_KEEPALIVE_*): after keepalive_time_ns with
   * nothing received on a connection the server sends a PING (with or
   * without calls open); if nothing (its ACK or any other byte) arrives
   * within keepalive_timeout_ns the connection is dead: it closes and every
   * call ctx on it is cancelled (UNAVAILABLE, origin connection lost,
   * message naming the keepalive timeout). */
  int64_t keepalive_time_ns;    /* 0: off (no server PINGs) */
  int64_t keepalive_timeout_ns; /* 0: 20 s */
  /* Ping enforcement: a client PING arriving sooner than this after the
   * previous one (the clock restarts whenever the server sends HEADERS or
   * DATA, as gRPC's "without data") is a strike; past 2 strikes the server
   * sends GOAWAY(ENHANCE_YOUR_CALM, debug "too_many_pings") and closes the
   * connection at once, as gRPC does: its calls' ctxs are cancelled with
   * origin connection lost. Applies with or without calls open. */
  int64_t min_ping_interval_ns; /* 0: 5 min; < 0: any rate allowed */
  /* Connection lifecycle (gRPC's GRPC_ARG_MAX_CONNECTION_IDLE_MS,
   * _MAX_CONNECTION_AGE_MS, _MAX_CONNECTION_AGE_GRACE_MS). Each ends a
   * connection with the graceful two-phase GOAWAY that shutdown uses: first
   * GOAWAY(2^31-1, NO_ERROR) plus a PING, then, once the PING's ACK is back
   * (or after 1 s), GOAWAY(last processed stream). Streams the client sent
   * before it saw the first one are served; clients open new connections
   * for their next calls. A connection closes once its streams are done. */
  int64_t max_connection_idle_ns; /* 0: off; no open call for this long:
                                     graceful GOAWAY, then close */
  int64_t max_connection_age_ns;  /* 0: off; after this age (+-10% jitter
                                     per connection) graceful GOAWAY */
  int64_t max_connection_age_grace_ns; /* 0: forever; this long after the
                                     age GOAWAY the connection closes and
                                     its calls' ctxs are cancelled
                                     (UNAVAILABLE, origin connection lost;
                                     the client sees UNAVAILABLE) */
  /* HTTP/2 receive windows (flow control). The stream window
   * (SETTINGS_INITIAL_WINDOW_SIZE) is how much a client may send on one
   * call before its handler reads: 1 .. 2^31-1. The connection window
   * bounds all calls together: 65535 (HTTP/2's initial value, which it
   * cannot go below) .. 2^31-1. Out of range: crpc_server_new fails. */
  uint32_t initial_stream_window_size;     /* 0: 65535 (HTTP/2 default) */
  uint32_t initial_connection_window_size; /* 0: 16 MiB */

  /* ---- hostile peers: what one client can cost the server. Each default
   * is meant to be safe facing the Internet; README "Memory bounds per
   * connection" puts them together. 0 means the default. ---- */

  /* A call with one request message (unary or server streaming, blocking
   * or async) whose message, or the end of its request stream, has not
   * arrived this long after its HEADERS ends DEADLINE_EXCEEDED ("request
   * not received within ...", origin local), trailers-only, and the
   * stream is reset NO_ERROR. Such calls wait on the loop, not on a
   * handler thread, so a client that opens calls and never sends their
   * bodies costs memory only, and only until then. An earlier
   * grpc-timeout still wins. Client-streaming and bidi requests are not
   * timed: their end may rightly be far off (bound them with ctx
   * deadlines in the handler). */
  int64_t request_timeout_ns; /* 0: 30 s; < 0: none */
  /* A connection that has not completed its TLS handshake (if TLS) and
   * sent the HTTP/2 client preface and SETTINGS this long after it was
   * accepted is closed, so sockets that never get going (or send
   * garbage slowly) do not hold file descriptors. gRPC calls this the
   * server handshake timeout (C++ GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS,
   * Go ConnectionTimeout; both 120 s): crpc's default is shorter, as a
   * real client gets there within a few round trips. The credentials'
   * own TLS handshake timeout (crpc/credentials.h, 10 s) still applies. */
  int64_t handshake_timeout_ns; /* 0: 20 s; < 0: none */
  /* Connections open at once. A connection accepted beyond it makes the
   * server close its idlest connection: of those on the loop the new one
   * lands on (connections are spread evenly over the loops), the one
   * that has gone longest without a HEADERS or DATA frame in either
   * direction, preferring one with no call open; it gets
   * GOAWAY(NO_ERROR, "max_connections") and is closed at once, calls
   * still on it ending UNAVAILABLE (origin connection lost).
   * Why reap the idlest rather than refuse the new one: refusing lets
   * whoever holds the slots, and idle sockets cost an attacker nothing,
   * lock every new client out, whereas a connection in use is never the
   * idlest, and a gRPC client whose idle connection was closed simply
   * reconnects for its next call. */
  size_t max_connections; /* 0: 3/4 of the open-file limit (RLIMIT_NOFILE,
                             soft) at crpc_server_new, at least 16: the rest
                             stays for listeners and the handlers' files */
  /* Blocking handlers one connection may have running or queued for a
   * thread at once. Its further calls wait on the loop (memory only,
   * their deadlines and resets still apply) until one of its handlers
   * returns, so one client cannot occupy every handler thread, e.g. with
   * client-streaming calls that never end. Async methods do not count:
   * they hold no thread. Since a gRPC client (or a proxy in front of
   * many) multiplexes all its calls on one connection, the default
   * leaves it half the pool. */
  int max_handlers_per_connection; /* 0: handler_threads / 2, at least 1 */
  /* Message bytes one connection may have the server hold at once:
   * request messages received and not yet taken by their handlers
   * (partial ones included, counted after decompression) plus response
   * messages queued and not yet written. The call whose bytes take the
   * connection over it ends RESOURCE_EXHAUSTED at once (its bytes are
   * dropped) and the connection's other calls go on. Per call the bounds
   * are max_recv_message_size plus the stream window, and the send
   * limit (stream_send_buffer, below) plus one message; this caps their sum over a
   * connection's max_concurrent_streams calls. */
  size_t max_connection_queued_bytes; /* 0: 64 MiB */
  /* Latency for CPU: while the server's loop threads see their waits end
   * within this long (a client in step with the server, a reply or a cancel
   * right after a write), each polls its sockets (without blocking,
   * yielding the CPU between polls) for up to this long before it sleeps,
   * so the next event finds it awake instead of paying a wake-up (tens of
   * microseconds on a VM); a wait longer than this turns polling off
   * until waits are short again, so an idle or sparse loop costs nothing
   * (rpc/loop: crpc_loop_set_poll). Measured in README "Benchmarks":
   * h2load 1x1 p50 and CPU per call with and without. <= 0: off (the
   * default); capped at 1 ms. */
  int64_t poll_ns;
  /* true: blocking handlers always run on handler threads, never on a
   * lent loop thread (see the top of this header). For services whose
   * handlers block outside crpc's waits (a database client, a sleep, a
   * file read) at a rate where their loop's other connections must not
   * wait the 1-2 ms until the standby notices; it costs such servers the
   * hand-off at one call in flight (docs/performance.md, "Blocking calls,
   * no hand-off": ~10 us of p50 and of CPU per call). false (the default): a blocking unary or
   * server-streaming call that is the only one its loop made ready runs
   * on that loop's thread. */
  bool blocking_handlers_off_loop;
} crpc_server_options;

/* A server with the given options (NULL: defaults), owned by the caller;
 * NULL if out of memory or an option is out of range (reason in the log,
 * crpc/log.h; crpc_server_new_err returns it). */
crpc_server *crpc_server_new(const crpc_server_options *options);

/* Size of the error buffers of the *_err functions below (longer reasons
 * are cut). */
#define CRPC_SERVER_ERROR_MAX 256

/* crpc_server_new that tells the caller why it failed instead of logging
 * it: on NULL, `error` (if not NULL) holds the reason (an out-of-range
 * window option, "out of memory", ...); on success "". crpc_server_new is
 * this plus a log line (crpc/log.h, tag "server"). */
crpc_server *crpc_server_new_err(const crpc_server_options *options,
                                 char error[CRPC_SERVER_ERROR_MAX]);

/* Registers a handler for path "/package.Service/Method". Before start.
 * CRPC_OK, CRPC_INVALID_ARGUMENT (bad path), CRPC_ALREADY_EXISTS. Calls to
 * unregistered paths get UNIMPLEMENTED. `kind` says how the handler uses
 * the stream; unary handlers receive exactly one message. */
crpc_code crpc_server_add_method(crpc_server *server, const char *path,
                                 crpc_method_kind kind, crpc_handler_fn fn,
                                 void *user_data);

/* Listens on "host:port" (port 0 picks a free one; host may be an IPv4 or
 * [IPv6] literal or a name) or "unix:/path". Before start; may be called
 * several times. Stores the bound TCP port in *port if port is not NULL (0
 * for unix sockets). CRPC_OK, CRPC_INVALID_ARGUMENT (unparsable address) or
 * CRPC_UNAVAILABLE (bind/listen failed; the reason goes to stderr).
 * Plaintext (h2c); for TLS see crpc_server_listen_tls (credentials.h). */
crpc_code crpc_server_listen(crpc_server *server, const char *address,
                             int *port);

/* crpc_server_listen that tells the caller why it failed instead of
 * logging it: on an error, `error` (if not NULL) holds the reason, naming
 * the address and the system's words for the errno, e.g. "bind/listen
 * 127.0.0.1:50051: Address already in use" or "\"x:y\": bad host or
 * port"; on CRPC_OK "". Same returns, plus CRPC_FAILED_PRECONDITION after
 * start and CRPC_RESOURCE_EXHAUSTED. crpc_server_listen is this plus a
 * log line (crpc/log.h, tag "server"). */
crpc_code crpc_server_listen_err(crpc_server *server, const char *address,
                                 int *port,
                                 char error[CRPC_SERVER_ERROR_MAX]);

/* Starts the loop and handler threads; calls are accepted from now on.
 * CRPC_OK, or CRPC_FAILED_PRECONDITION (no listener / already started). */
crpc_code crpc_server_start(crpc_server *server);

/* Stops accepting, sends the graceful two-phase GOAWAY (above: streams
 * already on the wire are still served), lets in-flight calls run for up to
 * grace_ns, then cancels the rest (UNAVAILABLE, origin shutdown) and waits
 * for their handlers to return. Blocks until no call is left. Idempotent. */
void crpc_server_shutdown(crpc_server *server, int64_t grace_ns);

/* Shuts down with no grace if needed, then frees everything. NULL: no-op. */
void crpc_server_free(crpc_server *server);

/* Serves until the process gets SIGINT or SIGTERM, then shuts down as
 * crpc_server_shutdown(server, grace_ns) and returns CRPC_OK: the blocking
 * "main loop" of a server program (gRPC C++'s Server::Wait plus a signal
 * handler). Call after crpc_server_start, from the thread that will free
 * the server, never from a handler. Signals need no set-up: while it waits
 * it installs a handler for both (whichever thread the kernel picks) and
 * unblocks them in the calling thread (so one already pending because the
 * program blocked it counts), and it restores the previous handlers and
 * mask before the grace period begins, so a second signal then gets the
 * program's old disposition (by default: the process ends at once).
 * Returns CRPC_FAILED_PRECONDITION, doing nothing, if the server is not
 * started or already shut down, or another thread is waiting in one of
 * these two functions; CRPC_INTERNAL (reason in the log, crpc/log.h; server still
 * running) if the handler or the wait cannot be set up. */
crpc_code crpc_server_serve_until_signal(crpc_server *server,
                                         int64_t grace_ns);

/* crpc_server_serve_until_signal that also stops once `stop` is done (NULL:
 * only signals; e.g. a ctx an admin RPC cancels, or one that ends when a
 * supervisor's pipe closes). Stores in *signo (if not NULL) the signal that
 * ended the wait, or 0 if `stop` did. Same returns; the caller still owns
 * and releases `stop`. */
crpc_code crpc_server_serve_until(crpc_server *server, const crpc_ctx *stop,
                                  int64_t grace_ns, int *signo);

/* ---- inside a handler --------------------------------------------------- */

/* Next request message (see crpc_message: `end` once the client finished
 * sending). Blocks, ctx-aware. CRPC_OK, or the ctx's cause code, or
 * RESOURCE_EXHAUSTED (message over the limit) / INTERNAL (malformed
 * framing), after which the call is failing. */
crpc_code crpc_server_call_recv(crpc_server_call *call, crpc_message *msg);

/* Queues one response message (copied). Sends the response headers first if
 * not sent yet. Blocks while the call's send buffer is full (a slow reader),
 * ctx-aware. CRPC_OK, or the ctx's cause code at once once the client has
 * cancelled, the deadline passed or the connection is gone; then nothing is
 * written. RESOURCE_EXHAUSTED if len exceeds max_send_message_size. The
 * only response of a unary or client-streaming method is written together
 * with the status when the handler returns (or sends again), in one write:
 * gRPC clients complete such a call on its status anyway. */
crpc_code crpc_server_call_send(crpc_server_call *call, const void *data,
                                size_t len);

/* crpc_server_call_send with flags (0 or CRPC_SEND_NO_COMPRESS: this
 * message goes uncompressed even if the call compresses). Same returns,
 * plus INTERNAL if compressing fails. */
crpc_code crpc_server_call_send_flags(crpc_server_call *call, const void *data,
                                      size_t len, unsigned flags);

/* crpc_server_call_send_flags for a message in a crpc_buf (crpc/call.h):
 * sent from the buffer itself, no copy (unless the call compresses or the
 * server has send interceptors). Consumes one reference to buf whatever it
 * returns. Same returns as crpc_server_call_send_flags. */
crpc_code crpc_server_call_send_buf(crpc_server_call *call, crpc_buf *buf,
                                    unsigned flags);

/* Compresses the call's responses with `encoding` ("gzip", "deflate";
 * "identity" or NULL: none; see call.h). Before the first send. CRPC_OK
 * (also when the client's grpc-accept-encoding lacks it: responses then go
 * uncompressed), INVALID_ARGUMENT for a name crpc does not implement,
 * FAILED_PRECONDITION after the first send. */
crpc_code crpc_server_call_set_compression(crpc_server_call *call,
                                           const char *encoding);

/* Sets the status message the trailers will carry and returns `code`, so a
 * handler can `return crpc_server_call_error(call, CRPC_NOT_FOUND, "...")`.
 * printf-style; the message is percent-encoded on the wire. */
crpc_code crpc_server_call_error(crpc_server_call *call, crpc_code code,
                                 const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Request headers sent by the client (custom metadata, user-agent).
 * Owned by the call. */
const crpc_metadata *crpc_server_call_request_metadata(
    const crpc_server_call *call);

/* Metadata to send as response headers (before the first message) and as
 * trailers (with the status). Owned by the call; add to them before the
 * first send / before returning. Reserved keys fail the call (INTERNAL). */
crpc_metadata *crpc_server_call_response_headers(crpc_server_call *call);
crpc_metadata *crpc_server_call_trailers(crpc_server_call *call);

/* "/package.Service/Method". Owned by the call. */
const char *crpc_server_call_method(const crpc_server_call *call);

/* How a cancel travelled through one call: where the time went between
 * the cancel reaching this server and the handler stopping, and what was
 * thrown away. Times are CLOCK_MONOTONIC (crpc_now_ns), 0 when it did not
 * happen. interceptors/metrics.h turns them into histograms. */
typedef struct crpc_server_cancel_stats {
  /* The cancel reached the server: the client's RST_STREAM arrived (the
   * kernel's receive stamp where the socket has one, TCP without TLS;
   * else when it was read; either way the loop's wake-up counts in
   * ctx_done_ns - event_ns), the deadline came due (its due time, so a
   * late timer counts), the
   * connection was found lost, or an operator cancelled the call
   * (crpc_server_cancel_call, crpc/calls.h). 0: no such cancel (the call
   * ended on its own, or was cancelled locally: handler, shutdown, a
   * limit). */
  int64_t event_ns;
  int64_t ctx_done_ns;    /* the call ctx was done after event_ns */
  int64_t send_failed_ns; /* the handler's first send that failed because
                             the call was over (any cause) */
  /* Response messages (and their unwritten bytes) that were queued but
   * never written: dropped by the cancel, or by a failure that ended the
   * call (a message partly written counts in bytes only when it was
   * dropped whole). */
  uint64_t dropped_messages;
  uint64_t dropped_bytes;
} crpc_server_cancel_stats;

/* Fills *out with the call's figures so far (final once on_done ran or
 * the handler returned and the call ended). Any thread, while the call is
 * valid. */
void crpc_server_call_cancel_stats(crpc_server_call *call,
                                   crpc_server_cancel_stats *out);

/* The client's address: "ipv4:127.0.0.1:41234", "ipv6:[::1]:41234" or
 * "unix:/path". Owned by the call. */
const char *crpc_server_call_peer(const crpc_server_call *call);

#ifdef __cplusplus
}
#endif

#endif /* CRPC_SERVER_H */
